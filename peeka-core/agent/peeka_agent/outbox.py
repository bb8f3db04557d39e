"""A connection's outgoing queue, and the one consumer at a time that writes it.

Everything a connection sends goes through one FIFO, a ``queue.SimpleQueue``,
whose consumer encodes, batches and writes frames to the socket. The FIFO is
what orders a stream's response, observations, events and ``stream_end`` on
the wire.

Consumers
---------
A connection starts without a writer thread: its reader (``peeka-conn-<n>``)
writes its welcome and responses itself, calling :meth:`Outbox.drain` right
after queueing them. A short command thus involves no thread but the reader;
every hand-over between threads costs a wait for the GIL, up to the 5 ms
switch interval when the target keeps the GIL busy.

The writer thread ``peeka-send-<n>`` (:meth:`Outbox.start_writer`) takes over
for good as soon as items may be queued while the reader is busy elsewhere:
when the connection opens a stream (probes queue from the target's threads,
which never write) or defers a reply (answered from another thread), or when
a thread other than the reader stops the outbox (detach: that thread must not
wait on the socket; it waits, bounded, for the writer).

The consumer lock orders the consumers: whoever takes items from the FIFO
holds it until those items are written, so the FIFO order is the wire order
and the writer-side stream state (``_w_*``) has one owner at a time. The
writer holds it for its whole life; :meth:`~Outbox.drain` only tries it and
leaves the items to the writer when it is taken; and a drain takes at most
what was queued when it began, so a busy stream cannot keep the reader from
reading. ``OP_STOP`` ends the output: what was queued before it is written,
nothing after it.

The hot path
------------
Probes run on the target's threads and must never block. They enqueue with
``SimpleQueue.put``, a C call that appends to a list and, at most, releases
the lock of a waiting writer: it never waits. The bound is enforced *before*
the put by ``qsize()`` (another C call reading the list length): when
``qsize() >= limit`` the item is dropped and counted instead. Check-then-put
is not atomic, so concurrent producers can overshoot the limit by at most one
item each; the bound stays a bound. Drops are counted with
``itertools.count`` (its ``next`` is atomic under the GIL and in free-threaded
builds), so no count is lost between threads.

Items are plain tuples, to keep the producer cheap:

- ``(stream, data)``: an observation whose data is already JSON-able;
- ``(stream, render, value)``: a lazy observation, ``render(value)`` runs on
  the consuming agent thread and returns the JSON-able data, or ``bytes``
  holding it already encoded as UTF-8 JSON text (written as they are, see
  :func:`~peeka_agent.wire.observation_frame`);
- ``(stream, render, v0, v1, ...)``: the same with ``value`` the tuple
  ``(v0, v1, ...)`` queued flat (what a probe's generated wrapper queues,
  see :class:`~peeka_agent.streams.InlineEmit`: one tuple less to build on
  the target's thread);
- ``(OP_..., ...)``: control items (responses, events, ``stream_end``, stop),
  which start with an int and are never dropped by the bound (events have a
  bound of their own, see :class:`~peeka_agent.streams.Stream`).

The writer's budget
-------------------
Rendering observations costs CPU with the GIL held, so the writers of all
connections keep to one budget, the agent's
(:class:`~.writer_budget.WriterBudget`, given by the connection): a writer
charges each batch it wrote and, when the budget is in debt, sleeps until
it is repaid. Meanwhile the queue fills to its bound and producers drop
and count, as they do whenever the queue is full. After such a pause the
writer sheds the backlog down to :data:`SHED_KEEP` observations, oldest
first, unrendered and counted as drops (a gap in ``seq``, included in
``stream_end.dropped``): what it renders next is recent, and a
``stream_end`` queued behind a flood is not delayed by rendering it. For
a pause of :data:`MIN_PARKED_PAUSE` or more, the writer also *parks* its
streams' producers (``on_pause``, set by the connection; see
``Probe.park``): a ``watch`` whose every call is one observation is taken
out of its function's dispatch until the pause ends, and the calls it
missed meanwhile are counted as its drops (a ``seq`` gap, like shedding).
A flooded function's calls then cost about the same whether one client
watches it or twenty. The reader's inline :meth:`~Outbox.drain` (responses to short commands) is not
budgeted.

Sequence numbers
----------------
``seq`` is assigned by the consumer, one at a time, so it always increases
on the wire even when producers race. A drop leaves a gap: the consumer adds
the drops counted since the stream's previous message to the next ``seq`` it
assigns, and an observation that fails to encode keeps the ``seq`` it was
given. Every ``seq`` from 0 to the last one sent is therefore either
delivered or counted in ``stream_end.dropped`` (drops counted after the last
delivered message are only in ``dropped``).

Batches
-------
A client whose ``hello`` said protocol 1.1 or later (:attr:`Outbox.batching`)
gets consecutive observations of one stream in one ``observations``
message: the consumer gathers them (the stream, the first ``seq``, the
data of each) and writes the batch before any other item and at the end
of each write. A batch holds at most :data:`RUN_MAX` observations, and
about :data:`RUN_BYTES` at the size per observation of the stream's
previous batch (:func:`run_cap`, :data:`RUN_START` for the first). A
``seq`` gap (drops) starts a new batch. A batch that cannot be encoded
is sent one observation per frame instead, so only a faulty observation
is lost.

Streams whose response has not been sent yet (the command installs its probe
before it replies) are handled here too: their early observations wait in a
small per-stream buffer and are released right after the response.
"""

