"""The default probe backend: swapping a function's ``__code__`` (all versions).

How it works
------------
For a probed function ``f`` whose code object is ``C``:

1. A hidden *clone* is made: ``FunctionType(C, f.__globals__, name,
   f.__defaults__, f.__closure__)`` with a copy of ``f.__kwdefaults__``.
   It shares ``f``'s globals and closure cells, so the body behaves exactly
   as before (``nonlocal`` writes, zero-argument ``super()``).
2. A *wrapper* code object ``W`` is compiled from generated source with
   exactly ``C``'s parameters (names, positional-only, keyword-only,
   ``*args``, ``**kwargs``; no defaults: the function object's own
   ``__defaults__``/``__kwdefaults__`` apply, as they did to ``C``, so
   changing them later still works) and exactly ``C``'s ``co_freevars``
   (so that ``f.__code__ = W`` is accepted). ``W``'s body hands the bound
   arguments to a hook object reached through ``W.co_consts`` (the
   compiled placeholder constant is replaced with ``code.replace``): no
   name is added to the module's globals, and ``W`` reads no global at
   all. ``W`` keeps ``C``'s name, qualified name, file and first line, and
   its kind: an ``async def`` for a coroutine function, a generator for a
   generator function, an async generator for one, so
   ``inspect.iscoroutinefunction`` and friends keep their answers.
3. ``f.__code__ = W``. Every call of ``f``, through any reference taken
   before (``from mod import f``, callbacks in dicts, bound methods), runs
   ``W``. For a plain function ``W`` times the call of the clone itself
   and calls the handlers' dispatchers found on the hook; for generators
   and coroutines it delegates (``yield from``/``await``) to a dispatch
   generator or coroutine on the hook that does the same around the
   clone's generator or coroutine; for async generators it drives the
   clone's one itself, forwarding ``asend``/``athrow``/``aclose``.
4. When the last probe of ``f`` goes, ``f.__code__ = C``: the original
   code object, the same identity. The hook is then set to call the clone
   directly, so a wrapper still running (or a copy of ``W`` someone made)
   stays correct.

Several probes on one function share one wrapper; the dispatchers are
rebuilt (and set atomically on the hook) when probes come and go.

Other callers
-------------
Calls that do not go through the function object run the original code
object ``C`` directly: other function objects built from it (every closure
made by one ``def`` has its own function object, only the one the pattern
named is swapped), ``exec(f.__code__)`` of a reference taken before.

- On 3.12+ they are seen too: the clone runs a copy of ``C``
  (``C.replace()``, equal to ``C`` but another object), and every handler
  is also installed on ``C`` itself through ``sys.monitoring``
  (:meth:`~peeka_agent.probe_monitoring.MonitoringBackend.add_cover`), so
  ``C`` runs only for the other callers and those pay the monitoring
  callbacks; calls through the function pay the wrapper alone. The
  monitoring backend is told of the copy
  (:meth:`~peeka_agent.probe_monitoring.MonitoringBackend.set_clone`), so
  that its own probes on ``C`` see the calls through the function too.
  The response's ``tool_id`` is then the monitoring tool's id.
- Before 3.12 they are not seen.

What this backend cannot see
----------------------------
- Before 3.12, the other callers above.
- Frames already running when the probe is installed (a loop inside ``f``
  that never returns, a suspended generator or coroutine: its current
  activation is not observed, later ones are).
- Functions whose ``__code__`` is replaced by someone else while probed (the
  probe then sees nothing; on removal that code is left in place).

Costs and visible differences while probed: each call of a plain function
runs one extra Python frame (the wrapper, which times the call of the
clone itself), a generator or coroutine two (the wrapper and a dispatch
generator); they appear in tracebacks and count toward the recursion
limit. ``f.__code__`` is the wrapper (``co_varnames``, ``co_consts``
differ from the original).

The wrapper of a plain function is the hot path, kept to what a minimal
hand-written timing wrapper does plus the least a probe needs: one
``get_ident`` (the agent-thread check and the observation's thread), two
``perf_counter`` reads around the clone's call, the argument tuple it
already has, and one call of the exit dispatcher with one record tuple
(:mod:`.probes`). With a single handler the dispatcher *is* the handler;
``watch`` without a condition makes that the stream's lazy emitter, so the
record goes to the queue with no further Python frame. Everything is read
from the hook constant (no global lookups, no closures to build).

A function whose only probe is a ``watch`` without ``-b`` or a
``monitor`` runs a wrapper written for that probe instead
(:func:`_inline_exit`, chosen by :class:`_Site`): its condition, when of
the shapes :mod:`.condition_inline` writes as source, and the probe's
action (queueing the record, :class:`~peeka_agent.streams.InlineEmit`;
keeping the duration, :class:`~peeka_agent.monitor_command.InlineSample`)
are part of the wrapper's own code, so an observed call costs no Python
call beyond the clone's, and a call the condition rejects costs the
comparison. The objects it reads (the stream, its queue's methods, the
condition) are constants of that code.
"""

