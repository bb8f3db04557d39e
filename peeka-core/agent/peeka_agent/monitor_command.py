"""``monitor``: per-interval call statistics of functions.

params: ``{"pattern", "interval", "cycles", "condition"}``; ``interval``
in seconds (default 60, at least 0.1), ``cycles`` ends the stream with
``count_reached`` after that many reports. One observation per function
per cycle (see docs/commands.md for its fields); a cycle without calls
reports zeros.

On the target's threads a call costs one ``list.append`` of its duration
(no lock; see :class:`FunctionStats`); the arguments are not even read
unless the condition needs them. The samples are folded into a
:class:`~peeka_agent.latency_histogram.LatencyHistogram` (counts, sum, min,
max, log-scale buckets) and the histograms swapped for fresh ones at each
cycle by a timer thread (``peeka-work-monitor-<stream>``) that reports and
sleeps until the next cycle; it wakes up at once when the stream ends for
any reason (cancel, reset, disconnect, detach: detach ends every stream
first), so it never outlives its stream by more than a report.
"""

import threading
import time

from .commands import register_command
from .latency_histogram import LatencyHistogram
from .probes import Handler, InlineExit, compile_optional_condition, install_probe

DEFAULT_INTERVAL = 60.0
MIN_INTERVAL = 0.1

_NEEDS_ARGS = frozenset(("params", "kwargs", "target"))


def handle_monitor(ctx):
    """``monitor``: installs the probe, starts the timer, answers with the stream."""
    ctx.check_params(("pattern", "interval", "cycles", "condition", "pending", "backend"))
    pattern = ctx.param("pattern", str, required=True)
    interval = float(
        ctx.param("interval", float, default=DEFAULT_INTERVAL, minimum=MIN_INTERVAL, maximum=86400)
    )
    cycles = ctx.param("cycles", int, minimum=1)
    condition = compile_optional_condition(ctx)
    lock = threading.RLock()
    functions = []

    def make_handler(probe, target):
        stats = FunctionStats(target.name, lock)
        functions.append(stats)
        return make_monitor_handler(probe, target, stats, condition)

    probe, data = install_probe(
        ctx, pattern, make_handler, labels={"interval": interval, "cycles": cycles}
    )
    stream = probe.stream
    wake = threading.Event()
    stream.on_close(wake.set)
    ctx.agent.spawn(
        "monitor-%d" % stream.id, run_timer, ctx.agent, stream, functions, interval, cycles, wake
    )
    data["interval"] = interval
    return data


#: Samples a function keeps before the calling thread folds them itself.
FOLD_AT = 65536


class FunctionStats(object):
    """The samples and the current histogram of one monitored function.

    The hot path only appends to ``samples`` (``list.append`` is atomic):
    a cost, or ``-1.0 - cost`` for a failed call. :meth:`fold` moves the
    samples into the histogram under the lock; it removes exactly the
    samples it read (``del samples[:n]``), so a sample appended meanwhile
    is kept for the next fold, never lost. The timer folds at each cycle;
    a calling thread folds when :data:`FOLD_AT` samples are waiting, which
    bounds the memory.
    """

    __slots__ = ("name", "samples", "histogram", "lock")

    def __init__(self, name, lock):
        self.name = name
        self.samples = []
        self.histogram = LatencyHistogram()
        self.lock = lock

    def fold(self):
        with self.lock:
            samples = self.samples
            count = len(samples)
            batch = samples[:count]
            del samples[:count]
            add = self.histogram.add
            for value in batch:
                if value >= 0.0:
                    add(value, True)
                else:
                    add(-1.0 - value, False)

    def take(self):
        """Folds, then returns the histogram of the cycle and starts a new one."""
        with self.lock:
            self.fold()
            histogram = self.histogram
            self.histogram = LatencyHistogram()
            return histogram


