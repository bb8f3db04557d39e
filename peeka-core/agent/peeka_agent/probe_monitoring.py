"""The probe backend on ``sys.monitoring`` (PEP 669), CPython 3.12+.

A request names it with ``"backend": "monitoring"``; ``trace`` uses it by
default on 3.12+. Probes of the default backend, ``__code__`` swapping,
use it too there, for the calls that do not go through the swapped
function (see "Beside __code__ swapping").

How it works
------------
- One tool id, taken when the first probe is installed: the first free one
  of 3, 4, 5, 2, 1, 0 (ids 0, 1 and 2 are the conventional ones of
  debuggers, coverage tools and profilers, so they are taken last). When
  all six are in use the probe is refused with ``limit_exceeded`` naming
  their users. Debuggers, profilers and coverage tools on other ids keep
  working: tools do not see each other's events.
- Local events on the probed code objects only: ``PY_START`` (a call's
  first start; for generators and coroutines their first ``next``/``send``)
  and ``PY_RETURN`` (the end; its value is the real result, the
  ``StopIteration`` value of a generator or coroutine). Suspensions
  (``PY_YIELD``/``PY_RESUME``) are not needed, so ``cost`` is the whole life
  of a coroutine. The rest of the program pays nothing.
- ``PY_UNWIND`` (a frame left by an exception) can be a local event only
  from 3.15; before, it is set globally for the tool while a probe needs
  exits, and its callback returns at once for other code objects (one dict
  lookup per frame unwound by an exception, anywhere).
- One registration per code object, dispatching to every handler on it (two
  clients probing one function both work). A call is matched to its end by
  its frame object (``sys._getframe(1)`` in the callback), so recursion,
  threads and interleaved coroutines are paired correctly, and an end
  whose start was not seen (a frame already running when the probe came)
  is ignored.

Costs (measured on 3.12-3.15, see docs/commands.md "Cost"): each event
invokes a Python callback from C (25-40 ns each), the start needs the frame
(``sys._getframe``, about 55 ns: it creates the frame object) and
``f_locals`` to read the arguments (15-90 ns by version), and the end a
second frame lookup. Code running inside the callbacks is not slower than
elsewhere (measured: the same bodies cost the same called directly); what
was expensive was looking up the probed code object in a dict, since a code
object's hash is recomputed from its contents at each call (about 50 ns):
sites are keyed by ``id(code)``, and each probed code object gets callbacks
made for it (its site bound in their closure, the arguments of one or two
plain parameters read inline), registered directly when it is the only one
probed: 10,100 instructions per call on 3.12 against 12,500 for callbacks
that look the site up (callgrind, a no-op handler). Pairing calls through a
per-thread stack (``get_ident`` at the end, push/pop) instead of the frame
was measured no cheaper (the start needs the frame for the arguments
anyway, and finding the thread's stack at the end costs what the second
frame lookup does), and it would be wrong for greenlets (several stacks on
one OS thread) and after a missed event: the frame stays the key.
- When the last probe of a code object goes: ``set_local_events(tool,
  code, 0)``; when the last probe goes: global events off, callbacks
  unregistered, ``free_tool_id``. Callbacks never return
  ``sys.monitoring.DISABLE`` (it would silence the location for this tool
  until ``restart_events()``), and never raise into the target: internal
  errors are counted (``errors``) and end the probe (see
  :meth:`peeka_agent.probes.Probe.fail`).

Beside ``__code__`` swapping
----------------------------
A code-swapped function ``f`` whose code was ``C`` runs a wrapper that
calls a clone running ``C2``, a copy of ``C`` (equal to it, another
object; :mod:`.probe_code_swap`). So that both kinds of probes see every
call:

- the code swapping backend installs each of its handlers on ``C`` as a
  *cover* (:meth:`MonitoringBackend.add_cover`): ``C`` now runs only for
  the calls that bypass ``f`` (other closures of the ``def``), which the
  wrapper does not see;
- it declares ``C2`` (:meth:`MonitoringBackend.set_clone`): this backend's
  own probes on ``C`` are then installed on ``C2`` too, which runs the
  calls through ``f``. Covers are not: the wrapper reports those calls.

Tables are keyed by ``id(code)``, since ``C2 == C``.

Limits
------
- A probe sees every function sharing the code object (every closure made
  by one ``def``).
- Calls whose start was seen but whose end never comes (a generator closed
  while suspended outside any ``try`` on 3.13, where the interpreter skips
  the unwind event) wait in a bounded table (:data:`MAX_PENDING` calls per
  function, orphans purged when it fills) and are never reported.
"""

