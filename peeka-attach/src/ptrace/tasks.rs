//! What `/proc` says about the threads of a process, read without
//! stopping them.
// Built on every architecture for the `pep768` method; the ptrace
// backend, which uses the rest, exists on x86-64 only.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::fs;
use std::io;

use crate::error::AttachError;
use crate::procfs::{task_ids, ProcStatus};

/// The thread ids of process `pid`.
///
/// # Errors
/// [`AttachError::TargetExited`] when the process is gone.
pub(crate) fn list_tasks(pid: u32) -> Result<Vec<u32>, AttachError> {
    task_ids(pid).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => AttachError::TargetExited { pid },
        _ => AttachError::Io {
            path: format!("/proc/{pid}/task").into(),
            source,
        },
    })
}

/// What `/proc/PID/task/TID/syscall` says a thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ThreadActivity {
    /// On a CPU (or runnable).
    Running,
    /// Blocked inside system call number `.0`.
    InSyscall(i64),
    /// Blocked outside a system call (e.g. stopped), or unknown.
    Other,
}

/// The system call and its arguments in the text of
/// `/proc/PID/task/TID/syscall`; `None` when the thread is running or its
/// state is unknown.
fn parse_blocked(text: &str) -> Option<(u64, [u64; 6])> {
    let mut fields = text.split_whitespace();
    let number = fields.next()?.parse::<u64>().ok()?;
    let mut args = [0u64; 6];
    for arg in &mut args {
        let field = fields.next()?;
        *arg = u64::from_str_radix(field.trim_start_matches("0x"), 16).ok()?;
    }
    Some((number, args))
}

/// Reads what thread `tid` of `pid` is doing, without stopping it.
pub(crate) fn thread_activity(pid: u32, tid: u32) -> ThreadActivity {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")) else {
        return ThreadActivity::Other;
    };
    parse_activity(&text)
}

/// One look at one thread, through `/proc/PID/task/TID/syscall` (read
/// once, so the activity and the arguments belong together). Reading it
/// never stops the thread: for a thread on a CPU the kernel just says
/// `running`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThreadLook {
    /// The thread.
    pub(crate) tid: u32,
    /// What it was doing.
    pub(crate) activity: ThreadActivity,
    /// The arguments of the system call it was blocked in (with
    /// [`ThreadActivity::InSyscall`]).
    pub(crate) args: Option<[u64; 6]>,
}

impl ThreadLook {
    /// The system call it was blocked in, with its arguments.
    pub(crate) fn blocked_in(&self) -> Option<(u64, [u64; 6])> {
        match self.activity {
            ThreadActivity::InSyscall(number) => Some((number as u64, self.args?)),
            _ => None,
        }
    }
}

/// Looks once at every live thread of `pid` (zombies, such as a main
/// thread that exited, are left out), in `/proc`'s order. Read-only.
///
/// # Errors
/// [`AttachError::TargetExited`] when the process is gone.
pub(crate) fn look_at_threads(pid: u32) -> Result<Vec<ThreadLook>, AttachError> {
    let mut looks = Vec::new();
    for tid in list_tasks(pid)? {
        if thread_is_gone_or_zombie(pid, tid) {
            continue;
        }
        let text =
            fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).unwrap_or_default();
        looks.push(ThreadLook {
            tid,
            activity: parse_activity(&text),
            args: parse_blocked(&text).map(|(_, args)| args),
        });
    }
    Ok(looks)
}

/// Whether every thread looked at was blocked in a system call: none was
/// on a CPU, so none was running Python (or anything else) at that
/// moment. A thread in an unknown state counts as not blocked; no thread
/// at all is not "every thread blocked".
pub(crate) fn every_thread_blocked(looks: &[ThreadLook]) -> bool {
    !looks.is_empty()
        && looks
            .iter()
            .all(|look| matches!(look.activity, ThreadActivity::InSyscall(_)))
}

