"""The Agent: the listening socket, its connections, and detach.

Life cycle
----------
``Agent(directory, token).start()`` checks the private directory (it must be
a real directory, mode 0700, owned by the target's effective uid), binds
``<directory>/agent.sock`` (mode 0600), and starts the listener thread
``peeka-agent`` (:mod:`.admission`), which waits in ``poll()``: an idle
agent has no timer, no polling and no periodic wake-up, so it costs a
CPU-bound target nothing but memory. Every accepted connection has its
peer credentials checked (:mod:`peeka_agent.peercred`) before a single byte
is read (refused peers are closed at once and counted), and says hello to
the listener itself, within a deadline and in a small frame: only then
does it get a thread (:meth:`Agent.admit`). At most ``max_connections``
clients are served; at the limit, the one idle the longest makes room for
a new one, so the operator always gets in unless every client is busy.
The large frames of all clients together are bounded
(:class:`~.wire.InputBudget`, :data:`INPUT_BUDGET`).

``Agent.detach()`` puts the process back as it was:

1. new requests are refused with ``shutting_down`` and the listener stops;
2. every stream of every client ends with reason ``detached`` (their
   ``on_close`` callbacks remove the probes);
3. ``before_close`` runs (the ``detach`` command queues its response there);
4. every connection flushes what it has queued (bounded wait) and closes;
   the writer threads flush (one is started for a connection that has
   none), except that the reader running ``detach`` writes its own reply;
5. the socket, every file in the private directory and the directory itself
   are removed (:func:`remove_private_directory` says how a directory not
   named ``peeka-...`` is treated), and the ``atexit`` hook is unregistered;
6. the agent's threads are joined (bounded), the agent's modules are
   removed from ``sys.modules``, and the bootstrap's finder that imported
   them from memory from ``sys.meta_path``;
7. the thread that detached, once it has answered, runs the garbage
   collector: the agent's objects are cycles it alone frees (bounded, see
   :func:`~peeka_agent.agent_threads.collect_agent_garbage`).

Standard-library modules the agent imported stay loaded: the application may
have started using them since, and removing them would be unsafe.

If the process exits while attached, an ``atexit`` hook removes the socket
and the private directory, so nothing is left in /tmp. A child forked from
the process forgets the agent the moment it is born (:mod:`.fork_guard`):
its probes and other instrumentation are turned off, its copies of the
agent's sockets closed, the switch interval given back, the ``atexit`` hook
unregistered and the agent's modules forgotten. Nothing the child does can
reach the parent's agent, socket or directory; the child can be attached
on its own.

Interfaces for commands
-----------------------
``agent.register_command(name, handler)``, ``agent.commands`` (the
registry), ``agent.connections()``, ``agent.streams()`` (all open streams of
all clients, for ``reset``), ``agent.spawn(name, target, *args)`` (an agent
thread; long waits should use ``agent.stopping.wait(seconds)``),
``agent.add_capability(name)``, ``agent.record_error(context, exc=None)``
(the bounded error log shown by ``info``).
"""

import atexit
import collections
import itertools
import os
import socket
import stat
import sys
import threading
import time

from . import fork_guard
from .admission import Admission
from .agent_threads import AgentThread, agent_thread_names
from .commands import DEFAULT_REGISTRY, CommandError
from .connection import Connection
from .gil_boost import GilBoost
from .version import AGENT_VERSION
from .wire import PROTOCOL_MAJOR, PROTOCOL_MINOR, ErrorCode, InputBudget, python_info
from .writer_budget import WriterBudget

#: Name of the socket inside the private directory.
SOCKET_NAME = "agent.sock"
#: Observations waiting per connection before drops start.
DEFAULT_QUEUE_LIMIT = 8192
#: Clients served at once; more are answered ``rejected`` (limit_exceeded).
DEFAULT_MAX_CONNECTIONS = 32
#: Bytes all clients' large frames may take at once (see wire.InputBudget).
INPUT_BUDGET = 32 * 1024 * 1024
#: Upper bound of the time detach waits for flushes and threads.
DETACH_TIMEOUT = 1.0

