//! Parsers for the `/proc/PID/*` files Peeka reads: `status` and `maps`.

use std::fs;
use std::io;
use std::path::PathBuf;

/// The fields of `/proc/PID/status` that matter for attaching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Name`: the command name (at most 15 bytes).
    pub name: String,
    /// `State`: the one-letter state, e.g. `S`, `R`, `Z`.
    pub state: char,
    /// `PPid`: the parent's pid, 0 for the first process of a pid namespace.
    pub ppid: u32,
    /// `Uid`: real, effective, saved and filesystem uid.
    pub uid: [u32; 4],
    /// `Gid`: real, effective, saved and filesystem gid.
    pub gid: [u32; 4],
    /// `NSpid`: the pid in each nested pid namespace, outermost first.
    pub ns_pid: Vec<u32>,
    /// `TracerPid`: the pid of the process tracing it, 0 if none.
    pub tracer_pid: u32,
    /// `Threads`: number of threads.
    pub threads: u32,
    /// `CapEff`: effective capability set.
    pub cap_eff: u64,
    /// `Seccomp`: 0 none, 1 strict, 2 filter.
    pub seccomp: u8,
}

impl ProcStatus {
    /// Reads `/proc/<pid>/status`.
    ///
    /// # Errors
    /// The I/O error of reading the file (`NotFound` when the process is gone).
    pub fn read(pid: u32) -> io::Result<Self> {
        Ok(Self::parse(&fs::read_to_string(format!(
            "/proc/{pid}/status"
        ))?))
    }

    /// Parses the text of a status file; unknown or malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let mut status = Self::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key {
                "Name" => status.name = value.to_owned(),
                "State" => status.state = value.chars().next().unwrap_or('?'),
                "Uid" => status.uid = four_ids(value),
                "Gid" => status.gid = four_ids(value),
                "NSpid" => {
                    status.ns_pid = value
                        .split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect();
                }
                "PPid" => status.ppid = value.parse().unwrap_or(0),
                "TracerPid" => status.tracer_pid = value.parse().unwrap_or(0),
                "Threads" => status.threads = value.parse().unwrap_or(0),
                "CapEff" => status.cap_eff = u64::from_str_radix(value, 16).unwrap_or(0),
                "Seccomp" => status.seccomp = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        status
    }

    /// The effective uid.
    pub fn euid(&self) -> u32 {
        self.uid[1]
    }

    /// Whether the process is a zombie (exited, not yet reaped) or dead.
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

fn four_ids(value: &str) -> [u32; 4] {
    let mut ids = [0; 4];
    for (slot, id) in ids.iter_mut().zip(value.split_whitespace()) {
        *slot = id.parse().unwrap_or(0);
    }
    ids
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// First address of the mapping.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub exec: bool,
    /// Offset of the mapping in its file.
    pub offset: u64,
    /// Inode of the file, 0 for anonymous mappings.
    pub inode: u64,
    /// The file's path as the target sees it (in its mount namespace), or a
    /// pseudo-name such as `[heap]`; `None` for anonymous mappings.
    pub path: Option<PathBuf>,
    /// The file was deleted (or replaced) on disk after it was mapped.
    pub deleted: bool,
}

impl MapEntry {
    /// Reads and parses `/proc/<pid>/maps`.
    ///
    /// # Errors
    /// The I/O error of reading the file.
    pub fn read_all(pid: u32) -> io::Result<Vec<Self>> {
        Ok(fs::read_to_string(format!("/proc/{pid}/maps"))?
            .lines()
            .filter_map(Self::parse)
            .collect())
    }

