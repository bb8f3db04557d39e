//! The `container` check: another pid, mount or user namespace, or another
//! root directory.

use std::path::Path;

use crate::doctor::check;
use crate::doctor::facts::{Facts, LiveFacts, NsRelation};
use crate::doctor::findings::Finding;

impl Facts {
    /// The `container` finding: how the target's namespaces and root
    /// differ from ours.
    pub(super) fn container_finding(&self, live: &LiveFacts) -> Finding {
        let ns = &live.namespaces;
        let mut differences = Vec::new();
        let mut unknown = Vec::new();
        let inner_pid = ns.ns_pid.last().copied().filter(|_| ns.ns_pid.len() > 1);
        match (&ns.pid, inner_pid) {
            (NsRelation::Different, Some(inner)) | (NsRelation::Unknown(_), Some(inner)) => {
                differences.push(format!("another pid namespace (pid {inner} there)"));
            }
            (NsRelation::Different, None) => differences.push("another pid namespace".to_owned()),
            (NsRelation::Unknown(why), None) => unknown.push(("pid namespace", why.clone())),
            (NsRelation::Same, _) => {}
        }
        match &ns.mount {
            NsRelation::Different => differences.push("another mount namespace".to_owned()),
            NsRelation::Unknown(why) => unknown.push(("mount namespace", why.clone())),
            NsRelation::Same => {}
        }
        match &ns.root {
            Ok(root) if root != Path::new("/") => {
                differences.push(format!("root directory {}", root.display()))
            }
            Ok(_) => {}
            Err(why) => unknown.push(("root directory", why.clone())),
        }
        let other_user_ns = ns.user == NsRelation::Different;
        if other_user_ns {
            differences.push("another user namespace".to_owned());
        }
        let mut summary = if differences.is_empty() && unknown.is_empty() {
            format!(
                "process {} shares this process's pid and mount namespaces and root directory",
                self.pid
            )
        } else if differences.is_empty() {
            format!(
                "process {} shows no sign of another namespace or root directory",
                self.pid
            )
        } else {
            format!(
                "process {} runs in a container or chroot: {}. Peeka reaches its files through /proc/{}/root and puts the agent's files in its own /tmp",
                self.pid,
                differences.join(", "),
                self.pid
            )
        };
        if !unknown.is_empty() {
            summary.push_str(&format!(
                ", but {} could not be compared",
                describe_unknown(&unknown)
            ));
        }
        if other_user_ns {
            Finding::warning(
                check::CONTAINER,
                summary,
                "CAP_SYS_PTRACE counts only in the target's user namespace or one above it: if access is refused, run Peeka as root on the host or inside the target's container",
            )
        } else if !unknown.is_empty() {
            Finding::warning(
                check::CONTAINER,
                summary,
                format!(
                    "fix the {} finding, then run the doctor again",
                    check::PTRACE_PERMISSION
                ),
            )
        } else {
            Finding::ok(check::CONTAINER, summary)
        }
    }
}

/// `pid namespace and mount namespace: Permission denied`, grouping the
/// items that failed for the same reason.
fn describe_unknown(unknown: &[(&str, String)]) -> String {
    let mut groups: Vec<(Vec<&str>, &str)> = Vec::new();
    for (what, why) in unknown {
        match groups
            .iter_mut()
            .find(|(_, reason)| *reason == why.as_str())
        {
            Some((whats, _)) => whats.push(what),
            None => groups.push((vec![what], why)),
        }
    }
    groups
        .iter()
        .map(|(whats, why)| format!("its {} ({why})", whats.join(", ")))
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::facts::NamespaceFacts;
    use crate::doctor::fixtures::*;
    use crate::doctor::Severity;

    #[test]
    fn containers_are_described() {
        let mut facts = healthy(14);
        live(&mut facts).namespaces = NamespaceFacts {
            ns_pid: vec![PID, 17],
            root: Ok("/var/lib/docker/overlay2/abc/merged".into()),
            pid: NsRelation::Different,
            mount: NsRelation::Different,
            user: NsRelation::Same,
        };
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CONTAINER), Severity::Ok);
        let found = text(&diagnosis, check::CONTAINER);
        for needle in [
            "another pid namespace (pid 17 there)",
            "another mount namespace",
            "root directory /var/lib/docker/overlay2/abc/merged",
        ] {
            assert!(found.contains(needle), "{needle}: {found}");
        }
        live(&mut facts).namespaces.user = NsRelation::Different;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::CONTAINER), Severity::Warning);
        assert!(text(&diagnosis, check::CONTAINER).contains("user namespace"));
    }
}
