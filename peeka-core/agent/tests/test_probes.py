"""watch, stack, monitor and reset, end to end: a real agent, its real socket, real functions.

The probed functions live in :mod:`tests.probe_targets`; every test checks at
its end that each of them has its original ``__code__`` back (the same
object) and, on 3.12+, that no sys.monitoring tool id is left taken.

Every probe test runs with the default backend (``__code__`` swapping) and,
on 3.12+, again with ``sys.monitoring`` (the ``...OnMonitoring`` classes).
"""

import asyncio
import importlib
import inspect
import random
import sys
import threading
import time
import types
import unittest

from peeka_agent.latency_histogram import LatencyHistogram
from tests import probe_targets as targets
from tests.probe_targets import add as imported_add
from tests.support import wait_until
from tests.test_agent import AgentTestCase

P = "tests.probe_targets."
HAS_MONITORING = hasattr(sys, "monitoring")


def peeka_tools():
    if not HAS_MONITORING:
        return []
    return [tool for tool in range(6) if sys.monitoring.get_tool(tool) == "peeka"]


class ProbeTestCase(AgentTestCase):
    #: The probe backend the agent under test uses.
    backend = "code_swap"

    def setUp(self):
        AgentTestCase.setUp(self)
        self.probes_module = importlib.import_module(self.module.__name__ + ".probes")
        self.probes_module.PREFERRED_BACKEND = self.backend
        self.addCleanup(self.assert_restored)

    def assert_restored(self):
        # Cleanups run last-in first-out: the agent is detached after this check
        # only if the test removed its probes itself; wait for disconnects.
        self.assertTrue(
            wait_until(lambda: not self.agent_probes(), timeout=2.0), self.agent_probes()
        )
        for name, code in targets.ORIGINAL_CODES.items():
            value = getattr(targets, name)
            function = getattr(value, "__func__", value)
            self.assertIs(function.__code__, code, name)
        for name in ("deposit", "__init__"):
            self.assertIs(
                getattr(targets.Account, name).__code__, targets.ACCOUNT_CODES[name], name
            )
        self.assertEqual(peeka_tools(), [])

    def agent_probes(self):
        return self.probes_module.probes(self.agent)

    # -- helpers -------------------------------------------------------------

    def start(self, client, command, **params):
        """Sends a probe request; returns (stream id, response data)."""
        request_id = client.request(command, params)
        response = client.recv()
        self.assertEqual(response["type"], "response", response)
        self.assertTrue(response["ok"], response)
        self.assertEqual(response["data"]["stream"], request_id)
        return request_id, response["data"]

    def refused(self, client, command, **params):
        request_id = client.request(command, params)
        response = client.recv()
        self.assertEqual(response["id"], request_id)
        self.assertFalse(response["ok"], response)
        return response["error"]

    def observations(self, client, count, kinds=("observation",)):
        found = []
        while len(found) < count:
            message = client.recv()
            if message["type"] in kinds:
                found.append(message if kinds != ("observation",) else message["data"])
            elif message["type"] == "stream_end":
                self.fail("stream ended early: %r (have %r)" % (message, found))
        return found

    def end_of(self, client, stream):
        while True:
            message = client.recv()
            if message["type"] == "stream_end" and message["stream"] == stream:
                return message

    def nothing_more(self, client, timeout=0.2):
        client.sock.settimeout(timeout)
        try:
            message = client.recv()
        except OSError:
            return True
        finally:
            client.sock.settimeout(5.0)
        self.fail("unexpected message %r" % (message,))


targets.ACCOUNT_CODES = {
    "deposit": targets.Account.deposit.__code__,
    "__init__": targets.Account.__init__.__code__,
}


