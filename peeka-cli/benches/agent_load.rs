//! The agent under load (issue 15, "Checks"): what many clients, idle and
//! hostile connections, repeated attaches and a forking server cost a real
//! target, driving the real release binary `peeka-cli` against real
//! processes of each interpreter given (default 3.11 and 3.14), one
//! Markdown table per measurement on stdout, progress on stderr:
//!
//! 1. **Flooding clients.** A target calling one function in a loop on
//!    one thread as fast as it can (`benches/targets/agent_load.py hot
//!    FUNCTION`, which prints its call count every 100 ms), attached; then 0
//!    (the baseline: the agent attached, no client), 1, 5 and 20 concurrent
//!    `peeka-cli watch __main__.FUNCTION --pid PID` processes, each consuming
//!    its stream as fast as it can (the bench counts the lines and throws
//!    them away). After the streams started and a 1 s warm-up, the target's
//!    calls per second over a 5 s window (`common/windows.rs`), its main
//!    thread's and the agent threads' CPU (`common/thread_cpu.rs`) and the
//!    rows the clients received; then each client is interrupted (SIGINT:
//!    its stream ends cleanly, with the agent's drop count). The four
//!    counts run on the same target, in an order rotated each round, a
//!    fresh target per round and interpreter; the ratio to the baseline is
//!    taken within each round, and the table shows medians. The issue's
//!    goal: 20 clients cost no more than 1. Two functions, one table
//!    each: `checkout`, the size of a small request handler (a few
//!    microseconds), and `handle`, which only adds 1 (the probe's own cost
//!    per call dominates: the worst case). "20 streams on one connection"
//!    is not measured: `peeka-cli` opens one connection per stream.
//! 2. **300 idle connections.** On an attached target calling its function
//!    every millisecond (`agent_load.py paced`), 300 Unix connections to the
//!    agent's socket that never send `hello`: the target's thread count
//!    (`/proc/PID/status`) 1 s and 6 s after they opened and how many the
//!    agent had closed by then, and whether the operator's `peeka-cli reset
//!    --list --pid PID` succeeds while they are held, and in how long.
//! 3. **32 oversized hellos.** 32 connections each sending a frame header
//!    announcing 8 MiB, then 8 MiB (writes time out after 10 s, a refused
//!    connection ends them); held 1 s more, then closed. The target's VmRSS
//!    before, its peak while they were open (sampled every 10 ms) and 2 s
//!    after they closed; then whether `reset --list` still succeeds.
//! 4. **Attach / watch / detach cycles.** On a paced target: `attach PID`,
//!    `watch __main__.handle -n 1 --pid PID` (one observation, then exit),
//!    `detach --pid PID`, `PEEKA_BENCH_CYCLES` times; VmRSS before the
//!    first and after every 100th cycle.
//! 5. **A forking server kept attachable.** A real gunicorn master
//!    (`tests/targets/idle_server.py gunicorn-recycling 5`, the target of
//!    `tests/cli_idle_servers.rs`; gunicorn and flask from
//!    `scripts/provision-servers.sh`: `target/peeka-servers.json` or
//!    `$PEEKA_SERVERS_MANIFEST`) with 2 sync workers recycled after 5
//!    requests each, serving a Flask app. The master is attached and a
//!    `watch gunicorn.arbiter.Arbiter.spawn_worker` kept on it while 100
//!    HTTP requests (`GET /hello?name=rN`, answered with the pid of the
//!    worker that served it) recycle its workers; then: the workers' open
//!    sockets against those of a worker booted before the attach, and
//!    whether any is one of the agent's (the inodes `/proc/PID/net/unix`
//!    lists under the agent's socket path), `/tmp/peeka-<master>` while
//!    attached, `reset --list`, `detach` (and the directory gone), then a
//!    second attach and detach.
//!
//! The binary measured is `$PEEKA_BENCH_CLI`, by default the `peeka-cli`
//! built next to this bench (`target/release/peeka-cli`); it is copied at
//! the start, so a rebuild in a shared tree changes nothing midway, and the
//! report names its version and the git commit of the tree it lies in (with
//! its uncommitted changes). Every failure is written in its cell, never
//! hidden and never ending the table. Every process started dies with the
//! bench (`PR_SET_PDEATHSIG`) and is killed and reaped; gunicorn's workers
//! too (the bench is their subreaper for part 5).
//!
//! Run:
//!
//! ```sh
//! bash scripts/provision-pythons.sh && bash scripts/provision-servers.sh
//! cargo bench -p peeka-cli --bench agent_load [-- 3.11 3.14 ...]
//! # the figures of another build, quickly:
//! PEEKA_BENCH_CLI=/elsewhere/target/release/peeka-cli PEEKA_BENCH_ROUNDS=1 \
//!     PEEKA_BENCH_CYCLES=100 cargo bench -p peeka-cli --bench agent_load
//! ```
//!
//! Environment: `PEEKA_BENCH_CLI` (the binary), `PEEKA_BENCH_ROUNDS`
//! (rounds of part 1, default 3), `PEEKA_BENCH_WINDOW_SECS` (part 1's
//! window, default 5), `PEEKA_BENCH_CYCLES` (part 4, default 1000),
//! `PEEKA_BENCH_PARTS` (which parts, default `1,2,3,4,5`),
//! `PEEKA_BENCH_FUNCTIONS` (part 1's functions, default `checkout,handle`),
//! `PEEKA_SERVERS_MANIFEST`. With the defaults it takes about 6 minutes
//! for two interpreters on a 2-core machine.
//!
//! Not part of `cargo test`: without the `--bench` argument that `cargo
//! bench` passes, it measures nothing.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use peeka_testkit::procfs::socket_inodes;
use peeka_testkit::{
    get_hello, ForkingServer, Interpreter, Manifest, ServersManifest, TargetProcess,
};
use serde_json::Value;

#[path = "common/support.rs"]
mod support;
#[path = "common/thread_cpu.rs"]
mod thread_cpu;
#[path = "common/windows.rs"]
mod windows;
use support::{
    die_with_parent, env_count, json_lines, last_line, load_average, output_of, shorten,
};
use thread_cpu::CpuWindow;
use windows::{median, rates};

/// Concurrent clients of part 1; 0 is the baseline.
const CLIENTS: [usize; 4] = [0, 1, 5, 20];
/// Part 1: between the streams' start and the window.
const WARMUP: Duration = Duration::from_secs(1);
/// Part 1: after the clients ended, before the next count.
const SETTLE: Duration = Duration::from_millis(500);
/// Every stream of part 1 must have started within this.
const START_LIMIT: Duration = Duration::from_secs(30);
/// A one-shot `peeka-cli` command must end within this.
const CLI_LIMIT: Duration = Duration::from_secs(60);
/// An interrupted `watch` must end within this (then it is killed).
const END_LIMIT: Duration = Duration::from_secs(30);
/// Part 2.
const IDLE_CONNECTIONS: usize = 300;
/// Part 3.
const BIG_HELLOS: usize = 32;
const BIG_HELLO_BYTES: usize = 8 << 20;
/// Part 5.
const MAX_REQUESTS: u32 = 5;
const REQUESTS: usize = 100;
const SERVER_LIMIT: Duration = Duration::from_secs(60);
/// Part 5: what `idle_server.py` imports in `gunicorn-recycling` mode.
const FORK_PACKAGES: [&str; 2] = ["flask", "gunicorn"];

// ---------------------------------------------------------------------------
// Processes.

