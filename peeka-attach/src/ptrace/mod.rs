//! The `ptrace` method: make the target run the bootstrap through a CPython
//! pending call, without gdb.
//!
//! # Routes
//!
//! **Pending call** (every version). One thread of the target is seized and
//! stopped; on it we make a raw `mmap` system call for a read-only page,
//! copy the runner code into it (through `/proc/PID/mem`), and queue
//! `PyRun_SimpleString(page)` as a pending call:
//! - 3.12+: `_PyEval_AddPendingCall(PyInterpreterState_Main(), ..., 0)`, which
//!   any thread of the interpreter runs at its next eval-breaker check (the
//!   fourth parameter is `int mainthreadonly` in 3.12 and `int flags` from
//!   3.13; 0 means "any thread" in both);
//! - 3.8-3.11: `Py_AddPendingCall(...)`, which only the main thread runs.
//!
//! Only the thread that makes the calls is stopped. The others keep
//! running, so a thread that holds the pending-call lock releases it and
//! our call cannot deadlock on it. The thread chosen is one blocked in a
//! system call when there is one (such a thread cannot be inside that
//! lock's few-instruction critical sections), else the main thread.
//!
//! **Breakpoint** (3.8-3.11, main thread parked in a system call): an `int3`
//! at the entry of `PyEval_SaveThread`, which every thread calls with the
//! GIL held, at a consistent point, right before it blocks. The first
//! thread to trap runs `PyRun_SimpleString` there, on its own stack, and
//! then carries on as if nothing happened (module `breakpoint`).
//!
//! Which route: on 3.12+ always the pending call. On 3.8-3.11, when the
//! main thread is not blocked in a system call (per
//! `/proc/PID/task/PID/syscall`), the pending call first; if it is not
//! claimed within the grace period (150 ms by default), the breakpoint as
//! well, until the deadline. When the main thread is blocked, the
//! breakpoint first, and after the grace period a pending call as well (a
//! main thread that wakes up runs it; a process whose threads are all
//! waiting for the GIL may never call `PyEval_SaveThread`). The bootstrap
//! claims the attach with an atomic `mkdir`, so a second run does nothing.
//!
//! # The runner code
//!
//! The text handed to `PyRun_SimpleString` is the staging's runner
//! statement under `if 1 and __import__('os').getpid()==PID:`. The pid
//! check keeps a child forked while the call is queued (it inherits the
//! queue, and its forking thread becomes its main thread) from running the
//! bootstrap. The `1` is a switch: writing `0` over it (one byte, so a
//! concurrent reader sees either text, both valid) disables the code.
//!
//! # The runner page's lifetime
//!
//! A queued call reads the page when it runs, so the page is unmapped only
//! once that call is known to have run: `claimed()` turned true and the
//! breakpoint route did not run the bootstrap itself. (The claim happens
//! while the runner code executes, after `PyRun_SimpleString` has compiled
//! the page's text; nothing reads the page afterwards.) Unmapping is a
//! second short stop of one thread for a raw `munmap`.
//!
//! When the call may still be queued (the deadline passed, or the
//! breakpoint route ran the bootstrap first), the page cannot be unmapped:
//! a queued call would then read unmapped memory. Instead its text is
//! disabled, so the late call compiles a block and does nothing, whether
//! or not the bootstrap script still exists. That page (4 KiB) stays mapped
//! until the process exits. Removing the entry from CPython's queue would
//! need per-version struct layouts and the queue's lock; the page is the
//! price of not writing into interpreter internals.
//!
//! # What the target sees
//!
//! Registers (general and the whole XSAVE/FP state) and every byte we
//! patch are restored; an interrupted system call restarts as the kernel
//! would restart it after any ptrace stop (no `EINTR`); signals that arrive
//! meanwhile are passed through or re-delivered; nothing stays traced.
//! Children forked while a breakpoint is armed get the original bytes back
//! in their copy of memory before they run; an `execve` during the attach
//! ends it ([`AttachError::TargetExited`]) with the new program untouched.
//! A seccomp filter that refuses our `mmap` is reported as
//! [`AttachError::Seccomp`]. All ptrace requests of one attach come from
//! the calling thread, as the kernel requires.
//!
//! # Known limits
//!
//! - A stopped thread could in principle be inside the pending-call lock's
//!   critical section (a few instructions); the queueing calls are then
//!   bounded (2 s) and abandoned, registers restored. Blocked threads are
//!   preferred for the calls to keep this from happening.
//! - The breakpoint route runs the bootstrap in whatever context called
//!   `PyEval_SaveThread`: C code that blocks while holding a lock of its
//!   own, which the bootstrap then needs, would deadlock. A thread of a
//!   subinterpreter would load the agent into that subinterpreter.
//! - A process that is group-stopped (`SIGSTOP`) runs while the breakpoint
//!   route traces it; the stop is re-established when we detach.
//! - Calls are bounded in time. Once the bootstrap runs Python code
//!   directly on a thread, it is given at least 10 s even past the
//!   deadline, as abandoning it would leave the interpreter inconsistent.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod breakpoint;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod pending_call;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod registers;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod remote_call;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod requests;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod runner;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod scratch_page;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod session;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod symbols;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tasks;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod threads;

use std::time::Duration;

use crate::error::AttachError;
use crate::method::{InjectRequest, Injector, Method, Timeline};

/// The ptrace backend (see the [module documentation](self)).
///
/// ```no_run
/// use std::time::{Duration, Instant};
/// use peeka_attach::ptrace::PtraceInjector;
/// use peeka_attach::{AgentFiles, InjectRequest, Injector, Staging, Target};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let target = Target::inspect(4242)?;
/// let agent = AgentFiles {
///     files: vec![("agent.py".into(), b"def start(d, t):\n    return {}\n".to_vec())],
///     entry_file: "agent.py".into(),
///     entry_function: "start".into(),
/// };
/// let staging = Staging::prepare(&target, &agent)?;
/// let deadline = Instant::now() + Duration::from_secs(5);
/// let timeline = PtraceInjector::new().inject(&InjectRequest { target: &target, staging: &staging, deadline })?;
/// println!("attached in {:?}; agent: {:?}", timeline.total(), staging.wait_status(deadline));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtraceInjector {
    grace: Duration,
}

impl Default for PtraceInjector {
    fn default() -> Self {
        Self::new()
    }
}

impl PtraceInjector {
    /// How long one route gets before the other is tried as well
    /// (3.8-3.11 only).
    pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_millis(150);

    /// The backend with the default grace period.
    pub fn new() -> Self {
        Self {
            grace: Self::DEFAULT_GRACE_PERIOD,
        }
    }

    /// The backend with another grace period.
    pub fn with_grace_period(grace: Duration) -> Self {
        Self { grace }
    }

    /// The grace period.
    pub fn grace_period(&self) -> Duration {
        self.grace
    }
}

impl Injector for PtraceInjector {
    fn method(&self) -> Method {
        Method::Ptrace
    }

    fn inject(&self, request: &InjectRequest<'_>) -> Result<Timeline, AttachError> {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            session::inject(self.grace, request)
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Err(AttachError::MethodUnavailable {
                method: Method::Ptrace,
                pid: request.target.pid,
                why: "the ptrace method supports x86_64 and aarch64 only; use `--method gdb`"
                    .into(),
            })
        }
    }
}
