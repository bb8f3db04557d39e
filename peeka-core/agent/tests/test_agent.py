"""End to end, in process: the agent loaded like the bootstrap does, a raw socket client.

Each test loads its own copy of the agent package (``_peeka_agent_<token>``)
from a fresh private directory, starts it, talks to it over the real Unix
socket, and detaches it at the end.
"""

import importlib
import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
import unittest

from tests.support import (
    RawClient,
    load_agent,
    make_private_dir,
    new_token,
    peeka_threads,
    remove_modules_of,
    wait_until,
)


class AgentTestCase(unittest.TestCase):
    agent_options = None

    def setUp(self):
        self.threads_before = peeka_threads()
        self.assertEqual(self.threads_before, [], "a previous test left agent threads running")
        self.directory = make_private_dir()
        self.token = new_token()
        self.module = load_agent(self.directory, self.token)
        self.cleanups_run = []
        self.streams = {}
        if self.agent_options:
            self.agent = self.module.Agent(
                self.directory, self.token, package_name=self.module.__name__, **self.agent_options
            )
            self.details = self.agent.start()
        else:
            self.details = self.module.start(self.directory, self.token)
            self.agent = self.module.current_agent()
        self.socket_path = self.details["socket"]
        self.agent.register_command("test.stream", self.stream_command)
        self.addCleanup(self.shutdown)

    def shutdown(self):
        self.agent.detach()
        remove_modules_of(self.module.__name__)
        wait_until(lambda: not peeka_threads(), timeout=2.0)

    def stream_command(self, ctx):
        params = ctx.params or {}
        stream = ctx.open_stream(max_items=params.get("max_items"))
        self.streams[stream.id] = stream

        def cleanup():
            self.cleanups_run.append((stream.id, stream.end_reason))

        stream.on_close(cleanup)
        for index in range(params.get("emit", 0)):
            stream.emit({"i": index})
        if params.get("event"):
            stream.event("matched", {"functions": 1})
        if params.get("fail"):
            raise self.module.CommandError("not_found", "no function matches `x`")
        if params.get("crash"):
            raise RuntimeError("a bug in the command")
        return {"matched": ["app.f"]}

    def client(self):
        client = RawClient(self.socket_path)
        self.addCleanup(client.close)
        welcome = client.handshake()
        self.assertEqual(welcome["type"], "welcome", welcome)
        return client

    def open_stream(self, client, **params):
        request_id = client.request("test.stream", params)
        response = client.recv()
        self.assertEqual(response["type"], "response")
        self.assertTrue(response["ok"], response)
        self.assertEqual(response["data"]["stream"], request_id)
        return request_id

    def read_until_end(self, client, stream_id):
        messages = []
        while True:
            message = client.recv()
            messages.append(message)
            if message["type"] == "stream_end" and message["stream"] == stream_id:
                return messages


class ConversationTests(AgentTestCase):
    def test_a_whole_conversation(self):
        """Handshake, ping, a stream opened and cancelled, one disconnected, detach."""
        client = self.client()
        self.assertEqual(client.call("ping")["data"]["pong"], True)
        first = self.open_stream(client)
        self.streams[first].emit({"n": 1})
        self.assertEqual(client.recv()["data"], {"n": 1})
        client.cancel(first)
        self.assertEqual(client.recv()["reason"], "cancelled")
        self.assertEqual(self.cleanups_run, [(first, "cancelled")])
        second = self.open_stream(client)
        client.close()
        self.assertTrue(wait_until(lambda: len(self.cleanups_run) == 2, timeout=1.0))
        self.assertEqual(self.cleanups_run[1], (second, "cancelled"))
        last = self.client()
        self.assertTrue(last.call("detach")["data"]["detached"])
        self.assertTrue(last.at_eof())
        self.assertTrue(wait_until(lambda: not peeka_threads(), timeout=1.0), peeka_threads())
        self.assertFalse(os.path.exists(self.socket_path))
        self.assertFalse(os.path.exists(self.directory))


