//! The report a [`Diagnosis`] prints as: one block per finding, then the
//! methods and the verdict.

use std::fmt;

use super::diagnosis::Diagnosis;
use super::findings::Severity;

impl fmt::Display for Diagnosis {
    /// A readable report: one block per finding, then the methods and the
    /// verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Peeka doctor: process {}", self.pid)?;
        let width = self
            .findings
            .iter()
            .map(|x| x.check.len())
            .max()
            .unwrap_or(0);
        for finding in &self.findings {
            writeln!(
                f,
                "  [{:<7}] {:<width$}  {}",
                finding.severity.label(),
                finding.check,
                finding.summary
            )?;
            if let Some(fix) = &finding.fix {
                writeln!(f, "  {:<9} {:<width$}  fix: {fix}", "", "")?;
            }
        }
        let names: Vec<&str> = self.usable_methods.iter().map(|m| m.name()).collect();
        writeln!(
            f,
            "usable methods: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )?;
        for (method, why) in &self.unusable_methods {
            writeln!(f, "  not {method}: {why}")?;
        }
        let blockers = self.blockers().count();
        if self.can_attach() {
            write!(f, "verdict: an attach is expected to work")?;
            if self.worst() == Severity::Warning {
                write!(f, " (see the warnings above)")?;
            }
            writeln!(f)
        } else if blockers > 0 {
            writeln!(
                f,
                "verdict: an attach will fail until the {blockers} blocker{} above {} fixed",
                if blockers == 1 { "" } else { "s" },
                if blockers == 1 { "is" } else { "are" }
            )
        } else {
            writeln!(
                f,
                "verdict: an attach will fail: no method can work (see above)"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::doctor::fixtures::*;
    use crate::remote_debug_optout::OptOutEvidence;
    use crate::target::RemoteDebug;

    #[test]
    fn the_report_lists_findings_fixes_methods_and_a_verdict() {
        let mut facts = healthy(14);
        live(&mut facts).inspected = Ok(inspected(14, RemoteDebug::Disabled));
        live(&mut facts).opt_out = Some(OptOutEvidence::from_process_text(
            Some(b"PYTHON_DISABLE_REMOTE_DEBUG=1\0"),
            b"python3.14\0app.py\0",
        ));
        let report = facts.diagnose().to_string();
        assert!(
            report.starts_with("Peeka doctor: process 4242\n"),
            "{report}"
        );
        assert!(report.contains("[BLOCKER] remote_debug"), "{report}");
        assert!(report.contains("fix: Peeka does not override"), "{report}");
        assert!(report.contains("[ok     ] process"), "{report}");
        assert!(report.contains("usable methods: ptrace, gdb"), "{report}");
        assert!(
            report.contains("not pep768: remote debugging is disabled"),
            "{report}"
        );
        assert!(
            report.contains("verdict: an attach will fail until the 1 blocker above is fixed"),
            "{report}"
        );
        let healthy_report = healthy(11).diagnose().to_string();
        assert!(
            healthy_report.contains("verdict: an attach is expected to work\n"),
            "{healthy_report}"
        );
    }
}
