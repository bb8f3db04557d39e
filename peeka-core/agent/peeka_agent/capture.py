"""Bounded, never-raising conversion of arbitrary Python values to JSON data.

Probes call this on the target's threads to turn arguments, return values,
exceptions and ``self`` into the ``data`` of observations. Three promises:

- **It runs none of the target's code** (unless asked to, below): no
  ``__repr__``, ``__str__``, property, descriptor, ``__getattr__``,
  ``__getattribute__``, ``__len__``, ``__iter__``, ``__getitem__``,
  ``__eq__`` or ``__hash__`` of a value, its class or its metaclass. Objects
  are read through the C getters of ``type`` and ``object``
  (:mod:`.introspect`): the instance ``__dict__`` and ``__slots__``
  members; subclasses of builtins through the builtin's own methods
  (``dict.items``, ``list.__getitem__``, ``str.__getitem__``...); caches
  of classes are keyed by ``id`` so that no metaclass ``__hash__`` runs.
  A value that is not expanded is shown by :func:`.safe_repr.value_text`,
  written by the agent (``"<mod.Class object at 0x...>"``, an exception
  from its ``args``...). This matters because ``AtEnter`` rows are
  captured on the application's thread, inside the call: a ``__repr__``
  that sleeps, takes a lock, queries a database or recurses would run on
  the request path. (What is left: looking a name up in a class's or a
  module's namespace, such as ``__slots__`` or ``_fields``, compares it
  with the keys of the same hash; a non-string key planted there with a
  colliding hash would have its ``__eq__`` run, as it would by Python's own
  attribute lookup.)
- **It never raises into the target** (except ``KeyboardInterrupt``, which
  belongs to the application) and never expands without bound: cycles,
  very deep structures, objects whose ``__class__`` lies (the real
  ``type()`` is always used), NaN and infinities, huge ints, bytes, sets,
  dicts with non-string keys, containers mutated by another thread while
  being read: each becomes a value or a placeholder.
- **Its work is bounded** by :class:`CaptureLimits`: expansion depth
  (``-x``, default 1, at most 4), characters per string (255), items per
  collection (100), fields per object (20) and an approximate byte budget
  per observation (64 KiB), after which values become ``"<budget
  exhausted>"``.

The opt-in: ``CaptureLimits(call_repr=True)`` (the ``call_repr`` param of
``watch`` and ``stack``, CLI ``--call-repr``) shows a value that is not
expanded, and whose class defines ``__repr__``, by calling ``repr()``
(guarded: an exception, a recursion or a non-string becomes a
placeholder, a long text is truncated). That runs the target's code, and
its cost cannot be bounded: on the application's thread for ``AtEnter``
rows, on the connection's writer thread (with the GIL) for the others.

Output shapes
-------------
``None``, ``bool``, ``int`` (within -2**63 .. 2**64-1), finite ``float`` and
``str`` map to the JSON values. Everything else becomes JSON built from them:

===========================  ==================================================
value                        captured as
===========================  ==================================================
long ``str``                 first 255 chars + ``"...<truncated, N chars>"``
huge ``int``                 its digits as a string (or ``"<int of N bits>"``)
NaN, inf, -inf               ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
``bytes``/``bytearray``      their repr (``"b'\\x00ab'"``), truncated alike
``complex``                  its repr
list, tuple, set, frozenset  a JSON array; over 100 items, a last element
deque                        ``"<N more items of M>"``
dict (any keys)              a JSON object; non-string keys as text (``1``
                             -> ``"1"``, ``(1, 2)`` -> ``"(1, 2)"``), clashes
                             get ``#2``...; over 100 items, key ``"@more"``
named tuple                  ``{"@type": "mod.Point", "x": 1, "y": 2}``
enum member                  ``"Color.RED"`` (from its ``_name_``)
exception                    ``"ValueError('bad id')"``, from its ``args``
class                        ``"<class 'mod.Name'>"``
other object, expanded       ``{"@type": "mod.Class", field: value, ...}``
                             from its instance ``__dict__`` and ``__slots__``
                             only (no property, no ``__getattr__``); over 20
                             fields, key ``"@more"``
other object, not expanded   ``"<mod.Class object at 0x...>"``, or for some
(beyond the depth, or        builtin and standard library types a repr the
without any field)           agent writes or trusts (see :mod:`.safe_repr`:
                             functions, modules, ``Decimal``, dates...);
                             with ``call_repr``, the object's own repr
container beyond the depth   ``"<list len=3>"``, ``"<dict len=2>"``...
a container already being    ``"<cycle: list>"``
expanded (a cycle)
failures                     ``"<repr failed: ValueError: boom>"``,
                             ``"<unreadable dict: RuntimeError: ...>"``
secret-looking names         ``"<redacted>"`` (see below)
===========================  ==================================================

Depth counts container/object levels from the captured value: with the
default depth 1, a list argument shows its items, a dict its keys and
values, an object its fields, and anything nested inside those is shown as a
scalar or a summary. Depth 0 shows only scalars and summaries.

Redaction (on by default): a value whose dict key, field name or parameter
name contains, once lowercased and stripped of ``_`` and ``-``, one of
``password``, ``passwd``, ``passphrase``, ``secret``, ``token``, ``cookie``,
``authorization``, ``apikey``, ``accesskey``, ``privatekey``,
``credential``, ``sessionid`` is replaced by ``"<redacted>"``.

Interface
---------
``Capturer(limits)`` holds the limits and caches; create it once per probe.

- ``capturer.capture(value)``: one value, with its own byte budget;
- ``capturer.capture_call(args, kwargs, names=None, budget=None)``:
  ``(params, kwargs)`` for an observation, one budget shared by all
  arguments (and with other values, given ``budget``); ``names`` (the
  positional parameter names) enables redaction of positional secrets;
- ``capturer.capture_fields({"target": obj, "returnObj": value, ...})``: a
  dict of named values sharing one budget (names are checked for secrets);
- ``capturer.budget()`` / ``capturer.capture(value, budget)``: share one
  budget across several calls.
"""

