"""``top``: what every thread of the target executes, by sampling.

params: ``{"interval", "cycles", "sort", "limit", "report_interval",
"stacks", "idle", "include_agent"}`` (see docs/commands.md). A stream: one
snapshot per ``report_interval`` (default 1 s); ``cycles`` ends it with
``count_reached`` after that many.

How it samples
--------------
An agent thread (``peeka-work-top-<stream>``) wakes every ``interval``
seconds (default 0.02), takes ``sys._current_frames()`` and walks each
thread's frames outwards (``f_back``), keeping for each frame only its code
object: nothing of the target runs, nothing is allocated per frame beyond
the tuple of the stack. The agent's threads are left out. Per tick the work
is bounded: at most :data:`MAX_THREADS` threads and :data:`MAX_DEPTH`
frames each (deeper stacks keep their innermost frames).

A *sample* is one thread's stack at one tick. It is *active* when its
thread used at least :data:`ACTIVE_SHARE` of a CPU over the last
:data:`CPU_REFRESH` seconds (``/proc/self/task/<id>/schedstat``, read at
that pace through descriptors kept open while the stream lives, at most
:data:`MAX_OPEN_FILES`); a waiting thread's
samples are *idle* and counted apart unless ``idle`` is set (where ``/proc``
is not readable every sample is active). Only active samples enter the
statistics, so percentages describe where CPU time goes.

Statistics (cumulative since the stream started): for each function (code
object), ``own_count`` (samples whose innermost frame is in it) and
``total_count`` (samples with it anywhere on the stack, counted once per
sample). ``own_pct`` and ``total_pct`` are shares of ``total_samples`` (the
active samples), so the ``own_pct`` of all functions add up to 100;
``own_time``/``total_time`` are counts times the mean tick period.

With ``stacks``, each snapshot also carries the stacks sampled since the
previous one (``[["mod.f;mod.g;mod.h", count]...]``, outermost first, as
in the collapsed-stack format of flame graphs); beyond
:data:`MAX_STACKS_PER_REPORT` distinct stacks per snapshot the rest is
counted in ``truncated_stacks``. Memory is bounded by :data:`MAX_FUNCTIONS`
functions (later ones are folded into ``[other]``).
"""

import os
import sys
import threading
import time

from . import agent_threads
from .commands import register_command

PARAMS = (
    "interval",
    "cycles",
    "sort",
    "limit",
    "report_interval",
    "stacks",
    "idle",
    "include_agent",
)
SORTS = ("own", "total", "own-time", "total-time")
DEFAULT_INTERVAL = 0.02
DEFAULT_REPORT = 1.0
DEFAULT_LIMIT = 50

#: Threads sampled per tick, frames kept per stack.
MAX_THREADS = 256
MAX_DEPTH = 128
#: Functions remembered (later ones become ``[other]``).
MAX_FUNCTIONS = 20000
#: Distinct stacks sent in one snapshot.
MAX_STACKS_PER_REPORT = 5000
#: /proc descriptors kept open while sampling.
MAX_OPEN_FILES = 64
#: Share of a CPU a thread must have used since its CPU time was last read
#: for its samples to count as active.
ACTIVE_SHARE = 0.1
#: How often each thread's CPU time is read (seconds). Reading releases the
#: GIL, which a CPU-bound thread then takes for up to a switch interval:
#: reading at every tick would cost the target one more GIL hand-off per
#: tick, so the activity of a thread is refreshed at this pace instead.
CPU_REFRESH = 0.1

_OTHER = -1
_TRUNCATED = -2


def handle_top(ctx):
    """``top``: opens the stream and starts the sampler."""
    ctx.check_params(PARAMS)
    interval = float(
        ctx.param("interval", float, default=DEFAULT_INTERVAL, minimum=0.001, maximum=10)
    )
    cycles = ctx.param("cycles", int, minimum=1)
    sort = ctx.param("sort", str, default="own", choices=SORTS)
    limit = ctx.param("limit", int, default=DEFAULT_LIMIT, minimum=1, maximum=1000)
    report = float(
        ctx.param("report_interval", float, default=DEFAULT_REPORT, minimum=0.1, maximum=3600)
    )
    stacks = ctx.param("stacks", bool, default=False)
    idle = ctx.param("idle", bool, default=False)
    include_agent = ctx.param("include_agent", bool, default=False)
    if report < interval:
        report = interval
    stream = ctx.open_stream()
    stream.labels.update({"interval": interval, "report_interval": report, "cycles": cycles})
    sampler = Sampler(interval, sort, limit, stacks, idle, include_agent)
    wake = threading.Event()
    stream.on_close(wake.set)
    stream.on_close(sampler.close)
    ctx.agent.spawn("top-%d" % stream.id, run, ctx.agent, stream, sampler, report, cycles, wake)
    return {
        "interval": interval,
        "report_interval": report,
        "cycles": cycles,
        "sort": sort,
        "limit": limit,
        "stacks": stacks,
        "idle": idle,
    }


