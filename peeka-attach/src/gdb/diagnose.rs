//! Turning a gdb session that did not do its job into an [`AttachError`]
//! that says what happened and what to do.

use std::path::Path;

use crate::debugger_process::{self, DebuggerRun, Ending};
use crate::error::AttachError;
use crate::method::Method;
use crate::permissions::PtraceAccess;
use crate::procfs::ProcStatus;
use crate::target::Target;

use super::command_file::{BreakpointReport, QueueReport};
use super::INTERRUPT_GRACE;

/// Lines of gdb's output that never explain a failure.
pub(super) const NOISE: &[&str] = &[
    "libthread_db",
    "vsyscall page",
    "is not at the expected address",
    "Reading symbols from",
    "No such file or directory.",
    "warning: Could not load shared library symbols",
    "Use the \"info sharedlibrary\" command",
    "Do you need \"set solib-search-path\"",
    "warning: Target and debugger are in different PID namespaces",
    "Restoring binary file",
    "PEEKA-",
];

/// The error for gdb that could not be started.
pub(super) fn spawn_error(error: std::io::Error, program: &Path, pid: u32) -> AttachError {
    if error.kind() == std::io::ErrorKind::NotFound {
        AttachError::DebuggerMissing {
            method: Method::Gdb,
            program: "gdb",
        }
    } else {
        AttachError::Debugger {
            method: Method::Gdb,
            pid,
            detail: format!("cannot run {}: {error}", program.display()),
        }
    }
}

/// The error for a first session that did not queue the call.
pub(super) fn queue_failure(
    target: &Target,
    run: &DebuggerRun,
    report: &QueueReport,
) -> AttachError {
    let pid = target.pid;
    if let Some(error) = attach_failure(target, run) {
        return error;
    }
    let failure = |detail: String| AttachError::Debugger {
        method: Method::Gdb,
        pid,
        detail,
    };
    if report.mmap_failed {
        let seccomp = if target.status.seccomp == 2 {
            " The process runs under a seccomp filter, which may forbid it: run it with a profile that allows mmap (e.g. docker --security-opt seccomp=unconfined)."
        } else {
            " An address-space limit (ulimit -v) may forbid it."
        };
        return failure(format!(
            "the target's mmap failed to allocate one page for the bootstrap, so nothing was queued.{seccomp}"
        ));
    }
    if let Some(rc) = report.pending {
        return failure(format!(
            "queueing the pending call returned {rc}: the interpreter's queue of pending calls is full (its threads have not run Python for a while) or it is shutting down; nothing was queued, try again later"
        ));
    }
    match run.ending {
        Ending::Killed => failure(format!(
            "gdb did not finish within the deadline and ignored SIGINT for {INTERRUPT_GRACE:?}, so it was killed; if it was inside the injected call, the target may be damaged, please report this. {}",
            said(run)
        )),
        Ending::Interrupted(_) => AttachError::Timeout {
            pid,
            method: Method::Gdb,
            waited: run.elapsed,
            advice: format!(
                "gdb had not queued the bootstrap when the deadline passed; it was interrupted, restored the thread it used and detached, so nothing is pending{}. gdb may be slow to attach to this process (many threads, a slow disk), or a thread was stopped at a moment when the interpreter's pending-calls lock was held. Try again, or with a longer --timeout.",
                if report.buffer.is_some() { " (one page it allocated stays mapped)" } else { "" }
            ),
        },
        Ending::Finished(status) => {
            let detail = if run.stderr.contains("signaled while in a function called from GDB") {
                let signal = received_signal(&run.stdout).unwrap_or("a signal");
                format!(
                    "an injected call stopped with {signal}; gdb restored the thread's registers and detached, so nothing is pending. Report this with `peeka-cli doctor {pid}` output.{} {}",
                    other_root(target),
                    said(run)
                )
            } else {
                format!(
                    "gdb exited ({status}) before queuing the bootstrap.{} {}",
                    other_root(target),
                    said(run)
                )
            };
            failure(detail)
        }
    }
}

