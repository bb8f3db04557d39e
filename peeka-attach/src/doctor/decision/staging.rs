//! The `staging` check: whether the target's `/tmp` can take the agent's
//! private directory.

use crate::doctor::check;
use crate::doctor::facts::StagingFacts;
use crate::doctor::findings::Finding;

/// The `staging` finding.
pub(super) fn staging_finding(staging: &StagingFacts) -> Finding {
    match staging {
        StagingFacts::Fresh { target_dir, host_dir } => Finding::ok(
            check::STAGING,
            format!(
                "the agent's private directory will be {} in the target's filesystem ({} from here)",
                target_dir.display(),
                host_dir.display()
            ),
        ),
        StagingFacts::Reused { target_dir } => Finding::ok(
            check::STAGING,
            format!("{} exists from an earlier attach and will be reused", target_dir.display()),
        ),
        StagingFacts::Untrusted { host_dir, uid, owner, mode } => Finding::blocker(
            check::STAGING,
            format!(
                "{} exists but is not a private directory of uid {uid} (owner {owner}, mode {mode:o}); the attach refuses to use it",
                host_dir.display()
            ),
            format!(
                "it may have been planted by another user: remove it (`rm -r {}`) and attach again",
                host_dir.display()
            ),
        ),
        StagingFacts::TmpUnusable { host_tmp, why } => Finding::blocker(
            check::STAGING,
            format!("the target's /tmp ({} from here) cannot take the agent's files: {why}", host_tmp.display()),
            "give the target a writable /tmp (in Kubernetes, an emptyDir volume mounted at /tmp)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;
    use crate::doctor::Severity;

    #[test]
    fn an_unusable_tmp_or_a_planted_directory_blocks() {
        let mut facts = healthy(11);
        live(&mut facts).staging = Some(StagingFacts::TmpUnusable {
            host_tmp: format!("/proc/{PID}/root/tmp").into(),
            why: "Read-only file system (os error 30)".into(),
        });
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::STAGING), Severity::Blocker);
        assert!(text(&diagnosis, check::STAGING).contains("emptyDir"));
        assert!(diagnosis.usable_methods.is_empty());

        live(&mut facts).staging = Some(StagingFacts::Untrusted {
            host_dir: "/tmp/peeka-4242".into(),
            uid: 1000,
            owner: 1001,
            mode: 0o777,
        });
        let found = text(&facts.diagnose(), check::STAGING);
        assert!(
            found.contains("owner 1001, mode 777") && found.contains("rm -r /tmp/peeka-4242"),
            "{found}"
        );
    }
}
