//! Finding the main interpreter (`PyInterpreterState *`) in a target's
//! memory, without debug information and without running code in it.
//!
//! Methods that queue a pending call for *any* thread (3.12+:
//! `_PyEval_AddPendingCall(interp, func, arg, 0)`) need the main
//! interpreter's address. It is read from `_PyRuntime`, an exported symbol
//! of every CPython build (stripped and static ones included):
//!
//! - **3.13+**: the `_Py_DebugOffsets` table at the start of `_PyRuntime`
//!   gives `runtime_state.interpreters_head` (the newest interpreter),
//!   `interpreter_state.next` and `interpreter_state.id`; the main
//!   interpreter is the one whose id is 0.
//! - **3.12**: there is no table, so fixed offsets are used, read from
//!   3.12's `Include/internal/pycore_runtime.h` and `pycore_interp.h` and
//!   checked with gdb against the debug information of a live 3.12.1:
//!   `_PyRuntimeState.initialized` at 16, `.interpreters.main` at 48;
//!   `PyInterpreterState.id` at 8, `.runtime` (a pointer back to
//!   `_PyRuntime`) at 96. Every field before those is a plain integer or
//!   pointer, so the offsets do not depend on build options. Each lookup
//!   checks them again against the live process (`initialized == 1`,
//!   `id == 0`, `runtime == &_PyRuntime`), so a layout that differs is
//!   refused rather than used.
//!
//! Before 3.12 nothing here is needed (no any-thread pending calls exist),
//! and the lookup refuses.

use thiserror::Error;

use crate::debug_offsets::DebugOffsetsError;
use crate::memory::{MemoryError, RemoteMemory};
use crate::python::PythonVersion;
use crate::target::Target;

/// Offsets in CPython 3.12's `_PyRuntimeState` and `PyInterpreterState`
/// (see the [module documentation](self)).
mod v3_12 {
    /// `_PyRuntimeState.initialized` (`int`).
    pub(super) const RUNTIME_INITIALIZED: u64 = 16;
    /// `_PyRuntimeState.interpreters.main` (`PyInterpreterState *`).
    pub(super) const RUNTIME_INTERPRETERS_MAIN: u64 = 48;
    /// `PyInterpreterState.id` (`int64_t`).
    pub(super) const INTERPRETER_ID: u64 = 8;
    /// `PyInterpreterState.runtime` (`_PyRuntimeState *`).
    pub(super) const INTERPRETER_RUNTIME: u64 = 96;
}

/// More interpreters than this in the list means a corrupt list.
const MAX_INTERPRETERS: usize = 4096;