import itertools
import sys
import threading
import time
import types

from . import agent_threads
from .commands import CommandError
from .patterns import (
    KIND_ASYNC_GENERATOR,
    KIND_COROUTINE,
    KIND_FUNCTION,
    KIND_GENERATOR,
    swapped_originals,
)
from .probes import ArgumentLayout, InlineEnd, InlineExit
from .wire import ErrorCode

#: 3.12+: sys.monitoring covers the calls that do not go through the function.
COVERED = hasattr(sys, "monitoring")

_PLACEHOLDER = "__peeka_probe_hook_placeholder__"
# Constants of a plain function's wrapper that never change for a site:
# read with LOAD_CONST rather than as attributes of the hook (on 3.11 a
# method-style call of a slot attribute is not specialised: about 30 ns
# more per call). Never called as literals (that is a SyntaxWarning): the
# wrapper copies them to a local first.
_CLONE = "__peeka_probe_clone_placeholder__"
_CLOCK = "__peeka_probe_clock_placeholder__"
_IDENT = "__peeka_probe_ident_placeholder__"
_THREADS = "__peeka_probe_threads_placeholder__"


class _Hook(object):
    """What a wrapper code object reaches through its constants.

    Plain functions: the wrapper times the call itself, reading ``clone``,
    ``ident`` (``threading.get_ident``), ``threads`` (the agent threads
    module), ``clock`` (``time.perf_counter``), ``enter`` and ``leave``
    (the handlers' dispatchers, or None) from here. Generators and
    coroutines go through ``call``; async generators through ``open`` and
    ``close``. The exception classes are read from here too, so that a
    module global shadowing a builtin name cannot change the wrapper.
    """

    __slots__ = (
        "call",
        "open",
        "close",
        "clone",
        "ident",
        "threads",
        "clock",
        "enter",
        "leave",
        "failed",
        "error",
        "everything",
        "stop_async",
        "generator_exit",
    )

    def __init__(self, clone):
        self.call = self.open = self.close = self.enter = self.leave = None
        self.clone = clone
        self.ident = threading.get_ident
        self.threads = agent_threads
        self.clock = time.perf_counter
        self.failed = _failed
        self.error = Exception
        self.everything = BaseException
        self.stop_async = StopAsyncIteration
        self.generator_exit = GeneratorExit


#: Codes of the backend's own frames (hidden from ``stack``).
hidden_codes = set()
#: The wrappers' codes: a frame running one of them is a probed call.
wrapper_codes = set()


def _unique(name, taken):
    while name in taken:
        name += "_"
    return name


def _placeholder(role):
    """The string constant standing for ``role``'s object in generated source."""
    return "__peeka_probe_%s_placeholder__" % role


