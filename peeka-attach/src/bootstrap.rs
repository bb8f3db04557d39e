//! The private directory the client prepares in the target's filesystem,
//! and the bootstrap the attach methods make the target run.
//!
//! The directory is `/tmp/peeka-<pid in the target's namespace>` inside the
//! target's root (reached as `/proc/PID/root/tmp/...`, so chroots and
//! containers work), mode `0700`, owned by the target's uid. It holds the
//! bootstrap script, the agent's files, and the status files the bootstrap
//! writes. A second attach to the same process reuses it.
//!
//! That user can write in the directory, so everything done in it goes
//! through [`PrivateDir`]: relative to the checked, open directory, never
//! following a link, reading only small regular files of that user.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::private_dir::PrivateDir;
use crate::process_identity::ProcessIdentity;
use crate::target::Target;
use crate::untrusted_file::{UntrustedFileError, UNTRUSTED_READ_LIMIT};

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
    #[error("agent file name {0:?} must be a relative path without `..` or a line break")]
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
    /// For messages and for connecting to the agent's socket: files in it
    /// are read and written through [`private_dir`](Self::private_dir).
    pub host_dir: PathBuf,
    /// This attach's token (unique per attach).
    pub token: String,
    /// The bootstrap script, as the target sees it.
    pub script: PathBuf,
    /// Whether the directory existed before (a previous attach).
    pub reused: bool,
    /// The directory, open and checked.
    dir: PrivateDir,
    /// The target, to notice that it exited.
    process: ProcessIdentity,
}

