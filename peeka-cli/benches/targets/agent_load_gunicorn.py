# Bench target for agent_load: a real gunicorn master (this process) with 2
# sync workers, each recycled after argv[1] requests (--max-requests, no
# jitter), serving a tiny WSGI app that answers its worker's pid. gunicorn
# comes from the directory scripts/provision-servers.sh filled for this
# interpreter, which the bench puts on PYTHONPATH.
#
# `ready` is printed first (before the imports); port.txt is written next to
# this file, atomically, once the master listens (127.0.0.1, a port the
# kernel chose).
import os
import sys

print("ready", flush=True)

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_REQUESTS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def app(environ, start_response):
    body = str(os.getpid()).encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


def when_ready(arbiter):
    path = os.path.join(HERE, "port.txt")
    with open(path + ".tmp", "w") as f:
        f.write(str(arbiter.LISTENERS[0].sock.getsockname()[1]))
    os.replace(path + ".tmp", path)


from gunicorn.app.base import BaseApplication  # noqa: E402


class Master(BaseApplication):
    def load_config(self):
        settings = {
            "bind": "127.0.0.1:0",
            "workers": 2,
            "worker_class": "sync",
            "max_requests": MAX_REQUESTS,
            "max_requests_jitter": 0,
            "graceful_timeout": 3,
            "when_ready": when_ready,
        }
        # gunicorn 27 serves a control socket in a shared place by default.
        if "control_socket_disable" in self.cfg.settings:
            settings["control_socket_disable"] = True
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self):
        return app


Master().run()
