"""A program observed from its first line by `peeka-cli run` (cli_run.rs)."""
import sys

import run_helper


def load_config(path, retries=3):
    return {"path": path, "retries": retries}


config = load_config("/etc/app.toml", retries=5)
# One write, so that it cannot interleave with peeka-cli's lines on the shared stdout.
line = "program-output %d %d %s\n" % (config["retries"], run_helper.parse("a=1")["a"], " ".join(sys.argv[1:]))
sys.stdout.write(line)
sys.stdout.flush()
sys.exit(7)
