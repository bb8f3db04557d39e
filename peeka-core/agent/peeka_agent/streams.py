"""Streams: the sequences of observations a command sends after its response.

A command opens a stream with ``ctx.open_stream()`` (see
:mod:`peeka_agent.commands`); its id is the id of the request that opened it
and it belongs to that request's connection. The interface a probe uses:

``stream.emit(data) -> bool``
    The hot path, called on the target's threads. ``data`` must already be
    JSON-able (build it with :mod:`peeka_agent.capture`). Never blocks, never
    raises for a full queue: when the connection's queue holds ``limit``
    items the observation is dropped and counted, and the count reaches the
    client in ``stream_end.dropped`` and as gaps in ``seq``. Returns True
    when queued, False when dropped or when the stream has ended (a probe
    racing with a cancel just sees False). With ``max_items`` set, the
    ``max_items``-th accepted observation ends the stream with reason
    ``count_reached`` (from the emitting thread, so its cleanups run there).

``stream.emit_lazy(render, value) -> bool``
    Like ``emit``, but ``render(value)`` is called later on the connection's
    writer thread to produce the data. This moves the cost of formatting off
    the target's thread; the price is that ``value`` is read later (it may
    have changed, and it is kept alive until then). A render that raises is
    counted as a drop and reported once with an ``encode_error`` event.

``stream.lazy_emitter(render) -> emitter``
    ``emitter(value)`` is ``emit_lazy(render, value)`` without the extra
    argument (and, for a probe, without a handler frame of its own).

``stream.event(kind, data=None) -> bool``
    A protocol ``event`` (for example ``condition_errors``); shares ``seq``
    with observations. Events have their own, larger bound
    (``limit + EVENT_HEADROOM``) so they are not starved by observations, and
    are dropped and counted beyond it.

``stream.end(reason, error=None) -> bool``
    Ends the stream (idempotent; False if it had already ended): stops
    accepting observations, runs the ``on_close`` callbacks (last registered
    first) in the calling thread, then queues ``stream_end``, so that a
    client seeing ``stream_end`` knows the probe is gone. ``reason`` is one
    of ``count_reached``, ``cancelled``, ``reset``, ``detached``, ``error``;
    ``error`` (for ``error``) may be an error body dict, an exception or a
    ``CommandError``.

``stream.on_close(callback)``
    Registers a no-argument callable run exactly once when the stream ends
    for any reason: end(), cancel, the client disconnecting or dying, reset,
    detach, or the opening request failing. This is where a probe is
    removed; exceptions it raises are recorded in the agent's error log
    (``info``), never propagated. Registered on an ended stream, it runs at once.

``stream.ask_share(share)``
    Asks the connection's writer to keep to ``share`` of a CPU (at most
    ``MAX_WRITER_SHARE``) instead of the default while this stream is open
    (see the writer's budget in :mod:`peeka_agent.outbox`).

``stream.labels`` is a free dict for the command (pattern, probe id...), shown
by :meth:`Stream.describe` (for ``reset --list``).

Observations and events emitted after ``open_stream()`` but before the
command has replied are held back by the writer and sent right after the
response, so a probe may be installed (and fire) before the reply.

Every method is thread-safe. ``emit`` is a closure over the connection's
queue (about 0.15-0.25 us per call here, about what a bare
``perf_counter()`` timing wrapper costs); probes should fetch
``stream.emit`` once and call it, rather than look it up on every call.
"""

import itertools
import threading
import time

from .outbox import (
    OP_DISCARD,
    OP_END,
    OP_EVENT,
    RUN_START,
    W_PENDING,
    counter_value,
    end_error_body,
)
from .wire import END_REASONS
from .writer_budget import MAX_WRITER_SHARE

#: Extra room events get in the queue beyond the observation limit.
EVENT_HEADROOM = 1024


def _ended(*_args):
    """What emit/emit_lazy become once a stream has ended."""
    return False


