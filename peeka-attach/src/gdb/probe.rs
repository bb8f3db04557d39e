//! Proving that gdb can make the method's inferior calls on this host,
//! before any target is touched.
//!
//! # Why
//!
//! gdb calls a function in a process by saving the thread's registers,
//! setting up the call, letting the thread run until the call returns, and
//! writing the saved registers back. If that last step fails, the thread
//! carries on with the registers the call ended with. A thread that was
//! blocked in a system call (as a server's threads nearly always are:
//! `select()`, a lock, a sleep) then returns to its code with the kernel's
//! internal restart code as the system call's result: CPython raised
//! `OSError: [Errno 514]` from `select()` into the application, and a
//! `threading.Event().wait()` aborted the process ("The futex facility
//! returned an unexpected error code"). gdb 13.1 fails exactly there on
//! CPUs with AMX (Intel's Advanced Matrix Extensions, whose extended
//! register state is larger than it expects): every call ends with
//! `Couldn't write extended state status: Bad address.`, while gdb 18.1
//! works on the same machine. Nothing in gdb's version or the CPU flags
//! tells for sure which gdbs fail, so Peeka finds out by trying.
//!
//! # The probe
//!
//! 1. Start a throwaway process of our own, `sleep 1000`, in its own
//!    process group (a terminal's Ctrl-C does not reach it), traceable by
//!    any process of our uid (`PR_SET_PTRACER_ANY`, for Yama's
//!    `ptrace_scope` 1: gdb is its sibling, not its parent), and wait until
//!    it is blocked in its system call, as a target's threads are.
//! 2. Resolve its C library's `mmap` and `getpid` from the ELF file, as the
//!    method resolves a target's functions.
//! 3. Run gdb on it with the method's command line and the method's first
//!    lines (`set unwindonsignal on`, the signal handling), making the
//!    method's first inferior call exactly (`mmap` of one page through an
//!    explicit cast of its address), then `getpid()`, then detaching.
//! 4. gdb can be used only if every step was seen to work: gdb finished
//!    with status 0 and reported an `mmap` result that is a page address,
//!    `getpid()` returned the process's pid, it detached, and it printed no
//!    complaint about registers; and the process
//!    is intact: still alive after a short pause, neither stopped nor
//!    traced, still blocked in a system call (its `sleep` was restarted, not
//!    failed: `sleep` exits with an error message at once otherwise), and
//!    silent on stderr.
//! 5. Kill the throwaway process.
//!
//! The probe costs one gdb session plus 0.1 s (0.4 s with gdb 13.1, 0.6 s
//! with gdb 18.1, on a 2-core machine). Its verdict is kept for the lifetime of
//! the process ([`check_gdb`]), per gdb executable (its resolved path, and
//! the file's identity, so that an upgrade in place is probed again). A
//! probe that did not finish in time gives no verdict and is not kept.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::debugger_process::{self, Ending, ScratchDir};
use crate::elf::page_size;
use crate::procfs::{MapEntry, ProcStatus};

use super::addresses::{mapped_function, mapped_libc_function};
use super::command_file::{gdb_command, probe_commands, ProbePlan, ProbeReport};
use super::diagnose::NOISE;
use super::INTERRUPT_GRACE;

/// The longest the probe may take, whatever deadline it is given.
pub const PROBE_LIMIT: Duration = Duration::from_secs(20);

/// How long the throwaway process is watched after gdb is gone: one whose
/// system call failed exits at once.
const SETTLE: Duration = Duration::from_millis(100);

/// How long the throwaway process may take to be seen back in its system
/// call after that, on a busy machine.
const BACK_TO_SLEEP: Duration = Duration::from_secs(1);

/// The throwaway process's program and argument.
const SLEEPER: (&str, &str) = ("sleep", "1000");

/// Yama's `prctl` option, and its "any process" value (not in `libc` for
/// every target).
const PR_SET_PTRACER: libc::c_int = 0x5961_6d61;
const PR_SET_PTRACER_ANY: libc::c_ulong = libc::c_ulong::MAX;

