# Peeka bootstrap: the only code an attach method makes the target run.
#
# It runs on whichever Python thread picked up the request, with the GIL
# held, so it does as little as possible: it claims the attach (only the
# first thread that runs it goes on), starts one daemon thread and returns.
# That thread loads the agent from this private directory and reports the
# outcome in a status file the client waits for. Nothing here may raise into
# the application or print: every failure goes into the status file.
#
# The client fills in the four names below before writing this file.
try:
    def _peeka_bootstrap(directory, token, entry_file, entry_function):
        import os

        try:
            # Atomic across threads and processes: exactly one runner wins.
            os.mkdir(os.path.join(directory, "claimed-" + token))
        except OSError:
            return

        import threading

        def report(state, **fields):
            import json

            fields.update(state=state, token=token, pid=os.getpid())
            temporary = os.path.join(directory, "status." + token + ".tmp")
            with open(temporary, "w") as handle:
                json.dump(fields, handle)
            os.replace(temporary, os.path.join(directory, "status." + token))

        for thread in threading.enumerate():
            if thread.name.startswith("peeka-agent"):
                report("already_running", thread=thread.name)
                return

        def load():
            try:
                import importlib.util

                import sys

                path = os.path.join(directory, entry_file)
                name = "_peeka_agent_" + token
                package = None
                if os.path.basename(path) == "__init__.py":
                    # A package: its modules import each other relatively.
                    package = [os.path.dirname(path)]
                spec = importlib.util.spec_from_file_location(
                    name, path, submodule_search_locations=package
                )
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    raise
                details = getattr(module, entry_function)(directory, token)
                report("loaded", details=details if isinstance(details, dict) else {})
            except BaseException:
                import traceback

                try:
                    report("error", traceback=traceback.format_exc())
                except BaseException:
                    pass

        runner = threading.Thread(target=load, name="peeka-loader", daemon=True)
        runner.start()

    _peeka_bootstrap(__PEEKA_DIRECTORY__, __PEEKA_TOKEN__, __PEEKA_ENTRY_FILE__, __PEEKA_ENTRY_FUNCTION__)
    del _peeka_bootstrap
except BaseException:
    pass
