# Bench target for trace: calls work() (five Python children) in a loop and
# prints how many calls it has made, with a timestamp, every 100 ms.
import time


def child(x):
    return x + 1


def work():
    total = 0
    for i in range(5):
        total += child(i)
    return total


print("ready", flush=True)
count = 0
next_report = time.monotonic() + 0.1
while True:
    for _ in range(200):
        work()
    count += 200
    now = time.monotonic()
    if now >= next_report:
        print(count, now, flush=True)
        next_report = now + 0.1
