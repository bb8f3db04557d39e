# Test target: the main thread is parked in select() on a pipe nobody
# writes to, while a worker thread runs Python. select() is retried on
# EINTR (PEP 475), so only a real error ends the loop: a debugger that
# fails to restore the main thread's registers after an inferior call
# makes the interrupted system call return the kernel's internal restart
# code (OSError Errno 514), which ends the program with a traceback on
# stderr.
import os
import select
import threading
import time


def work():
    total = 0
    while True:
        for i in range(2000):
            total = (total + i * i) % 1000003
        time.sleep(0.001)


threading.Thread(target=work, name="worker", daemon=True).start()
r, w = os.pipe()
print("ready", flush=True)
while True:
    select.select([r], [], [])
