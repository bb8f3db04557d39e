//! `peeka-cli run` end to end on every interpreter of the manifest: a
//! function that runs only at start-up (in the script, and in a module the
//! script imports) is observed with the right values; the program's output
//! and exit code pass through; nothing is left in /tmp.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{binary, state_dir};
use peeka_testkit::{Interpreter, Manifest};
use serde_json::Value;

const LIMIT: Duration = Duration::from_secs(60);

struct Outcome {
    code: i32,
    lines: Vec<Value>,
    program: Vec<String>,
    stderr: String,
}

impl Outcome {
    fn observations(&self) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["type"] == "observation")
            .map(|l| &l["data"])
            .collect()
    }

    fn event(&self, name: &str) -> Option<&Value> {
        self.lines
            .iter()
            .find(|l| l["type"] == "event" && l["event"] == name)
    }

    fn pid(&self) -> u32 {
        let status = self
            .lines
            .iter()
            .find(|l| l["type"] == "status" && l["pid"].is_u64())
            .expect("a status line with the pid");
        u32::try_from(status["pid"].as_u64().unwrap()).unwrap()
    }
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A wrapper that starts `python` as the manifest says (chroot included).
fn wrapper(python: &Interpreter, state: &Path) -> PathBuf {
    let path = state.join("python");
    let argv: Vec<String> = python.argv.iter().map(|a| shell_quote(a)).collect();
    fs::write(
        &path,
        format!("#!/bin/sh\nexec {} \"$@\"\n", argv.join(" ")),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A wrapper like [`wrapper`] that first leaves in the interpreter's
/// `/tmp/peeka-<pid>` (its pid is the shell's, kept by `exec`) what a killed
/// earlier process with the same pid could have left: stale control files.
fn stale_wrapper(python: &Interpreter, state: &Path) -> PathBuf {
    let path = state.join("python-after-a-stale-directory");
    let argv: Vec<String> = python.argv.iter().map(|a| shell_quote(a)).collect();
    let tmp = python.host_path(Path::new("/tmp"));
    fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             d={}/peeka-$$\n\
             mkdir -p -m 700 \"$d\"\n\
             echo stale > \"$d/run.ready\"\n\
             printf '/nonexistent/bootstrap.py\\nstale\\n' > \"$d/run.load\"\n\
             exec {} \"$@\"\n",
            shell_quote(tmp.to_str().unwrap()),
            argv.join(" ")
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run_cli(state: &Path, env: &[(&str, &Path)], args: &[&str]) -> Outcome {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("XDG_STATE_HOME", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("`peeka-cli {args:?}` did not end within {LIMIT:?}"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = Vec::new();
    let mut program = Vec::new();
    for line in stdout.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(value) if line.starts_with('{') => lines.push(value),
            _ => program.push(line.to_owned()),
        }
    }
    Outcome {
        code: output.status.code().unwrap_or(-1),
        lines,
        program,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn check_clean(python: &Interpreter, outcome: &Outcome) {
    let dir = python.host_path(Path::new(&format!("/tmp/peeka-{}", outcome.pid())));
    assert!(
        !dir.exists(),
        "{}: {} was left behind",
        python.id,
        dir.display()
    );
}

fn check_program(python: &Interpreter, outcome: &Outcome, args: &str) {
    let id = &python.id;
    assert_eq!(
        outcome.code, 7,
        "{id}: {:?} {}",
        outcome.lines, outcome.stderr
    );
    assert_eq!(
        outcome.program,
        vec![format!("program-output 5 1 {args}")],
        "{id}: the program's output"
    );
    let exited = outcome.event("exited").expect("an exited event");
    assert_eq!(exited["data"]["code"], 7, "{id}");
    check_clean(python, outcome);
}

fn run_on(python: &Interpreter) {
    let id = &python.id;
    let state = state_dir(&format!("run-{id}"));
    let inside = PathBuf::from(format!("/tmp/peeka-run-test-{}-{id}", std::process::id()));
    let host = python.host_path(&inside);
    let _ = fs::remove_dir_all(&host);
    fs::create_dir_all(&host).unwrap();
    let targets = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/run");
    for name in ["run_app.py", "run_helper.py"] {
        fs::copy(targets.join(name), host.join(name)).unwrap();
    }
    let python_path = wrapper(python, &state);
    let python_arg = python_path.to_str().unwrap();
    let script = inside.join("run_app.py");
    let script = script.to_str().unwrap();

    // A function of the script itself, defined and called at the top.
    let outcome = run_cli(
        &state,
        &[],
        &[
            "run",
            "--python",
            python_arg,
            script,
            "one",
            "two",
            "--",
            "watch",
            "__main__.load_config",
            "-x",
            "2",
        ],
    );
    check_program(python, &outcome, "one two");
    let started = outcome.event("started").expect("started");
    assert_eq!(started["data"]["pending"], true, "{id}");
    let resolved = outcome.event("resolved").expect("resolved");
    assert_eq!(
        resolved["data"]["matched"][0]["name"], "__main__.load_config",
        "{id}"
    );
    let observations = outcome.observations();
    assert_eq!(observations.len(), 1, "{id}: {:?}", outcome.lines);
    let seen = observations[0];
    assert_eq!(seen["func_name"], "__main__.load_config", "{id}");
    assert_eq!(
        seen["params"],
        serde_json::json!(["/etc/app.toml", 5]),
        "{id}"
    );
    assert_eq!(
        seen["returnObj"],
        serde_json::json!({"path": "/etc/app.toml", "retries": 5}),
        "{id}"
    );
    assert_eq!(seen["thread_name"], "MainThread", "{id}");
    assert_eq!(
        outcome.event("stream_end").unwrap()["data"]["reason"],
        "detached",
        "{id}"
    );

    // A function of a module the script imports, called by the script at
    // start-up (its call while the module itself is imported comes before
    // the module is complete, so it is not seen: the first is `a=1`).
    let outcome = run_cli(
        &state,
        &[],
        &[
            "run",
            "--python",
            python_arg,
            script,
            "--",
            "watch",
            "run_helper.parse",
            "-n",
            "1",
        ],
    );
    check_program(python, &outcome, "");
    let observations = outcome.observations();
    assert_eq!(observations.len(), 1, "{id}: {:?}", outcome.lines);
    assert_eq!(
        observations[0]["params"],
        serde_json::json!(["a=1"]),
        "{id}"
    );
    assert_eq!(
        observations[0]["returnObj"],
        serde_json::json!({"a": 1}),
        "{id}"
    );
    assert_eq!(
        outcome.event("stream_end").unwrap()["data"]["reason"],
        "count_reached",
        "{id}"
    );

    // `-m`, found through PYTHONPATH.
    let outcome = run_cli(
        &state,
        &[("PYTHONPATH", &inside)],
        &[
            "run",
            "--python",
            python_arg,
            "-m",
            "run_app",
            "x",
            "--",
            "watch",
            "__main__.load_config",
        ],
    );
    check_program(python, &outcome, "x");
    let observations = outcome.observations();
    assert_eq!(observations.len(), 1, "{id}: {:?}", outcome.lines);
    assert_eq!(
        observations[0]["params"],
        serde_json::json!(["/etc/app.toml", 5]),
        "{id}"
    );

    // A directory left behind by an earlier process with the same pid is
    // not taken for this one's, and its stale files are not obeyed.
    let stale = stale_wrapper(python, &state);
    let outcome = run_cli(
        &state,
        &[],
        &[
            "run",
            "--python",
            stale.to_str().unwrap(),
            script,
            "one",
            "two",
            "--",
            "watch",
            "__main__.load_config",
        ],
    );
    check_program(python, &outcome, "one two");
    assert_eq!(outcome.observations().len(), 1, "{id}: {:?}", outcome.lines);

    let _ = fs::remove_dir_all(&host);
    let _ = fs::remove_dir_all(&state);
    eprintln!("{id}: run passed");
}

#[test]
fn run_observes_start_up_code_on_every_interpreter() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    manifest.for_each_interpreter(run_on);
}
