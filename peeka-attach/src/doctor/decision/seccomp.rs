//! The `seccomp` check: seccomp filters in the target and in this process.

use crate::doctor::check;
use crate::doctor::facts::LiveFacts;
use crate::doctor::findings::{Finding, Severity};

/// The seccomp finding, for the target and for this process. With a usable
/// pep768 method the target's filter does not matter: that protocol makes
/// the target run no system call.
pub(super) fn seccomp_finding(live: &LiveFacts, pep768_usable: bool) -> Finding {
    let mut severity = Severity::Ok;
    let mut summary = Vec::new();
    let mut fixes = Vec::new();
    match live.status.seccomp {
        0 => summary.push("the target runs without a seccomp filter".to_owned()),
        1 if pep768_usable => summary.push("the target runs in seccomp strict mode; the pep768 method needs no system call in it, so this does not matter".to_owned()),
        1 => {
            severity = Severity::Blocker;
            summary.push("the target runs in seccomp strict mode (only read, write and exit are allowed): the ptrace and debugger methods cannot make it call mmap or any function".to_owned());
            fixes.push("restart it without strict seccomp, or run it on Python 3.14+ (PEP 768 needs no system call in the target)".to_owned());
        }
        _ if pep768_usable => summary.push("the target runs under a seccomp filter; the pep768 method needs no system call in it, so this does not matter".to_owned()),
        _ => {
            severity = Severity::Warning;
            summary.push("the target runs under a seccomp filter: the ptrace and gdb methods make it run the mmap and munmap system calls, which a strict profile may block (Peeka then stops cleanly and says so)".to_owned());
            fixes.push("if it does, allow mmap and munmap in the target's profile or run it with --security-opt seccomp=unconfined (Docker's default profile allows them)".to_owned());
        }
    }
    if live.caller.seccomp != 0 {
        severity = severity.max(Severity::Warning);
        summary.push("this process itself runs under a seccomp filter: if it blocks ptrace or process_vm_readv/writev, attaching fails with \"Operation not permitted\"".to_owned());
        fixes.push("if it does, run Peeka outside that sandbox, or its container with --security-opt seccomp=unconfined".to_owned());
    }
    Finding::new(
        check::SECCOMP,
        severity,
        summary.join("; "),
        (!fixes.is_empty()).then(|| fixes.join("; ")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::fixtures::*;
    use crate::method::Method;

    #[test]
    fn seccomp_matters_for_injection_only() {
        let mut facts = healthy(11);
        live(&mut facts).status.seccomp = 2;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Warning);
        let found = text(&diagnosis, check::SECCOMP);
        assert!(
            found.contains("mmap and munmap") && found.contains("seccomp=unconfined"),
            "{found}"
        );
        assert!(
            diagnosis.can_attach(),
            "a filter may allow mmap: {diagnosis}"
        );

        let mut facts = healthy(14);
        live(&mut facts).status.seccomp = 2;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Ok);
        assert!(text(&diagnosis, check::SECCOMP).contains("pep768 method needs no system call"));

        let mut facts = healthy(11);
        live(&mut facts).status.seccomp = 1;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Blocker);
        assert!(diagnosis
            .why_not(Method::Ptrace)
            .unwrap()
            .contains("strict mode"));
        assert!(diagnosis
            .why_not(Method::Gdb)
            .unwrap()
            .contains("strict mode"));

        let mut facts = healthy(11);
        live(&mut facts).caller.seccomp = 2;
        let diagnosis = facts.diagnose();
        assert_eq!(severity(&diagnosis, check::SECCOMP), Severity::Warning);
        assert!(text(&diagnosis, check::SECCOMP).contains("this process itself"));
    }
}