/// Why the main interpreter could not be found.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum InterpreterLookupError {
    /// Before 3.12 Peeka has no layout for this (and needs none).
    #[error("Python {0} keeps its interpreters where Peeka does not look (only 3.12+ is supported here); use a method that calls Py_AddPendingCall")]
    UnsupportedVersion(PythonVersion),
    /// The interpreter file exports no `_PyRuntime`.
    #[error("the interpreter exports no _PyRuntime symbol; it may not be a standard CPython build: try `--method ptrace`")]
    NoRuntime,
    /// A 3.13+ target whose debug offsets could not be read at inspection.
    #[error("the _Py_DebugOffsets table of this Python 3.13+ could not be read; run `peeka-cli doctor PID` to see why")]
    NoDebugOffsets,
    /// The table is there but lacks a field.
    #[error(transparent)]
    DebugOffsets(#[from] DebugOffsetsError),
    /// No main interpreter (yet, or any more).
    #[error("the interpreter is not initialized yet, or is shutting down; try again once the program runs")]
    NotInitialized,
    /// The memory does not look like the expected layout.
    #[error("the interpreter's memory does not match the layout Peeka expects for Python {version} ({detail}); refusing to use it: report this with `peeka-cli doctor PID` output, and use `--method ptrace` meanwhile")]
    LayoutMismatch {
        /// The interpreter's version.
        version: PythonVersion,
        /// Which check failed.
        detail: String,
    },
    /// Reading the target's memory failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// The address of the target's main interpreter (`PyInterpreterState *`),
/// for Python 3.12 and later.
///
/// # Errors
/// [`InterpreterLookupError`] naming the reason; nothing is written.
pub fn main_interpreter(target: &Target) -> Result<u64, InterpreterLookupError> {
    let version = target.python.version;
    let runtime = target
        .runtime_address()
        .ok_or(InterpreterLookupError::NoRuntime)?;
    match version.minor {
        ..=11 => Err(InterpreterLookupError::UnsupportedVersion(version)),
        12 => main_interpreter_3_12(&target.memory, runtime, version),
        _ => {
            let offsets = target
                .debug_offsets
                .as_ref()
                .ok_or(InterpreterLookupError::NoDebugOffsets)?;
            let fields = ListFields {
                head: offsets.require("runtime_state", "interpreters_head")?,
                next: offsets.require("interpreter_state", "next")?,
                id: offsets.require("interpreter_state", "id")?,
            };
            find_in_list(&target.memory, runtime, fields, version)
        }
    }
}

/// Where the interpreter list lives (3.13+, from the debug offsets).
#[derive(Debug, Clone, Copy)]
struct ListFields {
    head: u64,
    next: u64,
    id: u64,
}

fn main_interpreter_3_12(
    memory: &RemoteMemory,
    runtime: u64,
    version: PythonVersion,
) -> Result<u64, InterpreterLookupError> {
    if memory.read_u32(runtime + v3_12::RUNTIME_INITIALIZED)? != 1 {
        return Err(InterpreterLookupError::NotInitialized);
    }
    let main = memory.read_u64(runtime + v3_12::RUNTIME_INTERPRETERS_MAIN)?;
    if main == 0 {
        return Err(InterpreterLookupError::NotInitialized);
    }
    let mismatch = |detail: String| InterpreterLookupError::LayoutMismatch { version, detail };
    let back = memory
        .read_u64(main + v3_12::INTERPRETER_RUNTIME)
        .map_err(|e| {
            mismatch(format!(
                "interpreters.main = {main:#x} is not readable: {e}"
            ))
        })?;
    if back != runtime {
        return Err(mismatch(format!(
            "interpreters.main->runtime = {back:#x}, expected &_PyRuntime = {runtime:#x}"
        )));
    }
    let id = memory.read_u64(main + v3_12::INTERPRETER_ID)?;
    if id != 0 {
        return Err(mismatch(format!(
            "interpreters.main->id = {id}, expected 0"
        )));
    }
    Ok(main)
}

fn find_in_list(
    memory: &RemoteMemory,
    runtime: u64,
    fields: ListFields,
    version: PythonVersion,
) -> Result<u64, InterpreterLookupError> {
    let mut interp = memory.read_u64(runtime + fields.head)?;
    if interp == 0 {
        return Err(InterpreterLookupError::NotInitialized);
    }
    for _ in 0..MAX_INTERPRETERS {
        if interp == 0 {
            break;
        }
        if memory.read_u64(interp + fields.id)? == 0 {
            return Ok(interp);
        }
        interp = memory.read_u64(interp + fields.next)?;
    }
    Err(InterpreterLookupError::LayoutMismatch {
        version,
        detail: "no interpreter with id 0 in the interpreter list".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake address space in our own memory: `words[i]` lives at
    /// `base + 8 * i`.
    fn fake(len: usize) -> (Vec<u64>, u64) {
        let words = vec![0u64; len];
        let base = words.as_ptr() as u64;
        (words, base)
    }

    fn version(minor: u8) -> PythonVersion {
        PythonVersion {
            major: 3,
            minor,
            micro: 0,
            level: crate::python::ReleaseLevel::Final,
            serial: 0,
        }
    }

    #[test]
    fn walks_the_list_to_the_interpreter_with_id_zero() {
        let memory = RemoteMemory::new(std::process::id());
        // Layout (in words): runtime head at 0; interpreter A (id 1) at 2,
        // interpreter B (id 0) at 5. next at +0, id at +8.
        let (mut words, base) = fake(8);
        words[0] = base + 16;
        words[2] = base + 40;
        words[3] = 1;
        let fields = ListFields {
            head: 0,
            next: 0,
            id: 8,
        };
        let found = find_in_list(&memory, base, fields, version(13)).unwrap();
        assert_eq!(found, base + 40);
    }

    #[test]
    fn refuses_a_list_without_a_main_interpreter() {
        let memory = RemoteMemory::new(std::process::id());
        let (mut words, base) = fake(4);
        words[0] = base + 16;
        words[3] = 7;
        let fields = ListFields {
            head: 0,
            next: 0,
            id: 8,
        };
        let err = find_in_list(&memory, base, fields, version(13)).unwrap_err();
        assert!(
            matches!(err, InterpreterLookupError::LayoutMismatch { .. }),
            "{err}"
        );
        words[0] = 0;
        let err = find_in_list(&memory, base, fields, version(13)).unwrap_err();
        assert!(
            matches!(err, InterpreterLookupError::NotInitialized),
            "{err}"
        );
    }

    #[test]
    fn checks_the_3_12_layout_against_the_live_values() {
        let memory = RemoteMemory::new(std::process::id());
        // _PyRuntime: 8 words; interpreter: 16 words right after it.
        let (mut words, base) = fake(24);
        let runtime = base;
        let interp = base + 64;
        words[2] = 1; // initialized (low half of word 2, offset 16)
        words[6] = interp; // interpreters.main at 48
        words[8 + 12] = runtime; // interp->runtime at 96
        words[8 + 1] = 0; // interp->id at 8
        let found = main_interpreter_3_12(&memory, runtime, version(12)).unwrap();
        assert_eq!(found, interp);

        words[8 + 12] = 0xdead;
        let err = main_interpreter_3_12(&memory, runtime, version(12)).unwrap_err();
        assert!(err.to_string().contains("runtime"), "{err}");
        words[8 + 12] = runtime;
        words[8 + 1] = 3;
        let err = main_interpreter_3_12(&memory, runtime, version(12)).unwrap_err();
        assert!(err.to_string().contains("id = 3"), "{err}");
        words[2] = 0;
        let err = main_interpreter_3_12(&memory, runtime, version(12)).unwrap_err();
        assert!(
            matches!(err, InterpreterLookupError::NotInitialized),
            "{err}"
        );
    }
}
