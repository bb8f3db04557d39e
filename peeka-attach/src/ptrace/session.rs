//! One attach with the ptrace method: choosing the route, running it, and
//! cleaning up the runner pages (see the [module documentation](super)).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::gil_released::{
    eligible, eligible_call, run_bootstrap, stop_where_eligible, Bootstrap, DirectOutcome,
    NO_FUTEX_WAITS,
};
use super::landing;
use super::pending_call::{queue_runner, RunnerPage};
use super::registers::GeneralRegs;
use super::remote_call::{let_others_run, HijackedThread};
use super::runner::RunnerCode;
use super::symbols::{Functions, GilState, PendingCallQueue};
use super::tasks::{
    first_route, judge_threads, list_tasks, pick_thread, route_threads, thread_is_gone_or_zombie,
    FirstRoute, RoutePlan, RouteThread, ThreadActivity, ThreadLook,
};
use super::threads::TracedThreads;
use crate::bootstrap::Staging;
use crate::error::AttachError;
use crate::memory::RemoteMemory;
use crate::method::{InjectRequest, Method, Step, Timeline};
use crate::procfs::MapEntry;
use crate::target::Target;

/// The longest pause between two looks at the claim.
const CLAIM_POLL_MAX: Duration = Duration::from_millis(2);

/// How long freeing the runner pages may take once the attach succeeded.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the direct route follows a thread that waits for the GIL
/// before letting it finish on its own (and trying other threads too).
const DIRECT_FOLLOW: Duration = Duration::from_millis(50);

/// How long a running thread is followed for the exit of a waiting system
/// call (a busy thread that sleeps or polls between bursts of work).
const CATCH_WINDOW: Duration = Duration::from_millis(10);

/// How often the wait for a thread checks that the program was not
/// replaced.
const PROGRAM_CHECK: Duration = Duration::from_millis(20);

/// How long stopping one thread may take.
const STOP_TIMEOUT: Duration = Duration::from_millis(500);

/// How many threads may wait for the GIL to run the bootstrap at once.
const DIRECT_WAITERS: usize = 4;

/// How soon a thread found unsuitable for the direct route is looked at
/// again.
const RETRY_THREAD_AFTER: Duration = Duration::from_millis(50);

/// The pause between two rounds of looking for a suitable thread.
const DIRECT_POLL: Duration = Duration::from_millis(2);

/// Runs one attach (see [`PtraceInjector`](super::PtraceInjector)).
pub(crate) fn inject(
    grace: Duration,
    request: &InjectRequest<'_>,
) -> Result<Timeline, AttachError> {
    let target = request.target;
    let started = Instant::now();
    let mut timeline = Timeline::default();
    let image = program_image(target.pid);
    // Whatever went wrong, a program that was replaced meanwhile is the
    // story to tell.
    let replaced = |error: AttachError| -> AttachError {
        let pid = target.pid;
        if program_image(pid) != image || MapEntry::read_all(pid).is_err() {
            AttachError::TargetExited { pid }
        } else {
            error
        }
    };
    let functions = timeline
        .time("resolve functions", || Functions::resolve(target))
        .map_err(replaced)?;
    let landing = timeline
        .time("find padding for the trampoline", || landing::find(target))
        .map_err(replaced)?;
    let code = RunnerCode::new(request.staging, target)?;
    let memory = RemoteMemory::pinned(target.pid)
        .map_err(|_| AttachError::TargetExited { pid: target.pid })?;
    let session = Session {
        image,
        memory,
        target,
        staging: request.staging,
        functions,
        landing,
        code: code.bytes(),
        deadline: request.deadline,
        grace,
        started,
        interpreter_data: interpreter_data(target),
    };
    session
        .run(&mut timeline)
        .map_err(|e| with_access_hint(target, replaced(e)))
        .map(|()| timeline)
}

