"""Pending probes (:mod:`peeka_agent.pending`) and ``peeka-cli run``'s runner (:mod:`peeka_agent.run_program`)."""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

from peeka_agent import pending

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeStream(object):
    def __init__(self):
        self.labels = {}
        self.closers = []
        self.events = []
        self.ended = None

    def on_close(self, callback):
        self.closers.append(callback)

    def event(self, kind, data=None):
        self.events.append((kind, data))

    def end(self, reason, error=None):
        self.ended = (reason, error)
        for callback in self.closers:
            callback()


class FakeProbe(object):
    """What pending needs of a probe; ``install`` records the functions."""

    def __init__(self, pattern, command="watch"):
        self.pattern = pattern
        self.command = command
        self.stream = FakeStream()
        self.removed = False
        self.targets = []
        self.installed = []

    @property
    def functions(self):
        return [target.name for target in self.targets]

    def install(self, make_handler):
        self.installed.extend(target.function for target in self.targets)


class PendingTests(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="peeka-pending-test-")
        sys.path.insert(0, self.directory)
        self.meta_path = list(sys.meta_path)

    def tearDown(self):
        sys.path.remove(self.directory)
        shutil.rmtree(self.directory)
        for name in list(sys.modules):
            if name.startswith("peeka_pending_"):
                del sys.modules[name]
        self.assertEqual(pending.pending_patterns(), [])
        self.assertEqual(sys.meta_path, self.meta_path)

    def write(self, name, text):
        with open(os.path.join(self.directory, name), "w") as handle:
            handle.write(textwrap.dedent(text))

    def test_a_module_imported_later_resolves_when_its_code_has_run(self):
        self.write(
            "peeka_pending_one.py",
            """
            import sys
            LOADER_SEEN = __loader__
            SPEC_LOADER_SEEN = __spec__.loader
            def parse(text):
                return text
            """,
        )
        probe = FakeProbe("peeka_pending_one.parse")
        pending.add(probe, None)
        self.assertTrue(pending.waiting_for("peeka_pending_one"))
        self.assertFalse(pending.waiting_for("peeka_pending_other"))
        import peeka_pending_one  # noqa: F401 - the import under test

        self.assertEqual(probe.installed, [peeka_pending_one.parse])
        self.assertEqual(probe.stream.events[0][0], "resolved")
        self.assertEqual(
            probe.stream.events[0][1]["matched"][0]["name"], "peeka_pending_one.parse"
        )
        # The module never saw the wrapper.
        self.assertIs(peeka_pending_one.LOADER_SEEN, peeka_pending_one.__spec__.loader)
        self.assertIs(peeka_pending_one.SPEC_LOADER_SEEN, peeka_pending_one.__loader__)
        self.assertNotIn("_LoaderWrapper", type(peeka_pending_one.__loader__).__name__)
        self.assertEqual(pending.pending_patterns(), [])

    def test_a_class_method_in_a_package_module(self):
        os.mkdir(os.path.join(self.directory, "peeka_pending_pkg"))
        self.write("peeka_pending_pkg/__init__.py", "")
        self.write(
            "peeka_pending_pkg/cart.py",
            """
            class Cart(object):
                def total(self):
                    return 1
            """,
        )
        probe = FakeProbe("peeka_pending_pkg.cart.Cart.total")
        pending.add(probe, None)
        import peeka_pending_pkg  # noqa: F401

        self.assertEqual(probe.installed, [])
        self.assertTrue(pending.waiting_for("peeka_pending_pkg.cart"))
        from peeka_pending_pkg import cart

        self.assertEqual(probe.installed, [cart.Cart.__dict__["total"]])
        del sys.modules["peeka_pending_pkg.cart"]
        del sys.modules["peeka_pending_pkg"]

    def test_the_end_of_the_stream_removes_the_pending_probe_and_the_finder(self):
        probe = FakeProbe("peeka_pending_never.f")
        pending.add(probe, None)
        self.assertIn(pending._finder, sys.meta_path)
        probe.stream.end("cancelled")
        self.assertEqual(pending.pending_patterns(), [])
        self.write("peeka_pending_never.py", "def f():\n    pass\n")
        import peeka_pending_never  # noqa: F401

        self.assertEqual(probe.installed, [])

    def test_a_failed_import_resolves_nothing(self):
        self.write("peeka_pending_broken.py", "def f():\n    pass\nraise ValueError('boom')\n")
        probe = FakeProbe("peeka_pending_broken.f")
        pending.add(probe, None)
        with self.assertRaises(ValueError):
            import peeka_pending_broken  # noqa: F401
        self.assertEqual(probe.installed, [])
        probe.stream.end("cancelled")

    def test_trace_refuses_a_generator_that_appears(self):
        self.write("peeka_pending_gen.py", "def g():\n    yield 1\n")
        probe = FakeProbe("peeka_pending_gen.g", command="trace")
        pending.add(probe, None)
        import peeka_pending_gen  # noqa: F401

        self.assertEqual(probe.installed, [])
        self.assertEqual(probe.stream.ended[0], "error")