def _make_emit(stream, fifo, limit, max_items):
    qsize = fifo.qsize
    put = fifo.put
    drop = stream._drops.__next__
    if max_items is None:

        def emit(data):
            if stream._open:
                if qsize() < limit:
                    put((stream, data))
                    return True
                drop()
                stream._gap = True
            return False

        return emit

    accept = stream._accept

    def emit_counted(data):
        if stream._open:
            if qsize() < limit:
                number = accept()
                if number < max_items:
                    put((stream, data))
                    return True
                if number == max_items:
                    put((stream, data))
                    stream.end("count_reached")
                    return True
                return False
            drop()
            stream._gap = True
        return False

    return emit_counted


def _make_emit_lazy(stream, fifo, limit, max_items):
    qsize = fifo.qsize
    put = fifo.put
    drop = stream._drops.__next__
    if max_items is None:

        def emit_lazy(render, value):
            if stream._open:
                if qsize() < limit:
                    put((stream, render, value))
                    return True
                drop()
                stream._gap = True
            return False

        return emit_lazy

    accept = stream._accept

    def emit_lazy_counted(render, value):
        if stream._open:
            if qsize() < limit:
                number = accept()
                if number < max_items:
                    put((stream, render, value))
                    return True
                if number == max_items:
                    put((stream, render, value))
                    stream.end("count_reached")
                    return True
                return False
            drop()
            stream._gap = True
        return False

    return emit_lazy_counted


def _make_lazy_emitter(stream, fifo, limit, max_items, render):
    """``emit_lazy`` with ``render`` bound: one argument, one frame less for the caller."""
    qsize = fifo.qsize
    put = fifo.put
    drop = stream._drops.__next__
    if max_items is None:

        def emit_value(value):
            if stream._open:
                if qsize() < limit:
                    put((stream, render, value))
                    return True
                drop()
                stream._gap = True
            return False

        return emit_value

    accept = stream._accept

    def emit_value_counted(value):
        if stream._open:
            if qsize() < limit:
                number = accept()
                if number < max_items:
                    put((stream, render, value))
                    return True
                if number == max_items:
                    put((stream, render, value))
                    stream.end("count_reached")
                    return True
                return False
            drop()
            stream._gap = True
        return False

    return emit_value_counted