import collections
import enum
import itertools
import types

from .introspect import (
    bounded_store,
    class_mro,
    class_name,
    class_namespace,
    class_qualname,
    type_cache_get,
    type_cache_put,
    type_name,
)
from .safe_repr import exact_str, exception_text, value_text

DEFAULT_DEPTH = 1
MAX_DEPTH = 4
DEFAULT_MAX_STRING = 255
DEFAULT_MAX_ITEMS = 100
DEFAULT_MAX_FIELDS = 20
DEFAULT_MAX_BYTES = 64 * 1024

REDACTED = "<redacted>"
BUDGET_EXHAUSTED = "<budget exhausted>"

_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "cookie",
    "authorization",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "sessionid",
)

_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
# An int of more bits has more than ~256 digits: shown as a placeholder
# (str() of big ints is quadratic and refused beyond 4300 digits on 3.11+).
_INT_TEXT_BITS = 850

_type_dict = class_namespace
_type_mro = class_mro
_type_qualname = class_qualname
_type_name_attr = class_name
_GetSet = types.GetSetDescriptorType
_Member = types.MemberDescriptorType
_Enum = enum.Enum
_islice = itertools.islice
_deque = collections.deque

# Types whose repr is C code that cannot run user code in a surprising way
# and whose instances are shown by repr rather than expanded.
_REPR_TYPES = (
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    types.CodeType,
    types.FrameType,
    types.TracebackType,
    types.GeneratorType,
    types.CoroutineType,
    range,
    slice,
    memoryview,
)

_layout_cache = {}
_secret_cache = {}


def is_secret_name(name):
    """Whether ``name`` looks like the name of a secret (see the module documentation)."""
    if type(name) is not str:
        return False
    try:
        return _secret_cache[name]
    except KeyError:
        pass
    folded = name.lower().replace("_", "").replace("-", "")
    found = False
    for word in _SECRET_WORDS:
        if word in folded:
            found = True
            break
    if len(name) <= 100:
        bounded_store(_secret_cache, name, found)
    return found


def _mangle(klass, name):
    """The attribute name a ``__slots__`` entry gets (private names are mangled)."""
    if name.startswith("__") and not name.endswith("__"):
        try:
            stripped = _type_name_attr(klass).lstrip("_")
        except Exception:
            return name
        if stripped:
            return "_" + stripped + name
    return name


