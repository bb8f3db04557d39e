# Test target for tests/cli_idle_servers.rs (and part 5 of
# benches/agent_load.rs): a small Flask app served by a real server from
# PyPI, left idle. The server packages come from the directory
# scripts/provision-servers.sh filled for this interpreter, which the test
# (or the bench) puts on PYTHONPATH.
#
# `python idle_server.py waitress`: waitress with 4 threads. The main thread
#     waits in select() with a 1 s timeout, the 4 workers on a Condition.
# `python idle_server.py gunicorn`: a gunicorn master with one sync worker
#     (-w 1 -k sync). The worker waits in select() on the listening socket
#     (15 s timeout), the master in select() with a 1 s timeout.
# `python idle_server.py gunicorn-recycling [MAX_REQUESTS]`: a gunicorn
#     master with two sync workers, each replaced by a new one after
#     MAX_REQUESTS requests (default 4; --max-requests, no jitter): the
#     master forks all the time.
#
# `ready` is printed as soon as the interpreter runs this file (before the
# slow imports). Then, next to this file, written atomically:
#     port.txt    the port the server listens on (127.0.0.1, chosen by the
#                 kernel), once it accepts connections;
#     worker.txt  (gunicorn) the worker's pid, once the worker is initialised.
# GET /hello?name=NAME answers "hello NAME from Python X.Y.Z pid PID".
import os
import platform
import sys

print("ready", flush=True)

HERE = os.path.dirname(os.path.abspath(__file__))


def publish(name, value):
    path = os.path.join(HERE, name)
    with open(path + ".tmp", "w") as f:
        f.write(str(value))
    os.replace(path + ".tmp", path)


from flask import Flask, request  # noqa: E402

app = Flask(__name__)


@app.route("/hello")
def hello():
    name = request.args.get("name", "nobody")
    return "hello %s from Python %s pid %d" % (name, platform.python_version(), os.getpid())


def serve_waitress():
    import waitress

    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    publish("port.txt", server.effective_port)
    server.run()


def serve_gunicorn(workers=1, max_requests=0):
    from gunicorn.app.base import BaseApplication

    def when_ready(arbiter):
        publish("port.txt", arbiter.LISTENERS[0].sock.getsockname()[1])

    def post_worker_init(worker):
        publish("worker.txt", os.getpid())

    class Application(BaseApplication):
        def load_config(self):
            settings = {
                "bind": "127.0.0.1:0",
                "workers": workers,
                "max_requests": max_requests,
                "max_requests_jitter": 0,
                "worker_class": "sync",
                # A SIGTERM at the end of the test stops the worker quickly.
                "graceful_timeout": 3,
                "when_ready": when_ready,
                "post_worker_init": post_worker_init,
            }
            # Newer gunicorn (27) serves a control socket, by default in a shared
            # place ($HOME/.gunicorn/gunicorn.ctl): not wanted here.
            if "control_socket_disable" in self.cfg.settings:
                settings["control_socket_disable"] = True
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    Application().run()


{
    "waitress": serve_waitress,
    "gunicorn": serve_gunicorn,
    "gunicorn-recycling": lambda: serve_gunicorn(
        workers=2, max_requests=int(sys.argv[2]) if len(sys.argv) > 2 else 4
    ),
}[sys.argv[1]]()
