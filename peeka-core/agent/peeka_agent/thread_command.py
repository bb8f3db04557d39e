"""``thread``: the target's threads, their CPU use and their stacks.

params: ``{"tid", "depth", "top", "interval", "state", "sort_by",
"include_agent"}`` (see docs/commands.md):

- without ``tid`` or ``top``: every thread (``action: "list"``) with name,
  ident (``tid``), native id, daemon flag, state, CPU time and its
  innermost frame;
- ``tid`` (a ``threading`` ident or a native thread id): that thread with
  its stack, innermost frame first, at most ``depth`` frames (default 50)
  (``action: "detail"``); an unknown id fails with ``not_found``;
- ``top`` = N: the N threads that used the most CPU over ``interval``
  milliseconds, busiest first, each with its stack (``action: "busiest"``).

CPU use is measured over ``interval`` (default 200 ms with ``top``, 100 ms
otherwise) from ``/proc/self/task/<native id>/schedstat`` (nanoseconds on
a CPU) read before and after, so the answer comes after that window. The
work runs on an agent thread (``peeka-work-thread-<request>``) which
sleeps on ``agent.stopping``; the connection stays free meanwhile.
Agent threads are left out unless ``include_agent`` (then each entry has
``"agent": true|false``).
"""

import time

from . import thread_info
from .commands import CommandError, register_command
from .wire import ErrorCode

PARAMS = ("tid", "depth", "top", "interval", "state", "sort_by", "include_agent")
SORT_KEYS = ("tid", "name", "state", "cpu")
DEFAULT_DEPTH = 50
MAX_DEPTH = 1000
#: Most threads reported in one answer (the count of the rest is given).
MAX_THREADS = 10000


def handle_thread(ctx):
    """``thread``: validates, then measures on an agent thread and replies from there."""
    ctx.check_params(PARAMS)
    tid = ctx.param("tid", int, minimum=0)
    depth = ctx.param("depth", int, default=DEFAULT_DEPTH, minimum=1, maximum=MAX_DEPTH)
    top = ctx.param("top", int, minimum=1, maximum=MAX_THREADS)
    state = ctx.param("state", str, choices=thread_info.STATES)
    sort_by = ctx.param("sort_by", str, choices=SORT_KEYS)
    include_agent = ctx.param("include_agent", bool, default=False)
    interval_default = 200 if top is not None else 100
    interval = ctx.param("interval", int, default=interval_default, minimum=0, maximum=5000)
    if tid is not None and top is not None:
        raise CommandError(
            ErrorCode.INVALID_PARAMS,
            "`tid` shows one thread and `top` the busiest ones; give only one of them",
        )
    if tid is not None:
        # Fail fast, before any waiting, when the thread does not exist.
        _find(tid, include_agent)
    options = {
        "tid": tid,
        "depth": depth,
        "top": top,
        "state": state,
        "sort_by": sort_by or ("cpu" if top is not None else "tid"),
        "include_agent": include_agent,
        "interval": interval / 1000.0,
    }
    ctx.defer()
    ctx.agent.spawn("thread-%d" % ctx.request_id, _answer, ctx, options)
    return None


def _find(tid, include_agent):
    for view in thread_info.snapshot():
        if view.ident == tid or (view.native_id is not None and view.native_id == tid):
            if view.agent and not include_agent:
                raise CommandError(
                    ErrorCode.NOT_FOUND,
                    "thread %d is one of the agent's own threads; add `include_agent` "
                    "(`--include-agent`) to show it" % tid,
                )
            return view
    raise CommandError(
        ErrorCode.NOT_FOUND,
        "no thread has the id %d (a `threading` ident or a native thread id); "
        "`peeka-cli thread` lists the threads and their ids" % tid,
    )


def _answer(ctx, options):
    try:
        data = measure(ctx.agent, options)
    except CommandError as exc:
        ctx.fail(exc.code, exc.message)
        return
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        import traceback

        message = "thread failed: %s: %s" % (type(exc).__name__, exc)
        ctx.fail(ErrorCode.INTERNAL, message, traceback.format_exc())
        return
    ctx.reply(data)


