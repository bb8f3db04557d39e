"""``memory``: the target's memory: overview, allocation tracing, the collector, references, dumps.

params: ``{"action": str, "nframe": int, "group_by": str, "limit": int,
"filename": str, "type_name": str, "max_depth": int, "max_per_level":
int}``; ``action`` is one of the following (default ``overview``).
``limit`` (default 20, 1 to 1000) bounds every list in an answer.

``overview``
    ``{"rss_bytes", "peak_rss_bytes", "vms_bytes", "gc": {"enabled",
    "counts", "thresholds", "collections", "collected", "uncollectable",
    "garbage"}, "tracemalloc": {"tracing", "started_by", "nframe",
    "traced_bytes", "peak_bytes", "snapshot"}, "types": [{"type", "count",
    "size"}...], "types_total"}`` plus the walk's ``scanned``, ``tracked``,
    ``scan_truncated``, ``scan_stopped_by``, ``scan_ms`` (see :mod:`.heap`).
    Memory figures come from ``/proc/self/status`` (``VmRSS``, ``VmHWM``,
    ``VmSize``; null elsewhere). ``types`` are the object counts and
    shallow sizes (``sys.getsizeof``; 0 for a class whose ``__sizeof__``
    is written in Python, which is never called) of the objects the
    collector tracks, largest total first; atomic objects it does not track
    (most ints, strings, floats) are not among them, and the agent's own
    objects are (a few thousand functions and dicts).
``start`` / ``stop``
    Start ``tracemalloc`` with ``nframe`` frames per allocation (default
    25, 1 to 100), or stop it. data ``{"tracing", "started_by",
    "already", "nframe"}``. Tracing slows every allocation of the target
    (typically by a third to a half) and uses memory per live allocation
    until stopped. Peeka only stops tracing it started: ``stop`` fails with
    ``invalid_state`` when the program started it, and detach stops it
    only when Peeka started it (then also dropping the stored snapshot).
``top``
    The allocations alive now, grouped by ``group_by`` (``lineno``
    (default), ``filename`` or ``traceback``), largest first: ``{"group_by",
    "stats": [{"filename", "lineno", "size", "count", "average",
    "traceback"}...], "total_size", "total_count", "traces"}``
    (``lineno`` is null when grouped by file; ``traceback`` is the list of
    ``{"filename", "lineno"}`` frames, most recent first, when grouped by
    traceback, else null). Allocations made by the agent itself are left
    out.
``snapshot``
    Records the allocations alive now as the baseline of ``diff``
    (replacing the previous one): ``{"snapshot": n, "traces",
    "total_size", "taken_at"}``. It is kept compactly (per distinct
    traceback) until ``stop``, the next ``snapshot`` or detach.
``diff``
    The allocations alive now against the baseline, grouped by ``group_by``,
    largest change first: ``{"group_by", "snapshot", "stats": [{"filename",
    "lineno", "size", "size_diff", "count", "count_diff",
    "traceback"}...], "total_size", "total_size_diff", "elapsed"}``.
``gc``
    Runs a full collection (``gc.collect()``) and reports ``{"collected",
    "uncollectable", "garbage", "counts_before", "counts_after",
    "thresholds", "elapsed_ms", "stats"}``.
``referrers`` / ``referents``
    Up to ``max_per_level`` (default 10, 1 to 20) instances of
    ``type_name`` (a class, as :func:`~peeka_agent.classes.resolve_class`
    finds it), and for each, ``max_depth`` levels (default 2, 1 to 3) of the
    objects that refer to it (``gc.get_referrers``) or that it refers to
    (``gc.get_referents``), at most ``max_per_level`` per object: ``{"type_name",
    "direction", "instances", "roots": [node...]}`` (and the walk's
    fields), a node being ``{"id", "type", "summary", "via", "children"}``;
    ``via`` says how the referrer holds the object when it can be told
    (``key 'name'`` of a dict, ``[3]`` of a list or tuple, ``attribute
    name`` of an instance) and ``summary`` is a short description (``globals
    of module shop``, ``frame of checkout at shop.py:31``, or the value
    captured without calling any ``__repr__``). Each level costs one pass of
    the collector over every tracked object; the agent's own references are
    left out.
``dump``
    Writes the heap to ``filename`` in the target's filesystem (relative
    to the target's working directory; default
    ``/tmp/peeka-memory-<pid>-<unix time>.jsonl``), created with mode 0600
    and never overwriting a file: JSON Lines of ``{"kind": "summary"}``
    (the overview), one ``{"kind": "type", "type", "count", "size"}`` per
    type, ``{"kind": "object", "id", "type", "size", "referents": [id...]}``
    for at most :data:`MAX_DUMP_OBJECTS` objects (100 referents each), the
    allocation ``top`` when tracing (``{"kind": "tracemalloc"}``), and
    ``{"kind": "end"}``. data ``{"filename", "bytes", "objects", "types",
    "truncated", "elapsed_ms"}``. The walk stops after
    :data:`DUMP_SECONDS` seconds.

Every action but ``start``/``stop``/``snapshot`` of an idle tracer runs on
an agent thread (``peeka-work-memory``) with bounded work. A tracing action
before ``start`` fails with ``invalid_state`` naming the fix, as does
``diff`` without a ``snapshot``; a parameter an action does not use is
refused with ``invalid_params``. Nothing of the target's is called: sizes,
summaries and ``via`` are read through C getters only.
"""

