# Test target: the main thread waits in signal.pause(); each SIGUSR1 wakes
# it for one turn of the loop (and so lets it run pending calls).
import signal

signal.signal(signal.SIGUSR1, lambda signum, frame: None)
print("ready", flush=True)
while True:
    signal.pause()
