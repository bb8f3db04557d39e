"""trace, thread and top, end to end: a real agent, its real socket, functions with known truth."""

import sys
import threading
import time
import unittest

from tests import diagnostics_targets as targets
from tests.support import wait_until
from tests.test_probes import ProbeTestCase

P = "tests.diagnostics_targets."


def children(node):
    return {(child["function"], child["count"]) for child in node["children"]}


class TraceTests(ProbeTestCase):
    def setUp(self):
        ProbeTestCase.setUp(self)
        self.addCleanup(self.assert_trace_restored)

    def assert_trace_restored(self):
        for name, code in targets.ORIGINAL_CODES.items():
            self.assertIs(getattr(targets, name).__code__, code, name)
        self.assertIsNone(sys.getprofile())
        if hasattr(sys, "monitoring"):
            self.assertFalse(
                [t for t in range(6) if sys.monitoring.get_tool(t) == "peeka-trace"]
            )

    def trace(self, client, pattern, run, **params):
        stream, data = self.start(client, "trace", pattern=pattern, **params)
        run()
        return stream, data

    def test_known_children_and_counts(self):
        client = self.client()
        stream, data = self.trace(client, P + "order", lambda: None, times=1)
        self.assertEqual(data["matched"][0]["name"], P + "order")
        self.assertEqual(targets.order([1, 2, 3, 4]), 20)
        tree = self.observations(client, 1)[0]
        self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")
        root = tree["call_tree"]
        self.assertEqual(root["function"], P + "order")
        self.assertEqual(root["count"], 1)
        self.assertEqual(
            children(root),
            {(P + "validate", 1), (P + "price", 4), (P + "save", 1)},
        )
        price = [c for c in root["children"] if c["function"] == P + "price"][0]
        self.assertEqual(price["call_lineno"], targets.order.__code__.co_firstlineno + 4)
        self.assertEqual(price["lineno"], targets.price.__code__.co_firstlineno)
        self.assertLessEqual(price["min_ms"], price["max_ms"])
        self.assertGreaterEqual(root["duration_ms"], sum(c["duration_ms"] for c in root["children"]))
        self.assertEqual(tree["node_count"], 4)
        self.assertEqual(tree["location"], "AtExit")

    def test_exception_depth_and_recursion(self):
        client = self.client()
        stream, _ = self.start(client, "trace", pattern=P + "failing_order", times=1)
        with self.assertRaises(ValueError):
            targets.failing_order([1])
        tree = self.observations(client, 1)[0]
        self.assertEqual(tree["location"], "AtExceptionExit")
        self.assertIn("rejected", tree["throwExp"])
        self.assertEqual(children(tree["call_tree"]), {(P + "validate", 1)})
        self.end_of(client, stream)
        stream, _ = self.start(client, "trace", pattern=P + "deep", times=1, depth=2)
        targets.deep(5)
        tree = self.observations(client, 1)[0]["call_tree"]
        self.assertEqual(children(tree), {(P + "deep", 1)})
        self.assertEqual(children(tree["children"][0]), {(P + "deep", 1)})
        self.assertEqual(tree["children"][0]["children"][0]["children"], [])
        self.end_of(client, stream)

    def test_stdlib_skipped_by_default_and_shown_on_request(self):
        client = self.client()
        stream, _ = self.start(client, "trace", pattern=P + "with_stdlib", times=1)
        targets.with_stdlib([1, 2])
        tree = self.observations(client, 1)[0]["call_tree"]
        self.end_of(client, stream)
        # json.dumps is transparent; nothing of the stdlib remains (price is
        # not called: the items are ints).
        self.assertEqual(tree["children"], [])
        stream, _ = self.start(
            client, "trace", pattern=P + "with_stdlib", times=1, skip_builtin=False
        )
        targets.with_stdlib([1, 2])
        tree = self.observations(client, 1)[0]["call_tree"]
        self.end_of(client, stream)
        names = {child["function"] for child in tree["children"]}
        self.assertIn("json.dumps", names)
        self.assertIn("len", names)

    def test_condition_and_min_duration(self):
        client = self.client()
        stream, _ = self.start(
            client, "trace", pattern=P + "order", times=1, condition="len(params[0]) == 2"
        )
        targets.order([1, 2, 3])
        targets.order([5, 6])
        tree = self.observations(client, 1)[0]
        self.assertEqual(tree["call_tree"]["children"][1]["count"], 2)
        self.end_of(client, stream)
        stream, _ = self.start(client, "trace", pattern=P + "order", times=1, min_duration=1000)
        targets.order([1])
        tree = self.observations(client, 1)[0]
        self.assertEqual(tree["call_tree"]["children"], [])
        self.end_of(client, stream)

    def test_bad_input_changes_nothing(self):
        client = self.client()
        error = self.refused(client, "trace", pattern=P + "ordr")
        self.assertEqual(error["code"], "not_found")
        self.assertIn(P + "order", error["message"])
        error = self.refused(client, "trace", pattern=P + "order", condition="params[")
        self.assertEqual(error["code"], "invalid_expression")
        error = self.refused(client, "trace", pattern=P + "generator")
        self.assertEqual(error["code"], "invalid_params")
        self.assertFalse(self.agent_probes())

    def test_other_threads_are_not_traced_and_cancel_cleans_up(self):
        client = self.client()
        stream, _ = self.start(client, "trace", pattern=P + "order")
        done = threading.Event()

        def other():
            while not done.is_set():
                targets.price(1)
                time.sleep(0.001)

        thread = threading.Thread(target=other)
        thread.start()
        try:
            for _ in range(3):
                targets.order([1, 2])
            trees = self.observations(client, 3)
        finally:
            done.set()
            thread.join()
        for tree in trees:
            self.assertEqual(
                children(tree["call_tree"]),
                {(P + "validate", 1), (P + "price", 2), (P + "save", 1)},
            )
        client.cancel(stream)
        self.assertEqual(self.end_of(client, stream)["reason"], "cancelled")


