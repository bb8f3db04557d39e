//! Tracing the threads of a process: seize and stop them, watch them while
//! they run, and give them back exactly as they were.
//!
//! [`TracedThreads`] is an RAII guard. It seizes threads with
//! `PTRACE_SEIZE` (which does not stop them and sends no signal) and stops
//! them with `PTRACE_INTERRUPT`. For the whole process it re-reads
//! `/proc/PID/task` after every round of stops until a round finds no new
//! thread; threads created while traced are traced automatically
//! (`PTRACE_O_TRACECLONE`). Dropping the guard reverts the code patches it
//! knows of, stops the threads still running, and detaches every thread.
//!
//! Signals:
//! - while a thread is being stopped, a signal that arrives first is passed
//!   straight through, so the target handles it as if we were not there;
//! - while a thread runs a trampoline for us (followed through system-call
//!   stops, see `trampoline`), signals are delivered as they come: the
//!   trampoline is a consistent context for a handler, and a signal held
//!   back by us would be lost if we were killed;
//! - while threads run on their own under our trace, every signal is passed
//!   through as soon as it is reported.
//!
//! Forked children inherit the target's memory, including the trampoline
//! bytes we wrote into padding: the guard traces them just long enough to
//! write the original bytes back into their copy, then detaches them. An `execve` replaces the program, so the
//! guard stops touching memory, detaches, and reports the target as gone
//! ([`AttachError::TargetExited`]: the Python it was asked about is).
//!
//! All waiting uses `waitpid` on specific thread ids, never `-1`, so other
//! children of our process are left alone.
//!
//! The `pep768` method holds threads with a smaller guard of its own,
//! [`crate::thread_pause::ThreadPause`]; its module documentation says why.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use super::registers::GeneralRegs;
use super::requests::{self, RawSiginfo, WaitStatus};
use super::tasks::{thread_is_gone_or_zombie, traced_by_us};
use crate::error::AttachError;
use crate::memory::RemoteMemory;
use crate::method::Method;

/// How long the guard's destructor waits for running threads to stop
/// before it gives up on detaching them (they are detached by the kernel
/// when the tracing thread exits).
const DETACH_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for a forked child's first stop.
const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Something a traced thread did that its user must decide about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The thread is in a signal-delivery stop. Unless the user calls
    /// [`TracedThreads::suppress_signal`], the signal is delivered when the
    /// thread is resumed, released or detached.
    Signal {
        /// The thread.
        tid: u32,
        /// The signal.
        signal: i32,
        /// Its information.
        info: RawSiginfo,
    },
    /// The thread, resumed with [`TracedThreads::resume_tracing_syscalls`],
    /// stopped at a system call's entry or exit.
    Syscall {
        /// The thread.
        tid: u32,
    },
    /// The thread exited (or was killed) and is no longer traced.
    Exited {
        /// The thread.
        tid: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Seized (or attached automatically) and asked to stop; no stop seen yet.
    Stopping,
    /// Running under our trace.
    Running,
    /// In a ptrace stop.
    Stopped,
}

/// A signal held back, to be delivered later.
#[derive(Debug, Clone, Copy)]
struct HeldSignal {
    signal: i32,
    info: Option<RawSiginfo>,
}

#[derive(Debug)]
struct Tracee {
    state: State,
    /// Whether events that need no decision should let the thread run on
    /// (true) or leave it stopped (false).
    keep_running: bool,
    /// In a signal-delivery stop, where a signal can be injected on restart.
    in_signal_stop: bool,
    /// The signal of the current signal-delivery stop, delivered on restart
    /// unless suppressed or held back.
    current: Option<HeldSignal>,
    /// Signals held back, to be delivered on release.
    held: Vec<HeldSignal>,
    /// Resumed with `PTRACE_SYSCALL`: its system-call stops are reported.
    syscall_tracing: bool,
}

impl Tracee {
    fn new(keep_running: bool) -> Self {
        Self {
            state: State::Stopping,
            keep_running,
            in_signal_stop: false,
            current: None,
            held: Vec::new(),
            syscall_tracing: false,
        }
    }
}

/// Bytes of the target's code we replaced, with the originals.
#[derive(Debug, Default)]
struct CodePatches {
    applied: BTreeMap<u64, Vec<u8>>,
}