import sys
import threading
import time

from . import agent_threads
from .commands import CommandError
from .probe_code_swap import hidden_codes as code_swap_hidden_codes
from .probes import ArgumentLayout
from .wire import ErrorCode

#: Tool ids in the order they are tried.
TOOL_PREFERENCE = (3, 4, 5, 2, 1, 0)
#: Tool name announced to sys.monitoring.get_tool().
TOOL_NAME = "peeka"
#: Calls started and not yet ended remembered per function.
MAX_PENDING = 4096

_EMPTY = {}


def make_argument_reader(code):
    """``read(frame) -> (args, kwargs)`` from a frame of ``code`` at its first start.

    The callbacks read the arguments of one or two plain parameters inline
    (:meth:`MonitoringBackend._make_site_callbacks`); this reader serves the
    other signatures.
    """
    layout = ArgumentLayout(code)
    positional = layout.positional
    keyword_only = layout.keyword_only
    varargs = layout.varargs
    varkw = layout.varkw
    if layout.is_plain():

        def read_positional(frame):
            local = frame.f_locals
            return tuple([local[name] for name in positional]), _EMPTY

        return read_positional

    def read(frame):
        local = frame.f_locals
        args = tuple([local[name] for name in positional])
        if varargs is not None:
            args = args + tuple(local[varargs])
        kwargs = {}
        for name in keyword_only:
            kwargs[name] = local[name]
        if varkw is not None:
            kwargs.update(local[varkw])
        return args, kwargs

    return read