class WatchTests(ProbeTestCase):
    def test_finish_is_the_default_and_shows_everything(self):
        client = self.client()
        stream, data = self.start(client, "watch", pattern=P + "add", times=2)
        self.assertEqual(data["matched"][0]["name"], P + "add")
        self.assertEqual(data["matched"][0]["kind"], "function")
        self.assertEqual(data["backend"], self.backend)
        # 3.12+: code swapping uses sys.monitoring too, for the other callers.
        self.assertEqual(data["tool_id"] is None, not HAS_MONITORING)
        self.assertEqual(data["limits"]["depth"], 1)
        self.assertEqual(targets.add(1, 2), 3)
        with self.assertRaises(TypeError):
            targets.add(None, 1)
        success, failure = self.observations(client, 2)
        self.assertEqual(success["func_name"], P + "add")
        self.assertEqual(success["location"], "AtExit")
        self.assertEqual(success["params"], [1, 2])
        self.assertEqual(success["returnObj"], 3)
        self.assertIsNone(success["throwExp"])
        self.assertTrue(success["success"])
        self.assertGreaterEqual(success["cost"], 0)
        self.assertEqual(success["thread_name"], "MainThread")
        self.assertEqual(success["thread_id"], threading.get_ident())
        self.assertLess(abs(success["timestamp"] - time.time()), 5)
        self.assertEqual(failure["location"], "AtExceptionExit")
        self.assertTrue(failure["throwExp"].startswith("TypeError: unsupported operand"))
        self.assertFalse(failure["success"])
        self.assertIsNone(failure["returnObj"])
        self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")

    def test_each_location_flag(self):
        client = self.client()
        cases = [
            ({"before": True}, ["AtEnter", "AtEnter"]),
            ({"success": True}, ["AtExit"]),
            ({"exception": True}, ["AtExceptionExit"]),
            ({"finish": True}, ["AtExit", "AtExceptionExit"]),
            ({"before": True, "exception": True}, ["AtEnter", "AtEnter", "AtExceptionExit"]),
        ]
        for flags, expected in cases:
            stream, _data = self.start(client, "watch", pattern=P + "add", **flags)
            targets.add(1)
            with self.assertRaises(TypeError):
                targets.add("x", 1)
            got = self.observations(client, len(expected))
            self.assertEqual([o["location"] for o in got], expected, flags)
            if "before" in flags:
                self.assertEqual(got[0]["params"], [1, 10])
                self.assertIsNone(got[0]["cost"])
                self.assertIsNone(got[0]["returnObj"])
            client.cancel(stream)
            self.assertEqual(self.end_of(client, stream)["reason"], "cancelled")
            self.nothing_more(client, 0.05)

    def test_rows_have_the_same_fields_in_the_same_order_everywhere(self):
        # Exit rows are written from a template (watch_command), entry rows
        # are dicts: both must read the same, field for field.
        client = self.client()
        account = targets.Account("ann", 5)
        deposit, _ = self.start(
            client, "watch", pattern=P + "Account.deposit", before=True, finish=True, depth=2
        )
        self.assertEqual(account.deposit(2), 7)
        with self.assertRaises(TypeError):
            account.deposit("x")
        rows = self.observations(client, 4)
        client.cancel(deposit)
        self.end_of(client, deposit)
        fields = [
            "func_name",
            "location",
            "params",
            "kwargs",
            "target",
            "returnObj",
            "throwExp",
            "success",
            "cost",
            "thread_id",
            "thread_name",
            "timestamp",
        ]
        for row in rows:
            self.assertEqual(list(row), fields, row)
            self.assertEqual(row["func_name"], P + "Account.deposit")
            self.assertEqual(row["thread_id"], threading.get_ident())
            self.assertEqual(row["thread_name"], threading.current_thread().name)
            self.assertLess(abs(row["timestamp"] - time.time()), 60)
            self.assertIsInstance(row["target"], dict)
        entered, returned, entered_again, raised = rows
        self.assertEqual(
            [r["location"] for r in rows], ["AtEnter", "AtExit", "AtEnter", "AtExceptionExit"]
        )
        self.assertEqual((returned["params"], returned["returnObj"]), ([2], 7))
        self.assertEqual((returned["success"], returned["throwExp"]), (True, None))
        self.assertIsInstance(returned["cost"], float)
        self.assertGreaterEqual(returned["cost"], 0.0)
        self.assertEqual((raised["success"], raised["returnObj"]), (False, None))
        self.assertTrue(raised["throwExp"].startswith("TypeError"), raised)
        self.assertEqual(raised["params"], ["x"])
        self.assertEqual(entered["target"]["balance"], 5)  # captured before the call
        self.assertEqual(returned["target"]["balance"], 7)

        texts, _ = self.start(client, "watch", pattern=P + "keywords", times=1)
        awkward = 'quote " backslash \\ newline \n tab \t \u00e9 \u4e2d \U0001f600 nul \x00'
        targets.keywords(awkward, "\udc80", 3, c=None, extra=[1.5, -2])
        (row,) = self.observations(client, 1)
        self.assertEqual(list(row), fields)
        self.assertEqual(row["params"][0], awkward)
        self.assertEqual(row["params"][1], "?")  # a lone surrogate, replaced: valid UTF-8
        self.assertEqual(row["kwargs"], {"c": None, "d": 4, "extra": [1.5, -2]})
        self.end_of(client, texts)

        # Results of every JSON type come out as the generic capture renders them.
        values = [True, None, 's"\n', 1.5, -7, 2**80, float("nan"), {"k": [1]}, ("t",)]
        results, _ = self.start(client, "watch", pattern=P + "echo", times=len(values))
        for value in values:
            targets.echo(value)
        capturer = importlib.import_module(self.module.__name__ + ".capture").Capturer()
        got = [row["returnObj"] for row in self.observations(client, len(values))]
        self.assertEqual(got, [capturer.capture(value) for value in values])
        self.end_of(client, results)

    def test_times_ends_the_stream_and_removes_the_probe(self):
        client = self.client()
        stream, _data = self.start(client, "watch", pattern=P + "add", times=3)
        for index in range(10):
            targets.add(index)
        got = self.observations(client, 3)
        self.assertEqual([o["returnObj"] for o in got], [10, 11, 12])
        end = self.end_of(client, stream)
        self.assertEqual(end["reason"], "count_reached")
        self.assertIs(targets.add.__code__, targets.ORIGINAL_CODES["add"])

    def test_depth(self):
        client = self.client()
        value = {"a": {"b": {"c": 1}}}
        shallow, _ = self.start(client, "watch", pattern=P + "nested", times=1)
        targets.nested(value)
        self.assertEqual(self.observations(client, 1)[0]["params"][0]["a"], "<dict len=1>")
        self.end_of(client, shallow)
        deep, _ = self.start(client, "watch", pattern=P + "nested", times=1, depth=3)
        targets.nested(value)
        self.assertEqual(self.observations(client, 1)[0]["params"][0], value)
        self.end_of(client, deep)
        error = self.refused(client, "watch", pattern=P + "nested", depth=5)
        self.assertEqual(error["code"], "invalid_params")

    def test_conditions(self):
        client = self.client()
        stream, _ = self.start(
            client, "watch", pattern=P + "add", condition="params[0] > 5 and returnObj < 100"
        )
        for value in (1, 6, 200, 7):
            targets.add(value)
        self.assertEqual([o["params"][0] for o in self.observations(client, 2)], [6, 7])
        client.cancel(stream)
        self.end_of(client, stream)
        never, _ = self.start(client, "watch", pattern=P + "add", condition="False")
        targets.add(1)
        client.cancel(never)
        self.assertEqual(self.end_of(client, never)["reason"], "cancelled")
        error = self.refused(client, "watch", pattern=P + "add", condition="params[0] +")
        self.assertEqual(error["code"], "invalid_expression")
        self.assertIn("column", error["message"])
        self.assertIn("^", error["message"])
        self.assertEqual(self.agent_probes(), [])

    def test_condition_on_target_attributes_and_errors(self):
        client = self.client()
        stream, _ = self.start(
            client, "watch", pattern=P + "Account.deposit", condition="target.owner == 'ada'"
        )
        targets.Account("bob", 1).deposit(5)
        targets.Account("ada", 1).deposit(7)
        got = self.observations(client, 1)[0]
        self.assertEqual(got["params"], [7])
        self.assertEqual(got["target"]["owner"], "ada")
        self.assertEqual(got["target"]["@type"], P + "Account")
        self.assertEqual(got["returnObj"], 8)
        client.cancel(stream)
        self.end_of(client, stream)
        failing, _ = self.start(client, "watch", pattern=P + "add", condition="params[5] == 1")
        targets.add(1)
        event = self.observations(client, 1, kinds=("event",))[0]
        self.assertEqual(event["kind"], "condition_errors")
        self.assertEqual(event["data"]["count"], 1)
        self.assertIn("index", event["data"]["last"])
        client.cancel(failing)
        self.end_of(client, failing)

    def test_references_taken_before_the_probe_are_observed(self):
        alias = imported_add
        stored = targets.CALLBACKS["double"]
        account = targets.Account("ada", 10)
        bound = account.deposit
        client = self.client()
        streams = [
            self.start(client, "watch", pattern=P + name, times=1)[0]
            for name in ("add", "callback", "Account.deposit")
        ]
        self.assertEqual(alias(2, 3), 5)
        self.assertEqual(stored(4), 8)
        self.assertEqual(bound(5), 15)
        results = {}
        ended = set()
        while len(ended) < 3:
            message = client.recv()
            if message["type"] == "observation":
                results[message["stream"]] = message["data"]["returnObj"]
            elif message["type"] == "stream_end":
                ended.add(message["stream"])
        self.assertEqual([results[stream] for stream in streams], [5, 8, 15])

    def test_pattern_forms_and_not_found(self):
        client = self.client()
        for pattern, name, args in [
            ("Account.check", "check", (3,)),
            ("Account.make", "make", ("ada",)),
            ("Account.doubled", "doubled", ()),
            ("Account.Inner.ping", "ping", ()),
        ]:
            stream, data = self.start(client, "watch", pattern=P + pattern, times=1)
            self.assertEqual(data["matched"][0]["name"], P + pattern)
            if name == "doubled":
                result = targets.Account("x", 4).doubled
                self.assertEqual(result, 8)
            elif name == "ping":
                targets.Account.Inner().ping()
            else:
                getattr(targets.Account, name)(*args)
            got = self.observations(client, 1)[0]
            self.assertEqual(got["func_name"], P + pattern)
            self.end_of(client, stream)
        glob, data = self.start(client, "watch", pattern=P + "Account.d*")
        self.assertEqual(
            sorted(t["name"] for t in data["matched"]),
            [P + "Account.deposit", P + "Account.doubled"],
        )
        client.cancel(glob)
        self.end_of(client, glob)
        error = self.refused(client, "watch", pattern=P + "ad")
        self.assertEqual(error["code"], "not_found")
        self.assertIn(P + "add", error["message"])
        error = self.refused(client, "watch", pattern="no_such_module_xyz.f")
        self.assertEqual(error["code"], "not_found")
        error = self.refused(client, "watch", pattern="time.sleep")
        self.assertEqual(error["code"], "not_found")
        self.assertIn("Python function", error["message"])
        error = self.refused(client, "watch", pattern=P + "add", bogus=1)
        self.assertEqual(error["code"], "invalid_params")

    def test_generators_and_coroutines_full_duration_and_real_result(self):
        client = self.client()
        gen, data = self.start(client, "watch", pattern=P + "counter", times=1)
        self.assertEqual(data["matched"][0]["kind"], "generator")
        self.assertTrue(inspect.isgeneratorfunction(targets.counter))
        iterator = targets.counter(3)
        next(iterator)
        time.sleep(0.05)
        self.assertEqual(list(iterator), [1, 2])
        got = self.observations(client, 1)[0]
        self.assertEqual(got["returnObj"], 3)
        self.assertGreaterEqual(got["cost"], 45)
        self.end_of(client, gen)

        coro, data = self.start(client, "watch", pattern=P + "slow_coroutine", times=1)
        self.assertEqual(data["matched"][0]["kind"], "coroutine")
        self.assertTrue(inspect.iscoroutinefunction(targets.slow_coroutine))
        self.assertEqual(asyncio.run(targets.slow_coroutine(0.05, 2)), 6)
        got = self.observations(client, 1)[0]
        self.assertEqual(got["returnObj"], 6)
        self.assertEqual(got["params"], [0.05, 2])
        self.assertGreaterEqual(got["cost"], 45)
        self.end_of(client, coro)

        failing, _ = self.start(client, "watch", pattern=P + "failing_coroutine", times=1)
        with self.assertRaises(KeyError):
            asyncio.run(targets.failing_coroutine())
        got = self.observations(client, 1)[0]
        self.assertEqual(got["location"], "AtExceptionExit")
        self.assertTrue(got["throwExp"].startswith("KeyError"))
        self.end_of(client, failing)

        agen, data = self.start(client, "watch", pattern=P + "ticks", times=1)
        self.assertEqual(data["matched"][0]["kind"], "async_generator")
        self.assertTrue(inspect.isasyncgenfunction(targets.ticks))

        async def collect():
            return [item async for item in targets.ticks(3)]

        self.assertEqual(asyncio.run(collect()), [0, 1, 2])
        got = self.observations(client, 1)[0]
        self.assertEqual(got["location"], "AtExit")
        self.assertEqual(got["params"], [3])
        self.end_of(client, agen)

    def test_signature_semantics_are_kept(self):
        client = self.client()
        streams = [
            self.start(client, "watch", pattern=P + name)[0]
            for name in ("keywords", "kwonly_defaults", "bump")
        ]
        self.assertEqual(targets.keywords(1, 2, 3, c=5, z=6), (1, 2, (3,), 5, 4, {"z": 6}))
        got = self.observations(client, 1)[0]
        self.assertEqual(got["params"], [1, 2, 3])
        self.assertEqual(got["kwargs"], {"c": 5, "d": 4, "z": 6})
        self.assertEqual(targets.kwonly_defaults(3), 6)
        targets.kwonly_defaults.__kwdefaults__ = {"scale": 5}
        try:
            self.assertEqual(targets.kwonly_defaults(3), 15)
        finally:
            targets.kwonly_defaults.__kwdefaults__ = {"scale": 2}
        self.observations(client, 2)
        start = targets.bump.__closure__[0].cell_contents[0]  # the tests share the closure
        self.assertEqual(targets.bump(), start + 1)
        self.assertEqual(targets.bump(2), start + 3)
        self.observations(client, 2)
        for stream in streams:
            client.cancel(stream)
            self.end_of(client, stream)
        self.assertEqual(targets.bump(), start + 4)

    def test_hostile_values_become_placeholders(self):
        # By default no __repr__ runs (see test_hostile_values); on request
        # (call_repr) it runs guarded.
        client = self.client()
        cycle = []
        cycle.append(cycle)
        deep = []
        for _ in range(10000):
            deep = [deep]
        for call_repr in (False, True):
            stream, _ = self.start(
                client, "watch", pattern=P + "echo", times=5, before=True, call_repr=call_repr
            )
            hostile = targets.Hostile()
            self.assertIs(targets.echo(hostile), hostile)
            self.assertIsInstance(targets.echo(targets.Recursive()), targets.Recursive)
            self.assertIsInstance(targets.echo(targets.Huge()), targets.Huge)
            self.assertIs(targets.echo(cycle), cycle)
            self.assertIs(targets.echo(deep), deep)
            got = self.observations(client, 5)
            if call_repr:
                self.assertIn("repr failed", got[0]["params"][0])
                self.assertIn("repr failed", got[1]["params"][0])
                self.assertIn("truncated", got[2]["params"][0])
            else:
                for row, name in zip(got, ("Hostile", "Recursive", "Huge")):
                    shown = r"^<tests\.probe_targets\.%s object at " % name
                    self.assertRegex(row["params"][0], shown)
            self.assertEqual(got[3]["params"][0], ["<list len=1>"])
            self.assertEqual(got[4]["params"][0], ["<list len=1>"])
            self.end_of(client, stream)

    def test_agent_threads_are_not_observed(self):
        client = self.client()
        stream, _ = self.start(client, "watch", pattern=P + "add")
        done = threading.Event()

        def from_agent_thread():
            targets.add(100)
            done.set()

        self.agent.spawn("test", from_agent_thread)
        self.assertTrue(done.wait(2))
        targets.add(1)
        self.assertEqual(self.observations(client, 1)[0]["params"], [1, 10])
        client.cancel(stream)
        self.end_of(client, stream)


