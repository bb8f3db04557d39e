//! The facts of a healthy target, for the decision's unit tests, and the
//! helpers that spoil them and read the diagnosis.

use super::diagnosis::Diagnosis;
use super::facts::{
    DebuggerCheck, Facts, Inspected, LiveFacts, NamespaceFacts, NsRelation, ProcessFacts,
    StagingFacts,
};
use super::findings::Severity;
use crate::permissions::{AccessContext, PtraceAccess, YamaScope};
use crate::procfs::ProcStatus;
use crate::python::{Layout, PythonVersion, ReleaseLevel};
use crate::target::{Arch, RemoteDebug};

pub(super) const PID: u32 = 4242;
pub(super) const CAP_SYS_PTRACE: u64 = 1 << 19;

pub(super) fn proc_status(uid: u32, cap_eff: u64) -> ProcStatus {
    ProcStatus {
        name: "python3".into(),
        state: 'S',
        ppid: 1,
        uid: [uid; 4],
        gid: [uid; 4],
        ns_pid: vec![PID],
        threads: 1,
        cap_eff,
        ..ProcStatus::default()
    }
}

pub(super) fn version(minor: u8) -> PythonVersion {
    PythonVersion {
        major: 3,
        minor,
        micro: 1,
        level: ReleaseLevel::Final,
        serial: 0,
    }
}

pub(super) fn inspected(minor: u8, remote_debug: RemoteDebug) -> Inspected {
    Inspected {
        exe: format!("/usr/bin/python3.{minor}").into(),
        version: version(minor),
        layout: Layout::Static,
        interpreter_file: format!("/usr/bin/python3.{minor}").into(),
        deleted: false,
        arch: Arch::X86_64,
        remote_debug,
        missing_symbols: Vec::new(),
    }
}

pub(super) fn same_namespaces() -> NamespaceFacts {
    NamespaceFacts {
        ns_pid: vec![PID],
        root: Ok("/".into()),
        pid: NsRelation::Same,
        mount: NsRelation::Same,
        user: NsRelation::Same,
    }
}

/// A healthy target of Python 3.`minor`, diagnosed by root.
pub(super) fn healthy(minor: u8) -> Facts {
    let remote_debug = if minor >= 14 {
        RemoteDebug::Enabled
    } else {
        RemoteDebug::Unsupported
    };
    let caller = proc_status(0, CAP_SYS_PTRACE);
    let target = proc_status(1000, 0);
    let context = AccessContext {
        yama: None,
        target_dumpable: true,
        target_is_descendant: false,
    };
    Facts {
        pid: PID,
        own_pid: 1,
        host_arch: Arch::X86_64,
        on_linux: true,
        debugger: ("gdb", Some("/usr/bin/gdb".into())),
        debugger_check: DebuggerCheck::Works {
            version: Some("15.1".into()),
        },
        process: ProcessFacts::Alive(Box::new(LiveFacts {
            access: PtraceAccess::evaluate(&caller, &target, PID, context),
            status: target,
            caller,
            command_line: format!("/usr/bin/python3.{minor} app.py"),
            stopped_threads: 0,
            tracer_name: None,
            inspected: Ok(inspected(minor, remote_debug)),
            namespaces: same_namespaces(),
            opt_out: None,
            staging: Some(StagingFacts::Fresh {
                target_dir: format!("/tmp/peeka-{PID}").into(),
                host_dir: format!("/proc/{PID}/root/tmp/peeka-{PID}").into(),
            }),
            route: None,
        })),
    }
}

pub(super) fn live(facts: &mut Facts) -> &mut LiveFacts {
    match &mut facts.process {
        ProcessFacts::Alive(live) => live,
        other => panic!("not alive: {other:?}"),
    }
}

/// Re-decides the ptrace access after the caller, target or context changed.
pub(super) fn reevaluate(facts: &mut Facts, context: AccessContext) {
    let live = live(facts);
    live.access = PtraceAccess::evaluate(&live.caller, &live.status, PID, context);
}

pub(super) fn severity(diagnosis: &Diagnosis, id: &str) -> Severity {
    diagnosis
        .finding(id)
        .unwrap_or_else(|| panic!("no {id} finding in\n{diagnosis}"))
        .severity
}

pub(super) fn text(diagnosis: &Diagnosis, id: &str) -> String {
    let finding = diagnosis
        .finding(id)
        .unwrap_or_else(|| panic!("no {id} finding in\n{diagnosis}"));
    format!(
        "{} | fix: {}",
        finding.summary,
        finding.fix.as_deref().unwrap_or("-")
    )
}

pub(super) fn context(yama: Option<YamaScope>, descendant: bool) -> AccessContext {
    AccessContext {
        yama,
        target_dumpable: true,
        target_is_descendant: descendant,
    }
}
