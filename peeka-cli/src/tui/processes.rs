//! The Python processes of the machine, for the picker: read from `/proc`
//! and described with `peeka-attach`'s inspection (the exact version) and
//! `peeka-core`'s socket location (whether an agent is there already).
//!
//! Listing reads files only (no ptrace, nothing written), but inspecting
//! reads ELF files and a little memory of each candidate, so call it off
//! the UI thread.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use peeka_attach::Target;

/// One process the picker offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessEntry {
    /// Its pid.
    pub(crate) pid: u32,
    /// Its Python version (`3.12.1`), or why it could not be read.
    pub(crate) python: Result<String, String>,
    /// Its user (name, or uid when the name is unknown).
    pub(crate) user: String,
    /// Its command line, arguments joined with spaces.
    pub(crate) cmdline: String,
    /// Whether an agent listens in it already.
    pub(crate) agent: bool,
}

impl ProcessEntry {
    /// Whether `filter` (lowercase) appears in its pid, user, version or
    /// command line.
    pub(crate) fn matches(&self, filter: &str) -> bool {
        if filter.is_empty() {
            return true;
        }
        let python = self.python.as_deref().unwrap_or("");
        [&self.pid.to_string(), &self.user, python, &self.cmdline]
            .iter()
            .any(|field| field.to_lowercase().contains(filter))
    }
}

/// Every process that looks like a Python interpreter (its executable or a
/// mapped library is named `python...`/`libpython...`), except this one,
/// sorted by pid.
pub(crate) fn list() -> Vec<ProcessEntry> {
    let users = user_names();
    let own = std::process::id();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid| pid != own)
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .filter(|&pid| looks_like_python(pid))
        .filter_map(|pid| describe(pid, &users))
        .collect()
}

/// One process, described (`None` when it is gone or is a kernel thread).
fn describe(pid: u32, users: &HashMap<u32, String>) -> Option<ProcessEntry> {
    let cmdline = cmdline(pid)?;
    let uid = status_uid(pid)?;
    let python = match Target::inspect(pid) {
        Ok(target) => Ok(target.python.version.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let agent = peeka_core::client::socket_path(pid).is_ok_and(|socket| socket.exists());
    Some(ProcessEntry {
        pid,
        python,
        user: users.get(&uid).cloned().unwrap_or_else(|| uid.to_string()),
        cmdline,
        agent,
    })
}

/// Whether the executable's name, or a mapped file's, says Python. Reading
/// `maps` of another user's process fails; then the executable's name from
/// `cmdline` decides.
fn looks_like_python(pid: u32) -> bool {
    let named_python = |path: &str| {
        Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("python") || n.starts_with("libpython"))
    };
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
        if named_python(&exe.to_string_lossy()) {
            return true;
        }
    }
    if let Ok(maps) = fs::read_to_string(format!("/proc/{pid}/maps")) {
        return maps
            .lines()
            .filter_map(|line| line.split_whitespace().nth(5))
            .any(named_python);
    }
    fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|raw| {
            raw.split(|&b| b == 0)
                .next()
                .map(|first| String::from_utf8_lossy(first).into_owned())
        })
        .is_some_and(|first| named_python(&first))
}

/// The command line, or `None` for kernel threads (empty) and gone processes.
fn cmdline(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// The real uid, from `/proc/PID/status`.
fn status_uid(pid: u32) -> Option<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// uid → name, from `/etc/passwd` (empty when unreadable).
fn user_names() -> HashMap<u32, String> {
    let text = fs::read_to_string("/etc/passwd").unwrap_or_default();
    parse_passwd(&text)
}

fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines_give_names_by_uid() {
        let names = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbroken\nana:x:1000:1000::/home/ana:/bin/sh\n",
        );
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&1000).map(String::as_str), Some("ana"));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn the_filter_looks_at_pid_user_version_and_command() {
        let entry = ProcessEntry {
            pid: 4242,
            python: Ok("3.12.1".into()),
            user: "ana".into(),
            cmdline: "python3 shop.py --port 80".into(),
            agent: false,
        };
        for filter in ["", "4242", "ana", "3.12", "shop"] {
            assert!(entry.matches(filter), "{filter}");
        }
        assert!(!entry.matches("warehouse"));
    }

    #[test]
    fn this_test_process_is_not_listed() {
        let own = std::process::id();
        assert!(list().iter().all(|p| p.pid != own));
    }
}
