"""The safe expression language of ``--condition`` (and any expression option).

An expression is compiled once, before any probe is installed, into a tree of
small closures that this module evaluates itself; errors found then are
:class:`ExpressionError` with the position of the offending text. At run
time a failing expression raises :class:`EvaluationError` (with the position
of the failing part); a :class:`Condition` turns that into ``False`` and
counts it.

The language
------------
Names (the observation's values): ``params`` (the positional arguments, a
list; ``args`` is an alias), ``kwargs`` (dict), ``target`` (``self``/``cls``
or None), ``returnObj``, ``throwExp`` (None when not applicable) and
``cost`` (milliseconds, a float).

Allowed:

- literals: numbers, strings, bytes, ``True``/``False``/``None``, and
  tuples, lists, sets and dicts of expressions;
- indexing and slicing of lists, tuples, strings, bytes, ranges and dicts
  (``params[0]``, ``kwargs['user']``, ``params[1:3]``); dict lookups never
  run ``__missing__`` (a ``defaultdict`` is not modified);
- attribute navigation ``target.user.id`` (see *Attributes*);
- comparisons, chained too (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``,
  ``in``, ``not in``, ``is``, ``is not``); ``in`` needs a builtin container
  on its right;
- ``and``, ``or``, ``not``, and ``x if c else y``;
- arithmetic on numbers: ``+ - * / // % **`` and unary ``-``/``+``; ``+``
  and ``*`` also concatenate and repeat strings, bytes, lists and tuples;
- calls of these pure functions: ``len``, ``abs``, ``min``, ``max``,
  ``str``, ``int``, ``float``, ``bool``, ``round``, ``isinstance`` (the
  type is a builtin type name, a tuple of them, or a string naming a class
  such as ``'User'`` or ``'app.models.User'``, matched against the real
  type's MRO), and the methods ``startswith``, ``endswith``, ``lower``,
  ``upper``, ``strip``, ``lstrip``, ``rstrip``, ``isdigit`` of strings and
  ``get`` of dicts (``kwargs.get('user')``).

Not allowed (compile-time errors): names starting with ``__`` (dunders and
private names) anywhere, any other name, imports, assignments and ``:=``,
``lambda``, comprehensions, f-strings and t-strings, ``*``/``**`` unpacking,
keyword arguments, calls of anything else, bitwise and matrix operators,
``await``/``yield``, ``...``.

Resource caps (checked before the work is done, so nothing is unbounded):
ints of at most 4096 bits from ``*`` and ``**``; strings, bytes, lists and
tuples of at most 10,000 items from ``+`` and ``*``; ``round`` to at most
300 digits; ``min``/``max`` over at most 100,000 items; string methods,
``int()`` and ``float()`` on inputs of bounded length; the source at most
2,000 characters, 400 syntax nodes, 40 levels of nesting. Constant parts are
computed at compile time, so ``10 ** 10 ** 10`` is a compile-time error.

Attributes
----------
``a.b`` reads data only, with no user code: a ``__slots__`` member or a
getter of a builtin (C) type, the instance ``__dict__`` entry, or a plain
class attribute (a constant defined in the class body); modules are read
from their ``__dict__``, classes from their own namespaces. It refuses
properties and other Python descriptors (they may run arbitrary code: a
database query, a lock), methods, and ``__getattr__`` fallbacks (never
called), each with a message saying so. Names starting with one underscore
are allowed: reading a private field is harmless.

What can still run the target's code, by design (docs/commands.md lists
it for users): ``==``, ``<`` and the other comparisons call the operands'
own special methods, and comparing builtin containers compares their
items; truth tests (``and``, ``or``, ``not``, ``x if c else y``, ``bool``
and the condition's result) call ``__bool__``/``__len__``; ``in`` compares
the needle with a list's, tuple's or range's items, or hashes it for a set
or dict; dict lookups and set and dict literals hash their keys (and
compare them with the keys of the same hash); ``min``/``max`` compare the
items. These are expected to be pure, as any Python code would assume.
Arithmetic, indexing, ``len``, ``str`` and the string methods only ever
run builtin code: they refuse other types rather than call their methods
(subclasses of builtins are read with the builtin's own methods); type
checks use ``type()``, never ``isinstance`` on the target's objects (which
could read their ``__class__``); the message of an exception the target's
code raised is read from its ``args``, not its ``__str__``.

Safety argument
---------------
Nothing is executed from the expression's text: there is no ``eval``,
``exec`` or ``compile`` of it to bytecode. ``ast.parse`` only builds a
syntax tree; every node type is accepted explicitly by :class:`_Compiler`
and turned into a closure written in this module, which does exactly the
operation listed above, after checking its operands' types and the resource
caps. Names resolve only from the fixed context tuple; attribute reads go
through :func:`read_attribute`; calls reach only the functions in
:data:`FUNCTIONS` and :data:`METHODS`. ``ast.parse`` itself is made silent
(it would print a SyntaxWarning for some literals): the source is first
checked with ``tokenize`` for those cases and refused with a clear message.

Interface for probes
--------------------
``compile_condition(source) -> Condition`` (raises ExpressionError);
``condition.test(context) -> bool`` never raises (KeyboardInterrupt aside),
where ``context`` is the tuple ``(params, kwargs, target, returnObj,
throwExp, cost)`` (:func:`make_context` builds it);
``condition.failures``, ``condition.last_error`` and
``condition.take_failures()`` feed ``condition_errors`` events;
``condition.uses`` tells which names it reads (a probe that sees
``returnObj`` or ``cost`` must evaluate at exit). ``compile_expression``
gives an :class:`Expression` whose ``evaluate(context)`` returns the value
or raises EvaluationError.
"""

