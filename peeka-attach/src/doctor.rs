//! A preflight check: every reason an attach to a pid could fail, and the
//! fix for each, found without changing anything in the target.
//!
//! [`doctor`] reads what anyone may read about a process (`/proc/PID/status`
//! and `cmdline`), and what this process is allowed to read (the target's
//! executable, mappings, ELF files, namespaces, environment and, only when
//! the kernel permits, a few words of its memory, through
//! [`Target::inspect`]). It never stops, traces or writes to the target and
//! creates no file. The facts go through one pure decision function, so
//! each rule is unit-tested without a real process in that situation.
//!
//! The [`Diagnosis`] holds one [`Finding`] per check, each with a stable id
//! (the constants of [`check`]), a [`Severity`], a summary and, when
//! something is wrong, the fix; and the attach methods expected to work,
//! with the reason each other method cannot. It prints as a report.
//!
//! # Example
//!
//! ```
//! use peeka_attach::doctor::{check, doctor, Severity};
//!
//! // No process can have this pid: the kernel's limit is far below it.
//! let diagnosis = doctor(u32::MAX);
//! assert!(!diagnosis.can_attach());
//! let process = diagnosis.finding(check::PROCESS).expect("always checked");
//! assert_eq!(process.severity, Severity::Blocker);
//! assert!(process.fix.as_deref().unwrap_or("").contains("pgrep"));
//! println!("{diagnosis}");
//! ```

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::bootstrap::{check_existing_private_dir, StageError, Staging};
use crate::method::Method;
use crate::permissions::{PtraceAccess, PtraceObstacle, YamaScope};
use crate::procfs::ProcStatus;
use crate::python::{Layout, PythonVersion};
use crate::remote_debug_optout::{OptOutEvidence, ENV_VAR, X_OPTION};
use crate::target::{Arch, InspectError, RemoteDebug, Target, SUPPORTED_MINORS};

/// The stable ids of the checks, as [`Finding::check`] holds them.
pub mod check {
    /// The process exists, is not a zombie, is not stopped.
    pub const PROCESS: &str = "process";
    /// It runs CPython (not PyPy, not another program).
    pub const CPYTHON: &str = "cpython";
    /// Its CPython version is one Peeka supports.
    pub const VERSION: &str = "version";
    /// The interpreter's machine architecture matches this build's.
    pub const ARCHITECTURE: &str = "architecture";
    /// Our credentials (uid, gid, the target's dumpable flag) allow ptrace.
    pub const PTRACE_PERMISSION: &str = "ptrace_permission";
    /// Yama's `kernel.yama.ptrace_scope` allows it.
    pub const YAMA: &str = "yama";
    /// Whether we hold `CAP_SYS_PTRACE`, and whether it is needed.
    pub const CAPABILITIES: &str = "capabilities";
    /// Another tracer (debugger, strace) is already attached.
    pub const TRACED: &str = "traced";
    /// Seccomp filters in the target or in this process.
    pub const SECCOMP: &str = "seccomp";
    /// Another pid, mount or user namespace, or another root directory.
    pub const CONTAINER: &str = "container";
    /// PEP 768 remote debugging (3.14+) is enabled.
    pub const REMOTE_DEBUG: &str = "remote_debug";
    /// The target's `/tmp` can take the agent's private directory.
    pub const STAGING: &str = "staging";
    /// gdb is installed, for the gdb fallback method (Linux).
    pub const GDB: &str = "gdb";
    /// lldb is installed, for the lldb method (macOS).
    pub const LLDB: &str = "lldb";
}

/// How much a finding matters to an attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Nothing in the way.
    Ok,
    /// An attach may still work, or works only with another method.
    Warning,
    /// An attach with the default method choice will fail until it is fixed.
    Blocker,
}

impl Severity {
    /// The label the report uses: `ok`, `warning` or `BLOCKER`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warning => "warning",
            Self::Blocker => "BLOCKER",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The check's stable id, one of [`check`]'s constants.
    pub check: &'static str,
    /// How much it matters.
    pub severity: Severity,
    /// What was found, in one or two sentences.
    pub summary: String,
    /// What to do about it; `None` when nothing needs doing.
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, summary: impl Into<String>) -> Self {
        Self {
            check,
            severity: Severity::Ok,
            summary: summary.into(),
            fix: None,
        }
    }

    fn warning(check: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            severity: Severity::Warning,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }

    fn blocker(check: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            severity: Severity::Blocker,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Everything [`doctor`] found about one pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// The pid, as this process sees it.
    pub pid: u32,
    /// One finding per check that applied, in a fixed order.
    pub findings: Vec<Finding>,
    /// The methods expected to work when chosen (in `auto`'s order of
    /// preference). A [`Severity::Blocker`] can still stop `auto`: it never
    /// overrides a target's opt-out of remote debugging, for example.
    pub usable_methods: Vec<Method>,
    /// Every other method, with the reason it cannot work.
    pub unusable_methods: Vec<(Method, String)>,
}

impl Diagnosis {
    /// The finding of check `id` (one of [`check`]'s constants), if it ran.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == id)
    }

    /// The findings that stop an attach.
    pub fn blockers(&self) -> impl Iterator<Item = &Finding> + '_ {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker)
    }

    /// The most severe finding's severity.
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Ok)
    }

    /// Whether an attach is expected to succeed: no blocker, and some method
    /// usable.
    pub fn can_attach(&self) -> bool {
        self.worst() != Severity::Blocker && !self.usable_methods.is_empty()
    }

    /// Why `method` cannot work, or `None` when it is expected to.
    pub fn why_not(&self, method: Method) -> Option<&str> {
        self.unusable_methods
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, why)| why.as_str())
    }
}

impl fmt::Display for Diagnosis {
    /// A readable report: one block per finding, then the methods and the
    /// verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Peeka doctor: process {}", self.pid)?;
        let width = self
            .findings
            .iter()
            .map(|x| x.check.len())
            .max()
            .unwrap_or(0);
        for finding in &self.findings {
            writeln!(
                f,
                "  [{:<7}] {:<width$}  {}",
                finding.severity.label(),
                finding.check,
                finding.summary
            )?;
            if let Some(fix) = &finding.fix {
                writeln!(f, "  {:<9} {:<width$}  fix: {fix}", "", "")?;
            }
        }
        let names: Vec<&str> = self.usable_methods.iter().map(|m| m.name()).collect();
        writeln!(
            f,
            "usable methods: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )?;
        for (method, why) in &self.unusable_methods {
            writeln!(f, "  not {method}: {why}")?;
        }
        let blockers = self.blockers().count();
        if self.can_attach() {
            write!(f, "verdict: an attach is expected to work")?;
            if self.worst() == Severity::Warning {
                write!(f, " (see the warnings above)")?;
            }
            writeln!(f)
        } else if blockers > 0 {
            writeln!(
                f,
                "verdict: an attach will fail until the {blockers} blocker{} above {} fixed",
                if blockers == 1 { "" } else { "s" },
                if blockers == 1 { "is" } else { "are" }
            )
        } else {
            writeln!(
                f,
                "verdict: an attach will fail: no method can work (see above)"
            )
        }
    }
}

/// Diagnoses process `pid`: every reason an attach to it could fail, and
/// the fix for each. Read-only: nothing in the target changes.
pub fn doctor(pid: u32) -> Diagnosis {
    Facts::gather(pid).diagnose()
}

/// The architecture this build of Peeka runs on.
fn host_arch() -> Arch {
    if cfg!(target_arch = "x86_64") {
        Arch::X86_64
    } else if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else {
        Arch::Other
    }
}

/// The debugger the fallback method of this platform runs.
fn platform_debugger() -> &'static str {
    if cfg!(target_os = "macos") {
        "lldb"
    } else {
        "gdb"
    }
}

/// The symbols the ptrace and debugger methods call in the target.
const INJECTION_SYMBOLS: [&str; 2] = ["Py_AddPendingCall", "PyRun_SimpleString"];

/// How a namespace of the target relates to ours.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NsRelation {
    Same,
    Different,
    Unknown(String),
}

/// The target's namespaces and root, compared with ours.
#[derive(Debug, Clone)]
struct NamespaceFacts {
    /// `NSpid`: the target's pid in each nested pid namespace.
    ns_pid: Vec<u32>,
    /// `/proc/PID/root`, or why it could not be read.
    root: Result<PathBuf, String>,
    pid: NsRelation,
    mount: NsRelation,
    user: NsRelation,
}