/// The address ranges of the interpreter's file in the target, with the
/// anonymous mapping right after it (its `.bss`, where `_PyRuntime` and so
/// the GIL live in most builds).
fn interpreter_data(target: &Target) -> Vec<(u64, u64)> {
    let python = target.python.path.as_path();
    let mut ranges: Vec<(u64, u64)> = target
        .maps
        .iter()
        .filter(|m| m.path.as_deref() == Some(python))
        .map(|m| (m.start, m.end))
        .collect();
    let bss: Vec<(u64, u64)> = target
        .maps
        .iter()
        .filter(|m| m.path.is_none() && ranges.iter().any(|&(_, end)| end == m.start))
        .map(|m| (m.start, m.end))
        .collect();
    ranges.extend(bss);
    if target.python.version.minor >= 13 {
        ranges.push(NO_FUTEX_WAITS);
    }
    ranges
}

struct Session<'a> {
    target: &'a Target,
    /// What tells this program image from the next one (see
    /// [`program_image`]).
    image: Option<[u8; 16]>,
    /// The target's memory, tied to the program image inspected (see
    /// [`RemoteMemory::pinned`]).
    memory: RemoteMemory,
    staging: &'a Staging,
    functions: Functions,
    landing: u64,
    code: &'a [u8],
    deadline: Instant,
    grace: Duration,
    started: Instant,
    interpreter_data: Vec<(u64, u64)>,
}

/// What the attach left in the target so far.
#[derive(Debug, Default)]
struct Leftovers {
    /// The pages of a queued pending call.
    queued: Option<RunnerPage>,
    /// Threads left running a program on their own, and its pages.
    running: Vec<(u32, RunnerPage)>,
    /// The direct route ran the bootstrap.
    ran_directly: bool,
    /// Why threads were not used for the GIL-released route, the latest
    /// reason of each.
    unsuitable: Vec<(u32, String)>,
}