import ast
import io
import itertools
import operator
import tokenize

from .safe_repr import exception_message
from .safe_values import (
    FUNCTIONS,
    METHODS,
    TYPE_NAMES,
    EvaluationError,
    contains,
    is_instance,
    make_context,  # noqa: F401 - re-exported: the interface of this module
    op_add,
    op_floordiv,
    op_mod,
    op_mul,
    op_neg,
    op_pos,
    op_pow,
    op_sub,
    op_truediv,
    read_attribute,
    read_item,
    type_name,
)

#: The names an expression can read, in the order of the context tuple.
CONTEXT_NAMES = ("params", "kwargs", "target", "returnObj", "throwExp", "cost")
#: Other spellings accepted for context names.
NAME_ALIASES = {"args": "params"}

MAX_SOURCE_CHARS = 2000
MAX_NODES = 400
MAX_NESTING = 40
_MISSING = object()


# ---------------------------------------------------------------------------
# Errors


class ExpressionError(Exception):
    """An invalid expression, found at compile time.

    ``offset`` is the 0-based index in the source of the offending text (or
    None); ``line`` and ``column`` are 1-based. ``str()`` gives the message
    with its position; :meth:`caret` shows it under the source.
    """

    def __init__(self, message, offset=None, source=None):
        self.message = message
        self.offset = offset
        self.source = source
        self.line, self.column = _line_column(source, offset)
        Exception.__init__(self, self.__str__())

    def __str__(self):
        if self.offset is None:
            return self.message
        return "%s (line %d, column %d)" % (self.message, self.line, self.column)

    def caret(self):
        """The source line and a ``^`` under the error position."""
        if self.source is None or self.offset is None:
            return str(self)
        start = self.source.rfind("\n", 0, self.offset) + 1
        end = self.source.find("\n", self.offset)
        if end < 0:
            end = len(self.source)
        return "%s\n%s^" % (self.source[start:end], " " * (self.offset - start))


def _line_column(source, offset):
    if source is None or offset is None:
        return None, None
    offset = max(0, min(offset, len(source)))
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _describe(exc):
    """``Name: message`` of an exception, which may be the target's: its
    ``__str__`` is not run (see :func:`.safe_repr.exception_message`)."""
    tp = type(exc)
    if tp is EvaluationError or tp is ExpressionError:
        text = str(exc)
    else:
        try:
            text = exception_message(exc)
        except Exception:
            text = ""
    if len(text) > 200:
        text = text[:200] + "..."
    name = type_name(tp).rpartition(".")[2]
    return "%s: %s" % (name, text) if text else name


def _wrap(exc, offset):
    """The EvaluationError to raise for ``exc`` caught at ``offset``."""
    if issubclass(type(exc), EvaluationError):
        if exc.offset is None:
            exc.offset = offset
        return exc
    return EvaluationError(_describe(exc), offset)


