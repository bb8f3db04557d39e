//! Shared pieces of the attach integration tests: the marker agent and the
//! target scripts, starting targets, reading `/proc` about them, and the
//! checks every attach test makes.
#![allow(dead_code)] // each test file uses its own subset
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use peeka_attach::elf::ElfFile;
use peeka_attach::procfs::MapEntry;
use peeka_attach::{
    AgentFiles, AttachError, BootstrapStatus, InjectRequest, Injector, Staging, Target, Timeline,
};
use peeka_testkit::{Interpreter, TargetProcess};

/// The test agent: its entry function appends one line to `runs.txt` in
/// the private directory, so a test can count how often it was loaded.
pub(crate) fn marker_agent() -> AgentFiles {
    AgentFiles {
        files: vec![(
            "marker_agent.py".into(),
            include_bytes!("../agents/marker_agent.py").to_vec(),
        )],
        entry_file: "marker_agent.py".into(),
        entry_function: "start".into(),
    }
}

/// How many times the marker agent ran in this staging directory.
pub(crate) fn marker_runs(staging: &Staging) -> usize {
    std::fs::read_to_string(staging.host_dir.join("runs.txt"))
        .map(|text| text.lines().count())
        .unwrap_or(0)
}

/// A target script from `tests/targets/`.
pub(crate) fn target_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/targets")
        .join(name)
}

/// The four target shapes every attach method is tested against.
pub(crate) const TARGETS: [&str; 4] = ["busy.py", "sleeper.py", "blocked_main.py", "threads20.py"];

