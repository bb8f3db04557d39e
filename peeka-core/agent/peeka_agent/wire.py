"""The agent's side of the Peeka wire protocol, version 1.1 (docs/protocol.md).

Frames are a 4-byte big-endian payload length followed by that many bytes of
UTF-8 JSON holding one object (a *message*). This module is IO-free except
for :class:`FrameReader`, which reads frames from a blocking socket.

Decoding is strict, because a corrupt stream cannot be trusted again: a zero
length, a length above :data:`MAX_FRAME_LEN` (checked *before* the payload is
read), invalid UTF-8, invalid JSON (``NaN`` and ``Infinity`` included), a
non-object, nesting deeper than :data:`MAX_NESTING`, an unknown ``type`` or a
missing or ill-typed field all raise :class:`ProtocolError`, and the caller
closes the connection.

Encoding never emits ``NaN`` or infinities (``allow_nan=False``; the capture
layer turns such floats into strings first) and refuses frames above the
limit with :class:`FrameTooLarge`. Strings holding lone surrogates (file names
decoded with ``surrogateescape``, for instance) are encoded with U+FFFD-style
replacement so that the client always receives valid UTF-8.

Message builders (:func:`welcome`, :func:`rejected`, :func:`response_ok`,
:func:`response_error`, :func:`observation_frame`, :func:`observations_frame`,
:func:`event`,
:func:`stream_end`) produce exactly the shapes of the specification;
:func:`answer_hello` is the handshake's version check.
"""

import json
import socket
import sys
import threading
import time

#: The protocol version this agent speaks.
PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 1

#: The first minor version (of major 1) whose clients accept ``observations``
#: batches; older clients get one ``observation`` message per observation.
BATCH_MINOR = 1

#: Largest payload accepted or produced, in bytes (8 MiB, the default of both sides).
MAX_FRAME_LEN = 8 * 1024 * 1024

#: The largest frame a client may send before its handshake is done (a
#: hello is a few hundred bytes): a connection costs no more than this
#: until it has said hello.
MAX_HELLO_LEN = 64 * 1024

#: Deepest nesting of arrays and objects in a message, the message itself included.
MAX_NESTING = 128

#: Ids, stream ids and sequence numbers are u64 on the wire.
MAX_U64 = (1 << 64) - 1

#: Message types a client may send; anything else is a protocol error.
CLIENT_MESSAGE_TYPES = ("hello", "request", "cancel")

#: Every message type of the protocol (the other direction included).
ALL_MESSAGE_TYPES = (
    "hello",
    "welcome",
    "rejected",
    "request",
    "response",
    "observation",
    "observations",
    "event",
    "stream_end",
    "cancel",
)

#: ``stream_end`` reasons.
END_REASONS = ("count_reached", "cancelled", "reset", "detached", "error")


class ErrorCode(object):
    """The stable error codes of docs/protocol.md section 4."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_COMMAND = "unknown_command"
    INVALID_PARAMS = "invalid_params"
    NOT_FOUND = "not_found"
    INVALID_EXPRESSION = "invalid_expression"
    UNKNOWN_STREAM = "unknown_stream"
    DUPLICATE_ID = "duplicate_id"
    LIMIT_EXCEEDED = "limit_exceeded"
    INVALID_STATE = "invalid_state"
    PROTOCOL_VERSION_MISMATCH = "protocol_version_mismatch"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must be closed."""


class FrameTooLarge(ValueError):
    """An outgoing message would exceed :data:`MAX_FRAME_LEN` once encoded."""


class TruncatedFrame(ProtocolError):
    """The byte stream ended in the middle of a frame."""


# One encoder, built once: json.dumps() with keyword arguments would build a
# new JSONEncoder on every call.
_ENCODER = json.JSONEncoder(
    skipkeys=False,
    ensure_ascii=False,
    check_circular=True,
    allow_nan=False,
    separators=(",", ":"),
)


