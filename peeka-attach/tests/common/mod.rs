//! Shared pieces of the attach integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};

use peeka_attach::{AgentFiles, Staging};

/// The test agent: its entry function appends one line to `runs.txt` in
/// the private directory, so a test can count how often it was loaded.
pub(crate) fn marker_agent() -> AgentFiles {
    AgentFiles {
        files: vec![(
            "marker_agent.py".into(),
            include_bytes!("../agents/marker_agent.py").to_vec(),
        )],
        entry_file: "marker_agent.py".into(),
        entry_function: "start".into(),
    }
}

/// How many times the marker agent ran in this staging directory.
pub(crate) fn marker_runs(staging: &Staging) -> usize {
    std::fs::read_to_string(staging.host_dir.join("runs.txt"))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// A target script from `tests/targets/`.
pub(crate) fn target_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/targets")
        .join(name)
}

/// The four target shapes every attach method is tested against.
pub(crate) const TARGETS: [&str; 4] = ["busy.py", "sleeper.py", "blocked_main.py", "threads20.py"];
