# Test target: the main thread sleeps in a time.sleep loop.
import time

print("ready", flush=True)
while True:
    time.sleep(0.05)
