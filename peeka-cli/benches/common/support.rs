//! Small helpers of the benches that drive `peeka-cli` and real targets as
//! processes and print Markdown tables: child processes that die with the
//! bench, output read back, table cells, the environment.

// Shared by the benches through `#[path]`; each uses part of it.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Makes `command`'s process die with this thread (the bench's main
/// thread): nothing it starts outlives it, even when it is killed.
pub(crate) fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl(2) is async-signal-safe and touches no memory of the
    // parent; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The JSON lines of `text` (lines that are not JSON are left out).
pub(crate) fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The last line of `text` that is not blank, trimmed.
pub(crate) fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// Shortens a failure to its first line, at most `chars` characters (and
/// `…`), for a table cell (`|` escaped).
pub(crate) fn shorten(reason: &str, chars: usize) -> String {
    let line = reason.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(chars).collect();
    if line.chars().count() > chars {
        out.push('…');
    }
    out.replace('|', "\\|")
}

/// A positive count from the environment variable `name`, else `default`.
pub(crate) fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// What `program args`, run in `dir`, printed on stdout (trimmed); empty if
/// it could not run or failed.
pub(crate) fn output_of(program: &str, args: &[&str], dir: &Path) -> String {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// The machine's load averages over 1, 5 and 15 minutes (`/proc/loadavg`).
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
