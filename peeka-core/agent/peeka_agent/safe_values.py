"""Reading and combining the target's values without running its code.

The run-time half of :mod:`.expr`: every operation an expression can perform
on the target's objects is a function here, and each one checks its
operands' types and the resource caps *before* doing the work:

- :func:`read_attribute` reads data only (slots, C getters, the instance
  ``__dict__``, plain class attributes); it refuses properties, other
  Python descriptors, methods and ``__getattr__`` fallbacks;
- :func:`read_item` and :func:`contains` work on builtin containers only,
  with the builtin's own methods (overrides in subclasses never run, and a
  ``defaultdict`` is never modified);
- the ``op_*`` functions do arithmetic on numbers, and ``+``/``*`` on
  builtin sequences, with integer and sequence sizes capped;
- :data:`FUNCTIONS` and :data:`METHODS` are the only callables an
  expression can reach.

They raise :class:`EvaluationError`, which a condition counts as a failure.
"""

from .introspect import MISSING as _MISSING
from .introspect import bounded_store
from .introspect import SAFE_DESCRIPTORS as _SAFE_DESCRIPTORS
from .introspect import class_mro as _type_mro
from .introspect import class_namespace as _type_dict
from .introspect import class_qualname as _type_qualname
from .introspect import lookup as _lookup
from .introspect import type_name


def make_context(params=(), kwargs=None, target=None, returnObj=None, throwExp=None, cost=None):
    """The context tuple an expression is evaluated against (see :mod:`.expr`)."""
    return (params, kwargs if kwargs is not None else {}, target, returnObj, throwExp, cost)

MAX_INT_BITS = 4096
MAX_SEQUENCE = 10000
MAX_ITERATION = 100000
MAX_TEXT_INPUT = 1000000
MAX_NUMBER_TEXT = 1000
MAX_ROUND_DIGITS = 300

_NOT_NUMBER = object()


class EvaluationError(Exception):
    """An expression failed at run time; ``offset`` locates the failing part."""

    def __init__(self, message, offset=None):
        Exception.__init__(self, message)
        self.message = message
        self.offset = offset

    def __str__(self):
        if self.offset is None:
            return self.message
        return "%s at %d" % (self.message, self.offset)


# ---------------------------------------------------------------------------
# Safe reading of values (no user code)

_descriptor_cache = {}


def _descriptor_kind(tp):
    """'data', 'method' or None for the type of a class attribute (cached)."""
    try:
        return _descriptor_cache[tp]
    except KeyError:
        pass
    if _lookup(tp, "__set__") is not _MISSING or _lookup(tp, "__delete__") is not _MISSING:
        kind = "data"
    elif _lookup(tp, "__get__") is not _MISSING:
        kind = "method"
    else:
        kind = None
    return bounded_store(_descriptor_cache, tp, kind)


_layout_cache = {}


def _type_layout(tp):
    """(namespaces of tp's MRO, instance-__dict__ getter or None, tp is a class) - cached.

    The namespaces are live views, so later changes to the classes are seen;
    the entry is rebuilt if the MRO itself changes.
    """
    mro = _type_mro(tp)
    cached = _layout_cache.get(tp)
    if cached is not None and cached[0] is mro:
        return cached[1]
    namespaces = tuple(_type_dict(klass) for klass in mro)
    getter = None
    for namespace in namespaces:
        candidate = namespace.get("__dict__", _MISSING)
        if candidate is not _MISSING:
            if type(candidate) in _SAFE_DESCRIPTORS:
                getter = candidate
            break
    layout = (namespaces, getter, issubclass(tp, type))
    bounded_store(_layout_cache, tp, (mro, layout))
    return layout


