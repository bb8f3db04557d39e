"""Resolving a probe ``pattern`` to the functions it names, without importing anything.

A pattern is ``module.function``, ``module.Class.method`` or
``module.Class.Inner.method``; the module part is the longest dotted prefix
found in ``sys.modules`` (the agent never imports: a module the target has
not imported cannot be probed). The last part may be a glob (``*``, ``?``,
``[...]``): ``shop.cart.Cart.*`` names every function defined in ``Cart``.

What a name may resolve to (read from the real namespaces, ``vars()`` of
modules and the ``__dict__`` of the classes of the MRO, never through
``getattr``, so no property, ``__getattr__`` or metaclass code runs):

- a Python function (``def`` or ``async def``, generators too);
- a ``staticmethod`` or ``classmethod`` (its ``__func__``);
- a ``property`` (its getter, ``fget``);
- a method inherited from a base class (the base's function, which is then
  probed for every class that uses it).

Builtins, C extension functions and other callables cannot be probed; a
pattern naming only those fails with ``not_found`` saying why. A pattern
resolving to nothing fails with ``not_found`` and up to 5 close matches
(``difflib``) among the names of ``sys.modules`` and of the module and
classes the pattern reached.

Interface: :func:`resolve(pattern) <resolve>` returns a list of
:class:`Target` or raises ``CommandError(not_found | invalid_params)``.
"""

import sys
import types

from .commands import CommandError
from .introspect import class_mro, class_namespace
from .wire import ErrorCode

#: Candidates examined for "did you mean" (bounds the work of a failed lookup).
MAX_CANDIDATES = 20000
#: Close matches listed in a not_found message.
MAX_SUGGESTIONS = 5
#: Functions one pattern may match.
MAX_MATCHES = 256

_GLOB_CHARS = frozenset("*?[")

# Code flags (the values of inspect.CO_*; inspect itself is not imported).
CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08
CO_GENERATOR = 0x20
CO_COROUTINE = 0x80
CO_ASYNC_GENERATOR = 0x200

KIND_FUNCTION = "function"
KIND_COROUTINE = "coroutine"
KIND_GENERATOR = "generator"
KIND_ASYNC_GENERATOR = "async_generator"


def function_kind(code):
    """``function``, ``coroutine``, ``generator`` or ``async_generator``, from code flags."""
    flags = code.co_flags
    if flags & CO_COROUTINE:
        return KIND_COROUTINE
    if flags & CO_ASYNC_GENERATOR:
        return KIND_ASYNC_GENERATOR
    if flags & CO_GENERATOR:
        return KIND_GENERATOR
    return KIND_FUNCTION


#: id(function) -> the code object it ran before a probe swapped its
#: ``__code__`` (kept by :mod:`.probe_code_swap` while the swap lasts), so
#: that a function already probed resolves to its own code, not the wrapper.
swapped_originals = {}


class Target(object):
    """One function a pattern resolved to.

    ``name`` is the dotted name as the pattern reached it; ``function`` the
    function object; ``code`` its code object at resolution time;
    (the original one if a probe has swapped it for a wrapper);
    ``is_method`` whether its first parameter is ``self``/``cls`` (a plain
    method, a classmethod or a property getter), which probes report as
    ``target`` rather than in ``params``.
    """

    __slots__ = ("name", "function", "code", "kind", "is_method")

    def __init__(self, name, function, is_method):
        self.name = name
        self.function = function
        self.code = swapped_originals.get(id(function)) or function.__code__
        self.kind = function_kind(self.code)
        self.is_method = is_method and (
            self.code.co_argcount > 0 or bool(self.code.co_flags & CO_VARARGS)
        )

    def describe(self):
        """The JSON-able description used in responses (``matched``)."""
        code = self.code
        return {
            "name": self.name,
            "file": code.co_filename,
            "line": code.co_firstlineno,
            "kind": self.kind,
        }


def _namespace_of(owner):
    """The mapping to read names from: a module's dict or a class's own namespace."""
    if isinstance(owner, types.ModuleType):
        try:
            return object.__getattribute__(owner, "__dict__")
        except Exception:
            return {}
    return class_namespace(owner)


def _lookup(owner, name):
    """``name`` in a module's dict or along a class's MRO; (value, found)."""
    if isinstance(owner, type):
        for klass in class_mro(owner):
            namespace = class_namespace(klass)
            if name in namespace:
                return namespace[name], True
        return None, False
    namespace = _namespace_of(owner)
    if name in namespace:
        return namespace[name], True
    return None, False


def _as_function(value, in_class):
    """(function, is_method) for something a pattern may probe, or (None, why)."""
    if isinstance(value, staticmethod):
        value = value.__func__
        return (value, False) if isinstance(value, types.FunctionType) else (None, "static")
    if isinstance(value, classmethod):
        value = value.__func__
        return (value, True) if isinstance(value, types.FunctionType) else (None, "classmethod")
    if isinstance(value, property):
        getter = value.fget
        return (getter, True) if isinstance(getter, types.FunctionType) else (None, "property")
    if isinstance(value, types.FunctionType):
        return value, in_class
    return None, type(value).__name__


