//! The agent's own Python test suite (`peeka-core/agent/tests`), run with
//! every interpreter of the manifest, so the agent is proven on 3.8-3.15.

use std::path::{Path, PathBuf};
use std::{fs, io, thread};

use peeka_testkit::{Interpreter, Manifest};

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == "__pycache__" {
            continue;
        }
        let target = to.join(&name);
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Copies the agent under the interpreter's root and runs its tests there.
fn run_suite(python: &Interpreter) -> Result<(), String> {
    let inside = PathBuf::from(format!(
        "/tmp/peeka-agent-tests-{}-{}",
        std::process::id(),
        python.id
    ));
    let host = python.host_path(&inside);
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("agent");
    copy_tree(&source, &host)
        .map_err(|e| format!("copying the agent to {}: {e}", host.display()))?;
    let output = python
        .command()
        .arg(inside.join("run_tests.py"))
        .output()
        .map_err(|e| e.to_string());
    let _ = fs::remove_dir_all(&host);
    let output = output?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn agent_suite_passes_on_every_interpreter() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let mut selected = Vec::new();
    manifest.for_each_interpreter(|python| selected.push(python.clone()));
    // Two at a time: the suite mostly waits on sockets and threads.
    let mut failures = Vec::new();
    for pair in selected.chunks(2) {
        let handles: Vec<_> = pair
            .iter()
            .cloned()
            .map(|python| thread::spawn(move || (python.id.clone(), run_suite(&python))))
            .collect();
        for handle in handles {
            let (id, result) = handle.join().expect("suite thread panicked");
            if let Err(output) = result {
                failures.push(format!("Python {id}:\n{output}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "agent tests failed:\n{}",
        failures.join("\n")
    );
}
