//! The native PEP 768 method against real CPython 3.14 and 3.15 targets.

mod common;

use std::time::{Duration, Instant};

use common::{
    assert_alive_and_quiet, assert_loaded_exactly_once, marker_runs, spawn_target,
    spawn_target_with, StagingDir, TARGETS,
};
use peeka_attach::pep768::Pep768Injector;
use peeka_attach::{AttachError, InjectRequest, Injector, Target};
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
            let mut process = spawn_target(python, script);
            let target = Target::inspect(process.pid()).unwrap();
            let staging = StagingDir::marker(&target);
            let started = Instant::now();
            let request = InjectRequest {
                target: &target,
                staging: &staging,
                deadline: started + Duration::from_secs(10),
            };
            Pep768Injector
                .inject(&request)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            let claimed_after = started.elapsed();
            // Let any leftover request fire if one was not withdrawn.
            assert_loaded_exactly_once(
                &staging,
                Duration::from_secs(5),
                Duration::from_millis(200),
                &what,
            );
            assert_alive_and_quiet(&mut process, &what);
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
    let mut process = spawn_target_with(
        python,
        "sleeper.py",
        &[],
        &[("PYTHON_DISABLE_REMOTE_DEBUG", "1")],
    );
    let target = Target::inspect(process.pid()).unwrap();
    let staging = StagingDir::marker(&target);
    let request = InjectRequest {
        target: &target,
        staging: &staging,
        deadline: Instant::now() + Duration::from_secs(5),
    };
    let err = Pep768Injector.inject(&request).unwrap_err();
    assert!(
        matches!(err, AttachError::RemoteDebugDisabled { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("PYTHON_DISABLE_REMOTE_DEBUG=1"),
        "{err}"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(marker_runs(&staging), 0);
    assert!(process.is_alive());
}
