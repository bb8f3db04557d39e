//! The direct route: run the bootstrap on a thread that is blocked in a
//! system call with the GIL released.
//!
//! A thread that waits in `select()`, `time.sleep()`, `Event.wait()`,
//! `queue.get()` or `accept()` released the GIL first
//! (`Py_BEGIN_ALLOW_THREADS`): its thread state is detached, and it holds
//! no lock of the interpreter. C code that released the GIL may call back
//! into Python from there with `PyGILState_Ensure()`; this route makes
//! the stopped thread do exactly that, through a program (see
//! `trampoline`):
//!
//! 1. `PyGILState_GetThisThreadState()`: NULL means the thread never ran
//!    Python; stop.
//! 2. `PyGILState_Check()`: non-zero means it holds the GIL (C code that
//!    blocks without releasing it); stop.
//! 3. `PyGILState_Ensure()`, `PyErr_Fetch`, `PyRun_SimpleString(<runner
//!    code>)`, `PyErr_Restore`, `PyGILState_Release()`.
//!
//! Then the thread goes back into its system call, restarted as the
//! kernel restarts it after any stop: no `EINTR`, and the time it waited
//! counts against its timeout as before.
//!
//! Which threads qualify ([`eligible`]), judged from the registers of the
//! stopped thread, never from a guess: the system call it is inside must
//! be one that blocks waiting for an event (polling, sleeping, reading,
//! accepting, waiting for a child or a signal), or a `futex` wait of the
//! kind semaphores and condition variables make (`FUTEX_WAIT_BITSET`,
//! which CPython's locks, `Event` and `Condition` use), on a word outside
//! the interpreter's own static data (so never the GIL's condition
//! variable, whose waiter is between two halves of `take_gil`). A plain
//! `FUTEX_WAIT` is what glibc's mutexes (the allocator's among them) make:
//! a thread waiting there may be inside a C library lock, and is never
//! used. Memory-management calls (`mmap`, `brk`, `munmap`, ...), which
//! the allocator makes with its lock held, are never used either.

use std::time::{Duration, Instant};

use super::pending_call::RunnerPage;
use super::registers::GeneralRegs;
use super::remote_call::{let_others_run, HijackedThread, OtherThreads, ProgramEnd};
use super::requests;
use super::symbols::{Functions, GilState};
use super::threads::Event;
use super::threads::TracedThreads;
use super::trampoline::{stopped_at, Arg, Call, Program, StopIf};
use crate::error::AttachError;

/// System calls that block waiting for an event, made by Python with the
/// GIL released (x86-64 numbers).
const WAITING_SYSCALLS: &[(u64, &str)] = &[
    (0, "read"),
    (7, "poll"),
    (17, "pread64"),
    (19, "readv"),
    (23, "select"),
    (34, "pause"),
    (35, "nanosleep"),
    (42, "connect"),
    (43, "accept"),
    (45, "recvfrom"),
    (47, "recvmsg"),
    (61, "wait4"),
    (128, "rt_sigtimedwait"),
    (130, "rt_sigsuspend"),
    (230, "clock_nanosleep"),
    (232, "epoll_wait"),
    (247, "waitid"),
    (270, "pselect6"),
    (271, "ppoll"),
    (281, "epoll_pwait"),
    (288, "accept4"),
    (295, "preadv"),
    (299, "recvmmsg"),
    (441, "epoll_pwait2"),
];

/// `futex`.
const SYS_FUTEX: u64 = 202;

/// In the interpreter's data ranges, the range that rules out every futex
/// wait. From 3.13 CPython's internal mutexes (`PyMutex`: the runtime's
/// thread-state list lock, the import lock, ...) park waiting threads on a
/// semaphore on their own stack, exactly as `threading.Lock` does: a thread
/// waiting there cannot be told from one waiting in `Event.wait()`, and
/// running the bootstrap on it could deadlock on the very lock it waits
/// for.
pub(crate) const NO_FUTEX_WAITS: (u64, u64) = (0, u64::MAX);
/// `FUTEX_WAIT_BITSET`, without the private and clock flags.
const FUTEX_WAIT_BITSET: u64 = 9;
/// The flags a futex operation may carry.
const FUTEX_FLAGS: u64 = 128 | 256;

