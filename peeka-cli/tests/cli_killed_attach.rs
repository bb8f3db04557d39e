//! The stress harness of issue 13, part 1: `peeka-cli attach` killed at
//! random moments of the attach, across every interpreter of the manifest,
//! several target shapes and every method that applies, and what each kill
//! left in the target.
//!
//! For every interpreter (a missing one is reported loudly, as everywhere),
//! every shape of `tests/targets/kill_shapes.py`:
//! - `select`: main thread parked in `select()`, a worker runs Python;
//! - `busy`: the main thread runs Python, alone;
//! - `parked`: no thread runs Python (main in `signal.pause()`, others in
//!   `select()`, `read()` and a futex wait with a deadline), so the ptrace
//!   method takes its GIL-released route;
//! - `threads`: 20 threads, some spinning, some sleeping, some blocked;
//!
//! and every method (`--method auto`, which is pep768 on 3.14+ and ptrace
//! below, plus `--method ptrace` on 3.14+), a cell runs calibration
//! attaches (the end of the injection: the wall time of the whole attach
//! minus its `wait for the agent` and later steps, plus 20 ms; the median
//! of 3 attaches from 10 rounds a cell on, else one), then rounds. A round
//! starts the real `peeka-cli attach PID --method M` and sends it a signal
//! at a moment between 0 and that end: SIGKILL mostly, every fourth round
//! (staggered over the cells) SIGINT, SIGTERM or SIGHUP, which the CLI
//! defers. Even rounds sweep the window in strata (round 2k lands in the
//! k-th slice), so that with enough rounds every step of the attach is
//! hit; odd rounds land anywhere in it. After the signal and the end of
//! the CLI, the round checks the target:
//!
//! - **lost** (the test fails): it died; or a thread of it is stopped or
//!   traced (`T`/`t`, `TracerPid`); or its heartbeat stopped for 2 s; or a
//!   thread does not answer a SIGUSR1 within 2 s (every shape wakes each
//!   parked thread on SIGUSR1, and each writes its answer); or its stderr is
//!   not empty. A lost target is replaced by a new one and counted;
//! - **agent loaded**: the agent runs (now or within a short quiet period,
//!   or after the probe woke the threads, which makes a request queued for
//!   a parked thread run): it is detached with `peeka-cli detach`;
//! - **leftover directory**: `/tmp/peeka-<pid>` remains with no agent;
//! - **stray pages**: anonymous readable, non-writable mappings (`r--` or
//!   `r-x`, no path) that were not there before the round;
//! - **stray code bytes**: bytes of executable file mappings that changed.
//!   They must lie in the padding after an executable segment (where the
//!   ptrace method writes its system-call trampoline); a changed byte
//!   anywhere else is dangerous and fails the test.
//!
//! Leftovers are reported, not failed on, and the target is kept, so that
//! leftovers accumulate as they would in a long-lived service.
//!
//! At the end, one table: per interpreter, shape and method, rounds, targets
//! lost, and each kind of leftover.
//!
//! Knobs (environment):
//! - `PEEKA_KILL_ROUNDS=N` rounds per cell (default 3);
//! - `PEEKA_KILL_SEED=S` replays the delays (each cell draws from its own
//!   generator, seeded with S and the cell's name, so a cell replays alone);
//! - `PEEKA_KILL_JOBS=N` runs N targets at a time (default 2), each in its
//!   own thread;
//! - `PEEKA_KILL_HOGS=N` runs N CPU hogs (`sh -c 'while :; do :; done'`)
//!   during the test;
//! - `PEEKA_ONLY=3.11,3.14` (interpreter ids), `PEEKA_KILL_SHAPES=select,busy`
//!   and `PEEKA_KILL_METHODS=auto,ptrace` narrow the run;
//! - `PEEKA_KILL_VERBOSE=1` prints one line per round.
//!
//! ```text
//! cargo test --release -p peeka-cli --test cli_killed_attach -- --nocapture
//! PEEKA_KILL_ROUNDS=30 PEEKA_KILL_HOGS=3 cargo test --release -p peeka-cli --test cli_killed_attach -- --nocapture
//! ```
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    command, exited_within, last_json_line, private_dir, run, seed_from_env, send, signal_name,
    state_dir,
};
use peeka_attach::elf::{page_size, ElfFile};
use peeka_attach::memory::RemoteMemory;
use peeka_attach::procfs::MapEntry;
use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde_json::Value;

/// How long any one CLI run may take.
const LIMIT: Duration = Duration::from_secs(60);

/// How long a heartbeat may stand still, and a thread take to answer.
const ALIVE_LIMIT: Duration = Duration::from_secs(2);

/// How long the private directory must stay unchanged (no bootstrap claim
/// without its outcome) before a round concludes that no agent is coming.
const QUIET: Duration = Duration::from_millis(50);

/// How long an agent that was claimed may take to load (3.8-3.10 starve
/// the loader thread of the GIL while other threads spin).
const LOAD_PATIENCE: Duration = Duration::from_secs(30);

/// SIGUSR1 probes made, and those that needed the signal more than once.
static PROBES: AtomicUsize = AtomicUsize::new(0);
static PROBES_RESENT: AtomicUsize = AtomicUsize::new(0);

