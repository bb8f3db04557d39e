//! The `gdb` method: the Linux fallback that drives `gdb` in batch mode.
//!
//! # First: is this gdb usable here?
//!
//! Some gdbs cannot restore a thread's registers after an inferior call on
//! some CPUs (gdb 13.1 on CPUs with AMX): the thread then returns from the
//! system call it was blocked in with an error it never expects, which
//! killed CPython targets. So before it touches a target, the method proves
//! on a throwaway process of its own, blocked in a system call, that this
//! gdb makes the method's first call (the same `mmap` call, with the same
//! settings) and leaves the process intact ([`check_gdb`], see
//! `gdb/probe.rs`; one gdb session plus 0.1 s, 0.4-0.6 s here, once per
//! process and gdb). If it does not, the method refuses with
//! [`AttachError::MethodUnavailable`], whose reason quotes gdb, and `auto`
//! moves on.
//!
//! # Routes
//!
//! **Pending call** (every version). A first gdb session attaches
//! (stopping every thread), then, in the thread it selected (the main
//! thread):
//!
//! 1. calls the target's own `mmap` to get one fresh anonymous page: a raw
//!    system-call wrapper that takes no lock, unlike `malloc`, which could
//!    deadlock when the stopped thread holds the allocator's lock;
//! 2. writes the bootstrap statement into that page (`restore ... binary`
//!    from a file, so no escaping is involved);
//! 3. queues `PyRun_SimpleString(page)` as a pending call, which runs at a
//!    bytecode boundary with the GIL held (the safety guarantee of PEP 768):
//!    - 3.12+: `_PyEval_AddPendingCall(main interpreter, ..., 0)`: any
//!      thread of the interpreter runs it at its next eval-breaker check
//!      (the interpreter's address comes from [`crate::runtime_state`]);
//!    - 3.8-3.11: `Py_AddPendingCall(...)`: only the main thread runs it;
//! 4. detaches.
//!
//! **Breakpoint** (3.8-3.11, when the main thread has not run the call
//! within a grace period, 150 ms by default): a second gdb session waits
//! at `PyEval_SaveThread` for any thread about to release the GIL and runs
//! the same statement on it; see `gdb/blocked_main.rs`. The bootstrap claims the
//! attach with an atomic `mkdir`, so when both routes run it, the second
//! run does nothing.
//!
//! Every function is called through an explicit cast of an address that
//! Peeka resolved itself from the target's ELF files, so gdb needs no debug
//! information and no symbols: this is what lets the host's gdb work on
//! targets in a chroot or a container, whose libraries it cannot match.
//! `set unwindonsignal on` makes gdb restore the thread's registers if a
//! call faults, and each session sits in one command file, so that a failed
//! `attach` stops it before any call.
//!
//! Signals the application receives meanwhile (timers, `SIGUSR1`, ...) are
//! passed straight through (`handle all nostop noprint pass`): by default
//! gdb would stop on some of them, and a stop inside an injected call makes
//! it abandon the call. Only the faults an injected call itself could cause
//! still stop gdb, so that it unwinds the call instead of passing a fault
//! of ours to the application; `SIGINT` stays gdb's own (see "Deadline").
//!
//! # The page's lifetime
//!
//! The string must stay valid until the pending call has run, which may be
//! long after gdb detached. Peeka never frees the page: once the pending
//! call is known to have run (the attach was claimed and the breakpoint
//! route did not run the statement itself) it zeroes the string; otherwise
//! (a timeout, or the breakpoint route ran it first) it *disarms* it.
//! Freeing it would need another gdb session (another stop of every thread,
//! another ~0.2 s) just to return 4 KiB, and while a call may still be
//! queued it must not be freed at all. So each gdb attach costs the target
//! one anonymous page, for its lifetime.
//!
//! # Disarming a request that did not run
//!
//! A pending call cannot be withdrawn. The page therefore holds
//! `if 1 and <this process>:exec('<bootstrap statement>')` (see
//! `armed_statement` in `gdb/command_file.rs` and `armed_runner.rs`): Peeka overwrites the `1` with `0`
//! (one byte, written atomically, so the interpreter reads either the old
//! or the new statement, never a torn one), and the late call becomes a
//! no-op. On a timeout the bootstrap script is also removed, as for every
//! method.
//!
//! # Deadline
//!
//! At the deadline gdb gets `SIGINT`: if it is inside an injected call (a
//! thread could, in rare cases, be stopped while holding the interpreter's
//! pending-calls lock), it unwinds the call, restores the thread and
//! detaches; if it is waiting at the breakpoint, it stops the target,
//! removes the breakpoint and detaches. The breakpoint route never
//! interrupts a bootstrap call it has started before the deadline plus a
//! short grace (see `gdb/blocked_main.rs`). gdb is killed only if it ignores
//! `SIGINT`, and the target then gets `SIGCONT` if any of its threads was
//! left stopped.

