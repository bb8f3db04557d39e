"""``logger``: list the target's loggers, show one, change a level.

params: ``{"action": "list"|"get"|"set", "logger": str, "level": str|int,
"pattern": str}`` (``action`` defaults to ``list``).

``list``
    Every logger the target's ``logging`` has created (the root logger,
    named ``root``, first; then by name), or those whose name matches
    ``pattern`` (a glob, ``fnmatch`` rules, case-sensitive). At most
    :data:`MAX_LOGGERS`; data ``{"loggers": [...], "total": n,
    "truncated": bool, "disable": n, "logging_imported": bool}``, each
    logger as in ``get`` but with ``handlers`` as a count. ``disable`` is
    the level of ``logging.disable()`` (0 when unused).
``get``
    One logger (``logger``: its name, ``root`` or empty for the root
    logger): ``{"name", "level", "level_name", "effective_level",
    "effective_level_name", "propagate", "disabled", "handlers": [{"type",
    "name", "level", "level_name", "stream", "filename", "format"}...],
    "disable"}`` (``stream``, ``filename`` and ``format`` are null when the
    handler has none).
``set``
    Sets the level of ``logger`` to ``level`` (a name such as ``DEBUG``,
    case-insensitive, including custom names registered with
    ``logging.addLevelName``, or a number); data ``{"name",
    "previous_level", "previous_level_name", "level", "level_name",
    "effective_level", "effective_level_name"}``. The change is made with
    the standard library's own ``Logger.setLevel`` (which clears the
    loggers' level caches), so it applies to the target's next log call.

Levels changed by ``set`` stay after ``detach``: changing a level is an
operator's decision about the running service (turning on DEBUG to chase
a problem, or silencing a noisy library), not an observation, so the agent
does not undo it; the answer carries ``previous_level`` so that it can be
put back with another ``set``.

The agent never imports ``logging``: a target that has not imported it has
no loggers (``list`` answers an empty list with ``logging_imported``
false; ``get`` and ``set`` fail with ``not_found``). It never creates a
logger either: a name the target has not used fails with ``not_found`` and
close matches. Loggers and handlers are read as data (instance fields,
never properties or the target's own methods); only ``set`` runs code, the
standard library's ``Logger.setLevel``.
"""

import sys
import types

from .classes import full_name, is_class, is_module
from .commands import CommandError, invalid_params, register_command
from .introspect import class_mro, lookup, MISSING
from .safe_values import EvaluationError, read_attribute
from .wire import ErrorCode

#: Most loggers one ``list`` reports.
MAX_LOGGERS = 2000
ROOT_NAME = "root"


def _logging():
    module = sys.modules.get("logging")
    return module if is_module(module) else None


def _names(logging):
    return object.__getattribute__(logging, "__dict__")


def _field(obj, name, default=None):
    try:
        return read_attribute(obj, name)
    except EvaluationError:
        return default
    except Exception:
        return default


def _is_logger(value, logger_class):
    try:
        return logger_class in class_mro(type(value))
    except Exception:
        return False


def _loggers(logging):
    """(root logger, {name: logger}) as the target's logging holds them."""
    names = _names(logging)
    root = names.get("root")
    logger_class = names.get("Logger")
    manager = lookup(logger_class, "manager") if is_class(logger_class) else MISSING
    found = {}
    table = _field(manager, "loggerDict", {}) if manager is not MISSING else {}
    if type(table) is dict:
        for name, value in list(dict.items(table)):
            if type(name) is str and _is_logger(value, logger_class):
                found[name] = value
    return root, found, manager


def _level_name(logging, level):
    table = _names(logging).get("_levelToName")
    if type(table) is dict and level in table:
        name = table[level]
        if type(name) is str:
            return name
    return "Level %s" % level


def _effective_level(logger):
    node = logger
    steps = 0
    while node is not None and steps < 1000:
        level = _field(node, "level", 0)
        if type(level) is int and level:
            return level
        node = _field(node, "parent")
        steps += 1
    return 0


def _handler(logging, handler):
    level = _field(handler, "level", 0)
    stream = _field(handler, "stream")
    stream_name = None
    if stream is not None:
        stream_name = _field(stream, "name")
        if type(stream_name) is not str:
            stream_name = "<%s>" % full_name(type(stream))
    filename = _field(handler, "baseFilename")
    formatter = _field(handler, "formatter")
    fmt = _field(formatter, "_fmt") if formatter is not None else None
    name = _field(handler, "_name")
    return {
        "type": full_name(type(handler)),
        "name": name if type(name) is str else None,
        "level": level if type(level) is int else None,
        "level_name": _level_name(logging, level),
        "stream": stream_name,
        "filename": filename if type(filename) is str else None,
        "format": fmt if type(fmt) is str else None,
    }