import gc
import json
import os
import sys
import threading
import time
import types

from .capture import CaptureLimits, Capturer
from .classes import full_name, is_module, resolve_class
from .commands import CommandError, invalid_params, register_command
from .heap import run_in_background, scan
from .inspect_command import find_instances
from .introspect import bounded_store, lookup, MISSING, type_name
from .wire import ErrorCode

ACTIONS = (
    "overview",
    "start",
    "stop",
    "top",
    "snapshot",
    "diff",
    "gc",
    "referrers",
    "referents",
    "dump",
)
GROUPS = ("lineno", "filename", "traceback")
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
DEFAULT_NFRAME = 25
MAX_NFRAME = 100
#: Objects a dump lists one by one.
MAX_DUMP_OBJECTS = 200000
#: Longest walk of a dump, in seconds.
DUMP_SECONDS = 10.0
MAX_REFERENTS_DUMPED = 100
#: Entries of one dict, list or instance searched for ``via``.
MAX_VIA_SEARCH = 10000

_PARAMS_OF = {
    "overview": ("limit",),
    "start": ("nframe",),
    "stop": (),
    "top": ("group_by", "limit"),
    "snapshot": (),
    "diff": ("group_by", "limit"),
    "gc": ("limit",),
    "referrers": ("type_name", "max_depth", "max_per_level"),
    "referents": ("type_name", "max_depth", "max_per_level"),
    "dump": ("filename",),
}

