//! The `ptrace` method: make the target run the bootstrap without gdb,
//! safely even if Peeka dies at any instant of the attach.
//!
//! # Tracer-death safety
//!
//! If the tracer disappears (SIGKILL, OOM kill, a closed terminal), the
//! kernel detaches every thread and each runs on from its current
//! registers. So a thread of the target is only ever either untouched, or
//! pointed (with one register write, atomic for the stopped thread) at a
//! *trampoline* that does its work and then restores every register and
//! jumps back to where the thread was, restarting an interrupted system
//! call exactly as the kernel would (module `trampoline`). There is no
//! breakpoint anywhere: the tracer follows a trampoline through
//! system-call stops, which an untraced thread does not make, and gives
//! the thread its registers back itself when the trampoline's last system
//! call returns. The only bytes written into code are a system-call
//! trampoline in padding past the end of an executable mapping, which
//! nothing but the thread we point at it executes (module `landing`).
//!
//! # Routes
//!
//! **Pending call** (every version). One thread is seized and stopped; a
//! system-call trampoline maps pages (raw `mmap`), which receive the runner
//! code and a program that queues `PyRun_SimpleString(<runner code>)` as a
//! pending call:
//! - 3.12+: `_PyEval_AddPendingCall(PyInterpreterState_Main(), ..., 0)`,
//!   which any thread of the interpreter runs at its next eval-breaker
//!   check (the fourth parameter is `int mainthreadonly` in 3.12 and
//!   `int flags` from 3.13; 0 means "any thread" in both);
//! - 3.8-3.11: `Py_AddPendingCall(...)`, which only the main thread runs.
//!
//! Only the thread that makes the calls is stopped. The others keep
//! running, so a thread that holds the pending-call lock releases it. The
//! thread chosen is one blocked in a system call when there is one (such a
//! thread cannot be inside that lock's few-instruction critical sections),
//! else the main thread.
//!
//! **GIL released** (every version): a thread blocked in a system call
//! that waits for an event, with the GIL released, runs
//! `PyGILState_Ensure`, the bootstrap and `PyGILState_Release` itself, and
//! goes back into its system call (module `gil_released`, which also says
//! which threads qualify). It is what reaches a 3.8-3.11 process whose
//! main thread is parked (`select`, `sleep`, `Event.wait`), and a process
//! of any version where no thread runs Python at all.
//!
//! Which route (`tasks::first_route`, decided from one look at every
//! thread through `/proc`, which stops none): the pending call first when
//! a thread is running, since one that runs Python takes it at its next
//! safe point; the GIL-released route at once when the version only lets
//! the main thread run pending calls and that thread is parked, or when
//! every thread is blocked in a system call and one waits where the route
//! qualifies (nobody would take a pending call soon). If the pending call
//! is not claimed within the grace period (150 ms by default), the
//! GIL-released route on each thread that qualifies, until the deadline;
//! when the GIL-released route came first, a pending call is queued as
//! well after the grace period, for the moment a thread runs Python
//! again. The bootstrap claims the attach with an atomic `mkdir`, so a
//! second run does nothing. The doctor describes the same decision
//! (`session::plan_route`).
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
//! # The runner pages' lifetime
//!
//! A queued call reads the pages when it runs, so they are unmapped only
//! once that call is known to have run: the attach was claimed and no
//! other route ran the bootstrap. Unmapping is a second short stop of one
//! thread for a raw `munmap`, made by a system-call trampoline (never from
//! the pages being unmapped). The pages of the GIL-released route are
//! unmapped as soon as its program has returned.
//!
//! When a call may still read them (the deadline passed, another route ran
//! the bootstrap first, or a thread still waits for the GIL to run its
//! program), the pages cannot be unmapped. Instead the runner code is
//! disabled, so a late call does nothing. Those pages (a few KiB) stay
//! mapped until the process exits.
//!
//! # What the target sees
//!
//! Registers (general and vector state) and every byte we write into code
//! are restored; an interrupted system call restarts as the kernel
//! restarts it after any ptrace stop (no `EINTR`, except for the calls the
//! kernel never restarts, such as `epoll_wait`, exactly as after any
//! debugger stop); signals that arrive meanwhile are delivered; nothing
//! stays traced. Children forked meanwhile get the original bytes back in
//! their copy of memory before they run; an `execve` during the attach
//! ends it ([`AttachError::TargetExited`]) with the new program untouched.
//! A seccomp filter that refuses our `mmap` is reported as
//! [`AttachError::Seccomp`]. All ptrace requests of one attach come from
//! the calling thread, as the kernel requires.
//!
//! # Known limits
//!
//! - x86-64 only: the trampolines are x86-64 machine code.
//! - A stopped thread could in principle be inside the pending-call lock's
//!   critical section (a few instructions); the queueing program is then
//!   given 2 s and left to finish on its own, its runner code disabled.
//! - The GIL-released route runs the bootstrap in whatever context waits:
//!   C code that waits on a condition variable while holding a lock of its
//!   own, which the bootstrap then needs, would block it. A thread of a
//!   subinterpreter would load the agent into that subinterpreter.
//! - Kernels booted with `proc_mem.force_override=never` refuse the write
//!   of the trampoline into padding (no `PTRACE_POKEDATA` fallback yet).

/// Declares the backend's modules, which exist on x86-64 only.
macro_rules! x86_64_only {
    ($($module:item)*) => { $(#[cfg(target_arch = "x86_64")] $module)* };
}

x86_64_only! {
    mod gil_released;
    pub(crate) mod landing;
    mod pending_call;
    mod registers;
    mod remote_call;
    mod requests;
    mod runner;
    mod scratch_page;
    pub(crate) mod session;
    mod symbols;
    mod threads;
    mod trampoline;
}

/// What `/proc` shows of a process's threads: every architecture (the
/// `pep768` method looks at the threads too).
pub(crate) mod tasks;

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
    /// How long the pending call gets before the GIL-released route is
    /// tried as well.
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
        #[cfg(target_arch = "x86_64")]
        {
            session::inject(self.grace, request)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Err(AttachError::MethodUnavailable {
                method: Method::Ptrace,
                pid: request.target.pid,
                why: "the ptrace method supports x86_64 only (its trampolines are x86-64 code); the gdb method may work"
                    .into(),
            })
        }
    }
}
