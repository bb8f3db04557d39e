"""Walking the target's objects with bounded work, and answering from a worker thread.

``gc.get_objects()`` lists every object the garbage collector tracks: all
instances of classes written in Python, containers (lists, tuples, dicts
holding containers...), functions, modules; not untracked atomic objects
(ints, strings, floats, and dicts or tuples holding only those). Building
that list is one fast C pass, but looking at each object in Python is
not, so :func:`scan` stops after :data:`MAX_SCAN` objects or
:data:`SCAN_SECONDS` of work, whichever comes first, and says so
(``scan_truncated`` and why). The list itself is dropped as soon as the
walk ends. The walk runs on an agent thread, which shares the GIL with the
target's threads like any Python thread: they keep running, a little
slower, while it lasts.

:func:`run_in_background` runs a command's work on a ``peeka-work-<name>``
thread and answers the request from there (``ctx.defer()``), so that the
connection stays responsive; the work should check :func:`stopping`
(detach) in its loops.
"""

import gc
import time
import traceback

from .commands import CommandError
from .introspect import class_mro
from .wire import ErrorCode

#: Most objects one scan looks at.
MAX_SCAN = 2000000
#: Longest one scan may take, in seconds.
SCAN_SECONDS = 2.0
_CHECK_EVERY = 4096

_subclasses_of = type.__dict__["__subclasses__"]


class ScanStats(object):
    """What a :func:`scan` covered: ``scanned``, ``tracked`` (the list's
    length), ``truncated`` and ``reason`` (``limit``, ``time``, ``detach``
    or None), ``elapsed_ms``."""

    __slots__ = ("scanned", "tracked", "truncated", "reason", "elapsed_ms")

    def __init__(self):
        self.scanned = 0
        self.tracked = 0
        self.truncated = False
        self.reason = None
        self.elapsed_ms = 0.0

    def as_dict(self):
        """The JSON-able summary."""
        return {
            "scanned": self.scanned,
            "tracked": self.tracked,
            "scan_truncated": self.truncated,
            "scan_stopped_by": self.reason,
            "scan_ms": round(self.elapsed_ms, 3),
        }


def scan(visit, stop_event=None, max_objects=MAX_SCAN, seconds=SCAN_SECONDS):
    """Calls ``visit(obj)`` for the tracked objects, bounded; returns :class:`ScanStats`.

    ``visit`` returning True stops the walk early (not counted as truncated).
    """
    stats = ScanStats()
    started = time.perf_counter()
    deadline = started + seconds
    objects = gc.get_objects()
    try:
        stats.tracked = len(objects)
        count = 0
        for obj in objects:
            if count >= max_objects:
                stats.truncated, stats.reason = True, "limit"
                break
            count += 1
            if not count % _CHECK_EVERY:
                if time.perf_counter() > deadline:
                    stats.truncated, stats.reason = True, "time"
                    break
                if stop_event is not None and stop_event.is_set():
                    stats.truncated, stats.reason = True, "detach"
                    break
            if visit(obj):
                break
        stats.scanned = count
    finally:
        del objects
    stats.elapsed_ms = (time.perf_counter() - started) * 1000.0
    return stats


def subclass_ids(cls, limit=100000):
    """The ids of ``cls`` and of every class derived from it (C walk, no user code)."""
    ids = {id(cls)}
    pending = [cls]
    while pending and len(ids) < limit:
        klass = pending.pop()
        try:
            subclasses = _subclasses_of(klass)
        except Exception:
            continue
        for sub in subclasses:
            if id(sub) not in ids:
                ids.add(id(sub))
                pending.append(sub)
    return ids


def is_instance(obj, cls):
    """``isinstance`` by the real type's MRO (no ``__instancecheck__``, no ``__class__``)."""
    try:
        return cls in class_mro(type(obj))
    except Exception:
        return False


def stopping(ctx):
    """The event set when the agent begins to detach."""
    return ctx.agent.stopping


def run_in_background(ctx, name, work):
    """Runs ``work()`` on thread ``peeka-work-<name>`` and answers ``ctx`` with its result.

    ``work`` returns the response data or raises CommandError; anything
    else it raises is answered as ``internal`` with the traceback and
    recorded in the agent's error log.
    """
    agent = ctx.agent

    def run():
        try:
            data = work()
        except CommandError as exc:
            ctx.fail(exc.code, exc.message, exc.traceback)
        except BaseException as exc:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            agent.record_error("command `%s` failed" % ctx.command, exc)
            ctx.fail(
                ErrorCode.INTERNAL,
                "`%s` failed inside the agent (%s: %s); the agent is still running, please "
                "report this with the traceback" % (ctx.command, type(exc).__name__, exc),
                text,
            )
        else:
            ctx.reply(data)

    ctx.defer()
    try:
        agent.spawn(name, run)
    except BaseException:
        ctx.deferred = False
        raise
