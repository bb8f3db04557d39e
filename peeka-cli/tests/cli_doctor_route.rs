//! `peeka-cli doctor PID` names the route an attach would take, and why
//! (issue 14), on every interpreter of the manifest, for two shapes:
//!
//! - busy (`busy.py`: the main thread runs Python without pause): the
//!   ptrace method's pending call, or on 3.14+ PEP 768 remote exec;
//! - idle (`all_idle.py` of the attach tests: every thread blocked, in
//!   `Event().wait()`, `queue.get()`, `accept()`, `read()`): the ptrace
//!   method's GIL-released route, on 3.14+ once PEP 768 got no taker.
//!
//! The doctor only looks: the idle target's threads do not wake up (their
//! context-switch counts stay the same). Then `peeka-cli attach` takes the
//! route the doctor named, and the agent answers.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{run, state_dir};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

fn attach_target(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../peeka-attach/tests/targets")
        .join(name)
}

fn minor(python: &Interpreter) -> u32 {
    python.minor.trim_start_matches("3.").parse().unwrap()
}

/// Every thread of `pid` with its context switches (voluntary and not).
fn switches(pid: u32) -> Vec<(u32, u64)> {
    let mut all = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let tid: u32 = task.file_name().to_string_lossy().parse().unwrap();
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        let total = status
            .lines()
            .filter_map(|l| {
                l.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .sum();
        all.push((tid, total));
    }
    all.sort_unstable();
    all
}

/// Whether every thread of `pid` is blocked in a system call.
fn all_blocked(pid: u32) -> bool {
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .all(|task| {
            fs::read_to_string(task.path().join("syscall")).is_ok_and(|s| {
                s.split_whitespace()
                    .next()
                    .is_some_and(|n| n.parse::<u64>().is_ok())
            })
        })
}

/// The idle target, once every thread is blocked.
fn spawn_idle(python: &Interpreter) -> TargetProcess {
    let target = TargetProcess::spawn(python, &attach_target("all_idle.py"), &[], &[])
        .unwrap_or_else(|e| panic!("{}: all_idle.py: {e}", python.id));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !all_blocked(target.pid()) {
        assert!(Instant::now() < deadline, "{}: never idle", python.id);
        std::thread::sleep(Duration::from_millis(10));
    }
    target
}

/// `doctor PID` as JSON: its `data`.
fn doctor(state: &Path, pid: u32, what: &str) -> Value {
    let doctor = run(state, &["doctor", &pid.to_string()], LIMIT);
    assert_eq!(
        doctor.code, 0,
        "{what}: doctor: {:?} {}",
        doctor.lines, doctor.stderr
    );
    let data = doctor.last()["data"].clone();
    let finding = data["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "route")
        .unwrap_or_else(|| panic!("{what}: no route finding: {data}"))
        .clone();
    assert_eq!(finding["summary"], data["route"]["summary"], "{what}");
    assert!(
        finding["summary"]
            .as_str()
            .unwrap()
            .starts_with("attach route: "),
        "{what}: {finding}"
    );
    data
}

/// `attach PID`, which must succeed with `method`; the timeline's steps.
fn attach(state: &Path, pid: u32, method: &str, what: &str) -> (Vec<String>, Value) {
    let attach = run(state, &["attach", &pid.to_string()], LIMIT);
    assert_eq!(
        attach.code, 0,
        "{what}: attach: {:?} {}",
        attach.lines, attach.stderr
    );
    let data = attach.last()["data"].clone();
    assert_eq!(data["method"], method, "{what}: {data}");
    assert!(
        data["ping_ms"].is_number(),
        "{what}: the agent did not answer: {data}"
    );
    let steps = data["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect();
    let detach = run(state, &["detach", "--pid", &pid.to_string()], LIMIT);
    assert_eq!(detach.code, 0, "{what}: detach: {:?}", detach.lines);
    (steps, data["skipped"].clone())
}

#[test]
fn doctor_names_the_route_of_a_busy_and_an_idle_target_and_attach_takes_it() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let mut seen = Vec::new();
    manifest.for_each_interpreter(|python| {
        let id = &python.id;
        let state = state_dir(&format!("route-{id}"));
        let pep768 = minor(python) >= 14;

        // Busy: the main thread runs Python.
        let what = format!("{id} busy.py");
        let busy = TargetProcess::spawn(python, &attach_target("busy.py"), &[], &[])
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let data = doctor(&state, busy.pid(), &what);
        let route = &data["route"];
        let summary = route["summary"].as_str().unwrap();
        let (name, method) = if pep768 {
            ("pep768_remote_exec", "pep768")
        } else {
            ("ptrace_pending_call", "ptrace")
        };
        assert_eq!(route["route"], name, "{what}: {route}");
        assert_eq!(route["method"], method, "{what}: {route}");
        let main = format!("the main thread {}", busy.pid());
        if minor(python) >= 13 {
            // The GIL is read from 3.13: its holder is named.
            assert!(
                summary.contains(&format!("{main} runs Python (it holds the GIL)")),
                "{what}: {summary}"
            );
            assert_eq!(route["gil_free"], false, "{what}: {route}");
        } else {
            assert!(summary.contains(&format!("{main} is running")), "{what}: {summary}");
        }
        let (steps, _) = attach(&state, busy.pid(), method, &what);
        assert!(
            !steps.iter().any(|s| s.contains("GIL released")),
            "{what}: {steps:?}"
        );
        seen.push(format!("{what}: {summary}"));
        drop(busy);

        // Idle: nobody runs Python; the doctor wakes nobody.
        let what = format!("{id} all_idle.py");
        let idle = spawn_idle(python);
        let pid = idle.pid();
        let before = switches(pid);
        let data = doctor(&state, pid, &what);
        assert_eq!(
            switches(pid),
            before,
            "{what}: the doctor woke a thread of the target"
        );
        let route = &data["route"];
        let summary = route["summary"].as_str().unwrap();
        let name = if pep768 {
            "pep768_then_ptrace_gil_released"
        } else {
            "ptrace_gil_released"
        };
        assert_eq!(route["route"], name, "{what}: {route}");
        assert_eq!(route["method"], "ptrace", "{what}: {route}");
        let threads = route["threads"].as_array().unwrap();
        assert_eq!(threads.len(), 5, "{what}: {route}");
        assert!(
            threads.iter().all(|t| t["state"] == "blocked"),
            "{what}: {route}"
        );
        // The thread in accept() qualifies on every version; the futex
        // waiters only before 3.13.
        assert!(
            threads
                .iter()
                .any(|t| t["wait"].as_str().is_some_and(|w| w.starts_with("accept"))),
            "{what}: {route}"
        );
        let main = threads.iter().find(|t| t["main"] == true).unwrap();
        assert_eq!(
            main["gil_released_route"],
            minor(python) < 13,
            "{what}: {main}"
        );
        if pep768 {
            assert!(
                summary.contains("once PEP 768 gets no taker within 30 ms")
                    && summary.contains("no thread runs Python"),
                "{what}: {summary}"
            );
        }
        if minor(python) >= 13 {
            assert_eq!(route["gil_free"], true, "{what}: {route}");
        }
        // The text report says the same.
        let text = common::command(&state, &["--format", "text", "doctor", &pid.to_string()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains(&format!("[route] {summary}")),
            "{what}: {text}"
        );
        let (steps, skipped) = attach(&state, pid, "ptrace", &what);
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with("run the bootstrap on thread") && s.contains("GIL released")),
            "{what}: {steps:?}"
        );
        assert!(
            !steps.iter().any(|s| s.starts_with("queue the pending call")
                || s.starts_with("wait for a thread to run the pending call")),
            "{what}: {steps:?}"
        );
        if pep768 {
            assert_eq!(skipped[0]["method"], "pep768", "{what}: {skipped}");
        }
        seen.push(format!("{what}: {summary}"));
        let _ = fs::remove_dir_all(&state);
    });
    for line in seen {
        eprintln!("{line}");
    }
}