/// Whether the stopped thread with registers `regs` is inside (blocked in,
/// or just returning from) a system call with the GIL released, waiting
/// for an event, and outside any lock of the C library.
/// `interpreter_data` are the address ranges of the interpreter's file
/// mappings. `Err` says why not.
pub(crate) fn eligible(
    regs: &GeneralRegs,
    interpreter_data: &[(u64, u64)],
) -> Result<&'static str, String> {
    let Some(number) = regs.syscall_number() else {
        return Err("it is running, not blocked in a system call".into());
    };
    eligible_call(number, regs.syscall_args(), interpreter_data)
}

/// [`eligible`] for system call `number` with `args` (as
/// `/proc/PID/task/TID/syscall` shows them for a blocked thread).
pub(crate) fn eligible_call(
    number: u64,
    args: [u64; 6],
    interpreter_data: &[(u64, u64)],
) -> Result<&'static str, String> {
    if let Some(&(_, name)) = WAITING_SYSCALLS.iter().find(|(n, _)| *n == number) {
        return Ok(name);
    }
    if number == SYS_FUTEX {
        let [address, op, ..] = args;
        if op & !FUTEX_FLAGS != FUTEX_WAIT_BITSET {
            return Err(format!(
                "it waits in futex operation {op:#x}, as a C library lock does"
            ));
        }
        if interpreter_data.contains(&NO_FUTEX_WAITS) {
            return Err(
                "it waits on a semaphore, and from 3.13 CPython's own locks park threads on \
                        semaphores just like the application's: no futex wait is used"
                    .into(),
            );
        }
        if interpreter_data
            .iter()
            .any(|&(start, end)| (start..end).contains(&address))
        {
            return Err("it waits on a lock of the interpreter itself (such as the GIL)".into());
        }
        return Ok("futex");
    }
    Err(format!("system call {number} is not a wait"))
}

/// Follows stopped thread `tid` through its system calls for up to
/// `window` and leaves it stopped where it qualifies for the route: inside
/// a waiting system call now, at the exit of the next one it makes (a busy
/// thread that sleeps or polls between bursts of work), or blocked in one
/// when the window ends. `Ok(Err(why))` when it does not qualify; it is
/// stopped then too.
///
/// # Errors
/// A failed ptrace request.
pub(crate) fn stop_where_eligible(
    threads: &mut TracedThreads,
    tid: u32,
    interpreter_data: &[(u64, u64)],
    window: Duration,
) -> Result<Result<&'static str, String>, AttachError> {
    let read = |tid| {
        GeneralRegs::read(tid).map_err(|source| AttachError::Ptrace {
            op: "getregset",
            tid,
            source,
        })
    };
    let regs = read(tid)?;
    if let Ok(name) = eligible(&regs, interpreter_data) {
        return Ok(Ok(name));
    }
    let until = Instant::now() + window;
    let mut interrupted = false;
    let mut why = "it makes no system call".to_owned();
    loop {
        if !threads.is_stopped(tid) && !interrupted && Instant::now() >= until {
            // Blocked, or running without system calls: stop it and look.
            threads.interrupt(tid)?;
            interrupted = true;
        }
        if threads.is_stopped(tid) {
            if interrupted {
                let regs = read(tid)?;
                threads.keep_stopped(tid);
                return Ok(eligible(&regs, interpreter_data));
            }
            threads.resume_tracing_syscalls(tid)?;
        }
        let wake = if interrupted {
            Instant::now() + STOP_WAIT
        } else {
            until
        };
        match threads.next_event(wake)? {
            Some(Event::Syscall { tid: t }) if t == tid => {
                let at_exit =
                    requests::at_syscall_exit(tid).map_err(|source| AttachError::Ptrace {
                        op: "get_syscall_info",
                        tid,
                        source,
                    })?;
                if at_exit {
                    let regs = read(tid)?;
                    match eligible(&regs, interpreter_data) {
                        Ok(name) => {
                            threads.keep_stopped(tid);
                            return Ok(Ok(name));
                        }
                        // Any stop ends a pending interrupt: this is it.
                        Err(reason) if interrupted => {
                            threads.keep_stopped(tid);
                            return Ok(Err(reason));
                        }
                        Err(reason) => why = reason,
                    }
                } else if interrupted {
                    // An entry: let the call start, and stop it inside.
                    threads.resume_tracing_syscalls(tid)?;
                    threads.interrupt(tid)?;
                }
            }
            // Delivered when the thread is resumed.
            Some(Event::Signal { tid: t, .. }) if t == tid && interrupted => {
                threads.resume_tracing_syscalls(tid)?;
                threads.interrupt(tid)?;
            }
            Some(Event::Signal { tid: t, .. }) if t == tid => {}
            Some(Event::Exited { tid: t }) if t == tid => return Ok(Err("it exited".into())),
            Some(other) => let_others_run(threads, other)?,
            None if interrupted && !threads.is_stopped(tid) => {
                return Ok(Err(format!("it did not stop ({why})")));
            }
            None => {}
        }
    }
}

