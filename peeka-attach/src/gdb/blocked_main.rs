//! The breakpoint route, for 3.8-3.11 targets whose main thread does not
//! run the queued pending call (it is parked in `Event().wait()`,
//! `select()`, `join()`...) while other threads run Python.
//!
//! Every thread about to block calls `PyEval_SaveThread` (through
//! `Py_BEGIN_ALLOW_THREADS`) while it still holds the GIL, at a point where
//! the interpreter's state is consistent: other threads may run Python from
//! there on, so this one may too. A second gdb session attaches, sets a
//! temporary breakpoint at the function's address (`tbreak *ADDR`: no
//! symbols needed) and lets the target run. The first thread that stops
//! there calls `PyRun_SimpleString(page)` (the statement the first session
//! wrote) between `PyErr_Fetch` and `PyErr_Restore`; then gdb detaches and
//! the thread carries on into `PyEval_SaveThread`. gdb deletes a temporary
//! breakpoint when it is hit, and breakpoints are only in the target's
//! memory while it runs, so a detach leaves none behind; children forked
//! meanwhile have the breakpoint removed by gdb before it lets them go.
//!
//! # Stopping the wait without interrupting the call
//!
//! The wait ends early when the bootstrap claims the attach another way
//! (the main thread woke up and ran the pending call), and at the deadline.
//! Both are done with `SIGINT` to gdb, which stops the target; but `SIGINT`
//! during the call would make gdb abandon `PyRun_SimpleString` half-way
//! through Python code. So gdb and Peeka hand off a file: after the stop,
//! gdb renames `go.gdb` to `went.gdb` and `source`s it (the call commands);
//! to stop the wait, Peeka renames `go.gdb` away first. A rename is atomic,
//! so exactly one side wins:
//! - Peeka won: gdb will not make the call (its `source` fails, it exits and
//!   detaches), so `SIGINT` is safe;
//! - gdb won: it makes the call (harmless if another thread claimed first:
//!   the bootstrap's claim is an atomic `mkdir`), and Peeka lets it finish;
//!   only past the deadline plus [`CALL_GRACE`] does it get `SIGINT`.
//!
//! # If gdb dies with the breakpoint in place
//!
//! The first bytes of `PyEval_SaveThread` are read before the session; if
//! they differ afterwards (gdb was killed while the target ran with the
//! breakpoint inserted), Peeka writes them back at once.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bootstrap::Staging;
use crate::debugger_process::{self, DebuggerRun, Ending, ScratchDir, Verdict};
use crate::error::AttachError;
use crate::method::Method;
use crate::target::Target;

use super::addresses::SaveThreadRoute;
use super::command_file::{
    breakpoint_call_commands, breakpoint_commands, gdb_command, BreakpointPlan, BreakpointReport,
    PageLayout,
};
use super::diagnose::{breakpoint_failure, spawn_error};
use super::INTERRUPT_GRACE;

/// How long a bootstrap call gdb has started may run past the deadline
/// before gdb is interrupted anyway. The bootstrap only starts a thread, so
/// it takes milliseconds; interrupting it would leave Python half-way.
const CALL_GRACE: Duration = Duration::from_secs(2);

/// How many bytes of `PyEval_SaveThread` are checked after the session.
const CODE_CHECKED: usize = 16;

/// One run of the route.
#[derive(Debug)]
pub(super) struct BreakpointRoute<'a> {
    /// The gdb executable.
    pub(super) program: &'a Path,
    /// The target.
    pub(super) target: &'a Target,
    /// The attach's private directory (for `claimed()`).
    pub(super) staging: &'a Staging,
    /// When to stop waiting for a thread.
    pub(super) deadline: Instant,
    /// The functions it uses.
    pub(super) route: SaveThreadRoute,
    /// `PyRun_SimpleString`.
    pub(super) run_simple_string: u64,
    /// The page the first session filled.
    pub(super) page: u64,
    /// Its layout.
    pub(super) layout: PageLayout,
}

/// How the route ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RouteOutcome {
    /// gdb started the bootstrap call on a thread stopped at the breakpoint.
    pub(super) called: bool,
    /// That thread (`None`: the main thread, or unknown).
    pub(super) thread: Option<u32>,
    /// What `PyRun_SimpleString` returned.
    pub(super) returned: Option<i64>,
    /// The wait ended because someone else sent the target `SIGINT`
    /// (which gdb caught; it was sent on to the target).
    pub(super) ended_by_target_signal: bool,
}

