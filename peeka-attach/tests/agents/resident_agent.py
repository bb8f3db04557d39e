# Test agent that stays resident like the real one: a daemon thread named
# peeka-agent-*, which the bootstrap of a second attach detects.
import os
import threading

_stop = threading.Event()


def start(directory, token):
    with open(os.path.join(directory, "runs.txt"), "a") as handle:
        handle.write(token + "\n")
    threading.Thread(target=_stop.wait, name="peeka-agent-test", daemon=True).start()
    return {"resident": True}