/// Sends `signal` to `pid`: a child of this process that is not reaped yet.
fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2); callers pass only unreaped children of their own.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// Waits for `child` to exit, at most `limit`, then kills it (SIGKILL) and
/// reaps it: its status, and whether it had to be killed. The wait is a
/// poll(2) on a pidfd (kernel 5.3+), else a 1 ms poll of its status.
fn wait_bounded(child: &mut Child, limit: Duration) -> (Option<ExitStatus>, bool) {
    let deadline = Instant::now() + limit;
    // SAFETY: pidfd_open(2) on our own child, not reaped yet.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) } as i32;
    let mut timed_out = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        if pidfd >= 0 {
            let ms = (deadline - now).as_millis().clamp(1, 60_000) as i32;
            let mut fd = libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll(2) on one pollfd that we own.
            if unsafe { libc::poll(&mut fd, 1, ms) } > 0 {
                break;
            }
        } else {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    if timed_out {
        let _ = child.kill();
    }
    if pidfd >= 0 {
        // SAFETY: closing the pidfd opened above.
        unsafe {
            libc::close(pidfd);
        }
    }
    (child.wait().ok(), timed_out)
}

/// What a bounded one-shot command did.
#[derive(Debug)]
struct Finished {
    elapsed: Duration,
    status: Option<ExitStatus>,
    timed_out: bool,
    stdout: String,
    stderr: String,
}

impl Finished {
    fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn lines(&self) -> Vec<Value> {
        json_lines(&self.stdout)
    }

    /// How it failed: the `error` of its JSON Lines, else its exit and the
    /// last line of its output.
    fn describe(&self) -> String {
        if let Some(error) = self
            .lines()
            .iter()
            .rev()
            .find_map(|l| l["error"].as_str().map(str::to_owned))
        {
            return error;
        }
        let how = if self.timed_out {
            format!("killed after {CLI_LIMIT:?}")
        } else {
            match self.status {
                Some(s) => format!("{s}"),
                None => "no status".to_owned(),
            }
        };
        let tail = last_line(&self.stderr)
            .or_else(|| last_line(&self.stdout))
            .unwrap_or("no output");
        format!("{how}: {tail}")
    }
}

/// Shortens a failure to its first line, at most 100 characters, for a
/// table cell.
fn short(reason: &str) -> String {
    shorten(reason, 100)
}

/// The bench's scratch space: output files, Peeka's remembered target, and
/// the copy of `peeka-cli` that is measured.
#[derive(Debug)]
struct Scratch {
    dir: PathBuf,
    binary: PathBuf,
    runs: AtomicUsize,
}

impl Scratch {
    fn peeka(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env("XDG_STATE_HOME", self.dir.join("state"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        die_with_parent(&mut command);
        command
    }

    /// A fresh file name in the scratch directory.
    fn file(&self, what: &str) -> PathBuf {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("{what}-{n}"))
    }

    /// Runs `peeka-cli args` to its end (at most [`CLI_LIMIT`]), timed from
    /// spawn until it exited.
    fn run(&self, args: &[&str]) -> Result<Finished, String> {
        let (out_path, err_path) = (self.file("stdout"), self.file("stderr"));
        let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
        let err = fs::File::create(&err_path).map_err(|e| e.to_string())?;
        let mut command = self.peeka(args);
        command.stdout(out).stderr(err);
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start peeka-cli: {e}"))?;
        let (status, timed_out) = wait_bounded(&mut child, CLI_LIMIT);
        let elapsed = started.elapsed();
        let finished = Finished {
            elapsed,
            status,
            timed_out,
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        };
        let _ = fs::remove_file(out_path);
        let _ = fs::remove_file(err_path);
        Ok(finished)
    }

    /// Runs `peeka-cli args`: how long it took, or why it failed.
    fn run_ok(&self, args: &[&str]) -> Result<Duration, String> {
        let done = self.run(args)?;
        if done.success() {
            Ok(done.elapsed)
        } else {
            Err(done.describe())
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// An agent that `peeka-cli attach` loaded.
#[derive(Debug, Clone)]
struct Agent {
    /// Its socket, as this process reaches it (`/proc/PID/root/...`).
    socket: PathBuf,
}

/// `peeka-cli attach PID`, which must load a fresh agent.
fn attach(scratch: &Scratch, python: &Interpreter, pid: u32) -> Result<Agent, String> {
    let done = scratch.run(&["attach", &pid.to_string()])?;
    let lines = done.lines();
    let last = lines.last().cloned().unwrap_or(Value::Null);
    if !(done.success() && last["type"] == "success") {
        return Err(format!("attach: {}", done.describe()));
    }
    if last["data"]["reused"] != false {
        return Err("attach: an agent was already running".to_owned());
    }
    let socket = last["data"]["socket"].as_str().unwrap_or_default();
    let socket = if socket.starts_with("/proc/") {
        PathBuf::from(socket)
    } else {
        python.host_path(Path::new(socket))
    };
    Ok(Agent { socket })
}

/// `peeka-cli detach --pid PID`.
fn detach(scratch: &Scratch, pid: u32) -> Result<Duration, String> {
    scratch
        .run_ok(&["detach", "--pid", &pid.to_string()])
        .map_err(|e| format!("detach: {e}"))
}

/// `peeka-cli reset --list --pid PID`, the operator's command: its time, or
/// why it failed.
fn operator(scratch: &Scratch, pid: u32) -> Result<Duration, String> {
    scratch.run_ok(&["reset", "--list", "--pid", &pid.to_string()])
}

fn operator_text(result: &Result<Duration, String>) -> String {
    match result {
        Ok(took) => format!("ok, {:.1} ms", took.as_secs_f64() * 1e3),
        Err(e) => format!("**failed**: {}", short(e)),
    }
}

/// The agent's private directory of process `pid`, as the host sees it.
fn private_dir(python: &Interpreter, pid: u32) -> PathBuf {
    python.host_path(Path::new(&format!("/tmp/peeka-{pid}")))
}

/// Removes a private directory left behind; says so.
fn leftover(python: &Interpreter, pid: u32) -> Option<String> {
    let dir = private_dir(python, pid);
    if dir.exists() {
        let _ = fs::remove_dir_all(&dir);
        return Some(format!("{} was left", dir.display()));
    }
    None
}

/// `target` attached (`peeka-cli attach`, a fresh agent); or, when the
/// attach fails, why, the target stopped and its private directory removed.
fn attached(
    scratch: &Scratch,
    python: &Interpreter,
    target: TargetProcess,
) -> Result<(TargetProcess, Agent), String> {
    let pid = target.pid();
    match attach(scratch, python, pid) {
        Ok(agent) => Ok((target, agent)),
        Err(e) => {
            let _ = detach(scratch, pid);
            drop(target);
            let _ = leftover(python, pid);
            Err(e)
        }
    }
}

/// Detaches from an attached `target` and stops it; what went wrong goes
/// to `notes`.
fn release(
    scratch: &Scratch,
    python: &Interpreter,
    target: TargetProcess,
    notes: &mut Vec<String>,
) {
    let pid = target.pid();
    if let Err(e) = detach(scratch, pid) {
        notes.push(e);
    }
    drop(target);
    notes.extend(leftover(python, pid));
}

/// Prints a table's head: its `columns`' names, then the line under them.
fn print_table_head(columns: &[impl AsRef<str>]) {
    let names: Vec<&str> = columns.iter().map(AsRef::as_ref).collect();
    println!("| {} |", names.join(" | "));
    println!("|{}", "---|".repeat(names.len()));
}

/// Prints a table row: the interpreter, then `cells`.
fn print_row(python: &Interpreter, cells: &[String]) {
    println!(
        "| {} ({}) | {} |",
        python.id,
        python.version,
        cells.join(" | ")
    );
}

/// Parts 2 and 3: a paced target (`agent_load.py paced`), attached and
/// given 300 ms to settle; or `None` after a table row of `columns` cells
/// (after the interpreter's), the last saying why not, the others empty.
fn attached_paced(
    scratch: &Scratch,
    python: &Interpreter,
    columns: usize,
) -> Option<(TargetProcess, Agent)> {
    match start_target(python, &["paced"]).and_then(|target| attached(scratch, python, target)) {
        Ok(attached) => {
            std::thread::sleep(Duration::from_millis(300));
            Some(attached)
        }
        Err(e) => {
            let mut cells = vec!["—".to_owned(); columns];
            if let Some(last) = cells.last_mut() {
                *last = format!("**failed**: {}", short(&e));
            }
            print_row(python, &cells);
            None
        }
    }
}

/// A notes cell: `—`, or the notes shortened.
fn notes_cell(notes: &[String]) -> String {
    if notes.is_empty() {
        "—".to_owned()
    } else {
        notes
            .iter()
            .map(|n| short(n))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// `peeka-cli watch ARGS` followed to its end on a thread that counts its
/// observation lines as they come and throws them away.
#[derive(Debug)]
struct Watcher {
    child: Child,
    shared: Arc<WatchShared>,
    reader: Option<JoinHandle<()>>,
    stderr: PathBuf,
    exited: bool,
}

#[derive(Debug, Default)]
struct WatchShared {
    started: AtomicBool,
    observations: AtomicU64,
    /// The `stream_end` event's data.
    end: Mutex<Option<Value>>,
    /// An `error` line.
    error: Mutex<Option<String>>,
}

/// How an ended [`Watcher`] ended.
#[derive(Debug)]
struct WatchEnd {
    observations: u64,
    /// The agent's drops (`stream_end.dropped`).
    dropped: u64,
    failure: Option<String>,
}

impl Watcher {
    fn spawn(scratch: &Scratch, args: &[&str]) -> Result<Self, String> {
        let stderr = scratch.file("watch-stderr");
        let mut command = scratch.peeka(args);
        command
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr).map_err(|e| e.to_string())?);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start peeka-cli watch: {e}"))?;
        let stdout = child.stdout.take().unwrap();
        let shared = Arc::new(WatchShared::default());
        let reader = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || count_lines(stdout, &shared))
        };
        Ok(Watcher {
            child,
            shared,
            reader: Some(reader),
            stderr,
            exited: false,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn started(&self) -> bool {
        self.shared.started.load(Ordering::Relaxed)
    }

    fn observations(&self) -> u64 {
        self.shared.observations.load(Ordering::Relaxed)
    }

    fn has_exited(&mut self) -> bool {
        if !self.exited {
            self.exited = matches!(self.child.try_wait(), Ok(Some(_)));
        }
        self.exited
    }

    /// Asks it to end its stream (SIGINT, as Ctrl-C).
    fn interrupt(&mut self) {
        if !self.has_exited() {
            send(self.pid(), libc::SIGINT);
        }
    }

    /// Why it failed, as far as it said.
    fn failure(&self) -> String {
        if let Some(error) = self.shared.error.lock().unwrap().clone() {
            return error;
        }
        let stderr = fs::read_to_string(&self.stderr).unwrap_or_default();
        last_line(&stderr).unwrap_or("no output").to_owned()
    }

    /// Waits for its end (after [`interrupt`](Self::interrupt)), killing it
    /// after [`END_LIMIT`].
    fn finish(mut self) -> WatchEnd {
        let (status, timed_out) = wait_bounded(&mut self.child, END_LIMIT);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let end = self.shared.end.lock().unwrap().clone();
        let dropped = end
            .as_ref()
            .and_then(|e| e["dropped"].as_u64())
            .unwrap_or(0);
        let ok = status.is_some_and(|s| s.success()) && !timed_out;
        let failure = if ok {
            None
        } else if timed_out {
            Some(format!(
                "watch did not end within {END_LIMIT:?} of SIGINT; killed"
            ))
        } else {
            Some(format!(
                "watch ended with {}: {}",
                status.map_or_else(|| "no status".to_owned(), |s| s.to_string()),
                self.failure()
            ))
        };
        let _ = fs::remove_file(&self.stderr);
        WatchEnd {
            observations: self.observations(),
            dropped,
            failure,
        }
    }
}

/// The reader of a [`Watcher`]: counts observation lines, keeps the events
/// that matter.
fn count_lines(stdout: impl Read, shared: &WatchShared) {
    let mut reader = BufReader::with_capacity(1 << 18, stdout);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // `peeka-cli` writes the keys in order ("type" last); either end
        // is looked at.
        let head = &line[..line.len().min(48)];
        let tail = &line[line.len().saturating_sub(48)..];
        let is_observation =
            |part: &[u8]| part.windows(20).any(|w| w == br#""type":"observation""#);
        if is_observation(head) || is_observation(tail) {
            shared.observations.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        match (value["type"].as_str(), value["event"].as_str()) {
            (Some("event"), Some("started")) => shared.started.store(true, Ordering::Relaxed),
            (Some("event"), Some("stream_end")) => {
                *shared.end.lock().unwrap() = Some(value["data"].clone());
            }
            (Some("error"), _) => {
                *shared.error.lock().unwrap() = value["error"].as_str().map(str::to_owned);
            }
            _ => {}
        }
    }
}

/// Kills processes (SIGKILL) that are still there `limit` after it was
/// armed, unless disarmed first: a bound on a measurement that could
/// otherwise wait forever on a stalled target.
#[derive(Debug)]
struct Watchdog {
    cancel: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<bool>>,
}

impl Watchdog {
    /// `pids` must stay unreaped children of this process until
    /// [`disarm`](Self::disarm) returns.
    fn arm(pids: Vec<u32>, limit: Duration) -> Self {
        let (cancel, cancelled) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || match cancelled.recv_timeout(limit) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                for pid in pids {
                    send(pid, libc::SIGKILL);
                }
                true
            }
            _ => false,
        });
        Watchdog {
            cancel: Some(cancel),
            handle: Some(handle),
        }
    }

    /// Whether it fired.
    fn disarm(mut self) -> bool {
        drop(self.cancel.take());
        self.handle.take().is_some_and(|h| h.join().unwrap_or(true))
    }
}

// ---------------------------------------------------------------------------
// /proc.

/// A numeric field of `/proc/PID/status` (`VmRSS:` in kB, `Threads:`).
fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn rss_mb(pid: u32) -> Option<f64> {
    status_field(pid, "VmRSS:").map(|kb| kb as f64 / 1024.0)
}

fn threads(pid: u32) -> Option<u64> {
    status_field(pid, "Threads:")
}

fn mb(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| format!("{v:.1}"))
}

fn count(value: Option<u64>) -> String {
    value.map_or_else(|| "—".to_owned(), |v| v.to_string())
}

/// The inodes of the agent's sockets of process `pid` (its listening socket
/// and the connections it accepted), from `/proc/PID/net/unix`, where they
/// are listed under the socket's path.
fn agent_inodes(pid: u32) -> HashSet<u64> {
    let suffix = format!("/peeka-{pid}/agent.sock");
    fs::read_to_string(format!("/proc/{pid}/net/unix"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let path = fields.get(7)?;
            path.ends_with(&suffix)
                .then(|| fields.get(6)?.parse().ok())
                .flatten()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Raw connections to the agent.

/// A Unix connection to `socket`, without a word said; a full backlog is
/// retried until `deadline` (a blocking connect(2) would wait unbounded).
fn connect_raw(socket: &Path, deadline: Instant) -> Result<UnixStream, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_os_str().as_bytes();
    // SAFETY: a zeroed sockaddr_un is valid (family and path set below).
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= address.sun_path.len() {
        return Err(format!("socket path too long: {}", socket.display()));
    }
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (to, from) in address.sun_path.iter_mut().zip(bytes) {
        *to = *from as libc::c_char;
    }
    loop {
        // SAFETY: socket(2) with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is ours; the address is initialised and sized.
        let rc = unsafe {
            libc::connect(
                fd,
                std::ptr::addr_of!(address).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            // SAFETY: `fd` is a connected socket that nothing else owns.
            let stream = unsafe { UnixStream::from_raw_fd(fd) };
            stream.set_nonblocking(false).map_err(|e| e.to_string())?;
            return Ok(stream);
        }
        let error = std::io::Error::last_os_error();
        // SAFETY: closing our own fd.
        unsafe {
            libc::close(fd);
        }
        if error.raw_os_error() == Some(libc::EAGAIN) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        return Err(format!("connect: {error}"));
    }
}

/// Whether the other end closed `stream` (read without waiting: end of
/// file or an error).
fn closed_by_peer(stream: &UnixStream) -> bool {
    let mut byte = 0u8;
    // SAFETY: recv(2) of at most one byte into a local, without waiting.
    let rc = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            std::ptr::addr_of_mut!(byte).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if rc == 0 {
        return true;
    }
    rc < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EAGAIN)
}

// ---------------------------------------------------------------------------
// Targets.

fn target_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/targets")
        .join(name)
}

/// `agent_load.py MODE [FUNCTION]` (`hot` or `paced`).
fn start_target(python: &Interpreter, args: &[&str]) -> Result<TargetProcess, String> {
    TargetProcess::spawn_with(
        python,
        &target_script("agent_load.py"),
        args,
        &[],
        die_with_parent,
    )
    .map_err(|e| format!("cannot start agent_load.py {}: {e}", args.join(" ")))
}

// ---------------------------------------------------------------------------
// Part 1: flooding clients.

/// One window of part 1.
#[derive(Debug, Clone, Copy)]
struct Flood {
    per_second: f64,
    main_cpu: f64,
    agent_cpu: f64,
    /// Observation rows all clients received, per second of the window.
    delivered: f64,
    /// The agent's drops over the clients' whole streams.
    dropped: u64,
}

/// `clients` concurrent floods of `target` (attached), measured.
fn flood_window(
    scratch: &Scratch,
    target: &mut TargetProcess,
    function: &str,
    clients: usize,
    window: Duration,
    notes: &mut Vec<String>,
) -> Result<Flood, String> {
    let pid = target.pid();
    let pid_text = pid.to_string();
    let pattern = format!("__main__.{function}");
    let mut watchers = Vec::new();
    let mut failure = None;
    for _ in 0..clients {
        match Watcher::spawn(scratch, &["watch", &pattern, "--pid", &pid_text]) {
            Ok(w) => watchers.push(w),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let stop_all = |watchers: Vec<Watcher>| -> Vec<WatchEnd> {
        let mut watchers = watchers;
        for w in &mut watchers {
            w.interrupt();
        }
        watchers.into_iter().map(Watcher::finish).collect()
    };
    if failure.is_none() {
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if watchers.iter().all(Watcher::started) {
                break;
            }
            let dead = watchers
                .iter_mut()
                .position(|w| !w.started() && w.has_exited());
            if let Some(dead) = dead {
                failure = Some(format!(
                    "a stream did not start: {}",
                    watchers[dead].failure()
                ));
                break;
            }
            if Instant::now() > deadline {
                let late = watchers.iter().filter(|w| !w.started()).count();
                failure = Some(format!(
                    "{late} of {clients} streams had not started after {START_LIMIT:?}"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(failure) = failure {
        stop_all(watchers);
        return Err(failure);
    }
    std::thread::sleep(WARMUP);
    let rows = |watchers: &[Watcher]| watchers.iter().map(Watcher::observations).sum::<u64>();
    let mut pids: Vec<u32> = watchers.iter().map(Watcher::pid).collect();
    pids.push(pid);
    let watchdog = Watchdog::arm(pids, window + Duration::from_secs(90));
    let (rows_before, cpu, started) = (rows(&watchers), CpuWindow::start(pid), Instant::now());
    let measured = catch_unwind(AssertUnwindSafe(|| rates(target, window)));
    let (rows_after, shares, elapsed) = (rows(&watchers), cpu.shares(pid), started.elapsed());
    let fired = watchdog.disarm();
    let ends = stop_all(watchers);
    std::thread::sleep(SETTLE);
    for failure in ends.iter().filter_map(|e| e.failure.as_ref()) {
        if !notes.contains(failure) {
            notes.push(failure.clone());
        }
    }
    if fired {
        return Err(format!(
            "the window did not end within {:?}: target and clients killed",
            window + Duration::from_secs(90)
        ));
    }
    let measured = measured.map_err(|_| "the target stopped reporting its calls".to_owned())?;
    Ok(Flood {
        per_second: measured.per_second,
        main_cpu: shares.main,
        agent_cpu: shares.others,
        delivered: rows_after.saturating_sub(rows_before) as f64 / elapsed.as_secs_f64(),
        dropped: ends.iter().map(|e| e.dropped).sum(),
    })
}

/// The windows of one (interpreter, clients): one per round.
#[derive(Debug, Default)]
struct FloodCell {
    /// Per round: the window, or why it failed.
    rounds: Vec<Option<Flood>>,
    failures: Vec<String>,
    notes: Vec<String>,
}

/// A ratio with three significant digits at least (20 clients can leave a
/// target a ten-thousandth of its calls).
fn ratio_text(ratio: f64) -> String {
    if ratio >= 0.1 {
        format!("{ratio:.3}")
    } else {
        format!("{ratio:.2e}")
    }
}

/// The functions part 1 floods: (name in `agent_load.py`, what it is).
const FLOOD_FUNCTIONS: [(&str, &str); 2] = [
    (
        "checkout",
        "a request-sized function (a few microseconds: reads a small order, \
         computes its total, builds the answer)",
    ),
    (
        "handle",
        "a function that only adds 1 (tens of nanoseconds: the probe's own cost dominates)",
    ),
];

fn part_flood(
    scratch: &Scratch,
    pythons: &[&Interpreter],
    rounds: usize,
    window: Duration,
    function: (&str, &str),
) {
    let (function, described) = function;
    let mut cells: Vec<Vec<FloodCell>> = pythons
        .iter()
        .map(|_| CLIENTS.iter().map(|_| FloodCell::default()).collect())
        .collect();
    let mut target_notes: Vec<Vec<String>> = pythons.iter().map(|_| Vec::new()).collect();
    let started = Instant::now();
    for round in 0..rounds {
        for k in 0..pythons.len() {
            let index = (round + k) % pythons.len();
            let python = pythons[index];
            eprintln!(
                "part 1, round {}/{rounds}, Python {} ({:.0} s so far)",
                round + 1,
                python.id,
                started.elapsed().as_secs_f64()
            );
            let mut failed_all = |why: String| {
                for cell in &mut cells[index] {
                    cell.rounds.push(None);
                    cell.failures.push(why.clone());
                }
            };
            let attached = start_target(python, &["hot", function])
                .and_then(|target| attached(scratch, python, target));
            let (mut target, _) = match attached {
                Ok(attached) => attached,
                Err(e) => {
                    failed_all(e);
                    continue;
                }
            };
            for j in 0..CLIENTS.len() {
                let slot = (round + j) % CLIENTS.len();
                let clients = CLIENTS[slot];
                eprintln!("  {clients} clients");
                let cell = &mut cells[index][slot];
                let flooded = flood_window(
                    scratch,
                    &mut target,
                    function,
                    clients,
                    window,
                    &mut cell.notes,
                );
                match flooded {
                    Ok(flood) => cell.rounds.push(Some(flood)),
                    Err(e) => {
                        eprintln!("  {clients} clients failed: {e}");
                        cell.rounds.push(None);
                        cell.failures.push(e);
                    }
                }
            }
            release(scratch, python, target, &mut target_notes[index]);
        }
    }

    println!("### 1. Target throughput under flooding `watch` clients: `{function}()`");
    println!();
    println!(
        "A target calling `{function}()`, {described}, in a loop on one thread \
         (`agent_load.py hot {function}`), attached; \
         N concurrent `peeka-cli watch __main__.{function} --pid PID` processes (default send \
         budget), their output read and thrown away as fast as it comes. After every stream \
         started and {WARMUP:?} of warm-up, a {window:?} window; {rounds} round(s), each on a \
         fresh target with the four counts in a rotated order. Calls/s: median (min-max) of \
         the rounds; ÷ baseline: median of each round's ratio to the same target's \
         0-client window. CPU: shares of one core over the window."
    );
    println!();
    print_table_head(&[
        "interpreter",
        "clients",
        "target calls/s",
        "÷ baseline",
        "target main thread CPU",
        "agent threads CPU",
        "rows received/s (all clients)",
        "rows the agent dropped (all streams, start to end)",
        "failures",
    ]);
    let mut goals = Vec::new();
    for (index, python) in pythons.iter().enumerate() {
        let baseline = &cells[index][0].rounds;
        let ratio_of = |slot: usize| -> Option<f64> {
            let ratios: Vec<f64> = cells[index][slot]
                .rounds
                .iter()
                .zip(baseline)
                .filter_map(|(r, b)| Some(r.as_ref()?.per_second / b.as_ref()?.per_second))
                .collect();
            (!ratios.is_empty()).then(|| median(&ratios))
        };
        let ratios: Vec<Option<f64>> = (0..CLIENTS.len()).map(&ratio_of).collect();
        for (slot, clients) in CLIENTS.iter().enumerate() {
            let cell = &cells[index][slot];
            let ok: Vec<Flood> = cell.rounds.iter().flatten().copied().collect();
            let stat = |f: &dyn Fn(&Flood) -> f64| median(&ok.iter().map(f).collect::<Vec<_>>());
            let (calls, main, agent, delivered, dropped) = if ok.is_empty() {
                let dash = || "—".to_owned();
                (dash(), dash(), dash(), dash(), dash())
            } else {
                let lo = ok.iter().map(|f| f.per_second).fold(f64::MAX, f64::min);
                let hi = ok.iter().map(|f| f.per_second).fold(0.0, f64::max);
                (
                    format!("{:.0} ({lo:.0}-{hi:.0})", stat(&|f| f.per_second)),
                    format!("{:.0} %", stat(&|f| f.main_cpu) * 100.0),
                    format!("{:.1} %", stat(&|f| f.agent_cpu) * 100.0),
                    format!("{:.0}", stat(&|f| f.delivered)),
                    format!("{:.0}", stat(&|f| f.dropped as f64)),
                )
            };
            let ratio = if *clients == 0 {
                "1 (baseline)".to_owned()
            } else {
                ratios[slot].map_or_else(|| "—".to_owned(), ratio_text)
            };
            let mut failures = if cell.failures.is_empty() {
                "none".to_owned()
            } else {
                format!(
                    "**{}/{} rounds failed**: {}",
                    cell.failures.len(),
                    cell.rounds.len(),
                    short(&cell.failures[0])
                )
            };
            for note in &cell.notes {
                let _ = write!(failures, "; client: {}", short(note));
            }
            let label = if *clients == 0 {
                "0 (attached, no client)".to_owned()
            } else {
                clients.to_string()
            };
            println!(
                "| {} ({}) | {label} | {calls} | {ratio} | {main} | {agent} | {delivered} | \
                 {dropped} | {failures} |",
                python.id, python.version
            );
        }
        println!(
            "| {} ({}) | 20 streams on one connection | skipped: `peeka-cli watch` opens one \
             connection per stream | | | | | | |",
            python.id, python.version
        );
        for note in &target_notes[index] {
            println!(
                "| {} ({}) | (target) | {} | | | | | | |",
                python.id,
                python.version,
                short(note)
            );
        }
        let one = ratios[CLIENTS.iter().position(|&c| c == 1).unwrap()];
        let twenty = ratios[CLIENTS.iter().position(|&c| c == 20).unwrap()];
        goals.push(match (one, twenty) {
            (Some(one), Some(twenty)) => format!(
                "{}: 1 client costs {:.2} % of the baseline's calls, 20 clients {:.2} % \
                 (20 ÷ 1: {}); goal {} (met when 20 clients lose at most 2 points more than \
                 1, this machine's scatter)",
                python.id,
                (1.0 - one) * 100.0,
                (1.0 - twenty) * 100.0,
                if one < 1.0 {
                    format!("{:.1}×", (1.0 - twenty) / (1.0 - one))
                } else {
                    "1 client cost nothing measurable".to_owned()
                },
                if (1.0 - twenty) <= (1.0 - one) + 0.02 {
                    "**met**"
                } else {
                    "**not met**"
                }
            ),
            _ => format!("{}: no ratio (see the failures)", python.id),
        });
    }
    println!();
    println!("Goal of issue 15, 20 clients cost no more than 1 client:");
    println!();
    for goal in goals {
        println!("- {goal}");
    }
    println!();
}

// ---------------------------------------------------------------------------
// Part 2: idle connections.

fn part_idle_connections(scratch: &Scratch, pythons: &[&Interpreter]) {
    println!("### 2. {IDLE_CONNECTIONS} idle connections that never say hello");
    println!();
    println!(
        "A target calling `handle()` every millisecond (`agent_load.py paced`), attached; \
         {IDLE_CONNECTIONS} Unix connections to the agent's socket, opened as fast as the \
         agent accepts them (a full backlog retried for up to 10 s), then silent. Times from \
         when the last one opened. Threads: `/proc/PID/status`."
    );
    println!();
    let columns = [
        "interpreter",
        "threads attached, no client",
        "connections opened (in)",
        "threads after 1 s",
        "operator's `reset --list` at 1 s",
        "threads after 6 s",
        "closed by the agent by 6 s",
        "operator's `reset --list` at 6 s",
        "threads 2 s after they closed",
        "notes",
    ];
    print_table_head(&columns);
    for python in pythons {
        eprintln!("part 2, Python {}", python.id);
        let Some((target, agent)) = attached_paced(scratch, python, columns.len() - 1) else {
            continue;
        };
        let pid = target.pid();
        let before = threads(pid);
        let opening = Instant::now();
        let deadline = opening + Duration::from_secs(10);
        let mut connections = Vec::new();
        let mut notes = Vec::new();
        for _ in 0..IDLE_CONNECTIONS {
            match connect_raw(&agent.socket, deadline) {
                Ok(c) => connections.push(c),
                Err(e) => {
                    notes.push(format!("connection {}: {e}", connections.len() + 1));
                    break;
                }
            }
        }
        let opened = Instant::now();
        let opened_text = format!(
            "{}/{IDLE_CONNECTIONS} ({:.0} ms)",
            connections.len(),
            (opened - opening).as_secs_f64() * 1e3
        );
        std::thread::sleep(Duration::from_secs(1).saturating_sub(opened.elapsed()));
        let after_1 = threads(pid);
        let reset_1 = operator(scratch, pid);
        std::thread::sleep(Duration::from_secs(6).saturating_sub(opened.elapsed()));
        let after_6 = threads(pid);
        let closed = connections.iter().filter(|c| closed_by_peer(c)).count();
        let reset_6 = operator(scratch, pid);
        drop(connections);
        std::thread::sleep(Duration::from_secs(2));
        let after_close = threads(pid);
        release(scratch, python, target, &mut notes);
        print_row(
            python,
            &[
                count(before),
                opened_text,
                count(after_1),
                operator_text(&reset_1),
                count(after_6),
                closed.to_string(),
                operator_text(&reset_6),
                count(after_close),
                notes_cell(&notes),
            ],
        );
    }
    println!();
}

// ---------------------------------------------------------------------------
// Part 3: oversized hellos.

/// What one oversized hello did.
#[derive(Debug)]
struct BigHello {
    /// Payload bytes written before the end (the header excluded).
    written: usize,
    /// Why the writing stopped early.
    stopped: Option<String>,
    /// The connection, held open until the bench closes it.
    stream: Option<UnixStream>,
}

fn big_hello(socket: &Path) -> BigHello {
    let mut stream = match connect_raw(socket, Instant::now() + Duration::from_secs(10)) {
        Ok(s) => s,
        Err(e) => {
            return BigHello {
                written: 0,
                stopped: Some(e),
                stream: None,
            }
        }
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let header = u32::try_from(BIG_HELLO_BYTES).unwrap().to_be_bytes();
    if let Err(e) = stream.write_all(&header) {
        return BigHello {
            written: 0,
            stopped: Some(format!("header: {e}")),
            stream: Some(stream),
        };
    }
    // JSON whitespace: what a payload that is still to come could begin with.
    let chunk = vec![b' '; 64 << 10];
    let mut written = 0;
    while written < BIG_HELLO_BYTES {
        let n = chunk.len().min(BIG_HELLO_BYTES - written);
        match stream.write(&chunk[..n]) {
            Ok(0) => {
                return BigHello {
                    written,
                    stopped: Some("write returned 0".to_owned()),
                    stream: Some(stream),
                }
            }
            Ok(n) => written += n,
            Err(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                        "stalled 10 s: the agent stopped reading".to_owned()
                    }
                    _ => e.to_string(),
                };
                return BigHello {
                    written,
                    stopped: Some(why),
                    stream: Some(stream),
                };
            }
        }
    }
    BigHello {
        written,
        stopped: None,
        stream: Some(stream),
    }
}

fn part_big_hellos(scratch: &Scratch, pythons: &[&Interpreter]) {
    println!("### 3. {BIG_HELLOS} oversized hellos");
    println!();
    println!(
        "A paced target (`agent_load.py paced`), attached; {BIG_HELLOS} connections at once, \
         each writing a frame header that announces {} MiB, then {} MiB of payload (a write \
         that makes no progress for 10 s, or fails, ends it); held open 1 s after the last \
         writer finished, then closed. VmRSS in MB; the peak sampled every 10 ms from the \
         first connection until they closed.",
        BIG_HELLO_BYTES >> 20,
        BIG_HELLO_BYTES >> 20
    );
    println!();
    let writers_column = format!("the {BIG_HELLOS} writers");
    let columns = [
        "interpreter",
        "RSS before",
        "peak while open",
        "2 s after they closed",
        "after − before",
        &writers_column,
        "threads after",
        "operator's `reset --list` after",
        "notes",
    ];
    print_table_head(&columns);
    for python in pythons {
        eprintln!("part 3, Python {}", python.id);
        let Some((target, agent)) = attached_paced(scratch, python, columns.len() - 1) else {
            continue;
        };
        let pid = target.pid();
        let before = rss_mb(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut peak: Option<f64> = None;
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_mb(pid) {
                        peak = Some(peak.map_or(rss, |p: f64| p.max(rss)));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                peak
            })
        };
        let hellos: Vec<BigHello> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..BIG_HELLOS)
                .map(|_| scope.spawn(|| big_hello(&agent.socket)))
                .collect();
            writers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| BigHello {
                        written: 0,
                        stopped: Some("the writer panicked".to_owned()),
                        stream: None,
                    })
                })
                .collect()
        });
        std::thread::sleep(Duration::from_secs(1));
        let mut streams = Vec::new();
        let mut summary: Vec<(usize, Option<String>)> = Vec::new();
        for hello in hellos {
            summary.push((hello.written, hello.stopped));
            streams.extend(hello.stream);
        }
        drop(streams);
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap_or(None);
        std::thread::sleep(Duration::from_secs(2));
        let after = rss_mb(pid);
        let threads_after = threads(pid);
        let reset = operator(scratch, pid);
        let mut notes = Vec::new();
        release(scratch, python, target, &mut notes);

        let whole = summary.iter().filter(|(_, s)| s.is_none()).count();
        let mut cut: Vec<usize> = summary
            .iter()
            .filter(|(_, s)| s.is_some())
            .map(|(w, _)| *w)
            .collect();
        cut.sort_unstable();
        let mut writers = format!("{whole} sent all {} MiB", BIG_HELLO_BYTES >> 20);
        if !cut.is_empty() {
            let reasons: Vec<&str> = summary.iter().filter_map(|(_, s)| s.as_deref()).collect();
            let mut distinct: Vec<&str> = reasons.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let _ = write!(
                writers,
                "; {} cut short after {}-{} KiB ({})",
                cut.len(),
                cut[0] >> 10,
                cut[cut.len() - 1] >> 10,
                distinct
                    .iter()
                    .map(|d| format!(
                        "{}× {}",
                        reasons.iter().filter(|r| *r == d).count(),
                        short(d)
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        print_row(
            python,
            &[
                mb(before),
                mb(peak),
                mb(after),
                match (before, after) {
                    (Some(b), Some(a)) => format!("{:+.1}", a - b),
                    _ => "—".to_owned(),
                },
                writers,
                count(threads_after),
                operator_text(&reset),
                notes_cell(&notes),
            ],
        );
    }
    println!();
}

// ---------------------------------------------------------------------------
// Part 4: attach / watch / detach cycles.

#[derive(Debug, Default)]
struct Cycles {
    /// (cycles done, VmRSS in MB).
    rss: Vec<(usize, Option<f64>)>,
    /// Failures of attach, watch, detach: count and the first.
    failed: [(usize, Option<String>); 3],
    took: Duration,
    threads_at_end: Option<u64>,
    notes: Vec<String>,
}

fn one_cycle(scratch: &Scratch, python: &Interpreter, pid: u32, result: &mut Cycles) {
    let pid_text = pid.to_string();
    let mut fail = |step: usize, why: String| {
        let slot = &mut result.failed[step];
        slot.0 += 1;
        slot.1.get_or_insert(why);
    };
    match attach(scratch, python, pid) {
        Ok(_) => match scratch.run(&["watch", "__main__.handle", "-n", "1", "--pid", &pid_text]) {
            Ok(done) => {
                let observed = done.lines().iter().any(|l| l["type"] == "observation");
                if !(done.success() && observed) {
                    fail(1, done.describe());
                }
            }
            Err(e) => fail(1, e),
        },
        Err(e) => fail(0, e),
    }
    if let Err(e) = detach(scratch, pid) {
        fail(2, e);
    }
}

fn run_cycles(scratch: &Scratch, python: &Interpreter, cycles: usize) -> Result<Cycles, String> {
    let target = start_target(python, &["paced"])?;
    let pid = target.pid();
    let mut result = Cycles::default();
    std::thread::sleep(Duration::from_millis(300));
    result.rss.push((0, rss_mb(pid)));
    let started = Instant::now();
    for cycle in 1..=cycles {
        one_cycle(scratch, python, pid, &mut result);
        if cycle % 100 == 0 || cycle == cycles {
            result.rss.push((cycle, rss_mb(pid)));
            eprintln!(
                "  {cycle}/{cycles} cycles, {:.0} s, VmRSS {} MB",
                started.elapsed().as_secs_f64(),
                mb(rss_mb(pid))
            );
        }
    }
    result.took = started.elapsed();
    result.threads_at_end = threads(pid);
    drop(target);
    result.notes.extend(leftover(python, pid));
    Ok(result)
}

fn part_cycles(scratch: &Scratch, pythons: &[&Interpreter], cycles: usize) {
    let results: Vec<Result<Cycles, String>> = pythons
        .iter()
        .map(|python| {
            eprintln!("part 4, Python {}: {cycles} cycles", python.id);
            run_cycles(scratch, python, cycles)
        })
        .collect();
    println!("### 4. VmRSS over {cycles} attach / watch / detach cycles");
    println!();
    println!(
        "A paced target (`agent_load.py paced`); each cycle `peeka-cli attach PID`, \
         `peeka-cli watch __main__.handle -n 1 --pid PID` (one observation, then it exits), \
         `peeka-cli detach --pid PID`. VmRSS in MB, read after the cycle's detach."
    );
    println!();
    let columns: Vec<String> = std::iter::once("cycles done".to_owned())
        .chain(pythons.iter().map(|p| format!("{} ({})", p.id, p.version)))
        .collect();
    print_table_head(&columns);
    let mut marks: Vec<usize> = results
        .iter()
        .flatten()
        .flat_map(|r| r.rss.iter().map(|(c, _)| *c))
        .collect();
    marks.sort_unstable();
    marks.dedup();
    for mark in marks {
        let cells: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(r) => r
                    .rss
                    .iter()
                    .find(|(c, _)| *c == mark)
                    .map_or_else(|| "—".to_owned(), |(_, v)| mb(*v)),
                Err(_) => "—".to_owned(),
            })
            .collect();
        println!("| {mark} | {} |", cells.join(" | "));
    }
    let row = |label: &str, f: &dyn Fn(&Cycles) -> String| {
        let cells: Vec<String> = results
            .iter()
            .map(|r| match r {
                Ok(r) => f(r),
                Err(e) => format!("**failed**: {}", short(e)),
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    };
    row("growth", &|r| match (
        r.rss.first().and_then(|x| x.1),
        r.rss.last().and_then(|x| x.1),
    ) {
        (Some(first), Some(last)) => format!("{:+.1} MB", last - first),
        _ => "—".to_owned(),
    });
    for (step, name) in ["attach", "watch -n 1", "detach"].iter().enumerate() {
        row(&format!("{name} failures"), &|r| {
            let (n, first) = &r.failed[step];
            match first {
                None => "0".to_owned(),
                Some(first) => format!("**{n}**: {}", short(first)),
            }
        });
    }
    row("seconds per cycle", &|r| {
        format!("{:.3}", r.took.as_secs_f64() / cycles.max(1) as f64)
    });
    row("target's threads at the end", &|r| {
        let mut text = count(r.threads_at_end);
        for note in &r.notes {
            let _ = write!(text, " ({})", short(note));
        }
        text
    });
    println!();
}

// ---------------------------------------------------------------------------
// Part 5: a forking server.

/// One `GET /hello?name=NAME` to the server: the pid of the worker that
/// answered.
fn http_get(port: u16, name: &str) -> Result<u32, String> {
    let body = get_hello(port, name, Duration::from_secs(10))?;
    body.rsplit_once(" pid ")
        .and_then(|(_, pid)| pid.trim().parse().ok())
        .ok_or_else(|| format!("no pid in the answer {body:?}"))
}

/// The row of part 5 for one interpreter.
#[derive(Debug, Default)]
struct ForkRow {
    cells: Vec<(&'static str, String)>,
}

impl ForkRow {
    fn set(&mut self, column: &'static str, value: impl Into<String>) {
        self.cells.push((column, value.into()));
    }

    fn get(&self, column: &str) -> String {
        self.cells
            .iter()
            .filter(|(c, _)| *c == column)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

const FORK_COLUMNS: [&str; 11] = [
    "requests",
    "workers",
    "watch on the master",
    "dir while attached",
    "`reset --list`",
    "workers holding an agent socket",
    "sockets per worker (before the attach)",
    "`detach`",
    "dir after detach",
    "attach + detach again",
    "master",
];

fn fork_round(scratch: &Scratch, python: &Interpreter, site: &str, row: &mut ForkRow) {
    let master = match TargetProcess::spawn_with(
        python,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/idle_server.py"),
        &["gunicorn-recycling", &MAX_REQUESTS.to_string()],
        &[("PYTHONPATH", site)],
        die_with_parent,
    ) {
        Ok(m) => m,
        Err(e) => {
            row.set(
                "master",
                format!("**failed**: cannot start: {}", short(&e.to_string())),
            );
            return;
        }
    };
    // Also makes this process the workers' subreaper: those whose master
    // died come to it, to be reaped.
    let mut server = ForkingServer::new(master);
    let master_pid = server.master().pid();
    let pid_text = master_pid.to_string();
    let port_file = server.master().host_dir().join("port.txt");
    let deadline = Instant::now() + SERVER_LIMIT;
    let port = loop {
        let port = fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse::<u16>().ok());
        if let Some(port) = port {
            if server.workers_now().len() == 2 {
                break Some(port);
            }
        }
        if Instant::now() > deadline || !server.master_mut().is_alive() {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let Some(port) = port else {
        let log = server.master().stderr();
        row.set(
            "master",
            format!(
                "**failed**: no port and 2 workers within {SERVER_LIMIT:?}: {}",
                short(last_line(&log).unwrap_or("no stderr"))
            ),
        );
        return;
    };
    // Let the workers boot (a sync worker answers once it is initialised).
    if let Err(e) = http_get(port, "first") {
        row.set(
            "requests",
            format!("**first request failed**: {}", short(&e)),
        );
    }
    // The connection that request came on is closed by then.
    std::thread::sleep(Duration::from_millis(500));
    let before: Vec<usize> = server
        .workers_now()
        .iter()
        .map(|&w| socket_inodes(w).len())
        .collect();

    if let Err(e) = attach(scratch, python, master_pid) {
        row.set("master", format!("**attach failed**: {}", short(&e)));
        let _ = detach(scratch, master_pid);
        drop(server);
        let _ = leftover(python, master_pid);
        return;
    }
    let dir = private_dir(python, master_pid);
    row.set(
        "dir while attached",
        if dir.is_dir() {
            "present"
        } else {
            "**missing**"
        },
    );
    let watcher = Watcher::spawn(
        scratch,
        &[
            "watch",
            "gunicorn.arbiter.Arbiter.spawn_worker",
            "--pid",
            &pid_text,
        ],
    );
    let mut watcher = match watcher {
        Ok(mut w) => {
            let deadline = Instant::now() + START_LIMIT;
            while !w.started() && !w.has_exited() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !w.started() {
                row.set(
                    "watch on the master",
                    format!("**did not start**: {}", short(&w.failure())),
                );
            }
            Some(w)
        }
        Err(e) => {
            row.set("watch on the master", format!("**failed**: {}", short(&e)));
            None
        }
    };

    let mut served = 0;
    let mut pids = HashSet::new();
    let mut errors: Vec<String> = Vec::new();
    for request in 0..REQUESTS {
        match http_get(port, &format!("r{request}")) {
            Ok(pid) => {
                served += 1;
                pids.insert(pid);
            }
            Err(e) => errors.push(e),
        }
        let _ = server.workers_now();
    }
    row.set(
        "requests",
        if errors.is_empty() {
            format!("{served}/{REQUESTS} ok")
        } else {
            format!(
                "**{served}/{REQUESTS} ok**, first error: {}",
                short(&errors[0])
            )
        },
    );
    // The last recycled workers boot.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.workers_now().len() != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let workers = server.workers_now();
    let spawned_after = server.workers_seen().saturating_sub(2);
    row.set(
        "workers",
        format!(
            "{} served, {spawned_after} spawned after the first 2, {} alive",
            pids.len(),
            workers.len()
        ),
    );
    let agent = agent_inodes(master_pid);
    let holding: Vec<String> = workers
        .iter()
        .filter_map(|&w| {
            let held = socket_inodes(w)
                .iter()
                .filter(|i| agent.contains(i))
                .count();
            (held > 0).then(|| format!("{w} holds {held}"))
        })
        .collect();
    row.set(
        "workers holding an agent socket",
        if agent.is_empty() {
            "— (no agent socket found in /proc/net/unix)".to_owned()
        } else if holding.is_empty() {
            format!("0 of {}", workers.len())
        } else {
            format!(
                "**{} of {}**: {}",
                holding.len(),
                workers.len(),
                holding.join(", ")
            )
        },
    );
    let now: Vec<usize> = workers.iter().map(|&w| socket_inodes(w).len()).collect();
    row.set(
        "sockets per worker (before the attach)",
        format!("{now:?} ({before:?})"),
    );
    row.set(
        "`reset --list`",
        operator_text(&operator(scratch, master_pid)),
    );
    if let Some(mut w) = watcher.take() {
        w.interrupt();
        let end = w.finish();
        row.set(
            "watch on the master",
            match end.failure {
                None => format!("{} observations, ended cleanly", end.observations),
                Some(f) => format!("{} observations, **{}**", end.observations, short(&f)),
            },
        );
    }
    row.set(
        "`detach`",
        match detach(scratch, master_pid) {
            Ok(took) => format!("ok, {:.1} ms", took.as_secs_f64() * 1e3),
            Err(e) => format!("**failed**: {}", short(&e)),
        },
    );
    let gone = |dir: &Path| {
        let deadline = Instant::now() + Duration::from_secs(3);
        while dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        !dir.exists()
    };
    row.set(
        "dir after detach",
        if gone(&dir) {
            "gone"
        } else {
            "**still there**"
        },
    );
    let again = attach(scratch, python, master_pid).and_then(|_| detach(scratch, master_pid));
    row.set(
        "attach + detach again",
        match again {
            Ok(_) if gone(&dir) => "ok".to_owned(),
            Ok(_) => "ok, **directory left**".to_owned(),
            Err(e) => format!("**failed**: {}", short(&e)),
        },
    );
    let alive = server.master_mut().is_alive();
    let log = server.master().stderr();
    let tracebacks = log.matches("Traceback").count();
    row.set(
        "master",
        format!(
            "{}, {tracebacks} tracebacks in its log",
            if alive { "alive" } else { "**died**" }
        ),
    );
    drop(server);
    let _ = leftover(python, master_pid);
}

fn part_fork(scratch: &Scratch, pythons: &[&Interpreter]) {
    let mut rows = Vec::new();
    for python in pythons {
        eprintln!("part 5, Python {}", python.id);
        let mut row = ForkRow::default();
        match ServersManifest::load_site(python, &FORK_PACKAGES) {
            Ok(site) => fork_round(scratch, python, &site.target_dir, &mut row),
            Err(e) => {
                eprintln!("\n*** SKIPPED: part 5: {e}\n");
                row.set("master", format!("**skipped**: {}", short(&e.to_string())));
            }
        }
        rows.push(row);
    }
    println!("### 5. A forking server kept attachable");
    println!();
    println!(
        "A gunicorn master (`tests/targets/idle_server.py gunicorn-recycling {MAX_REQUESTS}`) \
         with 2 sync workers, `--max-requests {MAX_REQUESTS}` (no jitter), serving a Flask app \
         whose `GET /hello?name=X` answers with its worker's pid. The master attached, \
         `peeka-cli watch gunicorn.arbiter.Arbiter.spawn_worker --pid MASTER` \
         kept open while {REQUESTS} sequential requests recycle the workers; then the checks, \
         in this order. Agent sockets: the inodes `/proc/MASTER/net/unix` lists under \
         `/tmp/peeka-MASTER/agent.sock` (its listening socket and accepted connections) among \
         each live worker's fds."
    );
    println!();
    let columns: Vec<&str> = std::iter::once("interpreter").chain(FORK_COLUMNS).collect();
    print_table_head(&columns);
    for (python, row) in pythons.iter().zip(&rows) {
        let cells: Vec<String> = FORK_COLUMNS
            .iter()
            .map(|c| {
                let v = row.get(c);
                if v.is_empty() {
                    "—".to_owned()
                } else {
                    v
                }
            })
            .collect();
        print_row(python, &cells);
    }
    println!();
}

// ---------------------------------------------------------------------------
// The run.

/// The binary measured: `$PEEKA_BENCH_CLI`, else the `peeka-cli` next to
/// this bench (target/release).
fn measured_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PEEKA_BENCH_CLI").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let mut path = std::env::current_exe().unwrap();
    path.pop();
    if path.ends_with("deps") {
        path.pop();
    }
    path.join("peeka-cli")
}

/// Which binary this is: its version, and the commit of the git tree it
/// was built in (the nearest ancestor directory with a `.git`), with the
/// files modified there.
fn describe_binary(binary: &Path) -> String {
    let absolute = fs::canonicalize(binary).unwrap_or_else(|_| binary.to_owned());
    let version = output_of(
        &absolute.display().to_string(),
        &["--version"],
        Path::new("/"),
    );
    let modified = output_of(
        "date",
        &[
            "-u",
            "-r",
            &absolute.display().to_string(),
            "+%Y-%m-%d %H:%M UTC",
        ],
        Path::new("/"),
    );
    let tree = absolute
        .ancestors()
        .skip(1)
        .find(|dir| dir.join(".git").exists());
    let origin = match tree {
        Some(tree) => {
            let commit = output_of("git", &["rev-parse", "--short", "HEAD"], tree);
            let subject = output_of("git", &["log", "-1", "--format=%s"], tree);
            let mut dirty: Vec<String> = output_of(
                "git",
                &["status", "--porcelain", "--untracked-files=no"],
                tree,
            )
            .lines()
            // "XY PATH"; the output is trimmed, so the first line may have
            // lost the blank X.
            .filter_map(|l| l.trim_start().split_once(' '))
            .map(|(_, path)| path.trim().to_owned())
            .collect();
            dirty.sort();
            format!(
                "in the tree {} at commit {commit} (\"{}\"){}",
                tree.display(),
                subject.chars().take(80).collect::<String>(),
                if dirty.is_empty() {
                    ", no uncommitted changes to tracked files".to_owned()
                } else {
                    format!(
                        " with uncommitted changes to {} file(s): {}",
                        dirty.len(),
                        dirty.join(", ")
                    )
                }
            )
        }
        None => "outside any git tree".to_owned(),
    };
    format!(
        "`{}` (`{version}`, built {modified}) {origin}",
        binary.display()
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "agent_load: measures only under `cargo bench -p peeka-cli --bench agent_load` \
             (which passes --bench); nothing done"
        );
        return;
    }
    let rounds = env_count("PEEKA_BENCH_ROUNDS", 3);
    let window = Duration::from_secs(env_count("PEEKA_BENCH_WINDOW_SECS", 5) as u64);
    let cycles = env_count("PEEKA_BENCH_CYCLES", 1000);
    let parts: Vec<u32> = std::env::var("PEEKA_BENCH_PARTS")
        .unwrap_or_else(|_| "1,2,3,4,5".to_owned())
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let binary = measured_binary();
    assert!(
        binary.is_file(),
        "{} is missing: `cargo build --release -p peeka-cli` (or set PEEKA_BENCH_CLI)",
        binary.display()
    );
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let mut wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if wanted.is_empty() {
        wanted = vec!["3.11".to_owned(), "3.14".to_owned()];
    }
    let mut pythons = Vec::new();
    for id in &wanted {
        match manifest.get(id) {
            Some(python) => pythons.push(python),
            None => eprintln!(
                "\n*** SKIPPED: Python {id}: not in the manifest ({})\n",
                manifest.missing_reason(id)
            ),
        }
    }
    let dir = std::env::temp_dir().join(format!("peeka-agent-load-{}", std::process::id()));
    fs::create_dir_all(dir.join("state")).unwrap();
    let scratch = Scratch {
        binary: dir.join("peeka-cli"),
        dir,
        runs: AtomicUsize::new(0),
    };
    fs::copy(&binary, &scratch.binary).unwrap();

    let date = output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"], Path::new("/"));
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    println!("## The agent under load ({date})");
    println!();
    println!("Measured: {}.", describe_binary(&binary));
    println!();
    println!(
        "{cpus} cores, shared (load average {} at the start). Interpreters: {}. Parts: {}.",
        load_average(),
        pythons
            .iter()
            .map(|p| format!("{} ({})", p.id, p.version))
            .collect::<Vec<_>>()
            .join(", "),
        parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
    let started = Instant::now();
    for part in &parts {
        match part {
            1 => {
                // PEEKA_BENCH_FUNCTIONS: which of part 1's functions (default all).
                let wanted = std::env::var("PEEKA_BENCH_FUNCTIONS").unwrap_or_default();
                for function in FLOOD_FUNCTIONS {
                    if wanted.is_empty() || wanted.split(',').any(|w| w.trim() == function.0) {
                        part_flood(&scratch, &pythons, rounds, window, function);
                    }
                }
            }
            2 => part_idle_connections(&scratch, &pythons),
            3 => part_big_hellos(&scratch, &pythons),
            4 => part_cycles(&scratch, &pythons, cycles),
            5 => part_fork(&scratch, &pythons),
            other => eprintln!("*** no part {other} (parts are 1-5)"),
        }
    }
    println!(
        "{:.0} s in all; load average {} at the end.",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}
