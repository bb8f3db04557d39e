# Test target: no thread runs Python. The main thread waits in
# Event().wait() and a worker in a long time.sleep(); both released the GIL
# (through PyEval_SaveThread) before blocking and never come back. SIGUSR1
# to the main thread wakes it for one turn: it runs its pending calls and
# the (empty) handler, then waits again. Each SIGINT appends a line to
# sigint.txt next to this script (instead of raising KeyboardInterrupt).
import os
import signal
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def count_sigint(signum, frame):
    with open(os.path.join(HERE, "sigint.txt"), "a") as handle:
        handle.write("SIGINT\n")


signal.signal(signal.SIGUSR1, lambda signum, frame: None)
signal.signal(signal.SIGINT, count_sigint)
threading.Thread(target=time.sleep, args=(100000,), name="sleeper", daemon=True).start()
print("ready", flush=True)
while True:
    threading.Event().wait()
