# Test target for signal delivery during a ptrace attach: the main thread is
# blocked in Event().wait() while a worker runs Python. Every delivery of the
# signal numbered argv[1] (a real-time signal, which the kernel queues once
# per sending instead of merging) makes CPython's C-level signal handler
# append one byte to signals.bin next to this script (through
# signal.set_wakeup_fd), so the file's size counts deliveries exactly, even
# when the Python-level handler runs once for several signals.
import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def work():
    total = 0
    while True:
        for i in range(2000):
            total = (total + i * i) % 1000003
        time.sleep(0.001)


wakeup = os.open(
    os.path.join(HERE, "signals.bin"),
    os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK,
    0o644,
)
signal.set_wakeup_fd(wakeup)
signal.signal(int(sys.argv[1]), lambda signum, frame: None)
threading.Thread(target=work, name="worker", daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