/// Starts target script `script` (from `tests/targets/`) with `python`,
/// with `args` after the script and `env` added to its environment.
///
/// # Panics
/// When the target does not start or announce `ready`.
pub(crate) fn spawn_target_with(
    python: &Interpreter,
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> TargetProcess {
    TargetProcess::spawn(python, &target_script(script), args, env)
        .unwrap_or_else(|e| panic!("{} {script}: cannot start the target: {e}", python.id))
}

/// Starts target script `script` (from `tests/targets/`) with `python`.
///
/// # Panics
/// As [`spawn_target_with`].
pub(crate) fn spawn_target(python: &Interpreter, script: &str) -> TargetProcess {
    spawn_target_with(python, script, &[], &[])
}

/// A private directory that is removed when the test ends, even when it
/// fails.
pub(crate) struct StagingDir(pub(crate) Staging);

impl StagingDir {
    /// Stages the marker agent for `target`.
    pub(crate) fn marker(target: &Target) -> Self {
        Self(Staging::prepare(target, &marker_agent()).unwrap())
    }
}

impl std::ops::Deref for StagingDir {
    type Target = Staging;

    fn deref(&self) -> &Staging {
        &self.0
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        self.0.remove_all();
    }
}

/// Starts target script `script` with `python` and waits until its main
/// thread is parked in system call `number` (see
/// [`wait_until_main_blocks_in`]).
///
/// # Panics
/// As [`spawn_target`], or when the main thread never blocks there.
pub(crate) fn spawn_parked_target(
    python: &Interpreter,
    script: &str,
    number: u32,
) -> TargetProcess {
    let process = spawn_target(python, script);
    wait_until_main_blocks_in(process.pid(), number);
    process
}

/// Starts `sleeper.py` with `python` and `PYTHON_DISABLE_REMOTE_DEBUG=1`.
///
/// # Panics
/// As [`spawn_target_with`].
pub(crate) fn spawn_with_remote_debug_disabled(python: &Interpreter) -> TargetProcess {
    spawn_target_with(
        python,
        "sleeper.py",
        &[],
        &[("PYTHON_DISABLE_REMOTE_DEBUG", "1")],
    )
}

/// A started target ready for an injector: inspected, the marker agent
/// staged for it and, when asked for, its patchable code saved. `what`
/// names it in every failure message.
pub(crate) struct PreparedTarget {
    // Fields drop in this order: the staging directory is removed while
    // the target still runs, as when these were locals of the test.
    /// The staged marker agent (removed on drop).
    pub(crate) staging: StagingDir,
    /// The patchable code before the attach, if it was saved.
    code_before: Option<Vec<(String, u64, Vec<u8>)>>,
    /// The inspected target.
    pub(crate) target: Target,
    /// The running target process.
    pub(crate) process: TargetProcess,
    /// How failure messages name this target.
    pub(crate) what: String,
}

impl PreparedTarget {
    /// Inspects the started `process` and stages the marker agent for it.
    ///
    /// # Panics
    /// When the target cannot be inspected or staged for.
    pub(crate) fn stage(process: TargetProcess, what: impl Into<String>) -> Self {
        Self::prepare(process, what.into(), false)
    }

    /// As [`PreparedTarget::stage`], and saves the patchable code first,
    /// for [`PreparedTarget::assert_code_restored`].
    pub(crate) fn stage_saving_code(process: TargetProcess, what: impl Into<String>) -> Self {
        Self::prepare(process, what.into(), true)
    }

    /// Starts `script` with `python`, waits until its main thread is parked
    /// in system call `number` (see [`spawn_parked_target`]), then stages
    /// as [`PreparedTarget::stage_saving_code`].
    pub(crate) fn parked_saving_code(
        python: &Interpreter,
        script: &str,
        number: u32,
        what: impl Into<String>,
    ) -> Self {
        Self::stage_saving_code(spawn_parked_target(python, script, number), what)
    }

    fn prepare(process: TargetProcess, what: String, save_code: bool) -> Self {
        let target = Target::inspect(process.pid()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let code_before = save_code.then(|| patchable_code(&target));
        let staging = StagingDir::marker(&target);
        Self {
            staging,
            code_before,
            target,
            process,
            what,
        }
    }

    /// The target's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// An inject request for this target and its staging, giving up at
    /// `deadline`.
    pub(crate) fn request(&self, deadline: Instant) -> InjectRequest<'_> {
        InjectRequest {
            target: &self.target,
            staging: &self.staging,
            deadline,
        }
    }

    /// Runs `injector` with a deadline `within` from now; returns its
    /// outcome and how long `inject()` took.
    pub(crate) fn inject_timed(
        &self,
        injector: &impl Injector,
        within: Duration,
    ) -> (Result<Timeline, AttachError>, Duration) {
        let started = Instant::now();
        let result = injector.inject(&self.request(started + within));
        (result, started.elapsed())
    }

    /// As [`PreparedTarget::inject_timed`] for an attach that must succeed
    /// and be claimed by the bootstrap by the time `inject()` returns.
    pub(crate) fn attach_claimed(
        &self,
        injector: &impl Injector,
        within: Duration,
    ) -> (Timeline, Duration) {
        let what = &self.what;
        let (result, took) = self.inject_timed(injector, within);
        let timeline = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            self.staging.claimed(),
            "{what}: inject returned before the bootstrap claimed the attach"
        );
        (timeline, took)
    }

    /// [`assert_loaded_exactly_once`] for this target's staging.
    pub(crate) fn assert_loaded_exactly_once(&self, status_wait: Duration, settle: Duration) {
        assert_loaded_exactly_once(&self.staging, status_wait, settle, &self.what);
    }

    /// How many times the marker agent ran for this target.
    pub(crate) fn marker_runs(&self) -> usize {
        marker_runs(&self.staging)
    }

    /// [`assert_code_restored`] against the code saved before the attach.
    ///
    /// # Panics
    /// Also when the code was not saved (see
    /// [`PreparedTarget::stage_saving_code`]).
    pub(crate) fn assert_code_restored(&self) {
        let before = self
            .code_before
            .as_deref()
            .unwrap_or_else(|| panic!("{}: the code was not saved", self.what));
        assert_code_restored(&self.target, before, &self.what);
    }

    /// After a failed attach: the target is traced by nobody and its
    /// patchable code is back.
    pub(crate) fn assert_detached_and_restored(&self) {
        assert_eq!(
            tracer_of(self.pid()),
            0,
            "{}: the target is still traced",
            self.what
        );
        self.assert_code_restored();
    }

    /// The target printed nothing on stderr.
    pub(crate) fn assert_quiet(&mut self) {
        assert_eq!(
            self.process.stderr(),
            "",
            "{}: the target printed errors",
            self.what
        );
    }
}