/// The error for a second session (breakpoint route) that failed, or
/// `None` when it merely did not run the bootstrap (cancelled, or nothing
/// stopped at the breakpoint in time): that is a timeout, decided by the
/// caller.
pub(super) fn breakpoint_failure(
    target: &Target,
    run: &DebuggerRun,
    report: &BreakpointReport,
    restored_code: bool,
) -> Option<AttachError> {
    let pid = target.pid;
    if let Some(error) = attach_failure(target, run) {
        return Some(error);
    }
    let failure = |detail: String| {
        Some(AttachError::Debugger {
            method: Method::Gdb,
            pid,
            detail,
        })
    };
    let restored = if restored_code {
        " Peeka wrote the original code back over the breakpoint gdb left behind."
    } else {
        ""
    };
    if run.ending == Ending::Killed {
        return failure(format!(
            "gdb ignored SIGINT for {INTERRUPT_GRACE:?} while waiting at PyEval_SaveThread{}, so it was killed.{restored} If it was inside the call, the target may be damaged, please report this. {}",
            if report.hit { " (a thread had stopped there and gdb had started the bootstrap on it)" } else { "" },
            said(run)
        ));
    }
    if !report.armed {
        return failure(format!(
            "gdb could not set its temporary breakpoint at PyEval_SaveThread, so no thread was asked to run the bootstrap.{} {}",
            other_root(target),
            said(run)
        ));
    }
    if report.hit && report.ran.is_none() {
        let signal = received_signal(&run.stdout).unwrap_or("a signal");
        return failure(format!(
            "the bootstrap call on the thread stopped at PyEval_SaveThread was interrupted by {signal}; gdb restored the thread's registers and detached. Report this with `peeka-cli doctor {pid}` output. {}",
            said(run)
        ));
    }
    None
}

/// Errors any session reports the same way: tracing refused, target gone.
fn attach_failure(target: &Target, run: &DebuggerRun) -> Option<AttachError> {
    let pid = target.pid;
    let stderr = &run.stderr;
    if stderr.contains("ptrace: Operation not permitted") {
        // Predict again: another tracer may have appeared since inspection.
        let verdict = ProcStatus::read(pid).map(|status| PtraceAccess::check(&status, pid).verdict);
        let why = match verdict {
            Ok(Err(why)) => why,
            _ => format!("gdb's ptrace attach was refused although the usual rules allow it; another security module (AppArmor, SELinux) or a container profile may forbid tracing: run as root with CAP_SYS_PTRACE (in a container: --cap-add=SYS_PTRACE), or check `TracerPid` in /proc/{pid}/status"),
        };
        return Some(AttachError::PermissionDenied { pid, why });
    }
    if stderr.contains("ptrace: No such process")
        || stderr.contains("exited while in a function called from GDB")
        || !debugger_process::process_alive(pid)
    {
        return Some(AttachError::TargetExited { pid });
    }
    None
}

/// What gdb said on stderr, for an error message.
fn said(run: &DebuggerRun) -> String {
    let lines = debugger_process::relevant_lines(&run.stderr, NOISE, 12);
    if lines.is_empty() {
        "gdb printed nothing on stderr".to_owned()
    } else {
        format!("gdb said:\n{lines}")
    }
}

/// A hint for targets under another root.
fn other_root(target: &Target) -> String {
    if target.has_other_root() {
        format!(
            " The target runs under another root ({}, a chroot or container); gdb reached its files through /proc/{}/root, and only explicit addresses were used, so this is not a missing-symbols problem; the ptrace method may work where gdb does not.",
            target.root.display(),
            target.pid
        )
    } else {
        String::new()
    }
}

/// The signal named by gdb's last `Program received signal SIGX, ...` line
/// (`Thread N "name" received signal SIGX, ...` in a threaded process).
fn received_signal(stdout: &str) -> Option<&str> {
    stdout
        .lines()
        .rev()
        .find_map(|line| line.split_once(" received signal ").map(|(_, rest)| rest))
        .and_then(|rest| rest.split(',').next())
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_signal_an_injected_call_received() {
        let stdout = "0x7f in ?? ()\n\nProgram received signal SIGSEGV, Segmentation fault.\n0x0000000000001234 in ?? ()\n";
        assert_eq!(received_signal(stdout), Some("SIGSEGV"));
        let threaded = "PEEKA-ARMED\n\nThread 1 \"python3.8\" received signal SIGINT, Interrupt.\n0x7f in ?? ()\n";
        assert_eq!(received_signal(threaded), Some("SIGINT"));
        assert_eq!(received_signal("nothing\n"), None);
    }
}