class StartTests(AgentTestCase):
    def test_details_socket_and_idempotence(self):
        self.assertEqual(self.details["agent_version"], "0.1.0")
        self.assertEqual(self.details["pid"], os.getpid())
        self.assertEqual(self.details["socket"], os.path.join(self.directory, "agent.sock"))
        info = os.lstat(self.socket_path)
        self.assertTrue(stat.S_ISSOCK(info.st_mode))
        self.assertEqual(stat.S_IMODE(info.st_mode), 0o600)
        self.assertIn("peeka-agent", peeka_threads())
        again = self.module.start(self.directory, self.token)
        self.assertTrue(again["already_running"])
        self.assertEqual(again["socket"], self.socket_path)

    def test_another_copy_of_the_agent_sees_the_running_one(self):
        other_directory = make_private_dir()
        self.addCleanup(shutil.rmtree, other_directory, True)
        other = load_agent(other_directory, new_token())
        self.addCleanup(remove_modules_of, other.__name__)
        details = other.start(other_directory, "other")
        self.assertTrue(details["already_running"])
        self.assertEqual(details["socket"], self.socket_path)
        self.assertEqual(peeka_threads().count("peeka-agent"), 1)

    def test_bad_private_directories_are_refused(self):
        loose = make_private_dir()
        os.chmod(loose, 0o755)
        with self.assertRaises(self.module.AgentStartError) as caught:
            self.module.Agent(loose, "x").start()
        self.assertIn("0700", str(caught.exception))
        with self.assertRaises(self.module.AgentStartError) as caught:
            self.module.Agent(os.path.join(loose, "missing"), "x").start()
        self.assertIn("does not exist", str(caught.exception))
        link = loose + "-link"
        os.symlink(self.directory, link)
        self.addCleanup(os.unlink, link)
        with self.assertRaises(self.module.AgentStartError) as caught:
            self.module.Agent(link, "x").start()
        self.assertIn("symbolic link", str(caught.exception))
        os.rmdir(loose)


