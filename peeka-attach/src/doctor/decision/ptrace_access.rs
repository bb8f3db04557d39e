//! Whether our credentials let us trace the target: the
//! `ptrace_permission`, `capabilities` and `traced` checks, from the
//! [`PtraceAccess`](crate::permissions::PtraceAccess) prediction.

use crate::doctor::check;
use crate::doctor::facts::{Facts, LiveFacts};
use crate::doctor::findings::Finding;
use crate::permissions::PtraceObstacle;
use crate::target::InspectError;

impl Facts {
    /// The `ptrace_permission` finding: what our credentials allow.
    pub(super) fn permission_finding(&self, live: &LiveFacts) -> Finding {
        let access = &live.access;
        let credentials: Vec<&PtraceObstacle> = access
            .obstacles
            .iter()
            .filter(|o| !o.is_yama() && !matches!(o, PtraceObstacle::AlreadyTraced { .. }))
            .collect();
        if let Some(first) = credentials.first() {
            let whys: Vec<String> = credentials.iter().map(|o| o.why(self.pid)).collect();
            return Finding::blocker(check::PTRACE_PERMISSION, whys.join("; and "), first.fix());
        }
        let kernel_refused = matches!(live.inspected, Err(InspectError::PermissionDenied { .. }));
        if kernel_refused && access.allowed() {
            return Finding::blocker(
                check::PTRACE_PERMISSION,
                format!(
                    "the kernel refused access to process {} although uid, capabilities and Yama allow it: a security module (AppArmor, SELinux) or a seccomp filter on this process is blocking ptrace",
                    self.pid
                ),
                "look for the denial in `dmesg` or the audit log, and allow ptrace for Peeka in that policy (in a container: --security-opt apparmor=unconfined / seccomp=unconfined)",
            );
        }
        let how = if access.cap_sys_ptrace {
            "this process holds CAP_SYS_PTRACE".to_owned()
        } else {
            format!(
                "it runs as our uid {} and gid {}, and is dumpable",
                access.caller_uid, live.caller.gid[0]
            )
        };
        Finding::ok(
            check::PTRACE_PERMISSION,
            format!("our credentials allow tracing process {}: {how}", self.pid),
        )
    }

    /// The `traced` finding: whether another tracer is attached.
    pub(super) fn traced_finding(&self, live: &LiveFacts) -> Finding {
        let traced = live
            .access
            .obstacles
            .iter()
            .find(|o| matches!(o, PtraceObstacle::AlreadyTraced { .. }));
        match traced {
            Some(obstacle) => {
                let name = live
                    .tracer_name
                    .as_deref()
                    .map(|n| format!(", `{n}`"))
                    .unwrap_or_default();
                Finding::blocker(
                    check::TRACED,
                    format!("{}{name}", obstacle.why(self.pid)),
                    obstacle.fix(),
                )
            }
            None => Finding::ok(
                check::TRACED,
                format!("process {} is not traced by another process", self.pid),
            ),
        }
    }
}

/// The `capabilities` finding: whether we hold `CAP_SYS_PTRACE`, and
/// whether it would help.
pub(super) fn capability_finding(live: &LiveFacts) -> Finding {
    let access = &live.access;
    let uid = live.caller.euid();
    if access.cap_sys_ptrace {
        return Finding::ok(
            check::CAPABILITIES,
            format!("this process (uid {uid}) holds CAP_SYS_PTRACE"),
        );
    }
    let lifted: Vec<&'static str> = access
        .obstacles
        .iter()
        .filter(|o| o.lifted_by_capability())
        .map(obstacle_label)
        .collect();
    if lifted.is_empty() {
        return Finding::ok(
            check::CAPABILITIES,
            format!(
                "this process (uid {uid}) lacks CAP_SYS_PTRACE, which this target does not require"
            ),
        );
    }
    let fix = if uid == 0 {
        "root without CAP_SYS_PTRACE usually means a container: add --cap-add=SYS_PTRACE (docker, podman) or securityContext.capabilities.add: [\"SYS_PTRACE\"] (Kubernetes)"
    } else {
        "run as root (sudo), or give Peeka the capability (`setcap cap_sys_ptrace+ep` on its binary; in a container --cap-add=SYS_PTRACE)"
    };
    Finding::blocker(
        check::CAPABILITIES,
        format!(
            "this process (uid {uid}) lacks CAP_SYS_PTRACE, which would get past {}",
            lifted.join(" and ")
        ),
        fix,
    )
}