def _make_fast_encoder():
    """The C encoder of the json module, built once, or None where unavailable.

    ``JSONEncoder.encode`` builds a new C encoder (and a dict of markers for
    cycle detection) on every call, which doubles the cost of encoding a
    small observation. This one is built once, without markers: a cyclic
    value fails with RecursionError instead of ValueError. It is checked on
    a sample before use and the public encoder is used if anything differs.
    """
    try:
        from json import encoder as json_encoder

        make = getattr(json_encoder, "c_make_encoder", None)
        escape = getattr(json_encoder, "c_encode_basestring", None)
        if make is None or escape is None:
            return None

        def default(value):
            raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)

        # markers, default, encoder, indent, key separator, item separator,
        # sort_keys, skipkeys, allow_nan
        encoder = make(None, default, escape, None, ":", ",", False, False, False)
        join = "".join

        def encode(value):
            return join(encoder(value, 0))

        sample = {"a": [1, "\u00e9\n", None, True, 1.5, {"b": -2}], "c": ""}
        if encode(sample) != _ENCODER.encode(sample):
            return None
        try:
            encode(float("nan"))
        except ValueError:
            return encode
        return None
    except Exception:
        return None


#: Serialises one JSON value to compact text (raises ValueError on NaN and
#: infinities, TypeError on values JSON cannot hold, ValueError or
#: RecursionError on cycles).
encode_json = _make_fast_encoder() or _ENCODER.encode