def measure(agent, options):
    """The answer of ``thread`` (runs on an agent thread; waits ``interval``)."""
    interval = options["interval"]
    include_agent = options["include_agent"]
    before = {}
    started = time.monotonic()
    if interval > 0:
        for view in thread_info.snapshot():
            if view.native_id is not None and (include_agent or not view.agent):
                before[view.native_id] = thread_info.run_nanoseconds(view.native_id)
        if agent.stopping.wait(interval):
            raise CommandError(ErrorCode.SHUTTING_DOWN, "the agent is detaching")
    elapsed = max(time.monotonic() - started, 1e-9)
    views = thread_info.snapshot()
    hidden = sum(1 for view in views if view.agent and not include_agent)
    if not include_agent:
        views = [view for view in views if not view.agent]
    if options["tid"] is not None:
        view = _find(options["tid"], include_agent)
        entry = _entry(view, before, elapsed, interval, include_agent)
        entry["stack"] = thread_info.frames_of(view.frame, options["depth"])
        return {"action": "detail", "thread": entry, "interval_ms": _ms(interval)}
    entries = [_entry(view, before, elapsed, interval, include_agent) for view in views]
    if options["state"] is not None:
        entries = [entry for entry in entries if entry["state"] == options["state"]]
    _sort(entries, options["sort_by"])
    action = "list"
    if options["top"] is not None:
        action = "busiest"
        entries = entries[: options["top"]]
        frames = {view.ident: view.frame for view in views}
        for entry in entries:
            entry["stack"] = thread_info.frames_of(frames.get(entry["tid"]), options["depth"])
    total = len(entries)
    return {
        "action": action,
        "total": total,
        "threads": entries[:MAX_THREADS],
        "interval_ms": _ms(interval),
        "hidden_agent_threads": hidden,
    }


def _ms(seconds):
    return int(round(seconds * 1000))


def _entry(view, before, elapsed, interval, include_agent):
    native = view.native_id
    cpu_percent = None
    busy = False
    if interval > 0 and native is not None:
        first = before.get(native)
        last = thread_info.run_nanoseconds(native)
        if first is not None and last is not None:
            cpu_percent = round(max(0, last - first) / 1e9 / elapsed * 100.0, 2)
            busy = cpu_percent >= 1.0
    os_letter = thread_info.os_state(native)
    if cpu_percent is None and os_letter == "R":
        busy = True
    frame = view.frame
    top_frame = None
    if frame is not None:
        code = frame.f_code
        top_frame = {
            "filename": code.co_filename,
            "lineno": frame.f_lineno,
            "function": code.co_name,
        }
    cpu_time = thread_info.cpu_seconds(native)
    entry = {
        "tid": view.ident,
        "native_id": native,
        "name": view.name,
        "daemon": view.daemon,
        "alive": view.alive,
        "state": thread_info.infer_state(frame, busy),
        "os_state": os_letter,
        "cpu_time": round(cpu_time, 3) if cpu_time is not None else None,
        "cpu_percent": cpu_percent,
        "stack_depth": thread_info.stack_depth(frame),
        "top_frame": top_frame,
    }
    if include_agent:
        entry["agent"] = view.agent
    return entry


def _sort(entries, key):
    if key == "name":
        entries.sort(key=lambda e: (e["name"], e["tid"]))
    elif key == "state":
        entries.sort(key=lambda e: (thread_info.STATES.index(e["state"]), e["tid"]))
    elif key == "cpu":
        entries.sort(
            key=lambda e: (
                -(e["cpu_percent"] if e["cpu_percent"] is not None else -1.0),
                -(e["cpu_time"] or 0.0),
                e["tid"],
            )
        )
    else:
        entries.sort(key=lambda e: e["tid"])


register_command("thread", handle_thread)