def _layout(tp):
    """(instance-__dict__ getter or None, [(field name, slot descriptor)]) of a class."""
    cached = type_cache_get(_layout_cache, tp)
    if cached is not None:
        return cached
    dict_getter = None
    slots = []
    seen = set()
    try:
        for klass in _type_mro(tp):
            namespace = _type_dict(klass)
            if dict_getter is None:
                candidate = namespace.get("__dict__")
                if type(candidate) is _GetSet:
                    dict_getter = candidate
            declared = namespace.get("__slots__")
            if declared is None:
                continue
            if type(declared) is str:
                declared = (declared,)
            elif type(declared) is not tuple and type(declared) is not list:
                continue
            for name in declared:
                if type(name) is not str or name in ("__dict__", "__weakref__"):
                    continue
                attribute = _mangle(klass, name)
                if attribute in seen:
                    continue
                member = namespace.get(attribute)
                if type(member) is _Member:
                    seen.add(attribute)
                    slots.append((name, member))
    except Exception:
        pass
    return type_cache_put(_layout_cache, tp, (dict_getter, slots))


def _defines_repr(tp):
    """Whether a class (or a base other than object) defines ``__repr__``."""
    try:
        for klass in _type_mro(tp):
            if "__repr__" in _type_dict(klass):
                return klass is not object
    except Exception:
        return True
    return False


# Kinds of types that are not handled by an exact-type check (see _classify).
K_STR = 0
K_INT = 1
K_FLOAT = 2
K_DICT = 3
K_LIST = 4
K_TUPLE = 5
K_SET = 6
K_FROZENSET = 7
K_DEQUE = 8
K_BYTES = 9
K_BYTEARRAY = 10
K_COMPLEX = 11
K_OBJECT = 20  # kinds from here on are rendered by render_object
K_ENUM = 21
K_NAMEDTUPLE = 22
K_REPR = 23  # shown by repr only: exceptions, classes, functions, modules...

_SEQUENCE_BASES = {
    K_LIST: list,
    K_TUPLE: tuple,
    K_SET: set,
    K_FROZENSET: frozenset,
    K_DEQUE: collections.deque,
}

_kind_cache = {}
_repr_cache = {}


def _classify(tp):
    """The kind of a type that is not one of the exact builtins (cached)."""
    try:
        if issubclass(tp, _Enum):
            kind = K_ENUM
        elif issubclass(tp, (BaseException, type) + _REPR_TYPES):
            kind = K_REPR
        elif issubclass(tp, str):
            kind = K_STR
        elif issubclass(tp, int):
            kind = K_INT
        elif issubclass(tp, float):
            kind = K_FLOAT
        elif issubclass(tp, dict):
            kind = K_DICT
        elif issubclass(tp, list):
            kind = K_LIST
        elif issubclass(tp, tuple):
            kind = K_NAMEDTUPLE if _has_fields(tp) else K_TUPLE
        elif issubclass(tp, set):
            kind = K_SET
        elif issubclass(tp, frozenset):
            kind = K_FROZENSET
        elif issubclass(tp, collections.deque):
            kind = K_DEQUE
        elif issubclass(tp, bytes):
            kind = K_BYTES
        elif issubclass(tp, bytearray):
            kind = K_BYTEARRAY
        elif issubclass(tp, complex):
            kind = K_COMPLEX
        else:
            kind = K_OBJECT
    except Exception:
        kind = K_REPR
    return type_cache_put(_kind_cache, tp, kind)


def defines_repr(tp):
    """Whether a class (or a base other than ``object``) defines ``__repr__`` (cached)."""
    found = type_cache_get(_repr_cache, tp)
    if found is not None:
        return found
    return type_cache_put(_repr_cache, tp, _defines_repr(tp))


#: ``module.Type: message`` of an exception, without running its code (the
#: ``throwExp`` of observations; see :func:`.safe_repr.exception_text`).
_exception_text = exception_text


