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
//!
//! A request is only taken by a thread that runs Python. When none does
//! (an idle server: every thread blocked in `accept()`, `queue.get()`,
//! `Event().wait()`), [`Pep768Injector`] waits until the deadline.
//! `auto` runs [`Pep768UnlessIdle`] instead when the ptrace method can
//! follow: once no thread of the interpreter has run Python for
//! [`NO_TAKER_WINDOW`] while the requests were pending (the GIL free and
//! every thread of the interpreter blocked in a system call, looked at
//! through `/proc` and the debug offsets, without stopping anything), it
//! withdraws every request and returns [`AttachError::NoTaker`], and `auto`
//! goes on with the ptrace method's GIL-released route in the same attach.

use std::time::{Duration, Instant};

use crate::bootstrap::Staging;
use crate::debug_offsets::DebugOffsetsError;
use crate::debug_offsets::{DebugOffsets, SCRIPT_PATH_SIZE};
use crate::error::AttachError;
use crate::memory::{MemoryError, RemoteMemory};
use crate::method::{InjectRequest, Injector, Method, Timeline};
use crate::ptrace::tasks::{look_at_threads, ThreadActivity, ThreadLook};
use crate::remote_debug_optout::likely_opt_out;
use crate::runtime_state::main_interpreter;
use crate::target::{RemoteDebug, Target};
use crate::thread_pause::ThreadPause;

/// `_PY_EVAL_PLEASE_STOP_BIT`: the eval-breaker bit that makes a thread look
/// at its pending remote-exec request.
const PLEASE_STOP_BIT: u64 = 1 << 5;

/// More thread states than this means a corrupt list.
const MAX_THREADS: usize = 100_000;

/// How long [`Pep768UnlessIdle`] (what `auto` runs) lets the requests wait
/// while no thread of the interpreter runs Python, before it withdraws
/// them and gives way to the next method. A thread that runs Python takes
/// a request within microseconds (at its next eval-breaker check), so
/// this only matters when none does.
pub const NO_TAKER_WINDOW: Duration = Duration::from_millis(30);

/// How often the wait for a taker looks at the threads.
const LOOK_EVERY: Duration = Duration::from_millis(3);

/// The longest pause between two looks at the claim.
const CLAIM_POLL_MAX: Duration = Duration::from_millis(2);

/// The native PEP 768 backend: every thread of the interpreter is asked,
/// and the attach waits for one of them to run Python until the deadline.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pep768Injector;

/// The PEP 768 backend as `auto` runs it when another method can follow:
/// as [`Pep768Injector`], except that once no thread of the interpreter
/// has run Python for `window` in a row while the requests were pending
/// (the GIL free, when the debug offsets tell, and every thread of the
/// interpreter blocked in a system call), it withdraws every request,
/// looks once more whether a thread claimed the attach meanwhile (then it
/// succeeded), and otherwise fails with [`AttachError::NoTaker`]: nothing
/// is left pending, so the next method may run. While some thread runs,
/// it waits as [`Pep768Injector`] does, until the deadline: a busy target
/// always gets PEP 768.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pep768UnlessIdle {
    /// How long nobody may run Python before the requests are withdrawn.
    pub window: Duration,
}

impl Default for Pep768UnlessIdle {
    fn default() -> Self {
        Self {
            window: NO_TAKER_WINDOW,
        }
    }
}

/// Where the remote-exec fields live, resolved from the debug offsets.
#[derive(Debug, Clone, Copy)]
struct Fields {
    threads: ThreadFields,
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
            threads: ThreadFields::resolve(offsets)?,
            enabled: get("debugger_support", "remote_debugging_enabled")?,
            eval_breaker: get("debugger_support", "eval_breaker")?,
            support: get("debugger_support", "remote_debugger_support")?,
            pending_call: get("debugger_support", "debugger_pending_call")?,
            script_path: get("debugger_support", "debugger_script_path")?,
        })
    }
}

/// Where the interpreter keeps its thread states and its GIL (3.13+, from
/// the debug offsets).
#[derive(Debug, Clone, Copy)]
struct ThreadFields {
    threads_head: u64,
    thread_next: u64,
    native_thread_id: u64,
    /// `ceval.gil`: a pointer to the GIL the interpreter uses.
    ceval_gil: u64,
    /// `_gil`, `_gil.locked` and `_gil.last_holder`, from the start of the
    /// interpreter state.
    gil: u64,
    gil_locked: u64,
    gil_holder: u64,
}