class RequestTests(AgentTestCase):
    def test_welcome(self):
        client = RawClient(self.socket_path)
        self.addCleanup(client.close)
        welcome = client.handshake(minor=7)
        self.assertEqual(welcome["protocol"], {"major": 1, "minor": 1})
        self.assertEqual(welcome["agent_version"], "0.1.0")
        self.assertEqual(welcome["pid"], os.getpid())
        self.assertEqual(welcome["python"]["implementation"], "CPython")
        self.assertTrue(sys.version.startswith(welcome["python"]["version"]))
        self.assertIsInstance(welcome["capabilities"], list)
        self.assertEqual("sys.monitoring" in welcome["capabilities"], hasattr(sys, "monitoring"))

    def test_pipelined_hello_and_request_are_answered_in_one_write(self):
        client = RawClient(self.socket_path)
        self.addCleanup(client.close)
        frames = [
            {"type": "hello", "protocol": {"major": 1, "minor": 0}, "client": "test/1"},
            {"type": "request", "id": 1, "command": "ping"},
            {"type": "request", "id": 2, "command": "ping", "params": {"echo": 2}},
        ]
        data = b""
        for message in frames:
            payload = json.dumps(message).encode("utf-8")
            data += len(payload).to_bytes(4, "big") + payload
        client.send_raw(data)
        client.sock.settimeout(5)
        chunk = client.sock.recv(65536)
        # The three answers came in one write, so one recv has them all.
        client._buffer = chunk
        self.assertEqual(client.recv()["type"], "welcome")
        self.assertEqual(client.recv()["id"], 1)
        self.assertEqual(client.recv()["data"]["echo"], 2)
        self.assertEqual(client._buffer, b"")
        # The connection goes on as usual.
        self.assertTrue(client.call("ping")["ok"])

    def test_ping_info_and_errors(self):
        client = self.client()
        response = client.call("ping")
        self.assertEqual(response["data"], {"pong": True, "pid": os.getpid()})
        self.assertEqual(client.call("ping", {"echo": [1, "x"]})["data"]["echo"], [1, "x"])
        info = client.call("info")["data"]
        self.assertEqual(info["agent_version"], "0.1.0")
        self.assertEqual(info["pid"], os.getpid())
        self.assertIn("peeka-agent", info["threads"])
        self.assertIn("peeka-conn-1", info["threads"])
        # Requests alone are answered by the reader: no writer thread.
        self.assertNotIn("peeka-send-1", info["threads"])
        self.assertIn("ping", info["commands"])
        self.assertIn("test.stream", info["commands"])
        self.assertEqual(info["connections"], 1)
        unknown = client.call("no.such")
        self.assertFalse(unknown["ok"])
        self.assertEqual(unknown["error"]["code"], "unknown_command")
        self.assertIn("ping", unknown["error"]["message"])
        for params in ([1], "x", {"nope": 1}):
            bad = client.call("ping", params)
            self.assertEqual(bad["error"]["code"], "invalid_params", params)

    def test_handler_crash_is_an_internal_error(self):
        client = self.client()
        response = client.call("test.stream", {"crash": True})
        self.assertFalse(response["ok"])
        self.assertEqual(response["error"]["code"], "internal")
        self.assertIn("RuntimeError: a bug in the command", response["error"]["traceback"])
        self.assertTrue(client.call("ping")["ok"])
        self.assertEqual(self.cleanups_run, [(response["id"], "error")])

    def test_typed_failure_discards_the_stream(self):
        client = self.client()
        request_id = client.request("test.stream", {"emit": 5, "fail": True})
        response = client.recv()
        self.assertEqual(response["id"], request_id)
        self.assertEqual(response["error"]["code"], "not_found")
        # Nothing of the discarded stream follows: the next message answers the ping.
        ping = client.call("ping")
        self.assertTrue(ping["ok"])
        self.assertEqual(self.cleanups_run, [(request_id, "error")])

    def test_duplicate_ids(self):
        client = self.client()
        stream_id = self.open_stream(client)
        client.request("ping", request_id=stream_id)
        response = client.recv()
        self.assertEqual(response["id"], stream_id)
        self.assertEqual(response["error"]["code"], "duplicate_id")
        client.cancel(stream_id)
        self.assertEqual(client.recv()["type"], "stream_end")
        client.request("ping", request_id=stream_id)
        self.assertTrue(client.recv()["ok"])

    def test_deferred_reply_from_another_thread(self):
        # The deferred reply is held back until the ping sent after it has
        # been answered: a deferral that blocked the connection would time
        # out the first recv(), whatever the machine's load.
        released = threading.Event()

        def slow(ctx):
            ctx.defer()

            def later():
                released.wait(10)
                ctx.reply({"late": True})

            ctx.agent.spawn("slow", later)

        self.agent.register_command("test.slow", slow)
        client = self.client()
        slow_id = client.request("test.slow")
        ping_id = client.request("ping")
        first = client.recv()
        released.set()
        second = client.recv()
        self.assertEqual((first["id"], second["id"]), (ping_id, slow_id))
        self.assertEqual(second["data"], {"late": True})

    def test_at_the_limit_the_client_idle_the_longest_makes_room(self):
        self.agent.max_connections = 2
        oldest = self.client()
        recent = self.client()
        self.assertTrue(oldest.call("ping")["ok"])  # now `recent` is the idlest
        newcomer = RawClient(self.socket_path)
        self.addCleanup(newcomer.close)
        self.assertEqual(newcomer.handshake()["type"], "welcome")
        self.assertTrue(newcomer.call("ping")["ok"])
        self.assertTrue(recent.at_eof())
        self.assertTrue(oldest.call("ping")["ok"])
        messages = [entry["message"] for entry in self.agent.errors()]
        self.assertTrue(any("to make room for a new client" in m for m in messages), messages)

    def test_at_the_limit_with_every_client_busy_a_new_one_is_rejected(self):
        self.agent.max_connections = 1
        busy = self.client()
        busy.request("test.stream", {"emit": 1})
        self.assertEqual(busy.recv()["type"], "response")
        second = RawClient(self.socket_path)
        self.addCleanup(second.close)
        rejected = second.handshake()
        self.assertEqual(rejected["type"], "rejected")
        self.assertEqual(rejected["code"], "limit_exceeded")
        self.assertTrue(second.at_eof())
        self.assertEqual(busy.recv()["type"], "observation")


