# Test target for the ptrace method's breakpoint route: the main thread is
# blocked in Event().wait() and a worker runs pure Python (so it never calls
# PyEval_SaveThread) for 0.4 s, then replaces the program with an
# interpreter that just sleeps. The new program must start clean.
import os
import sys
import threading
import time


def work():
    total = 0
    until = time.monotonic() + 0.4
    while time.monotonic() < until:
        total = (total + 1) % 1000003
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])


threading.Thread(target=work, name="execer", daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
