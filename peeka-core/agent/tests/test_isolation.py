"""Out of process: the real bootstrap, leaving the process as it was, other users, idle cost.

Each test runs tests/target_program.py as the target and talks to its
agent from here (or from a child process running as another uid).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import unittest

from tests.support import AGENT_DIR, TESTS_DIR, RawClient, copy_agent, make_private_dir

BOOTSTRAP = os.path.normpath(
    os.path.join(AGENT_DIR, "..", "..", "peeka-attach", "src", "bootstrap.py")
)
TARGET = os.path.join(TESTS_DIR, "target_program.py")
NOBODY = 65534
STRANGER = 65533

# Run as another uid: imports first (the interpreter may be unreadable to it).
CLIENT_AS = textwrap.dedent(
    """
    import json, os, socket, sys
    uid, path = int(sys.argv[1]), sys.argv[2]
    os.setgid(uid)
    os.setuid(uid)
    result = {"uid": os.getuid()}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    try:
        sock.connect(path)
    except OSError as exc:
        result["connect"] = type(exc).__name__
    else:
        result["connect"] = "ok"
        hello = json.dumps({"type": "hello", "protocol": {"major": 1, "minor": 0},
                            "client": "other-uid"}).encode()
        try:
            sock.sendall(len(hello).to_bytes(4, "big") + hello)
            header = sock.recv(4)
            if not header:
                result["reply"] = "eof"
            else:
                size = int.from_bytes(header, "big")
                data = b""
                while len(data) < size:
                    data += sock.recv(size - len(data))
                result["reply"] = json.loads(data.decode())["type"]
        except OSError as exc:
            result["reply"] = type(exc).__name__
    print(json.dumps(result))
    """
)


def root_only(test):
    def run(self):
        if os.geteuid() != 0:
            message = (
                "\n*** SKIPPED %s: it must run as root to check that other uids are refused "
                "(run the tests as root to cover the peer-credential check) ***\n" % test.__name__
            )
            sys.stderr.write(message)
            self.skipTest("needs root")
        return test(self)

    run.__name__ = test.__name__
    run.__doc__ = test.__doc__
    return run


class Target(object):
    """A running target_program.py."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, TARGET],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            universal_newlines=True,
        )

    @property
    def pid(self):
        return self.process.pid

    def ask(self, **command):
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError("the target exited (status %s)" % self.process.poll())
        reply = json.loads(line)
        if isinstance(reply, dict) and "error" in reply:
            raise AssertionError("the target failed: %s" % reply["error"])
        return reply

    def wait_snapshot(self, predicate, timeout=1.0):
        deadline = time.monotonic() + timeout
        while True:
            snapshot = self.ask(op="snapshot")
            if predicate(snapshot) or time.monotonic() > deadline:
                return snapshot
            time.sleep(0.02)

    def close(self):
        if self.process.poll() is None:
            try:
                self.ask(op="exit")
            except (AssertionError, OSError, ValueError):
                pass
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass


def agent_modules(snapshot):
    return [name for name in snapshot["modules"] if name.startswith("_peeka_agent_")]


def peeka_names(snapshot):
    return [name for name in snapshot["threads"] if name.startswith("peeka-")]


class IsolationTestCase(unittest.TestCase):
    def target(self):
        target = Target()
        self.addCleanup(target.close)
        return target

    def private_dir(self, owner=None):
        directory = make_private_dir()
        copy_agent(directory)
        if owner is not None:
            for root, dirs, files in os.walk(directory):
                for name in dirs + files:
                    os.chown(os.path.join(root, name), owner, owner)
            os.chown(directory, owner, owner)
        self.addCleanup(shutil.rmtree, directory, True)
        return directory

    def client_as(self, uid, path):
        output = subprocess.check_output(
            [sys.executable, "-c", CLIENT_AS, str(uid), path], universal_newlines=True, timeout=30
        )
        return json.loads(output)