/// A small deterministic generator (xorshift).
#[derive(Debug)]
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// A hash of a cell's name (FNV-1a).
fn name_hash(cell: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in cell.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The generator of one cell: the seed mixed with the cell's name.
fn cell_random(seed: u64, cell: &str) -> Random {
    let mut random = Random((seed ^ name_hash(cell)) | 1);
    for _ in 0..4 {
        random.below(2);
    }
    random
}

fn env_list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
    Some(value.split(',').map(|s| s.trim().to_owned()).collect())
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The target shapes of `tests/targets/kill_shapes.py`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Shape {
    Select,
    Busy,
    Parked,
    Threads,
}

const SHAPES: [Shape; 4] = [Shape::Select, Shape::Busy, Shape::Parked, Shape::Threads];

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Select => "select",
            Shape::Busy => "busy",
            Shape::Parked => "parked",
            Shape::Threads => "threads",
        }
    }

    /// Whether some thread runs Python all the time (and publishes a
    /// heartbeat).
    fn beats(self) -> bool {
        self != Shape::Parked
    }
}

/// Whether the interpreter has PEP 768 (3.14+), where `auto` is pep768.
fn has_pep768(python: &Interpreter) -> bool {
    python
        .minor
        .strip_prefix("3.")
        .and_then(|m| m.parse::<u32>().ok())
        .is_some_and(|m| m >= 14)
}

/// CPU hogs for the length of the test, killed (by pid) when dropped.
#[derive(Debug)]
struct Hogs(Vec<Child>);