/// Which side won the hand-off of `go.gdb` (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandOff {
    /// Nobody has taken it yet.
    Open,
    /// Peeka took it back: gdb will not call.
    Cancelled,
    /// gdb took it (or Peeka cannot tell): the call is being made.
    Committed,
}

impl BreakpointRoute<'_> {
    /// Runs the second gdb session.
    ///
    /// # Errors
    /// [`AttachError`] when gdb could not set the breakpoint, the call was
    /// interrupted, or gdb had to be killed. A wait that simply ended (claim
    /// elsewhere, deadline) is not an error.
    pub(super) fn run(&self) -> Result<RouteOutcome, AttachError> {
        let pid = self.target.pid;
        let scratch = ScratchDir::create("gdb-bp").map_err(|source| AttachError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let plan = BreakpointPlan {
            pid,
            route: self.route,
            run_simple_string: self.run_simple_string,
            page: self.page,
            layout: self.layout,
            go_file: scratch.path().join("go.gdb"),
            went_file: scratch.path().join("went.gdb"),
        };
        write(&scratch, "go.gdb", &breakpoint_call_commands(&plan))?;
        let commands = write(&scratch, "commands.gdb", &breakpoint_commands(&plan))?;
        let original = self
            .target
            .memory
            .read_vec(self.route.save_thread, CODE_CHECKED)?;

        let command = gdb_command(self.program, pid, scratch.path(), &commands);
        let cancelled_file = scratch.path().join("cancelled.gdb");
        let mut hand_off = HandOff::Open;
        let run = debugger_process::run_supervised(command, INTERRUPT_GRACE, |now| {
            self.supervise(now, &mut hand_off, &plan.go_file, &cancelled_file)
        })
        .map_err(|e| spawn_error(e, self.program, pid))?;
        drop(scratch);

        let restored_code = self.restore_code(&original);
        let report = BreakpointReport::parse(&run.stdout);
        let ended_by_target_signal = super::redeliver_foreign_sigint(pid, &run);
        let clean = report.detached && matches!(run.ending, Ending::Finished(_));
        let settle = if clean { Duration::ZERO } else { super::SETTLE };
        debugger_process::resume_if_stopped(pid, false, settle);
        if let Some(error) = breakpoint_failure(self.target, &run, &report, restored_code) {
            return Err(error);
        }
        if restored_code {
            return Err(unexpected(pid, &run));
        }
        Ok(RouteOutcome {
            called: report.hit,
            thread: report.thread,
            returned: report.ran,
            ended_by_target_signal,
        })
    }

    /// Decides, at each poll, whether gdb's wait must end now.
    fn supervise(
        &self,
        now: Instant,
        hand_off: &mut HandOff,
        go_file: &Path,
        cancelled_file: &Path,
    ) -> Verdict {
        match *hand_off {
            HandOff::Open => {
                if now < self.deadline && !self.staging.claimed() {
                    return Verdict::Wait;
                }
                if fs::rename(go_file, cancelled_file).is_ok() {
                    *hand_off = HandOff::Cancelled;
                    Verdict::Interrupt
                } else {
                    *hand_off = HandOff::Committed;
                    Verdict::Wait
                }
            }
            // Not consulted again once it asked for the interrupt.
            HandOff::Cancelled => Verdict::Interrupt,
            HandOff::Committed if now >= self.deadline + CALL_GRACE => Verdict::Interrupt,
            HandOff::Committed => Verdict::Wait,
        }
    }

    /// Writes the original bytes of `PyEval_SaveThread` back if they
    /// changed; returns whether it had to.
    fn restore_code(&self, original: &[u8]) -> bool {
        let address = self.route.save_thread;
        let memory = &self.target.memory;
        match memory.read_vec(address, original.len()) {
            Ok(now) if now != original => memory.write(address, original).is_ok(),
            _ => false,
        }
    }
}

fn write(scratch: &ScratchDir, name: &str, text: &str) -> Result<PathBuf, AttachError> {
    scratch
        .write(name, text.as_bytes())
        .map_err(|source| AttachError::Io {
            path: scratch.path().join(name),
            source,
        })
}

/// gdb ended normally but left a breakpoint behind: it must not happen, and
/// the code was already restored, so say so.
fn unexpected(pid: u32, run: &DebuggerRun) -> AttachError {
    AttachError::Debugger {
        method: Method::Gdb,
        pid,
        detail: format!(
            "gdb left its breakpoint in PyEval_SaveThread after it exited ({:?}); Peeka wrote the original code back. Please report this with your gdb version (`gdb --version`).",
            run.ending
        ),
    }
}