impl Session<'_> {
    fn pid(&self) -> u32 {
        self.target.pid
    }

    /// Fails with [`AttachError::TargetExited`] when the target no longer
    /// runs the program inspected: an `execve` maps a new image, so the
    /// interpreter's mappings are not where they were, or the image's
    /// random bytes differ (the Python asked about is gone, and our
    /// addresses mean nothing in the new program).
    /// Called with a thread stopped, so that no `execve` can complete
    /// until that thread is let go.
    fn same_program(&self) -> Result<(), AttachError> {
        let pid = self.pid();
        let python = self.target.python.path.as_path();
        let of_python = |maps: &[MapEntry]| -> Vec<(u64, u64, u64)> {
            maps.iter()
                .filter(|m| m.path.as_deref() == Some(python))
                .map(|m| (m.start, m.end, m.inode))
                .collect()
        };
        let now = MapEntry::read_all(pid).map_err(|_| AttachError::TargetExited { pid })?;
        if of_python(&now) == of_python(&self.target.maps) && program_image(pid) == self.image {
            Ok(())
        } else {
            Err(AttachError::TargetExited { pid })
        }
    }

    fn run(&self, timeline: &mut Timeline) -> Result<(), AttachError> {
        let mut left = Leftovers::default();
        let result = self.routes(timeline, &mut left);
        let claimed = self.staging.claimed();
        match (&result, claimed) {
            (Ok(()), true) | (Err(_), true) => {
                self.tidy_up(left, timeline);
                Ok(())
            }
            (Ok(()), false) => {
                // Replaced by another program while we waited?
                self.same_program()?;
                let queued = left.queued.is_some();
                let unsuitable = std::mem::take(&mut left.unsuitable);
                self.disable_leftovers(left, timeline);
                Err(self.timeout(queued, &unsuitable))
            }
            (Err(_), false) => {
                self.disable_leftovers(left, timeline);
                result
            }
        }
    }

    /// Tries the routes until the bootstrap claims the attach or the
    /// deadline passes.
    fn routes(&self, timeline: &mut Timeline, left: &mut Leftovers) -> Result<(), AttachError> {
        let pid = self.pid();
        let gil = self.functions.gil_state;
        // A pending call first, when a thread runs: one that runs Python
        // takes it at its next safe point. Not when only a parked main
        // thread could run it, nor when every thread is blocked in a
        // system call and one waits with the GIL released: nobody would
        // take the call before the grace period is over.
        let looked = Instant::now();
        let threads = route_threads(pid, |number, args| {
            eligible_call(number, args, &self.interpreter_data)
        })?;
        let first = first_route(pid, &threads, self.main_thread_only(), gil.is_some());
        if first.queues_first() {
            left.queued = self.queue(timeline)?;
            let until = match gil {
                Some(_) => self.deadline.min(Instant::now() + self.grace),
                None => self.deadline,
            };
            let claimed = timeline.time("wait for a thread to run the pending call", || {
                self.staging.wait_claimed_polling(until, CLAIM_POLL_MAX)
            });
            if claimed {
                return Ok(());
            }
        } else {
            push_step(
                timeline,
                format!(
                    "choose the GIL-released route: {}",
                    describe_first_route(&first, &threads)
                ),
                looked,
            );
        }
        let Some(gil) = gil else {
            return Ok(());
        };
        // Then a thread that waits with the GIL released, as soon as one
        // does; when this route came first, a pending call is queued after
        // the grace period as well, for the moment a thread runs Python.
        let started = Instant::now();
        let mut tried: HashMap<u32, Instant> = HashMap::new();
        let mut looked = Instant::now();
        let mut last_queue_try: Option<Instant> = None;
        while !self.staging.claimed() && Instant::now() < self.deadline {
            if looked.elapsed() >= PROGRAM_CHECK {
                self.same_program()?;
                looked = Instant::now();
            }
            if left.queued.is_none()
                && started.elapsed() >= self.grace
                && last_queue_try.is_none_or(|at: Instant| at.elapsed() >= RETRY_THREAD_AFTER)
            {
                last_queue_try = Some(Instant::now());
                left.queued = self.queue(timeline)?;
            }
            let now = Instant::now();
            // A thread running a program of ours is never taken again.
            let waiting: Vec<u32> = left.running.iter().map(|(tid, _)| *tid).collect();
            let candidates: Vec<u32> = self
                .candidates(&self.interpreter_data)?
                .into_iter()
                .filter(|tid| !waiting.contains(tid))
                .filter(|tid| {
                    tried
                        .get(tid)
                        .is_none_or(|&at| now - at >= RETRY_THREAD_AFTER)
                })
                .collect();
            for tid in candidates {
                if left.running.len() >= DIRECT_WAITERS {
                    break;
                }
                tried.insert(tid, Instant::now());
                let step_started = Instant::now();
                let outcome = match self.direct(tid, gil) {
                    // A system call of ours that did not return in time (a
                    // loaded machine): the thread was restored; try others.
                    Err(AttachError::Timeout { advice, .. }) => DirectOutcome::Unsuitable(advice),
                    other => other?,
                };
                match outcome {
                    DirectOutcome::Ran => {
                        left.ran_directly = true;
                        push_step(timeline, format!("run the bootstrap on thread {tid}, which waited with the GIL released"), step_started);
                        return Ok(());
                    }
                    DirectOutcome::StillRunning(page) => {
                        left.running.push((tid, page));
                        push_step(timeline, format!("thread {tid}, which waited with the GIL released, now waits for the GIL to run the bootstrap"), step_started);
                    }
                    DirectOutcome::Unsuitable(why) => {
                        left.unsuitable.retain(|(t, _)| *t != tid);
                        left.unsuitable.push((tid, why));
                    }
                }
                if self.staging.claimed() {
                    return Ok(());
                }
            }
            self.staging.wait_claimed_polling(
                self.deadline.min(Instant::now() + DIRECT_POLL),
                CLAIM_POLL_MAX,
            );
        }
        Ok(())
    }

    /// Queues the runner with one stopped thread.
    fn queue(&self, timeline: &mut Timeline) -> Result<Option<RunnerPage>, AttachError> {
        let Some((tid, mut threads)) = self.stop_a_safe_thread(timeline)? else {
            return Ok(None);
        };
        self.same_program()?;
        let page = timeline.time("queue the pending call", || {
            queue_runner(
                &mut threads,
                tid,
                &self.functions,
                self.code,
                self.landing,
                self.deadline,
                &mut let_others_run,
            )
        });
        let detached = timeline.time("resume thread", || threads.detach_all());
        let page = page?;
        if let Err(e) = detached {
            let _ = page.disarm(&self.memory);
            return Err(e);
        }
        Ok(Some(page))
    }

    /// Stops a thread on which queueing the pending call cannot deadlock:
    /// one waiting for an event in a system call (see `gil_released`: it
    /// holds no lock of the interpreter or the C library), else one running
    /// in user space (it could only be inside the pending-call lock's few
    /// instructions), the main thread first in each kind. Never a thread
    /// blocked in any other system call: waiting for a mutex, or allocating
    /// memory, it may hold a lock the queueing needs (from 3.13 the
    /// pending-call lock and the thread-state lock are such mutexes).
    /// `None` when no thread is safe right now.
    fn stop_a_safe_thread(
        &self,
        timeline: &mut Timeline,
    ) -> Result<Option<(u32, TracedThreads)>, AttachError> {
        let pid = self.pid();
        // Queueing runs no Python: a thread parked on a semaphore (which
        // from 3.13 may be CPython's own) qualifies, one waiting for the GIL
        // never does.
        let waits: Vec<(u64, u64)> = self
            .interpreter_data
            .iter()
            .copied()
            .filter(|&range| range != NO_FUTEX_WAITS)
            .collect();
        for tid in self.candidates(&waits)? {
            let stopped = timeline.time(format!("pause thread {tid}"), || {
                TracedThreads::stop_one(pid, tid, self.deadline.min(Instant::now() + STOP_TIMEOUT))
            });
            let threads = match stopped {
                Ok(threads) => threads,
                Err(AttachError::TargetExited { .. } | AttachError::Timeout { .. })
                    if !thread_is_gone_or_zombie(pid, pid) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let regs = GeneralRegs::read(tid).map_err(|source| AttachError::Ptrace {
                op: "getregset",
                tid,
                source,
            })?;
            let safe = regs.syscall_number().is_none() || eligible(&regs, &waits).is_ok();
            if safe {
                return Ok(Some((tid, threads)));
            }
            threads.detach_all()?;
        }
        Ok(None)
    }

    /// Whether only the main thread runs pending calls (before 3.12).
    fn main_thread_only(&self) -> bool {
        matches!(self.functions.queue, PendingCallQueue::MainThread { .. })
    }

    /// Threads worth a try of the GIL-released route, best first: those
    /// `/proc` shows blocked in a system call that qualifies (the main
    /// thread first), then those running (they may soon make one: a busy
    /// thread that sleeps or polls between bursts of work). Threads blocked
    /// in a system call that does not qualify are left alone for now.
    fn candidates(&self, waits: &[(u64, u64)]) -> Result<Vec<u32>, AttachError> {
        let pid = self.pid();
        let mut ranked: Vec<(u8, u32)> = Vec::new();
        for thread in route_threads(pid, |number, args| eligible_call(number, args, waits))? {
            let rank = match thread.look.activity {
                ThreadActivity::InSyscall(_) if thread.qualifies() => 0,
                ThreadActivity::Running => 1,
                _ => continue,
            };
            ranked.push((rank, thread.look.tid));
        }
        ranked.sort_by_key(|&(rank, tid)| (rank, tid != pid));
        Ok(ranked.into_iter().map(|(_, tid)| tid).collect())
    }

    /// Stops the thread best placed to make calls (see `pick_thread`); one
    /// that exits first is replaced by another.
    fn stop_a_thread(&self, deadline: Instant) -> Result<(u32, TracedThreads), AttachError> {
        let pid = self.pid();
        loop {
            let tid =
                pick_thread(pid, &list_tasks(pid)?).ok_or(AttachError::TargetExited { pid })?;
            let stopped = TracedThreads::stop_one(pid, tid, deadline);
            match stopped {
                Ok(threads) => return Ok((tid, threads)),
                Err(AttachError::TargetExited { .. })
                    if !thread_is_gone_or_zombie(pid, pid) && Instant::now() < deadline => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// One try of the direct route on thread `tid`.
    fn direct(&self, tid: u32, gil: GilState) -> Result<DirectOutcome, AttachError> {
        let pid = self.pid();
        let stop_by = Instant::now() + STOP_TIMEOUT;
        let mut threads = match TracedThreads::stop_one(pid, tid, stop_by) {
            Ok(threads) => threads,
            Err(AttachError::Timeout { .. }) => {
                return Ok(DirectOutcome::Unsuitable(
                    "it did not stop for the tracer".into(),
                ))
            }
            // The thread ended meanwhile; others may do.
            Err(AttachError::TargetExited { .. }) if !thread_is_gone_or_zombie(pid, pid) => {
                return Ok(DirectOutcome::Unsuitable("it exited".into()))
            }
            Err(e) => return Err(e),
        };
        self.same_program()?;
        let stopped = stop_where_eligible(&mut threads, tid, &self.interpreter_data, CATCH_WINDOW);
        match stopped {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => {
                threads.detach_all()?;
                return Ok(DirectOutcome::Unsuitable(why));
            }
            Err(e) => {
                let _ = threads.detach_all();
                return Err(e);
            }
        }
        let deadline = self.deadline.min(Instant::now() + DIRECT_FOLLOW);
        let bootstrap = Bootstrap {
            functions: &self.functions,
            gil,
            code: self.code,
            landing: self.landing,
            interpreter_data: &self.interpreter_data,
            agent_reported: &|| self.staging.status().is_some(),
            give_up_at: self.deadline,
        };
        let outcome = run_bootstrap(&mut threads, tid, bootstrap, deadline, &mut let_others_run);
        let detached = threads.detach_all();
        let outcome = outcome?;
        detached?;
        Ok(outcome)
    }

    /// After a claim: frees what is no longer needed, disables the rest.
    fn tidy_up(&self, mut left: Leftovers, timeline: &mut Timeline) {
        if let Some(page) = left.queued.take() {
            if left.ran_directly || !left.running.is_empty() {
                // The queued call may not have run: it must find its
                // pages, disabled.
                left.queued = Some(page);
            } else {
                // Only the queued call can have claimed it: it ran.
                self.free_page(page, timeline);
            }
        }
        self.disable_leftovers(left, timeline);
    }

    /// Unmaps the pages of a pending call that has run. A failure here does
    /// not undo the attach: it is recorded in the timeline and the pages
    /// are disabled instead.
    fn free_page(&self, page: RunnerPage, timeline: &mut Timeline) {
        let started = Instant::now();
        let address = page.code_address();
        let disarm_on_failure = page.text_address();
        let result = self.unmap(page);
        let name = match &result {
            Ok(()) => "free the runner pages".to_owned(),
            Err(e) => {
                let _ = crate::armed_runner::disarm(&self.memory, disarm_on_failure);
                format!("free the runner pages at {address:#x}: failed ({e}); they stay mapped, disabled")
            }
        };
        push_step(timeline, name, started);
    }

    fn unmap(&self, page: RunnerPage) -> Result<(), AttachError> {
        let deadline = Instant::now() + CLEANUP_TIMEOUT;
        let (tid, mut threads) = self.stop_a_thread(deadline)?;
        self.same_program()?;
        let thread = HijackedThread::new(tid, self.landing)?;
        let unmapped = page.unmap(&thread, &mut threads, deadline, &mut let_others_run);
        let detached = threads.detach_all();
        unmapped?;
        detached
    }

    /// Disables runner pages that a call may still read.
    fn disable_leftovers(&self, left: Leftovers, timeline: &mut Timeline) {
        let running = left.running.into_iter().map(|(_, page)| page);
        for page in left.queued.into_iter().chain(running) {
            let started = Instant::now();
            let outcome = match page.disarm(&self.memory) {
                Ok(()) => "disabled".to_owned(),
                Err(e) => format!("could not be disabled ({e})"),
            };
            push_step(
                timeline,
                format!(
                    "leave the runner pages at {:#x} ({} bytes) mapped for a call that may still read them, {outcome}",
                    page.code_address(),
                    page.len()
                ),
                started,
            );
        }
    }

    fn timeout(&self, queued: bool, unsuitable: &[(u32, String)]) -> AttachError {
        let mut advice = "No thread ran Python code: none reached a bytecode boundary, and none waited in a system \
                          call with the GIL released (all threads may be busy in long-running C code, or hold the \
                          GIL while blocked)."
            .to_owned();
        for (tid, why) in unsuitable.iter().take(4) {
            advice.push_str(&format!(" Thread {tid} was not used: {why}."));
        }
        if queued {
            advice.push_str(
                " The pending call that was queued has been disabled: if it ever runs it does nothing.",
            );
        }
        advice.push_str(" Try again while the process is doing work, or with a longer timeout.");
        AttachError::Timeout {
            pid: self.pid(),
            method: Method::Ptrace,
            waited: self.started.elapsed(),
            advice,
        }
    }
}

/// What the ptrace method would do first with `target` now, and what it
/// saw of each thread: the same look at `/proc`, the same judgement of
/// each wait and the same decision as an attach makes (see
/// [`first_route`]). Read-only: nothing is stopped, traced or written
/// (the doctor's use). `looks` is one look at every thread of the target
/// ([`look_at_threads`](super::tasks::look_at_threads)).
///
/// # Errors
/// [`AttachError::MethodUnavailable`] when the interpreter lacks a
/// function the method calls.
pub(crate) fn plan_route(
    target: &Target,
    looks: Vec<ThreadLook>,
) -> Result<RoutePlan, AttachError> {
    let functions = Functions::resolve(target)?;
    let waits = interpreter_data(target);
    let threads = judge_threads(looks, |number, args| eligible_call(number, args, &waits));
    let main_thread_only = matches!(functions.queue, PendingCallQueue::MainThread { .. });
    Ok(RoutePlan {
        first: first_route(
            target.pid,
            &threads,
            main_thread_only,
            functions.gil_state.is_some(),
        ),
        threads,
        main_thread_only,
    })
}

/// Why the GIL-released route comes first, for the timeline: "every
/// thread is blocked in a system call; thread 12 waits in `accept4`".
fn describe_first_route(first: &FirstRoute, threads: &[RouteThread]) -> String {
    let why = match first {
        FirstRoute::GilReleasedMainParked => {
            "only the main thread runs pending calls on this version, and it is parked in a system call"
        }
        _ => "no thread runs Python: every thread is blocked in a system call",
    };
    let waiting: Vec<String> = threads
        .iter()
        .filter_map(|t| match &t.wait {
            Some(Ok(name)) => Some(format!("{} in `{name}`", t.look.tid)),
            _ => None,
        })
        .take(4)
        .collect();
    if waiting.is_empty() {
        why.to_owned()
    } else {
        format!(
            "{why}; waiting with the GIL released: {}",
            waiting.join(", ")
        )
    }
}

/// The 16 random bytes the kernel gave this program image at `execve`
/// (at `AT_RANDOM` in its auxiliary vector): a new image has new ones, even
/// where it maps everything at the same addresses (a non-PIE executable
/// that runs itself again, or no address randomization).
fn program_image(pid: u32) -> Option<[u8; 16]> {
    /// `AT_RANDOM`.
    const AT_RANDOM: u64 = 25;
    let auxv = std::fs::read(format!("/proc/{pid}/auxv")).ok()?;
    let address = auxv.chunks_exact(16).find_map(|pair| {
        let key = u64::from_ne_bytes(pair[..8].try_into().ok()?);
        (key == AT_RANDOM).then(|| u64::from_ne_bytes(pair[8..].try_into().unwrap_or([0; 8])))
    })?;
    let bytes = RemoteMemory::new(pid).read_vec(address, 16).ok()?;
    bytes.try_into().ok()
}

fn push_step(timeline: &mut Timeline, name: impl Into<String>, started: Instant) {
    timeline.steps.push(Step {
        name: name.into(),
        elapsed: started.elapsed(),
    });
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