fn parse_activity(text: &str) -> ThreadActivity {
    match text.split_whitespace().next() {
        Some("running") => ThreadActivity::Running,
        Some(first) => match first.parse::<i64>() {
            Ok(number) if number >= 0 => ThreadActivity::InSyscall(number),
            _ => ThreadActivity::Other,
        },
        None => ThreadActivity::Other,
    }
}

/// A thread as the ptrace method's choice of route sees it: one look at it,
/// and for a thread blocked in a system call whether that call is a wait
/// the GIL-released route may use (`Ok` with its name) or why not (the
/// `gil_released` module's judgement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteThread {
    /// The look.
    pub(crate) look: ThreadLook,
    /// For a blocked thread: whether its wait qualifies.
    pub(crate) wait: Option<Result<&'static str, String>>,
}

impl RouteThread {
    /// Whether the thread waits where the GIL-released route may run the
    /// bootstrap on it.
    pub(crate) fn qualifies(&self) -> bool {
        matches!(self.wait, Some(Ok(_)))
    }
}

/// Looks once at every live thread of `pid` (see [`look_at_threads`]) and
/// judges each blocked one's wait with `judge` (system call number and
/// arguments). Read-only.
///
/// # Errors
/// [`AttachError::TargetExited`] when the process is gone.
pub(crate) fn route_threads(
    pid: u32,
    judge: impl Fn(u64, [u64; 6]) -> Result<&'static str, String>,
) -> Result<Vec<RouteThread>, AttachError> {
    Ok(judge_threads(look_at_threads(pid)?, judge))
}

/// Judges each blocked thread of `looks` with `judge` (see
/// [`route_threads`]).
pub(crate) fn judge_threads(
    looks: Vec<ThreadLook>,
    judge: impl Fn(u64, [u64; 6]) -> Result<&'static str, String>,
) -> Vec<RouteThread> {
    looks
        .into_iter()
        .map(|look| RouteThread {
            wait: look.blocked_in().map(|(number, args)| judge(number, args)),
            look,
        })
        .collect()
}

/// The route the ptrace method starts with (see `session`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FirstRoute {
    /// Queue a pending call and give it the grace period first: these
    /// threads were on a CPU (or in a state `/proc` did not tell), and
    /// one that runs Python takes the call at its next safe point (before
    /// 3.12 only the main thread does).
    PendingCall {
        /// The threads seen running.
        running: Vec<u32>,
    },
    /// Queue a pending call and wait for it: no thread was running, and
    /// none waits where the GIL-released route may be used, so the call
    /// waits for the first thread that runs Python again (the GIL-released
    /// route is tried too, for a thread that starts waiting somewhere it
    /// qualifies).
    PendingCallForLater,
    /// Only the pending call: the interpreter lacks the `PyGILState_*`
    /// functions of the GIL-released route.
    PendingCallOnly,
    /// The GIL-released route at once: before 3.12 only the main thread
    /// runs pending calls, and it is parked in a system call.
    GilReleasedMainParked,
    /// The GIL-released route at once: every thread was blocked in a
    /// system call, so none would take a pending call soon (one is
    /// queued only if the route has not worked by the end of the grace
    /// period).
    GilReleasedAllBlocked,
}

impl FirstRoute {
    /// Whether the attach queues a pending call before anything else.
    pub(crate) fn queues_first(&self) -> bool {
        matches!(
            self,
            Self::PendingCall { .. } | Self::PendingCallForLater | Self::PendingCallOnly
        )
    }
}

