//! Two costs a user of `peeka-cli` sees, measured side by side in one run
//! for each interpreter given (default: 3.11 and 3.14):
//!
//! - the round trip of one CLI command against an attached target
//!   (`peeka-cli reset --list --pid PID`: process start, connect, handshake,
//!   request, answer, output), against a mostly idle target and against a
//!   CPU-bound one (whose main thread keeps the GIL: each wake-up of an
//!   agent thread waits up to the 5 ms switch interval), next to the start
//!   of the binary alone (`peeka-cli --version`);
//! - what an attached agent with no probe costs a CPU-bound target:
//!   iterations per second in windows alternately without and with the
//!   agent (attach, detach, ...; ratio of the medians; the goal is a loss
//!   under 1%), and, measured directly, the CPU time the agent's threads
//!   used and the voluntary context switches of the target's main thread
//!   (each GIL handover it was asked for) during the attached windows.
//!
//! `cargo bench -p peeka-cli --bench cli_and_idle [-- 3.8 3.12 ...]`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use peeka_testkit::{Manifest, TargetProcess};

#[path = "common/thread_cpu.rs"]
mod thread_cpu;
#[path = "common/windows.rs"]
mod windows;
use windows::{median, rates};

const ROUNDS: usize = 40;
const CYCLES: usize = 5;
const WINDOW: Duration = Duration::from_millis(1000);
const SETTLE: Duration = Duration::from_millis(300);

fn binary() -> std::path::PathBuf {
    // The bench is built next to the binary (target/release).
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("peeka-cli")
}

fn median_and_p90(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.9))
}

fn time_command(args: &[&str], state: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new(binary())
        .args(args)
        .env("XDG_STATE_HOME", state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "peeka-cli {args:?} failed");
    started.elapsed()
}

fn main() {
    let binary = binary();
    assert!(
        binary.exists(),
        "{} is missing: build it first (cargo build --release -p peeka-cli)",
        binary.display()
    );
    let manifest = Manifest::load().expect("run scripts/provision-pythons.sh first");
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = if wanted.is_empty() {
        vec!["3.11".to_owned(), "3.14".to_owned()]
    } else {
        wanted
    };
    let state = std::env::temp_dir().join(format!("peeka-bench-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/targets/cpu_bound.py");
    let idle_script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/targets/idle.py");
    println!(
        "| interpreter | `peeka-cli --version` median ms | `reset --list` round trip, idle target: median / p90 ms \
         | same, CPU-bound target: median / p90 ms | CPU-bound throughput with an idle agent / without: per second, per CPU-second of the main thread \
         | idle agent's threads: CPU used, main thread's voluntary switches |"
    );
    println!("|---|---|---|---|---|---|");
    for id in &wanted {
        let Some(python) = manifest.get(id) else {
            println!("| {id} | missing from the manifest | | | | |");
            continue;
        };
        let mut target = TargetProcess::spawn(python, &script, &[], &[]).unwrap();
        let pid = target.pid().to_string();
        // Windows without and with an idle agent, alternated (attach,
        // detach) so that drifts of a shared machine hit both alike.
        let (mut without, mut with) = (Vec::new(), Vec::new());
        let (mut agent_ns, mut switches, mut attached_for) = (0u64, 0, Duration::ZERO);
        let target_pid = target.pid();
        for _ in 0..CYCLES {
            without.push(rates(&mut target, WINDOW));
            time_command(&["attach", &pid], &state);
            std::thread::sleep(SETTLE);
            let (agent_cpu, switched, started) = (
                thread_cpu::cpu_ns(target_pid).1,
                thread_cpu::main_thread_switches(target_pid),
                Instant::now(),
            );
            with.push(rates(&mut target, WINDOW));
            agent_ns += thread_cpu::cpu_ns(target_pid).1.saturating_sub(agent_cpu);
            switches += thread_cpu::main_thread_switches(target_pid) - switched;
            attached_for += started.elapsed();
            time_command(&["detach", "--pid", &pid], &state);
            std::thread::sleep(SETTLE);
        }
        let wall =
            |w: &[windows::Rates]| median(&w.iter().map(|r| r.per_second).collect::<Vec<_>>());
        let cpu =
            |w: &[windows::Rates]| median(&w.iter().map(|r| r.per_cpu_second).collect::<Vec<_>>());
        let ratio = wall(&with) / wall(&without);
        let cpu_ratio = cpu(&with) / cpu(&without);

        let idle = TargetProcess::spawn(python, &idle_script, &[], &[]).unwrap();
        let idle_pid = idle.pid().to_string();
        time_command(&["attach", &idle_pid], &state);
        time_command(&["attach", &pid], &state);
        let (mut version, mut on_idle, mut on_busy) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            version.push(time_command(&["--version"], &state));
            on_idle.push(time_command(
                &["reset", "--list", "--pid", &idle_pid],
                &state,
            ));
            on_busy.push(time_command(&["reset", "--list", "--pid", &pid], &state));
        }
        time_command(&["detach", "--pid", &pid], &state);
        time_command(&["detach", "--pid", &idle_pid], &state);
        let (v50, _) = median_and_p90(version);
        let (i50, i90) = median_and_p90(on_idle);
        let (b50, b90) = median_and_p90(on_busy);
        println!(
            "| {id} ({}) | {v50:.2} | {i50:.2} / {i90:.2} | {b50:.2} / {b90:.2} | {ratio:.4}, {cpu_ratio:.4} (medians of {CYCLES} windows: {:.0} vs {:.0} it/s) | {:.2} ms of CPU in {:.1} s ({:.3}% of a core), {switches} switches |",
            python.version,
            wall(&with),
            wall(&without),
            agent_ns as f64 / 1e6,
            attached_for.as_secs_f64(),
            agent_ns as f64 / 1e9 / attached_for.as_secs_f64() * 100.0,
        );
    }
    let _ = std::fs::remove_dir_all(&state);
}
