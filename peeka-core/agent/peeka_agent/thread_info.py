"""What the agent knows about the target's threads: who they are, their CPU
time as the OS counts it, and where each one is in its Python code.

Used by ``thread`` and ``top``. Everything here reads, never changes: thread
objects are read through ``threading.enumerate()``, stacks through
``sys._current_frames()`` and ``f_back`` (no ``inspect``, no source lines, no
``f_locals``), CPU times from ``/proc/self/task/<native id>/stat`` (user +
system time, in clock ticks) and ``.../schedstat`` (time on a CPU, in
nanoseconds). Where ``/proc`` is absent (macOS) CPU times are None.

Interface:

- :func:`snapshot` -> list of :class:`ThreadView` (every thread with a
  Python frame or a ``threading.Thread`` object), agent threads marked;
- :func:`cpu_seconds(native_id) <cpu_seconds>`, :func:`run_nanoseconds`,
  :func:`os_state`: per-thread readings from ``/proc`` (None when unknown);
- :func:`frames_of(frame, depth) <frames_of>` -> ``[{"filename", "lineno",
  "function"}...]``, innermost first;
- :func:`infer_state` -> ``RUNNABLE``, ``WAITING`` or ``TIMED_WAITING``.
"""

import os
import sys
import threading

from . import agent_threads

#: Thread states, as the Python implementation names them.
RUNNABLE = "RUNNABLE"
WAITING = "WAITING"
TIMED_WAITING = "TIMED_WAITING"
STATES = (RUNNABLE, WAITING, TIMED_WAITING)

#: Standard-library functions that wait (their innermost frame says so).
_WAITING_NAMES = frozenset(
    (
        "wait",
        "wait_for",
        "join",
        "_wait_for_tstate_lock",
        "acquire",
        "get",
        "put",
        "select",
        "poll",
        "accept",
        "recv",
        "recv_into",
        "recvfrom",
        "readline",
        "readinto",
        "read",
        "serve_forever",
        "_run_once",
        "communicate",
        "_try_wait",
        "result",
        "handle_request",
    )
)
_SLEEPING_NAMES = frozenset(("sleep", "_sleep"))

try:
    _CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):
    _CLOCK_TICKS = 100.0

_TASK_DIR = "/proc/self/task/%d/"


def _read_small(path):
    """The first 4 KiB of ``path`` as text, or None."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat_fields(native_id):
    """The fields of ``/proc/self/task/<id>/stat`` after the command name, or None."""
    if native_id is None:
        return None
    text = _read_small(_TASK_DIR % native_id + "stat")
    if not text:
        return None
    # The command name is in parentheses and may itself contain ") ".
    end = text.rfind(")")
    if end < 0:
        return None
    return text[end + 2 :].split()


def cpu_seconds(native_id):
    """User + system CPU time of a thread in seconds (clock-tick precision), or None."""
    fields = _stat_fields(native_id)
    if fields is None or len(fields) < 13:
        return None
    try:
        # Fields 14 and 15 of stat(5): utime, stime; index 0 here is field 3.
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except ValueError:
        return None


def os_state(native_id):
    """The kernel's one-letter state of a thread (``R``, ``S``, ``D``...), or None."""
    fields = _stat_fields(native_id)
    if not fields:
        return None
    return fields[0]


def run_nanoseconds(native_id):
    """Nanoseconds a thread has spent on a CPU (``schedstat``), or None."""
    if native_id is None:
        return None
    text = _read_small(_TASK_DIR % native_id + "schedstat")
    if text:
        try:
            return int(text.split()[0])
        except (ValueError, IndexError):
            pass
    seconds = cpu_seconds(native_id)
    return None if seconds is None else int(seconds * 1e9)


class ThreadView(object):
    """One thread as seen at one moment.

    ``ident`` (``threading`` ident), ``native_id`` (the OS thread id, None
    if unknown), ``name``, ``daemon`` (None without a Thread object),
    ``alive``, ``frame`` (its innermost Python frame or None) and ``agent``
    (whether it is one of the agent's threads).
    """

    __slots__ = ("ident", "native_id", "name", "daemon", "alive", "frame", "agent")

    def __init__(self, ident, native_id, name, daemon, alive, frame, agent):
        self.ident = ident
        self.native_id = native_id
        self.name = name
        self.daemon = daemon
        self.alive = alive
        self.frame = frame
        self.agent = agent


def snapshot():
    """Every thread of the process, oldest first as ``threading`` lists them."""
    frames = sys._current_frames()
    agent_idents = agent_threads.agent_thread_idents()
    views = []
    seen = set()
    for thread in threading.enumerate():
        ident = thread.ident
        if ident is None:
            continue
        seen.add(ident)
        name = thread.name if isinstance(thread.name, str) else "?"
        views.append(
            ThreadView(
                ident,
                getattr(thread, "native_id", None),
                name,
                bool(thread.daemon),
                thread.is_alive(),
                frames.get(ident),
                ident in agent_idents,
            )
        )
    for ident, frame in frames.items():
        if ident not in seen:
            # A thread started with _thread and never seen by threading.
            views.append(
                ThreadView(ident, None, "<unknown>", None, True, frame, ident in agent_idents)
            )
    return views


def frames_of(frame, depth):
    """Up to ``depth`` frames from ``frame`` outwards: ``{"filename", "lineno", "function"}``."""
    found = []
    while frame is not None and len(found) < depth:
        code = frame.f_code
        found.append(
            {"filename": code.co_filename, "lineno": frame.f_lineno, "function": code.co_name}
        )
        frame = frame.f_back
    return found


def stack_depth(frame, limit=10000):
    """How many frames are on a thread's stack (counted up to ``limit``)."""
    count = 0
    while frame is not None and count < limit:
        count += 1
        frame = frame.f_back
    return count


def _stdlib_dir():
    try:
        return os.path.dirname(os.__file__)
    except Exception:
        return None


STDLIB_DIR = _stdlib_dir()


def is_stdlib_file(filename):
    """Whether a code object's file belongs to the standard library (or is frozen)."""
    if not isinstance(filename, str):
        return False
    if filename.startswith("<frozen"):
        return True
    base = STDLIB_DIR
    if base is None or not filename.startswith(base):
        return False
    return "site-packages" not in filename and "dist-packages" not in filename


def infer_state(frame, busy):
    """The state of a thread from its innermost frames and whether it used CPU.

    A thread whose innermost frames (up to 3) are a standard-library
    function known to wait (``Condition.wait``, ``Thread.join``,
    ``Queue.get``, ``select``...) is ``WAITING`` (``TIMED_WAITING`` for
    ``sleep``); otherwise one that used CPU over the measuring window
    (``busy``) is ``RUNNABLE`` and one that did not is ``WAITING`` (blocked
    in a C call such as ``time.sleep`` or a socket read).
    """
    current = frame
    for _ in range(3):
        if current is None:
            break
        code = current.f_code
        name = code.co_name
        if name in _SLEEPING_NAMES:
            return TIMED_WAITING
        if name in _WAITING_NAMES and is_stdlib_file(code.co_filename):
            return WAITING
        current = current.f_back
    if busy:
        return RUNNABLE
    return WAITING
