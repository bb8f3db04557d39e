//! Running a debugger (gdb, lldb) in batch mode under a deadline, for the
//! `gdb` and `lldb` methods.
//!
//! The debugger runs in its own process group with its output captured. At
//! the deadline it first gets `SIGINT`, which makes it abandon an injected
//! call that hangs, restore the thread's context and detach; only if it is
//! still running after a grace period is it killed. The caller then checks
//! that the target is not left stopped ([`resume_if_stopped`]).
//! [`run_supervised`] lets the caller decide when to interrupt instead of a
//! fixed deadline (the gdb method's breakpoint route stops a wait early, but
//! never an injected call it knows has started).
//!
//! [`ScratchDir`] is the private directory for the files a debugger reads
//! (command script, bytes to write into the target); it is removed when
//! dropped.

use std::fs::{self, DirBuilder};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// At most this much of each output stream is kept (the rest is drained).
const MAX_CAPTURE: usize = 1 << 20;

static NEXT_SCRATCH: AtomicU32 = AtomicU32::new(0);

/// A private (mode 0700) directory in our temporary directory, removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates a fresh directory named `peeka-<label>-...`. Debuggers parse
    /// file names in their commands, so when `$TMPDIR` holds characters
    /// other than `[A-Za-z0-9/._-]`, `/tmp` is used instead.
    pub(crate) fn create(label: &str) -> io::Result<Self> {
        let mut base = std::env::temp_dir();
        if !is_plain_path(&base) {
            base = PathBuf::from("/tmp");
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last_error = io::Error::from(io::ErrorKind::AlreadyExists);
        for _ in 0..16 {
            let n = NEXT_SCRATCH.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!(
                "peeka-{label}-{}-{n}-{nanos:x}",
                std::process::id()
            ));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = e,
                Err(e) => return Err(e),
            }
        }
        Err(last_error)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a new file `name` in the directory and returns its path.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> io::Result<PathBuf> {
        let path = self.path.join(name);
        fs::write(&path, contents)?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The executable file `program` names: a path (containing `/`) as it
/// is, a bare name looked up in `PATH` (as `Command` would run it). `None`
/// when there is no such executable file.
pub(crate) fn find_program(program: &Path) -> Option<PathBuf> {
    let executable = |candidate: &Path| {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.components().count() != 1 || program.is_absolute() {
        return executable(program).then(|| program.to_owned());
    }
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

/// Whether a path is made only of `[A-Za-z0-9/._-]`, so that it can be
/// written into a debugger command without quoting.
pub(crate) fn is_plain_path(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    })
}

/// How the debugger process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It finished on its own.
    Finished(ExitStatus),
    /// It got `SIGINT` (at the deadline, or when its supervisor asked) and
    /// then finished.
    Interrupted(ExitStatus),
    /// It ignored `SIGINT` for the grace period and was killed.
    Killed,
}

/// What a debugger run produced.
#[derive(Debug)]
pub(crate) struct DebuggerRun {
    /// How it ended.
    pub(crate) ending: Ending,
    /// Its standard output (lossily decoded, at most [`MAX_CAPTURE`] bytes).
    pub(crate) stdout: String,
    /// Its standard error (likewise).
    pub(crate) stderr: String,
    /// How long it ran.
    pub(crate) elapsed: Duration,
}

/// What the supervisor of a [`run_supervised`] run asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Let the debugger run on.
    Wait,
    /// Send it `SIGINT` now (and kill it if it is still running after the
    /// grace period).
    Interrupt,
}

/// How often a supervisor is consulted, at most.
const SUPERVISE_EVERY: Duration = Duration::from_millis(5);

/// Runs `command` (stdin from `/dev/null`, output captured, in its own
/// process group, C locale) until it exits or `deadline` passes; then sends
/// it `SIGINT`, waits up to `grace`, and kills it.
///
/// # Errors
/// The error of spawning it (`NotFound` when the program is not installed).
pub(crate) fn run(command: Command, deadline: Instant, grace: Duration) -> io::Result<DebuggerRun> {
    run_supervised(command, grace, |now| {
        if now >= deadline {
            Verdict::Interrupt
        } else {
            Verdict::Wait
        }
    })
}