mod addresses;
mod blocked_main;
mod command_file;
mod diagnose;
mod probe;

pub use probe::{check_gdb, GdbCheck, GdbProblem, GdbUnusable, PROBE_LIMIT};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::armed_runner;
use crate::debugger_process::{self, DebuggerRun, Ending, ScratchDir};
use crate::error::AttachError;
use crate::method::{InjectRequest, Injector, Method, Step, Timeline};
use crate::target::Target;

use addresses::{preflight, Addresses, Queue, SaveThreadRoute};
use blocked_main::{BreakpointRoute, RouteOutcome};
use command_file::{
    armed_statement, gdb_command, queue_commands, PageLayout, QueuePlan, QueueReport,
};
use diagnose::{queue_failure, spawn_error};

/// How long gdb gets to unwind and detach after `SIGINT`.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// How long to watch for a stop left behind by a gdb that did not detach
/// cleanly.
const SETTLE: Duration = Duration::from_millis(100);

/// The gdb backend. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct GdbInjector {
    program: PathBuf,
    grace: Duration,
}

impl Default for GdbInjector {
    /// Runs `gdb` from `PATH`, with the default grace period.
    fn default() -> Self {
        Self {
            program: PathBuf::from("gdb"),
            grace: Self::DEFAULT_GRACE_PERIOD,
        }
    }
}

impl GdbInjector {
    /// How long the main thread gets to run the pending call (3.8-3.11)
    /// before the breakpoint route is tried as well.
    pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_millis(150);

    /// A backend that runs this gdb executable (a path, or a name looked up
    /// in `PATH`).
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            ..Self::default()
        }
    }

    /// The same backend with another grace period.
    #[must_use]
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The gdb executable it runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// How long the main thread gets before the breakpoint route.
    pub fn grace(&self) -> Duration {
        self.grace
    }
}

impl Injector for GdbInjector {
    fn method(&self) -> Method {
        Method::Gdb
    }

    fn inject(&self, request: &InjectRequest<'_>) -> Result<Timeline, AttachError> {
        let started = Instant::now();
        let mut timeline = Timeline::default();
        let check = timeline.time("gdb: check it can make inferior calls here", || {
            check_gdb(&self.program, request.deadline)
        });
        let pid = request.target.pid;
        let program = match check {
            GdbCheck::Usable { program, .. } => program,
            GdbCheck::Missing { .. } => {
                return Err(AttachError::DebuggerMissing {
                    method: Method::Gdb,
                    program: "gdb",
                })
            }
            GdbCheck::Unusable(unusable) => {
                return Err(AttachError::MethodUnavailable {
                    method: Method::Gdb,
                    pid,
                    why: unusable.to_string(),
                })
            }
            GdbCheck::Inconclusive { program, why } => {
                let why = format!(
                    "Peeka could not check in time that {} can make inferior calls on this host ({why}), and it never runs an unchecked gdb against a target; nothing was done to the target. Try again, or use the ptrace method",
                    program.display()
                );
                return Err(AttachError::MethodUnavailable {
                    method: Method::Gdb,
                    pid,
                    why,
                });
            }
        };
        let checked = Self {
            program,
            grace: self.grace,
        };
        checked.inject_checked(request, started, timeline)
    }
}