/// Decides the route the ptrace method starts with, from one look at the
/// threads of process `pid`. `main_thread_only`: only the main thread runs
/// pending calls (before 3.12); `gil_released`: the interpreter has the
/// functions of the GIL-released route. Pure: the attach and the doctor
/// decide with it.
pub(crate) fn first_route(
    pid: u32,
    threads: &[RouteThread],
    main_thread_only: bool,
    gil_released: bool,
) -> FirstRoute {
    let looks: Vec<ThreadLook> = threads.iter().map(|t| t.look.clone()).collect();
    if !gil_released {
        return FirstRoute::PendingCallOnly;
    }
    let main_parked = main_thread_only
        && looks
            .iter()
            .any(|look| look.tid == pid && matches!(look.activity, ThreadActivity::InSyscall(_)));
    if main_parked {
        return FirstRoute::GilReleasedMainParked;
    }
    if every_thread_blocked(&looks) {
        return if threads.iter().any(RouteThread::qualifies) {
            FirstRoute::GilReleasedAllBlocked
        } else {
            FirstRoute::PendingCallForLater
        };
    }
    FirstRoute::PendingCall {
        running: looks
            .iter()
            .filter(|look| !matches!(look.activity, ThreadActivity::InSyscall(_)))
            .map(|look| look.tid)
            .collect(),
    }
}

/// What the ptrace method would do first with a process, and what it saw
/// of each thread (made by `session::plan_route`, for the doctor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RoutePlan {
    /// The route it would start with.
    pub(crate) first: FirstRoute,
    /// Every live thread, judged.
    pub(crate) threads: Vec<RouteThread>,
    /// Whether only the main thread runs pending calls (before 3.12).
    pub(crate) main_thread_only: bool,
}

/// Whether `tid` is traced by this process (automatically attached after a
/// clone we have not processed yet).
pub(crate) fn traced_by_us(pid: u32, tid: u32) -> bool {
    let Ok(status) = task_status(pid, tid) else {
        return false;
    };
    // TracerPid names the tracing thread; compare with our threads.
    let tracer = status.tracer_pid;
    tracer != 0 && fs::metadata(format!("/proc/self/task/{tracer}")).is_ok()
}

fn task_status(pid: u32, tid: u32) -> io::Result<ProcStatus> {
    Ok(ProcStatus::parse(&fs::read_to_string(format!(
        "/proc/{pid}/task/{tid}/status"
    ))?))
}

pub(crate) fn thread_is_gone_or_zombie(pid: u32, tid: u32) -> bool {
    match task_status(pid, tid) {
        Ok(status) => status.is_zombie(),
        Err(_) => true,
    }
}

