//! The `lldb` method (macOS): runs `lldb --batch` on a generated command
//! script ([`crate::lldb_script`]) that queues
//! `Py_AddPendingCall(PyRun_SimpleString, buffer)`, like the `gdb` method on
//! Linux: the main thread runs the bootstrap at its next bytecode boundary,
//! with the GIL held.
//!
//! `Py_AddPendingCall` and `PyRun_SimpleString` are called at the addresses
//! the target inspection resolved from the interpreter's file; `mmap` and
//! `memcpy` by name, because the system libraries live in the dyld shared
//! cache, where lldb finds them and Peeka does not look.
//!
//! lldb sometimes leaves the target stopped after detaching, so the target
//! always gets `SIGCONT` afterwards.
//!
//! # The buffer's lifetime
//!
//! The buffer is never freed: the pending call may run long after lldb
//! detached, and freeing it would need a second lldb session. Each lldb
//! attach costs the target one page. On a timeout the bootstrap script is
//! removed, so a call that runs late finds nothing to do (the statement
//! catches the failed `open`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::debugger_process::{self, DebuggerRun, Ending, ScratchDir};
use crate::error::AttachError;
use crate::lldb_script::{self, Callee, LldbPlan, LldbReport};
use crate::method::{InjectRequest, Injector, Method, Timeline};

/// How long lldb gets to unwind and detach after `SIGINT`.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// The mapping size: one page on every Mac (16 KiB on Apple silicon).
const BUFFER_LEN: u64 = 16 * 1024;

/// Lines of lldb's output that never explain a failure.
const NOISE: &[&str] = &[
    "(lldb) settings set",
    "Executable module set to",
    "Architecture set to",
];

/// The lldb backend. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct LldbInjector {
    program: PathBuf,
}

impl Default for LldbInjector {
    /// Runs `lldb` from `PATH`.
    fn default() -> Self {
        Self {
            program: PathBuf::from("lldb"),
        }
    }
}

impl LldbInjector {
    /// A backend that runs this lldb executable (a path, or a name looked
    /// up in `PATH`).
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    /// The lldb executable it runs.
    pub fn program(&self) -> &Path {
        &self.program
    }
}

impl Injector for LldbInjector {
    fn method(&self) -> Method {
        Method::Lldb
    }