class StreamTests(AgentTestCase):
    def test_response_then_observations_then_cancel(self):
        client = self.client()
        stream_id = client.request("test.stream", {"emit": 3})
        response = client.recv()
        self.assertEqual(response["data"], {"matched": ["app.f"], "stream": stream_id})
        for seq in range(3):
            observation = client.recv()
            self.assertEqual(observation["type"], "observation")
            self.assertEqual((observation["stream"], observation["seq"]), (stream_id, seq))
            self.assertEqual(observation["data"], {"i": seq})
        stream = self.streams[stream_id]
        stream.emit({"i": 3})
        self.assertEqual(client.recv()["seq"], 3)
        self.assertTrue(stream.event("condition_errors", {"count": 2, "last": "x"}))
        event = client.recv()
        self.assertEqual(
            event,
            {
                "type": "event",
                "stream": stream_id,
                "seq": 4,
                "kind": "condition_errors",
                "data": {"count": 2, "last": "x"},
            },
        )
        client.cancel(stream_id)
        end = client.recv()
        self.assertEqual(
            end, {"type": "stream_end", "stream": stream_id, "reason": "cancelled", "dropped": 0}
        )
        self.assertEqual(self.cleanups_run, [(stream_id, "cancelled")])
        self.assertFalse(stream.emit({"late": True}))
        self.assertFalse(stream.event("late"))
        client.cancel(stream_id)
        client.cancel(999)
        self.assertTrue(client.call("ping")["ok"])
        self.assertEqual(self.cleanups_run, [(stream_id, "cancelled")])

    def test_events_before_the_response_are_held_back(self):
        client = self.client()
        stream_id = client.request("test.stream", {"emit": 1, "event": True})
        messages = [client.recv() for _ in range(3)]
        self.assertEqual([m["type"] for m in messages], ["response", "observation", "event"])
        self.assertEqual([m.get("seq") for m in messages[1:]], [0, 1])
        self.assertEqual(messages[2]["stream"], stream_id)

    def test_max_items_ends_with_count_reached(self):
        client = self.client()
        stream_id = client.request("test.stream", {"emit": 5, "max_items": 3})
        messages = self.read_until_end(client, stream_id)
        self.assertEqual(
            [m["type"] for m in messages],
            ["response", "observation", "observation", "observation", "stream_end"],
        )
        self.assertEqual(messages[-1]["reason"], "count_reached")
        self.assertEqual(self.cleanups_run, [(stream_id, "count_reached")])

    def test_end_with_error(self):
        client = self.client()
        stream_id = self.open_stream(client)
        try:
            raise ValueError("probe broke")
        except ValueError as exc:
            self.streams[stream_id].end("error", exc)
        end = client.recv()
        self.assertEqual(end["reason"], "error")
        self.assertEqual(end["error"]["code"], "internal")
        self.assertIn("ValueError: probe broke", end["error"]["traceback"])
        with self.assertRaises(ValueError):
            self.streams[stream_id].end("bogus")

    def test_lazy_and_unencodable_observations(self):
        client = self.client()
        stream_id = self.open_stream(client)
        stream = self.streams[stream_id]
        stream.emit_lazy(lambda value: {"rendered": value * 2}, 21)
        self.assertEqual(client.recv()["data"], {"rendered": 42})
        stream.emit({"bad": object()})
        event = client.recv()
        self.assertEqual((event["type"], event["kind"], event["seq"]), ("event", "encode_error", 2))
        stream.emit_lazy(lambda value: 1 / value, 0)
        stream.emit({"fine": float("1.5")})
        good = client.recv()
        self.assertEqual((good["seq"], good["data"]), (4, {"fine": 1.5}))
        client.cancel(stream_id)
        self.assertEqual(client.recv()["dropped"], 2)

    def test_failing_cleanup_is_logged(self):
        client = self.client()
        stream_id = self.open_stream(client)

        def broken():
            raise RuntimeError("cleanup broke")

        self.streams[stream_id].on_close(broken)
        client.cancel(stream_id)
        self.assertEqual(client.recv()["reason"], "cancelled")
        errors = client.call("info")["data"]["errors"]
        self.assertTrue(any("cleanup broke" in entry["message"] for entry in errors), errors)

    def test_disconnect_removes_the_clients_streams(self):
        client = self.client()
        first = self.open_stream(client)
        second = self.open_stream(client)
        client.close()
        self.assertTrue(wait_until(lambda: len(self.cleanups_run) == 2, timeout=1.0))
        self.assertEqual(sorted(self.cleanups_run), [(first, "cancelled"), (second, "cancelled")])
        self.assertEqual(self.agent.streams(), [])
        self.assertTrue(
            wait_until(lambda: peeka_threads() == ["peeka-agent"], timeout=1.0), peeka_threads()
        )

    def test_two_clients_are_independent(self):
        alice = self.client()
        bob = self.client()
        alice_stream = self.open_stream(alice)
        bob_stream = self.open_stream(bob)
        self.assertEqual(alice_stream, bob_stream)  # ids are per connection
        alice.close()
        self.assertTrue(wait_until(lambda: len(self.cleanups_run) == 1, timeout=1.0))
        bob_streams = [s for s in self.agent.streams()]
        self.assertEqual(len(bob_streams), 1)
        bob_streams[0].emit({"still": "alive"})
        observation = bob.recv()
        self.assertEqual(observation["data"], {"still": "alive"})

    def test_protocol_errors_close_only_that_connection(self):
        bad_inputs = [
            (len(b"{oops").to_bytes(4, "big") + b"{oops"),
            b"\xff\xff\xff\xff",
            b"\x00\x00\x00\x00",
            (len(b"[1]").to_bytes(4, "big") + b"[1]"),
        ]
        for data in bad_inputs:
            with self.subTest(data=data[:8]):
                client = self.client()
                stream_id = self.open_stream(client)
                client.send_raw(data)
                self.assertTrue(client.at_eof())
                self.assertIn((stream_id, "cancelled"), self.cleanups_run)
                self.cleanups_run[:] = []
        before_hello = RawClient(self.socket_path)
        self.addCleanup(before_hello.close)
        before_hello.request("ping")
        self.assertTrue(before_hello.at_eof())
        twice = self.client()
        twice.send({"type": "hello", "protocol": {"major": 1, "minor": 0}, "client": "again"})
        self.assertTrue(twice.at_eof())
        self.assertTrue(self.client().call("ping")["ok"])

    def test_other_major_version_is_rejected(self):
        client = RawClient(self.socket_path)
        self.addCleanup(client.close)
        rejected = client.handshake(major=2)
        self.assertEqual(rejected["type"], "rejected")
        self.assertEqual(rejected["code"], "protocol_version_mismatch")
        self.assertEqual(rejected["protocol"], {"major": 1, "minor": 1})
        self.assertTrue(client.at_eof())


