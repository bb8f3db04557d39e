//! A process told apart from a later one that reuses its pid.
//!
//! A pid names a process only while it runs: once it exits and is reaped,
//! the kernel may give the number to a new process. Field 22 of
//! `/proc/PID/stat` (the start time, in clock ticks since boot) does not
//! change during a process's life and differs between two processes that
//! held the same pid, so the pair identifies one process.
//!
//! The attach's wait loops use [`ProcessIdentity::is_gone`] to notice at
//! once that the target died: `/proc/PID` is gone (reaped), the process is a
//! zombie (`Z`) or dead (`X`), or the pid now names another process.

use std::fs;
use std::io;

/// The fields of `/proc/PID/stat` that identify a process and say whether
/// it still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3, the state letter (`R`, `S`, `D`, `T`, `Z`, `X`, ...).
    pub state: char,
    /// Field 22, the start time in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Reads `/proc/<pid>/stat`.
    ///
    /// # Errors
    /// The I/O error of reading it (`NotFound` once the process is reaped),
    /// or `InvalidData` when it cannot be parsed.
    pub fn read(pid: u32) -> io::Result<Self> {
        let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
        Self::parse(&text).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat has an unexpected format"),
            )
        })
    }

    /// Parses the text of a stat file. The command name (field 2) may hold
    /// spaces and parentheses, so the fields are counted after its last
    /// closing parenthesis.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.get(text.rfind(')')? + 1..)?;
        let mut fields = rest.split_whitespace();
        let state = fields.next()?.chars().next()?;
        // Field 3 was the first after the name; field 22 is 19 further on.
        let start_time = fields.nth(18)?.parse().ok()?;
        Some(Self { state, start_time })
    }

    /// Whether the process has exited (a zombie waiting to be reaped, or
    /// dead).
    pub fn has_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// One process: its pid and the start time it had when it was inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The pid, in our pid namespace.
    pub pid: u32,
    /// Its start time (field 22 of `/proc/PID/stat`).
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The identity of the process that has pid `pid` now.
    ///
    /// # Errors
    /// As [`ProcStat::read`].
    pub fn capture(pid: u32) -> io::Result<Self> {
        let stat = ProcStat::read(pid)?;
        Ok(Self {
            pid,
            start_time: stat.start_time,
        })
    }

    /// Whether this process has exited: `/proc/PID` no longer exists, it is
    /// a zombie or dead, or the pid now names a process that started at
    /// another time. A stat file that cannot be read for another reason
    /// (e.g. permissions) does not count as gone.
    pub fn is_gone(&self) -> bool {
        match ProcStat::read(self.pid) {
            Ok(stat) => stat.has_exited() || stat.start_time != self.start_time,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_command_names_are_parsed() {
        let line =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 6 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            ProcStat::parse(line),
            Some(ProcStat {
                state: 'S',
                start_time: 987_654
            })
        );
        assert_eq!(ProcStat::parse("4242 (x) Z"), None);
    }

    #[test]
    fn our_own_process_is_not_gone() {
        let me = ProcessIdentity::capture(std::process::id()).expect("our own stat");
        assert!(!me.is_gone());
        let other = ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(
            other.is_gone(),
            "a different start time means another process"
        );
        assert!(ProcessIdentity {
            pid: u32::MAX,
            start_time: 0
        }
        .is_gone());
    }
}
