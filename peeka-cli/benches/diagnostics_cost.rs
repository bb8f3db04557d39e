//! What `trace` and `top` cost a target, measured side by side in one run
//! for each interpreter given (default: 3.11, 3.12 and 3.14):
//!
//! - trace: a loop calling `work()` (five Python children) as fast as it
//!   can (`benches/targets/trace_loop.py`), in windows alternately without
//!   and with a `trace` stream tracing every call (the stream read by this
//!   process); the overhead per traced call is the difference of the
//!   median main-thread CPU times per call (CPU time, not wall time: the
//!   tracing runs on that thread, and CPU time does not count the moments
//!   a shared machine gives the core to someone else). On 3.12+ the trace engine is `sys.monitoring`
//!   (events switched on for each traced call), on 3.11 `sys.setprofile`.
//! - top: a CPU-bound loop (`benches/targets/cpu_bound.py`) in windows
//!   alternately without and with `top` sampling at its default rate
//!   (every 20 ms, a snapshot per second); the goal is a cost under 3%.
//!   Four figures: the loss of throughput as the ratio of the medians and
//!   as the median ratio of adjacent windows (both blurred by the
//!   machine's other load, by a few percent either way on a shared
//!   machine), the sampler thread's CPU share (the GIL is held while it
//!   samples, so the target's thread waits that long), and that plus the
//!   loss of iterations per CPU-second of the target's thread (GIL
//!   hand-offs, caches): the direct measure of the cost.
//!
//! `cargo bench -p peeka-cli --bench diagnostics_cost [-- 3.8 3.13 ...]`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use peeka_core::client::{AttachConfig, Session, StreamItem, TopRequest, TraceRequest};
use peeka_testkit::{Manifest, TargetProcess};

#[path = "common/thread_cpu.rs"]
mod thread_cpu;
#[path = "common/windows.rs"]
mod windows;
use windows::{median, rates};

/// Pairs of windows (without, with) per measurement: the trace's effect is
/// large, top's is a few percent, within the noise of a few windows.
const TRACE_CYCLES: usize = 8;
const TOP_CYCLES: usize = 20;
const WINDOW: Duration = Duration::from_millis(1000);
const SETTLE: Duration = Duration::from_millis(300);

/// What the alternated windows measured.
#[derive(Debug, Default)]
struct Alternated {
    /// Median throughput without and with the stream (iterations/s).
    without: f64,
    with: f64,
    /// Median of the ratios with/without of adjacent windows (less
    /// sensitive to slow drifts of the machine's load than the ratio of
    /// the medians).
    paired_ratio: f64,
    /// Median share of a CPU used by the agent's threads, without and with.
    agent_without: f64,
    agent_with: f64,
    /// Median iterations per CPU-second of the target's main thread,
    /// without and with: what the stream costs the running thread itself
    /// (cache, GIL hand-offs), whatever the machine's other load.
    per_cpu_without: f64,
    per_cpu_with: f64,
}

/// One window: throughput and CPU shares.
fn window(target: &mut TargetProcess) -> (f64, thread_cpu::CpuShares) {
    let pid = target.pid();
    let cpu = thread_cpu::CpuWindow::start(pid);
    let rate = rates(target, WINDOW).per_second;
    (rate, cpu.shares(pid))
}

/// Runs `start` (which opens a stream and returns a reader thread and its
/// canceller) during every other window.
fn alternate(
    target: &mut TargetProcess,
    cycles: usize,
    mut start: impl FnMut() -> (std::thread::JoinHandle<()>, peeka_core::client::Canceller),
) -> Alternated {
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..cycles {
        without.push(window(target));
        let (reader, canceller) = start();
        std::thread::sleep(SETTLE);
        with.push(window(target));
        canceller.cancel();
        reader.join().unwrap();
        std::thread::sleep(SETTLE);
    }
    let pick = |windows: &[(f64, thread_cpu::CpuShares)],
                f: &dyn Fn(&(f64, thread_cpu::CpuShares)) -> f64| {
        median(&windows.iter().map(f).collect::<Vec<_>>())
    };
    let ratios: Vec<f64> = without.iter().zip(&with).map(|(a, b)| b.0 / a.0).collect();
    Alternated {
        without: pick(&without, &|w| w.0),
        with: pick(&with, &|w| w.0),
        paired_ratio: median(&ratios),
        agent_without: pick(&without, &|w| w.1.others),
        agent_with: pick(&with, &|w| w.1.others),
        per_cpu_without: pick(&without, &|w| w.0 / w.1.main.max(1e-9)),
        per_cpu_with: pick(&with, &|w| w.0 / w.1.main.max(1e-9)),
    }
}