#: How long a new connection may take to send its hello before it is
#: closed (seconds).
HELLO_TIMEOUT = 5.0

#: Longest path bind() accepts for an AF_UNIX socket (sun_path minus the NUL).
MAX_SOCKET_PATH = 107

_RUNNING = "running"


class AgentStartError(Exception):
    """The agent cannot start; the message says what to fix."""


def check_private_directory(directory):
    """Raises AgentStartError unless ``directory`` is safe to hold the agent's socket."""
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        raise AgentStartError(
            "the private directory %s does not exist; the client must create it (mode 0700, "
            "owned by uid %d) before loading the agent" % (directory, os.geteuid())
        ) from None
    if stat.S_ISLNK(info.st_mode):
        raise AgentStartError(
            "%s is a symbolic link; the agent only uses a real private directory" % directory
        )
    if not stat.S_ISDIR(info.st_mode):
        raise AgentStartError("%s is not a directory" % directory)
    if info.st_uid != os.geteuid():
        raise AgentStartError(
            "the private directory %s is owned by uid %d, not by the target's uid %d; create "
            "it as (or chown it to) uid %d" % (directory, info.st_uid, os.geteuid(), os.geteuid())
        )
    if info.st_mode & 0o077:
        raise AgentStartError(
            "the private directory %s has mode %o; it must be 0700 (chmod 700 %s) so that no "
            "other user can reach the agent's socket"
            % (directory, stat.S_IMODE(info.st_mode), directory)
        )


