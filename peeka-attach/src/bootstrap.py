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

        from time import monotonic

        # When each step of the load ended, in ms since the claim: reported
        # with the outcome, for the client's timeline.
        claimed_at = monotonic()
        steps = []

        def step(name):
            steps.append([name, round((monotonic() - claimed_at) * 1e3, 2)])

        import threading

        def report(state, **fields):
            import json

            fields.update(state=state, token=token, pid=os.getpid(), steps=steps)
            data = json.dumps(fields).encode("utf-8")
            temporary = os.path.join(directory, "status." + token + ".tmp")
            # Four system calls (each may cost a switch interval on a busy
            # target), where a file object would make seven.
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            fd = os.open(temporary, flags, 0o600)
            try:
                while data:
                    data = data[os.write(fd, data) :]
            finally:
                os.close(fd)
            os.replace(temporary, os.path.join(directory, "status." + token))

        for thread in threading.enumerate():
            if thread.name.startswith("peeka-agent"):
                report("already_running", thread=thread.name)
                return

        import sys

        # The GIL changes hands every 0.1 ms instead of 5 while the agent
        # loads: on a busy target every system call of the loader hands the
        # GIL to the application, and getting it back takes a switch
        # interval. The application's threads then hold the GIL for
        # shorter, never longer. The interval comes back when the load
        # ends, unless the agent took that over (it keeps the boost until
        # its first client is answered: it pops "previous") or the
        # application set its own meanwhile.
        boost = {"previous": sys.getswitchinterval()}
        boost["interval"] = min(boost["previous"], 0.0001)
        sys.setswitchinterval(boost["interval"])

        def end_boost():
            previous = boost.pop("previous", None)
            try:
                # Kept in whole microseconds by the interpreter.
                current = round(sys.getswitchinterval() * 1e6)
                if previous is not None and current == round(boost["interval"] * 1e6):
                    sys.setswitchinterval(previous)
            except BaseException:
                pass

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
                # The switch-interval boost of this load, for the agent.
                self.boost = boost
                self.modules = modules  # name -> (path, source, is_package)
                self.compiled = {}  # name -> code, by precompile()

            def compile(self, fullname):
                path, source, _ = self.modules[fullname]
                return compile(source, path, "exec", dont_inherit=True)

            def precompile(self, names, threads, imports=()):
                """Compiles modules of the package (relative names) on up to
                ``threads`` threads at once, for the imports that follow,
                after importing the independent modules ``imports`` (the
                standard library's the package needs) the same way.

                Compiling and importing are most of the load, and on a
                target whose threads keep the GIL busy each thread gets its
                turn in rotation: a few threads of ours get the work done
                in a fraction of the time one would take. Each holds the GIL
                for one module's compilation at a time (a few milliseconds
                at most). A module that fails to compile or import is left
                to the import that needs it, which reports the error."""
                work = [self.peeka_package + "." + name for name in names]
                work = [(self.compile, name) for name in work if name in self.modules]
                work.reverse()
                work.extend((__import__, name) for name in imports if name not in sys.modules)
                lock = threading.Lock()

                def compile_some():
                    while True:
                        with lock:
                            if not work:
                                return
                            task, name = work.pop()
                        try:
                            result = task(name)
                            if task is not __import__:
                                self.compiled[name] = result
                        except BaseException:
                            pass

                # Raw threads: threading.Thread.start() would wait for each
                # to get the GIL once, a full rotation on a busy target.
                import _thread

                running = [0]
                done = _thread.allocate_lock()
                done.acquire()

                def helper():
                    try:
                        compile_some()
                    finally:
                        with lock:
                            running[0] -= 1
                            if running[0] == 0:
                                done.release()

                with lock:  # no helper finishes before all are counted
                    for _ in range(min(threads, len(work)) - 1):
                        try:
                            _thread.start_new_thread(helper, ())
                        except BaseException:
                            break
                        running[0] += 1
                compile_some()
                with lock:
                    wait = running[0] > 0
                if wait:
                    done.acquire()

            def find_spec(self, fullname, path=None, target=None):
                entry = self.modules.get(fullname)
                if entry is None:
                    return None
                spec = machinery().ModuleSpec(fullname, self, origin=entry[0], is_package=entry[2])
                spec.has_location = True
                return spec

            def create_module(self, spec):
                return None

            def exec_module(self, module):
                code = self.compiled.pop(module.__name__, None)
                if code is None:
                    code = self.compile(module.__name__)
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

        def machinery():
            # The import system's own module, always loaded: ModuleSpec and
            # module_from_spec without importing the importlib package
            # (about ten modules that would stay after detach).
            found = sys.modules.get("_frozen_importlib")
            if found is None:
                import importlib.util as found
            return found

        def load():
            try:
                name = "_peeka_agent_" + token
                step("loader thread running")
                files = read_bundle()
                step("read the bundle")
                finder = Finder(name, modules_of(name, files))
                spec = finder.find_spec(name)
                module = machinery().module_from_spec(spec)
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
                step("import the agent")
                details = getattr(module, entry_function)(directory, token)
                step("start the agent")
                report("loaded", details=details if isinstance(details, dict) else {})
            except BaseException:
                import traceback

                try:
                    report("error", traceback=traceback.format_exc())
                except BaseException:
                    pass
            finally:
                end_boost()

        runner = threading.Thread(target=load, name="peeka-loader", daemon=True)
        try:
            runner.start()
        except BaseException:
            end_boost()
            raise

    _peeka_bootstrap(__PEEKA_DIRECTORY__, __PEEKA_TOKEN__, __PEEKA_BUNDLE_FILE__, __PEEKA_ENTRY_FILE__, __PEEKA_ENTRY_FUNCTION__)
    del _peeka_bootstrap
except BaseException:
    pass
