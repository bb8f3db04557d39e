//! Running a system call or a function call on a stopped thread.
//!
//! The thread executes a few bytes of scratch code ([`ScratchCode`]) that we
//! write over code nothing executes after start-up (the executable's ELF
//! entry point, `_start`): a system-call instruction or a call through a
//! register, each followed by a breakpoint. The thread's registers are
//! saved first ([`HijackedThread`]), set up for the call, and written back
//! afterwards, so an interrupted system call is restarted exactly as the
//! kernel would have restarted it and the target never sees `EINTR`.
//!
//! While the call runs:
//! - the breakpoint after it is the only expected stop;
//! - a fault (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`, a stray `SIGTRAP`)
//!   raised by the kernel ends the call: the signal is dropped, registers
//!   are restored, [`AttachError::InjectedCallFaulted`] is returned;
//! - `SIGSYS` with `si_code` `SYS_SECCOMP` means a seccomp filter refused
//!   a system call: [`AttachError::Seccomp`];
//! - any other signal is held back and re-delivered when the thread is
//!   released;
//! - if the call does not return by the deadline, the thread is
//!   interrupted and its registers restored.

use std::time::{Duration, Instant};

use super::registers::{
    GeneralRegs, Registers, CALL_OFFSET, CALL_TRAP_OFFSET, RED_ZONE, SCRATCH_CODE, SYSCALL_OFFSET,
    SYSCALL_TRAP_OFFSET, SYS_MMAP, SYS_MUNMAP,
};
use super::requests::signal_name;
use super::threads::{Event, TracedThreads};
use crate::error::AttachError;
use crate::method::Method;

/// `si_code` of a `SIGSYS` raised by a seccomp filter (`SYS_SECCOMP`).
const SYS_SECCOMP: i32 = 1;

/// How long to wait for an abandoned call's thread to stop.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(2);

/// What to do with events of threads other than the one running the call.
pub(crate) type OtherThreads<'a> =
    &'a mut dyn FnMut(&mut TracedThreads, Event) -> Result<(), AttachError>;

/// The handler for sets in which the other threads run on their own:
/// signals are passed through, threads at a breakpoint (already moved back
/// to it) are let go.
pub(crate) fn let_others_run(threads: &mut TracedThreads, event: Event) -> Result<(), AttachError> {
    match event {
        Event::Signal { tid, .. } | Event::Breakpoint { tid, .. } => threads.release(tid),
        Event::Exited { .. } => Ok(()),
    }
}

/// The scratch instructions, written at an address nothing executes.
#[derive(Debug)]
pub(crate) struct ScratchCode {
    address: u64,
}

impl ScratchCode {
    /// Writes the scratch code at `address` (the original bytes are kept by
    /// `threads` and written back by [`remove`](Self::remove), or when
    /// `threads` is dropped).
    ///
    /// # Errors
    /// The memory error.
    pub(crate) fn install(threads: &mut TracedThreads, address: u64) -> Result<Self, AttachError> {
        threads.apply_patch(address, &SCRATCH_CODE)?;
        threads
            .register_scratch_traps(&[address + SYSCALL_TRAP_OFFSET, address + CALL_TRAP_OFFSET]);
        Ok(Self { address })
    }

    /// Writes the original bytes back.
    ///
    /// # Errors
    /// The memory error.
    pub(crate) fn remove(self, threads: &mut TracedThreads) -> Result<(), AttachError> {
        threads.revert_patch(self.address)
    }
}

/// Room on a thread's stack below its red zone: data first, then the stack
/// of the called function, both 16-byte aligned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StackSpace {
    next: u64,
}

impl StackSpace {
    /// The space below the stack pointer (and red zone) of `regs`.
    pub(crate) fn below(regs: &GeneralRegs) -> Self {
        Self {
            next: regs.sp().saturating_sub(RED_ZONE) & !15,
        }
    }

    /// Reserves `len` bytes for data and returns their address.
    pub(crate) fn reserve(&mut self, len: u64) -> u64 {
        self.next = self.next.saturating_sub(len) & !15;
        self.next
    }

    /// The stack pointer a call starts with, below all reserved data.
    pub(crate) fn call_stack(&self) -> u64 {
        self.next.saturating_sub(64) & !15
    }
}

/// A stopped thread whose registers we saved, to run calls on.
#[derive(Debug)]
pub(crate) struct HijackedThread {
    tid: u32,
    saved: Registers,
    scratch: u64,
}