import itertools
import socket
import threading
import time
from collections import Counter
from operator import itemgetter

try:
    from _queue import SimpleQueue  # what queue.SimpleQueue is, without queue.py
except ImportError:  # pragma: no cover - builds without the C module
    from queue import SimpleQueue

from .agent_threads import AgentThread
from .writer_budget import WriterBudget
from .wire import (
    FrameTooLarge,
    encode_frame,
    error_body,
    event,
    observation_frame,
    observations_frame,
    stream_end,
)

#: Control item opcodes (the first element of a control tuple).
OP_FRAME = 0  # (OP_FRAME, frame_bytes, stream_announced_or_None)
OP_EVENT = 1  # (OP_EVENT, stream, kind, data)
OP_END = 2  # (OP_END, stream, reason, error_body_or_None)
OP_DISCARD = 3  # (OP_DISCARD, stream): the stream's request failed, forget it
OP_STOP = 4  # (OP_STOP,): flush what came before and exit

# Writer-side stream states.
W_PENDING = 0  # response not written yet: buffer the stream's observations
W_OPEN = 1  # response written: write observations
W_DONE = 2  # stream_end written or stream discarded: ignore late items

#: Most items written with one sendall().
BATCH_ITEMS = 8192
#: Most bytes gathered before a sendall().
BATCH_BYTES = 4 << 20
#: Longest time spent encoding one batch. The consumer holds the GIL while it
#: encodes; staying under the interpreter's 5 ms switch interval keeps the
#: target's threads from waiting longer than they would for any other
#: thread, while large batches amortise the wait for the GIL that follows
#: each sendall() when the target keeps the GIL busy.
BATCH_SECONDS = 0.004
#: The shortest pause for which the writer parks its streams' producers
#: (seconds): parking and resuming them costs a little.
MIN_PARKED_PAUSE = 0.005
#: Observations left queued after a pause; older ones are dropped unrendered.
SHED_KEEP = 512
#: Most observations in one ``observations`` batch (protocol 1.1)...
RUN_MAX = 1024
#: ... and the size a batch aims at: a stream's next batch holds as many
#: observations as fit in it at the size its previous batch had per observation.
RUN_BYTES = 1 << 20
#: Observations in a stream's first batch, before its size is known.
RUN_START = 16
#: Kernel send buffer asked for each connection, so that a burst is handed
#: to the kernel at once instead of waiting for the client to read it
#: (capped by net.core.wmem_max).
SEND_BUFFER = 4 << 20

_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)

_ENCODE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, FrameTooLarge)


def _thread_clock():
    """CPU time of the calling thread (``time.thread_time``), or wall time where unsupported."""
    try:
        time.thread_time()
        return time.thread_time
    except (AttributeError, OSError):
        return time.perf_counter


