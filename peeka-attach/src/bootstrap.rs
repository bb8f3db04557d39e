//! The private directory the client prepares in the target's filesystem,
//! and the bootstrap the attach methods make the target run.
//!
//! The directory is `/tmp/peeka-<pid in the target's namespace>` inside the
//! target's root (reached as `/proc/PID/root/tmp/...`, so chroots and
//! containers work), mode `0700`, owned by the target's uid. It holds the
//! bootstrap script, the agent's files, and the status files the bootstrap
//! writes. A second attach to the same process reuses it.

use std::fs::{self, DirBuilder};
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::target::Target;

/// The bootstrap's source, with placeholders the client fills in.
const BOOTSTRAP_TEMPLATE: &str = include_str!("bootstrap.py");

/// The agent's files and how to start it: Python source files written into
/// the private directory, and the function the bootstrap calls in a daemon
/// thread as `entry_function(directory, token)`.
///
/// `peeka-core` provides the real agent; tests provide small ones.
#[derive(Debug, Clone)]
pub struct AgentFiles {
    /// Files to write, by path relative to the private directory.
    pub files: Vec<(String, Vec<u8>)>,
    /// The file (relative path) that defines the entry function.
    pub entry_file: String,
    /// Its name; it may return a `dict` of details for the client.
    pub entry_function: String,
}

/// A failure to prepare the private directory.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StageError {
    /// Creating or writing failed.
    #[error("cannot prepare {path} in the target's filesystem: {source}")]
    Io {
        /// The path, as we see it.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Something else is where the directory must go.
    #[error("{path} exists but is not a private directory of uid {uid} (owner {owner}, mode {mode:o}); it may have been planted by another user: remove it and attach again")]
    Untrusted {
        /// The path, as we see it.
        path: PathBuf,
        /// The target's uid.
        uid: u32,
        /// Its owner.
        owner: u32,
        /// Its mode.
        mode: u32,
    },
    /// An entry file name that could escape the directory.
    #[error("agent file name {0:?} must be a relative path without `..`")]
    BadFileName(String),
}

/// What the bootstrap reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapStatus {
    /// The agent's entry function returned; the `dict` it returned, as JSON text.
    Loaded(String),
    /// An agent was already running in the target; nothing new was loaded.
    AlreadyRunning,
    /// Loading the agent raised; the target-side traceback.
    Failed(String),
}

/// The prepared private directory of one attach.
#[derive(Debug)]
pub struct Staging {
    /// The directory as the target sees it, e.g. `/tmp/peeka-4242`.
    pub target_dir: PathBuf,
    /// The same directory as we can open it (through `/proc/PID/root`).
    pub host_dir: PathBuf,
    /// This attach's token (unique per attach).
    pub token: String,
    /// The bootstrap script, as the target sees it.
    pub script: PathBuf,
    /// Whether the directory existed before (a previous attach).
    pub reused: bool,
}

impl Staging {
    /// The directory for `target`, as the target sees it.
    pub fn target_dir_for(target: &Target) -> PathBuf {
        Self::target_dir_for_ns_pid(target.ns_pid)
    }

    /// The directory of the process whose pid in its own pid namespace is
    /// `ns_pid` (the last `NSpid` of `/proc/PID/status`), as that process
    /// sees it. Clients that only look for a running agent use this to
    /// avoid a full [`Target::inspect`].
    pub fn target_dir_for_ns_pid(ns_pid: u32) -> PathBuf {
        PathBuf::from(format!("/tmp/peeka-{ns_pid}"))
    }