class BackpressureTests(AgentTestCase):
    agent_options = {"queue_limit": 256}

    def test_slow_client_makes_drops_not_waits(self):
        client = self.client()
        stream_id = self.open_stream(client)
        stream = self.streams[stream_id]
        emitted = 100000
        payload = "p" * 100
        started = time.perf_counter()
        accepted = 0
        for index in range(emitted):
            if stream.emit({"i": index, "payload": payload}):
                accepted += 1
        elapsed = time.perf_counter() - started
        self.assertLess(elapsed / emitted, 50e-6, "emit must not wait for the client")
        self.assertLess(accepted, emitted)
        client.cancel(stream_id)
        messages = self.read_until_end(client, stream_id)
        observations = [m for m in messages if m["type"] == "observation"]
        end = messages[-1]
        seqs = [m["seq"] for m in observations]
        self.assertEqual(seqs, sorted(set(seqs)), "seq must strictly increase")
        self.assertEqual(len(observations) + end["dropped"], emitted)
        self.assertGreater(end["dropped"], 0)
        self.assertLess(seqs[-1], emitted)
        # A gap in seq is exactly the number of drops before that observation.
        for message in observations:
            self.assertLessEqual(message["data"]["i"], message["seq"])


class DetachTests(AgentTestCase):
    def test_detach_command_leaves_nothing_behind(self):
        watcher = self.client()
        idle = self.client()
        stream_id = self.open_stream(watcher, emit=2)
        watcher.recv()
        watcher.recv()
        detach_id = watcher.request("detach")
        end = watcher.recv()
        self.assertEqual(
            end, {"type": "stream_end", "stream": stream_id, "reason": "detached", "dropped": 0}
        )
        response = watcher.recv()
        self.assertEqual(response["id"], detach_id)
        self.assertEqual(response["data"], {"detached": True, "streams_ended": 1, "connections": 2})
        self.assertTrue(watcher.at_eof())
        self.assertTrue(idle.at_eof())
        self.assertEqual(self.cleanups_run, [(stream_id, "detached")])
        self.assertTrue(wait_until(lambda: not peeka_threads(), timeout=1.0), peeka_threads())
        self.assertFalse(os.path.exists(self.socket_path))
        self.assertFalse(os.path.exists(self.directory))
        prefix = self.module.__name__
        self.assertEqual([k for k in sys.modules if k == prefix or k.startswith(prefix + ".")], [])
        self.assertIsNone(self.module.current_agent())
        with self.assertRaises(OSError):
            RawClient(self.socket_path)

    def test_detach_from_python_with_a_silent_client(self):
        client = self.client()
        stream_id = self.open_stream(client)
        # The client never reads: its socket buffer fills, detach must not hang.
        stream = self.streams[stream_id]
        for index in range(20000):
            stream.emit({"i": index, "blob": "b" * 200})
        started = time.monotonic()
        self.assertTrue(self.agent.detach())
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertFalse(self.agent.detach())
        self.assertTrue(wait_until(lambda: not peeka_threads(), timeout=1.0), peeka_threads())
        self.assertFalse(os.path.exists(self.directory))
        self.assertEqual(self.cleanups_run, [(stream_id, "detached")])

    def test_requests_during_detach_are_refused(self):
        client = self.client()
        self.agent.stopping.set()
        response = client.call("ping")
        self.assertEqual(response["error"]["code"], "shutting_down")
        self.agent.stopping.clear()


