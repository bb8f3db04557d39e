# Test target for the ptrace method's breakpoint route: the main thread is
# blocked in Event().wait() and a worker runs pure Python (so it never calls
# PyEval_SaveThread) for one second after start-up, then replaces
# the program with an interpreter that just sleeps. The new program must
# start clean.
import os
import sys
import threading
import time


def work(until):
    total = 0
    while time.monotonic() < until:
        total = (total + 1) % 1000003
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])


threading.Thread(target=work, args=(time.monotonic() + 1.0,), name="execer", daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
