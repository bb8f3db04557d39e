"""Probes: what ``watch``, ``stack`` and ``monitor`` install, and the registry of installed ones.

A :class:`Probe` belongs to one stream (``stream.on_close(probe.remove)``)
and covers the functions its pattern resolved to
(:func:`peeka_agent.patterns.resolve`). For each of them the command gives a
:class:`Handler`; the instrumentation backend calls the handler on the
target's threads:

``handler.enter(args, kwargs, ident)`` (or None)
    at the first start of a call, before the function's body runs;
``handler.exit(record)`` (or None)
    when the call ends, with one tuple ``record = (args, kwargs, ident,
    t0, t1, result, exc)`` (indices :data:`ARGS` ... :data:`EXC`):
    ``t0``/``t1`` are ``time.perf_counter()`` at the first start and at
    the end (for generators and coroutines the whole life, suspensions
    included), ``result`` the return value (the ``StopIteration`` value of
    a generator or coroutine) and ``exc`` None, or ``result`` None and
    ``exc`` the exception that ended the call. One tuple rather than seven
    arguments so that a handler with nothing to decide on the target's
    thread can be the stream's lazy emitter itself
    (``stream.lazy_emitter(render)``): the record goes to the queue as it
    is, with no Python frame of the handler's own (see :mod:`.watch_command`).

``args`` is the tuple of the positional parameters' values (``self`` first
for a method) followed by the ``*args`` items; ``kwargs`` the dict of the
keyword-only parameters and the ``**kwargs`` items; ``ident`` the
``threading.get_ident()`` of the calling thread. Both backends bind them
the same way, from the parameters as the function received them. When no
handler of a function sets ``needs_args``, ``args``/``kwargs`` may be None.

Rules for handlers (the backends rely on them):

- They never raise: they catch everything but ``KeyboardInterrupt`` and
  call :meth:`Probe.fail`, which records the error and ends the stream
  with ``error`` (removing the probe): a broken probe removes itself
  rather than hurt the target.
- Entry handlers run with the probed call's frame on the stack: the real
  frame (its code is the function's) or, under code swapping, the
  wrapper's frame (its code is in ``backend.wrapper_codes``); a handler
  finds its caller by walking up to that frame (see :mod:`.stack_command`).
  ``backend.hidden_codes`` are the backend's own frames, to leave out of
  stacks.
- Agent threads never reach them (the backends check
  :data:`peeka_agent.agent_threads` first), so a probe on a function the
  agent itself uses (``json.dumps``...) cannot feed itself.

Backends (:func:`backend`), chosen per probe by the request's ``backend``
parameter (``"monitoring"`` or ``"code_swap"``):

- ``__code__`` swapping (:mod:`.probe_code_swap`), the default on every
  version: one extra Python frame that binds the arguments it receives
  and times the call inline, and, for a single ``watch``, its condition
  and queueing written into that frame's code (measured at most about
  twice a minimal hand-written timing wrapper, docs/commands.md "Cost").
  On 3.12+ the calls that bypass the function object (other closures of
  the same ``def``) are seen through ``sys.monitoring`` on the original
  code object, which then runs for those calls only.
- ``sys.monitoring`` (:mod:`.probe_monitoring`), 3.12+ on request, and the
  default of ``trace`` there (its recorder roots the tree at the frame the
  callbacks hand it): the code-object level instrumentation of PEP 669, on
  a free tool id, beside debuggers, profilers and coverage tools; no extra
  frame (tracebacks, recursion limit), ``f.__code__`` untouched. Per call
  ``sys.monitoring`` costs two callback invocations from C (about 60-80 ns
  together), a ``sys._getframe`` (about 55 ns, it materialises the frame
  object) and ``frame.f_locals`` (20-90 ns) to read the arguments, and a
  second frame lookup to pair the end with its start: 3-4 times what code
  swapping costs.

Both see every caller on 3.12+, including references taken before the
probe, and put everything back when the last probe of a function goes.
Two probes on one function may use different backends; each sees every
call.

:func:`install_probe` is the common part of the probe commands: pattern,
condition, stream, labels, ownership.
"""

import itertools
import sys
import threading
import time

from .capture import _exception_text
from .commands import CommandError
from .patterns import CO_VARARGS, CO_VARKEYWORDS, resolve
from .wire import ErrorCode
from .writer_budget import MAX_WRITER_SHARE

