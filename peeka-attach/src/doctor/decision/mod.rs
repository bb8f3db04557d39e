//! The decision: a pure function from [`Facts`] to a [`Diagnosis`], so that
//! each rule is unit-tested without a real process in that situation. One
//! module per check; `methods` decides which attach methods can work.

mod container;
mod debugger;
mod interpreter;
mod methods;
mod process;
mod ptrace_access;
mod remote_debug;
mod route;
mod seccomp;
mod staging;
mod yama;

use crate::doctor::check;
use crate::doctor::diagnosis::Diagnosis;
use crate::doctor::facts::{Facts, LiveFacts, ProcessFacts};
use crate::doctor::findings::{Finding, Severity};
use crate::method::Method;
use crate::target::InspectError;
use methods::split_methods;
use ptrace_access::capability_finding;
use seccomp::seccomp_finding;
use staging::staging_finding;
use yama::yama_finding;

/// The fix when there is no running process to attach to.
const PASS_A_RUNNING_PYTHON: &str = "pass the pid of a running Python process (`pgrep -a python`)";

/// The fix when a check could not look because ptrace access is denied.
fn fix_permission_first() -> String {
    format!(
        "fix the {} finding, then run the doctor again",
        check::PTRACE_PERMISSION
    )
}

/// How the rules state what they found.
impl Finding {
    fn ok(check: &'static str, summary: impl Into<String>) -> Self {
        Self::new(check, Severity::Ok, summary.into(), None)
    }

    fn warning(check: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Severity::Warning, summary.into(), Some(fix.into()))
    }

    fn blocker(check: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(check, Severity::Blocker, summary.into(), Some(fix.into()))
    }

    fn new(check: &'static str, severity: Severity, summary: String, fix: Option<String>) -> Self {
        Self {
            check,
            severity,
            summary,
            fix,
        }
    }
}

impl Facts {
    /// The decision: the findings and the usable methods. Pure.
    pub(super) fn diagnose(&self) -> Diagnosis {
        let methods = self.method_verdicts();
        let mut findings = Vec::new();
        let mut route = None;
        match &self.process {
            ProcessFacts::Missing => findings.push(Finding::blocker(
                check::PROCESS,
                InspectError::NoSuchProcess { pid: self.pid }.to_string(),
                PASS_A_RUNNING_PYTHON,
            )),
            ProcessFacts::Unreadable(why) => findings.push(Finding::blocker(
                check::PROCESS,
                format!("cannot read /proc/{}/status: {why}", self.pid),
                "run as root (sudo), or as the process's user if /proc is mounted with hidepid",
            )),
            ProcessFacts::Zombie(status) => findings.push(Finding::blocker(
                check::PROCESS,
                InspectError::Zombie { pid: self.pid }.to_string(),
                format!(
                    "{PASS_A_RUNNING_PYTHON}; the zombie stays until its parent, process {}, reaps it or exits",
                    status.ppid
                ),
            )),
            ProcessFacts::Alive(live) => {
                self.diagnose_live(live, &methods, &mut findings);
                if let Some((finding, forecast)) = self.route_finding(live, &methods) {
                    findings.push(finding);
                    route = Some(forecast);
                }
            }
        }
        let (usable_methods, unusable_methods) = split_methods(methods);
        Diagnosis {
            pid: self.pid,
            findings,
            usable_methods,
            unusable_methods,
            route,
        }
    }

    fn diagnose_live(
        &self,
        live: &LiveFacts,
        methods: &[(Method, Result<(), String>)],
        out: &mut Vec<Finding>,
    ) {
        let usable = |m: Method| methods.iter().any(|(x, v)| *x == m && v.is_ok());
        out.push(self.process_finding(live));
        out.extend(self.python_findings(live));
        if let Ok(inspected) = &live.inspected {
            out.push(
                self.architecture_finding(inspected, usable(Method::Gdb) || usable(Method::Lldb)),
            );
        }
        out.push(self.permission_finding(live));
        out.push(yama_finding(self.pid, live));
        out.push(capability_finding(live));
        out.push(self.traced_finding(live));
        out.push(seccomp_finding(live, usable(Method::Pep768)));
        out.push(self.container_finding(live));
        if let Ok(inspected) = &live.inspected {
            out.push(self.remote_debug_finding(live, inspected));
        }
        if let Some(staging) = &live.staging {
            out.push(staging_finding(staging));
        }
        out.push(self.debugger_finding());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;

    #[test]
    fn a_healthy_3_11_target_uses_ptrace_then_gdb() {
        let diagnosis = healthy(11).diagnose();
        assert_eq!(diagnosis.worst(), Severity::Ok, "{diagnosis}");
        assert!(diagnosis.can_attach());
        assert_eq!(diagnosis.usable_methods, [Method::Ptrace, Method::Gdb]);
        assert!(diagnosis
            .why_not(Method::Pep768)
            .unwrap()
            .contains("arrived in 3.14"));
        assert!(diagnosis.why_not(Method::Lldb).unwrap().contains("macOS"));
        for id in [
            check::PROCESS,
            check::CPYTHON,
            check::VERSION,
            check::ARCHITECTURE,
            check::PTRACE_PERMISSION,
            check::YAMA,
            check::CAPABILITIES,
            check::TRACED,
            check::SECCOMP,
            check::CONTAINER,
            check::REMOTE_DEBUG,
            check::STAGING,
            check::GDB,
        ] {
            assert_eq!(severity(&diagnosis, id), Severity::Ok, "{id}:\n{diagnosis}");
        }
        assert!(text(&diagnosis, check::CPYTHON).contains("CPython 3.11.1"));
    }

    #[test]
    fn a_healthy_3_14_target_prefers_pep768() {
        let diagnosis = healthy(14).diagnose();
        assert!(diagnosis.can_attach(), "{diagnosis}");
        assert_eq!(
            diagnosis.usable_methods,
            [Method::Pep768, Method::Ptrace, Method::Gdb]
        );
        assert!(text(&diagnosis, check::REMOTE_DEBUG).contains("enabled"));
    }
}
