//! Running a system call or a program of function calls on a stopped
//! thread, through a trampoline that puts the thread back by itself.
//!
//! A [`HijackedThread`] saves the thread's registers and computes its
//! [`Continuation`]. Each call writes a restore record below the thread's
//! red zone, points the thread at a trampoline (one `PTRACE_SETREGSET`) and
//! follows it through system-call stops (`PTRACE_SYSCALL`) until the
//! trampoline's last system call returns. There the tracer gives the
//! thread its continuation itself, so the trampoline's tail never runs
//! while we are alive; if we die at any point before, the tail runs and
//! the thread goes on exactly as it would have (see `trampoline`).
//!
//! While the call runs:
//! - a fault (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, a `SIGTRAP`) raised
//!   by the kernel ends the call: the signal is dropped, registers
//!   (vector state included) are restored,
//!   [`AttachError::InjectedCallFaulted`] is returned;
//! - `SIGSYS` with `si_code` `SYS_SECCOMP` means a seccomp filter refused
//!   a system call: [`AttachError::Seccomp`];
//! - any other signal is delivered at once (the trampoline is a valid
//!   context for its handler);
//! - a system call that does not return by the deadline is interrupted
//!   and the thread restored; a program that has not finished is left to
//!   finish on its own ([`ProgramEnd::StillRunning`]).

use std::time::{Duration, Instant};

use super::registers::{GeneralRegs, Registers, SYS_MMAP, SYS_MUNMAP};
use super::requests::{self, signal_name};
use super::threads::{Event, TracedThreads};
use super::trampoline::{
    syscall_trampoline, syscall_trampoline_pc, Assembled, Continuation, StackFrame, SLOTS,
    STATUS_RUNNING,
};
use crate::error::AttachError;
use crate::method::Method;

/// `si_code` of a `SIGSYS` raised by a seccomp filter (`SYS_SECCOMP`).
const SYS_SECCOMP: i32 = 1;

/// How long to wait for an abandoned system call's thread to stop.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(2);

/// Offset of the XSAVE header in the vector area, and its size.
const XSAVE_HEADER: (u64, usize) = (512, 64);

/// What to do with events of threads other than the one running the call.
pub(crate) type OtherThreads<'a> =
    &'a mut dyn FnMut(&mut TracedThreads, Event) -> Result<(), AttachError>;

