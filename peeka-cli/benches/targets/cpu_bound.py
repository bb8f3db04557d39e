# Bench target: a CPU-bound loop that prints how many iterations it has done,
# with a timestamp, every 100 ms, so the bench can compare its throughput
# without and with an idle agent attached.
import time

print("ready", flush=True)
count = 0
next_report = time.monotonic() + 0.1
while True:
    for _ in range(10000):
        count += 1
    now = time.monotonic()
    if now >= next_report:
        print(count, now, flush=True)
        next_report = now + 0.1
