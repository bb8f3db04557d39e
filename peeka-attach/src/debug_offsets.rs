//! `_Py_DebugOffsets`: the table at the start of `_PyRuntime` (3.13+) that
//! tells out-of-process tools where the interpreter keeps things.
//!
//! The table is a cookie (`xdebugpy`), the version, a free-threading flag,
//! then a flat list of `u64` values grouped by struct. It does not describe
//! itself: the list of fields changes between minor versions, so this module
//! keeps one field list per supported minor, checks the table's size against
//! it, and refuses minors it does not know.

use crate::memory::{MemoryError, RemoteMemory};
use crate::python::PythonVersion;

/// The 8 bytes `_PyRuntime` starts with.
pub const COOKIE: &[u8; 8] = b"xdebugpy";

/// The size CPython 3.14 and 3.15 give the remote-exec script path buffer.
pub const SCRIPT_PATH_SIZE: u64 = 512;

type Groups = &'static [(&'static str, &'static [&'static str])];

/// Field groups of CPython 3.13 (584 bytes; no remote exec).
const V3_13: Groups = &[
    (
        "runtime_state",
        &["size", "finalizing", "interpreters_head"],
    ),
    (
        "interpreter_state",
        &[
            "size",
            "id",
            "next",
            "threads_head",
            "gc",
            "imports_modules",
            "sysdict",
            "builtins",
            "ceval_gil",
            "gil_runtime_state",
            "gil_runtime_state_enabled",
            "gil_runtime_state_locked",
            "gil_runtime_state_holder",
        ],
    ),
    (
        "thread_state",
        &[
            "size",
            "prev",
            "next",
            "interp",
            "current_frame",
            "thread_id",
            "native_thread_id",
            "datastack_chunk",
            "status",
        ],
    ),
    (
        "interpreter_frame",
        &[
            "size",
            "previous",
            "executable",
            "instr_ptr",
            "localsplus",
            "owner",
        ],
    ),
    (
        "code_object",
        &[
            "size",
            "filename",
            "name",
            "qualname",
            "linetable",
            "firstlineno",
            "argcount",
            "localsplusnames",
            "localspluskinds",
            "co_code_adaptive",
        ],
    ),
    ("pyobject", &["size", "ob_type"]),
    ("type_object", &["size", "tp_name", "tp_repr", "tp_flags"]),
    ("tuple_object", &["size", "ob_item", "ob_size"]),
    ("list_object", &["size", "ob_item", "ob_size"]),
    ("dict_object", &["size", "ma_keys", "ma_values"]),
    ("float_object", &["size", "ob_fval"]),
    ("long_object", &["size", "lv_tag", "ob_digit"]),
    ("bytes_object", &["size", "ob_size", "ob_sval"]),
    (
        "unicode_object",
        &["size", "state", "length", "asciiobject_size"],
    ),
    ("gc", &["size", "collecting"]),
];

const INTERPRETER_STATE_3_14: &[&str] = &[
    "size",
    "id",
    "next",
    "threads_head",
    "threads_main",
    "gc",
    "imports_modules",
    "sysdict",
    "builtins",
    "ceval_gil",
    "gil_runtime_state",
    "gil_runtime_state_enabled",
    "gil_runtime_state_locked",
    "gil_runtime_state_holder",
    "code_object_generation",
    "tlbc_generation",
];
const INTERPRETER_FRAME_3_14: &[&str] = &[
    "size",
    "previous",
    "executable",
    "instr_ptr",
    "localsplus",
    "owner",
    "stackpointer",
    "tlbc_index",
];
const CODE_OBJECT_3_14: &[&str] = &[
    "size",
    "filename",
    "name",
    "qualname",
    "linetable",
    "firstlineno",
    "argcount",
    "localsplusnames",
    "localspluskinds",
    "co_code_adaptive",
    "co_tlbc",
];
const DEBUGGER_SUPPORT: &[&str] = &[
    "eval_breaker",
    "remote_debugger_support",
    "remote_debugging_enabled",
    "debugger_pending_call",
    "debugger_script_path",
    "debugger_script_path_size",
];