/// A set of traced threads of one process (see the module documentation).
#[derive(Debug)]
pub(crate) struct TracedThreads {
    pid: u32,
    tracees: BTreeMap<u32, Tracee>,
    patches: CodePatches,
    exec_seen: bool,
    memory: RemoteMemory,
}

impl TracedThreads {
    fn new(pid: u32) -> Result<Self, AttachError> {
        // Opened before any thread stops: an `execve` from then on cannot
        // redirect our writes into the new program.
        let memory = RemoteMemory::pinned(pid).map_err(|source| match source.kind() {
            // Gone, or between two program images.
            std::io::ErrorKind::NotFound => AttachError::TargetExited { pid },
            _ if source.raw_os_error() == Some(libc::ESRCH) => AttachError::TargetExited { pid },
            _ => AttachError::Io {
                path: format!("/proc/{pid}/mem").into(),
                source,
            },
        })?;
        Ok(Self {
            pid,
            tracees: BTreeMap::new(),
            patches: CodePatches::default(),
            exec_seen: false,
            memory,
        })
    }

    /// Seizes and stops every thread of process `pid`.
    ///
    /// # Errors
    /// [`AttachError::PermissionDenied`] when tracing is refused,
    /// [`AttachError::TargetExited`], or [`AttachError::Timeout`] when a
    /// thread does not stop before `deadline` (e.g. in uninterruptible
    /// sleep). Threads already seized are detached.
    #[cfg(test)]
    pub(crate) fn stop_all(pid: u32, deadline: Instant) -> Result<Self, AttachError> {
        let mut set = Self::new(pid)?;
        loop {
            let mut seized_any = false;
            for tid in super::tasks::list_tasks(pid)? {
                if !set.tracees.contains_key(&tid) && set.seize(tid)? {
                    seized_any = true;
                }
            }
            if set.tracees.is_empty() {
                return Err(AttachError::TargetExited { pid });
            }
            set.wait_until_stopped(deadline)?;
            if !seized_any {
                return Ok(set);
            }
        }
    }

    /// Seizes and stops one thread of process `pid`, leaving the others
    /// running untraced.
    ///
    /// # Errors
    /// As [`stop_all`](Self::stop_all).
    pub(crate) fn stop_one(pid: u32, tid: u32, deadline: Instant) -> Result<Self, AttachError> {
        let mut set = Self::new(pid)?;
        if !set.seize(tid)? {
            return Err(AttachError::TargetExited { pid });
        }
        set.wait_until_stopped(deadline)?;
        if set.tracees.is_empty() {
            return Err(AttachError::TargetExited { pid });
        }
        Ok(set)
    }

    /// The process.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The traced threads.
    pub(crate) fn tids(&self) -> Vec<u32> {
        self.tracees.keys().copied().collect()
    }

    /// Whether `tid` is traced and stopped.
    pub(crate) fn is_stopped(&self, tid: u32) -> bool {
        self.tracees
            .get(&tid)
            .is_some_and(|t| t.state == State::Stopped)
    }

    /// The target's memory.
    pub(crate) fn memory(&self) -> &RemoteMemory {
        &self.memory
    }

