//! The gdb method against real CPython targets (host and chroot builds).
#![cfg(target_os = "linux")]
// Helpers shared by the tests report measurements and fail loudly, as the
// tests themselves may.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{marker_agent, marker_runs, target_script};
use peeka_attach::gdb::GdbInjector;
use peeka_attach::{AttachError, BootstrapStatus, InjectRequest, Injector, Staging, Target};
use peeka_testkit::{require_all, Interpreter, Manifest, TargetProcess};

/// The shapes the gdb method must handle: its pending call is run by the
/// main thread, so the main thread must run Python now and then.
const SHAPES: [&str; 3] = ["busy.py", "sleeper.py", "threads20.py"];

/// Whether gdb is installed; prints a banner (or fails under CI) if not.
fn gdb_available() -> bool {
    let found = Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !require_all(),
            "gdb is not installed, and every test must run"
        );
        eprintln!("*** SKIPPED: gdb is not installed (apt-get install gdb)");
    }
    found
}

/// The pids of gdb processes started for `pid` (our command line names
/// `/proc/<pid>/exe`).
fn gdb_processes_for(pid: u32) -> Vec<u32> {
    let needle = format!("/proc/{pid}/exe");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let cmdline = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            comm.trim() == "gdb" && String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

fn tracer_of(pid: u32) -> u32 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Everything that must hold after any gdb attach, successful or not.
fn assert_left_clean(process: &mut TargetProcess, what: &str) {
    let pid = process.pid();
    assert!(process.is_alive(), "{what}: the target died");
    assert_eq!(
        gdb_processes_for(pid),
        Vec::<u32>::new(),
        "{what}: a gdb process remains"
    );
    assert_eq!(tracer_of(pid), 0, "{what}: the target is still traced");
    // Give a stop that would be left behind a moment to show.
    std::thread::sleep(Duration::from_millis(50));
    assert_ne!(
        process.state(),
        Some('T'),
        "{what}: the target was left stopped"
    );
    assert_ne!(
        process.state(),
        Some('t'),
        "{what}: the target was left in a tracing stop"
    );
}

/// Attaches once with gdb to a fresh target; returns inject()'s duration,
/// which ends when the bootstrap claimed the attach.
fn attach_once(python: &Interpreter, script: &str) -> Duration {
    let what = format!("{} {script}", python.id);
    let mut process = TargetProcess::spawn(python, &target_script(script), &[], &[])
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let target = Target::inspect(process.pid()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let staging = Staging::prepare(&target, &marker_agent()).unwrap();
    let started = Instant::now();
    let request = InjectRequest {
        target: &target,
        staging: &staging,
        deadline: started + Duration::from_secs(15),
    };
    let timeline = GdbInjector::default()
        .inject(&request)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let latency = started.elapsed();
    assert!(
        staging.claimed(),
        "{what}: inject returned before the bootstrap claimed the attach"
    );
    let status = staging.wait_status(Instant::now() + Duration::from_secs(10));
    assert!(
        matches!(status, Some(BootstrapStatus::Loaded(_))),
        "{what}: {status:?}"
    );
    // Let a duplicate run show up if there were one.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        marker_runs(&staging),
        1,
        "{what}: the agent must load exactly once"
    );
    assert_left_clean(&mut process, &what);
    // The target keeps running Python: its main thread still answers.
    assert_eq!(process.stderr(), "", "{what}: the target printed errors");
    let steps: Vec<String> = timeline
        .steps
        .iter()
        .map(|s| format!("{} {:.1?}", s.name, s.elapsed))
        .collect();
    eprintln!(
        "gdb {what}: claimed after {latency:.1?} ({})",
        steps.join(", ")
    );
    staging.remove_all();
    latency
}

#[test]
fn attaches_to_every_interpreter_busy_sleeping_and_threaded() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    if !gdb_available() {
        return;
    }
    for required in ["3.8", "3.13"] {
        let _ = manifest.require(required);
    }
    manifest.for_each_interpreter(|python| {
        for script in SHAPES {
            attach_once(python, script);
        }
    });
}

#[test]
fn latency_on_3_11() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    if !gdb_available() {
        return;
    }
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    for script in ["busy.py", "sleeper.py"] {
        let mut samples: Vec<Duration> = (0..5).map(|_| attach_once(python, script)).collect();
        samples.sort();
        eprintln!(
            "gdb latency 3.11 {script}: min {:.0?} median {:.0?} max {:.0?} (inject() until claimed, 5 runs)",
            samples[0], samples[2], samples[4]
        );
    }
}

