"""Reading classes without running their code.

``obj.__class__``, ``cls.__mro__``, ``cls.__dict__`` and ``cls.__name__``
all go through attribute lookup, which a class or its metaclass can
override (a property named ``__class__``, a metaclass ``__getattribute__``).
The accessors here call the C getters of ``type`` itself, so they always
return the truth and never run the target's code; ``type(obj)`` (never
``obj.__class__``) gives an object's real class.

Shared by :mod:`.capture` and :mod:`.safe_values`.
"""

import types

#: The namespace (a read-only mapping proxy) of a class.
class_namespace = type.__dict__["__dict__"].__get__
#: The MRO tuple of a class.
class_mro = type.__dict__["__mro__"].__get__
#: A class's ``__qualname__``.
class_qualname = type.__dict__["__qualname__"].__get__
#: A class's ``__module__``.
class_module = type.__dict__["__module__"].__get__
#: A class's ``__name__``.
class_name = type.__dict__["__name__"].__get__

#: Descriptors implemented in C that only read a field: slots and getters of
#: builtin types. Calling their ``__get__`` runs no Python code.
SAFE_DESCRIPTORS = (types.MemberDescriptorType, types.GetSetDescriptorType)

#: Marks "not found" where None is a valid value.
MISSING = object()

#: Entries a per-type cache holds before it is cleared (classes can be
#: created at run time without bound).
CACHE_LIMIT = 4096

_names = {}


def bounded_store(cache, key, value):
    """Stores ``value`` in ``cache`` (clearing it first when full) and returns it."""
    if len(cache) >= CACHE_LIMIT:
        cache.clear()
    cache[key] = value
    return value


def type_cache_get(cache, tp):
    """What ``cache`` holds for the class ``tp`` (see :func:`type_cache_put`), or None."""
    entry = cache.get(id(tp))
    if entry is not None and entry[0] is tp:
        return entry[1]
    return None


def type_cache_put(cache, tp, value):
    """Stores ``value`` for the class ``tp`` in ``cache`` and returns it.

    Caches of classes are keyed by ``id``, the entry holding the class
    itself to be checked by identity: a class as a dict key would be hashed
    and compared by its metaclass's ``__hash__`` and ``__eq__``, which are
    the target's code (and make the class unhashable when ``__eq__`` is
    defined alone). The entry keeps the class alive, as a key would.
    """
    return bounded_store(cache, id(tp), (tp, value))[1]


def lookup(tp, name):
    """``name`` in the namespaces along ``tp``'s MRO, or MISSING (no user code)."""
    for klass in class_mro(tp):
        value = class_namespace(klass).get(name, MISSING)
        if value is not MISSING:
            return value
    return MISSING


def type_name(tp):
    """``module.QualName`` of a class (just ``QualName`` for builtins); cached."""
    name = type_cache_get(_names, tp)
    if name is not None:
        return name
    try:
        qualname = class_qualname(tp)
        module = class_module(tp)
        if type(qualname) is not str:
            name = "?"
        elif type(module) is not str or module == "builtins":
            name = qualname
        else:
            name = module + "." + qualname
    except Exception:
        name = "?"
    return type_cache_put(_names, tp, name)
