"""Pending probes: a pattern that names a function which does not exist yet.

A probe command asked with ``"pending": true`` whose pattern resolves to
nothing (``not_found``) does not fail: its stream opens with no function
probed (``"pending": true`` and an empty ``matched`` in the response) and the
probe waits here until the function appears. Then the handlers are
installed exactly as if the pattern had resolved at once, and the stream
gets one ``resolved`` event (``{"matched": [...]}``, as in the response).

When the function may appear:

- A module named by a prefix of the pattern finishes importing (``shop``
  or ``shop.cart`` for ``shop.cart.Cart.total``). While probes are pending,
  a finder sits first in ``sys.meta_path``; it only acts on those names: it
  asks the other finders for the spec and wraps its loader so that the
  pattern is resolved again right after the module's code has run, on the
  importing thread, before ``import`` returns. The real loader is put back
  on the spec and the module before the module's code runs, so the module
  sees nothing of Peeka.
- ``__main__`` of a program started by ``peeka-cli run``: the runner
  (:mod:`.run_program`) executes the program statement by statement while a
  probe waits for ``__main__`` and calls :func:`module_loaded` after each.

Bounds: only names that are prefixes of a pending pattern are looked at;
the finder leaves ``sys.meta_path`` when no probe is pending (it is replaced
by a new list rather than changed in place, so an import iterating over it
on another thread is not disturbed). A pending probe goes when its stream
ends (cancel, ``reset``, detach, ``times``), whether it resolved or not.

A later resolution that fails for another reason than ``not_found`` (say,
more than ``MAX_MATCHES`` functions) ends the stream with that error.
"""

import sys
import threading

from .commands import CommandError
from .patterns import resolve
from .wire import ErrorCode

_lock = threading.Lock()
_pending = []
_finder = None


class _Entry(object):
    __slots__ = ("probe", "make_handler", "modules")

    def __init__(self, probe, make_handler):
        self.probe = probe
        self.make_handler = make_handler
        parts = probe.pattern.strip().split(".")
        self.modules = frozenset(".".join(parts[:count]) for count in range(1, len(parts)))


def add(probe, make_handler):
    """Makes ``probe`` (installed with no target) wait for its pattern to resolve."""
    entry = _Entry(probe, make_handler)
    with _lock:
        _pending.append(entry)
        _ensure_finder()
    probe.stream.on_close(lambda: _discard(entry))
    return entry


def waiting_for(module_name):
    """Whether some pending probe may resolve once ``module_name`` has (more) names."""
    with _lock:
        return any(module_name in entry.modules for entry in _pending)


def pending_patterns():
    """The patterns still waiting (for ``info``-like reports and tests)."""
    with _lock:
        return [entry.probe.pattern for entry in _pending]


def module_loaded(module_name):
    """Resolves again the pending probes that ``module_name`` may complete."""
    with _lock:
        entries = [entry for entry in _pending if module_name in entry.modules]
    for entry in entries:
        _try(entry)


def _discard(entry):
    with _lock:
        try:
            _pending.remove(entry)
        except ValueError:
            pass
        if not _pending:
            _drop_finder()


def _try(entry):
    probe = entry.probe
    try:
        targets = resolve(probe.pattern)
    except CommandError as exc:
        if exc.code == ErrorCode.NOT_FOUND:
            return False
        _end_with_error(probe, exc)
        return False
    except BaseException as exc:
        _end_with_error(probe, exc)
        return False
    if probe.command == "trace":
        for target in targets:
            if target.kind != "function":
                _end_with_error(
                    probe,
                    CommandError(
                        ErrorCode.INVALID_PARAMS,
                        "`%s` is a %s function: trace follows plain functions only"
                        % (target.name, target.kind),
                    ),
                )
                return False
    with _lock:
        if entry not in _pending:
            return False
        _pending.remove(entry)
        if not _pending:
            _drop_finder()
    if probe.removed:
        return False
    try:
        probe.targets = targets
        probe.stream.labels["functions"] = probe.functions
        probe.install(entry.make_handler)
    except BaseException as exc:
        _end_with_error(probe, exc)
        return False
    if probe.removed:
        # The stream ended while the handlers went in: take them out again.
        _undo(probe)
        return False
    probe.stream.event("resolved", {"matched": [target.describe() for target in targets]})
    return True


def _undo(probe):
    from . import probes as registry

    with probe._lock:
        handlers, probe.handlers = probe.handlers, []
    with registry._registry_lock:
        registry._probes.pop(probe.number, None)
    for handler in handlers:
        try:
            probe.backend.remove(handler)
        except BaseException:
            pass


def _end_with_error(probe, exc):
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    if not isinstance(exc, CommandError):
        exc = CommandError(
            ErrorCode.INTERNAL,
            "resolving `%s` failed (%s: %s)" % (probe.pattern, type(exc).__name__, exc),
        )
    try:
        probe.stream.end("error", exc)
    except BaseException:
        pass


# -- the import hook -------------------------------------------------------------


class _LoaderWrapper(object):
    """Runs the real loader, then resolves the probes waiting for the module."""

    def __init__(self, loader, name):
        self._peeka_loader = loader
        self._peeka_name = name

    def create_module(self, spec):
        create = getattr(self._peeka_loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        real = self._peeka_loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = real
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = real
        real.exec_module(module)
        try:
            module_loaded(self._peeka_name)
        except BaseException:
            pass

    def __getattr__(self, name):
        return getattr(self._peeka_loader, name)


class _Finder(object):
    """First in ``sys.meta_path`` while probes are pending; acts only on their modules."""

    def __init__(self):
        self._busy = threading.local()

    def find_spec(self, name, path=None, target=None):
        if not waiting_for(name) or getattr(self._busy, "name", None) == name:
            return None
        self._busy.name = name
        try:
            spec = None
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.name = None
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _LoaderWrapper(loader, name)
        return spec

    def invalidate_caches(self):
        pass


def _ensure_finder():
    global _finder
    if _finder is None:
        _finder = _Finder()
        sys.meta_path = [_finder] + [f for f in sys.meta_path if not isinstance(f, _Finder)]


def _drop_finder():
    global _finder
    finder, _finder = _finder, None
    if finder is not None:
        sys.meta_path = [f for f in sys.meta_path if f is not finder]