class OwnershipTests(ProbeTestCase):
    def test_two_clients_on_one_function_and_one_disconnecting(self):
        first = self.client()
        second = self.client()
        one, _ = self.start(first, "watch", pattern=P + "add")
        two, _ = self.start(second, "watch", pattern=P + "add", before=True)
        targets.add(1)
        self.assertEqual(self.observations(first, 1)[0]["location"], "AtExit")
        self.assertEqual(self.observations(second, 1)[0]["location"], "AtEnter")
        first.close()
        self.assertTrue(wait_until(lambda: len(self.agent_probes()) == 1, timeout=1.0))
        self.assertEqual(targets.add(2), 12)
        got = self.observations(second, 1)[0]
        self.assertEqual((got["location"], got["params"]), ("AtEnter", [2, 10]))
        self.nothing_more(second, 0.05)
        second.cancel(two)
        self.end_of(second, two)
        self.assertIs(targets.add.__code__, targets.ORIGINAL_CODES["add"])

    def test_disconnect_removes_the_probe_quickly(self):
        client = self.client()
        self.start(client, "stack", pattern=P + "inner")
        self.start(client, "monitor", pattern=P + "middle", interval=60)
        self.assertEqual(len(self.agent_probes()), 2)
        started = time.monotonic()
        client.close()
        self.assertTrue(wait_until(lambda: not self.agent_probes(), timeout=1.0))
        self.assertLess(time.monotonic() - started, 1.0)
        self.assertTrue(
            wait_until(
                lambda: (
                    not [
                        t for t in threading.enumerate() if t.name.startswith("peeka-work-monitor")
                    ]
                ),
                timeout=1.0,
            )
        )

    def test_reset_list_pattern_and_all(self):
        owner = self.client()
        other = self.client()
        add_stream, _ = self.start(owner, "watch", pattern=P + "add")
        stack_stream, _ = self.start(owner, "stack", pattern=P + "inner")
        fail_stream, _ = self.start(other, "watch", pattern=P + "fail")
        targets.add(1)
        self.observations(owner, 1)
        admin = self.client()
        listed = admin.call("reset", {"list": True})["data"]["probes"]
        self.assertEqual(
            sorted((p["command"], p["pattern"]) for p in listed),
            [("stack", P + "inner"), ("watch", P + "add"), ("watch", P + "fail")],
        )
        entry = [p for p in listed if p["pattern"] == P + "add"][0]
        self.assertEqual(entry["functions"], [P + "add"])
        self.assertEqual(entry["stream"], add_stream)
        self.assertEqual(entry["dropped"], 0)
        self.assertEqual(entry["observations"], 1)
        info = admin.call("info")["data"]
        labels = [s["labels"] for s in info["streams"] if s["stream"] == add_stream][0]
        self.assertEqual(labels["pattern"], P + "add")
        self.assertEqual(labels["observations"], 1)
        self.assertEqual(len(self.agent_probes()), 3)
        removed = admin.call("reset", {"pattern": "*.a?d"})["data"]
        self.assertEqual(removed["removed"], 1)
        self.assertEqual(removed["probes"][0]["pattern"], P + "add")
        self.assertEqual(self.end_of(owner, add_stream)["reason"], "reset")
        self.assertIs(targets.add.__code__, targets.ORIGINAL_CODES["add"])
        everything = admin.call("reset")["data"]
        self.assertEqual(everything["removed"], 2)
        self.assertEqual(self.end_of(owner, stack_stream)["reason"], "reset")
        self.assertEqual(self.end_of(other, fail_stream)["reason"], "reset")
        self.assertEqual(admin.call("reset", {"list": True})["data"]["probes"], [])

    def test_send_budget_is_checked_and_held_while_the_stream_is_open(self):
        client = self.client()
        for bad in (0, 51, "ten", True):
            error = self.refused(client, "watch", pattern=P + "add", send_budget=bad)
            self.assertEqual(error["code"], "invalid_params", bad)
            self.assertIn("send_budget", error["message"])
        error = self.refused(client, "monitor", pattern=P + "add", send_budget=20)
        self.assertEqual(error["code"], "invalid_params")
        self.assertEqual(self.agent_probes(), [])
        (connection,) = self.agent._connections.values()
        writer = connection.outbox
        watch, _ = self.start(client, "watch", pattern=P + "add", send_budget=40)
        stack, _ = self.start(client, "stack", pattern=P + "inner", send_budget=25)
        trace, _ = self.start(client, "trace", pattern=P + "outer", send_budget=5)
        streams = {s["stream"]: s for s in client.call("info")["data"]["streams"]}
        self.assertEqual(streams[watch]["labels"]["send_budget"], 40)
        self.assertEqual(writer.share(), 0.4)
        client.cancel(watch)
        self.end_of(client, watch)
        self.assertEqual(writer.share(), 0.25)
        client.cancel(stack)
        self.end_of(client, stack)
        client.cancel(trace)
        self.end_of(client, trace)
        self.assertEqual(writer.shares, {})
        self.assertEqual(writer.share(), importlib.import_module(self.module.__name__ + ".writer_budget").WRITER_SHARE)

    def test_detach_removes_every_probe(self):
        client = self.client()
        self.start(client, "watch", pattern=P + "add")
        self.start(client, "monitor", pattern=P + "add", interval=0.1)
        request_id = client.request("detach")
        reasons = []
        while True:
            message = client.recv()
            if message["type"] == "response":
                self.assertEqual(message["id"], request_id)
                self.assertTrue(message["data"]["detached"])
                break
            reasons.append(message["reason"])
        self.assertEqual(reasons, ["detached", "detached"])
        self.assertIs(targets.add.__code__, targets.ORIGINAL_CODES["add"])
        self.assertEqual(peeka_tools(), [])


