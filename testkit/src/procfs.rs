//! Small readers of `/proc` for tests and benches that watch real processes:
//! a field of `/proc/PID/stat`, the children of a process, the sockets it
//! holds.
//!
//! Each returns what it could read: a process that is gone (or a file that
//! cannot be read) gives `None` or an empty list, never an error, since the
//! processes watched come and go.

use std::fs;

/// Field `index` of `/proc/PID/stat`, counted from 0 after the command name
/// (which may hold spaces and parentheses): 0 is the state (`S`, `R`, ...),
/// 1 the parent's pid, 19 the start time in clock ticks since boot (with the
/// pid, what tells a process from a later one that reuses its pid). `None`
/// when the process is gone.
pub fn stat_field(pid: u32, index: usize) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_command = stat.get(stat.rfind(')')? + 2..)?;
    after_command
        .split_whitespace()
        .nth(index)
        .map(str::to_owned)
}

/// The pids of the children of `pid` (the processes whose parent it is in
/// `/proc/PID/stat`), in increasing order.
pub fn children(pid: u32) -> Vec<u32> {
    let parent = pid.to_string();
    let mut found: Vec<u32> = fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&p| stat_field(p, 1).as_deref() == Some(parent.as_str()))
                .collect()
        })
        .unwrap_or_default();
    found.sort_unstable();
    found
}

/// The inodes of the sockets process `pid` has open, one per descriptor
/// (from the `socket:[INODE]` links of `/proc/PID/fd`): a socket open on two
/// descriptors is listed twice. Collect them into a set to compare sockets
/// rather than descriptors.
pub fn socket_inodes(pid: u32) -> Vec<u64> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .filter_map(|fd| fs::read_link(fd.path()).ok())
                .filter_map(|link| {
                    link.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::net::UnixStream;
    use std::process::{Command, Stdio};

    #[test]
    fn stat_field_reads_after_the_command_name() {
        let me = std::process::id();
        assert_eq!(
            stat_field(me, 1),
            Some(std::os::unix::process::parent_id().to_string())
        );
        assert!(matches!(stat_field(me, 0).as_deref(), Some("R" | "S")));
        assert!(stat_field(me, 19).is_some_and(|t| t.parse::<u64>().is_ok()));
        assert_eq!(stat_field(me, 10_000), None);
        assert_eq!(stat_field(u32::MAX, 0), None, "no such process");
    }

    #[test]
    fn children_lists_a_child_process() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep starts");
        let found = children(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.contains(&child.id()), "{found:?}");
        assert!(found.windows(2).all(|w| w[0] < w[1]), "sorted: {found:?}");
        assert!(children(u32::MAX).is_empty());
    }

    #[test]
    fn socket_inodes_lists_open_sockets() {
        let (a, b) = UnixStream::pair().expect("socketpair");
        let inode = |stream: &UnixStream| {
            fs::metadata(format!("/proc/self/fd/{}", stream.as_raw_fd()))
                .expect("stat of the socket")
                .ino()
        };
        let found = socket_inodes(std::process::id());
        assert!(found.contains(&inode(&a)), "{found:?}");
        assert!(found.contains(&inode(&b)), "{found:?}");
        assert!(socket_inodes(u32::MAX).is_empty());
    }
}
