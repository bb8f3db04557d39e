"""The target's classes: finding, naming and describing them without running its code.

Shared by ``sc``, ``sm``, ``inspect`` and ``memory``.

- :func:`all_classes` lists every live class by walking
  ``type.__subclasses__`` from ``object`` (C code only: no import, no
  metaclass code), at most :data:`MAX_CLASSES` of them; classes of the agent
  itself (modules ``_peeka_agent_*``) are left out.
- :func:`full_name` is ``module.QualName`` (just ``QualName`` for builtins),
  read with the C getters of :mod:`.introspect`.
- :func:`resolve_class` turns a name given by the user into one class:
  ``module.Class`` or ``module.Outer.Inner`` (the module must be in
  ``sys.modules``; nested classes are read from the class's own namespace),
  a builtin name (``dict``), or a bare class name that exactly one loaded
  class has (``Cart``). Otherwise ``CommandError(not_found)`` with close
  matches, or ``invalid_params`` when a bare name is ambiguous.
- :func:`member_of` describes one entry of a class namespace as a method
  (``method``, ``staticmethod``, ``classmethod``, ``property``, ``builtin``)
  and :func:`signature_of` renders its parameters from the code object
  (names, defaults of simple literal types, ``/``, ``*``, ``*args``,
  ``**kwargs``); annotations are never read (on 3.14 reading them may run
  code), nor ``__signature__`` or ``__wrapped__``.
"""

import sys
import types

from .commands import CommandError
from .introspect import class_module, class_namespace, class_qualname
from .wire import ErrorCode

#: Most classes one walk visits; beyond it results say ``truncated``.
MAX_CLASSES = 200000
#: Prefix of the agent's own package names (every copy of it).
AGENT_PACKAGE_PREFIX = "_peeka_agent_"

_subclasses_of = type.__dict__["__subclasses__"]
_class_bases = type.__dict__["__bases__"].__get__

CO_VARARGS = 0x04
CO_VARKEYWORDS = 0x08
CO_GENERATOR = 0x20
CO_COROUTINE = 0x80
CO_ASYNC_GENERATOR = 0x200

_C_METHOD_TYPES = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
)
_SIMPLE_DEFAULTS = (type(None), bool, int, float, complex, str, bytes)


def is_module(value):
    """Whether ``value`` is a module, by its real type (never its ``__class__``)."""
    return issubclass(type(value), types.ModuleType)


def is_class(value):
    """Whether ``value`` is a class, by its real type."""
    return issubclass(type(value), type)


def full_name(cls):
    """``module.QualName`` of a class (``QualName`` for builtins); never raises."""
    try:
        qualname = class_qualname(cls)
        module = class_module(cls)
    except Exception:
        return "?"
    if type(qualname) is not str:
        qualname = "?"
    if type(module) is not str or module == "builtins":
        return qualname
    return module + "." + qualname


def module_of(cls):
    """The class's ``__module__`` (a string, or None)."""
    try:
        module = class_module(cls)
    except Exception:
        return None
    return module if type(module) is str else None


def is_agent_class(cls):
    """Whether a class belongs to the agent itself."""
    module = module_of(cls)
    return module is not None and module.startswith(AGENT_PACKAGE_PREFIX)


def all_classes(limit=MAX_CLASSES):
    """(every live class but the agent's, whether the walk stopped at ``limit``)."""
    found = []
    seen = {id(object)}
    pending = [object]
    visited = 0
    while pending:
        cls = pending.pop()
        visited += 1
        if visited > limit:
            return found, True
        if not is_agent_class(cls):
            found.append(cls)
        try:
            subclasses = _subclasses_of(cls)
        except Exception:
            continue
        for sub in subclasses:
            key = id(sub)
            if key not in seen:
                seen.add(key)
                pending.append(sub)
    return found, False


def bases_of(cls):
    """Full names of a class's direct bases."""
    try:
        return [full_name(base) for base in _class_bases(cls)]
    except Exception:
        return []


def file_of(cls):
    """The file of the class's module (from ``sys.modules``; no import), or None."""
    module = sys.modules.get(module_of(cls) or "")
    if not is_module(module):
        return None
    try:
        path = object.__getattribute__(module, "__dict__").get("__file__")
    except Exception:
        return None
    return path if type(path) is str else None


def _module_prefix(parts):
    modules = sys.modules
    for count in range(len(parts), 0, -1):
        module = modules.get(".".join(parts[:count]))
        if is_module(module):
            return module, count
    return None, 0


def _by_path(name):
    """The class at dotted path ``name`` (module, then classes), or None."""
    parts = name.split(".")
    if any(not part for part in parts):
        return None
    module, used = _module_prefix(parts)
    if module is None or used == len(parts):
        if len(parts) == 1:
            builtins = sys.modules.get("builtins")
            value = object.__getattribute__(builtins, "__dict__").get(name)
            return value if is_class(value) else None
        return None
    try:
        value = object.__getattribute__(module, "__dict__").get(parts[used])
    except Exception:
        return None
    for part in parts[used + 1 :]:
        if not is_class(value):
            return None
        value = class_namespace(value).get(part)
    return value if is_class(value) else None


