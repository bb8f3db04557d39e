//! The ptrace method under conditions that stress its bookkeeping: signals
//! arriving during the attach, children forked while a breakpoint is armed.
#![cfg(target_os = "linux")]
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{
    assert_alive_and_quiet, assert_forked_children_survived, assert_running_untraced,
    keeps_working, signal_main_thread, spawn_parked_target, spawn_target_with, tracer_of,
    wait_for_report, PreparedTarget,
};
use peeka_attach::ptrace::PtraceInjector;
use peeka_attach::{AttachError, Injector};
use peeka_testkit::Manifest;

/// Sends `signal` to the main thread of `pid` (see [`signal_main_thread`]).
fn send(pid: u32, signal: i32) {
    assert!(
        signal_main_thread(pid, signal),
        "tgkill({pid}, {pid}, {signal})"
    );
}

/// Signals sent while the attach runs (threads stopped, traced, running our
/// calls) all reach the target's handler, once each. A real-time signal is
/// used: the kernel queues every sending, so any loss or duplicate is ours.
#[test]
fn signals_sent_during_the_attach_are_delivered_once_each() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    const SIGNALS: u32 = 20;
    let signal = libc::SIGRTMIN() + 2;
    manifest.for_each_interpreter(|python| {
        let what = format!("{} ptrace_signal_counter.py", python.id);
        let number = signal.to_string();
        let process = spawn_target_with(python, "ptrace_signal_counter.py", &[&number], &[]);
        let mut prepared = PreparedTarget::stage(process, what.clone());
        let pid = prepared.pid();
        let request = prepared.request(Instant::now() + Duration::from_secs(10));
        let result = std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..SIGNALS {
                    send(pid, signal);
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            PtraceInjector::new().inject(&request)
        });
        let timeline = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        eprintln!("ptrace {what}: {:?}", timeline.steps);
        let counter = prepared.process.host_dir().join("signals.bin");
        let delivered = || fs::metadata(&counter).map(|m| m.len()).unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while delivered() < u64::from(SIGNALS) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            delivered(),
            u64::from(SIGNALS),
            "{what}: every signal must be delivered exactly once"
        );
        assert!(
            prepared
                .staging
                .wait_status(Instant::now() + Duration::from_secs(5))
                .is_some(),
            "{what}"
        );
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(prepared.marker_runs(), 1, "{what}");
        assert_eq!(tracer_of(pid), 0, "{what}");
        assert_alive_and_quiet(&mut prepared.process, &what);
    });
}

/// 3.8-3.11: the main thread is blocked and the only other thread runs
/// pure Python and forks children all the time, during the attach and
/// while the ptrace method's trampolines are in place. Every child must
/// exit normally, and the attach must succeed (the blocked main thread
/// runs the bootstrap once the worker lets go of the GIL).
#[test]
fn children_forked_during_the_attach_survive() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.8", "3.9", "3.10", "3.11"] {
        for python in manifest.of_minor(minor) {
            let what = format!("{} ptrace_forker.py", python.id);
            // Past `ready`, the main thread still runs Python on its way
            // into Event.wait(): wait for it to park in futex().
            let mut prepared = PreparedTarget::parked_saving_code(
                python,
                "ptrace_forker.py",
                libc::SYS_futex as u32,
                what.clone(),
            );
            let pid = prepared.pid();
            let result = PtraceInjector::new()
                .inject(&prepared.request(Instant::now() + Duration::from_secs(10)));
            assert!(result.is_ok(), "{what}: {result:?}");
            prepared
                .assert_loaded_exactly_once(Duration::from_secs(10), Duration::from_millis(300));
            prepared.assert_detached_and_restored();
            // More attaches to the same process, each with its own staging
            // (the marker agent runs once per attach).
            for round in 1..fork_attaches() {
                let what = format!("{what}, attach {round}");
                let staging = common::StagingDir::marker(&prepared.target);
                let request = peeka_attach::InjectRequest {
                    target: &prepared.target,
                    staging: &staging,
                    deadline: Instant::now() + Duration::from_secs(10),
                };
                // The private directory (and the marker's count) is shared
                // with the earlier attaches.
                let runs_before = common::marker_runs(&staging);
                PtraceInjector::new()
                    .inject(&request)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let status = staging.wait_status(Instant::now() + Duration::from_secs(10));
                assert!(status.is_some(), "{what}: the agent never reported");
                std::thread::sleep(Duration::from_millis(50));
                assert_eq!(
                    common::marker_runs(&staging),
                    runs_before + 1,
                    "{what}: the agent must load exactly once"
                );
            }
            let report = prepared.process.host_dir().join("children.txt");
            send(pid, libc::SIGUSR1);
            let counts = wait_for_report(&report, Duration::from_secs(5)).unwrap_or_else(|| {
                let tasks: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
                    .unwrap()
                    .flatten()
                    .map(|t| {
                        let syscall =
                            fs::read_to_string(t.path().join("syscall")).unwrap_or_default();
                        let status =
                            fs::read_to_string(t.path().join("status")).unwrap_or_default();
                        let state = status
                            .lines()
                            .find(|l| l.starts_with("State"))
                            .unwrap_or("")
                            .to_owned();
                        format!("{:?}: {state} {}", t.file_name(), syscall.trim())
                    })
                    .collect();
                panic!(
                    "{what}: no report; threads: {tasks:#?}; stderr: {}",
                    prepared.process.stderr()
                )
            });
            let ok = assert_forked_children_survived(&counts, &prepared.process, &what);
            assert_alive_and_quiet(&mut prepared.process, &what);
            eprintln!("ptrace {what}: {ok} children forked while attached, all exited normally");
        }
    }
}

