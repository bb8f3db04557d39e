//! What `trace` and `top` cost a target, measured side by side in one run
//! for each interpreter given (default: 3.11, 3.12 and 3.14):
//!
//! - trace: a loop calling `work()` (five Python children) as fast as it
//!   can (`benches/targets/trace_loop.py`), in windows alternately without
//!   and with a `trace` stream tracing every call (the stream read by this
//!   process); the overhead per traced call is the difference of the
//!   median times per call. On 3.12+ the trace engine is `sys.monitoring`
//!   (events switched on for each traced call), on 3.11 `sys.setprofile`.
//! - top: a CPU-bound loop (`benches/targets/cpu_bound.py`) in windows
//!   alternately without and with `top` sampling at its default rate
//!   (every 10 ms, a snapshot per second); the cost is the loss of
//!   throughput (ratio of the medians; the goal is under 3%).
//!
//! `cargo bench -p peeka-cli --bench diagnostics_cost [-- 3.8 3.13 ...]`.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peeka_core::client::{AttachConfig, Session, StreamItem, TopRequest, TraceRequest};
use peeka_testkit::{Manifest, TargetProcess};

const CYCLES: usize = 5;
const WINDOW: Duration = Duration::from_millis(1000);
const SETTLE: Duration = Duration::from_millis(300);

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Iterations per second reported by the target over `window`.
fn throughput(target: &mut TargetProcess, window: Duration) -> f64 {
    let mut line = || {
        let text = target.read_line().unwrap();
        let mut parts = text.split_whitespace();
        let count: f64 = parts.next().unwrap().parse().unwrap();
        let time: f64 = parts.next().unwrap().parse().unwrap();
        (count, time)
    };
    let first = line();
    let deadline = Instant::now() + window;
    let mut last = line();
    while Instant::now() < deadline {
        last = line();
    }
    (last.0 - first.0) / (last.1 - first.1)
}

/// Runs `body` (which opens a stream and returns a reader thread) during
/// every other window; returns the medians (without, with) and what the
/// reader counted.
fn alternate(
    target: &mut TargetProcess,
    mut start: impl FnMut() -> (std::thread::JoinHandle<()>, peeka_core::client::Canceller),
) -> (f64, f64) {
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for _ in 0..CYCLES {
        without.push(throughput(target, WINDOW));
        let (reader, canceller) = start();
        std::thread::sleep(SETTLE);
        with.push(throughput(target, WINDOW));
        canceller.cancel();
        reader.join().unwrap();
        std::thread::sleep(SETTLE);
    }
    (median(&without), median(&with))
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
        "| interpreter | trace engine | work() calls/s untraced / traced | trace overhead per traced call, us (recording only / with the tree sent) | trees received | CPU-bound throughput with top / without (10 ms sampling) |"
    );
    println!("|---|---|---|---|---|---|");
    for id in &wanted {
        let Some(python) = manifest.get(id) else {
            println!("| {id} | missing from the manifest | | | | |");
            continue;
        };
        // trace
        let mut target =
            TargetProcess::spawn(python, &dir.join("trace_loop.py"), &[], &[]).unwrap();
        let (session, _) = Session::attach(target.pid(), &AttachConfig::default()).unwrap();
        let trees = Arc::new(AtomicU64::new(0));
        let mut engine = String::new();
        let (plain, traced) = alternate(&mut target, || {
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
        let (plain_quiet, recorded) = alternate(&mut target, || {
            let mut subscription = session
                .trace(&TraceRequest::new("__main__.work").condition("cost < 0"))
                .unwrap();
            let canceller = subscription.canceller();
            let reader = std::thread::spawn(move || for _ in &mut subscription {});
            (reader, canceller)
        });
        session.detach().unwrap();
        drop(target);
        let per_call_us = (1.0 / traced - 1.0 / plain) * 1e6;
        let recording_us = (1.0 / recorded - 1.0 / plain_quiet) * 1e6;

        // top
        let mut target = TargetProcess::spawn(python, &dir.join("cpu_bound.py"), &[], &[]).unwrap();
        let (session, _) = Session::attach(target.pid(), &AttachConfig::default()).unwrap();
        let (without, with) = alternate(&mut target, || {
            let mut subscription = session.top(&TopRequest::new()).unwrap();
            let canceller = subscription.canceller();
            let reader = std::thread::spawn(move || for _ in &mut subscription {});
            (reader, canceller)
        });
        session.detach().unwrap();
        println!(
            "| {id} ({}) | {engine} | {plain:.0} / {traced:.0} | {recording_us:.1} / {per_call_us:.1} | {} | {:.4} (loss {:.2}%; medians of {CYCLES} windows: {with:.0} vs {without:.0} it/s) |",
            python.version,
            trees.load(Ordering::Relaxed),
            with / without,
            (1.0 - with / without) * 100.0
        );
    }
}