class ThreadTests(ProbeTestCase):
    def test_list_detail_and_busiest(self):
        stop = threading.Event()
        started = threading.Event()

        def busy():
            started.set()
            targets.burn(stop.is_set)

        workers = [
            threading.Thread(target=busy, name="busy-worker", daemon=True),
            threading.Thread(target=stop.wait, name="idle-worker", daemon=True),
        ]
        for worker in workers:
            worker.start()
        started.wait(5)
        try:
            client = self.client()
            listed = client.call("thread", {})["data"]
            names = [t["name"] for t in listed["threads"]]
            self.assertIn("busy-worker", names)
            self.assertIn("idle-worker", names)
            self.assertIn("MainThread", names)
            self.assertFalse([n for n in names if n.startswith("peeka-")])
            self.assertGreater(listed["hidden_agent_threads"], 0)
            idle = [t for t in listed["threads"] if t["name"] == "idle-worker"][0]
            self.assertEqual(idle["state"], "WAITING")
            self.assertEqual(idle["native_id"], workers[1].native_id)
            self.assertTrue(idle["daemon"])
            busiest = client.call("thread", {"top": 1, "interval": 300})["data"]
            self.assertEqual(busiest["action"], "busiest")
            self.assertEqual(busiest["threads"][0]["name"], "busy-worker")
            functions = [f["function"] for f in busiest["threads"][0]["stack"]]
            self.assertIn("burn", functions)
            detail = client.call("thread", {"tid": workers[1].ident, "depth": 2})["data"]
            self.assertEqual(detail["thread"]["name"], "idle-worker")
            self.assertEqual(len(detail["thread"]["stack"]), 2)
            waiting = client.call("thread", {"state": "WAITING"})["data"]["threads"]
            self.assertNotIn("busy-worker", [t["name"] for t in waiting])
            bad = client.call("thread", {"tid": 12345678})
            self.assertFalse(bad["ok"])
            self.assertEqual(bad["error"]["code"], "not_found")
            everyone = client.call("thread", {"include_agent": True, "interval": 0})["data"]
            self.assertTrue([t for t in everyone["threads"] if t["agent"]])
        finally:
            stop.set()
            for worker in workers:
                worker.join()


class TopTests(ProbeTestCase):
    def test_hot_function_and_shares(self):
        stop = threading.Event()
        worker = threading.Thread(target=targets.burn, args=(stop.is_set,), name="burner")
        worker.start()
        try:
            client = self.client()
            stream, data = self.start(
                client, "top", interval=0.005, report_interval=0.5, cycles=2, stacks=True
            )
            self.assertEqual(data["interval"], 0.005)
            snapshots = self.observations(client, 2)
            self.assertEqual(self.end_of(client, stream)["reason"], "count_reached")
        finally:
            stop.set()
            worker.join()
        last = snapshots[-1]
        self.assertGreater(last["total_samples"], 10)
        top = last["functions"][0]
        self.assertEqual(top["name"], P + "burn")
        self.assertGreater(top["own_pct"], 80.0)
        self.assertLessEqual(sum(f["own_pct"] for f in last["functions"]), 100.01)
        stacks = [s for snap in snapshots for s in snap["stacks"]]
        self.assertTrue(any(s[0].endswith(P + "burn") for s in stacks), stacks[:3])
        self.assertEqual(sum(s[1] for s in stacks), last["total_samples"])
        self.assertFalse([f for f in last["functions"] if "peeka_agent" in f["filename"]])
        self.assertTrue(wait_until(lambda: not [t for t in threading.enumerate() if "top" in t.name]))


if __name__ == "__main__":
    unittest.main()
