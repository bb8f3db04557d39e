//! Real web servers, idle, attached on every interpreter (issue 14, "Checks"),
//! through the real `peeka-cli` binary:
//!
//! - a Flask app served by waitress (4 threads), idle: `attach`, `thread`,
//!   a request served, `detach`, a request served;
//! - an idle gunicorn sync worker (`-w 1 -k sync`): the same on the worker,
//!   and the master still fine (same worker, nothing in its log);
//! - a gunicorn master recycling its two workers (`--max-requests 4`),
//!   attached, with a `watch` on the function that forks them: the new
//!   workers hold none of the agent's sockets and run no probe, the watch
//!   sees every fork, and the master stays attachable and detachable
//!   (issue 15);
//! - a stdlib target whose threads wait with 1 s timeouts (select, poll,
//!   nanosleep, select through libc, a Condition): after an attach and a
//!   detach in the middle of their waits, no wait ended early and no EINTR
//!   reached the program.
//!
//! waitress, gunicorn and flask come from PyPI, installed per interpreter by
//! `scripts/provision-servers.sh` into a directory of their own (never the
//! interpreter's site-packages) listed in `target/peeka-servers.json`
//! (`$PEEKA_SERVERS_MANIFEST`); the targets get it on `PYTHONPATH`. An
//! interpreter without them is skipped with a banner naming it and why, or
//! fails the test under CI (`peeka_testkit::skip_test`).
//!
//! Each test runs every interpreter, then fails listing every interpreter
//! that failed. Attach times are printed, never asserted.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{run, state_dir, Run};
use peeka_testkit::procfs::{children, socket_inodes, stat_field};
use peeka_testkit::{
    all_threads_sleep, get_hello, skip_test, ForkingServer, Interpreter, Manifest, ServerSite,
    ServersError, ServersManifest, TargetProcess,
};
use serde_json::Value;

/// A `peeka-cli` command must end within this.
const LIMIT: Duration = Duration::from_secs(90);
/// The attach's own timeout (`--timeout`), generous for a loaded machine.
const ATTACH_TIMEOUT_SECONDS: &str = "30";
/// A server must listen (and a gunicorn worker boot) within this.
const START_LIMIT: Duration = Duration::from_secs(60);
/// Every wait of `timed_waits.py` lasts this long.
const WAIT: f64 = 1.0;
/// How much shorter than [`WAIT`] a measured wait may be (clock reading
/// granularity; the kernel never ends a timed wait early).
const EPSILON: f64 = 0.005;

/// What every server target imports.
const PACKAGES: [&str; 3] = ["flask", "waitress", "gunicorn"];

// ---------------------------------------------------------------------------
// The servers' manifest.

/// The servers' manifest, or `None` after a skip banner (a panic in CI, and
/// whenever the manifest is not valid).
fn load_servers() -> Option<ServersManifest> {
    match ServersManifest::load() {
        Ok(servers) => Some(servers),
        Err(error @ ServersError::Parse { .. }) => panic!("{error}"),
        Err(error) => {
            skip_test(&format!(
                "flask, waitress and gunicorn are not provisioned for any interpreter: {error}"
            ));
            None
        }
    }
}

/// The site of `python`, or `None` after a banner naming the interpreter,
/// the missing package and why (a panic in CI).
fn site_for<'a>(servers: &'a ServersManifest, python: &Interpreter) -> Option<&'a ServerSite> {
    match servers.site(python, &PACKAGES) {
        Ok(site) => Some(site),
        Err(error) => {
            skip_test(&error.to_string());
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Running every interpreter.

/// Runs `test` on every interpreter (each in turn), printing one line per
/// interpreter; then fails naming every interpreter that failed.
fn every_interpreter(name: &str, mut test: impl FnMut(&Interpreter) -> Option<String>) {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    manifest.for_each_interpreter(|python| {
        let outcome = catch_unwind(AssertUnwindSafe(|| test(python)));
        match outcome {
            Ok(Some(line)) => lines.push(format!("{:<12} {line}", python.id)),
            Ok(None) => lines.push(format!("{:<12} skipped", python.id)),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "(no message)".to_owned());
                lines.push(format!("{:<12} FAILED: {message}", python.id));
                failed.push(python.id.clone());
            }
        }
    });
    // Straight to stderr: shown even when the test passes.
    let _ = writeln!(std::io::stderr(), "\n{name}:\n  {}\n", lines.join("\n  "));
    assert!(failed.is_empty(), "{name}: failed on {failed:?}");
}

