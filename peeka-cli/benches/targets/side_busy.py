# Bench target for attach_side_by_side: N threads (argv[1], default 1), each
# in a CPU-bound loop calling a small function; the main thread is one of
# them. `ready` is printed once every thread runs.
import sys
import threading


def step(n):
    return n + 1


def spin():
    n = 0
    while True:
        n = step(n)


count = int(sys.argv[1]) if len(sys.argv) > 1 else 1
for i in range(count - 1):
    threading.Thread(target=spin, name="spin-%d" % (i + 1), daemon=True).start()
print("ready", flush=True)
spin()