def writer_threads():
    return [name for name in peeka_threads() if name.startswith("peeka-send-")]


class ConsumerTests(AgentTestCase):
    """The reader writes until a stream or a deferred reply needs the writer thread."""

    def test_responses_stay_in_order_when_the_writer_takes_over(self):
        client = self.client()
        pings = [client.request("ping") for _ in range(3)]
        self.assertEqual([client.recv()["id"] for _ in pings], pings)
        self.assertEqual(writer_threads(), [])
        stream_id = client.request("test.stream", {"emit": 2})
        ping_id = client.request("ping")
        messages = [client.recv() for _ in range(4)]
        self.assertEqual(
            [(m["type"], m.get("id", m.get("seq"))) for m in messages],
            [
                ("response", stream_id),
                ("observation", 0),
                ("observation", 1),
                ("response", ping_id),
            ],
        )
        self.assertEqual(writer_threads(), ["peeka-send-1"])
        self.streams[stream_id].emit({"i": 2})
        ping_id = client.request("ping")
        self.assertEqual(client.recv()["seq"], 2)
        self.assertEqual(client.recv()["id"], ping_id)
        client.cancel(stream_id)
        self.assertEqual(client.recv()["type"], "stream_end")
        self.assertTrue(client.call("ping")["ok"])

    def test_a_failed_stream_request_needs_no_writer(self):
        client = self.client()
        request_id = client.request("test.stream", {"emit": 2, "fail": True})
        response = client.recv()
        self.assertEqual((response["id"], response["ok"]), (request_id, False))
        self.assertTrue(client.call("ping")["ok"])
        self.assertEqual(writer_threads(), [])

    def test_deferred_reply_queued_before_the_handler_returns(self):
        def early(ctx):
            ctx.defer()
            replied = threading.Event()

            def reply():
                ctx.reply({"early": True})
                replied.set()

            ctx.agent.spawn("early", reply)
            replied.wait(2.0)

        self.agent.register_command("test.early", early)
        client = self.client()
        self.assertEqual(client.call("test.early")["data"], {"early": True})
        self.assertEqual(client.call("ping")["data"]["pong"], True)
        self.assertEqual(writer_threads(), ["peeka-send-1"])

    def big_response(self, ctx):
        # A tiny send buffer: the reader blocks writing this response.
        ctx.connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return {"blob": "x" * (1 << 20)}

    def test_detach_while_the_reader_is_blocked_writing(self):
        self.agent.register_command("test.big", self.big_response)
        silent = self.client()
        idle = self.client()
        silent.request("test.big")  # never read
        connection = next(c for c in self.agent.connections() if c.number == 1)
        self.assertTrue(wait_until(connection.outbox._consumer.locked, timeout=2.0))
        time.sleep(0.1)
        self.assertTrue(connection.outbox._consumer.locked(), "the reader should be writing")
        started = time.monotonic()
        self.assertTrue(self.agent.detach())
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertTrue(idle.at_eof())
        self.assertTrue(wait_until(lambda: not peeka_threads(), timeout=2.0), peeka_threads())
        self.assertFalse(os.path.exists(self.directory))
        failures = [e["message"] for e in self.agent.errors() if "failed" in e["message"]]
        self.assertEqual(failures, [])

    def test_client_gone_before_its_response(self):
        self.agent.register_command("test.big", self.big_response)
        gone = self.client()
        gone.request("test.big")
        gone.close()
        self.assertTrue(wait_until(lambda: not self.agent.connections(), timeout=2.0))
        self.assertTrue(self.client().call("ping")["ok"])
        failures = [e["message"] for e in self.agent.errors() if "failed" in e["message"]]
        self.assertEqual(failures, [])

    def test_detach_from_python_with_an_idle_client(self):
        client = self.client()
        client.call("ping")
        started = time.monotonic()
        self.assertTrue(self.agent.detach())
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertTrue(client.at_eof())
        self.assertTrue(wait_until(lambda: not peeka_threads(), timeout=1.0), peeka_threads())