    /// Parses one line; `None` when it is malformed.
    pub fn parse(line: &str) -> Option<Self> {
        let mut fields = line.splitn(6, ' ');
        let (start, end) = fields.next()?.split_once('-')?;
        let perms = fields.next()?.as_bytes();
        let offset = fields.next()?;
        let _dev = fields.next()?;
        let inode = fields.next()?;
        let rest = fields.next().unwrap_or("").trim_start();
        let (path, deleted) = match rest {
            "" => (None, false),
            p => match p.strip_suffix(" (deleted)") {
                Some(p) => (Some(PathBuf::from(p)), true),
                None => (Some(PathBuf::from(p)), false),
            },
        };
        Some(Self {
            start: u64::from_str_radix(start, 16).ok()?,
            end: u64::from_str_radix(end, 16).ok()?,
            read: perms.first() == Some(&b'r'),
            write: perms.get(1) == Some(&b'w'),
            exec: perms.get(2) == Some(&b'x'),
            offset: u64::from_str_radix(offset, 16).ok()?,
            inode: inode.parse().ok()?,
            path,
            deleted,
        })
    }

    /// The `/proc/<pid>/map_files/` entry of this mapping, which opens the
    /// very file that is mapped even when it was deleted or lives in another
    /// mount namespace.
    pub fn map_files_path(&self, pid: u32) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{pid}/map_files/{:x}-{:x}",
            self.start, self.end
        ))
    }

    /// Whether the mapping is backed by a file (not anonymous, not `[heap]`).
    pub fn is_file(&self) -> bool {
        self.inode != 0 && self.path.as_ref().is_some_and(|p| p.is_absolute())
    }
}

/// The thread ids of process `pid` (`/proc/PID/task`), sorted.
///
/// # Errors
/// The error reading the directory (`NotFound` when the process is gone).
pub(crate) fn task_ids(pid: u32) -> io::Result<Vec<u32>> {
    let mut tids: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let status = ProcStatus::parse(
            "Name:\tpython3.12\nState:\tS (sleeping)\nPPid:\t41\nTracerPid:\t0\nUid:\t1000\t1000\t1000\t1000\n\
             Gid:\t100\t100\t100\t100\nNSpid:\t4242\t17\nThreads:\t3\nCapEff:\t000001ffffffffff\nSeccomp:\t2\n",
        );
        assert_eq!(status.name, "python3.12");
        assert_eq!(status.state, 'S');
        assert_eq!(status.ppid, 41);
        assert_eq!(status.euid(), 1000);
        assert_eq!(status.ns_pid, [4242, 17]);
        assert_eq!(status.threads, 3);
        assert_eq!(status.cap_eff, 0x1ff_ffff_ffff);
        assert_eq!(status.seccomp, 2);
        assert!(!status.is_zombie());
    }

    #[test]
    fn parses_maps_lines() {
        let e = MapEntry::parse(
            "7f3a1c000000-7f3a1c200000 r-xp 00001000 fd:01 1234   /usr/lib/libpython3.12.so.1.0 (deleted)",
        )
        .unwrap();
        assert_eq!(
            (e.start, e.end, e.offset, e.inode),
            (0x7f3a_1c00_0000, 0x7f3a_1c20_0000, 0x1000, 1234)
        );
        assert!(e.read && !e.write && e.exec && e.deleted && e.is_file());
        assert_eq!(
            e.path.unwrap(),
            PathBuf::from("/usr/lib/libpython3.12.so.1.0")
        );
        let anon = MapEntry::parse("7ffd0000-7ffd1000 rw-p 00000000 00:00 0 ").unwrap();
        assert!(anon.path.is_none() && !anon.is_file());
        let heap = MapEntry::parse("01000000-02000000 rw-p 00000000 00:00 0    [heap]").unwrap();
        assert!(!heap.is_file());
        let spaced =
            MapEntry::parse("1000-2000 r--p 00000000 08:01 9  /opt/my app/python").unwrap();
        assert_eq!(spaced.path.unwrap(), PathBuf::from("/opt/my app/python"));
    }

    #[test]
    fn reads_own_status_and_maps() {
        let me = std::process::id();
        let status = ProcStatus::read(me).unwrap();
        assert_eq!(status.ns_pid.first().copied(), Some(me));
        let maps = MapEntry::read_all(me).unwrap();
        assert!(maps.iter().any(|m| m.exec && m.is_file()));
    }
}