_registry_lock = threading.Lock()
_probes = {}
_numbers = itertools.count(1)
_backends = {}

#: Indices of an exit record (see the module documentation).
ARGS, KWARGS, IDENT, T0, T1, RESULT, EXC = range(7)

#: The backends a request may name.
BACKENDS = ("monitoring", "code_swap")
#: The backend of a probe whose request names none (``trace`` has its own,
#: see :func:`install_probe`).
DEFAULT_BACKEND = "code_swap"
#: The default of ``trace``: its recorder roots the tree at the probed
#: frame, which the monitoring backend hands it on every path.
TRACE_DEFAULT_BACKEND = "monitoring" if hasattr(sys, "monitoring") else "code_swap"
#: Overrides DEFAULT_BACKEND (tests run their probes under each backend).
PREFERRED_BACKEND = None


def forget_in_child():
    """In a forked child: every probe's instrumentation off, without a lock (see :mod:`.fork_guard`)."""
    global _registry_lock
    _registry_lock = threading.Lock()
    _probes.clear()
    for found in list(_backends.values()):
        found.forget_in_child()


def backend(name=None):
    """The instrumentation backend ``name`` (default: the preferred one), created once."""
    name = name or PREFERRED_BACKEND or DEFAULT_BACKEND
    with _registry_lock:
        found = _backends.get(name)
        if found is None:
            if name == "monitoring":
                from .probe_monitoring import MonitoringBackend

                found = MonitoringBackend()
            else:
                from .probe_code_swap import CodeSwapBackend

                found = CodeSwapBackend()
            _backends[name] = found
        return found


def requested_backend(ctx):
    """The ``backend`` parameter, checked (None when absent); invalid_params names the fix."""
    name = ctx.param("backend", str)
    if name is None:
        return None
    if name not in BACKENDS:
        raise CommandError(
            ErrorCode.INVALID_PARAMS,
            "unknown probe backend %r: use one of %s" % (name, ", ".join(BACKENDS)),
        )
    if name == "monitoring" and not hasattr(sys, "monitoring"):
        raise CommandError(
            ErrorCode.INVALID_PARAMS,
            "the monitoring backend needs sys.monitoring (Python 3.12+); this is Python %d.%d: "
            "use code_swap" % sys.version_info[:2],
        )
    return name


def probes(agent=None):
    """The installed probes (of ``agent`` only, when given), oldest first."""
    with _registry_lock:
        found = sorted(_probes.values(), key=lambda probe: probe.number)
    if agent is not None:
        found = [probe for probe in found if probe.stream.connection.agent is agent]
    return found


class ArgumentLayout(object):
    """The parameter names of a code object, split as handlers receive them."""

    __slots__ = ("positional", "varargs", "keyword_only", "varkw")

    def __init__(self, code):
        names = code.co_varnames
        count = code.co_argcount
        keyword_count = code.co_kwonlyargcount
        self.positional = tuple(names[:count])
        self.keyword_only = tuple(names[count : count + keyword_count])
        index = count + keyword_count
        self.varargs = None
        self.varkw = None
        if code.co_flags & CO_VARARGS:
            self.varargs = names[index]
            index += 1
        if code.co_flags & CO_VARKEYWORDS:
            self.varkw = names[index]

    def is_plain(self):
        """Whether every parameter is positional (no ``*args``, keyword-only or ``**kwargs``)."""
        return not self.keyword_only and self.varargs is None and self.varkw is None


class Handler(object):
    """What one probe does on one function (see the module documentation).

    ``inline`` (an :class:`InlineExit`, or None) describes ``exit`` for a
    backend that can do the same work in generated code (see
    :mod:`.probe_code_swap`); ``exit`` stays the reference and is what
    every other path calls.
    """

    __slots__ = ("probe", "target", "enter", "exit", "needs_args", "inline", "missed")

    def __init__(self, probe, target, enter=None, exit=None, needs_args=True, inline=None):
        self.probe = probe
        self.target = target
        self.enter = enter
        self.exit = exit
        self.needs_args = needs_args
        self.inline = inline
        #: While parked (see ``Probe.park``): counters of the calls it misses.
        self.missed = None


