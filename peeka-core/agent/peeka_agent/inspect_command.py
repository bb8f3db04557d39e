"""``inspect``: read a live value by its path, or find the instances of a class.

params: ``{"action": "get"|"instances"|"count", "target": str,
"class_name": str, "limit": int, "depth": int, "filter_express": str,
"gc_first": bool}`` (``action`` defaults to ``get``).

``get``
    ``target`` is a path: a module in ``sys.modules`` followed by
    attributes and items, e.g. ``app.config.settings.db['hosts'][0]``,
    ``app.models.User.TABLE``. Items are ``[integer]`` or ``['key']`` /
    ``["key"]`` on lists, tuples, strings and dicts. Every step reads data
    only, as the safe expression language does (:mod:`.safe_values`): an
    instance field, a slot, a C getter, a module global, a plain class
    attribute; properties, methods and ``__getattr__`` are refused (never
    run), and so is indexing anything but a builtin container. data:
    ``{"target", "type", "id", "value"}``, ``value`` captured by
    :mod:`.capture` to ``depth`` levels (default 2, at most 4), ``id`` the
    object's address in hexadecimal.
``instances``
    The objects whose class is ``class_name`` or derived from it (found as
    in :func:`~peeka_agent.classes.resolve_class`), among those the
    garbage collector tracks (see :mod:`.heap` for the bounds of the walk),
    for which ``filter_express`` holds: an expression of the safe
    expression language over ``obj`` (e.g. ``obj.qty > 10 and
    obj.sku.startswith('A')``); an instance on which it fails counts as not
    matching, and the failures are counted. data: ``{"class_name",
    "instances": [{"id", "type", "value"}...], "matched", "truncated",
    "filter_errors", "last_filter_error", "scanned", "tracked",
    "scan_truncated", "scan_stopped_by", "scan_ms"}``, at most ``limit``
    (default 10, at most 1000) instances, in the collector's order.
``count``
    As ``instances`` without the values: ``{"class_name", "count",
    "by_type": {name: n}, "filter_errors", ...scan fields}``.

``gc_first`` runs a full ``gc.collect()`` before the walk, so that garbage
waiting for the collector is not counted. An invalid ``filter_express``
fails with ``invalid_expression`` before anything is done; an unknown class
with ``not_found`` and close matches; a path that cannot be read with
``not_found`` naming the step and why.
"""

import gc
import sys

from .capture import CaptureLimits, Capturer, MAX_DEPTH
from .classes import full_name, is_module, resolve_class
from .commands import CommandError, invalid_params, register_command
from .expr import Condition, ExpressionError, compile_expression, make_context
from .heap import run_in_background, scan, subclass_ids
from .introspect import type_name
from .safe_values import EvaluationError, read_attribute, read_item
from .wire import ErrorCode

DEFAULT_DEPTH = 2
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
#: The names a filter expression may use.
FILTER_NAMES = {"obj": "target"}
MAX_PATH = 1000
#: Bytes of captured values in one answer (shared by the instances listed).
MAX_BYTES = 1024 * 1024


def parse_path(path):
    """``[("name", str) | ("item", key)...]`` of a target path; raises CommandError."""
    steps = []
    index = 0
    length = len(path)
    expect_name = True
    while index < length:
        char = path[index]
        if char == "[":
            close = path.find("]", index)
            if close < 0:
                raise _bad_path(path, index, "`[` without `]`")
            key_text = path[index + 1 : close].strip()
            steps.append(("item", _parse_key(path, index, key_text)))
            index = close + 1
            expect_name = False
            continue
        if char == ".":
            if expect_name:
                raise _bad_path(path, index, "a name is missing before `.`")
            index += 1
            expect_name = True
            if index >= length:
                raise _bad_path(path, index, "the path ends with `.`")
            continue
        if not expect_name:
            raise _bad_path(path, index, "expected `.` or `[`")
        end = index
        while end < length and (path[end].isalnum() or path[end] == "_"):
            end += 1
        if end == index:
            raise _bad_path(path, index, "unexpected `%s`" % char)
        steps.append(("name", path[index:end]))
        index = end
        expect_name = False
    if not steps or steps[0][0] != "name":
        raise _bad_path(path, 0, "a path starts with a module name")
    return steps


def _parse_key(path, index, text):
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        if "\\" in inner or text[0] in inner:
            raise _bad_path(path, index, "escapes are not supported in keys")
        return inner
    sign = text[1:] if text.startswith("-") else text
    if sign.isdigit() and len(sign) < 20:
        return int(text)
    raise _bad_path(path, index, "a key is an integer or a quoted string, not `%s`" % text)


def _bad_path(path, index, why):
    return CommandError(
        ErrorCode.INVALID_PARAMS,
        "invalid target path: %s (at character %d of `%s`); write module.attr.attr[0]['key']"
        % (why, index + 1, path),
    )


