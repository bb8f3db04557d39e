"""The commands every agent serves: ``ping``, ``info`` and ``detach``.

``ping``
    params: ``null`` or ``{"echo": <any JSON>}``;
    data: ``{"pong": true, "pid": <pid>, "echo": <echo>}`` (``echo`` only
    when given). Used to measure round trips.

``info``
    params: ``null`` or ``{}``; data: agent version, protocol, python
    (version, implementation, executable), pid, socket, start time, the
    names of the agent's threads, capabilities, command names, number of
    connections, the open streams of every client, refused connections,
    queue limit and the recent internal errors.

``detach``
    params: ``null`` or ``{}``; ends every stream of every client with
    reason ``detached`` (removing their probes), answers
    ``{"detached": true, "streams_ended": n, "connections": m}``, then
    closes every connection, removes the socket and the private directory,
    stops the agent's threads and unloads its modules.
"""

from .commands import register_command


def ping(ctx):
    """``ping``: proves the agent is alive and measures a round trip."""
    ctx.check_params(("echo",))
    data = {"pong": True, "pid": ctx.agent.pid}
    if isinstance(ctx.params, dict) and "echo" in ctx.params:
        data["echo"] = ctx.params["echo"]
    return data


def info(ctx):
    """``info``: what this agent is and what it is doing."""
    ctx.check_params(())
    return ctx.agent.info()


def detach(ctx):
    """``detach``: leaves the process as it was before the attach."""
    ctx.check_params(())
    agent = ctx.agent
    summary = {
        "detached": True,
        "streams_ended": len(agent.streams()),
        "connections": len(agent.connections()),
    }

    def reply():
        ctx.reply(summary)

    agent.detach(before_close=reply)
    if not ctx.answered:
        # Another detach won the race; this one has nothing left to do.
        ctx.reply(dict(summary, streams_ended=0))


register_command("ping", ping)
register_command("info", info)
register_command("detach", detach)