    /// Creates (or reuses) the private directory and writes the bootstrap
    /// and the agent's files into it, owned by the target's uid.
    ///
    /// # Errors
    /// [`StageError`] when the directory cannot be made private and ours.
    pub fn prepare(target: &Target, agent: &AgentFiles) -> Result<Self, StageError> {
        let target_dir = Self::target_dir_for(target);
        let host_dir = target.host_path(&target_dir);
        let (uid, gid) = (target.uid(), target.status.gid[1]);
        let reused = make_private_dir(&host_dir, uid, gid)?;
        let token = new_token();
        let script_name = format!("bootstrap-{token}.py");
        let script = render_bootstrap(&target_dir, &token, agent);
        write_private(&host_dir.join(&script_name), script.as_bytes(), uid, gid)?;
        for (name, contents) in &agent.files {
            let relative = Path::new(name);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(StageError::BadFileName(name.clone()));
            }
            let path = host_dir.join(relative);
            if let Some(parent) = path.parent().filter(|p| *p != host_dir) {
                make_private_dir(parent, uid, gid)?;
            }
            write_private(&path, contents, uid, gid)?;
        }
        Ok(Self {
            script: target_dir.join(script_name),
            target_dir,
            host_dir,
            token,
            reused,
        })
    }

    /// The one-line Python statement that runs the bootstrap script in a
    /// fresh namespace and never raises: what the ptrace, gdb and lldb
    /// methods hand to `PyRun_SimpleString`.
    ///
    /// It runs in `__main__`'s namespace, so it binds no name and closes the
    /// file it reads itself: a file left to the garbage collector raises a
    /// `ResourceWarning`, and even an ignored warning creates
    /// `__main__.__warningregistry__`.
    pub fn runner_code(&self) -> String {
        let path = python_string(&self.script.to_string_lossy());
        format!(
            "try:exec(compile((lambda f:(f.read(),f.close())[0])(open({path},'rb')),{path},'exec'),{{'__name__':'__peeka_bootstrap__'}})\nexcept BaseException:pass\n"
        )
    }

    /// The bootstrap's report, once it has written one.
    pub fn status(&self) -> Option<BootstrapStatus> {
        let text = fs::read_to_string(self.host_dir.join(format!("status.{}", self.token))).ok()?;
        Some(parse_status(&text))
    }

    /// Whether some thread of the target has started running the bootstrap.
    pub fn claimed(&self) -> bool {
        self.host_dir
            .join(format!("claimed-{}", self.token))
            .exists()
    }

    /// Polls [`claimed`](Self::claimed) until it holds or `deadline`
    /// passes, pausing 100 µs at first and twice as long each time, up to
    /// 5 ms. Returns whether the attach was claimed.
    pub(crate) fn wait_claimed(&self, deadline: Instant) -> bool {
        self.wait_claimed_polling(deadline, Duration::from_millis(5))
    }

    /// [`wait_claimed`](Self::wait_claimed) with the longest pause between
    /// two looks at `max_pause`.
    pub(crate) fn wait_claimed_polling(&self, deadline: Instant, max_pause: Duration) -> bool {
        let mut pause = Duration::from_micros(100);
        loop {
            if self.claimed() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(max_pause);
        }
    }

    /// Polls [`status`](Self::status) until it is written or `deadline` passes.
    pub fn wait_status(&self, deadline: Instant) -> Option<BootstrapStatus> {
        let mut pause = Duration::from_micros(200);
        loop {
            if let Some(status) = self.status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Removes this attach's bootstrap script, so that a request that fires
    /// late finds nothing to run.
    pub fn remove_script(&self) {
        let name = self
            .script
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        let _ = fs::remove_file(self.host_dir.join(name));
    }

    /// Removes the whole private directory (on a failed first attach, or on
    /// detach).
    pub fn remove_all(&self) {
        let _ = fs::remove_dir_all(&self.host_dir);
    }
}

fn parse_status(text: &str) -> BootstrapStatus {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => return BootstrapStatus::Failed(format!("unreadable status file: {text}")),
    };
    match value.get("state").and_then(|s| s.as_str()) {
        Some("loaded") => BootstrapStatus::Loaded(
            value
                .get("details")
                .map(ToString::to_string)
                .unwrap_or_else(|| "{}".into()),
        ),
        Some("already_running") => BootstrapStatus::AlreadyRunning,
        _ => BootstrapStatus::Failed(
            value
                .get("traceback")
                .and_then(|t| t.as_str())
                .map_or_else(|| text.to_owned(), str::to_owned),
        ),
    }
}

