//! Support for the end-to-end tests: the real `peeka-cli` binary run as a
//! child process, its JSON Lines parsed, and a test target that reports on
//! itself.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use peeka_testkit::{Interpreter, TargetProcess};
use serde_json::Value;

/// The binary under test.
pub(crate) fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_peeka-cli")
}

/// A place for the remembered target, private to one test.
pub(crate) fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("peeka-cli-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `peeka-cli` with `args`, remembering targets under `state`.
pub(crate) fn command(state: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("XDG_STATE_HOME", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// What one run printed and how it ended.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) lines: Vec<Value>,
    pub(crate) stderr: String,
}

impl Run {
    /// The `data` of every observation line.
    pub(crate) fn observations(&self) -> Vec<&Value> {
        self.of_type("observation").map(|l| &l["data"]).collect()
    }

    /// Lines whose `type` is `kind`.
    pub(crate) fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.lines.iter().filter(move |l| l["type"] == kind)
    }

    /// The `event` line named `event`.
    pub(crate) fn event(&self, event: &str) -> Option<&Value> {
        self.of_type("event").find(|l| l["event"] == event)
    }

    /// The last line.
    pub(crate) fn last(&self) -> &Value {
        self.lines.last().unwrap_or(&Value::Null)
    }
}

fn parse_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs `peeka-cli args` to its end, which must come within `limit`.
pub(crate) fn run(state: &Path, args: &[&str], limit: Duration) -> Run {
    let child = command(state, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, limit, args)
}

/// Waits for `child` (spawned with piped stdout and stderr) within `limit`.
pub(crate) fn finish(mut child: Child, limit: Duration, what: &[&str]) -> Run {
    let Some(status) = exited_within(&mut child, limit) else {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!(
            "peeka-cli {what:?} did not end within {limit:?}; stdout: {}; stderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let output = child.wait_with_output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        lines: parse_lines(&String::from_utf8_lossy(&output.stdout)),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Waits for `child` to exit, `limit` at most: its status, or `None` when
/// it still runs at the limit (it is left running).
pub(crate) fn exited_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The last line of `stdout` as JSON (`Null` when there is none or it is
/// not JSON): a command's outcome.
pub(crate) fn last_json_line(stdout: &[u8]) -> Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}

/// A seed for a test's random choices: the number in the environment
/// variable `var` (to replay a run), else one from the clock (odd, never 0).
pub(crate) fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

/// A streaming `peeka-cli` left running, its lines collected as they come.
pub(crate) struct Streaming {
    pub(crate) child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Streaming {
    /// Starts `peeka-cli args`.
    pub(crate) fn start(state: &Path, args: &[&str]) -> Self {
        let mut child = command(state, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(value) = serde_json::from_str(&line) else {
                    break;
                };
                if send.send(value).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (up to `limit`) for a line for which `wanted` holds.
    pub(crate) fn wait_for(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for `count` observations.
    pub(crate) fn observations(&mut self, count: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        let mut seen = 0;
        while seen < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if self
                .wait_for(left, |l| l["type"] == "observation")
                .is_none()
            {
                break;
            }
            seen += 1;
        }
        seen
    }

    /// Sends `signal` to the client.
    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits for the client to exit; its exit code.
    pub(crate) fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Every line received so far (drains what is pending); once the client
    /// has exited, every line it wrote (the reader may still be reading the
    /// pipe when the exit is seen).
    pub(crate) fn lines(&mut self) -> &[Value] {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) => self.seen.push(line),
                    Err(_) => break, // disconnected: the pipe is drained
                }
            }
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shop target (`tests/targets/shop.py`).
pub(crate) fn spawn_shop(python: &Interpreter) -> TargetProcess {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/shop.py");
    TargetProcess::spawn(python, &script, &[], &[])
        .unwrap_or_else(|e| panic!("{}: cannot start shop.py: {e}", python.id))
}

/// Asks the shop target for its report on itself (SIGUSR1).
pub(crate) fn report(target: &TargetProcess) -> Value {
    let path = target.host_dir().join("report.json");
    let _ = fs::remove_file(&path);
    // SAFETY: kill(2) on the target's pid.
    unsafe {
        libc::kill(target.pid() as i32, libc::SIGUSR1);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(&path) {
            if let Ok(value) = serde_json::from_str(&text) {
                return value;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the target did not report; stderr: {}", target.stderr());
}

/// Calls of `hot()` per second in the target, over `window`.
pub(crate) fn hot_rate(target: &TargetProcess, window: Duration) -> f64 {
    let first = report(target);
    std::thread::sleep(window);
    let second = report(target);
    let calls = second["hot"].as_f64().unwrap() - first["hot"].as_f64().unwrap();
    let seconds = second["time"].as_f64().unwrap() - first["time"].as_f64().unwrap();
    calls / seconds
}

/// The agent's private directory of `target`, as this process sees it.
pub(crate) fn private_dir(python: &Interpreter, target: &TargetProcess) -> PathBuf {
    let status = fs::read_to_string(format!("/proc/{}/status", target.pid())).unwrap();
    let ns_pid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned();
    python.host_path(Path::new(&format!("/tmp/peeka-{ns_pid}")))
}

/// Sends `signal` to process `pid` (one this test started).
pub(crate) fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// The name of `signal`, for messages.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGSYS => "SIGSYS",
        libc::SIGUSR1 => "SIGUSR1",
        _ => "another signal",
    }
}

/// The target's last heartbeat.
pub(crate) fn heartbeat(target: &TargetProcess) -> Option<u64> {
    fs::read_to_string(target.host_dir().join("heartbeat.txt"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether the target's heartbeat goes on (within two seconds).
pub(crate) fn beating(target: &TargetProcess) -> bool {
    let before = heartbeat(target);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        if heartbeat(target) > before {
            return true;
        }
    }
    false
}

/// Whether process `pid` catches SIGINT, SIGTERM and SIGHUP (`SigCgt`).
pub(crate) fn catches_the_signals(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let caught = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        .iter()
        .all(|&s| caught & (1 << (s - 1)) != 0)
}