/// The private directory the attach would prepare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum StagingFacts {
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

/// What [`Target::inspect`] found, in plain values.
#[derive(Debug, Clone)]
struct Inspected {
    exe: PathBuf,
    version: PythonVersion,
    layout: Layout,
    interpreter_file: PathBuf,
    deleted: bool,
    arch: Arch,
    remote_debug: RemoteDebug,
    missing_symbols: Vec<&'static str>,
}

/// The facts about a live (or at least not reaped) process.
#[derive(Debug)]
struct LiveFacts {
    status: ProcStatus,
    caller: ProcStatus,
    access: PtraceAccess,
    /// `/proc/PID/cmdline`, arguments separated by spaces.
    command_line: String,
    /// The tracer's command name, when another process traces the target.
    tracer_name: Option<String>,
    inspected: Result<Inspected, InspectError>,
    namespaces: NamespaceFacts,
    /// Read when remote debugging is disabled.
    opt_out: Option<OptOutEvidence>,
    /// Only when the target was inspected.
    staging: Option<StagingFacts>,
}

#[derive(Debug)]
enum ProcessFacts {
    /// No such process.
    Missing,
    /// `/proc/PID/status` could not be read, and why.
    Unreadable(String),
    /// Exited, not reaped.
    Zombie(ProcStatus),
    /// Running (or stopped).
    Alive(Box<LiveFacts>),
}

/// Everything the decision depends on. Gathering reads the system;
/// [`diagnose`](Facts::diagnose) is pure.
#[derive(Debug)]
struct Facts {
    pid: u32,
    own_pid: u32,
    host_arch: Arch,
    on_linux: bool,
    /// The platform debugger's name, and where it was found in `PATH`.
    debugger: (&'static str, Option<PathBuf>),
    process: ProcessFacts,
}

impl Facts {
    fn gather(pid: u32) -> Self {
        let debugger_name = platform_debugger();
        Self {
            pid,
            own_pid: std::process::id(),
            host_arch: host_arch(),
            on_linux: cfg!(target_os = "linux"),
            debugger: (debugger_name, find_in_path(debugger_name)),
            process: gather_process(pid),
        }
    }

    fn diagnose(&self) -> Diagnosis {
        let methods = self.method_verdicts();
        let mut findings = Vec::new();
        match &self.process {
            ProcessFacts::Missing => findings.push(Finding::blocker(
                check::PROCESS,
                InspectError::NoSuchProcess { pid: self.pid }.to_string(),
                "pass the pid of a running Python process (`pgrep -a python`)",
            )),
            ProcessFacts::Unreadable(why) => findings.push(Finding::blocker(
                check::PROCESS,
                format!("cannot read /proc/{}/status: {why}", self.pid),
                "run as root (sudo), or as the process's user if /proc is mounted with hidepid",
            )),
            ProcessFacts::Zombie(status) => findings.push(Finding::blocker(
                check::PROCESS,
                InspectError::Zombie { pid: self.pid }.to_string(),
                format!(
                    "pass the pid of a running Python process (`pgrep -a python`); the zombie stays until its parent, process {}, reaps it or exits",
                    status.ppid
                ),
            )),
            ProcessFacts::Alive(live) => self.diagnose_live(live, &methods, &mut findings),
        }
        let (usable_methods, unusable_methods) = split_methods(methods);
        Diagnosis {
            pid: self.pid,
            findings,
            usable_methods,
            unusable_methods,
        }
    }

    fn diagnose_live(
        &self,
        live: &LiveFacts,
        methods: &[(Method, Result<(), String>)],
        out: &mut Vec<Finding>,
    ) {
        let usable = |m: Method| methods.iter().any(|(x, v)| *x == m && v.is_ok());
        out.push(self.process_finding(live));
        out.extend(self.python_findings(live));
        if let Ok(inspected) = &live.inspected {
            out.push(
                self.architecture_finding(inspected, usable(Method::Gdb) || usable(Method::Lldb)),
            );
        }
        out.push(self.permission_finding(live));
        out.push(yama_finding(self.pid, live));
        out.push(capability_finding(live));
        out.push(self.traced_finding(live));
        out.push(seccomp_finding(live, usable(Method::Pep768)));
        out.push(self.container_finding(live));
        if let Ok(inspected) = &live.inspected {
            out.push(self.remote_debug_finding(live, inspected));
        }
        if let Some(staging) = &live.staging {
            out.push(staging_finding(staging));
        }
        out.push(self.debugger_finding());
    }

    fn process_finding(&self, live: &LiveFacts) -> Finding {
        let status = &live.status;
        let what = describe_process(self.pid, live);
        if self.pid == self.own_pid {
            return Finding::blocker(
                check::PROCESS,
                format!("{what} is this very process; a process cannot attach to itself"),
                "run Peeka from another process",
            );
        }
        if status.state == 'T' {
            return Finding::blocker(
                check::PROCESS,
                format!("{what} is stopped (job control or SIGSTOP): none of its threads runs Python, so an attach would time out"),
                format!("resume it with `kill -CONT {}` (or `fg` in its shell)", self.pid),
            );
        }
        let threads = if status.threads == 1 {
            "thread"
        } else {
            "threads"
        };
        Finding::ok(
            check::PROCESS,
            format!(
                "{what} is alive (state {}, {} {threads}, uid {})",
                status.state,
                status.threads,
                status.euid()
            ),
        )
    }

    /// The `cpython` and `version` findings.
    fn python_findings(&self, live: &LiveFacts) -> Vec<Finding> {
        let pid = self.pid;
        match &live.inspected {
            Ok(python) => {
                let deleted = if python.deleted {
                    " (replaced on disk since it started; Peeka reads the mapped copy)"
                } else {
                    ""
                };
                let mut findings = vec![Finding::ok(
                    check::CPYTHON,
                    format!(
                        "CPython {} ({} layout: the interpreter is in {}{deleted}), executable {}",
                        python.version,
                        python.layout,
                        python.interpreter_file.display(),
                        python.exe.display()
                    ),
                )];
                findings.push(Finding::ok(
                    check::VERSION,
                    format!(
                        "Python {} is supported (Peeka supports CPython 3.{} to 3.{})",
                        python.version,
                        SUPPORTED_MINORS.start(),
                        SUPPORTED_MINORS.end()
                    ),
                ));
                findings
            }
            Err(error @ InspectError::NotCPython { exe, .. }) => {
                // The error's own text says what was found instead.
                let fix = if exe.to_lowercase().contains("pypy") {
                    "Peeka attaches to CPython only; run the program with CPython 3.8-3.15 to diagnose it with Peeka"
                } else {
                    "pass the pid of a CPython process (`pgrep -a python`); for a launcher or wrapper, pass the pid of its Python child"
                };
                vec![Finding::blocker(check::CPYTHON, error.to_string(), fix)]
            }
            Err(error @ InspectError::UnsupportedVersion { version, .. }) => {
                let fix = if version.minor < *SUPPORTED_MINORS.start() {
                    "upgrade the program to CPython 3.8 or newer".to_owned()
                } else {
                    format!("Python 3.{} is newer than this Peeka knows: upgrade Peeka", version.minor)
                };
                vec![
                    Finding::ok(check::CPYTHON, format!("CPython {version}")),
                    Finding::blocker(check::VERSION, error.to_string(), fix),
                ]
            }
            Err(InspectError::PermissionDenied { .. }) => vec![Finding::warning(
                check::CPYTHON,
                format!(
                    "process {pid} could not be inspected without ptrace access, so whether it runs a supported CPython is unknown (its command line: `{}`)",
                    short_command(&live.command_line)
                ),
                format!("fix the {} finding, then run the doctor again", check::PTRACE_PERMISSION),
            )],
            Err(InspectError::NoSuchProcess { .. } | InspectError::Zombie { .. }) => vec![Finding::blocker(
                check::CPYTHON,
                format!("process {pid} exited while it was being inspected"),
                "pass the pid of a running Python process (`pgrep -a python`)",
            )],
            Err(error) => vec![Finding::warning(
                check::CPYTHON,
                error.to_string(),
                "check that the process is still running and try again as root (sudo)",
            )],
        }
    }

