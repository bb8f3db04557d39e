//! Which route an attach would take now, and why: the [`RouteForecast`]
//! behind the `route` finding, with what each thread was doing.

use std::fmt;

use crate::method::Method;

/// The way the bootstrap would get into the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteKind {
    /// PEP 768 remote exec (3.14+): a thread that runs Python takes the
    /// request at its next eval-breaker check.
    RemoteExec,
    /// PEP 768 first; when no thread runs Python within
    /// [`NO_TAKER_WINDOW`](crate::pep768::NO_TAKER_WINDOW), its requests
    /// are withdrawn and the ptrace method's GIL-released route runs.
    RemoteExecThenGilReleased,
    /// The ptrace method's pending call: a thread that runs Python takes it
    /// at its next safe point.
    PendingCall,
    /// The ptrace method's GIL-released route: a thread blocked in a
    /// system call with its thread state detached runs the bootstrap
    /// itself, then goes back into its call.
    GilReleased,
    /// The gdb (or lldb) method.
    Debugger,
    /// No route can run Python right now: the attach waits for a thread
    /// to run Python, up to its timeout.
    WaitForPython,
}

impl RouteKind {
    /// A stable name for scripts: `pep768_remote_exec`,
    /// `pep768_then_ptrace_gil_released`, `ptrace_pending_call`,
    /// `ptrace_gil_released`, `debugger`, `wait_for_python`.
    pub fn name(self) -> &'static str {
        match self {
            Self::RemoteExec => "pep768_remote_exec",
            Self::RemoteExecThenGilReleased => "pep768_then_ptrace_gil_released",
            Self::PendingCall => "ptrace_pending_call",
            Self::GilReleased => "ptrace_gil_released",
            Self::Debugger => "debugger",
            Self::WaitForPython => "wait_for_python",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one thread was doing when the doctor looked (through
/// `/proc/PID/task/TID/syscall`, which never stops a thread).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadSeen {
    /// Its thread id, as this process sees it.
    pub tid: u32,
    /// Whether it is the main thread.
    pub main: bool,
    /// `running` (on a CPU), `blocked` (in a system call) or `unknown`.
    pub state: &'static str,
    /// The system call it was blocked in (its number on this
    /// architecture).
    pub syscall: Option<u64>,
    /// For a blocked thread: whether the GIL-released route may run the
    /// bootstrap on it: `Ok` with the wait's name, or why not. `None` when
    /// it was not judged (running, or the ptrace method is unusable).
    pub gil_released: Option<Result<&'static str, String>>,
    /// Whether it held the GIL (read on 3.13+ only).
    pub holds_gil: bool,
}

/// Which route an attach with `auto` would take now, and why.
///
/// It is a look at a moving process: a thread that runs Python a moment
/// later changes the route (the attach decides again when it runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteForecast {
    /// The method that would run the bootstrap; `None` when no route can
    /// run Python now.
    pub method: Option<Method>,
    /// The route.
    pub kind: RouteKind,
    /// Why, in a sentence (the `route` finding's summary).
    pub summary: String,
    /// Every thread of the process, as the doctor saw it.
    pub threads: Vec<ThreadSeen>,
    /// Whether the GIL was free (`Some(true)`), held (`Some(false)`), or
    /// not read (`None`: before 3.13, or unreadable).
    pub gil_free: Option<bool>,
}
