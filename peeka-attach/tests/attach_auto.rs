//! `attach()` end to end with `auto` method selection, on every
//! interpreter of the manifest, plus the targets it must refuse.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    assert_alive_and_quiet, marker_agent, marker_runs, spawn_target,
    spawn_with_remote_debug_disabled, step_names,
};
use peeka_attach::attach::{attach, AttachOptions};
use peeka_attach::{
    AgentFiles, AttachError, BootstrapStatus, InspectError, Method, Staging, Target,
};
use peeka_testkit::Manifest;

fn resident_agent() -> AgentFiles {
    AgentFiles {
        files: vec![(
            "resident_agent.py".into(),
            include_bytes!("agents/resident_agent.py").to_vec(),
        )],
        entry_file: "resident_agent.py".into(),
        entry_function: "start".into(),
    }
}

#[test]
fn auto_picks_the_right_method_and_reports_every_step() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let mut process = spawn_target(python, "busy.py");
        let attached = attach(process.pid(), &AttachOptions::new(marker_agent()))
            .unwrap_or_else(|e| panic!("{}: {e}", python.id));
        let minor: u32 = python.minor.trim_start_matches("3.").parse().unwrap();
        let expected = if minor >= 14 {
            Method::Pep768
        } else {
            Method::Ptrace
        };
        assert_eq!(attached.method, expected, "{}", python.id);
        assert!(
            matches!(attached.status, BootstrapStatus::Loaded(_)),
            "{}: {:?}",
            python.id,
            attached.status
        );
        let names = step_names(&attached.timeline);
        assert!(
            names.contains(&"inspect target") && names.contains(&"wait for the agent"),
            "{names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(marker_runs(&attached.staging), 1, "{}", python.id);
        // The bootstrap script of this attach is gone: a late request finds nothing.
        assert!(!attached
            .staging
            .host_dir
            .join(attached.staging.script.file_name().unwrap())
            .exists());
        assert_alive_and_quiet(&mut process, &python.id);
        eprintln!(
            "{}: {:?} in {:?}",
            python.id,
            attached.method,
            attached.timeline.total()
        );
        attached.staging.remove_all();
    });
}

#[test]
fn a_second_attach_finds_the_resident_agent() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.11", "3.14"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let process = spawn_target(python, "sleeper.py");
        let options = AttachOptions::new(resident_agent());
        let first = attach(process.pid(), &options).unwrap();
        assert!(
            matches!(first.status, BootstrapStatus::Loaded(_)),
            "{minor}: {:?}",
            first.status
        );
        let second = attach(process.pid(), &options).unwrap();
        assert_eq!(second.status, BootstrapStatus::AlreadyRunning, "{minor}");
        assert!(second.staging.reused);
        assert_eq!(
            marker_runs(&second.staging),
            1,
            "{minor}: the agent must not load twice"
        );
        second.staging.remove_all();
    }
}

#[test]
fn bad_targets_are_refused_and_left_alone() {
    let options = AttachOptions::new(marker_agent());
    let err = attach(u32::MAX - 1, &options).unwrap_err();
    assert!(
        matches!(
            err,
            AttachError::Inspect(InspectError::NoSuchProcess { .. })
        ),
        "{err}"
    );

    let mut sleeper = Command::new("sleep")
        .arg("30")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let err = attach(sleeper.id(), &options).unwrap_err();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(
        matches!(err, AttachError::Inspect(InspectError::NotCPython { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("sleep"), "{err}");

    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.14") else {
        return;
    };
    let mut process = spawn_with_remote_debug_disabled(python);
    let err = attach(process.pid(), &options).unwrap_err();
    assert!(
        matches!(err, AttachError::RemoteDebugDisabled { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("PYTHON_DISABLE_REMOTE_DEBUG"),
        "{err}"
    );
    // Nothing was staged in the target's /tmp and it runs on.
    let target = Target::inspect(process.pid()).unwrap();
    assert!(!Path::new(&target.host_path(&Staging::target_dir_for(&target))).exists());
    assert!(process.is_alive());
    assert_eq!(process.stderr(), "");
}