impl GdbInjector {
    /// [`Injector::inject`] once this gdb is known to work here.
    fn inject_checked(
        &self,
        request: &InjectRequest<'_>,
        started: Instant,
        mut timeline: Timeline,
    ) -> Result<Timeline, AttachError> {
        let target = request.target;
        let addresses = timeline.time("resolve addresses", || preflight(target))?;
        if let Some(why) = &addresses.any_thread_unavailable {
            push_step(
                &mut timeline,
                format!("queue for the main thread only: {why}"),
                Instant::now(),
            );
        }
        let code = armed_statement(&request.staging.runner_code(), target.pid, target.ns_pid)?;
        let layout = PageLayout::for_code(code.len());
        let page = self.queue(request, &addresses, &code, layout, &mut timeline)?;

        let waited = match (addresses.queue, addresses.breakpoint) {
            (Queue::MainThread { .. }, Some(route)) => {
                let breakpoint = Breakpoint {
                    route,
                    run_simple_string: addresses.run_simple_string,
                    page,
                    layout,
                };
                self.wait_main_thread_or_breakpoint(request, breakpoint, &mut timeline)?
            }
            _ => Waited {
                claimed: timeline.time("wait for a thread to run it", || {
                    request.staging.wait_claimed(request.deadline)
                }),
                ..Waited::default()
            },
        };
        let Waited {
            claimed,
            breakpoint_tried,
            breakpoint_ran,
        } = waited;

        if claimed {
            if breakpoint_tried {
                // The queued call may not have run yet: it must stay valid.
                let _ = disarm(target, page);
            } else {
                // The pending call ran: the string is no longer read.
                timeline.time("zero the page", || {
                    let _ = target.memory.write(page, &vec![0; code.len()]);
                });
            }
            return Ok(timeline);
        }
        let disarmed = disarm(target, page);
        request.staging.remove_script();
        if request.staging.claimed() {
            // It ran between the last check and the disarming.
            return Ok(timeline);
        }
        if !debugger_process::process_alive(target.pid) {
            return Err(AttachError::TargetExited { pid: target.pid });
        }
        Err(AttachError::Timeout {
            pid: target.pid,
            method: Method::Gdb,
            waited: started.elapsed(),
            advice: timeout_advice(&addresses, breakpoint_tried, breakpoint_ran, disarmed),
        })
    }
}

/// What the breakpoint route needs besides the request.
#[derive(Debug, Clone, Copy)]
struct Breakpoint {
    route: SaveThreadRoute,
    run_simple_string: u64,
    page: u64,
    layout: PageLayout,
}

/// How the wait for the claim went.
#[derive(Debug, Clone, Copy, Default)]
struct Waited {
    /// The bootstrap claimed the attach.
    claimed: bool,
    /// The breakpoint route was run.
    breakpoint_tried: bool,
    /// It started the bootstrap call on a thread.
    breakpoint_ran: bool,
}

/// How many times the breakpoint route is started when a signal someone
/// else sent the target ended gdb's wait early.
const BREAKPOINT_ATTEMPTS: u32 = 3;

