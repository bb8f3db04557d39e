//! Throughput windows of the benchmark targets that report their progress
//! (`benches/targets/cpu_bound.py`, `trace_loop.py`: a line "COUNT TIME"
//! every 100 ms), and the median the benchmarks compare them by.

// Shared by the benches through `#[path]`; each uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use peeka_testkit::TargetProcess;

/// The median of `values` (the upper one of an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The rates of one window (see [`rates`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rates {
    /// Iterations per second of wall time.
    pub(crate) per_second: f64,
    /// Iterations per second of the main thread's CPU time: what the
    /// target's own code achieved while it ran, which the machine's other
    /// load (time the thread waited for a core) does not blur.
    pub(crate) per_cpu_second: f64,
}

/// The target's iterations per second over `window`, and per CPU-second
/// of its main thread (its CPU read right as each bounding line arrives).
///
/// The window starts at a freshly written line: lines that queued up in the
/// pipe before (while an attach or a detach ran, say) are skipped, since a
/// window starting at one of them would count the cost of that step.
pub(crate) fn rates(target: &mut TargetProcess, window: Duration) -> Rates {
    let pid = target.pid();
    let mut line = || {
        let text = target.read_line().unwrap();
        let cpu = crate::thread_cpu::cpu_ns(pid).0;
        let mut parts = text.split_whitespace();
        let count: f64 = parts.next().unwrap().parse().unwrap();
        let time: f64 = parts.next().unwrap().parse().unwrap();
        (count, time, cpu)
    };
    let first = loop {
        let asked = Instant::now();
        let read = line();
        // The target writes every 100 ms: a line that was already waiting
        // comes back at once.
        if asked.elapsed() >= Duration::from_millis(20) {
            break read;
        }
    };
    let deadline = Instant::now() + window;
    let mut last = line();
    while Instant::now() < deadline {
        last = line();
    }
    let count = last.0 - first.0;
    Rates {
        per_second: count / (last.1 - first.1),
        per_cpu_second: count / ((last.2.saturating_sub(first.2)).max(1) as f64 / 1e9),
    }
}
