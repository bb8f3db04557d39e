//! The ptrace method against every provisioned interpreter (3.8-3.15, host
//! and chroot builds) and four target shapes.
#![cfg(target_os = "linux")]
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_alive_and_quiet, assert_running_untraced, keeps_working, pages_mapped_since,
    read_only_anonymous_pages, spawn_target, step_names, wait_until_main_blocks_in, PreparedTarget,
};
use peeka_attach::ptrace::PtraceInjector;
use peeka_attach::{AttachError, Injector};
use peeka_testkit::{Interpreter, Manifest};

/// Attaches to `script` run by `python` and checks everything the contract
/// promises. Returns how long the bootstrap took to be claimed.
fn attach_once(python: &Interpreter, script: &str) -> Duration {
    let what = format!("{} {script}", python.id);
    let process = spawn_target(python, script);
    let pid = process.pid();
    let pages_before = read_only_anonymous_pages(pid);
    let mut prepared = PreparedTarget::stage_saving_code(process, what.clone());
    let (timeline, injected) =
        prepared.attach_claimed(&PtraceInjector::new(), Duration::from_secs(10));
    // Leave time for a second run, if something were left to fire.
    prepared.assert_loaded_exactly_once(Duration::from_secs(10), Duration::from_millis(300));
    assert_running_untraced(&mut prepared.process, &what);
    assert!(
        keeps_working(pid),
        "{what}: the target stopped making progress"
    );
    prepared.assert_code_restored();
    let steps = step_names(&timeline);
    if steps.iter().any(|s| s.starts_with("leave the runner page")) {
        eprintln!("{what}: runner page left (disabled): {steps:?}");
    } else {
        let new_pages = pages_mapped_since(pid, &pages_before);
        assert!(
            new_pages.is_empty(),
            "{what}: a read-only page was left mapped: {new_pages:x?} ({steps:?})"
        );
    }
    prepared.assert_quiet();
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

/// A main thread parked in `signal.pause()` and no other thread: no thread
/// runs Python, so only the GIL-released route reaches it (the parked
/// thread runs the bootstrap itself, then goes back to `pause()`).
#[test]
fn attaches_to_a_process_where_no_thread_runs_python() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let mut results = Vec::new();
    manifest.for_each_interpreter(|python| {
        let what = format!("{} pauser.py", python.id);
        let mut prepared =
            PreparedTarget::parked_saving_code(python, "pauser.py", PAUSE_SYSCALL, what.clone());
        let pid = prepared.pid();
        let pages_before = read_only_anonymous_pages(pid);
        let (timeline, injected) =
            prepared.attach_claimed(&PtraceInjector::new(), Duration::from_secs(10));
        prepared.assert_loaded_exactly_once(Duration::from_secs(10), Duration::from_millis(300));
        assert_running_untraced(&mut prepared.process, &what);
        prepared.assert_code_restored();
        // Back in pause(), restarted: no EINTR reached the loop (it would
        // have run once more and printed nothing, so look at the state).
        wait_until_main_blocks_in(pid, PAUSE_SYSCALL);
        let steps = step_names(&timeline);
        assert!(
            steps.iter().any(|s| s.contains("with the GIL released")),
            "{what}: {steps:?}"
        );
        let new_pages = pages_mapped_since(pid, &pages_before);
        assert!(
            new_pages.is_empty() || steps.iter().any(|s| s.starts_with("leave the runner page")),
            "{what}: pages were left mapped: {new_pages:x?} ({steps:?})"
        );
        send_signal(pid, libc::SIGUSR1);
        std::thread::sleep(Duration::from_millis(100));
        assert_alive_and_quiet(&mut prepared.process, &what);
        results.push(format!("{}={injected:.1?}", python.id));
    });
    eprintln!("ptrace pauser.py: {}", results.join(", "));
}

/// The system call `signal.pause()` parks in.
#[cfg(target_arch = "x86_64")]
const PAUSE_SYSCALL: u32 = libc::SYS_pause as u32;
#[cfg(not(target_arch = "x86_64"))]
const PAUSE_SYSCALL: u32 = libc::SYS_ppoll as u32;

/// A main thread parked in `pause()` while holding the GIL, and no other
/// thread: nothing can run Python, so the attach times out. Whatever was
/// queued must then be inert: when the main thread is woken up later,
/// nothing loads.
#[test]
fn times_out_cleanly_and_leaves_nothing_that_fires_later() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let what = format!("{} gil_holding_pauser.py", python.id);
        // Wait until it is parked for good, past the code after `ready`.
        let mut prepared = PreparedTarget::parked_saving_code(
            python,
            "gil_holding_pauser.py",
            PAUSE_SYSCALL,
            what.clone(),
        );
        let pid = prepared.pid();
        let err = PtraceInjector::new()
            .inject(&prepared.request(Instant::now() + Duration::from_millis(800)))
            .unwrap_err();
        assert!(matches!(err, AttachError::Timeout { .. }), "{what}: {err}");
        assert!(err.to_string().contains("longer timeout"), "{what}: {err}");
        assert!(err.to_string().contains("holds the GIL"), "{what}: {err}");
        prepared.assert_detached_and_restored();
        // The script is still there: only the disabled runner keeps it from
        // loading the agent when the main thread wakes up.
        for _ in 0..3 {
            send_signal(pid, libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !prepared.staging.claimed(),
            "{what}: the bootstrap ran after the timeout"
        );
        assert_eq!(
            prepared.marker_runs(),
            0,
            "{what}: the agent loaded after the timeout"
        );
        assert_alive_and_quiet(&mut prepared.process, &what);
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