impl GdbInjector {
    /// 3.8-3.11: waits the grace period for the main thread to run the
    /// pending call, then runs the breakpoint route, then waits for the
    /// claim until the deadline.
    ///
    /// # Errors
    /// The breakpoint route's failure (the page is disarmed then), unless
    /// the attach was claimed anyway.
    fn wait_main_thread_or_breakpoint(
        &self,
        request: &InjectRequest<'_>,
        breakpoint: Breakpoint,
        timeline: &mut Timeline,
    ) -> Result<Waited, AttachError> {
        let deadline = request.deadline;
        let grace_end = deadline.min(Instant::now() + self.grace);
        let mut waited = Waited {
            claimed: timeline.time("wait for the main thread", || {
                request.staging.wait_claimed(grace_end)
            }),
            ..Waited::default()
        };
        for _ in 0..BREAKPOINT_ATTEMPTS {
            if waited.claimed || Instant::now() >= deadline {
                break;
            }
            waited.breakpoint_tried = true;
            let route = BreakpointRoute {
                program: &self.program,
                target: request.target,
                staging: request.staging,
                deadline,
                route: breakpoint.route,
                run_simple_string: breakpoint.run_simple_string,
                page: breakpoint.page,
                layout: breakpoint.layout,
            };
            let started = Instant::now();
            let outcome = route.run();
            push_step(timeline, route_step_name(&outcome), started);
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(error) => {
                    let _ = disarm(request.target, breakpoint.page);
                    if request.staging.claimed() {
                        return Ok(Waited {
                            claimed: true,
                            ..waited
                        });
                    }
                    request.staging.remove_script();
                    return Err(error);
                }
            };
            waited.breakpoint_ran |= outcome.called;
            waited.claimed = request.staging.claimed();
            if outcome.called || !outcome.ended_by_target_signal {
                break;
            }
        }
        if !waited.claimed {
            waited.claimed = timeline.time("wait for the claim", || {
                request.staging.wait_claimed(deadline)
            });
        }
        Ok(waited)
    }

    /// The first session: allocate the page, write the statement, queue
    /// the pending call. Returns the page's address.
    fn queue(
        &self,
        request: &InjectRequest<'_>,
        addresses: &Addresses,
        code: &str,
        layout: PageLayout,
        timeline: &mut Timeline,
    ) -> Result<u64, AttachError> {
        let target = request.target;
        let pid = target.pid;
        let scratch = ScratchDir::create("gdb").map_err(|source| AttachError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let io_error = |path: PathBuf| move |source| AttachError::Io { path, source };
        let mut bytes = code.as_bytes().to_vec();
        bytes.push(0);
        let code_file = scratch
            .write("code.bin", &bytes)
            .map_err(io_error(scratch.path().join("code.bin")))?;
        let plan = QueuePlan {
            pid,
            mmap: addresses.mmap,
            run_simple_string: addresses.run_simple_string,
            queue: addresses.queue,
            page_len: layout.len,
            code_file,
        };
        let commands = scratch
            .write("commands.gdb", queue_commands(&plan).as_bytes())
            .map_err(io_error(scratch.path().join("commands.gdb")))?;

        let command = gdb_command(&self.program, pid, scratch.path(), &commands);
        let call = match addresses.queue {
            Queue::AnyThread { .. } => "_PyEval_AddPendingCall",
            Queue::MainThread { .. } => "Py_AddPendingCall",
        };
        let run = timeline
            .time(format!("gdb: attach, mmap, {call}, detach"), || {
                debugger_process::run(command, request.deadline, INTERRUPT_GRACE)
            })
            .map_err(|e| spawn_error(e, &self.program, pid))?;
        drop(scratch);
        let report = QueueReport::parse(&run.stdout);
        redeliver_foreign_sigint(pid, &run);
        // Whatever happened, no thread may stay stopped. After a detach gdb
        // confirmed one look suffices; after a failure or a kill, give a
        // tracee released by the dying tracer a moment to show its stop.
        let clean = report.detached && matches!(run.ending, Ending::Finished(_));
        let settle = if clean { Duration::ZERO } else { SETTLE };
        timeline.time("check the target is running", || {
            debugger_process::resume_if_stopped(pid, false, settle)
        });
        let page = match (report.pending, report.buffer) {
            (Some(0), Some(page)) => page,
            _ => return Err(queue_failure(target, &run, &report)),
        };
        if !debugger_process::process_alive(pid) {
            return Err(AttachError::TargetExited { pid });
        }
        Ok(page)
    }
}

