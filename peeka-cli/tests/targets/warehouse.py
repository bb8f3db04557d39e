# Test target for the runtime commands (sc, sm, inspect, logger, memory):
# known classes, instances and nested values, a logger whose level decides
# what the program logs, and a known leaking line. On SIGUSR1 it writes a
# report about itself to warehouse-report.json next to this script.
import json
import logging
import os
import signal
import sys
import threading
import time
import tracemalloc

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "warehouse-report.json")


class Item(object):
    def __init__(self, sku, qty):
        self.sku = sku
        self.qty = qty

    def total(self, price, discount=0):
        return self.qty * price - discount

    @property
    def expensive(self):
        raise RuntimeError("a property of the target was evaluated")


class Warehouse(object):
    def __init__(self, name, items):
        self.name = name
        self.items = items


class Settings(object):
    def __init__(self):
        self.db = {"hosts": ["db1", "db2"], "port": 5432}


class CountingHandler(logging.Handler):
    def __init__(self):
        logging.Handler.__init__(self)
        self.messages = 0

    def emit(self, record):
        self.messages += 1


SETTINGS = Settings()
WAREHOUSE = Warehouse("main", [Item("A-1", 3), Item("A-2", 12), Item("B-7", 5)])
LEAK = []
AUDIT = logging.getLogger("warehouse.audit")
AUDIT.setLevel(logging.WARNING)
HANDLER = CountingHandler()
AUDIT.addHandler(HANDLER)
AUDIT.propagate = False
state = {"errors": []}


def work():
    LEAK.append(bytearray(2000))  # LEAK-LINE
    AUDIT.info("tick")
    return WAREHOUSE.items[1].total(2)


def report(*_args):
    data = {
        "info_records": HANDLER.messages,
        "audit_level": AUDIT.level,
        "tracing": tracemalloc.is_tracing(),
        "errors": state["errors"][:5],
        "threads": sorted(t.name for t in threading.enumerate()),
        "modules": sorted(m for m in sys.modules if "peeka" in m),
        "time": time.time(),
    }
    tmp = REPORT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, REPORT)


signal.signal(signal.SIGUSR1, report)
print("ready", flush=True)

while True:
    try:
        assert work() == 24
    except Exception as exc:  # the target's own results must never change
        state["errors"].append(repr(exc))
    time.sleep(0.01)