_BINARY_OPERATORS = {
    ast.Add: op_add,
    ast.Sub: op_sub,
    ast.Mult: op_mul,
    ast.Div: op_truediv,
    ast.FloorDiv: op_floordiv,
    ast.Mod: op_mod,
    ast.Pow: op_pow,
}

_REFUSED_OPERATORS = {
    ast.BitAnd: "`&` is not supported; for a logical and, write `and`",
    ast.BitOr: "`|` is not supported; for a logical or, write `or`",
    ast.BitXor: "`^` is not supported (for a power, write `**`)",
    ast.LShift: "`<<` is not supported",
    ast.RShift: "`>>` is not supported",
    ast.MatMult: "`@` is not supported",
    ast.Invert: "`~` is not supported; for a logical not, write `not`",
}


# ---------------------------------------------------------------------------
# Source checks done before ast.parse (which would print SyntaxWarnings)

_SIMPLE_ESCAPES = "\n\\'\"abfnrtv"
_OCTAL = "01234567"


def _check_tokens(source, positions):
    """Refuses what ast.parse would warn about: bad escapes, ``1if``, f/t-strings."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return  # ast.parse reports the syntax error itself
    previous = None
    for token in tokens:
        kind = tokenize.tok_name.get(token.type, "")
        offset = positions.from_token(token.start)
        if kind in ("FSTRING_START", "TSTRING_START"):
            raise ExpressionError("f-strings and t-strings are not allowed", offset, source)
        if token.type == tokenize.STRING:
            _check_string_literal(token.string, offset, source)
        if (
            token.type == tokenize.NAME
            and previous is not None
            and previous.type == tokenize.NUMBER
            and previous.end == token.start
        ):
            raise ExpressionError(
                "put a space between the number and `%s`" % token.string, offset, source
            )
        previous = token


def _check_string_literal(text, offset, source):
    quote_at = 0
    while quote_at < len(text) and text[quote_at] not in "'\"":
        quote_at += 1
    prefix = text[:quote_at].lower()
    if "f" in prefix or "t" in prefix:
        raise ExpressionError("f-strings and t-strings are not allowed", offset, source)
    if "r" in prefix:
        return
    is_bytes = "b" in prefix
    quote = text[quote_at : quote_at + 3]
    width = 3 if quote in ('"""', "'''") else 1
    body_start = quote_at + width
    body = text[body_start : len(text) - width]
    index = body.find("\\")
    while index >= 0:
        char = body[index + 1 : index + 2]
        step = 2
        if char in _SIMPLE_ESCAPES or char == "\r" or char == "x":
            pass
        elif char in _OCTAL:
            end = index + 2
            while end < len(body) and end < index + 4 and body[end] in _OCTAL:
                end += 1
            digits = body[index + 1 : end]
            if int(digits, 8) > 0o377:
                raise ExpressionError(
                    "invalid octal escape \\%s (the largest is \\377)" % digits,
                    offset + body_start + index,
                    source,
                )
            step = end - index
        elif char in "NuU" and not is_bytes:
            pass
        else:
            raise ExpressionError(
                "invalid escape sequence \\%s; write \\\\%s or use a raw string r'...'"
                % (char, char),
                offset + body_start + index,
                source,
            )
        index = body.find("\\", index + step)


class _Positions(object):
    """Converts tokenize/ast positions (line, column) into offsets in the source."""

    def __init__(self, source):
        self.source = source
        self.starts = [0]
        for index, char in enumerate(source):
            if char == "\n":
                self.starts.append(index + 1)

    def line_text(self, line):
        start = self.starts[line - 1] if 0 < line <= len(self.starts) else 0
        end = self.source.find("\n", start)
        return self.source[start : end if end >= 0 else len(self.source)]

    def from_token(self, position):
        line, column = position
        if line < 1 or line > len(self.starts):
            return None
        return self.starts[line - 1] + column

    def from_node(self, node, end=False):
        """The offset of an ast node's start (or end); ast columns count UTF-8 bytes."""
        if end:
            line = getattr(node, "end_lineno", None)
            column = getattr(node, "end_col_offset", None)
        else:
            line = getattr(node, "lineno", None)
            column = getattr(node, "col_offset", None)
        if line is None or column is None or line < 1 or line > len(self.starts):
            return None
        text = self.line_text(line)
        prefix = text.encode("utf-8")[:column].decode("utf-8", "ignore")
        return self.starts[line - 1] + len(prefix)


