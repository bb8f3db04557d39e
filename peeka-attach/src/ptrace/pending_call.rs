//! The main route: queue `PyRun_SimpleString(<runner code>)` as a CPython
//! pending call.
//!
//! `PyRun_SimpleString(const char *)` fits the pending-call signature
//! `int (*)(void *)`. A pending call runs at an eval-breaker check (a
//! bytecode boundary), with the GIL held: the point CPython itself chose
//! for asynchronous work. Queueing takes one short internal lock and no
//! thread state, so any stopped thread can do it: a program (see
//! `trampoline`) makes the calls, in pages that also hold the runner code.

use std::time::{Duration, Instant};

use super::remote_call::{HijackedThread, OtherThreads, ProgramEnd};
use super::scratch_page::ScratchPage;
use super::symbols::{Functions, PendingCallQueue};
use super::threads::TracedThreads;
use super::trampoline::{stopped_at, Arg, Assembled, Call, Program, StopIf, VectorSave, SLOTS};
use crate::armed_runner;
use crate::error::AttachError;
use crate::method::Method;

/// The longest the queueing calls may take together.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the runner code starts in its pages (the program comes first).
const TEXT_OFFSET: u64 = 1024;

/// Pages holding a program and the runner code.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RunnerPage {
    page: ScratchPage,
}

impl RunnerPage {
    /// Maps pages with `thread` and writes the runner `code` into them.
    ///
    /// # Errors
    /// The failure of the mapping or the write (nothing stays mapped then).
    pub(crate) fn load(
        thread: &HijackedThread,
        threads: &mut TracedThreads,
        code: &[u8],
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<Self, AttachError> {
        let size = TEXT_OFFSET + code.len() as u64;
        let page = ScratchPage::map(thread, threads, size, deadline, &mut *others)?;
        if let Err(e) = threads.memory().write(page.address() + TEXT_OFFSET, code) {
            let _ = page.unmap(thread, threads, deadline, others);
            return Err(e.into());
        }
        Ok(Self { page })
    }

    /// Writes `program` into the pages and runs it on `thread` (see
    /// [`HijackedThread::run`]). When it cannot be written, the pages are
    /// unmapped and the error returned.
    ///
    /// # Errors
    /// The write's or the run's.
    pub(crate) fn run(
        &self,
        thread: &HijackedThread,
        threads: &mut TracedThreads,
        program: &Program,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<(ProgramEnd, Assembled), AttachError> {
        let assembled = program.assemble(
            self.code_address(),
            thread.continuation(),
            VectorSave::detect(),
        );
        threads
            .memory()
            .write(self.code_address(), &assembled.code)?;
        let end = thread.run(
            threads,
            &assembled,
            self.code_address(),
            [0; SLOTS],
            deadline,
            others,
        )?;
        Ok((end, assembled))
    }

    /// Where the program goes.
    pub(crate) fn code_address(&self) -> u64 {
        self.page.address()
    }

    /// Where the runner code is.
    pub(crate) fn text_address(&self) -> u64 {
        self.page.address() + TEXT_OFFSET
    }

    /// Its size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.page.len()
    }

    /// Turns the runner code into a no-op, for a call that may still run
    /// it after we are gone.
    pub(crate) fn disarm(
        &self,
        threads_memory: &crate::memory::RemoteMemory,
    ) -> Result<(), AttachError> {
        armed_runner::disarm(threads_memory, self.text_address()).map_err(Into::into)
    }

    /// Unmaps the pages with stopped `thread`.
    ///
    /// # Errors
    /// See [`ScratchPage::unmap`].
    pub(crate) fn unmap(
        self,
        thread: &HijackedThread,
        threads: &mut TracedThreads,
        deadline: Instant,
        others: OtherThreads<'_>,
    ) -> Result<(), AttachError> {
        self.page.unmap(thread, threads, deadline, others)
    }
}

/// Queues the runner code with stopped thread `tid` and returns the pages
/// holding it, which the queued call reads when it runs.
///
/// The thread has its continuation (it is where it was) when this
/// returns. When the queueing program could not finish, whether the call
/// was queued is unknown, so the pages are disarmed and left mapped: a
/// queued call must never read unmapped memory.
///
/// # Errors
/// The failure of any step; see [`HijackedThread`].
pub(crate) fn queue_runner(
    threads: &mut TracedThreads,
    tid: u32,
    functions: &Functions,
    code: &[u8],
    landing: u64,
    deadline: Instant,
    others: OtherThreads<'_>,
) -> Result<RunnerPage, AttachError> {
    // Each of these calls takes microseconds; one that hangs is waiting for
    // a lock that will not be released soon.
    let deadline = deadline.min(Instant::now() + QUEUE_TIMEOUT);
    let pid = threads.pid();
    let thread = HijackedThread::new(tid, landing)?;
    let page = RunnerPage::load(&thread, threads, code, deadline, &mut *others)?;
    let program = queue_program(functions, page.text_address());
    let end = page.run(&thread, threads, &program, deadline, &mut *others);
    let slots = match end {
        Ok((ProgramEnd::Finished(slots), _)) => slots,
        Ok((ProgramEnd::StillRunning, _)) => {
            let _ = page.disarm(threads.memory());
            return Err(AttachError::Timeout {
                pid,
                method: Method::Ptrace,
                waited: QUEUE_TIMEOUT,
                advice: "Queueing the pending call did not finish in time (a lock inside the interpreter was held); \
                 the thread finishes it on its own, and the runner code it queues was disabled. Try again."
                    .into(),
            });
        }
        Err(e) => {
            let _ = page.disarm(threads.memory());
            return Err(e);
        }
    };
    if slots[0] == stopped_at(0) && matches!(functions.queue, PendingCallQueue::AnyThread { .. }) {
        let _ = page.unmap(&thread, threads, deadline, others);
        return Err(AttachError::MethodUnavailable {
            method: Method::Ptrace,
            pid,
            why: "the interpreter is not initialized yet (or already finalized); try again in a moment".into(),
        });
    }
    // Both functions return a C int: 0 queued, -1 queue full.
    if slots[2] as u32 != 0 {
        let _ = page.unmap(&thread, threads, deadline, others);
        return Err(AttachError::MethodUnavailable {
            method: Method::Ptrace,
            pid,
            why: "the interpreter's pending-call queue is full (the application is queueing calls faster than it \
                  runs them); try again in a moment"
                .into(),
        });
    }
    Ok(page)
}

/// The calls that queue `PyRun_SimpleString(text)`.
fn queue_program(functions: &Functions, text: u64) -> Program {
    let run = functions.run_simple_string;
    let calls = match functions.queue {
        PendingCallQueue::AnyThread {
            add,
            main_interpreter,
        } => vec![
            Call {
                function: main_interpreter,
                args: vec![],
                result: Some(1),
                stop_if: StopIf::Zero,
            },
            Call {
                function: add,
                args: vec![
                    Arg::Slot(1),
                    Arg::Value(run),
                    Arg::Value(text),
                    Arg::Value(0),
                ],
                result: Some(2),
                stop_if: StopIf::Never,
            },
        ],
        PendingCallQueue::MainThread { add } => vec![Call {
            function: add,
            args: vec![Arg::Value(run), Arg::Value(text)],
            result: Some(2),
            stop_if: StopIf::Never,
        }],
    };
    Program { calls }
}

#[cfg(test)]
mod live_tests {
    use std::path::Path;
    use std::time::Duration;

