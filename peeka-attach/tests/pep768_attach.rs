//! The native PEP 768 method against real CPython 3.14 and 3.15 targets.

mod common;

use std::time::{Duration, Instant};

use common::{marker_agent, marker_runs, target_script, TARGETS};
use peeka_attach::pep768::Pep768Injector;
use peeka_attach::{AttachError, BootstrapStatus, InjectRequest, Injector, Staging, Target};
use peeka_testkit::{Manifest, TargetProcess};

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
            let mut process =
                TargetProcess::spawn(python, &target_script(script), &[], &[]).unwrap();
            let target = Target::inspect(process.pid()).unwrap();
            let staging = Staging::prepare(&target, &marker_agent()).unwrap();
            let started = Instant::now();
            let request = InjectRequest {
                target: &target,
                staging: &staging,
                deadline: started + Duration::from_secs(10),
            };
            Pep768Injector
                .inject(&request)
                .unwrap_or_else(|e| panic!("{minor} {script}: {e}"));
            let claimed_after = started.elapsed();
            let status = staging.wait_status(Instant::now() + Duration::from_secs(5));
            assert!(
                matches!(status, Some(BootstrapStatus::Loaded(_))),
                "{minor} {script}: {status:?}"
            );
            // Let any leftover request fire if one was not withdrawn.
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(
                marker_runs(&staging),
                1,
                "{minor} {script}: the agent must load exactly once"
            );
            assert!(process.is_alive(), "{minor} {script}: target died");
            assert_eq!(
                process.stderr(),
                "",
                "{minor} {script}: target printed errors"
            );
            eprintln!("pep768 {minor} {script}: claimed after {claimed_after:?}");
            staging.remove_all();
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
    let mut process = TargetProcess::spawn(
        python,
        &target_script("sleeper.py"),
        &[],
        &[("PYTHON_DISABLE_REMOTE_DEBUG", "1")],
    )
    .unwrap();
    let target = Target::inspect(process.pid()).unwrap();
    let staging = Staging::prepare(&target, &marker_agent()).unwrap();
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
    staging.remove_all();
}
