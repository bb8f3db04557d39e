//! Whether this process may ptrace (and so read, write and inject into) a
//! target, and if not, why and what to do.
//!
//! [`PtraceAccess::check`] gathers the facts (our credentials, Yama's
//! setting, the target's status, whether it is dumpable and whether it
//! descends from us); [`PtraceAccess::evaluate`] is the decision itself, a
//! pure function that follows the kernel's rules for a ptrace attach
//! (`__ptrace_may_access`, then Yama's `ptrace_access_check`).

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::procfs::ProcStatus;

/// `CAP_SYS_PTRACE`'s bit in a capability set.
const CAP_SYS_PTRACE: u64 = 1 << 19;

/// How far up the process tree [`PtraceAccess::check`] looks for us.
const MAX_ANCESTRY: usize = 4096;

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
        Some(Self::from_setting(&text))
    }

    /// The scope of a `ptrace_scope` value such as `"1\n"`; anything above 2
    /// (or unreadable) counts as the strictest.
    pub fn from_setting(text: &str) -> Self {
        match text.trim() {
            "0" => Self::Classic,
            "1" => Self::Restricted,
            "2" => Self::AdminOnly,
            _ => Self::NoAttach,
        }
    }

    /// The numeric setting, as `sysctl kernel.yama.ptrace_scope` shows it.
    pub fn value(self) -> u8 {
        match self {
            Self::Classic => 0,
            Self::Restricted => 1,
            Self::AdminOnly => 2,
            Self::NoAttach => 3,
        }
    }
}

/// One reason the kernel will refuse to let us ptrace a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PtraceObstacle {
    /// Another process already traces the target; only one tracer may.
    AlreadyTraced {
        /// The tracer's pid.
        tracer: u32,
    },
    /// Yama's `ptrace_scope` is 3: no tracing at all until reboot.
    YamaNoAttach,
    /// Yama's `ptrace_scope` is 2 and we lack `CAP_SYS_PTRACE`.
    YamaAdminOnly,
    /// The target runs as another user and we lack `CAP_SYS_PTRACE`.
    OtherUser {
        /// The target's uid that differs from ours (effective when it does).
        target_uid: u32,
        /// Our real uid, which the kernel compares.
        caller_uid: u32,
    },
    /// The target runs with another group and we lack `CAP_SYS_PTRACE`.
    OtherGroup {
        /// The target's gid that differs from ours (effective when it does).
        target_gid: u32,
        /// Our real gid, which the kernel compares.
        caller_gid: u32,
    },
    /// The target is not dumpable (it changed credentials, or cleared the
    /// flag with `prctl(PR_SET_DUMPABLE, 0)`) and we lack `CAP_SYS_PTRACE`.
    NotDumpable,
    /// Yama's `ptrace_scope` is 1, the target does not descend from us, and
    /// we lack `CAP_SYS_PTRACE`.
    YamaRestricted,
}

impl PtraceObstacle {
    /// What stands in the way, for process `target_pid`.
    pub fn why(&self, target_pid: u32) -> String {
        match *self {
            Self::AlreadyTraced { tracer } => format!(
                "process {target_pid} is already traced by process {tracer} (a debugger, strace or a profiler)"
            ),
            Self::YamaNoAttach => {
                "kernel.yama.ptrace_scope is 3: no process may be traced until the next reboot".to_owned()
            }
            Self::YamaAdminOnly => {
                "kernel.yama.ptrace_scope is 2: only processes with CAP_SYS_PTRACE may trace".to_owned()
            }
            Self::OtherUser { target_uid, caller_uid } => {
                format!("process {target_pid} belongs to uid {target_uid} and we run as uid {caller_uid}")
            }
            Self::OtherGroup { target_gid, caller_gid } => {
                format!("process {target_pid} runs with gid {target_gid} and we run with gid {caller_gid}")
            }
            Self::NotDumpable => format!(
                "process {target_pid} is not dumpable (it changed its credentials, e.g. a worker that dropped root privileges, or it called prctl(PR_SET_DUMPABLE, 0)), so only CAP_SYS_PTRACE may trace it, even for its own user"
            ),
            Self::YamaRestricted => {
                "kernel.yama.ptrace_scope is 1: a process may only trace its own descendants".to_owned()
            }
        }
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match *self {
            Self::AlreadyTraced { .. } => {
                "detach that tracer first, since only one tracer may attach at a time".to_owned()
            }
            Self::YamaNoAttach => "the setting cannot be lowered without a reboot; start the program under the agent instead (`peeka-cli run`)".to_owned(),
            Self::YamaAdminOnly => {
                "run as root (sudo), or in a container add --cap-add=SYS_PTRACE".to_owned()
            }
            Self::OtherUser { target_uid, .. } => format!(
                "run as that user (sudo -u '#{target_uid}') or as root (sudo; in a container also --cap-add=SYS_PTRACE)"
            ),
            Self::OtherGroup { target_gid, .. } => format!(
                "run with that group (sudo -g '#{target_gid}') or as root (sudo; in a container also --cap-add=SYS_PTRACE)"
            ),
            Self::NotDumpable => {
                "run as root (sudo), or grant CAP_SYS_PTRACE (in a container: --cap-add=SYS_PTRACE)".to_owned()
            }
            Self::YamaRestricted => "run as root (sudo), grant CAP_SYS_PTRACE, or allow tracing with `sysctl kernel.yama.ptrace_scope=0`".to_owned(),
        }
    }