    fn architecture_finding(&self, python: &Inspected, debugger_usable: bool) -> Finding {
        if python.arch == self.host_arch {
            return Finding::ok(
                check::ARCHITECTURE,
                format!(
                    "the interpreter is built for {}, like this Peeka",
                    python.arch
                ),
            );
        }
        let summary = format!(
            "the interpreter is built for {} but this Peeka for {}: the pep768 and ptrace methods cannot work",
            python.arch, self.host_arch
        );
        let fix = format!("use a Peeka built for {}", python.arch);
        if debugger_usable {
            Finding::warning(
                check::ARCHITECTURE,
                summary,
                format!("{fix}, or `--method {}`", self.debugger.0),
            )
        } else {
            Finding::blocker(check::ARCHITECTURE, summary, fix)
        }
    }

    fn permission_finding(&self, live: &LiveFacts) -> Finding {
        let access = &live.access;
        let credentials: Vec<&PtraceObstacle> = access
            .obstacles
            .iter()
            .filter(|o| !o.is_yama() && !matches!(o, PtraceObstacle::AlreadyTraced { .. }))
            .collect();
        if let Some(first) = credentials.first() {
            let whys: Vec<String> = credentials.iter().map(|o| o.why(self.pid)).collect();
            return Finding::blocker(check::PTRACE_PERMISSION, whys.join("; and "), first.fix());
        }
        let kernel_refused = matches!(live.inspected, Err(InspectError::PermissionDenied { .. }));
        if kernel_refused && access.allowed() {
            return Finding::blocker(
                check::PTRACE_PERMISSION,
                format!(
                    "the kernel refused access to process {} although uid, capabilities and Yama allow it: a security module (AppArmor, SELinux) or a seccomp filter on this process is blocking ptrace",
                    self.pid
                ),
                "look for the denial in `dmesg` or the audit log, and allow ptrace for Peeka in that policy (in a container: --security-opt apparmor=unconfined / seccomp=unconfined)",
            );
        }
        let how = if access.cap_sys_ptrace {
            "this process holds CAP_SYS_PTRACE".to_owned()
        } else {
            format!(
                "it runs as our uid {} and gid {}, and is dumpable",
                access.caller_uid, live.caller.gid[0]
            )
        };
        Finding::ok(
            check::PTRACE_PERMISSION,
            format!("our credentials allow tracing process {}: {how}", self.pid),
        )
    }

    fn traced_finding(&self, live: &LiveFacts) -> Finding {
        let traced = live
            .access
            .obstacles
            .iter()
            .find(|o| matches!(o, PtraceObstacle::AlreadyTraced { .. }));
        match traced {
            Some(obstacle) => {
                let name = live
                    .tracer_name
                    .as_deref()
                    .map(|n| format!(", `{n}`"))
                    .unwrap_or_default();
                Finding::blocker(
                    check::TRACED,
                    format!("{}{name}", obstacle.why(self.pid)),
                    obstacle.fix(),
                )
            }
            None => Finding::ok(
                check::TRACED,
                format!("process {} is not traced by another process", self.pid),
            ),
        }
    }

    fn container_finding(&self, live: &LiveFacts) -> Finding {
        let ns = &live.namespaces;
        let mut differences = Vec::new();
        let mut unknown = Vec::new();
        let inner_pid = ns.ns_pid.last().copied().filter(|_| ns.ns_pid.len() > 1);
        match (&ns.pid, inner_pid) {
            (NsRelation::Different, Some(inner)) | (NsRelation::Unknown(_), Some(inner)) => {
                differences.push(format!("another pid namespace (pid {inner} there)"));
            }
            (NsRelation::Different, None) => differences.push("another pid namespace".to_owned()),
            (NsRelation::Unknown(why), None) => unknown.push(("pid namespace", why.clone())),
            (NsRelation::Same, _) => {}
        }
        match &ns.mount {
            NsRelation::Different => differences.push("another mount namespace".to_owned()),
            NsRelation::Unknown(why) => unknown.push(("mount namespace", why.clone())),
            NsRelation::Same => {}
        }
        match &ns.root {
            Ok(root) if root != Path::new("/") => {
                differences.push(format!("root directory {}", root.display()))
            }
            Ok(_) => {}
            Err(why) => unknown.push(("root directory", why.clone())),
        }
        let other_user_ns = ns.user == NsRelation::Different;
        if other_user_ns {
            differences.push("another user namespace".to_owned());
        }
        let mut summary = if differences.is_empty() && unknown.is_empty() {
            format!(
                "process {} shares this process's pid and mount namespaces and root directory",
                self.pid
            )
        } else if differences.is_empty() {
            format!(
                "process {} shows no sign of another namespace or root directory",
                self.pid
            )
        } else {
            format!(
                "process {} runs in a container or chroot: {}. Peeka reaches its files through /proc/{}/root and puts the agent's files in its own /tmp",
                self.pid,
                differences.join(", "),
                self.pid
            )
        };
        if !unknown.is_empty() {
            summary.push_str(&format!(
                ", but {} could not be compared",
                describe_unknown(&unknown)
            ));
        }
        if other_user_ns {
            Finding::warning(
                check::CONTAINER,
                summary,
                "CAP_SYS_PTRACE counts only in the target's user namespace or one above it: if access is refused, run Peeka as root on the host or inside the target's container",
            )
        } else if !unknown.is_empty() {
            Finding::warning(
                check::CONTAINER,
                summary,
                format!(
                    "fix the {} finding, then run the doctor again",
                    check::PTRACE_PERMISSION
                ),
            )
        } else {
            Finding::ok(check::CONTAINER, summary)
        }
    }

    fn remote_debug_finding(&self, live: &LiveFacts, python: &Inspected) -> Finding {
        let pid = self.pid;
        match &python.remote_debug {
            RemoteDebug::Unsupported => Finding::ok(
                check::REMOTE_DEBUG,
                format!(
                    "Python {} predates PEP 768 remote debugging (3.14); Peeka injects with ptrace or {} instead",
                    python.version, self.debugger.0
                ),
            ),
            RemoteDebug::Enabled => Finding::ok(
                check::REMOTE_DEBUG,
                format!("PEP 768 remote debugging is enabled in process {pid}: the pep768 method can attach"),
            ),
            RemoteDebug::Disabled => {
                let evidence = live.opt_out.clone().unwrap_or_default();
                let restart = match (&evidence.environment, evidence.x_option) {
                    (Some(_), true) => format!("restart it without {ENV_VAR} in its environment and without `-X {X_OPTION}`"),
                    (Some(_), false) => format!("restart it without {ENV_VAR} in its environment"),
                    (None, true) => format!("restart it without `-X {X_OPTION}`"),
                    (None, false) if !evidence.environment_readable => format!("restart it without {ENV_VAR} and `-X {X_OPTION}`, with a CPython built with remote debugging (the default)"),
                    (None, false) => "run it with a CPython built with remote debugging (the default)".to_owned(),
                };
                Finding::blocker(
                    check::REMOTE_DEBUG,
                    format!("process {pid} has PEP 768 remote debugging disabled: {evidence}"),
                    format!(
                        "Peeka does not override the operator's opt-out: {restart}, or pass `--method ptrace` if your policy allows tracing it"
                    ),
                )
            }
            RemoteDebug::Unknown(why) => Finding::warning(
                check::REMOTE_DEBUG,
                format!("whether remote debugging is enabled in process {pid} could not be read: {why}"),
                "if the process is still starting, try again in a moment; otherwise use `--method ptrace`",
            ),
        }
    }

    fn debugger_finding(&self) -> Finding {
        let (name, path) = &self.debugger;
        let id = if *name == "lldb" {
            check::LLDB
        } else {
            check::GDB
        };
        match path {
            Some(path) => Finding::ok(
                id,
                format!(
                    "{name} is installed at {} (for the {name} fallback method)",
                    path.display()
                ),
            ),
            None => Finding::warning(
                id,
                format!(
                    "{name} was not found in PATH, so the {name} fallback method is unavailable"
                ),
                if *name == "gdb" {
                    "install gdb (`apt-get install gdb`, `dnf install gdb`) if the other methods cannot attach"
                } else {
                    "install the Xcode command line tools (`xcode-select --install`)"
                },
            ),
        }
    }

