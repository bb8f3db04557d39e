//! The main route: queue `PyRun_SimpleString(<runner code>)` as a CPython
//! pending call.
//!
//! `PyRun_SimpleString(const char *)` fits the pending-call signature
//! `int (*)(void *)`. A pending call runs at an eval-breaker check (a
//! bytecode boundary), with the GIL held: the point CPython itself chose
//! for asynchronous work. Queueing takes one short internal lock and no
//! thread state, so any stopped thread can do it.

use std::time::{Duration, Instant};

use super::remote_call::{HijackedThread, OtherThreads, ScratchCode, StackSpace};
use super::scratch_page::ScratchPage;
use super::symbols::{Functions, PendingCallQueue};
use super::threads::TracedThreads;
use crate::error::AttachError;
use crate::method::Method;

/// The longest the queueing calls may take together.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// Queues the runner code with stopped thread `tid` and returns the page
/// holding it, which the queued call reads when it runs.
///
/// The thread's registers and the scratch code are restored before this
/// returns. When the queueing call itself fails midway (a fault, a
/// timeout), whether the call was queued is unknown, so the page is left
/// mapped: a queued call must never read unmapped memory.
///
/// # Errors
/// The failure of any step; see [`HijackedThread`].
pub(crate) fn queue_runner(
    threads: &mut TracedThreads,
    tid: u32,
    functions: &Functions,
    code: &[u8],
    deadline: Instant,
    others: OtherThreads<'_>,
) -> Result<ScratchPage, AttachError> {
    // Each of these calls takes microseconds; one that hangs is waiting for
    // a lock that will not be released.
    let deadline = deadline.min(Instant::now() + QUEUE_TIMEOUT);
    let scratch = ScratchCode::install(threads, functions.scratch)?;
    let thread = match HijackedThread::new(tid, &scratch) {
        Ok(thread) => thread,
        Err(e) => {
            let _ = scratch.remove(threads);
            return Err(e);
        }
    };
    let queued = queue_with(&thread, threads, functions, code, deadline, others);
    let restored = thread.restore();
    let removed = scratch.remove(threads);
    let page = queued?;
    restored?;
    removed?;
    Ok(page)
}

fn queue_with(
    thread: &HijackedThread,
    threads: &mut TracedThreads,
    functions: &Functions,
    code: &[u8],
    deadline: Instant,
    others: OtherThreads<'_>,
) -> Result<ScratchPage, AttachError> {
    let pid = threads.pid();
    let page = ScratchPage::map(thread, threads, code, deadline, &mut *others)?;
    let stack = StackSpace::below(thread.saved()).call_stack();
    let status = match functions.queue {
        PendingCallQueue::AnyThread {
            add,
            main_interpreter,
        } => {
            let interpreter = match thread.call(
                threads,
                main_interpreter,
                &[],
                stack,
                deadline,
                &mut *others,
            ) {
                Ok(interpreter) => interpreter,
                Err(e) => {
                    let _ = page.unmap(thread, threads, deadline, others);
                    return Err(e);
                }
            };
            if interpreter == 0 {
                let _ = page.unmap(thread, threads, deadline, others);
                return Err(AttachError::MethodUnavailable {
                    method: Method::Ptrace,
                    pid,
                    why: "the interpreter is not initialized yet (or already finalized); try again in a moment"
                        .into(),
                });
            }
            let args = [interpreter, functions.run_simple_string, page.address(), 0];
            thread.call(threads, add, &args, stack, deadline, &mut *others)?
        }
        PendingCallQueue::MainThread { add } => {
            let args = [functions.run_simple_string, page.address()];
            thread.call(threads, add, &args, stack, deadline, &mut *others)?
        }
    };
    // Both functions return a C int: 0 queued, -1 queue full.
    if status as u32 != 0 {
        let _ = page.unmap(thread, threads, deadline, others);
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
            let mut threads = TracedThreads::stop_one(pid, pid, deadline).unwrap();
            let scratch = ScratchCode::install(&mut threads, functions.scratch).unwrap();
            let thread = HijackedThread::new(pid, &scratch).unwrap();
            let stack = StackSpace::below(thread.saved()).call_stack();
            let interpreter = thread
                .call(
                    &mut threads,
                    main_interpreter,
                    &[],
                    stack,
                    deadline,
                    &mut let_others_run,
                )
                .unwrap();
            thread.restore().unwrap();
            scratch.remove(&mut threads).unwrap();
            threads.detach_all().unwrap();
            assert_ne!(interpreter, 0, "{minor}");
            assert_eq!(
                interpreter, expected,
                "{minor}: PyInterpreterState_Main() vs _PyRuntime"
            );
        }
    }
}
