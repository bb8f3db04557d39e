# Test target: the main thread waits in pause() *holding the GIL* (ctypes'
# PyDLL does not release it), so no thread can run Python; each SIGUSR1
# wakes it for one turn of the loop (and so lets it run pending calls).
import ctypes
import signal

signal.signal(signal.SIGUSR1, lambda signum, frame: None)
libc = ctypes.PyDLL(None)
print("ready", flush=True)
while True:
    libc.pause()