    /// Whether each method can work, in `auto`'s order.
    fn method_verdicts(&self) -> Vec<(Method, Result<(), String>)> {
        let common = self.common_obstacle();
        Method::ALL
            .into_iter()
            .map(|method| {
                let verdict = match &common {
                    Some(why) => Err(why.clone()),
                    None => self.method_obstacle(method).map_or(Ok(()), Err),
                };
                (method, verdict)
            })
            .collect()
    }

    /// A reason that rules out every method.
    fn common_obstacle(&self) -> Option<String> {
        let live = match &self.process {
            ProcessFacts::Missing => return Some("there is no such process".into()),
            ProcessFacts::Unreadable(why) => {
                return Some(format!("the process cannot be examined: {why}"))
            }
            ProcessFacts::Zombie(_) => return Some("the process is a zombie".into()),
            ProcessFacts::Alive(live) => live,
        };
        if self.pid == self.own_pid {
            return Some("a process cannot attach to itself".into());
        }
        if live.status.state == 'T' {
            return Some(format!(
                "the process is stopped; resume it with `kill -CONT {}`",
                self.pid
            ));
        }
        if let Err(error) = &live.inspected {
            return Some(match error {
                InspectError::PermissionDenied { .. } => {
                    format!("ptrace access is denied (see {})", check::PTRACE_PERMISSION)
                }
                InspectError::NotCPython { .. } => {
                    format!("it is not CPython (see {})", check::CPYTHON)
                }
                InspectError::UnsupportedVersion { version, .. } => {
                    format!("Python {version} is not supported (see {})", check::VERSION)
                }
                InspectError::NoSuchProcess { .. } | InspectError::Zombie { .. } => {
                    "the process exited".into()
                }
                other => format!("it could not be inspected: {other}"),
            });
        }
        if let Err(why) = &live.access.verdict {
            return Some(format!("ptrace access is denied: {why}"));
        }
        match &live.staging {
            Some(StagingFacts::Untrusted { .. } | StagingFacts::TmpUnusable { .. }) => {
                Some(format!(
                    "the agent's private directory cannot be prepared (see {})",
                    check::STAGING
                ))
            }
            _ => None,
        }
    }

    /// Why `method` cannot work, given no common obstacle.
    fn method_obstacle(&self, method: Method) -> Option<String> {
        let ProcessFacts::Alive(live) = &self.process else {
            return Some("there is no live process".into());
        };
        let Ok(python) = &live.inspected else {
            return Some("the process is not an attachable CPython".into());
        };
        let strict_seccomp = live.status.seccomp == 1;
        let missing_symbols = (!python.missing_symbols.is_empty()).then(|| {
            format!(
                "the interpreter does not export {}",
                python.missing_symbols.join(" and ")
            )
        });
        let arch_mismatch = (python.arch != self.host_arch).then(|| {
            format!(
                "the interpreter is built for {} and this Peeka for {}",
                python.arch, self.host_arch
            )
        });
        match method {
            Method::Pep768 => {
                if python.version.minor < 14 {
                    return Some(format!(
                        "Python {} has no remote-exec support (it arrived in 3.14)",
                        python.version
                    ));
                }
                match &python.remote_debug {
                    RemoteDebug::Enabled => arch_mismatch,
                    RemoteDebug::Disabled => Some(format!(
                        "remote debugging is disabled in the target: {}",
                        live.opt_out.clone().unwrap_or_default()
                    )),
                    RemoteDebug::Unknown(why) => {
                        Some(format!("its remote-debug state could not be read: {why}"))
                    }
                    RemoteDebug::Unsupported => {
                        Some("the interpreter has no remote-exec support".into())
                    }
                }
            }
            Method::Ptrace => {
                if !self.on_linux {
                    Some("ptrace injection is implemented for Linux only".into())
                } else if python.arch != Arch::X86_64 || self.host_arch != Arch::X86_64 {
                    Some(format!(
                        "ptrace injection supports x86_64 only; the interpreter is built for {}",
                        python.arch
                    ))
                } else if strict_seccomp {
                    Some("the target runs in seccomp strict mode, which forbids the mmap call the injection needs".into())
                } else {
                    missing_symbols
                }
            }
            Method::Gdb | Method::Lldb => {
                let (name, path) = &self.debugger;
                if method.name() != *name {
                    Some(format!(
                        "the {method} method is for {}; here use {name}",
                        if method == Method::Lldb {
                            "macOS"
                        } else {
                            "Linux"
                        }
                    ))
                } else if path.is_none() {
                    Some(format!("{name} is not installed (not found in PATH)"))
                } else if strict_seccomp {
                    Some(format!(
                        "the target runs in seccomp strict mode, which forbids the calls {name} makes in it"
                    ))
                } else {
                    missing_symbols
                }
            }
        }
    }
}

fn split_methods(
    methods: Vec<(Method, Result<(), String>)>,
) -> (Vec<Method>, Vec<(Method, String)>) {
    let mut usable = Vec::new();
    let mut unusable = Vec::new();
    for (method, verdict) in methods {
        match verdict {
            Ok(()) => usable.push(method),
            Err(why) => unusable.push((method, why)),
        }
    }
    (usable, unusable)
}

fn yama_finding(pid: u32, live: &LiveFacts) -> Finding {
    let access = &live.access;
    let Some(scope) = access.yama else {
        return Finding::ok(
            check::YAMA,
            "Yama is not active (no kernel.yama.ptrace_scope): classic ptrace rules apply",
        );
    };
    if let Some(obstacle) = access.obstacles.iter().find(|o| o.is_yama()) {
        return Finding::blocker(check::YAMA, obstacle.why(pid), obstacle.fix());
    }
    let value = scope.value();
    let summary = match scope {
        YamaScope::Classic => format!("kernel.yama.ptrace_scope is {value}: classic ptrace rules apply"),
        _ if access.cap_sys_ptrace => {
            format!("kernel.yama.ptrace_scope is {value}, which this process passes with CAP_SYS_PTRACE")
        }
        _ => format!("kernel.yama.ptrace_scope is {value}, which allows it because the target descends from this process"),
    };
    Finding::ok(check::YAMA, summary)
}

fn capability_finding(live: &LiveFacts) -> Finding {
    let access = &live.access;
    let uid = live.caller.euid();
    if access.cap_sys_ptrace {
        return Finding::ok(
            check::CAPABILITIES,
            format!("this process (uid {uid}) holds CAP_SYS_PTRACE"),
        );
    }
    let lifted: Vec<&'static str> = access
        .obstacles
        .iter()
        .filter(|o| o.lifted_by_capability())
        .map(obstacle_label)
        .collect();
    if lifted.is_empty() {
        return Finding::ok(
            check::CAPABILITIES,
            format!(
                "this process (uid {uid}) lacks CAP_SYS_PTRACE, which this target does not require"
            ),
        );
    }
    let fix = if uid == 0 {
        "root without CAP_SYS_PTRACE usually means a container: add --cap-add=SYS_PTRACE (docker, podman) or securityContext.capabilities.add: [\"SYS_PTRACE\"] (Kubernetes)"
    } else {
        "run as root (sudo), or give Peeka the capability (`setcap cap_sys_ptrace+ep` on its binary; in a container --cap-add=SYS_PTRACE)"
    };
    Finding::blocker(
        check::CAPABILITIES,
        format!(
            "this process (uid {uid}) lacks CAP_SYS_PTRACE, which would get past {}",
            lifted.join(" and ")
        ),
        fix,
    )
}

fn obstacle_label(obstacle: &PtraceObstacle) -> &'static str {
    match obstacle {
        PtraceObstacle::AlreadyTraced { .. } => "the other tracer",
        PtraceObstacle::YamaNoAttach => "Yama scope 3",
        PtraceObstacle::YamaAdminOnly => "Yama scope 2",
        PtraceObstacle::OtherUser { .. } => "the uid mismatch",
        PtraceObstacle::OtherGroup { .. } => "the gid mismatch",
        PtraceObstacle::NotDumpable => "the target's non-dumpable flag",
        PtraceObstacle::YamaRestricted => "Yama scope 1",
    }
}

