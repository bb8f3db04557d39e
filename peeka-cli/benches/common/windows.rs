//! Throughput windows of the benchmark targets that report their progress
//! (`benches/targets/cpu_bound.py`, `trace_loop.py`: a line "COUNT TIME"
//! every 100 ms), and the median the benchmarks compare them by.

use std::time::{Duration, Instant};

use peeka_testkit::TargetProcess;

/// The median of `values` (the upper one of an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Iterations per second reported by the target over `window`.
pub(crate) fn throughput(target: &mut TargetProcess, window: Duration) -> f64 {
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