/// What every successful attach promises: the bootstrap reports the agent
/// loaded within `status_wait` and, after `settle` (time for a second run
/// to show, had something been left to fire), the agent ran exactly once.
pub(crate) fn assert_loaded_exactly_once(
    staging: &Staging,
    status_wait: Duration,
    settle: Duration,
    what: &str,
) {
    let status = staging.wait_status(Instant::now() + status_wait);
    assert!(
        matches!(status, Some(BootstrapStatus::Loaded(_))),
        "{what}: {status:?}"
    );
    std::thread::sleep(settle);
    assert_eq!(
        marker_runs(staging),
        1,
        "{what}: the agent must load exactly once"
    );
}

/// The target is still running and printed nothing on stderr.
pub(crate) fn assert_alive_and_quiet(process: &mut TargetProcess, what: &str) {
    assert!(process.is_alive(), "{what}: the target died");
    assert_eq!(process.stderr(), "", "{what}: the target printed errors");
}

/// The target runs on its own: alive, traced by nobody, not stopped.
pub(crate) fn assert_running_untraced(process: &mut TargetProcess, what: &str) {
    assert!(process.is_alive(), "{what}: the target died");
    // A tracer may be on its way out (a detach in flight): give it a moment.
    let pid = process.pid();
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while tracer_of(pid) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert_eq!(
        tracer_of(pid),
        0,
        "{what}: the target is still traced: {status}"
    );
    assert!(
        !matches!(process.state(), Some('T' | 't')),
        "{what}: the target is left stopped"
    );
}

