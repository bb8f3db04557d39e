//! The `gdb` or `lldb` check: whether the platform debugger of the fallback
//! method is installed.

use crate::doctor::check;
use crate::doctor::facts::Facts;
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
            Some(path) => Finding::ok(
                id,
                format!(
                    "{name} is installed at {} (for the {name} fallback method)",
                    path.display()
                ),
            ),
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
    use crate::doctor::fixtures::*;
    use crate::doctor::{check, Severity};
    use crate::method::Method;

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
