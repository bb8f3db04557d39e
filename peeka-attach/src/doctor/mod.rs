//! A preflight check: every reason an attach to a pid could fail, and the
//! fix for each, found without changing anything in the target.
//!
//! [`doctor`] reads what anyone may read about a process (`/proc/PID/status`
//! and `cmdline`), and what this process is allowed to read (the target's
//! executable, mappings, ELF files, namespaces, environment and, only when
//! the kernel permits, a few words of its memory, through
//! [`Target::inspect`](crate::Target::inspect)). It never stops, traces or
//! writes to the target and creates no file in it. On Linux it also checks
//! that gdb can make inferior calls on this host, the way the gdb method
//! does before any attach ([`check_gdb`](crate::gdb::check_gdb)): gdb
//! makes a test call in a throwaway process of the doctor's own, blocked in
//! a system call, never in the target (a scratch directory in this host's
//! temporary directory holds gdb's command file while it runs; the verdict
//! is kept for the lifetime of the process). The facts go through one pure
//! decision function, so each rule is unit-tested without a real process in
//! that situation.
//!
//! The [`Diagnosis`] holds one [`Finding`] per check, each with a stable id
//! (the constants of [`check`]), a [`Severity`], a summary and, when
//! something is wrong, the fix; the attach methods expected to work, with
//! the reason each other method cannot; and the route an attach would take
//! now ([`RouteForecast`], the [`check::ROUTE`] finding): one look at the
//! threads through `/proc/PID/task/TID/syscall` (which never stops a
//! thread) and, on 3.13+, at the GIL, judged by the attach's own
//! functions. It prints as a report.
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

// The way through: `gather` reads the system into `facts`; `decision` turns
// them into `findings` (one module per check there) and picks the usable
// methods, making a `diagnosis`; `report` prints it. `check` holds the ids.
mod decision;
mod diagnosis;
mod facts;
mod findings;
#[cfg(test)]
mod fixtures;
mod gather;
mod report;
mod route;

/// The stable ids of the checks, as [`Finding::check`] holds them.
pub mod check;

pub use diagnosis::Diagnosis;
pub use findings::{Finding, Severity};
pub use route::{RouteForecast, RouteKind, ThreadSeen};

use facts::Facts;

/// Diagnoses process `pid`: every reason an attach to it could fail, and
/// the fix for each. Read-only: nothing in the target changes.
pub fn doctor(pid: u32) -> Diagnosis {
    Facts::gather(pid).diagnose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;
    use crate::method::Method;

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
}