class BootstrapTests(IsolationTestCase):
    def setUp(self):
        if not os.path.exists(BOOTSTRAP):
            sys.stderr.write(
                "\n*** SKIPPED bootstrap tests: %s not found (copy peeka-attach/src next to "
                "peeka-core to run them) ***\n" % BOOTSTRAP
            )
            self.skipTest("bootstrap.py not found")

    def attach(self, target, token):
        directory = self.private_dir()
        status = target.ask(
            op="bootstrap",
            path=BOOTSTRAP,
            directory=directory,
            token=token,
            entry="peeka_agent/__init__.py",
        )
        self.assertEqual(status["state"], "loaded", status)
        self.assertEqual(status["pid"], target.pid)
        return directory, status["details"]

    def test_attach_detach_leaves_the_process_as_it_was(self):
        target = self.target()
        before = target.ask(op="snapshot")
        for round_number in range(2):  # detach, then attach again
            directory, details = self.attach(target, "tok%d" % round_number)
            self.assertEqual(details["agent_version"], "0.1.0")
            self.assertEqual(details["pid"], target.pid)
            client = RawClient(details["socket"])
            self.addCleanup(client.close)
            self.assertEqual(client.handshake()["pid"], target.pid)
            self.assertEqual(client.call("ping")["data"]["pid"], target.pid)
            attached = target.ask(op="snapshot")
            self.assertIn("peeka-agent", attached["threads"])
            self.assertEqual(
                agent_modules(attached),
                sorted(
                    name
                    for name in attached["modules"]
                    if name.startswith("_peeka_agent_tok%d" % round_number)
                ),
            )
            response = client.call("detach")
            self.assertTrue(response["data"]["detached"])
            self.assertTrue(client.at_eof())
            after = target.wait_snapshot(lambda s: not peeka_names(s))
            self.assertEqual(after["threads"], before["threads"])
            self.assertEqual(agent_modules(after), [])
            self.assertEqual(after["meta_path"], before["meta_path"])
            self.assertEqual(after["switch_interval"], before["switch_interval"])
            self.assertFalse(
                os.path.exists(directory),
                os.listdir(directory) if os.path.exists(directory) else None,
            )

    def test_the_agent_starts_with_its_core_precompiled_and_commands_come_on_first_use(self):
        target = self.target()
        directory, details = self.attach(target, "core")
        client = RawClient(details["socket"])
        self.addCleanup(client.close)
        client.handshake()
        package = "_peeka_agent_core"
        core = sorted(
            [package]
            + [
                package + "." + name
                for name in (
                    "admission",
                    "agent_threads",
                    "builtin_commands",
                    "commands",
                    "connection",
                    "fork_guard",
                    "gil_boost",
                    "outbox",
                    "peercred",
                    "server",
                    "streams",
                    "version",
                    "wire",
                    "writer_budget",
                )
            ]
        )
        self.assertEqual(agent_modules(target.ask(op="snapshot")), core)
        info = client.call("info")["data"]
        self.assertIn("watch", info["commands"])
        self.assertEqual(agent_modules(target.ask(op="snapshot")), core)
        # The first `thread` imports its module; the answer is the real one.
        reply = client.call("thread")
        self.assertTrue(reply["ok"], reply)
        self.assertIn(package + ".thread_command", agent_modules(target.ask(op="snapshot")))
        self.assertTrue(client.call("detach")["data"]["detached"])

    def test_a_forked_child_that_exits_leaves_the_parents_agent_alone(self):
        target = self.target()
        directory, details = self.attach(target, "forks")
        for _ in range(2):
            outcome = target.ask(op="fork_exit")
            self.assertEqual(outcome["status"], 0, outcome)
        # The child ran the inherited atexit hook: the parent's socket and
        # directory are still there, and its agent still serves.
        self.assertTrue(os.path.exists(details["socket"]))
        client = RawClient(details["socket"])
        self.addCleanup(client.close)
        client.handshake()
        self.assertEqual(client.call("ping")["data"]["pid"], target.pid)
        self.assertTrue(client.call("detach")["data"]["detached"])
        target.wait_snapshot(lambda s: not peeka_names(s))
        self.assertFalse(os.path.exists(directory))

    def test_a_forked_child_forgets_the_agent_its_probes_and_sockets(self):
        target = self.target()
        directory, details = self.attach(target, "forkwatch")
        client = RawClient(details["socket"])
        self.addCleanup(client.close)
        client.handshake()
        stream = client.request("watch", {"pattern": "__main__.hot"})
        response = client.recv()
        self.assertTrue(response["ok"], response)
        target.ask(op="hot", calls=3)
        for round_number in range(2):
            outcome = target.ask(op="fork_exit")
            self.assertEqual(outcome["status"], 0, outcome)
            view = outcome["view"]
            self.assertTrue(outcome["parent_sockets"], outcome)
            self.assertEqual(view["sockets"], [], "the child kept the agent's sockets: %r" % view)
            self.assertTrue(view["hot_is_original"], "the child still runs the probe: %r" % view)
            self.assertEqual(view["peeka_modules"], [], view)
            self.assertFalse([f for f in view["meta_path"] if "peeka" in f.lower()], view)
            self.assertEqual(view["peeka_threads"], [], view)
            self.assertFalse([tool for tool in view["tools"] if tool], view)
        # The parent's watch goes on, and its agent still serves and detaches.
        target.ask(op="hot", calls=2)
        seen = 0
        while seen < 5:
            message = client.recv()
            self.assertNotEqual(message["type"], "stream_end", message)
            if message["type"] == "observation" and message["stream"] == stream:
                seen += 1
        client.cancel(stream)
        while client.recv()["type"] != "stream_end":
            pass
        self.assertEqual(client.call("ping")["data"]["pid"], target.pid)
        self.assertTrue(client.call("detach")["data"]["detached"])
        after = target.wait_snapshot(lambda s: not peeka_names(s))
        self.assertFalse(os.path.exists(directory))
        # What an attach leaves: the fork hook's empty slot (see fork_guard).
        self.assertEqual(after["fork_slot"], "[None]")

    def test_the_switch_interval_comes_back_in_a_child_forked_while_boosted(self):
        target = self.target()
        before = target.ask(op="snapshot")["switch_interval"]
        directory, details = self.attach(target, "forkboost")
        # No client yet: the agent holds the bootstrap's boost (FIRST_CLIENT_WAIT).
        outcome = target.ask(op="fork_exit")
        self.assertLess(outcome["interval_at_fork"], before, "the fork came after the boost")
        self.assertEqual(outcome["view"]["switch_interval"], before, outcome)
        client = RawClient(details["socket"])
        self.addCleanup(client.close)
        client.handshake()
        self.assertTrue(client.call("detach")["data"]["detached"])

    def test_detached_agents_are_freed_at_once(self):
        # Their modules, threads and connections are cycles: left to the
        # program's own collections, the agents of many attaches piled up
        # (and the allocators kept that memory). The detach collects them.
        target = self.target()
        for round_number in range(3):
            directory, details = self.attach(target, "freed%d" % round_number)
            client = RawClient(details["socket"])
            client.handshake()
            client.call("thread")
            client.call("detach")
            client.close()
            target.wait_snapshot(lambda s: not peeka_names(s), timeout=5.0)
        time.sleep(0.2)
        alive = target.ask(op="agent_modules_alive")["alive"]
        # At most the last agent's agent_threads module, freed by the next collection.
        self.assertLessEqual(len(alive), 2, alive)

    def test_second_bootstrap_reports_the_running_agent(self):
        target = self.target()
        directory, details = self.attach(target, "first")
        second = self.private_dir()
        status = target.ask(
            op="bootstrap",
            path=BOOTSTRAP,
            directory=second,
            token="second",
            entry="peeka_agent/__init__.py",
        )
        self.assertEqual(status["state"], "already_running")
        client = RawClient(details["socket"])
        self.addCleanup(client.close)
        client.handshake()
        client.call("detach")