class CaptureLimits(object):
    """The bounds of one capture configuration (validated, clamped to the maxima)."""

    __slots__ = (
        "depth",
        "max_string",
        "max_items",
        "max_fields",
        "max_bytes",
        "redact",
        "call_repr",
    )

    def __init__(
        self,
        depth=DEFAULT_DEPTH,
        max_string=DEFAULT_MAX_STRING,
        max_items=DEFAULT_MAX_ITEMS,
        max_fields=DEFAULT_MAX_FIELDS,
        max_bytes=DEFAULT_MAX_BYTES,
        redact=True,
        call_repr=False,
    ):
        for name, value, low in (
            ("depth", depth, 0),
            ("max_string", max_string, 1),
            ("max_items", max_items, 1),
            ("max_fields", max_fields, 1),
            ("max_bytes", max_bytes, 64),
        ):
            if type(value) is not int or value < low:
                raise ValueError("%s must be an int of at least %d, not %r" % (name, low, value))
        if depth > MAX_DEPTH:
            raise ValueError(
                "depth (-x) is at most %d, not %d: deeper expansion costs the target too much"
                % (MAX_DEPTH, depth)
            )
        self.depth = depth
        self.max_string = max_string
        self.max_items = max_items
        self.max_fields = max_fields
        self.max_bytes = max_bytes
        self.redact = bool(redact)
        self.call_repr = bool(call_repr)

    def as_dict(self):
        """The limits as a JSON-able dict."""
        return dict((name, getattr(self, name)) for name in self.__slots__)


class Budget(object):
    """The remaining approximate byte budget of one observation."""

    __slots__ = ("remaining",)

    def __init__(self, remaining):
        self.remaining = remaining


class Capturer(object):
    """Captures values under one set of limits (see the module documentation)."""

    def __init__(self, limits=None):
        self.limits = limits if limits is not None else CaptureLimits()
        self._render = _make_renderer(self.limits)

    def budget(self):
        """A fresh byte budget to share between several capture() calls."""
        return Budget(self.limits.max_bytes)

    def capture(self, value, budget=None):
        """One value as JSON data; never raises (KeyboardInterrupt aside)."""
        if budget is None:
            tp = type(value)
            # Not `tp in a_set`: that would hash the class with its metaclass's code.
            if tp is str or tp is int or tp is float or tp is bool or value is None:
                budget = _SCALAR_BUDGET
            else:
                budget = Budget(self.limits.max_bytes)
        try:
            return self._render(value, 0, budget, None)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            return "<capture failed: %s>" % _exception_text(exc)

    def capture_call(self, args, kwargs, names=None, budget=None):
        """``(params, kwargs)`` of a call as JSON data, sharing one budget.

        ``names``, when given, are the positional parameters' names (from the
        code object), used for redaction of positional secrets. ``budget``
        (from :meth:`budget`) lets other values of the observation share it.
        """
        if budget is None:
            budget = Budget(self.limits.max_bytes)
        render = self._render
        try:
            if names is None or not self.limits.redact:
                params = [render(value, 0, budget, None) for value in args]
            else:
                params = []
                for index, value in enumerate(args):
                    if index < len(names) and is_secret_name(names[index]):
                        params.append(REDACTED)
                    else:
                        params.append(render(value, 0, budget, None))
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            params = ["<capture failed: %s>" % _exception_text(exc)]
        if not kwargs:
            return params, {}
        return params, self.capture_fields(kwargs, budget)

    def capture_fields(self, fields, budget=None):
        """A dict of named values (names checked for secrets), sharing one budget."""
        if budget is None:
            budget = Budget(self.limits.max_bytes)
        render = self._render
        redact = self.limits.redact
        result = {}
        try:
            for name, value in dict.items(fields):
                key = name if type(name) is str else _field_name(name)
                if redact and is_secret_name(key):
                    result[key] = REDACTED
                else:
                    result[key] = render(value, 0, budget, None)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            result["@error"] = "<capture failed: %s>" % _exception_text(exc)
        return result


def _field_name(name):
    """A field's name as a ``str`` (a ``str`` subclass copied, never its ``__str__``)."""
    if issubclass(type(name), str):
        return exact_str(name)
    return value_text(name)


# Scalars never look at the budget; they may share this one (it cannot run out).
_SCALAR_BUDGET = Budget(1 << 62)


