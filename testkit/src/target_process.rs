//! Real target processes for integration tests: a Python script started
//! with one of the manifest's interpreters, killed when the test ends.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crate::interpreter::Interpreter;

/// How long a target may take to print its `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A running target script. Dropping it kills the process and removes the
/// files it was given.
#[derive(Debug)]
pub struct TargetProcess {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    /// The working directory made for it, as the host sees it.
    host_dir: PathBuf,
    /// The same directory as the target sees it.
    target_dir: PathBuf,
}

impl TargetProcess {
    /// Starts `script` (a file on the host) with `python`, after copying it
    /// into a fresh directory under the interpreter's root (so chrooted
    /// interpreters can read it), and waits for the script's first line of
    /// output, which must be `ready`.
    ///
    /// `env` is added to the environment; `args` follow the script path.
    ///
    /// # Errors
    /// An I/O error when the copy or the start fails, or `TimedOut` /
    /// `InvalidData` when the script does not announce `ready` in time
    /// (its stderr is included).
    pub fn spawn(
        python: &Interpreter,
        script: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> io::Result<Self> {
        Self::spawn_with(python, script, args, env, |_| {})
    }

    /// Like [`spawn`](Self::spawn), letting `customize` adjust the command
    /// (e.g. to change uid) before it starts.
    ///
    /// # Errors
    /// As [`spawn`](Self::spawn).
    pub fn spawn_with(
        python: &Interpreter,
        script: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        customize: impl FnOnce(&mut Command),
    ) -> io::Result<Self> {
        let name = format!(
            "peeka-testkit-{}-{}",
            std::process::id(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let target_dir = Path::new("/tmp").join(name);
        let host_dir = python.host_path(&target_dir);
        fs::create_dir_all(&host_dir)?;
        // World-readable so that a target started as another user can read it.
        fs::set_permissions(&host_dir, fs::Permissions::from_mode(0o755))?;
        let file_name = script.file_name().unwrap_or(script.as_os_str());
        fs::copy(script, host_dir.join(file_name))?;

        let mut command = python.command();
        command
            .arg("-u")
            .arg(target_dir.join(file_name))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(host_dir.join("stderr.txt"))?);
        customize(&mut command);
        let child = command.spawn()?;
        let mut process = Self {
            child,
            stdout: None,
            host_dir,
            target_dir,
        };
        let stdout = process.child.stdout.take().map(BufReader::new);
        process.stdout = wait_ready(stdout, &process)?;
        Ok(process)
    }

    /// The target's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the target wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.host_dir.join("stderr.txt")).unwrap_or_default()
    }

    /// Reads the next line the target prints on stdout (blocking).
    pub fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if let Some(stdout) = self.stdout.as_mut() {
            stdout.read_line(&mut line)?;
        }
        Ok(line.trim_end().to_owned())
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The directory the target was started from, as the host sees it.
    pub fn host_dir(&self) -> &Path {
        &self.host_dir
    }

    /// The same directory, as the target sees it.
    pub fn target_dir(&self) -> &Path {
        &self.target_dir
    }

    /// The state letter from `/proc/PID/status` (`R`, `S`, `T`, `Z`...).
    pub fn state(&self) -> Option<char> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .and_then(|s| s.trim().chars().next())
    }
}

/// Whether every thread of process `pid` sleeps (state `S` in
/// `/proc/PID/task/TID/stat`): the process is idle, each thread waiting
/// for something. `false` when the process is gone.
pub fn all_threads_sleep(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('S')))
            .unwrap_or(false)
    })
}

/// Waits for the `ready` line on another thread, bounded by [`READY_TIMEOUT`].
fn wait_ready(
    stdout: Option<BufReader<ChildStdout>>,
    process: &TargetProcess,
) -> io::Result<Option<BufReader<ChildStdout>>> {
    let mut stdout = stdout.ok_or_else(|| io::Error::other("the target has no stdout pipe"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let result = stdout.read_line(&mut line).map(|_| line);
        let _ = tx.send((result, stdout));
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok((Ok(line), stdout)) if line.trim_end() == "ready" => Ok(Some(stdout)),
        Ok((Ok(line), _)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the target printed {line:?} instead of `ready`; its stderr:\n{}",
                process.stderr()
            ),
        )),
        Ok((Err(e), _)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the target did not print `ready` within {READY_TIMEOUT:?}; its stderr:\n{}",
                process.stderr()
            ),
        )),
    }
}

impl Drop for TargetProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut stdout) = self.stdout.take() {
            let mut rest = Vec::new();
            let _ = stdout.read_to_end(&mut rest);
        }
        let _ = fs::remove_dir_all(&self.host_dir);
    }
}