class ExitTests(IsolationTestCase):
    def test_exit_while_attached_removes_the_files(self):
        target = self.target()
        directory = self.private_dir()
        details = target.ask(op="start", directory=directory, token="exit")
        self.assertTrue(os.path.exists(details["socket"]))
        target.ask(op="exit")
        target.process.wait(10)
        self.assertEqual(target.process.returncode, 0)
        self.assertFalse(os.path.exists(directory))

    def test_exit_after_detach_touches_nothing(self):
        target = self.target()
        directory = self.private_dir()
        details = target.ask(op="start", directory=directory, token="later")
        client = RawClient(details["socket"])
        self.addCleanup(client.close)
        client.handshake()
        client.call("detach")
        self.assertTrue(client.at_eof())
        target.wait_snapshot(lambda s: not peeka_names(s))
        # Someone else uses the same path afterwards: the agent's exit hook must be gone.
        os.mkdir(directory, 0o700)
        with open(os.path.join(directory, "keep"), "w") as handle:
            handle.write("x")
        target.ask(op="exit")
        target.process.wait(10)
        self.assertTrue(os.path.exists(os.path.join(directory, "keep")))


class PeerCredentialTests(IsolationTestCase):
    @root_only
    def test_other_uid_cannot_use_a_root_target(self):
        target = self.target()
        directory = self.private_dir()
        details = target.ask(op="start", directory=directory, token="root")
        path = details["socket"]
        # The 0700 directory alone keeps the other uid away from the socket...
        result = self.client_as(NOBODY, path)
        self.assertEqual(result["connect"], "PermissionError", result)
        # ...and with the permissions opened, the agent's own check refuses it.
        os.chmod(directory, 0o711)
        os.chmod(path, 0o666)
        result = self.client_as(NOBODY, path)
        self.assertEqual(result["connect"], "ok", result)
        self.assertIn(result["reply"], ("eof", "ConnectionResetError", "BrokenPipeError"), result)
        root_client = RawClient(path)
        self.addCleanup(root_client.close)
        self.assertEqual(root_client.handshake()["type"], "welcome")
        info = root_client.call("info")["data"]
        self.assertGreaterEqual(info["refused_connections"], 1)
        self.assertTrue(
            any("uid %d" % NOBODY in e["message"] for e in info["errors"]), info["errors"]
        )
        root_client.call("detach")

    @root_only
    def test_target_uid_and_root_are_served_others_are_not(self):
        target = self.target()
        directory = self.private_dir(owner=NOBODY)
        self.assertEqual(target.ask(op="setuid", uid=NOBODY)["uid"], NOBODY)
        details = target.ask(op="start", directory=directory, token="nobody")
        path = details["socket"]
        self.assertEqual(os.stat(path).st_uid, NOBODY)
        self.assertEqual(
            self.client_as(NOBODY, path), {"uid": NOBODY, "connect": "ok", "reply": "welcome"}
        )
        root_client = RawClient(path)
        self.addCleanup(root_client.close)
        self.assertEqual(root_client.handshake()["type"], "welcome")
        os.chmod(directory, 0o711)
        os.chmod(path, 0o666)
        stranger = self.client_as(STRANGER, path)
        self.assertEqual(stranger["connect"], "ok", stranger)
        self.assertIn(
            stranger["reply"], ("eof", "ConnectionResetError", "BrokenPipeError"), stranger
        )
        root_client.call("detach")
        target.wait_snapshot(lambda s: not peeka_names(s))
        self.assertFalse(os.path.exists(directory))


