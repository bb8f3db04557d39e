//! Attach latency side by side (issue 14, part 2 and "Checks"): Peeka on
//! every interpreter of the manifest next to two references, in ONE run,
//! interleaved round-robin so that the noise of a shared machine hits
//! every cell alike.
//!
//! Three target shapes, each a fresh process for every measurement (the
//! first attach to a process is what a user waits for):
//!
//! - `busy`: one thread in a CPU-bound loop calling a small function
//!   (`benches/targets/side_busy.py 1`);
//! - `busy20`: 20 such threads (`side_busy.py 20`);
//! - `idle`: a Flask app served by waitress (4 threads), idle, with the
//!   packages `scripts/provision-servers.sh` installed for that interpreter
//!   (`target/peeka-servers.json`, or `$PEEKA_SERVERS_MANIFEST`; the target
//!   gets their directory on `PYTHONPATH`): `side_flask_idle.py`. An
//!   interpreter without them gets a stdlib stand-in of the same shape (main
//!   thread in `select()` with a 1 s timeout, 4 threads waiting on a
//!   `threading.Condition`: `side_stdlib_idle.py`), said on stderr and in
//!   the table. Each is attached at a random moment of its main thread's
//!   1 s `select()` cycle (300 ms after it went idle, plus 0-1 s), as an
//!   operator comes: what waits for the target to run Python waits on
//!   average half a second.
//!
//! The tools, each timed as a whole process, wall clock from spawn until it
//! exits successfully:
//!
//! - Peeka: `target/release/peeka-cli attach PID` (until the agent answers;
//!   must print `success` with a fresh agent; a copy of the binary taken at
//!   the start, so that a rebuild in a shared tree changes nothing midway),
//!   then, untimed, `peeka-cli detach --pid PID`. On the `busy` targets,
//!   between the two, `PEEKA_BENCH_CLI_ROUNDS` round trips of one CLI
//!   command, `peeka-cli reset --list --pid PID`, are timed as well.
//! - The Python implementation (PyPI `peeka` 0.1.20, `sys.remote_exec` on
//!   3.14), run by the manifest's 3.14 interpreter (the sid chroot's
//!   `/usr/bin/python3.14`) as its console script does
//!   (`sys.exit(peeka.cli.main())`), `attach PID` until it returns success
//!   (exit 0 and a `success` line), then its `detach`, untimed. On 3.14
//!   only. It imports itself in the target, so its targets (only those of
//!   its rounds) get its install directory on `PYTHONPATH`.
//! - `py-spy dump --pid PID` (PyPI `py-spy` 0.4.3) on every interpreter: the
//!   floor for reading anything from a process.
//!
//! Before the timed rounds, one untimed warm-up of every tool on a `busy`
//! target of every interpreter (page cache, the Python implementation's
//! bytecode cache). A failure is recorded in its cell, never hidden; a
//! reference that is not installed is skipped with a `*** SKIPPED` line on
//! stderr naming what is missing. Every process started is killed and
//! reaped (and dies with the bench: `PR_SET_PDEATHSIG`); files a failed
//! attach left (`/tmp/peeka-PID` of Peeka, `/tmp/peeka_<session>.*` of the
//! Python implementation) are removed.
//!
//! Run:
//!
//! ```sh
//! bash scripts/provision-pythons.sh && bash scripts/provision-servers.sh
//! bash scripts/provision-bench-references.sh   # py-spy, peeka==0.1.20
//! cargo bench -p peeka-cli --bench attach_side_by_side [-- 3.11 3.14 ...]
//! ```
//!
//! Environment: `PEEKA_BENCH_ROUNDS` (measurements per cell, default 5),
//! `PEEKA_BENCH_CLI_ROUNDS` (CLI round trips per attached `busy` target,
//! default 10), `PEEKA_BENCH_REFS` (where the references are, default
//! `~/.cache/peeka/bench-refs`: its `references.json`),
//! `PEEKA_SERVERS_MANIFEST`. Prints a Markdown table on stdout (medians,
//! p90, ratios) and its progress on stderr. It takes 8-10 minutes with
//! the defaults on a 2-core machine.
//!
//! Not part of `cargo test`: without the `--bench` argument that `cargo
//! bench` passes, it measures nothing.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::fmt::Write as _;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use peeka_testkit::{all_threads_sleep, Interpreter, Manifest, ServersManifest, TargetProcess};
use serde_json::Value;

