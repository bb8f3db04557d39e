//! Whether this process may ptrace (and so read, write and inject into) a
//! target, and if not, why and what to do.

use std::fs;

use crate::procfs::ProcStatus;

/// `CAP_SYS_PTRACE`'s bit in a capability set.
const CAP_SYS_PTRACE: u64 = 1 << 19;

/// Yama's `ptrace_scope` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamaScope {
    /// 0: classic rules (same uid, or CAP_SYS_PTRACE).
    Classic,
    /// 1: only descendants, unless CAP_SYS_PTRACE (or PR_SET_PTRACER).
    Restricted,
    /// 2: only with CAP_SYS_PTRACE.
    AdminOnly,
    /// 3: nobody may attach, until reboot.
    NoAttach,
}

impl YamaScope {
    /// Reads `/proc/sys/kernel/yama/ptrace_scope`; `None` without Yama.
    pub fn read() -> Option<Self> {
        let text = fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
        Some(match text.trim() {
            "0" => Self::Classic,
            "1" => Self::Restricted,
            "2" => Self::AdminOnly,
            _ => Self::NoAttach,
        })
    }
}

/// What the kernel will say to a ptrace attach, predicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtraceAccess {
    /// Our effective uid.
    pub caller_uid: u32,
    /// The target's real, effective and saved uid.
    pub target_uids: [u32; 3],
    /// Whether we hold CAP_SYS_PTRACE.
    pub cap_sys_ptrace: bool,
    /// Yama's setting, if the module is active.
    pub yama: Option<YamaScope>,
    /// Another process already traces the target (a debugger, strace).
    pub traced_by: Option<u32>,
    /// `Ok` when access is expected, else why not and the fix.
    pub verdict: Result<(), String>,
}

impl PtraceAccess {
    /// Predicts our access to a target whose status is `target`.
    pub fn check(target: &ProcStatus, target_pid: u32) -> Self {
        let me = ProcStatus::read(std::process::id()).unwrap_or_default();
        let caller_uid = me.euid();
        let cap_sys_ptrace = me.cap_eff & CAP_SYS_PTRACE != 0;
        let yama = YamaScope::read();
        let target_uids = [target.uid[0], target.uid[1], target.uid[2]];
        let traced_by = (target.tracer_pid != 0).then_some(target.tracer_pid);
        let same_user = target_uids.iter().all(|&u| u == caller_uid);
        let verdict = if let Some(tracer) = traced_by {
            Err(format!(
                "process {target_pid} is already traced by process {tracer} (a debugger or strace); detach it first, since only one tracer may attach at a time"
            ))
        } else if yama == Some(YamaScope::NoAttach) {
            Err("kernel.yama.ptrace_scope is 3: no process may be traced until reboot; use a target started with the agent (`peeka-cli run`) or, on Python 3.14+, nothing else can help".to_owned())
        } else if cap_sys_ptrace {
            Ok(())
        } else if yama == Some(YamaScope::AdminOnly) {
            Err("kernel.yama.ptrace_scope is 2: only processes with CAP_SYS_PTRACE may trace; run as root (sudo), or in a container add --cap-add=SYS_PTRACE".to_owned())
        } else if !same_user {
            Err(format!(
                "process {target_pid} belongs to uid {} and we run as uid {caller_uid}; run as that user or as root (sudo)",
                target.euid()
            ))
        } else if yama == Some(YamaScope::Restricted) {
            Err("kernel.yama.ptrace_scope is 1: only parents may trace their children; run as root (sudo), grant CAP_SYS_PTRACE, or set it to 0 with `sysctl kernel.yama.ptrace_scope=0`".to_owned())
        } else {
            Ok(())
        };
        Self {
            caller_uid,
            target_uids,
            cap_sys_ptrace,
            yama,
            traced_by,
            verdict,
        }
    }

    /// Whether access is expected.
    pub fn allowed(&self) -> bool {
        self.verdict.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_uid_is_accessible_unless_traced() {
        let me = ProcStatus::read(std::process::id()).unwrap();
        let access = PtraceAccess::check(&me, std::process::id());
        assert_eq!(access.caller_uid, me.euid());
        // Yama restricts even the same uid at scope >= 1 without the capability.
        if access.traced_by.is_none() && (access.cap_sys_ptrace || access.yama.is_none_or(|y| y == YamaScope::Classic)) {
            assert!(access.allowed(), "{:?}", access.verdict);
        }
    }

    #[test]
    fn other_uid_without_capability_names_the_fix() {
        let mut target = ProcStatus::read(std::process::id()).unwrap();
        target.uid = [4_000_000; 4];
        let access = PtraceAccess::check(&target, 1);
        if !access.cap_sys_ptrace {
            let why = access.verdict.unwrap_err();
            assert!(why.contains("sudo"), "{why}");
        }
    }
}