@unittest.skipUnless(os.path.isdir("/proc/self/task"), "needs Linux /proc")
class IdleCostTests(IsolationTestCase):
    def counters(self, pid, native_id):
        base = "/proc/%d/task/%d/" % (pid, native_id)
        with open(base + "stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open(base + "status") as handle:
            switches = [line.strip() for line in handle if "ctxt_switches" in line]
        return int(fields[11]) + int(fields[12]), switches

    def test_idle_agent_threads_sleep_while_the_target_is_busy(self):
        target = self.target()
        directory = self.private_dir()
        details = target.ask(op="start", directory=directory, token="idle")
        client = RawClient(details["socket"])
        self.addCleanup(client.close)
        client.handshake()
        client.call("ping")
        target.ask(op="spin")
        ids = target.ask(op="native_ids")
        if not ids or None in ids.values():
            self.skipTest("no native thread ids on this interpreter")
        # Requests alone are answered by the reader: no writer thread yet.
        self.assertEqual(sorted(ids), ["peeka-agent", "peeka-conn-1"])
        time.sleep(0.3)
        before = dict((name, self.counters(target.pid, tid)) for name, tid in ids.items())
        time.sleep(2.0)
        after = dict((name, self.counters(target.pid, tid)) for name, tid in ids.items())
        self.assertEqual(before, after, "an idle agent thread ran while the target was busy")
        client.call("detach")


if __name__ == "__main__":
    unittest.main()