# ---------------------------------------------------------------------------
# The compiler: ast -> closures


_REFUSED_NODES = {
    "Lambda": "lambda is not allowed in expressions",
    "ListComp": "comprehensions are not allowed in expressions",
    "SetComp": "comprehensions are not allowed in expressions",
    "DictComp": "comprehensions are not allowed in expressions",
    "GeneratorExp": "generator expressions are not allowed in expressions",
    "NamedExpr": "assignments (:=) are not allowed in expressions",
    "Await": "await is not allowed in expressions",
    "Yield": "yield is not allowed in expressions",
    "YieldFrom": "yield is not allowed in expressions",
    "Starred": "* unpacking is not allowed in expressions",
    "JoinedStr": "f-strings are not allowed in expressions",
    "FormattedValue": "f-strings are not allowed in expressions",
    "TemplateStr": "t-strings are not allowed in expressions",
    "Interpolation": "t-strings are not allowed in expressions",
    "ExtSlice": "multi-dimensional slicing is not allowed in expressions",
}


class _Node(object):
    """A compiled node: its closure and, for constants, its value."""

    __slots__ = ("fn", "constant", "value", "offset")

    def __init__(self, fn, offset, constant=False, value=None):
        self.fn = fn
        self.offset = offset
        self.constant = constant
        self.value = value


def _constant_node(value, offset):
    def constant(context):
        return value

    return _Node(constant, offset, True, value)


