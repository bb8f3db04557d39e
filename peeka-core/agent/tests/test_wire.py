"""Frames and messages: round trips, limits checked before reading, strict decoding."""

import json
import socket
import threading
import unittest

from peeka_agent import wire


def socket_pair():
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


class FrameEncodingTests(unittest.TestCase):
    def test_spec_example_bytes(self):
        frame = wire.encode_frame({"type": "cancel", "stream": 7})
        self.assertEqual(
            frame,
            bytes.fromhex("0000001c") + b'{"type":"cancel","stream":7}',
        )

    def test_compact_and_utf8(self):
        frame = wire.encode_frame({"type": "event", "data": "h\u00e9\u4e2d\U0001f600"})
        payload = frame[4:]
        self.assertEqual(int.from_bytes(frame[:4], "big"), len(payload))
        self.assertNotIn(b" ", payload)
        self.assertIn("h\u00e9\u4e2d\U0001f600".encode("utf-8"), payload)

    def test_nan_and_infinity_refused(self):
        for value in (float("nan"), float("inf"), float("-inf")):
            with self.assertRaises(ValueError):
                wire.encode_frame({"type": "event", "data": value})

    def test_lone_surrogates_become_valid_utf8(self):
        frame = wire.encode_frame({"type": "event", "data": "a\udc80b"})
        frame[4:].decode("utf-8")  # must not raise
        self.assertEqual(json.loads(frame[4:].decode("utf-8"))["data"], "a?b")

    def test_oversized_outgoing_frame_refused(self):
        with self.assertRaises(wire.FrameTooLarge):
            wire.encode_frame({"type": "event", "data": "x" * 100}, max_len=50)
        big = "x" * (wire.MAX_FRAME_LEN + 1)
        with self.assertRaises(wire.FrameTooLarge):
            wire.encode_frame({"type": "event", "data": big})

    def test_observation_frame_matches_generic_encoding(self):
        data = {"func_name": "m.f", "params": [1, "a"], "cost": 0.5}
        fast = wire.observation_frame(3, 9, data)
        slow = wire.encode_frame(wire.observation(3, 9, data))
        self.assertEqual(json.loads(fast[4:]), json.loads(slow[4:]))
        self.assertEqual(int.from_bytes(fast[:4], "big"), len(fast) - 4)


