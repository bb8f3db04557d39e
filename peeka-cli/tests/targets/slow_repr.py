# Test target for peeka-cli's end-to-end tests: a "service" whose request
# handler gets objects that are costly to show. Order.__repr__ sleeps one
# second, and Order.__str__ and a property do too; each counts its calls.
# The main loop times every call of handle() itself. On SIGUSR1 it writes a
# report to report.json next to this script: the slowest call since the
# previous report, the number of calls, and how often the costly code ran.
import json
import os
import signal
import time

REPORT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report.json")
SLEEP = 1.0

# Counted without a lock: the report is written by a signal handler, which
# runs in the main thread between two of its bytecodes.
counts = {"repr": 0, "str": 0, "property": 0}


class Order(object):
    def __init__(self, oid, sku):
        self.id = oid
        self.sku = sku

    def __repr__(self):
        counts["repr"] += 1
        time.sleep(SLEEP)
        return "Order#%d(%s)" % (self.id, self.sku)

    def __str__(self):
        counts["str"] += 1
        time.sleep(SLEEP)
        return "order %d" % self.id

    @property
    def total(self):
        counts["property"] += 1
        time.sleep(SLEEP)
        return 42


def handle(order, extra):
    return order.id + len(extra)


state = {"calls": 0, "slowest_ms": 0.0}


def report(*_args):
    data = {
        "calls": state["calls"],
        "slowest_ms": state["slowest_ms"],
        "repr_calls": counts["repr"],
        "str_calls": counts["str"],
        "property_calls": counts["property"],
        "time": time.time(),
    }
    state["slowest_ms"] = 0.0
    tmp = REPORT + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.rename(tmp, REPORT)


signal.signal(signal.SIGUSR1, report)

order = Order(17, "plum")
extra = [Order(18, "fig")]
print("ready", flush=True)
while True:
    started = time.perf_counter()
    handle(order, extra)
    elapsed = (time.perf_counter() - started) * 1000.0
    state["calls"] += 1
    if elapsed > state["slowest_ms"]:
        state["slowest_ms"] = elapsed
    time.sleep(0.01)
