//! The second route, for a main thread that does not run Python: a
//! one-shot breakpoint at the entry of `PyEval_SaveThread`.
//!
//! Before 3.12 only the main thread runs pending calls, so a main thread
//! parked in `time.sleep`, `Event.wait()` or `select()` never runs one, even
//! while other threads run Python. But every thread that is about to block
//! calls `PyEval_SaveThread` (through `Py_BEGIN_ALLOW_THREADS`) while it
//! still holds the GIL, at a point where the interpreter's state is
//! consistent: other threads may run Python from there on. A thread that
//! stops there may run Python itself first.
//!
//! So: with every thread traced, an `int3` goes at the function's entry and
//! the threads run on. The first thread to trap is moved back to the entry,
//! the breakpoint is removed (one-shot), and that thread calls
//! `PyRun_SimpleString(<runner code>)` on its own stack, below its red zone,
//! between `PyErr_Fetch` and `PyErr_Restore` so that an exception the C code
//! may have set survives. Its registers are then restored and it carries on
//! into `PyEval_SaveThread` as if nothing happened. Threads that trapped
//! meanwhile are moved back and let go. Signals are passed through as they
//! come; new threads are traced automatically, so none can run into the
//! breakpoint unseen.
//!
//! Whatever happens (claimed, deadline, error), the breakpoint is removed,
//! every thread is stopped (so a trap still in flight is moved back) and
//! detached.

use std::path::Path;
use std::time::{Duration, Instant};

use super::pending_call::queue_runner;
use super::registers::BREAKPOINT;
use super::remote_call::{let_others_run, HijackedThread, ScratchCode, StackSpace};
use super::scratch_page::ScratchPage;
use super::symbols::Functions;
use super::tasks::pick_thread;
use super::threads::{Event, TracedThreads};
use crate::bootstrap::Staging;
use crate::error::AttachError;
use crate::method::{Step, Timeline};

/// How often `claimed()` is checked while waiting for a trap.
const CLAIM_POLL: Duration = Duration::from_millis(1);

/// How long the bootstrap, run directly on a thread, may take at least
/// (even past the attach's deadline).
const DIRECT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the final stop of every thread may take.
const FINAL_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// One run of the route.
#[derive(Debug)]
pub(crate) struct BreakpointRoute<'a> {
    /// Resolved functions (the breakpoint goes at `PyEval_SaveThread`).
    pub(crate) functions: &'a Functions,
    /// The address of `PyEval_SaveThread`.
    pub(crate) address: u64,
    /// The runner code, NUL-terminated.
    pub(crate) code: &'a [u8],
    /// The attach's private directory (for `claimed()`).
    pub(crate) staging: &'a Staging,
    /// When to give up.
    pub(crate) deadline: Instant,
    /// When to also queue a pending call, as a fallback for a main thread
    /// that wakes up before any thread calls `PyEval_SaveThread`; `None`
    /// when one is already queued (or none is wanted).
    pub(crate) queue_at: Option<Instant>,
}

/// How the route ended.
#[derive(Debug)]
pub(crate) struct BreakpointOutcome {
    /// Whether the bootstrap claimed the attach.
    pub(crate) claimed: bool,
    /// The thread on which we ran the bootstrap directly, if we did.
    pub(crate) ran_on: Option<u32>,
    /// The page of a pending call this route queued.
    pub(crate) queued: Option<ScratchPage>,
}

#[derive(Debug, Default)]
struct Window {
    /// Threads stopped at the breakpoint, not handled yet.
    parked: Vec<u32>,
    ran_on: Option<u32>,
    queued: Option<ScratchPage>,
    /// Queueing was tried and failed; the breakpoint alone carries on.
    queue_failed: bool,
}

