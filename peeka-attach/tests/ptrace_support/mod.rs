//! Checks shared by the ptrace backend's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::fs;
use std::time::{Duration, Instant};

use peeka_attach::elf::ElfFile;
use peeka_attach::procfs::MapEntry;
use peeka_attach::{Staging, Target};

/// The thread that traces `pid` (0 when none).
pub(crate) fn tracer_of(pid: u32) -> u32 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A measure of work done by every thread of `pid`: CPU time in clock ticks
/// plus context switches. It grows while any thread runs or wakes up.
pub(crate) fn work_done(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        if let Ok(stat) = fs::read_to_string(dir.join("stat")) {
            // Fields after the command name, which is in parentheses.
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            // utime and stime are fields 14 and 15 (1-based); 12 and 13 here.
            for index in [11, 12] {
                total += fields
                    .get(index)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        if let Ok(status) = fs::read_to_string(dir.join("status")) {
            for line in status.lines() {
                if let Some(value) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += value.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    total
}

/// Whether `pid` keeps doing work for a short while.
pub(crate) fn keeps_working(pid: u32) -> bool {
    let before = work_done(pid);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if work_done(pid) > before {
            return true;
        }
    }
    false
}

/// The code bytes the backend may patch: the entry of `PyEval_SaveThread`
/// and the executable's ELF entry point, with what is there now.
pub(crate) fn patchable_code(target: &Target) -> Vec<(&'static str, u64, Vec<u8>)> {
    let mut places = Vec::new();
    if let Some(address) = target.python.symbol_address("PyEval_SaveThread") {
        places.push(("PyEval_SaveThread", address));
    }
    let maps = MapEntry::read_all(target.pid).unwrap();
    let exe_maps: Vec<&MapEntry> = maps
        .iter()
        .filter(|m| m.path.as_deref() == Some(target.exe.as_path()))
        .collect();
    let elf = ElfFile::open_mapped(target.pid, exe_maps[0]).unwrap();
    let bias = elf.load_bias(&exe_maps).unwrap();
    places.push(("the executable's entry point", bias.apply(elf.entry())));
    places
        .into_iter()
        .map(|(name, address)| (name, address, target.memory.read_vec(address, 16).unwrap()))
        .collect()
}

/// Asserts that the patchable code is back to `before`.
pub(crate) fn assert_code_restored(
    target: &Target,
    before: &[(&'static str, u64, Vec<u8>)],
    what: &str,
) {
    for (name, address, bytes) in before {
        let now = target.memory.read_vec(*address, bytes.len()).unwrap();
        assert_eq!(
            &now, bytes,
            "{what}: the code at {name} ({address:#x}) was not restored"
        );
    }
}

/// Anonymous read-only mappings (what a runner page looks like).
pub(crate) fn read_only_anonymous_pages(pid: u32) -> Vec<(u64, u64)> {
    MapEntry::read_all(pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.read && !m.write && !m.exec && m.path.is_none())
        .map(|m| (m.start, m.end))
        .collect()
}

/// The median of some durations.
pub(crate) fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// Waits until the main thread of `pid` has been blocked in system call
/// `number` for a while (the target reached its parking spot, past the
/// start-up code that runs after it printed `ready`).
pub(crate) fn wait_until_main_blocks_in(pid: u32, number: u32) {
    let prefix = format!("{number} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut settled = 0;
    while settled < 3 {
        assert!(
            Instant::now() < deadline,
            "process {pid} never blocked in system call {number}"
        );
        let now = fs::read_to_string(format!("/proc/{pid}/task/{pid}/syscall")).unwrap_or_default();
        settled = if now.starts_with(&prefix) {
            settled + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A private directory that is removed when the test ends, even when it
/// fails.
pub(crate) struct StagingDir(pub(crate) Staging);

impl std::ops::Deref for StagingDir {
    type Target = Staging;

    fn deref(&self) -> &Staging {
        &self.0
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        self.0.remove_all();
    }
}
