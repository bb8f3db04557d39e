//! Everything the gdb method calls in the target, resolved by Peeka itself
//! from the target's ELF files (so gdb needs no symbols or debug info), and
//! the checks made before gdb is started.

use std::path::{Path, PathBuf};

use crate::elf::{is_libc, ElfFile};
use crate::error::AttachError;
use crate::method::Method;
use crate::procfs::{MapEntry, ProcStatus};
use crate::runtime_state::main_interpreter;
use crate::target::{Arch, Target};

/// How the bootstrap is queued as a pending call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Queue {
    /// 3.12+: `_PyEval_AddPendingCall(interp, PyRun_SimpleString, page, 0)`.
    /// Its last parameter is `int mainthreadonly` in 3.12 and `int flags`
    /// (bit 0 `_Py_PENDING_MAINTHREADONLY`) from 3.13; 0 means "any thread
    /// of `interp`" in both, so whichever thread next checks its eval
    /// breaker runs the call.
    AnyThread {
        /// `_PyEval_AddPendingCall`.
        add: u64,
        /// The main interpreter (`PyInterpreterState *`).
        interpreter: u64,
    },
    /// `Py_AddPendingCall(PyRun_SimpleString, page)`: only the main thread
    /// runs it (the only choice before 3.12).
    MainThread {
        /// `Py_AddPendingCall`.
        add: u64,
    },
}

/// The functions of the breakpoint route (see `blocked_main`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SaveThreadRoute {
    /// `PyEval_SaveThread`, where the temporary breakpoint goes.
    pub(super) save_thread: u64,
    /// `PyErr_Fetch(PyObject **, PyObject **, PyObject **)`.
    pub(super) error_fetch: u64,
    /// `PyErr_Restore(PyObject *, PyObject *, PyObject *)`.
    pub(super) error_restore: u64,
}

/// The run-time addresses the gdb method uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Addresses {
    /// The C library's `mmap`.
    pub(super) mmap: u64,
    /// `PyRun_SimpleString(const char *)`, which also fits the pending-call
    /// signature `int (*)(void *)`.
    pub(super) run_simple_string: u64,
    /// How the pending call is queued.
    pub(super) queue: Queue,
    /// The breakpoint route, for a main-thread-only queue whose main thread
    /// does not run it; `None` when not needed or not possible.
    pub(super) breakpoint: Option<SaveThreadRoute>,
    /// Why a 3.12+ target uses the main thread's queue after all.
    pub(super) any_thread_unavailable: Option<String>,
}

/// Checks that gdb can work for `target` and resolves what it calls.
///
/// # Errors
/// [`AttachError::MethodUnavailable`] naming what is missing,
/// [`AttachError::TargetExited`] when the process is gone.
pub(super) fn preflight(target: &Target) -> Result<Addresses, AttachError> {
    let pid = target.pid;
    let unavailable = |why: String| AttachError::MethodUnavailable {
        method: Method::Gdb,
        pid,
        why,
    };
    if !matches!(target.arch, Arch::X86_64 | Arch::Aarch64) {
        return Err(unavailable(format!(
            "Peeka drives gdb only on x86_64 and aarch64 targets, and this one is {}",
            target.arch
        )));
    }
    match ProcStatus::read(pid) {
        Ok(status) if status.is_zombie() => return Err(AttachError::TargetExited { pid }),
        Ok(status) if status.state == 'T' => {
            return Err(unavailable(format!(
                "the process is stopped (SIGSTOP or Ctrl-Z), so none of its threads can run the bootstrap; resume it with `kill -CONT {pid}` and attach again"
            )))
        }
        Ok(_) => {}
        Err(_) => return Err(AttachError::TargetExited { pid }),
    }
    let exported = |name: &str| target.python.symbol_address(name).filter(|&a| a != 0);
    let python = |name: &str| {
        exported(name).ok_or_else(|| {
            unavailable(format!(
                "{} does not export {name}, which this method calls",
                target.python.path.display()
            ))
        })
    };
    let run_simple_string = python("PyRun_SimpleString")?;
    let mmap = libc_function(target, "mmap").ok_or_else(|| {
        unavailable(
            "no C library mapped in the process exports mmap, which this method calls to allocate the bootstrap's page"
                .into(),
        )
    })?;

    let (any_thread, any_thread_unavailable) = if target.python.version.minor >= 12 {
        match (exported("_PyEval_AddPendingCall"), main_interpreter(target)) {
            (Some(add), Ok(interpreter)) => (Some(Queue::AnyThread { add, interpreter }), None),
            (None, _) => (
                None,
                Some("it does not export _PyEval_AddPendingCall".to_owned()),
            ),
            (Some(_), Err(e)) => (
                None,
                Some(format!("its main interpreter was not found: {e}")),
            ),
        }
    } else {
        (None, None)
    };
    let queue = match any_thread {
        Some(queue) => queue,
        None => Queue::MainThread {
            add: python("Py_AddPendingCall")?,
        },
    };
    let breakpoint = match queue {
        Queue::AnyThread { .. } => None,
        Queue::MainThread { .. } => match (
            exported("PyEval_SaveThread"),
            exported("PyErr_Fetch"),
            exported("PyErr_Restore"),
        ) {
            (Some(save_thread), Some(error_fetch), Some(error_restore)) => Some(SaveThreadRoute {
                save_thread,
                error_fetch,
                error_restore,
            }),
            _ => None,
        },
    };
    Ok(Addresses {
        mmap,
        run_simple_string,
        queue,
        breakpoint,
        any_thread_unavailable,
    })
}

/// The run-time address of a C library function in the target: from its
/// mapped libc, else from the interpreter itself (a statically linked build).
fn libc_function(target: &Target, name: &str) -> Option<u64> {
    mapped_libc_function(target.pid, &target.maps, name)
        .or_else(|| target.python.symbol_address(name).filter(|&a| a != 0))
}

/// The run-time address of function `name` of a C library that process
/// `pid` maps (`maps` is its `/proc/PID/maps`), read from that library's
/// ELF file; `None` when no mapped C library defines it.
pub(super) fn mapped_libc_function(pid: u32, maps: &[MapEntry], name: &str) -> Option<u64> {
    let mut paths: Vec<&PathBuf> = Vec::new();
    for path in maps
        .iter()
        .filter(|m| m.is_file())
        .filter_map(|m| m.path.as_ref())
    {
        if is_libc(path) && !paths.contains(&path) {
            paths.push(path);
        }
    }
    paths
        .into_iter()
        .find_map(|path| mapped_function(pid, maps, path, name))
}

/// The run-time address of function `name` defined by the file at `path`
/// (as `maps` names it) in process `pid`.
pub(super) fn mapped_function(pid: u32, maps: &[MapEntry], path: &Path, name: &str) -> Option<u64> {
    let mappings: Vec<&MapEntry> = maps
        .iter()
        .filter(|m| m.path.as_deref() == Some(path))
        .collect();
    let elf = ElfFile::open_mapped(pid, mappings.first()?).ok()?;
    let address = elf.symbol(name).filter(|&a| a != 0)?;
    Some(elf.load_bias(&mappings)?.apply(address))
}
