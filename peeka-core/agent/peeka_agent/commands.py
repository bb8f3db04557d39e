"""The command registry and the request context handed to command handlers.

Writing a command
-----------------
A handler is a callable taking one :class:`RequestContext`::

    def handle_watch(ctx):
        pattern = ctx.param("pattern", str, required=True)
        times = ctx.param("times", int, default=None, minimum=1)
        condition = compile_condition(ctx.param("condition", str))  # raise CommandError
        stream = ctx.open_stream(max_items=times)
        probe = install_probe(pattern, stream)       # may raise: stream discarded
        stream.on_close(probe.remove)
        stream.labels["pattern"] = pattern
        return {"matched": probe.matched}            # becomes the response data

    register_command("watch", handle_watch)

Rules the connection applies around a handler:

- The handler runs on the connection's reader thread (``peeka-conn-<n>``),
  so requests of one connection are handled one at a time, and a ``cancel``
  is read only when the handler has returned. A handler that needs long work
  (sampling for seconds, say) calls ``ctx.defer()``, starts a thread with
  ``ctx.agent.spawn(...)``, returns, and later calls ``ctx.reply(...)`` or
  ``ctx.fail(...)`` from that thread. Such threads sleep with
  ``ctx.agent.stopping.wait(seconds)`` so that detach wakes them.
- The handler's return value is the response data, unless it replied or
  deferred itself. If it opened a stream, ``"stream": <id>`` is added to the
  data (a dict) automatically.
- ``raise CommandError(code, message)`` answers with that error (use the
  codes of :class:`~peeka_agent.wire.ErrorCode`; ``invalid_params`` for bad
  parameters, as :meth:`RequestContext.param` does). Any other exception is
  answered with code ``internal`` and the traceback; the agent goes on.
- A stream opened by a request that fails is discarded: its ``on_close``
  callbacks run (the probe is removed) and nothing of it reaches the client.
- Observations emitted between ``open_stream()`` and the reply are held back
  by the writer and sent right after the response.
"""

import threading

from .outbox import OP_FRAME
from .streams import Stream
from .wire import ErrorCode, FrameTooLarge, encode_frame, response_error, response_ok


#: Longest error message and traceback sent in a response (characters).
MAX_MESSAGE = 4096
MAX_TRACEBACK = 65536


class CommandError(Exception):
    """A command failed in a way the client should see as ``code`` + ``message``."""

    def __init__(self, code, message, traceback=None):
        Exception.__init__(self, message)
        self.code = code
        self.message = message
        self.traceback = traceback


def invalid_params(message):
    """A CommandError with code ``invalid_params``."""
    return CommandError(ErrorCode.INVALID_PARAMS, message)