#: Files of the agent package: allocations and frames there are the agent's.
AGENT_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class _Tracing(object):
    """What Peeka did to tracemalloc (one per copy of the agent)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.started_by_peeka = False
        self.nframe = None
        self.generation = 0
        self.baseline = None  # (number, {traceback: [size, count]}, taken_at, total)
        self.snapshots = 0


_tracing = _Tracing()


def _tracemalloc():
    import _tracemalloc  # a builtin C module: no Python code, no other import

    return _tracemalloc


# ---------------------------------------------------------------------------
# Overview


def _proc_status():
    try:
        with open("/proc/self/status", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024
    return values


_sizeof_cache = {}
_C_SIZEOF = (types.MethodDescriptorType, types.WrapperDescriptorType, types.BuiltinFunctionType)


def shallow_size(obj):
    """``sys.getsizeof(obj)`` when its ``__sizeof__`` is C code; else 0 (never runs user code)."""
    tp = type(obj)
    safe = _sizeof_cache.get(tp)
    if safe is None:
        try:
            method = lookup(tp, "__sizeof__")
        except Exception:
            method = MISSING
        safe = type(method) in _C_SIZEOF
        try:
            bounded_store(_sizeof_cache, tp, safe)
        except TypeError:
            pass
    if not safe:
        return 0
    try:
        return sys.getsizeof(obj)
    except Exception:
        return 0


def count_types(stop_event, seconds=None):
    """({id(type): [type, count, size]}, ScanStats) over the tracked objects."""
    table = {}

    def visit(obj):
        tp = type(obj)
        entry = table.get(id(tp))
        if entry is None:
            table[id(tp)] = [tp, 1, shallow_size(obj)]
        else:
            entry[1] += 1
            entry[2] += shallow_size(obj)
        return False

    if seconds is None:
        stats = scan(visit, stop_event)
    else:
        stats = scan(visit, stop_event, seconds=seconds)
    return table, stats


def _type_rows(table, limit):
    rows = sorted(table.values(), key=lambda entry: (-entry[2], -entry[1]))
    return [{"type": type_name(tp), "count": count, "size": size} for tp, count, size in rows][
        :limit
    ]


def _gc_state():
    stats = gc.get_stats()
    return {
        "enabled": gc.isenabled(),
        "counts": list(gc.get_count()),
        "thresholds": list(gc.get_threshold()),
        "collections": [entry.get("collections", 0) for entry in stats],
        "collected": [entry.get("collected", 0) for entry in stats],
        "uncollectable": [entry.get("uncollectable", 0) for entry in stats],
        "garbage": len(gc.garbage),
    }


def _tracemalloc_state():
    module = sys.modules.get("_tracemalloc")
    tracing = bool(module is not None and module.is_tracing())
    state = {
        "tracing": tracing,
        "started_by": None,
        "nframe": None,
        "traced_bytes": None,
        "peak_bytes": None,
        "snapshot": None,
    }
    if tracing:
        state["started_by"] = "peeka" if _tracing.started_by_peeka else "program"
        state["nframe"] = module.get_traceback_limit()
        state["traced_bytes"], state["peak_bytes"] = module.get_traced_memory()
    baseline = _tracing.baseline
    if baseline is not None:
        state["snapshot"] = baseline[0]
    return state


def _memory_figures():
    status = _proc_status()
    return {
        "rss_bytes": status.get("VmRSS"),
        "peak_rss_bytes": status.get("VmHWM"),
        "vms_bytes": status.get("VmSize"),
    }


def overview(limit, stop_event):
    """The ``overview`` data."""
    table, stats = count_types(stop_event)
    data = _memory_figures()
    data["gc"] = _gc_state()
    data["tracemalloc"] = _tracemalloc_state()
    data["types"] = _type_rows(table, limit)
    data["types_total"] = len(table)
    data.update(stats.as_dict())
    return data


# ---------------------------------------------------------------------------
# tracemalloc


def _require_tracing(action):
    module = sys.modules.get("_tracemalloc")
    if module is None or not module.is_tracing():
        raise CommandError(
            ErrorCode.INVALID_STATE,
            "tracemalloc is not tracing, so there is nothing for `%s`; start it first: "
            "`peeka-cli memory --action start` (then let the program run a while)" % action,
        )
    return module


def start(nframe, agent):
    """``start``: tracemalloc on, unless it already is; a guard stops it at detach."""
    module = _tracemalloc()
    with _tracing.lock:
        if module.is_tracing():
            return {
                "tracing": True,
                "started_by": "peeka" if _tracing.started_by_peeka else "program",
                "already": True,
                "nframe": module.get_traceback_limit(),
            }
        module.start(nframe)
        _tracing.started_by_peeka = True
        _tracing.nframe = nframe
        _tracing.generation += 1
        generation = _tracing.generation
    try:
        agent.spawn("memory-guard", _guard, agent, generation)
    except BaseException:
        _stop_ours()
        raise
    return {"tracing": True, "started_by": "peeka", "already": False, "nframe": nframe}


def _guard(agent, generation):
    """Waits for detach, then stops the tracing Peeka started (if still ours)."""
    while not agent.stopping.wait(0.25):
        if _tracing.generation != generation or not _tracing.started_by_peeka:
            return
    with _tracing.lock:
        if _tracing.generation == generation:
            _stop_locked()


def forget_in_child():
    """In a forked child: the tracing Peeka started is stopped, without a lock."""
    _tracing.lock = threading.Lock()
    _stop_locked()


def _stop_ours():
    with _tracing.lock:
        _stop_locked()


def _stop_locked():
    if _tracing.started_by_peeka:
        module = sys.modules.get("_tracemalloc")
        if module is not None and module.is_tracing():
            module.stop()
    _tracing.started_by_peeka = False
    _tracing.nframe = None
    _tracing.baseline = None
    _tracing.generation += 1


def stop():
    """``stop``: tracing off, when Peeka started it."""
    module = sys.modules.get("_tracemalloc")
    with _tracing.lock:
        if module is None or not module.is_tracing():
            _tracing.baseline = None
            raise CommandError(
                ErrorCode.INVALID_STATE,
                "tracemalloc is not tracing; nothing to stop (start it with "
                "`peeka-cli memory --action start`)",
            )
        if not _tracing.started_by_peeka:
            raise CommandError(
                ErrorCode.INVALID_STATE,
                "tracemalloc was started by the program itself, not by Peeka; Peeka leaves it "
                "on (the program may rely on it)",
            )
        _stop_locked()
    return {"tracing": False, "started_by": None, "already": False, "nframe": None}


def _aggregate(module):
    """{traceback: [size, count]} of the live traces, the agent's own left out."""
    traces = module._get_traces()
    table = {}
    agent_dir = AGENT_DIR
    try:
        for trace in traces:
            frames = trace[2]
            if frames and frames[0][0].startswith(agent_dir):
                continue
            entry = table.get(frames)
            if entry is None:
                table[frames] = [trace[1], 1]
            else:
                entry[0] += trace[1]
                entry[1] += 1
        count = len(traces)
    finally:
        del traces
    return table, count


