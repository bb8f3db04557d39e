//! The native PEP 768 method against real CPython 3.14 and 3.15 targets.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_alive_and_quiet, spawn_target, spawn_with_remote_debug_disabled, PreparedTarget, TARGETS,
};
use peeka_attach::pep768::Pep768Injector;
use peeka_attach::{AttachError, Injector};
use peeka_testkit::Manifest;

#[test]
fn runs_the_bootstrap_exactly_once_on_every_target_shape() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.14", "3.15"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        for script in TARGETS {
            let what = format!("{minor} {script}");
            let mut prepared = PreparedTarget::stage(spawn_target(python, script), what.clone());
            let (result, claimed_after) =
                prepared.inject_timed(&Pep768Injector, Duration::from_secs(10));
            result.unwrap_or_else(|e| panic!("{what}: {e}"));
            // Let any leftover request fire if one was not withdrawn.
            prepared.assert_loaded_exactly_once(Duration::from_secs(5), Duration::from_millis(200));
            assert_alive_and_quiet(&mut prepared.process, &what);
            eprintln!("pep768 {what}: claimed after {claimed_after:?}");
        }
    }
}

#[test]
fn refuses_a_target_that_disabled_remote_debugging() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.14") else {
        return;
    };
    let mut prepared = PreparedTarget::stage(
        spawn_with_remote_debug_disabled(python),
        "3.14 sleeper.py (remote debugging disabled)",
    );
    let err = Pep768Injector
        .inject(&prepared.request(Instant::now() + Duration::from_secs(5)))
        .unwrap_err();
    assert!(
        matches!(err, AttachError::RemoteDebugDisabled { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("PYTHON_DISABLE_REMOTE_DEBUG=1"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(prepared.marker_runs(), 0);
    assert!(prepared.process.is_alive());
}
