"""Running a program as ``__main__`` with the agent already loaded (``peeka-cli run``).

``peeka-cli run`` starts ``python -c <launcher>``; the launcher
(peeka-core/src/client/run_launcher.py) loads the agent through the usual
bootstrap, waits until the client has installed its probe, then calls
:func:`run` with ``"path"`` and a script, or ``"module"`` and a module
name, and the program's arguments. :func:`run` behaves like ``python
script.py args`` / ``python -m module args``:

- ``sys.argv`` is ``[script, *args]`` (``-m``: the module's file first);
  ``sys.path[0]`` the script's directory (``-m``: the working directory);
- a fresh module named ``__main__`` takes ``sys.modules["__main__"]``, with
  ``__file__`` (absolute), ``__spec__`` (``-m``), ``__loader__``,
  ``__package__``, ``__cached__``, ``__builtins__`` as Python sets them;
- ``SystemExit`` and ``KeyboardInterrupt`` behave as usual; another
  exception is printed by ``sys.excepthook`` without the runner's own
  frames and the exit status is 1 (130 for ``KeyboardInterrupt``).

While a pending probe (:mod:`.pending`) waits for a function of
``__main__``, the program's top-level statements run one at a time (each
compiled from the program's syntax tree, so names, line numbers and
tracebacks are the program's own) and the pending probes are resolved after
each: a function defined by a ``def`` is probed before the next statement
calls it. Once nothing waits for ``__main__`` the remaining statements run
as one block. The whole file is compiled first, so a syntax error stops the
program before any of it runs, as with ``python``. A module without source
(``-m`` on a ``.pyc``) runs as one block (its functions are then never
probed by a pending ``__main__`` pattern).

At interpreter exit (``atexit``, after the program's non-daemon threads
ended) the agent is detached: every stream ends with reason ``detached``,
the agent's files are removed.
"""

import ast
import atexit
import os
import sys
import types

from . import pending

_RUNNER_FILES = ("<string>",)


def run(mode, target, args):
    """Runs the program (see the module documentation); returns only on success."""
    atexit.register(_detach_at_exit)
    try:
        module, source, filename, code = _prepare(mode, target, args)
    except SystemExit:
        raise
    except BaseException as exc:
        if isinstance(exc, SyntaxError):
            _report(exc)
        else:
            sys.stderr.write("peeka run: cannot run %s: %s\n" % (target, exc))
        raise SystemExit(1)
    sys.modules["__main__"] = module
    try:
        if source is not None and pending.waiting_for("__main__"):
            _execute_by_statement(source, filename, module.__dict__)
        else:
            exec(code, module.__dict__)
    except SystemExit:
        raise
    except KeyboardInterrupt as exc:
        _report(exc)
        raise SystemExit(130)
    except BaseException as exc:
        _report(exc)
        raise SystemExit(1)


def _prepare(mode, target, args):
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace["__builtins__"] = __import__("builtins")
    if mode == "module":
        import importlib.util

        spec = importlib.util.find_spec(target)
        if spec is None:
            raise ImportError("No module named %s" % target)
        if spec.submodule_search_locations is not None:
            main_name = target + ".__main__"
            spec = importlib.util.find_spec(main_name)
            if spec is None:
                raise ImportError(
                    "No module named %s; '%s' is a package and cannot be directly executed"
                    % (main_name, target)
                )
        loader = spec.loader
        if loader is None:
            raise ImportError("%s has no loader" % spec.name)
        filename = spec.origin or target
        source = None
        get_source = getattr(loader, "get_source", None)
        if get_source is not None:
            try:
                source = get_source(spec.name)
            except Exception:
                source = None
        code = loader.get_code(spec.name)
        if code is None:
            raise ImportError("No code object available for %s" % spec.name)
        if source is not None:
            code = compile(source, filename, "exec", dont_inherit=True)
        namespace.update(
            __file__=filename,
            __cached__=getattr(spec, "cached", None),
            __loader__=loader,
            __package__=spec.parent,
            __spec__=spec,
            __doc__=None,
        )
        sys.argv[:] = [filename] + list(args)
        if sys.path and sys.path[0] in ("", "."):
            sys.path[0] = os.getcwd()
        return module, source, filename, code
    filename = os.path.abspath(target)
    with open(filename, "rb") as handle:
        source = handle.read()
    code = compile(source, filename, "exec", dont_inherit=True)
    from importlib.machinery import SourceFileLoader

    namespace.update(
        __file__=filename,
        __cached__=None,
        __loader__=SourceFileLoader("__main__", filename),
        __package__=None,
        __spec__=None,
        __doc__=None,
    )
    sys.argv[:] = [target] + list(args)
    directory = os.path.dirname(os.path.realpath(filename))
    if sys.path and sys.path[0] in ("", "."):
        sys.path[0] = directory
    else:
        sys.path.insert(0, directory)
    return module, source, filename, code


def _future_flags(statement):
    if not (isinstance(statement, ast.ImportFrom) and statement.module == "__future__"):
        return 0
    import __future__

    flags = 0
    for alias in statement.names:
        feature = getattr(__future__, alias.name, None)
        flags |= getattr(feature, "compiler_flag", 0)
    return flags


def _is_string_statement(statement):
    if not isinstance(statement, ast.Expr):
        return False
    value = statement.value
    if isinstance(value, ast.Constant):
        return isinstance(value.value, str)
    return type(value).__name__ == "Str"  # 3.8 may still build ast.Str


def _block(statements):
    module = ast.Module(body=list(statements), type_ignores=[])
    return module


def _execute_by_statement(source, filename, namespace):
    """Top-level statements one by one while ``__main__`` is waited for, then the rest."""
    tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    body = tree.body
    flags = 0
    index = 0
    while index < len(body) and pending.waiting_for("__main__"):
        statement = body[index]
        index += 1
        if index > 1 and _is_string_statement(statement):
            continue  # a bare string does nothing; alone it would become __doc__
        flags |= _future_flags(statement)
        code = compile(_block([statement]), filename, "exec", flags, dont_inherit=True)
        exec(code, namespace)
        pending.module_loaded("__main__")
    rest = body[index:]
    if rest and index > 0 and _is_string_statement(rest[0]):
        rest = rest[1:]
    if rest:
        code = compile(_block(rest), filename, "exec", flags, dont_inherit=True)
        exec(code, namespace)


def _report(exc):
    """Prints ``exc`` as the interpreter would, without the runner's frames."""
    tb = exc.__traceback__
    own = os.path.abspath(__file__)
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name in _RUNNER_FILES or os.path.abspath(name) == own:
            tb = tb.tb_next
            continue
        break
    try:
        exc.__traceback__ = tb  # some versions print the exception's own traceback
        sys.excepthook(type(exc), exc, tb)
    except BaseException:
        pass


def _detach_at_exit():
    from . import current_agent

    agent = current_agent()
    if agent is not None:
        try:
            agent.detach()
        except BaseException:
            pass