/// The thread that traces `pid` (0 when none).
pub(crate) fn tracer_of(pid: u32) -> u32 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("TracerPid:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends `signal` to the main thread of `pid` (a process-directed signal
/// may land on any thread, and only a signal to the main thread wakes it
/// from `Event.wait()` to run the Python handler). Whether it was sent.
pub(crate) fn signal_main_thread(pid: u32, signal: i32) -> bool {
    // SAFETY: tgkill takes three integers.
    let result = unsafe {
        libc::syscall(
            libc::SYS_tgkill,
            pid as libc::pid_t,
            pid as libc::pid_t,
            signal,
        )
    };
    result == 0
}

/// A measure of work done by every thread of `pid`: CPU time in clock ticks
/// plus context switches. It grows while any thread runs or wakes up.
pub(crate) fn work_done(pid: u32) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    let mut total = 0;
    for task in tasks.flatten() {
        let dir = task.path();
        if let Ok(stat) = fs::read_to_string(dir.join("stat")) {
            // Fields after the command name, which is in parentheses.
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            // utime and stime are fields 14 and 15 (1-based); 12 and 13 here.
            for index in [11, 12] {
                total += fields
                    .get(index)
                    .and_then(|f| f.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
        if let Ok(status) = fs::read_to_string(dir.join("status")) {
            for line in status.lines() {
                if let Some(value) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += value.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    total
}

/// Whether `pid` keeps doing work for a short while.
pub(crate) fn keeps_working(pid: u32) -> bool {
    let before = work_done(pid);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        if work_done(pid) > before {
            return true;
        }
    }
    false
}

/// The code bytes a backend may write into, with what is there now: the
/// entry of `PyEval_SaveThread` and the executable's ELF entry point
/// (where earlier versions put breakpoints and scratch code), and the
/// padding past the end of every executable segment of every mapped file
/// (where the ptrace method's system-call trampoline goes).
pub(crate) fn patchable_code(target: &Target) -> Vec<(String, u64, Vec<u8>)> {
    let mut places = Vec::new();
    if let Some(address) = target.python.symbol_address("PyEval_SaveThread") {
        places.push(("PyEval_SaveThread".to_owned(), address, 16));
    }
    let maps = MapEntry::read_all(target.pid).unwrap();
    let page = peeka_attach::elf::page_size();
    let mut files: Vec<&std::path::Path> = maps
        .iter()
        .filter(|m| m.exec && m.is_file())
        .filter_map(|m| m.path.as_deref())
        .collect();
    files.dedup();
    for file in files {
        let mappings: Vec<&MapEntry> = maps
            .iter()
            .filter(|m| m.path.as_deref() == Some(file))
            .collect();
        let Ok(elf) = ElfFile::open_mapped(target.pid, mappings[0]) else {
            continue;
        };
        let Some(bias) = elf.load_bias(&mappings) else {
            continue;
        };
        for (address, size) in elf.executable_segments() {
            let end = bias.apply(address + size);
            let page_end = (end + page - 1) & !(page - 1);
            if page_end > end
                && mappings
                    .iter()
                    .any(|m| m.exec && m.start <= end && page_end <= m.end)
            {
                places.push((
                    format!("the padding after {}", file.display()),
                    end,
                    (page_end - end) as usize,
                ));
            }
        }
    }
    let exe_maps: Vec<&MapEntry> = maps
        .iter()
        .filter(|m| m.path.as_deref() == Some(target.exe.as_path()))
        .collect();
    let elf = ElfFile::open_mapped(target.pid, exe_maps[0]).unwrap();
    let bias = elf.load_bias(&exe_maps).unwrap();
    places.push((
        "the executable's entry point".to_owned(),
        bias.apply(elf.entry()),
        16,
    ));
    places
        .into_iter()
        .map(|(name, address, len)| (name, address, target.memory.read_vec(address, len).unwrap()))
        .collect()
}

/// Asserts that the patchable code is back to `before`.
pub(crate) fn assert_code_restored(target: &Target, before: &[(String, u64, Vec<u8>)], what: &str) {
    for (name, address, bytes) in before {
        let now = target.memory.read_vec(*address, bytes.len()).unwrap();
        assert_eq!(
            &now, bytes,
            "{what}: the code at {name} ({address:#x}) was not restored"
        );
    }
}

/// Anonymous mappings the target cannot write (what runner pages look
/// like: readable, and executable for the ptrace method's programs).
pub(crate) fn read_only_anonymous_pages(pid: u32) -> Vec<(u64, u64)> {
    MapEntry::read_all(pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.read && !m.write && m.path.is_none())
        .map(|m| (m.start, m.end))
        .collect()
}

/// The read-only anonymous pages of `pid` (see [`read_only_anonymous_pages`])
/// that are not among `before`: what an attach left mapped since `before`
/// was taken.
pub(crate) fn pages_mapped_since(pid: u32, before: &[(u64, u64)]) -> Vec<(u64, u64)> {
    read_only_anonymous_pages(pid)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect()
}

/// The names of the steps of an attach, in order.
pub(crate) fn step_names(timeline: &Timeline) -> Vec<&str> {
    timeline.steps.iter().map(|s| s.name.as_str()).collect()
}

/// The smallest, median and largest of some durations.
pub(crate) fn min_median_max(mut values: Vec<Duration>) -> (Duration, Duration, Duration) {
    values.sort();
    let at = |index: usize| values.get(index).copied().unwrap_or_default();
    (
        at(0),
        at(values.len() / 2),
        at(values.len().saturating_sub(1)),
    )
}

/// Waits until the main thread of `pid` has been blocked in system call
/// `number` for a while (the target reached its parking spot, past the
/// start-up code that runs after it printed `ready`).
pub(crate) fn wait_until_main_blocks_in(pid: u32, number: u32) {
    let prefix = format!("{number} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut settled = 0;
    while settled < 3 {
        assert!(
            Instant::now() < deadline,
            "process {pid} never blocked in system call {number}"
        );
        let now = fs::read_to_string(format!("/proc/{pid}/task/{pid}/syscall")).unwrap_or_default();
        settled = if now.starts_with(&prefix) {
            settled + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The trimmed contents of a report file the target writes, once it is
/// there and not empty; `None` if that does not happen within `timeout`.
pub(crate) fn wait_for_report(path: &Path, timeout: Duration) -> Option<String> {
    let read = || {
        fs::read_to_string(path)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    };
    let deadline = Instant::now() + timeout;
    while read().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    read()
}

/// Checks the `children.txt` report of `ptrace_forker.py` (`OK BAD`: how
/// many forked children exited normally, how many died): none died, and at
/// least 10 were forked. Returns how many exited normally.
pub(crate) fn assert_forked_children_survived(
    counts: &str,
    process: &TargetProcess,
    what: &str,
) -> u32 {
    let (ok, bad) = counts.trim().split_once(' ').unwrap();
    let (ok, bad): (u32, u32) = (ok.parse().unwrap(), bad.parse().unwrap());
    assert_eq!(bad, 0, "{what}: children died: {}", process.stderr());
    assert!(
        ok >= 10,
        "{what}: only {ok} children were forked during the attach"
    );
    ok
}
