# Test target for trace, thread and top: its truth is known.
# - MainThread calls order([1, 2, 3]) every 10 ms: validate once, price
#   three times, save once (and json.dumps, from the standard library).
# - "burner" runs burn() without pause: the only CPU-bound thread.
# - "idle-waiter" waits on an event forever; "sleeper" sleeps in a loop.
# On SIGUSR1 it writes report.json next to this script (what Peeka left).
import json
import os
import signal
import sys
import threading
import time

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.json")


def validate(items):
    return bool(items)


def price(item):
    return item * 2


def save(items):
    return json.dumps(items)


def order(items):
    validate(items)
    total = 0
    for item in items:
        total += price(item)
    save(items)
    return total


def burn():
    x = 0
    while True:
        for i in range(1000):
            x += i * i
        state["burned"] += 1


FUNCTIONS = [validate, price, save, order, burn]
CODES = [f.__code__ for f in FUNCTIONS]
state = {"orders": 0, "burned": 0, "errors": []}
forever = threading.Event()


def report(*_args):
    tool_ids = None
    if hasattr(sys, "monitoring"):
        tool_ids = [i for i in range(6) if sys.monitoring.get_tool(i) is not None]
    data = {
        "orders": state["orders"],
        "errors": state["errors"][:5],
        "codes_same": [f.__code__ is c for f, c in zip(FUNCTIONS, CODES)],
        "tool_ids": tool_ids,
        "profile": repr(sys.getprofile()),
        "threads": sorted(t.name for t in threading.enumerate()),
        "modules": sorted(m for m in sys.modules if "peeka" in m),
        "time": time.time(),
    }
    tmp = REPORT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, REPORT)


signal.signal(signal.SIGUSR1, report)


def sleeper():
    while True:
        time.sleep(0.05)


threading.Thread(target=burn, name="burner", daemon=True).start()
threading.Thread(target=forever.wait, name="idle-waiter", daemon=True).start()
threading.Thread(target=sleeper, name="sleeper", daemon=True).start()
print("ready", flush=True)

while True:
    try:
        if order([1, 2, 3]) != 12:
            state["errors"].append("wrong total")
    except Exception as exc:
        state["errors"].append(repr(exc))
    state["orders"] += 1
    time.sleep(0.01)
