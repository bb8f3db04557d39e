"""Peeka's agent: the code that runs inside the target Python process.

Standard library only; runs unchanged on CPython 3.8 to 3.15. The client
writes this package into a private directory (mode 0700, owned by the
target's uid) and the bootstrap (peeka-attach/src/bootstrap.py) imports it as
the package ``_peeka_agent_<token>`` and calls :func:`start` on its
``peeka-loader`` thread.

Modules, one concept each:

- :mod:`.wire`: frames and messages of docs/protocol.md (the agent side);
- :mod:`.server`: the :class:`~.server.Agent`: socket, listener, detach;
- :mod:`.connection`: one client: handshake, dispatch, cancel, its streams;
- :mod:`.commands`: the command registry and the request context;
- :mod:`.streams`: :class:`~.streams.Stream`, the probe-facing hot path;
- :mod:`.outbox`: the bounded per-connection queue and its writer thread;
- :mod:`.capture`: bounded, never-raising conversion of values to JSON;
- :mod:`.expr`: the safe expression language of ``--condition`` (parsing,
  checking, compiling to closures);
- :mod:`.safe_values`: the operations expressions may perform on the
  target's values, with type checks and resource caps;
- :mod:`.introspect`: reading classes without running their code;
- :mod:`.peercred`: peer credentials and who is admitted;
- :mod:`.agent_threads`: the agent's threads, to keep them out of results;
- :mod:`.builtin_commands`: ``ping``, ``info``, ``detach``;
- :mod:`.patterns`: a probe pattern resolved to functions, never importing;
- :mod:`.probes`: probes, their handlers and registry; picks the backend:
  :mod:`.probe_monitoring` (3.12+) or :mod:`.probe_code_swap` (3.8-3.11);
- :mod:`.watch_command`, :mod:`.stack_command`, :mod:`.monitor_command`
  (with :mod:`.latency_histogram`), :mod:`.reset_command`: the probe
  commands;
- :mod:`.thread_command` (with :mod:`.thread_info`), :mod:`.top_command`:
  the target's threads, and sampling of what they execute;
- :mod:`.trace_command` (with :mod:`.trace_engine`): the call tree below a
  function;
- :mod:`.search_command` (``sc``, ``sm``), :mod:`.inspect_command`,
  :mod:`.logger_command`, :mod:`.memory_command`: the runtime commands,
  with :mod:`.classes` (finding and describing classes) and :mod:`.heap`
  (bounded walks of the collector's objects, answers from a worker thread);
- :mod:`.pending`: probes whose function does not exist yet (``pending``);
  :mod:`.run_program`: running a program as ``__main__`` for ``peeka-cli run``;
- :mod:`.version`: ``AGENT_VERSION``.

Commands built on this core register themselves with
:func:`register_command` when their module is imported; list each such
module below with :func:`~.commands.register_lazy_commands`, which imports
it the first time its command runs.
"""

import threading

# The bootstrap's finder compiles the modules the agent starts with on a few
# threads at once, and imports what they need of the standard library: on a
# busy target that is most of the time to attach.
if hasattr(globals().get("__loader__"), "precompile"):
    __loader__.precompile(  # noqa: F821 - set by the import system
        (
            "agent_threads",
            "builtin_commands",
            "commands",
            "connection",
            "gil_boost",
            "outbox",
            "peercred",
            "server",
            "streams",
            "version",
            "wire",
        ),
        threads=min(8, threading.active_count() + 3),
        # Independent of each other: imported side by side (json and
        # socket cost milliseconds each where the application has neither).
        imports=("json", "socket"),
    )

from . import builtin_commands  # noqa: F401 - registers ping, info, detach
from .commands import register_lazy_commands

# Each command's module is imported when the command first runs (see
# commands.LazyCommand): the agent answers sooner, and costs the target only
# what is used.
register_lazy_commands(
    {
        "inspect": "inspect_command",
        "logger": "logger_command",
        "memory": "memory_command",
        "sc": "search_command",
        "sm": "search_command",
        "monitor": "monitor_command",
        "reset": "reset_command",
        "stack": "stack_command",
        "thread": "thread_command",
        "top": "top_command",
        "trace": "trace_command",
        "watch": "watch_command",
    }
)

from .agent_threads import agent_native_ids, agent_thread_idents, is_agent_thread
from .commands import CommandError, RequestContext, register_command
from .server import Agent, AgentStartError
from .streams import Stream
from .version import AGENT_VERSION

__all__ = [
    "AGENT_VERSION",
    "Agent",
    "AgentStartError",
    "CommandError",
    "RequestContext",
    "Stream",
    "agent_native_ids",
    "agent_thread_idents",
    "current_agent",
    "is_agent_thread",
    "register_command",
    "start",
]

_start_lock = threading.Lock()
_agent = None


def start(directory, token):
    """Starts the agent (idempotent) and returns its details.

    Returns ``{"socket": <path>, "agent_version": ..., "pid": ..., ...}``.
    A second call in the same process, from this copy of the package or
    from another one (another token), returns the running agent's details
    with ``"already_running": true`` instead of starting a second agent.
    Raises AgentStartError (with a message naming the fix) when the private
    directory or the socket path is unusable.
    """
    global _agent
    with _start_lock:
        if _agent is not None and _agent.running:
            return dict(_agent.details(), already_running=True)
        for thread in threading.enumerate():
            details = getattr(thread, "peeka_details", None)
            if (
                isinstance(details, dict)
                and thread.name.startswith("peeka-agent")
                and thread.is_alive()
            ):
                return dict(details, already_running=True)
        agent = Agent(directory, token, package_name=__name__)
        # The bootstrap lowered the switch interval for the load: the agent
        # keeps it so until the client that attached is answered.
        boost = getattr(globals().get("__loader__"), "boost", None)
        previous = boost.pop("previous", None) if isinstance(boost, dict) else None
        if previous is not None:
            agent.gil_boost.adopt(previous)
        try:
            details = agent.start()
        except BaseException:
            agent.gil_boost.release_adopted()
            raise
        _agent = agent
        return details


def current_agent():
    """The agent started by this copy of the package, or None."""
    agent = _agent
    if agent is not None and agent.running:
        return agent
    return None
