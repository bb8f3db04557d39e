# Test target for tests/cli_idle_servers.rs: every thread waits with a 1 s
# timeout, in a loop, and records how each wait ended. Nothing else runs, so
# the process is idle the way a quiet server is:
#   main       select.select([r], [], [], 1.0) on a pipe nobody writes to
#              (Python retries EINTR itself (PEP 475), so only the elapsed
#              time can show an interrupted wait here)
#   poll       libc poll(NULL, 0, 1000) through ctypes (the GIL released)
#   nanosleep  libc nanosleep({1, 0}) through ctypes
#   cselect    libc select(0, NULL, NULL, NULL, {1, 0}) through ctypes
#   condition  threading.Condition().wait(1.0) (a lock acquire with timeout)
# ctypes calls return what libc returned: an EINTR reaches the program
# there, as -1 with errno EINTR.
#
# Each finished wait appends one JSON line to waits.jsonl next to this file:
#   {"kind": ..., "rc": ..., "errno": ..., "start": ..., "end": ...}
# start and end are time.monotonic() (CLOCK_MONOTONIC, as the test reads
# it). A wait that ended as it should: rc 0 (select: no fd ready; condition:
# 0 for "timed out"), errno 0, end - start >= 1 s.
import ctypes
import json
import os
import select
import threading
import time

print("ready", flush=True)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.open(os.path.join(HERE, "waits.jsonl"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

libc = ctypes.CDLL(None, use_errno=True)


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


libc.poll.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]
libc.poll.restype = ctypes.c_int
libc.nanosleep.argtypes = [ctypes.POINTER(Timespec), ctypes.POINTER(Timespec)]
libc.nanosleep.restype = ctypes.c_int
libc.select.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(Timeval)]
libc.select.restype = ctypes.c_int


def record(kind, rc, err, start, end):
    line = json.dumps({"kind": kind, "rc": rc, "errno": err, "start": start, "end": end})
    # One write per line (O_APPEND): lines of different threads never mix.
    os.write(OUT, (line + "\n").encode())


def libc_call(kind, call):
    def loop():
        while True:
            ctypes.set_errno(0)
            start = time.monotonic()
            rc = call()
            end = time.monotonic()
            record(kind, rc, ctypes.get_errno() if rc < 0 else 0, start, end)

    threading.Thread(target=loop, name=kind, daemon=True).start()


def nanosleep():
    remaining = Timespec(0, 0)
    return libc.nanosleep(ctypes.byref(Timespec(1, 0)), ctypes.byref(remaining))


def cselect():
    # Linux writes the time left into the timeval: a fresh one each call.
    return libc.select(0, None, None, None, ctypes.byref(Timeval(1, 0)))


def condition():
    cond = threading.Condition()
    with cond:
        while True:
            start = time.monotonic()
            notified = cond.wait(1.0)
            end = time.monotonic()
            record("condition", int(notified), 0, start, end)


libc_call("poll", lambda: libc.poll(None, 0, 1000))
libc_call("nanosleep", nanosleep)
libc_call("cselect", cselect)
threading.Thread(target=condition, name="condition", daemon=True).start()

r, _w = os.pipe()
while True:
    start = time.monotonic()
    try:
        ready, _, _ = select.select([r], [], [], 1.0)
        rc, err = len(ready), 0
    except OSError as e:
        rc, err = -1, e.errno
    end = time.monotonic()
    record("select", rc, err, start, end)