class FailureTests(ProbeTestCase):
    """A probe that breaks never breaks the target."""

    def setUp(self):
        ProbeTestCase.setUp(self)
        probes = self.probes_module

        def broken(ctx):
            params = ctx.params or {}

            def make_handler(probe, target):
                if params.get("guarded"):

                    def leave(*_args):
                        try:
                            raise RuntimeError("handler bug")
                        except BaseException as exc:
                            probe.fail(exc)

                else:

                    def leave(*_args):
                        raise RuntimeError("unguarded handler bug")

                def enter(*_args):
                    raise ZeroDivisionError("entry bug")

                return probes.Handler(probe, target, enter=enter, exit=leave)

            _probe, data = probes.install_probe(ctx, params["pattern"], make_handler)
            return data

        self.agent.register_command("test.broken", broken)

    def test_a_failing_probe_removes_itself(self):
        client = self.client()
        stream, _ = self.start(client, "test.broken", pattern=P + "add", guarded=True)
        self.assertEqual(targets.add(1, 1), 2)
        end = self.end_of(client, stream)
        self.assertEqual(end["reason"], "error")
        self.assertIn("handler bug", end["error"]["message"])
        self.assertEqual(targets.add(2, 2), 4)
        self.assertTrue(any("handler bug" in e["message"] for e in self.agent.errors()))

    def test_exceptions_of_handlers_never_reach_the_target(self):
        client = self.client()
        stream, _ = self.start(client, "test.broken", pattern=P + "add")
        for index in range(5):
            self.assertEqual(targets.add(index, 1), index + 1)
        with self.assertRaises(TypeError):
            targets.add(None, 1)
        client.cancel(stream)
        self.end_of(client, stream)


