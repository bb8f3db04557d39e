# Test target for an attach interrupted by execve: the main thread blocks
# for good on a C library mutex it already holds (a plain futex wait, which
# the ptrace method never hijacks; it runs no pending call there either)
# while a worker runs pure Python for two seconds, then replaces the program
# with an interpreter that just sleeps. No thread can run the bootstrap
# before the program is replaced; the new program must start clean. (The
# worker waits on another C mutex until the main thread is nearly parked,
# so that the two do not share the GIL while the main thread gets there.)
import ctypes
import os
import sys
import threading
import time

libc = ctypes.CDLL(None)
start = ctypes.create_string_buffer(64)
park = ctypes.create_string_buffer(64)


def work():
    libc.pthread_mutex_lock(start)
    until = time.monotonic() + 2.0
    total = 0
    while time.monotonic() < until:
        total = (total + 1) % 1000003
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])


libc.pthread_mutex_lock(start)
libc.pthread_mutex_lock(park)
threading.Thread(target=work, name="execer", daemon=True).start()
print("ready", flush=True)
libc.pthread_mutex_unlock(start)
libc.pthread_mutex_lock(park)
