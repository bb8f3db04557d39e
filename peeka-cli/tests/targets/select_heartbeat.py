# Test target for interrupted attaches: the main thread is parked in
# select() on a pipe nobody writes to, while a worker thread runs Python
# and publishes its heartbeat (a count, atomically by rename) in
# heartbeat.txt next to this script every few milliseconds. An attach that
# goes wrong shows: the process dies (SIGTRAP), select() raises into the
# main thread (stderr), or the heartbeat stops.
import os
import select
import threading
import time

HEART = os.path.join(os.path.dirname(os.path.abspath(__file__)), "heartbeat.txt")


def work():
    beats = 0
    while True:
        total = 0
        for i in range(2000):
            total = (total + i * i) % 1000003
        beats += 1
        with open(HEART + ".tmp", "w") as f:
            f.write(str(beats))
        os.replace(HEART + ".tmp", HEART)
        time.sleep(0.002)


threading.Thread(target=work, name="worker", daemon=True).start()
never_written, _keep = os.pipe()
print("ready", flush=True)
while True:
    select.select([never_written], [], [])