    /// Seizes `tid` and asks it to stop. `Ok(false)` when it no longer exists.
    fn seize(&mut self, tid: u32) -> Result<bool, AttachError> {
        match requests::seize(tid) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(false),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                if traced_by_us(self.pid, tid) {
                    // A thread created (and traced automatically) after our
                    // last look; its first stop is on its way.
                    self.tracees.insert(tid, Tracee::new(false));
                    return Ok(true);
                }
                if thread_is_gone_or_zombie(self.pid, tid) {
                    return Ok(false);
                }
                // A thread being torn down (its process is exiting, or
                // another thread runs `execve`) refuses too, for a moment.
                std::thread::sleep(Duration::from_millis(10));
                match requests::seize(tid) {
                    Ok(()) => {
                        self.tracees.insert(tid, Tracee::new(false));
                        let _ = requests::interrupt(tid);
                        return Ok(true);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(false),
                    Err(_) if thread_is_gone_or_zombie(self.pid, tid) => return Ok(false),
                    Err(_) => {}
                }
                return Err(AttachError::PermissionDenied {
                    pid: self.pid,
                    why: format!(
                        "the kernel refused PTRACE_SEIZE of thread {tid} ({e}); run as the target's user or as root, \
                         check kernel.yama.ptrace_scope, and in a container add --cap-add=SYS_PTRACE"
                    ),
                });
            }
            Err(source) => {
                return Err(AttachError::Ptrace {
                    op: "seize",
                    tid,
                    source,
                })
            }
        }
        self.tracees.insert(tid, Tracee::new(false));
        match requests::interrupt(tid) {
            Ok(()) => Ok(true),
            // Exiting: its exit is reported to us.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(true),
            Err(source) => Err(AttachError::Ptrace {
                op: "interrupt",
                tid,
                source,
            }),
        }
    }

    /// Waits until every traced thread is stopped, passing signals through.
    fn wait_until_stopped(&mut self, deadline: Instant) -> Result<(), AttachError> {
        let started = Instant::now();
        while let Some((&tid, _)) = self.tracees.iter().find(|(_, t)| t.state != State::Stopped) {
            let event = self.next_event(deadline)?;
            if event.is_none() && Instant::now() < deadline {
                continue;
            }
            match event {
                Some(Event::Signal { tid, .. } | Event::Syscall { tid }) => {
                    // Only a thread we let run reports signals; it must stop now.
                    if let Some(tracee) = self.tracees.get_mut(&tid) {
                        tracee.keep_running = false;
                    }
                }
                Some(Event::Exited { .. }) => {}
                None => {
                    return Err(AttachError::Timeout {
                        pid: self.pid,
                        method: Method::Ptrace,
                        waited: started.elapsed(),
                        advice: format!(
                            "Thread {tid} did not stop for the tracer in time; it may be in uninterruptible sleep \
                             (state D in /proc/{}/task/{tid}/stat). Try again, or give it a longer --timeout.",
                            self.pid
                        ),
                    })
                }
            }
        }
        Ok(())
    }

    /// Reports the next event that needs a decision, handling the others
    /// (clones, forks, interrupt and group stops, passed-through signals).
    /// `Ok(None)` when `deadline` passes first, or when every thread is
    /// stopped (none can report anything).
    ///
    /// # Errors
    /// [`AttachError::TargetExited`] when the target ran `execve`, or a
    /// failed ptrace request.
    pub(crate) fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>, AttachError> {
        let mut pause = Duration::from_micros(10);
        loop {
            let mut progressed = false;
            let waiting: Vec<u32> = self
                .tracees
                .iter()
                .filter(|(_, t)| t.state != State::Stopped)
                .map(|(&tid, _)| tid)
                .collect();
            if waiting.is_empty() {
                return Ok(None);
            }
            for tid in waiting {
                let status = match requests::poll_status(tid) {
                    Ok(Some(status)) => status,
                    Ok(None) => continue,
                    // Not ours any more: gone before we could see it exit,
                    // or it ran `execve` and now has the process's id.
                    Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                        self.adopt_exec_leader(tid)?;
                        WaitStatus::Exited(0)
                    }
                    Err(source) => {
                        return Err(AttachError::Ptrace {
                            op: "waitpid",
                            tid,
                            source,
                        })
                    }
                };
                progressed = true;
                if let Some(event) = self.process(tid, status)? {
                    return Ok(Some(event));
                }
            }
            if progressed {
                pause = Duration::from_micros(10);
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    fn process(&mut self, tid: u32, status: WaitStatus) -> Result<Option<Event>, AttachError> {
        let ptrace_error = |op, source| AttachError::Ptrace { op, tid, source };
        let Some(tracee) = self.tracees.get_mut(&tid) else {
            return Ok(None);
        };
        match status {
            WaitStatus::Exited(_) | WaitStatus::Killed(_) => {
                self.tracees.remove(&tid);
                Ok(Some(Event::Exited { tid }))
            }
            WaitStatus::SignalStop(signal) => {
                let info = requests::siginfo(tid).map_err(|e| ptrace_error("getsiginfo", e))?;
                if tracee.state == State::Stopping && !tracee.keep_running {
                    // We only asked it to stop: let the signal through now
                    // and ask again (any stop, this one included, ends a
                    // pending interrupt).
                    requests::cont(tid, signal).map_err(|e| ptrace_error("cont", e))?;
                    match requests::interrupt(tid) {
                        Ok(()) => {}
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => return Err(ptrace_error("interrupt", e)),
                    }
                    return Ok(None);
                }
                tracee.state = State::Stopped;
                tracee.in_signal_stop = true;
                tracee.current = Some(HeldSignal {
                    signal,
                    info: Some(info),
                });
                Ok(Some(Event::Signal { tid, signal, info }))
            }
            WaitStatus::SyscallStop => {
                tracee.state = State::Stopped;
                tracee.in_signal_stop = false;
                tracee.current = None;
                Ok(Some(Event::Syscall { tid }))
            }
            WaitStatus::EventStop { event, .. } => {
                let keep_running = tracee.keep_running;
                let syscall_tracing = tracee.syscall_tracing;
                match event {
                    requests::EVENT_EXEC => {
                        // A new program: our patches went with the old one.
                        // The thread that ran execve now has the process's
                        // id and sits in this stop; the others are gone.
                        self.exec_seen = true;
                        self.patches.applied.clear();
                        let mut execing = self
                            .tracees
                            .remove(&tid)
                            .unwrap_or_else(|| Tracee::new(false));
                        execing.state = State::Stopped;
                        execing.keep_running = false;
                        execing.in_signal_stop = false;
                        execing.current = None;
                        self.tracees.insert(self.pid, execing);
                        return Err(AttachError::TargetExited { pid: self.pid });
                    }
                    requests::EVENT_CLONE | requests::EVENT_FORK | requests::EVENT_VFORK => {
                        let child = requests::event_message(tid)
                            .map_err(|e| ptrace_error("geteventmsg", e))?;
                        let child = u32::try_from(child).unwrap_or(0);
                        self.adopt_child(child, event, keep_running);
                        if !keep_running {
                            // This stop is inside clone()/fork(): the system
                            // call has not returned yet. Registers changed
                            // here are overwritten by its return value on
                            // resume, and registers restored from here would
                            // make it return -ENOSYS to a parent whose child
                            // exists (it would free the running child's
                            // stack). Let the call finish and take the
                            // interrupt stop that follows it instead.
                            requests::cont(tid, 0).map_err(|e| ptrace_error("cont", e))?;
                            match requests::interrupt(tid) {
                                Ok(()) => {}
                                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                                Err(e) => return Err(ptrace_error("interrupt", e)),
                            }
                            if let Some(tracee) = self.tracees.get_mut(&tid) {
                                tracee.state = State::Stopping;
                                tracee.in_signal_stop = false;
                                tracee.current = None;
                            }
                            return Ok(None);
                        }
                    }
                    // Interrupt stops, group stops, first stops of threads
                    // traced automatically. A group stop we end by resuming
                    // is re-established by the kernel when we detach.
                    _ => {}
                }
                let Some(tracee) = self.tracees.get_mut(&tid) else {
                    return Ok(None);
                };
                tracee.in_signal_stop = false;
                tracee.current = None;
                if keep_running {
                    resume(tid, 0, syscall_tracing).map_err(|e| ptrace_error("cont", e))?;
                    tracee.state = State::Running;
                } else {
                    tracee.state = State::Stopped;
                }
                Ok(None)
            }
            WaitStatus::Other(_) => Ok(None),
        }
    }

    /// A traced thread other than the leader vanished: if it ran `execve`,
    /// the kernel reports the exec stop under the process's id, which we
    /// now trace. Take that stop (so the new program is detached, never
    /// left stopped), and report the target gone.
    fn adopt_exec_leader(&mut self, vanished: u32) -> Result<(), AttachError> {
        if vanished == self.pid || self.tracees.contains_key(&self.pid) {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_millis(50);
        loop {
            match requests::poll_status(self.pid) {
                Ok(Some(WaitStatus::EventStop {
                    event: requests::EVENT_EXEC,
                    ..
                })) => {
                    self.exec_seen = true;
                    self.patches.applied.clear();
                    let mut leader = Tracee::new(false);
                    leader.state = State::Stopped;
                    self.tracees.insert(self.pid, leader);
                    return Err(AttachError::TargetExited { pid: self.pid });
                }
                // Nothing of ours there (ECHILD), or a plain exit.
                Ok(Some(_)) | Err(_) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Ok(None) => return Ok(()),
            }
        }
    }

    /// Takes charge of a task created by a traced thread: a new thread is
    /// traced like its parent; a new process gets our patches undone in its
    /// copy of memory and is let go.
    fn adopt_child(&mut self, child: u32, event: i32, parent_keeps_running: bool) {
        if child == 0 || self.tracees.contains_key(&child) {
            return;
        }
        let is_thread = event == requests::EVENT_CLONE
            && fs::metadata(format!("/proc/{}/task/{child}", self.pid)).is_ok();
        if is_thread {
            self.tracees
                .insert(child, Tracee::new(parent_keeps_running));
            return;
        }
        // A new process, attached automatically: wait for its first stop.
        let deadline = Instant::now() + CHILD_STOP_TIMEOUT;
        let mut pause = Duration::from_micros(10);
        while Instant::now() < deadline {
            match requests::poll_status(child) {
                Ok(Some(WaitStatus::EventStop { .. } | WaitStatus::SignalStop(_))) => break,
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(1));
                }
            }
        }
        // A fork copied our patches; a vfork child shares the parent's
        // memory, which we restore ourselves.
        if event == requests::EVENT_FORK {
            let child_memory = RemoteMemory::new(child);
            for (&address, original) in &self.patches.applied {
                let _ = child_memory.write(address, original);
            }
        }
        let _ = requests::detach(child, 0);
    }

    /// Lets stopped thread `tid` run code we set up, reporting its
    /// system-call stops ([`Event::Syscall`]). The signal of its current
    /// stop, if any, is delivered now.
    ///
    /// # Errors
    /// A failed ptrace request.
    pub(crate) fn resume_tracing_syscalls(&mut self, tid: u32) -> Result<(), AttachError> {
        let tracee = self.tracee_mut(tid)?;
        let signal = match (tracee.in_signal_stop, tracee.current.take()) {
            (true, Some(held)) => {
                if let Some(info) = held.info {
                    let _ = requests::set_siginfo(tid, &info);
                }
                held.signal
            }
            _ => 0,
        };
        requests::syscall(tid, signal).map_err(|source| AttachError::Ptrace {
            op: "syscall",
            tid,
            source,
        })?;
        tracee.state = State::Running;
        tracee.keep_running = true;
        tracee.in_signal_stop = false;
        tracee.syscall_tracing = true;
        Ok(())
    }

    /// Seizes every thread of the process not traced yet and lets it run
    /// on, reporting its system-call stops ([`Event::Syscall`]); threads
    /// it creates later run untraced by system call. Threads that cannot
    /// be seized (they exited, or another tracer has them) are skipped.
    ///
    /// # Errors
    /// [`AttachError::TargetExited`] when the process is gone.
    pub(crate) fn follow_other_threads(&mut self) -> Result<(), AttachError> {
        for tid in super::tasks::list_tasks(self.pid)? {
            if self.tracees.contains_key(&tid) || requests::seize(tid).is_err() {
                continue;
            }
            let mut tracee = Tracee::new(true);
            tracee.syscall_tracing = true;
            self.tracees.insert(tid, tracee);
            // Its interrupt stop is resumed with PTRACE_SYSCALL on arrival.
            let _ = requests::interrupt(tid);
        }
        Ok(())
    }

    /// Drops the signal of `tid`'s current stop (a trap or fault of ours).
    pub(crate) fn suppress_signal(&mut self, tid: u32) {
        if let Some(tracee) = self.tracees.get_mut(&tid) {
            tracee.current = None;
        }
    }

    /// Marks `tid` as stopped for good: events that need no decision no
    /// longer resume it.
    pub(crate) fn keep_stopped(&mut self, tid: u32) {
        if let Some(tracee) = self.tracees.get_mut(&tid) {
            tracee.keep_running = false;
            tracee.syscall_tracing = false;
        }
    }

    /// Asks running thread `tid` to stop; its stop is reported through
    /// [`next_event`](Self::next_event).
    ///
    /// # Errors
    /// A failed ptrace request.
    pub(crate) fn interrupt(&mut self, tid: u32) -> Result<(), AttachError> {
        let tracee = self.tracee_mut(tid)?;
        tracee.keep_running = false;
        if tracee.state == State::Running {
            match requests::interrupt(tid) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => {
                    return Err(AttachError::Ptrace {
                        op: "interrupt",
                        tid,
                        source,
                    })
                }
            }
            tracee.state = State::Stopping;
        }
        Ok(())
    }

    /// Lets stopped thread `tid` run on its own, delivering the signal of
    /// its current stop and any held back. Later signals are reported.
    ///
    /// # Errors
    /// A failed ptrace request.
    pub(crate) fn release(&mut self, tid: u32) -> Result<(), AttachError> {
        self.restart(tid, false)?;
        if let Some(tracee) = self.tracees.get_mut(&tid) {
            tracee.state = State::Running;
            tracee.keep_running = true;
        }
        Ok(())
    }

    /// Restarts stopped `tid` (or detaches it), delivering its signals.
    fn restart(&mut self, tid: u32, detach: bool) -> Result<(), AttachError> {
        let pid = self.pid;
        let tracee = self.tracee_mut(tid)?;
        let mut signals: Vec<HeldSignal> = tracee
            .current
            .take()
            .into_iter()
            .chain(tracee.held.drain(..))
            .collect();
        let injected = if tracee.in_signal_stop && !signals.is_empty() {
            Some(signals.remove(0))
        } else {
            None
        };
        if let Some(HeldSignal {
            info: Some(info), ..
        }) = &injected
        {
            // Deliver it exactly as it came (sender, code, value).
            let _ = requests::set_siginfo(tid, info);
        }
        let signal = injected.map_or(0, |s| s.signal);
        let result = if detach {
            requests::detach(tid, signal)
        } else {
            resume(tid, signal, tracee.syscall_tracing)
        };
        match result {
            Ok(()) => {}
            // It died meanwhile; nothing to give back.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(source) => {
                return Err(AttachError::Ptrace {
                    op: if detach { "detach" } else { "cont" },
                    tid,
                    source,
                })
            }
        }
        tracee.in_signal_stop = false;
        for held in signals {
            send_again(pid, tid, held);
        }
        Ok(())
    }

    fn tracee_mut(&mut self, tid: u32) -> Result<&mut Tracee, AttachError> {
        let pid = self.pid;
        self.tracees
            .get_mut(&tid)
            .ok_or(AttachError::TargetExited { pid })
    }

    /// Replaces the bytes at `address` with `bytes`, remembering the
    /// originals (reverted on drop, and in forked children).
    ///
    /// # Errors
    /// The memory error.
    pub(crate) fn apply_patch(&mut self, address: u64, bytes: &[u8]) -> Result<(), AttachError> {
        if self.patches.applied.contains_key(&address) {
            return Ok(());
        }
        let original = self.memory.read_vec(address, bytes.len())?;
        self.patches.applied.insert(address, original);
        if let Err(e) = self.memory.write(address, bytes) {
            self.patches.applied.remove(&address);
            return Err(e.into());
        }
        Ok(())
    }

    /// Writes back the original bytes at `address`.
    ///
    /// # Errors
    /// The memory error (the patch is then still recorded, so the
    /// destructor tries again).
    pub(crate) fn revert_patch(&mut self, address: u64) -> Result<(), AttachError> {
        if let Some(original) = self.patches.applied.get(&address) {
            self.memory.write(address, original)?;
            self.patches.applied.remove(&address);
        }
        Ok(())
    }

    /// Reverts every patch, stops every thread and detaches them all,
    /// delivering held-back signals.
    ///
    /// # Errors
    /// The first failure; the remaining threads are detached anyway.
    pub(crate) fn detach_all(mut self) -> Result<(), AttachError> {
        self.detach_everything()
    }

    fn detach_everything(&mut self) -> Result<(), AttachError> {
        let mut first_error: Option<AttachError> = None;
        if self.tracees.values().any(|t| t.state != State::Stopped) {
            let deadline = Instant::now() + DETACH_STOP_TIMEOUT;
            for tid in self.tids() {
                if let Err(e) = self.interrupt(tid) {
                    first_error.get_or_insert(e);
                }
            }
            if let Err(e) = self.wait_until_stopped(deadline) {
                first_error.get_or_insert(e);
            }
        }
        if !self.exec_seen {
            // Bytes a thread is still running (a trampoline left to finish
            // on its own) stay; nothing else ever executes them.
            let all_stopped = self.tracees.values().all(|t| t.state == State::Stopped);
            let pcs: Vec<u64> = self
                .tids()
                .into_iter()
                .filter_map(|tid| GeneralRegs::read(tid).ok().map(|r| r.pc()))
                .collect();
            let patches: Vec<(u64, usize)> = self
                .patches
                .applied
                .iter()
                .map(|(&address, original)| (address, original.len()))
                .collect();
            for (address, len) in patches {
                let in_use = pcs
                    .iter()
                    .any(|&pc| (address..=address + len as u64).contains(&pc));
                if !all_stopped || in_use {
                    self.patches.applied.remove(&address);
                    continue;
                }
                if let Err(e) = self.revert_patch(address) {
                    first_error.get_or_insert(e);
                }
            }
        }
        for tid in self.tids() {
            if self.is_stopped(tid) {
                if let Err(e) = self.restart(tid, true) {
                    first_error.get_or_insert(e);
                }
            } else {
                // Not seen stopping (the wait above ended early, e.g. on an
                // `execve`): take its stop directly and let it go, so that
                // nothing stays traced by us.
                detach_when_stopped(tid, Instant::now() + Duration::from_millis(200));
            }
            self.tracees.remove(&tid);
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for TracedThreads {
    fn drop(&mut self) {
        if !self.tracees.is_empty() || !self.patches.applied.is_empty() {
            let _ = self.detach_everything();
        }
    }
}

/// Waits (until `deadline`) for traced thread `tid` to report a stop, and
/// detaches it then; gives up when it is gone or not ours.
fn detach_when_stopped(tid: u32, deadline: Instant) {
    let _ = requests::interrupt(tid);
    while Instant::now() < deadline {
        match requests::poll_status(tid) {
            Ok(Some(WaitStatus::Exited(_) | WaitStatus::Killed(_))) | Err(_) => return,
            Ok(Some(WaitStatus::SignalStop(signal))) => {
                let _ = requests::detach(tid, signal);
                return;
            }
            Ok(Some(_)) => {
                let _ = requests::detach(tid, 0);
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
}

/// Restarts a stopped thread, with `PTRACE_SYSCALL` when its system calls
/// are followed.
fn resume(tid: u32, signal: i32, syscall_tracing: bool) -> std::io::Result<()> {
    if syscall_tracing {
        requests::syscall(tid, signal)
    } else {
        requests::cont(tid, signal)
    }
}

/// Sends a held-back signal again after the thread was restarted.
fn send_again(pid: u32, tid: u32, held: HeldSignal) {
    if let Some(info) = held.info {
        // The kernel lets us queue a siginfo to another process only for
        // negative codes other than SI_TKILL (sigqueue, timers, mq, aio).
        if info.code() < 0
            && info.code() != libc::SI_TKILL
            && requests::tgsigqueueinfo(pid, tid, held.signal, &info).is_ok()
        {
            return;
        }
    }
    let _ = requests::tgkill(pid, tid, held.signal);
}

#[cfg(test)]
mod live_tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn stops_and_detaches_a_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        std::thread::sleep(Duration::from_millis(50));
        let deadline = Instant::now() + Duration::from_secs(5);
        let threads = TracedThreads::stop_all(pid, deadline).unwrap();
        assert!(threads.is_stopped(pid));
        threads.detach_all().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// A thread reported stopped is never caught inside `clone()`: there,
    /// registers we set would be overwritten by the call's result, and
    /// registers we restore would make the call fail in a parent whose
    /// child exists. The target creates threads in a loop, so many stops
    /// land just after a `clone`; none may show it unfinished (`-ENOSYS`
    /// in the result register, the value the kernel puts there on entry).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_thread_is_never_left_stopped_inside_clone() {
        use crate::ptrace::registers::GeneralRegs;
        use peeka_testkit::{Manifest, TargetProcess};
        use std::path::Path;

        let Some(manifest) = Manifest::load_or_skip() else {
            return;
        };
        let Some(python) = manifest.require("3.12") else {
            return;
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/thread_churn.py");
        let process = TargetProcess::spawn(python, &script, &[], &[]).unwrap();
        let pid = process.pid();
        let enosys = (-i64::from(libc::ENOSYS)) as u64;
        let clones = [libc::SYS_clone as u64, libc::SYS_clone3 as u64];
        let (mut after_clone, mut inside_clone) = (0, 0);
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(4) {
            let deadline = Instant::now() + Duration::from_secs(5);
            let threads = TracedThreads::stop_one(pid, pid, deadline).unwrap();
            assert!(threads.is_stopped(pid));
            let regs = GeneralRegs::read(pid).unwrap();
            if regs.syscall_number().is_some_and(|n| clones.contains(&n)) {
                after_clone += 1;
                if regs.return_value() == enosys {
                    inside_clone += 1;
                }
            }
            threads.detach_all().unwrap();
        }
        eprintln!("{after_clone} stops right after clone(), {inside_clone} inside it");
        assert_eq!(inside_clone, 0, "{after_clone} stops after clone()");
        assert!(
            after_clone > 0,
            "the target never stopped right after clone()"
        );
    }
}
