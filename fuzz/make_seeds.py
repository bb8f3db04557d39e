#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/seeds/<target>/.

fuzz/corpus is not kept in git; these small, deterministic seeds are. Run
this again after changing a target's input layout:

    python3 fuzz/make_seeds.py
"""

import json
import random
import shutil
import struct
from pathlib import Path

SEEDS = Path(__file__).resolve().parent / "seeds"

VERSION = {"major": 1, "minor": 1}

MESSAGES = {
    "hello": {"type": "hello", "protocol": VERSION, "client": "peeka-cli/0.1.0"},
    "welcome": {
        "type": "welcome",
        "protocol": VERSION,
        "agent_version": "0.1.0",
        "python": {"version": "3.12.1", "implementation": "CPython"},
        "pid": 4242,
        "capabilities": ["sys.monitoring"],
    },
    "rejected": {
        "type": "rejected",
        "code": "protocol_version_mismatch",
        "message": "use a client of the same major version",
        "protocol": {"major": 2, "minor": 0},
    },
    "request": {
        "type": "request",
        "id": 1,
        "command": "watch",
        "params": {"pattern": "app.orders.place_order", "count": 5, "expand": 2},
    },
    "response_ok": {"type": "response", "id": 1, "ok": True, "data": {"stream": 1}},
    "response_err": {
        "type": "response",
        "id": 2,
        "ok": False,
        "error": {
            "code": "not_found",
            "message": "no function matches `app.nope`",
            "traceback": "Traceback (most recent call last):\n  ...",
        },
    },
    "observation": {
        "type": "observation",
        "stream": 1,
        "seq": 0,
        "data": {
            "func_name": "app.orders.place_order",
            "location": "AtExit",
            "params": ["'A-17'", 3],
            "kwargs": {},
            "returnObj": "True",
            "throwExp": None,
            "success": True,
            "cost": 0.042,
            "thread_id": 140245,
            "thread_name": "MainThread",
            "timestamp": "2026-11-28T12:00:00.123",
            "seq": 0,
        },
    },
    "observations": {
        "type": "observations",
        "stream": 1,
        "seq": 1,
        "data": [
            {"func_name": "app.orders.place_order", "location": "AtExit", "cost": 0.04, "seq": 1},
            {"func_name": "app.orders.place_order", "location": "AtExit", "cost": 0.05, "seq": 2},
            None,
        ],
    },
    "event": {
        "type": "event",
        "stream": 3,
        "seq": 12,
        "kind": "condition_errors",
        "data": {"count": 4, "last": "ZeroDivisionError at 7"},
    },
    "stream_end": {
        "type": "stream_end",
        "stream": 4,
        "reason": "error",
        "dropped": 2,
        "error": {"code": "internal", "message": "the probe failed"},
    },
    "cancel": {"type": "cancel", "stream": 1},
}


def compact(message):
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def frame_decode_input(stream, max_len=4096 - 1, sizes=(1, 7, 200)):
    """Control bytes of the frame_decode target, then the stream."""
    control = struct.pack(">H", max_len) + bytes([len(sizes)])
    return control + bytes(s - 1 for s in sizes) + stream


def write(target, name, data):
    path = SEEDS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)

    # message_parse: one JSON text per message type, plus a few edges.
    for name, message in MESSAGES.items():
        write("message_parse", f"{name}.json", compact(message))
    write("message_parse", "escapes.json",
          b'{"type":"can\\u0063el","stream":7,"added_later":[1,{"x":"\\"]"}]}')
    write("message_parse", "unknown_reason.json",
          b'{"type":"stream_end","stream":1,"reason":"meteor"}')
    write("message_parse", "not_an_object.json", b'["hello",1]')
    write("message_parse", "observations_empty.json",
          b'{"type":"observations","stream":1,"seq":0,"data":[]}')
    write("message_parse", "observations_top_seq.json",
          b'{"type":"observations","stream":1,"seq":18446744073709551614,"data":[1,2]}')

    # frame_decode: valid frames, then each kind of bad frame after one.
    all_frames = b"".join(frame(compact(m)) for m in MESSAGES.values())
    cancel = frame(compact(MESSAGES["cancel"]))
    write("frame_decode", "all_types", frame_decode_input(all_frames))
    write("frame_decode", "one_byte_chunks", frame_decode_input(cancel * 3, sizes=(1,)))
    write("frame_decode", "oversized", frame_decode_input(cancel + b"\xff\xff\xff\xff" + b"{}"))
    write("frame_decode", "at_limit", frame_decode_input(frame(b"x" * 64) + frame(b"y" * 65), max_len=64))
    write("frame_decode", "empty_frame", frame_decode_input(cancel + b"\0\0\0\0"))
    write("frame_decode", "invalid_utf8", frame_decode_input(cancel + frame(b'{"a":"\xc3\x28"}')))
    write("frame_decode", "truncated", frame_decode_input(cancel + cancel[:-3]))

    # roundtrip: any bytes build messages; a few fixed pseudo-random inputs.
    rng = random.Random(20261128)
    for size in (16, 64, 256, 1024, 4096):
        write("roundtrip", f"random_{size}", bytes(rng.randrange(256) for _ in range(size)))


if __name__ == "__main__":
    main()