    use peeka_testkit::{Manifest, TargetProcess};

    use super::*;
    use crate::ptrace::remote_call::let_others_run;
    use crate::target::Target;

    /// `interpreters.main` in `_PyRuntimeState` of 3.12, from the 3.12.1
    /// headers (`offsetof(_PyRuntimeState, interpreters.main)`).
    const MAIN_INTERPRETER_3_12: u64 = 48;

    /// The interpreter `_PyEval_AddPendingCall` is given on 3.12+ is the
    /// one the runtime calls main: checked against the header-derived
    /// offset (3.12) and the debug offsets' `interpreters_head` (3.13+, where
    /// the only interpreter is also the head of the list).
    #[test]
    fn the_any_thread_queue_gets_the_main_interpreter() {
        let Some(manifest) = Manifest::load_or_skip() else {
            return;
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/busy.py");
        for minor in ["3.12", "3.13", "3.14", "3.15"] {
            let Some(python) = manifest.require(minor) else {
                continue;
            };
            let process = TargetProcess::spawn(python, &script, &[], &[]).unwrap();
            let pid = process.pid();
            let target = Target::inspect(pid).unwrap();
            let functions = Functions::resolve(&target).unwrap();
            let PendingCallQueue::AnyThread {
                main_interpreter, ..
            } = functions.queue
            else {
                panic!(
                    "{minor}: expected the any-thread queue, got {:?}",
                    functions.queue
                );
            };
            let runtime = target.runtime_address().unwrap();
            let offset = match &target.debug_offsets {
                Some(offsets) => offsets
                    .require("runtime_state", "interpreters_head")
                    .unwrap(),
                None => MAIN_INTERPRETER_3_12,
            };
            let expected = target.memory.read_u64(runtime + offset).unwrap();

            let deadline = Instant::now() + Duration::from_secs(5);
            let landing = crate::ptrace::landing::find(&target).unwrap();
            let mut threads = TracedThreads::stop_one(pid, pid, deadline).unwrap();
            let thread = HijackedThread::new(pid, landing).unwrap();
            let page =
                RunnerPage::load(&thread, &mut threads, b"\0", deadline, &mut let_others_run)
                    .unwrap();
            let program = Program {
                calls: vec![Call {
                    function: main_interpreter,
                    args: vec![],
                    result: Some(1),
                    stop_if: StopIf::Never,
                }],
            };
            let assembled = program.assemble(
                page.code_address(),
                thread.continuation(),
                VectorSave::detect(),
            );
            threads
                .memory()
                .write(page.code_address(), &assembled.code)
                .unwrap();
            let end = thread
                .run(
                    &mut threads,
                    &assembled,
                    page.code_address(),
                    [0; SLOTS],
                    deadline,
                    &mut let_others_run,
                )
                .unwrap();
            let ProgramEnd::Finished(slots) = end else {
                panic!("{minor}: the program did not finish: {end:?}");
            };
            assert_eq!(slots[0], 0, "{minor}: status");
            let interpreter = slots[1];
            page.unmap(&thread, &mut threads, deadline, &mut let_others_run)
                .unwrap();
            threads.detach_all().unwrap();
            assert_ne!(interpreter, 0, "{minor}");
            assert_eq!(
                interpreter, expected,
                "{minor}: PyInterpreterState_Main() vs _PyRuntime"
            );
        }
    }
}