def wrapper_source(code, kind, inline=None):
    """The wrapper for ``code`` (a def named ``_peeka_wrapper``): ``(source, constants)``.

    ``inline`` (an :class:`~peeka_agent.probes.InlineExit`, plain functions
    only) writes that exit handler's work into the wrapper instead of a
    call of ``hook.leave`` (see :func:`_inline_exit`); ``constants`` maps
    the placeholders of the objects it reads. None when its condition
    cannot be written inline.
    """
    layout = ArgumentLayout(code)
    positional = layout.positional
    posonly = code.co_posonlyargcount
    signature = list(positional[:posonly])
    if posonly:
        signature.append("/")
    signature.extend(positional[posonly:])
    if layout.varargs:
        signature.append("*" + layout.varargs)
    elif layout.keyword_only:
        signature.append("*")
    signature.extend(layout.keyword_only)
    if layout.varkw:
        signature.append("**" + layout.varkw)
    elements = list(positional) + (["*" + layout.varargs] if layout.varargs else [])
    args = "(%s,)" % ", ".join(elements) if elements else "()"
    items = ["%r: %s" % (name, name) for name in layout.keyword_only]
    if layout.varkw:
        items.append("**" + layout.varkw)
    kwargs = "{%s}" % ", ".join(items)
    hook = repr(_PLACEHOLDER)
    taken = set(code.co_varnames) | set(code.co_freevars)
    free = list(code.co_freevars)
    constants = {}
    lines = []
    outer = _unique("_peeka_outer", taken)
    lines.append("def %s():" % outer)
    if free:
        lines.append("    %s = None" % " = ".join(free))
    header = "def _peeka_wrapper(%s):" % ", ".join(signature)
    if kind == KIND_FUNCTION:
        call = list(positional[:posonly])
        call.extend("%s" % name for name in positional[posonly:])
        if layout.varargs:
            call.append("*" + layout.varargs)
        call.extend("%s=%s" % (name, name) for name in layout.keyword_only)
        if layout.varkw:
            call.append("**" + layout.varkw)
        call = ", ".join(call)
        if not items:
            kwargs = "None"
        h, i, e, t, u, r, x, leave, k, f = (
            _unique("_peeka_" + name, taken)
            for name in ("h", "i", "e", "t", "u", "r", "x", "l", "k", "f")
        )
        # The hot path of a probed call (see "Costs" in the module doc):
        # one get_ident, two clock reads, the clone's call and, with a
        # handler, one call of it with one tuple (or, inline, its work).
        # Everything is read from constants (the hook's enter and leave
        # change, the rest never), nothing from globals.
        if inline is None:

            def hook_call(name, attribute, arguments):
                """Calls the hook's ``attribute`` (when set), counting what it raises."""
                return [
                    "%s = %s.%s" % (name, h, attribute),
                    "if %s is not None:" % name,
                    "    try:",
                    "        %s(%s)" % (name, arguments),
                    "    except %s.error:" % h,
                    "        %s.failed()" % h,
                ]

            record = "(%s, %s, %s, %s, %s, %%s, %%s)" % (args, kwargs, i, t, u)
            on_exception = hook_call(leave, "leave", record % ("None", x))
            on_success = hook_call(leave, "leave", record % (r, "None"))
            enter = hook_call(e, "enter", "%s, %s, %s" % (args, kwargs, i))
        else:
            written = _inline_exit(inline, layout, args, kwargs, (h, i, t, u, r, x), taken)
            if written is None:
                return None
            on_success, on_exception, constants = written
            enter = []
        body = [
            "%s = %r" % (i, _IDENT),
            "%s = %s()" % (i, i),
            "%s = %r" % (f, _CLONE),
            "if %s in %r._idents:" % (i, _THREADS),
            "    return %s(%s)" % (f, call),
            "%s = %s" % (h, hook),
        ]
        body.extend(enter)
        body.extend(
            [
                "%s = %r" % (k, _CLOCK),
                "%s = %s()" % (t, k),
                "try:",
                "    %s = %s(%s)" % (r, f, call),
                "except %s.everything as %s:" % (h, x),
                "    %s = %s()" % (u, k),
            ]
        )
        body.extend("    " + line for line in on_exception)
        body.extend(["    raise", "%s = %s()" % (u, k)])
        body.extend(on_success)
        body.append("return %s" % r)
    elif kind == KIND_GENERATOR:
        body = ["return (yield from %s.call(%s, %s))" % (hook, args, kwargs)]
    elif kind == KIND_COROUTINE:
        header = "async " + header
        body = ["return await %s.call(%s, %s)" % (hook, args, kwargs)]
    elif kind == KIND_ASYNC_GENERATOR:
        header = "async " + header
        gen, state, value, sent, error = (
            _unique("_peeka_" + name, taken) for name in ("gen", "state", "value", "sent", "error")
        )
        body = [
            "%s, %s = %s.open(%s, %s)" % (gen, state, hook, args, kwargs),
            "try:",
            "    %s = await %s.__anext__()" % (value, gen),
            "    while True:",
            "        try:",
            "            %s = yield %s" % (sent, value),
            "        except %s.generator_exit:" % hook,
            "            raise",
            "        except %s.everything as %s:" % (hook, error),
            "            %s = await %s.athrow(%s)" % (value, gen, error),
            "        else:",
            "            if %s is None:" % sent,
            "                %s = await %s.__anext__()" % (value, gen),
            "            else:",
            "                %s = await %s.asend(%s)" % (value, gen, sent),
            "except %s.stop_async:" % hook,
            "    %s.close(%s, None)" % (hook, state),
            "except %s.generator_exit as %s:" % (hook, error),
            "    %s.close(%s, %s)" % (hook, state, error),
            "    await %s.aclose()" % gen,
            "    raise",
            "except %s.everything as %s:" % (hook, error),
            "    %s.close(%s, %s)" % (hook, state, error),
            "    raise",
        ]
    else:
        raise ValueError("unknown function kind %r" % (kind,))
    lines.append("    " + header)
    lines.extend("        " + line for line in body)
    if free:
        # Never runs; makes the outer names free variables of the wrapper.
        lines.append("        if False:")
        lines.append("            (%s,)" % ", ".join(free))
    lines.append("    return _peeka_wrapper")
    return "\n".join(lines) + "\n", constants


