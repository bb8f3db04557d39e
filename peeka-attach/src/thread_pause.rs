//! Stopping every thread of a process for a moment, with ptrace.
//!
//! [`ThreadPause::all`] seizes each task (`PTRACE_SEIZE`, which unlike
//! `PTRACE_ATTACH` sends no `SIGSTOP` the target could observe) and
//! interrupts it (`PTRACE_INTERRUPT`), scanning `/proc/PID/task` again until
//! no new thread appears. Signals that arrive while a thread is held are
//! remembered and handed back when it is released, so the target loses none.
//! Dropping the guard releases every thread, whatever happened meanwhile.
//!
//! # Why not the ptrace backend's thread tracker
//!
//! The ptrace backend's `TracedThreads` (`ptrace/threads.rs`) also seizes
//! and interrupts every thread, and handles more: threads cloned and
//! processes forked while traced (`PTRACE_O_TRACECLONE`/`TRACEFORK`), an
//! `execve`, breakpoints, signals re-delivered with their `siginfo`. The
//! PEP 768 method does not go through it, on purpose:
//!
//! - It must work on every Linux architecture: it only writes memory. The
//!   tracker is built with the ptrace backend, which exists only for
//!   x86-64 and aarch64 (it reads and writes registers to recognise its
//!   breakpoints), so using it here would take the `pep768` method away
//!   from every other architecture.
//! - Its needs are smaller: threads are held for a few memory writes and
//!   never run while traced, so there are no clones, forks or breakpoints
//!   to follow. Seizing without trace options keeps it that way: a thread
//!   that clones between its seize and its stop is not stopped by an event
//!   this guard would have to understand.
//! - Signals: the tracker passes a signal that arrives before a thread's
//!   stop straight through and keeps waiting; this guard holds it (with
//!   its number only) and hands it back on release. Either way the target
//!   gets it once.
//!
//! Both read the thread list with `procfs::task_ids`.

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use crate::error::AttachError;
use crate::procfs::task_ids;

/// Every thread of one process, stopped.
#[derive(Debug)]
pub struct ThreadPause {
    pid: u32,
    /// Seized threads and the signal each must get back on release (0: none).
    held: BTreeMap<u32, i32>,
}

/// What `waitpid` reported for a seized thread.
enum Stopped {
    /// A ptrace event stop (our interrupt): nothing to hand back.
    Interrupted,
    /// A signal-delivery stop: the signal must be re-delivered.
    Signal(i32),
    /// The thread exited.
    Gone,
}

impl ThreadPause {
    /// Stops every thread of `pid`, giving up at `deadline`.
    ///
    /// # Errors
    /// [`AttachError::Ptrace`] (EPERM: no permission; the error names the
    /// fix), [`AttachError::TargetExited`], or a timeout.
    pub fn all(pid: u32, deadline: Instant) -> Result<Self, AttachError> {
        let mut pause = Self {
            pid,
            held: BTreeMap::new(),
        };
        loop {
            let tids = task_ids(pid).map_err(|_| AttachError::TargetExited { pid })?;
            let new: Vec<u32> = tids
                .into_iter()
                .filter(|t| !pause.held.contains_key(t))
                .collect();
            if new.is_empty() {
                break;
            }
            for tid in new {
                pause.seize(tid, deadline)?;
            }
        }
        if pause.held.is_empty() {
            return Err(AttachError::TargetExited { pid });
        }
        Ok(pause)
    }

    /// The threads held.
    pub fn threads(&self) -> impl Iterator<Item = u32> + '_ {
        self.held.keys().copied()
    }

    /// Releases every thread, handing back the signals that arrived.
    ///
    /// # Errors
    /// The first failure to detach a thread that still exists (all others
    /// are released regardless).
    pub fn resume(mut self) -> Result<(), AttachError> {
        self.release_all()
    }

    fn seize(&mut self, tid: u32, deadline: Instant) -> Result<(), AttachError> {
        let pid = tid as libc::pid_t;
        // SAFETY: plain ptrace requests on a thread id; no memory is passed.
        if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) } == -1 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(()), // exited meanwhile
                _ => Err(AttachError::Ptrace {
                    op: "seize",
                    tid,
                    source: err,
                }),
            };
        }
        self.held.insert(tid, 0);
        // SAFETY: as above.
        if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0) } == -1 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ESRCH) {
                self.held.remove(&tid);
                return Ok(());
            }
            return Err(AttachError::Ptrace {
                op: "interrupt",
                tid,
                source: err,
            });
        }
        match wait_stopped(tid, deadline) {
            Ok(Stopped::Interrupted) => Ok(()),
            Ok(Stopped::Signal(signal)) => {
                self.held.insert(tid, signal);
                Ok(())
            }
            Ok(Stopped::Gone) => {
                self.held.remove(&tid);
                Ok(())
            }
            Err(source) => Err(AttachError::Ptrace {
                op: "wait for stop",
                tid,
                source,
            }),
        }
    }

    fn release_all(&mut self) -> Result<(), AttachError> {
        let mut first_error = None;
        for (tid, signal) in std::mem::take(&mut self.held) {
            // SAFETY: detaching a thread we seized; `signal` is a signal
            // number the kernel reported for it, or 0.
            let rc = unsafe {
                libc::ptrace(
                    libc::PTRACE_DETACH,
                    tid as libc::pid_t,
                    0,
                    signal as libc::c_long,
                )
            };
            if rc == -1 {
                let err = io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::ESRCH) && first_error.is_none() {
                    first_error = Some(AttachError::Ptrace {
                        op: "detach",
                        tid,
                        source: err,
                    });
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The process whose threads are held.
    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for ThreadPause {
    fn drop(&mut self) {
        let _ = self.release_all();
    }
}

/// Waits until a seized, interrupted thread reports a stop.
fn wait_stopped(tid: u32, deadline: Instant) -> io::Result<Stopped> {
    let mut pause = Duration::from_micros(20);
    loop {
        let mut status = 0;
        // SAFETY: waiting on a thread we trace; `status` is a valid out-pointer.
        let rc = unsafe {
            libc::waitpid(
                tid as libc::pid_t,
                &mut status,
                libc::__WALL | libc::WNOHANG,
            )
        };
        if rc == -1 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ECHILD) => Ok(Stopped::Gone),
                Some(libc::EINTR) => continue,
                _ => Err(err),
            };
        }
        if rc > 0 {
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                return Ok(Stopped::Gone);
            }
            if libc::WIFSTOPPED(status) {
                let event = (status >> 16) & 0xFF;
                let signal = libc::WSTOPSIG(status);
                // PTRACE_EVENT_STOP covers interrupt-stops and group-stops.
                return Ok(if event == libc::PTRACE_EVENT_STOP {
                    Stopped::Interrupted
                } else {
                    Stopped::Signal(signal)
                });
            }
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the thread did not stop in time",
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}
