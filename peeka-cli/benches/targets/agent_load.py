# Bench target for agent_load: one thread calling handle() in a loop.
#
# `python agent_load.py hot [FUNCTION]`: FUNCTION (`handle`, the default,
#     or `checkout`) as fast as it can; a line "COUNT TIME" (calls
#     so far, time.monotonic()) every 100 ms, looked at every 256 calls, so
#     that the bench reads the throughput even when the target is slowed to a
#     crawl.
# `python agent_load.py paced`: a call every millisecond (then a 1 ms
#     sleep), as a service handling requests does; prints nothing more.
#
# `ready` is printed first.
import sys
import time


def handle(n):
    return n + 1


ORDER = {
    "user": "ada",
    "items": [{"sku": "A-%d" % i, "price": 3.5 + i, "qty": 1 + i % 3} for i in range(5)],
}


def checkout(order):
    """About what a small JSON endpoint does: read the order, total it, answer."""
    total = 0.0
    for item in order["items"]:
        total += item["price"] * item["qty"]
    user = order["user"]
    return {
        "user": user.title(),
        "total": round(total, 2),
        "count": len(order["items"]),
        "text": "%s owes %.2f" % (user, total),
    }


def hot_checkout():
    count = 0
    monotonic = time.monotonic
    next_report = monotonic() + 0.1
    while True:
        for _ in range(256):
            checkout(ORDER)
        count += 256
        now = monotonic()
        if now >= next_report:
            print(count, now, flush=True)
            next_report = now + 0.1


def hot():
    if sys.argv[2:] == ["checkout"]:
        return hot_checkout()
    count = 0
    monotonic = time.monotonic
    next_report = monotonic() + 0.1
    while True:
        for _ in range(256):
            count = handle(count)
        now = monotonic()
        if now >= next_report:
            print(count, now, flush=True)
            next_report = now + 0.1


def paced():
    n = 0
    while True:
        n = handle(n)
        time.sleep(0.001)


print("ready", flush=True)
{"hot": hot, "paced": paced}[sys.argv[1]]()