impl Hogs {
    fn start(count: usize) -> Self {
        let hogs = (0..count)
            .map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        Self(hogs)
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

// ---------------------------------------------------------------------
// What the target's memory holds.

/// Executable file mappings, byte for byte, and where their padding is.
#[derive(Debug, Default)]
struct Code {
    /// (start, end, file offset, path) to bytes.
    regions: HashMap<(u64, u64, u64, PathBuf), Vec<u8>>,
    /// Padding after executable segments: [start, end).
    padding: Vec<(u64, u64)>,
}

impl Code {
    fn read(pid: u32) -> Self {
        let Ok(maps) = MapEntry::read_all(pid) else {
            return Self::default();
        };
        let memory = RemoteMemory::new(pid);
        let mut code = Self::default();
        let mut files: Vec<&Path> = Vec::new();
        for mapping in maps.iter().filter(|m| m.exec && m.is_file()) {
            let path = mapping.path.as_deref().unwrap();
            if !files.contains(&path) {
                files.push(path);
            }
            if let Ok(bytes) =
                memory.read_vec(mapping.start, (mapping.end - mapping.start) as usize)
            {
                code.regions.insert(
                    (mapping.start, mapping.end, mapping.offset, path.to_owned()),
                    bytes,
                );
            }
        }
        let page = page_size();
        for file in files {
            let mappings: Vec<&MapEntry> = maps
                .iter()
                .filter(|m| m.is_file() && m.path.as_deref() == Some(file))
                .collect();
            let Some(first) = mappings.iter().find(|m| m.offset == 0).or(mappings.first()) else {
                continue;
            };
            let Ok(elf) = ElfFile::open_mapped(pid, first) else {
                continue;
            };
            let Some(bias) = elf.load_bias(&mappings) else {
                continue;
            };
            for (address, size) in elf.executable_segments() {
                let end = bias.apply(address + size);
                let page_end = (end + page - 1) & !(page - 1);
                if page_end > end {
                    code.padding.push((end, page_end));
                }
            }
        }
        code
    }

    fn in_padding(&self, address: u64) -> bool {
        self.padding
            .iter()
            .any(|&(start, end)| start <= address && address < end)
    }

    /// Bytes that changed from `before` to `self`: how many lie in padding,
    /// and a description of those that do not (dangerous).
    fn changes_since(&self, before: &Code) -> (usize, Vec<String>) {
        let mut in_padding = 0;
        let mut outside = Vec::new();
        for (key, now) in &self.regions {
            let Some(then) = before.regions.get(key) else {
                continue;
            };
            if then == now {
                continue;
            }
            let mut run: Option<(u64, Vec<u8>, Vec<u8>)> = None;
            // Page by page (a debug build compares a page with memcmp).
            let changed = then
                .chunks(4096)
                .zip(now.chunks(4096))
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .flat_map(|(page, (a, b))| {
                    a.iter()
                        .zip(b.iter())
                        .enumerate()
                        .filter(|(_, (x, y))| x != y)
                        .map(move |(i, (&x, &y))| (page * 4096 + i, x, y))
                });
            for (index, a, b) in changed {
                let address = key.0 + index as u64;
                if self.in_padding(address) || before.in_padding(address) {
                    in_padding += 1;
                    continue;
                }
                match &mut run {
                    Some((start, was, is)) if *start + was.len() as u64 == address => {
                        was.push(a);
                        is.push(b);
                    }
                    _ => {
                        if let Some(done) = run.take() {
                            outside.push(describe_change(key, done));
                        }
                        run = Some((address, vec![a], vec![b]));
                    }
                }
            }
            if let Some(done) = run {
                outside.push(describe_change(key, done));
            }
        }
        (in_padding, outside)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe_change(
    key: &(u64, u64, u64, PathBuf),
    (address, was, is): (u64, Vec<u8>, Vec<u8>),
) -> String {
    format!(
        "{:#x} ({} + file offset {:#x}): {} bytes, {} became {}",
        address,
        key.3.display(),
        key.2 + (address - key.0),
        was.len(),
        hex(&was[..was.len().min(32)]),
        hex(&is[..is.len().min(32)])
    )
}

/// The pages of anonymous mappings that are readable and not writable
/// (`r--`, `r-x`): what the ptrace method maps for its runner code.
fn runner_like_pages(pid: u32) -> BTreeSet<u64> {
    let page = page_size();
    let mut pages = BTreeSet::new();
    for mapping in MapEntry::read_all(pid).unwrap_or_default() {
        if mapping.path.is_none() && mapping.read && !mapping.write {
            let mut at = mapping.start;
            while at < mapping.end {
                pages.insert(at);
                at += page;
            }
        }
    }
    pages
}

// ---------------------------------------------------------------------
// The target and its health.

/// The target's counters: a bytearray of the script, read through
/// `/proc/PID/mem` (see `kill_shapes.py`).
#[derive(Debug)]
struct Board {
    memory: RemoteMemory,
    /// Where the bytearray's bytes are.
    bytes: u64,
    /// Counter name to slot.
    slots: BTreeMap<String, u64>,
}

impl Board {
    /// Reads `board.json` (the bytearray's `id()` and the slots) and finds
    /// the bytes: `PyByteArrayObject.ob_start`, after the variable-size
    /// object header, `ob_alloc` and `ob_bytes` (the same in 3.8-3.15).
    fn open(process: &TargetProcess) -> Result<Self, String> {
        let text = fs::read_to_string(process.host_dir().join("board.json"))
            .map_err(|e| format!("board.json: {e}"))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| format!("board.json: {e}"))?;
        let id = json["id"].as_u64().ok_or("board.json: no id")?;
        let slots = json["slots"]
            .as_object()
            .ok_or("board.json: no slots")?
            .iter()
            .map(|(name, slot)| (name.clone(), slot.as_u64().unwrap_or(0)))
            .collect();
        let memory = RemoteMemory::new(process.pid());
        let bytes = memory
            .read_u64(id + 40)
            .map_err(|e| format!("reading the board's bytearray: {e}"))?;
        Ok(Self {
            memory,
            bytes,
            slots,
        })
    }

    fn read(&self, name: &str) -> Option<u64> {
        let slot = self.slots.get(name)?;
        self.memory.read_u64(self.bytes + 8 * slot).ok()
    }

    /// Every thread's answer count (`pong.<name>`).
    fn answers(&self) -> BTreeMap<String, u64> {
        self.slots
            .keys()
            .filter_map(|name| {
                let thread = name.strip_prefix("pong.")?;
                Some((thread.to_owned(), self.read(name)?))
            })
            .collect()
    }
}

/// A running target with what the harness last saw of it.
#[derive(Debug)]
struct Target {
    process: TargetProcess,
    shape: Shape,
    dir: PathBuf,
    board: Board,
    code: Code,
    pages: BTreeSet<u64>,
}

impl Target {
    fn spawn(python: &Interpreter, shape: Shape) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/kill_shapes.py");
        let process =
            TargetProcess::spawn(python, &script, &[shape.name()], &[]).unwrap_or_else(|e| {
                panic!(
                    "{}: cannot start kill_shapes.py {}: {e}",
                    python.id,
                    shape.name()
                )
            });
        let dir = private_dir(python, &process);
        let board = Board::open(&process).unwrap_or_else(|e| {
            panic!("{} {}: {e}", python.id, shape.name());
        });
        let mut target = Self {
            process,
            shape,
            dir,
            board,
            code: Code::default(),
            pages: BTreeSet::new(),
        };
        if let Err(why) = target.health(true) {
            panic!(
                "{} {}: a new target is unwell before any attach: {why}",
                python.id,
                shape.name()
            );
        }
        target.code = Code::read(target.pid());
        target.pages = runner_like_pages(target.pid());
        target
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits up to [`ALIVE_LIMIT`] for the heartbeat to go up.
    fn beating(&self) -> bool {
        let before = self.board.read("heartbeat");
        let deadline = Instant::now() + ALIVE_LIMIT;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            if self.board.read("heartbeat") > before {
                return true;
            }
        }
        false
    }

    /// Sends SIGUSR1 and waits up to [`ALIVE_LIMIT`] for every thread to
    /// answer; the names of those that did not.
    ///
    /// The signal is sent again every 250 ms until then: a parked main
    /// thread only runs the handler once its `pause()` or `select()` is
    /// interrupted, and a signal that comes just before it enters the call
    /// is taken (by the C handler) without interrupting it (the race that
    /// `sigsuspend` exists for): fresh 3.15 targets missed their first
    /// SIGUSR1 in 6 of 40 tries under load. A thread that cannot run still
    /// answers none of them.
    fn probe(&self) -> Result<(), Vec<String>> {
        let before = self.board.answers();
        PROBES.fetch_add(1, Ordering::Relaxed);
        send(self.pid(), libc::SIGUSR1);
        let started = Instant::now();
        let deadline = started + ALIVE_LIMIT;
        let mut sent = 1;
        loop {
            let now = self.board.answers();
            let silent: Vec<String> = before
                .iter()
                .filter(|(name, count)| now.get(*name).is_none_or(|n| n <= count))
                .map(|(name, _)| name.clone())
                .collect();
            if silent.is_empty() && !before.is_empty() {
                if sent > 1 {
                    PROBES_RESENT.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(());
            }
            if started.elapsed() >= Duration::from_millis(250) * sent {
                send(self.pid(), libc::SIGUSR1);
                sent += 1;
            }
            if Instant::now() > deadline {
                return Err(if before.is_empty() {
                    vec!["(no thread has ever answered)".to_owned()]
                } else {
                    silent
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether the target is still correct: alive, no thread stopped or
    /// traced, heartbeat going on, (with `probe`) every thread answering
    /// SIGUSR1, nothing on stderr. Otherwise why not.
    fn health(&mut self, probe: bool) -> Result<(), String> {
        self.check(probe).map_err(|why| {
            format!(
                "{why}; its stderr: {:?}; counters: {:?}; private directory: {:?}; threads: {}",
                self.process.stderr(),
                self.board
                    .slots
                    .keys()
                    .map(|name| (name.as_str(), self.board.read(name)))
                    .collect::<Vec<_>>(),
                entries(&self.dir),
                thread_dump(self.pid())
            )
        })
    }

    fn check(&mut self, probe: bool) -> Result<(), String> {
        let pid = self.pid();
        if let Some(status) = zombie_status(pid) {
            return Err(format!("the target died ({status})"));
        }
        if !self.process.is_alive() {
            return Err("the target died".to_owned());
        }
        let mut held = held_threads(pid);
        for pause in [100, 1000] {
            if held.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(pause));
            held = held_threads(pid);
        }
        if !held.is_empty() {
            return Err(format!(
                "threads left stopped or traced for over a second: {}",
                held.join(", ")
            ));
        }
        if self.shape.beats() && !self.beating() {
            return Err(format!("the heartbeat stood still for {ALIVE_LIMIT:?}"));
        }
        if probe {
            if let Err(silent) = self.probe() {
                return Err(format!(
                    "threads did not answer SIGUSR1 within {ALIVE_LIMIT:?}: {silent:?}"
                ));
            }
        }
        if !self.process.is_alive() {
            return Err("the target died".to_owned());
        }
        if !self.process.stderr().is_empty() {
            return Err("the target wrote on its stderr".to_owned());
        }
        Ok(())
    }
}

/// How a zombie child `pid` ended (field 52 of `/proc/PID/stat`), if it is
/// one.
fn zombie_status(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() != Some(&"Z") && fields.first() != Some(&"X") {
        return None;
    }
    let code: i32 = fields.get(49)?.parse().ok()?;
    Some(if code & 0x7f != 0 {
        format!(
            "killed by signal {} ({})",
            code & 0x7f,
            signal_name(code & 0x7f)
        )
    } else {
        format!("exit code {}", (code >> 8) & 0xff)
    })
}

fn tasks(pid: u32) -> Vec<String> {
    let mut tids: Vec<String> = fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    tids.sort();
    tids
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Threads of `pid` that are stopped (`T`), in a tracing stop (`t`) or
/// traced.
fn held_threads(pid: u32) -> Vec<String> {
    let mut held = Vec::new();
    for tid in tasks(pid) {
        let Ok(status) = fs::read_to_string(format!("/proc/{pid}/task/{tid}/status")) else {
            continue;
        };
        let state = status_field(&status, "State:");
        let tracer = status_field(&status, "TracerPid:");
        if state.starts_with('T') || state.starts_with('t') || (tracer != "0" && !tracer.is_empty())
        {
            held.push(format!(
                "{tid} ({}) state {state}, TracerPid {tracer}",
                status_field(&status, "Name:")
            ));
        }
    }
    held
}

/// One line per thread: name, state, kernel wait channel, system call.
fn thread_dump(pid: u32) -> String {
    let read = |tid: &str, what: &str| {
        fs::read_to_string(format!("/proc/{pid}/task/{tid}/{what}"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    tasks(pid)
        .iter()
        .map(|tid| {
            let status = read(tid, "status");
            format!(
                "[{tid} {} {} wchan={} syscall={} SigPnd={} ShdPnd={} SigBlk={}]",
                status_field(&status, "Name:"),
                status_field(&status, "State:"),
                read(tid, "wchan"),
                read(tid, "syscall"),
                status_field(&status, "SigPnd:"),
                status_field(&status, "ShdPnd:"),
                status_field(&status, "SigBlk:")
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------
// The private directory and the agent.

fn entries(dir: &Path) -> Option<BTreeSet<String>> {
    let read = fs::read_dir(dir).ok()?;
    Some(
        read.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    )
}

/// What the private directory says once things settled.
#[derive(Debug, PartialEq, Eq)]
enum Settled {
    /// No directory.
    NoDir,
    /// An agent runs (its socket is there).
    Agent,
    /// A directory, no agent: `pending` names claims whose outcome never
    /// came, `errors` the bootstrap's error reports.
    NoAgent {
        pending: Vec<String>,
        errors: Vec<String>,
    },
}

/// Waits until the private directory `dir` settles: an agent's socket
/// appears, or nothing new is in progress (no claim without its outcome)
/// for `quiet`. Only entries not in `known` count.
fn settle(dir: &Path, known: &BTreeSet<String>, quiet: Duration) -> Settled {
    let started = Instant::now();
    let mut quiet_since = Instant::now();
    loop {
        let Some(names) = entries(dir) else {
            return Settled::NoDir;
        };
        let fresh: Vec<&String> = names.iter().filter(|n| !known.contains(*n)).collect();
        // The socket appears when the agent binds it, its status file once
        // it listens (a claim of an earlier round may be the one that
        // loaded it).
        if names.contains("agent.sock")
            && names
                .iter()
                .filter_map(|n| n.strip_prefix("status."))
                .any(|token| {
                    fs::read_to_string(dir.join(format!("status.{token}")))
                        .ok()
                        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                        .is_some_and(|s| s["state"] == "loaded")
                })
        {
            return Settled::Agent;
        }
        let mut pending = Vec::new();
        let mut errors = Vec::new();
        if names.contains("agent.sock") {
            pending.push("(agent.sock without a `loaded` status)".to_owned());
        }
        for claim in fresh.iter().filter_map(|n| n.strip_prefix("claimed-")) {
            let status = fs::read_to_string(dir.join(format!("status.{claim}")));
            match status
                .ok()
                .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            {
                None => pending.push(claim.to_owned()),
                Some(status) if status["state"] == "loaded" => pending.push(claim.to_owned()),
                Some(status) if status["state"] == "error" => {
                    errors.push(format!("{claim}: {}", status["traceback"]));
                }
                Some(_) => {}
            }
        }
        if pending.is_empty() {
            if quiet_since.elapsed() >= quiet {
                return Settled::NoAgent { pending, errors };
            }
        } else {
            quiet_since = Instant::now();
            if started.elapsed() > LOAD_PATIENCE {
                return Settled::NoAgent { pending, errors };
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `peeka-cli detach --pid PID`, then waits for the directory to go.
fn detach(state: &Path, target: &Target) -> Result<(), String> {
    let pid = target.pid().to_string();
    let started = Instant::now();
    loop {
        let detached = run(state, &["detach", "--pid", &pid], LIMIT);
        if detached.code == 0 {
            break;
        }
        // The agent binds its socket a moment before it listens.
        if started.elapsed() > Duration::from_secs(3) {
            return Err(format!(
                "detach failed ({}) for {:?}: {}",
                detached.code,
                started.elapsed(),
                detached.last()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while target.dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    if target.dir.exists() {
        return Err(format!("{} outlived the detach", target.dir.display()));
    }
    Ok(())
}

// ---------------------------------------------------------------------
// The CLI, interrupted.

/// Whether process `pid` catches SIGINT, SIGTERM and SIGHUP (`SigCgt`).
fn catches_the_signals(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let caught = u64::from_str_radix(&status_field(&status, "SigCgt:"), 16).unwrap_or(0);
    [libc::SIGINT, libc::SIGTERM, libc::SIGHUP]
        .iter()
        .all(|&s| caught & (1 << (s - 1)) != 0)
}

/// How one interrupted run of the CLI ended.
#[derive(Debug)]
struct Ended {
    status: ExitStatus,
    /// The CLI had ended before the signal was sent.
    finished_first: bool,
    /// When the signal went, after the start.
    sent_at: Duration,
    last: Value,
    stderr: String,
}

impl Ended {
    fn describe(&self) -> String {
        format!(
            "CLI {} (signal sent at {:?}{}), last line {}, stderr {:?}",
            match (self.status.code(), self.status.signal()) {
                (Some(code), _) => format!("exited {code}"),
                (None, Some(signal)) => format!("killed by {}", signal_name(signal)),
                _ => "ended".to_owned(),
            },
            self.sent_at,
            if self.finished_first {
                ", after it had ended"
            } else {
                ""
            },
            self.last,
            self.stderr.trim()
        )
    }
}

/// Runs `peeka-cli args` and sends it `signal` `delay` after its start (a
/// catchable signal only once the CLI has taken it over, as a user's
/// Ctrl-C would find it; a SIGKILL exactly then).
fn interrupt(state: &Path, args: &[&str], signal: i32, delay: Duration) -> Ended {
    let started = Instant::now();
    let mut child = command(state, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    if signal != libc::SIGKILL {
        while started.elapsed() < Duration::from_secs(2) {
            if catches_the_signals(pid) || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    std::thread::sleep((started + delay).saturating_duration_since(Instant::now()));
    let finished_first = child.try_wait().unwrap().is_some();
    let sent_at = started.elapsed();
    if !finished_first {
        send(pid, signal);
    }
    let status = exited_within(&mut child, LIMIT).unwrap_or_else(|| {
        panic!(
            "peeka-cli {args:?} did not end within {LIMIT:?} after {}",
            signal_name(signal)
        )
    });
    let output = child.wait_with_output().unwrap();
    Ended {
        status,
        finished_first,
        sent_at,
        last: last_json_line(&output.stdout),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------
// Cells and rounds.

/// One interpreter, shape and method.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CellKey {
    order: usize,
    interpreter: String,
    shape: Shape,
    method: &'static str,
}

/// What the rounds of one cell found.
#[derive(Debug, Default)]
struct Tally {
    window: Duration,
    rounds: usize,
    sigkill: usize,
    catchable: usize,
    finished_first: usize,
    lost: usize,
    loaded: usize,
    late_loads: usize,
    leftover_dirs: usize,
    page_rounds: usize,
    pages: usize,
    code_rounds: usize,
    code_bytes: usize,
    seconds: f64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.rounds += other.rounds;
        self.sigkill += other.sigkill;
        self.catchable += other.catchable;
        self.finished_first += other.finished_first;
        self.lost += other.lost;
        self.loaded += other.loaded;
        self.late_loads += other.late_loads;
        self.leftover_dirs += other.leftover_dirs;
        self.page_rounds += other.page_rounds;
        self.pages += other.pages;
        self.code_rounds += other.code_rounds;
        self.code_bytes += other.code_bytes;
        self.seconds += other.seconds;
    }
}

/// Everything the run found.
#[derive(Debug, Default)]
struct Report {
    cells: BTreeMap<CellKey, Tally>,
    /// Targets lost, each with all its details.
    lost: Vec<String>,
    /// Code changed outside padding.
    dangerous: Vec<String>,
    /// Anything else worth a look.
    notes: Vec<String>,
}

/// The harness's run over one interpreter.
struct Harness<'a> {
    python: &'a Interpreter,
    state: PathBuf,
    rounds: usize,
    seed: u64,
    verbose: bool,
    report: &'a mut Report,
}

impl Harness<'_> {
    /// Calibration: the end of the injection, measured from the CLI's
    /// start (the median over `count` complete attaches), plus 20 ms; for
    /// a cell whose attach times out by design, the whole attach.
    fn calibrate(
        &mut self,
        target: &mut Target,
        method: &str,
        timeout: &str,
        count: usize,
        what: &str,
        tally: &mut Tally,
    ) -> Duration {
        let pid = target.pid().to_string();
        let mut ends = Vec::new();
        for _ in 0..count {
            let started = Instant::now();
            let attached = run(
                &self.state,
                &["attach", &pid, "--method", method, "--timeout", timeout],
                LIMIT,
            );
            let wall = started.elapsed();
            if attached.code == 0 {
                let steps = attached.last()["data"]["timeline"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let after: f64 = steps
                    .iter()
                    .skip_while(|s| s["step"] != "wait for the agent")
                    .map(|s| s["ms"].as_f64().unwrap_or(0.0))
                    .sum();
                let end = wall.saturating_sub(Duration::from_secs_f64(after / 1000.0));
                ends.push(end + Duration::from_millis(20));
                if let Err(why) = detach(&self.state, target) {
                    self.report
                        .notes
                        .push(format!("{what}: calibration: {why}"));
                }
            } else {
                if timeout != "1" {
                    self.report.notes.push(format!(
                        "{what}: a calibration attach (uninterrupted) failed with {}: {}",
                        attached.code,
                        attached.last()
                    ));
                }
                ends.push(wall);
            }
        }
        // The median: under load one slow attach would otherwise stretch
        // the window far past most attaches (whose CLI would then finish
        // before the signal).
        ends.sort();
        let window = ends[ends.len() / 2];
        // What the complete attaches left (by design or not).
        let code = Code::read(target.pid());
        let (bytes, outside) = code.changes_since(&target.code);
        for change in outside {
            self.report
                .dangerous
                .push(format!("{what}: after the calibration attaches: {change}"));
        }
        let pages = runner_like_pages(target.pid());
        let new_pages = pages.difference(&target.pages).count();
        if bytes > 0 || new_pages > 0 {
            self.report.notes.push(format!(
                "{what}: {count} complete calibration attach(es) left {new_pages} runner-like page(s) and \
                 {bytes} changed padding byte(s)"
            ));
        }
        target.code = code;
        target.pages = pages;
        if let Err(why) = target.health(true) {
            self.lose(
                target,
                &format!("{what}: after the calibration attaches (not interrupted)"),
                &why,
                tally,
            );
        }
        window
    }

    fn cell(&mut self, order: usize, target: &mut Target, method: &'static str) {
        let python = self.python;
        let shape = target.shape;
        let name = format!("{} {} --method {method}", python.id, shape.name());
        let key = CellKey {
            order,
            interpreter: python.id.clone(),
            shape,
            method,
        };
        let started = Instant::now();
        let mut random = cell_random(self.seed, &name);
        // A pep768 attach to a process where no thread runs Python waits
        // until its deadline (the harness's probe is what makes threads run
        // Python): one second, over which the kills are spread.
        let timeout = if method == "auto" && has_pep768(python) && shape == Shape::Parked {
            "1"
        } else {
            "30"
        };
        let calibrations = if self.rounds >= 10 { 3 } else { 1 };
        let mut tally = Tally::default();
        let window = self.calibrate(target, method, timeout, calibrations, &name, &mut tally);
        tally.window = window;
        let strata = self.rounds.div_ceil(2).max(1) as u64;
        for round in 0..self.rounds {
            let micros = window.as_micros() as u64;
            let delay = Duration::from_micros(if round % 2 == 0 {
                ((round / 2) as u64 * micros + random.below(micros)) / strata
            } else {
                random.below(micros + 1)
            });
            // Every fourth round, staggered over the cells (by name, so
            // that a cell run alone replays), a catchable signal.
            let stagger = (name_hash(&name) % 12) as usize;
            let signal = if (round + stagger) % 4 == 3 {
                [libc::SIGINT, libc::SIGTERM, libc::SIGHUP][((round + stagger) / 4) % 3]
            } else {
                libc::SIGKILL
            };
            let what = format!(
                "{name} round {round}: {} at {delay:?} of {window:?}",
                signal_name(signal)
            );
            self.round(target, method, timeout, signal, delay, &what, &mut tally);
        }
        tally.seconds = started.elapsed().as_secs_f64();
        self.report.cells.insert(key, tally);
    }

    #[allow(clippy::too_many_arguments)]
    fn round(
        &mut self,
        target: &mut Target,
        method: &str,
        timeout: &str,
        signal: i32,
        delay: Duration,
        what: &str,
        tally: &mut Tally,
    ) {
        // An agent loaded since the last round (by a request that ran late):
        // detach it, so that this attach injects rather than reuses it.
        if target.dir.join("agent.sock").exists() {
            tally.late_loads += 1;
            tally.loaded += 1;
            if let Err(why) = detach(&self.state, target) {
                self.report
                    .notes
                    .push(format!("{what}: before the round: {why}"));
            }
            target.code = Code::read(target.pid());
            target.pages = runner_like_pages(target.pid());
        }
        let known = entries(&target.dir).unwrap_or_default();
        let pid = target.pid().to_string();
        let ended = interrupt(
            &self.state,
            &["attach", &pid, "--method", method, "--timeout", timeout],
            signal,
            delay,
        );
        tally.rounds += 1;
        if signal == libc::SIGKILL {
            tally.sigkill += 1;
        } else {
            tally.catchable += 1;
        }
        let what = format!("{what} ({})", ended.describe());
        if ended.finished_first {
            tally.finished_first += 1;
            if ended.status.code() != Some(0) && timeout != "1" {
                self.report
                    .notes
                    .push(format!("{what}: the attach failed on its own"));
            }
        } else if signal != libc::SIGKILL && ended.status.signal().is_some() {
            self.report
                .notes
                .push(format!("{what}: the CLI died of the catchable signal"));
        }

        let checks = Instant::now();
        let outcome = self.after_the_signal(target, &known, &what, tally);
        if self.verbose {
            eprintln!("{what}: {outcome} (checked in {:.0?})", checks.elapsed());
        }
    }

    /// Everything a round checks once the CLI is gone; what it found.
    fn after_the_signal(
        &mut self,
        target: &mut Target,
        known: &BTreeSet<String>,
        what: &str,
        tally: &mut Tally,
    ) -> String {
        // Lost? (Before any probe: a thread left hijacked shows here.)
        if let Err(why) = target.health(false) {
            return self.lose(target, what, &why, tally);
        }
        // The agent, if it loads.
        let mut loaded = false;
        let mut settled = settle(&target.dir, known, QUIET);
        if settled == Settled::Agent {
            loaded = true;
            if let Err(why) = detach(&self.state, target) {
                self.report.notes.push(format!("{what}: {why}"));
            }
        }
        // Every thread answers, which also wakes parked threads: a request
        // left for one of them runs now (after any detach, as it would in
        // a service that wakes up later).
        if let Err(why) = target.health(true) {
            return self.lose(target, what, &why, tally);
        }
        if settled != Settled::Agent {
            settled = settle(&target.dir, known, QUIET);
            if settled == Settled::Agent {
                loaded = true;
                tally.late_loads += 1;
                if let Err(why) = detach(&self.state, target) {
                    self.report
                        .notes
                        .push(format!("{what}: after the probe: {why}"));
                }
                if let Err(why) = target.health(true) {
                    return self.lose(target, what, &why, tally);
                }
            }
        }
        if loaded {
            tally.loaded += 1;
        }
        if let Settled::NoAgent { pending, errors } = &settled {
            if !pending.is_empty() {
                self.report.notes.push(format!(
                    "{what}: bootstrap claims without an outcome after {LOAD_PATIENCE:?}: {pending:?}"
                ));
            }
            for error in errors {
                self.report
                    .notes
                    .push(format!("{what}: the bootstrap reported an error: {error}"));
            }
        }
        // Leftovers.
        let mut outcome = vec![if loaded { "agent loaded" } else { "no agent" }.to_owned()];
        let names = entries(&target.dir);
        if let Some(names) = &names {
            if !target.dir.join("agent.sock").exists()
                && (names.difference(known).next().is_some() || known.is_empty())
            {
                tally.leftover_dirs += 1;
                outcome.push(format!("directory left: {names:?}"));
            }
        }
        let pages = runner_like_pages(target.pid());
        let new_pages = pages.difference(&target.pages).count();
        if new_pages > 0 {
            tally.page_rounds += 1;
            tally.pages += new_pages;
            outcome.push(format!("{new_pages} page(s) left"));
        }
        let code = Code::read(target.pid());
        let (bytes, outside) = code.changes_since(&target.code);
        if bytes > 0 {
            tally.code_rounds += 1;
            tally.code_bytes += bytes;
            outcome.push(format!("{bytes} padding byte(s) changed"));
        }
        for change in outside {
            self.report
                .dangerous
                .push(format!("{what}: code changed outside padding: {change}"));
            outcome.push(format!("DANGEROUS: {change}"));
        }
        target.code = code;
        target.pages = pages;
        outcome.join("; ")
    }

    /// Records a lost target and replaces it.
    fn lose(&mut self, target: &mut Target, what: &str, why: &str, tally: &mut Tally) -> String {
        tally.lost += 1;
        self.report.lost.push(format!(
            "{what}: TARGET LOST (pid {}): {why}; replay the cell's delays with PEEKA_KILL_SEED={} \
             PEEKA_KILL_ROUNDS={} PEEKA_ONLY={} PEEKA_KILL_SHAPES={}",
            target.pid(),
            self.seed,
            self.rounds,
            self.python.id,
            target.shape.name()
        ));
        *target = Target::spawn(self.python, target.shape);
        format!("TARGET LOST: {why}")
    }
}

#[test]
fn killing_the_cli_at_any_moment_of_an_attach_never_harms_the_target() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let seed = seed_from_env("PEEKA_KILL_SEED");
    let rounds = env_number("PEEKA_KILL_ROUNDS", 3);
    let hogs = env_number("PEEKA_KILL_HOGS", 0);
    let workers = env_number("PEEKA_KILL_JOBS", 2);
    let shapes: Vec<Shape> = match env_list("PEEKA_KILL_SHAPES") {
        Some(names) => SHAPES
            .into_iter()
            .filter(|s| names.iter().any(|n| n == s.name()))
            .collect(),
        None => SHAPES.to_vec(),
    };
    let methods_wanted = env_list("PEEKA_KILL_METHODS");
    let verbose = std::env::var("PEEKA_KILL_VERBOSE").is_ok_and(|v| v == "1");
    eprintln!(
        "killed attaches: PEEKA_KILL_SEED={seed} PEEKA_KILL_ROUNDS={rounds} PEEKA_KILL_HOGS={hogs} \
         PEEKA_KILL_JOBS={workers} (profile: {})",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    let _hogs = Hogs::start(hogs);
    let started = Instant::now();
    let mut pythons: Vec<Interpreter> = Vec::new();
    manifest.for_each_interpreter(|python| pythons.push(python.clone()));
    // A job: one interpreter and shape, one target, the cells of each
    // method in turn. `order` numbers the cells (it staggers the catchable
    // signals).
    let mut jobs: Vec<(usize, &Interpreter, Shape, Vec<&'static str>)> = Vec::new();
    for python in &pythons {
        let mut methods = vec!["auto"];
        if has_pep768(python) {
            methods.push("ptrace");
        }
        methods.retain(|m| {
            methods_wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| x == m))
        });
        for &shape in &shapes {
            jobs.push((jobs.len() * 2, python, shape, methods.clone()));
        }
    }
    let next = AtomicUsize::new(0);
    let reports = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                let mut report = Report::default();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some((order, python, shape, methods)) = jobs.get(index) else {
                        break;
                    };
                    let state = state_dir(&format!("killed-{}-{}", python.id, shape.name()));
                    let mut harness = Harness {
                        python,
                        state,
                        rounds,
                        seed,
                        verbose,
                        report: &mut report,
                    };
                    let mut target = Target::spawn(python, *shape);
                    for (index, &method) in methods.iter().enumerate() {
                        harness.cell(order + index, &mut target, method);
                    }
                    drop(target);
                    let _ = fs::remove_dir_all(&harness.state);
                }
                reports.lock().unwrap().push(report);
            });
        }
    });
    let mut report = Report::default();
    for part in reports.into_inner().unwrap() {
        report.cells.extend(part.cells);
        report.lost.extend(part.lost);
        report.dangerous.extend(part.dangerous);
        report.notes.extend(part.notes);
    }
    print_report(&report, started.elapsed(), seed, rounds, hogs);
    assert!(
        report.lost.is_empty(),
        "{} target(s) lost (PEEKA_KILL_SEED={seed}):\n{}",
        report.lost.len(),
        report.lost.join("\n")
    );
    assert!(
        report.dangerous.is_empty(),
        "code changed outside padding (PEEKA_KILL_SEED={seed}):\n{}",
        report.dangerous.join("\n")
    );
}

fn print_report(report: &Report, elapsed: Duration, seed: u64, rounds: usize, hogs: usize) {
    let mut table = String::new();
    table.push_str(
        "| interpreter | shape | method | window ms | rounds (SIGKILL + INT/TERM/HUP) | CLI done first | lost | agent loaded (late) | leftover dirs | stray pages: rounds (pages) | stray code: rounds (bytes) | seconds |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let line = |label: (&str, &str, &str), window: &str, t: &Tally| {
        format!(
            "| {} | {} | {} | {window} | {} ({} + {}) | {} | {} | {} ({}) | {} | {} ({}) | {} ({}) | {:.0} |\n",
            label.0,
            label.1,
            label.2,
            t.rounds,
            t.sigkill,
            t.catchable,
            t.finished_first,
            t.lost,
            t.loaded,
            t.late_loads,
            t.leftover_dirs,
            t.page_rounds,
            t.pages,
            t.code_rounds,
            t.code_bytes,
            t.seconds
        )
    };
    let mut per_interpreter: BTreeMap<(usize, String), Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut first_of: BTreeMap<String, usize> = BTreeMap::new();
    for (key, tally) in &report.cells {
        table.push_str(&line(
            (&key.interpreter, key.shape.name(), key.method),
            &format!("{:.0}", tally.window.as_secs_f64() * 1000.0),
            tally,
        ));
        let order = *first_of.entry(key.interpreter.clone()).or_insert(key.order);
        per_interpreter
            .entry((order, key.interpreter.clone()))
            .or_default()
            .add(tally);
        total.add(tally);
    }
    for ((_, interpreter), tally) in &per_interpreter {
        table.push_str(&line((interpreter, "all", "all"), "", tally));
    }
    table.push_str(&line(("**all**", "all", "all"), "", &total));
    eprintln!(
        "\nkilled attaches: {} rounds ({} SIGKILL, {} SIGINT/SIGTERM/SIGHUP), {} of them interrupted attaches \
         (the others had ended before the signal), in {:.1?}, {} CPU hog(s), {} build, \
         PEEKA_KILL_SEED={seed} PEEKA_KILL_ROUNDS={rounds}\n{table}",
        total.rounds,
        total.sigkill,
        total.catchable,
        total.rounds - total.finished_first,
        elapsed,
        hogs,
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    eprintln!(
        "SIGUSR1 probes: {}, of which {} needed the signal again (see Target::probe)",
        PROBES.load(Ordering::Relaxed),
        PROBES_RESENT.load(Ordering::Relaxed)
    );
    for (title, lines) in [
        ("TARGETS LOST", &report.lost),
        ("CODE CHANGED OUTSIDE PADDING", &report.dangerous),
        ("notes", &report.notes),
    ] {
        if !lines.is_empty() {
            eprintln!("{title} ({}):", lines.len());
            for line in lines.iter() {
                eprintln!("- {line}");
            }
        }
    }
}
