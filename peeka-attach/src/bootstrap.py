# Peeka bootstrap: the only code an attach method makes the target run.
#
# It runs on whichever Python thread picked up the request, with the GIL
# held, so it does as little as possible: it claims the attach (only the
# first thread that runs it goes on), starts one daemon thread and returns.
# That thread loads the agent and reports the outcome in a status file the
# client waits for. Nothing here may raise into the application or print:
# every failure goes into the status file.
#
# The agent comes from one file, the bundle, read in one go: on a busy
# target every system call the loader makes hands the GIL to the
# application, and getting it back costs a switch interval. Its modules are
# imported from memory by a finder appended to sys.meta_path (the agent
# removes it when it detaches); the same files lie next to the bundle, for
# people to read. Bundle: b"PEEKA-BUNDLE 1\n", then per file
# b"<length> <relative path>\n" and its bytes.
#
# The client fills in the five names below before writing this file.
try:
    def _peeka_bootstrap(directory, token, bundle_file, entry_file, entry_function):
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

        def read_bundle():
            fd = os.open(os.path.join(directory, bundle_file), os.O_RDONLY | os.O_NOFOLLOW)
            try:
                size = os.fstat(fd).st_size
                chunks = []
                while size > 0:
                    chunk = os.read(fd, size)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size -= len(chunk)
            finally:
                os.close(fd)
            data = b"".join(chunks)
            start = data.index(b"\n") + 1
            if data[:start] != b"PEEKA-BUNDLE 1\n":
                raise ImportError("%s is not a Peeka agent bundle" % bundle_file)
            files = {}
            while start < len(data):
                newline = data.index(b"\n", start)
                size, name = data[start:newline].split(b" ", 1)
                start = newline + 1 + int(size)
                files[name.decode("utf-8")] = data[newline + 1 : start]
            return files

        class Finder(object):
            """Imports the agent's modules from the bundle, without I/O."""

            def __init__(self, package, modules):
                # The agent looks for this when it detaches.
                self.peeka_package = package
                self.modules = modules  # name -> (path, source, is_package)

            def find_spec(self, fullname, path=None, target=None):
                from importlib.machinery import ModuleSpec

                entry = self.modules.get(fullname)
                if entry is None:
                    return None
                spec = ModuleSpec(fullname, self, origin=entry[0], is_package=entry[2])
                spec.has_location = True
                return spec

            def create_module(self, spec):
                return None

            def exec_module(self, module):
                path, source, _ = self.modules[module.__name__]
                code = compile(source, path, "exec", dont_inherit=True)
                exec(code, module.__dict__)

            def get_source(self, fullname):
                return self.modules[fullname][1].decode("utf-8")

        def modules_of(name, files):
            entry = entry_file.replace(os.sep, "/")
            if entry.rsplit("/", 1)[-1] != "__init__.py":
                return {name: (os.path.join(directory, entry), files[entry], False)}
            # A package: its modules import each other relatively.
            prefix = entry[: -len("__init__.py")]
            modules = {}
            for relative, source in files.items():
                if not (relative.startswith(prefix) and relative.endswith(".py")):
                    continue
                parts = relative[len(prefix) : -3].split("/")
                package = parts[-1] == "__init__"
                if package:
                    parts.pop()
                modules[".".join([name] + parts)] = (
                    os.path.join(directory, relative),
                    source,
                    package,
                )
            return modules

        def load():
            try:
                import sys
                import importlib.util

                # Hands the GIL back and forth every 0.5 ms instead of 5 while
                # loading: on a busy target the loader waits a switch
                # interval after each of its system calls, and the
                # application's threads hold the GIL for shorter, not longer.
                # Restored at the end unless the application changed it.
                previous = sys.getswitchinterval()
                boosted = min(previous, 0.0005)
                sys.setswitchinterval(boosted)

                name = "_peeka_agent_" + token
                finder = Finder(name, modules_of(name, read_bundle()))
                spec = finder.find_spec(name)
                module = importlib.util.module_from_spec(spec)
                sys.meta_path.append(finder)
                sys.modules[name] = module
                try:
                    finder.exec_module(module)
                except BaseException:
                    for key in list(sys.modules):
                        if key == name or key.startswith(name + "."):
                            del sys.modules[key]
                    sys.meta_path.remove(finder)
                    raise
                details = getattr(module, entry_function)(directory, token)
                report("loaded", details=details if isinstance(details, dict) else {})
            except BaseException:
                import traceback

                try:
                    report("error", traceback=traceback.format_exc())
                except BaseException:
                    pass
            finally:
                try:
                    # Kept in whole microseconds by the interpreter.
                    if round(sys.getswitchinterval() * 1e6) == round(boosted * 1e6):
                        sys.setswitchinterval(previous)
                except BaseException:
                    pass

        runner = threading.Thread(target=load, name="peeka-loader", daemon=True)
        runner.start()

    _peeka_bootstrap(__PEEKA_DIRECTORY__, __PEEKA_TOKEN__, __PEEKA_BUNDLE_FILE__, __PEEKA_ENTRY_FILE__, __PEEKA_ENTRY_FUNCTION__)
    del _peeka_bootstrap
except BaseException:
    pass
