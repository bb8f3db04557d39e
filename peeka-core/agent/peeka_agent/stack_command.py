"""``stack``: the callers of a function, at each call.

params: ``{"pattern", "depth", "times", "condition", "call_repr"}``;
``depth`` (default 10, at most 64) caller frames, innermost first, the
probed function itself excluded. The condition sees ``params``, ``kwargs``
and ``target``. ``call_repr`` (default false) lets the capture of
``params`` call the ``__repr__`` of values it does not expand, on the
writer thread (see :mod:`.capture`).

The stack is read at the call's first start on the calling thread, by
walking ``f_back`` from ``sys._getframe`` (no ``inspect``, no source
lines): only each frame's code object and line number are kept there; file
and function names and the arguments are rendered on the writer thread.
Frames of the agent's own dispatch code (the code-swap backend's wrappers)
are left out.
"""

import sys
import time

from .capture import CaptureLimits, Capturer
from .commands import register_command
from .safe_values import make_context
from .probes import (
    ArgumentLayout,
    Handler,
    compile_optional_condition,
    counting_render,
    install_probe,
    probed_frame,
    thread_name,
    wall_clock_offset,
)
from .watch_command import condition_reporter

DEFAULT_DEPTH = 10
MAX_DEPTH = 64


def handle_stack(ctx):
    """``stack``: installs the probe and answers with its stream."""
    ctx.check_params(
        ("pattern", "depth", "times", "condition", "pending", "backend", "send_budget", "call_repr")
    )
    pattern = ctx.param("pattern", str, required=True)
    depth = ctx.param("depth", int, default=DEFAULT_DEPTH, minimum=1, maximum=MAX_DEPTH)
    times = ctx.param("times", int, minimum=1)
    condition = compile_optional_condition(ctx)
    call_repr = ctx.param("call_repr", bool, default=False)
    capturer = Capturer(CaptureLimits(call_repr=call_repr))

    def make_handler(probe, target):
        return make_stack_handler(probe, target, depth, condition, capturer)

    probe, data = install_probe(ctx, pattern, make_handler, max_items=times)
    data["depth"] = depth
    data["call_repr"] = call_repr
    return data


def make_stack_handler(probe, target, depth, condition, capturer):
    """The :class:`~peeka_agent.probes.Handler` of one function under ``stack``."""
    stream = probe.stream
    emit_lazy = stream.emit_lazy
    test = condition.test if condition is not None else None
    report_condition = condition_reporter(stream, condition)
    name = target.name
    is_method = target.is_method
    names = ArgumentLayout(target.code).positional[1 if is_method else 0 :]
    hidden = probe.backend.hidden_codes
    wrappers = probe.backend.wrapper_codes
    probed = target.code
    getframe = sys._getframe
    perf_counter = time.perf_counter
    offset = wall_clock_offset()
    fail = probe.fail

    def render(value):
        args, kwargs, ident, when, frames = value
        if is_method and args:
            args = args[1:]
        params, _kwargs = capturer.capture_call(args or (), kwargs or {}, names)
        stack = []
        for code, line in frames:
            stack.append({"filename": code.co_filename, "lineno": line, "function": code.co_name})
        return {
            "func_name": name,
            "thread_id": ident,
            "thread_name": thread_name(ident),
            "timestamp": int((when + offset) * 1e6 + 0.5) / 1e6,  # see watch_command
            "params": params,
            "stack": stack,
        }

    render = counting_render(stream, render)

    def enter(args, kwargs, ident):
        try:
            if test is not None:
                self_value = params = None
                if args is not None:
                    self_value, params = (args[0], args[1:]) if is_method and args else (None, args)
                if not test(make_context(params or (), kwargs, self_value)):
                    report_condition()
                    return
            # Up to the probed call's frame (the real one, its clone's copy of
            # the code under code swapping, or the wrapper's): its f_back is
            # the caller.
            frame = probed_frame(getframe(1), probed, wrappers)
            if frame is not None:
                frame = frame.f_back
            frames = []
            while frame is not None and len(frames) < depth:
                code = frame.f_code
                if code not in hidden:
                    frames.append((code, frame.f_lineno))
                frame = frame.f_back
            emit_lazy(render, (args, kwargs, ident, perf_counter(), frames))
        except BaseException as exc:
            fail(exc)

    return Handler(probe, target, enter=enter, needs_args=True)


register_command("stack", handle_stack)