def resolve_class(name, what="class"):
    """The one class ``name`` denotes (see the module documentation); raises CommandError."""
    if not isinstance(name, str) or not name.strip():
        raise CommandError(ErrorCode.INVALID_PARAMS, "name a %s, e.g. `mymodule.MyClass`" % what)
    name = name.strip()
    found = _by_path(name)
    if found is not None:
        return found
    classes, _truncated = all_classes()
    if "." not in name:
        same = [cls for cls in classes if _qualname_is(cls, name)]
        if len(same) == 1:
            return same[0]
        if len(same) > 1:
            names = sorted(set(full_name(cls) for cls in same))
            raise CommandError(
                ErrorCode.INVALID_PARAMS,
                "`%s` names %d classes: %s; give the full name (module.Class)"
                % (name, len(same), ", ".join(names[:10])),
            )
    import difflib  # only on this error path

    candidates = sorted(set(full_name(cls) for cls in classes[:MAX_CLASSES]))
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.6)
    message = (
        "no loaded %s is named `%s` (give module.Class; the module must already be imported "
        "by the target, the agent never imports)" % (what, name)
    )
    if close:
        message += "; close matches: " + ", ".join(close)
    raise CommandError(ErrorCode.NOT_FOUND, message)


def _qualname_is(cls, name):
    try:
        return class_qualname(cls) == name
    except Exception:
        return False


def simple_text(value, limit=60):
    """A short rendering of a default value: the repr of a literal, else ``<Type>``."""
    if type(value) in _SIMPLE_DEFAULTS:
        try:
            text = repr(value)
        except Exception:
            text = "?"
        if len(text) > limit:
            text = text[:limit] + "..."
        return text
    return "<%s>" % full_name(type(value))


def code_kind(code):
    """``function``, ``coroutine``, ``generator`` or ``async_generator``."""
    flags = code.co_flags
    if flags & CO_COROUTINE:
        return "coroutine"
    if flags & CO_ASYNC_GENERATOR:
        return "async_generator"
    if flags & CO_GENERATOR:
        return "generator"
    return "function"


def signature_of(function):
    """``(self, a, b=1, *args, c, **kwargs)`` from a function's code; None if unknown."""
    if type(function) is types.FunctionType:
        code = function.__code__
        defaults = function.__defaults__ or ()
        kwdefaults = function.__kwdefaults__ or {}
    elif type(function) in _C_METHOD_TYPES:
        try:
            text = function.__text_signature__
        except Exception:
            return None
        if type(text) is not str:
            return None
        return text.replace("($self, /)", "(self)").replace("$self", "self").replace(
            "$type", "cls"
        ).replace("$module, ", "").replace("($module)", "()")
    else:
        return None
    names = code.co_varnames
    argcount = code.co_argcount
    kwonly = code.co_kwonlyargcount
    posonly = getattr(code, "co_posonlyargcount", 0)
    flags = code.co_flags
    parts = []
    first_default = argcount - len(defaults)
    for index in range(argcount):
        text = names[index]
        if index >= first_default:
            text += "=" + simple_text(defaults[index - first_default])
        parts.append(text)
        if posonly and index == posonly - 1:
            parts.append("/")
    extra = argcount + kwonly
    if flags & CO_VARARGS:
        parts.append("*" + names[extra])
    elif kwonly:
        parts.append("*")
    for name in names[argcount : argcount + kwonly]:
        text = name
        if name in kwdefaults:
            text += "=" + simple_text(kwdefaults[name])
        parts.append(text)
    if flags & CO_VARKEYWORDS:
        parts.append("**" + names[extra + (1 if flags & CO_VARARGS else 0)])
    return "(" + ", ".join(parts) + ")"


def member_of(value):
    """(kind, function) when a namespace entry is a method, else (None, None).

    ``kind`` is ``method``, ``staticmethod``, ``classmethod``, ``property``
    (its getter is the function) or ``builtin`` (a method written in C).
    """
    tp = type(value)
    if tp is types.FunctionType:
        return "method", value
    if tp is staticmethod:
        return "staticmethod", value.__func__
    if tp is classmethod:
        return "classmethod", value.__func__
    if tp is property:
        return "property", value.fget
    if tp in _C_METHOD_TYPES:
        return "builtin", value
    return None, None


def describe_member(cls, name, kind, function, detail):
    """The JSON description of one method ``name`` of ``cls``."""
    entry = {"class": full_name(cls), "name": name, "kind": kind}
    if not detail:
        return entry
    entry["signature"] = signature_of(function)
    if type(function) is types.FunctionType:
        code = function.__code__
        entry["file"] = code.co_filename
        entry["line"] = code.co_firstlineno
        entry["function_kind"] = code_kind(code)
    else:
        entry["file"] = None
        entry["line"] = None
        entry["function_kind"] = None
    return entry