def _inline_exit(inline, layout, args, kwargs, names, taken):
    """The wrapper's two exit paths doing ``inline``'s work: (on success, on exception, constants).

    Each observed end evaluates the condition (when there is one) written
    as source by :mod:`.condition_inline`, then runs ``inline.action``'s
    lines (``watch``: queue the record as the stream's lazy emitter would,
    :class:`~peeka_agent.streams.InlineEmit`; ``monitor``: keep the
    duration, :class:`~peeka_agent.monitor_command.InlineSample`).
    A failing condition is counted by ``Condition.failed`` and is false; a
    false result reports pending failures as the exit handler does; any
    other exception goes to ``inline.fail``. None when the condition has a
    shape that is not inlined (the wrapper then calls the handler).
    """
    h, i, t, u, r, x = names
    condition = inline.condition
    positional = layout.positional
    offset = 1 if inline.is_method else 0

    def param(index):
        if index < 0:
            # params[-1] is args[-1] only if params is not empty: leave it to expr.
            return None
        index += offset
        if index < len(positional):
            return positional[index]
        return "%s[%d]" % (args, index)

    def condition_source(result, exc):
        values = {"returnObj": result, "throwExp": exc, "cost": "(%s - %s) * 1e3" % (u, t)}
        if not inline.is_method:
            values["target"] = "None"
        elif positional:
            values["target"] = positional[0]
        else:
            values["target"] = "(%s[0] if %s else None)" % (args, args)
        # Only with a condition: the module imports ast (which would stay after detach).
        from .condition_inline import inline_condition

        return inline_condition(condition.source, values, param)

    locals_ = {}

    def local(role):
        name = locals_.get(role)
        if name is None:
            name = locals_[role] = _unique("_peeka_c_" + role, taken)
        return name

    constants = {}

    def load(role):
        """The statement setting the local of ``role`` to its constant."""
        return "%s = %r" % (local(role), _placeholder(role))

    action = inline.action
    for role, value in action.constants.items():
        constants[_placeholder(role)] = value
    constants[_placeholder("fail")] = inline.fail
    count = _unique("_peeka_n", taken)
    failure = _unique("_peeka_error", taken)

    def path(record, result, exc):
        end = InlineEnd(record, t, u, exc != "None")
        acting = action.lines(end, local, load, count)
        guarded = ["try:"] + ["    " + line for line in acting]
        guarded += ["except %s.everything as %s:" % (h, failure)]
        guarded += ["    " + load("fail")]
        guarded += ["    %s(%s)" % (local("fail"), failure)]
        if condition is None:
            return guarded
        test = condition_source(result, exc)
        if test is None or "__peeka_probe_" in test:
            # (a literal spelling a placeholder would be replaced by its object)
            return None
        flag = _unique("_peeka_ok", taken)
        constants[_placeholder("condition")] = condition
        constants[_placeholder("report")] = inline.report
        lines = ["try:", "    %s = %s" % (flag, test)]
        lines += ["except %s.everything as %s:" % (h, failure)]
        lines += ["    " + load("condition")]
        lines += ["    %s = %s.failed(%s)" % (flag, local("condition"), failure)]
        lines += ["if %s:" % flag] + ["    " + line for line in guarded]
        lines += ["else:", "    " + load("condition")]
        lines += ["    if %s.last_error is not None:" % local("condition")]
        lines += ["        " + load("report")]
        lines += ["        %s()" % local("report")]
        return lines

    on_success = []
    if inline.on_success:
        on_success = path("%s, %s, %s, %s, %s, %s, None" % (args, kwargs, i, t, u, r), r, "None")
    on_exception = []
    if inline.on_exception:
        on_exception = path(
            "%s, %s, %s, %s, %s, None, %s" % (args, kwargs, i, t, u, x), "None", x
        )
    if on_success is None or on_exception is None:
        return None
    return on_success, on_exception, constants


