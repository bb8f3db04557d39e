"""``trace``: the call tree below a function, with timings.

params: ``{"pattern", "depth", "times", "condition", "min_duration",
"skip_builtin"}`` (see docs/commands.md). A probe stream: one observation
per traced call of a function the pattern names, at its end.

How a call is traced
--------------------
The root function gets a probe (:func:`.probes.install_probe`). Its entry
handler hands a :class:`Recorder` to the engine of :mod:`.trace_engine`
(``sys.monitoring`` on 3.12+, ``sys.setprofile`` before), which reports to
it every function started and ended on that thread until the exit handler
stops it: only the traced thread is recorded, only during the call. A
call of the root function inside a traced call (recursion) is part of the
tree, not a new trace.

The tree
--------
Calls are aggregated: the children of a node are keyed by function and
call site (the line of the caller), with ``count``, ``duration_ms`` (the
sum), ``min_ms``, ``max_ms`` and ``self_ms`` (the node's duration minus
its children's). Each node has ``function`` (``module.qualname``),
``filename`` and ``lineno`` (where the function is defined) and
``call_filename``/``call_lineno`` (where it was called from).

- ``depth`` (``-d``, default 3, at most 20): levels of children below the
  root; deeper calls are not nodes, their time stays in their ancestor.
- ``skip_builtin`` (default true): functions of the standard library
  (files under the directory of ``os.py``, outside ``site-packages``, and
  frozen modules) are left out; they are transparent: their time counts
  as their caller's own time and the non-standard functions they call
  appear under the caller. With ``skip_builtin`` false, standard-library
  functions are nodes and so are C functions and methods (``len``,
  ``list.append``...; ``builtin: true``, no file).
- ``min_duration`` (ms): nodes below the root whose ``duration_ms`` is
  lower are left out of the observation (their time stays in the parent's
  ``self_ms``).
- ``condition``: over ``params``, ``kwargs``, ``target``, ``returnObj``,
  ``throwExp`` and ``cost`` (the root call's milliseconds), evaluated at
  the end of the call; a false one discards the tree.
- Bounds: at most :data:`MAX_NODES` nodes per tree (further calls are
  counted in ``dropped_calls``, their time in their parent); at most
  :data:`MAX_ACTIVE` calls traced at once per stream (further calls are not
  traced). The agent's own frames (its threads, a code-swap probe's
  wrapper frames) never appear.

Only plain functions can be traced (not generators or coroutines, whose
suspensions would interleave other work into the tree).
"""

import os

from .commands import CommandError, register_command
from .patterns import KIND_FUNCTION
from .probes import (
    TRACE_DEFAULT_BACKEND,
    Handler,
    compile_optional_condition,
    counting_render,
    exception_text,
    install_probe,
    probed_frame,
    thread_name,
    wall_clock_offset,
)
from .thread_info import is_stdlib_file
from .trace_engine import builtin_name, engine
from .watch_command import condition_reporter
from .wire import ErrorCode

PARAMS = (
    "pattern",
    "depth",
    "times",
    "condition",
    "min_duration",
    "skip_builtin",
    "pending",
    "backend",
    "send_budget",
)
DEFAULT_DEPTH = 3
MAX_DEPTH = 20
#: Nodes in one tree.
MAX_NODES = 2000
#: Calls traced at the same time by one stream.
MAX_ACTIVE = 64

_AGENT_DIR = os.path.dirname(os.path.abspath(__file__))

# Node fields (a list per node, for speed on the traced thread).
_CODE, _CHILDREN, _COUNT, _TOTAL, _MIN, _MAX, _MODULE, _CALL_FILE, _CALL_LINE, _BUILTIN = range(10)


