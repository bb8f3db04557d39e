# Test target: a process where no thread runs Python (issue 14, part 1).
# The main thread waits in threading.Event().wait(), two workers in
# queue.Queue().get(), one thread in socket.accept() without a timeout, and a
# control thread in os.read() on the FIFO `control` next to this script. All
# of them released the GIL before blocking and stay blocked until told.
#
# `python all_idle.py select SECONDS` adds two threads that time select()
# calls with a timeout of SECONDS on a pipe nobody writes to, in a loop: one
# through select.select() (Python retries an interrupted call itself, PEP
# 475, so it would show a call cut short as a shorter timeout or an
# InterruptedError), one through libc's select() called by ctypes with the
# GIL released (it would show EINTR itself).
#
# Before `ready` it writes threads.json next to this script: the native
# thread id of each thread by role (main, worker-1, worker-2, acceptor,
# control, and select, cselect when asked) and the listening port.
#
# Everything the threads do is appended to events.txt, one line each:
#   main woke
#   worker-N got ITEM
#   acceptor accepted
#   control unknown COMMAND
#   select elapsed=SECONDS timeout|ready|EINTR|error=ERRNO
#   cselect elapsed=SECONDS rc=RC errno=ERRNO
# Commands on the FIFO, one a line: `put ITEM` (a worker gets ITEM), `set`
# (the main thread wakes up, reports, and waits on a new event).
import json
import os
import queue
import select
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SELECT_SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[1] == "select" else None

log_lock = threading.Lock()


def log(line):
    with log_lock:
        with open(os.path.join(HERE, "events.txt"), "a") as handle:
            handle.write(line + "\n")


roles = {"main": threading.get_native_id()}
ready_lock = threading.Lock()


def announce(role):
    with ready_lock:
        roles[role] = threading.get_native_id()


jobs = queue.Queue()


def working(role):
    announce(role)
    while True:
        item = jobs.get()
        log(role + " got " + item)


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 0))
server.listen(8)


def accepting():
    announce("acceptor")
    while True:
        connection, _ = server.accept()
        log("acceptor accepted")
        connection.close()


current = [threading.Event()]
control_path = os.path.join(HERE, "control")
os.mkfifo(control_path, 0o600)
# Read and write: opening does not wait for a writer, and reading never
# sees the end of the file when a writer closes it.
control_fd = os.open(control_path, os.O_RDWR)


def controlling():
    announce("control")
    pending = b""
    while True:
        pending += os.read(control_fd, 4096)
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            command = line.decode().strip()
            if command.startswith("put "):
                jobs.put(command[4:])
            elif command == "set":
                current[0].set()
            else:
                log("control unknown " + command)


def selecting():
    announce("select")
    r, _w = os.pipe()
    while True:
        began = time.monotonic()
        try:
            readable, _, _ = select.select([r], [], [], SELECT_SECONDS)
            outcome = "ready" if readable else "timeout"
        except InterruptedError:
            outcome = "EINTR"
        except OSError as error:
            outcome = "error=%d" % error.errno
        log("select elapsed=%.6f %s" % (time.monotonic() - began, outcome))


def cselecting():
    import ctypes

    class Timeval(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]

    libc = ctypes.CDLL(None, use_errno=True)
    libc.select.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    libc.select.restype = ctypes.c_int
    announce("cselect")
    r, _w = os.pipe()
    while True:
        fds = (ctypes.c_ulong * 16)()
        fds[r // 64] |= 1 << (r % 64)
        whole = int(SELECT_SECONDS)
        timeout = Timeval(whole, int(round((SELECT_SECONDS - whole) * 1e6)))
        ctypes.set_errno(0)
        began = time.monotonic()
        rc = libc.select(r + 1, ctypes.byref(fds), None, None, ctypes.byref(timeout))
        elapsed = time.monotonic() - began
        log("cselect elapsed=%.6f rc=%d errno=%d" % (elapsed, rc, ctypes.get_errno()))


threads = [
    threading.Thread(target=working, args=("worker-1",), name="worker-1", daemon=True),
    threading.Thread(target=working, args=("worker-2",), name="worker-2", daemon=True),
    threading.Thread(target=accepting, name="acceptor", daemon=True),
    threading.Thread(target=controlling, name="control", daemon=True),
]
if SELECT_SECONDS is not None:
    threads.append(threading.Thread(target=selecting, name="select", daemon=True))
    threads.append(threading.Thread(target=cselecting, name="cselect", daemon=True))
for thread in threads:
    thread.start()
while len(roles) < len(threads) + 1:
    time.sleep(0.001)
with open(os.path.join(HERE, "threads.json.tmp"), "w") as handle:
    json.dump({"threads": roles, "port": server.getsockname()[1]}, handle)
os.replace(os.path.join(HERE, "threads.json.tmp"), os.path.join(HERE, "threads.json"))
print("ready", flush=True)
while True:
    event = current[0]
    event.wait()
    log("main woke")
    current[0] = threading.Event()