def run_cap(frame_bytes, count):
    """How many observations a stream's next batch may hold, after one of ``count`` in ``frame_bytes``."""
    per_observation = max(1, frame_bytes // count)
    return max(1, min(RUN_MAX, RUN_BYTES // per_observation))


def counter_value(counter):
    """The next value an ``itertools.count`` will return, without advancing it."""
    text = repr(counter)  # "count(N)"
    return int(text[text.index("(") + 1 : -1])


class Outbox(object):
    """The outgoing FIFO of one connection and its consumers (see the module documentation).

    ``limit`` bounds the observations waiting in the FIFO; ``on_failure`` is
    called (once, from the consumer that failed, outside the consumer lock)
    when the socket cannot be written; ``record_error`` receives internal
    failures for the agent's error log; the writer thread, when started, is
    named ``writer_name`` and hands an exception escaping it to
    ``on_thread_error``.
    """

    def __init__(
        self, sock, limit, on_failure, record_error, writer_name, on_thread_error, budget=None
    ):
        self.queue = SimpleQueue()
        #: The CPU budget the writer keeps to, shared with the agent's other writers.
        self.budget = budget if budget is not None else WriterBudget()
        self.limit = limit
        self._sock = sock
        self._on_failure = on_failure
        self._record_error = record_error
        self._writer_name = writer_name
        self._on_thread_error = on_thread_error
        #: Times the writer slept to keep to its CPU budget, and observations it shed.
        self.paused = 0
        self.shed = 0
        self.sent_frames = 0
        self.sent_bytes = 0
        self.failed = False
        #: Whether observations go out in ``observations`` batches (the
        #: client's hello said protocol 1.1 or later; set before any stream).
        self.batching = False
        # The batch being gathered (see _write_observation): its stream, the
        # seq of its first observation and the data of each.
        self._run_stream = None
        self._run_seq = 0
        self._run_data = None
        self._failure_unreported = False
        #: True once ``OP_STOP`` was taken or the socket failed: nothing more is written.
        self.stopped = False
        #: Held by the thread taking items from the FIFO until it has written them.
        self._consumer = threading.Lock()
        self._writer_lock = threading.Lock()
        #: The writer thread, once started (see "Consumers" above).
        self.writer = None
        #: Called by the writer when it pauses for the budget, and with what
        #: that returned when it resumes (see "The writer's budget").
        self.on_pause = None
        self.on_resume = None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        except OSError:
            pass
        if hasattr(socket, "SO_NOSIGPIPE"):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_NOSIGPIPE, 1)
            except OSError:
                pass

    # -- producers -----------------------------------------------------------

    def put_control(self, item):
        """Queues a control item; never dropped, never blocks."""
        self.queue.put(item)

    def send_message(self, message):
        """Encodes ``message`` now (raising on failure) and queues the frame."""
        self.queue.put((OP_FRAME, encode_frame(message), None))

    @property
    def shares(self):
        """The CPU share asked for by each open stream that asked (the budget's, agent-wide)."""
        return self.budget.shares

    def share(self):
        """The writers' CPU share now: the largest any open stream asked for, or the default."""
        return self.budget.share()

    # -- consumers -----------------------------------------------------------

    def drain(self):
        """Writes, on the calling thread, what is queued now (the reader's path).

        Returns at once when another consumer holds the consumer lock (the
        writer thread, which then writes it). Blocks while the socket is
        full, so only the connection's reader calls it.
        """
        consumer = self._consumer
        if not consumer.acquire(False):
            return
        try:
            remaining = self.queue.qsize()
            while remaining > 0 and not self.stopped:
                remaining -= self._write_batch(self.queue.get_nowait(), remaining)
        finally:
            consumer.release()
        self._report_failure()

    def start_writer(self):
        """Hands the FIFO to the writer thread for good (idempotent; nothing once stopped)."""
        with self._writer_lock:
            if self.writer is None and not self.stopped:
                thread = AgentThread(self._writer_name, self.run, on_error=self._on_thread_error)
                thread.start()
                self.writer = thread

    def stop(self, inline):
        """Queues ``OP_STOP``: what was queued before it is written, nothing after it.

        ``inline``: the caller is the connection's reader, which writes it
        now when no writer runs; any other thread starts the writer instead
        (it never waits on the socket itself, see :meth:`wait_stopped`).
        """
        self.queue.put((OP_STOP,))
        if self.writer is None:
            if inline:
                self.drain()
                return
            try:
                self.start_writer()
            except Exception as exc:  # no thread to be had: the close shuts the socket
                self._record_error("could not start %s to flush" % self._writer_name, exc)

    def wait_stopped(self, timeout):
        """After :meth:`stop`: waits at most ``timeout`` seconds for the writer to flush, exit."""
        writer = self.writer
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout)

    def run(self):
        """The writer thread: the consumer for good; blocks in ``get()`` (no polling).

        Keeps to the agent's CPU budget (see "The writer's budget" above):
        after a batch that leaves the budget in debt it sleeps until the
        debt is repaid, then sheds the stale backlog.
        """
        cpu = _thread_clock()
        sleep = time.sleep
        charge = self.budget.charge
        with self._consumer:
            get = self.queue.get
            qsize = self.queue.qsize
            while not self.stopped:
                item = get()
                used = cpu()
                self._write_batch(item, BATCH_ITEMS)
                wait = charge(cpu() - used)
                if wait <= 0.0:
                    continue
                self.paused += 1
                used = cpu()
                parked = self._pause_producers(wait)
                wait = charge(cpu() - used)
                while wait > 0.0:
                    sleep(wait)
                    wait = charge(0.0)
                used = cpu()
                backlog = qsize()
                if backlog > SHED_KEEP:
                    self.shed += self._shed(backlog - SHED_KEEP)
                self._resume_producers(parked)
                charge(cpu() - used)
        self._report_failure()

    def _pause_producers(self, wait):
        """``on_pause()`` when the pause (``wait`` seconds) lasts MIN_PARKED_PAUSE or more; its token."""
        if self.on_pause is None or wait < MIN_PARKED_PAUSE:
            return None
        try:
            return self.on_pause()
        except Exception as exc:
            self._record_error("%s: parking the producers failed" % self._writer_name, exc)
            return None

    def _resume_producers(self, token):
        if token is None or self.on_resume is None:
            return
        try:
            self.on_resume(token)
        except Exception as exc:
            self._record_error("%s: resuming the producers failed" % self._writer_name, exc)

    def _shed(self, most):
        """Drops (and counts) ``most`` queued observations, oldest first; returns how many.

        The items are taken and counted per stream by C code (a flood sheds
        thousands after each pause). Any other item among them (a response,
        event, ``stream_end``, an observation of a stream whose response is
        not written yet) is handled as in a normal batch and written, in its
        place in the order; observations are dropped around it.
        """
        taken = list(itertools.islice(iter(self.queue.get_nowait, None), most))
        heads = Counter(map(itemgetter(0), taken))
        if all(type(head) is not int and head._w_state == W_OPEN for head in heads):
            for stream, count in heads.items():
                stream._w_drops += count
                stream._w_seq += count
            return len(taken)
        shed = 0
        chunks = []
        stop = False
        for item in taken:
            stream = item[0]
            if type(stream) is not int and stream._w_state == W_OPEN:
                stream._w_drops += 1
                stream._w_seq += 1
                shed += 1
            elif self._handle(item, chunks):
                stop = True
                break
        self._send(chunks, stop)
        return shed

    def _write_batch(self, item, most):
        """Handles ``item`` and what follows it in one batch (at most ``most`` items), writes them.

        Returns how many items it took. Called with the consumer lock held.
        """
        get_nowait = self.queue.get_nowait
        qsize = self.queue.qsize
        handle = self._handle
        clock = time.perf_counter
        most = min(most, BATCH_ITEMS)
        chunks = []
        count = 0
        deadline = clock() + BATCH_SECONDS
        while True:
            stop = handle(item, chunks)
            count += 1
            if stop or count >= most or not qsize():
                break
            if count & 127 == 0 and (clock() > deadline or sum(map(len, chunks)) >= BATCH_BYTES):
                break
            item = get_nowait()
        self._send(chunks, stop)
        return count

    def _send(self, chunks, stop):
        """Writes the frames of a batch (the open batch of observations last); ``stop`` ends output."""
        if self._run_data is not None:
            self._flush_run(chunks)
        if chunks:
            data = b"".join(chunks)
            try:
                self._sock.sendall(data, _SEND_FLAGS)
            except OSError:
                self.failed = self.stopped = self._failure_unreported = True
                return
            self.sent_frames += len(chunks)
            self.sent_bytes += len(data)
        if stop:
            self.stopped = True

    def _report_failure(self):
        """Calls ``on_failure`` once a write failed (outside the consumer lock)."""
        if self._failure_unreported:
            self._failure_unreported = False
            self._on_failure()

    def _handle(self, item, chunks):
        """Turns one queue item into frames appended to ``chunks``; True means stop."""
        head = item[0]
        if type(head) is not int:
            stream = head
            state = stream._w_state
            if state == W_OPEN:
                self._write_observation(stream, item, chunks)
            elif state == W_PENDING:
                early = stream._w_early
                if len(early) < self.limit:
                    early.append(item)
                else:
                    stream._w_drops += 1
                    stream._w_seq += 1
            return False
        if self._run_data is not None:
            self._flush_run(chunks)  # what comes before this item goes before it
        if head == OP_FRAME:
            chunks.append(item[1])
            stream = item[2]
            if stream is not None and stream._w_state == W_PENDING:
                stream._w_state = W_OPEN
                early = stream._w_early
                stream._w_early = []
                for pending in early:
                    self._handle(pending, chunks)
            return False
        if head == OP_EVENT:
            stream = item[1]
            state = stream._w_state
            if state == W_PENDING:
                stream._w_early.append(item)
                return False
            if state != W_OPEN:
                return False
            seq = self._next_seq(stream)
            try:
                chunks.append(encode_frame(event(stream.id, seq, item[2], item[3])))
            except _ENCODE_ERRORS as exc:
                stream._w_drops += 1
                self._note_encode_error(stream, "event %r" % (item[2],), exc, chunks)
            return False
        if head == OP_END:
            stream = item[1]
            if stream._w_state == W_DONE:
                return False
            stream._w_settle_parked()
            stream._w_state = W_DONE
            stream._w_early = []
            chunks.append(encode_frame(stream_end(stream.id, item[2], stream.dropped, item[3])))
            return False
        if head == OP_DISCARD:
            stream = item[1]
            stream._w_state = W_DONE
            stream._w_early = []
            return False
        return head == OP_STOP

    def _next_seq(self, stream):
        seq = stream._w_seq
        if stream._gap:
            stream._gap = False
            total = counter_value(stream._drops)
            seq += total - stream._w_drops_seen
            stream._w_drops_seen = total
        stream._w_seq = seq + 1
        return seq

    def _write_observation(self, stream, item, chunks):
        seq = self._next_seq(stream)
        try:
            size = len(item)
            if size == 2:
                data = item[1]
            elif size == 3:
                data = item[1](item[2])
            else:
                data = item[1](item[2:])
        except Exception as exc:
            # A lazy renderer failed: the observation is lost, counted, reported.
            stream._w_drops += 1
            if self._run_data is not None:
                self._flush_run(chunks)
            self._note_encode_error(stream, "observation (rendering)", exc, chunks)
            return
        if self.batching:
            run = self._run_data
            if run is not None:
                if (
                    stream is self._run_stream
                    and seq == self._run_seq + len(run)
                    and len(run) < stream._w_run_cap
                ):
                    run.append(data)
                    return
                self._flush_run(chunks)
            self._run_stream = stream
            self._run_seq = seq
            self._run_data = [data]
            return
        try:
            chunks.append(observation_frame(stream.id, seq, data))
        except _ENCODE_ERRORS as exc:
            stream._w_drops += 1
            self._note_encode_error(stream, "observation", exc, chunks)

    def _flush_run(self, chunks):
        """Appends the gathered observations as one ``observations`` frame.

        A lone observation goes as an ``observation``. When the batch
        cannot be encoded (a value JSON cannot hold, or more than a frame
        holds) each observation goes in a frame of its own, so only the
        faulty ones are lost (counted, and reported once after the others,
        keeping ``seq`` increasing on the wire).
        """
        stream = self._run_stream
        seq = self._run_seq
        data = self._run_data
        self._run_stream = self._run_data = None
        if len(data) > 1:
            try:
                encoded = observations_frame(stream.id, seq, data)
            except _ENCODE_ERRORS:
                encoded = None
            if encoded is not None:
                chunks.append(encoded)
                stream._w_run_cap = run_cap(len(encoded), len(data))
                return
        failure = None
        for offset, value in enumerate(data):
            try:
                chunks.append(observation_frame(stream.id, seq + offset, value))
            except _ENCODE_ERRORS as exc:
                stream._w_drops += 1
                failure = failure or exc
        if len(data) > 1:
            stream._w_run_cap = max(1, len(data) // 2)
        if failure is not None:
            self._note_encode_error(stream, "observation", failure, chunks)

    def _note_encode_error(self, stream, what, exc, chunks):
        """Reports the first unencodable message of a stream with an ``encode_error`` event."""
        if stream._w_encode_error_reported:
            return
        stream._w_encode_error_reported = True
        detail = "%s could not be sent: %s: %s" % (what, type(exc).__name__, exc)
        self._record_error("stream %d: %s" % (stream.id, detail))
        seq = self._next_seq(stream)
        try:
            chunks.append(
                encode_frame(event(stream.id, seq, "encode_error", {"message": detail[:1000]}))
            )
        except _ENCODE_ERRORS:
            stream._w_drops += 1


def end_error_body(error, reason):
    """Normalises the ``error`` given to ``Stream.end`` into an error body (or None).

    Accepts None, an error body dict, an exception (reported as ``internal``
    with its traceback) or any object with ``code`` and ``message``
    attributes (such as ``CommandError``).
    """
    if error is None:
        if reason == "error":
            return error_body("internal", "the stream failed", None)
        return None
    if isinstance(error, dict):
        return error_body(
            str(error.get("code", "internal")),
            str(error.get("message", "")),
            error.get("traceback"),
        )
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if isinstance(code, str) and isinstance(message, str):
        return error_body(code, message, getattr(error, "traceback", None))
    if isinstance(error, BaseException):
        import traceback  # only here: the agent starts without it

        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        return error_body("internal", "%s: %s" % (type(error).__name__, error), text)
    return error_body("internal", str(error), None)


#: Creates a fresh drop counter (exposed for Stream).
new_counter = itertools.count