/// The thread to run the queueing calls on: one blocked in a system call
/// (which cannot be inside the pending-call lock's short critical
/// sections), the main thread first; else the main thread, else any.
/// Zombie threads (an exited main thread) are never picked.
pub(crate) fn pick_thread(pid: u32, tids: &[u32]) -> Option<u32> {
    let live: Vec<u32> = tids
        .iter()
        .copied()
        .filter(|&tid| !thread_is_gone_or_zombie(pid, tid))
        .collect();
    let blocked = |tid: u32| matches!(thread_activity(pid, tid), ThreadActivity::InSyscall(_));
    if live.contains(&pid) && blocked(pid) {
        return Some(pid);
    }
    live.iter()
        .copied()
        .find(|&tid| blocked(tid))
        .or_else(|| live.contains(&pid).then_some(pid))
        .or_else(|| live.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_syscall() {
        assert_eq!(parse_activity("running\n"), ThreadActivity::Running);
        assert_eq!(
            parse_activity("230 0x1 0x0 0x7ffd 0x0 0x0 0x0 0x7ffc 0x7f12\n"),
            ThreadActivity::InSyscall(230)
        );
        assert_eq!(parse_activity("-1 0x7ffd 0x7f12\n"), ThreadActivity::Other);
        assert_eq!(parse_activity(""), ThreadActivity::Other);
    }

    #[test]
    fn parses_the_blocked_system_call_and_its_arguments() {
        assert_eq!(
            parse_blocked("202 0x7f00 0x89 0x0 0x0 0x0 0xffffffff 0x7ffc 0x7f12\n"),
            Some((202, [0x7f00, 0x89, 0, 0, 0, 0xffff_ffff]))
        );
        assert_eq!(parse_blocked("running\n"), None);
        assert_eq!(parse_blocked("-1 0x7ffd 0x7f12\n"), None);
    }

    #[test]
    fn picks_a_blocked_thread_and_never_a_missing_one() {
        let me = std::process::id();
        let tids = list_tasks(me).unwrap();
        let picked = pick_thread(me, &tids).unwrap();
        assert!(tids.contains(&picked));
        assert_eq!(pick_thread(me, &[u32::MAX - 1]), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn looks_at_every_thread_without_stopping_it() {
        let me = std::process::id();
        let looks = look_at_threads(me).unwrap();
        assert!(looks.iter().any(|l| l.tid == me));
        // A thread that reads its own file is seen inside that `read`.
        // SAFETY: gettid takes no argument and cannot fail.
        let own_tid = unsafe { libc::gettid() } as u32;
        let mine = looks.iter().find(|l| l.tid == own_tid).unwrap();
        assert_eq!(mine.activity, ThreadActivity::InSyscall(libc::SYS_read));
        assert!(mine.blocked_in().is_some());
        let blocked = ThreadLook {
            tid: 1,
            activity: ThreadActivity::InSyscall(202),
            args: Some([0x10, 0x89, 0, 0, 0, 0]),
        };
        assert_eq!(blocked.blocked_in(), Some((202, [0x10, 0x89, 0, 0, 0, 0])));
        assert!(every_thread_blocked(std::slice::from_ref(&blocked)));
        assert!(!every_thread_blocked(&[]));
        let unknown = ThreadLook {
            tid: 2,
            activity: ThreadActivity::Other,
            args: None,
        };
        assert!(!every_thread_blocked(&[blocked, unknown]));
    }

    fn thread(
        tid: u32,
        activity: ThreadActivity,
        wait: Option<Result<&'static str, String>>,
    ) -> RouteThread {
        RouteThread {
            look: ThreadLook {
                tid,
                activity,
                args: wait.as_ref().map(|_| [0; 6]),
            },
            wait,
        }
    }

    #[test]
    fn the_first_route_follows_what_the_threads_do() {
        let select = |tid| thread(tid, ThreadActivity::InSyscall(23), Some(Ok("select")));
        let semaphore = |tid| {
            thread(
                tid,
                ThreadActivity::InSyscall(202),
                Some(Err("it waits on a semaphore".into())),
            )
        };
        let running = |tid| thread(tid, ThreadActivity::Running, None);
        // Something runs: the pending call first, as always.
        assert_eq!(
            first_route(10, &[select(10), running(11)], false, true),
            FirstRoute::PendingCall { running: vec![11] }
        );
        // Nothing runs and a thread waits with the GIL released: at once.
        assert_eq!(
            first_route(10, &[select(10), semaphore(11)], false, true),
            FirstRoute::GilReleasedAllBlocked
        );
        // Nothing runs, nothing qualifies: the pending call, for later.
        assert_eq!(
            first_route(10, &[semaphore(10), semaphore(11)], false, true),
            FirstRoute::PendingCallForLater
        );
        // Before 3.12 a parked main thread decides, whatever else runs.
        assert_eq!(
            first_route(10, &[select(10), running(11)], true, true),
            FirstRoute::GilReleasedMainParked
        );
        assert_eq!(
            first_route(10, &[running(10), select(11)], true, true),
            FirstRoute::PendingCall { running: vec![10] }
        );
        // Without PyGILState_*, only the pending call.
        assert_eq!(
            first_route(10, &[select(10)], true, false),
            FirstRoute::PendingCallOnly
        );
        assert!(FirstRoute::PendingCallForLater.queues_first());
        assert!(!FirstRoute::GilReleasedAllBlocked.queues_first());
    }

    #[test]
    fn lists_own_threads() {
        let me = std::process::id();
        let tids = list_tasks(me).unwrap();
        assert!(tids.contains(&me));
        assert!(matches!(
            list_tasks(u32::MAX - 1),
            Err(AttachError::TargetExited { .. })
        ));
    }
}