def run(agent, stream, sampler, report, cycles, wake):
    """The sampler thread: ticks every ``interval``, reports every ``report``."""
    interval = sampler.interval
    labels = stream.labels
    now = time.monotonic()
    next_tick = now
    next_report = now + report
    cycle = 0
    try:
        while not stream.closed and not agent.stopping.is_set():
            now = time.monotonic()
            if now >= next_tick:
                sampler.tick(now)
                next_tick += interval
                if next_tick < now:  # fell behind (the GIL was busy): do not catch up
                    next_tick = now + interval
            if now >= next_report:
                cycle += 1
                next_report += report
                if next_report < now:
                    next_report = now + report
                if stream.emit(sampler.snapshot(cycle)):
                    labels["observations"] = labels.get("observations", 0) + 1
                labels["cycle"] = cycle
                if cycles is not None and cycle >= cycles:
                    stream.end("count_reached")
                    return
            wait = min(next_tick, next_report) - time.monotonic()
            if wait > 0 and wake.wait(wait):
                return
    finally:
        sampler.close()


class Sampler(object):
    """The counts of one ``top`` stream (touched only by its sampler thread)."""

    def __init__(self, interval, sort, limit, stacks, idle, include_agent):
        self.interval = interval
        self.sort = sort
        self.limit = limit
        self.keep_stacks = stacks
        self.idle = idle
        self.include_agent = include_agent
        self.started = time.monotonic()
        self.ticks = 0
        self.samples = 0
        self.idle_samples = 0
        self.threads_seen = set()
        self.own = {}
        self.total = {}
        # id(code) -> (code, name, filename, line); the code is kept so its id stays unique.
        self.functions = {}
        self.stacks = {}
        self.truncated = 0
        self.pending_truncated = 0
        self._files = {}  # native id -> fd of its schedstat
        self._cpu = {}  # native id -> (monotonic, nanoseconds, active)
        self._natives = {}
        self._natives_at = -1.0
        self._closed = False
        self._lock = threading.Lock()
        self._proc = os.path.isdir("/proc/self/task")

    # -- one tick ---------------------------------------------------------------

    def tick(self, now):
        frames = sys._current_frames()
        me = threading.get_ident()
        agents = agent_threads._idents
        natives = self._native_ids(now)
        include_agent = self.include_agent
        own = self.own
        total = self.total
        functions = self.functions
        keep_stacks = self.keep_stacks
        stacks = self.stacks
        sampled = 0
        self.ticks += 1
        for ident, frame in frames.items():
            if ident == me:
                continue
            if not include_agent and (ident in agents or natives.get(ident, (None, False))[1]):
                continue
            sampled += 1
            if sampled > MAX_THREADS:
                break
            if not self.idle and not self._active(natives.get(ident, (None, False))[0], now):
                self.idle_samples += 1
                continue
            keys = []
            while frame is not None and len(keys) < MAX_DEPTH:
                code = frame.f_code
                key = id(code)
                if key not in functions:
                    key = self._remember(code, frame)
                keys.append(key)
                frame = frame.f_back
            if not keys:
                continue
            self.samples += 1
            self.threads_seen.add(ident)
            leaf = keys[0]
            own[leaf] = own.get(leaf, 0) + 1
            for key in set(keys):
                total[key] = total.get(key, 0) + 1
            if keep_stacks:
                stack = tuple(keys)
                if stack in stacks:
                    stacks[stack] += 1
                elif len(stacks) < MAX_STACKS_PER_REPORT:
                    stacks[stack] = 1
                else:
                    self.pending_truncated += 1
        del frames

    def _remember(self, code, frame):
        functions = self.functions
        if len(functions) >= MAX_FUNCTIONS:
            if _OTHER not in functions:
                functions[_OTHER] = (None, "[other]", None, None)
            return _OTHER
        module = None
        try:
            globals_ = frame.f_globals
            if type(globals_) is dict:
                module = globals_.get("__name__")
        except Exception:
            module = None
        qualname = getattr(code, "co_qualname", None) or code.co_name
        name = "%s.%s" % (module, qualname) if isinstance(module, str) else qualname
        name = name.replace(";", ":")  # ";" separates frames in collapsed stacks
        functions[id(code)] = (code, name, code.co_filename, code.co_firstlineno)
        return id(code)

    def _native_ids(self, now):
        """ident -> (native id, agent) for live threads, refreshed at most every 0.5 s."""
        if now - self._natives_at < 0.5:
            return self._natives
        self._natives_at = now
        agents = agent_threads.agent_thread_idents()
        natives = {}
        for thread in threading.enumerate():
            ident = thread.ident
            if ident is not None:
                natives[ident] = (getattr(thread, "native_id", None), ident in agents)
        self._natives = natives
        live = set(native for native, _agent in natives.values())
        stale = [native for native in self._files if native not in live]
        for native in stale:
            self._close_file(native)
        return natives

    def _active(self, native, now):
        """Whether thread ``native`` used at least ACTIVE_SHARE of a CPU lately.

        Its CPU time is read at most every CPU_REFRESH seconds; in between,
        the last verdict stands.
        """
        if native is None or not self._proc:
            return True
        previous = self._cpu.get(native)
        if previous is not None and previous[2] is not None and now - previous[0] < CPU_REFRESH:
            return previous[2]
        nanoseconds = self._read_cpu(native)
        if nanoseconds is None:
            return True
        if previous is None:
            # No history yet: this sample is left out (as idle) and the
            # next tick measures over the time between the two.
            self._cpu[native] = (now, nanoseconds, None)
            return False
        wall = now - previous[0]
        active = wall <= 0 or (nanoseconds - previous[1]) / 1e9 >= ACTIVE_SHARE * wall
        self._cpu[native] = (now, nanoseconds, active)
        return active

    def _read_cpu(self, native):
        with self._lock:
            if self._closed:
                return None
            fd = self._files.get(native)
            if fd is None and len(self._files) < MAX_OPEN_FILES:
                try:
                    fd = os.open("/proc/self/task/%d/schedstat" % native, os.O_RDONLY)
                except OSError:
                    return None
                self._files[native] = fd
        try:
            if fd is not None:
                text = os.pread(fd, 128, 0)
            else:
                with open("/proc/self/task/%d/schedstat" % native, "rb") as handle:
                    text = handle.read(128)
            return int(text.split()[0])
        except (OSError, ValueError, IndexError):
            if fd is not None:
                self._close_file(native)
            return None

    def _close_file(self, native):
        with self._lock:
            fd = self._files.pop(native, None)
        self._cpu.pop(native, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def close(self):
        """Closes the /proc descriptors (idempotent; any thread)."""
        with self._lock:
            self._closed = True
            files, self._files = self._files, {}
        for fd in files.values():
            try:
                os.close(fd)
            except OSError:
                pass

    # -- reports ----------------------------------------------------------------

    def snapshot(self, cycle):
        """The observation of one report: cumulative statistics, and the new stacks."""
        elapsed = time.monotonic() - self.started
        samples = self.samples
        period = elapsed / self.ticks if self.ticks else self.interval
        rows = []
        functions = self.functions
        own = self.own
        for key, count in self.total.items():
            rows.append((own.get(key, 0), count, key))
        if self.sort in ("total", "total-time"):
            rows.sort(key=lambda row: (-row[1], -row[0]))
        else:
            rows.sort(key=lambda row: (-row[0], -row[1]))
        listed = []
        for own_count, total_count, key in rows[: self.limit]:
            _code, name, filename, line = functions[key]
            listed.append(
                {
                    "name": name,
                    "filename": filename,
                    "line": line,
                    "own_count": own_count,
                    "total_count": total_count,
                    "own_pct": _pct(own_count, samples),
                    "total_pct": _pct(total_count, samples),
                    "own_time": round(own_count * period, 4),
                    "total_time": round(total_count * period, 4),
                }
            )
        data = {
            "cycle": cycle,
            "timestamp": round(time.time(), 3),
            "sample_interval": self.interval,
            "elapsed": round(elapsed, 3),
            "ticks": self.ticks,
            "total_samples": samples,
            "idle_samples": self.idle_samples,
            "threads": len(self.threads_seen),
            "function_count": len(self.total),
            "functions": listed,
        }
        if self.keep_stacks:
            collapsed = []
            for stack, count in self.stacks.items():
                names = [functions[key][1] for key in reversed(stack)]
                collapsed.append([";".join(names), count])
            collapsed.sort(key=lambda item: -item[1])
            data["stacks"] = collapsed
            data["truncated_stacks"] = self.pending_truncated
            self.truncated += self.pending_truncated
            self.pending_truncated = 0
            self.stacks = {}
        return data


def _pct(count, samples):
    return round(count * 100.0 / samples, 2) if samples else 0.0


register_command("top", handle_top)