/// Field groups of CPython 3.14 (760 bytes).
const V3_14: Groups = &[
    (
        "runtime_state",
        &["size", "finalizing", "interpreters_head"],
    ),
    ("interpreter_state", INTERPRETER_STATE_3_14),
    (
        "thread_state",
        &[
            "size",
            "prev",
            "next",
            "interp",
            "current_frame",
            "thread_id",
            "native_thread_id",
            "datastack_chunk",
            "status",
        ],
    ),
    ("interpreter_frame", INTERPRETER_FRAME_3_14),
    ("code_object", CODE_OBJECT_3_14),
    ("pyobject", &["size", "ob_type"]),
    ("type_object", &["size", "tp_name", "tp_repr", "tp_flags"]),
    ("tuple_object", &["size", "ob_item", "ob_size"]),
    ("list_object", &["size", "ob_item", "ob_size"]),
    ("set_object", &["size", "used", "table", "mask"]),
    ("dict_object", &["size", "ma_keys", "ma_values"]),
    ("float_object", &["size", "ob_fval"]),
    ("long_object", &["size", "lv_tag", "ob_digit"]),
    ("bytes_object", &["size", "ob_size", "ob_sval"]),
    (
        "unicode_object",
        &["size", "state", "length", "asciiobject_size"],
    ),
    ("gc", &["size", "collecting"]),
    (
        "gen_object",
        &["size", "gi_name", "gi_iframe", "gi_frame_state"],
    ),
    ("llist_node", &["next", "prev"]),
    ("debugger_support", DEBUGGER_SUPPORT),
];

/// Field groups of CPython 3.15 (888 bytes).
const V3_15: Groups = &[
    (
        "runtime_state",
        &["size", "finalizing", "interpreters_head"],
    ),
    ("interpreter_state", INTERPRETER_STATE_3_14),
    (
        "thread_state",
        &[
            "size",
            "prev",
            "next",
            "interp",
            "current_frame",
            "base_frame",
            "last_profiled_frame",
            "last_profiled_frame_seq",
            "thread_id",
            "native_thread_id",
            "datastack_chunk",
            "status",
            "holds_gil",
            "gil_requested",
            "current_exception",
            "exc_state",
        ],
    ),
    ("err_stackitem", &["exc_value"]),
    ("interpreter_frame", INTERPRETER_FRAME_3_14),
    ("code_object", CODE_OBJECT_3_14),
    ("pyobject", &["size", "ob_type"]),
    (
        "type_object",
        &[
            "size",
            "tp_name",
            "tp_repr",
            "tp_flags",
            "tp_basicsize",
            "tp_dictoffset",
        ],
    ),
    ("heap_type_object", &["size", "ht_cached_keys"]),
    ("tuple_object", &["size", "ob_item", "ob_size"]),
    ("list_object", &["size", "ob_item", "ob_size"]),
    ("set_object", &["size", "used", "table", "mask"]),
    ("dict_object", &["size", "ma_keys", "ma_values"]),
    ("float_object", &["size", "ob_fval"]),
    ("long_object", &["size", "lv_tag", "ob_digit"]),
    ("bytes_object", &["size", "ob_size", "ob_sval"]),
    (
        "unicode_object",
        &[
            "size",
            "state",
            "length",
            "asciiobject_size",
            "compactunicodeobject_size",
        ],
    ),
    (
        "gc",
        &[
            "size",
            "collecting",
            "frame",
            "generation_stats_size",
            "generation_stats",
        ],
    ),
    (
        "gen_object",
        &["size", "gi_name", "gi_iframe", "gi_frame_state"],
    ),
    ("llist_node", &["next", "prev"]),
    ("debugger_support", DEBUGGER_SUPPORT),
];

/// The field list of a minor version, and the table's size in bytes.
fn groups_for(minor: u8) -> Option<Groups> {
    match minor {
        13 => Some(V3_13),
        14 => Some(V3_14),
        15 => Some(V3_15),
        _ => None,
    }
}

/// The table's size in bytes for a field list: cookie, version, flag, fields.
fn table_len(groups: Groups) -> usize {
    8 * (3 + groups.iter().map(|(_, fields)| fields.len()).sum::<usize>())
}

/// Why a debug-offsets table cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DebugOffsetsError {
    /// Reading the table failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// `_PyRuntime` does not start with the cookie.
    #[error("_PyRuntime does not start with the `xdebugpy` cookie; this is not a CPython 3.13+ runtime, or its memory is not what we expect")]
    BadCookie,
    /// The version in the table is not the interpreter's.
    #[error("the debug offsets describe Python {table} but the interpreter is {interpreter}; the process may be mid-upgrade: restart it or report this")]
    VersionMismatch {
        /// Version read from the table.
        table: String,
        /// Version of the interpreter.
        interpreter: PythonVersion,
    },
    /// A minor version without a known field list.
    #[error("Python 3.{0} has a debug-offsets layout this Peeka does not know; upgrade Peeka, or use `--method ptrace`")]
    UnknownLayout(u8),
    /// A free-threaded build.
    #[error("free-threaded (no-GIL) CPython builds are not supported yet; use a default build of CPython")]
    FreeThreaded,
    /// Values that cannot be right.
    #[error("the debug offsets look corrupt ({0}); refusing to write into the process")]
    Implausible(String),
}

/// A validated `_Py_DebugOffsets` table of a live process.
#[derive(Debug, Clone)]
pub struct DebugOffsets {
    /// The version the table declares (equal to the interpreter's).
    pub version: PythonVersion,
    groups: Groups,
    values: Vec<u64>,
}