/// [`every_interpreter`] for the server tests: each interpreter gets its
/// site of the servers' manifest, or is skipped after a banner (a panic in
/// CI); nothing runs without a manifest.
fn every_server_interpreter(
    name: &str,
    mut test: impl FnMut(&Interpreter, &ServerSite) -> Option<String>,
) {
    let Some(servers) = load_servers() else {
        return;
    };
    every_interpreter(name, |python| {
        let site = site_for(&servers, python)?;
        test(python, site)
    });
}

// ---------------------------------------------------------------------------
// peeka-cli.

fn ok(run: &Run, what: &str) {
    assert_eq!(
        run.code, 0,
        "{what}: exit code {}; stdout: {:#?}\nstderr: {}",
        run.code, run.lines, run.stderr
    );
    assert_eq!(run.last()["type"], "success", "{what}: {:#?}", run.lines);
}

/// `peeka-cli attach PID`, which must succeed with a fresh agent. Returns a
/// line about its time: wall clock, the sum of its timeline, the method,
/// the slowest step.
fn attach(state: &Path, pid: u32, what: &str) -> String {
    let pid = pid.to_string();
    let started = Instant::now();
    let attached = run(
        state,
        &["attach", &pid, "--timeout", ATTACH_TIMEOUT_SECONDS],
        LIMIT,
    );
    let wall = started.elapsed();
    ok(&attached, &format!("{what}: attach"));
    let data = &attached.last()["data"];
    assert_eq!(data["reused"], false, "{what}: {data}");
    let steps = data["timeline"].as_array().cloned().unwrap_or_default();
    let total: f64 = steps.iter().filter_map(|s| s["ms"].as_f64()).sum();
    let slowest = steps
        .iter()
        .max_by(|a, b| {
            let (a, b) = (a["ms"].as_f64(), b["ms"].as_f64());
            a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal)
        })
        .map(|s| {
            let ms = s["ms"].as_f64().unwrap_or(f64::NAN);
            format!("{} {ms:.0} ms", s["step"].as_str().unwrap_or("?"))
        })
        .unwrap_or_default();
    format!(
        "attach {:.0} ms (timeline {total:.0} ms, method {}, slowest step: {slowest})",
        wall.as_secs_f64() * 1000.0,
        data["method"].as_str().unwrap_or("?"),
    )
}