fn main() {
    let manifest = Manifest::load().expect("run scripts/provision-pythons.sh first");
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = if wanted.is_empty() {
        vec!["3.11".to_owned(), "3.12".to_owned(), "3.14".to_owned()]
    } else {
        wanted
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/targets");
    println!(
        "| interpreter | trace engine | work() calls per CPU-second untraced / traced | trace overhead per traced call, us (recording only / with the tree sent) | trees received | top: throughput loss (ratio of medians) | top: throughput loss (median of paired windows) | top: sampler's CPU (GIL held) | top: sampler's CPU + main thread's lost efficiency |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for id in &wanted {
        let Some(python) = manifest.get(id) else {
            println!("| {id} | missing from the manifest | | | | | | | |");
            continue;
        };
        // trace
        let mut target =
            TargetProcess::spawn(python, &dir.join("trace_loop.py"), &[], &[]).unwrap();
        let (session, _) = Session::attach(target.pid(), &AttachConfig::default()).unwrap();
        let trees = Arc::new(AtomicU64::new(0));
        let mut engine = String::new();
        let traced_windows = alternate(&mut target, TRACE_CYCLES, || {
            let mut subscription = session.trace(&TraceRequest::new("__main__.work")).unwrap();
            engine = subscription
                .started()
                .extra
                .get("engine")
                .and_then(|e| e.as_str())
                .unwrap_or("?")
                .to_owned();
            let canceller = subscription.canceller();
            let trees = Arc::clone(&trees);
            let reader = std::thread::spawn(move || {
                for item in &mut subscription {
                    if let Ok(StreamItem::Observation { .. }) = item {
                        trees.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            (reader, canceller)
        });
        // The same with a condition that is never true: the calls are
        // recorded, no tree is rendered or sent.
        let quiet_windows = alternate(&mut target, TRACE_CYCLES, || {
            let mut subscription = session
                .trace(&TraceRequest::new("__main__.work").condition("cost < 0"))
                .unwrap();
            let canceller = subscription.canceller();
            let reader = std::thread::spawn(move || for _ in &mut subscription {});
            (reader, canceller)
        });
        session.detach().unwrap();
        drop(target);
        // Per call of the main thread's CPU time: the tracing runs on it,
        // so this is its cost whatever else the machine runs.
        let (plain, traced) = (traced_windows.per_cpu_without, traced_windows.per_cpu_with);
        let per_call_us = (1.0 / traced - 1.0 / plain) * 1e6;
        let recording_us =
            (1.0 / quiet_windows.per_cpu_with - 1.0 / quiet_windows.per_cpu_without) * 1e6;

        // top
        let mut target = TargetProcess::spawn(python, &dir.join("cpu_bound.py"), &[], &[]).unwrap();
        let (session, _) = Session::attach(target.pid(), &AttachConfig::default()).unwrap();
        let top = alternate(&mut target, TOP_CYCLES, || {
            let mut subscription = session.top(&TopRequest::new()).unwrap();
            let canceller = subscription.canceller();
            let reader = std::thread::spawn(move || for _ in &mut subscription {});
            (reader, canceller)
        });
        session.detach().unwrap();
        let sampler = (top.agent_with - top.agent_without).max(0.0);
        let efficiency = 1.0 - top.per_cpu_with / top.per_cpu_without;
        println!(
            "| {id} ({}) | {engine} | {plain:.0} / {traced:.0} | {recording_us:.1} / {per_call_us:.1} | {} | {:.2}% | {:.2}% | {:.2}% | {:.2}% |",
            python.version,
            trees.load(Ordering::Relaxed),
            (1.0 - top.with / top.without) * 100.0,
            (1.0 - top.paired_ratio) * 100.0,
            sampler * 100.0,
            (sampler + efficiency) * 100.0,
        );
    }
}