class Stream(object):
    """One stream of one connection (see the module documentation for the interface)."""

    def __init__(self, connection, stream_id, command, max_items=None):
        if max_items is not None and (type(max_items) is not int or max_items < 1):
            raise ValueError("max_items must be a positive int or None")
        self.id = stream_id
        self.connection = connection
        self.command = command
        self.max_items = max_items
        self.labels = {}
        self.created = time.time()
        #: What stops the stream's producers while its writer pauses: an
        #: object with ``park() -> token`` and ``unpark(token) -> calls
        #: missed`` (the probe), or None.
        self.parker = None
        #: Why the stream ended (None while it runs).
        self.end_reason = None
        self._lock = connection.lock
        self._open = True
        self._announced = False
        self._discarded = False
        self._pending_end = None
        self._callbacks = []
        self._drops = itertools.count()
        # Accepted observations of a counted stream (shared by every emitter).
        self._accept = itertools.count(1).__next__
        self._gap = False
        outbox = connection.outbox
        self._outbox = outbox
        self._fifo = outbox.queue
        self._limit = outbox.limit
        self._event_limit = outbox.limit + EVENT_HEADROOM
        # Writer-side state, touched only by the connection's writer thread.
        self._w_state = W_PENDING
        self._w_seq = 0
        self._w_drops = 0
        self._w_drops_seen = 0
        self._w_early = []
        self._w_encode_error_reported = False
        self._w_run_cap = RUN_START  # observations in its next batch (see outbox)
        # Counters of the calls its parked probe missed: [counter, counted, settles].
        self._w_parked = []
        #: Calls its probe missed while parked (counted in ``dropped`` too).
        self.parked_calls = 0
        # The hot paths are closures bound to this stream's queue (faster
        # than methods); they shadow the documented methods below.
        self.emit = _make_emit(self, self._fifo, outbox.limit, max_items)
        self.emit_lazy = _make_emit_lazy(self, self._fifo, outbox.limit, max_items)

    def _w_add_parked(self, counters):
        """The writer resumed this stream's parked probe: ``counters`` count the calls it missed."""
        self._w_parked.extend([counter, 0, 0] for counter in counters)
        self._w_settle_parked()

    def _w_settle_parked(self):
        """Counts the calls the parked probe missed as drops (a ``seq`` gap), writer thread.

        A counter is read at the resume and at the next two pauses (or the
        stream's end): a call that had read the previous dispatchers just
        before the resume counts a moment later, when its thread next runs.
        """
        if not self._w_parked:
            return
        kept = []
        for entry in self._w_parked:
            value = counter_value(entry[0])
            missed = value - entry[1]
            if missed:
                entry[1] = value
                self._w_drops += missed
                self._w_seq += missed
                self.parked_calls += missed
            entry[2] += 1
            if entry[2] < 3:
                kept.append(entry)
        self._w_parked = kept

    # The two methods below document the interface; each instance replaces
    # them with the closures built in __init__ (and with _ended once ended).

    def emit(self, data):  # noqa: F811 - shadowed per instance, see __init__
        """Queues one observation; never blocks; False when dropped or ended."""
        return self.__dict__["emit"](data)

    def emit_lazy(self, render, value):  # noqa: F811
        """Queues ``render(value)`` to be run on the writer thread; never blocks."""
        return self.__dict__["emit_lazy"](render, value)

    def lazy_emitter(self, render):
        """``emit_lazy`` with ``render`` bound: ``emitter(value) -> bool``.

        For a probe whose handler has nothing to decide on the target's
        thread: the emitter can be the handler itself (one Python frame per
        observation instead of two). Same rules as ``emit_lazy``; it returns
        False once the stream has ended.
        """
        return _make_lazy_emitter(self, self._fifo, self._limit, self.max_items, render)

    def inline_emitter(self, render):
        """``lazy_emitter(render)`` as source for generated code: an :class:`InlineEmit`."""
        return InlineEmit(self, render)

    def ask_share(self, share):
        """Asks the writer for ``share`` of a CPU while this stream is open (see the module doc)."""
        if not 0.0 < share <= MAX_WRITER_SHARE:
            raise ValueError("a writer share is above 0 and at most %s" % MAX_WRITER_SHARE)
        with self._lock:
            if self.end_reason is None:
                self._outbox.shares[self] = share

    @property
    def closed(self):
        """Whether the stream has ended."""
        return self.end_reason is not None

    @property
    def dropped(self):
        """Messages of this stream dropped so far (queue full, or not encodable)."""
        return counter_value(self._drops) + self._w_drops

    def event(self, kind, data=None):
        """Queues an ``event`` of this stream; False when dropped or ended."""
        if not self._open:
            return False
        if self._fifo.qsize() >= self._event_limit:
            next(self._drops)
            self._gap = True
            return False
        self._fifo.put((OP_EVENT, self, kind, data))
        return True

    def on_close(self, callback):
        """Runs ``callback()`` once when the stream ends (at once if it has ended)."""
        with self._lock:
            if self.end_reason is None:
                self._callbacks.append(callback)
                return
        self._run_callback(callback)

    def end(self, reason, error=None):
        """Ends the stream: cleanups first, then ``stream_end``. False if already ended."""
        if reason not in END_REASONS:
            raise ValueError(
                "unknown stream end reason %r; use one of %s" % (reason, ", ".join(END_REASONS))
            )
        return self._finish(reason, error, True)

    def describe(self):
        """A JSON-able summary: id, command, labels, dropped, age."""
        return {
            "stream": self.id,
            "command": self.command,
            "labels": dict(self.labels),
            "dropped": self.dropped,
            "parked_calls": self.parked_calls,
            "age": round(time.time() - self.created, 3),
            "connection": self.connection.number,
        }

    # -- used by the connection and the request context ----------------------

    def _finish(self, reason, error, send):
        with self._lock:
            if self.end_reason is not None:
                return False
            self.end_reason = reason
            self._open = False
            self.connection._forget_stream(self)
            self._outbox.shares.pop(self, None)
            callbacks = self._callbacks
            self._callbacks = []
        # Break the stream <-> closure cycles; holders of the old closures
        # still get False because _open is now False.
        self.emit = _ended
        self.emit_lazy = _ended
        for callback in reversed(callbacks):
            self._run_callback(callback)
        if send:
            body = end_error_body(error, reason)
            with self._lock:
                if self._discarded:
                    pass
                elif self._announced:
                    self._fifo.put((OP_END, self, reason, body))
                else:
                    self._pending_end = (reason, body)
        return True

    def _announce(self):
        """Called, with the lock held, right after the opening response was queued."""
        self._announced = True
        if self._pending_end is not None:
            reason, body = self._pending_end
            self._pending_end = None
            self._fifo.put((OP_END, self, reason, body))

    def _discard(self):
        """The opening request failed: clean up, send nothing for this stream."""
        with self._lock:
            self._discarded = True
        self._finish("error", None, False)
        self._fifo.put((OP_DISCARD, self))

    def _run_callback(self, callback):
        try:
            callback()
        except BaseException as exc:
            self.connection.agent.record_error("cleanup of stream %d failed" % self.id, exc)


