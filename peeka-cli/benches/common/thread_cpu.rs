//! Per-thread CPU time and context switches of a target, read from /proc:
//! what the benchmarks use to measure a cost directly, beside the
//! throughput ratios that a shared, noisy machine blurs.

// Shared by the benches through `#[path]`; each uses part of it.
#![allow(dead_code)]

use std::time::Instant;

/// Nanoseconds of CPU a thread has run (`/proc/PID/task/TID/schedstat`).
fn task_cpu_ns(pid: u32, tid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU nanoseconds of the main thread of `pid` and of all its other
/// threads (the agent's, in a target that has no others).
pub(crate) fn cpu_ns(pid: u32) -> (u64, u64) {
    let main = task_cpu_ns(pid, &pid.to_string());
    let others = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|task| task.file_name().into_string().ok())
                .filter(|tid| *tid != pid.to_string())
                .map(|tid| task_cpu_ns(pid, &tid))
                .sum()
        })
        .unwrap_or(0);
    (main, others)
}

/// Voluntary context switches of the main thread of `pid` (each time it
/// gave the GIL away on request, among others).
pub(crate) fn main_thread_switches(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU used by a target's threads over a stretch of wall time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuWindow {
    started: Instant,
    main: u64,
    others: u64,
}

/// Shares of one CPU (0.0-1.0) over a [`CpuWindow`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuShares {
    /// The main thread's CPU over the wall time.
    pub(crate) main: f64,
    /// The other threads' CPU over the wall time.
    pub(crate) others: f64,
}

impl CpuWindow {
    /// Starts measuring `pid`.
    pub(crate) fn start(pid: u32) -> Self {
        let (main, others) = cpu_ns(pid);
        CpuWindow {
            started: Instant::now(),
            main,
            others,
        }
    }

    /// The shares of a CPU used since [`start`](Self::start).
    pub(crate) fn shares(&self, pid: u32) -> CpuShares {
        let wall = self.started.elapsed().as_nanos().max(1) as f64;
        let (main, others) = cpu_ns(pid);
        CpuShares {
            main: main.saturating_sub(self.main) as f64 / wall,
            others: others.saturating_sub(self.others) as f64 / wall,
        }
    }
}
