# Test target for forks during an attach: the main thread is blocked in
# Event().wait() and a worker runs pure Python and forks a child every
# 5 ms. Each child calls time.sleep and exits: a child that inherited
# anything the attach left in the parent's memory (code in padding, a
# breakpoint in older designs) and ran into it would die.
#
# SIGUSR1 makes the main thread reap the children and write "<ok> <bad>" to
# children.txt next to this script; a child that did not exit with status 0
# is reported on stderr.
import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def collect(signum, frame):
    ok = bad = 0
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            ok += 1
        else:
            bad += 1
            sys.stderr.write("child %d ended with status %#x\n" % (pid, status))
    with open(os.path.join(HERE, "children.txt"), "w") as handle:
        handle.write("%d %d\n" % (ok, bad))


def fork_loop():
    total = 0
    next_fork = time.monotonic()
    while True:
        total = (total + 1) % 1000003
        if time.monotonic() >= next_fork:
            next_fork += 0.005
            if os.fork() == 0:
                time.sleep(0.001)
                os._exit(0)


signal.signal(signal.SIGUSR1, collect)
threading.Thread(target=fork_loop, name="forker", daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