/// What the probe found out about one gdb executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GdbCheck {
    /// No such executable: not installed (not in `PATH`), or a path that
    /// does not name an executable file.
    Missing {
        /// The program as given.
        program: PathBuf,
    },
    /// gdb made the method's calls in a process blocked in a system call
    /// and left it intact: the method can use it.
    Usable {
        /// The executable (resolved through `PATH`).
        program: PathBuf,
        /// Its version (`13.1`), when it printed one.
        version: Option<String>,
    },
    /// gdb cannot do what the method needs on this host.
    Unusable(GdbUnusable),
    /// The probe did not finish before its deadline; nothing is known (and
    /// nothing is kept: the next check probes again).
    Inconclusive {
        /// The executable.
        program: PathBuf,
        /// What did not finish.
        why: String,
    },
}

impl GdbCheck {
    /// Whether the gdb method may run this gdb.
    pub fn is_usable(&self) -> bool {
        matches!(self, Self::Usable { .. })
    }
}

/// Why a gdb executable cannot be used by the gdb method on this host, with
/// the evidence. Its `Display` is the whole story: what failed, what gdb
/// said, what happened to the throwaway process, the CPU feature known to
/// cause it, and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GdbUnusable {
    /// The executable.
    pub program: PathBuf,
    /// Its version (`13.1`), when it printed one.
    pub version: Option<String>,
    /// What went wrong.
    pub problem: GdbProblem,
    /// gdb's own message (its error lines), empty when it printed none.
    pub said: String,
    /// What happened to the throwaway process, when it did not come out
    /// intact (`exited with exit status: 1 and printed "..."`).
    pub process_harmed: Option<String>,
    /// A feature of this CPU known to make some gdb versions fail to restore
    /// registers (`AMX`), when the CPU has it.
    pub cpu_feature: Option<&'static str>,
}

/// What went wrong in the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GdbProblem {
    /// gdb could not write the thread's registers back after the call.
    RegistersNotRestored,
    /// The process did not come out of the call intact, although gdb
    /// reported no error.
    ProcessHarmed,
    /// The call failed or did not return what it must.
    CallFailed,
    /// gdb could not attach to a process of our own.
    AttachRefused,
    /// The probe could not be run at all; the reason.
    CannotProbe(String),
}

impl GdbUnusable {
    /// The gdb it is about: `gdb 13.1 (/usr/bin/gdb)`, or the path alone.
    pub fn display_name(&self) -> String {
        match &self.version {
            Some(version) => format!("gdb {version} ({})", self.program.display()),
            None => self.program.display().to_string(),
        }
    }

    /// Whether a target would be harmed, not merely refused, by this gdb.
    fn harms_processes(&self) -> bool {
        matches!(
            self.problem,
            GdbProblem::RegistersNotRestored | GdbProblem::ProcessHarmed
        ) || self.process_harmed.is_some()
    }

    /// What failed, and what gdb said: `it cannot restore a thread's
    /// registers after calling a function in it (gdb said: "...")`.
    pub fn reason(&self) -> String {
        let what = match &self.problem {
            GdbProblem::RegistersNotRestored => "it cannot restore a thread's registers after calling a function in it".to_owned(),
            GdbProblem::ProcessHarmed => "a process blocked in a system call did not survive a function call made by it intact".to_owned(),
            GdbProblem::CallFailed => "a function call made by it in a process of Peeka's own failed".to_owned(),
            GdbProblem::AttachRefused => "it could not attach to a process of Peeka's own".to_owned(),
            GdbProblem::CannotProbe(why) => format!("Peeka could not check that it can call functions in a process: {why}"),
        };
        let said = if self.said.is_empty() {
            String::new()
        } else {
            format!(" (gdb said: {})", one_line(&self.said))
        };
        format!("{what}{said}")
    }

    /// The short story, for a list of methods: `gdb 13.1 (/usr/bin/gdb)
    /// cannot make inferior calls on this host: ` and the
    /// [reason](Self::reason).
    pub fn headline(&self) -> String {
        format!(
            "{} cannot make inferior calls on this host: {}",
            self.display_name(),
            self.reason()
        )
    }