class InlineSample(object):
    """The monitor's exit handler, written into a code-swapped function's wrapper.

    The same steps as ``leave`` in :func:`make_monitor_handler`: append the
    duration (``-1.0 - duration`` for a failed call), and fold when
    :data:`FOLD_AT` samples wait. See :class:`~peeka_agent.probes.InlineExit`.
    """

    ROLES = ("append", "length", "fold")

    def __init__(self, stats):
        # Bound methods: hashable constants (a code object is hashed by
        # its constants), and no global or builtin to read.
        self.constants = {
            "append": stats.samples.append,
            "length": stats.samples.__len__,
            "fold": stats.fold,
        }

    def lines(self, end, local, load, temporary):
        append, length, fold = (local(role) for role in self.ROLES)
        if end.failed:
            value = "%s - %s - 1.0" % (end.t0, end.t1)
        else:
            value = "%s - %s" % (end.t1, end.t0)
        return [
            load("append"),
            "%s(%s)" % (append, value),
            load("length"),
            "if %s() >= %d:" % (length, FOLD_AT),
            "    " + load("fold"),
            "    %s()" % fold,
        ]


def _no_report():
    """monitor sends no ``condition_errors`` events: a failing condition is false, as in its handler."""


def make_monitor_handler(probe, target, stats, condition):
    """The :class:`~peeka_agent.probes.Handler` of one monitored function."""
    test = condition.test if condition is not None else None
    needs_args = condition is not None and bool(condition.uses & _NEEDS_ARGS)
    is_method = target.is_method
    fail = probe.fail
    append = stats.samples.append
    samples = stats.samples
    fold = stats.fold

    if test is None:

        def leave(record):
            try:
                if record[6] is None:
                    append(record[4] - record[3])
                else:
                    append(record[3] - record[4] - 1.0)
                if len(samples) >= FOLD_AT:
                    fold()
            except BaseException as error:
                fail(error)

    else:

        def leave(record):
            try:
                args, kwargs, _ident, t0, t1, result, exc = record
                self_value = None
                params = args or ()
                if is_method and args:
                    self_value, params = args[0], args[1:]
                context = (params, kwargs or {}, self_value, result, exc, (t1 - t0) * 1000.0)
                if not test(context):
                    return
                append(t1 - t0 if exc is None else t0 - t1 - 1.0)
                if len(samples) >= FOLD_AT:
                    fold()
            except BaseException as error:
                fail(error)

    inline = InlineExit(
        InlineSample(stats), condition, True, True, is_method, _no_report, fail
    )
    return Handler(probe, target, exit=leave, needs_args=needs_args, inline=inline)


def report(name, cycle, histogram, when):
    """The observation of one function for one cycle."""
    count = histogram.count
    ms = 1000.0

    def rounded(seconds):
        return round(seconds * ms, 6)

    return {
        "func_name": name,
        "cycle": cycle,
        "timestamp": round(when, 3),
        "total": count,
        "success": count - histogram.failures,
        "fail": histogram.failures,
        "fail_rate": round(histogram.failures / float(count), 6) if count else 0.0,
        "rt_avg": rounded(histogram.total / count) if count else 0.0,
        "rt_min": rounded(histogram.minimum) if count else 0.0,
        "rt_max": rounded(histogram.maximum) if count else 0.0,
        "rt_p50": rounded(histogram.percentile(0.50)),
        "rt_p95": rounded(histogram.percentile(0.95)),
        "rt_p99": rounded(histogram.percentile(0.99)),
    }


def run_timer(agent, stream, functions, interval, cycles, wake):
    """The timer thread: one report per function per cycle until the stream ends."""
    labels = stream.labels
    cycle = 0
    deadline = time.monotonic() + interval
    while not stream.closed and not agent.stopping.is_set():
        if wake.wait(max(0.0, deadline - time.monotonic())):
            return
        deadline += interval
        cycle += 1
        swapped = [(stats.name, stats.take()) for stats in functions]
        now = time.time()
        calls = 0
        for name, histogram in swapped:
            calls += histogram.count
            if stream.emit(report(name, cycle, histogram, now)):
                labels["observations"] = labels.get("observations", 0) + 1
        labels["calls"] = labels.get("calls", 0) + calls
        labels["cycle"] = cycle
        if cycles is not None and cycle >= cycles:
            stream.end("count_reached")
            return


register_command("monitor", handle_monitor)
