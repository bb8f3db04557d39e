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

/// The system call thread `tid` of `pid` is blocked in and its arguments,
/// per `/proc/PID/task/TID/syscall`; `None` when it is running or unknown.
pub(crate) fn blocked_in(pid: u32, tid: u32) -> Option<(u64, [u64; 6])> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    parse_blocked(&text)
}

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