def make_wrapper_code(code, kind, hook, inline=None):
    """The wrapper code object for ``code``, its hook constant set to ``hook``.

    With ``inline`` (see :func:`wrapper_source`), None when its condition
    cannot be written inline.
    """
    written = wrapper_source(code, kind, inline)
    if written is None:
        return None
    source, constants = written
    module = compile(source, code.co_filename, "exec", dont_inherit=True)
    outer = [c for c in module.co_consts if isinstance(c, types.CodeType)][0]
    wrapper = [c for c in outer.co_consts if isinstance(c, types.CodeType)][0]
    if wrapper.co_freevars != code.co_freevars:
        raise ValueError(
            "the wrapper's free variables %r differ from %r"
            % (wrapper.co_freevars, code.co_freevars)
        )
    replacements = {
        _PLACEHOLDER: hook,
        _CLONE: hook.clone,
        _CLOCK: hook.clock,
        _IDENT: hook.ident,
        _THREADS: hook.threads,
    }
    replacements.update(constants)
    consts = tuple(
        replacements[const] if (type(const) is str and const in replacements) else const
        for const in wrapper.co_consts
    )
    changes = {
        "co_consts": consts,
        "co_name": code.co_name,
        "co_firstlineno": code.co_firstlineno,
    }
    if hasattr(code, "co_qualname"):
        changes["co_qualname"] = code.co_qualname
    made = wrapper.replace(**changes)
    if inline is not None:
        try:
            hash(made)  # the backend keeps its wrappers in sets
        except TypeError:
            return None
    return made


class _Errors(object):
    """Counts exceptions that escaped a handler (handlers should catch their own)."""

    count = 0


errors = _Errors()


def _failed():
    errors.count += 1


def _finish(exits, args, kwargs, ident, t0, t1, result, exc):
    record = (args, kwargs, ident, t0, t1, result, exc)
    for leave in exits:
        try:
            leave(record)
        except Exception:
            _failed()


def _make_dispatch(kind, clone, entries, exits, count=None):
    """The hook's ``call`` (or ``open``/``close``) for the current handlers.

    ``count`` (plain functions only): called once per call that ends, while
    some handler is parked (see ``_Site.park``).

    Entry handlers are called from the dispatch function itself (never
    through a helper), which keeps ``sys._getframe(CALLER_DEPTH)`` right.
    """
    perf_counter = time.perf_counter
    get_ident = threading.get_ident
    threads = agent_threads
    finish = _finish
    failed = _failed

    if kind == KIND_GENERATOR:

        def call_generator(args, kwargs):
            ident = get_ident()
            if ident in threads._idents:
                return (yield from clone(*args, **kwargs))
            for enter in entries:
                try:
                    enter(args, kwargs, ident)
                except Exception:
                    failed()
            t0 = perf_counter()
            try:
                result = yield from clone(*args, **kwargs)
            except BaseException as exc:
                finish(exits, args, kwargs, ident, t0, perf_counter(), None, exc)
                raise
            finish(exits, args, kwargs, ident, t0, perf_counter(), result, None)
            return result

        return {"call": call_generator}

    if kind == KIND_COROUTINE:

        async def call_coroutine(args, kwargs):
            ident = get_ident()
            if ident in threads._idents:
                return await clone(*args, **kwargs)
            for enter in entries:
                try:
                    enter(args, kwargs, ident)
                except Exception:
                    failed()
            t0 = perf_counter()
            try:
                result = await clone(*args, **kwargs)
            except BaseException as exc:
                finish(exits, args, kwargs, ident, t0, perf_counter(), None, exc)
                raise
            finish(exits, args, kwargs, ident, t0, perf_counter(), result, None)
            return result

        return {"call": call_coroutine}

    if kind == KIND_ASYNC_GENERATOR:

        def open_async_generator(args, kwargs):
            ident = get_ident()
            if ident in threads._idents:
                return clone(*args, **kwargs), None
            for enter in entries:
                try:
                    enter(args, kwargs, ident)
                except Exception:
                    failed()
            return clone(*args, **kwargs), (args, kwargs, ident, perf_counter())

        def close_async_generator(state, exc):
            if state is not None:
                args, kwargs, ident, t0 = state
                finish(exits, args, kwargs, ident, t0, perf_counter(), None, exc)

        return {"open": open_async_generator, "close": close_async_generator}

    # Plain functions: the wrapper itself times the call and calls these.
    if len(entries) == 1:
        enter = entries[0]
    elif entries:

        def enter(args, kwargs, ident):
            for one in entries:
                try:
                    one(args, kwargs, ident)
                except Exception:
                    failed()

    else:
        enter = None
    if len(exits) == 1:
        leave = exits[0]
    elif exits:

        def leave(record):
            for one in exits:
                try:
                    one(record)
                except Exception:
                    failed()

    else:
        leave = None
    if count is not None:
        observed = leave
        if observed is None:

            def leave(record):
                count()

        else:

            def leave(record):
                count()
                observed(record)

    return {"enter": enter, "leave": leave}


