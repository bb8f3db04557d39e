"""One client connection: handshake, request dispatch, cancels, and its streams.

The listener reads a connection's hello (see :mod:`.admission`); from
then on each admitted connection runs one or two agent threads:

- ``peeka-conn-<n>`` reads frames (blocking ``recv``), answers the
  ``hello`` (already read by the listener), dispatches requests to command handlers and applies ``cancel``;
  until the writer runs, it also writes what it queued (the welcome and the
  responses) before it would block reading again (frames that arrived
  together are answered together, in one write);
- ``peeka-send-<n>`` drains the connection's
  :class:`~peeka_agent.outbox.Outbox`, started only once the connection
  opens a stream or defers a reply (or when another thread closes it), so
  that a short command (hello, request, response) is served by one thread.

Any protocol violation, a clean end of stream or a socket error closes the
connection. Closing ends every stream the connection still owns without
sending anything for them (their ``on_close`` callbacks run, so their probes
are removed): probes belong to the client that made them.
"""

import socket
import threading
import time

from . import fork_guard
from .agent_threads import AgentThread
from .commands import CommandError, RequestContext
from .outbox import Outbox
from .streams import new_lock
from .wire import (
    MAX_FRAME_LEN,
    ErrorCode,
    ProtocolError,
    accepts_batches,
    answer_hello,
    rejected,
    response_error,
    welcome,
)

#: How long a closing connection waits for its writer to flush.
FLUSH_TIMEOUT = 1.0

#: How long a new connection keeps its GIL boost while its client says
#: nothing: for its hello (the listener's wait, see admission), then for
#: its first request (seconds).
BOOST_WAIT = 0.1


