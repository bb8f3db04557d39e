"""A child forked from an attached process keeps nothing of the agent.

Prefork servers (gunicorn, multiprocessing pools, celery) fork all the
time. A child is a copy of the parent: it has the agent's objects, its
probes in the functions, its sockets and its ``atexit`` hook, but none of
its threads, so nothing there would ever deliver or end them. The agent is
therefore forgotten in the child the moment it is born, by a hook of
``os.register_at_fork(after_in_child=...)`` that calls
``Agent._after_fork_in_child`` (see :mod:`.server`): probes and other
instrumentation off, inherited sockets closed, the switch interval given
back, the ``atexit`` hook unregistered, the agent's modules forgotten. It
runs on the forking thread, the only one the child has, so it takes no lock
(a lock held by another thread at the fork stays held forever in the
child): what it changes is written to be safe without one.

A fork hook cannot be unregistered, so one hook per process is registered,
the first time an agent starts, and stays for the life of the process:

- the hook is a function of a few lines whose globals are an empty dict of
  its own, so it keeps no agent module alive after detach;
- it calls what its *slot* (a one-element list) holds: the running agent's
  method while attached, None after detach (the hook then does nothing);
- the slot is kept as ``sys._peeka_fork_slot``, so that the next agent
  reuses the hook instead of registering another on every attach.

These two objects, the hook and ``sys._peeka_fork_slot``, are what an
attach leaves in a process after detach (docs/architecture.md).
"""

import os
import sys

#: The attribute of ``sys`` that keeps the hook's slot from one attach to the next.
SLOT_NAME = "_peeka_fork_slot"


def _hook_for(slot):
    def peeka_forget_agent_in_child():
        callback = slot[0]
        if callback is not None:
            slot[0] = None
            callback()

    # The same function on a globals dict of its own (it reads no global),
    # so that the hook keeps no module's namespace alive.
    return type(peeka_forget_agent_in_child)(
        peeka_forget_agent_in_child.__code__,
        {},
        peeka_forget_agent_in_child.__name__,
        None,
        peeka_forget_agent_in_child.__closure__,
    )


def _slot():
    slot = getattr(sys, SLOT_NAME, None)
    if type(slot) is list and len(slot) == 1:
        return slot
    return None


def point_at(callback):
    """Makes a fork call ``callback()`` in the child (registering the hook once per process).

    ``callback`` must never raise and must take no lock. Returns False
    where ``os.register_at_fork`` does not exist (no ``fork`` there).
    """
    slot = _slot()
    if slot is None:
        register = getattr(os, "register_at_fork", None)
        if register is None:
            return False
        slot = [None]
        register(after_in_child=_hook_for(slot))
        setattr(sys, SLOT_NAME, slot)
    slot[0] = callback
    return True


def release(callback):
    """A fork no longer calls ``callback`` (if it was the one pointed at)."""
    slot = _slot()
    if slot is not None and slot[0] == callback:
        slot[0] = None


def close_inherited(sock):
    """Closes the child's copy of ``sock`` without a lock; the object then reads as closed.

    ``detach()`` first, so that the object forgets the descriptor and never
    closes it again (the number may be reused by the child meanwhile).
    """
    if sock is None:
        return
    try:
        descriptor = sock.detach()
    except BaseException:
        return
    if descriptor is not None and descriptor >= 0:
        try:
            os.close(descriptor)
        except OSError:
            pass