def _describe(logging, name, logger, full):
    level = _field(logger, "level", 0)
    effective = _effective_level(logger)
    handlers = _field(logger, "handlers", [])
    if type(handlers) is not list:
        handlers = []
    described = {
        "name": name,
        "level": level,
        "level_name": _level_name(logging, level),
        "effective_level": effective,
        "effective_level_name": _level_name(logging, effective),
        "propagate": bool(_field(logger, "propagate", True) is True),
        "disabled": bool(_field(logger, "disabled", False) is True),
    }
    if full:
        described["handlers"] = [_handler(logging, h) for h in list(handlers)[:100]]
    else:
        described["handlers"] = len(handlers)
    return described


def _disable_level(manager):
    level = _field(manager, "disable", 0) if manager is not MISSING else 0
    return level if type(level) is int else 0


def _find(logging, name):
    """(canonical name, logger) or CommandError(not_found) with close matches."""
    root, loggers, _manager = _loggers(logging)
    if name in ("", ROOT_NAME):
        return ROOT_NAME, root
    logger = loggers.get(name)
    if logger is not None:
        return name, logger
    import difflib  # only on this error path

    close = difflib.get_close_matches(name, sorted(loggers)[:20000], n=5, cutoff=0.6)
    message = (
        "the target has no logger named `%s` (the agent does not create loggers; list them "
        "with `peeka-cli logger --action list`)" % name
    )
    if close:
        message += "; close matches: " + ", ".join(close)
    raise CommandError(ErrorCode.NOT_FOUND, message)


def _parse_level(logging, level):
    if type(level) is int:
        if level < 0:
            raise invalid_params("a level must be at least 0, not %d" % level)
        return level
    text = level.strip()
    if text.isdigit():
        return int(text)
    table = _names(logging).get("_nameToLevel")
    table = dict(table) if type(table) is dict else {}
    for key, value in table.items():
        if type(key) is str and key.upper() == text.upper() and type(value) is int:
            return value
    known = sorted(table, key=lambda key: table.get(key, 0))
    raise invalid_params(
        "unknown level `%s`; use a number or one of %s" % (level, ", ".join(known))
    )


def _require_logging():
    logging = _logging()
    if logging is None:
        raise CommandError(
            ErrorCode.NOT_FOUND,
            "the target has not imported `logging`, so it has no loggers (the agent never "
            "imports it)",
        )
    return logging


def handle_logger(ctx):
    """``logger``: see the module documentation."""
    ctx.check_params(("action", "logger", "level", "pattern"))
    action = ctx.param("action", str, default="list", choices=("list", "get", "set"))
    name = ctx.param("logger", str)
    level = ctx.param("level", (str, int))
    pattern = ctx.param("pattern", str)
    if action == "list":
        if level is not None:
            raise invalid_params("`level` is for `--action set`")
        return _list(pattern)
    if pattern is not None:
        raise invalid_params("`pattern` is for `--action list`")
    if name is None:
        raise invalid_params(
            "`--action %s` needs `logger` (a logger's name; `root` for the root logger)" % action
        )
    if action == "get":
        if level is not None:
            raise invalid_params("`level` is for `--action set`")
        logging = _require_logging()
        canonical, logger = _find(logging, name)
        described = _describe(logging, canonical, logger, True)
        described["disable"] = _disable_level(_loggers(logging)[2])
        return described
    if level is None:
        raise invalid_params("`--action set` needs `level` (e.g. DEBUG, INFO, WARNING or 10)")
    logging = _require_logging()
    new_level = _parse_level(logging, level)
    canonical, logger = _find(logging, name)
    logger_class = _names(logging).get("Logger")
    set_level = lookup(logger_class, "setLevel") if is_class(logger_class) else MISSING
    if type(set_level) is not types.FunctionType:
        raise CommandError(
            ErrorCode.INVALID_STATE,
            "the target's `logging.Logger.setLevel` is not a function; the level was not changed",
        )
    previous = _field(logger, "level", 0)
    set_level(logger, new_level)
    after = _field(logger, "level", 0)
    effective = _effective_level(logger)
    return {
        "name": canonical,
        "previous_level": previous,
        "previous_level_name": _level_name(logging, previous),
        "level": after,
        "level_name": _level_name(logging, after),
        "effective_level": effective,
        "effective_level_name": _level_name(logging, effective),
    }


def _list(pattern):
    logging = _logging()
    if logging is None:
        return {
            "loggers": [],
            "total": 0,
            "truncated": False,
            "disable": 0,
            "logging_imported": False,
        }
    root, loggers, manager = _loggers(logging)
    entries = [(ROOT_NAME, root)] if root is not None else []
    entries.extend(sorted(loggers.items(), key=lambda item: item[0]))
    if pattern is not None:
        import fnmatch  # imports re: only when a pattern is given

        entries = [item for item in entries if fnmatch.fnmatchcase(item[0], pattern)]
    listed = [_describe(logging, name, logger, False) for name, logger in entries[:MAX_LOGGERS]]
    return {
        "loggers": listed,
        "total": len(entries),
        "truncated": len(entries) > MAX_LOGGERS,
        "disable": _disable_level(manager),
        "logging_imported": True,
    }


register_command("logger", handle_logger)