class StackTests(ProbeTestCase):
    def test_callers_innermost_first(self):
        client = self.client()
        watcher = self.client()
        self.start(watcher, "watch", pattern=P + "middle")  # its frames stay hidden
        stream, _ = self.start(client, "stack", pattern=P + "inner", times=1, depth=3)
        self.assertEqual(targets.outer(1), 2)
        got = self.observations(client, 1)[0]
        self.assertEqual(got["func_name"], P + "inner")
        self.assertEqual(got["params"], [1])
        self.assertEqual(
            [frame["function"] for frame in got["stack"]],
            ["middle", "outer", "test_callers_innermost_first"],
        )
        self.assertTrue(got["stack"][0]["filename"].endswith("probe_targets.py"))
        self.assertIsInstance(got["stack"][0]["lineno"], int)
        self.assertEqual(got["thread_name"], "MainThread")
        self.end_of(client, stream)

    def test_condition_and_depth_limits(self):
        client = self.client()
        stream, _ = self.start(client, "stack", pattern=P + "recurse", condition="params[0] == 0")
        targets.recurse(20)
        got = self.observations(client, 1)[0]
        self.assertEqual(len(got["stack"]), 10)
        self.assertEqual({f["function"] for f in got["stack"]}, {"recurse"})
        client.cancel(stream)
        self.end_of(client, stream)
        error = self.refused(client, "stack", pattern=P + "recurse", depth=65)
        self.assertEqual(error["code"], "invalid_params")


