"""Text for the values capture does not expand, written without the target's code.

:mod:`.capture` shows a value it does not expand (an object beyond the
depth or without fields, an exception, a function, a dict key that is not
a string...) as one string. By default (``CaptureLimits(call_repr=False)``)
that string never comes from the value's own ``__repr__`` or ``__str__``:
``AtEnter`` rows are captured on the application's thread, inside the
call, and a ``__repr__`` may sleep, take a lock the caller holds, query a
database or recurse. :func:`value_text` writes the string itself, from
what the C getters of builtin types read:

==============================  ===============================================
value                           text
==============================  ===============================================
exception                       ``ValueError('bad id')``: the class's name and
                                its ``args``, each shown by
                                :func:`literal_text` (a string or number as
                                its literal, anything else as below)
function, builtin function or   their own repr, C code that reads names and
method, method descriptor,      addresses only (these types cannot be
``_thread`` lock and RLock      subclassed; locks are trusted as exact types)
bound method                    ``<bound method Cart.total of <shop.Cart
                                object at 0x...>>``
module (or a subclass)          ``<module 'os' from '/usr/lib/.../os.py'>``,
                                from its ``__dict__``
``range``, ``slice``            ``range(0, 10, 2)``, ``slice(1, None, None)``
``decimal.Decimal``,            their own repr (C code of the standard
``datetime.date``,              library that formats numbers); a ``time`` or
``timedelta``, ``timezone``,    ``datetime`` shows its ``tzinfo`` by repr only
``time``, ``datetime``          when that is a plain ``datetime.timezone`` or a
                                ``zoneinfo.ZoneInfo`` with a string key,
                                otherwise as ``tzinfo=<mod.Type object at
                                0x...>``
``uuid.UUID``                   ``UUID('...')``, from its ``int`` slot
anything else                   ``<module.Class object at 0x...>``
==============================  ===============================================

Only these exact classes are trusted, and the standard library's only when
they are the very objects its loaded modules hold (they are looked up in
``sys.modules``, never imported): a subclass can override ``__repr__``, and
a class of the application can claim any ``__module__``.

How the parts are read: ``BaseException.args``, the slots of ``range``,
``slice``, bound methods and ``uuid.UUID``, a module's ``__dict__`` and a
datetime's ``tzinfo`` through the C descriptors of the builtin classes;
strings of a ``str`` subclass copied with ``str``'s own methods. Reading
a module's ``__name__`` from its ``__dict__`` compares keys, which could
only run code if the dict held a non-string key of the same hash.
"""

import _thread
import sys
import types

from .introspect import (
    class_name,
    class_namespace,
    class_module,
    class_qualname,
    type_cache_get,
    type_cache_put,
    type_name,
)

#: ``BaseException.args`` (a C getter): the arguments tuple.
exception_args = BaseException.__dict__["args"].__get__

_module_dict = types.ModuleType.__dict__["__dict__"].__get__
_method_func = types.MethodType.__dict__["__func__"].__get__
_method_self = types.MethodType.__dict__["__self__"].__get__
_function_qualname = types.FunctionType.__dict__["__qualname__"].__get__
_range_parts = tuple(range.__dict__[name].__get__ for name in ("start", "stop", "step"))
_slice_parts = tuple(slice.__dict__[name].__get__ for name in ("start", "stop", "step"))

#: Exact classes whose own repr is C code reading names, addresses and
#: counters only (a lock's state and owner).
_C_REPR_TYPES = (
    type(_thread.allocate_lock()),
    _thread.RLock,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.ClassMethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.GetSetDescriptorType,
    types.MemberDescriptorType,
)

#: Exception arguments shown, at most.
MAX_ARGUMENTS = 8
#: The longest text of one literal in an exception's or a slice's parts.
MAX_LITERAL = 80
#: An int of more bits is shown as ``<int of N bits>`` (see capture.py).
MAX_INT_BITS = 850

# Text kinds (cached per class).
_ADDRESS = 0
_EXCEPTION = 1
_C_REPR = 2
_METHOD = 3
_MODULE = 4
_RANGE = 5
_SLICE = 6
_DATE = 7  # decimal.Decimal, datetime.date, timedelta: always their repr
_TIMEZONE = 8
_WITH_TZINFO = 9  # datetime.time and datetime.datetime
_UUID = 10

