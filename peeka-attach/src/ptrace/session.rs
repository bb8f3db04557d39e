//! One attach with the ptrace method: choosing the route, running it, and
//! cleaning up the runner page (see the [module documentation](super)).

use std::time::{Duration, Instant};

use super::breakpoint::BreakpointRoute;
use super::pending_call::queue_runner;
use super::remote_call::{let_others_run, HijackedThread, ScratchCode};
use super::runner::RunnerCode;
use super::scratch_page::ScratchPage;
use super::symbols::{Functions, PendingCallQueue};
use super::tasks::{list_tasks, pick_thread, thread_activity, ThreadActivity};
use super::threads::TracedThreads;
use crate::armed_runner;
use crate::bootstrap::Staging;
use crate::error::AttachError;
use crate::method::{InjectRequest, Method, Step, Timeline};
use crate::target::{Arch, Target};

/// The longest pause between two looks at the claim.
const CLAIM_POLL_MAX: Duration = Duration::from_millis(2);

/// How long freeing the runner page may take once the attach succeeded.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one attach (see [`PtraceInjector`](super::PtraceInjector)).
pub(crate) fn inject(
    grace: Duration,
    request: &InjectRequest<'_>,
) -> Result<Timeline, AttachError> {
    let target = request.target;
    let started = Instant::now();
    let mut timeline = Timeline::default();
    if target.arch != Arch::HOST {
        return Err(AttachError::MethodUnavailable {
            method: Method::Ptrace,
            pid: target.pid,
            why: format!(
                "the target is {} but this Peeka is built for {}; use a Peeka built for {}",
                target.arch,
                Arch::HOST,
                target.arch
            ),
        });
    }
    let functions = timeline.time("resolve functions", || Functions::resolve(target))?;
    let code = RunnerCode::new(request.staging, target)?;
    let session = Session {
        target,
        staging: request.staging,
        functions,
        code: code.bytes(),
        deadline: request.deadline,
        grace,
        started,
    };
    let result = match functions.queue {
        PendingCallQueue::AnyThread { .. } => session.any_thread(&mut timeline),
        PendingCallQueue::MainThread { .. } => session.main_thread_only(&mut timeline),
    };
    result
        .map_err(|e| with_access_hint(target, e))
        .map(|()| timeline)
}

struct Session<'a> {
    target: &'a Target,
    staging: &'a Staging,
    functions: Functions,
    code: &'a [u8],
    deadline: Instant,
    grace: Duration,
    started: Instant,
}