/// The seccomp finding, for the target and for this process. With a usable
/// pep768 method the target's filter does not matter: that protocol makes
/// the target run no system call.
fn seccomp_finding(live: &LiveFacts, pep768_usable: bool) -> Finding {
    let mut severity = Severity::Ok;
    let mut summary = Vec::new();
    let mut fixes = Vec::new();
    match live.status.seccomp {
        0 => summary.push("the target runs without a seccomp filter".to_owned()),
        1 if pep768_usable => summary.push("the target runs in seccomp strict mode; the pep768 method needs no system call in it, so this does not matter".to_owned()),
        1 => {
            severity = Severity::Blocker;
            summary.push("the target runs in seccomp strict mode (only read, write and exit are allowed): the ptrace and debugger methods cannot make it call mmap or any function".to_owned());
            fixes.push("restart it without strict seccomp, or run it on Python 3.14+ (PEP 768 needs no system call in the target)".to_owned());
        }
        _ if pep768_usable => summary.push("the target runs under a seccomp filter; the pep768 method needs no system call in it, so this does not matter".to_owned()),
        _ => {
            severity = Severity::Warning;
            summary.push("the target runs under a seccomp filter: the ptrace and gdb methods make it run the mmap and munmap system calls, which a strict profile may block (Peeka then stops cleanly and says so)".to_owned());
            fixes.push("if it does, allow mmap and munmap in the target's profile or run it with --security-opt seccomp=unconfined (Docker's default profile allows them)".to_owned());
        }
    }
    if live.caller.seccomp != 0 {
        severity = severity.max(Severity::Warning);
        summary.push("this process itself runs under a seccomp filter: if it blocks ptrace or process_vm_readv/writev, attaching fails with \"Operation not permitted\"".to_owned());
        fixes.push("if it does, run Peeka outside that sandbox, or its container with --security-opt seccomp=unconfined".to_owned());
    }
    Finding {
        check: check::SECCOMP,
        severity,
        summary: summary.join("; "),
        fix: (!fixes.is_empty()).then(|| fixes.join("; ")),
    }
}

fn staging_finding(staging: &StagingFacts) -> Finding {
    match staging {
        StagingFacts::Fresh { target_dir, host_dir } => Finding::ok(
            check::STAGING,
            format!(
                "the agent's private directory will be {} in the target's filesystem ({} from here)",
                target_dir.display(),
                host_dir.display()
            ),
        ),
        StagingFacts::Reused { target_dir } => Finding::ok(
            check::STAGING,
            format!("{} exists from an earlier attach and will be reused", target_dir.display()),
        ),
        StagingFacts::Untrusted { host_dir, uid, owner, mode } => Finding::blocker(
            check::STAGING,
            format!(
                "{} exists but is not a private directory of uid {uid} (owner {owner}, mode {mode:o}); the attach refuses to use it",
                host_dir.display()
            ),
            format!(
                "it may have been planted by another user: remove it (`rm -r {}`) and attach again",
                host_dir.display()
            ),
        ),
        StagingFacts::TmpUnusable { host_tmp, why } => Finding::blocker(
            check::STAGING,
            format!("the target's /tmp ({} from here) cannot take the agent's files: {why}", host_tmp.display()),
            "give the target a writable /tmp (in Kubernetes, an emptyDir volume mounted at /tmp)",
        ),
    }
}

/// `pid namespace and mount namespace: Permission denied`, grouping the
/// items that failed for the same reason.
fn describe_unknown(unknown: &[(&str, String)]) -> String {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for (what, why) in unknown {
        match groups
            .iter_mut()
            .find(|(_, reason)| *reason == why.as_str())
        {
            Some((whats, _)) => whats.push(what),
            None => groups.push((vec![what], why)),
        }
    }
    groups
        .iter()
        .map(|(whats, why)| format!("its {} ({why})", whats.join(", ")))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn describe_process(pid: u32, live: &LiveFacts) -> String {
    format!("process {pid} (`{}`)", short_command(&live.command_line))
}

/// A command line for a message, cut to a readable length.
fn short_command(command_line: &str) -> String {
    const MAX: usize = 120;
    if command_line.is_empty() {
        return "unknown command".to_owned();
    }
    let mut text = String::new();
    for c in command_line.chars().take(MAX) {
        if c.is_control() {
            text.extend(c.escape_default());
        } else {
            text.push(c);
        }
    }
    if command_line.chars().count() > MAX {
        text.push_str("...");
    }
    text
}

// ---------------------------------------------------------------------------
// Gathering: reads only.

fn gather_process(pid: u32) -> ProcessFacts {
    let status = match ProcStatus::read(pid) {
        Ok(status) => status,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return ProcessFacts::Missing,
        Err(e) => return ProcessFacts::Unreadable(e.to_string()),
    };
    if status.is_zombie() {
        return ProcessFacts::Zombie(status);
    }
    let caller = ProcStatus::read(std::process::id()).unwrap_or_default();
    let access = PtraceAccess::check(&status, pid);
    let command_line = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let command_line = if command_line.is_empty() {
        status.name.clone()
    } else {
        command_line
    };
    let tracer_name = access.traced_by.and_then(|tracer| {
        fs::read_to_string(format!("/proc/{tracer}/comm"))
            .ok()
            .map(|n| n.trim().to_owned())
    });
    let target = Target::inspect(pid);
    let namespaces = gather_namespaces(pid, &status);
    let (inspected, opt_out, staging) = match target {
        Ok(target) => {
            let opt_out =
                (target.remote_debug == RemoteDebug::Disabled).then(|| OptOutEvidence::read(pid));
            let staging = gather_staging(&target);
            (Ok(summarize(&target)), opt_out, Some(staging))
        }
        Err(error) => (Err(error), None, None),
    };
    ProcessFacts::Alive(Box::new(LiveFacts {
        status,
        caller,
        access,
        command_line,
        tracer_name,
        inspected,
        namespaces,
        opt_out,
        staging,
    }))
}

fn summarize(target: &Target) -> Inspected {
    Inspected {
        exe: target.exe.clone(),
        version: target.python.version,
        layout: target.python.layout,
        interpreter_file: target.python.path.clone(),
        deleted: target.python.deleted,
        arch: target.arch,
        remote_debug: target.remote_debug.clone(),
        missing_symbols: INJECTION_SYMBOLS
            .into_iter()
            .filter(|s| !target.python.elf.exports(s))
            .collect(),
    }
}

fn gather_namespaces(pid: u32, status: &ProcStatus) -> NamespaceFacts {
    let relation = |kind: &str| {
        let ours = fs::read_link(format!("/proc/self/ns/{kind}"));
        let theirs = fs::read_link(format!("/proc/{pid}/ns/{kind}"));
        match (ours, theirs) {
            (Ok(a), Ok(b)) if a == b => NsRelation::Same,
            (Ok(_), Ok(_)) => NsRelation::Different,
            (Err(e), _) | (_, Err(e)) => NsRelation::Unknown(e.to_string()),
        }
    };
    NamespaceFacts {
        ns_pid: status.ns_pid.clone(),
        root: fs::read_link(format!("/proc/{pid}/root")).map_err(|e| e.to_string()),
        pid: relation("pid"),
        mount: relation("mnt"),
        user: relation("user"),
    }
}

fn gather_staging(target: &Target) -> StagingFacts {
    let target_dir = Staging::target_dir_for(target);
    let host_dir = target.host_path(&target_dir);
    let host_tmp = host_dir
        .parent()
        .map_or_else(|| target.host_path(Path::new("/tmp")), Path::to_path_buf);
    match check_existing_private_dir(&host_dir, target.uid()) {
        Ok(true) => StagingFacts::Reused { target_dir },
        Err(StageError::Untrusted {
            path,
            uid,
            owner,
            mode,
        }) => StagingFacts::Untrusted {
            host_dir: path,
            uid,
            owner,
            mode,
        },
        Ok(false) | Err(_) => match writable_dir(&host_tmp) {
            Ok(()) => StagingFacts::Fresh {
                target_dir,
                host_dir,
            },
            Err(why) => StagingFacts::TmpUnusable { host_tmp, why },
        },
    }
}

/// Whether we could create an entry in directory `path` (it exists, is a
/// directory, is writable by us and not on a read-only filesystem).
fn writable_dir(path: &Path) -> Result<(), String> {
    let meta = fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("it is not a directory".into());
    }
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call.
    let rc = unsafe { libc::access(c_path.as_ptr(), libc::W_OK | libc::X_OK) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error().to_string())
    }
}