class MonitorTests(ProbeTestCase):
    def test_cycles_counts_and_percentiles(self):
        monitor = importlib.import_module(self.module.__name__ + ".monitor_command")
        monitor.FOLD_AT = 2  # the calling threads fold too
        client = self.client()
        stream, data = self.start(client, "monitor", pattern=P + "sleepy", interval=0.3, cycles=2)
        self.assertEqual(data["interval"], 0.3)
        for _ in range(3):
            targets.sleepy(0.01)
        first = self.observations(client, 1)[0]
        self.assertEqual(first["func_name"], P + "sleepy")
        self.assertEqual(first["cycle"], 1)
        self.assertEqual((first["total"], first["success"], first["fail"]), (3, 3, 0))
        self.assertGreaterEqual(first["rt_min"], 9.5)
        self.assertGreaterEqual(first["rt_max"], first["rt_p99"])
        self.assertGreaterEqual(first["rt_p50"], first["rt_min"])
        second = self.observations(client, 1)[0]
        self.assertEqual(second["cycle"], 2)
        self.assertEqual(second["total"], 0)
        self.assertEqual(second["rt_p50"], 0.0)
        self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")

    def test_failures_and_condition(self):
        client = self.client()
        stream, _ = self.start(
            client, "monitor", pattern=P + "fail", interval=0.2, condition="params[0] != 'skip'"
        )
        for message in ("a", "skip", "b"):
            with self.assertRaises(ValueError):
                targets.fail(message)
        got = self.observations(client, 1)[0]
        self.assertEqual((got["total"], got["fail"], got["fail_rate"]), (2, 2, 1.0))
        client.cancel(stream)
        self.end_of(client, stream)
        error = self.refused(client, "monitor", pattern=P + "fail", interval=0.01)
        self.assertEqual(error["code"], "invalid_params")


class HistogramTests(unittest.TestCase):
    def test_percentiles_within_five_percent(self):
        generator = random.Random(7)
        values = [generator.lognormvariate(-7, 1.5) for _ in range(20000)]
        histogram = LatencyHistogram()
        for value in values:
            histogram.add(value)
        values.sort()
        for fraction in (0.5, 0.95, 0.99):
            exact = values[int(len(values) * fraction) - 1]
            self.assertLess(abs(histogram.percentile(fraction) - exact) / exact, 0.05)
        self.assertEqual(histogram.percentile(1.0), values[-1])
        self.assertEqual(LatencyHistogram().percentile(0.5), 0.0)


@unittest.skipUnless(HAS_MONITORING, "sys.monitoring is 3.12+")
class ToolIdTests(ProbeTestCase):
    backend = "monitoring"

    def test_no_free_tool_id_is_refused_with_the_users(self):
        taken = []
        for tool in range(6):
            if sys.monitoring.get_tool(tool) is None:
                sys.monitoring.use_tool_id(tool, "other-tool-%d" % tool)
                taken.append(tool)
        try:
            client = self.client()
            error = self.refused(client, "watch", pattern=P + "add")
            self.assertEqual(error["code"], "limit_exceeded")
            self.assertIn("other-tool", error["message"])
        finally:
            for tool in taken:
                sys.monitoring.free_tool_id(tool)
        self.assertEqual(self.agent_probes(), [])

    def test_coexists_with_another_tool(self):
        events = sys.monitoring.events
        seen = []
        tool = [t for t in range(6) if sys.monitoring.get_tool(t) is None][-1]
        sys.monitoring.use_tool_id(tool, "other")
        try:
            sys.monitoring.register_callback(
                tool, events.PY_START, lambda code, offset: seen.append(code.co_name)
            )
            sys.monitoring.set_local_events(tool, targets.add.__code__, events.PY_START)
            client = self.client()
            stream, data = self.start(client, "watch", pattern=P + "add", times=1)
            self.assertNotEqual(data["tool_id"], tool)
            targets.add(1)
            self.observations(client, 1)
            self.end_of(client, stream)
            targets.add(2)
            self.assertEqual(seen, ["add", "add"])
        finally:
            sys.monitoring.set_local_events(tool, targets.add.__code__, 0)
            sys.monitoring.register_callback(tool, events.PY_START, None)
            sys.monitoring.free_tool_id(tool)

    def test_orphaned_calls_are_purged(self):
        from peeka_agent.probe_monitoring import purge_orphans

        pending = {}

        def generator():
            yield 1
            yield 2

        def started():
            iterator = generator()
            next(iterator)
            pending[iterator.gi_frame] = "started"
            return iterator

        live = started()
        closed = started()
        closed.close()
        del closed
        started()  # dropped at once

        def running():
            pending[sys._getframe()] = "running"
            purge_orphans(pending)
            return sorted(pending.values())

        self.assertEqual(running(), ["running", "started"])
        self.assertEqual(next(live), 2)