impl Session<'_> {
    fn pid(&self) -> u32 {
        self.target.pid
    }

    /// 3.12+: one pending call any thread may run.
    fn any_thread(&self, timeline: &mut Timeline) -> Result<(), AttachError> {
        let page = self.queue(timeline)?;
        let claimed = timeline.time("wait for a thread to run it", || {
            self.staging
                .wait_claimed_polling(self.deadline, CLAIM_POLL_MAX)
        });
        if claimed {
            self.free_page(page, timeline);
            return Ok(());
        }
        self.give_up(Some(page), timeline, false)
    }

    /// 3.8-3.11: the main thread's pending call and the breakpoint.
    fn main_thread_only(&self, timeline: &mut Timeline) -> Result<(), AttachError> {
        let breakpoint = self.functions.save_thread;
        let main_blocked = matches!(
            thread_activity(self.pid(), self.pid()),
            ThreadActivity::InSyscall(_)
        );
        let mut queued = None;
        let mut queue_at = None;
        if breakpoint.is_none() || !main_blocked {
            let page = self.queue(timeline)?;
            let until = match breakpoint {
                Some(_) => self.deadline.min(Instant::now() + self.grace),
                None => self.deadline,
            };
            let claimed = timeline.time("wait for the main thread to run it", || {
                self.staging.wait_claimed_polling(until, CLAIM_POLL_MAX)
            });
            if claimed {
                self.free_page(page, timeline);
                return Ok(());
            }
            queued = Some(page);
        } else {
            queue_at = Some(Instant::now() + self.grace);
        }
        let Some(address) = breakpoint else {
            return self.give_up(queued, timeline, false);
        };
        if Instant::now() >= self.deadline {
            return self.give_up(queued, timeline, true);
        }
        let threads = match timeline.time("pause all threads", || {
            TracedThreads::stop_all(self.pid(), self.deadline)
        }) {
            Ok(threads) => threads,
            Err(e) => {
                self.disable_leftover(queued, timeline);
                return Err(e);
            }
        };
        let route = BreakpointRoute {
            functions: &self.functions,
            address,
            code: self.code,
            staging: self.staging,
            deadline: self.deadline,
            queue_at: if queued.is_some() { None } else { queue_at },
        };
        let outcome = match route.run(threads, timeline) {
            Ok(outcome) => outcome,
            Err(e) => {
                self.disable_leftover(queued, timeline);
                return Err(e);
            }
        };
        let queued = queued.or(outcome.queued);
        let claimed = outcome.claimed || self.staging.claimed();
        match (claimed, queued, outcome.ran_on) {
            (true, Some(page), None) => {
                // Only the queued call can have claimed it: it ran.
                self.free_page(page, timeline);
                Ok(())
            }
            (true, leftover, _) => {
                self.disable_leftover(leftover, timeline);
                Ok(())
            }
            (false, leftover, _) => self.give_up(leftover, timeline, true),
        }
    }

    /// Queues the runner with one stopped thread.
    fn queue(&self, timeline: &mut Timeline) -> Result<ScratchPage, AttachError> {
        let pid = self.pid();
        let tid = pick_thread(pid, &list_tasks(pid)?).ok_or(AttachError::TargetExited { pid })?;
        let mut threads = timeline.time(format!("pause thread {tid}"), || {
            TracedThreads::stop_one(pid, tid, self.deadline)
        })?;
        let page = timeline.time("queue the pending call", || {
            queue_runner(
                &mut threads,
                tid,
                &self.functions,
                self.code,
                self.deadline,
                &mut let_others_run,
            )
        });
        let detached = timeline.time("resume thread", || threads.detach_all());
        let page = page?;
        if let Err(e) = detached {
            self.disable_leftover(Some(page), timeline);
            return Err(e);
        }
        Ok(page)
    }

    /// Unmaps the runner page of a pending call that has run. A failure
    /// here does not undo the attach: it is recorded in the timeline
    /// and the page is disabled instead.
    fn free_page(&self, page: ScratchPage, timeline: &mut Timeline) {
        let started = Instant::now();
        let address = page.address();
        let result = self.unmap(page);
        let name = match &result {
            Ok(()) => "free the runner page".to_owned(),
            Err(e) => {
                let _ = armed_runner::disarm(&self.target.memory, address);
                format!("free the runner page: failed ({e}); it stays mapped, disabled")
            }
        };
        timeline.steps.push(Step {
            name,
            elapsed: started.elapsed(),
        });
    }

    fn unmap(&self, page: ScratchPage) -> Result<(), AttachError> {
        let pid = self.pid();
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        let tid = pick_thread(pid, &list_tasks(pid)?).ok_or(AttachError::TargetExited { pid })?;
        let mut threads = TracedThreads::stop_one(pid, tid, deadline)?;
        let scratch = ScratchCode::install(&mut threads, self.functions.scratch)?;
        let thread = HijackedThread::new(tid, &scratch)?;
        let unmapped = page.unmap(&thread, &mut threads, deadline, &mut let_others_run);
        let restored = thread.restore();
        let removed = scratch.remove(&mut threads);
        let detached = threads.detach_all();
        unmapped?;
        restored?;
        removed?;
        detached
    }

    /// Disables a runner page whose pending call may still be queued.
    fn disable_leftover(&self, page: Option<ScratchPage>, timeline: &mut Timeline) {
        let Some(page) = page else { return };
        let started = Instant::now();
        let outcome = match armed_runner::disarm(&self.target.memory, page.address()) {
            Ok(()) => "disabled".to_owned(),
            Err(e) => format!("could not be disabled ({e})"),
        };
        timeline.steps.push(Step {
            name: format!(
                "leave the runner page at {:#x} ({} bytes) mapped for the still-queued pending call, {outcome}",
                page.address(),
                page.len()
            ),
            elapsed: started.elapsed(),
        });
    }

    fn give_up(
        &self,
        leftover: Option<ScratchPage>,
        timeline: &mut Timeline,
        breakpoint_tried: bool,
    ) -> Result<(), AttachError> {
        let queued = leftover.is_some();
        self.disable_leftover(leftover, timeline);
        let mut advice = if breakpoint_tried {
            "The main thread did not reach a bytecode boundary and no thread called PyEval_SaveThread (all \
             threads may be blocked in system calls or long-running C code)."
                .to_owned()
        } else {
            "No thread reached a bytecode boundary (all threads may be blocked in system calls or long-running \
             C code)."
                .to_owned()
        };
        if queued {
            advice.push_str(
                " The pending call that was queued has been disabled: if it ever runs it does nothing.",
            );
        }
        advice.push_str(" Try again while the process is doing work, or with a longer --timeout.");
        Err(AttachError::Timeout {
            pid: self.pid(),
            method: Method::Ptrace,
            waited: self.started.elapsed(),
            advice,
        })
    }
}

/// Replaces a generic "ptrace refused" explanation with the one the
/// target's inspection predicted, when it predicted a refusal.
fn with_access_hint(target: &Target, error: AttachError) -> AttachError {
    match (error, &target.access.verdict) {
        (AttachError::PermissionDenied { pid, .. }, Err(why)) => AttachError::PermissionDenied {
            pid,
            why: why.clone(),
        },
        (error, _) => error,
    }
}
