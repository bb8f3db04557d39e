//! The target attached last, remembered per user so that later commands
//! need no `--pid`.
//!
//! Stored as JSON in `$XDG_STATE_HOME/peeka/target.json` (default
//! `~/.local/state/peeka/target.json`), mode 0600: the pid and the
//! process's start time (field 22 of `/proc/PID/stat`), so that a pid
//! reused by another process is not mistaken for the target.
//!
//! The directory may belong to someone else (root running `sudo` with
//! another user's `HOME`): it is used only when it is a real directory
//! owned by us that nobody else can write, the file is read without
//! following links and only when we own it, and the new file is created
//! with `O_EXCL|O_NOFOLLOW` before it replaces the old one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    pid: u32,
    start_time: u64,
}

/// Why no target could be chosen.
#[derive(Debug)]
pub(crate) enum NoTarget {
    /// Nothing remembered.
    Nothing,
    /// The remembered process is gone (or the pid was reused).
    Gone(u32),
    /// Neither `XDG_STATE_HOME` nor `HOME` is set.
    NoHome,
}

impl std::fmt::Display for NoTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Nothing => write!(
                f,
                "no target: give --pid PID, or attach first with `peeka-cli attach PID` (it is then remembered)"
            ),
            Self::Gone(pid) => write!(
                f,
                "the target attached last (pid {pid}) has exited; attach to the new process with \
                 `peeka-cli attach PID`, or give --pid PID"
            ),
            Self::NoHome => write!(
                f,
                "no target: give --pid PID (no remembered target without HOME or XDG_STATE_HOME)"
            ),
        }
    }
}

fn state_file() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".local/state")
        }
    };
    Some(base.join("peeka/target.json"))
}

/// Field 22 (start time in clock ticks since boot) of `/proc/PID/stat`.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split
    // after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Our effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Whether `dir` is a directory (not a link to one) owned by us that no
/// one else can write.
fn trusted_dir(dir: &Path) -> bool {
    fs::symlink_metadata(dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == euid() && m.mode() & 0o022 == 0)
}

/// The stored record, read only from a trusted directory, without
/// following links, from a file we own.
fn read_stored(path: &Path) -> Option<Remembered> {
    if !path.parent().is_some_and(trusted_dir) {
        return None;
    }
    let bytes = peeka_attach::untrusted_file::read_untrusted(path, euid(), 4096).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The remembered target, if it still runs.
pub(crate) fn load() -> Result<u32, NoTarget> {
    let path = state_file().ok_or(NoTarget::NoHome)?;
    let stored = read_stored(&path).ok_or(NoTarget::Nothing)?;
    match start_time(stored.pid) {
        Some(start) if start == stored.start_time => Ok(stored.pid),
        _ => Err(NoTarget::Gone(stored.pid)),
    }
}

/// Remembers `pid` (best effort: a read-only home only costs the
/// convenience). Returns the file written.
pub(crate) fn save(pid: u32) -> Option<PathBuf> {
    let path = state_file()?;
    let start_time = start_time(pid)?;
    let dir = path.parent()?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ok()?;
    if !trusted_dir(dir) {
        return None;
    }
    let temporary = dir.join(format!("target.json.{}", std::process::id()));
    let _ = fs::remove_file(&temporary);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&temporary)
        .ok()?;
    let text = serde_json::to_string(&Remembered { pid, start_time }).ok()?;
    file.write_all(text.as_bytes()).ok()?;
    drop(file);
    fs::rename(&temporary, &path).ok()?;
    Some(path)
}

/// Forgets the remembered target if it is `pid`.
pub(crate) fn forget(pid: u32) {
    let Some(path) = state_file() else { return };
    if read_stored(&path).is_some_and(|r| r.pid == pid) {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_unshared_directories_are_trusted() {
        let dir = std::env::temp_dir().join(format!("peeka-remembered-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        assert!(trusted_dir(&dir));
        let link = dir.with_extension("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(!trusted_dir(&link), "a link to a directory is not trusted");
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        assert!(
            !trusted_dir(&dir),
            "a directory others can write is not trusted"
        );
        // A planted link as the state file is never followed.
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let secret = dir.join("secret");
        fs::write(&secret, br#"{"pid":1,"start_time":1}"#).unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("target.json")).unwrap();
        assert_eq!(read_stored(&dir.join("target.json")), None);
        fs::remove_dir_all(&dir).unwrap();
        fs::remove_file(&link).unwrap();
    }

    #[test]
    fn our_own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_some());
        assert!(start_time(u32::MAX).is_none());
    }
}