    /// Everything but the fix: the reason, what happened to the throwaway
    /// process, the CPU feature, and what that means for a target.
    pub fn summary(&self) -> String {
        let mut text = self.headline();
        text.push('.');
        if let Some(fate) = &self.process_harmed {
            text.push_str(&format!(
                " The throwaway process Peeka tried it on, blocked in a system call like a target's threads, {fate}."
            ));
        }
        if let (Some(feature), true) = (self.cpu_feature, self.harms_processes()) {
            text.push_str(&format!(
                " This CPU has {feature}, whose extended register state some gdb versions (13.1 among them) cannot write back."
            ));
        }
        if self.harms_processes() {
            text.push_str(" A target would be harmed the same way (a system call it is blocked in fails with an error it never expects, or it aborts), so the gdb method refuses before touching it.");
        } else {
            text.push_str(" The gdb method refuses before touching the target.");
        }
        text
    }

    /// What to do about it.
    pub fn fix(&self) -> String {
        match &self.problem {
            GdbProblem::AttachRefused => "allow this user to trace processes (root, or CAP_SYS_PTRACE; Yama's kernel.yama.ptrace_scope), or use the ptrace method".to_owned(),
            GdbProblem::CannotProbe(_) => "fix what stopped the check (above), or use the ptrace method".to_owned(),
            _ => "use a newer gdb (gdb 18.1 was seen to work on a CPU where gdb 13.1 fails), or the ptrace method, which saves and restores the full register state itself".to_owned(),
        }
    }
}

impl fmt::Display for GdbUnusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Fix: {}.", self.summary(), self.fix())
    }
}

impl std::error::Error for GdbUnusable {}

/// Whether gdb executable `program` (a path, or a name looked up in
/// `PATH`) can make the gdb method's inferior calls on this host.
///
/// The probe starts a throwaway `sleep 1000` of its own, waits until it is
/// blocked in its system call, and has gdb (with the method's command line
/// and first commands) call its `mmap` exactly as an attach does, then
/// `getpid()`, and detach. gdb is [usable](GdbCheck::Usable) only if both
/// calls returned what they must, gdb detached and complained about no
/// registers, and the process is intact afterwards: alive, neither stopped
/// nor traced, still blocked in a system call, silent. It runs at most
/// until `deadline` (and never longer than [`PROBE_LIMIT`]).
///
/// The verdict is kept for the lifetime of the process, per executable;
/// concurrent checks of the same gdb wait for one probe. It never touches
/// any process but the throwaway one.
pub fn check_gdb(program: &Path, deadline: Instant) -> GdbCheck {
    let Some(resolved) = debugger_process::find_program(program) else {
        return GdbCheck::Missing {
            program: program.to_owned(),
        };
    };
    let key = ProgramKey::of(&resolved);
    static VERDICTS: OnceLock<Mutex<HashMap<ProgramKey, GdbCheck>>> = OnceLock::new();
    let mut verdicts = VERDICTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(verdict) = verdicts.get(&key) {
        return verdict.clone();
    }
    let verdict = probe(&resolved, deadline.min(Instant::now() + PROBE_LIMIT));
    if !matches!(verdict, GdbCheck::Inconclusive { .. }) {
        verdicts.insert(key, verdict.clone());
    }
    verdict
}

/// Which gdb a verdict is about: its path (symbolic links resolved) and the
/// file's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ProgramKey {
    path: PathBuf,
    identity: Option<(u64, u64, u64, Option<SystemTime>)>,
}

impl ProgramKey {
    fn of(program: &Path) -> Self {
        let path = fs::canonicalize(program).unwrap_or_else(|_| program.to_owned());
        let identity = fs::metadata(&path)
            .ok()
            .map(|m| (m.dev(), m.ino(), m.len(), m.modified().ok()));
        Self { path, identity }
    }
}