    /// [`why`](Self::why) and [`fix`](Self::fix) in one sentence.
    pub fn message(&self, target_pid: u32) -> String {
        format!("{}; {}", self.why(target_pid), self.fix())
    }

    /// Whether holding `CAP_SYS_PTRACE` would remove this obstacle.
    pub fn lifted_by_capability(&self) -> bool {
        !matches!(self, Self::AlreadyTraced { .. } | Self::YamaNoAttach)
    }

    /// Whether Yama's setting causes it.
    pub fn is_yama(&self) -> bool {
        matches!(
            self,
            Self::YamaNoAttach | Self::YamaAdminOnly | Self::YamaRestricted
        )
    }
}

/// Facts besides the two processes' status files that the kernel's
/// decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessContext {
    /// Yama's setting, if the module is active.
    pub yama: Option<YamaScope>,
    /// Whether the target is dumpable (the normal case).
    pub target_dumpable: bool,
    /// Whether the target descends from us (Yama scope 1 allows that).
    pub target_is_descendant: bool,
}

/// What the kernel will say to a ptrace attach, predicted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtraceAccess {
    /// Our real uid (the one the kernel compares for an attach).
    pub caller_uid: u32,
    /// The target's real, effective and saved uid.
    pub target_uids: [u32; 3],
    /// Whether we hold CAP_SYS_PTRACE.
    pub cap_sys_ptrace: bool,
    /// Yama's setting, if the module is active.
    pub yama: Option<YamaScope>,
    /// Another process already traces the target (a debugger, strace).
    pub traced_by: Option<u32>,
    /// Every reason the attach would be refused, the one to fix first
    /// first; empty when access is expected.
    pub obstacles: Vec<PtraceObstacle>,
    /// `Ok` when access is expected, else why not and the fix (the first
    /// obstacle's [`message`](PtraceObstacle::message)).
    pub verdict: Result<(), String>,
}

impl PtraceAccess {
    /// Predicts our access to a target whose status is `target`.
    pub fn check(target: &ProcStatus, target_pid: u32) -> Self {
        let me = ProcStatus::read(std::process::id()).unwrap_or_default();
        let context = AccessContext {
            yama: YamaScope::read(),
            target_dumpable: is_dumpable(target, target_pid),
            target_is_descendant: descends_from(target, std::process::id()),
        };
        Self::evaluate(&me, target, target_pid, context)
    }

