//! A small custom profiler built on the library: watch a function of a
//! running service for a few seconds and print a latency histogram with
//! percentiles, computed in Rust from every observed call.
//!
//! ```text
//! cargo run -p peeka-examples --example latency_profiler -- \
//!     [--pid PID] [--pattern module.function] [--seconds 3] [--python python3]
//! ```
//!
//! Without `--pid` it starts the bundled demo service and profiles its
//! `__main__.price`. It attaches (or reuses an agent already there) and
//! detaches at the end only if it attached.
#![allow(clippy::print_stdout)] // an example is a binary: printing is its job

use std::time::{Duration, Instant};

use peeka_core::client::{AttachConfig, ClientError, Session, StreamItem, WatchRequest};
use peeka_examples::{arg, python, DemoService};

/// Log-scale buckets: each bucket's upper bound is 2^(1/4) times the last,
/// from 1 us, so a percentile read from a bucket is within 19% of the truth.
struct Histogram {
    counts: Vec<u64>,
    samples: Vec<f64>,
}

const FIRST_BOUND_MS: f64 = 0.001;
const STEP: f64 = 1.189_207_115; // 2^(1/4)

impl Histogram {
    fn new() -> Self {
        Self {
            counts: vec![0; 100],
            samples: Vec::new(),
        }
    }

    fn bucket(ms: f64) -> usize {
        if ms <= FIRST_BOUND_MS {
            return 0;
        }
        ((ms / FIRST_BOUND_MS).ln() / STEP.ln()).ceil() as usize
    }

    fn bound(bucket: usize) -> f64 {
        FIRST_BOUND_MS * STEP.powi(bucket as i32)
    }

    fn record(&mut self, ms: f64) {
        let bucket = Self::bucket(ms).min(self.counts.len() - 1);
        self.counts[bucket] += 1;
        self.samples.push(ms);
    }

    fn percentile(&self, p: f64) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
        sorted.get(rank).copied().unwrap_or_default()
    }

    fn print(&self) {
        let total: u64 = self.counts.iter().sum();
        let widest = self.counts.iter().copied().max().unwrap_or(1).max(1);
        let first = self.counts.iter().position(|&c| c > 0).unwrap_or(0);
        let last = self.counts.iter().rposition(|&c| c > 0).unwrap_or(0);
        // Merge pairs of fine buckets for a compact chart.
        let mut bucket = first;
        while bucket <= last {
            let end = (bucket + 1).min(last);
            let count: u64 = self.counts[bucket..=end].iter().sum();
            let bar = "#".repeat(((count * 50).div_ceil(widest * 2)) as usize);
            println!(
                "  <= {:>9.3} ms {:>7} {:>5.1}% {bar}",
                Self::bound(end),
                count,
                count as f64 * 100.0 / total as f64
            );
            bucket = end + 1;
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: f64 = arg("seconds").map_or(Ok(3.0), |s| s.parse())?;
    let (service, pid, pattern) = match arg("pid") {
        Some(pid) => (
            None,
            pid.parse()?,
            arg("pattern").ok_or("--pid needs --pattern module.function")?,
        ),
        None => {
            let service = DemoService::start(&python())?;
            let pid = service.pid();
            let pattern = arg("pattern").unwrap_or_else(|| "__main__.price".into());
            (Some(service), pid, pattern)
        }
    };

    let (session, report) = Session::attach(pid, &AttachConfig::default())?;
    let mut calls = session.watch(&WatchRequest::new(pattern.as_str()).finish(true))?;
    println!(
        "profiling {} in pid {pid} (Python {}) for {seconds} s...",
        pattern, report.python
    );

    let mut histogram = Histogram::new();
    let mut failures = 0u64;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match calls.next_timeout(left) {
            None => break,
            Some(Err(ClientError::Timeout { .. })) => break,
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(StreamItem::Observation { data, .. })) => {
                if let Some(cost) = data.cost {
                    histogram.record(cost);
                }
                if data.success == Some(false) {
                    failures += 1;
                }
            }
            Some(Ok(StreamItem::Event { .. })) => {}
        }
    }
    // Stop the probe, then take what was already on its way, up to the end.
    calls.canceller().cancel();
    for item in calls.by_ref() {
        if let StreamItem::Observation { data, .. } = item? {
            if let Some(cost) = data.cost {
                histogram.record(cost);
            }
        }
    }
    let (dropped, client_dropped) = calls
        .end()
        .map_or((0, 0), |end| (end.dropped, end.client_dropped));

    let count = histogram.samples.len();
    println!(
        "{count} calls ({:.0}/s), {failures} raised, {dropped} dropped by the agent, {client_dropped} by the client",
        count as f64 / seconds
    );
    if count > 0 {
        histogram.print();
        println!(
            "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
            histogram.percentile(50.0),
            histogram.percentile(90.0),
            histogram.percentile(99.0),
            histogram.percentile(99.9),
            histogram.percentile(100.0)
        );
    }
    if !report.reused {
        session.detach()?;
        println!("detached");
    }
    drop(service);
    Ok(())
}
