//! A process stopped by job control (`SIGSTOP`) stays stopped, exactly as
//! it was: every method refuses with [`AttachError::TargetStopped`] before
//! touching it, and the doctor reports the stop as a blocker with its fix.
//!
//! Real 3.11, 3.12 and 3.14 targets (`tests/targets/stopped_counter.py`: a
//! counting main thread that publishes its count in a file, and a worker
//! thread) are stopped, then attached to with `auto` and with each method
//! named. Before and after, every thread's state, CPU time and context
//! switches, the memory map and the published count must be the same; no
//! thread may appear, no tracer may remain, and no private directory may be
//! left. Resumed with `SIGCONT` at the end, the target counts on.
//!
//! Before the refusal, an attach resumed the stopped target's threads: the
//! bootstrap's loader thread appeared in it and its loop ran on.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{marker_agent, spawn_target_with, tracer_of};
use peeka_attach::attach::{attach, AttachOptions};
use peeka_attach::doctor::{check, doctor, Severity};
use peeka_attach::{AttachError, Method, MethodChoice};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};

/// Everything about a stopped process that must not change.
#[derive(Debug)]
struct Frozen {
    /// Per thread: tid, state, utime, stime, voluntary and involuntary
    /// context switches.
    threads: Vec<(u32, char, u64, u64, u64, u64)>,
    /// `/proc/PID/maps`.
    maps: String,
    /// The count the target published last.
    count: String,
}

fn thread_facts(pid: u32, tid: u32) -> Option<(u32, char, u64, u64, u64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // utime and stime are fields 14 and 15 of the line (1-based).
    let utime = fields.get(11)?.parse().ok()?;
    let stime = fields.get(12)?.parse().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")).ok()?;
    let switches = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(u64::MAX)
    };
    Some((
        tid,
        state,
        utime,
        stime,
        switches("voluntary_ctxt_switches:"),
        switches("nonvoluntary_ctxt_switches:"),
    ))
}

fn frozen(pid: u32, count_file: &Path) -> Frozen {
    let mut tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Frozen {
        threads: tids
            .iter()
            .filter_map(|&tid| thread_facts(pid, tid))
            .collect(),
        maps: fs::read_to_string(format!("/proc/{pid}/maps")).unwrap(),
        count: fs::read_to_string(count_file).unwrap_or_default(),
    }
}

fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a target this test started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0);
}

/// Waits until the target has published a count.
fn wait_counting(count_file: &Path, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(count) = fs::read_to_string(count_file)
            .ok()
            .and_then(|c| c.trim().parse().ok())
        {
            return count;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the target never counted"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Stops the target and waits until the group stop has reached every
/// thread and the counters have settled.
fn stop(process: &TargetProcess, what: &str) {
    let pid = process.pid();
    send(pid, libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let states: Vec<char> = frozen(pid, Path::new("/nonexistent"))
            .threads
            .iter()
            .map(|t| t.1)
            .collect();
        if !states.is_empty() && states.iter().all(|&s| s == 'T') {
            break;
        }
        assert!(Instant::now() < deadline, "{what}: not stopped: {states:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(50));
}

/// The private directory an attach would make, as this process sees it.
fn private_dir(python: &Interpreter, pid: u32) -> std::path::PathBuf {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ns_pid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    python.host_path(Path::new(&format!("/tmp/peeka-{ns_pid}")))
}

fn choices(python: &Interpreter) -> Vec<MethodChoice> {
    let mut choices = vec![
        MethodChoice::Auto,
        MethodChoice::Only(Method::Ptrace),
        MethodChoice::Only(Method::Gdb),
    ];
    if matches!(python.minor.as_str(), "3.14" | "3.15") {
        choices.push(MethodChoice::Only(Method::Pep768));
    }
    choices
}

#[test]
fn a_stopped_target_is_refused_and_left_exactly_as_it_was() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.11", "3.12", "3.14"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{} stopped_counter.py", python.id);
        let mut process = spawn_target_with(python, "stopped_counter.py", &[], &[]);
        let pid = process.pid();
        let count_file = process.host_dir().join("count.txt");
        wait_counting(&count_file, &what);
        let private = private_dir(python, pid);
        assert!(
            !private.exists(),
            "{what}: {} exists already",
            private.display()
        );

        stop(&process, &what);
        let before = frozen(pid, &count_file);
        assert!(before.threads.len() >= 2, "{what}: {before:?}");

        let diagnosis = doctor(pid);
        let finding = diagnosis.finding(check::PROCESS).unwrap();
        assert_eq!(finding.severity, Severity::Blocker, "{what}: {diagnosis}");
        assert!(
            finding
                .fix
                .as_deref()
                .unwrap_or("")
                .contains(&format!("kill -CONT {pid}")),
            "{what}: {diagnosis}"
        );
        assert!(!diagnosis.can_attach(), "{what}: {diagnosis}");

        for choice in choices(python) {
            let options = AttachOptions {
                method: choice,
                timeout: Duration::from_secs(5),
                agent: marker_agent(),
            };
            let started = Instant::now();
            let result = attach(pid, &options);
            let took = started.elapsed();
            // Had anything resumed it, the target would run now.
            std::thread::sleep(Duration::from_millis(200));
            let after = frozen(pid, &count_file);
            assert_eq!(
                before.threads, after.threads,
                "{what} {choice:?}: the stopped target's threads changed (tid, state, utime, stime, switches)"
            );
            assert_eq!(
                before.count, after.count,
                "{what} {choice:?}: the stopped target counted on"
            );
            let new_maps: Vec<&str> = after
                .maps
                .lines()
                .filter(|l| !before.maps.contains(l))
                .collect();
            assert!(
                before.maps == after.maps,
                "{what} {choice:?}: the memory map changed; new lines: {new_maps:?}"
            );
            match &result {
                Err(error @ AttachError::TargetStopped { pid: refused, .. }) => {
                    assert_eq!(*refused, pid, "{what} {choice:?}");
                    let message = error.to_string();
                    assert!(
                        message.contains("is stopped") && message.contains("SIGCONT"),
                        "{what} {choice:?}: {message}"
                    );
                }
                other => panic!("{what} {choice:?}: expected TargetStopped, got {other:?}"),
            }
            assert!(
                took < Duration::from_secs(2),
                "{what} {choice:?}: the refusal took {took:?}"
            );
            assert_eq!(tracer_of(pid), 0, "{what} {choice:?}: still traced");
            assert!(
                !private.exists(),
                "{what} {choice:?}: {} was left",
                private.display()
            );
        }

        // Resumed, it counts on, unharmed.
        let stopped_at = wait_counting(&count_file, &what);
        send(pid, libc::SIGCONT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while wait_counting(&count_file, &what) <= stopped_at {
            assert!(
                Instant::now() < deadline,
                "{what}: no progress after SIGCONT"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(process.is_alive(), "{what}: the target died");
        assert_eq!(process.stderr(), "", "{what}: the target printed errors");
        eprintln!(
            "{what}: {} attaches refused while stopped; nothing changed; counts on after SIGCONT",
            choices(python).len()
        );
    }
}