class FrameReaderTests(unittest.TestCase):
    def setUp(self):
        self.ours, self.theirs = socket_pair()
        self.ours.settimeout(5)
        self.reader = wire.FrameReader(self.ours)

    def tearDown(self):
        self.reader.close()
        self.ours.close()
        self.theirs.close()

    def send_payload(self, payload):
        self.theirs.sendall(len(payload).to_bytes(4, "big") + payload)

    def test_round_trip_of_every_client_message(self):
        messages = [
            {"type": "hello", "protocol": {"major": 1, "minor": 0}, "client": "x/1"},
            {"type": "request", "id": 1, "command": "ping"},
            {"type": "request", "id": (1 << 64) - 1, "command": "watch", "params": {"a": [1]}},
            {"type": "cancel", "stream": 7},
        ]
        for message in messages:
            self.theirs.sendall(wire.encode_frame(message))
        for message in messages:
            self.assertEqual(self.reader.read(), message)

    def test_has_frame_tells_what_is_buffered(self):
        self.assertFalse(self.reader.has_frame())
        first = wire.encode_frame({"type": "request", "id": 1, "command": "ping"})
        second = wire.encode_frame({"type": "cancel", "stream": 3})
        self.theirs.sendall(first + second + second[:5])
        self.assertEqual(self.reader.read()["id"], 1)
        self.assertTrue(self.reader.has_frame())
        self.assertEqual(self.reader.read()["stream"], 3)
        # Only part of the third frame is there: reading it would block.
        self.assertFalse(self.reader.has_frame())
        self.theirs.sendall(second[5:])
        self.assertEqual(self.reader.read()["stream"], 3)
        self.assertFalse(self.reader.has_frame())

    def test_split_writes_are_reassembled(self):
        frame = wire.encode_frame({"type": "request", "id": 5, "command": "ping", "params": None})

        def dribble():
            for byte in frame:
                self.theirs.sendall(bytes([byte]))

        thread = threading.Thread(target=dribble)
        thread.start()
        self.assertEqual(self.reader.read()["id"], 5)
        thread.join()

    def test_clean_end_of_stream(self):
        self.theirs.sendall(wire.encode_frame({"type": "cancel", "stream": 1}))
        self.theirs.shutdown(socket.SHUT_WR)
        self.assertEqual(self.reader.read()["stream"], 1)
        self.assertIsNone(self.reader.read())

    def test_truncated_header_and_payload(self):
        self.theirs.sendall(b"\x00\x00")
        self.theirs.shutdown(socket.SHUT_WR)
        with self.assertRaises(wire.TruncatedFrame):
            self.reader.read()

    def test_truncated_payload(self):
        self.theirs.sendall((10).to_bytes(4, "big") + b"{}")
        self.theirs.shutdown(socket.SHUT_WR)
        with self.assertRaises(wire.TruncatedFrame):
            self.reader.read()

    def test_oversized_length_refused_before_reading_payload(self):
        # Only the header is sent: a reader that waited for the payload would block.
        self.theirs.sendall((wire.MAX_FRAME_LEN + 1).to_bytes(4, "big"))
        with self.assertRaises(wire.ProtocolError):
            self.reader.read()
        self.theirs.sendall(b"\xff\xff\xff\xff")

    def test_huge_length_refused(self):
        self.theirs.sendall(b"\xff\xff\xff\xff")
        with self.assertRaises(wire.ProtocolError):
            self.reader.read()

    def test_zero_length_refused(self):
        self.theirs.sendall(b"\x00\x00\x00\x00")
        with self.assertRaises(wire.ProtocolError):
            self.reader.read()

    def test_bad_payloads(self):
        bad = [
            b"\xff\xfe",  # not UTF-8
            b"{not json",
            b"[1, 2]",  # not an object
            b'"text"',
            b'{"type": 1}',
            b'{"no_type": true}',
            b'{"type": "mystery"}',
            b'{"type": "welcome"}',  # a type the agent never receives
            b'{"type": "request", "id": -1, "command": "x"}',
            b'{"type": "request", "id": 18446744073709551616, "command": "x"}',
            b'{"type": "request", "id": true, "command": "x"}',
            b'{"type": "request", "id": 1.5, "command": "x"}',
            b'{"type": "request", "id": 1}',
            b'{"type": "cancel"}',
            b'{"type": "hello", "protocol": {"major": 1}, "client": "x"}',
            b'{"type": "hello", "protocol": {"major": 70000, "minor": 0}, "client": "x"}',
            b'{"type": "hello", "protocol": {"major": 1, "minor": 0}}',
            b'{"type": "request", "id": 1, "command": "x", "params": NaN}',
            b'{"type": "request", "id": 1, "command": "x", "params": Infinity}',
            b'{"type": "cancel", "stream": 1} trailing',
        ]
        for payload in bad:
            with self.subTest(payload=payload):
                with self.assertRaises(wire.ProtocolError):
                    wire.check_client_message(wire.decode_payload(payload))

    def test_nesting_limit(self):
        # The message object is level 1: 127 nested arrays make 128 levels, the limit.
        ok = b'{"type":"request","id":1,"command":"x","params":' + b"[" * 127 + b"]" * 127 + b"}"
        wire.decode_payload(ok)
        too_deep = (
            b'{"type":"request","id":1,"command":"x","params":' + b"[" * 128 + b"]" * 128 + b"}"
        )
        with self.assertRaises(wire.ProtocolError):
            wire.decode_payload(too_deep)
        absurd = (
            b'{"type":"request","id":1,"command":"x","params":'
            + b"[" * 200000
            + b"]" * 200000
            + b"}"
        )
        with self.assertRaises(wire.ProtocolError):
            wire.decode_payload(absurd)

    def test_unknown_fields_are_ignored(self):
        message = wire.check_client_message(
            wire.decode_payload(b'{"type":"cancel","stream":2,"future":{"x":1}}')
        )
        self.assertEqual(message["stream"], 2)