class CommandRegistry(object):
    """Maps command names to handlers; thread-safe."""

    def __init__(self, handlers=None):
        self._lock = threading.Lock()
        self._handlers = dict(handlers or {})

    def register(self, name, handler):
        """Registers (or replaces) the handler of command ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError("a command name must be a non-empty string")
        if not callable(handler):
            raise TypeError("the handler of %r must be callable" % (name,))
        with self._lock:
            self._handlers[name] = handler

    def unregister(self, name):
        """Removes command ``name``; no error if unknown."""
        with self._lock:
            self._handlers.pop(name, None)

    def get(self, name):
        """The handler of ``name`` or None."""
        return self._handlers.get(name)

    def names(self):
        """The registered command names, sorted."""
        return sorted(self._handlers)

    def copy(self):
        """An independent registry with the same handlers."""
        with self._lock:
            return CommandRegistry(self._handlers)


#: Commands registered at import time by the agent's modules; every Agent
#: starts with a copy of it.
DEFAULT_REGISTRY = CommandRegistry()


def register_command(name, handler):
    """Registers a command for every agent created from now on."""
    DEFAULT_REGISTRY.register(name, handler)


class LazyCommand(object):
    """A command whose module is imported the first time the command runs.

    Compiling the whole agent is most of an attach's cost, and on a busy
    target the loader gets a share of the GIL only, so the agent answers
    with the core alone and each command's module comes when first used.
    Importing it registers the real handler in :data:`DEFAULT_REGISTRY`,
    which this one then calls; the import lock makes concurrent first
    calls import it once.
    """

    __slots__ = ("name", "module")

    def __init__(self, name, module):
        self.name = name
        self.module = module

    def __call__(self, ctx):
        # __import__ rather than importlib.import_module: the importlib
        # package is not loaded for it (it would stay after detach).
        __import__("%s.%s" % (__package__, self.module))
        handler = DEFAULT_REGISTRY.get(self.name)
        if handler is None or isinstance(handler, LazyCommand):
            raise CommandError(
                ErrorCode.INTERNAL,
                "module %s did not register the command `%s`" % (self.module, self.name),
            )
        return handler(ctx)


def register_lazy_commands(modules):
    """Registers commands by module, imported when first used: ``{name: module}``."""
    for name, module in modules.items():
        DEFAULT_REGISTRY.register(name, LazyCommand(name, module))


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "an object",
}


class RequestContext(object):
    """One request being handled: its parameters and the ways to answer it.

    Attributes: ``connection``, ``agent``, ``request_id``, ``command``,
    ``params`` (the raw JSON value, None when absent), ``stream`` (the stream
    opened by this request, or None).
    """

    def __init__(self, connection, request_id, command, params):
        self.connection = connection
        self.agent = connection.agent
        self.request_id = request_id
        self.command = command
        self.params = params
        self.stream = None
        self.answered = False
        self.deferred = False

    # -- parameters ----------------------------------------------------------

    def param(
        self,
        name,
        kind=None,
        default=None,
        required=False,
        choices=None,
        minimum=None,
        maximum=None,
    ):
        """One parameter of an object ``params``, checked; CommandError(invalid_params) if bad.

        ``kind`` is a type (str, int, float, bool, list, dict) or a tuple of
        them; ints are accepted where floats are; booleans are never ints.
        ``choices`` restricts the value; ``minimum``/``maximum`` bound numbers.
        An absent or null parameter gives ``default`` (or an error when
        ``required``).
        """
        params = self.params
        if params is None:
            value = None
        elif isinstance(params, dict):
            value = params.get(name)
        else:
            raise invalid_params(
                "the parameters of `%s` must be a JSON object, not %s"
                % (self.command, _json_type_name(params))
            )
        if value is None:
            if required:
                raise invalid_params("`%s` needs the parameter `%s`" % (self.command, name))
            return default
        if kind is not None:
            kinds = kind if isinstance(kind, tuple) else (kind,)
            if not _matches(value, kinds):
                raise invalid_params(
                    "parameter `%s` of `%s` must be %s, not %s"
                    % (
                        name,
                        self.command,
                        " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds),
                        _json_type_name(value),
                    )
                )
        if choices is not None and value not in choices:
            raise invalid_params(
                "parameter `%s` of `%s` must be one of %s, not %r"
                % (name, self.command, ", ".join(repr(c) for c in choices), value)
            )
        if minimum is not None and value < minimum:
            raise invalid_params(
                "parameter `%s` of `%s` must be at least %s, not %s"
                % (name, self.command, minimum, value)
            )
        if maximum is not None and value > maximum:
            raise invalid_params(
                "parameter `%s` of `%s` must be at most %s, not %s"
                % (name, self.command, maximum, value)
            )
        return value

    def check_params(self, known):
        """Fails with invalid_params when ``params`` has keys outside ``known``."""
        params = self.params
        if params is None:
            return
        if not isinstance(params, dict):
            raise invalid_params(
                "the parameters of `%s` must be a JSON object, not %s"
                % (self.command, _json_type_name(params))
            )
        unknown = sorted(key for key in params if key not in known)
        if unknown:
            raise invalid_params(
                "`%s` does not take %s; it takes: %s"
                % (
                    self.command,
                    ", ".join("`%s`" % key for key in unknown),
                    ", ".join("`%s`" % key for key in sorted(known)) or "no parameters",
                )
            )

    # -- streams -------------------------------------------------------------

    def open_stream(self, max_items=None):
        """Opens this request's stream (id = request id) and returns it.

        The stream is live at once (probes may emit); its response is the
        reply to this request. ``max_items`` ends it with ``count_reached``
        after that many accepted observations.
        """
        if self.stream is not None:
            raise RuntimeError("a request opens at most one stream")
        if self.answered:
            raise RuntimeError("open the stream before replying")
        stream = Stream(self.connection, self.request_id, self.command, max_items)
        self.connection._add_stream(stream)
        self.stream = stream
        return stream

    # -- answering -----------------------------------------------------------

    def defer(self):
        """Tells the dispatcher that the reply will come later, from another thread."""
        self.deferred = True

    def reply(self, data=None):
        """Answers with success; ``data`` must be JSON-able (else an internal error is sent)."""
        stream = self.stream
        if stream is not None:
            if data is None:
                data = {"stream": stream.id}
            elif isinstance(data, dict) and "stream" not in data:
                data = dict(data)
                data["stream"] = stream.id
        try:
            frame = encode_frame(response_ok(self.request_id, data))
        except (ValueError, TypeError, OverflowError, RecursionError, FrameTooLarge) as exc:
            self._fail_now(
                ErrorCode.INTERNAL,
                "the result of `%s` could not be encoded (%s: %s); this is a bug in the agent"
                % (self.command, type(exc).__name__, exc),
                None,
            )
            return
        self._answer(frame, True)

    def fail(self, code, message, traceback=None):
        """Answers with an error; a stream opened by this request is discarded."""
        self._fail_now(code, message, traceback)

    def _fail_now(self, code, message, traceback):
        message = str(message)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "..."
        if traceback is not None:
            traceback = str(traceback)
            if len(traceback) > MAX_TRACEBACK:
                traceback = "...(earlier frames cut)\n" + traceback[-MAX_TRACEBACK:]
        frame = encode_frame(response_error(self.request_id, code, message, traceback))
        self._answer(frame, False)

    def _answer(self, frame, ok):
        connection = self.connection
        stream = self.stream
        with connection.lock:
            if self.answered:
                raise RuntimeError(
                    "request %d of `%s` was already answered" % (self.request_id, self.command)
                )
            self.answered = True
            connection._request_done(self.request_id)
            if ok:
                connection.outbox.put_control((OP_FRAME, frame, stream))
                if stream is not None:
                    stream._announce()
                return
        if stream is not None:
            stream._discard()
        connection.outbox.put_control((OP_FRAME, frame, None))


def _matches(value, kinds):
    for kind in kinds:
        if kind is float:
            if type(value) in (int, float):
                return True
        elif kind is int:
            if type(value) is int:
                return True
        elif isinstance(value, kind):
            return True
    return False


def _json_type_name(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
