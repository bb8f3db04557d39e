"""The agent's own threads, and how to leave them out of what users see.

Every thread the agent runs is an :class:`AgentThread`: a daemon thread whose
name starts with ``peeka-`` and whose ident (and native id) is recorded in a
registry while it runs. Commands that show threads, stacks or samples
(``thread``, ``top``, ``stack``, the probes) must filter with
:func:`is_agent_thread` or, for many threads at once, with the sets from
:func:`agent_thread_idents` / :func:`agent_native_ids`, so that the agent
never appears in a user's results.

Threads named ``peeka-*`` that this module did not start (the bootstrap's
``peeka-loader``, or the threads of another copy of the agent) count as agent
threads too.

Thread names used by the core:

- ``peeka-agent``: the listener, waiting in ``poll()`` (see admission; the bootstrap
  detects a running agent by this prefix);
- ``peeka-conn-<n>``: reads and dispatches the requests of connection n, and
  writes its answers until the connection needs a writer;
- ``peeka-send-<n>``: writes connection n's outgoing frames, once it opens a
  stream or defers a reply (see :mod:`peeka_agent.outbox`);
- ``peeka-work-<name>``: helpers started by commands (:meth:`Agent.spawn`).
"""

import sys
import threading

#: Prefix of every agent thread's name.
THREAD_PREFIX = "peeka-"

#: The detach collects the agent's garbage only while the process has at most
#: this many allocated blocks: a full collection takes about 30-50 ms per
#: million objects (3.11-3.14), and a larger process is left to its own
#: collections.
COLLECT_MAX_BLOCKS = 1000000

_registry_lock = threading.Lock()
# ident -> native id (None where unknown); replaced wholesale on change so
# that readers can use the current dict without the lock.
_idents = {}


def _register(ident, native_id):
    global _idents
    with _registry_lock:
        updated = dict(_idents)
        updated[ident] = native_id
        _idents = updated


def _unregister(ident):
    global _idents
    with _registry_lock:
        if ident in _idents:
            updated = dict(_idents)
            del updated[ident]
            _idents = updated


class AgentThread(threading.Thread):
    """A daemon thread named ``peeka-...`` that is registered while it runs.

    ``target`` is called with ``args``; any exception it lets escape is
    handed to ``on_error`` (a callable taking the exception) instead of
    ``threading.excepthook``, so that the agent never prints into the
    target's stderr. A thread whose ``collect_on_exit`` is set (the one that
    detaches) calls :func:`collect_agent_garbage` as its last step.
    """

    collect_on_exit = False

    def __init__(self, name, target, args=(), on_error=None):
        if not name.startswith(THREAD_PREFIX):
            name = THREAD_PREFIX + name
        threading.Thread.__init__(self, name=name, daemon=True)
        self._peeka_target = target
        self._peeka_args = args
        self._peeka_on_error = on_error

    def run(self):
        ident = threading.get_ident()
        native = getattr(threading, "get_native_id", None)
        _register(ident, native() if native is not None else None)
        try:
            self._peeka_target(*self._peeka_args)
        except BaseException as exc:  # never let threading.excepthook print
            handler = self._peeka_on_error
            if handler is not None:
                try:
                    handler(exc)
                except BaseException:
                    pass
        finally:
            _unregister(ident)
            # Drop references to the agent's objects as soon as possible.
            self._peeka_target = self._peeka_args = self._peeka_on_error = None
            if self.collect_on_exit:
                collect_agent_garbage()


def collect_agent_garbage():
    """Frees the detached agent's objects now (never raises).

    The agent's modules, classes, threads and connections hold each other in
    reference cycles, which only the cyclic collector frees, and by then they
    have aged into its oldest generation: left to the application's own
    collections, the garbage of 10-20 attaches piled up before one ran, and
    the allocators kept the memory of that peak (pymalloc arenas and glibc's
    per-thread arenas are rarely given back). Run by the detaching thread
    once it has answered and dropped its own references, so that only this
    module (and the bootstrap's finder it names) is still reachable. Skipped
    when the application disabled the collector, or when the process is
    large enough for a full collection to pause it noticeably
    (``COLLECT_MAX_BLOCKS``).
    """
    try:
        import gc

        if gc.isenabled() and sys.getallocatedblocks() <= COLLECT_MAX_BLOCKS:
            gc.collect()
    except BaseException:
        pass


def is_agent_thread(thread_or_ident):
    """Whether a thread (a Thread object or a ``threading`` ident) belongs to the agent."""
    if isinstance(thread_or_ident, threading.Thread):
        thread = thread_or_ident
        if thread.ident in _idents:
            return True
        name = thread.name
        return isinstance(name, str) and name.startswith(THREAD_PREFIX)
    ident = thread_or_ident
    if ident in _idents:
        return True
    for thread in threading.enumerate():
        if thread.ident == ident:
            name = thread.name
            return isinstance(name, str) and name.startswith(THREAD_PREFIX)
    return False


def agent_thread_idents():
    """A frozenset of the idents of all agent threads (registered or named ``peeka-*``)."""
    idents = set(_idents)
    for thread in threading.enumerate():
        name = thread.name
        if isinstance(name, str) and name.startswith(THREAD_PREFIX) and thread.ident is not None:
            idents.add(thread.ident)
    return frozenset(idents)


def agent_native_ids():
    """A frozenset of the OS thread ids of the agent's threads (for /proc readers)."""
    ids = set(native for native in _idents.values() if native is not None)
    for thread in threading.enumerate():
        name = thread.name
        native = getattr(thread, "native_id", None)
        if isinstance(name, str) and name.startswith(THREAD_PREFIX) and native is not None:
            ids.add(native)
    return frozenset(ids)


def agent_thread_names():
    """Names of the live agent threads, sorted."""
    return sorted(
        thread.name
        for thread in threading.enumerate()
        if is_agent_thread(thread) and thread.is_alive()
    )