impl ThreadFields {
    fn resolve(offsets: &DebugOffsets) -> Result<Self, DebugOffsetsError> {
        let get = |group, field| offsets.require(group, field);
        Ok(Self {
            threads_head: get("interpreter_state", "threads_head")?,
            thread_next: get("thread_state", "next")?,
            native_thread_id: get("thread_state", "native_thread_id")?,
            ceval_gil: get("interpreter_state", "ceval_gil")?,
            gil: get("interpreter_state", "gil_runtime_state")?,
            gil_locked: get("interpreter_state", "gil_runtime_state_locked")?,
            gil_holder: get("interpreter_state", "gil_runtime_state_holder")?,
        })
    }
}

/// Who holds the GIL, at one read of the interpreter's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gil {
    /// Nobody: no thread of the interpreter is running Python.
    Free,
    /// A thread holds it: it runs Python, or C code that kept the GIL.
    /// `tid` is its thread id when its thread state is one of those read.
    Held {
        /// The holder's thread id (in the target's pid namespace).
        tid: Option<u32>,
    },
}

/// Reads who holds the GIL of interpreter `interp`; `threads` maps thread
/// states to thread ids. Reads only: nothing is stopped. `None` when it
/// cannot be read.
fn read_gil(
    memory: &RemoteMemory,
    fields: &ThreadFields,
    interp: u64,
    threads: &[(u64, u32)],
) -> Option<Gil> {
    let locked_at = fields.gil_locked.checked_sub(fields.gil)?;
    let holder_at = fields.gil_holder.checked_sub(fields.gil)?;
    let gil = match memory.read_u64(interp + fields.ceval_gil).ok()? {
        0 => interp + fields.gil,
        pointer => pointer,
    };
    // `int locked`: -1 before the GIL is created, 0 free, 1 held.
    if (memory.read_u32(gil + locked_at).ok()? as i32) <= 0 {
        return Some(Gil::Free);
    }
    let holder = memory.read_u64(gil + holder_at).ok()?;
    Some(Gil::Held {
        tid: threads
            .iter()
            .find(|(state, _)| *state == holder)
            .map(|&(_, tid)| tid),
    })
}

/// Each thread state of interpreter `interp` with its thread's native id
/// (0 for a thread that has not started).
fn python_threads(
    memory: &RemoteMemory,
    fields: &ThreadFields,
    interp: u64,
) -> Result<Vec<(u64, u32)>, MemoryError> {
    let mut threads = Vec::new();
    for state in thread_states(memory, fields, interp)? {
        let tid = memory.read_u64(state + fields.native_thread_id)?;
        threads.push((state, u32::try_from(tid).unwrap_or(0)));
    }
    Ok(threads)
}

/// The interpreter's threads and its GIL, read from the target's memory
/// without stopping anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PythonLook {
    /// Each thread state and its thread's native id.
    pub(crate) threads: Vec<(u64, u32)>,
    /// Who holds the GIL; `None` when it could not be read.
    pub(crate) gil: Option<Gil>,
}

/// Looks at the main interpreter's threads and GIL (3.13+, through the
/// debug offsets), without stopping the target: its threads run on while
/// the list is walked, so this is a look, not a snapshot (the doctor's use).
///
/// # Errors
/// Why it could not be read (another version, no debug offsets, memory).
pub(crate) fn look_at_python(target: &Target) -> Result<PythonLook, String> {
    let offsets = target
        .debug_offsets
        .as_ref()
        .ok_or("its debug offsets (3.13+) could not be read")?;
    let fields = ThreadFields::resolve(offsets).map_err(|e| e.to_string())?;
    let interp = main_interpreter(target).map_err(|e| e.to_string())?;
    let threads = python_threads(&target.memory, &fields, interp).map_err(|e| e.to_string())?;
    let gil = read_gil(&target.memory, &fields, interp, &threads);
    Ok(PythonLook { threads, gil })
}

/// Whether a thread of the interpreter may be running Python, from one look
/// at the threads (`/proc`) and, when known, at the GIL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PythonActivity {
    /// Nobody runs Python: every one of the `threads` threads looked at
    /// (the interpreter's own, when they are known, else all of the
    /// process's) is blocked in a system call, and the GIL is free
    /// (`gil_free`; `false` when it could not be read).
    Nobody {
        /// How many threads were looked at.
        threads: usize,
        /// Whether the GIL was read and found free.
        gil_free: bool,
    },
    /// A thread holds the GIL: it runs Python, or C code that kept it
    /// (`blocked`: it is blocked in a system call, holding it).
    GilHeld {
        /// The holder, when it is known.
        tid: Option<u32>,
        /// Whether the holder is blocked in a system call.
        blocked: bool,
    },
    /// These threads are on a CPU (or in a state `/proc` did not tell):
    /// any of them may run Python. Empty when no thread of the
    /// interpreter could be found.
    Running(Vec<u32>),
}

