//! Starting a Python program with the agent loaded before its first line
//! (what `peeka-cli run` does), and probes that wait for their function.
//!
//! [`Session::launch`] starts `python -c <launcher> NONCE path|module TARGET
//! ARGS...` with the caller's stdin, stdout and stderr. The launcher
//! (`run_launcher.py`) makes the private directory `/tmp/peeka-<pid>` (mode
//! 0700) in the interpreter's own filesystem, clears any control file an
//! earlier process with the same pid left there, and writes `run.ready`
//! holding the nonce (so a directory left behind by a killed process is
//! never taken for this one's); the client then stages the
//! agent there exactly as an attach does ([`Staging::prepare`]), hands the
//! launcher the bootstrap's path (`run.load`), waits for the bootstrap's
//! status and connects. The program has not started yet: the caller
//! installs its probes (typically with `"pending": true`, see
//! [`Session::open_pending`]) and then calls [`Launch::start_program`]
//! (`run.go`). The agent's `run_program` runs the program as `__main__`
//! with `runpy`-like semantics. [`Launch::wait`] waits for the program and
//! removes whatever is left of the private directory.
//!
//! Every wait of the launcher is bounded (60 s for `run.load`, 120 s for
//! `run.go`) and ends when its parent, this client, goes away; dropping a
//! [`Launch`] whose program has not started tells the launcher to exit
//! (`run.stop`) without running it.

use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use peeka_attach::private_dir::PrivateDir;
use peeka_attach::procfs::ProcStatus;
use peeka_attach::{BootstrapStatus, Staging, Target};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::core::encode_params;
use super::error::ClientError;
use super::locate::{agent_paths, SOCKET_NAME};
use super::options::SessionOptions;
use super::session::Session;
use super::subscription::Subscription;
use crate::agent::agent_files;

/// A value this launch alone writes in `run.ready`: this client's pid and
/// the time, to the nanosecond.
fn launch_nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

/// The code `python -c` runs.
pub const LAUNCHER: &str = include_str!("run_launcher.py");

/// What to run: a script or a module (`python -m`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// A script, by its path as the interpreter sees it.
    Script(PathBuf),
    /// A module name, run like `python -m`.
    Module(String),
}

/// How to start the program.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LaunchConfig {
    /// The interpreter: a program and the arguments before `-c` (default
    /// `python3`).
    pub python: Vec<OsString>,
    /// The script or module.
    pub program: Program,
    /// The program's arguments.
    pub args: Vec<OsString>,
    /// How long the interpreter and the agent may take to start.
    pub timeout: Duration,
    /// Options of the session with the agent.
    pub session: SessionOptions,
}

impl LaunchConfig {
    /// `python3` running `program` without arguments, 10 s to start.
    pub fn new(program: Program) -> Self {
        Self {
            python: vec!["python3".into()],
            program,
            args: Vec::new(),
            timeout: Duration::from_secs(10),
            session: SessionOptions::default(),
        }
    }

    /// The interpreter (a program path or name).
    #[must_use]
    pub fn python(mut self, python: impl Into<OsString>) -> Self {
        self.python = vec![python.into()];
        self
    }