def handle_trace(ctx):
    """``trace``: installs the probe on the root function and answers with its stream."""
    ctx.check_params(PARAMS)
    pattern = ctx.param("pattern", str, required=True)
    depth = ctx.param("depth", int, default=DEFAULT_DEPTH, minimum=1, maximum=MAX_DEPTH)
    times = ctx.param("times", int, minimum=1)
    min_duration = float(ctx.param("min_duration", float, default=0.0, minimum=0.0))
    skip_builtin = ctx.param("skip_builtin", bool, default=True)
    condition = compile_optional_condition(ctx)
    from .patterns import resolve

    try:
        targets = resolve(pattern)  # fails early (not_found) before anything is installed
    except CommandError as exc:
        if exc.code != ErrorCode.NOT_FOUND or not ctx.param("pending", bool, default=False):
            raise
        targets = []  # install_probe makes it wait (see .pending)
    for target in targets:
        if target.kind != KIND_FUNCTION:
            raise CommandError(
                ErrorCode.INVALID_PARAMS,
                "`%s` is a %s function: trace follows plain functions only (a suspended %s "
                "would mix other work into its tree); use `watch` or `monitor` for it"
                % (target.name, target.kind, target.kind),
            )
    trace_engine = engine()
    options = {
        "depth": depth,
        "min_duration": min_duration,
        "builtins": not skip_builtin,
        "condition": condition,
        "engine": trace_engine,
        "skip": {},
    }
    trace_engine.acquire()
    owner = object()
    options["owner"] = owner
    try:

        def make_handler(probe, target):
            return make_trace_handler(probe, target, options)

        probe, data = install_probe(
            ctx, pattern, make_handler, max_items=times, default_backend=TRACE_DEFAULT_BACKEND
        )
    except BaseException:
        trace_engine.release(owner)
        raise
    probe.stream.on_close(lambda: trace_engine.release(owner))
    probe.stream.labels["engine"] = trace_engine.name
    data.update({"depth": depth, "engine": trace_engine.name, "skip_builtin": skip_builtin})
    if min_duration:
        data["min_duration"] = min_duration
    return data


def visible_caller(frame, hidden):
    """The frame that called ``frame``, past the probes' own frames (``hidden[0]``).

    A code-swapped function's wrapper is one of them: it runs between the
    caller and the function's body.
    """
    caller = frame.f_back
    hidden_codes = hidden[0]
    while caller is not None and caller.f_code in hidden_codes:
        caller = caller.f_back
    return caller


