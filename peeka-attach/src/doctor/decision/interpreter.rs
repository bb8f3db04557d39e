//! The interpreter's checks: `cpython` (it runs CPython), `version` (one
//! Peeka supports) and `architecture` (the one this Peeka is built for).

use super::process::short_command;
use super::{fix_permission_first, PASS_A_RUNNING_PYTHON};
use crate::doctor::check;
use crate::doctor::facts::{Facts, Inspected, LiveFacts};
use crate::doctor::findings::Finding;
use crate::target::{InspectError, SUPPORTED_MINORS};

impl Facts {
    /// The `cpython` and `version` findings.
    pub(super) fn python_findings(&self, live: &LiveFacts) -> Vec<Finding> {
        let pid = self.pid;
        match &live.inspected {
            Ok(python) => {
                let deleted = if python.deleted {
                    " (replaced on disk since it started; Peeka reads the mapped copy)"
                } else {
                    ""
                };
                let mut findings = vec![Finding::ok(
                    check::CPYTHON,
                    format!(
                        "CPython {} ({} layout: the interpreter is in {}{deleted}), executable {}",
                        python.version,
                        python.layout,
                        python.interpreter_file.display(),
                        python.exe.display()
                    ),
                )];
                findings.push(Finding::ok(
                    check::VERSION,
                    format!(
                        "Python {} is supported (Peeka supports CPython 3.{} to 3.{})",
                        python.version,
                        SUPPORTED_MINORS.start(),
                        SUPPORTED_MINORS.end()
                    ),
                ));
                findings
            }
            Err(error @ InspectError::NotCPython { exe, .. }) => {
                // The error's own text says what was found instead.
                let fix = if exe.to_lowercase().contains("pypy") {
                    "Peeka attaches to CPython only; run the program with CPython 3.8-3.15 to diagnose it with Peeka"
                } else {
                    "pass the pid of a CPython process (`pgrep -a python`); for a launcher or wrapper, pass the pid of its Python child"
                };
                vec![Finding::blocker(check::CPYTHON, error.to_string(), fix)]
            }
            Err(error @ InspectError::UnsupportedVersion { version, .. }) => {
                let fix = if version.minor < *SUPPORTED_MINORS.start() {
                    "upgrade the program to CPython 3.8 or newer".to_owned()
                } else {
                    format!("Python 3.{} is newer than this Peeka knows: upgrade Peeka", version.minor)
                };
                vec![
                    Finding::ok(check::CPYTHON, format!("CPython {version}")),
                    Finding::blocker(check::VERSION, error.to_string(), fix),
                ]
            }
            Err(InspectError::PermissionDenied { .. }) => vec![Finding::warning(
                check::CPYTHON,
                format!(
                    "process {pid} could not be inspected without ptrace access, so whether it runs a supported CPython is unknown (its command line: `{}`)",
                    short_command(&live.command_line)
                ),
                fix_permission_first(),
            )],
            Err(InspectError::NoSuchProcess { .. } | InspectError::Zombie { .. }) => vec![Finding::blocker(
                check::CPYTHON,
                format!("process {pid} exited while it was being inspected"),
                PASS_A_RUNNING_PYTHON,
            )],
            Err(error) => vec![Finding::warning(
                check::CPYTHON,
                error.to_string(),
                "check that the process is still running and try again as root (sudo)",
            )],
        }
    }

    /// The `architecture` finding; a mismatch leaves only the debugger
    /// methods.
    pub(super) fn architecture_finding(
        &self,
        python: &Inspected,
        debugger_usable: bool,
    ) -> Finding {
        if python.arch == self.host_arch {
            return Finding::ok(
                check::ARCHITECTURE,
                format!(
                    "the interpreter is built for {}, like this Peeka",
                    python.arch
                ),
            );
        }
        let summary = format!(
            "the interpreter is built for {} but this Peeka for {}: the pep768 and ptrace methods cannot work",
            python.arch, self.host_arch
        );
        let fix = format!("use a Peeka built for {}", python.arch);
        if debugger_usable {
            Finding::warning(
                check::ARCHITECTURE,
                summary,
                format!("{fix}, or `--method {}`", self.debugger.0),
            )
        } else {
            Finding::blocker(check::ARCHITECTURE, summary, fix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;
    use crate::doctor::Severity;
    use crate::method::Method;
    use crate::target::Arch;

    #[test]
    fn not_cpython_names_the_executable() {
        let mut facts = healthy(11);
        live(&mut facts).inspected = Err(InspectError::NotCPython {
            pid: PID,
            exe: "/usr/bin/sleep".into(),
            why: "no loaded file exports the CPython runtime (_PyRuntime); pass the pid of a Python process".into(),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CPYTHON), Severity::Blocker);
        let found = text(&diagnosis, check::CPYTHON);
        assert!(
            found.contains("/usr/bin/sleep") && found.contains("pgrep"),
            "{found}"
        );
        assert!(diagnosis.finding(check::VERSION).is_none());
        assert!(diagnosis.finding(check::REMOTE_DEBUG).is_none());
        assert!(diagnosis
            .why_not(Method::Gdb)
            .unwrap()
            .contains("it is not CPython (see cpython)"));

        live(&mut facts).inspected = Err(InspectError::NotCPython {
            pid: PID,
            exe: "/opt/pypy3/bin/pypy3".into(),
            why: "it runs PyPy, which Peeka does not support".into(),
        });
        let found = text(&facts.diagnose(), check::CPYTHON);
        assert!(
            found.contains("pypy3") && found.contains("CPython only"),
            "{found}"
        );
    }

    #[test]
    fn unsupported_versions_say_which_way_to_go() {
        let mut facts = healthy(11);
        live(&mut facts).inspected = Err(InspectError::UnsupportedVersion {
            pid: PID,
            version: version(7),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CPYTHON), Severity::Ok);
        assert_eq!(severity(&diagnosis, check::VERSION), Severity::Blocker);
        assert!(text(&diagnosis, check::VERSION).contains("3.8 or newer"));
        live(&mut facts).inspected = Err(InspectError::UnsupportedVersion {
            pid: PID,
            version: version(16),
        });
        assert!(text(&facts.diagnose(), check::VERSION).contains("upgrade Peeka"));
    }

    #[test]
    fn another_architecture_leaves_only_the_debugger() {
        let mut facts = healthy(11);
        if let Ok(python) = &mut live(&mut facts).inspected {
            python.arch = Arch::Other;
        }
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::ARCHITECTURE), Severity::Warning);
        assert_eq!(diagnosis.usable_methods, [Method::Gdb]);
        facts.debugger.1 = None;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::ARCHITECTURE), Severity::Blocker);
        assert!(diagnosis.usable_methods.is_empty());
    }
}