#: (module, qualname) -> kind, for the standard library's classes.
_STDLIB = {
    ("decimal", "Decimal"): _DATE,
    ("datetime", "date"): _DATE,
    ("datetime", "timedelta"): _DATE,
    ("datetime", "timezone"): _TIMEZONE,
    ("datetime", "time"): _WITH_TZINFO,
    ("datetime", "datetime"): _WITH_TZINFO,
    ("uuid", "UUID"): _UUID,
}

_kinds = {}


def exact_str(text):
    """``text`` (a ``str`` or a subclass) as an exact ``str``, copied with ``str``'s methods."""
    if type(text) is str:
        return text
    return str.__getitem__(text, slice(None))


def address_text(value):
    """``<module.Class object at 0x...>``."""
    return "<%s object at 0x%x>" % (type_name(type(value)), id(value))


def literal_text(value):
    """A string, number, bytes or None as its literal; anything else as a placeholder."""
    tp = type(value)
    if value is None or tp is bool or tp is float or tp is complex:
        return repr(value)
    try:
        if issubclass(tp, str):
            size = str.__len__(value)
            text = repr(str.__getitem__(value, slice(0, MAX_LITERAL)))
            return text + "...<%d chars>" % size if size > MAX_LITERAL else text
        if issubclass(tp, int):
            number = int.__index__(value)
            if number.bit_length() > MAX_INT_BITS:
                return "<int of %d bits>" % number.bit_length()
            return int.__repr__(number)
        if issubclass(tp, float):
            return float.__repr__(float.__float__(value))
        for base in (bytes, bytearray):
            if issubclass(tp, base):
                size = base.__len__(value)
                text = repr(bytes(base.__getitem__(value, slice(0, MAX_LITERAL))))
                return text + "...<%d bytes>" % size if size > MAX_LITERAL else text
        for base in (list, tuple, dict, set, frozenset):
            if issubclass(tp, base):
                return "<%s len=%d>" % (type_name(tp), base.__len__(value))
    except Exception:
        pass
    return address_text(value)


def exception_repr(exc):
    """``Name(arg, ...)`` of an exception, as ``BaseException.__repr__`` shows it."""
    try:
        name = class_name(type(exc))
        name = exact_str(name) if issubclass(type(name), str) else "?"
        arguments = exception_args(exc)
        shown = [literal_text(argument) for argument in arguments[:MAX_ARGUMENTS]]
        if len(arguments) > MAX_ARGUMENTS:
            shown.append("...<%d arguments>" % len(arguments))
        return "%s(%s)" % (name, ", ".join(shown))
    except Exception:
        return address_text(exc)


def exception_message(exc):
    """What ``BaseException.__str__`` shows, but with no argument's ``__str__`` run."""
    arguments = exception_args(exc)
    if not arguments:
        return ""
    if len(arguments) == 1:
        only = arguments[0]
        if issubclass(type(only), str):
            return exact_str(only)
        return literal_text(only)
    shown = [literal_text(argument) for argument in arguments[:MAX_ARGUMENTS]]
    if len(arguments) > MAX_ARGUMENTS:
        shown.append("...")
    return "(%s)" % ", ".join(shown)


def exception_text(exc, limit=200):
    """``module.Type: message`` of an exception, its message cut at ``limit`` characters."""
    label = type_name(type(exc))
    try:
        message = exception_message(exc)
    except Exception:
        message = ""
    if len(message) > limit:
        message = message[:limit] + "..."
    return "%s: %s" % (label, message) if message else label


def _stdlib_kind(tp):
    """The kind of a class of the standard library's table, if ``tp`` is that very class."""
    module = class_module(tp)
    qualname = class_qualname(tp)
    if type(module) is not str or type(qualname) is not str:
        return _ADDRESS
    kind = _STDLIB.get((module, qualname))
    if kind is None:
        return _ADDRESS
    return kind if _loaded_class(module, qualname) is tp else _ADDRESS


def _loaded_class(module, name):
    """``module.name`` if the module is loaded (never imported), else None."""
    loaded = dict.get(sys.modules, module)
    if loaded is None or not issubclass(type(loaded), types.ModuleType):
        return None
    return dict.get(_module_dict(loaded), name)


