# Peeka `run` launcher: what `peeka-cli run` hands to `python -c`.
#
# argv: ["-c", nonce, "path" | "module", script or module, program arguments...].
# 1. Makes the private directory /tmp/peeka-<pid> (mode 0700), removes any
#    control file a process that had this pid before left there, and writes
#    `run.ready` holding the client's nonce: the client waits for it to know
#    that this interpreter runs (chrooted, if it is) and that the directory
#    is its own, not one left behind by an earlier process with this pid.
# 2. Waits for `run.load` from the client (the bootstrap's path and the
#    token, one a line), runs the bootstrap (which loads the agent).
# 3. Waits for `run.go` (the client has installed its probes) or `run.stop`
#    (the client gave up): then runs the program through the agent's
#    run_program module, or exits with status 1 without running it.
# Every wait is bounded, and stops when the client (the parent) goes away.
def _peeka_launch():
    import os
    import stat
    import sys
    import time

    directory = "/tmp/peeka-%d" % os.getpid()
    parent = os.getppid()
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        sys.stderr.write("peeka run: %s is not this user's directory\n" % directory)
        raise SystemExit(1)
    os.chmod(directory, 0o700)
    for stale in ("run.load", "run.go", "run.stop", "run.ready", "run.ready.tmp"):
        try:
            os.unlink(os.path.join(directory, stale))
        except FileNotFoundError:
            pass
    nonce = sys.argv.pop(1)
    ready = os.path.join(directory, "run.ready")
    with open(ready + ".tmp", "w") as handle:
        handle.write(nonce)
    os.rename(ready + ".tmp", ready)

    def wait_for(names, seconds):
        deadline = time.monotonic() + seconds
        pause = 0.0002
        while True:
            for name in names:
                path = os.path.join(directory, name)
                try:
                    with open(path, "rb") as handle:
                        data = handle.read()
                except FileNotFoundError:
                    continue
                os.unlink(path)
                return name, data
            if os.getppid() != parent or time.monotonic() > deadline:
                return None, b""
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    name, data = wait_for(["run.load"], 60.0)
    if name is None:
        sys.stderr.write("peeka run: the client did not load the agent\n")
        raise SystemExit(1)
    script, token = data.decode("utf-8", "surrogateescape").splitlines()[:2]
    try:
        with open(script, "rb") as handle:
            code = compile(handle.read(), script, "exec")
        exec(code, {"__name__": "__peeka_bootstrap__"})
    except BaseException:
        pass
    name, data = wait_for(["run.go", "run.stop"], 120.0)
    if name != "run.go":
        raise SystemExit(1)
    package = "_peeka_agent_" + token
    __import__(package + ".run_program")
    runner = sys.modules[package + ".run_program"]
    runner.run(sys.argv[1], sys.argv[2], sys.argv[3:])


_peeka_launch()
