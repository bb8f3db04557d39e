# Bench target for attach_side_by_side: a small Flask app served by waitress
# (4 threads), idle. Both come from the directory
# scripts/provision-servers.sh filled for this interpreter, which the bench
# puts on PYTHONPATH. Idle, waitress's main thread waits in select() with a
# 1 s timeout and its 4 workers on a threading.Condition.
#
# `ready` is printed first (before the slow imports); port.txt is written
# next to this file, atomically, once the server accepts connections.
import os
import sys

print("ready", flush=True)

HERE = os.path.dirname(os.path.abspath(__file__))

from flask import Flask  # noqa: E402
import waitress  # noqa: E402

app = Flask(__name__)


@app.route("/hello")
def hello():
    return "hello from Python %s" % sys.version.split()[0]


server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
with open(os.path.join(HERE, "port.txt.tmp"), "w") as f:
    f.write(str(server.effective_port))
os.replace(os.path.join(HERE, "port.txt.tmp"), os.path.join(HERE, "port.txt"))
server.run()