    /// The decision of [`check`](Self::check), from the facts alone: our
    /// status (`caller`), the target's, and the [`AccessContext`].
    pub fn evaluate(
        caller: &ProcStatus,
        target: &ProcStatus,
        target_pid: u32,
        context: AccessContext,
    ) -> Self {
        let caller_uid = caller.uid[0];
        let caller_gid = caller.gid[0];
        let cap_sys_ptrace = caller.cap_eff & CAP_SYS_PTRACE != 0;
        let target_uids = [target.uid[0], target.uid[1], target.uid[2]];
        let traced_by = (target.tracer_pid != 0).then_some(target.tracer_pid);
        // The effective id when it differs, else whichever does.
        let differing =
            |ids: [u32; 3], ours: u32| [ids[1], ids[0], ids[2]].into_iter().find(|&id| id != ours);

        let mut obstacles = Vec::new();
        if let Some(tracer) = traced_by {
            obstacles.push(PtraceObstacle::AlreadyTraced { tracer });
        }
        if context.yama == Some(YamaScope::NoAttach) {
            obstacles.push(PtraceObstacle::YamaNoAttach);
        }
        if !cap_sys_ptrace {
            if context.yama == Some(YamaScope::AdminOnly) {
                obstacles.push(PtraceObstacle::YamaAdminOnly);
            }
            if let Some(target_uid) = differing(target_uids, caller_uid) {
                obstacles.push(PtraceObstacle::OtherUser {
                    target_uid,
                    caller_uid,
                });
            }
            let target_gids = [target.gid[0], target.gid[1], target.gid[2]];
            if let Some(target_gid) = differing(target_gids, caller_gid) {
                obstacles.push(PtraceObstacle::OtherGroup {
                    target_gid,
                    caller_gid,
                });
            }
            if !context.target_dumpable {
                obstacles.push(PtraceObstacle::NotDumpable);
            }
            if context.yama == Some(YamaScope::Restricted) && !context.target_is_descendant {
                obstacles.push(PtraceObstacle::YamaRestricted);
            }
        }
        let verdict = match obstacles.first() {
            Some(first) => Err(first.message(target_pid)),
            None => Ok(()),
        };
        Self {
            caller_uid,
            target_uids,
            cap_sys_ptrace,
            yama: context.yama,
            traced_by,
            obstacles,
            verdict,
        }
    }

    /// Whether access is expected.
    pub fn allowed(&self) -> bool {
        self.verdict.is_ok()
    }
}

/// Whether the kernel considers the target dumpable. procfs gives the files
/// of a non-dumpable process to root, so a `/proc/PID` owned by root while
/// the process runs as another user means "not dumpable". For a process
/// running as root the two cannot be told apart; it counts as dumpable.
fn is_dumpable(target: &ProcStatus, target_pid: u32) -> bool {
    match fs::metadata(format!("/proc/{target_pid}")) {
        Ok(meta) => target.euid() == 0 || meta.uid() != 0,
        Err(_) => true,
    }
}