class MonitoringBackend(object):
    """Installs handlers with ``sys.monitoring`` (see the module documentation)."""

    name = "monitoring"
    #: A frame running one of these is a probed call (the real code here).
    wrapper_codes = frozenset()
    #: Frames to leave out of stacks and trees: none of this backend's own,
    #: but those of the code swapping one (a function probed by both runs
    #: its wrapper above the frame this backend sees).
    hidden_codes = code_swap_hidden_codes

    def __init__(self):
        self.monitoring = sys.monitoring
        self.tool_id = None
        #: Internal errors caught in callbacks.
        self.errors = 0
        self._lock = threading.RLock()
        # id(code) -> (entries, exit or None, read_args or None, pending
        # dict); read without the lock by the callbacks, each value replaced
        # wholesale on change. Keyed by id: a code object's hash is not
        # cached (it hashes its bytecode, names and constants, about 50 ns
        # per lookup); the code objects are kept alive in _codes, so their
        # ids stay theirs while they are here.
        self._sites = {}
        self._codes = {}  # id(code) -> code
        # id(code) -> (code, handlers): the probes of this backend on a code
        # object (keyed by id: a copy of a code object compares equal to it).
        self._handlers = {}
        # id(code) -> (code, handlers): the cover of code-swapped functions
        # (see "Beside __code__ swapping" in the module documentation).
        self._covers = {}
        # id(original) -> clone code, and id(clone) -> original, while a
        # function running ``original`` is code-swapped.
        self._clones = {}
        self._originals = {}
        self._global_unwind = False
        self._local_unwind = None  # unknown until tried
        # The dispatchers used while several code objects are probed, and
        # their table id(code) -> (start, finish) (replaced wholesale).
        self._dispatchers = None
        self._dispatch_table = {}

    # -- installation (under the lock) --------------------------------------

    def add(self, handler):
        """Installs a probe's handler on its target's code object (and on its clone, if any)."""
        self._add(self._handlers, handler)

    def remove(self, handler):
        self._remove(self._handlers, handler)

    def add_cover(self, handler):
        """Installs a code-swapped probe's handler on the original code object only."""
        self._add(self._covers, handler)

    def remove_cover(self, handler):
        self._remove(self._covers, handler)

    def set_clone(self, original, clone):
        """``original`` is code-swapped: its calls through the function now run ``clone``."""
        with self._lock:
            self._clones[id(original)] = clone
            self._originals[id(clone)] = original
            if self.tool_id is not None:
                self._refresh(clone)
                self._select_callbacks()

    def clear_clone(self, original):
        """``original`` runs again for the function's calls: forget its clone."""
        with self._lock:
            clone = self._clones.pop(id(original), None)
            if clone is None:
                return
            self._originals.pop(id(clone), None)
            if self.tool_id is not None:
                self._refresh(clone)
                if self._sites:
                    self._select_callbacks()

    def forget_in_child(self):
        """In a forked child: the tool's events and callbacks off, its id freed, without a lock."""
        self._lock = threading.RLock()
        self._handlers.clear()
        self._covers.clear()
        self._clones.clear()
        self._originals.clear()
        if self.tool_id is not None:
            self._release()

    def _add(self, table, handler):
        code = handler.target.code
        with self._lock:
            if self.tool_id is None:
                self._acquire()
            try:
                entry = table.get(id(code))
                table[id(code)] = (code, (entry[1] if entry else ()) + (handler,))
                self._refresh(code)
                clone = self._clones.get(id(code))
                if clone is not None:
                    self._refresh(clone)
                self._select_callbacks()
            except BaseException:
                self._drop(table, code, handler)
                raise

    def _remove(self, table, handler):
        code = handler.target.code
        with self._lock:
            self._drop(table, code, handler)

    def _drop(self, table, code, handler):
        entry = table.get(id(code))
        handlers = tuple(h for h in (entry[1] if entry else ()) if h is not handler)
        if handlers:
            table[id(code)] = (code, handlers)
        else:
            table.pop(id(code), None)
        if self.tool_id is None:
            return
        self._refresh(code)
        clone = self._clones.get(id(code))
        if clone is not None:
            self._refresh(clone)
        if not self._handlers and not self._covers:
            self._release()
        else:
            self._select_callbacks()

    def _handlers_of(self, code):
        """The handlers to run for ``code``: its probes and covers, or, for a clone, the probes of its original."""
        original = self._originals.get(id(code))
        if original is not None:
            entry = self._handlers.get(id(original))
            return entry[1] if entry else ()
        entry = self._handlers.get(id(code))
        cover = self._covers.get(id(code))
        return (entry[1] if entry else ()) + (cover[1] if cover else ())

    def _refresh(self, code):
        """Recomputes the site of ``code`` and its local events."""
        mon = self.monitoring
        events = mon.events
        handlers = self._handlers_of(code)
        if not handlers:
            site = self._sites.pop(id(code), None)
            self._codes.pop(id(code), None)
            mon.set_local_events(self.tool_id, code, 0)
            if site is not None:
                site[3].clear()
            self._update_global_unwind()
            return
        entries = tuple(h.enter for h in handlers if h.enter is not None)
        exits = tuple(h.exit for h in handlers if h.exit is not None)
        needs_args = any(h.needs_args for h in handlers)
        old = self._sites.get(id(code))
        pending = old[3] if old is not None else {}
        reader = make_argument_reader(code) if needs_args else None
        wanted = events.PY_START
        if exits:
            wanted |= events.PY_RETURN
        leave = exit_dispatcher(exits, self._count_error)
        self._sites[id(code)] = (entries, leave, reader, pending)
        self._codes[id(code)] = code
        if exits and self._local_unwind is not False:
            try:
                mon.set_local_events(self.tool_id, code, wanted | events.PY_UNWIND)
                self._local_unwind = True
            except ValueError:
                self._local_unwind = False
                mon.set_local_events(self.tool_id, code, wanted)
        else:
            mon.set_local_events(self.tool_id, code, wanted)
        self._update_global_unwind()

    def _select_callbacks(self):
        """Registers the start and return callbacks fitting the current sites.

        Each probed code object gets its own pair of callbacks with its site
        bound in their closure (:meth:`_make_site_callbacks`), so a call
        costs no lookup (measured about a fifth fewer instructions per call
        on 3.12 than looking the site up). With one probed code object (the
        usual case) its pair is registered itself; with several, a pair of
        dispatchers finds the code object's pair by ``id(code)`` (one more
        Python call per event). A callback already running on another
        thread finishes with what it had: the pending table is carried from
        one site tuple to the next, so a call started under one pair of
        callbacks is paired under the other.
        """
        if self.tool_id is None:
            return
        if len(self._sites) == 1:
            ((key, site),) = self._sites.items()
            start, finish = self._make_site_callbacks(self._codes[key], site, 1)
        else:
            self._dispatch_table = dict(
                (key, self._make_site_callbacks(self._codes[key], site, 2))
                for key, site in self._sites.items()
            )
            start, finish = self._dispatchers
        mon = self.monitoring
        mon.register_callback(self.tool_id, mon.events.PY_START, start)
        mon.register_callback(self.tool_id, mon.events.PY_RETURN, finish)

    def _update_global_unwind(self):
        mon = self.monitoring
        needed = self._local_unwind is False and any(
            site[1] is not None for site in self._sites.values()
        )
        if needed != self._global_unwind:
            mon.set_events(self.tool_id, mon.events.PY_UNWIND if needed else 0)
            self._global_unwind = needed

    def _acquire(self):
        mon = self.monitoring
        for tool in TOOL_PREFERENCE:
            if mon.get_tool(tool) is not None:
                continue
            try:
                mon.use_tool_id(tool, TOOL_NAME)
            except ValueError:
                continue  # taken meanwhile
            break
        else:
            users = ", ".join("%d: %r" % (tool, mon.get_tool(tool)) for tool in range(6))
            raise CommandError(
                ErrorCode.LIMIT_EXCEEDED,
                "every sys.monitoring tool id is in use (%s); stop one of these tools "
                "(a debugger, profiler or coverage tool) to probe functions" % users,
            )
        self.tool_id = tool
        self._dispatchers = self._make_dispatchers()
        mon.register_callback(tool, mon.events.PY_UNWIND, self._make_unwind_callback())

    def _release(self):
        mon = self.monitoring
        tool = self.tool_id
        for code in list(self._codes.values()):
            mon.set_local_events(tool, code, 0)
        self._sites.clear()
        self._codes.clear()
        events = mon.events
        try:
            mon.set_events(tool, 0)
            for event in (events.PY_START, events.PY_RETURN, events.PY_UNWIND):
                mon.register_callback(tool, event, None)
        finally:
            self._global_unwind = False
            self.tool_id = None
            self._dispatchers = None
            self._dispatch_table = {}
            if mon.get_tool(tool) == TOOL_NAME:
                mon.free_tool_id(tool)

    # -- the callbacks (target threads) -------------------------------------

    def _make_dispatchers(self):
        """Start and return callbacks that hand each event to its code object's pair."""
        code_id = id
        backend = self

        def on_start(code, offset):
            try:
                pair = backend._dispatch_table.get(code_id(code))
                if pair is not None:
                    pair[0](code, offset)
            except Exception:
                backend.errors += 1

        def on_return(code, offset, value):
            try:
                pair = backend._dispatch_table.get(code_id(code))
                if pair is not None:
                    pair[1](code, offset, value)
            except Exception:
                backend.errors += 1

        return on_start, on_return

    def _make_unwind_callback(self):
        """The ``PY_UNWIND`` callback: ends a probed call left by an exception."""
        sites_get = self._sites.get
        code_id = id
        getframe = sys._getframe
        perf_counter = time.perf_counter
        backend = self

        def on_unwind(code, offset, exc):
            try:
                site = sites_get(code_id(code))
                if site is None:
                    return
                t1 = perf_counter()
                entry = site[3].pop(getframe(1), None)
                if entry is None:
                    return
                args, kwargs, ident, t0 = entry
                site[1]((args, kwargs, ident, t0, t1, None, exc))
            except Exception:
                backend.errors += 1

        return on_unwind

    def _make_site_callbacks(self, probed, site, depth):
        """Start and return callbacks for the probed code object ``probed``.

        ``depth`` is how far up the probed call's frame is from them: 1
        when ``sys.monitoring`` calls them, 2 under a dispatcher.
        """
        entries, leave, read_args, pending = site
        # The arguments of a function with one or two plain parameters are
        # read inline (no call of the reader: a Python call is most of what
        # reading them costs).
        first = second = None
        if read_args is not None:
            layout = ArgumentLayout(probed)
            if layout.is_plain() and 1 <= len(layout.positional) <= 2:
                first = layout.positional[0]
                if len(layout.positional) == 2:
                    second = layout.positional[1]
        get_ident = threading.get_ident
        getframe = sys._getframe
        perf_counter = time.perf_counter
        threads = agent_threads
        pop = pending.pop
        limit = MAX_PENDING
        backend = self

        def on_start(code, offset):
            try:
                if code is not probed:
                    return
                ident = get_ident()
                if ident in threads._idents:
                    return
                frame = getframe(depth)
                if first is not None:
                    if second is None:
                        args = (frame.f_locals[first],)
                    else:
                        local = frame.f_locals
                        args = (local[first], local[second])
                    kwargs = _EMPTY
                elif read_args is not None:
                    args, kwargs = read_args(frame)
                else:
                    args = kwargs = None
                if entries:
                    for enter in entries:
                        try:
                            enter(args, kwargs, ident)
                        except Exception:
                            backend.errors += 1
                if leave is not None:
                    if len(pending) >= limit:
                        purge_orphans(pending)
                        if len(pending) >= limit:
                            return
                    pending[frame] = (args, kwargs, ident, perf_counter())
            except Exception:
                backend.errors += 1

        def on_return(code, offset, value):
            t1 = perf_counter()
            try:
                if code is not probed:
                    return
                entry = pop(getframe(depth), None)
                if entry is None:
                    return
                args, kwargs, ident, t0 = entry
                leave((args, kwargs, ident, t0, t1, value, None))
            except Exception:
                backend.errors += 1

        return on_start, on_return

    def _count_error(self):
        self.errors += 1

    def active_codes(self):
        """The code objects currently instrumented (for tests)."""
        with self._lock:
            return list(self._codes.values())


def exit_dispatcher(exits, failed):
    """One callable for a site's exit handlers (the handler itself when alone)."""
    if not exits:
        return None
    if len(exits) == 1:
        return exits[0]

    def dispatch(record):
        for leave in exits:
            try:
                leave(record)
            except Exception:
                failed()

    return dispatch


_MARK = object()


def _finished_frame():
    return sys._getframe()


def purge_orphans(pending):
    """Forgets started calls whose frame nothing but ``pending`` references any more.

    A live call's frame is also referenced by the interpreter (or by its
    suspended generator); an orphan's is not. The reference count of an
    orphan is measured, not assumed (it differs between versions), on a
    finished frame put in the table for the purpose.
    """
    getrefcount = sys.getrefcount
    pending[_finished_frame()] = _MARK
    measured = []
    for frame in list(pending):
        measured.append((frame, getrefcount(frame)))
    baseline = None
    for frame, count in measured:
        if pending.get(frame) is _MARK:
            baseline = count
    for frame, count in measured:
        if baseline is None or count <= baseline:
            if baseline is not None or pending.get(frame) is _MARK:
                pending.pop(frame, None)