impl PythonActivity {
    /// Whether nobody runs Python.
    pub(crate) fn is_nobody(&self) -> bool {
        matches!(self, Self::Nobody { .. })
    }

    /// Why nobody runs Python, for messages: "every thread was blocked in a
    /// system call ...".
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Nobody { threads, gil_free } => format!(
                "every thread of the interpreter ({threads}) was blocked in a system call{}",
                if *gil_free {
                    " and the GIL was free"
                } else {
                    ""
                }
            ),
            Self::GilHeld {
                tid: Some(tid),
                blocked: true,
            } => {
                format!("thread {tid} holds the GIL while blocked in a system call")
            }
            Self::GilHeld { tid: Some(tid), .. } => format!("thread {tid} holds the GIL"),
            Self::GilHeld { tid: None, .. } => "a thread holds the GIL".into(),
            Self::Running(tids) if tids.is_empty() => {
                "no thread of the interpreter was found".into()
            }
            Self::Running(tids) => format!("thread {} was running", tids[0]),
        }
    }
}

/// Decides [`PythonActivity`] from one look at the threads (`looks`, from
/// `/proc`), the interpreter's thread states with their native ids
/// (`threads`; empty when unknown) and the GIL (`gil`). The interpreter's
/// threads are told apart by their native ids only when every one of them
/// is found among `looks` (not so for a target in another pid namespace,
/// whose ids differ from ours): otherwise every thread of the process
/// counts. Pure: the attach and the doctor decide with it.
pub(crate) fn python_activity(
    looks: &[ThreadLook],
    threads: &[(u64, u32)],
    gil: Option<Gil>,
) -> PythonActivity {
    let started: Vec<u32> = threads
        .iter()
        .map(|&(_, tid)| tid)
        .filter(|&tid| tid != 0)
        .collect();
    let known = !started.is_empty()
        && started
            .iter()
            .all(|tid| looks.iter().any(|look| look.tid == *tid));
    let ours: Vec<&ThreadLook> = looks
        .iter()
        .filter(|look| !known || started.contains(&look.tid))
        .collect();
    let blocked = |tid: u32| {
        looks
            .iter()
            .any(|look| look.tid == tid && matches!(look.activity, ThreadActivity::InSyscall(_)))
    };
    if let Some(Gil::Held { tid }) = gil {
        return PythonActivity::GilHeld {
            tid,
            blocked: tid.is_some_and(blocked),
        };
    }
    let running: Vec<u32> = ours
        .iter()
        .filter(|look| !matches!(look.activity, ThreadActivity::InSyscall(_)))
        .map(|look| look.tid)
        .collect();
    if ours.is_empty() || !running.is_empty() {
        return PythonActivity::Running(running);
    }
    PythonActivity::Nobody {
        threads: ours.len(),
        gil_free: gil == Some(Gil::Free),
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
    fields: &ThreadFields,
    interp: u64,
) -> Result<Vec<u64>, MemoryError> {
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
    let states = thread_states(memory, &fields.threads, interp)?;
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
    for ts in thread_states(memory, &fields.threads, interp)? {
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
        inject(request, None)
    }
}

impl Injector for Pep768UnlessIdle {
    fn method(&self) -> Method {
        Method::Pep768
    }

    fn inject(&self, request: &InjectRequest<'_>) -> Result<Timeline, AttachError> {
        inject(request, Some(self.window))
    }
}

/// How the wait for a thread to take a request ended.
enum Taken {
    /// A thread claimed the attach.
    Claimed,
    /// The deadline passed (or the target exited).
    Deadline,
    /// Nobody ran Python for `quiet` in a row (only when asked to give
    /// way): `activity` is the last look.
    NoTaker {
        quiet: Duration,
        activity: PythonActivity,
    },
}

/// What the wait for a taker looks at, to tell whether anyone runs Python.
struct Watch<'a> {
    pid: u32,
    memory: &'a RemoteMemory,
    fields: &'a ThreadFields,
    interp: u64,
    /// The interpreter's thread states and native ids, read while its
    /// threads were paused.
    threads: Vec<(u64, u32)>,
}