if __name__ == "__main__":
    unittest.main()


class BackendChoiceTests(ProbeTestCase):
    """The request's ``backend`` parameter (the preferred backend left at its default)."""

    def setUp(self):
        ProbeTestCase.setUp(self)
        self.probes_module.PREFERRED_BACKEND = None

    def test_the_default_is_code_swap_and_trace_uses_monitoring_on_3_12(self):
        client = self.client()
        for command in ("watch", "stack", "monitor"):
            params = {"interval": 0.2, "cycles": 1} if command == "monitor" else {"times": 1}
            stream, data = self.start(client, command, pattern=P + "add", **params)
            self.assertEqual(data["backend"], "code_swap", command)
            targets.add(1)
            self.observations(client, 1)
            self.end_of(client, stream)
        stream, data = self.start(client, "trace", pattern=P + "add", times=1)
        self.assertEqual(data["backend"], "monitoring" if HAS_MONITORING else "code_swap")
        targets.add(1)
        self.observations(client, 1)
        self.end_of(client, stream)

    def test_monitoring_can_be_asked_for_on_3_12(self):
        if not HAS_MONITORING:
            self.skipTest("sys.monitoring is 3.12+")
        client = self.client()
        stream, data = self.start(client, "watch", pattern=P + "add", times=1, backend="monitoring")
        self.assertEqual(data["backend"], "monitoring")
        self.assertIsNotNone(data["tool_id"])
        targets.add(1)
        self.observations(client, 1)
        self.end_of(client, stream)

    def test_two_backends_on_one_function_both_see_every_call(self):
        if not HAS_MONITORING:
            self.skipTest("sys.monitoring is 3.12+")
        first, second = self.client(), self.client()
        one, _ = self.start(first, "watch", pattern=P + "add", times=2, backend="code_swap")
        two, _ = self.start(second, "watch", pattern=P + "add", times=2, backend="monitoring")
        targets.add(1)
        targets.add(2)
        self.assertEqual(len(self.observations(first, 2)), 2)
        self.assertEqual(len(self.observations(second, 2)), 2)
        self.end_of(first, one)
        self.end_of(second, two)

    def test_a_bad_backend_is_refused_before_any_probe(self):
        client = self.client()
        error = self.refused(client, "watch", pattern=P + "add", backend="dtrace")
        self.assertEqual(error["code"], "invalid_params")
        self.assertIn("code_swap", error["message"])
        if not HAS_MONITORING:
            error = self.refused(client, "watch", pattern=P + "add", backend="monitoring")
            self.assertIn("3.12", error["message"])
        self.assertEqual(self.agent_probes(), [])


@unittest.skipUnless(HAS_MONITORING, "the cover of code swapping is sys.monitoring (3.12+)")
class CodeSwapCoverTests(ProbeTestCase):
    """3.12+: calls that do not go through a code-swapped function are seen through sys.monitoring."""

    def setUp(self):
        ProbeTestCase.setUp(self)
        self.probes_module.PREFERRED_BACKEND = None  # each command's default

    def twin(self):
        """Another function object running ``add``'s code (as every closure of a ``def`` does)."""
        return types.FunctionType(
            targets.ORIGINAL_CODES["add"], vars(targets), "add", targets.add.__defaults__
        )

    def test_other_function_objects_of_the_code_are_observed_once(self):
        twin = self.twin()
        client = self.client()
        stream, data = self.start(client, "watch", pattern=P + "add", times=3)
        self.assertIsNotNone(data["tool_id"])
        self.assertEqual(twin(1), 11)
        self.assertEqual(targets.add(2), 12)
        self.assertEqual(twin(3, 1), 4)
        got = self.observations(client, 3)
        self.assertEqual([o["params"] for o in got], [[1, 10], [2, 10], [3, 1]])
        self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")
        self.nothing_more(client, 0.05)

    def test_every_backend_and_command_sees_both_paths(self):
        twin = self.twin()
        swapped, plain, traced = self.client(), self.client(), self.client()
        one, _ = self.start(swapped, "watch", pattern=P + "add", times=2)
        two, _ = self.start(plain, "stack", pattern=P + "add", times=2, backend="monitoring")
        three, data = self.start(traced, "trace", pattern=P + "add", times=2)
        self.assertEqual(data["backend"], "monitoring")
        targets.add(1)
        twin(2)
        self.assertEqual([o["params"] for o in self.observations(swapped, 2)], [[1, 10], [2, 10]])
        stacks = self.observations(plain, 2)
        self.assertEqual([s["params"] for s in stacks], [[1, 10], [2, 10]])
        for found in stacks:
            self.assertEqual(found["stack"][0]["function"], self._testMethodName)
        self.assert_two_trees(traced)
        for client, stream in ((swapped, one), (plain, two), (traced, three)):
            self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")
        # trace on code swapping: the wrapper's path and the cover's.
        four, _ = self.start(traced, "trace", pattern=P + "add", times=2, backend="code_swap")
        targets.add(1)
        twin(2)
        self.assert_two_trees(traced)
        self.assertEqual(self.end_of(traced, four)["reason"], "count_reached")

    def assert_two_trees(self, client):
        for tree in self.observations(client, 2):
            self.assertEqual(tree["call_tree"]["function"], P + "add")
            self.assertEqual(tree["call_tree"]["count"], 1)
            self.assertEqual(tree["call_tree"]["call_filename"], __file__)