class _Compiler(object):
    def __init__(self, source, names=None):
        self.source = source
        # Another vocabulary: {spelling: context name} (see compile_expression).
        self.names = names
        self.positions = _Positions(source)
        self.nodes = 0
        self.depth = 0
        self.uses = set()

    def error(self, message, node=None, offset=None):
        if offset is None and node is not None:
            offset = self.positions.from_node(node)
        return ExpressionError(message, offset, self.source)

    def compile(self, node):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error("the expression is too long (more than %d parts)" % MAX_NODES, node)
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error("the expression nests more than %d levels" % MAX_NESTING, node)
        try:
            name = type(node).__name__
            method = getattr(self, "c_" + name, None)
            if method is None:
                message = _REFUSED_NODES.get(name, "`%s` is not allowed in expressions" % name)
                raise self.error(message, node)
            return method(node)
        finally:
            self.depth -= 1

    def fold(self, compiled, node):
        """Computes a node whose operands are all constants now (errors become compile errors)."""
        try:
            value = compiled.fn(None)
        except EvaluationError as exc:
            raise self.error("this part always fails: %s" % exc.message, node) from None
        except Exception as exc:
            raise self.error("this part always fails: %s" % _describe(exc), node) from None
        return _constant_node(value, compiled.offset)

    # -- leaves --------------------------------------------------------------

    def c_Constant(self, node):
        value = node.value
        if value is Ellipsis:
            raise self.error("`...` is not allowed in expressions", node)
        if type(value) not in (int, float, complex, str, bytes, bool) and value is not None:
            raise self.error("this literal is not allowed", node)
        return _constant_node(value, self.positions.from_node(node))

    def c_Name(self, node):
        name = node.id
        offset = self.positions.from_node(node)
        if name.startswith("__"):
            raise self.error("names starting with `__` are not allowed", node)
        if self.names is not None:
            canonical = self.names.get(name)
        else:
            canonical = NAME_ALIASES.get(name, name)
        if canonical in CONTEXT_NAMES:
            self.uses.add(canonical)
            return _Node(operator.itemgetter(CONTEXT_NAMES.index(canonical)), offset)
        if name in FUNCTIONS or name == "isinstance":
            raise self.error("`%s` is a function: call it, as in %s(...)" % (name, name), node)
        if name in TYPE_NAMES:
            raise self.error("`%s` can only be used as isinstance()'s second argument" % name, node)
        if self.names is not None:
            raise self.error(
                "unknown name `%s`; the names are %s" % (name, ", ".join(sorted(self.names))),
                node,
            )
        raise self.error(
            "unknown name `%s`; the names are %s (and args for params)"
            % (name, ", ".join(CONTEXT_NAMES)),
            node,
        )

    # -- displays ------------------------------------------------------------

    def _elements(self, elements):
        compiled = []
        for element in elements:
            if type(element).__name__ == "Starred":
                raise self.error("* unpacking is not allowed", element)
            compiled.append(self.compile(element))
        return compiled

    def _display(self, node, elements, build):
        offset = self.positions.from_node(node)
        fns = tuple(item.fn for item in elements)

        def display(context):
            try:
                return build(fn(context) for fn in fns)
            except Exception as exc:
                raise _wrap(exc, offset) from None

        compiled = _Node(display, offset)
        if all(item.constant for item in elements):
            return self.fold(compiled, node)
        return compiled

    def c_Tuple(self, node):
        return self._display(node, self._elements(node.elts), tuple)

    def c_List(self, node):
        return self._display(node, self._elements(node.elts), list)

    def c_Set(self, node):
        return self._display(node, self._elements(node.elts), set)

    def c_Dict(self, node):
        for key in node.keys:
            if key is None:
                raise self.error("** unpacking is not allowed", node)
        keys = self._elements(node.keys)
        values = self._elements(node.values)
        offset = self.positions.from_node(node)
        pairs = tuple((key.fn, value.fn) for key, value in zip(keys, values))

        def display(context):
            try:
                return dict((key(context), value(context)) for key, value in pairs)
            except Exception as exc:
                raise _wrap(exc, offset) from None

        compiled = _Node(display, offset)
        if all(item.constant for item in keys + values):
            return self.fold(compiled, node)
        return compiled

    # -- navigation ----------------------------------------------------------

    def c_Attribute(self, node):
        name = node.attr
        end = self.positions.from_node(node, end=True)
        name_offset = end - len(name) if end is not None else None
        if name.startswith("__"):
            raise self.error("attributes starting with `__` are not allowed", node, name_offset)
        if name in METHODS:
            raise self.error(
                "`.%s` is a method: call it, as in .%s(...)" % (name, name), node, name_offset
            )
        value = self.compile(node.value).fn
        # Errors point at the attribute's name, at the end of the node.
        end = self.positions.from_node(node, end=True)
        offset = end - len(name) if end is not None else self.positions.from_node(node)

        def attribute(context):
            try:
                return read_attribute(value(context), name)
            except Exception as exc:
                raise _wrap(exc, offset) from None

        return _Node(attribute, offset)

    def _slice_part(self, node):
        if node is None:
            return None
        return self.compile(node)

    def c_Slice(self, node):
        parts = [
            self._slice_part(node.lower),
            self._slice_part(node.upper),
            self._slice_part(node.step),
        ]
        offset = self.positions.from_node(node)
        fns = tuple(part.fn if part is not None else None for part in parts)

        def make_slice(context):
            bounds = []
            for fn in fns:
                bound = fn(context) if fn is not None else None
                if bound is not None and type(bound) not in (int, bool):
                    raise EvaluationError(
                        "slice bounds must be integers, not `%s`" % type_name(type(bound)), offset
                    )
                bounds.append(bound)
            return slice(*bounds)

        compiled = _Node(make_slice, offset)
        if all(part is None or part.constant for part in parts):
            return self.fold(compiled, node)
        return compiled

    def c_Index(self, node):
        # Python 3.8 wraps subscripts in ast.Index.
        return self.compile(node.value)

    def c_Subscript(self, node):
        index_node = node.slice
        if type(index_node).__name__ == "Tuple" and any(
            type(element).__name__ == "Slice" for element in index_node.elts
        ):
            raise self.error("multi-dimensional slicing is not allowed", node)
        container = self.compile(node.value).fn
        index = self.compile(index_node)
        offset = self.positions.from_node(node)
        if index.constant and type(index.value) is int:
            position = index.value

            def subscript_position(context):
                try:
                    value = container(context)
                    value_type = type(value)
                    if value_type is list or value_type is tuple:
                        return value[position]
                    return read_item(value, position)
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            return _Node(subscript_position, offset)
        if index.constant:
            key = index.value

            def subscript_constant(context):
                try:
                    value = container(context)
                    if type(value) is dict:
                        found = value.get(key, _MISSING)
                        if found is not _MISSING:
                            return found
                    return read_item(value, key)
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            return _Node(subscript_constant, offset)
        key_fn = index.fn

        def subscript(context):
            try:
                return read_item(container(context), key_fn(context))
            except Exception as exc:
                raise _wrap(exc, offset) from None

        return _Node(subscript, offset)

    # -- operators -----------------------------------------------------------

    def c_BoolOp(self, node):
        values = tuple(self.compile(value).fn for value in node.values)
        offset = self.positions.from_node(node)
        if type(node.op) is ast.And:

            def boolean_and(context):
                result = True
                try:
                    for fn in values:
                        result = fn(context)
                        if not result:
                            return result
                    return result
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            return _Node(boolean_and, offset)

        def boolean_or(context):
            result = False
            try:
                for fn in values:
                    result = fn(context)
                    if result:
                        return result
                return result
            except Exception as exc:
                raise _wrap(exc, offset) from None

        return _Node(boolean_or, offset)

    def c_UnaryOp(self, node):
        op_type = type(node.op)
        if op_type in _REFUSED_OPERATORS:
            raise self.error(_REFUSED_OPERATORS[op_type], node)
        operand = self.compile(node.operand)
        fn = operand.fn
        offset = self.positions.from_node(node)
        if op_type is ast.Not:

            def negation(context):
                try:
                    return not fn(context)
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            compiled = _Node(negation, offset)
        else:
            implementation = op_neg if op_type is ast.USub else op_pos

            def unary(context):
                try:
                    return implementation(fn(context))
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            compiled = _Node(unary, offset)
        if operand.constant:
            return self.fold(compiled, node)
        return compiled

    def c_BinOp(self, node):
        op_type = type(node.op)
        if op_type in _REFUSED_OPERATORS:
            raise self.error(_REFUSED_OPERATORS[op_type], node)
        implementation = _BINARY_OPERATORS[op_type]
        left = self.compile(node.left)
        right = self.compile(node.right)
        left_fn = left.fn
        right_fn = right.fn
        offset = self.positions.from_node(node)

        def binary(context):
            try:
                return implementation(left_fn(context), right_fn(context))
            except Exception as exc:
                raise _wrap(exc, offset) from None

        compiled = _Node(binary, offset)
        if left.constant and right.constant:
            return self.fold(compiled, node)
        return compiled

    def c_Compare(self, node):
        left = self.compile(node.left)
        comparators = [self.compile(item) for item in node.comparators]
        operators = [_COMPARISONS[type(op)] for op in node.ops]
        offset = self.positions.from_node(node)
        if len(operators) == 1:
            compiled = _single_comparison(operators[0], left, comparators[0], offset)
        else:
            steps = tuple(zip(operators, (item.fn for item in comparators)))
            left_fn = left.fn

            def chain(context):
                try:
                    current = left_fn(context)
                    for compare, fn in steps:
                        following = fn(context)
                        if not compare(current, following):
                            return False
                        current = following
                    return True
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            compiled = _Node(chain, offset)
        if left.constant and all(item.constant for item in comparators):
            return self.fold(compiled, node)
        return compiled

    def c_IfExp(self, node):
        test = self.compile(node.test).fn
        body = self.compile(node.body).fn
        orelse = self.compile(node.orelse).fn
        offset = self.positions.from_node(node)

        def conditional(context):
            try:
                return body(context) if test(context) else orelse(context)
            except Exception as exc:
                raise _wrap(exc, offset) from None

        return _Node(conditional, offset)

    # -- calls ---------------------------------------------------------------

    def c_Call(self, node):
        if node.keywords:
            raise self.error("keyword arguments are not allowed", node.keywords[0].value)
        for argument in node.args:
            if type(argument).__name__ == "Starred":
                raise self.error("* unpacking is not allowed", argument)
        function = node.func
        kind = type(function).__name__
        if kind == "Name" and function.id == "isinstance":
            return self._isinstance(node)
        if kind == "Name" and function.id in FUNCTIONS:
            implementation, least, most = FUNCTIONS[function.id]
            label = "%s()" % function.id
            receiver = None
        elif kind == "Attribute" and function.attr in METHODS:
            implementation, least, most = METHODS[function.attr]
            label = ".%s()" % function.attr
            receiver = self.compile(function.value).fn
        else:
            allowed = ", ".join(sorted(FUNCTIONS)) + ", isinstance"
            methods = ", ".join("." + name for name in sorted(METHODS))
            raise self.error(
                "only these functions can be called: %s; and these methods: %s"
                % (allowed, methods),
                function,
            )
        count = len(node.args)
        if count < least or count > most:
            raise self.error(
                "%s takes %s argument%s, not %d"
                % (
                    label,
                    least if least == most else "%d to %d" % (least, most),
                    "" if most == 1 else "s",
                    count,
                ),
                node,
            )
        arguments = [self.compile(argument) for argument in node.args]
        fns = tuple(argument.fn for argument in arguments)
        offset = self.positions.from_node(node)
        if receiver is not None:

            def method_call(context):
                try:
                    return implementation(receiver(context), *[fn(context) for fn in fns])
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            return _Node(method_call, offset)
        if len(fns) == 1:
            only = fns[0]

            def call_one(context):
                try:
                    return implementation(only(context))
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            compiled = _Node(call_one, offset)
        else:

            def call(context):
                try:
                    return implementation(*[fn(context) for fn in fns])
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            compiled = _Node(call, offset)
        if all(argument.constant for argument in arguments):
            return self.fold(compiled, node)
        return compiled

    def _isinstance(self, node):
        if len(node.args) != 2:
            raise self.error("isinstance() takes 2 arguments", node)
        value = self.compile(node.args[0]).fn
        spec = node.args[1]
        classes = []
        names = []
        items = spec.elts if type(spec).__name__ == "Tuple" else [spec]
        for item in items:
            kind = type(item).__name__
            if kind == "Name" and item.id in TYPE_NAMES:
                classes.append(TYPE_NAMES[item.id])
            elif kind == "Constant" and type(item.value) is str:
                text = item.value
                if not text or text.startswith("__"):
                    raise self.error("give a class name such as 'User' or 'app.models.User'", item)
                names.append(text)
            else:
                raise self.error(
                    "isinstance()'s second argument is a builtin type name (%s), a class name "
                    "in quotes ('User', 'app.models.User'), or a tuple of them"
                    % ", ".join(sorted(TYPE_NAMES)),
                    item,
                )
        classes = tuple(classes)
        names = frozenset(names)
        offset = self.positions.from_node(node)

        def instance_check(context):
            try:
                return is_instance(value(context), classes, names)
            except Exception as exc:
                raise _wrap(exc, offset) from None

        return _Node(instance_check, offset)