class InlineExit(object):
    """An exit handler described for generated code (see :mod:`.probe_code_swap`).

    The handler filters the call's end with ``condition`` and then does
    one simple thing, ``action``, which the code swapping backend can
    write into the wrapper of a function with only this probe: an object
    with ``ROLES`` (names of the objects its lines read), ``constants``
    (role -> object) and ``lines(end, local, load, temporary)`` (source
    lines for an :class:`InlineEnd`; ``local(role)`` names the local
    holding a constant, ``load(role)`` is the statement that sets it,
    which the lines include where they need it; ``temporary`` is a free
    local name).

    ``condition``: the :class:`~peeka_agent.expr.Condition` or None;
    ``on_success``/``on_exception``: which ends are observed;
    ``is_method``: ``params`` start after ``args[0]`` (the ``target``);
    ``report``: called after a false result while a failure is unreported
    (the ``condition_errors`` event); ``fail(exc)``: the probe's
    :meth:`Probe.fail`, for an exception outside the condition.
    """

    __slots__ = ("action", "condition", "on_success", "on_exception", "is_method", "report", "fail")

    def __init__(self, action, condition, on_success, on_exception, is_method, report, fail):
        self.action = action
        self.condition = condition
        self.on_success = on_success
        self.on_exception = on_exception
        self.is_method = is_method
        self.report = report
        self.fail = fail


class InlineEnd(object):
    """One end of a call as the generated wrapper names it (for an action's ``lines``).

    ``record``: source of the exit record's items (``"a, b, c"``, see
    :data:`ARGS`...); ``t0``/``t1``: the locals holding the start and end
    times; ``failed``: whether this is the exception path.
    """

    __slots__ = ("record", "t0", "t1", "failed")

    def __init__(self, record, t0, t1, failed):
        self.record = record
        self.t0 = t0
        self.t1 = t1
        self.failed = failed


class Probe(object):
    """One installed probe: a command's handlers on the functions of a pattern."""

    def __init__(self, command, pattern, stream, targets, probe_backend=None):
        self.number = next(_numbers)
        self.command = command
        self.pattern = pattern
        self.stream = stream
        self.targets = targets
        self.handlers = []
        self.backend = probe_backend or backend()
        self.errors = 0
        self._lock = threading.Lock()
        self._removed = False
        self._failed = False

    @property
    def functions(self):
        """The dotted names of the probed functions."""
        return [target.name for target in self.targets]

    def install(self, make_handler):
        """Attaches ``make_handler(probe, target)`` to every target; all or nothing."""
        seen = set()
        try:
            for target in self.targets:
                if target.code in seen:
                    continue
                seen.add(target.code)
                handler = make_handler(self, target)
                self.backend.add(handler)
                self.handlers.append(handler)
        except BaseException:
            self.remove()
            raise
        with _registry_lock:
            _probes[self.number] = self

    def remove(self):
        """Detaches every handler (idempotent; any thread, the target's ones included)."""
        with self._lock:
            if self._removed:
                return
            self._removed = True
            handlers, self.handlers = self.handlers, []
        with _registry_lock:
            _probes.pop(self.number, None)
        failure = None
        for handler in handlers:
            try:
                self.backend.remove(handler)
            except BaseException as exc:
                failure = exc
        if failure is not None:
            raise failure

    @property
    def removed(self):
        return self._removed

    def park(self):
        """Stops calling the handlers that can be stopped while the stream is flooded; returns them.

        Called by the stream's writer when it pauses (see :mod:`.writer_budget`):
        N clients flooding one function then cost its calls about what one
        does. Only the code swapping backend parks (see
        ``probe_code_swap._Site.parkable``).
        """
        park = getattr(self.backend, "park", None)
        if park is None or self._removed:
            return []
        return [handler for handler in list(self.handlers) if park(handler)]

    def unpark(self, handlers):
        """Calls ``handlers`` (from :meth:`park`) again; returns the counters of the calls
        they missed, which are the stream's drops (``Stream._w_add_parked``)."""
        counters = []
        for handler in handlers:
            counters.extend(self.backend.unpark(handler))
        return counters

    def fail(self, exc):
        """A handler failed: record it, end the stream with ``error`` (removes the probe)."""
        if isinstance(exc, KeyboardInterrupt):
            raise exc
        self.errors += 1
        if self._failed:
            return
        self._failed = True
        try:
            stream = self.stream
            stream.connection.agent.record_error(
                "probe `%s` of stream %d failed and was removed" % (self.pattern, stream.id), exc
            )
            stream.end(
                "error",
                CommandError(
                    ErrorCode.INTERNAL,
                    "the probe failed and was removed (%s: %s); the target was not affected"
                    % (type(exc).__name__, exc),
                ),
            )
        except BaseException:
            pass

    def describe(self):
        """The entry of ``reset`` (``--list``) for this probe."""
        stream = self.stream
        return {
            "stream": stream.id,
            "command": self.command,
            "pattern": self.pattern,
            "connection": stream.connection.number,
            "functions": self.functions,
            "observations": stream.labels.get("observations", 0),
            "dropped": stream.dropped,
        }