def read_attribute(obj, name):
    """``obj.name`` read as data only (see the module documentation); raises EvaluationError."""
    tp = type(obj)
    namespaces, dict_getter, is_class = _type_layout(tp)
    if is_class:
        # A class (``target`` of a classmethod): its own namespaces only.
        value = _lookup(obj, name)
        if value is _MISSING:
            raise EvaluationError("class `%s` has no attribute `%s`" % (type_name(obj), name))
        kind = _descriptor_kind(type(value))
        if kind is None:
            return value
        raise EvaluationError(
            "`%s.%s` is a %s; only plain class attributes are read"
            % (type_name(obj), name, "method" if kind == "method" else "descriptor")
        )
    class_value = _MISSING
    for namespace in namespaces:
        class_value = namespace.get(name, _MISSING)
        if class_value is not _MISSING:
            break
    kind = None
    if class_value is not _MISSING:
        class_value_type = type(class_value)
        if class_value_type in _SAFE_DESCRIPTORS:
            try:
                return class_value.__get__(obj, tp)
            except AttributeError:
                raise EvaluationError(
                    "attribute `%s` of `%s` is not set" % (name, type_name(tp))
                ) from None
        kind = _descriptor_kind(class_value_type)
        if kind == "data":
            raise EvaluationError(
                "`%s.%s` is a property; properties are not evaluated (they may run arbitrary "
                "code); read the field it is computed from instead" % (type_name(tp), name)
            )
    if dict_getter is not None:
        try:
            namespace = dict_getter.__get__(obj, tp)
        except Exception:
            namespace = None
        if type(namespace) is dict or issubclass(type(namespace), dict):
            value = dict.get(namespace, name, _MISSING)
            if value is not _MISSING:
                return value
    if class_value is not _MISSING:
        if kind is None:
            return class_value
        raise EvaluationError(
            "`%s.%s` is a method or computed attribute; it cannot be called or evaluated here"
            % (type_name(tp), name)
        )
    if issubclass(tp, dict):
        raise EvaluationError(
            "a dict has no attribute `%s`; for its key, write [%r] or .get(%r)" % (name, name, name)
        )
    hint = ""
    if _lookup(tp, "__getattr__") is not _MISSING:
        hint = " (its __getattr__ is not run)"
    raise EvaluationError("`%s` object has no attribute `%s`%s" % (type_name(tp), name, hint))


_INDEXABLE = (list, tuple, str, bytes, bytearray, range)


def read_item(container, key):
    """``container[key]`` for builtin containers only; raises EvaluationError otherwise."""
    tp = type(container)
    if tp is list or tp is tuple or tp is str:
        key_type = type(key)
        if key_type is int or key_type is slice or key_type is bool:
            return container[key]
        raise EvaluationError(
            "a %s is indexed by an integer or a slice, not %s" % (tp.__name__, type_name(key_type))
        )
    if tp is dict:
        value = container.get(key, _MISSING)
        if value is _MISSING:
            raise EvaluationError("KeyError: %s" % _short_repr(key))
        return value
    if issubclass(tp, dict):
        value = dict.get(container, key, _MISSING)
        if value is _MISSING:
            raise EvaluationError("KeyError: %s" % _short_repr(key))
        return value
    for base in _INDEXABLE:
        if issubclass(tp, base):
            key_type = type(key)
            if key_type is int or key_type is slice or key_type is bool:
                return base.__getitem__(container, key)
            raise EvaluationError(
                "a %s is indexed by an integer or a slice, not %s"
                % (base.__name__, type_name(key_type))
            )
    raise EvaluationError(
        "indexing works on lists, tuples, strings, bytes, ranges and dicts, not on `%s`"
        % type_name(tp)
    )


_CONTAINERS = (list, tuple, set, frozenset, dict, str, bytes, bytearray, range)


def contains(container, item):
    """``item in container`` for builtin containers only."""
    tp = type(container)
    if tp in _CONTAINERS_EXACT:
        return item in container
    for base in _CONTAINERS:
        if issubclass(tp, base):
            return base.__contains__(container, item)
    raise EvaluationError(
        "`in` works on lists, tuples, sets, dicts, strings, bytes and ranges, not on `%s`"
        % type_name(tp)
    )


_CONTAINERS_EXACT = frozenset(_CONTAINERS)


def _short_repr(value):
    tp = type(value)
    if tp in (str, int, float, bool, bytes) or value is None:
        text = repr(value)
        return text if len(text) <= 80 else text[:80] + "..."
    return "<%s>" % type_name(tp)


