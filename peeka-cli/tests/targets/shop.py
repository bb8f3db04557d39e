# Test target for peeka-cli's end-to-end tests: a small "service" whose
# functions are called in a loop with known arguments and results, plus
# hostile values. On SIGUSR1 it writes a report about itself to report.json
# next to this script, so tests can check what Peeka left behind from the
# target's own point of view.
import json
import os
import signal
import sys
import threading
import time

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.json")


class Cart(object):
    def __init__(self, owner, items):
        self.owner = owner
        self.items = items

    def total(self, discount=0):
        return sum(price for _, price in self.items) - discount


class User(object):
    def __init__(self, uid, name):
        self.id = uid
        self.name = name


def checkout(cart, coupon=None):
    if coupon == "BAD":
        raise ValueError("coupon BAD is not valid")
    return cart.total(discount=5 if coupon else 0)


def hot(x):
    return x + 1


class RaisingRepr(object):
    def __repr__(self):
        raise RuntimeError("repr exploded")


class HugeRepr(object):
    def __repr__(self):
        return "H" * 5000000


class RecursiveRepr(object):
    def __repr__(self):
        return repr(self)


class RaisingGetattr(object):
    def __getattr__(self, name):
        raise KeyError(name)


def make_hostile():
    cycle = []
    cycle.append(cycle)
    deep = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]
    return [RaisingRepr(), HugeRepr(), RecursiveRepr(), RaisingGetattr(), cycle, deep]


def handle_hostile(values):
    return len(values)


FUNCTIONS = [checkout, hot, handle_hostile, Cart.total]
CODES = [f.__code__ for f in FUNCTIONS]
state = {"calls": 0, "hot": 0, "errors": [], "hostile_results": set()}


def report(*_args):
    tool_ids = None
    if hasattr(sys, "monitoring"):
        tool_ids = [i for i in range(6) if sys.monitoring.get_tool(i) is not None]
    data = {
        "calls": state["calls"],
        "hot": state["hot"],
        "errors": state["errors"][:5],
        "functions_same": [f is g for f, g in zip(FUNCTIONS, [checkout, hot, handle_hostile, Cart.total])],
        "codes_same": [f.__code__ is c for f, c in zip(FUNCTIONS, CODES)],
        "tool_ids": tool_ids,
        "threads": sorted(t.name for t in threading.enumerate()),
        "modules": sorted(m for m in sys.modules if "peeka" in m),
        "main_globals": sorted(globals()),
        "hostile_results": sorted(state["hostile_results"]),
        "time": time.time(),
    }
    tmp = REPORT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, REPORT)


signal.signal(signal.SIGUSR1, report)


def hot_loop():
    # Counts calls of hot() for the call-rate checks. CPU-bound: it gives up
    # the GIL only when another thread asks for it. (A loop that also called
    # time.sleep(0) would starve every other thread on CPython 3.8-3.10, the
    # agent's included: see docs/attach.md, "Limits".)
    while True:
        for _ in range(1000):
            hot(1)
        state["hot"] += 1000


alice = User(7, "alice")
cart = Cart(alice, [("apple", 10), ("pear", 20)])
hostile = make_hostile()
n = 0
# Every name of the module is bound before "ready": the test compares them
# before the attach and after the detach.
threading.Thread(target=hot_loop, name="hot-loop", daemon=True).start()
print("ready", flush=True)
while True:
    n += 1
    try:
        assert checkout(cart) == 30
        assert checkout(cart, coupon="SAVE") == 25
        try:
            checkout(cart, coupon="BAD")
            state["errors"].append("BAD coupon accepted")
        except ValueError:
            pass
        state["hostile_results"].add(handle_hostile(hostile))
    except Exception as exc:  # the target's own results must never change
        state["errors"].append(repr(exc))
    state["calls"] += 1
    time.sleep(0.01)