/// Why [`Staging::wait_report`] got no report from the bootstrap.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NoReport {
    /// The target exited (or its pid now names another process).
    #[error("process {pid} exited")]
    TargetExited {
        /// The pid.
        pid: u32,
    },
    /// Something that is not a status file the bootstrap could have
    /// written was at its name until the deadline; it was not read.
    #[error(
        "the status file {path} was rejected, it may have been planted by another user: {problem}"
    )]
    Rejected {
        /// The status file, as we reach it.
        path: PathBuf,
        /// What was wrong with it.
        problem: UntrustedFileError,
    },
    /// Nothing was written before the deadline.
    #[error("no status file was written in time")]
    NotWritten,
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
        for (name, _) in &agent.files {
            let relative = Path::new(name);
            if relative.is_absolute()
                || name.contains('\n')
                || relative
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(StageError::BadFileName(name.clone()));
            }
        }
        let (dir, reused) = PrivateDir::create_or_reuse(&host_dir, uid, gid)?;
        let staging = Self {
            script: PathBuf::new(),
            target_dir,
            host_dir,
            token: new_token(),
            reused,
            dir,
            process: target.identity,
        };
        let written = staging.write_files(agent);
        if written.is_err() && !reused {
            let _ = staging.dir.remove_all();
        }
        written.map(|script| Self { script, ..staging })
    }

    /// Writes the bootstrap script and the agent's files; returns the
    /// script's path as the target sees it.
    fn write_files(&self, agent: &AgentFiles) -> Result<PathBuf, StageError> {
        let script_name = format!("bootstrap-{}.py", self.token);
        let bundle_name = self.bundle_name();
        let script = render_bootstrap(&self.target_dir, &self.token, &bundle_name, agent);
        for (name, contents) in &agent.files {
            self.dir.write_file(Path::new(name), contents)?;
        }
        self.dir
            .write_file(Path::new(&bundle_name), &bundle(agent))?;
        self.dir
            .write_file(Path::new(&script_name), script.as_bytes())?;
        Ok(self.target_dir.join(script_name))
    }

    /// The name of this attach's bundle: every agent file in one, which the
    /// bootstrap reads with one system call (see `bootstrap.py`).
    fn bundle_name(&self) -> String {
        format!("bootstrap-{}.bundle", self.token)
    }

    /// The directory, open and checked: every file of it is read, written
    /// and removed through this.
    pub fn private_dir(&self) -> &PrivateDir {
        &self.dir
    }

    /// The identity of the target the directory was prepared for.
    pub fn process(&self) -> ProcessIdentity {
        self.process
    }

    /// Whether the target has exited (see [`ProcessIdentity::is_gone`]).
    pub fn target_gone(&self) -> bool {
        self.process.is_gone()
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

    /// The name of this attach's status file.
    fn status_name(&self) -> String {
        format!("status.{}", self.token)
    }

    /// This attach's status file, as we reach it (for messages).
    pub fn status_path(&self) -> PathBuf {
        self.host_dir.join(self.status_name())
    }

    /// The bootstrap's report, once it has written one; `None` also when
    /// something else is at its name (see [`read_status`](Self::read_status)).
    pub fn status(&self) -> Option<BootstrapStatus> {
        self.read_status().ok()
    }

    /// The bootstrap's report, read as a file another user may have
    /// planted: only a regular file (not a link, FIFO or device) owned by
    /// the target's uid, of at most 64 KiB.
    ///
    /// # Errors
    /// [`UntrustedFileError::Missing`] while it is not written yet; the
    /// other variants when something else is there (never read).
    pub fn read_status(&self) -> Result<BootstrapStatus, UntrustedFileError> {
        let bytes = self
            .dir
            .read_file(&self.status_name(), UNTRUSTED_READ_LIMIT)?;
        Ok(parse_status(&String::from_utf8_lossy(&bytes)))
    }

    /// Whether some thread of the target has started running the bootstrap:
    /// it made `claimed-<token>`, a directory (not a link) of the target's
    /// uid.
    pub fn claimed(&self) -> bool {
        self.dir.has_subdir(&format!("claimed-{}", self.token))
    }

    /// Polls [`claimed`](Self::claimed) until it holds, `deadline` passes
    /// or the target exits, pausing 100 µs at first and twice as long each
    /// time, up to 1 ms. Returns whether the attach was claimed.
    pub(crate) fn wait_claimed(&self, deadline: Instant) -> bool {
        self.wait_claimed_polling(deadline, Duration::from_millis(1))
    }

    /// [`wait_claimed`](Self::wait_claimed) with the longest pause between
    /// two looks at `max_pause`. It returns `false` as soon as the target
    /// has exited ([`target_gone`](Self::target_gone) tells the two apart).
    pub(crate) fn wait_claimed_polling(&self, deadline: Instant, max_pause: Duration) -> bool {
        let mut pause = Duration::from_micros(100);
        loop {
            if self.claimed() {
                return true;
            }
            if self.target_gone() {
                // It may have claimed the attach just before it died.
                return self.claimed();
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(max_pause);
        }
    }

    /// Polls [`status`](Self::status) until it is written, `deadline`
    /// passes or the target exits.
    pub fn wait_status(&self, deadline: Instant) -> Option<BootstrapStatus> {
        self.wait_report(deadline).ok()
    }

    /// Polls the status file until the bootstrap has written it, pausing
    /// 200 µs at first and twice as long each time, up to 1 ms: the
    /// client learns that the agent is ready within a millisecond.
    ///
    /// A file that fails the checks of [`read_status`](Self::read_status)
    /// counts as not written (the bootstrap replaces it atomically when it
    /// reports), and is never read.
    ///
    /// # Errors
    /// [`NoReport::TargetExited`] as soon as the target has exited;
    /// at `deadline`, [`NoReport::Rejected`] when something else was at
    /// the status file's name at the last look, else
    /// [`NoReport::NotWritten`].
    pub fn wait_report(&self, deadline: Instant) -> Result<BootstrapStatus, NoReport> {
        let mut pause = Duration::from_micros(200);
        loop {
            let problem = match self.read_status() {
                Ok(status) => return Ok(status),
                Err(problem) => problem,
            };
            if self.target_gone() {
                // It may have reported just before it died.
                return self.read_status().map_err(|_| NoReport::TargetExited {
                    pid: self.process.pid,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(match problem {
                    UntrustedFileError::Missing => NoReport::NotWritten,
                    problem => NoReport::Rejected {
                        path: self.status_path(),
                        problem,
                    },
                });
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// Removes this attach's bootstrap script, so that a request that fires
    /// late finds nothing to run.
    pub fn remove_script(&self) {
        if let Some(name) = self.script.file_name().and_then(|n| n.to_str()) {
            self.dir.remove_file(name);
        }
        self.dir.remove_file(&self.bundle_name());
    }

    /// Removes the whole private directory (on a failed first attach, or on
    /// detach), through the directory opened when it was prepared: it works
    /// after the target exited, and never follows a link planted inside.
    pub fn remove_all(&self) {
        let _ = self.dir.remove_all();
    }
}

fn parse_status(text: &str) -> BootstrapStatus {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) => {
            return BootstrapStatus::Failed(format!(
                "unreadable status file ({} bytes, not JSON), starting with {:?}",
                text.len(),
                text.chars().take(120).collect::<String>()
            ))
        }
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

/// Every file of `agent` in one: `PEEKA-BUNDLE 1\n`, then per file
/// `<length> <relative path>\n` and its bytes (read by `bootstrap.py`).
fn bundle(agent: &AgentFiles) -> Vec<u8> {
    let size: usize = agent
        .files
        .iter()
        .map(|(n, c)| n.len() + c.len() + 24)
        .sum();
    let mut out = Vec::with_capacity(size + 16);
    out.extend_from_slice(b"PEEKA-BUNDLE 1\n");
    for (name, contents) in &agent.files {
        out.extend_from_slice(format!("{} {name}\n", contents.len()).as_bytes());
        out.extend_from_slice(contents);
    }
    out
}

fn render_bootstrap(dir: &Path, token: &str, bundle: &str, agent: &AgentFiles) -> String {
    BOOTSTRAP_TEMPLATE
        .replace(
            "__PEEKA_DIRECTORY__",
            &python_string(&dir.to_string_lossy()),
        )
        .replace("__PEEKA_TOKEN__", &python_string(token))
        .replace("__PEEKA_BUNDLE_FILE__", &python_string(bundle))
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
        let text = render_bootstrap(Path::new("/tmp/peeka-1"), "tok", "b.bundle", &agent);
        assert!(!text.contains("__PEEKA_"));
        assert!(text
            .contains("_peeka_bootstrap('/tmp/peeka-1', 'tok', 'b.bundle', 'agent.py', 'start')"));
    }

    #[test]
    fn the_bundle_holds_every_file_with_its_length() {
        let agent = AgentFiles {
            files: vec![
                ("pkg/__init__.py".into(), b"x = 1\n".to_vec()),
                ("pkg/empty.py".into(), Vec::new()),
            ],
            entry_file: "pkg/__init__.py".into(),
            entry_function: "start".into(),
        };
        assert_eq!(
            bundle(&agent),
            b"PEEKA-BUNDLE 1\n6 pkg/__init__.py\nx = 1\n0 pkg/empty.py\n".to_vec()
        );
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
