# Test target: the main thread is blocked in Event().wait() while a worker
# thread runs Python.
import threading
import time


def work():
    total = 0
    while True:
        for i in range(2000):
            total = (total + i * i) % 1000003
        time.sleep(0.001)


threading.Thread(target=work, name="worker", daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