    /// The program's arguments.
    #[must_use]
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// How long the interpreter and the agent may take to start.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// A program started by [`Session::launch`]: not running its code until
/// [`start_program`](Self::start_program).
#[derive(Debug)]
pub struct Launch {
    child: Option<Child>,
    pid: u32,
    /// The private directory, held open: it belongs to the program's user,
    /// so it is used only relative to the checked directory, and it stays
    /// reachable after the process (and its `/proc/PID/root`) is gone.
    private_dir: Option<PrivateDir>,
    started: bool,
}

fn launch_error(what: &str, detail: impl Into<String>) -> ClientError {
    ClientError::Io {
        what: what.to_owned(),
        source: io::Error::other(detail.into()),
    }
}

impl Session {
    /// Starts the program `cfg` names with the agent loaded and connects
    /// to it; the program waits for [`Launch::start_program`].
    ///
    /// # Errors
    /// [`ClientError::Io`] when the interpreter cannot be started, exits,
    /// or the agent does not come up within `cfg.timeout` (the message
    /// says which, with the bootstrap's traceback); the errors of
    /// [`connect_socket`](Self::connect_socket).
    pub fn launch(cfg: &LaunchConfig) -> Result<(Session, Launch), ClientError> {
        let deadline = Instant::now() + cfg.timeout;
        let (python, before) = cfg
            .python
            .split_first()
            .ok_or_else(|| launch_error("starting the interpreter", "no interpreter given"))?;
        let nonce = launch_nonce();
        let mut command = Command::new(python);
        command.args(before).arg("-c").arg(LAUNCHER).arg(&nonce);
        match &cfg.program {
            Program::Script(path) => command.arg("path").arg(path),
            Program::Module(name) => command.arg("module").arg(name),
        };
        command.args(&cfg.args);
        let child = command.spawn().map_err(|source| ClientError::Io {
            what: format!("starting {}", python.to_string_lossy()),
            source,
        })?;
        let pid = child.id();
        let mut launch = Launch {
            child: Some(child),
            pid,
            private_dir: None,
            started: false,
        };
        // The launcher makes the directory once the interpreter runs (in
        // its own root, once a chroot wrapper has done its work), then
        // writes our nonce in it.
        let (_, socket) = agent_paths(pid)?;
        let proc_dir = socket.parent().map(PathBuf::from).unwrap_or_default();
        let mut pause = Duration::from_micros(200);
        let dir = loop {
            if let Some(dir) = ready_dir(pid, &proc_dir, &nonce) {
                break dir;
            }
            launch.check_running()?;
            if Instant::now() >= deadline {
                return Err(launch_error(
                    "starting the program",
                    format!(
                        "the interpreter (pid {pid}) did not start within {:?}",
                        cfg.timeout
                    ),
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        };
        dir.remove_file("run.ready");
        launch.private_dir = Some(dir);
        let target = Target::inspect(pid)
            .map_err(|e| launch_error("examining the interpreter", e.to_string()))?;
        let staging = Staging::prepare(&target, &agent_files())
            .map_err(|e| launch_error("staging the agent", e.to_string()))?;
        let message = format!("{}\n{}\n", staging.script.to_string_lossy(), staging.token);
        write_control(staging.private_dir(), "run.load", message.as_bytes())?;
        let status = loop {
            if let Some(status) = staging.wait_status(Instant::now() + Duration::from_millis(50)) {
                break status;
            }
            launch.check_running()?;
            if Instant::now() >= deadline {
                return Err(launch_error(
                    "loading the agent",
                    format!("no answer from the bootstrap within {:?}", cfg.timeout),
                ));
            }
        };
        staging.remove_script();
        if let BootstrapStatus::Failed(traceback) = status {
            return Err(launch_error(
                "loading the agent",
                format!("the agent failed to start:\n{traceback}"),
            ));
        }
        let session =
            Session::connect_socket_with(&staging.host_dir.join(SOCKET_NAME), pid, &cfg.session)?;
        Ok((session, launch))
    }

    /// Opens the stream of probe command `command` (`watch`, `stack`,
    /// `monitor`, `trace`) with `"pending": true`: a pattern that names no
    /// function yet waits for it (the response has `"pending": true` and
    /// no `matched`; a `resolved` event comes when the function appears).
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe); [`ClientError::InvalidRequest`]
    /// when `request` does not encode as a JSON object.
    pub fn open_pending<T: DeserializeOwned>(
        &self,
        command: &str,
        request: &impl Serialize,
    ) -> Result<Subscription<T>, ClientError> {
        let mut params = serde_json::to_value(request).unwrap_or(Value::Null);
        let Some(object) = params.as_object_mut() else {
            return Err(ClientError::InvalidRequest {
                command: command.to_owned(),
                detail: "the request is not a JSON object".into(),
            });
        };
        object.insert("pending".into(), Value::Bool(true));
        self.open(command, encode_params(command, &params)?)
    }
}

impl Launch {
    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets the program run (call once the probes are installed).
    ///
    /// # Errors
    /// [`ClientError::Io`] when the signal cannot be written or the
    /// interpreter already exited.
    pub fn start_program(&mut self) -> Result<(), ClientError> {
        self.check_running()?;
        let dir = self
            .private_dir
            .as_ref()
            .ok_or_else(|| launch_error("starting the program", "its private directory is gone"))?;
        write_control(dir, "run.go", b"")?;
        self.started = true;
        Ok(())
    }

    /// Waits for the program to exit and removes what is left of the
    /// private directory. Returns its exit status.
    ///
    /// # Errors
    /// [`ClientError::Io`] when waiting fails.
    pub fn wait(mut self) -> Result<ExitStatus, ClientError> {
        let status = match self.child.take() {
            Some(mut child) => child.wait().map_err(|source| ClientError::Io {
                what: "waiting for the program".into(),
                source,
            })?,
            None => ExitStatus::from_raw(0),
        };
        self.cleanup();
        Ok(status)
    }

    fn check_running(&mut self) -> Result<(), ClientError> {
        let Some(child) = self.child.as_mut() else {
            return Err(launch_error("starting the program", "it already exited"));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(launch_error(
                "starting the program",
                format!("the interpreter exited early ({status})"),
            )),
            Err(source) => Err(ClientError::Io {
                what: "watching the interpreter".into(),
                source,
            }),
        }
    }

    fn cleanup(&mut self) {
        if let Some(dir) = self.private_dir.take() {
            let _ = dir.remove_all();
        }
    }
}

impl Drop for Launch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if !self.started {
                if let Some(dir) = self.private_dir.as_ref() {
                    let _ = write_control(dir, "run.stop", b"");
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.cleanup();
    }
}

/// The launcher's private directory at `proc_dir`, once it is there as the
/// program's own (a real directory of its uid, mode 0700) and holds
/// `run.ready` with `nonce` (a regular file of that uid, read up to 4 KiB).
fn ready_dir(pid: u32, proc_dir: &Path, nonce: &str) -> Option<PrivateDir> {
    let status = ProcStatus::read(pid).ok()?;
    let dir = PrivateDir::open_existing(proc_dir, status.euid(), status.gid[1]).ok()??;
    let ready = dir.read_file("run.ready", 4096).ok()?;
    (ready == nonce.as_bytes()).then_some(dir)
}

/// Writes control file `name` into the launcher's directory whole (a
/// temporary name, then a rename), relative to the open directory.
fn write_control(dir: &PrivateDir, name: &str, contents: &[u8]) -> Result<(), ClientError> {
    dir.replace_file(name, contents)
        .map_err(|e| ClientError::Io {
            what: format!("writing {name} into {}", dir.path().display()),
            source: io::Error::other(e.to_string()),
        })
}
