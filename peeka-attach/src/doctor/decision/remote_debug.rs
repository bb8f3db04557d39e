//! The `remote_debug` check: whether PEP 768 remote debugging (3.14+) is
//! enabled, and if the operator disabled it, how.

use crate::doctor::check;
use crate::doctor::facts::{Facts, Inspected, LiveFacts};
use crate::doctor::findings::Finding;
use crate::remote_debug_optout::{ENV_VAR, X_OPTION};
use crate::target::RemoteDebug;

impl Facts {
    /// The `remote_debug` finding of an inspected target.
    pub(super) fn remote_debug_finding(&self, live: &LiveFacts, python: &Inspected) -> Finding {
        let pid = self.pid;
        match &python.remote_debug {
            RemoteDebug::Unsupported => Finding::ok(
                check::REMOTE_DEBUG,
                format!(
                    "Python {} predates PEP 768 remote debugging (3.14); Peeka injects with ptrace or {} instead",
                    python.version, self.debugger.0
                ),
            ),
            RemoteDebug::Enabled => Finding::ok(
                check::REMOTE_DEBUG,
                format!("PEP 768 remote debugging is enabled in process {pid}: the pep768 method can attach"),
            ),
            RemoteDebug::Disabled => {
                let evidence = live.opt_out_evidence();
                let restart = match (&evidence.environment, evidence.x_option) {
                    (Some(_), true) => format!("restart it without {ENV_VAR} in its environment and without `-X {X_OPTION}`"),
                    (Some(_), false) => format!("restart it without {ENV_VAR} in its environment"),
                    (None, true) => format!("restart it without `-X {X_OPTION}`"),
                    (None, false) if !evidence.environment_readable => format!("restart it without {ENV_VAR} and `-X {X_OPTION}`, with a CPython built with remote debugging (the default)"),
                    (None, false) => "run it with a CPython built with remote debugging (the default)".to_owned(),
                };
                Finding::blocker(
                    check::REMOTE_DEBUG,
                    format!("process {pid} has PEP 768 remote debugging disabled: {evidence}"),
                    format!(
                        "Peeka does not override the operator's opt-out: {restart}, or pass `--method ptrace` if your policy allows tracing it"
                    ),
                )
            }
            RemoteDebug::Unknown(why) => Finding::warning(
                check::REMOTE_DEBUG,
                format!("whether remote debugging is enabled in process {pid} could not be read: {why}"),
                "if the process is still starting, try again in a moment; otherwise use `--method ptrace`",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;
    use crate::doctor::Severity;
    use crate::method::Method;
    use crate::remote_debug_optout::OptOutEvidence;

    #[test]
    fn disabled_remote_debugging_names_the_opt_out() {
        let evidences = [
            (
                "PYTHON_DISABLE_REMOTE_DEBUG=1",
                "python3.14 app.py",
                "PYTHON_DISABLE_REMOTE_DEBUG=1",
                "without PYTHON_DISABLE_REMOTE_DEBUG",
            ),
            (
                "PATH=/bin",
                "python3.14 -X disable-remote-debug app.py",
                "-X disable-remote-debug",
                "without `-X disable-remote-debug`",
            ),
            (
                "PATH=/bin",
                "python3.14 app.py",
                "--without-remote-debug",
                "built with remote debugging",
            ),
        ];
        for (environ, cmdline, summary_needle, fix_needle) in evidences {
            let mut facts = healthy(14);
            let environ = environ.replace(' ', "\0");
            let cmdline = cmdline.replace(' ', "\0");
            live(&mut facts).inspected = Ok(inspected(14, RemoteDebug::Disabled));
            live(&mut facts).opt_out = Some(OptOutEvidence::from_process_text(
                Some(environ.as_bytes()),
                cmdline.as_bytes(),
            ));
            let diagnosis = facts.diagnose();
            assert_eq!(severity(&diagnosis, check::REMOTE_DEBUG), Severity::Blocker);
            let finding = diagnosis.finding(check::REMOTE_DEBUG).unwrap();
            assert!(
                finding.summary.contains(summary_needle),
                "{}",
                finding.summary
            );
            let fix = finding.fix.as_deref().unwrap();
            assert!(
                fix.contains(fix_needle) && fix.contains("--method ptrace"),
                "{fix}"
            );
            // The operator's choice blocks `auto`; ptrace stays possible on request.
            assert!(!diagnosis.can_attach());
            assert_eq!(diagnosis.usable_methods, [Method::Ptrace, Method::Gdb]);
            assert!(diagnosis
                .why_not(Method::Pep768)
                .unwrap()
                .contains(summary_needle));
        }
    }

    #[test]
    fn an_unreadable_remote_debug_state_is_a_warning() {
        let mut facts = healthy(15);
        live(&mut facts).inspected = Ok(inspected(
            15,
            RemoteDebug::Unknown("not initialized yet".into()),
        ));
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::REMOTE_DEBUG), Severity::Warning);
        assert_eq!(diagnosis.usable_methods, [Method::Ptrace, Method::Gdb]);
    }
}
