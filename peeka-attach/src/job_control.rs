//! Processes stopped by job control: Peeka refuses to attach to them.
//!
//! A process stopped by `SIGSTOP`, `SIGTSTP` (Ctrl-Z), `SIGTTIN` or
//! `SIGTTOU` is in a *group stop*: every one of its threads shows state `T`
//! in `/proc/PID/task/TID/stat`. Every attach method needs a thread of the
//! target to run Python code (the bootstrap), and a stopped thread runs
//! nothing, so the only way through would be to resume the process. That
//! is not Peeka's decision to make: whoever stopped it (an operator, a
//! shell, a supervisor) expects it to stay exactly as it is, with no code
//! of its own or of ours running. So `refuse_if_stopped` runs before any
//! method touches the target and refuses with
//! [`AttachError::TargetStopped`], which names the fix (`SIGCONT`).
//!
//! State `t` ("tracing stop") is not a job-control stop: another tracer
//! holds the thread, which the permission check reports on its own.

use std::fs;
use std::io;

use crate::error::AttachError;
use crate::procfs::task_ids;

/// The state letter of `/proc/PID/task/TID/stat` for a job-control stop.
const STOPPED: char = 'T';

/// The state letter of one `stat` line: the first field after the command
/// name, which is in parentheses and may itself hold `)` and spaces.
fn state_of_stat(stat: &str) -> Option<char> {
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().next()?.chars().next()
}

/// The threads of process `pid` that are in a job-control stop (state
/// `T`), sorted. Threads that exit while they are read are left out.
///
/// # Errors
/// The error listing `/proc/PID/task` (`NotFound` when the process is gone).
pub fn stopped_threads(pid: u32) -> io::Result<Vec<u32>> {
    let mut stopped = Vec::new();
    for tid in task_ids(pid)? {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) else {
            continue; // the thread exited meanwhile
        };
        if state_of_stat(&stat) == Some(STOPPED) {
            stopped.push(tid);
        }
    }
    Ok(stopped)
}

/// Refuses to go on when process `pid` (any of its threads: a group stop
/// reaches them one by one) is stopped by job control. Reads `/proc` only.
///
/// # Errors
/// [`AttachError::TargetStopped`] when it is stopped;
/// [`AttachError::TargetExited`] when it is gone; [`AttachError::Io`] when
/// its threads cannot be listed.
pub(crate) fn refuse_if_stopped(pid: u32) -> Result<(), AttachError> {
    match stopped_threads(pid) {
        Ok(stopped) if stopped.is_empty() => Ok(()),
        Ok(stopped) => Err(AttachError::TargetStopped {
            pid,
            stopped_threads: stopped.len(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(AttachError::TargetExited { pid }),
        Err(source) => Err(AttachError::Io {
            path: format!("/proc/{pid}/task").into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_command_name_whatever_it_holds() {
        assert_eq!(state_of_stat("42 (python3) S 1 42 42 0"), Some('S'));
        assert_eq!(state_of_stat("42 (a) b) T 1 42"), Some('T'));
        assert_eq!(state_of_stat("42 (x y) t 1"), Some('t'));
        assert_eq!(state_of_stat("garbage"), None);
    }

    #[test]
    fn a_running_process_is_not_stopped() {
        let me = std::process::id();
        assert_eq!(stopped_threads(me).unwrap(), Vec::<u32>::new());
        assert!(refuse_if_stopped(me).is_ok());
    }

    #[test]
    fn a_sigstopped_process_is_refused_until_it_is_continued() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        let signal = |signal| {
            // SAFETY: kill(2) on our own child's pid.
            assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
        };
        let wait_for = |stopped: bool| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while stopped_threads(pid).unwrap().is_empty() == stopped {
                assert!(std::time::Instant::now() < deadline, "no change");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        signal(libc::SIGSTOP);
        wait_for(true);
        let refused = refuse_if_stopped(pid).unwrap_err();
        assert!(
            matches!(refused, AttachError::TargetStopped { pid: p, stopped_threads: 1 } if p == pid)
        );
        let message = refused.to_string();
        assert!(message.contains("SIGCONT"), "{message}");
        signal(libc::SIGCONT);
        wait_for(false);
        assert!(refuse_if_stopped(pid).is_ok());
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn a_missing_process_has_exited() {
        assert!(matches!(
            refuse_if_stopped(u32::MAX),
            Err(AttachError::TargetExited { pid: u32::MAX })
        ));
    }
}
