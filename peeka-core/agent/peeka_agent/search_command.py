"""``sc`` and ``sm``: search the loaded classes and their methods.

``sc``
    params: ``{"pattern": str, "detail": bool, "limit": int}``. ``pattern``
    is a glob (``fnmatch`` rules, case-sensitive) matched against each
    class's full name ``module.QualName`` (``QualName`` for builtins); a
    pattern without a dot is also matched against the bare ``QualName``,
    so ``Cart`` finds ``shop.Cart``. ``limit`` (default 50, 1 to 1000)
    bounds the classes listed, sorted by name. data::

        {"classes": [{"name", "module", "qualname"}...], "total": n,
         "truncated": bool, "scanned": n, "scan_truncated": bool}

    With ``detail`` each class also has ``file`` (its module's file),
    ``bases`` (full names), ``mro`` and ``methods`` (the names of the
    methods its own namespace defines, sorted). ``total`` counts every
    match, ``truncated`` says the list stopped at ``limit``;
    ``scan_truncated`` that the walk stopped at
    :data:`~peeka_agent.classes.MAX_CLASSES` classes.

``sm``
    params: ``{"class_pattern": str, "method_pattern": str, "detail": bool,
    "limit": int}``. The classes are those ``sc`` finds for
    ``class_pattern``; ``method_pattern`` (default ``*``) is a glob over the
    names each class's own namespace defines (inherited methods are listed
    under the class that defines them). ``limit`` (default 100, 1 to 5000)
    bounds the methods listed. data::

        {"methods": [{"class", "name", "kind"}...], "total": n,
         "truncated": bool, "classes": n}

    ``kind``: ``method``, ``staticmethod``, ``classmethod``, ``property``
    or ``builtin`` (written in C). With ``detail``: ``signature`` (from the
    code object, see :mod:`.classes`), ``file``, ``line`` and
    ``function_kind`` (``function``, ``coroutine``, ``generator``,
    ``async_generator``; null for C methods).

Both only read: namespaces through the C getters of ``type``, never
``getattr`` on a class, so no metaclass, property or ``__getattr__`` code
runs. Classes of the agent itself are never listed.
"""

from .classes import (
    all_classes,
    bases_of,
    describe_member,
    file_of,
    full_name,
    member_of,
    module_of,
)
from .commands import invalid_params, register_command
from .introspect import class_mro, class_namespace, class_qualname

SC_DEFAULT_LIMIT = 50
SC_MAX_LIMIT = 1000
SM_DEFAULT_LIMIT = 100
SM_MAX_LIMIT = 5000


def _matcher(pattern):
    import fnmatch  # imports re: only when a search runs

    bare = "." not in pattern

    def matches(cls, name):
        if fnmatch.fnmatchcase(name, pattern):
            return True
        if bare:
            try:
                return fnmatch.fnmatchcase(class_qualname(cls), pattern)
            except Exception:
                return False
        return False

    return matches


def matching_classes(pattern):
    """([(full name, class)...] sorted by name, how many were scanned, scan truncated)."""
    classes, truncated = all_classes()
    matches = _matcher(pattern)
    found = []
    for cls in classes:
        name = full_name(cls)
        if matches(cls, name):
            found.append((name, cls))
    found.sort(key=lambda item: (item[0], id(item[1])))
    return found, len(classes), truncated


def _own_methods(cls):
    try:
        items = list(class_namespace(cls).items())
    except Exception:
        return []
    methods = []
    for name, value in items:
        if type(name) is not str:
            continue
        kind, function = member_of(value)
        if kind is not None:
            methods.append((name, kind, function))
    methods.sort(key=lambda item: item[0])
    return methods


def _pattern(ctx, name):
    pattern = ctx.param(name, str, required=True).strip()
    if not pattern:
        raise invalid_params("`%s` must not be empty; use `*` to match everything" % name)
    return pattern


def handle_sc(ctx):
    """``sc``: see the module documentation."""
    ctx.check_params(("pattern", "detail", "limit"))
    pattern = _pattern(ctx, "pattern")
    detail = ctx.param("detail", bool, default=False)
    limit = ctx.param("limit", int, default=SC_DEFAULT_LIMIT, minimum=1, maximum=SC_MAX_LIMIT)
    found, scanned, scan_truncated = matching_classes(pattern)
    listed = []
    for name, cls in found[:limit]:
        entry = {"name": name, "module": module_of(cls), "qualname": _qualname(cls)}
        if detail:
            entry["file"] = file_of(cls)
            entry["bases"] = bases_of(cls)
            try:
                entry["mro"] = [full_name(klass) for klass in class_mro(cls)]
            except Exception:
                entry["mro"] = []
            entry["methods"] = [name for name, _kind, _function in _own_methods(cls)]
        listed.append(entry)
    return {
        "classes": listed,
        "total": len(found),
        "truncated": len(found) > limit,
        "scanned": scanned,
        "scan_truncated": scan_truncated,
    }


def handle_sm(ctx):
    """``sm``: see the module documentation."""
    ctx.check_params(("class_pattern", "method_pattern", "detail", "limit"))
    class_pattern = _pattern(ctx, "class_pattern")
    method_pattern = ctx.param("method_pattern", str, default="*").strip() or "*"
    detail = ctx.param("detail", bool, default=False)
    limit = ctx.param("limit", int, default=SM_DEFAULT_LIMIT, minimum=1, maximum=SM_MAX_LIMIT)
    import fnmatch  # imports re: only when a search runs

    found, _scanned, _truncated = matching_classes(class_pattern)
    methods = []
    total = 0
    for _name, cls in found:
        for name, kind, function in _own_methods(cls):
            if not fnmatch.fnmatchcase(name, method_pattern):
                continue
            total += 1
            if len(methods) < limit:
                methods.append(describe_member(cls, name, kind, function, detail))
    return {
        "methods": methods,
        "total": total,
        "truncated": total > limit,
        "classes": len(found),
    }


def _qualname(cls):
    try:
        name = class_qualname(cls)
    except Exception:
        return None
    return name if type(name) is str else None


register_command("sc", handle_sc)
register_command("sm", handle_sm)
