//! Process inspection and attach backends for Peeka.
//!
//! Everything that happens *outside* the target before the agent runs inside
//! it: inspecting a pid (is it CPython, which version, which binary or
//! libpython holds the interpreter, which uid, root and pid namespace, which
//! ptrace permissions apply), reading and writing the target's memory,
//! resolving symbols from its ELF files, and the attach backends.
#![deny(missing_docs)]

pub mod debug_offsets;
mod dir_fd;
pub mod elf;
pub mod memory;
pub mod peer_credentials;
pub mod permissions;
pub mod private_dir;
pub mod process_identity;
pub mod procfs;
pub mod python;
pub mod runtime_state;
pub mod target;
pub mod untrusted_file;

pub use python::{Interpreter, Layout, PythonVersion, ReleaseLevel};
pub use target::{Arch, InspectError, RemoteDebug, Target};
pub mod attach;
pub mod bootstrap;
pub mod error;
pub mod method;

pub use bootstrap::{AgentFiles, BootstrapStatus, Staging};
pub use error::AttachError;
pub use method::{InjectRequest, Injector, Method, MethodChoice, Step, Timeline};
pub mod doctor;
pub mod job_control;
pub mod pep768;
pub mod remote_debug_optout;
pub mod thread_pause;
pub use doctor::{doctor, Diagnosis, Finding, Severity};
mod armed_runner;
mod debugger_process;
#[cfg(target_os = "linux")]
pub mod gdb;
#[cfg(target_os = "macos")]
pub mod lldb;
pub mod lldb_script;
pub mod ptrace;
