"""Conditions of the common shapes as Python source, for a probe's generated wrapper.

A watched hot function pays for its condition on every call. Evaluated by
:mod:`.expr` (a tree of closures, one Python call per part) even a false
``params[0] == 'x'`` costs several calls; written into the wrapper the
``__code__`` swapping backend generates (:mod:`.probe_code_swap`), it
costs what the same comparison costs in the function itself.

Which conditions
----------------
Only these shapes, whose meaning as Python source is exactly what
:mod:`.expr` evaluates (comparisons call the operands' own methods there
too, ``and``/``or``/``not`` are Python's):

- literals: ints, finite floats, strings, bytes, ``True``/``False``/
  ``None``, and ``-`` before a number;
- ``cost``, ``returnObj``, ``throwExp``, ``target``;
- ``params[i]`` (or ``args[i]``) with a literal int ``i``, which
  :mod:`.expr` reads with the tuple's own indexing;
- comparisons (``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``is``,
  ``is not``, chained too), ``and``, ``or``, ``not``.

Anything else (attributes, ``in``, calls, arithmetic, ``kwargs``...)
returns None: the probe then evaluates the condition with :mod:`.expr`.

Safety argument
---------------
The source compiled into the wrapper is written here, not taken from the
expression: the expression was first accepted by
:func:`peeka_agent.expr.compile_condition` (so it is within every limit of
the language), then its syntax tree is walked and each accepted node is
written from a fixed template. Names become the wrapper's own variables
(given by the caller); a literal is written with ``repr`` of a value whose
type is one of the six above, which reads back as the same value. No text
of the expression is copied into the source.
"""

import ast
import math

#: Comparison operators written as they are.
_COMPARISONS = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_LITERAL_TYPES = (int, float, str, bytes, bool, type(None))
#: Names of the context that the caller maps to its own variables.
VALUE_NAMES = ("target", "returnObj", "throwExp", "cost")


class _NotInline(Exception):
    """The expression has a part outside the inlined shapes."""


def inline_condition(source, values, param):
    """Python source for the condition ``source``, or None if it is not of the shapes above.

    ``values`` maps the names of :data:`VALUE_NAMES` to source text reading
    them in the wrapper (a missing one makes that name unsupported);
    ``param(i)`` returns the source of ``params[i]``, or None when it
    cannot be written (the condition then is not inlined). ``source`` must
    have been accepted by ``compile_condition``.
    """
    try:
        tree = ast.parse(source, "<condition>", "eval")
        return _write(tree.body, values, param)
    except (_NotInline, SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _literal(value):
    if type(value) not in _LITERAL_TYPES:
        raise _NotInline()
    if type(value) is float and not math.isfinite(value):
        raise _NotInline()
    return "(%r)" % (value,)


def _index(node):
    """The literal int of a subscript, or _NotInline (3.8 wraps it in ast.Index)."""
    if type(node).__name__ == "Index":
        node = node.value
    if type(node) is ast.Constant and type(node.value) is int:
        return node.value
    if (
        type(node) is ast.UnaryOp
        and type(node.op) is ast.USub
        and type(node.operand) is ast.Constant
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    raise _NotInline()


def _write(node, values, param):
    kind = type(node)
    if kind is ast.Constant:
        return _literal(node.value)
    if kind is ast.Name:
        text = values.get(node.id) if node.id in VALUE_NAMES else None
        if text is None:
            raise _NotInline()
        return "(%s)" % text
    if kind is ast.Subscript:
        container = node.value
        if type(container) is not ast.Name or container.id not in ("params", "args"):
            raise _NotInline()
        text = param(_index(node.slice))
        if text is None:
            raise _NotInline()
        return "(%s)" % text
    if kind is ast.UnaryOp:
        if type(node.op) is ast.Not:
            return "(not %s)" % _write(node.operand, values, param)
        operand = node.operand
        if (
            type(node.op) is ast.USub
            and type(operand) is ast.Constant
            and type(operand.value) in (int, float)
        ):
            return _literal(-operand.value)
        raise _NotInline()
    if kind is ast.Compare:
        parts = [_write(node.left, values, param)]
        for op, right in zip(node.ops, node.comparators):
            text = _COMPARISONS.get(type(op))
            if text is None:
                raise _NotInline()
            parts.append(text)
            parts.append(_write(right, values, param))
        return "(%s)" % " ".join(parts)
    if kind is ast.BoolOp:
        joiner = " and " if type(node.op) is ast.And else " or "
        return "(%s)" % joiner.join(_write(value, values, param) for value in node.values)
    raise _NotInline()
