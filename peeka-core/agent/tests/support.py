"""Test helpers: a raw protocol client, private directories, loading the agent like the bootstrap.

The client here implements the framing of docs/protocol.md on its own (it
does not reuse the agent's wire module), so the tests check the agent
against the specification rather than against itself.
"""

import importlib.util
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time

AGENT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_DIR = os.path.join(AGENT_DIR, "peeka_agent")
TESTS_DIR = os.path.join(AGENT_DIR, "tests")

_tokens = iter(range(1, 1 << 30))


def new_token():
    """A token unique in this process."""
    return "t%d%d" % (os.getpid(), next(_tokens))


def make_private_dir():
    """A fresh directory of mode 0700 (what the client creates before attaching)."""
    directory = tempfile.mkdtemp(prefix="peeka-test-")
    os.chmod(directory, 0o700)
    return directory


def copy_agent(directory):
    """Copies the agent package into ``directory/peeka_agent``; returns the entry file."""
    target = os.path.join(directory, "peeka_agent")
    shutil.copytree(PACKAGE_DIR, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return os.path.join(target, "__init__.py")


def load_agent(directory, token):
    """Loads a copy of the agent as the bootstrap does: package ``_peeka_agent_<token>``."""
    entry = copy_agent(directory)
    name = "_peeka_agent_" + token
    spec = importlib.util.spec_from_file_location(
        name, entry, submodule_search_locations=[os.path.dirname(entry)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def peeka_threads():
    """Names of live threads whose name starts with ``peeka-``."""
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("peeka-"))


def wait_until(predicate, timeout=2.0, interval=0.01):
    """Polls ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class ConnectionClosed(Exception):
    """The agent closed the connection."""


class RawClient(object):
    """A minimal Peeka protocol client over a Unix socket."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except BaseException:
            self.sock.close()
            raise
        self._start()

    @classmethod
    def over(cls, sock, timeout=5.0):
        """A client over an already connected socket (one end of a socketpair)."""
        client = cls.__new__(cls)
        client.sock = sock
        client.sock.settimeout(timeout)
        client._start()
        return client

    def _start(self):
        self._buffer = b""
        self._next_id = 1
        #: Observations of an ``observations`` batch not returned by recv() yet.
        self._expanded = []
        #: ``observations`` batches received, and the observations they held.
        self.batches = 0
        self.batched = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, message):
        payload = json.dumps(message).encode("utf-8")
        self.sock.sendall(len(payload).to_bytes(4, "big") + payload)

    def _read_exact(self, size):
        while len(self._buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed("closed with %d bytes pending" % len(self._buffer))
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def recv_frame(self):
        """The next message as sent (an ``observations`` batch stays one message)."""
        size = int.from_bytes(self._read_exact(4), "big")
        assert 0 < size <= 8 * 1024 * 1024, size
        return json.loads(self._read_exact(size).decode("utf-8"))

    def recv(self):
        """The next message (a dict); ConnectionClosed at end of stream.

        An ``observations`` batch is returned as the ``observation``
        messages it stands for, one per call (the equivalence of protocol
        1.1); :attr:`batches` and :attr:`batched` count them.
        """
        if self._expanded:
            return self._expanded.pop(0)
        message = self.recv_frame()
        if message["type"] != "observations":
            return message
        data, stream, seq = message["data"], message["stream"], message["seq"]
        assert type(data) is list and len(data) > 1, message
        self.batches += 1
        self.batched += len(data)
        self._expanded = [
            {"type": "observation", "stream": stream, "seq": seq + offset, "data": value}
            for offset, value in enumerate(data)
        ]
        return self._expanded.pop(0)

    def at_eof(self, timeout=2.0):
        """Whether the agent closes the connection (without sending more) within ``timeout``."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except socket.timeout:
            return False
        except OSError:
            return True
        return data == b""

    def handshake(self, major=1, minor=1):
        self.send(
            {"type": "hello", "protocol": {"major": major, "minor": minor}, "client": "test/1"}
        )
        return self.recv()

    def request(self, command, params=None, request_id=None):
        """Sends a request; returns its id."""
        if request_id is None:
            request_id = self._next_id
            self._next_id += 1
        message = {"type": "request", "id": request_id, "command": command}
        if params is not None:
            message["params"] = params
        self.send(message)
        return request_id

    def call(self, command, params=None):
        """Sends a request and returns its response (no stream traffic expected in between)."""
        request_id = self.request(command, params)
        response = self.recv()
        assert response["type"] == "response" and response["id"] == request_id, response
        return response

    def cancel(self, stream):
        self.send({"type": "cancel", "stream": stream})


def remove_modules_of(name):
    """Removes a loaded agent copy (``name`` and its submodules) from sys.modules."""
    for key in list(sys.modules):
        if key == name or key.startswith(name + "."):
            sys.modules.pop(key, None)