def resolve_path(path):
    """The value at ``path`` (see the module documentation); raises CommandError."""
    steps = parse_path(path)
    names = []
    for kind, value in steps:
        if kind != "name":
            break
        names.append(value)
    module = None
    used = 0
    for count in range(len(names), 0, -1):
        candidate = sys.modules.get(".".join(names[:count]))
        if is_module(candidate):
            module, used = candidate, count
            break
    if module is None:
        raise CommandError(
            ErrorCode.NOT_FOUND,
            "no imported module starts `%s` (the path begins with a module in sys.modules, e.g. "
            "`__main__.config`; the agent never imports)" % path,
        )
    value = module
    reached = ".".join(names[:used])
    for kind, key in steps[used:]:
        try:
            if kind == "name":
                value = read_attribute(value, key)
                reached += "." + key
            else:
                value = read_item(value, key)
                reached += "[%r]" % (key,)
        except EvaluationError as exc:
            raise CommandError(
                ErrorCode.NOT_FOUND,
                "cannot read `%s` after `%s`: %s" % (_step_text(kind, key), reached, exc.message),
            )
        except Exception as exc:
            raise CommandError(
                ErrorCode.NOT_FOUND,
                "cannot read `%s` after `%s`: %s: %s"
                % (_step_text(kind, key), reached, type(exc).__name__, exc),
            )
    return value


def _step_text(kind, key):
    return key if kind == "name" else "[%r]" % (key,)


def compile_filter(source):
    """The ``filter_express`` condition over ``obj``; CommandError(invalid_expression)."""
    try:
        return Condition(compile_expression(source, FILTER_NAMES))
    except ExpressionError as exc:
        raise CommandError(ErrorCode.INVALID_EXPRESSION, "%s\n%s" % (exc, exc.caret()))


def find_instances(cls, condition, keep, stop_event):
    """(kept instances (at most ``keep``), matched count, {type name: n}, ScanStats)."""
    ids = subclass_ids(cls)
    kept = []
    counts = {}
    matched = [0]
    test = condition.test if condition is not None else None

    def visit(obj):
        tp = type(obj)
        if id(tp) not in ids:
            return False
        if test is not None and not test(make_context(target=obj)):
            return False
        matched[0] += 1
        entry = counts.get(id(tp))
        counts[id(tp)] = (tp, 1 if entry is None else entry[1] + 1)
        if len(kept) < keep:
            kept.append(obj)
        return False

    stats = scan(visit, stop_event)
    by_type = {}
    for tp, count in counts.values():
        by_type[full_name(tp)] = by_type.get(full_name(tp), 0) + count
    return kept, matched[0], by_type, stats


def handle_inspect(ctx):
    """``inspect``: see the module documentation."""
    ctx.check_params(
        ("action", "target", "class_name", "limit", "depth", "filter_express", "gc_first")
    )
    action = ctx.param("action", str, default="get", choices=("get", "instances", "count"))
    target = ctx.param("target", str)
    class_name = ctx.param("class_name", str)
    limit = ctx.param("limit", int, default=DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    depth = ctx.param("depth", int, default=DEFAULT_DEPTH, minimum=0, maximum=MAX_DEPTH)
    source = ctx.param("filter_express", str)
    gc_first = ctx.param("gc_first", bool, default=False)
    capturer = Capturer(CaptureLimits(depth=depth, max_bytes=MAX_BYTES))
    if action == "get":
        if class_name is not None or source is not None:
            raise invalid_params(
                "`--action get` reads `target`; `class_name` and `filter_express` are for "
                "`--action instances` and `--action count`"
            )
        if target is None or not target.strip():
            raise invalid_params(
                "`--action get` needs `target`, a path such as `mymodule.config.items[0]`"
            )
        if len(target) > MAX_PATH:
            raise invalid_params("`target` is longer than %d characters" % MAX_PATH)
        value = resolve_path(target.strip())
        return {
            "target": target.strip(),
            "type": type_name(type(value)),
            "id": hex(id(value)),
            "value": capturer.capture(value),
        }
    if target is not None:
        raise invalid_params(
            "`--action %s` takes `class_name` (`--type`), not `target`" % action
        )
    if class_name is None:
        raise invalid_params(
            "`--action %s` needs `class_name` (`--type`), e.g. `mymodule.MyClass`" % action
        )
    condition = compile_filter(source) if source is not None else None
    cls = resolve_class(class_name)
    keep = limit if action == "instances" else 0
    stop_event = ctx.agent.stopping

    def work():
        if gc_first:
            gc.collect()
        kept, matched, by_type, stats = find_instances(cls, condition, keep, stop_event)
        data = {"class_name": full_name(cls)}
        if action == "instances":
            budget = capturer.budget()
            data["instances"] = [
                {
                    "id": hex(id(obj)),
                    "type": type_name(type(obj)),
                    "value": capturer.capture(obj, budget),
                }
                for obj in kept
            ]
            data["matched"] = matched
            data["truncated"] = matched > len(kept)
        else:
            data["count"] = matched
            data["by_type"] = by_type
        failures, last = condition.take_failures() if condition is not None else (0, None)
        data["filter_errors"] = failures
        data["last_filter_error"] = last
        data.update(stats.as_dict())
        return data

    run_in_background(ctx, "inspect", work)


register_command("inspect", handle_inspect)