/// The first executable file called `program` in `PATH`.
fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permissions::AccessContext;
    use crate::python::ReleaseLevel;

    const PID: u32 = 4242;
    const CAP_SYS_PTRACE: u64 = 1 << 19;

    fn proc_status(uid: u32, cap_eff: u64) -> ProcStatus {
        ProcStatus {
            name: "python3".into(),
            state: 'S',
            ppid: 1,
            uid: [uid; 4],
            gid: [uid; 4],
            ns_pid: vec![PID],
            threads: 1,
            cap_eff,
            ..ProcStatus::default()
        }
    }

    fn version(minor: u8) -> PythonVersion {
        PythonVersion {
            major: 3,
            minor,
            micro: 1,
            level: ReleaseLevel::Final,
            serial: 0,
        }
    }

    fn inspected(minor: u8, remote_debug: RemoteDebug) -> Inspected {
        Inspected {
            exe: format!("/usr/bin/python3.{minor}").into(),
            version: version(minor),
            layout: Layout::Static,
            interpreter_file: format!("/usr/bin/python3.{minor}").into(),
            deleted: false,
            arch: Arch::X86_64,
            remote_debug,
            missing_symbols: Vec::new(),
        }
    }

    fn same_namespaces() -> NamespaceFacts {
        NamespaceFacts {
            ns_pid: vec![PID],
            root: Ok("/".into()),
            pid: NsRelation::Same,
            mount: NsRelation::Same,
            user: NsRelation::Same,
        }
    }

    /// A healthy target of Python 3.`minor`, diagnosed by root.
    fn healthy(minor: u8) -> Facts {
        let remote_debug = if minor >= 14 {
            RemoteDebug::Enabled
        } else {
            RemoteDebug::Unsupported
        };
        let caller = proc_status(0, CAP_SYS_PTRACE);
        let target = proc_status(1000, 0);
        let context = AccessContext {
            yama: None,
            target_dumpable: true,
            target_is_descendant: false,
        };
        Facts {
            pid: PID,
            own_pid: 1,
            host_arch: Arch::X86_64,
            on_linux: true,
            debugger: ("gdb", Some("/usr/bin/gdb".into())),
            process: ProcessFacts::Alive(Box::new(LiveFacts {
                access: PtraceAccess::evaluate(&caller, &target, PID, context),
                status: target,
                caller,
                command_line: format!("/usr/bin/python3.{minor} app.py"),
                tracer_name: None,
                inspected: Ok(inspected(minor, remote_debug)),
                namespaces: same_namespaces(),
                opt_out: None,
                staging: Some(StagingFacts::Fresh {
                    target_dir: format!("/tmp/peeka-{PID}").into(),
                    host_dir: format!("/proc/{PID}/root/tmp/peeka-{PID}").into(),
                }),
            })),
        }
    }

    fn live(facts: &mut Facts) -> &mut LiveFacts {
        match &mut facts.process {
            ProcessFacts::Alive(live) => live,
            other => panic!("not alive: {other:?}"),
        }
    }

    /// Re-decides the ptrace access after the caller, target or context changed.
    fn reevaluate(facts: &mut Facts, context: AccessContext) {
        let live = live(facts);
        live.access = PtraceAccess::evaluate(&live.caller, &live.status, PID, context);
    }

    fn severity(diagnosis: &Diagnosis, id: &str) -> Severity {
        diagnosis
            .finding(id)
            .unwrap_or_else(|| panic!("no {id} finding in\n{diagnosis}"))
            .severity
    }

    fn text(diagnosis: &Diagnosis, id: &str) -> String {
        let finding = diagnosis
            .finding(id)
            .unwrap_or_else(|| panic!("no {id} finding in\n{diagnosis}"));
        format!(
            "{} | fix: {}",
            finding.summary,
            finding.fix.as_deref().unwrap_or("-")
        )
    }

    fn context(yama: Option<YamaScope>, descendant: bool) -> AccessContext {
        AccessContext {
            yama,
            target_dumpable: true,
            target_is_descendant: descendant,
        }
    }

    #[test]
    fn a_healthy_3_11_target_uses_ptrace_then_gdb() {
        let diagnosis = healthy(11).diagnose();
        assert_eq!(diagnosis.worst(), Severity::Ok, "{diagnosis}");
        assert!(diagnosis.can_attach());
        assert_eq!(diagnosis.usable_methods, [Method::Ptrace, Method::Gdb]);
        assert!(diagnosis
            .why_not(Method::Pep768)
            .unwrap()
            .contains("arrived in 3.14"));
        assert!(diagnosis.why_not(Method::Lldb).unwrap().contains("macOS"));
        for id in [
            check::PROCESS,
            check::CPYTHON,
            check::VERSION,
            check::ARCHITECTURE,
            check::PTRACE_PERMISSION,
            check::YAMA,
            check::CAPABILITIES,
            check::TRACED,
            check::SECCOMP,
            check::CONTAINER,
            check::REMOTE_DEBUG,
            check::STAGING,
            check::GDB,
        ] {
            assert_eq!(severity(&diagnosis, id), Severity::Ok, "{id}:\n{diagnosis}");
        }
        assert!(text(&diagnosis, check::CPYTHON).contains("CPython 3.11.1"));
    }

    #[test]
    fn a_healthy_3_14_target_prefers_pep768() {
        let diagnosis = healthy(14).diagnose();
        assert!(diagnosis.can_attach(), "{diagnosis}");
        assert_eq!(
            diagnosis.usable_methods,
            [Method::Pep768, Method::Ptrace, Method::Gdb]
        );
        assert!(text(&diagnosis, check::REMOTE_DEBUG).contains("enabled"));
    }

    #[test]
    fn a_missing_process_is_the_only_finding() {
        let mut facts = healthy(11);
        facts.process = ProcessFacts::Missing;
        let diagnosis = facts.diagnose();
        assert_eq!(diagnosis.findings.len(), 1);
        assert_eq!(severity(&diagnosis, check::PROCESS), Severity::Blocker);
        assert!(text(&diagnosis, check::PROCESS).contains("no process with pid 4242"));
        assert!(diagnosis.usable_methods.is_empty());
        assert_eq!(
            diagnosis.why_not(Method::Ptrace),
            Some("there is no such process")
        );
    }

    #[test]
    fn a_zombie_names_its_parent() {
        let mut facts = healthy(11);
        let mut status = proc_status(1000, 0);
        status.state = 'Z';
        status.ppid = 77;
        facts.process = ProcessFacts::Zombie(status);
        let diagnosis = facts.diagnose();
        let found = text(&diagnosis, check::PROCESS);
        assert!(
            found.contains("zombie") && found.contains("process 77"),
            "{found}"
        );
        assert!(!diagnosis.can_attach());
    }

    #[test]
    fn a_stopped_process_must_be_resumed() {
        let mut facts = healthy(11);
        live(&mut facts).status.state = 'T';
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::PROCESS), Severity::Blocker);
        assert!(text(&diagnosis, check::PROCESS).contains("kill -CONT 4242"));
        assert!(diagnosis.usable_methods.is_empty());
    }

    #[test]
    fn the_doctor_cannot_attach_to_itself() {
        let mut facts = healthy(11);
        facts.own_pid = PID;
        let diagnosis = facts.diagnose();
        assert!(text(&diagnosis, check::PROCESS).contains("cannot attach to itself"));
        assert!(diagnosis.usable_methods.is_empty());
    }

    #[test]
    fn not_cpython_names_the_executable() {
        let mut facts = healthy(11);
        live(&mut facts).inspected = Err(InspectError::NotCPython {
            pid: PID,
            exe: "/usr/bin/sleep".into(),
            why: "no loaded file exports the CPython runtime (_PyRuntime); pass the pid of a Python process".into(),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CPYTHON), Severity::Blocker);
        let found = text(&diagnosis, check::CPYTHON);
        assert!(
            found.contains("/usr/bin/sleep") && found.contains("pgrep"),
            "{found}"
        );
        assert!(diagnosis.finding(check::VERSION).is_none());
        assert!(diagnosis.finding(check::REMOTE_DEBUG).is_none());
        assert!(diagnosis
            .why_not(Method::Gdb)
            .unwrap()
            .contains("it is not CPython (see cpython)"));

        live(&mut facts).inspected = Err(InspectError::NotCPython {
            pid: PID,
            exe: "/opt/pypy3/bin/pypy3".into(),
            why: "it runs PyPy, which Peeka does not support".into(),
        });
        let found = text(&facts.diagnose(), check::CPYTHON);
        assert!(
            found.contains("pypy3") && found.contains("CPython only"),
            "{found}"
        );
    }

    #[test]
    fn unsupported_versions_say_which_way_to_go() {
        let mut facts = healthy(11);
        live(&mut facts).inspected = Err(InspectError::UnsupportedVersion {
            pid: PID,
            version: version(7),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CPYTHON), Severity::Ok);
        assert_eq!(severity(&diagnosis, check::VERSION), Severity::Blocker);
        assert!(text(&diagnosis, check::VERSION).contains("3.8 or newer"));
        live(&mut facts).inspected = Err(InspectError::UnsupportedVersion {
            pid: PID,
            version: version(16),
        });
        assert!(text(&facts.diagnose(), check::VERSION).contains("upgrade Peeka"));
    }

    #[test]
    fn another_user_without_the_capability_is_blocked() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(999, 0);
        live(&mut facts).status = proc_status(0, 0);
        live(&mut facts).inspected = Err(InspectError::PermissionDenied {
            pid: PID,
            why: "denied".into(),
        });
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert_eq!(
            severity(&diagnosis, check::PTRACE_PERMISSION),
            Severity::Blocker
        );
        let found = text(&diagnosis, check::PTRACE_PERMISSION);
        assert!(
            found.contains("belongs to uid 0 and we run as uid 999"),
            "{found}"
        );
        assert!(
            found.contains("run as that user") && found.contains("as root (sudo"),
            "{found}"
        );
        assert_eq!(severity(&diagnosis, check::CAPABILITIES), Severity::Blocker);
        assert!(text(&diagnosis, check::CAPABILITIES).contains("sudo"));
        // Unknown rather than wrong: the command line is the only clue.
        assert_eq!(severity(&diagnosis, check::CPYTHON), Severity::Warning);
        assert!(text(&diagnosis, check::CPYTHON).contains("python3.11 app.py"));
        assert!(diagnosis.usable_methods.is_empty());
        assert!(diagnosis
            .why_not(Method::Ptrace)
            .unwrap()
            .contains("ptrace access is denied"));
    }

    #[test]
    fn root_without_the_capability_is_told_about_containers() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(0, 0);
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CAPABILITIES), Severity::Blocker);
        assert!(text(&diagnosis, check::CAPABILITIES).contains("--cap-add=SYS_PTRACE"));
    }

    #[test]
    fn the_same_user_needs_no_capability() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(1000, 0);
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert!(diagnosis.can_attach(), "{diagnosis}");
        assert!(text(&diagnosis, check::PTRACE_PERMISSION).contains("our uid 1000"));
        assert!(text(&diagnosis, check::CAPABILITIES).contains("does not require"));
    }

    #[test]
    fn a_non_dumpable_target_needs_the_capability_even_for_its_user() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(1000, 0);
        let mut undumpable = context(None, false);
        undumpable.target_dumpable = false;
        reevaluate(&mut facts, undumpable);
        let diagnosis = facts.diagnose();
        assert_eq!(
            severity(&diagnosis, check::PTRACE_PERMISSION),
            Severity::Blocker
        );
        assert!(text(&diagnosis, check::PTRACE_PERMISSION).contains("not dumpable"));
    }

    /// Yama's four scopes, for an ordinary user (same uid as the target)
    /// and for root with CAP_SYS_PTRACE.
    #[test]
    fn yama_scopes_zero_to_three() {
        let user = proc_status(1000, 0);
        let root = proc_status(0, CAP_SYS_PTRACE);
        let cases: [(Option<YamaScope>, &ProcStatus, bool, Severity, &str); 9] = [
            (None, &user, false, Severity::Ok, "not active"),
            (
                Some(YamaScope::Classic),
                &user,
                false,
                Severity::Ok,
                "is 0: classic",
            ),
            (
                Some(YamaScope::Restricted),
                &user,
                false,
                Severity::Blocker,
                "sysctl kernel.yama.ptrace_scope=0",
            ),
            (
                Some(YamaScope::Restricted),
                &user,
                true,
                Severity::Ok,
                "descends from this process",
            ),
            (
                Some(YamaScope::Restricted),
                &root,
                false,
                Severity::Ok,
                "passes with CAP_SYS_PTRACE",
            ),
            (
                Some(YamaScope::AdminOnly),
                &user,
                true,
                Severity::Blocker,
                "--cap-add=SYS_PTRACE",
            ),
            (
                Some(YamaScope::AdminOnly),
                &root,
                false,
                Severity::Ok,
                "is 2, which this process passes",
            ),
            (
                Some(YamaScope::NoAttach),
                &user,
                true,
                Severity::Blocker,
                "until the next reboot",
            ),
            (
                Some(YamaScope::NoAttach),
                &root,
                false,
                Severity::Blocker,
                "peeka-cli run",
            ),
        ];
        for (scope, caller, descendant, expected, needle) in cases {
            let mut facts = healthy(11);
            live(&mut facts).caller = caller.clone();
            reevaluate(&mut facts, context(scope, descendant));
            let diagnosis = facts.diagnose();
            let found = text(&diagnosis, check::YAMA);
            assert_eq!(
                severity(&diagnosis, check::YAMA),
                expected,
                "{scope:?} uid {}: {found}",
                caller.euid()
            );
            assert!(found.contains(needle), "{scope:?}: {found}");
            // Yama is never blamed on the credentials.
            assert_eq!(
                severity(&diagnosis, check::PTRACE_PERMISSION),
                Severity::Ok,
                "{diagnosis}"
            );
            assert_eq!(
                diagnosis.can_attach(),
                expected == Severity::Ok,
                "{diagnosis}"
            );
        }
    }

    #[test]
    fn a_capability_that_would_help_is_named_for_yama_too() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(1000, 0);
        reevaluate(&mut facts, context(Some(YamaScope::Restricted), false));
        let found = text(&facts.diagnose(), check::CAPABILITIES);
        assert!(found.contains("Yama scope 1"), "{found}");
    }

    #[test]
    fn another_tracer_is_named() {
        let mut facts = healthy(11);
        live(&mut facts).status.tracer_pid = 555;
        live(&mut facts).tracer_name = Some("strace".into());
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::TRACED), Severity::Blocker);
        let found = text(&diagnosis, check::TRACED);
        assert!(
            found.contains("process 555") && found.contains("`strace`") && found.contains("detach"),
            "{found}"
        );
        assert_eq!(severity(&diagnosis, check::PTRACE_PERMISSION), Severity::Ok);
        assert!(diagnosis.usable_methods.is_empty());
    }

    #[test]
    fn seccomp_matters_for_injection_only() {
        let mut facts = healthy(11);
        live(&mut facts).status.seccomp = 2;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Warning);
        let found = text(&diagnosis, check::SECCOMP);
        assert!(
            found.contains("mmap and munmap") && found.contains("seccomp=unconfined"),
            "{found}"
        );
        assert!(
            diagnosis.can_attach(),
            "a filter may allow mmap: {diagnosis}"
        );

        let mut facts = healthy(14);
        live(&mut facts).status.seccomp = 2;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Ok);
        assert!(text(&diagnosis, check::SECCOMP).contains("pep768 method needs no system call"));

        let mut facts = healthy(11);
        live(&mut facts).status.seccomp = 1;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Blocker);
        assert!(diagnosis
            .why_not(Method::Ptrace)
            .unwrap()
            .contains("strict mode"));
        assert!(diagnosis
            .why_not(Method::Gdb)
            .unwrap()
            .contains("strict mode"));

        let mut facts = healthy(11);
        live(&mut facts).caller.seccomp = 2;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Warning);
        assert!(text(&diagnosis, check::SECCOMP).contains("this process itself"));
    }

    #[test]
    fn containers_are_described() {
        let mut facts = healthy(14);
        live(&mut facts).namespaces = NamespaceFacts {
            ns_pid: vec![PID, 17],
            root: Ok("/var/lib/docker/overlay2/abc/merged".into()),
            pid: NsRelation::Different,
            mount: NsRelation::Different,
            user: NsRelation::Same,
        };
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CONTAINER), Severity::Ok);
        let found = text(&diagnosis, check::CONTAINER);
        for needle in [
            "another pid namespace (pid 17 there)",
            "another mount namespace",
            "root directory /var/lib/docker/overlay2/abc/merged",
        ] {
            assert!(found.contains(needle), "{needle}: {found}");
        }
        live(&mut facts).namespaces.user = NsRelation::Different;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CONTAINER), Severity::Warning);
        assert!(text(&diagnosis, check::CONTAINER).contains("user namespace"));
    }

    #[test]
    fn disabled_remote_debugging_names_the_opt_out() {
        let evidences = [
            (
                "PYTHON_DISABLE_REMOTE_DEBUG=1",
                "python3.14 app.py",
                "PYTHON_DISABLE_REMOTE_DEBUG=1",
                "without PYTHON_DISABLE_REMOTE_DEBUG",
            ),
            (
                "PATH=/bin",
                "python3.14 -X disable-remote-debug app.py",
                "-X disable-remote-debug",
                "without `-X disable-remote-debug`",
            ),
            (
                "PATH=/bin",
                "python3.14 app.py",
                "--without-remote-debug",
                "built with remote debugging",
            ),
        ];
        for (environ, cmdline, summary_needle, fix_needle) in evidences {
            let mut facts = healthy(14);
            let environ = environ.replace(' ', "\0");
            let cmdline = cmdline.replace(' ', "\0");
            live(&mut facts).inspected = Ok(inspected(14, RemoteDebug::Disabled));
            live(&mut facts).opt_out = Some(OptOutEvidence::from_process_text(
                Some(environ.as_bytes()),
                cmdline.as_bytes(),
            ));
            let diagnosis = facts.diagnose();
            assert_eq!(severity(&diagnosis, check::REMOTE_DEBUG), Severity::Blocker);
            let finding = diagnosis.finding(check::REMOTE_DEBUG).unwrap();
            assert!(
                finding.summary.contains(summary_needle),
                "{}",
                finding.summary
            );
            let fix = finding.fix.as_deref().unwrap();
            assert!(
                fix.contains(fix_needle) && fix.contains("--method ptrace"),
                "{fix}"
            );
            // The operator's choice blocks `auto`; ptrace stays possible on request.
            assert!(!diagnosis.can_attach());
            assert_eq!(diagnosis.usable_methods, [Method::Ptrace, Method::Gdb]);
            assert!(diagnosis
                .why_not(Method::Pep768)
                .unwrap()
                .contains(summary_needle));
        }
    }

    #[test]
    fn an_unreadable_remote_debug_state_is_a_warning() {
        let mut facts = healthy(15);
        live(&mut facts).inspected = Ok(inspected(
            15,
            RemoteDebug::Unknown("not initialized yet".into()),
        ));
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::REMOTE_DEBUG), Severity::Warning);
        assert_eq!(diagnosis.usable_methods, [Method::Ptrace, Method::Gdb]);
    }

    #[test]
    fn a_missing_gdb_is_a_warning_while_ptrace_works() {
        let mut facts = healthy(11);
        facts.debugger.1 = None;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::GDB), Severity::Warning);
        assert!(text(&diagnosis, check::GDB).contains("apt-get install gdb"));
        assert_eq!(diagnosis.usable_methods, [Method::Ptrace]);
        assert!(diagnosis
            .why_not(Method::Gdb)
            .unwrap()
            .contains("not found in PATH"));
        assert!(diagnosis.can_attach());
    }

    #[test]
    fn another_architecture_leaves_only_the_debugger() {
        let mut facts = healthy(11);
        if let Ok(python) = &mut live(&mut facts).inspected {
            python.arch = Arch::Other;
        }
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::ARCHITECTURE), Severity::Warning);
        assert_eq!(diagnosis.usable_methods, [Method::Gdb]);
        facts.debugger.1 = None;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::ARCHITECTURE), Severity::Blocker);
        assert!(diagnosis.usable_methods.is_empty());
    }

    #[test]
    fn missing_injection_symbols_rule_out_ptrace_and_gdb() {
        let mut facts = healthy(14);
        if let Ok(python) = &mut live(&mut facts).inspected {
            python.missing_symbols = vec!["Py_AddPendingCall"];
        }
        let diagnosis = facts.diagnose();
        assert_eq!(diagnosis.usable_methods, [Method::Pep768]);
        assert!(diagnosis
            .why_not(Method::Ptrace)
            .unwrap()
            .contains("Py_AddPendingCall"));
    }

    #[test]
    fn a_kernel_refusal_despite_the_rules_points_at_security_modules() {
        let mut facts = healthy(11);
        live(&mut facts).inspected = Err(InspectError::PermissionDenied {
            pid: PID,
            why: "Permission denied".into(),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(
            severity(&diagnosis, check::PTRACE_PERMISSION),
            Severity::Blocker
        );
        let found = text(&diagnosis, check::PTRACE_PERMISSION);
        assert!(
            found.contains("AppArmor") && found.contains("dmesg"),
            "{found}"
        );
    }

    #[test]
    fn an_unusable_tmp_or_a_planted_directory_blocks() {
        let mut facts = healthy(11);
        live(&mut facts).staging = Some(StagingFacts::TmpUnusable {
            host_tmp: format!("/proc/{PID}/root/tmp").into(),
            why: "Read-only file system (os error 30)".into(),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::STAGING), Severity::Blocker);
        assert!(text(&diagnosis, check::STAGING).contains("emptyDir"));
        assert!(diagnosis.usable_methods.is_empty());

        live(&mut facts).staging = Some(StagingFacts::Untrusted {
            host_dir: "/tmp/peeka-4242".into(),
            uid: 1000,
            owner: 1001,
            mode: 0o777,
        });
        let found = text(&facts.diagnose(), check::STAGING);
        assert!(
            found.contains("owner 1001, mode 777") && found.contains("rm -r /tmp/peeka-4242"),
            "{found}"
        );
    }

    #[test]
    fn the_report_lists_findings_fixes_methods_and_a_verdict() {
        let mut facts = healthy(14);
        live(&mut facts).inspected = Ok(inspected(14, RemoteDebug::Disabled));
        live(&mut facts).opt_out = Some(OptOutEvidence::from_process_text(
            Some(b"PYTHON_DISABLE_REMOTE_DEBUG=1\0"),
            b"python3.14\0app.py\0",
        ));
        let report = facts.diagnose().to_string();
        assert!(
            report.starts_with("Peeka doctor: process 4242\n"),
            "{report}"
        );
        assert!(report.contains("[BLOCKER] remote_debug"), "{report}");
        assert!(report.contains("fix: Peeka does not override"), "{report}");
        assert!(report.contains("[ok     ] process"), "{report}");
        assert!(report.contains("usable methods: ptrace, gdb"), "{report}");
        assert!(
            report.contains("not pep768: remote debugging is disabled"),
            "{report}"
        );
        assert!(
            report.contains("verdict: an attach will fail until the 1 blocker above is fixed"),
            "{report}"
        );
        let healthy_report = healthy(11).diagnose().to_string();
        assert!(
            healthy_report.contains("verdict: an attach is expected to work\n"),
            "{healthy_report}"
        );
    }

    #[test]
    fn doctor_of_a_missing_pid_reads_nothing_else() {
        let diagnosis = doctor(u32::MAX);
        assert_eq!(diagnosis.findings.len(), 1);
        assert_eq!(diagnosis.worst(), Severity::Blocker);
        assert_eq!(diagnosis.unusable_methods.len(), Method::ALL.len());
    }

    #[test]
    fn doctor_of_itself_is_refused_but_explained() {
        let diagnosis = doctor(std::process::id());
        assert!(text(&diagnosis, check::PROCESS).contains("cannot attach to itself"));
        // The test binary is not Python.
        assert_eq!(
            severity(&diagnosis, check::CPYTHON),
            Severity::Blocker,
            "{diagnosis}"
        );
    }

    #[test]
    fn finds_programs_in_path() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-program-peeka").is_none());
    }
}