impl BreakpointRoute<'_> {
    /// Runs the route on `threads` (every thread of the target, stopped).
    ///
    /// # Errors
    /// Any failure; the breakpoint is removed and the threads detached
    /// before this returns, whatever happened.
    pub(crate) fn run(
        &self,
        mut threads: TracedThreads,
        timeline: &mut Timeline,
    ) -> Result<BreakpointOutcome, AttachError> {
        let mut window = Window::default();
        let started = Instant::now();
        let result = self.window(&mut threads, &mut window, timeline);
        push_step(timeline, "wait at the breakpoint", started);

        let started = Instant::now();
        let disarmed = threads.revert_patch(self.address);
        let stopped = threads.interrupt_all(Instant::now() + FINAL_STOP_TIMEOUT);
        let detached = threads.detach_all();
        push_step(timeline, "remove breakpoint, detach threads", started);
        let claimed = result?;
        disarmed?;
        stopped?;
        detached?;
        Ok(BreakpointOutcome {
            claimed,
            ran_on: window.ran_on,
            queued: window.queued,
        })
    }

    fn window(
        &self,
        threads: &mut TracedThreads,
        window: &mut Window,
        timeline: &mut Timeline,
    ) -> Result<bool, AttachError> {
        let pid = threads.pid();
        threads.register_breakpoint(self.address);
        threads.apply_patch(self.address, BREAKPOINT)?;
        threads.release_all()?;
        loop {
            if self.staging.claimed() {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Ok(false);
            }
            if let Some(tid) = window.parked.pop() {
                self.on_hit(threads, tid, window, timeline)?;
                continue;
            }
            let queue_due = self.queue_at.filter(|_| {
                window.queued.is_none() && window.ran_on.is_none() && !window.queue_failed
            });
            if queue_due.is_some_and(|at| now >= at) {
                let started = Instant::now();
                self.queue_now(threads, window)?;
                push_step(timeline, "queue a pending call as well", started);
                continue;
            }
            let mut wake = self.deadline.min(now + CLAIM_POLL);
            if let Some(at) = queue_due {
                wake = wake.min(at);
            }
            match threads.next_event(wake)? {
                None => {}
                Some(Event::Breakpoint { tid, .. }) => {
                    self.on_hit(threads, tid, window, timeline)?
                }
                Some(Event::Signal { tid, .. }) => threads.release(tid)?,
                Some(Event::Exited { tid })
                    if tid == pid || !Path::new(&format!("/proc/{pid}")).exists() =>
                {
                    return Err(AttachError::TargetExited { pid });
                }
                Some(Event::Exited { .. }) => {}
            }
        }
    }

    /// A thread stopped at the breakpoint (already moved back to it).
    fn on_hit(
        &self,
        threads: &mut TracedThreads,
        tid: u32,
        window: &mut Window,
        timeline: &mut Timeline,
    ) -> Result<(), AttachError> {
        threads.revert_patch(self.address)?;
        if window.ran_on.is_none() && !self.staging.claimed() {
            let started = Instant::now();
            self.run_bootstrap_on(threads, tid)?;
            window.ran_on = Some(tid);
            push_step(
                timeline,
                format!("run the bootstrap on thread {tid}"),
                started,
            );
        }
        threads.release(tid)?;
        for parked in std::mem::take(&mut window.parked) {
            threads.release(parked)?;
        }
        Ok(())
    }

    /// Calls `PyRun_SimpleString(code)` on `tid`, which holds the GIL.
    fn run_bootstrap_on(&self, threads: &mut TracedThreads, tid: u32) -> Result<(), AttachError> {
        let scratch = ScratchCode::install(threads, self.functions.scratch)?;
        let thread = match HijackedThread::new(tid, &scratch) {
            Ok(thread) => thread,
            Err(e) => {
                let _ = scratch.remove(threads);
                return Err(e);
            }
        };
        let ran = self.run_here(&thread, threads);
        let restored = thread.restore();
        let removed = scratch.remove(threads);
        ran?;
        restored?;
        removed
    }

    fn run_here(
        &self,
        thread: &HijackedThread,
        threads: &mut TracedThreads,
    ) -> Result<(), AttachError> {
        let mut space = StackSpace::below(thread.saved());
        let code_at = space.reserve(self.code.len() as u64);
        threads.memory().write(code_at, self.code)?;
        let saved_error = space.reserve(3 * 8);
        let stack = space.call_stack();
        let mut others = let_others_run;
        let functions = self.functions;
        // Once Python code runs, abandoning the call would leave the
        // interpreter inconsistent: let it finish even past the deadline
        // (the bootstrap only starts a thread), within reason.
        let deadline = self.deadline.max(Instant::now() + DIRECT_CALL_TIMEOUT);
        if let Some((fetch, _)) = functions.error_fetch_restore {
            let args = [saved_error, saved_error + 8, saved_error + 16];
            thread.call(threads, fetch, &args, stack, deadline, &mut others)?;
        }
        thread.call(
            threads,
            functions.run_simple_string,
            &[code_at],
            stack,
            deadline,
            &mut others,
        )?;
        if let Some((_, restore)) = functions.error_fetch_restore {
            let memory = threads.memory();
            let args = [
                memory.read_u64(saved_error)?,
                memory.read_u64(saved_error + 8)?,
                memory.read_u64(saved_error + 16)?,
            ];
            thread.call(threads, restore, &args, stack, deadline, &mut others)?;
        }
        Ok(())
    }

    /// Queues a pending call with one thread while the others run on.
    fn queue_now(
        &self,
        threads: &mut TracedThreads,
        window: &mut Window,
    ) -> Result<(), AttachError> {
        let Some(tid) = pick_thread(threads.pid(), &threads.tids()) else {
            return Ok(());
        };
        threads.interrupt(tid)?;
        while !threads.is_stopped(tid) {
            match threads.next_event(self.deadline)? {
                None => return Ok(()),
                Some(Event::Breakpoint { tid: hit, .. }) => window.parked.push(hit),
                Some(Event::Signal { tid: other, .. }) => threads.release(other)?,
                Some(Event::Exited { tid: gone }) if gone == tid => return Ok(()),
                Some(Event::Exited { .. }) => {}
            }
        }
        let mut parked = Vec::new();
        let mut others = |threads: &mut TracedThreads, event: Event| match event {
            Event::Breakpoint { tid, .. } => {
                parked.push(tid);
                Ok(())
            }
            Event::Signal { tid, .. } => threads.release(tid),
            Event::Exited { .. } => Ok(()),
        };
        let queued = queue_runner(
            threads,
            tid,
            self.functions,
            self.code,
            self.deadline,
            &mut others,
        );
        window.parked.extend(parked);
        match queued {
            Ok(page) => window.queued = Some(page),
            Err(e @ AttachError::TargetExited { .. }) => return Err(e),
            // E.g. a full queue: the breakpoint may still work.
            Err(_) => window.queue_failed = true,
        }
        if !window.parked.contains(&tid) {
            threads.release(tid)?;
        }
        Ok(())
    }
}

fn push_step(timeline: &mut Timeline, name: impl Into<String>, started: Instant) {
    timeline.steps.push(Step {
        name: name.into(),
        elapsed: started.elapsed(),
    });
}