def remove_tree(path):
    """Removes ``path`` and everything under it without following symbolic links.

    Missing entries are ignored; other errors are raised after trying the rest.
    """
    failure = None
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                remove_tree(entry.path)
            else:
                os.unlink(entry.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            failure = exc
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        failure = exc
    if failure is not None:
        raise failure


def remove_private_directory(directory):
    """Removes the private directory on detach; returns the names it had to leave.

    A directory named the way the client names it (``peeka-...``, such as
    ``/tmp/peeka-<pid>``) is dedicated to Peeka and removed with everything
    in it. Any other directory is treated with suspicion, since removing it
    whole could destroy someone's files: only what Peeka puts there is
    removed (the socket, the bootstrap's ``bootstrap-*.py``, ``status.*`` and
    ``claimed-*`` entries, and this agent package), then the directory if it
    is empty.
    """
    if os.path.basename(os.path.normpath(directory)).startswith("peeka"):
        remove_tree(directory)
        return []
    package = os.path.dirname(os.path.abspath(__file__))
    left = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        name = entry.name
        path = entry.path
        ours = (
            name == SOCKET_NAME
            or name.startswith(("bootstrap-", "status.", "claimed-"))
            or os.path.abspath(path) == package
            or (
                package == os.path.abspath(directory)
                and (name.endswith(".py") or name == "__pycache__")
            )
        )
        if not ours:
            left.append(name)
            continue
        if entry.is_dir(follow_symlinks=False):
            remove_tree(path)
        else:
            os.unlink(path)
    if not left:
        os.rmdir(directory)
    return left


class Agent(object):
    """The in-process agent (see the module documentation)."""

    def __init__(
        self,
        directory,
        token,
        package_name=None,
        queue_limit=DEFAULT_QUEUE_LIMIT,
        max_connections=DEFAULT_MAX_CONNECTIONS,
        registry=None,
        hello_timeout=HELLO_TIMEOUT,
    ):
        self.directory = os.path.abspath(directory)
        self.token = token
        self.socket_path = os.path.join(self.directory, SOCKET_NAME)
        #: The agent package's module name, removed from sys.modules on detach.
        self.package_name = package_name
        self.queue_limit = queue_limit
        self.max_connections = max_connections
        #: How long a new connection may take to say hello (seconds).
        self.hello_timeout = hello_timeout
        self.version = AGENT_VERSION
        self.pid = os.getpid()
        self.commands = (registry if registry is not None else DEFAULT_REGISTRY).copy()
        #: Set when detach begins; long-running helpers wait on it.
        self.stopping = threading.Event()
        #: Set when detach has finished.
        self.stopped = threading.Event()
        self.started_at = None
        self.refused_connections = 0
        self._lock = threading.Lock()
        self._state = "new"
        self._connections = {}
        self._numbers = itertools.count(1)
        self._listener = None
        self._listener_thread = None
        self._admission = None
        self._spawned = []
        self._errors = collections.deque(maxlen=50)
        self._capabilities = set()
        #: The CPU budget all connections' writers share (see writer_budget).
        self.writer_budget = WriterBudget()
        #: What all connections may buffer at once for large frames.
        self.input_budget = InputBudget(INPUT_BUDGET)
        #: Shortens the switch interval while connections are admitted.
        self.gil_boost = GilBoost()
        if hasattr(sys, "monitoring"):
            self._capabilities.add("sys.monitoring")

    # -- life cycle ----------------------------------------------------------

    def start(self):
        """Binds the socket and starts the listener; returns details()."""
        with self._lock:
            if self._state != "new":
                raise AgentStartError("this agent was already started")
            self._state = "starting"
        try:
            self._bind()
        except BaseException:
            with self._lock:
                self._state = "new"
            raise
        self._admission = Admission(self, self._listener)
        thread = AgentThread("peeka-agent", self._admission.run, on_error=self._listener_failed)
        # Lets a second copy of the agent module find this agent's details.
        thread.peeka_details = self.details()
        self._listener_thread = thread
        self.started_at = time.time()
        with self._lock:
            self._state = _RUNNING
        thread.start()
        atexit.register(self._at_exit)
        fork_guard.point_at(self._after_fork_in_child)
        return self.details()

    def _bind(self):
        check_private_directory(self.directory)
        path = self.socket_path
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise AgentStartError(
                "the socket path %s is %d bytes long, more than the %d a Unix socket allows; "
                "use a shorter private directory" % (path, len(os.fsencode(path)), MAX_SOCKET_PATH)
            )
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if not stat.S_ISSOCK(existing.st_mode):
                raise AgentStartError(
                    "%s exists and is not a socket; remove it or use a fresh private directory"
                    % path
                )
            os.unlink(path)  # a stale socket of a previous agent
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            # The 0700 directory keeps everyone else out while the mode is fixed.
            os.chmod(path, 0o600)
            listener.listen(64)
        except BaseException:
            listener.close()
            try:
                os.unlink(path)
            except OSError:
                pass
            raise
        self._listener = listener

    @property
    def running(self):
        """Whether the agent is serving (started and not detaching)."""
        return self._state == _RUNNING

    def details(self):
        """What ``start()`` reports to the bootstrap's status file."""
        return {
            "socket": self.socket_path,
            "agent_version": self.version,
            "pid": self.pid,
            "protocol": "%d.%d" % (PROTOCOL_MAJOR, PROTOCOL_MINOR),
            "thread": "peeka-agent",
        }

    # -- admission -----------------------------------------------------------

    def admit(self, sock, reader, credentials, boosted):
        """Serves a connection that said hello (called by the listener, see admission).

        ``reader`` holds what was read of it (the hello, maybe more);
        ``boosted``: it holds one of the GIL boosts. At the limit of
        ``max_connections``, the client idle the longest (no stream, no
        request in flight) is closed to make room; with none idle, the new
        one is answered ``rejected`` (limit_exceeded).
        """
        number = next(self._numbers)
        refuse_reason = None
        if not self._make_room():
            refuse_reason = (
                "this agent already serves %d clients, its limit, and every one of them is busy "
                "(a stream or a request in flight); end one of them (`peeka-cli reset`) and retry"
                % self.max_connections
            )
        try:
            connection = Connection(self, sock, number, credentials, reader, refuse_reason, boosted)
            with self._lock:
                self._connections[number] = connection
            connection.start()
        except BaseException as exc:
            with self._lock:
                self._connections.pop(number, None)
            self.record_error("could not serve connection %d" % number, exc)
            sock.close()
            if boosted:
                self.gil_boost.release()

    def _make_room(self):
        """Below the connection limit, closing the idlest client if need be; whether there is room."""
        with self._lock:
            connections = list(self._connections.values())
        if len(connections) < self.max_connections:
            return True
        idle = [c for c in connections if c.idle()]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.last_active)
        self.record_error(
            "connection %d (%s, idle %.1f s) was closed to make room for a new client: this "
            "agent serves %d at most"
            % (
                victim.number,
                victim.client or "no client name",
                time.monotonic() - victim.last_active,
                self.max_connections,
            )
        )
        victim.close(0.0)
        return True

    def _listener_failed(self, exc):
        self.record_error("the listener thread failed", exc)

    def _connection_closed(self, connection):
        with self._lock:
            if self._connections.get(connection.number) is connection:
                del self._connections[connection.number]

    # -- interfaces for commands ---------------------------------------------

    def register_command(self, name, handler):
        """Registers a command on this agent only."""
        self.commands.register(name, handler)

    def connections(self):
        """The open connections."""
        with self._lock:
            return list(self._connections.values())

    def streams(self):
        """Every open stream of every connection."""
        result = []
        for connection in self.connections():
            result.extend(connection.streams())
        return result

    def capabilities(self):
        """The capabilities announced in ``welcome``, sorted."""
        return sorted(self._capabilities)

    def add_capability(self, name):
        """Announces an optional feature to clients connecting from now on."""
        self._capabilities.add(name)

    def spawn(self, name, target, *args):
        """Starts an agent thread ``peeka-work-<name>`` running ``target(*args)``.

        Raises CommandError(shutting_down) while detaching. Exceptions that
        escape ``target`` go to the error log.
        """
        if self.stopping.is_set():
            raise CommandError(
                ErrorCode.SHUTTING_DOWN, "the agent is detaching; no new work is started"
            )

        def failed(exc):
            self.record_error("thread peeka-work-%s failed" % name, exc)

        thread = AgentThread("peeka-work-" + name, target, args, on_error=failed)
        with self._lock:
            self._spawned = [t for t in self._spawned if t.is_alive()]
            self._spawned.append(thread)
        thread.start()
        return thread

    def record_error(self, context, exc=None):
        """Adds an entry to the bounded error log (never raises, never prints)."""
        try:
            entry = {"time": round(time.time(), 3), "message": context, "traceback": None}
            if exc is not None:
                entry["message"] = "%s: %s: %s" % (context, type(exc).__name__, exc)
                import traceback  # only here: the agent starts without it

                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                entry["traceback"] = text[-4000:]
            self._errors.append(entry)
        except BaseException:
            pass

    def errors(self):
        """The recent entries of the error log, oldest first."""
        return list(self._errors)

    def info(self):
        """The data of the ``info`` command."""
        return {
            "agent_version": self.version,
            "protocol": {"major": PROTOCOL_MAJOR, "minor": PROTOCOL_MINOR},
            "python": dict(python_info(), executable=sys.executable),
            "pid": self.pid,
            "socket": self.socket_path,
            "started_at": self.started_at,
            "threads": agent_thread_names(),
            "capabilities": self.capabilities(),
            "commands": self.commands.names(),
            "connections": len(self.connections()),
            "streams": [stream.describe() for stream in self.streams()],
            "refused_connections": self.refused_connections,
            "queue_limit": self.queue_limit,
            "errors": self.errors(),
        }

    # -- detach --------------------------------------------------------------

    def detach(self, before_close=None, timeout=DETACH_TIMEOUT):
        """Stops everything and removes every trace (see the module documentation).

        Callable from any thread except a connection's writer. Returns False
        when the agent was not running. ``timeout`` bounds the waits for
        flushes and threads.
        """
        with self._lock:
            if self._state != _RUNNING:
                return False
            self._state = "stopping"
        deadline = time.monotonic() + timeout
        self.stopping.set()
        self._wake_listener()
        connections = self.connections()
        for connection in connections:
            connection.end_streams("detached")
        if before_close is not None:
            try:
                before_close()
            except BaseException as exc:
                self.record_error("detach: the final reply failed", exc)
        for connection in connections:
            # The calling connection writes its own; the others get their writer.
            connection.outbox.stop(connection.on_reader())
        for connection in connections:
            connection.outbox.wait_stopped(max(0.0, deadline - time.monotonic()))
        for connection in connections:
            connection.close(0.0)
        self._cleanup_files()
        try:
            atexit.unregister(self._at_exit)
        except BaseException:
            pass
        fork_guard.release(self._after_fork_in_child)
        current = threading.current_thread()
        threads = [self._listener_thread]
        for connection in connections:
            threads.append(connection.reader_thread)
            threads.append(connection.outbox.writer)
        with self._lock:
            threads.extend(self._spawned)
        for thread in threads:
            if thread is not None and thread is not current and thread.ident is not None:
                thread.join(max(0.05, deadline - time.monotonic()))
        self._forget_modules()
        if isinstance(current, AgentThread):
            # Once it has answered: the agent's garbage is freed at once
            # (agent_threads.collect_agent_garbage).
            current.collect_on_exit = True
        with self._lock:
            self._state = "stopped"
        self.stopped.set()
        return True

    def _wake_listener(self):
        listener = self._listener
        if listener is None:
            return
        try:
            # On Linux this wakes the listener's poll(), and its accept() fails.
            listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        thread = self._listener_thread
        if thread is not None and thread.is_alive():
            thread.join(0.2)
        if thread is not None and thread.is_alive():
            # Platforms where shutdown() does not wake the listener: connect once.
            poke = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                poke.settimeout(0.5)
                poke.connect(self.socket_path)
            except OSError:
                pass
            finally:
                poke.close()

    def _cleanup_files(self):
        """Removes the socket and the private directory (see remove_private_directory)."""
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.record_error("could not remove the socket", exc)
        try:
            left = remove_private_directory(self.directory)
        except OSError as exc:
            self.record_error("could not remove the private directory", exc)
        else:
            if left:
                self.record_error(
                    "left %s in place: it holds files the agent did not expect (%s)"
                    % (self.directory, ", ".join(sorted(left)[:10]))
                )

    def _own_modules(self):
        """The agent package's modules in ``sys.modules``: name -> module."""
        name = self.package_name
        if not name:
            return {}
        prefix = name + "."
        return {
            key: module
            for key, module in list(sys.modules.items())
            if key == name or key.startswith(prefix)
        }

    def _forget_modules(self):
        name = self.package_name
        if not name:
            return
        for key in self._own_modules():
            sys.modules.pop(key, None)
        # The bootstrap's finder, which imported this package from memory.
        for finder in list(sys.meta_path):
            if getattr(finder, "peeka_package", None) == name:
                try:
                    sys.meta_path.remove(finder)
                except ValueError:
                    pass

    def _at_exit(self):
        """Interpreter exit while attached: leave no file behind.

        Only in the process that started the agent: a child forked from it
        inherits this hook (and a copy of this object), and when it exits
        it must not remove its parent's socket and directory.
        """
        if os.getpid() != self.pid:
            return
        self.stopping.set()
        try:
            self._cleanup_files()
        except BaseException:
            pass

    def _after_fork_in_child(self):
        """In a child forked from this process: forget the agent (see :mod:`.fork_guard`).

        Runs on the child's only thread, right after the fork: takes no
        lock, never raises. Every agent module that changes the process
        defines ``forget_in_child()``, called here (probes, tracing,
        tracemalloc...).
        """
        try:
            self._state = "forked"
            for module in self._own_modules().values():
                forget = getattr(module, "forget_in_child", None)
                if forget is not None:
                    try:
                        forget()
                    except BaseException:
                        pass
            fork_guard.close_inherited(self._listener)
            if self._admission is not None:
                self._admission.forget_in_child()
            for connection in list(self._connections.values()):
                connection.forget_in_child()
            self.gil_boost.forget_in_child()
            atexit.unregister(self._at_exit)
            self._forget_modules()
        except BaseException:
            pass