/// The probe itself, for an executable that exists.
fn probe(program: &Path, deadline: Instant) -> GdbCheck {
    let unusable = |problem: GdbProblem| {
        GdbCheck::Unusable(GdbUnusable {
            program: program.to_owned(),
            version: None,
            problem,
            said: String::new(),
            process_harmed: None,
            cpu_feature: cpu_feature(),
        })
    };
    let inconclusive = |why: &str| GdbCheck::Inconclusive {
        program: program.to_owned(),
        why: why.to_owned(),
    };
    let mut sleeper = match Sleeper::start() {
        Ok(sleeper) => sleeper,
        Err(e) => {
            return unusable(GdbProblem::CannotProbe(format!(
                "cannot start `{} {}` to try gdb on: {e}",
                SLEEPER.0, SLEEPER.1
            )))
        }
    };
    match sleeper.wait_blocked(deadline) {
        Blocked::Yes => {}
        Blocked::Ended(fate) => {
            return unusable(GdbProblem::CannotProbe(format!(
                "`{} {}`, started to try gdb on, {fate} by itself",
                SLEEPER.0, SLEEPER.1
            )))
        }
        Blocked::NotYet => {
            return inconclusive(
                "the throwaway process did not reach its system call before the deadline",
            )
        }
    }
    let pid = sleeper.pid();
    let (Some(mmap), Some(getpid)) = (sleeper.function("mmap"), sleeper.function("getpid")) else {
        return unusable(GdbProblem::CannotProbe(format!(
            "`{}` maps no C library that defines mmap and getpid",
            SLEEPER.0
        )));
    };
    let scratch = match ScratchDir::create("gdb-probe") {
        Ok(scratch) => scratch,
        Err(e) => {
            return unusable(GdbProblem::CannotProbe(format!(
                "cannot create a scratch directory in {}: {e}",
                std::env::temp_dir().display()
            )))
        }
    };
    let plan = ProbePlan { pid, mmap, getpid };
    let commands = match scratch.write("probe.gdb", probe_commands(&plan).as_bytes()) {
        Ok(path) => path,
        Err(e) => {
            return unusable(GdbProblem::CannotProbe(format!(
                "cannot write gdb's command file: {e}"
            )))
        }
    };
    let command = gdb_command(program, pid, scratch.path(), &commands);
    let run = match debugger_process::run(command, deadline, INTERRUPT_GRACE) {
        Ok(run) => run,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return GdbCheck::Missing {
                program: program.to_owned(),
            }
        }
        Err(e) => return unusable(GdbProblem::CannotProbe(format!("cannot run gdb: {e}"))),
    };
    drop(scratch);
    let report = ProbeReport::parse(&run.stdout);
    let status = match run.ending {
        Ending::Finished(status) => status,
        Ending::Interrupted(_) | Ending::Killed => {
            return inconclusive("gdb did not finish trying a function call before the deadline")
        }
    };
    std::thread::sleep(SETTLE);
    let process_harmed = sleeper.harm();
    let said = gdb_said(&run.stderr);
    let expected_pid = i64::from(pid);
    let page = page_size();
    let worked = status.success()
        && report
            .buffer
            .is_some_and(|b| b != 0 && b != u64::MAX && b % page == 0)
        && report.pid == Some(expected_pid)
        && report.detached
        && !mentions_registers(&run.stderr);
    if worked && process_harmed.is_none() {
        return GdbCheck::Usable {
            program: program.to_owned(),
            version: report.version,
        };
    }
    let problem = if run.stderr.contains("ptrace: Operation not permitted")
        || run.stderr.contains("Could not attach to process")
    {
        GdbProblem::AttachRefused
    } else if mentions_registers(&run.stderr) {
        GdbProblem::RegistersNotRestored
    } else if worked {
        GdbProblem::ProcessHarmed
    } else {
        GdbProblem::CallFailed
    };
    let said = if said.is_empty() && !worked {
        format!(
            "nothing on stderr; it exited with {status}, and its report was {}",
            report_summary(&report, expected_pid)
        )
    } else {
        said
    };
    GdbCheck::Unusable(GdbUnusable {
        program: program.to_owned(),
        version: report.version,
        problem,
        said,
        process_harmed,
        cpu_feature: cpu_feature(),
    })
}

/// Whether gdb complained about a thread's registers (`Couldn't write
/// extended state status: Bad address.`, `Couldn't get registers: ...`).
fn mentions_registers(stderr: &str) -> bool {
    stderr.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        (line.contains("couldn't") || line.contains("could not") || line.contains("cannot"))
            && (line.contains("register") || line.contains("extended state"))
    })
}

/// gdb's error lines: what follows `Error in sourced command file:`, else
/// whatever it printed that is not known noise.
fn gdb_said(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(at) = lines
        .iter()
        .position(|l| l.contains("Error in sourced command file:"))
    {
        let after: Vec<&str> = lines[at + 1..]
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .take(6)
            .collect();
        if !after.is_empty() {
            return after.join("\n");
        }
    }
    debugger_process::relevant_lines(stderr, NOISE, 6)
}