def utf8(text):
    """Encodes ``text`` as UTF-8, replacing lone surrogates instead of failing."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def frame(payload, max_len=MAX_FRAME_LEN):
    """Prefixes an encoded payload with its length; raises FrameTooLarge above ``max_len``."""
    size = len(payload)
    if size > max_len:
        raise FrameTooLarge(
            "message of %d bytes exceeds the frame limit of %d bytes" % (size, max_len)
        )
    return size.to_bytes(4, "big") + payload


def encode_frame(message, max_len=MAX_FRAME_LEN):
    """Encodes one message (a dict with a ``type``) into a complete frame.

    Raises ValueError/TypeError when the message is not JSON-able (NaN,
    infinities, cycles, foreign objects) and FrameTooLarge when too big.
    """
    return frame(utf8(encode_json(message)), max_len)


def _reject_constant(name):
    raise ValueError("%s is not valid JSON (RFC 8259)" % name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _nesting_ok(value, limit):
    """Whether arrays/objects in ``value`` nest at most ``limit`` levels."""
    stack = [(value, 1)]
    pop = stack.pop
    push = stack.append
    while stack:
        item, depth = pop()
        if depth > limit:
            return False
        if type(item) is dict:
            for child in item.values():
                if type(child) is dict or type(child) is list:
                    push((child, depth + 1))
        else:
            for child in item:
                if type(child) is dict or type(child) is list:
                    push((child, depth + 1))
    return True


def decode_payload(payload):
    """Decodes one frame payload into a message dict, checking the envelope.

    Raises ProtocolError for anything section 2 of the protocol calls an
    error, including an unknown ``type``. Fields specific to each type are
    checked by :func:`check_client_message`.
    """
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("payload is not valid UTF-8: %s" % exc) from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise ProtocolError("payload nests deeper than %d levels" % MAX_NESTING) from None
    except ValueError as exc:
        raise ProtocolError("payload is not valid JSON: %s" % exc) from None
    if type(value) is not dict:
        raise ProtocolError("payload is not a JSON object")
    if not _nesting_ok(value, MAX_NESTING):
        raise ProtocolError("payload nests deeper than %d levels" % MAX_NESTING)
    kind = value.get("type")
    if type(kind) is not str:
        raise ProtocolError('message has no string "type" field')
    if kind not in ALL_MESSAGE_TYPES:
        raise ProtocolError("unknown message type %r" % (kind,))
    return value


def _is_u64(value):
    return type(value) is int and 0 <= value <= MAX_U64


def _is_u16(value):
    return type(value) is int and 0 <= value <= 0xFFFF


def check_client_message(message):
    """Checks the fields of a message received by the agent.

    Raises ProtocolError for a type the agent never receives (``welcome``,
    ``response``...) and for missing or ill-typed fields. Returns the message.
    """
    kind = message["type"]
    if kind == "request":
        if not _is_u64(message.get("id")):
            raise ProtocolError('request without a u64 "id"')
        if type(message.get("command")) is not str:
            raise ProtocolError('request without a string "command"')
        return message
    if kind == "cancel":
        if not _is_u64(message.get("stream")):
            raise ProtocolError('cancel without a u64 "stream"')
        return message
    if kind == "hello":
        protocol = message.get("protocol")
        if (
            type(protocol) is not dict
            or not _is_u16(protocol.get("major"))
            or not _is_u16(protocol.get("minor"))
        ):
            raise ProtocolError('hello without a {"major": u16, "minor": u16} "protocol"')
        if type(message.get("client")) is not str:
            raise ProtocolError('hello without a string "client"')
        return message
    raise ProtocolError("a client may not send %r messages" % (kind,))


class InputBudget(object):
    """The bytes all of an agent's connections may buffer at once for large frames.

    Each connection's reader reserves a frame longer than
    ``FrameReader.CHUNK`` before reading its payload and releases it once
    the frame is read: many clients sending large frames at once wait
    their turn (the kernel's socket buffers hold the rest) instead of
    making the target's memory grow with their number.
    """

    def __init__(self, total, wait=10.0):
        self.total = total
        #: How long a reservation may wait (seconds).
        self.wait = wait
        self._available = total
        self._changed = threading.Condition(threading.Lock())

    def reserve(self, size):
        """Takes ``size`` bytes, waiting for them at most ``wait`` seconds; whether it got them."""
        size = min(size, self.total)
        deadline = time.monotonic() + self.wait
        with self._changed:
            while self._available < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            self._available -= size
        return True

    def release(self, size):
        """Gives back what :meth:`reserve` took."""
        size = min(size, self.total)
        with self._changed:
            self._available += size
            self._changed.notify_all()


class FrameReader(object):
    """Reads messages from a blocking stream socket.

    ``read()`` returns the next checked client message, or None at a clean
    end of stream (the peer closed between frames). It raises ProtocolError
    (TruncatedFrame for an end in mid-frame) and lets OSError through.
    The length is checked before a single payload byte is read.

    It keeps what one ``recv`` brought beyond the current frame, and
    :meth:`has_frame` says whether the next frame is already complete in
    it: a client that sends its first request together with its ``hello``
    gets both answers in one write (see ``Connection``), which matters when
    the target keeps the GIL busy and every socket call of an agent thread
    waits for it again.
    """

    #: Bytes asked of one recv().
    CHUNK = 65536

    def __init__(self, sock, max_len=MAX_FRAME_LEN, budget=None):
        self._sock = sock
        #: The longest frame accepted (bytes); may be changed between frames.
        self.max_len = max_len
        #: The agent's :class:`InputBudget`, from which a frame longer than
        #: CHUNK is reserved before its payload is read (None: unbounded).
        self.budget = budget
        self._buffer = bytearray()
        self._start = 0  # the buffered bytes not consumed yet begin here

    def _available(self):
        return len(self._buffer) - self._start

    def _fill(self):
        """One recv() into the buffer; False at the end of the stream."""
        if self._start:
            del self._buffer[: self._start]
            self._start = 0
        chunk = self._sock.recv(self.CHUNK)
        if not chunk:
            return False
        self._buffer += chunk
        return True

    def _take(self, size):
        """``size`` bytes (fewer only at the end of the stream)."""
        while self._available() < size:
            if not self._fill():
                break
        size = min(size, self._available())
        data = bytes(self._buffer[self._start : self._start + size])
        self._start += size
        return data

    def _frame_size(self, header):
        size = int.from_bytes(header, "big")
        if size == 0:
            raise ProtocolError("frame of length 0")
        if size > self.max_len:
            raise ProtocolError(
                "frame of %d bytes exceeds the limit of %d bytes" % (size, self.max_len)
            )
        return size

    def feed(self, data):
        """Appends bytes received elsewhere (the listener reads hellos itself, see admission)."""
        self._buffer += data

    def check_length(self):
        """Raises ProtocolError if the next frame's length, once known, is over the limit."""
        if self._available() >= 4:
            start = self._start
            self._frame_size(bytes(self._buffer[start : start + 4]))

    def wait_frame(self, timeout):
        """Waits until a whole frame is buffered or the stream ends, for at
        most ``timeout`` seconds in all; whether it came (False: time is up).

        A frame longer than the limit is refused (ProtocolError) as soon as
        its length is known, before its payload is read.
        """
        deadline = time.monotonic() + timeout
        try:
            while not self.has_frame():
                self.check_length()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._sock.settimeout(remaining)
                if not self._fill():
                    return True  # the end of the stream: read() reports it
        except socket.timeout:
            return False
        finally:
            self._sock.settimeout(None)
        return True

    def has_frame(self):
        """Whether a whole frame is buffered (``read()`` would not block)."""
        available = self._available()
        if available < 4:
            return False
        start = self._start
        size = int.from_bytes(self._buffer[start : start + 4], "big")
        return available >= 4 + size

    def read_frame(self):
        """The next payload as bytes, or None at a clean end of stream."""
        header = self._take(4)
        if not header:
            return None
        if len(header) < 4:
            raise TruncatedFrame("stream ended inside a frame header")
        size = self._frame_size(header)
        budget = self.budget if size > self.CHUNK else None
        if budget is not None and not budget.reserve(size):
            raise ProtocolError(
                "a frame of %d bytes waited %.0f s in vain for the agent's input memory (%d bytes "
                "for all clients, held by others); send smaller requests"
                % (size, budget.wait, budget.total)
            )
        try:
            payload = self._take(size)
            if budget is not None:
                # Give the large buffer back rather than keep its capacity.
                self._buffer = bytearray(self._buffer[self._start :])
                self._start = 0
        finally:
            if budget is not None:
                budget.release(size)
        if len(payload) < size:
            raise TruncatedFrame(
                "stream ended inside a frame (%d of %d bytes)" % (len(payload), size)
            )
        return payload

    def read(self):
        """The next client message (checked), or None at a clean end of stream."""
        payload = self.read_frame()
        if payload is None:
            return None
        return check_client_message(decode_payload(payload))

    def close(self):
        """Releases the buffer (the socket itself stays open)."""
        self._buffer = bytearray()
        self._start = 0


# ---------------------------------------------------------------------------
# Message builders (agent -> client)


def version_object():
    """The ``{"major", "minor"}`` object of this agent's protocol version."""
    return {"major": PROTOCOL_MAJOR, "minor": PROTOCOL_MINOR}


def python_info():
    """The ``python`` object of ``welcome``: version and implementation."""
    name = sys.implementation.name
    implementation = {
        "cpython": "CPython",
        "pypy": "PyPy",
        "graalpy": "GraalVM",
        "ironpython": "IronPython",
        "jython": "Jython",
    }.get(name, name)
    return {"version": sys.version.split(" ", 1)[0], "implementation": implementation}


def welcome(agent_version, pid, capabilities):
    """The ``welcome`` message."""
    return {
        "type": "welcome",
        "protocol": version_object(),
        "agent_version": agent_version,
        "python": python_info(),
        "pid": pid,
        "capabilities": list(capabilities),
    }


def rejected(code, message):
    """The ``rejected`` message (the agent closes the connection after it)."""
    return {"type": "rejected", "code": code, "message": message, "protocol": version_object()}


def answer_hello(hello):
    """The handshake check: None when ``hello`` may proceed, else a ``rejected`` message."""
    peer = hello["protocol"]
    if peer["major"] == PROTOCOL_MAJOR:
        return None
    return rejected(
        ErrorCode.PROTOCOL_VERSION_MISMATCH,
        "this agent speaks Peeka protocol %d.%d and the client speaks %d.%d; use a client "
        "of the same major version, or detach and attach again with this client so that "
        "its agent is loaded" % (PROTOCOL_MAJOR, PROTOCOL_MINOR, peer["major"], peer["minor"]),
    )


def error_body(code, message, traceback=None):
    """An error body: ``{"code", "message", "traceback"}``."""
    return {"code": code, "message": message, "traceback": traceback}


def response_ok(request_id, data=None):
    """A successful ``response``."""
    return {"type": "response", "id": request_id, "ok": True, "data": data}


def response_error(request_id, code, message, traceback=None):
    """A failed ``response``."""
    return {
        "type": "response",
        "id": request_id,
        "ok": False,
        "error": error_body(code, message, traceback),
    }


def observation(stream, seq, data):
    """An ``observation`` message as a dict (see observation_frame for the fast path)."""
    return {"type": "observation", "stream": stream, "seq": seq, "data": data}


def observation_frame(stream, seq, data, max_len=MAX_FRAME_LEN):
    """An ``observation`` encoded straight to a frame, without building an envelope dict.

    ``data`` is JSON-able, or ``bytes``: the data already encoded as UTF-8
    JSON text (what a renderer returns to skip the generic encoder, such
    as the exit rows of :mod:`.watch_command`), written as it is.
    """
    if type(data) is bytes:
        payload = b'{"type":"observation","stream":%d,"seq":%d,"data":%s}' % (stream, seq, data)
        return frame(payload, max_len)
    text = '{"type":"observation","stream":%d,"seq":%d,"data":%s}' % (
        stream,
        seq,
        encode_json(data),
    )
    return frame(utf8(text), max_len)


def observations_frame(stream, seq, data, max_len=MAX_FRAME_LEN):
    """An ``observations`` batch (protocol 1.1) encoded straight to a frame.

    ``data`` is a non-empty list: element ``i`` is the data of the
    observation numbered ``seq + i`` (JSON-able, or ``bytes`` already
    encoded, as for :func:`observation_frame`). The same message as
    ``len(data)`` :func:`observation_frame` frames, for a client whose
    ``hello`` said minor >= :data:`BATCH_MINOR`.
    """
    kinds = set(map(type, data))
    if bytes not in kinds:
        text = '{"type":"observations","stream":%d,"seq":%d,"data":%s}' % (
            stream,
            seq,
            encode_json(data),
        )
        return frame(utf8(text), max_len)
    if len(kinds) == 1:
        items = b",".join(data)
    else:
        items = b",".join(
            [value if type(value) is bytes else utf8(encode_json(value)) for value in data]
        )
    payload = b'{"type":"observations","stream":%d,"seq":%d,"data":[%s]}' % (stream, seq, items)
    return frame(payload, max_len)


def accepts_batches(hello):
    """Whether the client that sent ``hello`` (already accepted) understands ``observations``."""
    return hello["protocol"]["minor"] >= BATCH_MINOR


def event(stream, seq, kind, data=None):
    """An ``event`` message."""
    return {"type": "event", "stream": stream, "seq": seq, "kind": kind, "data": data}


def stream_end(stream, reason, dropped=0, error=None):
    """A ``stream_end`` message; ``error`` (an error body) only with reason ``error``."""
    message = {"type": "stream_end", "stream": stream, "reason": reason, "dropped": dropped}
    if error is not None:
        message["error"] = error
    return message
