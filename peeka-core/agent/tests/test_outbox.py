"""The outbox without threads: ``observations`` batches and bulk shedding.

An :class:`~peeka_agent.outbox.Outbox` over one end of a socket pair, with
real streams, consumed by calling its methods on the test's thread (no
writer thread runs), so each test controls exactly what is queued when the
consumer runs. The client end is read with the tests' raw client.
"""

import socket
import threading
import unittest

from peeka_agent import outbox as outbox_module
from peeka_agent.outbox import W_OPEN, Outbox
from peeka_agent.streams import Stream
from tests.support import RawClient


class Link(object):
    """What a :class:`Stream` needs of its connection: a lock, an outbox, a number."""

    def __init__(self, outbox):
        self.lock = threading.RLock()
        self.outbox = outbox
        self.number = 1
        self.agent = None

    def _forget_stream(self, stream):
        pass


class OutboxTestCase(unittest.TestCase):
    batching = True

    def setUp(self):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.errors = []
        self.outbox = Outbox(
            ours, 100000, lambda: None, self.record_error, "peeka-send-test", None
        )
        self.outbox.batching = self.batching
        self.client = RawClient.over(theirs)
        self.addCleanup(ours.close)
        self.addCleanup(self.client.close)
        self.stream = self.open_stream(5)

    def open_stream(self, stream_id):
        """A stream as once its response is written."""
        stream = Stream(Link(self.outbox), stream_id, "test")
        stream._announced = True
        stream._w_state = W_OPEN
        return stream

    def record_error(self, message, exc=None):
        self.errors.append(message)

    def frames(self):
        """Writes what is queued (the reader's inline path) and returns the frames sent."""
        self.outbox.drain()
        self.stream.end("cancelled")
        self.outbox.drain()
        frames = []
        while True:
            frame = self.client.recv_frame()
            frames.append(frame)
            if frame["type"] == "stream_end":
                return frames

    def shape(self, frames):
        """(type, first seq, data items) of each frame."""
        shapes = []
        for frame in frames:
            data = frame.get("data")
            size = len(data) if frame["type"] == "observations" else None
            shapes.append((frame["type"], frame.get("seq"), size))
        return shapes


class BatchTests(OutboxTestCase):
    def test_consecutive_observations_go_in_one_batch_in_order(self):
        for index in range(10):
            self.stream.emit({"i": index})
        frames = self.frames()
        self.assertEqual(
            self.shape(frames), [("observations", 0, 10), ("stream_end", None, None)]
        )
        self.assertEqual(frames[0]["stream"], 5)
        self.assertEqual(frames[0]["data"], [{"i": index} for index in range(10)])

    def test_an_event_or_failed_render_splits_the_batch_and_keeps_seq_increasing(self):
        for index in range(4):
            self.stream.emit({"i": index})
        self.stream.event("condition_errors", {"count": 1, "last": "x"})
        self.stream.emit_lazy(lambda value: 1 / value, 0)
        for index in range(3):
            self.stream.emit({"i": index})
        frames = self.frames()
        self.assertEqual(
            self.shape(frames),
            [
                ("observations", 0, 4),
                ("event", 4, None),
                ("event", 6, None),  # encode_error of the render that raised (seq 5)
                ("observations", 7, 3),
                ("stream_end", None, None),
            ],
        )
        self.assertEqual(frames[2]["kind"], "encode_error")
        self.assertEqual(frames[-1]["dropped"], 1)

    def test_an_unencodable_value_costs_only_itself(self):
        self.stream.emit({"i": 0})
        self.stream.emit({"i": 1})
        self.stream.emit({"bad": object()})
        self.stream.emit({"i": 3})
        frames = self.frames()
        self.assertEqual(
            [(f["type"], f.get("seq")) for f in frames],
            [
                ("observation", 0),
                ("observation", 1),
                ("observation", 3),
                ("event", 4),
                ("stream_end", None),
            ],
        )
        self.assertEqual(frames[3]["kind"], "encode_error")
        self.assertEqual(frames[-1]["dropped"], 1)

    def test_batch_size_follows_the_size_of_observations(self):
        for index in range(3000):
            self.stream.emit({"i": index})
        frames = self.frames()
        sizes = [size for kind, _seq, size in self.shape(frames) if kind == "observations"]
        self.assertEqual(sizes[0], outbox_module.RUN_START)
        self.assertEqual(max(sizes), outbox_module.RUN_MAX)
        self.assertEqual(sum(sizes), 3000)
        seqs = [frame["seq"] for frame in frames[:-1]]
        self.assertEqual(seqs, sorted(seqs))
        big = self.open_stream(6)
        for index in range(40):
            big.emit({"text": "x" * 200000})
        self.outbox.drain()
        batches = []
        while len(batches) < 40:
            frame = self.client.recv_frame()
            batches.extend(frame["data"] if frame["type"] == "observations" else [frame["data"]])
            # 16 of 200 kB (3.2 MB) fit in a frame; after that about 5 go in 1 MiB.
            self.assertLessEqual(len(frame.get("data", ())) * 200000, 4 << 20)
        big.end("cancelled")

    def test_pre_encoded_rows_are_sent_as_they_are_alone_or_mixed(self):
        def encoded(value):
            return ('{"n":%d,"text":"\u00e9"}' % value).encode("utf-8")

        for index in range(3):
            self.stream.emit_lazy(encoded, index)
        self.outbox.drain()
        batch = self.client.recv_frame()
        self.assertEqual(batch["data"], [{"n": n, "text": "\u00e9"} for n in range(3)])
        self.stream.emit_lazy(encoded, 3)
        self.stream.emit({"plain": [1, None]})
        self.stream.emit_lazy(encoded, 4)
        frames = self.frames()
        self.assertEqual(
            frames[0]["data"],
            [{"n": 3, "text": "\u00e9"}, {"plain": [1, None]}, {"n": 4, "text": "\u00e9"}],
        )
        self.assertEqual(frames[0]["seq"], 3)

    def test_a_lone_observation_is_a_plain_observation(self):
        self.stream.emit({"i": 0})
        self.outbox.drain()
        self.assertEqual(self.client.recv_frame()["type"], "observation")


