//! `attach()` with `auto` to a process where no thread runs Python
//! (issue 14, part 1), on every interpreter of the manifest:
//! `tests/targets/all_idle.py`, whose main thread waits in
//! `Event().wait()`, two workers in `queue.get()`, one thread in
//! `accept()` without a timeout and one in `read()` on a FIFO, while two
//! more time `select()` calls with a 1.5 s timeout (one through
//! `select.select`, one through libc's `select` called by ctypes).
//!
//! Each attach must load the agent once, through the ptrace method's
//! GIL-released route at once (no pending call queued, no grace period
//! waited, no runner pages left behind); on 3.14+ after PEP 768 got no
//! taker within its short window and withdrew its requests. The target
//! must keep behaving: every thread back in the call it was blocked in,
//! each one waking up normally when told (an item in the queue, the event
//! set, a connection), and no `select()` cut short or failed with EINTR.
#![cfg(target_os = "linux")]
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    assert_loaded_exactly_once, assert_running_untraced, marker_agent, pages_mapped_since,
    read_only_anonymous_pages, spawn_target_with, step_names,
};
use peeka_attach::attach::{attach, AttachOptions};
use peeka_attach::{BootstrapStatus, Method, Target};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};

/// The timeout of the target's timed `select()` calls.
const SELECT_SECONDS: f64 = 1.5;

/// The roles whose threads stay blocked in one call until told.
const PARKED: [&str; 5] = ["main", "worker-1", "worker-2", "acceptor", "control"];

/// What `threads.json` says: the thread of each role, and the port.
struct Roles {
    tids: BTreeMap<String, u32>,
    port: u16,
}