    fn inject(&self, request: &InjectRequest<'_>) -> Result<Timeline, AttachError> {
        let started = Instant::now();
        let target = request.target;
        let pid = target.pid;
        let mut timeline = Timeline::default();
        let unavailable = |why: String| AttachError::MethodUnavailable {
            method: Method::Lldb,
            pid,
            why,
        };
        let python = |name: &str| {
            target
                .python
                .symbol_address(name)
                .map(Callee::Address)
                .ok_or_else(|| {
                    unavailable(format!(
                        "{} does not export {name}, which this method calls",
                        target.python.path.display()
                    ))
                })
        };
        let remaining = request.deadline.saturating_duration_since(Instant::now());
        let plan = LldbPlan {
            pid,
            mmap: Callee::Symbol("mmap".into()),
            memcpy: Callee::Symbol("memcpy".into()),
            add_pending_call: python("Py_AddPendingCall")?,
            run_simple_string: python("PyRun_SimpleString")?,
            statement: request.staging.runner_code(),
            buffer_len: BUFFER_LEN,
            prot: libc::PROT_READ | libc::PROT_WRITE,
            map_flags: libc::MAP_PRIVATE | libc::MAP_ANON,
            call_timeout: (remaining / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)),
        };
        let script = lldb_script::render(&plan).map_err(|e| unavailable(e.to_string()))?;
        let scratch = ScratchDir::create("lldb").map_err(|source| AttachError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let script_path = scratch
            .write("commands.lldb", script.as_bytes())
            .map_err(|source| AttachError::Io {
                path: scratch.path().join("commands.lldb"),
                source,
            })?;

        let mut command = Command::new(&self.program);
        command
            .args(["--no-lldbinit", "--batch", "--no-use-colors", "-s"])
            .arg(&script_path)
            // If the target crashes during the script, still let it go.
            .args(["-k", "process detach"]);
        let run = timeline
            .time("lldb: attach, mmap, Py_AddPendingCall, detach", || {
                debugger_process::run(command, request.deadline, INTERRUPT_GRACE)
            })
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    AttachError::DebuggerMissing {
                        method: Method::Lldb,
                        program: "lldb",
                    }
                } else {
                    AttachError::Debugger {
                        method: Method::Lldb,
                        pid,
                        detail: format!("cannot run {}: {e}", self.program.display()),
                    }
                }
            })?;
        drop(scratch);
        // lldb sometimes leaves the target stopped after detaching.
        debugger_process::resume_if_stopped(pid, true, Duration::ZERO);

        let report = lldb_script::parse_report(&run.stdout, pid);
        if report.pending != Some(0) {
            return Err(diagnose(pid, &run, &report));
        }
        let claimed = timeline.time("wait for the main thread", || {
            request.staging.wait_claimed(request.deadline)
        });
        if claimed {
            return Ok(timeline);
        }
        request.staging.remove_script();
        if request.staging.claimed() {
            return Ok(timeline);
        }
        Err(AttachError::Timeout {
            pid,
            method: Method::Lldb,
            waited: started.elapsed(),
            advice: "lldb queued the bootstrap as a pending call, which only the main thread runs, between two bytecodes; the main thread ran no Python in time (it is probably blocked in a system call or in C code). Its script was removed, so if the queued call ever runs it does nothing. Try again while the main thread is active, give it a longer --timeout, or on Python 3.14+ use `--method pep768`.".into(),
        })
    }
}

/// The error for a run that did not queue the call.
fn diagnose(pid: u32, run: &DebuggerRun, report: &LldbReport) -> AttachError {
    let output = format!("{}\n{}", run.stderr, run.stdout);
    let said = || {
        let lines = debugger_process::relevant_lines(&run.stderr, NOISE, 12);
        if lines.is_empty() {
            debugger_process::relevant_lines(&run.stdout, NOISE, 12)
        } else {
            lines
        }
    };
    let failure = |detail: String| AttachError::Debugger {
        method: Method::Lldb,
        pid,
        detail,
    };
    if !debugger_process::process_alive(pid) {
        return AttachError::TargetExited { pid };
    }
    let lower = output.to_lowercase();
    if !report.attached
        && (lower.contains("not allowed")
            || lower.contains("permission")
            || lower.contains("attach failed"))
    {
        return AttachError::PermissionDenied {
            pid,
            why: format!(
                "lldb could not attach ({}); run as root (sudo), or as the target's user with Developer Tools access (`DevToolsSecurity -enable`); a target built with the hardened runtime and without the com.apple.security.get-task-allow entitlement cannot be debugged unless System Integrity Protection allows it",
                said()
            ),
        };
    }
    match (report.buffer, report.pending) {
        (Some(u64::MAX), _) | (_, Some(-100)) => failure(
            "the target's mmap failed to allocate the bootstrap's buffer, so nothing was queued".into(),
        ),
        (_, Some(rc)) => failure(format!(
            "Py_AddPendingCall returned {rc}: the interpreter's queue of pending calls is full or it is shutting down; nothing was queued, try again later"
        )),
        (_, None) => match run.ending {
            Ending::Killed => failure(format!(
                "lldb did not finish within the deadline and ignored SIGINT for {INTERRUPT_GRACE:?}, so it was killed. {}",
                said()
            )),
            Ending::Interrupted(_) => AttachError::Timeout {
                pid,
                method: Method::Lldb,
                waited: run.elapsed,
                advice: "lldb had not queued the bootstrap when the deadline passed and was interrupted. Try again, or with a longer --timeout.".into(),
            },
            Ending::Finished(status) => failure(format!("lldb exited ({status}) before queuing the bootstrap. {}", said())),
        },
    }
}
