//! The `pep768` method: CPython 3.14+'s remote-exec protocol, done natively.
//!
//! The protocol is a handful of writes into the target's memory, described
//! by the `_Py_DebugOffsets` table: for a thread state, the path of a script
//! into its `debugger_script_path` buffer, `1` into `debugger_pending_call`,
//! and the "please stop" bit into its eval breaker. At its next eval-breaker
//! check, that thread runs the script with the GIL held, in a fresh
//! namespace; exceptions go to `sys.unraisablehook`, never into the
//! application.
//!
//! `sys.remote_exec` asks only the main thread, which never answers when it
//! is parked in a system call. Peeka asks every thread of the interpreter:
//! the bootstrap is idempotent (the first thread claims the attach with an
//! atomic `mkdir`), and once one thread has claimed it, or the deadline has
//! passed, the requests still pending are withdrawn, so nothing fires later.
//!
//! The eval breaker is also written by the interpreter's own threads, so the
//! read-modify-write happens while every thread of the target is stopped
//! ([`ThreadPause`]).

use std::time::{Duration, Instant};

use crate::bootstrap::Staging;
use crate::debug_offsets::{DebugOffsets, SCRIPT_PATH_SIZE};
use crate::error::AttachError;
use crate::memory::RemoteMemory;
use crate::method::{InjectRequest, Injector, Method, Timeline};
use crate::remote_debug_optout::likely_opt_out;
use crate::runtime_state::main_interpreter;
use crate::target::{RemoteDebug, Target};
use crate::thread_pause::ThreadPause;

/// `_PY_EVAL_PLEASE_STOP_BIT`: the eval-breaker bit that makes a thread look
/// at its pending remote-exec request.
const PLEASE_STOP_BIT: u64 = 1 << 5;

/// More thread states than this means a corrupt list.
const MAX_THREADS: usize = 100_000;

/// The native PEP 768 backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pep768Injector;

/// Where the remote-exec fields live, resolved from the debug offsets.
#[derive(Debug, Clone, Copy)]
struct Fields {
    threads_head: u64,
    thread_next: u64,
    enabled: u64,
    eval_breaker: u64,
    support: u64,
    pending_call: u64,
    script_path: u64,
}

impl Fields {
    fn resolve(offsets: &DebugOffsets) -> Result<Self, AttachError> {
        let get = |group, field| offsets.require(group, field);
        Ok(Self {
            threads_head: get("interpreter_state", "threads_head")?,
            thread_next: get("thread_state", "next")?,
            enabled: get("debugger_support", "remote_debugging_enabled")?,
            eval_breaker: get("debugger_support", "eval_breaker")?,
            support: get("debugger_support", "remote_debugger_support")?,
            pending_call: get("debugger_support", "debugger_pending_call")?,
            script_path: get("debugger_support", "debugger_script_path")?,
        })
    }
}

/// Checks that the method can work for `target`, and returns its fields and
/// the main interpreter's address.
fn preflight(target: &Target) -> Result<(Fields, u64), AttachError> {
    let unavailable = |why: String| AttachError::MethodUnavailable {
        method: Method::Pep768,
        pid: target.pid,
        why,
    };
    let offsets = match (&target.debug_offsets, &target.remote_debug) {
        (_, RemoteDebug::Unsupported) => {
            return Err(unavailable(format!(
                "Python {} has no remote-exec support (it arrived in 3.14); use `--method ptrace`",
                target.python.version
            )))
        }
        (_, RemoteDebug::Disabled) => {
            return Err(AttachError::RemoteDebugDisabled {
                pid: target.pid,
                likely: likely_opt_out(target.pid),
            })
        }
        (Some(offsets), _) if offsets.has_remote_exec() => offsets,
        (_, RemoteDebug::Unknown(why)) => {
            return Err(unavailable(format!(
                "its remote-debug state could not be read: {why}"
            )))
        }
        _ => return Err(unavailable("its debug offsets could not be read".into())),
    };
    let interp = main_interpreter(target).map_err(|e| unavailable(e.to_string()))?;
    Ok((Fields::resolve(offsets)?, interp))
}

/// The thread states of interpreter `interp`.
fn thread_states(
    memory: &RemoteMemory,
    fields: &Fields,
    interp: u64,
) -> Result<Vec<u64>, AttachError> {
    let mut states = Vec::new();
    let mut ts = memory.read_u64(interp + fields.threads_head)?;
    while ts != 0 && states.len() < MAX_THREADS {
        states.push(ts);
        ts = memory.read_u64(ts + fields.thread_next)?;
    }
    Ok(states)
}