# ---------------------------------------------------------------------------
# Arithmetic with caps


def _number(value):
    tp = type(value)
    if tp is int or tp is float or tp is bool or tp is complex:
        return value
    if issubclass(tp, int):
        return int.__index__(value)
    if issubclass(tp, float):
        return float.__float__(value)
    return _NOT_NUMBER


_SEQUENCE_BASES = (str, bytes, list, tuple)


def _sequence_base(value):
    tp = type(value)
    if tp in _SEQUENCE_EXACT:
        return tp
    for base in _SEQUENCE_BASES:
        if issubclass(tp, base):
            return base
    return None


_SEQUENCE_EXACT = frozenset(_SEQUENCE_BASES)


def _operand_error(symbol, left, right):
    return EvaluationError(
        "`%s` is only computed on numbers%s; got `%s` and `%s`"
        % (
            symbol,
            ", strings, bytes, lists and tuples" if symbol in "+*" else "",
            type_name(type(left)),
            type_name(type(right)),
        )
    )


def _too_large(what):
    return EvaluationError(
        "%s would be too large (the limits are %d-bit integers and %d-item sequences)"
        % (what, MAX_INT_BITS, MAX_SEQUENCE)
    )


def _check_int(value):
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise _too_large("the result")
    return value


def op_add(left, right):
    """``+`` on numbers, or concatenation of two sequences of the same builtin type."""
    a = _number(left)
    b = _number(right)
    if a is not _NOT_NUMBER and b is not _NOT_NUMBER:
        return _check_int(a + b)
    base = _sequence_base(left)
    if base is not None and base is _sequence_base(right):
        if base.__len__(left) + base.__len__(right) > MAX_SEQUENCE:
            raise _too_large("the concatenation")
        return base.__add__(left, right)
    raise _operand_error("+", left, right)


def op_sub(left, right):
    """``-`` on numbers."""
    a = _number(left)
    b = _number(right)
    if a is _NOT_NUMBER or b is _NOT_NUMBER:
        raise _operand_error("-", left, right)
    return _check_int(a - b)


def op_mul(left, right):
    """``*`` on numbers (capped), or repetition of a builtin sequence (capped)."""
    a = _number(left)
    b = _number(right)
    if a is not _NOT_NUMBER and b is not _NOT_NUMBER:
        if type(a) is int and type(b) is int and a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise _too_large("the product")
        return a * b
    sequence, count = (left, b) if b is not _NOT_NUMBER else (right, a)
    base = _sequence_base(sequence)
    if base is not None and type(count) in (int, bool):
        if base.__len__(sequence) * max(count, 0) > MAX_SEQUENCE:
            raise _too_large("the repetition")
        return base.__mul__(sequence, count)
    raise _operand_error("*", left, right)


def op_pow(left, right):
    """``**`` on numbers; integer results are capped before being computed."""
    a = _number(left)
    b = _number(right)
    if a is _NOT_NUMBER or b is _NOT_NUMBER:
        raise _operand_error("**", left, right)
    if type(a) in (int, bool) and type(b) in (int, bool) and b > 0 and abs(a) > 1:
        if a.bit_length() * b > MAX_INT_BITS:
            raise _too_large("the power")
    return a**b


def op_truediv(left, right):
    """``/`` on numbers."""
    a = _number(left)
    b = _number(right)
    if a is _NOT_NUMBER or b is _NOT_NUMBER:
        raise _operand_error("/", left, right)
    return a / b


def op_floordiv(left, right):
    """``//`` on numbers."""
    a = _number(left)
    b = _number(right)
    if a is _NOT_NUMBER or b is _NOT_NUMBER:
        raise _operand_error("//", left, right)
    return a // b


def op_mod(left, right):
    """``%`` on numbers only (string formatting could run any object's __str__)."""
    a = _number(left)
    b = _number(right)
    if a is _NOT_NUMBER or b is _NOT_NUMBER:
        raise _operand_error("%", left, right)
    return a % b


