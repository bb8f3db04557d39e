# Bench target for attach_side_by_side, the stand-in for an idle waitress
# app when waitress and flask are not provisioned for an interpreter: the
# same shape with the standard library only. The main thread waits in
# select() on a listening socket with a 1 s timeout, in a loop; 4 worker
# threads wait on a threading.Condition that is never notified.
#
# `ready` is printed first; port.txt is written next to this file,
# atomically, once the socket listens.
import os
import select
import socket
import threading

print("ready", flush=True)

HERE = os.path.dirname(os.path.abspath(__file__))
condition = threading.Condition()
jobs = []


def worker():
    with condition:
        while not jobs:
            condition.wait()


for i in range(4):
    threading.Thread(target=worker, name="worker-%d" % i, daemon=True).start()

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(16)
with open(os.path.join(HERE, "port.txt.tmp"), "w") as f:
    f.write(str(listener.getsockname()[1]))
os.replace(os.path.join(HERE, "port.txt.tmp"), os.path.join(HERE, "port.txt"))
while True:
    readable, _, _ = select.select([listener], [], [], 1.0)
    for sock in readable:
        conn, _ = sock.accept()
        conn.close()