/// Whether the process of `status` has `ancestor` among its ancestors.
fn descends_from(status: &ProcStatus, ancestor: u32) -> bool {
    let mut parent = status.ppid;
    for _ in 0..MAX_ANCESTRY {
        if parent == ancestor {
            return true;
        }
        if parent <= 1 {
            return false;
        }
        parent = match ProcStatus::read(parent) {
            Ok(status) => status.ppid,
            Err(_) => return false,
        };
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(uid: u32, gid: u32, cap_eff: u64) -> ProcStatus {
        ProcStatus {
            uid: [uid; 4],
            gid: [gid; 4],
            cap_eff,
            state: 'S',
            ..ProcStatus::default()
        }
    }

    fn context(yama: Option<YamaScope>) -> AccessContext {
        AccessContext {
            yama,
            target_dumpable: true,
            target_is_descendant: false,
        }
    }

    #[test]
    fn own_process_uid_is_accessible_unless_traced() {
        let me = ProcStatus::read(std::process::id()).unwrap();
        let access = PtraceAccess::check(&me, std::process::id());
        assert_eq!(access.caller_uid, me.uid[0]);
        // Yama restricts even the same uid at scope >= 1 without the capability.
        if access.traced_by.is_none()
            && (access.cap_sys_ptrace || access.yama.is_none_or(|y| y == YamaScope::Classic))
        {
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

    #[test]
    fn same_user_without_yama_is_allowed() {
        let access = PtraceAccess::evaluate(
            &status(1000, 100, 0),
            &status(1000, 100, 0),
            7,
            context(None),
        );
        assert!(access.allowed(), "{:?}", access.verdict);
        let access = PtraceAccess::evaluate(
            &status(1000, 100, 0),
            &status(1000, 100, 0),
            7,
            context(Some(YamaScope::Classic)),
        );
        assert!(access.allowed());
    }

    #[test]
    fn other_user_needs_the_capability() {
        let access =
            PtraceAccess::evaluate(&status(1000, 100, 0), &status(0, 0, 0), 7, context(None));
        assert_eq!(
            access.obstacles,
            [
                PtraceObstacle::OtherUser {
                    target_uid: 0,
                    caller_uid: 1000
                },
                PtraceObstacle::OtherGroup {
                    target_gid: 0,
                    caller_gid: 100
                },
            ]
        );
        let why = access.verdict.unwrap_err();
        assert!(
            why.contains("belongs to uid 0 and we run as uid 1000"),
            "{why}"
        );
        assert!(
            why.contains("run as that user") && why.contains("as root (sudo"),
            "{why}"
        );
        let root = PtraceAccess::evaluate(
            &status(0, 0, CAP_SYS_PTRACE),
            &status(1000, 100, 0),
            7,
            context(None),
        );
        assert!(root.allowed());
    }

    #[test]
    fn a_differing_saved_uid_counts() {
        let mut target = status(1000, 100, 0);
        target.uid[2] = 0;
        let access = PtraceAccess::evaluate(&status(1000, 100, 0), &target, 7, context(None));
        assert_eq!(
            access.obstacles,
            [PtraceObstacle::OtherUser {
                target_uid: 0,
                caller_uid: 1000
            }]
        );
    }

    #[test]
    fn yama_scopes_follow_the_kernel() {
        let user = status(1000, 100, 0);
        let admin = status(0, 0, CAP_SYS_PTRACE);
        let decide = |caller: &ProcStatus, scope, descendant| {
            let context = AccessContext {
                yama: Some(scope),
                target_dumpable: true,
                target_is_descendant: descendant,
            };
            PtraceAccess::evaluate(caller, &user, 7, context).obstacles
        };
        // 1: descendants of the same user, or the capability.
        assert_eq!(
            decide(&user, YamaScope::Restricted, false),
            [PtraceObstacle::YamaRestricted]
        );
        assert!(decide(&user, YamaScope::Restricted, true).is_empty());
        assert!(decide(&admin, YamaScope::Restricted, false).is_empty());
        // 2: the capability only.
        assert_eq!(
            decide(&user, YamaScope::AdminOnly, true),
            [PtraceObstacle::YamaAdminOnly]
        );
        assert!(decide(&admin, YamaScope::AdminOnly, false).is_empty());
        // 3: nobody.
        assert_eq!(
            decide(&admin, YamaScope::NoAttach, true),
            [PtraceObstacle::YamaNoAttach]
        );
        assert_eq!(
            decide(&user, YamaScope::NoAttach, false),
            [PtraceObstacle::YamaNoAttach]
        );
    }

    #[test]
    fn yama_settings_parse() {
        assert_eq!(YamaScope::from_setting("0\n"), YamaScope::Classic);
        assert_eq!(YamaScope::from_setting("1"), YamaScope::Restricted);
        assert_eq!(YamaScope::from_setting("2\n"), YamaScope::AdminOnly);
        assert_eq!(YamaScope::from_setting("3\n"), YamaScope::NoAttach);
        assert_eq!(YamaScope::from_setting("garbage"), YamaScope::NoAttach);
        assert_eq!(YamaScope::from_setting("2").value(), 2);
    }

    #[test]
    fn tracer_and_dumpable_flag_are_obstacles() {
        let mut target = status(1000, 100, 0);
        target.tracer_pid = 99;
        let mut undumpable = context(None);
        undumpable.target_dumpable = false;
        let access = PtraceAccess::evaluate(&status(1000, 100, 0), &target, 7, undumpable);
        assert_eq!(
            access.obstacles,
            [
                PtraceObstacle::AlreadyTraced { tracer: 99 },
                PtraceObstacle::NotDumpable
            ]
        );
        assert!(access
            .verdict
            .unwrap_err()
            .contains("already traced by process 99"));
        // The capability overrides the dumpable flag, never a tracer.
        let access = PtraceAccess::evaluate(&status(0, 0, CAP_SYS_PTRACE), &target, 7, undumpable);
        assert_eq!(
            access.obstacles,
            [PtraceObstacle::AlreadyTraced { tracer: 99 }]
        );
    }

    #[test]
    fn own_parent_chain_contains_our_parent() {
        let me = ProcStatus::read(std::process::id()).unwrap();
        assert!(descends_from(&me, me.ppid));
        assert!(!descends_from(&me, std::process::id()));
    }
}