/// The handler for sets in which the other threads run on their own:
/// signals are passed through, other stops let go.
pub(crate) fn let_others_run(threads: &mut TracedThreads, event: Event) -> Result<(), AttachError> {
    match event {
        Event::Signal { tid, .. } | Event::Syscall { tid } => threads.release(tid),
        Event::Exited { .. } => Ok(()),
    }
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgramEnd {
    /// It ran to its marker; the thread has its continuation and is
    /// stopped. The slots as the program left them (slot 0: the status).
    Finished([u64; SLOTS]),
    /// The deadline passed first. The thread is still running the
    /// program, and will finish it and go on by itself once released.
    StillRunning,
}

/// A stopped thread whose registers we saved, to run calls on.
#[derive(Debug)]
pub(crate) struct HijackedThread {
    tid: u32,
    saved: Registers,
    continuation: Continuation,
    /// Where system-call trampolines go (padding, see `landing`).
    landing: u64,
    /// A signal with a handler was delivered to the thread while it ran
    /// code of ours.
    handler_ran: std::cell::Cell<bool>,
}

impl HijackedThread {
    /// Saves the registers of stopped thread `tid`; system calls will run
    /// through a trampoline at `landing`.
    ///
    /// # Errors
    /// A failed ptrace request.
    pub(crate) fn new(tid: u32, landing: u64) -> Result<Self, AttachError> {
        let saved = Registers::save(tid).map_err(|source| AttachError::Ptrace {
            op: "getregset",
            tid,
            source,
        })?;
        let continuation = Continuation::of(saved.general());
        Ok(Self {
            tid,
            saved,
            continuation,
            landing,
            handler_ran: std::cell::Cell::new(false),
        })
    }

    /// Where it goes on once we are done.
    pub(crate) fn continuation(&self) -> &Continuation {
        &self.continuation
    }

    /// The areas of its stack the trampolines use.
    pub(crate) fn frame(&self) -> StackFrame {
        StackFrame::below(self.saved.general().sp())
    }

    /// Gives the thread its continuation and every saved register set (for
    /// a call that ended midway); the thread stays stopped.
    ///
    /// # Errors
    /// A failed ptrace request.
    pub(crate) fn restore(&self) -> Result<(), AttachError> {
        let mut all = self.saved.clone();
        all.set_general(*self.continuation.regs());
        all.restore(self.tid).map_err(|source| AttachError::Ptrace {
            op: "setregset",
            tid: self.tid,
            source,
        })
    }

    /// Gives the thread its continuation (general registers only: the
    /// vector state was not touched, or the program restored it).
    fn resume_point(&self) -> Result<(), AttachError> {
        let continuation = if self.handler_ran.get() {
            Continuation::after_a_handler(self.saved.general())
        } else {
            self.continuation
        };
        continuation
            .regs()
            .write(self.tid)
            .map_err(|source| AttachError::Ptrace {
                op: "setregset",
                tid: self.tid,
                source,
            })
    }

    /// Runs system call `number` with `args` and returns its raw result
    /// (a negative errno on failure). The thread is stopped, with its
    /// continuation, when this returns.
    ///
    /// # Errors
    /// See the module documentation.
    pub(crate) fn syscall(
        &self,
        threads: &mut TracedThreads,
        number: u64,
        args: [u64; 6],
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<i64, AttachError> {
        let frame = self.frame();
        threads
            .memory()
            .write(frame.record, &self.continuation.record())?;
        threads.apply_patch(self.landing, &syscall_trampoline(&self.continuation))?;
        let mut regs = *self.continuation.regs();
        regs.set_syscall(self.landing, frame.record, number, args);
        let what = syscall_name(number);
        let followed = self.follow(
            threads,
            regs,
            syscall_trampoline_pc(self.landing),
            Some(number),
            what,
            deadline,
            &mut *others,
        );
        let result = match followed {
            Ok(Some(())) => {
                let now = GeneralRegs::read(self.tid).map_err(|source| AttachError::Ptrace {
                    op: "getregset",
                    tid: self.tid,
                    source,
                })?;
                self.resume_point()?;
                Ok(now.return_value() as i64)
            }
            Ok(None) => Err(self.abandon_syscall(threads, others)),
            Err(e) => Err(e),
        };
        // The trampoline's bytes go only once the thread is off them: it
        // has its continuation, or was restored after a fault or timeout.
        let off_trampoline = matches!(
            &result,
            Ok(_)
                | Err(AttachError::InjectedCallFaulted { .. }
                    | AttachError::Seccomp { .. }
                    | AttachError::Timeout { .. })
        );
        if off_trampoline {
            threads.revert_patch(self.landing)?;
        }
        result
    }

    /// Runs `program`, assembled at an address in the target where it is
    /// already written, with `slots` as its initial slot values (slot 0 is
    /// set to "running").
    ///
    /// # Errors
    /// See the module documentation.
    pub(crate) fn run(
        &self,
        threads: &mut TracedThreads,
        program: &Assembled,
        address: u64,
        slots: [u64; SLOTS],
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<ProgramEnd, AttachError> {
        let frame = self.frame();
        let memory = threads.memory();
        memory.write(frame.record, &self.continuation.record())?;
        let mut initial = slots;
        initial[0] = STATUS_RUNNING;
        let bytes: Vec<u8> = initial.iter().flat_map(|w| w.to_ne_bytes()).collect();
        memory.write(frame.slots, &bytes)?;
        memory.write(frame.vector + XSAVE_HEADER.0, &[0; XSAVE_HEADER.1])?;
        let mut regs = *self.continuation.regs();
        regs.set_program(
            address,
            frame.call_stack,
            frame.record,
            frame.vector,
            frame.slots,
        );
        let followed = self.follow(
            threads,
            regs,
            program.marker_pc,
            None,
            "a function call",
            deadline,
            others,
        )?;
        if followed.is_none() {
            return Ok(ProgramEnd::StillRunning);
        }
        self.finished(threads)
    }

    /// Follows a program that [`run`](Self::run) left running
    /// ([`ProgramEnd::StillRunning`]) until it finishes or `deadline`
    /// passes.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub(crate) fn finish(
        &self,
        threads: &mut TracedThreads,
        program: &Assembled,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<ProgramEnd, AttachError> {
        let followed = self.wait_for(
            threads,
            program.marker_pc,
            None,
            "a function call",
            deadline,
            others,
        )?;
        if followed.is_none() {
            return Ok(ProgramEnd::StillRunning);
        }
        self.finished(threads)
    }

    /// Reads the slots of a program stopped at its marker's exit, and gives
    /// the thread its continuation.
    fn finished(&self, threads: &mut TracedThreads) -> Result<ProgramEnd, AttachError> {
        let frame = self.frame();
        let mut slots = [0u64; SLOTS];
        let raw = threads.memory().read_vec(frame.slots, SLOTS * 8)?;
        for (slot, chunk) in slots.iter_mut().zip(raw.chunks_exact(8)) {
            *slot = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
        self.resume_point()?;
        Ok(ProgramEnd::Finished(slots))
    }

    /// Starts the thread with `regs` and follows it until the exit stop of
    /// the system call whose stops have the program counter at `stop_pc`
    /// (`Some`), or until the deadline (`None`).
    ///
    /// A seccomp filter that traps system call `rolled_back` (its number)
    /// leaves that number in the result register at the exit stop and
    /// queues a `SIGSYS`: such an exit stop is followed on to the signal.
    #[allow(clippy::too_many_arguments)]
    fn follow(
        &self,
        threads: &mut TracedThreads,
        regs: GeneralRegs,
        stop_pc: u64,
        rolled_back: Option<u64>,
        what: &'static str,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<Option<()>, AttachError> {
        let tid = self.tid;
        regs.write(tid).map_err(|source| AttachError::Ptrace {
            op: "setregset",
            tid,
            source,
        })?;
        kill_point();
        threads.resume_tracing_syscalls(tid)?;
        self.wait_for(threads, stop_pc, rolled_back, what, deadline, others)
    }

    /// The waiting part of [`follow`](Self::follow).
    fn wait_for(
        &self,
        threads: &mut TracedThreads,
        stop_pc: u64,
        rolled_back: Option<u64>,
        what: &'static str,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<Option<()>, AttachError> {
        let tid = self.tid;
        let pid = threads.pid();
        let ptrace_error = |op, source| AttachError::Ptrace { op, tid, source };
        loop {
            let Some(event) = threads.next_event(deadline)? else {
                return Ok(None);
            };
            kill_point();
            match event {
                Event::Syscall { tid: t } if t == tid => {
                    let now = GeneralRegs::read(tid).map_err(|e| ptrace_error("getregset", e))?;
                    if now.pc() == stop_pc
                        && requests::at_syscall_exit(tid)
                            .map_err(|e| ptrace_error("get_syscall_info", e))?
                        && rolled_back != Some(now.return_value())
                    {
                        threads.keep_stopped(tid);
                        return Ok(Some(()));
                    }
                    threads.resume_tracing_syscalls(tid)?;
                }
                Event::Signal {
                    tid: t,
                    signal,
                    info,
                } if t == tid => {
                    let seccomp = signal == libc::SIGSYS && info.code() == SYS_SECCOMP;
                    if !seccomp && !is_fault(signal, info.code()) {
                        // Someone else's signal: the handler may run here.
                        if signal_is_caught(pid, tid, signal) {
                            self.handler_ran.set(true);
                        }
                        threads.resume_tracing_syscalls(tid)?;
                        continue;
                    }
                    let now = GeneralRegs::read(tid).map_err(|e| ptrace_error("getregset", e))?;
                    threads.suppress_signal(tid);
                    threads.keep_stopped(tid);
                    self.restore()?;
                    return Err(if seccomp {
                        AttachError::Seccomp {
                            pid,
                            syscall: syscall_name(
                                u64::try_from(info.syscall()).unwrap_or(u64::MAX),
                            ),
                        }
                    } else {
                        AttachError::InjectedCallFaulted {
                            pid,
                            signal: format!("{} during {what}", signal_name(signal)),
                            address: now.pc(),
                        }
                    });
                }
                Event::Exited { tid: t } if t == tid => {
                    return Err(AttachError::TargetExited { pid })
                }
                other => others(threads, other)?,
            }
        }
    }

    /// Stops a system call that did not return in time (it is still in
    /// the kernel, or about to enter it) and restores the thread.
    fn abandon_syscall(
        &self,
        threads: &mut TracedThreads,
        others: OtherThreads<'_>,
    ) -> AttachError {
        let pid = threads.pid();
        let started = Instant::now();
        let deadline = started + ABANDON_TIMEOUT;
        if let Err(e) = threads.interrupt(self.tid) {
            return e;
        }
        while !threads.is_stopped(self.tid) {
            match threads.next_event(deadline) {
                Ok(Some(Event::Exited { tid })) if tid == self.tid => {
                    return AttachError::TargetExited { pid }
                }
                Ok(Some(Event::Signal { tid, .. } | Event::Syscall { tid })) if tid == self.tid => {
                    threads.suppress_signal(tid);
                }
                Ok(Some(other)) => {
                    if let Err(e) = others(threads, other) {
                        return e;
                    }
                }
                Ok(None) => break,
                Err(e) => return e,
            }
        }
        if let Err(e) = self.restore() {
            return e;
        }
        AttachError::Timeout {
            pid,
            method: Method::Ptrace,
            waited: started.elapsed(),
            advice: "A system call made inside the target did not return before the deadline; the thread's \
                     registers were restored. Try again, or give it a longer timeout."
                .into(),
        }
    }
}

/// Tests only: the tracer process dies (`_exit`, as if killed) at its
/// `DIE_AT`-th kill point: after a thread was pointed at a trampoline and
/// before it is resumed, and at every stop it reports while it runs one.
#[cfg(test)]
pub(crate) static DIE_AT: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(usize::MAX);

#[cfg(test)]
static KILL_POINTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A point where the tests may make the tracer die (see `DIE_AT`).
fn kill_point() {
    #[cfg(test)]
    {
        use std::sync::atomic::Ordering::SeqCst;
        if KILL_POINTS.fetch_add(1, SeqCst) == DIE_AT.load(SeqCst) {
            // SAFETY: ends this (forked, single-threaded) test process at once.
            unsafe { libc::_exit(0) }
        }
    }
}

/// Whether thread `tid` of `pid` has a handler for `signal` (`SigCgt`).
fn signal_is_caught(pid: u32, tid: u32, signal: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        })
        .is_some_and(|mask| signal > 0 && mask & (1 << (signal - 1)) != 0)
}

/// Signals the kernel raises for a fault of the running code.
fn is_fault(signal: i32, code: i32) -> bool {
    code > 0
        && matches!(
            signal,
            libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP
        )
}

fn syscall_name(number: u64) -> &'static str {
    match number {
        SYS_MMAP => "mmap",
        SYS_MUNMAP => "munmap",
        _ => "a system call",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_kernel_raised_synchronous_signals() {
        assert!(is_fault(libc::SIGSEGV, 1));
        assert!(!is_fault(libc::SIGSEGV, libc::SI_USER));
        assert!(!is_fault(libc::SIGUSR1, 1));
        assert!(!is_fault(libc::SIGCHLD, 1));
    }
}

#[cfg(test)]
mod live_tests {
    use std::process::{Child, Command};
    use std::time::Duration;

    use super::*;
    use crate::elf::ElfFile;
    use crate::procfs::MapEntry;
    use crate::ptrace::scratch_page::ScratchPage;
    use crate::ptrace::trampoline::{Arg, Call, Program, StopIf, VectorSave};

    struct Sleeper(Child);

    impl Sleeper {
        /// `sleep 30`, settled in `nanosleep`, with its pid and a landing
        /// for system-call trampolines.
        fn start() -> (Self, u32, u64) {
            let sleeper = Self(Command::new("sleep").arg("30").spawn().unwrap());
            let pid = sleeper.0.id();
            std::thread::sleep(Duration::from_millis(100));
            (sleeper, pid, landing_of(pid))
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The run-time address of `symbol` in the first mapped file of `pid`
    /// whose name starts with `prefix`.
    fn address_in(pid: u32, prefix: &str, symbol: &str) -> u64 {
        let maps = MapEntry::read_all(pid).unwrap();
        let path = maps
            .iter()
            .filter_map(|m| m.path.clone())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
            })
            .unwrap();
        let mappings: Vec<&MapEntry> = maps
            .iter()
            .filter(|m| m.path.as_ref() == Some(&path))
            .collect();
        let elf = ElfFile::open_mapped(pid, mappings[0]).unwrap();
        let bias = elf.load_bias(&mappings).unwrap();
        bias.apply(elf.symbol(symbol).unwrap())
    }

    /// Writes `program` into `page` and runs it on `thread`.
    fn run_on(
        thread: &HijackedThread,
        threads: &mut TracedThreads,
        page: &ScratchPage,
        program: &Program,
        deadline: Instant,
    ) -> Result<ProgramEnd, AttachError> {
        let assembled =
            program.assemble(page.address(), thread.continuation(), VectorSave::detect());
        threads.memory().write(page.address(), &assembled.code)?;
        thread.run(
            threads,
            &assembled,
            page.address(),
            [0; SLOTS],
            deadline,
            &mut let_others_run,
        )
    }

    fn landing_of(pid: u32) -> u64 {
        let maps = MapEntry::read_all(pid).unwrap();
        let memory = crate::memory::RemoteMemory::new(pid);
        crate::ptrace::landing::find_in(pid, &maps, None, &memory).unwrap()
    }

    /// A system call and a program on a thread blocked in `nanosleep`, with
    /// every register (vector state included) given back as the
    /// continuation says, and the trampoline's bytes put back.
    #[test]
    fn programs_run_on_a_sleeping_thread_and_it_goes_on_as_before() {
        let (_sleeper, pid, landing) = Sleeper::start();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut threads = TracedThreads::stop_one(pid, pid, deadline).unwrap();
        let before = Registers::save(pid).unwrap();
        assert!(
            before.general().in_syscall(),
            "sleep should be inside nanosleep: {before:?}"
        );
        let padding = threads.memory().read_vec(landing, 64).unwrap();

        let thread = HijackedThread::new(pid, landing).unwrap();
        let getpid = thread
            .syscall(
                &mut threads,
                libc::SYS_getpid as u64,
                [0; 6],
                deadline,
                &mut let_others_run,
            )
            .unwrap();
        assert_eq!(getpid, i64::from(pid));
        assert_eq!(threads.memory().read_vec(landing, 64).unwrap(), padding);

        let page =
            ScratchPage::map(&thread, &mut threads, 4096, deadline, &mut let_others_run).unwrap();
        threads
            .memory()
            .write(page.address() + 2048, b"4242\0")
            .unwrap();
        // Not an IFUNC (strlen and friends resolve to their resolver).
        let atoi = address_in(pid, "libc", "atoi");
        let program = Program {
            calls: vec![
                Call {
                    function: atoi,
                    args: vec![Arg::Value(page.address() + 2048)],
                    result: Some(1),
                    stop_if: StopIf::Zero,
                },
                Call {
                    function: atoi,
                    args: vec![Arg::Value(page.address() + 2050)],
                    result: Some(2),
                    stop_if: StopIf::Never,
                },
            ],
        };
        let end = run_on(&thread, &mut threads, &page, &program, deadline).unwrap();
        let ProgramEnd::Finished(slots) = end else {
            panic!("{end:?}")
        };
        assert_eq!((slots[0], slots[1], slots[2]), (0, 4242, 42));
        let now = GeneralRegs::read(pid).unwrap();
        assert_eq!(&now, thread.continuation().regs());

        // A call that faults is reported, and the thread restored.
        let faulting = Program {
            calls: vec![Call {
                function: atoi,
                args: vec![Arg::Value(8)],
                result: None,
                stop_if: StopIf::Never,
            }],
        };
        let err = run_on(&thread, &mut threads, &page, &faulting, deadline).unwrap_err();
        assert!(
            matches!(err, AttachError::InjectedCallFaulted { .. }),
            "{err}"
        );
        page.unmap(&thread, &mut threads, deadline, &mut let_others_run)
            .unwrap();

        let after = Registers::save(pid).unwrap();
        assert_eq!(after.general(), thread.continuation().regs());
        assert_eq!(threads.memory().read_vec(landing, 64).unwrap(), padding);
        threads.detach_all().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let state = crate::procfs::ProcStatus::read(pid).unwrap().state;
        assert!(matches!(state, 'S' | 'R'), "state {state}");
    }

    /// The same program, left to finish on its own: the tracer lets go of
    /// the thread right after pointing it at the program (as if it had been
    /// killed), and the thread comes back to its `nanosleep` by itself.
    #[test]
    fn a_thread_let_go_mid_program_finishes_it_and_goes_on() {
        let (sleeper, pid, landing) = Sleeper::start();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut threads = TracedThreads::stop_one(pid, pid, deadline).unwrap();
        let thread = HijackedThread::new(pid, landing).unwrap();
        let page =
            ScratchPage::map(&thread, &mut threads, 4096, deadline, &mut let_others_run).unwrap();
        let usleep = address_in(pid, "libc", "usleep");
        let program = Program {
            calls: vec![Call {
                function: usleep,
                args: vec![Arg::Value(200_000)],
                result: Some(1),
                stop_if: StopIf::Never,
            }],
        };
        // A deadline already passed: the program is started and left.
        let end = run_on(&thread, &mut threads, &page, &program, Instant::now()).unwrap();
        assert_eq!(end, ProgramEnd::StillRunning);
        threads.detach_all().unwrap();
        std::thread::sleep(Duration::from_millis(400));
        let status = crate::procfs::ProcStatus::read(pid).unwrap();
        if status.state == 'Z' {
            let mut sleeper = sleeper;
            panic!("the sleeper died: {:?}", sleeper.0.wait());
        }
        assert_eq!(status.state, 'S', "the sleeper should be back in nanosleep");
        assert_eq!(status.tracer_pid, 0);
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap();
        assert!(
            syscall.starts_with("230 ") || syscall.starts_with("35 "),
            "{syscall}"
        );
    }

    /// Voluntary context switches of `pid`'s main thread: they grow while
    /// it goes round its sleep loop.
    fn switches(pid: u32) -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// What the forked tracer does: map pages, run a program calling
    /// `usleep`, unmap the pages, detach. It exits with 1 once done, or
    /// with 0 at kill point `die_at` (see `DIE_AT`).
    fn trace_and_maybe_die(pid: u32, landing: u64, usleep: u64, die_at: usize) -> ! {
        // The counter is the parent's, copied at the fork: start afresh.
        KILL_POINTS.store(0, std::sync::atomic::Ordering::SeqCst);
        DIE_AT.store(die_at, std::sync::atomic::Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        let run = || -> Result<(), AttachError> {
            let mut threads = TracedThreads::stop_one(pid, pid, deadline)?;
            let thread = HijackedThread::new(pid, landing)?;
            let page =
                ScratchPage::map(&thread, &mut threads, 4096, deadline, &mut let_others_run)?;
            let program = Program {
                calls: vec![Call {
                    function: usleep,
                    args: vec![Arg::Value(2000)],
                    result: None,
                    stop_if: StopIf::Never,
                }],
            };
            run_on(&thread, &mut threads, &page, &program, deadline)?;
            page.unmap(&thread, &mut threads, deadline, &mut let_others_run)?;
            threads.detach_all()
        };
        let code = if run().is_ok() { 1 } else { 2 };
        // SAFETY: ends the forked child without running the parent's
        // destructors or atexit handlers.
        unsafe { libc::_exit(code) }
    }

    /// The tracer dies at every kill point of a system call and a program
    /// in turn, while a real Python target sleeps in a loop: each time the
    /// target goes on by itself, untraced, still going round its loop.
    #[test]
    fn the_target_survives_its_tracer_dying_at_every_point() {
        use peeka_testkit::{Manifest, TargetProcess};
        let Some(manifest) = Manifest::load_or_skip() else {
            return;
        };
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/sleeper.py");
        for minor in ["3.8", "3.11", "3.13"] {
            let Some(python) = manifest.require(minor) else {
                continue;
            };
            let mut process = TargetProcess::spawn(python, &script, &[], &[]).unwrap();
            let pid = process.pid();
            std::thread::sleep(Duration::from_millis(200));
            let landing = landing_of(pid);
            let usleep = address_in(pid, "libc", "usleep");
            let mut points = 0;
            for die_at in 0.. {
                // SAFETY: the child only traces and exits (see above).
                let child = unsafe { libc::fork() };
                assert!(child >= 0, "fork failed");
                if child == 0 {
                    trace_and_maybe_die(pid, landing, usleep, die_at);
                }
                let mut status = 0;
                // SAFETY: waits for our own child.
                unsafe { libc::waitpid(child, &mut status, 0) };
                let code = libc::WEXITSTATUS(status);
                assert_ne!(code, 2, "{minor}: the tracer failed at kill point {die_at}");
                std::thread::sleep(Duration::from_millis(100));
                let what = format!("{minor}: tracer died at kill point {die_at}");
                assert!(
                    process.is_alive(),
                    "{what}: the target died: {}",
                    process.stderr()
                );
                let status = crate::procfs::ProcStatus::read(pid).unwrap();
                assert_eq!(status.tracer_pid, 0, "{what}: still traced");
                let before = switches(pid);
                std::thread::sleep(Duration::from_millis(200));
                assert!(
                    switches(pid) > before,
                    "{what}: the target stopped going round its loop"
                );
                if code == 1 {
                    points = die_at;
                    break;
                }
            }
            assert!(points >= 8, "{minor}: only {points} kill points");
            // A trampoline a dead tracer left in the padding is found, put
            // back, and the place used again.
            assert_eq!(
                landing_of(pid),
                landing,
                "{minor}: the padding was not reused"
            );
            let padding = crate::memory::RemoteMemory::new(pid)
                .read_vec(landing, crate::ptrace::trampoline::SYSCALL_TRAMPOLINE_LEN)
                .unwrap();
            assert!(padding.iter().all(|&b| b == 0), "{minor}: {padding:02x?}");
            assert_eq!(process.stderr(), "", "{minor}: the target printed errors");
            eprintln!("{minor}: the target survived its tracer dying at each of {points} points");
        }
    }
}
