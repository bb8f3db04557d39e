//! The addresses the backend needs in the target: CPython's functions and
//! a place for the scratch code.

use std::path::Path;

use super::registers::SCRATCH_CODE;
use crate::elf::{is_libc, ElfFile};
use crate::error::AttachError;
use crate::method::Method;
use crate::procfs::MapEntry;
use crate::target::Target;

/// How a pending call is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PendingCallQueue {
    /// `Py_AddPendingCall(func, arg)`: only the main thread runs it
    /// (every version; the only choice before 3.12).
    MainThread {
        /// `Py_AddPendingCall`.
        add: u64,
    },
    /// `_PyEval_AddPendingCall(interp, func, arg, 0)` (3.12+): any thread
    /// of the interpreter runs it at its next eval-breaker check. The
    /// fourth parameter is `int mainthreadonly` in 3.12 and `int flags`
    /// (bit 0 = main thread only) from 3.13; 0 means the same in both.
    AnyThread {
        /// `_PyEval_AddPendingCall`.
        add: u64,
        /// `PyInterpreterState_Main`, which returns the main interpreter.
        main_interpreter: u64,
    },
}

/// Resolved addresses in the target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Functions {
    /// `PyRun_SimpleString(const char *)`, which also fits the pending-call
    /// signature `int (*)(void *)`.
    pub(crate) run_simple_string: u64,
    /// How to queue the pending call.
    pub(crate) queue: PendingCallQueue,
    /// `PyEval_SaveThread`, where the breakpoint route waits; `None` when
    /// the route is not needed (3.12+) or the symbol is missing.
    pub(crate) save_thread: Option<u64>,
    /// `PyErr_Fetch` and `PyErr_Restore`, to keep an exception the
    /// interrupted C code may have set while the bootstrap runs.
    pub(crate) error_fetch_restore: Option<(u64, u64)>,
    /// Where the scratch code goes.
    pub(crate) scratch: u64,
}

impl Functions {
    /// Resolves everything for `target`.
    ///
    /// # Errors
    /// [`AttachError::MethodUnavailable`] naming what is missing.
    pub(crate) fn resolve(target: &Target) -> Result<Self, AttachError> {
        let python = &target.python;
        let symbol = |name: &str| python.symbol_address(name).filter(|&a| a != 0);
        let missing = |name: &str| {
            AttachError::MethodUnavailable {
            method: Method::Ptrace,
            pid: target.pid,
            why: format!(
                "{} exports no `{name}`; it may not be a standard CPython build. Try `--method gdb`",
                python.path.display()
            ),
        }
        };
        let run_simple_string =
            symbol("PyRun_SimpleString").ok_or_else(|| missing("PyRun_SimpleString"))?;
        let any_thread = if python.version.minor >= 12 {
            symbol("_PyEval_AddPendingCall")
                .zip(symbol("PyInterpreterState_Main"))
                .map(|(add, main_interpreter)| PendingCallQueue::AnyThread {
                    add,
                    main_interpreter,
                })
        } else {
            None
        };
        let queue = match any_thread {
            Some(queue) => queue,
            None => PendingCallQueue::MainThread {
                add: symbol("Py_AddPendingCall").ok_or_else(|| missing("Py_AddPendingCall"))?,
            },
        };
        let save_thread = match queue {
            PendingCallQueue::MainThread { .. } => symbol("PyEval_SaveThread"),
            PendingCallQueue::AnyThread { .. } => None,
        };
        Ok(Self {
            run_simple_string,
            queue,
            save_thread,
            error_fetch_restore: symbol("PyErr_Fetch").zip(symbol("PyErr_Restore")),
            scratch: scratch_address(target)?,
        })
    }
}

/// The ELF entry point of the executable (or, failing that, of the C
/// library): code that ran once at start-up and never runs again, inside
/// an executable mapping with room for the scratch code.
fn scratch_address(target: &Target) -> Result<u64, AttachError> {
    let exe = target.exe.as_path();
    let is_exe = |path: &Path| path == exe;
    let choices: [&dyn Fn(&Path) -> bool; 2] = [&is_exe, &is_libc];
    for wanted in choices {
        let mappings: Vec<&MapEntry> = target
            .maps
            .iter()
            .filter(|m| m.is_file() && m.path.as_deref().is_some_and(wanted))
            .collect();
        let Some(first) = mappings.first() else {
            continue;
        };
        let Ok(elf) = ElfFile::open_mapped(target.pid, first) else {
            continue;
        };
        let Some(bias) = elf.load_bias(&mappings) else {
            continue;
        };
        if elf.entry() == 0 {
            continue;
        }
        let entry = bias.apply(elf.entry());
        let fits = mappings
            .iter()
            .any(|m| m.exec && m.start <= entry && entry + SCRATCH_CODE.len() as u64 <= m.end);
        if fits {
            return Ok(entry);
        }
    }
    Err(AttachError::MethodUnavailable {
        method: Method::Ptrace,
        pid: target.pid,
        why: "neither the executable nor the C library has a usable ELF entry point for the scratch code; try `--method gdb`"
            .into(),
    })
}
