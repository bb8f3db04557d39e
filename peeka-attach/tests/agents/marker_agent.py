# Test agent: records each load as one line of runs.txt in the private
# directory, so that tests can count how often the bootstrap loaded it.
import os
import threading


def start(directory, token):
    with open(os.path.join(directory, "runs.txt"), "a") as handle:
        handle.write(token + " " + threading.current_thread().name + "\n")
    return {"pid": os.getpid()}