class OutboxTests(AgentTestCase):
    """The consumer protocol of Outbox, over a socketpair."""

    def make_outbox(self):
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        client = RawClient.over(theirs)
        self.addCleanup(client.close)
        self.failures = []
        self.thread_errors = []
        module = importlib.import_module(self.module.__name__ + ".outbox")
        box = module.Outbox(
            ours,
            16,
            lambda: self.failures.append(box._consumer.locked()),
            lambda *args: None,
            "peeka-send-test",
            self.thread_errors.append,
        )
        return box, client

    def test_drains_and_the_writer_keep_the_fifo_order(self):
        box, client = self.make_outbox()
        for index in range(200):
            box.send_message({"type": "n", "i": index})
            if index % 7 == 0:
                box.drain()
            if index == 100:
                box.start_writer()
                self.assertEqual(writer_threads(), ["peeka-send-test"])
        self.assertEqual([client.recv()["i"] for _ in range(200)], list(range(200)))
        box.stop(False)
        box.wait_stopped(2.0)
        self.assertFalse(box.writer.is_alive())
        box.send_message({"type": "late"})
        box.drain()
        box.start_writer()
        self.assertEqual(writer_threads(), [])
        box._sock.shutdown(socket.SHUT_RDWR)
        self.assertTrue(client.at_eof())
        self.assertEqual((self.failures, self.thread_errors), ([], []))

    def test_stop_on_the_reader_writes_without_a_thread(self):
        box, client = self.make_outbox()
        box.send_message({"type": "last"})
        box.stop(True)
        self.assertTrue(box.stopped)
        self.assertIsNone(box.writer)
        self.assertEqual(client.recv()["type"], "last")

    def test_stop_from_another_thread_starts_the_writer(self):
        box, client = self.make_outbox()
        box.send_message({"type": "last"})
        box.stop(False)
        self.assertIsNotNone(box.writer)
        box.wait_stopped(2.0)
        self.assertTrue(box.stopped)
        self.assertEqual(client.recv()["type"], "last")

    def test_a_drain_takes_only_what_was_queued_when_it_began(self):
        box, client = self.make_outbox()
        handle = box._handle

        def busy_producer(item, chunks):
            box.send_message({"type": "more"})
            return handle(item, chunks)

        box._handle = busy_producer
        box.send_message({"type": "first"})
        box.send_message({"type": "second"})
        box.drain()
        self.assertEqual(box.queue.qsize(), 2)
        self.assertEqual([client.recv()["type"], client.recv()["type"]], ["first", "second"])

    def test_a_failed_write_is_reported_once_outside_the_lock(self):
        box, client = self.make_outbox()
        client.close()
        box.send_message({"type": "x"})
        box.drain()
        box.send_message({"type": "y"})
        box.drain()
        box.stop(True)
        self.assertTrue(box.failed)
        self.assertEqual(self.failures, [False])


