//! The `yama` check: whether `kernel.yama.ptrace_scope` lets us trace the
//! target.

use crate::doctor::check;
use crate::doctor::facts::LiveFacts;
use crate::doctor::findings::Finding;
use crate::permissions::YamaScope;

/// The `yama` finding.
pub(super) fn yama_finding(pid: u32, live: &LiveFacts) -> Finding {
    let access = &live.access;
    let Some(scope) = access.yama else {
        return Finding::ok(
            check::YAMA,
            "Yama is not active (no kernel.yama.ptrace_scope): classic ptrace rules apply",
        );
    };
    if let Some(obstacle) = access.obstacles.iter().find(|o| o.is_yama()) {
        return Finding::blocker(check::YAMA, obstacle.why(pid), obstacle.fix());
    }
    let value = scope.value();
    let summary = match scope {
        YamaScope::Classic => format!("kernel.yama.ptrace_scope is {value}: classic ptrace rules apply"),
        _ if access.cap_sys_ptrace => {
            format!("kernel.yama.ptrace_scope is {value}, which this process passes with CAP_SYS_PTRACE")
        }
        _ => format!("kernel.yama.ptrace_scope is {value}, which allows it because the target descends from this process"),
    };
    Finding::ok(check::YAMA, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;
    use crate::doctor::Severity;
    use crate::procfs::ProcStatus;

    /// Yama's four scopes, for an ordinary user (same uid as the target)
    /// and for root with CAP_SYS_PTRACE.
    #[test]
    fn yama_scopes_zero_to_three() {
        let user = proc_status(1000, 0);
        let root = proc_status(0, CAP_SYS_PTRACE);
        let cases: [(Option<YamaScope>, &ProcStatus, bool, Severity, &str); 9] = [
            (None, &user, false, Severity::Ok, "not active"),
            (
                Some(YamaScope::Classic),
                &user,
                false,
                Severity::Ok,
                "is 0: classic",
            ),
            (
                Some(YamaScope::Restricted),
                &user,
                false,
                Severity::Blocker,
                "sysctl kernel.yama.ptrace_scope=0",
            ),
            (
                Some(YamaScope::Restricted),
                &user,
                true,
                Severity::Ok,
                "descends from this process",
            ),
            (
                Some(YamaScope::Restricted),
                &root,
                false,
                Severity::Ok,
                "passes with CAP_SYS_PTRACE",
            ),
            (
                Some(YamaScope::AdminOnly),
                &user,
                true,
                Severity::Blocker,
                "--cap-add=SYS_PTRACE",
            ),
            (
                Some(YamaScope::AdminOnly),
                &root,
                false,
                Severity::Ok,
                "is 2, which this process passes",
            ),
            (
                Some(YamaScope::NoAttach),
                &user,
                true,
                Severity::Blocker,
                "until the next reboot",
            ),
            (
                Some(YamaScope::NoAttach),
                &root,
                false,
                Severity::Blocker,
                "peeka-cli run",
            ),
        ];
        for (scope, caller, descendant, expected, needle) in cases {
            let mut facts = healthy(11);
            live(&mut facts).caller = caller.clone();
            reevaluate(&mut facts, context(scope, descendant));
            let diagnosis = facts.diagnose();
            let found = text(&diagnosis, check::YAMA);
            assert_eq!(
                severity(&diagnosis, check::YAMA),
                expected,
                "{scope:?} uid {}: {found}",
                caller.euid()
            );
            assert!(found.contains(needle), "{scope:?}: {found}");
            // Yama is never blamed on the credentials.
            assert_eq!(
                severity(&diagnosis, check::PTRACE_PERMISSION),
                Severity::Ok,
                "{diagnosis}"
            );
            assert_eq!(
                diagnosis.can_attach(),
                expected == Severity::Ok,
                "{diagnosis}"
            );
        }
    }
}