impl DebugOffsets {
    /// Reads and validates the table at `runtime` (the address of
    /// `_PyRuntime`) of an interpreter of version `interpreter`.
    ///
    /// # Errors
    /// [`DebugOffsetsError`] when the table cannot be read, or is not what
    /// a CPython of that version writes.
    pub fn read(
        memory: &RemoteMemory,
        runtime: u64,
        interpreter: PythonVersion,
    ) -> Result<Self, DebugOffsetsError> {
        let groups = groups_for(interpreter.minor)
            .ok_or(DebugOffsetsError::UnknownLayout(interpreter.minor))?;
        let raw = memory.read_vec(runtime, table_len(groups))?;
        if &raw[..8] != COOKIE {
            return Err(DebugOffsetsError::BadCookie);
        }
        let values: Vec<u64> = raw[8..]
            .chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        let version_hex = values[0];
        // The compatibility rule CPython applies: same major.minor, and the
        // exact version for pre-releases.
        let table_version = PythonVersion::from_hex(version_hex);
        let compatible = table_version.is_some_and(|t| {
            t.minor_version() == interpreter.minor_version()
                && (interpreter.level == crate::python::ReleaseLevel::Final || t == interpreter)
        });
        if !compatible {
            return Err(DebugOffsetsError::VersionMismatch {
                table: table_version.map_or_else(|| format!("{version_hex:#x}"), |v| v.to_string()),
                interpreter,
            });
        }
        if values[1] != 0 {
            return Err(DebugOffsetsError::FreeThreaded);
        }
        let table = Self {
            version: table_version.unwrap_or(interpreter),
            groups,
            values: values[2..].to_vec(),
        };
        table.check_plausible()?;
        Ok(table)
    }

    /// The value of `group.field`, e.g. `("thread_state", "native_thread_id")`.
    pub fn get(&self, group: &str, field: &str) -> Option<u64> {
        let mut index = 0;
        for (name, fields) in self.groups {
            if *name == group {
                return fields
                    .iter()
                    .position(|f| *f == field)
                    .map(|i| self.values[index + i]);
            }
            index += fields.len();
        }
        None
    }

    /// Like [`get`](Self::get), for fields every supported layout has.
    ///
    /// # Errors
    /// [`DebugOffsetsError::Implausible`] if the field is missing.
    pub fn require(&self, group: &str, field: &str) -> Result<u64, DebugOffsetsError> {
        self.get(group, field)
            .ok_or_else(|| DebugOffsetsError::Implausible(format!("no field {group}.{field}")))
    }

    /// Whether this version supports PEP 768 remote execution.
    pub fn has_remote_exec(&self) -> bool {
        self.get("debugger_support", "debugger_script_path_size")
            .is_some()
    }

    fn check_plausible(&self) -> Result<(), DebugOffsetsError> {
        const MAX_STRUCT: u64 = 1 << 20;
        for group in [
            "interpreter_state",
            "thread_state",
            "interpreter_frame",
            "code_object",
        ] {
            let size = self.require(group, "size")?;
            if !(16..MAX_STRUCT).contains(&size) {
                return Err(DebugOffsetsError::Implausible(format!(
                    "{group}.size = {size}"
                )));
            }
        }
        for field in ["next", "threads_head"] {
            let offset = self.require("interpreter_state", field)?;
            if offset >= self.require("interpreter_state", "size")? {
                return Err(DebugOffsetsError::Implausible(format!(
                    "interpreter_state.{field} = {offset}"
                )));
            }
        }
        if self.has_remote_exec() {
            let path_size = self.require("debugger_support", "debugger_script_path_size")?;
            if path_size != SCRIPT_PATH_SIZE {
                return Err(DebugOffsetsError::Implausible(format!(
                    "debugger_script_path_size = {path_size}, expected {SCRIPT_PATH_SIZE}"
                )));
            }
            let tstate_size = self.require("thread_state", "size")?;
            let support = self.require("debugger_support", "remote_debugger_support")?;
            if support + self.require("debugger_support", "debugger_script_path")? + path_size
                > tstate_size
            {
                return Err(DebugOffsetsError::Implausible(
                    "remote debugger support lies outside the thread state".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_sizes_match_cpython() {
        assert_eq!(table_len(V3_13), 584);
        assert_eq!(table_len(V3_14), 760);
        assert_eq!(table_len(V3_15), 888);
    }

    #[test]
    fn script_path_size_is_the_last_field() {
        for groups in [V3_14, V3_15] {
            let (last_group, fields) = groups[groups.len() - 1];
            assert_eq!(last_group, "debugger_support");
            assert_eq!(fields[fields.len() - 1], "debugger_script_path_size");
        }
    }
}
