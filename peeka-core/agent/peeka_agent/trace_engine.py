"""Recording the calls made inside one traced call, on its thread only.

``trace`` hooks the root function with a probe (:mod:`.probes`); at the
root call's start its entry handler hands a :class:`Recorder` to
:func:`start`, and at the end its exit handler calls :func:`stop`. Between
the two, every function started and ended *on that thread* is reported to
the recorder; nothing is recorded on other threads, and outside traced
calls the target pays nothing.

Two engines, chosen by version:

- 3.12+ (:class:`MonitoringEngine`): ``sys.monitoring`` on a tool id of its
  own (``peeka-trace``, the first free of 4, 5, 3, 2, 1, 0; taken while a
  ``trace`` stream exists, freed after). Its events (``PY_START``,
  ``PY_RESUME``, ``PY_THROW``, ``PY_RETURN``, ``PY_YIELD``, ``PY_UNWIND``;
  plus ``CALL``, ``C_RETURN``, ``C_RAISE`` when builtins are wanted) are
  switched on with ``set_events`` when the first traced call starts and off
  when the last one ends. They are global to the interpreter, so while a
  traced call runs, other threads' calls reach the callbacks too, which
  return after one dict lookup of the thread's ident. Each switch makes
  the interpreter re-instrument the code it runs next (about 0.1 us per
  code object), which is part of a traced call's cost.
- 3.8-3.11 (:class:`ProfileEngine`): ``sys.setprofile`` on the traced
  thread only, set at the root's start and removed at its end (the
  previous profile function, normally None, is put back). A thread that
  already has a profile function (a profiler running in the target) is not
  traced: :func:`start` returns False and the call is skipped, never
  disturbing that profiler.

Events the recorder receives: ``start(code, frame)`` (a Python function
started or resumed; ``frame`` its frame, whose ``f_back`` is the caller),
``end(code, frame)`` (it returned, yielded or was unwound by an exception),
``start_builtin(callable, caller_frame)`` / ``end_builtin(callable)``. A
generator's every resumption counts as a call, on both engines.
"""

import sys
import threading

from . import agent_threads
from .commands import CommandError
from .wire import ErrorCode

#: Tool ids tried, in order, for the trace engine's own tool (3.12+).
TOOL_PREFERENCE = (4, 5, 3, 2, 1, 0)
TOOL_NAME = "peeka-trace"

_lock = threading.Lock()
_engine = None


def engine():
    """The engine of this interpreter (created once)."""
    global _engine
    with _lock:
        if _engine is None:
            _engine = MonitoringEngine() if hasattr(sys, "monitoring") else ProfileEngine()
        return _engine


def forget_in_child():
    """In a forked child: every traced call stops recording, the engine is closed, no lock taken."""
    global _lock
    _lock = threading.Lock()
    found = _engine
    if found is not None:
        found.forget_in_child()


class _Engine(object):
    name = "?"

    def __init__(self):
        self.lock = threading.Lock()
        #: ident -> the Recorder of the call traced on that thread.
        self.active = {}
        self.users = 0
        self.tool_id = None

    def forget_in_child(self):
        # A recorder's profiler (3.8-3.11) removes itself at its next event.
        self.lock = threading.Lock()
        for recorder in list(self.active.values()):
            recorder.cancelled = True
        self.active.clear()
        self.users = 0
        self._close()

    def acquire(self):
        """A trace stream opened (may raise CommandError(limit_exceeded))."""
        with self.lock:
            if self.users == 0:
                self._open()
            self.users += 1

    def release(self, owner):
        """A trace stream ended: forget its recorders; the last one frees the engine."""
        with self.lock:
            for ident, recorder in list(self.active.items()):
                if recorder.owner is owner:
                    recorder.cancelled = True
                    self._remove(ident)
            self.users -= 1
            if self.users <= 0:
                self.users = 0
                self._close()

    def start(self, recorder, ident):
        """Starts recording on this (the calling) thread; False if it cannot."""
        with self.lock:
            if ident in self.active or self.users == 0:
                return False
            if not self._begin(recorder):
                return False
            self.active[ident] = recorder
            return True

    def stop(self, ident):
        """Stops recording on this thread (idempotent)."""
        with self.lock:
            if ident in self.active:
                self._remove(ident)

    def _remove(self, ident):
        recorder = self.active.pop(ident)
        self._end(recorder, ident)