/// Writes a remote-exec request of `path` into every thread state.
fn request_everywhere(
    memory: &RemoteMemory,
    fields: &Fields,
    interp: u64,
    path: &[u8],
) -> Result<usize, AttachError> {
    if memory.read_u32(interp + fields.enabled)? != 1 {
        return Err(AttachError::RemoteDebugDisabled {
            pid: memory.pid(),
            likely: likely_opt_out(memory.pid()),
        });
    }
    let states = thread_states(memory, fields, interp)?;
    for &ts in &states {
        let support = ts + fields.support;
        memory.write(support + fields.script_path, path)?;
        memory.write_u32(support + fields.pending_call, 1)?;
        let breaker = memory.read_u64(ts + fields.eval_breaker)?;
        memory.write_u64(ts + fields.eval_breaker, breaker | PLEASE_STOP_BIT)?;
    }
    Ok(states.len())
}

/// Withdraws every request still pending, so that none fires later. The
/// eval-breaker bit is left: a thread that finds it with nothing pending
/// just clears it.
fn withdraw_everywhere(
    memory: &RemoteMemory,
    fields: &Fields,
    interp: u64,
) -> Result<usize, AttachError> {
    let mut withdrawn = 0;
    for ts in thread_states(memory, fields, interp)? {
        let pending = ts + fields.support + fields.pending_call;
        if memory.read_u32(pending)? != 0 {
            memory.write_u32(pending, 0)?;
            withdrawn += 1;
        }
    }
    Ok(withdrawn)
}

/// Withdraws every remote-exec request pending in `target` (CPython
/// 3.14+), with its threads paused for the moment it takes. An attach
/// withdraws what it asked before it returns; an attach whose process was
/// killed first cannot, and its requests fire whenever the threads they
/// were written into next run Python: harmless while the bootstrap they
/// name exists (it finds the attach claimed and returns), but once that
/// file is removed CPython prints "Can't open debugger script" on the
/// target's stderr. Call this before removing a private directory (a
/// failed attach, a detach). Returns how many requests were withdrawn; 0
/// for versions without remote exec.
///
/// # Errors
/// The target cannot be paused or read.
pub fn withdraw_pending_requests(target: &Target) -> Result<usize, AttachError> {
    if target.python.version.minor < 14 {
        return Ok(0);
    }
    let (fields, interp) = preflight(target)?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let pause = ThreadPause::all(target.pid, deadline)?;
    let withdrawn = withdraw_everywhere(&target.memory, &fields, interp);
    pause.resume()?;
    withdrawn
}

impl Injector for Pep768Injector {
    fn method(&self) -> Method {
        Method::Pep768
    }

    fn inject(&self, request: &InjectRequest<'_>) -> Result<Timeline, AttachError> {
        let started = Instant::now();
        let target = request.target;
        let mut timeline = Timeline::default();
        let (fields, interp) = timeline.time("read debug offsets", || preflight(target))?;
        let path = script_path_bytes(request.staging, target.pid)?;
        let memory = &target.memory;

        let requested = {
            let pause = timeline.time("pause threads", || {
                ThreadPause::all(target.pid, request.deadline)
            })?;
            let result = timeline.time("write requests", || {
                request_everywhere(memory, &fields, interp, &path)
            });
            timeline.time("resume threads", || pause.resume())?;
            result?
        };

        let claimed = timeline.time(format!("wait for a thread ({requested} asked)"), || {
            request.staging.wait_claimed(request.deadline)
        });

        // Withdraw the requests the other threads did not take, in every case.
        {
            let deadline = Instant::now() + Duration::from_secs(2);
            let pause =
                timeline.time("pause threads", || ThreadPause::all(target.pid, deadline))?;
            let result = timeline.time("withdraw leftovers", || {
                withdraw_everywhere(memory, &fields, interp)
            });
            timeline.time("resume threads", || pause.resume())?;
            result?;
        }

        if claimed {
            Ok(timeline)
        } else {
            Err(AttachError::Timeout {
                pid: target.pid,
                method: Method::Pep768,
                waited: started.elapsed(),
                advice: "Every thread was asked; none reached Python code (they may all be blocked in system calls or C extensions). Try again while the process is handling work, or give it a longer --timeout.".into(),
            })
        }
    }
}

/// The script path as the target sees it, NUL-terminated, checked against
/// the buffer size.
fn script_path_bytes(staging: &Staging, pid: u32) -> Result<Vec<u8>, AttachError> {
    let mut path = staging.script.to_string_lossy().into_owned().into_bytes();
    path.push(0);
    if path.len() as u64 > SCRIPT_PATH_SIZE || path[..path.len() - 1].contains(&0) {
        return Err(AttachError::MethodUnavailable {
            method: Method::Pep768,
            pid,
            why: format!(
                "the bootstrap path {} is longer than the {SCRIPT_PATH_SIZE}-byte buffer of the protocol",
                staging.script.display()
            ),
        });
    }
    Ok(path)
}
