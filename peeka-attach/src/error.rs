//! The errors of attaching, each naming what to do next.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::bootstrap::StageError;
use crate::debug_offsets::DebugOffsetsError;
use crate::memory::MemoryError;
use crate::method::{Method, Timeline};
use crate::target::InspectError;
use crate::untrusted_file::UntrustedFileError;

/// Why an attach failed. The target is left as it was in every case.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AttachError {
    /// The pid is not an attachable CPython.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// The private directory could not be prepared.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// We may not trace the target.
    #[error("not allowed to attach to process {pid}: {why}")]
    PermissionDenied {
        /// The pid.
        pid: u32,
        /// Why, and the fix.
        why: String,
    },
    /// The operator disabled PEP 768 remote debugging in the target.
    #[error("process {pid} has remote debugging disabled ({likely}); Peeka will not override that. Restart it without the opt-out, or use `--method ptrace` if your policy allows tracing it")]
    RemoteDebugDisabled {
        /// The pid.
        pid: u32,
        /// Which opt-out is most likely in effect.
        likely: String,
    },
    /// The chosen method cannot work for this target or on this machine.
    #[error("the {method} method cannot attach to process {pid}: {why}")]
    MethodUnavailable {
        /// The method.
        method: Method,
        /// The pid.
        pid: u32,
        /// Why, and what to use instead.
        why: String,
    },
    /// No thread of the target ran Python code in time.
    #[error("process {pid} ran no Python code within {waited:?} ({method} method), so the agent was not loaded; nothing is left pending in the target. {advice}")]
    Timeout {
        /// The pid.
        pid: u32,
        /// The method.
        method: Method,
        /// How long we waited.
        waited: Duration,
        /// What to try.
        advice: String,
    },
    /// The method asked the target, but no thread of its interpreter ran
    /// Python in the short time `auto` gives it before it moves on (every
    /// thread was blocked in a system call): every request was withdrawn
    /// and none had been taken, so nothing of this method is left pending
    /// and `auto` tries the next method. Only `auto` sees it (see
    /// [`Pep768UnlessIdle`](crate::pep768::Pep768UnlessIdle)); an explicit
    /// `--method pep768` waits until the deadline.
    #[error("no thread of process {pid} ran Python within {} ms of the {method} request; {why}; every request was withdrawn, nothing is left pending", waited.as_millis())]
    NoTaker {
        /// The pid.
        pid: u32,
        /// The method that gave way.
        method: Method,
        /// How long nobody ran Python while the request was pending.
        waited: Duration,
        /// What the threads were doing.
        why: String,
        /// The method's steps, for the attach's timeline.
        steps: Timeline,
    },
    /// A seccomp filter in the target blocked a system call we needed.
    #[error("a seccomp filter in process {pid} blocked the {syscall} system call used to attach; run the target with a profile that allows it (e.g. docker --security-opt seccomp=unconfined) or use Python 3.14+ (PEP 768 needs no system call in the target)")]
    Seccomp {
        /// The pid.
        pid: u32,
        /// The blocked call.
        syscall: &'static str,
    },
    /// The target is stopped by job control (`SIGSTOP`, `SIGTSTP`,
    /// `SIGTTIN`, `SIGTTOU`). Attaching would need it to run, and Peeka
    /// never resumes a process it did not stop: nothing was done to it.
    #[error("process {pid} is stopped (job control, e.g. SIGSTOP or Ctrl-Z); attaching would need it to run Python code; resume it with SIGCONT first (`kill -CONT {pid}`, or `fg` in its shell), then attach again. Peeka never resumes a process it did not stop, and left this one exactly as it was")]
    TargetStopped {
        /// The pid.
        pid: u32,
        /// How many of its threads were seen stopped (all of them, once the
        /// group stop has reached every thread).
        stopped_threads: usize,
    },
    /// The target exited during the attach.
    #[error("process {pid} exited during the attach")]
    TargetExited {
        /// The pid.
        pid: u32,
    },
    /// The bootstrap ran, but until the deadline its status file was
    /// something it cannot have written (a link, a FIFO, a file of another
    /// owner, too large): another user may have planted it. Nothing was
    /// read from it.
    #[error("the bootstrap ran in process {pid}, but its status file {path} was rejected: {problem}. Another user that can write in the private directory may have planted it; it was not read. Check who else runs as the target's user, then attach again")]
    UntrustedStatusFile {
        /// The pid.
        pid: u32,
        /// The status file, as we reach it.
        path: PathBuf,
        /// What was wrong with it.
        problem: UntrustedFileError,
    },
    /// A ptrace operation failed.
    #[error("ptrace {op} on thread {tid} failed: {source}")]
    Ptrace {
        /// The operation.
        op: &'static str,
        /// The thread.
        tid: u32,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The injected call faulted; registers and memory were restored.
    #[error("the injected call in process {pid} stopped with {signal} at {address:#x}; the thread's registers and memory were restored. Report this with `peeka-cli doctor {pid}` output")]
    InjectedCallFaulted {
        /// The pid.
        pid: u32,
        /// The signal name.
        signal: String,
        /// The instruction pointer.
        address: u64,
    },
    /// A debugger (gdb, lldb) failed.
    #[error("{method} failed to inject into process {pid}: {detail}")]
    Debugger {
        /// The method.
        method: Method,
        /// The pid.
        pid: u32,
        /// What it said.
        detail: String,
    },
    /// A debugger program is not installed.
    #[error("the {method} method needs `{program}`, which was not found; install it (e.g. `apt-get install {program}`) or use another method")]
    DebuggerMissing {
        /// The method.
        method: Method,
        /// The program.
        program: &'static str,
    },
    /// The bootstrap ran but loading the agent raised.
    #[error("the agent failed to start inside process {pid}:\n{traceback}")]
    AgentFailed {
        /// The pid.
        pid: u32,
        /// The target-side traceback.
        traceback: String,
    },
    /// Reading or writing the target's memory failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The interpreter's debug offsets are unusable.
    #[error(transparent)]
    DebugOffsets(#[from] DebugOffsetsError),
    /// A file the attach needed could not be read or written.
    #[error("cannot access {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}
