//! The target is killed in the middle of an attach: `attach()` notices at
//! once, says so (`AttachError::TargetExited`), and removes the private
//! directory it made, on real interpreters.
//!
//! Two moments, each with the kill landing in one of the common path's
//! wait loops:
//!
//! - while the agent loads: the bootstrap has claimed the attach and the
//!   agent's entry function takes long (a slow agent), so `attach()` waits
//!   for the status file (3.8, 3.11, 3.12 by ptrace; 3.14 by PEP 768). The
//!   killed target is left a zombie, not reaped, while `attach()` runs.
//! - while no thread runs Python (3.14, `all_blocked.py`, `--method
//!   pep768`): every PEP 768 request stays pending and the backend waits
//!   for the claim. The killed target is reaped at once, so `/proc/PID`
//!   disappears.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peeka_attach::attach::{attach, AttachOptions, Attached};
use peeka_attach::{AgentFiles, AttachError, Method, MethodChoice};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};

/// How soon after the kill `attach()` must have returned.
const NOTICE_WITHIN: Duration = Duration::from_secs(1);

/// The attach timeout: far longer than the test waits, so that a loop that
/// ignores the death is caught.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);

/// An agent whose entry function takes a minute: the bootstrap claims the
/// attach at once, then no status is written for a long time.
fn slow_agent() -> AgentFiles {
    AgentFiles {
        files: vec![(
            "slow_agent.py".into(),
            b"import time\n\ndef start(directory, token):\n    time.sleep(60)\n    return {}\n"
                .to_vec(),
        )],
        entry_file: "slow_agent.py".into(),
        entry_function: "start".into(),
    }
}

fn spawn(python: &Interpreter, script: &str) -> TargetProcess {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/targets")
        .join(script);
    TargetProcess::spawn(python, &path, &[], &[])
        .unwrap_or_else(|e| panic!("{} {script}: cannot start the target: {e}", python.id))
}

/// The private directory of `pid`, as the host sees it.
fn private_dir(python: &Interpreter, pid: u32) -> PathBuf {
    python.host_path(Path::new(&format!("/tmp/peeka-{pid}")))
}

/// Whether some thread of the target ran the bootstrap (it made
/// `claimed-<token>` in the private directory).
fn claimed(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("claimed-"))
    })
}

/// Starts `attach(pid)` on its own thread; its result comes on the channel.
fn attach_in_background(
    pid: u32,
    options: AttachOptions,
) -> mpsc::Receiver<Result<Attached, AttachError>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(attach(pid, &options));
    });
    rx
}

fn kill(pid: u32) -> Instant {
    // SAFETY: kill takes two integers.
    assert_eq!(
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) },
        0,
        "cannot kill {pid}"
    );
    Instant::now()
}

/// Waits for the attach's outcome after the kill at `killed`: it must be
/// `TargetExited` within [`NOTICE_WITHIN`], and the private directory gone.
fn assert_noticed(
    outcome: &mpsc::Receiver<Result<Attached, AttachError>>,
    killed: Instant,
    pid: u32,
    dir: &Path,
    what: &str,
) {
    let result = outcome
        .recv_timeout(NOTICE_WITHIN + Duration::from_millis(200))
        .unwrap_or_else(|_| {
            panic!(
                "{what}: attach() had not returned {:?} after the target was killed",
                killed.elapsed()
            )
        });
    let took = killed.elapsed();
    match result {
        Err(AttachError::TargetExited { pid: exited }) => assert_eq!(exited, pid, "{what}"),
        Err(other) => panic!("{what}: expected TargetExited, got: {other}"),
        Ok(attached) => panic!("{what}: the attach succeeded ({:?})", attached.status),
    }
    assert!(
        took <= NOTICE_WITHIN,
        "{what}: attach() returned {took:?} after the kill"
    );
    assert!(
        !dir.exists(),
        "{what}: the private directory {} was left behind",
        dir.display()
    );
    eprintln!("{what}: TargetExited {took:?} after the kill; private directory removed");
}

#[test]
fn a_target_killed_while_the_agent_loads_is_noticed_at_once() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.8", "3.11", "3.12", "3.14"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{} busy.py, killed while the agent loads", python.id);
        let process = spawn(python, "busy.py");
        let pid = process.pid();
        let dir = private_dir(python, pid);
        let mut options = AttachOptions::new(slow_agent());
        options.timeout = ATTACH_TIMEOUT;
        let outcome = attach_in_background(pid, options);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !claimed(&dir) {
            if let Ok(result) = outcome.try_recv() {
                panic!("{what}: attach() ended before the bootstrap ran: {result:?}");
            }
            assert!(Instant::now() < deadline, "{what}: the bootstrap never ran");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Well inside the wait for the status file.
        std::thread::sleep(Duration::from_millis(150));
        let killed = kill(pid);
        // Not reaped: the target stays a zombie while attach() runs.
        assert_noticed(&outcome, killed, pid, &dir, &what);
        drop(process);
    }
}

#[test]
fn a_target_killed_while_no_thread_runs_python_is_noticed_at_once() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.14") else {
        return;
    };
    for delay_ms in [100, 300] {
        let what = format!(
            "{} all_blocked.py (PEP 768, no thread reaches Python), killed after {delay_ms} ms",
            python.id
        );
        let mut process = spawn(python, "all_blocked.py");
        let pid = process.pid();
        let dir = private_dir(python, pid);
        let mut options = AttachOptions::new(slow_agent());
        options.timeout = ATTACH_TIMEOUT;
        // PEP 768 named: `auto` would give way to the ptrace method's
        // GIL-released route after 30 ms, and its sleeping worker thread
        // would claim the attach.
        options.method = MethodChoice::Only(Method::Pep768);
        let outcome = attach_in_background(pid, options);
        std::thread::sleep(Duration::from_millis(delay_ms));
        assert!(
            dir.exists() && !claimed(&dir),
            "{what}: the attach should be waiting for a thread to claim it"
        );
        let killed = kill(pid);
        // Reaped: /proc/PID disappears.
        while process.is_alive() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_noticed(&outcome, killed, pid, &dir, &what);
    }
}
