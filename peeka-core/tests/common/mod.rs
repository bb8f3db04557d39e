//! Shared pieces of the client's integration tests: the target service,
//! attaching to it, and the test fixture command `tick` (see
//! `tests/targets/service.py`).
#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use peeka_core::client::{
    AttachConfig, AttachReport, ClientError, ErrorCode, Session, Subscription,
};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde_json::Value;

/// Starts `tests/targets/service.py` with `python` (`args` after the script).
pub(crate) fn spawn_service(python: &Interpreter, args: &[&str]) -> TargetProcess {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/service.py");
    TargetProcess::spawn(python, &script, args, &[])
        .unwrap_or_else(|e| panic!("{}: cannot start the service: {e}", python.id))
}

/// Attaches to `process`, checking the report of a first attach.
pub(crate) fn attach(python: &Interpreter, process: &TargetProcess) -> (Session, AttachReport) {
    let (session, report) = Session::attach(process.pid(), &AttachConfig::default())
        .unwrap_or_else(|e| panic!("{}: attach failed: {e}\n{}", python.id, process.stderr()));
    assert!(
        !report.reused,
        "{}: a first attach reused an agent",
        python.id
    );
    assert!(report.method.is_some(), "{}", python.id);
    assert_eq!(report.python, python.version, "{}", python.id);
    (session, report)
}

/// The agent's private directory of `process`, as this process sees it.
pub(crate) fn private_dir(process: &TargetProcess) -> std::path::PathBuf {
    let (_, socket) = peeka_core::client::agent_paths(process.pid()).unwrap();
    socket.parent().unwrap().to_path_buf()
}

/// Opens the fixture stream `tick` with `params`, waiting (bounded) until
/// the service has registered it with a freshly loaded agent.
pub(crate) fn tick(session: &Session, params: Value) -> Subscription<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match session.subscribe("tick", params.clone()) {
            Ok(subscription) => return subscription,
            Err(ClientError::Agent {
                code: ErrorCode::UnknownCommand,
                ..
            }) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("tick: {e}"),
        }
    }
}

/// The interpreters of the manifest (none, with a banner, when there is no
/// manifest).
pub(crate) fn interpreters() -> Vec<Interpreter> {
    let Some(manifest) = Manifest::load_or_skip() else {
        return Vec::new();
    };
    let mut selected = Vec::new();
    manifest.for_each_interpreter(|python| selected.push(python.clone()));
    selected
}

/// Runs `test` on every interpreter, two at a time (the tests mostly wait
/// on the targets), and fails with every interpreter's failure.
pub(crate) fn on_every_interpreter(test: fn(&Interpreter)) {
    let mut failures = Vec::new();
    for pair in interpreters().chunks(2) {
        let handles: Vec<_> = pair
            .iter()
            .cloned()
            .map(|python| {
                thread::spawn(move || {
                    let started = Instant::now();
                    let outcome = std::panic::catch_unwind(|| test(&python));
                    eprintln!(
                        "Python {}: {:?} in {:.1?}",
                        python.id,
                        outcome.is_ok(),
                        started.elapsed()
                    );
                    (python.id.clone(), outcome)
                })
            })
            .collect();
        for handle in handles {
            let (id, outcome) = handle.join().unwrap();
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                failures.push(format!("Python {id}: {message}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Waits (bounded) until `condition` holds.
pub(crate) fn eventually(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(10));
    }
}