class Recorder(object):
    """The tree of one traced call, built on its thread from the engine's events."""

    __slots__ = (
        "owner",
        "builtins",
        "cancelled",
        "profiler",
        "root_code",
        "root_frame",
        "root",
        "started",
        "done",
        "stack",
        "path",
        "nodes",
        "dropped",
        "max_depth",
        "skip",
        "hidden",
        "clock",
    )

    def __init__(self, owner, root_code, options, hidden, clock):
        self.owner = owner
        self.builtins = options["builtins"]
        self.cancelled = False
        self.profiler = None
        self.root_code = root_code
        self.root_frame = None
        self.root = _new_node(root_code, None, None, None, False)
        self.started = False
        self.done = False
        self.stack = []  # (node or None, t0, builtin callable or None) per open frame
        self.path = [self.root]  # the recorded nodes of the open frames
        self.nodes = 1
        self.dropped = 0
        self.max_depth = options["depth"]
        self.skip = options["skip"]
        self.hidden = hidden
        self.clock = clock

    def begin_at(self, frame):
        """The root is already running in ``frame`` (the monitoring probe backend)."""
        self.root_frame = frame
        self.root_code = frame.f_code  # the function's code, or its clone's (code swapping)
        self.started = True

    def start(self, code, frame):
        if not self.started:
            # Under code swapping the call runs the clone's copy of the code
            # (3.12+), equal to the function's code but another object.
            if code is self.root_code or code == self.root_code:
                self.root_code = code
                self.root_frame = frame
                self.started = True
                caller = visible_caller(frame, self.hidden)
                if caller is not None:
                    self.root[_CALL_FILE] = caller.f_code.co_filename
                    self.root[_CALL_LINE] = caller.f_lineno
            return
        if self.done:
            return
        if code is self.root_code and frame is self.root_frame:
            return  # the root's own start, seen after the probe's
        node = None
        if not self._transparent(code):
            path = self.path
            if len(path) <= self.max_depth:
                if self.nodes < MAX_NODES:
                    caller = visible_caller(frame, self.hidden)
                    line = caller.f_lineno if caller is not None else None
                    call_file = caller.f_code.co_filename if caller is not None else None
                    children = path[-1][_CHILDREN]
                    key = (id(code), line)
                    node = children.get(key)
                    if node is None:
                        module = frame.f_globals.get("__name__")
                        node = _new_node(code, module, call_file, line, False)
                        children[key] = node
                        self.nodes += 1
                    path.append(node)
                else:
                    self.dropped += 1
        self.stack.append((node, self.clock(), None))

    def end(self, code, frame):
        if not self.started or self.done:
            return
        stack = self.stack
        while stack and stack[-1][2] is not None:
            self._pop()  # a builtin whose end was not reported
        if not stack:
            if code is self.root_code and frame is self.root_frame:
                self.done = True
            return
        self._pop()

    def start_builtin(self, callable_, caller):
        if not self.started or self.done:
            return
        path = self.path
        node = None
        if len(path) <= self.max_depth:
            if self.nodes < MAX_NODES:
                line = caller.f_lineno if caller is not None else None
                children = path[-1][_CHILDREN]
                key = (id(callable_), line)
                node = children.get(key)
                if node is None:
                    call_file = caller.f_code.co_filename if caller is not None else None
                    node = _new_node(callable_, None, call_file, line, True)
                    children[key] = node
                    self.nodes += 1
                path.append(node)
            else:
                self.dropped += 1
        self.stack.append((node, self.clock(), callable_))

    def end_builtin(self, callable_):
        stack = self.stack
        if stack and stack[-1][2] is callable_:
            self._pop()

    def _pop(self):
        node, t0, _builtin = self.stack.pop()
        if node is not None:
            elapsed = self.clock() - t0
            node[_COUNT] += 1
            node[_TOTAL] += elapsed
            if elapsed < node[_MIN]:
                node[_MIN] = elapsed
            if elapsed > node[_MAX]:
                node[_MAX] = elapsed
            self.path.pop()

    def _transparent(self, code):
        skip = self.skip
        key = id(code)
        entry = skip.get(key)
        if entry is not None and entry[0] is code:
            return entry[1]
        filename = code.co_filename
        hidden_codes, wrapper_codes = self.hidden
        transparent = (
            code in hidden_codes
            or code in wrapper_codes
            or (isinstance(filename, str) and filename.startswith(_AGENT_DIR))
            or (not self.builtins and is_stdlib_file(filename))
        )
        if len(skip) > 50000:
            skip.clear()
        skip[key] = (code, transparent)
        return transparent


def _new_node(code, module, call_file, call_line, builtin):
    return [code, {}, 0, 0.0, float("inf"), 0.0, module, call_file, call_line, builtin]