impl HijackedThread {
    /// Saves the registers of stopped thread `tid`, to run calls through
    /// `scratch`.
    ///
    /// # Errors
    /// A failed ptrace request.
    pub(crate) fn new(tid: u32, scratch: &ScratchCode) -> Result<Self, AttachError> {
        let saved = Registers::save(tid).map_err(|source| AttachError::Ptrace {
            op: "getregset",
            tid,
            source,
        })?;
        Ok(Self {
            tid,
            saved,
            scratch: scratch.address,
        })
    }

    /// The registers it had when we took it.
    pub(crate) fn saved(&self) -> &GeneralRegs {
        self.saved.general()
    }

    /// Writes the saved registers back; the thread stays stopped.
    ///
    /// # Errors
    /// A failed ptrace request.
    pub(crate) fn restore(&self) -> Result<(), AttachError> {
        self.saved
            .restore(self.tid)
            .map_err(|source| AttachError::Ptrace {
                op: "setregset",
                tid: self.tid,
                source,
            })
    }

    /// Runs system call `number` with `args` and returns its raw result
    /// (a negative errno on failure).
    ///
    /// # Errors
    /// See the module documentation; registers are restored on error.
    pub(crate) fn syscall(
        &self,
        threads: &mut TracedThreads,
        number: u64,
        args: [u64; 6],
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<i64, AttachError> {
        let mut regs = *self.saved.general();
        regs.set_syscall(self.scratch + SYSCALL_OFFSET, number, args);
        let what = syscall_name(number);
        let result = self.run(
            threads,
            regs,
            self.scratch + SYSCALL_TRAP_OFFSET,
            what,
            deadline,
            others,
        )?;
        Ok(result as i64)
    }

    /// Calls `function` with integer `args` on the stack at `stack` and
    /// returns its integer result.
    ///
    /// # Errors
    /// See the module documentation; registers are restored on error.
    pub(crate) fn call(
        &self,
        threads: &mut TracedThreads,
        function: u64,
        args: &[u64],
        stack: u64,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<u64, AttachError> {
        let mut regs = *self.saved.general();
        regs.set_call(self.scratch + CALL_OFFSET, function, args, stack);
        self.run(
            threads,
            regs,
            self.scratch + CALL_TRAP_OFFSET,
            "a function call",
            deadline,
            others,
        )
    }

    fn run(
        &self,
        threads: &mut TracedThreads,
        regs: GeneralRegs,
        trap_pc: u64,
        what: &'static str,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<u64, AttachError> {
        let tid = self.tid;
        let pid = threads.pid();
        regs.write_for_call(tid)
            .map_err(|source| AttachError::Ptrace {
                op: "setregset",
                tid,
                source,
            })?;
        threads.resume_for_call(tid)?;
        loop {
            let Some(event) = threads.next_event(deadline)? else {
                return Err(self.abandon(threads, others));
            };
            match event {
                Event::Signal {
                    tid: t,
                    signal,
                    info,
                } if t == tid => {
                    let now = GeneralRegs::read(tid).map_err(|source| AttachError::Ptrace {
                        op: "getregset",
                        tid,
                        source,
                    })?;
                    if signal == libc::SIGTRAP && now.pc() == trap_pc {
                        threads.suppress_signal(tid);
                        threads.keep_stopped(tid);
                        return Ok(now.return_value());
                    }
                    if signal == libc::SIGSYS && info.code() == SYS_SECCOMP {
                        threads.suppress_signal(tid);
                        threads.keep_stopped(tid);
                        self.restore()?;
                        return Err(AttachError::Seccomp {
                            pid,
                            syscall: syscall_name(
                                u64::try_from(info.syscall()).unwrap_or(u64::MAX),
                            ),
                        });
                    }
                    if is_fault(signal, info.code()) {
                        threads.suppress_signal(tid);
                        threads.keep_stopped(tid);
                        self.restore()?;
                        return Err(AttachError::InjectedCallFaulted {
                            pid,
                            signal: format!("{} during {what}", signal_name(signal)),
                            address: now.pc(),
                        });
                    }
                    // Someone else's signal: deliver it once we are done.
                    threads.resume_for_call(tid)?;
                }
                Event::Breakpoint { tid: t, address } if t == tid => {
                    threads.keep_stopped(tid);
                    self.restore()?;
                    return Err(AttachError::InjectedCallFaulted {
                        pid,
                        signal: format!("SIGTRAP (a breakpoint) during {what}"),
                        address,
                    });
                }
                Event::Exited { tid: t } if t == tid => {
                    return Err(AttachError::TargetExited { pid })
                }
                other => others(threads, other)?,
            }
        }
    }

    /// Stops a call that did not return in time and restores the thread.
    fn abandon(&self, threads: &mut TracedThreads, others: OtherThreads<'_>) -> AttachError {
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
                // Its own signal or trap while stopping: ours to drop, as
                // the registers are about to be restored.
                Ok(Some(Event::Signal { tid, .. } | Event::Breakpoint { tid, .. }))
                    if tid == self.tid =>
                {
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
            advice: "A function called inside the target did not return before the deadline (it may have been \
                     waiting for a lock held by a paused thread); the thread's registers were restored. Try again, \
                     or give it a longer --timeout."
                .into(),
        }
    }
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
    fn stack_space_stays_below_the_red_zone_and_aligned() {
        let mut space = StackSpace {
            next: (0x7fff_0000_1238 - RED_ZONE) & !15,
        };
        let data = space.reserve(300);
        assert_eq!(data % 16, 0);
        assert!(data + 300 <= 0x7fff_0000_1238 - RED_ZONE);
        let stack = space.call_stack();
        assert_eq!(stack % 16, 0);
        assert!(stack < data);
    }

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
    use crate::ptrace::registers::Registers;
    use crate::ptrace::scratch_page::ScratchPage;

    struct Sleeper(Child);

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The run-time address of `symbol` (or the entry point, for `None`) in
    /// the first mapped file of `pid` whose name starts with `prefix`.
    fn address_in(pid: u32, prefix: &str, symbol: Option<&str>) -> u64 {
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
        bias.apply(symbol.map_or_else(|| elf.entry(), |s| elf.symbol(s).unwrap()))
    }

    /// Syscalls and calls on a thread blocked in `nanosleep`, with every
    /// register (FP/vector state included) given back unchanged.
    #[test]
    fn calls_run_on_a_sleeping_thread_and_registers_come_back_exactly() {
        let sleeper = Sleeper(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = sleeper.0.id();
        std::thread::sleep(Duration::from_millis(100));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut threads = TracedThreads::stop_all(pid, deadline).unwrap();
        let before = Registers::save(pid).unwrap();
        #[cfg(target_arch = "x86_64")]
        assert!(
            before.general().in_syscall(),
            "sleep should be inside nanosleep: {before:?}"
        );

        let entry = address_in(pid, "sleep", None);
        let original = threads
            .memory()
            .read_vec(entry, SCRATCH_CODE.len())
            .unwrap();
        let scratch = ScratchCode::install(&mut threads, entry).unwrap();
        let thread = HijackedThread::new(pid, &scratch).unwrap();
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

        let page = ScratchPage::map(
            &thread,
            &mut threads,
            b"4242\0",
            deadline,
            &mut let_others_run,
        )
        .unwrap();
        // Not an IFUNC (strlen and friends resolve to their resolver).
        let atoi = address_in(pid, "libc", Some("atoi"));
        let stack = StackSpace::below(thread.saved()).call_stack();
        let value = thread
            .call(
                &mut threads,
                atoi,
                &[page.address()],
                stack,
                deadline,
                &mut let_others_run,
            )
            .unwrap();
        assert_eq!(value as u32, 4242);
        page.unmap(&thread, &mut threads, deadline, &mut let_others_run)
            .unwrap();

        // A call that faults is reported, and the thread restored.
        let err = thread
            .call(
                &mut threads,
                atoi,
                &[8],
                stack,
                deadline,
                &mut let_others_run,
            )
            .unwrap_err();
        assert!(
            matches!(err, AttachError::InjectedCallFaulted { .. }),
            "{err}"
        );

        thread.restore().unwrap();
        scratch.remove(&mut threads).unwrap();
        assert_eq!(Registers::save(pid).unwrap(), before);
        assert_eq!(
            threads
                .memory()
                .read_vec(entry, SCRATCH_CODE.len())
                .unwrap(),
            original
        );
        threads.detach_all().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let state = crate::procfs::ProcStatus::read(pid).unwrap().state;
        assert!(matches!(state, 'S' | 'R'), "state {state}");
    }
}