class Connection(object):
    """An admitted client connection (see the module documentation)."""

    def __init__(self, agent, sock, number, peer, reader, refuse_reason=None, boosted=True):
        self.agent = agent
        self.sock = sock
        self.number = number
        #: PeerCredentials of the client process.
        self.peer = peer
        #: The ``client`` string of its hello, once received.
        self.client = None
        #: Guards the stream table, in-flight ids and stream state changes.
        self.lock = new_lock()
        self.outbox = Outbox(
            sock,
            agent.queue_limit,
            self._writer_failed,
            agent.record_error,
            "peeka-send-%d" % number,
            self._thread_failed,
            agent.writer_budget,
        )
        self.outbox.on_pause = self._park_producers
        self.outbox.on_resume = self._resume_producers
        self._refuse_reason = refuse_reason
        #: The connection's FrameReader, holding what the listener read of it:
        #: its whole hello, maybe more (see admission).
        self._reader = reader
        #: Whether this connection holds one of the agent's GIL boosts
        #: (taken by the listener when it accepted the connection).
        self._boosted = boosted
        #: time.monotonic() of the last message received (see idle()).
        self.last_active = time.monotonic()
        self._streams = {}
        self._inflight = set()
        self._closing = False
        self._closed = threading.Event()
        self.reader_thread = AgentThread(
            "peeka-conn-%d" % number, self._serve, on_error=self._thread_failed
        )

    def start(self):
        """Starts the reader thread (the writer starts when needed, see the module doc)."""
        self.reader_thread.start()

    # -- public helpers ------------------------------------------------------

    @property
    def closing(self):
        """Whether the connection is closing or closed."""
        return self._closing

    def streams(self):
        """The streams this connection currently owns."""
        with self.lock:
            return list(self._streams.values())

    def send(self, message):
        """Queues one message (encoded now); never dropped.

        The reader writes it before it reads again, unless the writer runs.
        """
        self.outbox.send_message(message)

    def cancel(self, stream_id):
        """Ends stream ``stream_id`` with reason ``cancelled``; unknown ids are ignored."""
        with self.lock:
            stream = self._streams.get(stream_id)
        if stream is not None:
            stream.end("cancelled")

    def end_streams(self, reason):
        """Ends every stream of this connection with ``reason``, sending ``stream_end``."""
        for stream in self.streams():
            stream.end(reason)

    def close(self, flush_timeout=FLUSH_TIMEOUT):
        """Closes the connection (idempotent, any thread but the writer waits for the flush).

        Streams still open are ended silently (cleanups run, nothing sent);
        messages already queued are flushed for up to ``flush_timeout``
        seconds, then the socket is shut down, which wakes the reader.
        """
        with self.lock:
            if self._closing:
                return
            self._closing = True
            streams = list(self._streams.values())
        for stream in streams:
            stream._finish("cancelled", None, False)
        self.outbox.stop(self.on_reader())
        self.outbox.wait_stopped(flush_timeout)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._closed.set()
        self.agent._connection_closed(self)

    def idle(self):
        """Whether the client has said hello and has no stream and no request in flight."""
        return (
            self.client is not None
            and not self._closing
            and not self._streams
            and not self._inflight
        )

    def forget_in_child(self):
        """In a forked child: closes this process's copy of the socket, takes no lock."""
        self._closing = True
        fork_guard.close_inherited(self.sock)

    def on_reader(self):
        """Whether the calling thread is this connection's reader."""
        return threading.current_thread() is self.reader_thread

    def wait_closed(self, timeout):
        """Waits until close() has run; True if it has."""
        return self._closed.wait(timeout)

    # -- used by RequestContext and Stream (lock held where noted) ------------

    def _add_stream(self, stream):
        with self.lock:
            if self._closing:
                raise CommandError(
                    ErrorCode.SHUTTING_DOWN,
                    "the connection is closing; no stream can be opened on it",
                )
            self._streams[stream.id] = stream

    def _forget_stream(self, stream):
        # lock held
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]

    def _request_done(self, request_id):
        # lock held
        self._inflight.discard(request_id)

    # -- threads -------------------------------------------------------------

    def _park_producers(self):
        """The writer pauses: parks the probes of this connection's streams (see outbox)."""
        parked = []
        for stream in self.streams():
            stream._w_settle_parked()
            parker = stream.parker
            if parker is not None and not stream.closed:
                handlers = parker.park()
                if handlers:
                    parked.append((stream, parker, handlers))
        return parked

    def _resume_producers(self, parked):
        """The writer resumes: the parked probes run again; their missed calls are drops.

        On the writer thread, which owns the stream's writer-side counts.
        """
        for stream, parker, handlers in parked:
            stream._w_add_parked(parker.unpark(handlers))

    def _writer_failed(self):
        self.close()

    def _thread_failed(self, exc):
        self.agent.record_error("connection %d thread failed" % self.number, exc)
        self.close(0.0)

    def _serve(self):
        reader = self._reader
        try:
            self._serve_messages(reader)
        except ProtocolError as exc:
            self.agent.record_error("connection %d closed: protocol error: %s" % (self.number, exc))
        except OSError:
            pass
        finally:
            self._end_boost()
            self.close()
            reader.close()
            self.outbox.wait_stopped(FLUSH_TIMEOUT)
            try:
                self.sock.close()
            except OSError:
                pass

    def _end_boost(self):
        if self._boosted:
            self._boosted = False
            self.agent.gil_boost.release()

    def _serve_messages(self, reader):
        # The listener handed the connection over with its hello whole (in
        # time, and no larger than a hello may be): this read does not block.
        hello = reader.read()
        if hello is None:
            return
        reader.max_len = MAX_FRAME_LEN
        reader.budget = self.agent.input_budget
        if hello["type"] != "hello":
            raise ProtocolError("the first message must be hello, not %s" % hello["type"])
        rejection = answer_hello(hello)
        if rejection is None and self._refuse_reason is not None:
            rejection = rejected(ErrorCode.LIMIT_EXCEEDED, self._refuse_reason)
        if rejection is not None:
            self.send(rejection)
            return
        self.client = hello["client"]
        self.outbox.batching = accepts_batches(hello)
        agent = self.agent
        self.send(welcome(agent.version, agent.pid, agent.capabilities()))
        drain = self.outbox.drain
        has_frame = reader.has_frame
        requests = 0
        while True:
            # What is queued goes out before the reader would block, not
            # between frames that arrived together: a client that sends its
            # first request with its hello gets the welcome and the answer
            # in one write (one GIL hand-over fewer on a busy target).
            if not has_frame():
                drain()
                # The boost lasts until the first request is answered, if
                # it comes within BOOST_WAIT.
                if self._boosted and (requests or not reader.wait_frame(BOOST_WAIT)):
                    self._end_boost()
            message = reader.read()
            if message is None:
                return
            self.last_active = time.monotonic()
            kind = message["type"]
            if kind == "request":
                requests += 1
                self._dispatch(message)
            elif kind == "cancel":
                self.cancel(message["stream"])
            else:
                raise ProtocolError("hello may only be the first message")
            if self._closing:
                return

    def _dispatch(self, message):
        request_id = message["id"]
        command = message["command"]
        with self.lock:
            duplicate = request_id in self._inflight or request_id in self._streams
            if not duplicate:
                self._inflight.add(request_id)
        if duplicate:
            self.send(
                response_error(
                    request_id,
                    ErrorCode.DUPLICATE_ID,
                    "request id %d is already in use on this connection (a request awaiting "
                    "its response, or an open stream); use a fresh id" % request_id,
                )
            )
            return
        ctx = RequestContext(self, request_id, command, message.get("params"))
        agent = self.agent
        if agent.stopping.is_set():
            ctx.fail(
                ErrorCode.SHUTTING_DOWN,
                "the agent is detaching and no longer runs commands; attach again to run `%s`"
                % command,
            )
            return
        handler = agent.commands.get(command)
        if handler is None:
            ctx.fail(
                ErrorCode.UNKNOWN_COMMAND,
                "unknown command `%s`; this agent (version %s) knows: %s; a newer client may "
                "need a newer agent (detach, then attach again with that client)"
                % (command, agent.version, ", ".join(agent.commands.names())),
            )
            return
        try:
            result = handler(ctx)
        except CommandError as exc:
            self._handler_failed(ctx, exc.code, exc.message, exc.traceback)
        except BaseException as exc:
            import traceback  # only here: the agent starts without it

            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            agent.record_error("command `%s` failed" % command, exc)
            self._handler_failed(
                ctx,
                ErrorCode.INTERNAL,
                "`%s` failed inside the agent (%s: %s); the agent is still running, please "
                "report this with the traceback" % (command, type(exc).__name__, exc),
                text,
            )
        else:
            if not ctx.answered and not ctx.deferred:
                ctx.reply(result)
        stream = ctx.stream
        if ctx.deferred or (stream is not None and not stream._discarded):
            # Items will come from other threads: the response first, then
            # the writer takes over.
            self.outbox.drain()
            self.outbox.start_writer()

    def _handler_failed(self, ctx, code, message, text):
        if ctx.answered:
            self.agent.record_error(
                "command `%s` raised after answering: %s" % (ctx.command, message)
            )
            return
        ctx.fail(code, message, text)