/// How many attaches the fork test makes per interpreter
/// (`PEEKA_FORK_ATTACHES`, default 3).
fn fork_attaches() -> u32 {
    std::env::var("PEEKA_FORK_ATTACHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
}

/// 3.8-3.11: the process runs `execve` while the attach waits for a thread
/// to run the bootstrap. The attach reports the target gone, and the new
/// program runs untraced and untouched.
#[test]
fn a_program_replaced_during_the_attach_starts_clean() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.8", "3.9", "3.10", "3.11"] {
        for python in manifest.of_minor(minor) {
            let what = format!("{} ptrace_execer.py", python.id);
            let process = spawn_parked_target(python, "ptrace_execer.py", libc::SYS_futex as u32);
            let mut prepared = PreparedTarget::stage(process, what.clone());
            let pid = prepared.pid();
            // Parked for good on its own mutex (a plain FUTEX_WAIT), not
            // in one of the waits of its start-up.
            let parked_on_mutex = || {
                fs::read_to_string(format!("/proc/{pid}/syscall"))
                    .is_ok_and(|s| s.split_whitespace().nth(2) == Some("0x80"))
            };
            let started = Instant::now();
            while !parked_on_mutex() {
                assert!(
                    started.elapsed() < Duration::from_secs(5),
                    "{what}: never parked on its mutex"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            let result = PtraceInjector::new()
                .inject(&prepared.request(Instant::now() + Duration::from_secs(6)));
            assert!(
                matches!(result, Err(AttachError::TargetExited { .. })),
                "{what}: {result:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            assert!(
                String::from_utf8_lossy(&cmdline).contains("time.sleep(60)"),
                "{what}: the new program is not running"
            );
            // The new program runs on its own.
            assert_running_untraced(&mut prepared.process, &what);
            assert_eq!(prepared.process.stderr(), "", "{what}: errors were printed");
            assert_eq!(prepared.marker_runs(), 0, "{what}");
        }
    }
}

/// A seccomp filter that refuses the backend's `mmap`, by failing it
/// (`SECCOMP_RET_ERRNO`) or by raising `SIGSYS` (`SECCOMP_RET_TRAP`): the
/// attach fails with [`AttachError::Seccomp`] and the target carries on,
/// untouched.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_seccomp_filter_refusing_mmap_is_reported() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.8", "3.11", "3.13", "3.14"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        for mode in ["errno", "trap"] {
            let what = format!("{} ptrace_seccomp.py {mode}", python.id);
            let process = spawn_target_with(python, "ptrace_seccomp.py", &[mode], &[]);
            let mut prepared = PreparedTarget::stage_saving_code(process, what.clone());
            let pid = prepared.pid();
            let err = PtraceInjector::new()
                .inject(&prepared.request(Instant::now() + Duration::from_secs(5)))
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    AttachError::Seccomp {
                        syscall: "mmap",
                        ..
                    }
                ),
                "{what}: {err}"
            );
            assert!(err.to_string().contains("seccomp"), "{what}: {err}");
            prepared.assert_detached_and_restored();
            std::thread::sleep(Duration::from_millis(200));
            assert!(prepared.process.is_alive(), "{what}: the target died");
            assert!(keeps_working(pid), "{what}: the target stalled");
            prepared.assert_quiet();
            assert_eq!(prepared.marker_runs(), 0, "{what}");
        }
    }
}

/// A target whose main thread creates and joins threads in a loop survives
/// repeated attaches, each loading the agent exactly once. (A thread
/// stopped inside `clone()` and then hijacked made `pthread_create` fail
/// in a parent whose child was already running on the stack it freed:
/// the target crashed about once in several hundred attaches.)
/// `PEEKA_STRESS_ATTACHES` raises the count per interpreter (default 15).
#[test]
fn a_thread_churning_target_survives_repeated_attaches() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let attaches: u32 = std::env::var("PEEKA_STRESS_ATTACHES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(15);
    // `require` is loud about a missing minor (and fails under CI).
    let minors: Vec<&str> = ["3.8", "3.11", "3.12", "3.13"]
        .into_iter()
        .filter(|minor| manifest.require(minor).is_some())
        .collect();
    for python in minors.iter().flat_map(|minor| manifest.of_minor(minor)) {
        let mut process = common::spawn_target(python, "thread_churn.py");
        let pid = process.pid();
        let mut took = Vec::new();
        for round in 0..attaches {
            let what = format!("{} thread_churn.py, attach {round}", python.id);
            let target = peeka_attach::Target::inspect(pid)
                .unwrap_or_else(|e| panic!("{what}: {e}; target stderr: {}", process.stderr()));
            let staging = common::StagingDir::marker(&target);
            let started = Instant::now();
            let request = peeka_attach::InjectRequest {
                target: &target,
                staging: &staging,
                deadline: started + Duration::from_secs(10),
            };
            PtraceInjector::new()
                .inject(&request)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            took.push(started.elapsed());
            common::assert_loaded_exactly_once(
                &staging,
                Duration::from_secs(5),
                Duration::ZERO,
                &what,
            );
        }
        std::thread::sleep(Duration::from_millis(200));
        let what = format!("{} thread_churn.py", python.id);
        assert_running_untraced(&mut process, &what);
        assert_alive_and_quiet(&mut process, &what);
        let (min, median, max) = common::min_median_max(took);
        eprintln!("ptrace {what}: {attaches} attaches, min {min:?} median {median:?} max {max:?}");
    }
}
