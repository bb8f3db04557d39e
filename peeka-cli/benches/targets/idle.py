# Bench target: a service that mostly waits (a request every 10 ms), as
# most attached services do.
import time


def handle(n):
    return n * 2


print("ready", flush=True)
n = 0
while True:
    handle(n)
    n += 1
    time.sleep(0.01)
