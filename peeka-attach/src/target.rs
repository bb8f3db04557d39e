//! Inspecting a target process: is it a CPython we can attach to, and how.

use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

use crate::debug_offsets::DebugOffsets;
use crate::memory::RemoteMemory;
use crate::permissions::PtraceAccess;
use crate::process_identity::ProcessIdentity;
use crate::procfs::{MapEntry, ProcStatus};
use crate::python::{Interpreter, NotCPython, PythonVersion};

/// The oldest and newest minor versions Peeka supports.
pub const SUPPORTED_MINORS: std::ops::RangeInclusive<u8> = 8..=15;

/// The machine architecture of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arch {
    /// x86-64.
    X86_64,
    /// 64-bit ARM.
    Aarch64,
    /// Anything else (attaching by ptrace is not possible).
    Other,
}

impl Arch {
    /// The architecture this build of Peeka runs on.
    pub const HOST: Self = if cfg!(target_arch = "x86_64") {
        Self::X86_64
    } else if cfg!(target_arch = "aarch64") {
        Self::Aarch64
    } else {
        Self::Other
    };
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::X86_64 => "x86_64",
            Self::Aarch64 => "aarch64",
            Self::Other => "other",
        })
    }
}

/// Whether a target accepts PEP 768 remote execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteDebug {
    /// Python before 3.14: the protocol does not exist.
    Unsupported,
    /// Enabled: `sys.remote_exec` and Peeka's `pep768` method work.
    Enabled,
    /// The operator disabled it (`PYTHON_DISABLE_REMOTE_DEBUG`,
    /// `-X disable-remote-debug`, or a `--without-remote-debug` build).
    Disabled,
    /// It could not be read; the reason.
    Unknown(String),
}