def _group(table, group_by):
    """{key: [size, count]} with key (filename, lineno) / (filename,) / the traceback."""
    groups = {}
    for frames, (size, count) in table.items():
        if group_by == "traceback":
            key = frames
        elif not frames:
            key = ("<unknown>", 0) if group_by == "lineno" else ("<unknown>",)
        elif group_by == "lineno":
            key = frames[0]
        else:
            key = (frames[0][0],)
        entry = groups.get(key)
        if entry is None:
            groups[key] = [size, count]
        else:
            entry[0] += size
            entry[1] += count
    return groups


def _where(key, group_by):
    if group_by == "traceback":
        first = key[0] if key else ("<unknown>", 0)
        return {
            "filename": first[0],
            "lineno": first[1],
            "traceback": [{"filename": f, "lineno": n} for f, n in key],
        }
    if group_by == "lineno":
        return {"filename": key[0], "lineno": key[1], "traceback": None}
    return {"filename": key[0], "lineno": None, "traceback": None}


def top(group_by, limit):
    """``top``: the live allocations, grouped, largest first."""
    module = _require_tracing("top")
    table, traces = _aggregate(module)
    groups = _group(table, group_by)
    rows = sorted(groups.items(), key=lambda item: -item[1][0])
    stats = []
    for key, (size, count) in rows[:limit]:
        entry = _where(key, group_by)
        entry.update({"size": size, "count": count, "average": size // count if count else 0})
        stats.append(entry)
    return {
        "group_by": group_by,
        "stats": stats,
        "total_size": sum(size for size, _count in groups.values()),
        "total_count": sum(count for _size, count in groups.values()),
        "traces": traces,
    }


def snapshot():
    """``snapshot``: the baseline of ``diff``."""
    module = _require_tracing("snapshot")
    table, traces = _aggregate(module)
    taken_at = time.time()
    total = sum(size for size, _count in table.values())
    with _tracing.lock:
        _tracing.snapshots += 1
        number = _tracing.snapshots
        _tracing.baseline = (number, table, taken_at, total)
    return {"snapshot": number, "traces": traces, "total_size": total, "taken_at": taken_at}


def diff(group_by, limit):
    """``diff``: now against the baseline, largest change first."""
    module = _require_tracing("diff")
    baseline = _tracing.baseline
    if baseline is None:
        raise CommandError(
            ErrorCode.INVALID_STATE,
            "there is no snapshot to compare with; take one first: "
            "`peeka-cli memory --action snapshot`, let the program run, then diff",
        )
    number, old_table, taken_at, old_total = baseline
    new_table, _traces = _aggregate(module)
    old = _group(old_table, group_by)
    new = _group(new_table, group_by)
    rows = []
    for key in set(old) | set(new):
        size, count = new.get(key, (0, 0))
        old_size, old_count = old.get(key, (0, 0))
        if size == old_size and count == old_count:
            continue
        rows.append((key, size, size - old_size, count, count - old_count))
    rows.sort(key=lambda row: (-abs(row[2]), -row[1]))
    stats = []
    for key, size, size_diff, count, count_diff in rows[:limit]:
        entry = _where(key, group_by)
        entry.update(
            {"size": size, "size_diff": size_diff, "count": count, "count_diff": count_diff}
        )
        stats.append(entry)
    total = sum(size for size, _count in new.values())
    return {
        "group_by": group_by,
        "snapshot": number,
        "stats": stats,
        "total_size": total,
        "total_size_diff": total - old_total,
        "elapsed": round(time.time() - taken_at, 3),
    }


# ---------------------------------------------------------------------------
# gc


def collect(limit):
    """``gc``: one full collection, reported."""
    before = list(gc.get_count())
    garbage_before = len(gc.garbage)
    started = time.perf_counter()
    collected = gc.collect()
    elapsed = (time.perf_counter() - started) * 1000.0
    return {
        "collected": collected,
        "uncollectable": len(gc.garbage) - garbage_before,
        "garbage": len(gc.garbage),
        "counts_before": before,
        "counts_after": list(gc.get_count()),
        "thresholds": list(gc.get_threshold()),
        "elapsed_ms": round(elapsed, 3),
        "stats": gc.get_stats()[:limit],
    }


# ---------------------------------------------------------------------------
# References


_summary_capturer = Capturer(CaptureLimits(depth=0, max_string=120, call_repr=False))


def _module_dicts():
    found = {}
    for name, module in list(sys.modules.items()):
        if is_module(module):
            try:
                found[id(object.__getattribute__(module, "__dict__"))] = name
            except Exception:
                pass
    return found


def _summary(obj, module_dicts):
    tp = type(obj)
    try:
        if tp is dict and id(obj) in module_dicts:
            return "globals of module %s" % module_dicts[id(obj)]
        if tp is types.FrameType:
            code = obj.f_code
            return "frame of %s at %s:%s" % (code.co_name, code.co_filename, obj.f_lineno)
        if tp is types.FunctionType:
            return "function %s" % obj.__qualname__
        if issubclass(tp, type):
            return "class %s" % full_name(obj)
        if tp is types.ModuleType:
            name = object.__getattribute__(obj, "__dict__").get("__name__")
            return "module %s" % (name if type(name) is str else "?")
    except Exception:
        pass
    value = _summary_capturer.capture(obj)
    if type(value) is str:
        return value
    try:
        text = json.dumps(value)
    except Exception:
        return "<%s>" % type_name(tp)
    return text if len(text) <= 200 else text[:200] + "..."


def _key_text(key):
    if type(key) in (str, int, float, bool, type(None)):
        text = repr(key)
        return text if len(text) <= 80 else text[:80] + "..."
    return "<%s>" % type_name(type(key))


def _via(holder, value):
    """How ``holder`` refers to ``value`` (no user code), or None."""
    tp = type(holder)
    try:
        if issubclass(tp, dict):
            for index, (key, item) in enumerate(dict.items(holder)):
                if index >= MAX_VIA_SEARCH:
                    break
                if item is value:
                    return "key %s" % _key_text(key)
                if key is value:
                    return "a key"
            return None
        if issubclass(tp, (list, tuple)):
            base = list if issubclass(tp, list) else tuple
            for index in range(min(base.__len__(holder), MAX_VIA_SEARCH)):
                if base.__getitem__(holder, index) is value:
                    return "[%d]" % index
            return None
        if tp is types.FrameType or tp is types.FunctionType or issubclass(tp, type):
            return None
        getter = None
        for klass in type.__dict__["__mro__"].__get__(tp):
            candidate = type.__dict__["__dict__"].__get__(klass).get("__dict__", MISSING)
            if candidate is not MISSING:
                if type(candidate) is types.GetSetDescriptorType:
                    getter = candidate
                break
        if getter is not None:
            namespace = getter.__get__(holder, tp)
            if type(namespace) is dict:
                for index, (key, item) in enumerate(dict.items(namespace)):
                    if index >= MAX_VIA_SEARCH:
                        break
                    if item is value:
                        return "attribute %s" % (key if type(key) is str else _key_text(key))
    except Exception:
        return None
    return None


def _is_agent_frame(obj):
    if type(obj) is not types.FrameType:
        return False
    try:
        return obj.f_code.co_filename.startswith(AGENT_DIR)
    except Exception:
        return False


def references(cls, direction, max_depth, max_per_level, stop_event):
    """The ``referrers`` / ``referents`` data."""
    roots, matched, _by_type, stats = find_instances(cls, None, max_per_level, stop_event)
    ours = {id(roots)}
    module_dicts = _module_dicts()

    def node(obj, via):
        return {
            "id": hex(id(obj)),
            "type": type_name(type(obj)),
            "summary": _summary(obj, module_dicts),
            "via": via,
            "children": [],
        }

    top_nodes = [node(obj, None) for obj in roots]
    frontier = list(roots)
    frontier_nodes = list(top_nodes)
    ours.add(id(frontier))
    ours.add(id(frontier_nodes))
    ours.add(id(top_nodes))
    seen = set(id(obj) for obj in roots)
    for _level in range(max_depth):
        if not frontier or stop_event.is_set():
            break
        found = [[] for _obj in frontier]
        ours.add(id(found))
        for entry in found:
            ours.add(id(entry))
        if direction == "referents":
            for index, obj in enumerate(frontier):
                try:
                    children = gc.get_referents(obj)
                except Exception:
                    continue
                ours.add(id(children))
                for child in children:
                    if len(found[index]) >= max_per_level:
                        break
                    if id(child) in ours or child is type(obj):
                        continue
                    found[index].append((child, _via(obj, child)))
                del children
        else:
            args = tuple(frontier)
            ours.add(id(args))
            position = dict((id(obj), index) for index, obj in enumerate(frontier))
            referrers = gc.get_referrers(*args)
            ours.add(id(referrers))
            current = sys._getframe()
            try:
                for holder in referrers:
                    if id(holder) in ours or holder is current or _is_agent_frame(holder):
                        continue
                    try:
                        held = gc.get_referents(holder)
                    except Exception:
                        continue
                    for item in held:
                        index = position.get(id(item))
                        if index is not None and len(found[index]) < max_per_level:
                            found[index].append((holder, _via(holder, frontier[index])))
                    del held
            finally:
                del referrers, args, current
        next_frontier = []
        next_nodes = []
        ours.add(id(next_frontier))
        ours.add(id(next_nodes))
        for index, pairs in enumerate(found):
            for obj, via in pairs:
                child = node(obj, via)
                frontier_nodes[index]["children"].append(child)
                if id(obj) not in seen:
                    seen.add(id(obj))
                    next_frontier.append(obj)
                    next_nodes.append(child)
        del found
        frontier = next_frontier
        frontier_nodes = next_nodes
    del frontier, roots
    data = {
        "type_name": full_name(cls),
        "direction": direction,
        "instances": matched,
        "roots": top_nodes,
    }
    data.update(stats.as_dict())
    return data


# ---------------------------------------------------------------------------
# Dump


def _open_dump(filename, pid):
    if filename is None:
        filename = "/tmp/peeka-memory-%d-%d.jsonl" % (pid, int(time.time()))
    path = os.path.abspath(filename)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(
            ErrorCode.INVALID_PARAMS,
            "%s already exists and Peeka never overwrites files; choose another `--filename`"
            % path,
        )
    except OSError as exc:
        raise CommandError(
            ErrorCode.INVALID_PARAMS,
            "cannot create %s in the target's filesystem (%s); choose another `--filename` (a "
            "directory the target's user can write)" % (path, exc.strerror or exc),
        )
    return path, os.fdopen(descriptor, "w", encoding="utf-8")


def dump(path, handle, pid, stop_event):
    """Writes the dump (see the module documentation); the ``dump`` data."""
    started = time.perf_counter()
    deadline = started + DUMP_SECONDS
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    written = 0
    objects = 0
    truncated = False
    with handle:
        summary = {"kind": "summary", "pid": pid, "time": time.time()}
        summary.update(_memory_figures())
        summary["gc"] = _gc_state()
        summary["tracemalloc"] = _tracemalloc_state()
        lines = [encode(summary)]
        table, stats = count_types(stop_event, seconds=DUMP_SECONDS / 2)
        for row in _type_rows(table, len(table)):
            row["kind"] = "type"
            lines.append(encode(row))
        del table
        for line in lines:
            handle.write(line + "\n")
            written += len(line) + 1
        batch = []
        everything = gc.get_objects()
        try:
            for obj in everything:
                if objects >= MAX_DUMP_OBJECTS:
                    truncated = True
                    break
                if not objects % 1024 and (
                    time.perf_counter() > deadline or stop_event.is_set()
                ):
                    truncated = True
                    break
                objects += 1
                try:
                    referents = [hex(id(r)) for r in gc.get_referents(obj)[:MAX_REFERENTS_DUMPED]]
                except Exception:
                    referents = []
                batch.append(
                    encode(
                        {
                            "kind": "object",
                            "id": hex(id(obj)),
                            "type": type_name(type(obj)),
                            "size": shallow_size(obj),
                            "referents": referents,
                        }
                    )
                )
                if len(batch) >= 1024:
                    text = "\n".join(batch) + "\n"
                    handle.write(text)
                    written += len(text)
                    batch = []
        finally:
            del everything
        if batch:
            text = "\n".join(batch) + "\n"
            handle.write(text)
            written += len(text)
        tail = []
        module = sys.modules.get("_tracemalloc")
        if module is not None and module.is_tracing():
            allocations = top("lineno", 100)
            allocations["kind"] = "tracemalloc"
            tail.append(encode(allocations))
        tail.append(
            encode(
                {
                    "kind": "end",
                    "objects": objects,
                    "truncated": truncated,
                    "types_scan": stats.as_dict(),
                }
            )
        )
        for line in tail:
            handle.write(line + "\n")
            written += len(line) + 1
    return {
        "filename": path,
        "bytes": written,
        "objects": objects,
        "types": len(lines) - 1,
        "truncated": truncated,
        "elapsed_ms": round((time.perf_counter() - started) * 1000.0, 3),
    }


# ---------------------------------------------------------------------------
# The command


def handle_memory(ctx):
    """``memory``: see the module documentation."""
    ctx.check_params(
        (
            "action",
            "nframe",
            "group_by",
            "limit",
            "filename",
            "type_name",
            "max_depth",
            "max_per_level",
        )
    )
    action = ctx.param("action", str, default="overview", choices=ACTIONS)
    allowed = _PARAMS_OF[action]
    if isinstance(ctx.params, dict):
        extra = sorted(
            key
            for key, value in ctx.params.items()
            if key != "action" and value is not None and key not in allowed
        )
        if extra:
            raise invalid_params(
                "`--action %s` does not use %s; it takes: %s"
                % (
                    action,
                    ", ".join("`%s`" % key for key in extra),
                    ", ".join("`%s`" % key for key in allowed) or "nothing else",
                )
            )
    limit = ctx.param("limit", int, default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    group_by = ctx.param("group_by", str, default="lineno", choices=GROUPS)
    nframe = ctx.param("nframe", int, default=DEFAULT_NFRAME, minimum=1, maximum=MAX_NFRAME)
    stop_event = ctx.agent.stopping
    if action == "start":
        return start(nframe, ctx.agent)
    if action == "stop":
        return stop()
    if action == "snapshot":
        _require_tracing("snapshot")
        return run_in_background(ctx, "memory", snapshot)
    if action in ("top", "diff"):
        _require_tracing(action)
        if action == "diff" and _tracing.baseline is None:
            return diff(group_by, limit)  # raises invalid_state with the fix
        work = top if action == "top" else diff
        return run_in_background(ctx, "memory", lambda: work(group_by, limit))
    if action == "overview":
        return run_in_background(ctx, "memory", lambda: overview(limit, stop_event))
    if action == "gc":
        return run_in_background(ctx, "memory", lambda: collect(limit))
    if action in ("referrers", "referents"):
        name = ctx.param("type_name", str)
        if name is None:
            raise invalid_params(
                "`--action %s` needs `type_name` (`--type-name`), e.g. `mymodule.MyClass` or "
                "`dict`" % action
            )
        max_depth = ctx.param("max_depth", int, default=2, minimum=1, maximum=3)
        max_per_level = ctx.param("max_per_level", int, default=10, minimum=1, maximum=20)
        cls = resolve_class(name)
        return run_in_background(
            ctx,
            "memory",
            lambda: references(cls, action, max_depth, max_per_level, stop_event),
        )
    filename = ctx.param("filename", str)
    if filename is not None and not filename.strip():
        raise invalid_params("`filename` must not be empty")
    pid = ctx.agent.pid
    path, handle = _open_dump(filename, pid)
    try:
        return run_in_background(ctx, "memory", lambda: dump(path, handle, pid, stop_event))
    except BaseException:
        handle.close()
        raise


register_command("memory", handle_memory)