#[path = "common/support.rs"]
mod support;
use support::{
    die_with_parent, env_count, json_lines, last_line, load_average, output_of, shorten,
};

/// Any timed or cleanup command must end within this (then it is killed
/// and the measurement counts as failed).
const LIMIT: Duration = Duration::from_secs(60);
/// After a busy target printed `ready`: its threads are all running.
const SETTLE: Duration = Duration::from_millis(300);
/// The idle targets' main thread wakes up this often (select() timeout).
const IDLE_CYCLE: Duration = Duration::from_secs(1);
/// An idle server must listen and go idle within this.
const START_LIMIT: Duration = Duration::from_secs(60);
/// The Python implementation's version, as provisioned.
const PYTHON_PEEKA: &str = "peeka 0.1.20";
const PROVISION_REFS: &str = "scripts/provision-bench-references.sh";
/// What the Flask `idle` target imports.
const SERVER_PACKAGES: [&str; 2] = ["flask", "waitress"];

// ---------------------------------------------------------------------------
// Cells.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Busy,
    Busy20,
    Idle,
}

const SHAPES: [Shape; 3] = [Shape::Busy, Shape::Busy20, Shape::Idle];

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Busy => "busy",
            Shape::Busy20 => "busy20",
            Shape::Idle => "idle",
        }
    }

    /// The issue's goal for Peeka's attach, in milliseconds (median).
    fn goal_ms(self) -> f64 {
        match self {
            Shape::Busy => 50.0,
            Shape::Busy20 | Shape::Idle => 100.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Peeka,
    PythonPeeka,
    PySpy,
}

const TOOLS: [Tool; 3] = [Tool::Peeka, Tool::PythonPeeka, Tool::PySpy];

/// The measurements of one (interpreter, shape, tool).
#[derive(Debug, Default)]
struct Cell {
    samples: Vec<Duration>,
    failures: Vec<String>,
    /// Peeka: the methods its attaches used.
    methods: Vec<String>,
    /// Anything else worth a mention (a detach that failed, files left).
    notes: Vec<String>,
}

/// The q quantile of `samples` in milliseconds (the sample at rank
/// round((n-1)q), as the other benches).
fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}

fn median_ms(samples: &[Duration]) -> f64 {
    quantile_ms(samples, 0.5)
}

// ---------------------------------------------------------------------------
// Processes.

/// What a bounded command did.
#[derive(Debug)]
struct Finished {
    /// From just before the spawn until the process exited.
    elapsed: Duration,
    /// Exit code, or `None` when a signal ended it.
    code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// One line on how it ended, with the tail of its output.
    fn describe(&self) -> String {
        let how = if self.timed_out {
            format!("killed after {LIMIT:?}")
        } else if let Some(code) = self.code {
            format!("exit {code}")
        } else {
            format!("signal {}", self.signal.unwrap_or(0))
        };
        let tail = last_line(&self.stderr)
            .or_else(|| last_line(&self.stdout))
            .unwrap_or("no output");
        format!("{how}: {tail}")
    }
}

/// Runs `command` (stdin null, output to files in `scratch`) until it
/// exits, killing it after [`LIMIT`]. The time stops when the process has
/// exited, before it is reaped: the watchdog can never signal a reused pid.
fn run_bounded(mut command: Command, scratch: &Path) -> Result<Finished, String> {
    let out_path = scratch.join("stdout");
    let err_path = scratch.join("stderr");
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env("NO_COLOR", "1");
    die_with_parent(&mut command);
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let pid = child.id();
    // (exited, timed out) and its condition variable, shared with the watchdog.
    let state = Arc::new((Mutex::new((false, false)), Condvar::new()));
    let watchdog = {
        let state = Arc::clone(&state);
        std::thread::spawn(move || {
            let (lock, wake) = &*state;
            let deadline = started + LIMIT;
            let mut guard = lock.lock().unwrap();
            while !guard.0 {
                let now = Instant::now();
                if now >= deadline {
                    // Not reaped yet (the main thread waits for `exited`
                    // before reaping): the pid is still this child's.
                    // SAFETY: kill(2) on our own unreaped child.
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                    guard.1 = true;
                    return;
                }
                guard = wake.wait_timeout(guard, deadline - now).unwrap().0;
            }
        })
    };
    loop {
        // SAFETY: waitid(2) with WNOWAIT on our own child, writing into a
        // zeroed siginfo_t that we own.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let elapsed = started.elapsed();
    {
        let (lock, wake) = &*state;
        lock.lock().unwrap().0 = true;
        wake.notify_all();
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    watchdog.join().unwrap();
    let timed_out = state.0.lock().unwrap().1;
    Ok(Finished {
        elapsed,
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    })
}

/// Shortens a failure to its first line, at most 110 characters.
fn short(reason: &str) -> String {
    shorten(reason, 110)
}

// ---------------------------------------------------------------------------
// What is installed.

fn workspace_dir() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).to_owned()
}

