//! Everything the doctor's decision depends on, in plain values: gathered
//! from the system by [`Facts::gather`], turned into findings by
//! [`Facts::diagnose`].

use std::path::PathBuf;

use crate::pep768::PythonLook;
use crate::permissions::PtraceAccess;
use crate::procfs::ProcStatus;
use crate::ptrace::tasks::{RoutePlan, ThreadLook};
use crate::python::{Layout, PythonVersion};
use crate::remote_debug_optout::OptOutEvidence;
use crate::target::{Arch, InspectError, RemoteDebug};

/// How a namespace of the target relates to ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NsRelation {
    Same,
    Different,
    Unknown(String),
}

/// The target's namespaces and root, compared with ours.
#[derive(Debug, Clone)]
pub(super) struct NamespaceFacts {
    /// `NSpid`: the target's pid in each nested pid namespace.
    pub(super) ns_pid: Vec<u32>,
    /// `/proc/PID/root`, or why it could not be read.
    pub(super) root: Result<PathBuf, String>,
    pub(super) pid: NsRelation,
    pub(super) mount: NsRelation,
    pub(super) user: NsRelation,
}

/// The private directory the attach would prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum StagingFacts {
    /// `/tmp` can take it; it does not exist yet.
    Fresh {
        target_dir: PathBuf,
        host_dir: PathBuf,
    },
    /// It exists from an earlier attach and is private to the target's uid.
    Reused { target_dir: PathBuf },
    /// Something else is there; the attach would refuse it.
    Untrusted {
        host_dir: PathBuf,
        uid: u32,
        owner: u32,
        mode: u32,
    },
    /// `/tmp` is missing, read-only or not writable for us.
    TmpUnusable { host_tmp: PathBuf, why: String },
}

/// What [`Target::inspect`](crate::Target::inspect) found, in plain values.
#[derive(Debug, Clone)]
pub(super) struct Inspected {
    pub(super) exe: PathBuf,
    pub(super) version: PythonVersion,
    pub(super) layout: Layout,
    pub(super) interpreter_file: PathBuf,
    pub(super) deleted: bool,
    pub(super) arch: Arch,
    pub(super) remote_debug: RemoteDebug,
    pub(super) missing_symbols: Vec<&'static str>,
}

/// What the threads were doing, for the route an attach would take: read
/// through `/proc` and, on 3.13+, the interpreter's memory; nothing is
/// stopped.
#[derive(Debug, Clone)]
pub(super) struct RouteFacts {
    /// One look at every live thread, or why it failed.
    pub(super) looks: Result<Vec<ThreadLook>, String>,
    /// The ptrace method's plan from that look (its first route, every
    /// thread judged), or why there is none.
    pub(super) ptrace: Result<RoutePlan, String>,
    /// 3.13+: the interpreter's threads and who holds the GIL, or why they
    /// were not read.
    pub(super) python: Result<PythonLook, String>,
}

/// The facts about a live (or at least not reaped) process.
#[derive(Debug)]
pub(super) struct LiveFacts {
    pub(super) status: ProcStatus,
    pub(super) caller: ProcStatus,
    pub(super) access: PtraceAccess,
    /// `/proc/PID/cmdline`, arguments separated by spaces.
    pub(super) command_line: String,
    /// How many threads are in a job-control stop (state `T` in
    /// `/proc/PID/task/TID/stat`; a group stop reaches them one by one).
    pub(super) stopped_threads: usize,
    /// The tracer's command name, when another process traces the target.
    pub(super) tracer_name: Option<String>,
    pub(super) inspected: Result<Inspected, InspectError>,
    pub(super) namespaces: NamespaceFacts,
    /// Read when remote debugging is disabled.
    pub(super) opt_out: Option<OptOutEvidence>,
    /// Only when the target was inspected.
    pub(super) staging: Option<StagingFacts>,
    /// Only when the target was inspected.
    pub(super) route: Option<RouteFacts>,
}

#[derive(Debug)]
pub(super) enum ProcessFacts {
    /// No such process.
    Missing,
    /// `/proc/PID/status` could not be read, and why.
    Unreadable(String),
    /// Exited, not reaped.
    Zombie(ProcStatus),
    /// Running (or stopped).
    Alive(Box<LiveFacts>),
}

/// What the platform debugger can do on this host, as the debugger
/// method's own check found it (Linux: gdb makes a test call in a
/// throwaway process of ours, never in the target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DebuggerCheck {
    /// Not checked: the debugger is not installed, this platform has no
    /// check, or there is no live process to attach to.
    NotChecked,
    /// It made the method's calls and left the process intact.
    Works { version: Option<String> },
    /// It cannot do what the method needs here.
    Unusable {
        /// One sentence: which debugger, what failed, what it said.
        headline: String,
        /// The whole story (see `GdbUnusable::summary`).
        summary: String,
        /// What to do.
        fix: String,
    },
    /// The check did not finish in time; why.
    Inconclusive(String),
}

/// Everything the decision depends on. Gathering reads the system;
/// [`diagnose`](Facts::diagnose) is pure.
#[derive(Debug)]
pub(super) struct Facts {
    pub(super) pid: u32,
    pub(super) own_pid: u32,
    pub(super) host_arch: Arch,
    pub(super) on_linux: bool,
    /// The platform debugger's name, and where it was found in `PATH`.
    pub(super) debugger: (&'static str, Option<PathBuf>),
    /// What it can do on this host.
    pub(super) debugger_check: DebuggerCheck,
    pub(super) process: ProcessFacts,
}

impl Facts {
    /// Whether the target is the process running the doctor.
    pub(super) fn is_self(&self) -> bool {
        self.pid == self.own_pid
    }
}

impl LiveFacts {
    /// Whether the target is stopped (job control or `SIGSTOP`): the
    /// attach refuses it ([`AttachError::TargetStopped`](crate::AttachError::TargetStopped)).
    pub(super) fn is_stopped(&self) -> bool {
        self.status.state == 'T' || self.stopped_threads > 0
    }

    /// What the environment and command line say about the opt-out of
    /// remote debugging (nothing found when they were not read).
    pub(super) fn opt_out_evidence(&self) -> OptOutEvidence {
        self.opt_out.clone().unwrap_or_default()
    }
}