def make_trace_handler(probe, target, options):
    """The :class:`~peeka_agent.probes.Handler` of the traced root function."""
    stream = probe.stream
    emit_lazy = stream.emit_lazy
    condition = options["condition"]
    test = condition.test if condition is not None else None
    report_condition = condition_reporter(stream, condition)
    trace_engine = options["engine"]
    owner = options["owner"]
    min_duration = options["min_duration"]
    root_code = target.code
    name = target.name
    is_method = target.is_method
    backend = probe.backend
    monitoring_probe = backend.name == "monitoring"
    hidden = (backend.hidden_codes, backend.wrapper_codes)  # live sets: probes come and go
    wrapper_codes = backend.wrapper_codes
    fail = probe.fail
    offset = wall_clock_offset()
    from sys import _getframe as getframe
    from time import perf_counter

    # ident -> [recorder or None, nesting]: a recursive call of the root is
    # part of the outer tree; its own entry and exit only count the nesting.
    calls = {}
    module = None
    try:
        module = target.function.__globals__.get("__name__")
    except Exception:
        module = None

    def enter(args, kwargs, ident):
        try:
            state = calls.get(ident)
            if state is not None:
                state[1] += 1
                return
            recorder = None
            if len(calls) < MAX_ACTIVE:
                recorder = Recorder(owner, root_code, options, hidden, perf_counter)
                if monitoring_probe or getframe(1).f_code not in wrapper_codes:
                    # The root frame is running: the probe's callback is above
                    # it (the monitoring backend, or the sys.monitoring cover
                    # of a code-swapped function). Under code swapping it
                    # may run the clone's copy of the code (equal, not the same).
                    frame = probed_frame(getframe(1), root_code)
                    if frame is not None:
                        recorder.begin_at(frame)
                        caller = visible_caller(frame, hidden)
                        if caller is not None:
                            recorder.root[_CALL_FILE] = caller.f_code.co_filename
                            recorder.root[_CALL_LINE] = caller.f_lineno
                if not trace_engine.start(recorder, ident):
                    recorder = None
            calls[ident] = [recorder, 1]
        except BaseException as exc:
            fail(exc)

    def leave(*record):
        try:
            if len(record) == 1:
                record = record[0]
            args, kwargs, ident, t0, t1, result, exc = record
            state = calls.get(ident)
            if state is None:
                return
            state[1] -= 1
            if state[1] > 0:
                return
            del calls[ident]
            recorder = state[0]
            if recorder is None:
                return
            trace_engine.stop(ident)
            if recorder.cancelled:
                return
            cost = (t1 - t0) * 1000.0
            if test is not None:
                self_value, params = None, args or ()
                if is_method and args:
                    self_value, params = args[0], args[1:]
                if not test((params, kwargs or {}, self_value, result, exc, cost)):
                    report_condition()
                    return
            root = recorder.root
            root[_COUNT] = 1
            root[_TOTAL] = root[_MIN] = root[_MAX] = t1 - t0
            root[_MODULE] = module
            emit_lazy(render, (recorder, ident, t1, exc, cost))
        except BaseException as error:
            fail(error)

    def render(value):
        recorder, ident, when, exc, cost = value
        count = [0]
        tree = _render_node(recorder.root, 0, min_duration, count)
        tree["function"] = name
        return {
            "func_name": name,
            "location": "AtExit" if exc is None else "AtExceptionExit",
            "throwExp": exception_text(exc) if exc is not None else None,
            "thread_id": ident,
            "thread_name": thread_name(ident),
            "timestamp": round(when + offset, 6),
            "total_duration_ms": round(cost, 6),
            "node_count": count[0],
            "dropped_calls": recorder.dropped,
            "call_tree": tree,
        }

    render = counting_render(stream, render)
    return Handler(probe, target, enter=enter, exit=leave, needs_args=test is not None)


def _ms(seconds):
    return round(seconds * 1000.0, 6)


def _render_node(node, depth, min_duration, count):
    count[0] += 1
    code = node[_CODE]
    builtin = node[_BUILTIN]
    if builtin:
        function = builtin_name(code)
        filename = lineno = None
    else:
        qualname = getattr(code, "co_qualname", None) or code.co_name
        module = node[_MODULE]
        function = "%s.%s" % (module, qualname) if isinstance(module, str) else qualname
        filename = code.co_filename
        lineno = code.co_firstlineno
    total = node[_TOTAL]
    children_time = 0.0
    children = []
    for child in list(node[_CHILDREN].values()):
        if child[_COUNT] == 0:
            continue  # started but never ended (should not happen)
        children_time += child[_TOTAL]
        if min_duration and child[_TOTAL] * 1000.0 < min_duration:
            continue
        children.append(_render_node(child, depth + 1, min_duration, count))
    count_calls = node[_COUNT]
    return {
        "function": function,
        "filename": filename,
        "lineno": lineno,
        "call_filename": node[_CALL_FILE],
        "call_lineno": node[_CALL_LINE],
        "depth": depth,
        "builtin": builtin,
        "count": count_calls,
        "duration_ms": _ms(total),
        "min_ms": _ms(node[_MIN]) if count_calls else 0.0,
        "max_ms": _ms(node[_MAX]),
        "self_ms": _ms(max(0.0, total - children_time)),
        "children": children,
    }


register_command("trace", handle_trace)
