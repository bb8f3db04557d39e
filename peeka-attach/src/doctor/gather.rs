//! Gathering the [`Facts`]: reads only. Nothing in the target changes and
//! no file is created.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::facts::{
    DebuggerCheck, Facts, Inspected, LiveFacts, NamespaceFacts, NsRelation, ProcessFacts,
    RouteFacts, StagingFacts,
};
use crate::bootstrap::{check_existing_private_dir, StageError, Staging};
use crate::debugger_process::find_program;
use crate::pep768::look_at_python;
use crate::permissions::PtraceAccess;
use crate::procfs::ProcStatus;
use crate::ptrace::tasks::{look_at_threads, RoutePlan, ThreadLook};
use crate::remote_debug_optout::OptOutEvidence;
use crate::target::{Arch, RemoteDebug, Target};

impl Facts {
    pub(super) fn gather(pid: u32) -> Self {
        let debugger_name = platform_debugger();
        let debugger_path = find_program(Path::new(debugger_name));
        let process = gather_process(pid);
        let debugger_check = match (&process, &debugger_path) {
            (ProcessFacts::Alive(_), Some(path)) => check_debugger(debugger_name, path),
            _ => DebuggerCheck::NotChecked,
        };
        Self {
            pid,
            own_pid: std::process::id(),
            host_arch: Arch::HOST,
            on_linux: cfg!(target_os = "linux"),
            debugger: (debugger_name, debugger_path),
            debugger_check,
            process,
        }
    }
}

/// What the debugger at `path` can do here: on Linux, the gdb method's own
/// check (a test call in a throwaway process of ours, never the target;
/// kept for the lifetime of this process).
fn check_debugger(name: &str, path: &Path) -> DebuggerCheck {
    #[cfg(target_os = "linux")]
    if name == "gdb" {
        use crate::gdb::{check_gdb, GdbCheck, PROBE_LIMIT};
        return match check_gdb(path, std::time::Instant::now() + PROBE_LIMIT) {
            GdbCheck::Usable { version, .. } => DebuggerCheck::Works { version },
            GdbCheck::Unusable(unusable) => DebuggerCheck::Unusable {
                headline: unusable.headline(),
                summary: unusable.summary(),
                fix: unusable.fix(),
            },
            GdbCheck::Inconclusive { why, .. } => DebuggerCheck::Inconclusive(why),
            GdbCheck::Missing { .. } => DebuggerCheck::NotChecked,
        };
    }
    let _ = (name, path);
    DebuggerCheck::NotChecked
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
    let command_line = read_command_line(pid, &status);
    let stopped_threads = crate::job_control::stopped_threads(pid).map_or(0, |t| t.len());
    let tracer_name = access.traced_by.and_then(|tracer| {
        fs::read_to_string(format!("/proc/{tracer}/comm"))
            .ok()
            .map(|n| n.trim().to_owned())
    });
    let target = Target::inspect(pid);
    let namespaces = gather_namespaces(pid, &status);
    let (inspected, opt_out, staging, route) = match target {
        Ok(target) => {
            let opt_out =
                (target.remote_debug == RemoteDebug::Disabled).then(|| OptOutEvidence::read(pid));
            let staging = gather_staging(&target);
            let route = gather_route(&target);
            (Ok(summarize(&target)), opt_out, Some(staging), Some(route))
        }
        Err(error) => (Err(error), None, None, None),
    };
    ProcessFacts::Alive(Box::new(LiveFacts {
        status,
        caller,
        access,
        command_line,
        stopped_threads,
        tracer_name,
        inspected,
        namespaces,
        opt_out,
        staging,
        route,
    }))
}

/// One look at the threads, and what the ptrace method and PEP 768 would
/// make of it: the attach's own functions, reading `/proc` and memory
/// only.
fn gather_route(target: &Target) -> RouteFacts {
    let looks = look_at_threads(target.pid).map_err(|e| e.to_string());
    let ptrace = match &looks {
        Ok(looks) => plan_ptrace(target, looks.clone()),
        Err(why) => Err(why.clone()),
    };
    let python = if target.python.version.minor >= 13 {
        look_at_python(target)
    } else {
        Err(format!(
            "Python {} keeps the GIL where Peeka does not read it (before 3.13)",
            target.python.version
        ))
    };
    RouteFacts {
        looks,
        ptrace,
        python,
    }
}

#[cfg(target_arch = "x86_64")]
fn plan_ptrace(target: &Target, looks: Vec<ThreadLook>) -> Result<RoutePlan, String> {
    crate::ptrace::session::plan_route(target, looks).map_err(|e| e.to_string())
}

#[cfg(not(target_arch = "x86_64"))]
fn plan_ptrace(_target: &Target, _looks: Vec<ThreadLook>) -> Result<RoutePlan, String> {
    Err("the ptrace method exists for x86_64 only".into())
}

/// `/proc/PID/cmdline` with the arguments separated by spaces, or the
/// command name when it is empty or unreadable.
fn read_command_line(pid: u32, status: &ProcStatus) -> String {
    let command_line = fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if command_line.is_empty() {
        status.name.clone()
    } else {
        command_line
    }
}

/// What the decision needs of an inspected target.
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