/// The `peeka-cli` binary next to this bench (target/release).
fn peeka_binary() -> PathBuf {
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("peeka-cli")
}

fn skipped(what: &str) {
    eprintln!("\n*** SKIPPED: {what}\n");
}

/// The references `scripts/provision-bench-references.sh` installed.
#[derive(Debug, Default)]
struct References {
    py_spy: Option<PathBuf>,
    py_spy_version: String,
    /// The Python implementation: the interpreter id that runs it and its
    /// directory as that interpreter sees it.
    python_peeka: Option<(String, String)>,
}

fn references_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PEEKA_BENCH_REFS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache")
        });
    cache.join("peeka").join("bench-refs")
}

fn load_references(manifest: &Manifest) -> References {
    let path = references_dir().join("references.json");
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            skipped(&format!(
                "py-spy and the Python implementation ({PYTHON_PEEKA}) are not installed: \
                 cannot read {} ({e}); run {PROVISION_REFS}. Their cells are left out",
                path.display()
            ));
            return References::default();
        }
    };
    let refs: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let reason = |what: &str| {
        refs["missing"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["what"] == what))
            .and_then(|m| m["reason"].as_str())
            .map_or_else(
                || format!("{} does not list it", path.display()),
                str::to_owned,
            )
    };
    let mut found = References::default();
    match refs["py_spy"]["binary"].as_str().map(PathBuf::from) {
        Some(binary) if binary.is_file() => {
            found.py_spy = Some(binary);
            found.py_spy_version = refs["py_spy"]["version"].as_str().unwrap_or("?").to_owned();
        }
        Some(binary) => skipped(&format!(
            "py-spy is not installed: {} is missing (listed in {}); run {PROVISION_REFS}. \
             Its cells are left out",
            binary.display(),
            path.display()
        )),
        None => skipped(&format!(
            "py-spy is not installed: {}; run {PROVISION_REFS}. Its cells are left out",
            reason("py-spy")
        )),
    }
    let peeka = &refs["peeka"];
    match (peeka["interpreter"].as_str(), peeka["dir"].as_str()) {
        (Some(id), Some(dir)) => {
            let init = Path::new(dir).join("peeka").join("__init__.py");
            if manifest.get(id).is_none() {
                skipped(&format!(
                    "the Python implementation ({PYTHON_PEEKA}): its interpreter {id} is not in \
                     the manifest. Its cells are left out"
                ));
            } else if !init.is_file() {
                skipped(&format!(
                    "the Python implementation ({PYTHON_PEEKA}) is not installed: {} is missing; \
                     run {PROVISION_REFS}. Its cells are left out",
                    init.display()
                ));
            } else {
                found.python_peeka = Some((
                    id.to_owned(),
                    peeka["target_dir"].as_str().unwrap_or(dir).to_owned(),
                ));
            }
        }
        _ => skipped(&format!(
            "the Python implementation ({PYTHON_PEEKA}) is not installed: {}; run \
             {PROVISION_REFS}. Its cells are left out",
            reason("peeka")
        )),
    }
    found
}

// ---------------------------------------------------------------------------
// Targets.

/// What the bench knows about one interpreter.
#[derive(Debug)]
struct Setup<'a> {
    python: &'a Interpreter,
    /// waitress and flask's directory as the interpreter sees it, or why
    /// the stdlib stand-in is used.
    servers: Result<String, String>,
}

fn target_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/targets")
        .join(name)
}