def _contains_reversed(item, container):
    return contains(container, item)


def _not_contains(item, container):
    return not contains(container, item)


_COMPARISONS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: _contains_reversed,
    ast.NotIn: _not_contains,
}


def _single_comparison(compare, left, right, offset):
    """One comparison; the common shapes (a name against a constant) get a lean closure."""
    left_fn = left.fn
    if right.constant:
        constant = right.value
        if compare is operator.gt:

            def greater(context):
                try:
                    return left_fn(context) > constant
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            return _Node(greater, offset)
        if compare is operator.lt:

            def less(context):
                try:
                    return left_fn(context) < constant
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            return _Node(less, offset)
        if compare is operator.eq:

            def equal(context):
                try:
                    return left_fn(context) == constant
                except Exception as exc:
                    raise _wrap(exc, offset) from None

            return _Node(equal, offset)

        def against_constant(context):
            try:
                return compare(left_fn(context), constant)
            except Exception as exc:
                raise _wrap(exc, offset) from None

        return _Node(against_constant, offset)
    right_fn = right.fn

    def comparison(context):
        try:
            return compare(left_fn(context), right_fn(context))
        except Exception as exc:
            raise _wrap(exc, offset) from None

    return _Node(comparison, offset)


# ---------------------------------------------------------------------------
# Public interface