class OneZeroClientTests(OutboxTestCase):
    batching = False

    def test_a_1_0_client_gets_one_message_per_observation(self):
        for index in range(5):
            self.stream.emit({"i": index})
        frames = self.frames()
        self.assertEqual(
            [(f["type"], f.get("seq")) for f in frames],
            [("observation", seq) for seq in range(5)] + [("stream_end", None)],
        )
        self.assertEqual([f.get("data") for f in frames[:5]], [{"i": i} for i in range(5)])

    def test_a_1_0_client_gets_pre_encoded_rows_as_single_observations(self):
        self.stream.emit_lazy(lambda value: b'{"n":%d}' % value, 7)
        frames = self.frames()
        self.assertEqual(frames[0], {"type": "observation", "stream": 5, "seq": 0, "data": {"n": 7}})


class ShedTests(OutboxTestCase):
    def shed(self, most):
        with self.outbox._consumer:
            return self.outbox._shed(most)

    def test_observations_only_are_counted_per_stream(self):
        other = self.open_stream(6)
        for index in range(6):
            self.stream.emit({"i": index})
            other.emit({"i": index})
        self.assertEqual(self.shed(10), 10)
        self.assertEqual((self.stream._w_drops, other._w_drops), (5, 5))
        other.end("cancelled")
        frames = self.frames()
        # What was left: the last observation of each stream, numbered after the shed ones.
        self.assertEqual(
            [(f["type"], f["stream"], f.get("seq")) for f in frames[:2]],
            [("observation", 5, 5), ("observation", 6, 5)],
        )
        self.assertEqual(frames[-1]["dropped"], 5)

    def test_other_items_among_them_are_written_in_place(self):
        for index in range(5):
            self.stream.emit({"i": index})
        self.stream.event("condition_errors", {"count": 1, "last": "x"})
        for index in range(5):
            self.stream.emit({"i": index})
        self.stream.emit({"i": "kept"})
        self.assertEqual(self.shed(11), 10)
        event = self.client.recv_frame()
        self.assertEqual((event["type"], event["seq"]), ("event", 5))
        frames = self.frames()
        self.assertEqual(
            [(f["type"], f.get("seq")) for f in frames], [("observation", 11), ("stream_end", None)]
        )
        self.assertEqual(frames[0]["data"], {"i": "kept"})
        self.assertEqual(frames[-1]["dropped"], 10)

    def test_nothing_after_stop_is_written(self):
        self.stream.emit({"i": 0})
        self.outbox.put_control((outbox_module.OP_STOP,))
        self.stream.emit({"i": 1})
        self.assertEqual(self.shed(3), 1)
        self.assertTrue(self.outbox.stopped)
        self.assertEqual(self.stream._w_drops, 1)
        self.client.sock.settimeout(0.2)
        with self.assertRaises(socket.timeout):
            self.client.recv_frame()  # nothing was written, not even the observation after stop


if __name__ == "__main__":
    unittest.main()