impl Watch<'_> {
    fn activity(&self) -> Result<PythonActivity, AttachError> {
        let looks = look_at_threads(self.pid)?;
        let gil = read_gil(self.memory, self.fields, self.interp, &self.threads);
        Ok(python_activity(&looks, &self.threads, gil))
    }
}

/// Waits until a thread claims the attach, or the deadline; with
/// `give_way_after`, also until nobody has run Python for that long in a
/// row.
fn wait_for_a_taker(
    staging: &Staging,
    deadline: Instant,
    give_way_after: Option<Duration>,
    watch: &Watch<'_>,
) -> Result<Taken, AttachError> {
    let Some(window) = give_way_after else {
        return Ok(if staging.wait_claimed(deadline) {
            Taken::Claimed
        } else {
            Taken::Deadline
        });
    };
    let mut quiet_since: Option<Instant> = None;
    loop {
        let next_look = deadline.min(Instant::now() + LOOK_EVERY);
        if staging.wait_claimed_polling(next_look, CLAIM_POLL_MAX) {
            return Ok(Taken::Claimed);
        }
        let now = Instant::now();
        if now >= deadline || staging.target_gone() {
            return Ok(Taken::Deadline);
        }
        let activity = watch.activity()?;
        if !activity.is_nobody() {
            quiet_since = None;
            continue;
        }
        let since = *quiet_since.get_or_insert(now);
        if now - since >= window {
            return Ok(Taken::NoTaker {
                quiet: now - since,
                activity,
            });
        }
    }
}

/// How long giving way waits for the threads the withdrawal paused to be
/// back in their system calls.
const SETTLE: Duration = Duration::from_millis(50);