class Expression(object):
    """A compiled expression: ``evaluate(context)`` returns its value or raises EvaluationError."""

    def __init__(self, source, fn, uses):
        self.source = source
        #: The closure: fn(context) -> value (raises EvaluationError).
        self.function = fn
        #: The context names the expression reads (canonical spellings).
        self.uses = frozenset(uses)

    def evaluate(self, context):
        """The value of the expression for ``context`` (see make_context)."""
        try:
            return self.function(context)
        except EvaluationError:
            raise
        except Exception as exc:
            raise _wrap(exc, None) from None

    def __repr__(self):
        return "Expression(%r)" % (self.source,)


def compile_expression(source, names=None):
    """Compiles ``source``; raises ExpressionError (with its position) if it is not allowed.

    ``names`` replaces the vocabulary: a dict ``{spelling: context name}``,
    e.g. ``{"obj": "target"}`` for an expression over one object (``inspect
    --filter-express``); only those spellings are then accepted.
    """
    if not isinstance(source, str):
        raise ExpressionError("an expression must be a string")
    if len(source) > MAX_SOURCE_CHARS:
        raise ExpressionError(
            "the expression is longer than %d characters" % MAX_SOURCE_CHARS,
            MAX_SOURCE_CHARS,
            source,
        )
    if not source.strip():
        raise ExpressionError("the expression is empty", 0, source)
    null = source.find("\0")
    if null >= 0:
        raise ExpressionError("the expression contains a NUL character", null, source)
    compiler = _Compiler(source, names)
    _check_tokens(source, compiler.positions)
    try:
        tree = ast.parse(source, "<expression>", "eval")
    except SyntaxError as exc:
        raise _syntax_error(exc, source, compiler.positions) from None
    except (MemoryError, RecursionError):
        raise ExpressionError("the expression nests too deeply", 0, source) from None
    except ValueError as exc:
        raise ExpressionError("the expression cannot be parsed: %s" % exc, 0, source) from None
    try:
        compiled = compiler.compile(tree.body)
    except RecursionError:
        raise ExpressionError("the expression nests too deeply", 0, source) from None
    return Expression(source, compiled.fn, compiler.uses)