/// A fresh target of `shape`, ready to be attached: busy threads running,
/// or the server listening and every thread asleep. `pythonpath` is added
/// in front of the idle server's packages.
fn start_target(
    setup: &Setup<'_>,
    shape: Shape,
    pythonpath: Option<&str>,
) -> Result<TargetProcess, String> {
    let mut path: Vec<&str> = pythonpath.into_iter().collect();
    let (script, args): (&str, &[&str]) = match shape {
        Shape::Busy => ("side_busy.py", &["1"]),
        Shape::Busy20 => ("side_busy.py", &["20"]),
        Shape::Idle => match &setup.servers {
            Ok(dir) => {
                path.push(dir);
                ("side_flask_idle.py", &[])
            }
            Err(_) => ("side_stdlib_idle.py", &[]),
        },
    };
    let joined = path.join(":");
    let env: Vec<(&str, &str)> = if joined.is_empty() {
        Vec::new()
    } else {
        vec![("PYTHONPATH", joined.as_str())]
    };
    let mut target = TargetProcess::spawn_with(
        setup.python,
        &target_script(script),
        args,
        &env,
        die_with_parent,
    )
    .map_err(|e| format!("cannot start {script}: {e}"))?;
    if shape != Shape::Idle {
        std::thread::sleep(SETTLE);
        return Ok(target);
    }
    let deadline = Instant::now() + START_LIMIT;
    let port = target.host_dir().join("port.txt");
    while !(port.exists() && all_threads_sleep(target.pid())) {
        if !target.is_alive() || Instant::now() > deadline {
            return Err(format!(
                "{script} did not listen and go idle within {START_LIMIT:?}: {}",
                last_line(&target.stderr()).unwrap_or("no stderr")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Then a random moment of the main thread's 1 s select() cycle, as an
    // operator would come: a tool that waits for the target to run Python
    // waits for the next wake-up, up to a second, on average half of one.
    std::thread::sleep(SETTLE + random_below(IDLE_CYCLE));
    Ok(target)
}

/// A duration uniformly drawn in `[0, limit)` (std's random hasher keys).
fn random_below(limit: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(bits % nanos)
}

// ---------------------------------------------------------------------------
// The tools.

/// The bench's scratch space: output files, Peeka's remembered target, and
/// the copy of `peeka-cli` that is measured (taken at the start: a rebuild
/// in the shared tree during the run changes nothing).
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
    binary: PathBuf,
}

impl Scratch {
    fn peeka(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env("XDG_STATE_HOME", self.dir.join("state"));
        command
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Where an agent's private directory of process `pid` is, as the host sees
/// it (the targets share the host's pid namespace).
fn peeka_private_dir(python: &Interpreter, pid: u32) -> PathBuf {
    python.host_path(Path::new(&format!("/tmp/peeka-{pid}")))
}

/// One Peeka round on a fresh target: the attach timed; on `busy`, the CLI
/// round trips too (into `round_trips`); then the detach.
fn peeka_round(
    scratch: &Scratch,
    setup: &Setup<'_>,
    shape: Shape,
    cell: &mut Cell,
    round_trips: Option<(&mut Vec<Duration>, usize)>,
) {
    let target = match start_target(setup, shape, None) {
        Ok(target) => target,
        Err(e) => {
            cell.failures.push(format!("target: {e}"));
            return;
        }
    };
    let pid = target.pid();
    let pid_text = pid.to_string();
    let attached = run_bounded(scratch.peeka(&["attach", &pid_text]), &scratch.dir);
    let mut ok = false;
    match attached {
        Ok(done) => {
            let lines = json_lines(&done.stdout);
            let last = lines.last().cloned().unwrap_or(Value::Null);
            if done.success() && last["type"] == "success" && last["data"]["reused"] == false {
                cell.samples.push(done.elapsed);
                let method = last["data"]["method"].as_str().unwrap_or("?").to_owned();
                if !cell.methods.contains(&method) {
                    cell.methods.push(method);
                }
                ok = true;
            } else {
                let reason = format!(
                    "{} (after {:.1} s)",
                    last["error"]
                        .as_str()
                        .map_or_else(|| done.describe(), str::to_owned),
                    done.elapsed.as_secs_f64()
                );
                eprintln!(
                    "  {} {}: peeka-cli attach failed: {reason}",
                    setup.python.id,
                    shape.name()
                );
                cell.failures.push(reason);
            }
        }
        Err(e) => cell.failures.push(e),
    }
    if ok {
        if let Some((trips, count)) = round_trips {
            for _ in 0..count {
                match run_bounded(
                    scratch.peeka(&["reset", "--list", "--pid", &pid_text]),
                    &scratch.dir,
                ) {
                    Ok(done) if done.success() => trips.push(done.elapsed),
                    Ok(done) => eprintln!(
                        "  {}: peeka-cli reset --list failed: {}",
                        setup.python.id,
                        done.describe()
                    ),
                    Err(e) => eprintln!("  {}: peeka-cli reset --list: {e}", setup.python.id),
                }
            }
        }
    }
    // After a failed attach too: it clears what a failed attach may leave.
    match run_bounded(scratch.peeka(&["detach", "--pid", &pid_text]), &scratch.dir) {
        Ok(done) if done.success() || !ok => {}
        Ok(done) => {
            let note = format!("detach failed: {}", done.describe());
            eprintln!("  {} {}: {note}", setup.python.id, shape.name());
            cell.notes.push(note);
        }
        Err(e) => cell.notes.push(format!("detach: {e}")),
    }
    drop(target);
    let private = peeka_private_dir(setup.python, pid);
    if private.exists() {
        cell.notes.push("a private directory was left".to_owned());
        let _ = fs::remove_dir_all(private);
    }
}

/// One round of `py-spy dump` on a fresh target.
fn py_spy_round(
    scratch: &Scratch,
    py_spy: &Path,
    setup: &Setup<'_>,
    shape: Shape,
    cell: &mut Cell,
) {
    let target = match start_target(setup, shape, None) {
        Ok(target) => target,
        Err(e) => {
            cell.failures.push(format!("target: {e}"));
            return;
        }
    };
    let mut command = Command::new(py_spy);
    command.args(["dump", "--pid", &target.pid().to_string()]);
    match run_bounded(command, &scratch.dir) {
        Ok(done) if done.success() => cell.samples.push(done.elapsed),
        Ok(done) => {
            let reason = done.describe();
            eprintln!(
                "  {} {}: py-spy dump failed: {reason}",
                setup.python.id,
                shape.name()
            );
            cell.failures.push(reason);
        }
        Err(e) => cell.failures.push(e),
    }
}

/// The Python implementation's CLI, as its `peeka-cli` console script runs
/// it, with its directory on `PYTHONPATH`.
fn python_peeka(python: &Interpreter, dir: &str, args: &[&str]) -> Command {
    let mut command = python.command();
    command
        .args([
            "-c",
            "import sys; from peeka.cli import main; sys.exit(main())",
        ])
        .args(args)
        .env("PYTHONPATH", dir);
    command
}

/// One round of the Python implementation on a fresh target.
fn python_peeka_round(
    scratch: &Scratch,
    dir: &str,
    setup: &Setup<'_>,
    shape: Shape,
    cell: &mut Cell,
) {
    let python = setup.python;
    let target = match start_target(setup, shape, Some(dir)) {
        Ok(target) => target,
        Err(e) => {
            cell.failures.push(format!("target: {e}"));
            return;
        }
    };
    let pid = target.pid();
    let mut session = None;
    match run_bounded(
        python_peeka(python, dir, &["attach", &pid.to_string()]),
        &scratch.dir,
    ) {
        Ok(done) => {
            let lines = json_lines(&done.stdout);
            let success = lines
                .iter()
                .find(|l| l["type"] == "success" && l["command"] == "attach");
            session = success
                .and_then(|l| l["data"]["socket"].as_str())
                .and_then(|s| s.strip_prefix("/tmp/peeka_"))
                .and_then(|s| s.strip_suffix(".sock"))
                .map(str::to_owned);
            if done.success() && success.is_some() {
                cell.samples.push(done.elapsed);
            } else {
                // Its error line says "Failed to attach to process"; the
                // cause is the last line of the traceback on its stderr.
                let error = lines
                    .iter()
                    .rev()
                    .find_map(|l| l["error"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| done.describe());
                let reason = match last_line(&done.stderr) {
                    Some(cause) if !error.contains(cause) => format!(
                        "{error} ({cause}, after {:.1} s)",
                        done.elapsed.as_secs_f64()
                    ),
                    _ => format!("{error} (after {:.1} s)", done.elapsed.as_secs_f64()),
                };
                eprintln!(
                    "  {} {}: {PYTHON_PEEKA} attach failed: {reason}",
                    python.id,
                    shape.name()
                );
                cell.failures.push(reason);
            }
        }
        Err(e) => cell.failures.push(e),
    }
    if session.is_some() {
        match run_bounded(python_peeka(python, dir, &["detach"]), &scratch.dir) {
            Ok(done) if done.success() => {}
            Ok(done) => {
                let note = format!("its detach failed: {}", done.describe());
                eprintln!("  {} {}: {note}", python.id, shape.name());
                cell.notes.push(note);
            }
            Err(e) => cell.notes.push(format!("its detach: {e}")),
        }
    }
    drop(target);
    // Its files in the target's /tmp (a detach leaves the log; a failed
    // attach may leave more): only those of this target.
    let tmp = python.host_path(Path::new("/tmp"));
    let ours = |name: &str| {
        if let Some(id) = &session {
            return name.starts_with(&format!("peeka_{id}."))
                || name == format!("peeka_agent_{id}.py");
        }
        false
    };
    if let Ok(entries) = fs::read_dir(&tmp) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid_file_is_ours = name.starts_with("peeka_")
                && name.ends_with(".pid")
                && fs::read_to_string(entry.path())
                    .ok()
                    .as_deref()
                    .map(str::trim)
                    == Some(pid.to_string().as_str());
            if ours(&name) {
                let _ = fs::remove_file(entry.path());
            } else if pid_file_is_ours {
                // A session whose attach did not report it: all its files.
                if let Some(id) = name
                    .strip_prefix("peeka_")
                    .and_then(|n| n.strip_suffix(".pid"))
                {
                    for suffix in [".pid", ".sock", ".ready", ".log", ".go", ".import-ready"] {
                        let _ = fs::remove_file(tmp.join(format!("peeka_{id}{suffix}")));
                    }
                    let _ = fs::remove_file(tmp.join(format!("peeka_agent_{id}.py")));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The run.

/// One job of a round.
#[derive(Debug, Clone, Copy)]
struct Job {
    setup: usize,
    shape: Shape,
    tool: Tool,
}

/// Runs one job, into `cells[index]` (and the round trips on Peeka's busy).
fn run_job(
    job: Job,
    setups: &[Setup<'_>],
    refs: &References,
    scratch: &Scratch,
    cell: &mut Cell,
    round_trips: &mut [Vec<Duration>],
    cli_rounds: usize,
) {
    let setup = &setups[job.setup];
    match job.tool {
        Tool::Peeka => {
            let trips =
                (job.shape == Shape::Busy).then(|| (&mut round_trips[job.setup], cli_rounds));
            peeka_round(scratch, setup, job.shape, cell, trips);
        }
        Tool::PySpy => {
            if let Some(py_spy) = &refs.py_spy {
                py_spy_round(scratch, py_spy, setup, job.shape, cell);
            }
        }
        Tool::PythonPeeka => {
            if let Some((_, dir)) = &refs.python_peeka {
                python_peeka_round(scratch, dir, setup, job.shape, cell);
            }
        }
    }
}

fn shell(program: &str, args: &[&str]) -> String {
    output_of(program, args, &workspace_dir())
}

/// "median / p90" of a cell, with what failed and what else happened.
fn cell_text(cell: &Cell, rounds: usize) -> String {
    let mut text = if cell.samples.is_empty() {
        String::from("—")
    } else {
        format!(
            "{:.1} / {:.1}",
            median_ms(&cell.samples),
            quantile_ms(&cell.samples, 0.9)
        )
    };
    if !cell.failures.is_empty() {
        let _ = write!(
            text,
            " **failed {}/{}**: {}",
            cell.failures.len(),
            rounds,
            short(&cell.failures[0])
        );
    }
    for note in &cell.notes {
        let _ = write!(text, " ({})", short(note));
    }
    text
}

fn ratio(ours: &Cell, theirs: &Cell) -> String {
    if ours.samples.is_empty() || theirs.samples.is_empty() {
        return "—".to_owned();
    }
    format!(
        "{:.2}×",
        median_ms(&ours.samples) / median_ms(&theirs.samples)
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "attach_side_by_side: measures only under `cargo bench -p peeka-cli --bench \
             attach_side_by_side` (which passes --bench); nothing done"
        );
        return;
    }
    let rounds = env_count("PEEKA_BENCH_ROUNDS", 5);
    let cli_rounds = env_count("PEEKA_BENCH_CLI_ROUNDS", 10);
    let binary = peeka_binary();
    assert!(
        binary.exists(),
        "{} is missing: `cargo bench -p peeka-cli` builds it",
        binary.display()
    );
    // What is measured: the tree as the binary was just built from it.
    let commit = shell("git", &["rev-parse", "--short", "HEAD"]);
    let mut dirty: Vec<String> = shell("git", &["diff", "HEAD", "--name-only"])
        .lines()
        .map(|path| path.split('/').take(2).collect::<Vec<_>>().join("/"))
        .collect();
    let modified = dirty.len();
    dirty.sort();
    dirty.dedup();
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let refs = load_references(&manifest);
    let setups: Vec<Setup<'_>> = manifest
        .interpreters
        .iter()
        .filter(|p| wanted.is_empty() || wanted.contains(&p.id))
        .map(|python| Setup {
            python,
            servers: ServersManifest::load_site(python, &SERVER_PACKAGES)
                .map(|site| site.target_dir)
                .map_err(|e| e.to_string()),
        })
        .collect();
    for setup in &setups {
        if let Err(why) = &setup.servers {
            eprintln!(
                "\n*** Python {}: its `idle` target is the stdlib stand-in (select() with a 1 s \
                 timeout, 4 Condition waiters): {why}\n",
                setup.python.id
            );
        }
    }
    let dir = std::env::temp_dir().join(format!("peeka-side-by-side-{}", std::process::id()));
    let scratch = Scratch {
        binary: dir.join("peeka-cli"),
        dir,
    };
    fs::create_dir_all(scratch.dir.join("state")).unwrap();
    fs::copy(&binary, &scratch.binary).unwrap();

    // Every (interpreter, shape, tool) that applies.
    let mut jobs = Vec::new();
    for (index, setup) in setups.iter().enumerate() {
        for shape in SHAPES {
            for tool in TOOLS {
                let applies = match tool {
                    Tool::Peeka => true,
                    Tool::PySpy => refs.py_spy.is_some(),
                    Tool::PythonPeeka => refs
                        .python_peeka
                        .as_ref()
                        .is_some_and(|(id, _)| *id == setup.python.id),
                };
                if applies {
                    jobs.push(Job {
                        setup: index,
                        shape,
                        tool,
                    });
                }
            }
        }
    }
    let cell_index = |job: &Job| {
        jobs.iter()
            .position(|j| j.setup == job.setup && j.shape == job.shape && j.tool == job.tool)
    };
    let mut cells: Vec<Cell> = jobs.iter().map(|_| Cell::default()).collect();
    let mut round_trips: Vec<Vec<Duration>> = setups.iter().map(|_| Vec::new()).collect();
    let load_before = load_average();
    let started = Instant::now();

    eprintln!("warm-up: every tool once on a busy target of every interpreter (untimed)");
    for job in jobs.iter().filter(|j| j.shape == Shape::Busy) {
        let mut scrap = Cell::default();
        let mut no_trips: Vec<Vec<Duration>> = setups.iter().map(|_| Vec::new()).collect();
        run_job(*job, &setups, &refs, &scratch, &mut scrap, &mut no_trips, 0);
    }
    for round in 0..rounds {
        eprintln!(
            "round {}/{rounds}: {} measurements ({:.0} s so far)",
            round + 1,
            jobs.len(),
            started.elapsed().as_secs_f64()
        );
        // Each round starts elsewhere in the list: every cell is measured
        // at different moments of the run.
        let offset = round * jobs.len() / rounds;
        for k in 0..jobs.len() {
            let job = jobs[(offset + k) % jobs.len()];
            let index = cell_index(&job).unwrap();
            run_job(
                job,
                &setups,
                &refs,
                &scratch,
                &mut cells[index],
                &mut round_trips,
                cli_rounds,
            );
        }
    }
    let took = started.elapsed();
    let load_after = load_average();

    // The report.
    let date = shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!("### Attach latency, side by side ({date})");
    println!();
    println!(
        "`peeka-cli` built from commit {commit}{}; {cpus} cores, shared (load average {load_before} before, \
         {load_after} after); {rounds} measurements per cell, interleaved round-robin, each \
         on a fresh target; {:.0} s in all. Wall clock of the whole command, from spawn \
         until it exits successfully; median / p90 in ms{}.",
        if modified > 0 {
            format!(
                " plus uncommitted changes to {modified} file{} ({})",
                if modified == 1 { "" } else { "s" },
                dirty.join(", ")
            )
        } else {
            String::new()
        },
        took.as_secs_f64(),
        if rounds <= 5 {
            " (of 5 or fewer, the p90 is the slowest)"
        } else {
            ""
        }
    );
    println!();
    let flask = setups.iter().filter(|s| s.servers.is_ok()).count();
    println!(
        "- Peeka: `target/release/peeka-cli attach PID` (until the agent answers), then \
         `peeka-cli detach --pid PID` (untimed). Goals of issue 14: busy ≤ 50 ms, busy20 \
         and idle ≤ 100 ms (median)."
    );
    match &refs.python_peeka {
        Some((id, dir)) => println!(
            "- Python implementation: PyPI `{PYTHON_PEEKA}` (`sys.remote_exec`), its CLI \
             `attach PID` run by Python {id}; on {id} only. Its targets (only theirs) have \
             its install directory `{dir}` on PYTHONPATH: it imports itself in the target."
        ),
        None => println!("- Python implementation: not installed, left out (see stderr)."),
    }
    match &refs.py_spy {
        Some(_) => println!(
            "- py-spy {}: `py-spy dump --pid PID`, the floor for reading anything from a \
             process.",
            refs.py_spy_version
        ),
        None => println!("- py-spy: not installed, left out (see stderr)."),
    }
    println!(
        "- Targets: `busy` one thread in a loop calling a small function, `busy20` 20 such \
         threads, `idle` {}, attached at a random moment of its main thread's 1 s \
         select() cycle.",
        if flask == setups.len() {
            "a Flask app served by waitress (4 threads), idle (from scripts/provision-servers.sh)"
                .to_owned()
        } else if flask == 0 {
            "a stdlib stand-in (waitress and flask not provisioned): main thread in select() \
             with a 1 s timeout, 4 threads waiting on a Condition"
                .to_owned()
        } else {
            "a Flask app served by waitress (4 threads), idle, or where marked a stdlib \
             stand-in of the same shape"
                .to_owned()
        }
    );
    println!();
    println!(
        "| interpreter | target | Peeka `attach` | method | goal met | Python impl. `attach` \
         | Peeka ÷ Python impl. | `py-spy dump` | Peeka ÷ py-spy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let empty = Cell::default();
    for (index, setup) in setups.iter().enumerate() {
        for shape in SHAPES {
            let find = |tool: Tool| {
                cell_index(&Job {
                    setup: index,
                    shape,
                    tool,
                })
                .map(|i| &cells[i])
            };
            let peeka = find(Tool::Peeka).unwrap_or(&empty);
            let python_peeka = find(Tool::PythonPeeka);
            let py_spy = find(Tool::PySpy);
            let target = if shape == Shape::Idle && setup.servers.is_err() {
                "idle (stdlib stand-in)".to_owned()
            } else {
                shape.name().to_owned()
            };
            let goal = if peeka.samples.is_empty() {
                "—".to_owned()
            } else if median_ms(&peeka.samples) <= shape.goal_ms() && peeka.failures.is_empty() {
                format!("yes (≤ {:.0})", shape.goal_ms())
            } else {
                format!("no (≤ {:.0})", shape.goal_ms())
            };
            println!(
                "| {} ({}) | {target} | {} | {} | {goal} | {} | {} | {} | {} |",
                setup.python.id,
                setup.python.version,
                cell_text(peeka, rounds),
                if peeka.methods.is_empty() {
                    "—".to_owned()
                } else {
                    peeka.methods.join(", ")
                },
                python_peeka.map_or_else(|| "—".to_owned(), |c| cell_text(c, rounds)),
                python_peeka.map_or_else(|| "—".to_owned(), |c| ratio(peeka, c)),
                py_spy.map_or_else(|| "—".to_owned(), |c| cell_text(c, rounds)),
                py_spy.map_or_else(|| "—".to_owned(), |c| ratio(peeka, c)),
            );
        }
    }
    println!();
    println!(
        "One CLI command round trip on an attached `busy` target: `peeka-cli reset --list \
         --pid PID`, whole process, {cli_rounds} after each of the {rounds} attaches (goal: \
         ≤ 5 ms median)."
    );
    println!();
    println!(
        "| interpreter | `reset --list` round trip: median / p90 ms | round trips | goal met |"
    );
    println!("|---|---|---|---|");
    for (setup, trips) in setups.iter().zip(&round_trips) {
        if trips.is_empty() {
            println!(
                "| {} ({}) | — (no attach succeeded) | 0 | — |",
                setup.python.id, setup.python.version
            );
            continue;
        }
        let median = median_ms(trips);
        println!(
            "| {} ({}) | {median:.1} / {:.1} | {} | {} |",
            setup.python.id,
            setup.python.version,
            quantile_ms(trips, 0.9),
            trips.len(),
            if median <= 5.0 { "yes" } else { "no" }
        );
    }
}
