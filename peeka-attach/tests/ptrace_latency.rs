//! How long the ptrace method takes from `inject()` to the bootstrap's
//! claim, on 3.11 (main-thread pending call / breakpoint) and 3.13
//! (any-thread pending call), for a busy and a sleeping main thread.
//!
//! The goal is a median of at most 50 ms on a busy target. A sleeping main
//! thread answers when it next wakes up (`sleeper.py` sleeps 50 ms at a
//! time), so its numbers are reported, not checked against the goal.
#![cfg(target_os = "linux")]
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{assert_alive_and_quiet, min_median_max, spawn_target, StagingDir};
use peeka_attach::ptrace::PtraceInjector;
use peeka_attach::{InjectRequest, Injector, Target};
use peeka_testkit::Manifest;

const ATTACHES: usize = 15;

/// Attaches `ATTACHES` times to one target and returns the times from the
/// call of `inject()` to the first sight of the claim.
fn claim_latencies(python: &peeka_testkit::Interpreter, script: &str) -> Vec<Duration> {
    let mut process = spawn_target(python, script);
    let target = Target::inspect(process.pid()).unwrap();
    let mut latencies = Vec::new();
    for _ in 0..ATTACHES {
        let staging = StagingDir::marker(&target);
        let request = InjectRequest {
            target: &target,
            staging: &staging,
            deadline: Instant::now() + Duration::from_secs(10),
        };
        let done = AtomicBool::new(false);
        let started = Instant::now();
        let claimed_at = std::thread::scope(|scope| {
            let watcher = scope.spawn(|| {
                while !staging.claimed() && !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_micros(100));
                }
                started.elapsed()
            });
            PtraceInjector::new()
                .inject(&request)
                .unwrap_or_else(|e| panic!("{} {script}: {e}", python.id));
            done.store(true, Ordering::Relaxed);
            watcher.join().unwrap()
        });
        latencies.push(claimed_at);
        staging.wait_status(Instant::now() + Duration::from_secs(5));
        // Let the target settle back into its loop.
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_alive_and_quiet(&mut process, &format!("{} {script}", python.id));
    latencies
}

#[test]
fn claim_latency_on_311_and_313() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.11", "3.13"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        for script in ["busy.py", "sleeper.py"] {
            let latencies = claim_latencies(python, script);
            let (min, median, max) = min_median_max(latencies);
            eprintln!(
                "ptrace latency {minor} {script}: median {median:.1?}, min {min:.1?}, max {max:.1?} ({ATTACHES} attaches)"
            );
            if script == "busy.py" {
                assert!(
                    median <= Duration::from_millis(50),
                    "{minor} {script}: median {median:?}"
                );
            }
        }
    }
}