fn roles(target: &TargetProcess) -> Roles {
    let text = fs::read_to_string(target.host_dir().join("threads.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tids = value["threads"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(role, tid)| (role.clone(), tid.as_u64().unwrap() as u32))
        .collect();
    Roles {
        tids,
        port: value["port"].as_u64().unwrap() as u16,
    }
}

/// The system call thread `tid` is blocked in and its first argument
/// (the futex word, the file descriptor), or `None` when it is not blocked.
fn blocked_in(pid: u32, tid: u32) -> Option<(i64, String)> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let mut fields = text.split_whitespace();
    let number = fields.next()?.parse::<i64>().ok().filter(|&n| n >= 0)?;
    Some((number, fields.next()?.to_owned()))
}

/// Where each parked role's thread is blocked, once every one of them is.
fn parked_calls(pid: u32, roles: &Roles, what: &str) -> BTreeMap<String, (i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls: BTreeMap<String, (i64, String)> = PARKED
            .iter()
            .filter_map(|role| {
                let tid = roles.tids[*role];
                blocked_in(pid, tid).map(|call| (role.to_string(), call))
            })
            .collect();
        if calls.len() == PARKED.len() {
            return calls;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not every thread blocked: {calls:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The lines of `events.txt`.
fn events(target: &TargetProcess) -> Vec<String> {
    fs::read_to_string(target.host_dir().join("events.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `wanted` holds for the events (up to `limit`).
fn wait_for_events(
    target: &TargetProcess,
    limit: Duration,
    wanted: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let lines = events(target);
        if wanted(&lines) || Instant::now() >= deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn count(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

/// Starts the target and waits until both timed `select()` threads have
/// just begun a new call: the next 1.5 s nobody runs Python.
fn spawn_idle(python: &Interpreter) -> TargetProcess {
    let seconds = SELECT_SECONDS.to_string();
    let target = spawn_target_with(python, "all_idle.py", &["select", &seconds], &[]);
    let what = format!("{} all_idle.py", python.id);
    let first = wait_for_events(&target, Duration::from_secs(10), |l| {
        count(l, "select ") >= 1 && count(l, "cselect ") >= 1
    });
    let (select, cselect) = (count(&first, "select "), count(&first, "cselect "));
    assert!(select >= 1 && cselect >= 1, "{what}: {first:?}");
    let fresh = wait_for_events(&target, Duration::from_secs(10), |l| {
        count(l, "select ") > select && count(l, "cselect ") > cselect
    });
    assert!(count(&fresh, "select ") > select, "{what}: {fresh:?}");
    target
}

/// Checks every timed `select()` the target reported: none shorter than
/// its timeout, none failed (EINTR or another error), none ready. The
/// first line that is not so, if any.
fn selects_kept_their_timeout(lines: &[String]) -> Result<(), String> {
    for line in lines {
        let Some(rest) = line
            .strip_prefix("select ")
            .or_else(|| line.strip_prefix("cselect "))
        else {
            continue;
        };
        let elapsed: f64 = rest
            .strip_prefix("elapsed=")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("cannot read {line:?}"))?;
        if elapsed < SELECT_SECONDS - 0.001 {
            return Err(format!("a select() was cut short: {line:?}"));
        }
        let (ended, wanted) = if line.starts_with("select ") {
            (
                rest.ends_with(" timeout"),
                "select.select() did not just time out",
            )
        } else {
            (
                rest.ends_with(" rc=0 errno=0"),
                "libc select() did not just time out",
            )
        };
        if !ended {
            return Err(format!("{wanted}: {line:?}"));
        }
    }
    Ok(())
}

/// Writes `command` (one line) to the target's control FIFO.
fn tell(target: &TargetProcess, command: &str) {
    let mut fifo = fs::OpenOptions::new()
        .write(true)
        .open(target.host_dir().join("control"))
        .unwrap();
    fifo.write_all(format!("{command}\n").as_bytes()).unwrap();
}

/// One attach to the idle target of `python`; how long it took.
fn attach_to_an_idle_target(python: &Interpreter) -> Duration {
    let what = format!("{} all_idle.py", python.id);
    let minor: u32 = python.minor.trim_start_matches("3.").parse().unwrap();
    let mut target = spawn_idle(python);
    let pid = target.pid();
    let roles = roles(&target);
    let before = parked_calls(pid, &roles, &what);
    let pages_before = read_only_anonymous_pages(pid);
    let lines_before = events(&target).len();

    let started = Instant::now();
    let attached =
        attach(pid, &AttachOptions::new(marker_agent())).unwrap_or_else(|e| panic!("{what}: {e}"));
    let took = started.elapsed();
    eprintln!(
        "{what}: attached in {took:.1?}: {:?}",
        attached
            .timeline
            .steps
            .iter()
            .map(|s| format!("{} ({:.1?})", s.name, s.elapsed))
            .collect::<Vec<_>>()
    );
    let steps = step_names(&attached.timeline);
    assert!(
        matches!(attached.status, BootstrapStatus::Loaded(_)),
        "{what}: {:?}",
        attached.status
    );
    assert_eq!(attached.method, Method::Ptrace, "{what}: {steps:?}");
    // The GIL-released route at once: no pending call, no grace period, no
    // runner pages left behind.
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("run the bootstrap on thread") && s.contains("GIL released")),
        "{what}: {steps:?}"
    );
    for absent in [
        "queue the pending call",
        "wait for a thread to run the pending call",
        "leave the runner pages",
    ] {
        assert!(
            !steps.iter().any(|s| s.starts_with(absent)),
            "{what}: {absent:?} in {steps:?}"
        );
    }
    if minor >= 14 {
        // PEP 768 first, given up quickly, every request withdrawn.
        let (method, why) = attached.skipped.first().expect("pep768 was skipped");
        assert_eq!(*method, Method::Pep768, "{what}");
        assert!(
            why.contains("ran Python within") && why.contains("blocked in a system call"),
            "{what}: {why}"
        );
        assert!(
            steps.iter().any(|s| s.starts_with("withdraw leftovers")),
            "{what}: {steps:?}"
        );
        assert!(
            steps.iter().any(|s| s.contains("none ran Python within")),
            "{what}: {steps:?}"
        );
    } else {
        assert!(
            attached.skipped.is_empty(),
            "{what}: {:?}",
            attached.skipped
        );
    }
    // Exactly once, even after a late request would have fired.
    assert_loaded_exactly_once(
        &attached.staging,
        Duration::from_secs(5),
        Duration::from_millis(300),
        &what,
    );
    assert_running_untraced(&mut target, &what);
    let new_pages = pages_mapped_since(pid, &pages_before);
    assert!(
        new_pages.is_empty(),
        "{what}: pages were left mapped: {new_pages:x?} ({steps:?})"
    );

    // Every thread is back in the call it was blocked in, and nothing of
    // the application ran meanwhile (the timed selects aside).
    let after = parked_calls(pid, &roles, &what);
    assert_eq!(before, after, "{what}: the threads moved");
    let since = events(&target);
    let woke: Vec<&String> = since[lines_before..]
        .iter()
        .filter(|l| !l.starts_with("select ") && !l.starts_with("cselect "))
        .collect();
    assert!(woke.is_empty(), "{what}: threads woke up: {woke:?}");
    if minor >= 14 {
        // No PEP 768 request is left in any thread state (this pauses the
        // threads once more, as a detach does).
        let inspected = Target::inspect(pid).unwrap();
        let left = peeka_attach::pep768::withdraw_pending_requests(&inspected);
        assert_eq!(
            left.unwrap(),
            0,
            "{what}: a PEP 768 request was left pending"
        );
    }

    // Each wakes up when told, and says so.
    tell(&target, "put apple");
    tell(&target, "put pear");
    tell(&target, "set");
    let connected = std::net::TcpStream::connect(("127.0.0.1", roles.port));
    assert!(connected.is_ok(), "{what}: connect: {connected:?}");
    let lines = wait_for_events(&target, Duration::from_secs(5), |l| {
        l.iter().any(|x| x.ends_with(" got apple"))
            && l.iter().any(|x| x.ends_with(" got pear"))
            && l.iter().any(|x| x == "main woke")
            && l.iter().any(|x| x == "acceptor accepted")
    });
    for needle in [" got apple", " got pear", "main woke", "acceptor accepted"] {
        assert!(
            lines.iter().any(|l| l.ends_with(needle)),
            "{what}: no {needle:?} in {lines:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("worker-1 got") || l.starts_with("worker-2 got")),
        "{what}: {lines:?}"
    );

    // Two more timed selects on each thread since the attach: the one the
    // attach happened in, and a whole one after.
    let lines = wait_for_events(&target, Duration::from_secs(8), |l| {
        count(&l[lines_before..], "select ") >= 2 && count(&l[lines_before..], "cselect ") >= 2
    });
    assert!(
        count(&lines[lines_before..], "select ") >= 2
            && count(&lines[lines_before..], "cselect ") >= 2,
        "{what}: the timed selects stopped: {lines:?}"
    );
    if let Err(why) = selects_kept_their_timeout(&lines) {
        panic!("{what}: {why}; every line: {lines:?}");
    }
    assert!(target.is_alive(), "{what}: the target died");
    assert_eq!(target.stderr(), "", "{what}: the target printed errors");
    attached.staging.remove_all();
    took
}

#[test]
fn auto_attaches_where_no_thread_runs_python_on_every_interpreter() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let mut results = Vec::new();
    manifest.for_each_interpreter(|python| {
        let took = attach_to_an_idle_target(python);
        results.push(format!("{}={:.1?}", python.id, took));
    });
    eprintln!("auto, all_idle.py: {}", results.join(", "));
}

/// The check of the timed selects catches a call cut short or failed.
#[test]
fn the_select_check_catches_a_short_or_failed_call() {
    let ok = [
        "select elapsed=1.500120 timeout".to_owned(),
        "cselect elapsed=1.500300 rc=0 errno=0".to_owned(),
        "main woke".to_owned(),
    ];
    assert_eq!(selects_kept_their_timeout(&ok), Ok(()));
    for bad in [
        "select elapsed=0.700000 timeout",
        "select elapsed=1.600000 EINTR",
        "cselect elapsed=0.400000 rc=-1 errno=4",
        "cselect elapsed=1.600000 rc=-1 errno=4",
        "select elapsed=? timeout",
    ] {
        assert!(
            selects_kept_their_timeout(&[bad.to_owned()]).is_err(),
            "{bad} was not caught"
        );
    }
    assert!(Path::new(&common::target_script("all_idle.py")).exists());
}
