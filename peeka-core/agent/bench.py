"""Measures the agent core's costs with the interpreter that runs this script.

    python bench.py           # human-readable table
    python bench.py --json    # one JSON object
    python bench.py --probes [--backend monitoring|code_swap]  # only the probe section
    python bench.py --delivery  # only what a flooded client receives

What it measures (timings are per call, best of several repeats, 11 for
the probes; this kind of machine is noisy, so compare numbers from one run
side by side):

- ``probes``: a trivial function (``return x``) unwatched, behind a
  minimal hand-written ``perf_counter`` timing wrapper, and under
  ``watch`` requested by a client process over the socket: without a
  condition (every call observed and sent), with a false condition (the
  probe alone), with a true condition and a large ``-n``, and under
  ``monitor``; each with its ratio to the timing wrapper, and the
  observations delivered to (and dropped for) the draining client; the
  backend is the one ``--backend monitoring|code_swap`` names (default:
  the agent's default, ``sys.monitoring`` on 3.12+);

- ``emit``: ``Stream.emit`` on the hot path while a client process drains
  the socket, next to a call of an empty Python function and a minimal
  timing wrapper around one (what a probe adds to a call, at the least);
- ``capture``: ``Capturer.capture_call`` of a small typical call (3
  arguments: a string, an int, a small dict) and of an object;
- ``condition``: ``Condition.test`` for ``cost > 100``,
  ``params[0] == 'x'`` and ``target.user.id == 7``;
- ``throughput``: observations per second delivered to a client reading
  raw frames in another process (protocol 1.1: batches), the producer
  emitting flat out for two seconds (drops counted by the agent and
  reported in ``stream_end``; ``accounted`` checks that delivered plus
  dropped is what was produced); ``throughput_budget_50``, the same with
  the stream asking for half a CPU (``send_budget`` 50);
- ``delivery``: ``watch`` rows per second delivered from ``hot`` called
  flat out, at the default writer budget and with ``send_budget`` 50,
  with the writer thread's CPU share and the loop's speed relative to the
  same loop unwatched;
- ``round_trip``: ``ping`` request to response, from another process;
- ``idle``: the throughput of a CPU-bound loop in a target process with an
  idle attached agent and a connected client, relative to the same loop
  without an agent (alternated runs; noisy on a shared machine), and the
  exact measure behind it: the CPU ticks and context switches of the
  agent's threads while the loop runs (both 0 when nothing wakes up).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ beside the embedded sources
sys.path.insert(0, HERE)

from peeka_agent.capture import Capturer  # noqa: E402
from peeka_agent.expr import compile_condition, make_context  # noqa: E402
from peeka_agent.server import Agent  # noqa: E402

# A client in another process: handshake, then either drain a stream or ping.
CLIENT = r"""
import json, socket, sys, time
path, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect(path)
reader = sock.makefile("rb", buffering=1 << 20)
def send(message):
    data = json.dumps(message).encode()
    sock.sendall(len(data).to_bytes(4, "big") + data)
def frame():
    header = reader.read(4)
    return reader.read(int.from_bytes(header, "big"))