class InlineWrapperTests(ProbeTestCase):
    """``__code__`` swapping: a single ``watch`` gets a wrapper written for it (code_swap only)."""

    def site(self, function):
        backend = self.probes_module.backend("code_swap")
        return backend._sites[id(getattr(function, "__func__", function))]

    def test_one_watch_runs_its_own_wrapper_and_a_second_probe_the_generic_one(self):
        first = self.client()
        stream, _ = self.start(
            first, "watch", pattern=P + "add", condition="params[0] == 3 or cost < 0"
        )
        site = self.site(targets.add)
        self.assertIs(targets.add.__code__, site.current)
        self.assertIsNot(site.current, site.wrapper)
        targets.add(1)
        targets.add(3)
        self.assertEqual(self.observations(first, 1)[0]["params"], [3, 10])
        second = self.client()
        other, _ = self.start(second, "watch", pattern=P + "add", times=1)
        self.assertIs(targets.add.__code__, site.wrapper)
        self.assertEqual(targets.add(5), 15)
        self.assertEqual(self.observations(second, 1)[0]["params"], [5, 10])
        self.assertEqual(self.end_of(second, other)["reason"], "count_reached")
        self.assertIs(targets.add.__code__, site.current)
        self.assertIsNot(site.current, site.wrapper)
        targets.add(3, 1)
        self.assertEqual(self.observations(first, 1)[0]["params"], [3, 1])
        self.nothing_more(first, 0.05)
        first.cancel(stream)
        self.assertEqual(self.end_of(first, stream)["reason"], "cancelled")

    def test_a_single_monitor_runs_its_own_wrapper(self):
        client = self.client()
        stream, _ = self.start(
            client, "monitor", pattern=P + "add", interval=0.3, cycles=1, condition="params[0] != 0"
        )
        site = self.site(targets.add)
        self.assertIs(targets.add.__code__, site.current)
        self.assertIsNot(site.current, site.wrapper)
        for value in (0, 1, 2, 3):
            targets.add(value)
        for _ in range(2):
            with self.assertRaises(TypeError):
                targets.add("x", 1)
        report = self.observations(client, 1)[0]
        self.assertEqual((report["total"], report["success"], report["fail"]), (5, 3, 2))
        self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")

    def test_other_shapes_of_conditions_use_the_generic_wrapper(self):
        client = self.client()
        for condition in (
            "params[-1] == 10",
            "len(params) == 2",
            "params[0] == '__peeka_probe_stream_placeholder__'",
        ):
            stream, _ = self.start(client, "watch", pattern=P + "add", condition=condition)
            site = self.site(targets.add)
            self.assertIs(targets.add.__code__, site.wrapper, condition)
            client.cancel(stream)
            self.end_of(client, stream)
        stream, _ = self.start(client, "watch", pattern=P + "add", condition="params[-1] == 10")
        targets.add(1)
        self.assertEqual(self.observations(client, 1)[0]["params"], [1, 10])
        client.cancel(stream)
        self.end_of(client, stream)

    def test_methods_exceptions_counts_and_failing_conditions_inline(self):
        client = self.client()
        stream, _ = self.start(
            client,
            "watch",
            pattern=P + "Account.deposit",
            condition="params[0] == 7 and target is not None",
            times=2,
        )
        site = self.site(targets.Account.deposit)
        self.assertIsNot(site.current, site.wrapper)
        account = targets.Account("ada", 1)
        for amount in (5, 7, 6, 7, 7):
            account.deposit(amount)
        got = self.observations(client, 2)
        self.assertEqual([o["returnObj"] for o in got], [13, 26])
        self.assertEqual(got[0]["target"]["owner"], "ada")
        self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")
        self.assertEqual(account.balance, 33)
        failed, _ = self.start(
            client, "watch", pattern=P + "add", exception=True, condition="throwExp is None"
        )
        with self.assertRaises(TypeError):
            targets.add(None, 1)
        targets.add(1)
        self.nothing_more(client, 0.05)
        client.cancel(failed)
        self.end_of(client, failed)
        failing, _ = self.start(client, "watch", pattern=P + "add", condition="params[0] < 'a'")
        self.assertIsNot(self.site(targets.add).current, self.site(targets.add).wrapper)
        self.assertEqual(targets.add(1), 11)
        event = self.observations(client, 1, kinds=("event",))[0]
        self.assertEqual(event["kind"], "condition_errors")
        self.assertEqual(event["data"]["count"], 1)
        self.assertIn("<", event["data"]["last"])
        client.cancel(failing)
        self.end_of(client, failing)


def _on_monitoring(cls):
    """``cls`` again, with the sys.monitoring backend (3.12+)."""
    variant = type(
        cls.__name__ + "OnMonitoring",
        (cls,),
        {"backend": "monitoring", "__doc__": "%s, with sys.monitoring." % cls.__name__},
    )
    return unittest.skipUnless(HAS_MONITORING, "sys.monitoring is 3.12+")(variant)


WatchTestsOnMonitoring = _on_monitoring(WatchTests)
OwnershipTestsOnMonitoring = _on_monitoring(OwnershipTests)
FailureTestsOnMonitoring = _on_monitoring(FailureTests)
StackTestsOnMonitoring = _on_monitoring(StackTests)
MonitorTestsOnMonitoring = _on_monitoring(MonitorTests)
