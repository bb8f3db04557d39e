"""sc, sm, inspect, logger and memory, end to end: a real agent, its socket, known values.

What the commands look at lives in :mod:`tests.runtime_targets`.
"""

import gc
import importlib
import json
import logging
import os
import stat
import sys
import tempfile
import threading
import tracemalloc
import unittest

from tests import runtime_targets as targets
from tests.test_agent import AgentTestCase

T = "tests.runtime_targets"


def leak_line():
    with open(targets.__file__) as handle:
        for number, line in enumerate(handle, 1):
            if "# LEAK-LINE" in line:
                return number
    raise AssertionError("no LEAK-LINE in runtime_targets.py")


class RuntimeTestCase(AgentTestCase):
    def setUp(self):
        AgentTestCase.setUp(self)
        self.conn = self.client()

    def ok(self, command, **params):
        response = self.conn.call(command, params)
        self.assertTrue(response["ok"], response)
        return response["data"]

    def error(self, command, **params):
        response = self.conn.call(command, params)
        self.assertFalse(response["ok"], response)
        return response["error"]


class SearchTests(RuntimeTestCase):
    def test_sc_finds_classes_by_glob_and_bare_name(self):
        data = self.ok("sc", pattern=T + ".*")
        names = [entry["name"] for entry in data["classes"]]
        for name in ("Item", "SpecialItem", "Config", "Lazy", "CountingHandler"):
            self.assertIn(T + "." + name, names)
        self.assertEqual(names, sorted(names))
        self.assertFalse(data["truncated"])
        self.assertGreater(data["scanned"], 100)
        bare = self.ok("sc", pattern="Unique7a1f")
        self.assertEqual([entry["name"] for entry in bare["classes"]], [T + ".Unique7a1f"])
        limited = self.ok("sc", pattern=T + ".*", limit=2)
        self.assertEqual(len(limited["classes"]), 2)
        self.assertTrue(limited["truncated"])
        self.assertEqual(limited["total"], data["total"])
        self.assertEqual(self.ok("sc", pattern="_peeka_agent_*")["total"], 0)
        self.assertEqual(self.ok("sc", pattern="no.such.Thing")["classes"], [])

    def test_sc_detail(self):
        data = self.ok("sc", pattern=T + ".SpecialItem", detail=True)
        (entry,) = data["classes"]
        self.assertEqual(entry["module"], T)
        self.assertEqual(entry["qualname"], "SpecialItem")
        self.assertEqual(entry["bases"], [T + ".Item"])
        self.assertEqual(entry["mro"], [T + ".SpecialItem", T + ".Item", "object"])
        self.assertEqual(entry["methods"], ["total"])
        self.assertTrue(entry["file"].endswith("runtime_targets.py"), entry)
        plain = self.ok("sc", pattern=T + ".SpecialItem")["classes"][0]
        self.assertNotIn("bases", plain)

    def test_sm_lists_methods_with_kinds_and_signatures(self):
        data = self.ok("sm", class_pattern=T + ".Item", detail=True)
        methods = dict((entry["name"], entry) for entry in data["methods"])
        self.assertEqual(
            sorted(methods), ["__init__", "empty", "label", "parse", "refresh", "total"]
        )
        self.assertEqual(methods["total"]["kind"], "method")
        self.assertEqual(methods["total"]["signature"], "(self, price, discount=0, *, rounding=2)")
        self.assertEqual(methods["parse"]["kind"], "staticmethod")
        self.assertEqual(methods["parse"]["signature"], "(text)")
        self.assertEqual(methods["empty"]["kind"], "classmethod")
        self.assertEqual(methods["label"]["kind"], "property")
        self.assertEqual(methods["refresh"]["signature"], "(self, *args, **kwargs)")
        self.assertEqual(methods["refresh"]["function_kind"], "coroutine")
        self.assertEqual(methods["total"]["line"], targets.Item.total.__code__.co_firstlineno)
        self.assertEqual(methods["total"]["class"], T + ".Item")
        only = self.ok("sm", class_pattern=T + ".*Item", method_pattern="t*")
        self.assertEqual(
            [(m["class"], m["name"]) for m in only["methods"]],
            [(T + ".Item", "total"), (T + ".SpecialItem", "total")],
        )
        self.assertNotIn("signature", only["methods"][0])
        builtin = self.ok("sm", class_pattern="dict", method_pattern="get", detail=True)
        (get,) = builtin["methods"]
        self.assertEqual(get["kind"], "builtin")
        self.assertIn("key", get["signature"] or "key")
        limited = self.ok("sm", class_pattern=T + ".Item", limit=1)
        self.assertEqual((len(limited["methods"]), limited["truncated"]), (1, True))

    def test_bad_parameters(self):
        self.assertEqual(self.error("sc")["code"], "invalid_params")
        self.assertEqual(self.error("sc", pattern=" ")["code"], "invalid_params")
        self.assertEqual(self.error("sc", pattern="x", limit=0)["code"], "invalid_params")
        self.assertEqual(self.error("sm", pattern="x")["code"], "invalid_params")


