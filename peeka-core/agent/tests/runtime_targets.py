"""Values, classes and loggers the runtime-command tests look at (``tests.runtime_targets``)."""

import logging


class Item(object):
    """An inventory line."""

    KIND = "item"

    def __init__(self, sku, qty):
        self.sku = sku
        self.qty = qty

    def total(self, price, discount=0, *, rounding=2):
        return round(self.qty * price - discount, rounding)

    @staticmethod
    def parse(text):
        return Item(*text.split(":"))

    @classmethod
    def empty(cls):
        return cls("", 0)

    @property
    def label(self):
        raise AssertionError("a property was evaluated")

    async def refresh(self, *args, **kwargs):
        return None


class SpecialItem(Item):
    """A subclass: its instances count as Items."""

    def total(self, price, discount=0, *, rounding=2):
        return 0


class Lazy(object):
    """Reading anything missing would run __getattr__: it must never run."""

    def __init__(self):
        self.calls = 0

    def __getattr__(self, name):
        raise AssertionError("__getattr__ was run for %s" % name)


class Config(object):
    def __init__(self):
        self.db = {"hosts": ["db1", "db2"], "port": 5432, "nested": {"deep": [1, {"x": 42}]}}
        self.lazy = Lazy()


class Unique7a1f(object):
    """A class no other module names (for bare-name lookups)."""


CONFIG = Config()
ITEMS = [Item("A-1", 3), Item("A-2", 12), Item("B-9", 40), SpecialItem("S-1", 1)]
LEAKED = []

LOGGER = logging.getLogger("tests.runtime.audit")
LOGGER.setLevel(logging.WARNING)
CHILD = logging.getLogger("tests.runtime.audit.child")


class CountingHandler(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


HANDLER = CountingHandler()
LOGGER.addHandler(HANDLER)
LOGGER.propagate = False


def leak(count=200):
    for _ in range(count):
        LEAKED.append(bytearray(1000))  # LEAK-LINE


HELD = {"anchor": Unique7a1f()}
