//! The `gdb` or `lldb` check: whether the platform debugger of the fallback
//! method is installed, and (gdb) whether it can make inferior calls on
//! this host without harming the process.

use crate::doctor::check;
use crate::doctor::facts::{DebuggerCheck, Facts};
use crate::doctor::findings::Finding;

impl Facts {
    /// The `gdb` or `lldb` finding.
    pub(super) fn debugger_finding(&self) -> Finding {
        let (name, path) = &self.debugger;
        let id = if *name == "lldb" {
            check::LLDB
        } else {
            check::GDB
        };
        match path {
            Some(path) => match &self.debugger_check {
                DebuggerCheck::NotChecked => Finding::ok(
                    id,
                    format!(
                        "{name} is installed at {} (for the {name} fallback method)",
                        path.display()
                    ),
                ),
                DebuggerCheck::Works { version } => Finding::ok(
                    id,
                    format!(
                        "{name}{} is installed at {} and made a test call in a throwaway process, blocked in a system call, without harming it (for the {name} fallback method)",
                        version.as_deref().map(|v| format!(" {v}")).unwrap_or_default(),
                        path.display()
                    ),
                ),
                DebuggerCheck::Unusable { summary, fix, .. } => {
                    Finding::warning(id, summary.clone(), fix.clone())
                }
                DebuggerCheck::Inconclusive(why) => Finding::warning(
                    id,
                    format!(
                        "{name} is installed at {}, but Peeka could not check in time that it can make inferior calls here ({why}); the {name} method refuses a {name} it has not checked",
                        path.display()
                    ),
                    "run the doctor again when the machine is less busy, or use the ptrace method",
                ),
            },
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
}

#[cfg(test)]
mod tests {
    use crate::doctor::facts::DebuggerCheck;
    use crate::doctor::fixtures::*;
    use crate::doctor::{check, Severity};
    use crate::method::Method;

    /// What the check reports for gdb 13.1 on a CPU with AMX.
    fn amx_gdb() -> DebuggerCheck {
        DebuggerCheck::Unusable {
            headline: "gdb 13.1 (/usr/bin/gdb) cannot make inferior calls on this host: it cannot restore a thread's registers after calling a function in it (gdb said: \"Couldn't write extended state status: Bad address.\")".into(),
            summary: "gdb 13.1 (/usr/bin/gdb) cannot make inferior calls on this host: ... This CPU has AMX (Advanced Matrix Extensions), ...".into(),
            fix: "use a newer gdb, or the ptrace method".into(),
        }
    }

    #[test]
    fn a_gdb_that_cannot_make_inferior_calls_is_reported_and_not_used() {
        let mut facts = healthy(11);
        facts.debugger_check = amx_gdb();
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::GDB), Severity::Warning);
        let text = text(&diagnosis, check::GDB);
        assert!(text.contains("AMX"), "{text}");
        assert!(text.contains("fix: use a newer gdb"), "{text}");
        assert_eq!(diagnosis.usable_methods, [Method::Ptrace]);
        assert!(diagnosis
            .why_not(Method::Gdb)
            .unwrap()
            .contains("Couldn't write extended state status"));
        assert!(diagnosis.can_attach(), "{diagnosis}");
        let report = diagnosis.to_string();
        assert!(report.contains("usable methods: ptrace\n"), "{report}");
        assert!(report.contains("not gdb: gdb 13.1"), "{report}");
    }

    #[test]
    fn with_ptrace_ruled_out_an_unusable_gdb_leaves_no_method() {
        let mut facts = healthy(11);
        facts.debugger_check = amx_gdb();
        facts.host_arch = crate::target::Arch::Aarch64;
        if let Ok(python) = &mut live(&mut facts).inspected {
            python.arch = crate::target::Arch::Aarch64;
        }
        let diagnosis = facts.diagnose();
        assert!(diagnosis.usable_methods.is_empty(), "{diagnosis}");
        assert!(!diagnosis.can_attach());
    }

    #[test]
    fn a_gdb_that_works_says_so() {
        let diagnosis = healthy(11).diagnose();
        assert!(text(&diagnosis, check::GDB)
            .contains("gdb 15.1 is installed at /usr/bin/gdb and made a test call"));
        let mut facts = healthy(11);
        facts.debugger_check = DebuggerCheck::Inconclusive("gdb did not finish".into());
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::GDB), Severity::Warning);
        assert_eq!(diagnosis.usable_methods, [Method::Ptrace]);
        assert!(diagnosis
            .why_not(Method::Gdb)
            .unwrap()
            .contains("gdb did not finish"));
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
}