def _syntax_error(exc, source, positions):
    """An ExpressionError from ast.parse's SyntaxError, positions made uniform across versions."""
    message = exc.msg or "invalid syntax"
    at_end = "EOF" in message or not exc.offset or exc.offset <= 0
    if "EOF" in message:
        message = "invalid syntax: the expression ends too early"
    elif message != "invalid syntax":
        message = "invalid syntax: %s" % message
    offset = None
    if not at_end and exc.lineno is not None:
        line = exc.lineno
        if 0 < line <= len(positions.starts):
            column = min(exc.offset - 1, len(positions.line_text(line)))
            offset = positions.starts[line - 1] + column
    if offset is None:
        offset = len(source.rstrip())
    return ExpressionError(message, offset, source)


class Condition(object):
    """A compiled ``--condition``: ``test(context)`` is True, False, or False on failure.

    Failures are counted (exactly, across threads) and the last one kept:
    ``failures``, ``last_error`` and ``take_failures()`` feed the stream's
    ``condition_errors`` events.
    """

    def __init__(self, expression):
        self.expression = expression
        self.source = expression.source
        self.uses = expression.uses
        self._fn = expression.function
        self._failures = itertools.count()
        self._reported = 0
        self.last_error = None
        self.test = self._make_test()

    def _make_test(self):
        fn = self._fn
        count = self._failures.__next__
        condition = self

        def test(context):
            try:
                if fn(context):
                    return True
                return False
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                count()
                condition.last_error = (
                    str(_wrap(exc, None)) if issubclass(type(exc), Exception) else _describe(exc)
                )
                return False

        return test

    def failed(self, exc):
        """Counts a failure of the condition evaluated elsewhere (inlined); returns False.

        ``KeyboardInterrupt`` is raised again, as :meth:`test` does.
        """
        if issubclass(type(exc), KeyboardInterrupt):
            raise exc
        next(self._failures)
        self.last_error = (
            str(_wrap(exc, None)) if issubclass(type(exc), Exception) else _describe(exc)
        )
        return False

    def test(self, context):  # noqa: F811 - replaced per instance by _make_test
        """True when the condition holds; False when not, or when it fails (counted)."""
        return self.__dict__["test"](context)

    @property
    def failures(self):
        """How many evaluations failed so far."""
        text = repr(self._failures)
        return int(text[text.index("(") + 1 : -1])

    def take_failures(self):
        """(failures since the previous call, last error message) for an event."""
        total = self.failures
        new = total - self._reported
        self._reported = total
        return new, self.last_error


def compile_condition(source):
    """Compiles a ``--condition``; raises ExpressionError before any probe exists."""
    return Condition(compile_expression(source))