class _CountCalls(object):
    """The inline action of a function whose handlers are parked but ``then``'s
    (an inline action, or None): count the call, then do ``then``'s work.

    It counts with ``box[0]``, the current counter's ``__next__`` (see
    ``_Site.rebuild``), so that one wrapper, compiled once, serves every
    parking; a C call, no Python frame.
    """

    def __init__(self, box, then=None):
        self._then = then
        self.ROLES = ("count",) + (tuple(then.ROLES) if then is not None else ())
        self.constants = dict(then.constants if then is not None else {}, count=box)

    def lines(self, end, local, load, temporary):
        counting = [load("count"), "%s[0]()" % local("count")]
        if self._then is None:
            return counting
        return counting + self._then.lines(end, local, load, temporary)


def _count_failed(exc):
    _failed()


def _passthrough(kind, clone):
    """The hook's attributes once no probe is left: call the clone, observe nothing."""
    return _make_dispatch(kind, clone, (), ())


class _Site(object):
    """One swapped function: its original code, clone, hook, wrappers and handlers.

    The function runs ``current``: the generic ``wrapper``, which calls the
    hook's dispatchers, or, while its only handler has an inline exit and
    no entry (``watch`` without ``-b``, ``monitor``), a wrapper written for that handler
    (:func:`_inline_exit`), which does the handler's work itself. Handlers
    coming and going switch between the two with one ``__code__``
    assignment, after the hook's dispatchers are updated, so a call sees
    either the old handlers or the new ones.
    """

    def __init__(self, function, kind):
        self.function = function
        self.kind = kind
        self.original = function.__code__
        # 3.12+: the clone runs a copy of the code, so that sys.monitoring
        # tells the calls through the function from the other ones (see
        # "Other callers" in the module documentation).
        self.clone_code = self.original.replace() if COVERED else self.original
        clone = types.FunctionType(
            self.clone_code,
            function.__globals__,
            function.__name__,
            function.__defaults__,
            function.__closure__,
        )
        kwdefaults = function.__kwdefaults__
        clone.__kwdefaults__ = dict(kwdefaults) if kwdefaults else None
        clone.__qualname__ = function.__qualname__
        self.clone = clone
        self.hook = _Hook(clone)
        self.handlers = ()
        #: Handlers parked (see park()); each keeps in ``handler.missed`` the
        #: call counters of the dispatchers built while it was.
        self.parked = set()
        # The counter of the calls the parked handlers miss, and the wrappers
        # that count it (see _choose): the one active handler, or None ->
        # its wrapper (built on first use, False if it cannot be).
        self.count_box = [None]
        self._counting = {}
        self.wrapper = make_wrapper_code(self.original, kind, self.hook)
        self.current = self.wrapper
        self.swapped = False
        # The inline wrapper of the current single handler: (handler, code or None).
        self._inlined = (None, None)
        self.rebuild()

    def rebuild(self):
        parked = self.parked
        active = tuple(h for h in self.handlers if h not in parked)
        entries = tuple(h.enter for h in active if h.enter is not None)
        exits = tuple(h.exit for h in active if h.exit is not None)
        count = None
        if parked:
            # The calls the parked handlers miss from now on, counted by the
            # dispatchers built here (the previous ones count into theirs).
            counter = itertools.count()
            for handler in parked:
                handler.missed.append(counter)
            count = counter.__next__
            self.count_box[0] = count
        for name, fn in _make_dispatch(self.kind, self.clone, entries, exits, count).items():
            if name in ("call", "open", "close"):
                hidden_codes.add(fn.__code__)
            setattr(self.hook, name, fn)
        previous = self.current
        self.current = self._choose()
        if self.current is not previous:
            hidden_codes.add(self.current)
            wrapper_codes.add(self.current)
            if self.swapped and self.function.__code__ is previous:
                self.function.__code__ = self.current
            if previous is not self.wrapper:
                hidden_codes.discard(previous)
                wrapper_codes.discard(previous)

    def _counting_wrapper(self, handler):
        """The wrapper that counts the calls the parked handlers miss, then does
        ``handler``'s inline work (None: nothing else); None if it cannot be written."""
        if handler is None:
            inline = InlineExit(
                _CountCalls(self.count_box), None, True, True, False, None, _count_failed
            )
        else:
            own = handler.inline
            inline = InlineExit(
                _CountCalls(self.count_box, own.action),
                None,
                True,
                True,
                own.is_method,
                own.report,
                own.fail,
            )
        return make_wrapper_code(self.original, self.kind, self.hook, inline)

    def parkable(self, handler):
        """Whether ``handler`` may be parked: a plain function's ``watch`` whose
        every call is one observation (no entry, no condition, every end)."""
        inline = handler.inline
        probe = handler.probe
        return (
            self.kind == KIND_FUNCTION
            and handler in self.handlers
            and handler.enter is None
            and inline is not None
            and inline.condition is None
            and inline.on_success
            and inline.on_exception
            and getattr(probe, "command", None) == "watch"
            and getattr(probe.stream, "max_items", 1) is None
        )

    def park(self, handler):
        """Stops calling ``handler`` (its stream is flooded) and starts counting the calls it misses.

        The counters go to ``handler.missed``, which stays with the handler
        when it is removed while parked.
        """
        if handler not in self.parked:
            handler.missed = []
            self.parked.add(handler)
            self.rebuild()

    def unpark(self, handler):
        """Calls ``handler`` again (its counters stay in ``handler.missed``)."""
        if handler in self.parked:
            self.parked.discard(handler)
            self.rebuild()

    def _choose(self):
        """The wrapper for the current handlers (see the class documentation)."""
        handlers = self.handlers
        if self.parked:
            # Every handler parked, or all but one that can be inlined: a
            # wrapper that counts the call, then does that one's work.
            active = [h for h in handlers if h not in self.parked]
            if self.kind == KIND_FUNCTION and (
                not active or (len(active) == 1 and self.parkable(active[0]))
            ):
                key = active[0] if active else None
                code = self._counting.get(key)
                if code is None:
                    code = self._counting[key] = self._counting_wrapper(key) or False
                if code:
                    return code
            return self.wrapper  # counts the calls the parked handlers miss
        if self.kind != KIND_FUNCTION or len(handlers) != 1:
            return self.wrapper
        handler = handlers[0]
        if handler.inline is None or handler.enter is not None:
            return self.wrapper
        if self._inlined[0] is not handler:
            code = make_wrapper_code(self.original, self.kind, self.hook, handler.inline)
            self._inlined = (handler, code)
        return self._inlined[1] or self.wrapper

    def swap_in(self):
        swapped_originals[id(self.function)] = self.original
        hidden_codes.add(self.current)
        wrapper_codes.add(self.current)
        hidden_codes.add(self.wrapper)
        wrapper_codes.add(self.wrapper)
        self.function.__code__ = self.current
        self.swapped = True

    def swap_out(self):
        """Restores the original code (unless someone replaced the wrapper); True if restored."""
        for name, fn in _passthrough(self.kind, self.clone).items():
            if name in ("call", "open", "close"):
                hidden_codes.add(fn.__code__)
            setattr(self.hook, name, fn)
        self.swapped = False
        restored = False
        if self.function.__code__ is self.current:
            self.function.__code__ = self.original
            restored = True
        swapped_originals.pop(id(self.function), None)
        # Forget this site's wrappers (a frame still running one then shows in stacks).
        for code in (self.wrapper, self.current):
            hidden_codes.discard(code)
            wrapper_codes.discard(code)
        self._inlined = (None, None)
        return restored