class MessageTests(unittest.TestCase):
    def test_welcome_shape(self):
        message = wire.welcome("0.1.0", 42, ["sys.monitoring"])
        self.assertEqual(message["type"], "welcome")
        self.assertEqual(message["protocol"], {"major": 1, "minor": 1})
        self.assertEqual(message["pid"], 42)
        self.assertEqual(message["capabilities"], ["sys.monitoring"])
        self.assertEqual(set(message["python"]), {"version", "implementation"})
        self.assertEqual(message["python"]["implementation"], "CPython")
        self.assertRegex(message["python"]["version"], r"^3\.\d+\.\d+")

    def test_handshake_accepts_same_major_any_minor(self):
        hello = {"type": "hello", "protocol": {"major": 1, "minor": 9}, "client": "x"}
        self.assertIsNone(wire.answer_hello(hello))

    def test_handshake_rejects_other_major(self):
        for major in (0, 2):
            hello = {"type": "hello", "protocol": {"major": major, "minor": 3}, "client": "x"}
            rejected = wire.answer_hello(hello)
            self.assertEqual(rejected["type"], "rejected")
            self.assertEqual(rejected["code"], "protocol_version_mismatch")
            self.assertIn("%d.3" % major, rejected["message"])
            self.assertEqual(rejected["protocol"], {"major": 1, "minor": 1})

    def test_response_shapes(self):
        self.assertEqual(
            wire.response_ok(3, {"a": 1}),
            {"type": "response", "id": 3, "ok": True, "data": {"a": 1}},
        )
        error = wire.response_error(4, "not_found", "nothing", None)
        self.assertEqual(error["ok"], False)
        self.assertEqual(
            error["error"], {"code": "not_found", "message": "nothing", "traceback": None}
        )

    def test_stream_messages(self):
        self.assertEqual(
            wire.event(2, 5, "condition_errors", {"count": 1}),
            {
                "type": "event",
                "stream": 2,
                "seq": 5,
                "kind": "condition_errors",
                "data": {"count": 1},
            },
        )
        end = wire.stream_end(2, "cancelled", 3)
        self.assertEqual(
            end, {"type": "stream_end", "stream": 2, "reason": "cancelled", "dropped": 3}
        )
        failed = wire.stream_end(2, "error", 0, wire.error_body("internal", "boom", "tb"))
        self.assertEqual(failed["error"]["code"], "internal")


if __name__ == "__main__":
    unittest.main()


class InputBudgetTests(unittest.TestCase):
    """Large frames of all connections together take at most the budget."""

    def test_a_large_frame_waits_for_the_budget_and_gives_it_back(self):
        budget = wire.InputBudget(300000, wait=0.2)
        self.assertTrue(budget.reserve(200000))
        self.assertFalse(budget.reserve(200000))  # waited 0.2 s in vain
        budget.release(200000)
        self.assertTrue(budget.reserve(300000))
        budget.release(300000)

    def test_a_reader_reserves_a_large_frame_while_reading_it(self):
        budget = wire.InputBudget(150000, wait=0.2)
        ours, theirs = socket_pair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        reader = wire.FrameReader(ours, budget=budget)
        payload = json.dumps({"type": "cancel", "stream": 1, "pad": "x" * 100000}).encode()
        theirs.sendall(len(payload).to_bytes(4, "big") + payload)
        self.assertEqual(reader.read()["stream"], 1)
        # Given back: the whole budget can be reserved again.
        self.assertTrue(budget.reserve(150000))
        theirs.sendall(len(payload).to_bytes(4, "big") + payload)
        with self.assertRaises(wire.ProtocolError) as raised:
            reader.read()
        self.assertIn("input memory", str(raised.exception))