class InspectTests(RuntimeTestCase):
    def test_get_reads_nested_values(self):
        data = self.ok("inspect", target=T + ".CONFIG.db['nested']['deep'][1]['x']")
        self.assertEqual((data["value"], data["type"]), (42, "int"))
        self.assertEqual(self.ok("inspect", target=T + ".ITEMS[1].qty")["value"], 12)
        self.assertEqual(self.ok("inspect", target=T + ".ITEMS[-1].sku")["value"], "S-1")
        self.assertEqual(self.ok("inspect", target=T + ".Item.KIND")["value"], "item")
        config = self.ok("inspect", action="get", target=T + ".CONFIG", depth=3)
        self.assertEqual(config["type"], T + ".Config")
        self.assertEqual(config["value"]["db"]["hosts"], ["db1", "db2"])
        self.assertEqual(config["id"], hex(id(targets.CONFIG)))
        shallow = self.ok("inspect", target=T + ".CONFIG", depth=0)
        self.assertIsInstance(shallow["value"], str)

    def test_get_never_runs_the_targets_code(self):
        lazy = self.error("inspect", target=T + ".CONFIG.lazy.missing")
        self.assertEqual(lazy["code"], "not_found")
        self.assertIn("__getattr__ is not run", lazy["message"])
        prop = self.error("inspect", target=T + ".ITEMS[0].label")
        self.assertEqual(prop["code"], "not_found")
        self.assertIn("property", prop["message"])
        method = self.error("inspect", target=T + ".ITEMS[0].total")
        self.assertIn("method", method["message"])
        self.assertEqual(self.error("inspect", target="no_such_module.x")["code"], "not_found")
        for bad in (T + "..x", T + ".CONFIG[", T + ".CONFIG[x]", "[0]", T + "."):
            self.assertEqual(self.error("inspect", target=bad)["code"], "invalid_params", bad)
        self.assertEqual(self.error("inspect")["code"], "invalid_params")
        self.assertEqual(
            self.error("inspect", target=T + ".CONFIG", class_name="x")["code"], "invalid_params"
        )

    def test_instances_and_count_with_a_filter(self):
        data = self.ok(
            "inspect", action="instances", class_name=T + ".Item", filter_express="obj.qty > 10"
        )
        self.assertEqual(data["matched"], 2)
        self.assertEqual(sorted(i["value"]["sku"] for i in data["instances"]), ["A-2", "B-9"])
        self.assertEqual(data["filter_errors"], 0)
        self.assertGreater(data["scanned"], 0)
        self.assertFalse(data["scan_truncated"])
        limited = self.ok("inspect", action="instances", class_name="Item", limit=1)
        self.assertEqual((len(limited["instances"]), limited["matched"]), (1, 4))
        self.assertTrue(limited["truncated"])
        count = self.ok("inspect", action="count", class_name=T + ".Item", gc_first=True)
        self.assertEqual(count["count"], 4)
        self.assertEqual(count["by_type"], {T + ".Item": 3, T + ".SpecialItem": 1})
        failing = self.ok(
            "inspect", action="count", class_name=T + ".Item", filter_express="obj.sku + 1 > 0"
        )
        self.assertEqual((failing["count"], failing["filter_errors"]), (0, 4))
        self.assertIn("str", failing["last_filter_error"])

    def test_bad_filters_and_types(self):
        bad = self.error("inspect", action="count", class_name=T + ".Item", filter_express="obj.")
        self.assertEqual(bad["code"], "invalid_expression")
        unknown = self.error(
            "inspect", action="count", class_name=T + ".Item", filter_express="item.qty > 1"
        )
        self.assertEqual(unknown["code"], "invalid_expression")
        self.assertIn("obj", unknown["message"])
        missing = self.error("inspect", action="instances", class_name=T + ".Itme")
        self.assertEqual(missing["code"], "not_found")
        self.assertIn(T + ".Item", missing["message"])
        self.assertEqual(self.error("inspect", action="count")["code"], "invalid_params")