/// How one try of the route ended.
#[derive(Debug)]
pub(crate) enum DirectOutcome {
    /// The thread ran the bootstrap and is back where it was; the pages
    /// are unmapped.
    Ran,
    /// The thread turned out unsuitable (why); nothing was run.
    Unsuitable(String),
    /// The thread is still waiting for the GIL (or running the bootstrap)
    /// at the deadline; it finishes on its own, and its pages must stay
    /// mapped until then (disarm them when the bootstrap is no longer
    /// wanted).
    StillRunning(RunnerPage),
}

/// What the route runs, and where.
#[derive(Clone, Copy)]
pub(crate) struct Bootstrap<'a> {
    /// The interpreter's functions.
    pub(crate) functions: &'a Functions,
    /// Its `PyGILState_*` functions.
    pub(crate) gil: GilState,
    /// The runner code, NUL-terminated.
    pub(crate) code: &'a [u8],
    /// Where system-call trampolines go (see `landing`).
    pub(crate) landing: u64,
    /// The address ranges of the interpreter's data (see [`eligible`]).
    pub(crate) interpreter_data: &'a [(u64, u64)],
    /// Whether the agent the bootstrap starts has reported: other threads
    /// held back to let the bootstrap get the GIL are held until then
    /// (bounded), so that the agent's loader gets it too.
    pub(crate) agent_reported: &'a dyn Fn() -> bool,
    /// When the attach gives up: nothing is held past it.
    pub(crate) give_up_at: Instant,
}

impl std::fmt::Debug for Bootstrap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bootstrap")
            .field("landing", &format_args!("{:#x}", self.landing))
            .finish_non_exhaustive()
    }
}