class MonitoringEngine(_Engine):
    """3.12+: one sys.monitoring tool, its events on only while traced calls run."""

    name = "monitoring"

    def __init__(self):
        _Engine.__init__(self)
        self.monitoring = sys.monitoring
        self.events_on = 0

    def _open(self):
        mon = self.monitoring
        for tool in TOOL_PREFERENCE:
            if mon.get_tool(tool) is not None:
                continue
            try:
                mon.use_tool_id(tool, TOOL_NAME)
            except ValueError:
                continue
            break
        else:
            users = ", ".join("%d: %r" % (tool, mon.get_tool(tool)) for tool in range(6))
            raise CommandError(
                ErrorCode.LIMIT_EXCEEDED,
                "every sys.monitoring tool id is in use (%s); trace needs one: stop one of these "
                "tools (a debugger, profiler or coverage tool), or end other peeka probes" % users,
            )
        self.tool_id = tool
        events = mon.events
        callbacks = _monitoring_callbacks(self.active)
        for event, callback in zip(
            (
                events.PY_START,
                events.PY_RESUME,
                events.PY_THROW,
                events.PY_RETURN,
                events.PY_YIELD,
                events.PY_UNWIND,
                events.CALL,
                events.C_RETURN,
                events.C_RAISE,
            ),
            callbacks,
        ):
            mon.register_callback(tool, event, callback)

    def _close(self):
        mon = self.monitoring
        tool = self.tool_id
        if tool is None:
            return
        self.tool_id = None
        try:
            mon.set_events(tool, 0)
            events = mon.events
            for event in (
                events.PY_START,
                events.PY_RESUME,
                events.PY_THROW,
                events.PY_RETURN,
                events.PY_YIELD,
                events.PY_UNWIND,
                events.CALL,
                events.C_RETURN,
                events.C_RAISE,
            ):
                mon.register_callback(tool, event, None)
        finally:
            self.events_on = 0
            if mon.get_tool(tool) == TOOL_NAME:
                mon.free_tool_id(tool)

    def _wanted(self):
        events = self.monitoring.events
        mask = (
            events.PY_START
            | events.PY_RESUME
            | events.PY_THROW
            | events.PY_RETURN
            | events.PY_YIELD
            | events.PY_UNWIND
        )
        for recorder in self.active.values():
            if recorder.builtins:
                return mask | events.CALL | events.C_RETURN | events.C_RAISE
        return mask

    def _apply(self):
        wanted = self._wanted() if self.active else 0
        if wanted != self.events_on and self.tool_id is not None:
            self.monitoring.set_events(self.tool_id, wanted)
            self.events_on = wanted

    def _begin(self, recorder):
        return True

    def start(self, recorder, ident):
        with self.lock:
            if ident in self.active or self.users == 0:
                return False
            self.active[ident] = recorder
            self._apply()
            return True

    def _end(self, recorder, ident):
        self._apply()


def _monitoring_callbacks(active):
    """The callbacks of the trace tool: a thread without a recorder returns at once."""
    get = active.get
    get_ident = threading.get_ident
    getframe = sys._getframe

    def on_start(code, offset):
        recorder = get(get_ident())
        if recorder is not None:
            recorder.start(code, getframe(1))

    def on_throw(code, offset, exc):
        recorder = get(get_ident())
        if recorder is not None:
            recorder.start(code, getframe(1))

    def on_end(code, offset, value):
        recorder = get(get_ident())
        if recorder is not None:
            recorder.end(code, getframe(1))

    def on_call(code, offset, callable_, arg0):
        recorder = get(get_ident())
        if recorder is not None and recorder.builtins and type(callable_) in BUILTIN_TYPES:
            recorder.start_builtin(callable_, getframe(1))

    def on_c_end(code, offset, callable_, arg0):
        recorder = get(get_ident())
        if recorder is not None and recorder.builtins:
            recorder.end_builtin(callable_)

    return (on_start, on_start, on_throw, on_end, on_end, on_end, on_call, on_c_end, on_c_end)


class ProfileEngine(_Engine):
    """3.8-3.11: ``sys.setprofile`` on the traced thread for the call's duration."""

    name = "setprofile"

    def _open(self):
        pass

    def _close(self):
        pass

    def _begin(self, recorder):
        # Runs on the traced thread (the root's entry handler).
        if sys.getprofile() is not None:
            return False
        profiler = _make_profiler(recorder)
        recorder.profiler = profiler
        sys.setprofile(profiler)
        return True

    def _end(self, recorder, ident):
        # Only the thread itself can remove its profile function; another
        # thread (a cancel) leaves it to the profiler, which removes itself
        # at its next event because the recorder is cancelled.
        if ident == threading.get_ident() and sys.getprofile() is recorder.profiler:
            sys.setprofile(None)


def _make_profiler(recorder):
    start = recorder.start
    end = recorder.end
    start_builtin = recorder.start_builtin
    end_builtin = recorder.end_builtin
    builtins = recorder.builtins
    builtin_types = BUILTIN_TYPES

    def profiler(frame, event, arg):
        if recorder.cancelled:
            if sys.getprofile() is profiler:
                sys.setprofile(None)
            return
        if event == "call":
            start(frame.f_code, frame)
        elif event == "return":
            end(frame.f_code, frame)
        elif builtins:
            if event == "c_call":
                if type(arg) in builtin_types:
                    start_builtin(arg, frame)
            else:
                end_builtin(arg)

    return profiler


#: The types of the callables recorded as builtins (C functions and methods).
BUILTIN_TYPES = frozenset(
    (
        type(len),  # builtin_function_or_method
        type(list.append),  # method_descriptor
        type(object.__init__),  # wrapper_descriptor
        type(object().__str__),  # method-wrapper
        type(dict.__dict__["fromkeys"]),  # classmethod_descriptor
    )
)


def builtin_name(callable_):
    """``module.qualname`` of a C function or method, read from C attributes only."""
    try:
        qualname = callable_.__qualname__
    except Exception:
        qualname = None
    if not isinstance(qualname, str):
        qualname = "<builtin>"
    module = None
    if type(callable_) is BUILTIN_FUNCTION:
        try:
            module = callable_.__module__
        except Exception:
            module = None
    if isinstance(module, str) and module != "builtins":
        return module + "." + qualname
    return qualname


BUILTIN_FUNCTION = type(len)


def is_agent_thread_ident(ident):
    """Whether ``ident`` is one of the agent's threads (never traced)."""
    return ident in agent_threads._idents
