"""The writer's CPU budget under a flood (outbox.py, "The writer's budget")."""

import importlib
import os
import sys
import time

from tests.test_agent import AgentTestCase


def burn(seconds):
    """Spends ``seconds`` of CPU (a render that is expensive on purpose)."""
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def thread_cpu(thread):
    """CPU seconds an agent thread used (from /proc), or None where unknown."""
    if thread is None or not getattr(thread, "native_id", None):
        return None
    try:
        with open("/proc/self/task/%d/stat" % thread.native_id) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class WriterBudgetTests(AgentTestCase):
    def setUp(self):
        AgentTestCase.setUp(self)
        self.outbox_module = importlib.import_module(self.module.__name__ + ".outbox")
        self.budget_module = importlib.import_module(self.module.__name__ + ".writer_budget")
        # A small budget and backlog so that a short flood exercises both.
        self.budget_module.WRITER_SHARE = 0.2
        self.budget_module.WRITER_BURST = 0.005
        self.outbox_module.SHED_KEEP = 8

    def render(self, value):
        burn(0.0005)
        return {"i": value}

    def flood(self, share=None, seconds=0.6):
        """Floods a stream with expensive renders; returns (delivered, end, elapsed, writer CPU)."""
        client = self.client()
        stream_id = self.open_stream(client)
        stream = self.streams[stream_id]
        if share is not None:
            stream.ask_share(share)
        outbox = stream.connection.outbox
        emitted = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            for index in range(200):
                stream.emit_lazy(self.render, emitted + index)
            emitted += 200
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        writer_cpu = None
        writer = outbox.writer
        if writer is not None and getattr(writer, "native_id", None):
            with open("/proc/self/task/%d/stat" % writer.native_id) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            writer_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        client.cancel(stream_id)
        messages = self.read_until_end(client, stream_id)
        observations = [m for m in messages if m["type"] == "observation"]
        end = messages[-1]
        self.assertGreater(outbox.paused, 0)
        self.assertGreater(outbox.shed, 0)
        seqs = [m["seq"] for m in observations]
        self.assertEqual(seqs, sorted(set(seqs)), "seq must strictly increase")
        self.assertEqual(len(observations) + end["dropped"], emitted)
        numbers = [m["data"]["i"] for m in observations]
        self.assertEqual(numbers, sorted(numbers), "shedding keeps the order")
        self.assertEqual(outbox.shares, {}, "the stream's share is given back when it ends")
        return observations, elapsed, writer_cpu

    def test_a_flood_pauses_the_writer_and_sheds_with_exact_accounting(self):
        _observations, elapsed, writer_cpu = self.flood()
        if writer_cpu is not None:
            # 20 % of the elapsed time, plus the burst, with room for clock ticks.
            self.assertLess(writer_cpu, elapsed * 0.2 + 0.005 + 0.05)

    def test_a_stream_may_ask_for_a_larger_share(self):
        observations, elapsed, writer_cpu = self.flood(share=0.5)
        if writer_cpu is not None:
            self.assertLess(writer_cpu, elapsed * 0.5 + 0.005 + 0.05)
        # What the larger share buys, independent of the machine's load:
        # the same CPU is repaid 2.5 times sooner (see test_budget_policy).
        self.assertTrue(observations)

    def test_budget_policy(self):
        budget = self.budget_module.WriterBudget()
        # Within the burst: no wait.
        self.assertEqual(budget.charge(0.004), 0.0)
        # 10 ms of debt at the default share (patched to 20 %): repaid,
        # plus the resume credit (capped by the burst), at that share.
        wait = budget.charge(0.011)
        resume = min(self.budget_module.WRITER_RESUME, self.budget_module.WRITER_BURST)
        self.assertAlmostEqual(wait, (resume + 0.010) / 0.2, delta=0.01)
        # A stream asks for 50 %: the same debt is repaid 2.5 times sooner.
        budget = self.budget_module.WriterBudget()
        budget.shares["stream"] = 0.5
        budget.charge(0.004)
        self.assertAlmostEqual(budget.charge(0.011), (resume + 0.010) / 0.5, delta=0.01)
        # Its share given back, the default again.
        del budget.shares["stream"]
        self.assertEqual(budget.share(), 0.2)

    def test_many_clients_share_one_budget(self):
        clients = 5
        opened = []
        for _ in range(clients):
            client = self.client()
            stream_id = self.open_stream(client)
            opened.append((client, stream_id, self.streams[stream_id]))
        emitted = 0
        started = time.perf_counter()
        deadline = started + 1.0
        while time.perf_counter() < deadline:
            for index in range(100):
                for _client, _stream_id, stream in opened:
                    stream.emit_lazy(self.render, emitted + index)
            emitted += 100
            time.sleep(0.001)
        elapsed = time.perf_counter() - started
        used = [thread_cpu(stream.connection.outbox.writer) for _c, _s, stream in opened]
        delivered = []
        for client, stream_id, stream in opened:
            client.cancel(stream_id)
            messages = self.read_until_end(client, stream_id)
            observations = [m for m in messages if m["type"] == "observation"]
            self.assertEqual(len(observations) + messages[-1]["dropped"], emitted)
            delivered.append(len(observations))
        # Each client got a fair part of the one budget...
        self.assertGreater(min(delivered), max(delivered) / 4.0, delivered)
        if None not in used:
            # ... and all together used one budget (20 %, plus a burst and a
            # batch each, with room for clock ticks), not one each.
            self.assertLess(sum(used), elapsed * 0.2 + clients * 0.01 + 0.1, used)


class ParkedProbeTests(AgentTestCase):
    """A flooded ``watch`` is parked while its writer pauses; its missed calls are drops."""

    def setUp(self):
        AgentTestCase.setUp(self)
        budget = importlib.import_module(self.module.__name__ + ".writer_budget")
        budget.WRITER_SHARE = 0.05  # long pauses: the probes are parked most of the time
        budget.WRITER_BURST = 0.005
        importlib.import_module(self.module.__name__ + ".probes").PREFERRED_BACKEND = "code_swap"

    def test_flooding_clients_are_parked_and_every_call_is_accounted_for(self):
        from tests import probe_targets

        original = probe_targets.add.__code__
        clients = []
        for _ in range(3):
            client = self.client()
            stream_id = client.request("watch", {"pattern": "tests.probe_targets.add"})
            response = client.recv()
            self.assertTrue(response["ok"], response)
            clients.append((client, stream_id))
        streams = [s for c in self.agent.connections() for s in c.streams()]
        calls = 0
        deadline = time.perf_counter() + 1.0
        add = probe_targets.add
        while time.perf_counter() < deadline:
            for value in range(1000):
                add(value)
            calls += 1000
        for client, stream_id in clients:
            client.cancel(stream_id)
        for index, (client, stream_id) in enumerate(clients):
            messages = self.read_until_end(client, stream_id)
            observations = [m for m in messages if m["type"] == "observation"]
            end = messages[-1]
            self.assertEqual(len(observations) + end["dropped"], calls, (index, end))
            seqs = [m["seq"] for m in observations]
            self.assertEqual(seqs, sorted(set(seqs)))
            self.assertLess(seqs[-1] if seqs else 0, calls)
        # The probes were parked for part of the flood: those calls never
        # reached them (and are among the drops counted above).
        parked = [stream.parked_calls for stream in streams]
        self.assertGreater(sum(parked), 0, (calls, parked))
        self.assertIs(probe_targets.add.__code__, original)
