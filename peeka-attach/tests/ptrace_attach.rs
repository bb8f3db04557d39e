//! The ptrace method against every provisioned interpreter (3.8-3.15, host
//! and chroot builds) and four target shapes.
#![cfg(target_os = "linux")]
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_alive_and_quiet, assert_code_restored, assert_loaded_exactly_once,
    assert_running_untraced, keeps_working, marker_runs, patchable_code, read_only_anonymous_pages,
    spawn_target, tracer_of, wait_until_main_blocks_in, StagingDir,
};
use peeka_attach::ptrace::PtraceInjector;
use peeka_attach::{AttachError, InjectRequest, Injector, Target};
use peeka_testkit::{Interpreter, Manifest};

/// Attaches to `script` run by `python` and checks everything the contract
/// promises. Returns how long the bootstrap took to be claimed.
fn attach_once(python: &Interpreter, script: &str) -> Duration {
    let what = format!("{} {script}", python.id);
    let mut process = spawn_target(python, script);
    let pid = process.pid();
    let target = Target::inspect(pid).unwrap_or_else(|e| panic!("{what}: {e}"));
    let code_before = patchable_code(&target);
    let pages_before = read_only_anonymous_pages(pid);
    let staging = StagingDir::marker(&target);
    let started = Instant::now();
    let request = InjectRequest {
        target: &target,
        staging: &staging,
        deadline: started + Duration::from_secs(10),
    };
    let timeline = PtraceInjector::new()
        .inject(&request)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let injected = started.elapsed();
    assert!(
        staging.claimed(),
        "{what}: inject returned before the claim"
    );
    // Leave time for a second run, if something were left to fire.
    assert_loaded_exactly_once(
        &staging,
        Duration::from_secs(10),
        Duration::from_millis(300),
        &what,
    );
    assert_running_untraced(&mut process, &what);
    assert!(
        keeps_working(pid),
        "{what}: the target stopped making progress"
    );
    assert_code_restored(&target, &code_before, &what);
    let steps: Vec<&str> = timeline.steps.iter().map(|s| s.name.as_str()).collect();
    if steps.iter().any(|s| s.starts_with("leave the runner page")) {
        eprintln!("{what}: runner page left (disabled): {steps:?}");
    } else {
        let new_pages: Vec<_> = read_only_anonymous_pages(pid)
            .into_iter()
            .filter(|p| !pages_before.contains(p))
            .collect();
        assert!(
            new_pages.is_empty(),
            "{what}: a read-only page was left mapped: {new_pages:x?} ({steps:?})"
        );
    }
    assert_eq!(process.stderr(), "", "{what}: the target printed errors");
    eprintln!("ptrace {what}: inject returned after {injected:?}; steps {steps:?}");
    injected
}

fn every_interpreter(script: &str) {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let mut results = Vec::new();
    manifest.for_each_interpreter(|python| {
        let elapsed = attach_once(python, script);
        results.push(format!("{}={elapsed:.1?}", python.id));
    });
    eprintln!("ptrace {script}: {}", results.join(", "));
}

#[test]
fn attaches_to_a_busy_main_thread() {
    every_interpreter("busy.py");
}

#[test]
fn attaches_to_a_sleeping_main_thread() {
    every_interpreter("sleeper.py");
}

#[test]
fn attaches_when_the_main_thread_is_blocked_and_a_worker_runs_python() {
    every_interpreter("blocked_main.py");
}

#[test]
fn attaches_to_a_process_with_20_threads() {
    every_interpreter("threads20.py");
}

/// The system call `signal.pause()` parks in.
#[cfg(target_arch = "x86_64")]
const PAUSE_SYSCALL: u32 = libc::SYS_pause as u32;
#[cfg(not(target_arch = "x86_64"))]
const PAUSE_SYSCALL: u32 = libc::SYS_ppoll as u32;

/// A main thread parked in `signal.pause()` with no other thread: nothing
/// runs Python, so the attach times out. Whatever was queued must then be
/// inert: when the main thread is woken up later, nothing loads.
#[test]
fn times_out_cleanly_and_leaves_nothing_that_fires_later() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let what = format!("{} pauser.py", python.id);
        let mut process = spawn_target(python, "pauser.py");
        let pid = process.pid();
        // Wait until it is parked for good, past the code after `ready`.
        wait_until_main_blocks_in(pid, PAUSE_SYSCALL);
        let target = Target::inspect(pid).unwrap();
        let code_before = patchable_code(&target);
        let staging = StagingDir::marker(&target);
        let request = InjectRequest {
            target: &target,
            staging: &staging,
            deadline: Instant::now() + Duration::from_millis(800),
        };
        let err = PtraceInjector::new().inject(&request).unwrap_err();
        assert!(matches!(err, AttachError::Timeout { .. }), "{what}: {err}");
        assert!(err.to_string().contains("--timeout"), "{what}: {err}");
        assert_eq!(tracer_of(pid), 0, "{what}: still traced");
        assert_code_restored(&target, &code_before, &what);
        // The script is still there: only the disabled runner keeps it from
        // loading the agent when the main thread wakes up.
        for _ in 0..3 {
            send_signal(pid, libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !staging.claimed(),
            "{what}: the bootstrap ran after the timeout"
        );
        assert_eq!(
            marker_runs(&staging),
            0,
            "{what}: the agent loaded after the timeout"
        );
        assert_alive_and_quiet(&mut process, &what);
        eprintln!("ptrace {what}: {err}");
    });
}

fn send_signal(pid: u32, signal: i32) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