RUNNER = """
import sys
sys.path.insert(0, %(agent)r)
from peeka_agent import pending, run_program
from tests.test_run import FakeProbe
probe = FakeProbe(%(pattern)r)
if %(pattern)r:
    pending.add(probe, None)
import atexit
def report():
    sys.stderr.write("installed=%%s\\n" %% [f.__name__ for f in probe.installed])
atexit.register(report)
run_program.run(%(mode)r, %(target)r, %(args)r)
"""


class RunProgramTests(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="peeka-run-test-")

    def tearDown(self):
        shutil.rmtree(self.directory)

    def run_program(self, source, pattern="", mode="path", target=None, args=(), env=None):
        script = os.path.join(self.directory, "app.py")
        with open(script, "w") as handle:
            handle.write(textwrap.dedent(source))
        code = RUNNER % {
            "agent": HERE,
            "pattern": pattern,
            "mode": mode,
            "target": target or script,
            "args": list(args),
        }
        return subprocess.run(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            cwd=self.directory,
            env=dict(os.environ, **(env or {})),
            timeout=60,
        )

    def test_the_function_is_probed_before_the_next_statement_calls_it(self):
        done = self.run_program(
            '''
            """The doc."""
            from __future__ import annotations
            import sys
            def load_config(path: Path) -> dict:
                return {"path": path}
            "not a docstring"
            called_with_probe = load_config.__code__ is not None
            print(__name__, __doc__, sys.argv[1:], load_config("x"), __file__ == sys.argv[0] or __file__)
            print(load_config.__annotations__)
            sys.exit(3)
            ''',
            pattern="__main__.load_config",
            args=["a", "b"],
        )
        self.assertEqual(done.returncode, 3, done.stderr)
        lines = done.stdout.splitlines()
        self.assertEqual(
            lines[0], "__main__ The doc. ['a', 'b'] {'path': 'x'} True"
        )
        self.assertEqual(lines[1], "{'path': 'Path', 'return': 'dict'}")
        self.assertIn("installed=['load_config']", done.stderr)

    def test_sys_path_and_module_mode(self):
        with open(os.path.join(self.directory, "tool.py"), "w") as handle:
            handle.write("import sys\nprint(__name__, __spec__.name, sys.argv)\n")
        done = self.run_program(
            "",
            mode="module",
            target="tool",
            args=["-x"],
            env={"PYTHONPATH": self.directory},
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(
            done.stdout.strip(),
            "__main__ tool %s" % [os.path.join(self.directory, "tool.py"), "-x"],
        )

    def test_an_exception_is_printed_without_the_runner_and_exits_1(self):
        done = self.run_program(
            """
            def boom():
                raise KeyError("k")
            boom()
            """,
            pattern="__main__.boom",
        )
        self.assertEqual(done.returncode, 1)
        self.assertIn("KeyError: 'k'", done.stderr)
        self.assertNotIn("run_program", done.stderr)
        self.assertIn('app.py", line 4, in <module>', done.stderr)
        self.assertIn("installed=['boom']", done.stderr)

    def test_a_syntax_error_runs_nothing(self):
        done = self.run_program("print('ran')\nreturn 1\n", pattern="__main__.f")
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stdout, "")
        self.assertIn("SyntaxError", done.stderr)


if __name__ == "__main__":
    unittest.main()
