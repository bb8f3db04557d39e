# Test target: 20 threads running Python, half busy, half sleeping.
import threading
import time


def busy():
    total = 0
    while True:
        for i in range(1000):
            total = (total + i) % 1000003
        time.sleep(0)


def sleepy():
    while True:
        time.sleep(0.01)


for n in range(19):
    threading.Thread(target=busy if n % 2 else sleepy, name="t%d" % n, daemon=True).start()
print("ready", flush=True)
while True:
    time.sleep(0.05)