class LoggerTests(RuntimeTestCase):
    def setUp(self):
        RuntimeTestCase.setUp(self)
        level = targets.LOGGER.level
        self.addCleanup(targets.LOGGER.setLevel, level)
        del targets.HANDLER.records[:]

    def test_list_and_get(self):
        everything = self.ok("logger")
        self.assertEqual(everything["loggers"][0]["name"], "root")
        self.assertTrue(everything["logging_imported"])
        mine = self.ok("logger", action="list", pattern="tests.runtime*")
        names = [entry["name"] for entry in mine["loggers"]]
        self.assertEqual(names, ["tests.runtime.audit", "tests.runtime.audit.child"])
        child = mine["loggers"][1]
        self.assertEqual((child["level"], child["effective_level"]), (0, 30))
        self.assertEqual(child["effective_level_name"], "WARNING")
        data = self.ok("logger", action="get", logger="tests.runtime.audit")
        self.assertEqual((data["level"], data["level_name"]), (30, "WARNING"))
        self.assertFalse(data["propagate"])
        (handler,) = data["handlers"]
        self.assertEqual(handler["type"], T + ".CountingHandler")
        self.assertEqual(handler["level_name"], "DEBUG")
        root = self.ok("logger", action="get", logger="root")
        self.assertEqual(root["name"], "root")

    def test_set_changes_what_the_program_logs(self):
        targets.LOGGER.info("before")
        self.assertEqual(targets.HANDLER.records, [])
        data = self.ok("logger", action="set", logger="tests.runtime.audit", level="info")
        self.assertEqual((data["previous_level"], data["level"]), (30, 20))
        self.assertEqual(data["level_name"], "INFO")
        targets.LOGGER.info("after")
        targets.CHILD.info("child")
        self.assertEqual(targets.HANDLER.records, ["after", "child"])
        self.ok("logger", action="set", logger="tests.runtime.audit", level=40)
        targets.LOGGER.warning("quiet")
        self.assertEqual(targets.HANDLER.records, ["after", "child"])

    def test_bad_input_changes_nothing(self):
        bad = self.error("logger", action="set", logger="tests.runtime.audit", level="LOUD")
        self.assertEqual(bad["code"], "invalid_params")
        self.assertIn("WARNING", bad["message"])
        self.assertEqual(targets.LOGGER.level, logging.WARNING)
        missing = self.error("logger", action="get", logger="tests.runtime.audti")
        self.assertEqual(missing["code"], "not_found")
        self.assertIn("tests.runtime.audit", missing["message"])
        self.assertNotIn("tests.runtime.audti", logging.Logger.manager.loggerDict)
        self.assertEqual(
            self.error("logger", action="set", logger="tests.runtime.audit")["code"],
            "invalid_params",
        )
        self.assertEqual(self.error("logger", action="get")["code"], "invalid_params")
        self.assertEqual(self.error("logger", action="drop")["code"], "invalid_params")