def _make_renderer(limits):
    """Builds the recursive ``render(value, level, budget, path)`` for ``limits``.

    ``level`` is the expansion level of ``value`` (0 for the captured value);
    ``path`` is the set of ids of the containers being expanded above it
    (None at the top; only tracked when depth >= 2, the only case in which a
    cycle can be met again).
    """
    depth = limits.depth
    max_string = limits.max_string
    max_items = limits.max_items
    max_fields = limits.max_fields
    redact = limits.redact
    call_repr = limits.call_repr
    track_cycles = depth >= 2
    secret_get = _secret_cache.get
    int_min = _INT_MIN
    int_max = _INT_MAX
    kind_get = _kind_cache.get

    def text(value):
        size = len(value)
        if size <= max_string:
            return value
        return "%s...<truncated, %d chars>" % (value[:max_string], size)

    def int_text(value):
        bits = value.bit_length()
        if bits > _INT_TEXT_BITS:
            return "<int of %d bits>" % bits
        return text(int.__repr__(value))

    def object_text(value, tp):
        if issubclass(tp, type):
            return "<class '%s'>" % type_name(value)
        if not call_repr or not defines_repr(tp):
            return value_text(value)
        try:
            shown = repr(value)
        except KeyboardInterrupt:
            raise
        except RecursionError:
            return "<repr failed: RecursionError>"
        except BaseException as exc:
            return "<repr failed: %s>" % _exception_text(exc)
        if type(shown) is not str:
            # repr() itself refuses non-str results; a str subclass gets here.
            shown = str.__getitem__(shown, slice(0, max_string + 1))
        return text(shown)

    def key_text(key):
        tp = type(key)
        if tp is str:
            return text(key)
        if tp is int:
            return int_text(key)
        if key is None or tp is bool or tp is float:
            return repr(key)
        if tp is bytes:
            return text(repr(key[:max_string]))
        if tp is tuple:
            inner = ", ".join(key_text(item) for item in key[:10])
            return text("(" + inner + (", ...)" if len(key) > 10 else ")"))
        # Subclasses of str, int and float are read with the base's methods
        # (their __hash__, __eq__, __str__ or __repr__ never run).
        kind = kind_of(tp)
        if kind == K_STR:
            return text_of_str(key)
        if kind == K_INT:
            return int_text(int.__index__(key))
        if kind == K_FLOAT:
            return float.__repr__(float.__float__(key))
        if kind == K_ENUM:
            shown = enum_text(key, tp)
            if shown is not None:
                return text(shown)
        return text(object_text(key, tp))

    def kind_of(tp):
        entry = kind_get(id(tp))
        if entry is not None and entry[0] is tp:
            return entry[1]
        return _classify(tp)

    def text_of_str(value):
        size = str.__len__(value)
        head = str.__getitem__(value, slice(0, max_string))
        if size > max_string:
            return "%s...<truncated, %d chars>" % (head, size)
        return head

    def enum_text(value, tp):
        """``Class.NAME`` of an enum member (``Class(value)`` without a name), or None."""
        try:
            getter = _layout(tp)[0]
            namespace = getter.__get__(value, tp) if getter else None
            if not issubclass(type(namespace), dict):
                return None
            qualname = _type_qualname(tp)
            if type(qualname) is not str:
                return None
            name = dict.get(namespace, "_name_")
            if type(name) is str:
                return "%s.%s" % (qualname, name)
            number = dict.get(namespace, "_value_")
            if type(number) is int:
                return "%s(%s)" % (qualname, int_text(number))
        except Exception:
            pass
        return None

    def bytes_text(value, base):
        size = base.__len__(value)
        shown = repr(base.__getitem__(value, slice(0, max_string)))
        if size > max_string:
            return "%s...<truncated, %d bytes>" % (shown, size)
        return shown

    def fill_mapping(result, pairs, size, level, budget, path, started=False, done=0):
        """Renders (key, value) pairs into ``result`` and returns it.

        ``size`` counts the pairs not yet rendered; ``done`` those already in
        ``result`` (by the caller's fast loop, ``started`` then being True).
        """
        if not started:
            budget.remaining -= 2
        next_level = level + 1
        count = 0
        checked = len(result) > 0
        limit = max_items - done
        for name, item in pairs:
            if count >= limit:
                break
            if budget.remaining <= 0:
                result["@more"] = BUDGET_EXHAUSTED
                return result
            count += 1
            if type(name) is str and len(name) <= max_string:
                key = name
            else:
                key = key_text(name)
                checked = True
            if checked and key in result:
                suffix = 2
                while "%s#%d" % (key, suffix) in result:
                    suffix += 1
                key = "%s#%d" % (key, suffix)
            budget.remaining -= len(key) + 3
            if redact:
                found = secret_get(key)
                if found is None:
                    found = is_secret_name(key)
                if found:
                    result[key] = REDACTED
                    continue
            item_type = type(item)
            if item_type is str and len(item) <= max_string:
                budget.remaining -= len(item) + 2
                result[key] = item
            elif item_type is int and int_min <= item <= int_max:
                budget.remaining -= 8
                result[key] = item
            elif item is None or item_type is bool:
                budget.remaining -= 5
                result[key] = item
            else:
                result[key] = render(item, next_level, budget, path)
        if size > count:
            result["@more"] = "<%d more of %d>" % (size - count, size + done)
        return result

    def render_dict(value, tp, level, budget, path):
        size = len(value) if tp is dict else dict.__len__(value)
        if level >= depth:
            return "<%s len=%d>" % (type_name(tp), size)
        key = None
        if track_cycles:
            key = id(value)
            if path is None:
                path = set()
            elif key in path:
                return "<cycle: %s>" % type_name(tp)
            path.add(key)
        try:
            if tp is not dict:
                return fill_mapping({}, dict.items(value), size, level, budget, path)
            # The common case, inlined: an exact dict with short string keys
            # and scalar values costs no call per item.
            result = {}
            remaining = budget.remaining - 2
            next_level = level + 1
            count = 0
            for name, item in value.items():
                if (
                    count >= max_items
                    or remaining <= 0
                    or type(name) is not str
                    or len(name) > max_string
                ):
                    # Anything unusual: hand the rest over to the general loop.
                    budget.remaining = remaining
                    rest = _islice(value.items(), count, None)
                    return fill_mapping(
                        result, rest, size - count, level, budget, path, True, count
                    )
                count += 1
                remaining -= len(name) + 3
                found = secret_get(name)
                if found is None:
                    found = is_secret_name(name)
                if redact and found:
                    result[name] = REDACTED
                    continue
                item_type = type(item)
                if item_type is str and len(item) <= max_string:
                    remaining -= len(item) + 2
                    result[name] = item
                elif item_type is int and int_min <= item <= int_max:
                    remaining -= 8
                    result[name] = item
                elif item is None or item_type is bool:
                    remaining -= 5
                    result[name] = item
                else:
                    budget.remaining = remaining
                    result[name] = render(item, next_level, budget, path)
                    remaining = budget.remaining
            budget.remaining = remaining
            return result
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            return "<unreadable %s: %s>" % (type_name(tp), _exception_text(exc))
        finally:
            if key is not None:
                path.discard(key)

    def render_sequence(value, tp, base, level, budget, path):
        size = len(value) if tp is base else base.__len__(value)
        if level >= depth:
            return "<%s len=%d>" % (type_name(tp), size)
        key = None
        if track_cycles:
            key = id(value)
            if path is None:
                path = set()
            elif key in path:
                return "<cycle: %s>" % type_name(tp)
            path.add(key)
        try:
            if tp is list or tp is tuple:
                source = value if size <= max_items else value[:max_items]
            elif base is list or base is tuple:
                source = base.__getitem__(value, slice(0, max_items))
            else:
                source = _islice(base.__iter__(value), max_items)
            items = []
            append = items.append
            remaining = budget.remaining - 2
            next_level = level + 1
            for item in source:
                if remaining <= 0:
                    append(BUDGET_EXHAUSTED)
                    budget.remaining = remaining
                    return items
                item_type = type(item)
                if item_type is str and len(item) <= max_string:
                    remaining -= len(item) + 2
                    append(item)
                elif item_type is int and int_min <= item <= int_max:
                    remaining -= 8
                    append(item)
                elif item is None or item_type is bool:
                    remaining -= 5
                    append(item)
                else:
                    budget.remaining = remaining
                    append(render(item, next_level, budget, path))
                    remaining = budget.remaining
            budget.remaining = remaining
            if size > len(items):
                append("<%d more items of %d>" % (size - len(items), size))
            return items
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            return "<unreadable %s: %s>" % (type_name(tp), _exception_text(exc))
        finally:
            if key is not None:
                path.discard(key)

    def named_tuple_fields(value, tp):
        """(fields, total) of a named tuple, from its class's ``_fields``."""
        declared = None
        for klass in _type_mro(tp):
            declared = _type_dict(klass).get("_fields")
            if declared is not None:
                break
        if type(declared) is not tuple:
            return None
        values = tuple.__getitem__(value, slice(0, max_fields))
        return list(zip(declared, values)), tuple.__len__(value)

    def object_fields(value, tp):
        """(fields, total) read from __dict__ and __slots__, or None if there are none."""
        dict_getter, slots = _layout(tp)
        fields = []
        for name, member in slots:
            if len(fields) >= max_fields:
                break
            try:
                fields.append((name, member.__get__(value, tp)))
            except AttributeError:
                continue
        total = len(fields)
        if dict_getter is not None:
            try:
                namespace = dict_getter.__get__(value, tp)
            except Exception:
                namespace = None
            if issubclass(type(namespace), dict):
                total += dict.__len__(namespace)
                room = max_fields - len(fields)
                if room > 0:
                    fields.extend(_islice(dict.items(namespace), room))
        if total == 0:
            return None
        return fields, total

    def render_object(value, tp, kind, level, budget, path):
        if kind == K_ENUM:
            shown = enum_text(value, tp)
            if shown is not None:
                budget.remaining -= len(shown)
                return shown
        elif level < depth and kind != K_REPR:
            if kind == K_NAMEDTUPLE:
                found = named_tuple_fields(value, tp)
            else:
                found = object_fields(value, tp)
            if found is not None:
                key = None
                if track_cycles:
                    key = id(value)
                    if path is None:
                        path = set()
                    elif key in path:
                        return "<cycle: %s>" % type_name(tp)
                    path.add(key)
                try:
                    fields, total = found
                    result = {"@type": type_name(tp)}
                    return fill_mapping(result, fields, total, level, budget, path)
                finally:
                    if key is not None:
                        path.discard(key)
        elif kind == K_NAMEDTUPLE:
            return "<%s len=%d>" % (type_name(tp), tuple.__len__(value))
        shown = object_text(value, tp)
        budget.remaining -= len(shown)
        return shown

    def render(value, level, budget, path):
        tp = type(value)
        if tp is str:
            budget.remaining -= len(value) + 2
            if len(value) <= max_string:
                return value
            return "%s...<truncated, %d chars>" % (value[:max_string], len(value))
        if tp is int:
            budget.remaining -= 8
            if int_min <= value <= int_max:
                return value
            return int_text(value)
        if value is None or tp is bool:
            budget.remaining -= 5
            return value
        if tp is float:
            budget.remaining -= 12
            if value - value == 0.0:
                return value
            if value != value:
                return "NaN"
            return "Infinity" if value > 0 else "-Infinity"
        if budget.remaining <= 0:
            return BUDGET_EXHAUSTED
        if tp is dict:
            return render_dict(value, tp, level, budget, path)
        if tp is list or tp is tuple:
            return render_sequence(value, tp, tp, level, budget, path)
        if tp is bytes or tp is bytearray:
            shown = bytes_text(value, tp)
            budget.remaining -= len(shown)
            return shown
        if tp is set or tp is frozenset or tp is _deque:
            return render_sequence(value, tp, tp, level, budget, path)
        if tp is complex:
            budget.remaining -= 24
            return repr(value)
        # Anything else is classified once per type (see _classify), in a
        # cache keyed by id (see introspect.type_cache_put).
        entry = kind_get(id(tp))
        if entry is not None and entry[0] is tp:
            kind = entry[1]
        else:
            kind = _classify(tp)
        if kind >= K_OBJECT:
            return render_object(value, tp, kind, level, budget, path)
        # Subclasses of the builtins are read with the base type's own
        # methods, so that an override (__iter__, __getitem__, __str__...)
        # never runs.
        if kind == K_STR:
            budget.remaining -= min(str.__len__(value), max_string) + 2
            return text_of_str(value)
        if kind == K_INT:
            return render(int.__index__(value), level, budget, path)
        if kind == K_FLOAT:
            return render(float.__float__(value), level, budget, path)
        if kind == K_DICT:
            return render_dict(value, tp, level, budget, path)
        if kind == K_BYTES or kind == K_BYTEARRAY:
            shown = bytes_text(value, bytes if kind == K_BYTES else bytearray)
            budget.remaining -= len(shown)
            return shown
        if kind == K_COMPLEX:
            budget.remaining -= 24
            return complex.__repr__(value)
        return render_sequence(value, tp, _SEQUENCE_BASES[kind], level, budget, path)

    return render


def _has_fields(tp):
    """Whether a tuple subclass is a named tuple (declares ``_fields``)."""
    try:
        for klass in _type_mro(tp):
            if "_fields" in _type_dict(klass):
                return True
    except Exception:
        return False
    return False
