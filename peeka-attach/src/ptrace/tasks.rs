//! What `/proc` says about the threads of a process, read without
//! stopping them.

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

/// Reads what thread `tid` of `pid` is doing, without stopping it.
pub(crate) fn thread_activity(pid: u32, tid: u32) -> ThreadActivity {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")) else {
        return ThreadActivity::Other;
    };
    parse_activity(&text)
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

/// Whether a `SIGTRAP` is pending for thread `tid` alone (`SigPnd`).
pub(crate) fn sigtrap_pending(pid: u32, tid: u32) -> bool {
    task_status_text(pid, tid).is_some_and(|text| pending_has(&text, libc::SIGTRAP))
}

fn task_status_text(pid: u32, tid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()
}

/// Whether the `SigPnd` mask of a status text includes `signal`.
fn pending_has(status: &str, signal: i32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigPnd:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| signal > 0 && mask & (1 << (signal - 1)) != 0)
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
    fn picks_a_blocked_thread_and_never_a_missing_one() {
        let me = std::process::id();
        let tids = list_tasks(me).unwrap();
        let picked = pick_thread(me, &tids).unwrap();
        assert!(tids.contains(&picked));
        assert_eq!(pick_thread(me, &[u32::MAX - 1]), None);
    }

    #[test]
    fn reads_pending_signals() {
        let status = "Name:\tx\nSigQ:\t0/1\nSigPnd:\t0000000000000010\nShdPnd:\t0000000000000000\n";
        assert!(pending_has(status, libc::SIGTRAP));
        assert!(!pending_has(status, libc::SIGUSR1));
        assert!(!pending_has("SigPnd:\t0000000000000000\n", libc::SIGTRAP));
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
