//! Attach latency, per method and interpreter, for a CPU-busy and a
//! sleeping target, side by side in one run with two references:
//! `sys.remote_exec` called from a Python 3.14 client, and the classic gdb
//! injection (`PyGILState_Ensure` + `PyRun_SimpleString` through `gdb -p`).
//!
//! Run with `cargo bench -p peeka-attach --bench attach_latency`; set
//! `PEEKA_BENCH_ROUNDS` (default 10) to change the number of attaches per
//! cell. It prints a Markdown table of the median and the 90th percentile.
//! Latency is measured from the call until the agent reported back (for
//! `sys.remote_exec`: until the script's marker file appeared).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench reports on stdout

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peeka_attach::attach::{attach, AttachOptions};
use peeka_attach::{AgentFiles, Method, MethodChoice};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};

/// One way of attaching, timed once against a target pid.
type Round<'a> = Box<dyn Fn(u32) -> Result<Duration, String> + 'a>;

const SHAPES: [(&str, &str); 2] = [("busy", "busy.py"), ("sleeping", "sleeper.py")];

fn agent() -> AgentFiles {
    AgentFiles {
        files: vec![(
            "bench_agent.py".into(),
            b"def start(directory, token):\n    return {}\n".to_vec(),
        )],
        entry_file: "bench_agent.py".into(),
        entry_function: "start".into(),
    }
}

fn target_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/targets")
        .join(name)
}

/// Median and 90th percentile, in milliseconds.
fn summarize(mut samples: Vec<Duration>) -> Option<(f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() - 1) as f64 * q).round() as usize;
        samples[index].as_secs_f64() * 1000.0
    };
    Some((at(0.5), at(0.9)))
}

fn peeka_round(pid: u32, method: Method) -> Result<Duration, String> {
    let options = AttachOptions {
        method: MethodChoice::Only(method),
        timeout: Duration::from_secs(10),
        agent: agent(),
    };
    let started = Instant::now();
    let attached = attach(pid, &options).map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    attached.staging.remove_all();
    Ok(elapsed)
}

/// `sys.remote_exec` from a Python 3.14 client in the target's root; the
/// client times itself from the call until the script's marker appears.
fn remote_exec_round(python: &Interpreter, pid: u32) -> Result<Duration, String> {
    let dir = format!("/tmp/peeka-bench-{pid}");
    let host_dir = python.host_path(Path::new(&dir));
    fs::create_dir_all(&host_dir).map_err(|e| e.to_string())?;
    let marker = format!("{dir}/marker");
    let _ = fs::remove_file(python.host_path(Path::new(&marker)));
    let script = format!("{dir}/script.py");
    fs::write(
        python.host_path(Path::new(&script)),
        format!("open({marker:?}, 'w').close()\n"),
    )
    .map_err(|e| e.to_string())?;
    let client = format!(
        "import os, sys, time\nt = time.perf_counter()\nsys.remote_exec({pid}, {script:?})\n\
         while not os.path.exists({marker:?}):\n    time.sleep(0.0002)\n\
         print((time.perf_counter() - t) * 1000)\n"
    );
    let output = python
        .command()
        .args(["-c", &client])
        .output()
        .map_err(|e| e.to_string())?;
    let _ = fs::remove_dir_all(&host_dir);
    let text = String::from_utf8_lossy(&output.stdout);
    let ms: f64 = text.trim().parse().map_err(|_| {
        format!(
            "sys.remote_exec client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok(Duration::from_secs_f64(ms / 1000.0))
}

/// The classic debugger injection: gdb attaches, takes the GIL with
/// `PyGILState_Ensure`, runs `PyRun_SimpleString`, releases, detaches.
fn classic_gdb_round(pid: u32) -> Result<Duration, String> {
    let started = Instant::now();
    let output = Command::new("gdb")
        .args(["--batch", "--nx", "-p", &pid.to_string()])
        .args(["-ex", "set confirm off"])
        .args(["-ex", "call (int)PyGILState_Ensure()"])
        .args(["-ex", "call (int)PyRun_SimpleString(\"pass\")"])
        .args(["-ex", "call (void)PyGILState_Release($1)"])
        .args(["-ex", "detach"])
        .output()
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed();
    let text = String::from_utf8_lossy(&output.stdout);
    if !text.contains("$2 = 0") {
        return Err(format!(
            "gdb did not run the code: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(elapsed)
}

fn main() {
    let rounds: usize = std::env::var("PEEKA_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // `cargo test --benches` runs benches with `--bench`-less args; keep it quick then.
    if std::env::args().any(|a| a == "--test") {
        return;
    }
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    println!("| interpreter | method | target | median ms | p90 ms | rounds |");
    println!("|---|---|---|---|---|---|");
    for python in &manifest.interpreters {
        let minor: u32 = python.minor.trim_start_matches("3.").parse().unwrap_or(0);
        let mut cells: Vec<(&str, Round<'_>)> = Vec::new();
        if minor >= 14 {
            cells.push((
                "pep768 (peeka)",
                Box::new(|pid| peeka_round(pid, Method::Pep768)),
            ));
            cells.push((
                "sys.remote_exec (Python 3.14+ client)",
                Box::new(move |pid| remote_exec_round(python, pid)),
            ));
        }
        cells.push((
            "ptrace (peeka)",
            Box::new(|pid| peeka_round(pid, Method::Ptrace)),
        ));
        if !python.is_chrooted() {
            cells.push(("gdb (peeka)", Box::new(|pid| peeka_round(pid, Method::Gdb))));
            cells.push((
                "gdb classic (PyGILState_Ensure)",
                Box::new(classic_gdb_round),
            ));
        }
        for (label, round) in &cells {
            for (shape, script) in SHAPES {
                let process = match TargetProcess::spawn(python, &target_script(script), &[], &[]) {
                    Ok(process) => process,
                    Err(e) => {
                        eprintln!("{}: cannot start {script}: {e}", python.id);
                        continue;
                    }
                };
                let mut samples = Vec::new();
                let mut failure = None;
                for _ in 0..rounds {
                    match round(process.pid()) {
                        Ok(elapsed) => samples.push(elapsed),
                        Err(e) => failure = Some(e),
                    }
                }
                match summarize(samples) {
                    Some((median, p90)) => println!(
                        "| {} ({}) | {label} | {shape} | {median:.1} | {p90:.1} | {rounds} |",
                        python.id, python.version
                    ),
                    None => println!(
                        "| {} ({}) | {label} | {shape} | failed | | {} |",
                        python.id,
                        python.version,
                        failure.unwrap_or_default().lines().next().unwrap_or("")
                    ),
                }
            }
        }
    }
}