/// Several lines as one, for a sentence.
fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("\"{}\"", joined.join(" "))
}

/// What the probe's report lacked, for a message.
fn report_summary(report: &ProbeReport, expected_pid: i64) -> String {
    format!(
        "mmap returned {}, getpid returned {} (expected {expected_pid}), {}",
        report
            .buffer
            .map_or_else(|| "nothing".to_owned(), |b| format!("{b:#x}")),
        report
            .pid
            .map_or_else(|| "nothing".to_owned(), |p| p.to_string()),
        if report.detached {
            "detached"
        } else {
            "no detach"
        }
    )
}

/// `Some("AMX")` when this CPU has AMX (`amx_tile` in `/proc/cpuinfo`).
fn cpu_feature() -> Option<&'static str> {
    static FEATURE: OnceLock<Option<&'static str>> = OnceLock::new();
    *FEATURE.get_or_init(|| {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let has_amx = cpuinfo
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|flag| flag == "amx_tile"));
        has_amx.then_some("AMX (Advanced Matrix Extensions)")
    })
}

/// Whether the throwaway process reached its system call.
enum Blocked {
    Yes,
    /// It ended (or cannot be seen); how.
    Ended(String),
    NotYet,
}

/// The throwaway process, killed and reaped when dropped.
#[derive(Debug)]
struct Sleeper {
    child: Child,
}