def _is_one_of(tp, classes):
    """``tp in classes`` by identity (``in`` would run a metaclass's ``__eq__``)."""
    for klass in classes:
        if tp is klass:
            return True
    return False


def _kind(tp):
    kind = type_cache_get(_kinds, tp)
    if kind is not None:
        return kind
    try:
        if issubclass(tp, BaseException):
            kind = _EXCEPTION
        elif _is_one_of(tp, _C_REPR_TYPES):
            kind = _C_REPR
        elif tp is types.MethodType:
            kind = _METHOD
        elif issubclass(tp, types.ModuleType):
            kind = _MODULE
        elif tp is range:
            kind = _RANGE
        elif tp is slice:
            kind = _SLICE
        else:
            kind = _stdlib_kind(tp)
    except Exception:
        kind = _ADDRESS
    return type_cache_put(_kinds, tp, kind)


def _method_text(method):
    function = _method_func(method)
    if type(function) is types.FunctionType:
        name = exact_str(_function_qualname(function))
    else:
        name = "%s object" % type_name(type(function))
    return "<bound method %s of %s>" % (name, address_text(_method_self(method)))


def _module_text(module):
    namespace = _module_dict(module)
    if not issubclass(type(namespace), dict):
        return address_text(module)
    name = dict.get(namespace, "__name__")
    name = exact_str(name) if issubclass(type(name), str) else "?"
    path = dict.get(namespace, "__file__")
    if issubclass(type(path), str):
        return "<module %r from %r>" % (name, exact_str(path))
    return "<module %r>" % name


def _parts_text(kind, value, getters):
    parts = [getter(value) for getter in getters]
    if kind == "range" and type(parts[2]) is int and parts[2] == 1:
        parts = parts[:2]
    return "%s(%s)" % (kind, ", ".join(literal_text(part) for part in parts))


def _plain_tzinfo(tzinfo):
    """Whether an object's repr is C code of the standard library, for its ``tzinfo``."""
    if tzinfo is None:
        return True
    tp = type(tzinfo)
    timezone = _loaded_class("datetime", "timezone")
    if tp is timezone:
        offset = timezone.utcoffset(tzinfo, None)
        name = timezone.tzname(tzinfo, None)
        return type(offset) is _loaded_class("datetime", "timedelta") and type(name) is str
    if tp is _loaded_class("zoneinfo", "ZoneInfo"):
        key = class_namespace(tp).get("key")
        return type(key) is types.MemberDescriptorType and type(key.__get__(tzinfo, tp)) is str
    return False


def _with_tzinfo_text(value, tp):
    tzinfo = class_namespace(tp)["tzinfo"].__get__(value, tp)
    if _plain_tzinfo(tzinfo):
        return repr(value)
    naive = tp.replace(value, tzinfo=None)
    return "%s, tzinfo=%s)" % (repr(naive)[:-1], address_text(tzinfo))


def _uuid_text(value, tp):
    member = class_namespace(tp).get("int")
    number = member.__get__(value, tp) if type(member) is types.MemberDescriptorType else None
    if type(number) is not int or not 0 <= number < 1 << 128:
        return address_text(value)
    digits = "%032x" % number
    return "UUID('%s-%s-%s-%s-%s')" % (
        digits[:8],
        digits[8:12],
        digits[12:16],
        digits[16:20],
        digits[20:],
    )


def value_text(value):
    """The text of a value that is not expanded (see the module documentation).

    Never raises (a part that cannot be read gives the address form) and
    never runs code of the value's class; ``KeyboardInterrupt`` aside.
    """
    tp = type(value)
    kind = _kind(tp)
    try:
        if kind == _ADDRESS:
            return address_text(value)
        if kind == _EXCEPTION:
            return exception_repr(value)
        if kind == _C_REPR or kind == _DATE:
            return repr(value)
        if kind == _METHOD:
            return _method_text(value)
        if kind == _MODULE:
            return _module_text(value)
        if kind == _RANGE:
            return _parts_text("range", value, _range_parts)
        if kind == _SLICE:
            return _parts_text("slice", value, _slice_parts)
        if kind == _TIMEZONE:
            return repr(value) if _plain_tzinfo(value) else address_text(value)
        if kind == _WITH_TZINFO:
            return _with_tzinfo_text(value, tp)
        if kind == _UUID:
            return _uuid_text(value, tp)
    except Exception:
        pass
    return address_text(value)