/// Runs the bootstrap on stopped thread `tid`, which [`eligible`]
/// accepted.
///
/// # Errors
/// The failure of a step (the thread is back where it was, or left to
/// finish the program by itself).
pub(crate) fn run_bootstrap(
    threads: &mut TracedThreads,
    tid: u32,
    bootstrap: Bootstrap<'_>,
    deadline: Instant,
    others: OtherThreads<'_>,
) -> Result<DirectOutcome, AttachError> {
    let Bootstrap {
        functions,
        gil,
        code,
        landing,
        interpreter_data,
        agent_reported,
        give_up_at,
    } = bootstrap;
    let thread = HijackedThread::new(tid, landing)?;
    // Mapping takes one system call: bounded on its own, whatever the
    // (short) time the program is followed.
    let page = RunnerPage::load(
        &thread,
        threads,
        code,
        Instant::now() + UNMAP_TIMEOUT,
        &mut *others,
    )?;
    let program = bootstrap_program(functions, gil, page.text_address());
    let end = page.run(&thread, threads, &program, deadline, &mut *others);
    let slots = match end {
        Ok((ProgramEnd::Finished(slots), _)) => slots,
        Ok((ProgramEnd::StillRunning, assembled)) => {
            let hold = Hold {
                interpreter_data,
                agent_reported,
                give_up_at,
            };
            match hand_over_the_gil(threads, &thread, &assembled, hold) {
                Ok(ProgramEnd::Finished(slots)) => slots,
                Ok(ProgramEnd::StillRunning) => return Ok(DirectOutcome::StillRunning(page)),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    // The program is done: its pages go, whatever the attach's deadline.
    page.unmap(&thread, threads, Instant::now() + UNMAP_TIMEOUT, others)?;
    Ok(match slots[0] {
        0 => DirectOutcome::Ran,
        status if status == stopped_at(0) => {
            DirectOutcome::Unsuitable("it never ran Python (it has no thread state)".into())
        }
        status if status == stopped_at(1) => {
            DirectOutcome::Unsuitable("it holds the GIL while blocked".into())
        }
        status => DirectOutcome::Unsuitable(format!("the program stopped with status {status}")),
    })
}

/// How long a thread asked to stop may take to do so.
const STOP_WAIT: Duration = Duration::from_millis(500);

/// How long mapping or unmapping the pages of a program may take.
const UNMAP_TIMEOUT: Duration = Duration::from_secs(2);

/// How long other threads may be held at the door of their waits while a
/// hijacked thread waits for the GIL.
const HANDOVER: Duration = Duration::from_secs(1);

/// How long they may be held after that, until the agent's loader (which
/// needs the GIL as well) has reported.
const LOADER_HOLD: Duration = Duration::from_secs(2);

/// What [`hand_over_the_gil`] needs to know.
struct Hold<'a> {
    interpreter_data: &'a [(u64, u64)],
    agent_reported: &'a dyn Fn() -> bool,
    give_up_at: Instant,
}

/// Helps a hijacked thread that waits for the GIL get it, in a process
/// whose threads take it back as soon as they drop it (CPython 3.8-3.10
/// hand the GIL over unfairly: a thread that sleeps or polls in a tight
/// loop starves the others): every other thread is traced, and held at
/// the entry of the next waiting system call it makes (it released the
/// GIL just before, and the call has not started, so holding it there
/// changes nothing it can observe but the time). Once the hijacked thread
/// is through (or after [`HANDOVER`]), they are let go when `threads` is
/// detached. If we die meanwhile, they are detached by the kernel and make
/// their calls.
fn hand_over_the_gil(
    threads: &mut TracedThreads,
    thread: &HijackedThread,
    program: &super::trampoline::Assembled,
    hold_back: Hold<'_>,
) -> Result<ProgramEnd, AttachError> {
    let Hold {
        interpreter_data,
        agent_reported,
        give_up_at,
    } = hold_back;
    threads.follow_other_threads()?;
    let mut hold = |threads: &mut TracedThreads, event: Event| -> Result<(), AttachError> {
        match event {
            Event::Syscall { tid } => {
                let at_entry = !requests::at_syscall_exit(tid).unwrap_or(true);
                let waiting = GeneralRegs::read(tid)
                    .is_ok_and(|regs| eligible(&regs, interpreter_data).is_ok());
                if at_entry && waiting {
                    threads.keep_stopped(tid);
                    Ok(())
                } else {
                    threads.resume_tracing_syscalls(tid)
                }
            }
            Event::Signal { tid, .. } => threads.resume_tracing_syscalls(tid),
            Event::Exited { .. } => Ok(()),
        }
    };
    let until = give_up_at.min(Instant::now() + HANDOVER);
    let end = thread.finish(threads, program, until, &mut hold)?;
    if matches!(end, ProgramEnd::Finished(_)) {
        // The agent's loader, started by the bootstrap, needs the GIL too.
        let until = give_up_at.min(Instant::now() + LOADER_HOLD);
        while !agent_reported() && Instant::now() < until {
            match threads.next_event(Instant::now() + Duration::from_millis(1))? {
                Some(event) => hold(threads, event)?,
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
    }
    Ok(end)
}

/// Slots of the program.
const THREAD_STATE: usize = 1;
const HOLDS_GIL: usize = 2;
const GIL_STATE: usize = 3;
const ERROR: usize = 4; // 4, 5, 6: type, value, traceback
const RESULT: usize = 7;

fn bootstrap_program(functions: &Functions, gil: GilState, text: u64) -> Program {
    let call = |function, args: Vec<Arg>, result, stop_if| Call {
        function,
        args,
        result,
        stop_if,
    };
    let mut calls = vec![
        call(
            gil.this_thread_state,
            vec![],
            Some(THREAD_STATE),
            StopIf::Zero,
        ),
        call(gil.check, vec![], Some(HOLDS_GIL), StopIf::NonZeroInt),
        call(gil.ensure, vec![], Some(GIL_STATE), StopIf::Never),
    ];
    let error = [ERROR, ERROR + 1, ERROR + 2];
    if let Some((fetch, _)) = functions.error_fetch_restore {
        calls.push(call(
            fetch,
            error.map(Arg::SlotAddress).to_vec(),
            None,
            StopIf::Never,
        ));
    }
    calls.push(call(
        functions.run_simple_string,
        vec![Arg::Value(text)],
        Some(RESULT),
        StopIf::Never,
    ));
    if let Some((_, restore)) = functions.error_fetch_restore {
        calls.push(call(
            restore,
            error.map(Arg::Slot).to_vec(),
            None,
            StopIf::Never,
        ));
    }
    calls.push(call(
        gil.release,
        vec![Arg::Slot(GIL_STATE)],
        None,
        StopIf::Never,
    ));
    Program { calls }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(number: u64, result: i64, args: [u64; 2]) -> GeneralRegs {
        let mut regs = GeneralRegs::zeroed();
        // Puts the arguments in rdi and rsi (and clears orig_rax).
        regs.set_syscall(0, 0, 0, [args[0], args[1], 0, 0, 0, 0]);
        regs.set_syscall_number(number);
        regs.set_return_value(result as u64);
        regs
    }

    #[test]
    fn waits_qualify_and_locks_do_not() {
        let python = [(0x1000, 0x2000)];
        assert_eq!(eligible(&blocked(23, -514, [0, 0]), &python), Ok("select"));
        assert_eq!(
            eligible(&blocked(230, -516, [0, 0]), &python),
            Ok("clock_nanosleep")
        );
        // A semaphore (Lock.acquire, Event.wait) on the heap.
        assert_eq!(
            eligible(&blocked(202, -512, [0x9000, 0x89]), &python),
            Ok("futex")
        );
        // The GIL's condition variable lives in the interpreter's data.
        assert!(eligible(&blocked(202, -512, [0x1800, 0x89]), &python).is_err());
        // From 3.13, no futex wait at all.
        let from_3_13 = [(0x1000, 0x2000), NO_FUTEX_WAITS];
        assert!(eligible(&blocked(202, -512, [0x9000, 0x89]), &from_3_13).is_err());
        assert_eq!(
            eligible(&blocked(23, -514, [0, 0]), &from_3_13),
            Ok("select")
        );
        // A glibc mutex (FUTEX_WAIT_PRIVATE), e.g. the allocator's.
        assert!(eligible(&blocked(202, -512, [0x9000, 0x80]), &python).is_err());
        // mmap, which the allocator makes holding its lock.
        assert!(eligible(&blocked(9, -512, [0, 0]), &python).is_err());
        // Returning from a wait (a stop at its exit) qualifies too.
        assert_eq!(eligible(&blocked(23, 1, [0, 0]), &python), Ok("select"));
        // A running thread does not.
        let mut running = GeneralRegs::zeroed();
        running.leave_syscall();
        assert!(eligible(&running, &python).is_err());
    }

    #[test]
    fn the_program_restores_the_exception_and_releases_the_gil() {
        let functions = Functions {
            run_simple_string: 0x10,
            queue: super::super::symbols::PendingCallQueue::MainThread { add: 0x20 },
            gil_state: None,
            error_fetch_restore: Some((0x30, 0x40)),
        };
        let gil = GilState {
            this_thread_state: 1,
            check: 2,
            ensure: 3,
            release: 4,
        };
        let program = bootstrap_program(&functions, gil, 0x5000);
        let order: Vec<u64> = program.calls.iter().map(|c| c.function).collect();
        assert_eq!(order, [1, 2, 3, 0x30, 0x10, 0x40, 4]);
        assert_eq!(program.calls[4].args, [Arg::Value(0x5000)]);
        assert_eq!(program.calls[6].args, [Arg::Slot(GIL_STATE)]);
    }
}
