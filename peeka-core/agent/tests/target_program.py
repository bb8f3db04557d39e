"""A target process for the isolation tests, driven by JSON lines on stdin.

Each input line is a command; each answer is one JSON line on stdout:

- ``{"op": "snapshot"}``: thread names, loaded module names, the import
  system's finders, the switch interval;
- ``{"op": "setuid", "uid": N}``: drops to uid/gid N (everything the agent
  imports is imported beforehand, since the interpreter's files may be
  unreadable to N);
- ``{"op": "bootstrap", "path", "directory", "token", "entry"}``: runs the
  real bootstrap (peeka-attach/src/bootstrap.py) with its placeholders
  filled in and the agent's bundle written, as the client does, and waits
  for its status file;
- ``{"op": "start", "directory", "token"}``: loads the agent copy found in
  ``directory/peeka_agent`` as the bootstrap would and calls start();
- ``{"op": "spin"}``: starts a CPU-bound thread (the target being busy);
- ``{"op": "native_ids"}``: the OS thread ids of the ``peeka-*`` threads;
- ``{"op": "fork_exit"}``: forks a child that exits normally (its atexit
  handlers run), and waits for it; the answer has what the child saw of
  the agent (``child``: see :func:`child_view`);
- ``{"op": "agent_modules_alive"}``: how many module objects of agent
  copies are still in memory (collected or not);
- ``{"op": "hot", "calls": N}``: calls :func:`hot` N times, answers the time taken;
- ``{"op": "exit"}``: exits normally (atexit handlers run).
"""

import importlib.util
import json
import os
import sys
import threading
import time

# Everything the agent imports, imported while the interpreter's files are
# readable (before a setuid to an unprivileged uid).
import ast  # noqa: F401
import atexit  # noqa: F401
import collections  # noqa: F401
import enum  # noqa: F401
import errno  # noqa: F401
import io  # noqa: F401
import itertools  # noqa: F401
import operator  # noqa: F401
import queue  # noqa: F401
import socket  # noqa: F401
import stat  # noqa: F401
import tokenize  # noqa: F401
import traceback  # noqa: F401
import types  # noqa: F401


def answer(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


def hot(value):
    """The function the fork tests watch."""
    return value + 1


HOT_CODE = hot.__code__


def call_hot(calls):
    started = time.perf_counter()
    for value in range(calls):
        hot(value)
    return time.perf_counter() - started


def socket_inodes():
    """The inodes of this process's open sockets."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink("/proc/self/fd/" + name)
        except OSError:
            continue
        if link.startswith("socket:["):
            found.append(int(link[8:-1]))
    return sorted(found)


def child_view():
    """What a forked child sees of the agent, right after the fork."""
    monitoring = getattr(sys, "monitoring", None)
    return {
        "sockets": socket_inodes(),
        "peeka_modules": sorted(name for name in sys.modules if name.startswith("peeka")),
        "meta_path": [repr(finder) for finder in sys.meta_path],
        "switch_interval": sys.getswitchinterval(),
        "hot_is_original": hot.__code__ is HOT_CODE,
        "tools": [monitoring.get_tool(tool) for tool in range(6)] if monitoring else [],
        "hot_seconds": call_hot(20000),
        "peeka_threads": [t.name for t in threading.enumerate() if t.name.startswith("peeka-")],
    }


def snapshot():
    return {
        "threads": sorted(thread.name for thread in threading.enumerate()),
        "modules": sorted(sys.modules),
        "meta_path": [repr(finder) for finder in sys.meta_path],
        "switch_interval": sys.getswitchinterval(),
        "fork_slot": repr(getattr(sys, "_peeka_fork_slot", "absent")),
    }


def spin():
    def burn():
        total = 0
        while True:
            total += 1

    threading.Thread(target=burn, name="spinner", daemon=True).start()


def write_bundle(directory, name):
    """Writes every file under ``directory`` into bundle ``name`` as the client does."""
    parts = [b"PEEKA-BUNDLE 1\n"]
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for file_name in sorted(files):
            if not file_name.endswith(".py"):
                continue
            path = os.path.join(root, file_name)
            with open(path, "rb") as handle:
                contents = handle.read()
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            parts.append(b"%d %s\n" % (len(contents), relative.encode("utf-8")))
            parts.append(contents)
    with open(os.path.join(directory, name), "wb") as handle:
        handle.write(b"".join(parts))


def bootstrap(command):
    with open(command["path"]) as handle:
        text = handle.read()
    bundle = "bootstrap-%s.bundle" % command["token"]
    write_bundle(command["directory"], bundle)
    replacements = {
        "__PEEKA_DIRECTORY__": command["directory"],
        "__PEEKA_TOKEN__": command["token"],
        "__PEEKA_BUNDLE_FILE__": bundle,
        "__PEEKA_ENTRY_FILE__": command["entry"],
        "__PEEKA_ENTRY_FUNCTION__": "start",
    }
    for placeholder, value in replacements.items():
        text = text.replace(placeholder, repr(value))
    exec(compile(text, "<peeka-bootstrap>", "exec"), {"__name__": "__peeka_bootstrap__"})
    status = os.path.join(command["directory"], "status." + command["token"])
    deadline = time.monotonic() + 10
    while not os.path.exists(status) and time.monotonic() < deadline:
        time.sleep(0.01)
    with open(status) as handle:
        return json.load(handle)


def start(command):
    directory = command["directory"]
    entry = os.path.join(directory, "peeka_agent", "__init__.py")
    name = "_peeka_agent_" + command["token"]
    spec = importlib.util.spec_from_file_location(
        name, entry, submodule_search_locations=[os.path.dirname(entry)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.start(directory, command["token"])


def main():
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        try:
            if op == "snapshot":
                answer(snapshot())
            elif op == "setuid":
                os.setgid(command["uid"])
                os.setuid(command["uid"])
                answer({"uid": os.getuid()})
            elif op == "bootstrap":
                answer(bootstrap(command))
            elif op == "start":
                answer(start(command))
            elif op == "spin":
                spin()
                answer({"spinning": True})
            elif op == "native_ids":
                answer(
                    dict(
                        (thread.name, getattr(thread, "native_id", None))
                        for thread in threading.enumerate()
                        if thread.name.startswith("peeka-")
                    )
                )
            elif op == "fork_exit":
                # A child that exits the normal way (atexit hooks run), as a
                # prefork server's worker does.
                read_end, write_end = os.pipe()
                interval_at_fork = sys.getswitchinterval()
                child = os.fork()
                if child == 0:
                    os.close(read_end)
                    sys.stdin.close()
                    with os.fdopen(write_end, "w") as pipe:
                        pipe.write(json.dumps(child_view()))
                    raise SystemExit(0)
                os.close(write_end)
                with os.fdopen(read_end) as pipe:
                    view = json.loads(pipe.read() or "null")
                _, status = os.waitpid(child, 0)
                answer({"child": child, "status": status, "view": view,
                        "parent_sockets": socket_inodes(),
                        "interval_at_fork": interval_at_fork,
                        "parent_seconds": call_hot(20000)})
            elif op == "agent_modules_alive":
                import gc

                alive = [
                    o.__name__
                    for o in gc.get_objects()
                    if type(o) is type(sys) and o.__name__.startswith("_peeka_agent_")
                ]
                answer({"alive": sorted(alive)})
            elif op == "hot":
                answer({"seconds": call_hot(command["calls"])})
            elif op == "exit":
                answer({"exiting": True})
                return 0
            else:
                answer({"error": "unknown op %r" % op})
        except Exception as exc:
            answer({"error": "%s: %s" % (type(exc).__name__, exc)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
