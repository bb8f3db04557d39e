"""``reset``: lists or removes the probes of every client.

params: ``{"pattern": str|null, "list": bool}``. With ``list``: data
``{"probes": [...]}``, nothing removed. Otherwise every probe whose pattern
matches ``pattern`` (a glob, ``fnmatch`` rules, case-sensitive; every probe
when absent) is removed by ending its stream with reason ``reset``; data
``{"removed": n, "probes": [...]}`` lists the removed ones. An entry is
``{"stream", "command", "pattern", "connection", "functions",
"observations", "dropped"}``.
"""

from .commands import register_command
from .probes import probes


def handle_reset(ctx):
    """``reset``: see the module documentation."""
    ctx.check_params(("pattern", "list"))
    pattern = ctx.param("pattern", str)
    listing = ctx.param("list", bool, default=False)
    found = probes(ctx.agent)
    if pattern is not None:
        import fnmatch  # imports re: only when a pattern is given

        found = [probe for probe in found if fnmatch.fnmatchcase(probe.pattern, pattern)]
    if listing:
        return {"probes": [probe.describe() for probe in found]}
    removed = []
    for probe in found:
        described = probe.describe()
        if probe.stream.end("reset"):
            removed.append(described)
    return {"removed": len(removed), "probes": removed}


register_command("reset", handle_reset)