def _monitoring():
    """The sys.monitoring backend, which covers the other callers (3.12+)."""
    from .probes import backend

    return backend("monitoring")


class CodeSwapBackend(object):
    """Installs handlers by swapping ``__code__`` (see the module documentation)."""

    name = "code_swap"
    wrapper_codes = wrapper_codes
    hidden_codes = hidden_codes

    def __init__(self):
        self._lock = threading.RLock()
        self._sites = {}  # id(function) -> _Site

    @property
    def tool_id(self):
        """The sys.monitoring tool id of the cover while one is installed (3.12+), else None."""
        if not COVERED:
            return None
        return _monitoring().tool_id

    def add(self, handler):
        target = handler.target
        function = target.function
        with self._lock:
            site = self._sites.get(id(function))
            if site is None or site.function is not function:
                if function.__code__ is not target.code:
                    raise CommandError(
                        ErrorCode.INVALID_STATE,
                        "`%s` had its code replaced while the probe was being installed; "
                        "try again" % target.name,
                    )
                try:
                    site = _Site(function, target.kind)
                except (ValueError, TypeError, SyntaxError) as exc:
                    raise CommandError(
                        ErrorCode.INVALID_STATE,
                        "`%s` cannot be instrumented: %s" % (target.name, exc),
                    )
                if COVERED:
                    # The cover first: a call through the function is seen
                    # by it until the swap, by the wrapper after.
                    monitoring = _monitoring()
                    monitoring.set_clone(site.original, site.clone_code)
                    try:
                        monitoring.add_cover(handler)
                    except BaseException:
                        monitoring.clear_clone(site.original)
                        raise
                try:
                    site.handlers = (handler,)
                    site.rebuild()
                    site.swap_in()
                except BaseException:
                    site.handlers = ()
                    site.swap_out()
                    if COVERED:
                        monitoring.remove_cover(handler)
                        monitoring.clear_clone(site.original)
                    raise
                self._sites[id(function)] = site
                return
            if COVERED:
                _monitoring().add_cover(handler)
            previous = site.handlers
            try:
                site.handlers = previous + (handler,)
                site.rebuild()
            except BaseException:
                site.handlers = previous
                site.rebuild()
                if COVERED:
                    _monitoring().remove_cover(handler)
                raise

    def remove(self, handler):
        function = handler.target.function
        with self._lock:
            site = self._sites.get(id(function))
            if site is None or handler not in site.handlers:
                return
            site.handlers = tuple(h for h in site.handlers if h is not handler)
            site.parked.discard(handler)
            site._counting.pop(handler, None)
            if site.handlers:
                site.rebuild()
            else:
                del self._sites[id(function)]
                site.swap_out()
            if COVERED:
                monitoring = _monitoring()
                monitoring.remove_cover(handler)
                if not site.handlers:
                    monitoring.clear_clone(site.original)

    def park(self, handler):
        """Stops calling ``handler`` while its stream is flooded; whether it was parked.

        Only a ``watch`` whose every call is one observation is parked (see
        ``_Site.parkable``): the calls it misses are then exactly its drops.
        """
        with self._lock:
            site = self._sites.get(id(handler.target.function))
            if site is None or not site.parkable(handler):
                return False
            site.park(handler)
            return True

    def unpark(self, handler):
        """Calls a parked ``handler`` again (if it is still installed); returns the
        counters of the calls it missed while parked.

        Read them a little later, not at once: a call that had read the
        previous dispatchers just before they were replaced may still be
        about to count (see ``Stream._w_settle_parked``).
        """
        with self._lock:
            site = self._sites.get(id(handler.target.function))
            if site is not None and site.function is handler.target.function:
                site.unpark(handler)
            counters, handler.missed = handler.missed, None
        return counters or []

    def forget_in_child(self):
        """In a forked child: every function gets its code back, without a lock.

        The monitoring backend (the cover, 3.12+) forgets its part itself.
        """
        self._lock = threading.RLock()
        sites = list(self._sites.values())
        self._sites.clear()
        for site in sites:
            site.handlers = ()
            site.swap_out()

    def active_functions(self):
        """The functions currently swapped (for tests and ``info``)."""
        with self._lock:
            return [site.function for site in self._sites.values()]