/// `peeka-cli thread --pid PID`: the names of the target's threads.
fn thread_names(state: &Path, pid: u32, what: &str) -> Vec<String> {
    let pid = pid.to_string();
    let threads = run(state, &["thread", "--pid", &pid], LIMIT);
    assert_eq!(
        threads.code, 0,
        "{what}: thread: {:#?}\nstderr: {}",
        threads.lines, threads.stderr
    );
    let result = threads
        .of_type("result")
        .next()
        .unwrap_or_else(|| panic!("{what}: thread printed no result: {:#?}", threads.lines));
    result["data"]["threads"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: thread: no threads in {result}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// `peeka-cli detach --pid PID`, which must remove the agent's directory.
fn detach(state: &Path, python: &Interpreter, pid: u32, what: &str) {
    let pid_text = pid.to_string();
    let detached = run(state, &["detach", "--pid", &pid_text], LIMIT);
    ok(&detached, &format!("{what}: detach"));
    let data = &detached.last()["data"];
    assert_eq!(data["detached"], true, "{what}: {data}");
    assert_eq!(data["directory_removed"], true, "{what}: {data}");
    let private = private_dir(python, pid);
    assert!(
        !private.exists(),
        "{what}: {} is left after detach",
        private.display()
    );
}

/// The agent's private directory in process `pid`, as this process sees it.
fn private_dir(python: &Interpreter, pid: u32) -> PathBuf {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let ns_pid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .map_or_else(|| pid.to_string(), str::to_owned);
    python.host_path(Path::new(&format!("/tmp/peeka-{ns_pid}")))
}

/// A private state directory for `peeka-cli` (the remembered target),
/// removed when dropped, whatever the outcome.
struct State(PathBuf);

impl State {
    fn new(name: &str) -> Self {
        Self(state_dir(name))
    }
}

impl std::ops::Deref for State {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Processes and HTTP.

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/targets")
        .join(name)
}

/// The content of `path` once it exists (written atomically by the target),
/// within `limit`; `None` if it never came or `target` died.
fn wait_for_file(target: &mut TargetProcess, name: &str, limit: Duration) -> Option<String> {
    let path = target.host_dir().join(name);
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(&path) {
            return Some(text.trim().to_owned());
        }
        if !target.is_alive() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The port the server wrote to `port.txt`.
fn server_port(target: &mut TargetProcess, what: &str) -> u16 {
    let port = wait_for_file(target, "port.txt", START_LIMIT).unwrap_or_else(|| {
        panic!(
            "{what}: the server did not listen within {START_LIMIT:?}; stderr:\n{}",
            target.stderr()
        )
    });
    port.parse()
        .unwrap_or_else(|e| panic!("{what}: port.txt holds {port:?}: {e}"))
}

/// Asserts that the app answers `GET /hello?name=NAME` as it should (from
/// process `pid` when given).
fn assert_serves(port: u16, name: &str, pid: Option<u32>, what: &str) {
    let body = get_hello(port, name, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{what}: GET /hello: {e}"));
    assert!(
        body.starts_with(&format!("hello {name} from Python ")),
        "{what}: GET /hello answered {body:?}"
    );
    if let Some(pid) = pid {
        assert!(
            body.ends_with(&format!(" pid {pid}")),
            "{what}: GET /hello was not served by process {pid}: {body:?}"
        );
    }
}

/// Waits until every thread of `pid` sleeps: the process is idle.
fn wait_idle(pid: u32, what: &str) {
    let deadline = Instant::now() + START_LIMIT;
    while !all_threads_sleep(pid) {
        assert!(
            Instant::now() < deadline,
            "{what}: process {pid} did not go idle within {START_LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The sockets process `pid` has open (their inodes).
fn sockets(pid: u32) -> BTreeSet<u64> {
    socket_inodes(pid).into_iter().collect()
}

/// `idle_server.py MODE` on `python`, with the servers of `site` on its
/// `PYTHONPATH`.
fn start_server(python: &Interpreter, site: &ServerSite, mode: &str, what: &str) -> TargetProcess {
    TargetProcess::spawn(
        python,
        &script("idle_server.py"),
        &[mode],
        &[("PYTHONPATH", &site.target_dir)],
    )
    .unwrap_or_else(|e| panic!("{what}: cannot start idle_server.py {mode}: {e}"))
}

// ---------------------------------------------------------------------------
// The tests.

/// A Flask app on waitress (threads=4), idle, on every interpreter.
#[test]
fn idle_waitress_app_is_attached_and_keeps_serving() {
    every_server_interpreter("idle waitress + Flask", |python, site| {
        let what = format!("{} waitress", python.id);
        let state = State::new(&format!("idle-waitress-{}", python.id));
        let mut target = start_server(python, site, "waitress", &what);
        let pid = target.pid();
        let port = server_port(&mut target, &what);
        wait_idle(pid, &what);

        let timing = attach(&state, pid, &what);
        let names = thread_names(&state, pid, &what);
        assert!(names.iter().any(|n| n == "MainThread"), "{what}: {names:?}");
        let workers = names.iter().filter(|n| n.starts_with("waitress-")).count();
        assert_eq!(workers, 4, "{what}: waitress threads in {names:?}");
        assert_serves(port, "attached", Some(pid), &what);
        detach(&state, python, pid, &what);
        assert_serves(port, "detached", Some(pid), &what);
        assert_serves(port, "again", Some(pid), &what);
        assert!(target.is_alive(), "{what}: the server died");
        let stderr = target.stderr();
        assert!(
            !stderr.contains("Traceback"),
            "{what}: the server's stderr:\n{stderr}"
        );
        Some(timing)
    });
}

/// An idle gunicorn sync worker, on every interpreter: the worker is
/// attached; the master keeps the same worker and logs nothing amiss.
#[test]
fn idle_gunicorn_worker_is_attached_and_keeps_serving() {
    every_server_interpreter("idle gunicorn sync worker + Flask", |python, site| {
        let what = format!("{} gunicorn", python.id);
        let state = State::new(&format!("idle-gunicorn-{}", python.id));
        let mut server = ForkingServer::new(start_server(python, site, "gunicorn", &what));
        let master_pid = server.master().pid();
        let port = server_port(server.master_mut(), &what);
        let worker = wait_for_file(server.master_mut(), "worker.txt", START_LIMIT)
            .and_then(|w| w.parse::<u32>().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no worker booted within {START_LIMIT:?}; stderr:\n{}",
                    server.master().stderr()
                )
            });
        server.remember_worker(worker);
        assert_eq!(
            children(master_pid),
            [worker],
            "{what}: the master's children"
        );
        wait_idle(worker, &what);

        let timing = attach(&state, worker, &what);
        let names = thread_names(&state, worker, &what);
        assert!(names.iter().any(|n| n == "MainThread"), "{what}: {names:?}");
        assert_serves(port, "attached", Some(worker), &what);
        detach(&state, python, worker, &what);
        assert_serves(port, "detached", Some(worker), &what);

        // The master is fine: alive, the same single worker, a clean log.
        assert!(server.master_mut().is_alive(), "{what}: the master died");
        assert!(
            matches!(stat_field(master_pid, 0).as_deref(), Some("S" | "R")),
            "{what}: the master's state is {:?}",
            stat_field(master_pid, 0)
        );
        assert!(
            server.is_our_worker(worker),
            "{what}: the worker {worker} is gone"
        );
        assert_eq!(
            children(master_pid),
            [worker],
            "{what}: the master's children"
        );
        let log = server.master().stderr();
        for bad in [
            "WORKER TIMEOUT",
            "Traceback",
            "was sent",
            "exited with code",
        ] {
            assert!(!log.contains(bad), "{what}: {bad:?} in the log:\n{log}");
        }
        Some(timing)
    });
}

/// A gunicorn master recycling its workers, on every interpreter: attached,
/// with a watch on `Arbiter.spawn_worker` (the call that forks), while
/// requests make it replace its workers. The new workers hold none of the
/// agent's sockets (the master's sockets that came with the attach), the
/// watch sees the forks, and the master stays attachable and detachable.
#[test]
fn gunicorn_master_recycling_workers_stays_attachable() {
    every_server_interpreter("gunicorn master recycling workers", |python, site| {
        let what = format!("{} gunicorn recycling", python.id);
        let state = State::new(&format!("recycling-gunicorn-{}", python.id));
        let mut server =
            ForkingServer::new(start_server(python, site, "gunicorn-recycling", &what));
        let master_pid = server.master().pid();
        let pid_text = master_pid.to_string();
        let port = server_port(server.master_mut(), &what);
        let deadline = Instant::now() + START_LIMIT;
        while children(master_pid).len() < 2 {
            assert!(
                Instant::now() < deadline,
                "{what}: two workers never booted"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let first_workers = children(master_pid);
        for &worker in &first_workers {
            server.remember_worker(worker);
        }
        let before_attach = sockets(master_pid);

        let timing = attach(&state, master_pid, &what);
        let mut watch = common::Streaming::start(
            &state,
            &[
                "watch",
                "gunicorn.arbiter.Arbiter.spawn_worker",
                "--pid",
                &pid_text,
            ],
        );
        // The probe is in place once `reset --list` shows it.
        let deadline = Instant::now() + LIMIT;
        loop {
            let listed = run(&state, &["reset", "--list", "--pid", &pid_text], LIMIT);
            if listed.last().to_string().contains("spawn_worker") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the watch never showed in reset --list: {:#?}",
                watch.lines()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let agent_sockets: Vec<u64> = sockets(master_pid)
            .difference(&before_attach)
            .copied()
            .collect();
        assert!(!agent_sockets.is_empty(), "{what}: no agent socket seen");

        // 24 requests: each worker is replaced after 4 of them.
        for round in 0..24 {
            assert_serves(port, &format!("r{round}"), None, &what);
        }
        let forks = watch.observations(3, LIMIT);
        assert!(forks >= 3, "{what}: the watch saw {forks} forks, not 3");
        // The new workers, once settled: the same two for a second (a child
        // holds its parent's descriptors for the moment between the fork
        // and its fork hook).
        let deadline = Instant::now() + START_LIMIT;
        let workers = loop {
            let seen = children(master_pid);
            std::thread::sleep(Duration::from_secs(1));
            let workers = children(master_pid);
            if workers == seen
                && workers.len() == 2
                && !workers.iter().any(|w| first_workers.contains(w))
            {
                break workers;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: the workers were not replaced: {first_workers:?} -> {workers:?}"
            );
        };
        for &worker in &workers {
            server.remember_worker(worker);
            let held = sockets(worker);
            let inherited: Vec<&u64> = agent_sockets.iter().filter(|s| held.contains(s)).collect();
            assert!(
                inherited.is_empty(),
                "{what}: worker {worker} holds the agent's sockets {inherited:?} (of {agent_sockets:?}; \
                 the master had {before_attach:?} before the attach, the worker holds {held:?})"
            );
        }

        // The master: still served, still attachable, detachable.
        let listed = run(&state, &["reset", "--list", "--pid", &pid_text], LIMIT);
        assert_eq!(listed.code, 0, "{what}: reset --list: {:#?}", listed.lines);
        assert_eq!(
            listed.last()["type"],
            "result",
            "{what}: {:#?}",
            listed.lines
        );
        let reattached = run(&state, &["attach", &pid_text], LIMIT);
        ok(&reattached, &format!("{what}: attach again"));
        assert_eq!(reattached.last()["data"]["reused"], true, "{what}");
        detach(&state, python, master_pid, &what);
        let _ = watch.exit_code(LIMIT);
        assert_serves(port, "detached", None, &what);
        assert!(server.master_mut().is_alive(), "{what}: the master died");
        let log = server.master().stderr();
        for bad in ["WORKER TIMEOUT", "Traceback", "was sent"] {
            assert!(!log.contains(bad), "{what}: {bad:?} in the log:\n{log}");
        }
        Some(format!("{timing}; {forks}+ forks watched"))
    });
}

/// CLOCK_MONOTONIC in seconds: `time.monotonic()` in the target.
fn monotonic() -> f64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime(2) writing into a local timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    now.tv_sec as f64 + now.tv_nsec as f64 / 1e9
}

/// One finished wait of `timed_waits.py`.
#[derive(Debug)]
struct Wait {
    kind: String,
    rc: i64,
    errno: i64,
    start: f64,
    end: f64,
}

const WAIT_KINDS: [&str; 5] = ["select", "poll", "nanosleep", "cselect", "condition"];

fn waits(target: &TargetProcess) -> Vec<Wait> {
    let text = fs::read_to_string(target.host_dir().join("waits.jsonl")).unwrap_or_default();
    text.lines()
        // A line being written has no newline yet: only whole lines parse.
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| Wait {
            kind: v["kind"].as_str().unwrap_or("?").to_owned(),
            rc: v["rc"].as_i64().unwrap_or(i64::MIN),
            errno: v["errno"].as_i64().unwrap_or(i64::MIN),
            start: v["start"].as_f64().unwrap_or(f64::NAN),
            end: v["end"].as_f64().unwrap_or(f64::NAN),
        })
        .collect()
}

/// Waits until every kind of wait has finished once after `after`.
fn wait_for_waits(target: &mut TargetProcess, after: f64, what: &str) {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let seen = waits(target);
        let done = WAIT_KINDS
            .iter()
            .all(|kind| seen.iter().any(|w| w.kind == *kind && w.start > after));
        if done {
            return;
        }
        assert!(
            target.is_alive(),
            "{what}: died; stderr:\n{}",
            target.stderr()
        );
        assert!(
            Instant::now() < deadline,
            "{what}: not every kind of wait ended within {START_LIMIT:?}: {seen:?}; stderr:\n{}",
            target.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Threads waiting with 1 s timeouts, attached and detached in the middle
/// of their waits: every wait lasted its full second and returned as a
/// timeout, none with EINTR.
#[test]
fn timed_waits_keep_their_length_and_see_no_eintr() {
    every_interpreter("timed waits through attach and detach", |python| {
        let what = format!("{} timed_waits.py", python.id);
        let state = State::new(&format!("timed-waits-{}", python.id));
        let mut target = TargetProcess::spawn(python, &script("timed_waits.py"), &[], &[])
            .unwrap_or_else(|e| panic!("{what}: cannot start timed_waits.py: {e}"));
        let pid = target.pid();
        wait_for_waits(&mut target, 0.0, &what);

        let attach_started = monotonic();
        let timing = attach(&state, pid, &what);
        let attached = monotonic();
        let names = thread_names(&state, pid, &what);
        for name in ["MainThread", "poll", "nanosleep", "cselect", "condition"] {
            assert!(names.iter().any(|n| n == name), "{what}: {names:?}");
        }
        let detach_started = monotonic();
        detach(&state, python, pid, &what);
        let detached = monotonic();
        wait_for_waits(&mut target, detached, &what);
        assert!(target.is_alive(), "{what}: died");

        let all = waits(&target);
        let mut bad = Vec::new();
        let mut spanning = BTreeMap::new();
        let mut spanning_detach = BTreeMap::new();
        for wait in &all {
            let elapsed = wait.end - wait.start;
            if wait.rc != 0 || wait.errno != 0 || elapsed.is_nan() || elapsed < WAIT - EPSILON {
                let eintr = if wait.errno == i64::from(libc::EINTR) {
                    " (EINTR)"
                } else {
                    ""
                };
                bad.push(format!(
                    "{} returned {} errno {}{eintr} after {elapsed:.4} s (started {:.3} s \
                     after the attach began)",
                    wait.kind,
                    wait.rc,
                    wait.errno,
                    wait.start - attach_started
                ));
            }
            // In flight while the attach ran (the detach only talks to the
            // agent over its socket, but count it too).
            let during = |from: f64, to: f64| wait.start < to && wait.end > from;
            if during(attach_started, attached) {
                *spanning.entry(wait.kind.clone()).or_insert(0) += 1;
            }
            if during(detach_started, detached) {
                *spanning_detach.entry(wait.kind.clone()).or_insert(0) += 1;
            }
        }
        assert!(
            bad.is_empty(),
            "{what}: waits that did not end as timeouts of {WAIT} s:\n  {}\n(attach {:.3}..{:.3}, \
             detach {:.3}..{:.3})",
            bad.join("\n  "),
            attach_started,
            attached,
            detach_started,
            detached
        );
        for kind in WAIT_KINDS {
            assert!(
                spanning.contains_key(kind),
                "{what}: no {kind} wait was in flight during the attach \
                 ({attach_started:.3}..{attached:.3}): {all:?}"
            );
        }
        let stderr = target.stderr();
        assert!(stderr.is_empty(), "{what}: stderr:\n{stderr}");
        Some(format!(
            "{timing}; {} waits checked, in flight during the attach {spanning:?}, \
             during the detach {spanning_detach:?}",
            all.len()
        ))
    });
}
