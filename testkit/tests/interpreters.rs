//! The provisioned interpreters are what the manifest says they are.
//!
//! Needs `scripts/provision-pythons.sh` to have run; otherwise every test here
//! skips loudly (or fails with `CI=true` / `PEEKA_REQUIRE_ALL_PYTHONS=1`).

use peeka_testkit::{Interpreter, Layout, Manifest, SUPPORTED_MINORS};
use std::path::Path;

/// Appended to failures caused by a stale manifest or an unmounted chroot.
const FIX: &str = "re-run scripts/provision-pythons.sh";

/// Runs `python -c code` and returns its trimmed stdout.
fn run(python: &Interpreter, code: &str) -> String {
    let output = python
        .command()
        .args(["-c", code])
        .output()
        .unwrap_or_else(|e| panic!("{}: cannot start {:?}: {e}; {FIX}", python.id, python.argv));
    assert!(
        output.status.success(),
        "{}: {:?} -c {code:?} failed ({}): {}; {FIX}",
        python.id,
        python.argv,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn every_supported_minor_is_listed() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in SUPPORTED_MINORS {
        if let Some(python) = manifest.require(minor) {
            assert_eq!(python.minor, minor);
            assert!(
                python.version.starts_with(&format!("{minor}.")),
                "{} has version {}",
                python.id,
                python.version
            );
        }
    }
    for python in &manifest.interpreters {
        assert!(
            SUPPORTED_MINORS.contains(&python.minor.as_str()),
            "{} is not a supported minor",
            python.id
        );
        assert_eq!(python.implementation, "CPython");
    }
}

#[test]
fn every_interpreter_runs_and_reports_the_manifest_version() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(|python| {
        let version = run(python, "import platform; print(platform.python_version())");
        assert_eq!(
            version, python.version,
            "{} reports another version",
            python.id
        );
        let executable = run(python, "import sys; print(sys.executable)");
        assert_eq!(Path::new(&executable), python.executable, "{}", python.id);
        assert!(
            python.host_path(&python.executable).exists(),
            "{}: {} is not on the host",
            python.id,
            python.host_path(&python.executable).display()
        );
    });
}

#[test]
fn debian_sid_builds_are_static_and_chrooted() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.14", "3.15"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        assert!(python.is_chrooted(), "{} should run in a chroot", python.id);
        assert_ne!(python.root, Path::new("/"));
        assert_eq!(python.layout, Layout::Static, "{}", python.id);
        assert_eq!(python.libpython, None, "{}", python.id);
        // A target in the chroot sees the chroot's /tmp; /proc must be mounted.
        let tmp = python.host_path(Path::new("/tmp"));
        assert!(tmp.is_dir(), "{} is missing; {FIX}", tmp.display());
        let proc_self = python.host_path(Path::new("/proc/self"));
        assert!(
            proc_self.exists(),
            "{} is missing: /proc not mounted",
            proc_self.display()
        );
    }
}

#[test]
fn pyenv_builds_are_shared_with_libpython_on_the_host() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let pyenv: Vec<_> = manifest
        .interpreters
        .iter()
        .filter(|python| {
            python
                .executable
                .to_string_lossy()
                .contains("/.pyenv/versions/")
        })
        .collect();
    for python in pyenv {
        assert_eq!(python.layout, Layout::Shared, "{}", python.id);
        assert!(!python.is_chrooted());
        let libpython = python
            .libpython
            .as_deref()
            .expect("a shared build maps libpython");
        let host = python.host_path(libpython);
        assert!(
            host.exists(),
            "{}: {} does not exist",
            python.id,
            host.display()
        );
        assert_eq!(python.symbol_file(), libpython);
    }
}

#[test]
fn debian_host_build_is_static() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.get("3.11-debian") else {
        // Only recorded when /usr/bin/python3.11 is not the preferred 3.11.
        return;
    };
    assert_eq!(python.layout, Layout::Static);
    assert_eq!(python.libpython, None);
    assert_eq!(python.symbol_file(), python.executable);
}