/// Waits until nobody runs Python again (the threads the last pause took
/// out of their calls are back in them), or `until`. Whether they are.
fn settle(watch: &Watch<'_>, until: Instant) -> bool {
    loop {
        if watch.activity().is_ok_and(|a| a.is_nobody()) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// One attach with the PEP 768 method; `give_way_after`: see
/// [`Pep768UnlessIdle`].
fn inject(
    request: &InjectRequest<'_>,
    give_way_after: Option<Duration>,
) -> Result<Timeline, AttachError> {
    let started = Instant::now();
    let target = request.target;
    let mut timeline = Timeline::default();
    let (fields, interp) = timeline.time("read debug offsets", || preflight(target))?;
    let path = script_path_bytes(request.staging, target.pid)?;
    let memory = &target.memory;

    let (requested, threads) = {
        let pause = timeline.time("pause threads", || {
            ThreadPause::all(target.pid, request.deadline)
        })?;
        let result = timeline.time("write requests", || {
            let requested = request_everywhere(memory, &fields, interp, &path)?;
            // Which thread is which, for the wait (read while nothing runs).
            let threads = match give_way_after {
                Some(_) => python_threads(memory, &fields.threads, interp).unwrap_or_default(),
                None => Vec::new(),
            };
            Ok::<_, AttachError>((requested, threads))
        });
        timeline.time("resume threads", || pause.resume())?;
        result?
    };

    let watch = Watch {
        pid: target.pid,
        memory,
        fields: &fields.threads,
        interp,
        threads,
    };
    let waited_from = Instant::now();
    let taken = wait_for_a_taker(request.staging, request.deadline, give_way_after, &watch);
    let step = match &taken {
        Ok(Taken::NoTaker { quiet, activity }) => format!(
            "wait for a thread ({requested} asked): none ran Python within {} ms; {}",
            quiet.as_millis(),
            activity.describe()
        ),
        _ => format!("wait for a thread ({requested} asked)"),
    };
    timeline.steps.push(crate::method::Step {
        name: step,
        elapsed: waited_from.elapsed(),
    });

    // Withdraw the requests the other threads did not take, in every case.
    {
        let deadline = Instant::now() + Duration::from_secs(2);
        let pause = timeline.time("pause threads", || ThreadPause::all(target.pid, deadline))?;
        let result = timeline.time("withdraw leftovers", || {
            withdraw_everywhere(memory, &fields, interp)
        });
        timeline.time("resume threads", || pause.resume())?;
        result?;
    }

    // Giving way: let the threads the pause took out of their calls go back
    // in, so that the next method finds them as they were (on a loaded
    // machine a resumed thread may wait for a CPU for a while).
    if let Ok(Taken::NoTaker { .. }) = &taken {
        if !request.staging.claimed() {
            timeline.time("let the threads go back into their calls", || {
                settle(&watch, request.deadline.min(Instant::now() + SETTLE))
            });
        }
    }

    // A thread may have taken a request while they were being withdrawn.
    match taken? {
        Taken::Claimed => Ok(timeline),
        _ if request.staging.claimed() => Ok(timeline),
        Taken::NoTaker { quiet, activity } => Err(AttachError::NoTaker {
            pid: target.pid,
            method: Method::Pep768,
            waited: quiet,
            why: activity.describe(),
            steps: timeline,
        }),
        Taken::Deadline => Err(AttachError::Timeout {
            pid: target.pid,
            method: Method::Pep768,
            waited: started.elapsed(),
            advice: "Every thread was asked; none reached Python code (they may all be blocked in system calls or C extensions). Try again while the process is handling work, or give it a longer --timeout, or use `--method ptrace`, whose GIL-released route reaches threads blocked in system calls.".into(),
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn look(tid: u32, activity: ThreadActivity) -> ThreadLook {
        ThreadLook {
            tid,
            activity,
            args: None,
        }
    }

    const BLOCKED: ThreadActivity = ThreadActivity::InSyscall(202);

    #[test]
    fn nobody_runs_python_only_when_every_thread_of_the_interpreter_waits() {
        let python = [(0x10, 1), (0x20, 2)];
        // Both blocked, the GIL free: nobody.
        let idle = [look(1, BLOCKED), look(2, BLOCKED)];
        assert_eq!(
            python_activity(&idle, &python, Some(Gil::Free)),
            PythonActivity::Nobody {
                threads: 2,
                gil_free: true
            }
        );
        assert!(python_activity(&idle, &python, None).is_nobody());
        // A thread that is not the interpreter's (no thread state) may run.
        let helper = [
            look(1, BLOCKED),
            look(2, BLOCKED),
            look(3, ThreadActivity::Running),
        ];
        assert!(python_activity(&helper, &python, Some(Gil::Free)).is_nobody());
        // Unless the interpreter's threads are unknown: then every thread counts.
        assert_eq!(
            python_activity(&helper, &[], Some(Gil::Free)),
            PythonActivity::Running(vec![3])
        );
        // Ids that are not ours (another pid namespace): every thread counts.
        assert_eq!(
            python_activity(&helper, &[(0x10, 91), (0x20, 92)], Some(Gil::Free)),
            PythonActivity::Running(vec![3])
        );
        // A thread of the interpreter on a CPU, or in an unknown state.
        let busy = [look(1, ThreadActivity::Running), look(2, BLOCKED)];
        assert_eq!(
            python_activity(&busy, &python, None),
            PythonActivity::Running(vec![1])
        );
        let unknown = [look(1, ThreadActivity::Other), look(2, BLOCKED)];
        assert!(!python_activity(&unknown, &python, None).is_nobody());
        // The GIL held: somebody runs Python, or holds it while blocked.
        assert_eq!(
            python_activity(&idle, &python, Some(Gil::Held { tid: Some(2) })),
            PythonActivity::GilHeld {
                tid: Some(2),
                blocked: true
            }
        );
        assert_eq!(
            python_activity(&busy, &python, Some(Gil::Held { tid: Some(1) })),
            PythonActivity::GilHeld {
                tid: Some(1),
                blocked: false
            }
        );
        // No thread at all is not "nobody".
        assert!(!python_activity(&[], &python, None).is_nobody());
    }

    #[test]
    fn the_reasons_read_well() {
        assert_eq!(
            PythonActivity::Nobody {
                threads: 5,
                gil_free: true
            }
            .describe(),
            "every thread of the interpreter (5) was blocked in a system call and the GIL was free"
        );
        assert_eq!(
            PythonActivity::GilHeld {
                tid: Some(7),
                blocked: true
            }
            .describe(),
            "thread 7 holds the GIL while blocked in a system call"
        );
        assert_eq!(
            PythonActivity::Running(vec![3]).describe(),
            "thread 3 was running"
        );
    }

    #[test]
    fn auto_waits_thirty_milliseconds_by_default() {
        assert_eq!(Pep768UnlessIdle::default().window, NO_TAKER_WINDOW);
        assert_eq!(NO_TAKER_WINDOW, Duration::from_millis(30));
    }
}