class HelloLimitTests(AgentTestCase):
    """Before its hello a connection costs little, and not for long."""

    agent_options = {"hello_timeout": 0.5}

    def raw(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(sock.close)
        sock.connect(self.socket_path)
        sock.settimeout(5.0)
        return sock

    def closed_by_agent(self, sock):
        try:
            return sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def test_a_frame_larger_than_a_hello_is_refused_before_its_payload(self):
        sock = self.raw()
        started = time.monotonic()
        # An 8 MiB hello (the limit for any later frame), of which 1 MiB is
        # sent: the agent hangs up on the length alone, maybe mid-send.
        try:
            sock.sendall((8 * 1024 * 1024).to_bytes(4, "big") + b"{" * (1024 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass
        else:
            self.assertTrue(self.closed_by_agent(sock))
        self.assertLess(time.monotonic() - started, 2.0)
        messages = [entry["message"] for entry in self.agent.errors()]
        self.assertTrue(any("exceeds the limit" in m for m in messages), messages)
        # The operator still gets in.
        self.assertTrue(self.client().call("ping")["ok"])

    def test_a_connection_that_never_says_hello_is_closed(self):
        silent = [self.raw() for _ in range(3)]
        started = time.monotonic()
        for sock in silent:
            self.assertTrue(self.closed_by_agent(sock))
        self.assertLess(time.monotonic() - started, 3.0)
        self.assertTrue(wait_until(lambda: not self.agent.connections(), timeout=2.0))
        messages = [entry["message"] for entry in self.agent.errors()]
        self.assertTrue(any("no hello within" in m for m in messages), messages)
        self.assertTrue(self.client().call("ping")["ok"])

    def test_silent_connections_cost_no_thread_and_the_operator_gets_in(self):
        threads = len(peeka_threads())
        pending_limit = sys.modules[self.module.__name__ + ".admission"].MAX_PENDING
        silent = [self.raw() for _ in range(3 * pending_limit)]
        # The oldest are closed as newer ones come: at most MAX_PENDING wait.
        closed = [sock for sock in silent[:pending_limit] if self.closed_by_agent(sock)]
        self.assertEqual(len(closed), pending_limit)
        self.assertEqual(len(peeka_threads()), threads)
        self.assertTrue(self.client().call("ping")["ok"])
        self.assertLessEqual(len(peeka_threads()), threads + 1)

    def test_a_hello_that_comes_in_pieces_in_time_is_answered(self):
        client = RawClient(self.socket_path)
        self.addCleanup(client.close)
        hello = json.dumps(
            {
                "type": "hello",
                "protocol": {"major": 1, "minor": 1},
                "client": "slow-test",
            }
        ).encode()
        frame = len(hello).to_bytes(4, "big") + hello
        client.sock.sendall(frame[:3])
        time.sleep(0.1)
        client.sock.sendall(frame[3:])
        self.assertEqual(client.recv()["type"], "welcome")


class ForeignDirectoryTests(unittest.TestCase):
    """A private directory not named ``peeka-...`` loses only what Peeka put there."""

    def run_agent_in(self, directory, extra_files):
        os.chmod(directory, 0o700)
        module = load_agent(directory, new_token())
        self.addCleanup(remove_modules_of, module.__name__)
        for name in extra_files:
            with open(os.path.join(directory, name), "w") as handle:
                handle.write("x")
        os.mkdir(os.path.join(directory, "claimed-abc"))
        agent = module.Agent(directory, "abc", package_name=module.__name__)
        agent.start()
        self.assertTrue(agent.detach())
        self.assertTrue(wait_until(lambda: not peeka_threads(), timeout=1.0))
        return agent

    def test_unknown_files_are_kept(self):
        directory = tempfile.mkdtemp(prefix="other-")
        self.addCleanup(shutil.rmtree, directory, True)
        agent = self.run_agent_in(directory, ["precious.txt", "status.abc", "bootstrap-abc.py"])
        self.assertEqual(os.listdir(directory), ["precious.txt"])
        self.assertTrue(any("precious.txt" in e["message"] for e in agent.errors()))

    def test_only_peeka_files_means_the_directory_goes(self):
        directory = tempfile.mkdtemp(prefix="other-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.run_agent_in(directory, ["status.abc"])
        self.assertFalse(os.path.exists(directory))


class ThreadRegistryTests(AgentTestCase):
    def test_agent_threads_are_known(self):
        client = self.client()
        self.open_stream(client)
        client.call("ping")  # answered once the writer thread has started
        module = self.module
        names = dict((t.name, t) for t in threading.enumerate())
        for name in ("peeka-agent", "peeka-conn-1", "peeka-send-1"):
            thread = names[name]
            self.assertTrue(module.is_agent_thread(thread), name)
            self.assertTrue(module.is_agent_thread(thread.ident), name)
            self.assertIn(thread.ident, module.agent_thread_idents())
            if getattr(thread, "native_id", None) is not None:
                self.assertIn(thread.native_id, module.agent_native_ids())
        self.assertFalse(module.is_agent_thread(threading.main_thread()))
        self.assertFalse(module.is_agent_thread(threading.get_ident()))
        self.assertNotIn(threading.get_ident(), module.agent_thread_idents())


@unittest.skipUnless(os.path.isdir("/proc/self/task"), "needs Linux /proc")
class IdleCostTests(AgentTestCase):
    def thread_counters(self, native_id):
        base = "/proc/self/task/%d/" % native_id
        with open(base + "stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(base + "status") as handle:
            switches = [line for line in handle if "ctxt_switches" in line]
        return int(fields[11]) + int(fields[12]), switches

    def test_idle_agent_threads_never_wake_up(self):
        client = self.client()
        client.call("ping")
        streaming = self.client()
        self.open_stream(streaming)
        streaming.call("ping")  # answered once the writer thread has started
        threads = [t for t in threading.enumerate() if t.name.startswith("peeka-")]
        self.assertIn("peeka-send-2", [t.name for t in threads])
        if not threads or getattr(threads[0], "native_id", None) is None:
            self.skipTest("no native thread ids on this interpreter")
        time.sleep(0.2)
        before = dict((t.name, self.thread_counters(t.native_id)) for t in threads)
        time.sleep(1.5)
        after = dict((t.name, self.thread_counters(t.native_id)) for t in threads)
        self.assertEqual(
            before, after, "an idle agent thread woke up (CPU ticks or context switches)"
        )


if __name__ == "__main__":
    unittest.main()