def _module_prefix(parts):
    """(module, number of parts naming it) for the longest prefix in sys.modules."""
    modules = sys.modules
    for count in range(len(parts), 0, -1):
        module = modules.get(".".join(parts[:count]))
        if isinstance(module, types.ModuleType):
            return module, count
    return None, 0


def resolve(pattern):
    """The list of :class:`Target` that ``pattern`` names (see the module documentation)."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise CommandError(ErrorCode.INVALID_PARAMS, "`pattern` must be a non-empty string")
    pattern = pattern.strip()
    parts = pattern.split(".")
    if any(not part for part in parts) or any(_GLOB_CHARS & set(part) for part in parts[:-1]):
        raise CommandError(
            ErrorCode.INVALID_PARAMS,
            "invalid pattern `%s`: use module.function or module.Class.method (a glob only "
            "in the last part)" % pattern,
        )
    module, used = _module_prefix(parts)
    if module is None:
        raise _not_found(pattern, "no imported module matches `%s`" % pattern, None)
    if used == len(parts):
        raise CommandError(
            ErrorCode.INVALID_PARAMS,
            "`%s` is a module; name a function in it (`%s.<function>`)" % (pattern, pattern),
        )
    owner = module
    prefix = ".".join(parts[:used])
    for index in range(used, len(parts) - 1):
        value, found = _lookup(owner, parts[index])
        if not found or not isinstance(value, type):
            what = (
                "has no class `%s`" % parts[index]
                if not found
                else ("`%s` is not a class" % parts[index])
            )
            raise _not_found(pattern, "`%s` %s" % (prefix, what), owner)
        owner = value
        prefix = prefix + "." + parts[index]
    last = parts[-1]
    in_class = isinstance(owner, type)
    names = [last]
    if _GLOB_CHARS & set(last):
        import fnmatch  # only for globs: it imports re

        try:
            names = sorted(
                name
                for name in list(_namespace_of(owner).keys())
                if isinstance(name, str) and fnmatch.fnmatchcase(name, last)
            )
        except Exception:
            names = []
    targets = []
    refused = []
    seen = set()
    for name in names:
        value, found = _lookup(owner, name)
        if not found:
            continue
        function, is_method = _as_function(value, in_class)
        if function is None:
            refused.append("`%s.%s` is a %s, not a Python function" % (prefix, name, is_method))
            continue
        if id(function) in seen:
            continue
        seen.add(id(function))
        targets.append(Target(prefix + "." + name, function, is_method))
        if len(targets) > MAX_MATCHES:
            raise CommandError(
                ErrorCode.LIMIT_EXCEEDED,
                "`%s` matches more than %d functions; narrow the pattern" % (pattern, MAX_MATCHES),
            )
    if not targets:
        if refused and len(names) == 1:
            raise CommandError(
                ErrorCode.NOT_FOUND,
                "%s; only functions written in Python can be probed" % refused[0],
            )
        raise _not_found(pattern, "`%s` has no function matching `%s`" % (prefix, last), owner)
    return targets


def _candidates(owner):
    """Names to suggest from: every module, plus the names reachable in ``owner``."""
    names = []
    try:
        modules = list(sys.modules.items())
    except Exception:
        modules = []
    for name, _module in modules:
        if isinstance(name, str):
            names.append(name)
    if owner is not None:
        base = _owner_name(owner)
        try:
            items = list(_namespace_of(owner).items())
        except Exception:
            items = []
        for name, value in items[:MAX_CANDIDATES]:
            if not isinstance(name, str):
                continue
            names.append(base + "." + name)
            if isinstance(value, type):
                try:
                    inner = list(class_namespace(value).keys())
                except Exception:
                    continue
                names.extend(base + "." + name + "." + n for n in inner if isinstance(n, str))
    return names[:MAX_CANDIDATES]


def _owner_name(owner):
    if isinstance(owner, types.ModuleType):
        try:
            return object.__getattribute__(owner, "__dict__").get("__name__", "?")
        except Exception:
            return "?"
    namespace = class_namespace(owner)
    module = namespace.get("__module__", "?")
    qualname = type.__dict__["__qualname__"].__get__(owner)
    return "%s.%s" % (module, qualname)


def _not_found(pattern, reason, owner):
    import difflib  # only on this error path

    suggestions = difflib.get_close_matches(
        pattern, _candidates(owner), n=MAX_SUGGESTIONS, cutoff=0.6
    )
    message = "%s (the agent never imports modules: the target must have imported it)" % reason
    if suggestions:
        message += "; close matches: " + ", ".join(suggestions)
    return CommandError(ErrorCode.NOT_FOUND, message)
