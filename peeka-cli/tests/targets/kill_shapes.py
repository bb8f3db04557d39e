# Test target for attaches whose client is killed (tests/cli_killed_attach.rs).
# `python kill_shapes.py SHAPE`, SHAPE one of:
# - select:  the main thread is parked in select() on a pipe nobody writes
#            to, a worker thread runs Python (as select_heartbeat.py);
# - busy:    the main thread runs Python without pause, no other thread;
# - parked:  no thread runs Python: the main thread is in signal.pause(),
#            one thread in select(), one in a blocking os.read() and one in
#            a queue get with a timeout (a futex wait with a deadline);
# - threads: 20 threads: the main thread sleeps in a loop, 2 spin, 7 sleep
#            in a loop, 3 wait on an event with a timeout, 7 are blocked in
#            a queue get until asked.
#
# What the harness reads: counters (64-bit, little-endian) in a bytearray
# of this process, which it reads through /proc/PID/mem, so that telling
# that the target works costs it no file I/O (a heartbeat file replaced
# every few milliseconds stalled for seconds in rename() on a loaded ext4).
# Before `ready`, board.json next to this script gives the bytearray's
# id() and the slot of each counter:
# - "heartbeat": goes up every few milliseconds while every looping thread
#   makes progress (the smallest of their counts in `threads`); stays 0 in
#   `parked`, where nothing runs;
# - "pong.<name>": how many times thread <name> answered a SIGUSR1: the
#   signal's handler (main thread) answers and wakes every parked thread,
#   which then answers too. So after a SIGUSR1 every pong counter goes up.
import json
import os
import queue
import select
import signal
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPE = sys.argv[1]

# Never resized: written in place with struct.pack_into.
board = bytearray(8 * 64)
slots = {"heartbeat": 0}


def slot(name):
    slots.setdefault(name, len(slots))
    return slots[name]


def publish(name, value):
    struct.pack_into("<Q", board, 8 * slots[name], value)


def publish_board():
    path = os.path.join(HERE, "board.json")
    with open(path + ".tmp", "w") as f:
        json.dump({"id": id(board), "slots": slots}, f)
    os.replace(path + ".tmp", path)


# Things the SIGUSR1 handler pokes so that parked threads answer.
wake_pipes = []
wake_queues = []
answers = {}


def pong(name):
    answers[name] = answers.get(name, 0) + 1
    publish("pong." + name, answers[name])


def on_usr1(*_args):
    pong("main")
    for w in wake_pipes:
        os.write(w, b"x")
    for q in wake_queues:
        q.put(1)


def selecting(name, r):
    while True:
        ready, _, _ = select.select([r], [], [])
        if ready:
            os.read(r, 1)
            pong(name)


def reading(name, r):
    while True:
        os.read(r, 1)
        pong(name)


def getting(name, q, timeout):
    while True:
        try:
            q.get(timeout=timeout)
        except queue.Empty:
            continue
        pong(name)


def parked_thread(kind, name):
    if kind == "queue":
        q = queue.Queue()
        wake_queues.append(q)
        target, args = getting, (name, q, 3600.0)
    else:
        r, w = os.pipe()
        wake_pipes.append(w)
        target, args = (selecting if kind == "select" else reading), (name, r)
    slot("pong." + name)
    threading.Thread(target=target, args=args, name=name, daemon=True).start()


def spin():
    total = 0
    for i in range(2000):
        total = (total + i * i) % 1000003
    return total


signal.signal(signal.SIGUSR1, on_usr1)
slot("pong.main")

if SHAPE == "select":

    def work():
        beats = 0
        while True:
            spin()
            beats += 1
            publish("heartbeat", beats)
            time.sleep(0.002)

    threading.Thread(target=work, name="worker", daemon=True).start()
    never_written, _keep = os.pipe()
    publish_board()
    print("ready", flush=True)
    while True:
        select.select([never_written], [], [])

elif SHAPE == "busy":
    publish_board()
    print("ready", flush=True)
    beats = 0
    last = 0.0
    while True:
        spin()
        now = time.monotonic()
        if now - last > 0.002:
            beats += 1
            publish("heartbeat", beats)
            last = now

elif SHAPE == "parked":
    parked_thread("select", "selecting")
    parked_thread("read", "reading")
    parked_thread("queue", "getting")
    time.sleep(0.05)  # every thread reaches its system call
    publish_board()
    print("ready", flush=True)
    while True:
        signal.pause()

elif SHAPE == "threads":
    ticks = {}

    def ticking(name, step):
        ticks[name] = 0
        while True:
            step()
            ticks[name] += 1

    looping = []
    for i in range(2):
        looping.append(("spinning-%d" % i, spin))
    for i in range(7):
        looping.append(("sleeping-%d" % i, lambda: time.sleep(0.02)))
    for i in range(3):
        event = threading.Event()
        looping.append(("waiting-%d" % i, lambda e=event: e.wait(0.05)))
    for name, step in looping:
        threading.Thread(target=ticking, args=(name, step), name=name, daemon=True).start()
    for i in range(7):
        parked_thread("queue", "getting-%d" % i)
    while len(ticks) < len(looping):
        time.sleep(0.001)
    assert threading.active_count() == 20, threading.active_count()
    publish_board()
    print("ready", flush=True)
    while True:
        time.sleep(0.005)
        publish("heartbeat", min(ticks.values()))

else:
    raise SystemExit("unknown shape " + SHAPE)
