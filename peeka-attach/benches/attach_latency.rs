//! Attach latency, per method and interpreter, for a CPU-busy and a
//! sleeping target, side by side in one run with two references:
//! `sys.remote_exec` called from a Python 3.14 client, and the classic gdb
//! injection (`PyGILState_Ensure` + `PyRun_SimpleString` through `gdb -p`).
//!
//! Run with `cargo bench -p peeka-attach --bench attach_latency`; set
//! `PEEKA_BENCH_ROUNDS` (default 10) to change the number of attaches per
//! cell. It prints a Markdown table with two latencies per cell: until the
//! injected code runs in the target (Peeka: the bootstrap has been claimed
//! and every request withdrawn, i.e. everything but waiting for the agent;
//! `sys.remote_exec`: until the script's marker file appeared; classic gdb:
//! until gdb returned) and until the agent reported it is loaded (the
//! references load no agent, so both figures are the same for them).
#![allow(clippy::print_stdout, clippy::print_stderr)] // a bench reports on stdout

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peeka_attach::attach::{attach, AttachOptions};
use peeka_attach::{AgentFiles, Method, MethodChoice};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};

/// One attach: the time until the bootstrap (or script) ran in the target,
/// and the time until the agent reported that it is loaded (the same for
/// the references, which load no agent).
#[derive(Debug, Clone, Copy)]
struct Sample {
    bootstrap: Duration,
    ready: Duration,
}

/// One way of attaching, timed once against a target pid.
type Round<'a> = Box<dyn Fn(u32) -> Result<Sample, String> + 'a>;

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

/// The `q` quantile of `samples`, in milliseconds.
fn quantile_ms(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    let index = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[index].as_secs_f64() * 1000.0
}

fn peeka_round(pid: u32, method: Method) -> Result<Sample, String> {
    let options = AttachOptions {
        method: MethodChoice::Only(method),
        timeout: Duration::from_secs(10),
        agent: agent(),
    };
    let started = Instant::now();
    let attached = attach(pid, &options).map_err(|e| e.to_string())?;
    let ready = started.elapsed();
    let loading: Duration = attached
        .timeline
        .steps
        .iter()
        .filter(|s| s.name == "wait for the agent")
        .map(|s| s.elapsed)
        .sum();
    if std::env::var_os("PEEKA_BENCH_STEPS").is_some() {
        for step in &attached.timeline.steps {
            eprintln!(
                "{method} {:<40} {:>8.2} ms",
                step.name,
                step.elapsed.as_secs_f64() * 1000.0
            );
        }
    }
    attached.staging.remove_all();
    Ok(Sample {
        bootstrap: ready.saturating_sub(loading),
        ready,
    })
}

/// `sys.remote_exec` from a Python 3.14 client in the target's root; the
/// client times itself from the call until the script's marker appears.
fn remote_exec_round(python: &Interpreter, pid: u32) -> Result<Sample, String> {
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
    let elapsed = Duration::from_secs_f64(ms / 1000.0);
    Ok(Sample {
        bootstrap: elapsed,
        ready: elapsed,
    })
}

/// The classic debugger injection: gdb attaches, takes the GIL with
/// `PyGILState_Ensure`, runs `PyRun_SimpleString`, releases, detaches.
fn classic_gdb_round(pid: u32) -> Result<Sample, String> {
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
    Ok(Sample {
        bootstrap: elapsed,
        ready: elapsed,
    })
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
    // gdb that cannot make inferior calls here would harm the targets
    // (see `peeka_attach::gdb::check_gdb`): its cells are left out.
    let gdb_usable = matches!(
        peeka_attach::gdb::check_gdb(
            std::path::Path::new("gdb"),
            std::time::Instant::now() + Duration::from_secs(20)
        ),
        peeka_attach::gdb::GdbCheck::Usable { .. }
    );
    if !gdb_usable {
        eprintln!("gdb cannot make inferior calls on this host: its cells are left out");
    }
    println!("| interpreter | method | target | code runs: median ms | agent ready: median ms | agent ready: p90 ms | rounds |");
    println!("|---|---|---|---|---|---|---|");
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
        if !python.is_chrooted() && gdb_usable {
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
                        Ok(sample) => samples.push(sample),
                        Err(e) => failure = Some(e),
                    }
                }
                if samples.is_empty() {
                    println!(
                        "| {} ({}) | {label} | {shape} | failed: {} | | | {rounds} |",
                        python.id,
                        python.version,
                        failure.unwrap_or_default().lines().next().unwrap_or("")
                    );
                    continue;
                }
                let mut bootstrap: Vec<Duration> = samples.iter().map(|s| s.bootstrap).collect();
                let mut ready: Vec<Duration> = samples.iter().map(|s| s.ready).collect();
                println!(
                    "| {} ({}) | {label} | {shape} | {:.1} | {:.1} | {:.1} | {} |",
                    python.id,
                    python.version,
                    quantile_ms(&mut bootstrap, 0.5),
                    quantile_ms(&mut ready, 0.5),
                    quantile_ms(&mut ready, 0.9),
                    samples.len()
                );
            }
        }
    }
}
