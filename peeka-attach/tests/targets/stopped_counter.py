# Test target for stopped processes: a worker thread started at start-up
# sleeps in a loop; the main thread counts in a busy loop and publishes its
# count (atomically, by rename) in `count.txt` next to this script every
# 1000 iterations. A process stopped by SIGSTOP must leave that file, its
# threads and its CPU time exactly as they were.
import os
import threading
import time

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "count.txt")


def idle():
    while True:
        time.sleep(0.01)


threading.Thread(target=idle, name="worker", daemon=True).start()
print("ready", flush=True)
count = 0
while True:
    count += 1
    if count % 1000 == 0:
        with open(path + ".tmp", "w") as f:
            f.write(str(count))
        os.replace(path + ".tmp", path)
