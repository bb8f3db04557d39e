//! The addresses the backend needs in the target: CPython's functions.

use crate::error::AttachError;
use crate::method::Method;
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
    /// The `PyGILState_*` functions of the direct route; `None` when one
    /// is missing.
    pub(crate) gil_state: Option<GilState>,
    /// `PyErr_Fetch` and `PyErr_Restore`, to keep an exception the
    /// interrupted C code may have set while the bootstrap runs.
    pub(crate) error_fetch_restore: Option<(u64, u64)>,
}

/// The functions a thread that released the GIL calls to run Python.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GilState {
    /// `PyGILState_GetThisThreadState()`: the calling thread's thread
    /// state, or NULL for a thread that never ran Python.
    pub(crate) this_thread_state: u64,
    /// `PyGILState_Check()`: whether the calling thread holds the GIL.
    pub(crate) check: u64,
    /// `PyGILState_Ensure()`.
    pub(crate) ensure: u64,
    /// `PyGILState_Release(state)`.
    pub(crate) release: u64,
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
                "{} exports no `{name}`; it may not be a standard CPython build. The gdb method may still work",
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
        let gil_state = (|| {
            Some(GilState {
                this_thread_state: symbol("PyGILState_GetThisThreadState")?,
                check: symbol("PyGILState_Check")?,
                ensure: symbol("PyGILState_Ensure")?,
                release: symbol("PyGILState_Release")?,
            })
        })();
        Ok(Self {
            run_simple_string,
            queue,
            gil_state,
            error_fetch_restore: symbol("PyErr_Fetch").zip(symbol("PyErr_Restore")),
        })
    }
}