def op_neg(value):
    """Unary ``-``."""
    number = _number(value)
    if number is _NOT_NUMBER:
        raise EvaluationError("unary `-` needs a number, not `%s`" % type_name(type(value)))
    return -number


def op_pos(value):
    """Unary ``+``."""
    number = _number(value)
    if number is _NOT_NUMBER:
        raise EvaluationError("unary `+` needs a number, not `%s`" % type_name(type(value)))
    return +number


# ---------------------------------------------------------------------------
# Functions and methods


def _sized_base(value):
    tp = type(value)
    if tp in _SIZED_EXACT:
        return tp
    for base in _SIZED:
        if issubclass(tp, base):
            return base
    return None


_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset, range)
_SIZED_EXACT = frozenset(_SIZED)


def fn_len(value):
    """``len`` of a builtin container or string."""
    base = _sized_base(value)
    if base is None:
        raise EvaluationError(
            "len() works on strings, bytes, lists, tuples, dicts, sets and ranges, not on `%s`"
            % type_name(type(value))
        )
    return base.__len__(value)


def fn_abs(value):
    """``abs`` of a number."""
    number = _number(value)
    if number is _NOT_NUMBER:
        raise EvaluationError("abs() needs a number, not `%s`" % type_name(type(value)))
    return abs(number)


def _items_of(values, name):
    if len(values) != 1:
        return values
    source = values[0]
    base = _sized_base(source)
    if base is None:
        raise EvaluationError(
            "%s() of one argument needs a builtin container, not `%s`"
            % (name, type_name(type(source)))
        )
    if base.__len__(source) > MAX_ITERATION:
        raise EvaluationError(
            "%s() is limited to %d items; this one has %d"
            % (name, MAX_ITERATION, base.__len__(source))
        )
    return list(base.__iter__(source))


def fn_min(*values):
    """``min`` of the arguments, or of one builtin container."""
    return min(_items_of(values, "min"))


def fn_max(*values):
    """``max`` of the arguments, or of one builtin container."""
    return max(_items_of(values, "max"))


def fn_str(value):
    """``str`` of a number, string, bytes, None, bool or exception (bounded)."""
    tp = type(value)
    if tp is str:
        return value
    if value is None or tp is bool or tp is float or tp is complex:
        return str(value)
    if tp is int or issubclass(tp, int):
        number = int.__index__(value)
        if number.bit_length() > MAX_INT_BITS:
            raise _too_large("str() of this integer")
        return int.__repr__(number)
    if issubclass(tp, str):
        return str.__getitem__(value, slice(None))
    if issubclass(tp, float):
        return float.__repr__(float.__float__(value))
    if issubclass(tp, (bytes, bytearray)):
        if len(value) > MAX_SEQUENCE:
            raise _too_large("str() of these bytes")
        return repr(bytes(value)) if tp is bytes else repr(value)
    if issubclass(tp, BaseException):
        arguments = BaseException.__dict__["args"].__get__(value)
        if not arguments:
            return ""
        for argument in arguments:
            if type(argument) not in (str, int, float, bool) and argument is not None:
                raise EvaluationError(
                    "str() of this exception would run its arguments' code; compare "
                    "throwExp.args[0] instead"
                )
        if len(arguments) == 1:
            return fn_str(arguments[0])
        return repr(tuple(arguments))
    raise EvaluationError(
        "str() works on numbers, strings, bytes, None, booleans and exceptions, not on `%s`"
        % type_name(tp)
    )


def _text_input(value, what):
    if len(value) > MAX_NUMBER_TEXT:
        raise EvaluationError("%s() refuses strings longer than %d" % (what, MAX_NUMBER_TEXT))
    return value


def fn_int(value):
    """``int`` of a number or a decimal string."""
    tp = type(value)
    if issubclass(tp, str):
        return int(_text_input(str.__getitem__(value, slice(None)), "int"))
    number = _number(value)
    if number is _NOT_NUMBER or type(number) is complex:
        raise EvaluationError("int() needs a number or a string, not `%s`" % type_name(tp))
    return int(number)