class MemoryTests(RuntimeTestCase):
    def setUp(self):
        if tracemalloc.is_tracing():
            self.skipTest("tracemalloc is on in the test process")
        RuntimeTestCase.setUp(self)
        self.addCleanup(tracemalloc.stop)

    def test_overview(self):
        data = self.ok("memory", limit=5)
        if sys.platform.startswith("linux"):
            self.assertGreater(data["rss_bytes"], 1 << 20)
            self.assertGreaterEqual(data["peak_rss_bytes"], data["rss_bytes"])
        self.assertEqual(len(data["gc"]["counts"]), 3)
        self.assertEqual(len(data["types"]), 5)
        self.assertGreater(data["types_total"], 10)
        self.assertGreater(data["scanned"], 1000)
        self.assertFalse(data["tracemalloc"]["tracing"])
        sizes = [row["size"] for row in data["types"]]
        self.assertEqual(sizes, sorted(sizes, reverse=True))

    def test_tracing_points_at_the_leaking_line(self):
        for action in ("top", "snapshot", "diff", "stop"):
            error = self.error("memory", action=action)
            self.assertEqual(error["code"], "invalid_state", action)
            self.assertIn("--action start", error["message"])
        self.assertFalse(tracemalloc.is_tracing())
        started = self.ok("memory", action="start", nframe=5)
        self.assertEqual((started["started_by"], started["already"]), ("peeka", False))
        self.assertTrue(tracemalloc.is_tracing())
        self.assertIn("peeka-work-memory-guard", [t.name for t in threading.enumerate()])
        no_baseline = self.error("memory", action="diff")
        self.assertEqual(no_baseline["code"], "invalid_state")
        self.assertIn("snapshot", no_baseline["message"])
        self.ok("memory", action="snapshot")
        targets.leak(300)
        diff = self.ok("memory", action="diff", limit=3)
        first = diff["stats"][0]
        self.assertTrue(first["filename"].endswith("runtime_targets.py"), diff)
        self.assertEqual(first["lineno"], leak_line(), diff)
        self.assertGreater(first["size_diff"], 300 * 1000)
        self.assertGreaterEqual(first["count_diff"], 300)
        top = self.ok("memory", action="top", group_by="lineno", limit=50)
        self.assertIn(
            leak_line(), [s["lineno"] for s in top["stats"] if s["filename"] == targets.__file__]
        )
        by_file = self.ok("memory", action="top", group_by="filename")
        self.assertIsNone(by_file["stats"][0]["lineno"])
        by_traceback = self.ok("memory", action="diff", group_by="traceback", limit=1)
        frames = by_traceback["stats"][0]["traceback"]
        self.assertEqual(frames[0]["lineno"], leak_line())
        self.assertGreater(len(frames), 1)
        for stats in (diff, top, by_file):
            for entry in stats["stats"]:
                self.assertNotIn(self.directory, entry["filename"])
        stopped = self.ok("memory", action="stop")
        self.assertFalse(stopped["tracing"])
        self.assertFalse(tracemalloc.is_tracing())
        del targets.LEAKED[:]

    def test_detach_stops_only_what_peeka_started(self):
        self.ok("memory", action="start")
        self.assertTrue(tracemalloc.is_tracing())
        self.agent.detach()
        self.assertFalse(tracemalloc.is_tracing())

    def test_tracing_started_by_the_program_is_left_on(self):
        tracemalloc.start()
        started = self.ok("memory", action="start")
        self.assertEqual((started["started_by"], started["already"]), ("program", True))
        refused = self.error("memory", action="stop")
        self.assertEqual(refused["code"], "invalid_state")
        self.assertIn("program", refused["message"])
        self.ok("memory", action="snapshot")
        self.agent.detach()
        self.assertTrue(tracemalloc.is_tracing())

    def test_gc(self):
        cycle = []
        cycle.append(cycle)
        del cycle
        data = self.ok("memory", action="gc")
        self.assertGreaterEqual(data["collected"], 1)
        self.assertEqual(len(data["counts_after"]), 3)

    def test_referrers_and_referents(self):
        data = self.ok(
            "memory", action="referrers", type_name=T + ".Unique7a1f", max_depth=2, max_per_level=5
        )
        self.assertEqual(data["instances"], 1)
        (root,) = data["roots"]
        self.assertEqual(root["type"], T + ".Unique7a1f")
        holders = [(c["type"], c["via"]) for c in root["children"]]
        self.assertEqual(holders, [("dict", "key 'anchor'")], data)
        module = root["children"][0]["children"]
        self.assertIn(
            ("globals of module " + T, "key 'HELD'"), [(c["summary"], c["via"]) for c in module]
        )
        down = self.ok("memory", action="referents", type_name=T + ".Config", max_depth=2)
        (config,) = down["roots"]
        self.assertTrue(config["children"], down)
        self.assertNotIn(T + ".Config", [c["summary"] for c in config["children"]])
        unknown = self.error("memory", action="referrers", type_name=T + ".Nope")
        self.assertEqual(unknown["code"], "not_found")
        self.assertEqual(self.error("memory", action="referrers")["code"], "invalid_params")
        self.assertEqual(
            self.error("memory", action="top", type_name="dict")["code"], "invalid_params"
        )

    def test_dump(self):
        directory = tempfile.mkdtemp()
        path = os.path.join(directory, "heap.jsonl")
        # A small dump: the heap of this test process may be large.
        memory = importlib.import_module(self.module.__name__ + ".memory_command")
        memory.MAX_DUMP_OBJECTS = 2000
        try:
            data = self.ok("memory", action="dump", filename=path)
            self.assertEqual(data["filename"], path)
            self.assertEqual(data["objects"], 2000)
            self.assertTrue(data["truncated"])
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            kinds = set()
            first = last = None
            with open(path) as handle:
                for line in handle:
                    last = json.loads(line)
                    kinds.add(last["kind"])
                    if first is None:
                        first = last
            self.assertEqual(first["kind"], "summary")
            self.assertEqual(last["kind"], "end")
            self.assertTrue({"type", "object"} <= kinds, kinds)
            self.assertEqual(os.path.getsize(path), data["bytes"])
            again = self.error("memory", action="dump", filename=path)
            self.assertEqual(again["code"], "invalid_params")
            self.assertIn("never overwrites", again["message"])
        finally:
            for name in os.listdir(directory):
                os.unlink(os.path.join(directory, name))
            os.rmdir(directory)


if __name__ == "__main__":
    unittest.main()