/// Why a pid cannot be inspected as a CPython target.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InspectError {
    /// No such process.
    #[error(
        "no process with pid {pid}; check the pid (`ps aux | grep python`), it may have exited"
    )]
    NoSuchProcess {
        /// The pid.
        pid: u32,
    },
    /// The process exited and waits to be reaped.
    #[error("process {pid} is a zombie (it exited and its parent has not reaped it); there is nothing left to attach to")]
    Zombie {
        /// The pid.
        pid: u32,
    },
    /// PyPy or another non-CPython program.
    #[error("process {pid} ({exe}) is not CPython: {why}")]
    NotCPython {
        /// The pid.
        pid: u32,
        /// Its executable.
        exe: String,
        /// What was found instead, and what to do.
        why: String,
    },
    /// A CPython outside 3.8-3.15.
    #[error("process {pid} runs Python {version}; Peeka supports CPython 3.8 to 3.15")]
    UnsupportedVersion {
        /// The pid.
        pid: u32,
        /// Its version.
        version: PythonVersion,
    },
    /// We may not read the process.
    #[error("cannot inspect process {pid}: {why}")]
    PermissionDenied {
        /// The pid.
        pid: u32,
        /// Why, and the fix.
        why: String,
    },
    /// Reading `/proc` failed otherwise.
    #[error("cannot read {what} of process {pid}: {source}")]
    Io {
        /// The pid.
        pid: u32,
        /// Which file.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// Everything Peeka knows about a target before attaching.
#[derive(Debug)]
pub struct Target {
    /// The pid, in our pid namespace.
    pub pid: u32,
    /// The pid and the process's start time: tells it apart from a later
    /// process that reuses the pid, and tells when it exited.
    pub identity: ProcessIdentity,
    /// `/proc/PID/status`.
    pub status: ProcStatus,
    /// The executable, as `/proc/PID/exe` names it.
    pub exe: PathBuf,
    /// The target's root directory (`/proc/PID/root`), as we see it.
    pub root: PathBuf,
    /// The pid inside the target's own (innermost) pid namespace.
    pub ns_pid: u32,
    /// The machine architecture.
    pub arch: Arch,
    /// Its memory mappings.
    pub maps: Vec<MapEntry>,
    /// The interpreter.
    pub python: Interpreter,
    /// The `_Py_DebugOffsets` table (3.13+).
    pub debug_offsets: Option<DebugOffsets>,
    /// PEP 768 state (3.14+).
    pub remote_debug: RemoteDebug,
    /// Our predicted ptrace access.
    pub access: PtraceAccess,
    /// Access to its memory.
    pub memory: RemoteMemory,
}

impl Target {
    /// Inspects process `pid`.
    ///
    /// # Errors
    /// [`InspectError`], whose message names the fix.
    pub fn inspect(pid: u32) -> Result<Self, InspectError> {
        let status = match ProcStatus::read(pid) {
            Ok(status) => status,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(InspectError::NoSuchProcess { pid })
            }
            Err(source) => {
                return Err(InspectError::Io {
                    pid,
                    what: "status",
                    source,
                })
            }
        };
        if status.is_zombie() {
            return Err(InspectError::Zombie { pid });
        }
        let identity = match ProcessIdentity::capture(pid) {
            Ok(identity) => identity,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(InspectError::NoSuchProcess { pid })
            }
            Err(source) => {
                return Err(InspectError::Io {
                    pid,
                    what: "stat",
                    source,
                })
            }
        };
        let access = PtraceAccess::check(&status, pid);
        let denied = |source: io::Error, what: &'static str| match source.kind() {
            io::ErrorKind::PermissionDenied => InspectError::PermissionDenied {
                pid,
                why: access
                    .verdict
                    .clone()
                    .err()
                    .unwrap_or_else(|| source.to_string()),
            },
            io::ErrorKind::NotFound => InspectError::NoSuchProcess { pid },
            _ => InspectError::Io { pid, what, source },
        };
        let exe = fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| denied(e, "exe"))?;
        let exe = exe
            .to_string_lossy()
            .strip_suffix(" (deleted)")
            .map_or_else(|| exe.clone(), PathBuf::from);
        let root = fs::read_link(format!("/proc/{pid}/root")).map_err(|e| denied(e, "root"))?;
        let maps = MapEntry::read_all(pid).map_err(|e| denied(e, "maps"))?;
        let memory = RemoteMemory::new(pid);
        let exe_name = exe.display().to_string();
        let python = Interpreter::locate(pid, &exe, &maps, &memory).map_err(|kind| {
            if kind == NotCPython::UnknownVersion && !access.allowed() {
                return InspectError::PermissionDenied {
                    pid,
                    why: access.verdict.clone().err().unwrap_or_default(),
                };
            }
            let why = match kind {
                NotCPython::PyPy => "it runs PyPy, which Peeka does not support (it has no CPython runtime to attach to)".to_owned(),
                NotCPython::NoInterpreter => {
                    "no loaded file exports the CPython runtime (_PyRuntime); pass the pid of a Python process (`pgrep -a python`)".to_owned()
                }
                NotCPython::UnknownVersion => {
                    "its interpreter version could not be read from memory; it may still be starting up, try again in a moment".to_owned()
                }
            };
            InspectError::NotCPython {
                pid,
                exe: exe_name.clone(),
                why,
            }
        })?;
        if !SUPPORTED_MINORS.contains(&python.version.minor) {
            return Err(InspectError::UnsupportedVersion {
                pid,
                version: python.version,
            });
        }
        let arch = match python.elf.architecture() {
            object::Architecture::X86_64 => Arch::X86_64,
            object::Architecture::Aarch64 => Arch::Aarch64,
            _ => Arch::Other,
        };
        let debug_offsets = if python.version.minor >= 13 {
            python
                .symbol_address("_PyRuntime")
                .map(|runtime| DebugOffsets::read(&memory, runtime, python.version))
                .transpose()
                .ok()
                .flatten()
        } else {
            None
        };
        let mut target = Self {
            pid,
            identity,
            ns_pid: status.ns_pid.last().copied().unwrap_or(pid),
            status,
            exe,
            root,
            arch,
            maps,
            python,
            debug_offsets,
            remote_debug: RemoteDebug::Unsupported,
            access,
            memory,
        };
        if target.python.version.minor >= 14 {
            target.remote_debug = match remote_debug_enabled(&target) {
                Ok(true) => RemoteDebug::Enabled,
                Ok(false) => RemoteDebug::Disabled,
                Err(why) => RemoteDebug::Unknown(why),
            };
        }
        Ok(target)
    }

    /// The target's uid (effective).
    pub fn uid(&self) -> u32 {
        self.status.euid()
    }

    /// Whether the target lives under another root than ours (a chroot or
    /// a container's mount namespace).
    pub fn has_other_root(&self) -> bool {
        self.root != std::path::Path::new("/")
    }

    /// A path inside the target's root, as we can open it.
    pub fn host_path(&self, inside: &std::path::Path) -> PathBuf {
        crate::elf::path_in_root(self.pid, inside)
    }

    /// The address of `_PyRuntime`.
    pub fn runtime_address(&self) -> Option<u64> {
        self.python.symbol_address("_PyRuntime")
    }
}

/// Reads `interp->config.remote_debug` of the main interpreter.
fn remote_debug_enabled(target: &Target) -> Result<bool, String> {
    let offsets = target
        .debug_offsets
        .as_ref()
        .ok_or("the debug offsets could not be read")?;
    let field = offsets
        .require("debugger_support", "remote_debugging_enabled")
        .map_err(|e| e.to_string())?;
    let interp = crate::runtime_state::main_interpreter(target).map_err(|e| e.to_string())?;
    let enabled = target
        .memory
        .read_u32(interp + field)
        .map_err(|e| e.to_string())?;
    Ok(enabled != 0)
}