def fn_float(value):
    """``float`` of a number or a string."""
    tp = type(value)
    if issubclass(tp, str):
        return float(_text_input(str.__getitem__(value, slice(None)), "float"))
    number = _number(value)
    if number is _NOT_NUMBER or type(number) is complex:
        raise EvaluationError("float() needs a number or a string, not `%s`" % type_name(tp))
    return float(number)


def fn_bool(value):
    """Truth value (may call the object's ``__bool__``/``__len__``)."""
    return bool(value)


def fn_round(value, digits=None):
    """``round`` of a number, to at most 300 digits either way."""
    number = _number(value)
    if number is _NOT_NUMBER or type(number) is complex:
        raise EvaluationError("round() needs a number, not `%s`" % type_name(type(value)))
    if digits is None:
        return round(number)
    places = _number(digits)
    if type(places) not in (int, bool):
        raise EvaluationError("round()'s digits must be an integer")
    if abs(places) > MAX_ROUND_DIGITS:
        raise EvaluationError("round()'s digits are limited to +/-%d" % MAX_ROUND_DIGITS)
    return round(number, places)


#: Builtin type names usable as isinstance()'s second argument.
TYPE_NAMES = {
    "int": int,
    "float": float,
    "complex": complex,
    "str": str,
    "bytes": bytes,
    "bytearray": bytearray,
    "bool": bool,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "range": range,
    "NoneType": type(None),
    "BaseException": BaseException,
    "Exception": Exception,
}


def is_instance(value, classes, class_names):
    """isinstance() on the real type: builtin classes, or class names matched in its MRO."""
    tp = type(value)
    if classes and issubclass(tp, classes):
        return True
    if class_names:
        for klass in _type_mro(tp):
            try:
                qualname = _type_qualname(klass)
                full = type_name(klass)
            except Exception:
                continue
            if qualname in class_names or full in class_names:
                return True
    return False


#: name -> (implementation, minimum arguments, maximum arguments)
FUNCTIONS = {
    "len": (fn_len, 1, 1),
    "abs": (fn_abs, 1, 1),
    "min": (fn_min, 1, 64),
    "max": (fn_max, 1, 64),
    "str": (fn_str, 1, 1),
    "int": (fn_int, 1, 1),
    "float": (fn_float, 1, 1),
    "bool": (fn_bool, 1, 1),
    "round": (fn_round, 1, 2),
}


def _text_method(name, function, maximum):
    def method(receiver, *arguments):
        if not issubclass(type(receiver), str):
            raise EvaluationError(
                ".%s() is a string method; this is `%s`" % (name, type_name(type(receiver)))
            )
        if (
            name in ("lower", "upper", "strip", "lstrip", "rstrip")
            and str.__len__(receiver) > MAX_TEXT_INPUT
        ):
            raise EvaluationError(".%s() refuses strings longer than %d" % (name, MAX_TEXT_INPUT))
        for argument in arguments:
            if not (
                type(argument) is str
                or argument is None
                or (type(argument) is tuple and all(type(item) is str for item in argument))
            ):
                raise EvaluationError(".%s() takes strings as arguments" % name)
        return function(receiver, *arguments)

    return method, 0 if name not in ("startswith", "endswith") else 1, maximum


def _dict_get(receiver, key, default=None):
    if not issubclass(type(receiver), dict):
        raise EvaluationError(".get() is a dict method; this is `%s`" % type_name(type(receiver)))
    return dict.get(receiver, key, default)


#: method name -> (implementation(receiver, *args), minimum args, maximum args)
METHODS = {
    "startswith": _text_method("startswith", str.startswith, 1),
    "endswith": _text_method("endswith", str.endswith, 1),
    "lower": _text_method("lower", str.lower, 0),
    "upper": _text_method("upper", str.upper, 0),
    "strip": _text_method("strip", str.strip, 1),
    "lstrip": _text_method("lstrip", str.lstrip, 1),
    "rstrip": _text_method("rstrip", str.rstrip, 1),
    "isdigit": _text_method("isdigit", str.isdigit, 0),
    "get": (_dict_get, 1, 2),
}