send({"type": "hello", "protocol": {"major": 1, "minor": 1}, "client": "bench"})
frame()
if mode == "ping":
    times = []
    for i in range(count):
        started = time.perf_counter()
        send({"type": "request", "id": i + 1, "command": "ping"})
        frame()
        times.append(time.perf_counter() - started)
    times.sort()
    print(json.dumps({"mean_us": sum(times) / len(times) * 1e6,
                      "p50_us": times[len(times) // 2] * 1e6,
                      "p99_us": times[int(len(times) * 0.99)] * 1e6}))
elif mode == "probe":
    command, params = sys.argv[4], json.loads(sys.argv[5])
    send({"type": "request", "id": 1, "command": command, "params": params})
    response = json.loads(frame())
    assert response.get("ok"), response
    print("ready", flush=True)
    observations = 0
    while True:
        payload = frame()
        if payload.startswith(b'{"type":"observation",'):
            observations += 1
            continue
        message = json.loads(payload)
        if message["type"] == "observations":
            observations += len(message["data"])
        elif message["type"] == "stream_end":
            print(json.dumps({"delivered": observations, "dropped": message["dropped"],
                              "reason": message["reason"]}))
            break
else:
    send({"type": "request", "id": 1, "command": "bench.stream"})
    frame()
    print("ready", flush=True)
    observations = 0
    first = last = None
    while True:
        payload = frame()
        if payload.startswith(b'{"type":"observation",'):
            observations += 1
            last = time.perf_counter()
            if first is None:
                first = last
            continue
        message = json.loads(payload)
        if message["type"] == "observations":
            observations += len(message["data"])
            last = time.perf_counter()
            if first is None:
                first = last
        elif message["type"] == "stream_end":
            print(json.dumps({"delivered": observations, "dropped": message["dropped"],
                              "seconds": (last - first) if first else 0.0}))
            break
"""

# A CPU-bound target: counts loop iterations per period, optionally attached;
# then reports the CPU ticks and context switches of the agent's threads.
TARGET = r"""
import json, os, sys, threading, time
here, directory, attach = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
sys.dont_write_bytecode = True
sys.path.insert(0, here)
if attach:
    from peeka_agent import start
    details = start(directory, "idle")
    print(json.dumps(details), flush=True)
    sys.stdin.readline()  # the client is connected
def agent_counters():
    ticks = switches = 0
    for thread in threading.enumerate():
        if thread.name.startswith("peeka-") and getattr(thread, "native_id", None):
            base = "/proc/self/task/%d/" % thread.native_id
            try:
                with open(base + "stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                with open(base + "status") as handle:
                    switches += sum(int(line.split()[1]) for line in handle
                                    if "ctxt_switches" in line)
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
    return ticks, switches
time.sleep(0.2)  # let the handshake's last wake-ups settle
before = agent_counters()
deadline = time.perf_counter() + float(sys.argv[4])
count = 0
while time.perf_counter() < deadline:
    for _ in range(10000):
        count += 1
after = agent_counters()
print(json.dumps({"iterations": count, "agent_ticks": after[0] - before[0],
                  "agent_switches": after[1] - before[1]}), flush=True)
"""


def best_ns(statement, namespace, number, repeat=7):
    """Best per-call time of ``statement`` in nanoseconds."""
    return (
        min(timeit.repeat(statement, globals=namespace, number=number, repeat=repeat))
        / number
        * 1e9
    )


class StreamFixture(object):
    """An in-process agent with one stream, drained by a client process."""

    def __init__(self, queue_limit=None, share=None):
        self.share = share
        self.directory = tempfile.mkdtemp(prefix="peeka-bench-")
        os.chmod(self.directory, 0o700)
        options = {} if queue_limit is None else {"queue_limit": queue_limit}
        self.agent = Agent(self.directory, "bench", **options)
        self.opened = threading.Event()
        self.stream = None
        self.agent.register_command("bench.stream", self._open)
        self.agent.start()
        self.client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, self.agent.socket_path, "drain", "0"],
            stdout=subprocess.PIPE,
            universal_newlines=True,
        )
        self.client.stdout.readline()  # "ready"
        self.opened.wait(10)

    def _open(self, ctx):
        self.stream = ctx.open_stream()
        if self.share is not None:
            self.stream.ask_share(self.share)
        self.opened.set()

    def finish(self):
        self.stream.end("cancelled")
        result = json.loads(self.client.stdout.readline())
        self.client.wait(10)
        self.client.stdout.close()
        self.agent.detach()
        return result


def bench_emit():
    fixture = StreamFixture()
    data = {"func_name": "app.f", "params": [1, "a"], "cost": 0.01}
    emit = fixture.stream.emit

    def empty(value):
        return value

    perf_counter = time.perf_counter

    def wrapper(value):
        started = perf_counter()
        result = empty(value)
        perf_counter() - started
        return result

    namespace = {"emit": emit, "data": data, "empty": empty, "wrapper": wrapper}
    number = 200000
    results = {
        "empty_call_ns": best_ns("empty(data)", namespace, number),
        "timing_wrapper_ns": best_ns("wrapper(data)", namespace, number),
        "emit_ns": best_ns("emit(data)", namespace, number),
        "emit_method_ns": best_ns(
            "stream.emit(data)", dict(namespace, stream=fixture.stream), number
        ),
    }
    delivery = fixture.finish()
    results["emitted"] = number * 7 * 2
    results.update(delivery)
    return results


def hot(x):
    """The trivial hot function the probe benchmark calls (``__main__.hot``)."""
    return x


def bench_probes(number=100000, repeat=11, probe_backend=None):
    """Per-call cost of a trivial function: bare, hand-timed, and under ``watch``.

    The probes are requested by a client process over the agent's socket
    (as the CLI would) and their observations drained by it, so the
    watched rows include everything the target pays: the probe, the
    capture done on the target's thread and the share of the GIL the
    connection's writer thread takes to render and send. The
    ``condition False`` row is the probe alone (nothing is emitted).
    """
    import peeka_agent.monitor_command  # noqa: F401 - registers the probe commands
    import peeka_agent.reset_command  # noqa: F401
    import peeka_agent.stack_command  # noqa: F401
    import peeka_agent.watch_command  # noqa: F401

    directory = tempfile.mkdtemp(prefix="peeka-bench-")
    os.chmod(directory, 0o700)
    agent = Agent(directory, "probes")
    agent.start()
    perf_counter = time.perf_counter
    inner = hot

    def timed(x):
        started = perf_counter()
        result = inner(x)
        perf_counter() - started
        return result

    namespace = {"hot": hot, "timed": timed}
    pattern = "%s.hot" % __name__
    results = {
        "unwatched_ns": best_ns("hot(1)", namespace, number, repeat),
        "timing_wrapper_ns": best_ns("timed(1)", namespace, number, repeat),
    }
    cases = [
        ("watch_no_condition", {}),
        ("watch_condition_false", {"condition": "params[0] == 2"}),
        ("watch_condition_true_n", {"condition": "params[0] == 1", "times": 10**9}),
        ("monitor", None),
    ]
    for name, params in cases:
        if params is None:
            command, params = "monitor", {"pattern": pattern, "interval": 3600}
        else:
            command, params = "watch", dict(params, pattern=pattern)
        if probe_backend is not None:
            params["backend"] = probe_backend
        client = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLIENT,
                agent.socket_path,
                "probe",
                "0",
                command,
                json.dumps(params),
            ],
            stdout=subprocess.PIPE,
            universal_newlines=True,
        )
        client.stdout.readline()  # "ready"
        results[name + "_ns"] = best_ns("hot(1)", namespace, number, repeat)
        for stream in agent.streams():
            stream.end("cancelled")
        delivery = json.loads(client.stdout.readline())
        client.wait(10)
        client.stdout.close()
        if name.startswith("watch") and name != "watch_condition_false":
            results[name + "_delivered"] = delivery["delivered"]
            results[name + "_dropped"] = delivery["dropped"]
    from peeka_agent.probes import backend

    results["backend"] = backend(probe_backend).name
    agent.detach()
    base = results["timing_wrapper_ns"]
    for key in list(results):
        if key.endswith("_ns") and key != "timing_wrapper_ns":
            results[key[:-3] + "_vs_wrapper"] = results[key] / base
    results["calls_per_case"] = number * repeat
    return results


def bench_capture():
    capturer = Capturer()

    class User(object):
        def __init__(self):
            self.id = 7
            self.name = "ada"
            self.email = "ada@example.org"

    namespace = {
        "capturer": capturer,
        "args": ("order-17", 3, {"express": True, "note": "ring twice"}),
        "kwargs": {},
        "user": User(),
    }
    return {
        "capture_call_3_args_ns": best_ns("capturer.capture_call(args, kwargs)", namespace, 50000),
        "capture_object_ns": best_ns("capturer.capture(user)", namespace, 50000),
        "capture_int_ns": best_ns("capturer.capture(3)", namespace, 200000),
    }


def bench_conditions():
    class User(object):
        def __init__(self):
            self.id = 7

    class Target(object):
        def __init__(self):
            self.user = User()

    context = make_context(["x", 2], {}, Target(), None, None, 120.5)
    results = {}
    for source in ("cost > 100", "params[0] == 'x'", "target.user.id == 7"):
        test = compile_condition(source).test
        results[source] = best_ns("test(context)", {"test": test, "context": context}, 200000)
    return results


def bench_throughput(seconds=2.0, share=None):
    fixture = StreamFixture(share=share)
    emit = fixture.stream.emit
    data = {"func_name": "app.f", "params": [1, "a"], "cost": 0.01, "thread_name": "MainThread"}
    produced = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        for _ in range(1000):
            emit(data)
        produced += 1000
    elapsed = time.perf_counter() - started
    result = fixture.finish()
    return {
        "produced_per_s": produced / elapsed,
        "delivered": result["delivered"],
        "dropped": result["dropped"],
        "delivered_per_s": result["delivered"] / elapsed,
        "accounted": result["delivered"] + result["dropped"] == produced,
    }


def writer_cpu_seconds():
    """CPU seconds used so far by each ``peeka-send-*`` thread, by native id (Linux), else None."""
    used = {}
    for thread in threading.enumerate():
        native = getattr(thread, "native_id", None)
        if not thread.name.startswith("peeka-send") or native is None:
            continue
        try:
            with open("/proc/self/task/%d/stat" % native) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        used[native] = (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    return used if used else None


def bench_delivery(seconds=2.0, budgets=(None, 50)):
    """``watch`` rows delivered per second from a function called flat out.

    For each writer budget (None: the default 10 %; else ``send_budget``),
    a client process watches ``hot`` while this thread calls it in a loop
    for ``seconds``: the rows the client received per second, the drops
    the agent counted, the writer thread's CPU share, and the loop's calls
    per second relative to the same loop unwatched (what the flood costs
    the target, probe and writer together).
    """
    import peeka_agent.watch_command  # noqa: F401 - registers watch

    def loop():
        calls = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for index in range(1000):
                hot(index)
            calls += 1000
        return calls / seconds

    directory = tempfile.mkdtemp(prefix="peeka-bench-")
    os.chmod(directory, 0o700)
    agent = Agent(directory, "delivery")
    agent.start()
    results = {"seconds": seconds, "unwatched_calls_per_s": loop()}
    for budget in budgets:
        params = {"pattern": "%s.hot" % __name__}
        if budget is not None:
            params["send_budget"] = budget
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, agent.socket_path, "probe", "0", "watch",
             json.dumps(params)],
            stdout=subprocess.PIPE,
            universal_newlines=True,
        )
        client.stdout.readline()  # "ready"
        cpu_before = writer_cpu_seconds()
        started = time.perf_counter()
        calls = loop()
        elapsed = time.perf_counter() - started
        cpu_after = writer_cpu_seconds()
        for stream in agent.streams():
            stream.end("cancelled")
        delivery = json.loads(client.stdout.readline())
        client.wait(10)
        client.stdout.close()
        name = "default" if budget is None else "budget_%d" % budget
        results[name + "_rows_per_s"] = delivery["delivered"] / elapsed
        results[name + "_dropped"] = delivery["dropped"]
        results[name + "_calls_relative"] = calls / results["unwatched_calls_per_s"]
        if cpu_before is not None and cpu_after is not None:
            # The writer serving this client ran throughout: it is in both.
            spent = sum(cpu_after[n] - cpu_before.get(n, 0.0) for n in cpu_after if n in cpu_before)
            results[name + "_writer_cpu_share"] = spent / elapsed
    agent.detach()
    return results


def bench_round_trip():
    directory = tempfile.mkdtemp(prefix="peeka-bench-")
    os.chmod(directory, 0o700)
    agent = Agent(directory, "ping")
    agent.start()
    output = subprocess.check_output(
        [sys.executable, "-c", CLIENT, agent.socket_path, "ping", "2000"], universal_newlines=True
    )
    agent.detach()
    return json.loads(output)


def run_target(attach, seconds):
    """One run of the CPU-bound target; returns its report."""
    directory = tempfile.mkdtemp(prefix="peeka-bench-")
    os.chmod(directory, 0o700)
    process = subprocess.Popen(
        [sys.executable, "-c", TARGET, HERE, directory, "1" if attach else "0", str(seconds)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        universal_newlines=True,
    )
    client = None
    if attach:
        details = json.loads(process.stdout.readline())
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(details["socket"])
        hello = json.dumps(
            {"type": "hello", "protocol": {"major": 1, "minor": 1}, "client": "bench"}
        ).encode()
        client.sendall(len(hello).to_bytes(4, "big") + hello)
        client.recv(65536)
        process.stdin.write("go\n")
        process.stdin.flush()
    result = json.loads(process.stdout.readline())
    process.wait(30)
    process.stdin.close()
    process.stdout.close()
    if client is not None:
        client.close()
    else:
        os.rmdir(directory)
    return result


def bench_idle(rounds=5, seconds=1.5):
    """Alternated bare/attached runs; the median of the per-pair ratios."""
    ratios = []
    ticks = 0
    switches = 0
    for _ in range(rounds):
        bare = run_target(False, seconds)
        attached = run_target(True, seconds)
        ratios.append(attached["iterations"] / float(bare["iterations"]))
        ticks += attached["agent_ticks"]
        switches += attached["agent_switches"]
    ratios.sort()
    return {
        "attached_relative_median": ratios[len(ratios) // 2],
        "attached_relative_min": ratios[0],
        "attached_relative_max": ratios[-1],
        "agent_cpu_ticks_while_idle": ticks,
        "agent_context_switches_while_idle": switches,
    }


def main(argv):
    probe_backend = None
    if "--backend" in argv:
        probe_backend = argv[argv.index("--backend") + 1]
    if "--delivery" in argv:
        results = {
            "python": sys.version.split(" ", 1)[0],
            "delivery": bench_delivery(),
            "throughput": bench_throughput(),
            "throughput_budget_50": bench_throughput(share=0.5),
        }
    elif "--probes" in argv:
        results = {
            "python": sys.version.split(" ", 1)[0],
            "probes": bench_probes(probe_backend=probe_backend),
        }
    else:
        results = {
            "python": sys.version.split(" ", 1)[0],
            "probes": bench_probes(),
            "emit": bench_emit(),
            "capture": bench_capture(),
            "condition": bench_conditions(),
            "throughput": bench_throughput(),
            "throughput_budget_50": bench_throughput(share=0.5),
            "delivery": bench_delivery(),
            "round_trip": bench_round_trip(),
            "idle": bench_idle(),
        }
    if "--json" in argv:
        print(json.dumps(results, indent=2, sort_keys=True))
        return 0
    print("Python %s" % results["python"])
    sections = (
        "probes",
        "emit",
        "capture",
        "condition",
        "throughput",
        "throughput_budget_50",
        "delivery",
        "round_trip",
        "idle",
    )
    for section in sections:
        if section not in results:
            continue
        print("%s:" % section)
        for key, value in sorted(results[section].items()):
            if isinstance(value, float):
                value = "%.3f" % value if value < 10 else "%.0f" % value
            print("  %-32s %s" % (key, value))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