/// A Python string literal for `text` (ASCII-safe, escapes everything else).
pub fn python_string(text: &str) -> String {
    let mut out = String::from("'");
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            ' '..='~' => out.push(c),
            c => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('\'');
    out
}

fn render_bootstrap(dir: &Path, token: &str, agent: &AgentFiles) -> String {
    BOOTSTRAP_TEMPLATE
        .replace(
            "__PEEKA_DIRECTORY__",
            &python_string(&dir.to_string_lossy()),
        )
        .replace("__PEEKA_TOKEN__", &python_string(token))
        .replace("__PEEKA_ENTRY_FILE__", &python_string(&agent.entry_file))
        .replace(
            "__PEEKA_ENTRY_FUNCTION__",
            &python_string(&agent.entry_function),
        )
}

fn new_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", std::process::id(), nanos & 0xFFFF_FFFF_FFFF)
}

/// Creates `path` as a 0700 directory owned by `uid`, or checks that the
/// existing one is exactly that. Returns whether it existed.
fn make_private_dir(path: &Path, uid: u32, gid: u32) -> Result<bool, StageError> {
    let io_err = |source| StageError::Io {
        path: path.to_owned(),
        source,
    };
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(io_err)?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_err)?;
            Ok(false)
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => check_existing_private_dir(path, uid),
        Err(e) => Err(io_err(e)),
    }
}

/// Whether `path` holds a directory Peeka may use for a target of `uid`:
/// a real directory (not a link), owned by `uid`, mode `0700`.
///
/// Returns `Ok(false)` when nothing is there, `Ok(true)` when it is such a
/// directory.
///
/// # Errors
/// [`StageError::Untrusted`] when something else is there, [`StageError::Io`]
/// when it cannot be examined.
pub fn check_existing_private_dir(path: &Path, uid: u32) -> Result<bool, StageError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(StageError::Io {
                path: path.to_owned(),
                source,
            })
        }
    };
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != uid || mode != 0o700 {
        return Err(StageError::Untrusted {
            path: path.to_owned(),
            uid,
            owner: meta.uid(),
            mode,
        });
    }
    Ok(true)
}

/// Writes a new file readable only by `uid`, refusing to follow symlinks.
fn write_private(path: &Path, contents: &[u8], uid: u32, gid: u32) -> Result<(), StageError> {
    let io_err = |source| StageError::Io {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(io_err)?;
    io::Write::write_all(&mut file, contents).map_err(io_err)?;
    std::os::unix::fs::fchown(&file, Some(uid), Some(gid)).map_err(io_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_strings_escape_everything_odd() {
        assert_eq!(python_string("/tmp/a'b\\c"), r"'/tmp/a\'b\\c'");
        assert_eq!(python_string("é"), r"'\U000000e9'");
    }

    #[test]
    fn bootstrap_template_has_every_placeholder_filled() {
        let agent = AgentFiles {
            files: Vec::new(),
            entry_file: "agent.py".into(),
            entry_function: "start".into(),
        };
        let text = render_bootstrap(Path::new("/tmp/peeka-1"), "tok", &agent);
        assert!(!text.contains("__PEEKA_"));
        assert!(text.contains("_peeka_bootstrap('/tmp/peeka-1', 'tok', 'agent.py', 'start')"));
    }

    #[test]
    fn status_files_are_understood() {
        assert_eq!(
            parse_status(r#"{"state": "already_running", "token": "t", "pid": 1}"#),
            BootstrapStatus::AlreadyRunning
        );
        assert_eq!(
            parse_status(r#"{"traceback": "Traceback:\n  boom \"x\"", "state": "error"}"#),
            BootstrapStatus::Failed("Traceback:\n  boom \"x\"".into())
        );
        assert_eq!(
            parse_status(r#"{"state": "loaded", "details": {"port": 1}}"#),
            BootstrapStatus::Loaded(r#"{"port":1}"#.into())
        );
    }
}
