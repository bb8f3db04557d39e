"""Functions the probe tests watch (imported, so in sys.modules as ``tests.probe_targets``)."""

import asyncio
import time


def add(a, b=10):
    return a + b


def fail(message):
    raise ValueError(message)


def keywords(a, /, b, *rest, c, d=4, **extra):
    return (a, b, rest, c, d, extra)


def nested(data):
    return len(data)


def sleepy(seconds):
    time.sleep(seconds)
    return seconds


def hot(x):
    return x


def callback(x):
    return x * 2


def outer(n):
    return middle(n)


def middle(n):
    return inner(n)


def inner(n):
    return n + 1


def recurse(n):
    return 0 if n <= 0 else 1 + recurse(n - 1)


CALLBACKS = {"double": callback}


class Account(object):
    rate = 3

    def __init__(self, owner, balance):
        self.owner = owner
        self.balance = balance

    def deposit(self, amount):
        self.balance += amount
        return self.balance

    @staticmethod
    def check(value):
        return value > 0

    @classmethod
    def make(cls, owner):
        return cls(owner, 0)

    @property
    def doubled(self):
        return self.balance * 2

    class Inner(object):
        def ping(self):
            return "pong"


def counter(limit):
    total = 0
    for index in range(limit):
        total += index
        yield index
    return total


async def slow_coroutine(delay, value):
    await asyncio.sleep(delay)
    return value * 3


async def failing_coroutine():
    await asyncio.sleep(0)
    raise KeyError("missing")


async def ticks(count):
    for index in range(count):
        await asyncio.sleep(0)
        yield index


def make_closure():
    hidden = [0]

    def bump(step=1):
        hidden[0] += step
        return hidden[0]

    return bump


bump = make_closure()


def kwonly_defaults(a, *, scale=2):
    return a * scale


class Hostile(object):
    def __repr__(self):
        raise RuntimeError("repr refused")

    def __getattr__(self, name):
        raise RuntimeError("getattr refused")


class Recursive(object):
    def __repr__(self):
        return repr(self)


class Huge(object):
    def __repr__(self):
        return "x" * 10000000


def echo(*values):
    return values[0] if len(values) == 1 else values


ORIGINAL_CODES = {}
for _name, _value in list(globals().items()):
    if hasattr(_value, "__code__"):
        ORIGINAL_CODES[_name] = _value.__code__