/// Like [`run`], but `supervise` decides when to interrupt: it is called
/// with the current time every few milliseconds while the debugger runs,
/// until it answers [`Verdict::Interrupt`]. The supervisor is responsible
/// for answering so by some deadline; after that the debugger gets `grace`
/// to finish before it is killed.
///
/// # Errors
/// The error of spawning it (`NotFound` when the program is not installed).
pub(crate) fn run_supervised(
    mut command: Command,
    grace: Duration,
    mut supervise: impl FnMut(Instant) -> Verdict,
) -> io::Result<DebuggerRun> {
    let started = Instant::now();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Messages are parsed: keep them in English.
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .env_remove("LANGUAGE")
        // A terminal's Ctrl-C must not interrupt it half-way: it stops only
        // when we say so, and it always finishes its detach.
        .process_group(0);
    // SIGINT is how it is asked to stop: it must not inherit it ignored (a
    // peeka started in the background, under nohup or by a service manager
    // has it ignored, and an ignored signal stays ignored across exec), or
    // the only way left to stop it would be killing it mid-injection.
    // SAFETY: signal(2) is async-signal-safe; the closure touches nothing else.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let stdout = capture(child.stdout.take());
    let stderr = capture(child.stderr.take());

    let ending = match wait_supervised(&mut child, &mut supervise)? {
        Some(status) => Ending::Finished(status),
        None => {
            interrupt(&child);
            match wait_until(&mut child, Instant::now() + grace)? {
                Some(status) => Ending::Interrupted(status),
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    Ending::Killed
                }
            }
        }
    };
    Ok(DebuggerRun {
        ending,
        stdout: join_capture(stdout),
        stderr: join_capture(stderr),
        elapsed: started.elapsed(),
    })
}

/// Polls `child` until it exits (its status) or `supervise` asks for an
/// interrupt (`None`).
fn wait_supervised(
    child: &mut Child,
    supervise: &mut impl FnMut(Instant) -> Verdict,
) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if supervise(Instant::now()) == Verdict::Interrupt {
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(SUPERVISE_EVERY);
    }
}

/// Polls `child` until it exits (its status) or `deadline` passes (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Sends `SIGINT` to the child (only to it: it is the process we started).
fn interrupt(child: &Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill has no memory-safety preconditions; the pid is our
        // own unreaped child, so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGINT) };
    }
}

fn capture(stream: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    let mut stream = stream?;
    Some(std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let room = MAX_CAPTURE.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        kept
    }))
}

fn join_capture(handle: Option<JoinHandle<Vec<u8>>>) -> String {
    handle
        .and_then(|h| h.join().ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

/// Whether process `pid` still exists (and, on Linux, is not a zombie).
pub(crate) fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        crate::procfs::ProcStatus::read(pid).is_ok_and(|status| !status.is_zombie())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks that the process exists.
        let result = unsafe { libc::kill(pid, 0) };
        result == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// Whether any thread of process `pid` is in a job-control stop (`T`).
#[cfg(target_os = "linux")]
pub(crate) fn any_thread_stopped(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses
            // and may itself contain ") ".
            stat.rfind(") ")
                .and_then(|at| stat[at + 2..].chars().next())
                .is_some_and(|state| state == 'T')
        })
    })
}