fn obstacle_label(obstacle: &PtraceObstacle) -> &'static str {
    match obstacle {
        PtraceObstacle::AlreadyTraced { .. } => "the other tracer",
        PtraceObstacle::YamaNoAttach => "Yama scope 3",
        PtraceObstacle::YamaAdminOnly => "Yama scope 2",
        PtraceObstacle::OtherUser { .. } => "the uid mismatch",
        PtraceObstacle::OtherGroup { .. } => "the gid mismatch",
        PtraceObstacle::NotDumpable => "the target's non-dumpable flag",
        PtraceObstacle::YamaRestricted => "Yama scope 1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;
    use crate::doctor::Severity;
    use crate::method::Method;
    use crate::permissions::YamaScope;

    #[test]
    fn another_user_without_the_capability_is_blocked() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(999, 0);
        live(&mut facts).status = proc_status(0, 0);
        live(&mut facts).inspected = Err(InspectError::PermissionDenied {
            pid: PID,
            why: "denied".into(),
        });
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert_eq!(
            severity(&diagnosis, check::PTRACE_PERMISSION),
            Severity::Blocker
        );
        let found = text(&diagnosis, check::PTRACE_PERMISSION);
        assert!(
            found.contains("belongs to uid 0 and we run as uid 999"),
            "{found}"
        );
        assert!(
            found.contains("run as that user") && found.contains("as root (sudo"),
            "{found}"
        );
        assert_eq!(severity(&diagnosis, check::CAPABILITIES), Severity::Blocker);
        assert!(text(&diagnosis, check::CAPABILITIES).contains("sudo"));
        // Unknown rather than wrong: the command line is the only clue.
        assert_eq!(severity(&diagnosis, check::CPYTHON), Severity::Warning);
        assert!(text(&diagnosis, check::CPYTHON).contains("python3.11 app.py"));
        assert!(diagnosis.usable_methods.is_empty());
        assert!(diagnosis
            .why_not(Method::Ptrace)
            .unwrap()
            .contains("ptrace access is denied"));
    }

    #[test]
    fn root_without_the_capability_is_told_about_containers() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(0, 0);
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CAPABILITIES), Severity::Blocker);
        assert!(text(&diagnosis, check::CAPABILITIES).contains("--cap-add=SYS_PTRACE"));
    }

    #[test]
    fn the_same_user_needs_no_capability() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(1000, 0);
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert!(diagnosis.can_attach(), "{diagnosis}");
        assert!(text(&diagnosis, check::PTRACE_PERMISSION).contains("our uid 1000"));
        assert!(text(&diagnosis, check::CAPABILITIES).contains("does not require"));
    }

    #[test]
    fn a_non_dumpable_target_needs_the_capability_even_for_its_user() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(1000, 0);
        let mut undumpable = context(None, false);
        undumpable.target_dumpable = false;
        reevaluate(&mut facts, undumpable);
        let diagnosis = facts.diagnose();
        assert_eq!(
            severity(&diagnosis, check::PTRACE_PERMISSION),
            Severity::Blocker
        );
        assert!(text(&diagnosis, check::PTRACE_PERMISSION).contains("not dumpable"));
    }

    #[test]
    fn a_capability_that_would_help_is_named_for_yama_too() {
        let mut facts = healthy(11);
        live(&mut facts).caller = proc_status(1000, 0);
        reevaluate(&mut facts, context(Some(YamaScope::Restricted), false));
        let found = text(&facts.diagnose(), check::CAPABILITIES);
        assert!(found.contains("Yama scope 1"), "{found}");
    }

    #[test]
    fn another_tracer_is_named() {
        let mut facts = healthy(11);
        live(&mut facts).status.tracer_pid = 555;
        live(&mut facts).tracer_name = Some("strace".into());
        reevaluate(&mut facts, context(None, false));
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::TRACED), Severity::Blocker);
        let found = text(&diagnosis, check::TRACED);
        assert!(
            found.contains("process 555") && found.contains("`strace`") && found.contains("detach"),
            "{found}"
        );
        assert_eq!(severity(&diagnosis, check::PTRACE_PERMISSION), Severity::Ok);
        assert!(diagnosis.usable_methods.is_empty());
    }

    #[test]
    fn a_kernel_refusal_despite_the_rules_points_at_security_modules() {
        let mut facts = healthy(11);
        live(&mut facts).inspected = Err(InspectError::PermissionDenied {
            pid: PID,
            why: "Permission denied".into(),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(
            severity(&diagnosis, check::PTRACE_PERMISSION),
            Severity::Blocker
        );
        let found = text(&diagnosis, check::PTRACE_PERMISSION);
        assert!(
            found.contains("AppArmor") && found.contains("dmesg"),
            "{found}"
        );
    }
}