impl Sleeper {
    fn start() -> io::Result<Self> {
        let mut command = Command::new(SLEEPER.0);
        command
            .arg(SLEEPER.1)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("LC_ALL", "C")
            .process_group(0);
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl, which is async-signal-safe; its result is ignored
        // (without Yama the option does not exist, and is not needed).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
                Ok(())
            });
        }
        Ok(Self {
            child: command.spawn()?,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the process sleeps in a system call.
    fn wait_blocked(&mut self, deadline: Instant) -> Blocked {
        loop {
            if let Some(fate) = self.ended() {
                return Blocked::Ended(fate);
            }
            if self.in_system_call() {
                return Blocked::Yes;
            }
            if Instant::now() >= deadline {
                return Blocked::NotYet;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// How it ended, if it did.
    fn ended(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => {
                let stderr = self.read_stderr();
                Some(if stderr.is_empty() {
                    format!("exited ({status})")
                } else {
                    format!("exited ({status}) and printed {}", one_line(&stderr))
                })
            }
            Ok(None) => None,
            Err(e) => Some(format!("could not be watched: {e}")),
        }
    }

    /// Whether it sleeps (`S`) with a system call in progress.
    fn in_system_call(&self) -> bool {
        let pid = self.pid();
        let sleeping = ProcStatus::read(pid).is_ok_and(|s| s.state == 'S');
        let syscall = fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
        let in_call = syscall
            .split_whitespace()
            .next()
            .is_some_and(|n| n.parse::<i64>().is_ok_and(|n| n >= 0));
        sleeping && in_call
    }

    /// The run-time address of a C library function in it: from the C
    /// library it maps, else from its executable (a static build).
    fn function(&self, name: &str) -> Option<u64> {
        let pid = self.pid();
        let maps = MapEntry::read_all(pid).ok()?;
        mapped_libc_function(pid, &maps, name).or_else(|| {
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            mapped_function(pid, &maps, &exe, name)
        })
    }

    /// What gdb did to it, or `None` when it is intact: alive, neither
    /// stopped nor traced, still in its system call, and silent.
    fn harm(&mut self) -> Option<String> {
        // A busy machine may take a moment to let it back into its sleep.
        let until = Instant::now() + BACK_TO_SLEEP;
        let harm = loop {
            if let Some(fate) = self.ended() {
                return Some(fate);
            }
            let status = ProcStatus::read(self.pid()).unwrap_or_default();
            if matches!(status.state, 'T' | 't') {
                break Some("was left stopped".to_owned());
            }
            if status.tracer_pid != 0 {
                break Some(format!("was left traced by process {}", status.tracer_pid));
            }
            if self.in_system_call() {
                break None;
            }
            if Instant::now() >= until {
                break Some("was no longer blocked in its system call".to_owned());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.kill();
        let stderr = self.read_stderr();
        match (harm, stderr.is_empty()) {
            (None, true) => None,
            (None, false) => Some(format!("printed {}", one_line(&stderr))),
            (Some(harm), true) => Some(harm),
            (Some(harm), false) => Some(format!("{harm} and printed {}", one_line(&stderr))),
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its stderr so far (at most 4 KiB); call once it has ended.
    fn read_stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(stderr) = self.child.stderr.take() {
            let _ = stderr.take(4096).read_to_string(&mut text);
        }
        text.trim().to_owned()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unusable(problem: GdbProblem) -> GdbUnusable {
        GdbUnusable {
            program: PathBuf::from("/usr/bin/gdb"),
            version: Some("13.1".into()),
            problem,
            said: "Couldn't write extended state status: Bad address.".into(),
            process_harmed: Some("exited (exit status: 1) and printed \"sleep: cannot read realtime clock: Unknown error 516\"".into()),
            cpu_feature: Some("AMX (Advanced Matrix Extensions)"),
        }
    }

    #[test]
    fn the_message_says_what_failed_what_gdb_said_and_the_fix() {
        let text = unusable(GdbProblem::RegistersNotRestored).to_string();
        for part in [
            "gdb 13.1 (/usr/bin/gdb) cannot make inferior calls on this host",
            "cannot restore a thread's registers",
            "gdb said: \"Couldn't write extended state status: Bad address.\"",
            "Unknown error 516",
            "This CPU has AMX",
            "refuses before touching it",
            "Fix: use a newer gdb",
            "or the ptrace method",
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        // Facts, not command-line flags.
        assert!(!text.contains("--method"), "{text}");
    }

    #[test]
    fn a_refused_attach_names_permissions_and_not_the_cpu() {
        let mut refused = unusable(GdbProblem::AttachRefused);
        refused.process_harmed = None;
        refused.said = "ptrace: Operation not permitted.".into();
        let text = refused.to_string();
        assert!(text.contains("could not attach"), "{text}");
        assert!(!text.contains("AMX"), "{text}");
        assert!(text.contains("CAP_SYS_PTRACE"), "{text}");
    }

    #[test]
    fn register_complaints_are_recognised() {
        assert!(mentions_registers(
            "warning: x\ncmds.gdb:5: Error in sourced command file:\nCouldn't write extended state status: Bad address.\n"
        ));
        assert!(mentions_registers(
            "Couldn't get registers: No such process.\n"
        ));
        assert!(!mentions_registers(
            "warning: Unable to find libthread_db matching inferior's thread library, thread debugging will not be available.\n"
        ));
    }

    #[test]
    fn gdb_said_keeps_the_error_after_the_command_file_line() {
        let stderr = "warning: Unable to find libthread_db matching inferior's thread library, thread debugging will not be available.\n/tmp/x/probe.gdb:6: Error in sourced command file:\nCouldn't write extended state status: Bad address.\n";
        assert_eq!(
            gdb_said(stderr),
            "Couldn't write extended state status: Bad address."
        );
        assert_eq!(
            gdb_said("warning: Unable to find libthread_db matching inferior's thread library\n"),
            ""
        );
    }

    #[test]
    fn a_missing_gdb_is_missing_without_a_probe() {
        let check = check_gdb(
            Path::new("/nonexistent/peeka/gdb"),
            Instant::now() + Duration::from_secs(1),
        );
        assert!(matches!(check, GdbCheck::Missing { .. }), "{check:?}");
        assert!(!check.is_usable());
    }

    /// The probe on this host's gdb, when there is one: whatever the
    /// verdict, it is kept, and the throwaway process is gone.
    #[test]
    fn the_verdict_on_this_hosts_gdb_is_kept() {
        let deadline = Instant::now() + PROBE_LIMIT;
        let first = check_gdb(Path::new("gdb"), deadline);
        if matches!(first, GdbCheck::Missing { .. }) {
            return;
        }
        let started = Instant::now();
        let second = check_gdb(Path::new("gdb"), deadline);
        assert_eq!(first, second);
        assert!(started.elapsed() < Duration::from_millis(100));
        if let GdbCheck::Unusable(unusable) = &first {
            assert!(!unusable.to_string().is_empty());
        }
    }
}
