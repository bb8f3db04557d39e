//! A server master that forks its workers (a gunicorn arbiter), started as
//! a [`TargetProcess`], and everything it forks cleaned up at the end.

use std::time::{Duration, Instant};

use crate::procfs::{children, stat_field};
use crate::TargetProcess;

/// How long the master has to stop (and reap its workers) after SIGTERM.
const MASTER_STOP_LIMIT: Duration = Duration::from_secs(15);
/// How long an orphaned worker has to be handed to this process.
const ORPHAN_LIMIT: Duration = Duration::from_secs(10);

/// A server master (a [`TargetProcess`]) and the workers seen of it.
///
/// [`new`](Self::new) makes this process a child subreaper
/// (`PR_SET_CHILD_SUBREAPER`, for the rest of its life): a worker whose
/// master dies is handed to it rather than to init. On drop: SIGTERM to the
/// master, which stops and reaps its workers within its graceful timeout;
/// if it is still alive after 15 s, SIGKILL to every worker seen that is
/// still running; then the master is killed if need be and reaped (as a
/// [`TargetProcess`] is), and any worker left an orphan is killed and
/// reaped here.
///
/// A worker is known by its pid and start time (field 19 of
/// `/proc/PID/stat`), so that a later process that reuses its pid is never
/// signalled.
#[derive(Debug)]
pub struct ForkingServer {
    /// `Some` until dropped.
    master: Option<TargetProcess>,
    /// (pid, start time) of every worker seen.
    workers: Vec<(u32, String)>,
}

/// Sends `signal` to `pid`.
fn send(pid: u32, signal: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes no pointer; callers pass the master, or a worker
    // checked to be the one seen (same pid and start time).
    unsafe {
        libc::kill(pid, signal);
    }
}

impl ForkingServer {
    /// Takes charge of `master`, a server master just started, making this
    /// process a child subreaper.
    pub fn new(master: TargetProcess) -> Self {
        // SAFETY: prctl(2) with integer arguments, on this process.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
        Self {
            master: Some(master),
            workers: Vec::new(),
        }
    }

    /// The master.
    pub fn master(&self) -> &TargetProcess {
        self.master
            .as_ref()
            .expect("the master is there until drop")
    }

    /// The master, to read its output or ask whether it is alive.
    pub fn master_mut(&mut self) -> &mut TargetProcess {
        self.master
            .as_mut()
            .expect("the master is there until drop")
    }

    /// Remembers `pid` as a worker of the master, to be cleaned up at the
    /// end (nothing if it is already gone).
    pub fn remember_worker(&mut self, pid: u32) {
        if let Some(start) = stat_field(pid, 19) {
            if !self.workers.iter().any(|(p, _)| *p == pid) {
                self.workers.push((pid, start));
            }
        }
    }

    /// The master's children now, in increasing pid order, each remembered
    /// as a worker.
    pub fn workers_now(&mut self) -> Vec<u32> {
        let now = children(self.master().pid());
        for &pid in &now {
            self.remember_worker(pid);
        }
        now
    }

    /// How many workers were seen in all (those remembered).
    pub fn workers_seen(&self) -> usize {
        self.workers.len()
    }

    /// Whether `pid` is still the worker that was remembered under that pid.
    pub fn is_our_worker(&self, pid: u32) -> bool {
        self.workers
            .iter()
            .any(|(p, start)| *p == pid && stat_field(pid, 19).as_ref() == Some(start))
    }
}

impl Drop for ForkingServer {
    fn drop(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        for pid in children(master.pid()) {
            self.remember_worker(pid);
        }
        send(master.pid(), libc::SIGTERM);
        let deadline = Instant::now() + MASTER_STOP_LIMIT;
        while master.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if master.is_alive() {
            for (pid, _) in self.workers.clone() {
                if self.is_our_worker(pid) {
                    send(pid, libc::SIGKILL);
                }
            }
        }
        // SIGKILL if still alive, then reaped; its files removed.
        drop(master);
        // Workers the master did not reap were handed to this process.
        let me = std::process::id().to_string();
        for (pid, _) in self.workers.clone() {
            let deadline = Instant::now() + ORPHAN_LIMIT;
            while self.is_our_worker(pid) && Instant::now() < deadline {
                if stat_field(pid, 1).as_deref() == Some(me.as_str()) {
                    send(pid, libc::SIGKILL);
                    let mut status = 0;
                    // SAFETY: waitpid(2) on our own child (checked above),
                    // into a local.
                    unsafe {
                        libc::waitpid(pid as libc::pid_t, &mut status, 0);
                    }
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