/// Whether gdb caught a `SIGINT` that Peeka did not send (gdb keeps
/// `SIGINT` for itself and does not pass it on): someone sent it to the
/// target during the session. It is then sent to the target again, now
/// that gdb is gone. When Peeka interrupted gdb itself, a `SIGINT` caught
/// could be its own, so nothing is sent (a foreign one arriving in that
/// same moment is lost).
fn redeliver_foreign_sigint(pid: u32, run: &DebuggerRun) -> bool {
    let caught = run
        .stdout
        .lines()
        .any(|line| line.contains(" received signal SIGINT,"));
    if !caught || !matches!(run.ending, Ending::Finished(_)) {
        return false;
    }
    match libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        Ok(pid) => unsafe { libc::kill(pid, libc::SIGINT) == 0 },
        Err(_) => false,
    }
}

/// Makes the queued statement a no-op (see the module documentation).
fn disarm(target: &Target, page: u64) -> bool {
    armed_runner::disarm(&target.memory, page).is_ok()
}

fn route_step_name(outcome: &Result<RouteOutcome, AttachError>) -> String {
    let what = match outcome {
        Ok(RouteOutcome {
            called: true,
            thread,
            returned,
            ..
        }) => {
            let on = thread.map_or_else(|| "the main thread".to_owned(), |t| format!("thread {t}"));
            let rc = returned.map_or_else(|| "?".to_owned(), |rc| rc.to_string());
            format!("ran the bootstrap on {on} (PyRun_SimpleString returned {rc})")
        }
        Ok(RouteOutcome {
            ended_by_target_signal: true,
            ..
        }) => "a SIGINT sent to the target ended the wait (sent on to it)".to_owned(),
        Ok(_) => "no thread stopped there before the claim or the deadline".to_owned(),
        Err(_) => "failed".to_owned(),
    };
    format!("gdb: attach, wait at PyEval_SaveThread, detach: {what}")
}

fn push_step(timeline: &mut Timeline, name: impl Into<String>, started: Instant) {
    timeline.steps.push(Step {
        name: name.into(),
        elapsed: started.elapsed(),
    });
}

fn timeout_advice(
    addresses: &Addresses,
    breakpoint_tried: bool,
    breakpoint_ran: bool,
    disarmed: bool,
) -> String {
    let what = match (addresses.queue, breakpoint_tried) {
        (Queue::AnyThread { .. }, _) => "gdb queued the bootstrap as a pending call that any thread of the interpreter runs between two bytecodes; no thread ran Python in time (they may all be blocked in system calls or long-running C code).".to_owned(),
        (Queue::MainThread { .. }, true) => format!(
            "gdb queued the bootstrap as a pending call, which only the main thread runs, and the main thread ran no Python in time; then it waited at PyEval_SaveThread for any thread about to release the GIL, and {} (every thread may be blocked in system calls or long-running C code).",
            if breakpoint_ran { "the thread that stopped there did not start the bootstrap" } else { "none came" }
        ),
        (Queue::MainThread { .. }, false) => format!(
            "gdb queued the bootstrap as a pending call, which only the main thread runs, between two bytecodes; the main thread ran no Python in time (it is probably blocked in a system call or in C code: a long sleep, a lock, I/O){}.",
            if addresses.breakpoint.is_none() { ", and this interpreter does not export the functions needed to ask another thread" } else { "" }
        ),
    };
    let pending = if disarmed {
        "The queued call was disarmed: if it ever runs, it does nothing."
    } else {
        "Its script was removed: if the queued call ever runs, it finds nothing to do."
    };
    let fallback = addresses
        .any_thread_unavailable
        .as_ref()
        .map(|why| format!(" (This Python 3.12+ target could not be asked on any thread: {why}.)"))
        .unwrap_or_default();
    format!("{what}{fallback} {pending} Try again while the process is doing work, or with a longer --timeout.")
}