class InlineEmit(object):
    """What ``stream.lazy_emitter(render)`` does, written into a probe's generated wrapper.

    The ``__code__`` swapping backend (:mod:`.probe_code_swap`) writes the
    emitter's body into the wrapper of a function with one ``watch`` probe,
    so a call costs no Python frame for it. :meth:`lines` is the source of
    the same steps as the closures of :func:`_make_lazy_emitter`, in the
    same order (stream open, queue bound, drop counted and gap marked,
    count reached); :attr:`constants` are the objects it reads, each
    reached through a constant of the generated code.
    """

    #: The roles of the constants :meth:`lines` reads.
    ROLES = ("stream", "render", "qsize", "put", "drop", "accept")

    def __init__(self, stream, render):
        fifo = stream._fifo
        self.limit = stream._limit
        self.max_items = stream.max_items
        self.constants = {
            "stream": stream,
            "render": render,
            "qsize": fifo.qsize,
            "put": fifo.put,
            "drop": stream._drops.__next__,
            "accept": stream._accept,
        }

    def lines(self, end, local, load, temporary):
        """Source lines queueing the record of ``end`` (an :class:`~peeka_agent.probes.InlineEnd`).

        The record is queued flat, ``(stream, render, *record)``, one tuple
        instead of two (the writer passes ``item[2:]`` to ``render``, see
        :mod:`.outbox`). ``local(role)`` names the local variable holding
        that constant and ``load(role)`` is the statement setting it: each
        is loaded on the branch that uses it, so a dropped observation
        loads three. ``temporary`` is a free local name for the accepted
        count.
        """
        s, r, q, p, d, a = (local(role) for role in self.ROLES)
        item = "(%s, %s, %s)" % (s, r, end.record)  # flat: see above
        lines = [load("stream"), "if %s._open:" % s, "    " + load("qsize")]
        lines.append("    if %s() < %d:" % (q, self.limit))
        put = ["        " + load("put"), "        " + load("render")]
        if self.max_items is None:
            lines.extend(put)
            lines.append("        %s(%s)" % (p, item))
        else:
            lines.extend(
                [
                    "        " + load("accept"),
                    "        %s = %s()" % (temporary, a),
                    "        if %s <= %d:" % (temporary, self.max_items),
                ]
            )
            lines.extend("    " + line for line in put)
            lines.extend(
                [
                    "            %s(%s)" % (p, item),
                    "            if %s == %d:" % (temporary, self.max_items),
                    "                %s.end('count_reached')" % s,
                ]
            )
        lines.extend(
            ["    else:", "        " + load("drop"), "        %s()" % d, "        %s._gap = True" % s]
        )
        return lines


def new_lock():
    """The lock type streams and connections share (re-entrant)."""
    return threading.RLock()