/// Makes sure a debugger left no thread of `pid` stopped: a debugger that
/// was killed (or an lldb that "detached" badly) can leave the process in a
/// job-control stop. Sends `SIGCONT` when `always` is set, or (on Linux,
/// where the state is visible) when a stopped thread is seen within
/// `settle` (a tracee released by a dying tracer may take a moment to show
/// its stop; zero means one look). Returns whether `SIGCONT` was sent.
pub(crate) fn resume_if_stopped(pid: u32, always: bool, settle: Duration) -> bool {
    #[cfg(target_os = "linux")]
    let stopped = always || {
        let until = Instant::now() + settle;
        loop {
            if any_thread_stopped(pid) {
                break true;
            }
            if Instant::now() >= until {
                break false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    #[cfg(not(target_os = "linux"))]
    let stopped = {
        let _ = settle;
        always
    };
    if !stopped {
        return false;
    }
    match libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions.
        Ok(pid) => unsafe { libc::kill(pid, libc::SIGCONT) == 0 },
        Err(_) => false,
    }
}

/// The last `max` lines of a debugger's output that say something: blank
/// lines and lines containing any of `noise` are dropped.
pub(crate) fn relevant_lines(output: &str, noise: &[&str], max: usize) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty() && !noise.iter().any(|n| line.contains(n)))
        .collect();
    lines[lines.len().saturating_sub(max)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_dir_is_private_and_removed() {
        use std::os::unix::fs::PermissionsExt;
        let path = {
            let dir = ScratchDir::create("test").unwrap();
            let meta = fs::metadata(dir.path()).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o700);
            let file = dir.write("a.txt", b"x").unwrap();
            assert_eq!(fs::read(file).unwrap(), b"x");
            assert!(is_plain_path(dir.path()));
            dir.path().to_owned()
        };
        assert!(!path.exists());
    }

    #[test]
    fn finds_programs_by_name_and_by_path() {
        let sh = find_program(Path::new("sh")).expect("sh is in PATH");
        assert!(sh.is_absolute(), "{}", sh.display());
        assert_eq!(find_program(&sh), Some(sh.clone()));
        assert!(find_program(Path::new("no-such-program-peeka")).is_none());
        assert!(find_program(Path::new("/nonexistent/peeka/gdb")).is_none());
        // A directory is not a program.
        assert!(find_program(Path::new("/")).is_none());
    }

    #[test]
    fn plain_paths() {
        assert!(is_plain_path(Path::new("/tmp/peeka-gdb-1-2-3f")));
        assert!(!is_plain_path(Path::new("/tmp/my dir")));
        assert!(!is_plain_path(Path::new("/tmp/a\"b")));
        assert!(!is_plain_path(Path::new("")));
    }

    #[test]
    fn runs_to_completion_and_captures_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let done = run(
            command,
            Instant::now() + Duration::from_secs(10),
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(matches!(done.ending, Ending::Finished(s) if s.code() == Some(3)));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
    }

    #[test]
    fn interrupts_at_the_deadline_then_kills() {
        // Exits on SIGINT: interrupted.
        let mut command = Command::new("sh");
        command.args(["-c", "trap 'exit 7' INT; while :; do sleep 0.01; done"]);
        let interrupted = run(
            command,
            Instant::now() + Duration::from_millis(300),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(
            matches!(interrupted.ending, Ending::Interrupted(s) if s.code() == Some(7)),
            "{:?}",
            interrupted.ending
        );
        // Ignores SIGINT: killed after the grace period.
        let mut command = Command::new("sh");
        command.args(["-c", "trap '' INT; while :; do sleep 0.01; done"]);
        let started = Instant::now();
        let killed = run(
            command,
            Instant::now() + Duration::from_millis(100),
            Duration::from_millis(300),
        )
        .unwrap();
        assert_eq!(killed.ending, Ending::Killed);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_supervisor_interrupts_when_it_decides() {
        let mut command = Command::new("sh");
        command.args(["-c", "trap 'exit 9' INT; while :; do sleep 0.01; done"]);
        let started = Instant::now();
        let mut calls = 0;
        let run = run_supervised(command, Duration::from_secs(5), |now| {
            calls += 1;
            if now.duration_since(started) >= Duration::from_millis(200) {
                Verdict::Interrupt
            } else {
                Verdict::Wait
            }
        })
        .unwrap();
        assert!(
            matches!(run.ending, Ending::Interrupted(s) if s.code() == Some(9)),
            "{:?}",
            run.ending
        );
        assert!(calls > 10, "consulted only {calls} times");
        assert!(run.elapsed < Duration::from_secs(4));
    }

    #[test]
    fn missing_program_is_not_found() {
        let err = run(
            Command::new("/nonexistent/peeka-no-such-debugger"),
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn relevant_lines_drop_noise() {
        let text = "warning: noise here\n\nptrace: Operation not permitted.\n  \nlast\n";
        assert_eq!(
            relevant_lines(text, &["noise"], 10),
            "ptrace: Operation not permitted.\nlast"
        );
        assert_eq!(relevant_lines(text, &["noise"], 1), "last");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sees_and_resumes_a_stopped_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(process_alive(pid));
        // SAFETY: our own child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !any_thread_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(any_thread_stopped(pid));
        assert!(resume_if_stopped(pid, false, Duration::ZERO));
        let deadline = Instant::now() + Duration::from_secs(5);
        while any_thread_stopped(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!any_thread_stopped(pid));
        assert!(!resume_if_stopped(pid, false, Duration::from_millis(20)));
        let _ = child.kill();
        let _ = child.wait();
    }
}