def probed_frame(frame, code, wrappers=frozenset()):
    """The probed call's frame at or above ``frame`` (a handler's caller), or None.

    It runs ``code``, or an equal copy of it (the clone's, under code
    swapping on 3.12+), or one of ``wrappers`` (the code swapping
    wrapper's frame, above the clone's).
    """
    while frame is not None:
        found = frame.f_code
        if found is code or found in wrappers or found == code:
            return frame
        frame = frame.f_back
    return None


def compile_optional_condition(ctx):
    """The ``condition`` parameter compiled, or None; invalid_expression before any probe."""
    source = ctx.param("condition", str)
    if source is None:
        return None
    # Only with a condition: the expression language imports ast and
    # tokenize (which would stay after detach).
    from .expr import ExpressionError, compile_condition

    try:
        return compile_condition(source)
    except ExpressionError as exc:
        raise CommandError(ErrorCode.INVALID_EXPRESSION, "%s\n%s" % (exc, exc.caret()))


def install_probe(ctx, pattern, make_handler, max_items=None, labels=None, default_backend=None):
    """Resolves ``pattern``, opens the stream, installs the probe; returns (probe, response data).

    Everything that can fail on bad input fails before the stream opens;
    the probe is removed whenever the stream ends. ``labels`` are added to
    the stream's labels (shown by ``info``). The backend is the request's,
    else :data:`PREFERRED_BACKEND`, else ``default_backend``, else
    :data:`DEFAULT_BACKEND`.
    """
    pending = False
    try:
        targets = resolve(pattern)
    except CommandError as exc:
        # ``pending``: wait for the function to appear (see :mod:`.pending`).
        if exc.code != ErrorCode.NOT_FOUND or not ctx.param("pending", bool, default=False):
            raise
        targets, pending = [], True
    probe_backend = backend(requested_backend(ctx) or PREFERRED_BACKEND or default_backend)
    send_budget = ctx.param("send_budget", int, minimum=1, maximum=int(MAX_WRITER_SHARE * 100))
    stream = ctx.open_stream(max_items=max_items)
    if send_budget is not None:
        stream.ask_share(send_budget / 100.0)
        stream.labels["send_budget"] = send_budget
    probe = Probe(ctx.command, pattern, stream, targets, probe_backend)
    stream.labels.update(
        {
            "pattern": pattern,
            "functions": probe.functions,
            "backend": probe_backend.name,
            "observations": 0,
        }
    )
    if labels:
        stream.labels.update(labels)
    probe.install(make_handler)
    stream.on_close(probe.remove)
    stream.parker = probe
    data = {
        "matched": [target.describe() for target in targets],
        "backend": probe_backend.name,
        "tool_id": probe_backend.tool_id,
    }
    if pending:
        from . import pending as pending_probes

        pending_probes.add(probe, make_handler)
        data["pending"] = True
    return probe, data


def counting_render(stream, render):
    """``render`` wrapped to count the stream's observations in its labels (writer thread)."""
    labels = stream.labels

    def counted(value):
        labels["observations"] = labels.get("observations", 0) + 1
        return render(value)

    return counted


# -- values shared by observations ---------------------------------------------

_thread_names = {}
_thread_names_at = [0.0]


def thread_name(ident):
    """The name of thread ``ident`` (cached; refreshed at most once a second on a miss)."""
    name = _thread_names.get(ident)
    if name is not None:
        return name
    now = time.monotonic()
    if now - _thread_names_at[0] >= 1.0 or not _thread_names:
        _thread_names_at[0] = now
        fresh = {}
        for thread in threading.enumerate():
            fresh[thread.ident] = thread.name
        _thread_names.clear()
        _thread_names.update(fresh)
        name = fresh.get(ident)
    return name if name is not None else "?"


def wall_clock_offset():
    """What to add to a ``perf_counter()`` value to get Unix time (measured now)."""
    return time.time() - time.perf_counter()


#: ``"Type: message"`` of an exception (as ``throwExp`` shows it), never raising.
exception_text = _exception_text