#[test]
fn a_missing_gdb_is_reported_and_the_target_untouched() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let mut process = TargetProcess::spawn(python, &target_script("sleeper.py"), &[], &[]).unwrap();
    let target = Target::inspect(process.pid()).unwrap();
    let staging = Staging::prepare(&target, &marker_agent()).unwrap();
    let request = InjectRequest {
        target: &target,
        staging: &staging,
        deadline: Instant::now() + Duration::from_secs(5),
    };
    let err = GdbInjector::with_program("/nonexistent/peeka-test/gdb")
        .inject(&request)
        .unwrap_err();
    assert!(
        matches!(err, AttachError::DebuggerMissing { program: "gdb", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("apt-get install gdb"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(marker_runs(&staging), 0);
    assert!(!staging.claimed());
    assert_left_clean(&mut process, "missing gdb");
    assert_eq!(process.stderr(), "");
    staging.remove_all();
}

#[test]
fn a_target_traced_by_someone_else_is_permission_denied() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    if !gdb_available() {
        return;
    }
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let mut process = TargetProcess::spawn(python, &target_script("sleeper.py"), &[], &[]).unwrap();
    let pid = process.pid();
    // Another tracer: a thread of ours seizes the target (without stopping
    // it) and holds it until told to let go; its exit detaches it.
    let (seized_tx, seized_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let tracer = std::thread::spawn(move || {
        // SAFETY: PTRACE_SEIZE takes no pointers; addr and data are unused.
        let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid as libc::pid_t, 0usize, 0usize) };
        seized_tx.send(rc).unwrap();
        let _ = release_rx.recv();
    });
    assert_eq!(seized_rx.recv().unwrap(), 0, "PTRACE_SEIZE failed");

    let target = Target::inspect(pid).unwrap();
    let staging = Staging::prepare(&target, &marker_agent()).unwrap();
    let request = InjectRequest {
        target: &target,
        staging: &staging,
        deadline: Instant::now() + Duration::from_secs(10),
    };
    let err = GdbInjector::default().inject(&request).unwrap_err();
    assert!(matches!(err, AttachError::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("already traced"), "{err}");
    assert!(gdb_processes_for(pid).is_empty(), "a gdb process remains");
    release_tx.send(()).unwrap();
    tracer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tracer_of(pid) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(marker_runs(&staging), 0);
    assert_left_clean(&mut process, "traced by another process");
    assert_eq!(process.stderr(), "");
    staging.remove_all();
}

#[test]
fn a_blocked_main_thread_times_out_cleanly() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    if !gdb_available() {
        return;
    }
    for minor in ["3.8", "3.13"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let mut process =
            TargetProcess::spawn(python, &target_script("blocked_main.py"), &[], &[]).unwrap();
        let target = Target::inspect(process.pid()).unwrap();
        let staging = Staging::prepare(&target, &marker_agent()).unwrap();
        let started = Instant::now();
        let request = InjectRequest {
            target: &target,
            staging: &staging,
            deadline: started + Duration::from_secs(3),
        };
        let err = GdbInjector::default().inject(&request).unwrap_err();
        assert!(matches!(err, AttachError::Timeout { .. }), "{minor}: {err}");
        assert!(err.to_string().contains("main thread"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{minor}: the deadline was not kept"
        );
        assert!(
            !staging.script.exists()
                && !staging
                    .host_dir
                    .join(staging.script.file_name().unwrap())
                    .exists()
        );
        assert_eq!(marker_runs(&staging), 0);
        assert_left_clean(&mut process, &format!("{minor} blocked_main.py"));
        assert_eq!(process.stderr(), "", "{minor}: the target printed errors");
        staging.remove_all();
    }
}

/// After a timeout the queued call is disarmed: even with the bootstrap
/// script put back, the call does nothing when the main thread finally runs.
#[test]
fn a_late_pending_call_is_disarmed() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    if !gdb_available() {
        return;
    }
    for minor in ["3.8", "3.11", "3.13"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let mut process =
            TargetProcess::spawn(python, &target_script("pauser.py"), &[], &[]).unwrap();
        let pid = process.pid();
        let target = Target::inspect(pid).unwrap();
        let staging = Staging::prepare(&target, &marker_agent()).unwrap();
        let script_on_host = staging.host_dir.join(staging.script.file_name().unwrap());
        let script = fs::read(&script_on_host).unwrap();
        let request = InjectRequest {
            target: &target,
            staging: &staging,
            deadline: Instant::now() + Duration::from_secs(2),
        };
        let err = GdbInjector::default().inject(&request).unwrap_err();
        assert!(matches!(err, AttachError::Timeout { .. }), "{minor}: {err}");
        assert!(err.to_string().contains("disarmed"), "{minor}: {err}");

        // Put the script back, then wake the main thread: an armed call
        // would now load the agent.
        fs::write(&script_on_host, script).unwrap();
        // SAFETY: kill takes no pointers.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) }, 0);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !staging.claimed(),
            "{minor}: the disarmed call ran the bootstrap"
        );
        assert_eq!(marker_runs(&staging), 0, "{minor}");
        assert_left_clean(&mut process, &format!("{minor} pauser.py"));
        assert_eq!(process.stderr(), "", "{minor}: the target printed errors");

        // The same target accepts a new attach once its main thread runs:
        // keep waking it while gdb queues the call.
        let staging = Staging::prepare(&target, &marker_agent()).unwrap();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let waker = std::thread::spawn(move || {
            while stop_rx.recv_timeout(Duration::from_millis(20)).is_err() {
                // SAFETY: kill takes no pointers.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
            }
        });
        let request = InjectRequest {
            target: &target,
            staging: &staging,
            deadline: Instant::now() + Duration::from_secs(10),
        };
        let result = GdbInjector::default().inject(&request);
        stop_tx.send(()).unwrap();
        waker.join().unwrap();
        result.unwrap_or_else(|e| panic!("{minor}: second attach: {e}"));
        assert!(matches!(
            staging.wait_status(Instant::now() + Duration::from_secs(5)),
            Some(BootstrapStatus::Loaded(_))
        ));
        assert_eq!(marker_runs(&staging), 1, "{minor}");
        assert_left_clean(&mut process, &format!("{minor} pauser.py, second attach"));
        staging.remove_all();
    }
}
