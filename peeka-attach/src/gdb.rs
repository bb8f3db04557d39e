//! The `gdb` method: the Linux fallback that drives `gdb` in batch mode.
//!
//! gdb attaches (stopping every thread), then, in the thread it selected
//! (the main thread):
//!
//! 1. calls the target's own `mmap` to get one fresh anonymous page: a raw
//!    system-call wrapper that takes no lock, unlike `malloc`, which could
//!    deadlock when the stopped thread holds the allocator's lock;
//! 2. writes the bootstrap statement into that page (`restore ... binary`
//!    from a file, so no escaping is involved);
//! 3. calls `Py_AddPendingCall(PyRun_SimpleString, page)`, which queues the
//!    statement for the main thread; it runs it at its next bytecode
//!    boundary, with the GIL held: the safety guarantee of PEP 768;
//! 4. detaches.
//!
//! Every function is called through an explicit cast of an address that
//! Peeka resolved itself from the target's ELF files, so gdb needs no debug
//! information and no symbols: this is what lets the host's gdb work on
//! targets in a chroot or a container, whose libraries it cannot match.
//! `set unwindonsignal on` makes gdb restore the thread's registers if a
//! call faults, and the whole sequence sits in one command file, so that a
//! failed `attach` stops it before any call.
//!
//! Signals the application receives meanwhile (timers, `SIGUSR1`, ...) are
//! passed straight through (`handle all nostop noprint pass`): by default
//! gdb would stop on some of them, and a stop inside an injected call makes
//! it abandon the call. Only the faults an injected call itself could cause
//! still stop gdb, so that it unwinds the call instead of passing a fault
//! of ours to the application; `SIGINT` stays gdb's own (see "Deadline").
//!
//! # The page's lifetime
//!
//! The string must stay valid until the pending call has run, which may be
//! long after gdb detached. Peeka never frees the page: after the bootstrap
//! claimed the attach it zeroes the string (the call has been consumed by
//! then), and on a timeout it *disarms* it instead. Freeing it would need a
//! second gdb session (another stop of every thread, another ~0.3 s) just to
//! return 4 KiB, and on a timeout it must not be freed at all, because the
//! queued call still points at it. So each gdb attach costs the target one
//! anonymous page, for its lifetime.
//!
//! # Disarming a request that did not run
//!
//! `Py_AddPendingCall` has no way to withdraw a call. The page therefore
//! holds `if 1:exec('<bootstrap statement>')`: on a timeout Peeka overwrites
//! the `1` with `0` (one byte, written atomically, so the interpreter reads
//! either the old or the new statement, never a torn one), and the late call
//! becomes a no-op. The bootstrap script is also removed, as for every
//! method.
//!
//! # Deadline
//!
//! At the deadline gdb gets `SIGINT`: if it is inside an injected call (the
//! main thread could, in rare cases, be stopped while holding the
//! interpreter's pending-calls lock), it unwinds the call, restores the
//! thread and detaches. gdb is killed only if it ignores that, and the
//! target then gets `SIGCONT` if any of its threads was left stopped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bootstrap::python_string;
use crate::debugger_process::{self, DebuggerRun, Ending, ScratchDir};
use crate::elf::{page_size, ElfFile};
use crate::error::AttachError;
use crate::method::{InjectRequest, Injector, Method, Timeline};
use crate::permissions::PtraceAccess;
use crate::procfs::{MapEntry, ProcStatus};
use crate::target::{Arch, Target};

/// How long gdb gets to unwind and detach after `SIGINT`.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// How long to watch for a stop left behind by a gdb that did not detach
/// cleanly.
const SETTLE: Duration = Duration::from_millis(100);

/// Offset of the `1` in [`ARMED_PREFIX`], overwritten with `0` to disarm.
const SWITCH_OFFSET: u64 = 3;

/// The start of the statement in the page; see the module documentation.
const ARMED_PREFIX: &str = "if 1:exec(";

/// Lines of gdb's output that never explain a failure.
const NOISE: &[&str] = &[
    "libthread_db",
    "vsyscall page",
    "is not at the expected address",
    "Reading symbols from",
    "No such file or directory.",
    "warning: Could not load shared library symbols",
    "Use the \"info sharedlibrary\" command",
    "Do you need \"set solib-search-path\"",
    "warning: Target and debugger are in different PID namespaces",
    "Restoring binary file",
    "PEEKA-",
];

/// The gdb backend. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct GdbInjector {
    program: PathBuf,
}

impl Default for GdbInjector {
    /// Runs `gdb` from `PATH`.
    fn default() -> Self {
        Self {
            program: PathBuf::from("gdb"),
        }
    }
}

impl GdbInjector {
    /// A backend that runs this gdb executable (a path, or a name looked up
    /// in `PATH`).
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
        }
    }

    /// The gdb executable it runs.
    pub fn program(&self) -> &Path {
        &self.program
    }
}

/// The addresses the command file calls, and what it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CallPlan {
    pid: u32,
    mmap: u64,
    add_pending_call: u64,
    run_simple_string: u64,
    buffer_len: u64,
    code_file: PathBuf,
}

/// What the command file reported on gdb's stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Report {
    buffer: Option<u64>,
    mmap_failed: bool,
    pending: Option<i64>,
    detached: bool,
}

impl Injector for GdbInjector {
    fn method(&self) -> Method {
        Method::Gdb
    }

    fn inject(&self, request: &InjectRequest<'_>) -> Result<Timeline, AttachError> {
        let started = Instant::now();
        let target = request.target;
        let pid = target.pid;
        let mut timeline = Timeline::default();

        let (mmap, add_pending_call, run_simple_string) =
            timeline.time("resolve addresses", || preflight(target))?;
        let code = armed_statement(&request.staging.runner_code(), pid)?;
        let scratch = ScratchDir::create("gdb").map_err(|source| AttachError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let io_error = |path: PathBuf| move |source| AttachError::Io { path, source };
        let code_file = scratch
            .write("code.bin", code.as_bytes())
            .map_err(io_error(scratch.path().join("code.bin")))?;
        let plan = CallPlan {
            pid,
            mmap,
            add_pending_call,
            run_simple_string,
            buffer_len: (code.len() as u64 + 1).next_multiple_of(page_size()),
            code_file,
        };
        let commands = scratch
            .write("commands.gdb", command_file(&plan).as_bytes())
            .map_err(io_error(scratch.path().join("commands.gdb")))?;

        let command = gdb_command(&self.program, pid, scratch.path(), &commands);
        let run = timeline
            .time("gdb: attach, mmap, Py_AddPendingCall, detach", || {
                debugger_process::run(command, request.deadline, INTERRUPT_GRACE)
            })
            .map_err(|e| spawn_error(e, &self.program, pid))?;
        drop(scratch);
        let report = parse_report(&run.stdout);
        // Whatever happened, no thread may stay stopped. After a detach gdb
        // confirmed one look suffices; after a failure or a kill, give a
        // tracee released by the dying tracer a moment to show its stop.
        let clean = report.detached && matches!(run.ending, Ending::Finished(_));
        let settle = if clean { Duration::ZERO } else { SETTLE };
        timeline.time("check the target is running", || {
            debugger_process::resume_if_stopped(pid, false, settle)
        });

        let buffer = match (report.pending, report.buffer) {
            (Some(0), Some(buffer)) => buffer,
            _ => return Err(diagnose(target, &run, &report)),
        };
        if !debugger_process::process_alive(pid) {
            return Err(AttachError::TargetExited { pid });
        }

        let claimed = timeline.time("wait for the main thread", || {
            debugger_process::wait_claimed(request.deadline, request.staging)
        });
        if claimed {
            // The call was consumed: the string is no longer read.
            timeline.time("zero the page", || {
                let _ = target.memory.write(buffer, &vec![0; code.len()]);
            });
            return Ok(timeline);
        }

        let disarmed = target.memory.write(buffer + SWITCH_OFFSET, b"0").is_ok();
        request.staging.remove_script();
        if request.staging.claimed() {
            // It ran between the last check and the disarming.
            return Ok(timeline);
        }
        if !debugger_process::process_alive(pid) {
            return Err(AttachError::TargetExited { pid });
        }
        Err(AttachError::Timeout {
            pid,
            method: Method::Gdb,
            waited: started.elapsed(),
            advice: format!(
                "gdb queued the bootstrap as a pending call, which only the main thread runs, between two bytecodes; the main thread ran no Python in time (it is probably blocked in a system call or in C code: a long sleep, a lock, I/O). {} Try again while the main thread is active, give it a longer --timeout, or on Python 3.14+ use `--method pep768`, which asks every thread.",
                if disarmed {
                    "The queued call was disarmed: if it ever runs, it does nothing."
                } else {
                    "Its script was removed: if the queued call ever runs, it finds nothing to do."
                }
            ),
        })
    }
}

/// Checks that gdb can work for `target`; returns the run-time addresses
/// of `mmap`, `Py_AddPendingCall` and `PyRun_SimpleString`.
fn preflight(target: &Target) -> Result<(u64, u64, u64), AttachError> {
    let pid = target.pid;
    let unavailable = |why: String| AttachError::MethodUnavailable {
        method: Method::Gdb,
        pid,
        why,
    };
    if !matches!(target.arch, Arch::X86_64 | Arch::Aarch64) {
        return Err(unavailable(format!(
            "Peeka drives gdb only on x86_64 and aarch64 targets, and this one is {}",
            target.arch
        )));
    }
    match ProcStatus::read(pid) {
        Ok(status) if status.is_zombie() => return Err(AttachError::TargetExited { pid }),
        Ok(status) if status.state == 'T' => {
            return Err(unavailable(format!(
                "the process is stopped (SIGSTOP or Ctrl-Z), so its main thread cannot run the bootstrap; resume it with `kill -CONT {pid}` and attach again"
            )))
        }
        Ok(_) => {}
        Err(_) => return Err(AttachError::TargetExited { pid }),
    }
    let python = |name: &str| {
        target.python.symbol_address(name).ok_or_else(|| {
            unavailable(format!(
                "{} does not export {name}, which this method calls",
                target.python.path.display()
            ))
        })
    };
    let add_pending_call = python("Py_AddPendingCall")?;
    let run_simple_string = python("PyRun_SimpleString")?;
    let mmap = libc_function(target, "mmap").ok_or_else(|| {
        unavailable(
            "no C library mapped in the process exports mmap, which this method calls to allocate the bootstrap's page"
                .into(),
        )
    })?;
    Ok((mmap, add_pending_call, run_simple_string))
}

/// Whether a mapped file is a C library: glibc's `libc.so.6` or
/// `libc-2.X.so`, or musl's `ld-musl-<arch>.so.1` / `libc.musl-<arch>.so.1`.
fn is_libc(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.starts_with("libc.so")
        || (name.starts_with("libc-") && name.ends_with(".so"))
        || name.starts_with("ld-musl-")
        || name.starts_with("libc.musl-")
}

/// The run-time address of a C library function in the target: from its
/// mapped libc, else from the interpreter itself (a statically linked build).
fn libc_function(target: &Target, name: &str) -> Option<u64> {
    let mut paths: Vec<&PathBuf> = Vec::new();
    for path in target
        .maps
        .iter()
        .filter(|m| m.is_file())
        .filter_map(|m| m.path.as_ref())
    {
        if is_libc(path) && !paths.contains(&path) {
            paths.push(path);
        }
    }
    for path in paths {
        let mappings: Vec<&MapEntry> = target
            .maps
            .iter()
            .filter(|m| m.path.as_ref() == Some(path))
            .collect();
        let Some(first) = mappings.first() else {
            continue;
        };
        let Ok(elf) = ElfFile::open_mapped(target.pid, first) else {
            continue;
        };
        let (Some(bias), Some(address)) = (elf.load_bias(&mappings), elf.symbol(name)) else {
            continue;
        };
        if address != 0 {
            return Some(bias.apply(address));
        }
    }
    target.python.symbol_address(name).filter(|&a| a != 0)
}

/// The statement written into the page: the bootstrap statement behind a
/// one-byte switch (see the module documentation).
fn armed_statement(runner_code: &str, pid: u32) -> Result<String, AttachError> {
    if runner_code.contains('\0') {
        return Err(AttachError::MethodUnavailable {
            method: Method::Gdb,
            pid,
            why:
                "the bootstrap statement contains a NUL byte, which PyRun_SimpleString cannot take"
                    .into(),
        });
    }
    Ok(format!("{ARMED_PREFIX}{})\n", python_string(runner_code)))
}

/// The gdb command file: attach, allocate, write, queue, detach. gdb stops
/// reading it at the first error (and then detaches as it exits).
fn command_file(plan: &CallPlan) -> String {
    let CallPlan {
        pid,
        mmap,
        add_pending_call,
        run_simple_string,
        buffer_len,
        code_file,
    } = plan;
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let code_file = code_file.display();
    format!(
        "set unwindonsignal on
handle all nostop noprint pass
handle SIGSEGV SIGBUS SIGILL SIGFPE SIGABRT stop print nopass
attach {pid}
set $peeka_buf = ((void *(*)(void *, unsigned long, int, int, int, long)) {mmap:#x})((void *) 0, {buffer_len}, {prot}, {flags:#x}, -1, 0)
printf \"PEEKA-BUFFER %lu\\n\", $peeka_buf
if $peeka_buf == (void *) -1
  printf \"PEEKA-MMAP-FAILED\\n\"
else
  restore {code_file} binary $peeka_buf
  set $peeka_rc = ((int (*)(void *, void *)) {add_pending_call:#x})((void *) {run_simple_string:#x}, $peeka_buf)
  printf \"PEEKA-PENDING %d\\n\", $peeka_rc
end
detach
printf \"PEEKA-DETACHED\\n\"
quit
"
    )
}

/// The gdb command line. Settings go in `-iex` options, each on its own,
/// so that one an older gdb does not know is skipped with a message rather
/// than aborting the command file.
fn gdb_command(program: &Path, pid: u32, scratch: &Path, commands: &Path) -> Command {
    let mut command = Command::new(program);
    command.args(["--batch", "--nx"]);
    let settings = [
        "set pagination off".to_owned(),
        "set height 0".to_owned(),
        "set width 0".to_owned(),
        "set confirm off".to_owned(),
        "set verbose off".to_owned(),
        "set print thread-events off".to_owned(),
        // No gdb scripts (libpython's python-gdb.py), no network, no symbol
        // reading: only explicit addresses are used.
        "set auto-load off".to_owned(),
        "set debuginfod enabled off".to_owned(),
        "set auto-solib-add off".to_owned(),
        "set debug-file-directory".to_owned(),
        // No libthread_db: gdb still stops every thread, and the host's
        // libthread_db may not match a chroot's or container's C library.
        format!("set libthread-db-search-path {}", scratch.display()),
        // The target's own files, whatever its root or mount namespace.
        format!("set sysroot /proc/{pid}/root"),
        "set exec-file-mismatch off".to_owned(),
        format!("file /proc/{pid}/exe"),
    ];
    for setting in settings {
        command.arg("-iex").arg(setting);
    }
    command.arg("-x").arg(commands);
    command.env_remove("DEBUGINFOD_URLS");
    command
}

fn spawn_error(error: std::io::Error, program: &Path, pid: u32) -> AttachError {
    if error.kind() == std::io::ErrorKind::NotFound {
        AttachError::DebuggerMissing {
            method: Method::Gdb,
            program: "gdb",
        }
    } else {
        AttachError::Debugger {
            method: Method::Gdb,
            pid,
            detail: format!("cannot run {}: {error}", program.display()),
        }
    }
}

/// Reads the `PEEKA-` lines the command file prints.
fn parse_report(stdout: &str) -> Report {
    let mut report = Report::default();
    for line in stdout.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("PEEKA-BUFFER ") {
            report.buffer = value.trim().parse().ok();
        } else if let Some(value) = line.strip_prefix("PEEKA-PENDING ") {
            report.pending = value.trim().parse().ok();
        } else if line == "PEEKA-MMAP-FAILED" {
            report.mmap_failed = true;
        } else if line == "PEEKA-DETACHED" {
            report.detached = true;
        }
    }
    report
}

/// The signal named by gdb's last `Program received signal SIGX, ...` line.
fn received_signal(stdout: &str) -> Option<&str> {
    stdout
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("Program received signal "))
        .and_then(|rest| rest.split(',').next())
}

/// The error for a run that did not queue the call.
fn diagnose(target: &Target, run: &DebuggerRun, report: &Report) -> AttachError {
    let pid = target.pid;
    let stderr = &run.stderr;
    let failure = |detail: String| AttachError::Debugger {
        method: Method::Gdb,
        pid,
        detail,
    };
    let said = || {
        let lines = debugger_process::relevant_lines(stderr, NOISE, 12);
        if lines.is_empty() {
            "gdb printed nothing on stderr".to_owned()
        } else {
            format!("gdb said:\n{lines}")
        }
    };
    if stderr.contains("ptrace: Operation not permitted") {
        // Predict again: another tracer may have appeared since inspection.
        let verdict = ProcStatus::read(pid).map(|status| PtraceAccess::check(&status, pid).verdict);
        let why = match verdict {
            Ok(Err(why)) => why,
            _ => format!("gdb's ptrace attach was refused although the usual rules allow it; another security module (AppArmor, SELinux) or a container profile may forbid tracing: run as root with CAP_SYS_PTRACE (in a container: --cap-add=SYS_PTRACE), or check `TracerPid` in /proc/{pid}/status"),
        };
        return AttachError::PermissionDenied { pid, why };
    }
    if stderr.contains("ptrace: No such process")
        || stderr.contains("exited while in a function called from GDB")
        || !debugger_process::process_alive(pid)
    {
        return AttachError::TargetExited { pid };
    }
    if report.mmap_failed {
        let seccomp = if target.status.seccomp == 2 {
            " The process runs under a seccomp filter, which may forbid it: run it with a profile that allows mmap (e.g. docker --security-opt seccomp=unconfined)."
        } else {
            " An address-space limit (ulimit -v) may forbid it."
        };
        return failure(format!(
            "the target's mmap failed to allocate one page for the bootstrap, so nothing was queued.{seccomp}"
        ));
    }
    if let Some(rc) = report.pending {
        return failure(format!(
            "Py_AddPendingCall returned {rc}: the interpreter's queue of pending calls is full (its main thread has not run Python for a while) or it is shutting down; nothing was queued, try again later"
        ));
    }
    match run.ending {
        Ending::Killed => failure(format!(
            "gdb did not finish within the deadline and ignored SIGINT for {INTERRUPT_GRACE:?}, so it was killed; if it was inside the injected call, the target may be damaged, please report this. {}",
            said()
        )),
        Ending::Interrupted(_) => AttachError::Timeout {
            pid,
            method: Method::Gdb,
            waited: run.elapsed,
            advice: format!(
                "gdb had not queued the bootstrap when the deadline passed; it was interrupted, restored the thread it used and detached, so nothing is pending{}. gdb may be slow to attach to this process (many threads, a slow disk), or its main thread was stopped at a moment when the interpreter's pending-calls lock was held. Try again, or with a longer --timeout.",
                if report.buffer.is_some() { " (one page it allocated stays mapped)" } else { "" }
            ),
        },
        Ending::Finished(status) => {
            let root = if target.has_other_root() {
                format!(
                    " The target runs under another root ({}, a chroot or container); gdb reached its files through /proc/{pid}/root, and only explicit addresses were used, so this is not a missing-symbols problem; try `--method ptrace`.",
                    target.root.display()
                )
            } else {
                String::new()
            };
            let detail = if stderr.contains("signaled while in a function called from GDB") {
                let signal = received_signal(&run.stdout).unwrap_or("a signal");
                format!(
                    "an injected call stopped with {signal}; gdb restored the thread's registers and detached, so nothing is pending. Report this with `peeka-cli doctor {pid}` output.{root} {}",
                    said()
                )
            } else {
                format!("gdb exited ({status}) before queuing the bootstrap.{root} {}", said())
            };
            failure(detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> CallPlan {
        CallPlan {
            pid: 4242,
            mmap: 0x7f00_0010_19a0,
            add_pending_call: 0x7f00_2024_ff20,
            run_simple_string: 0x7f00_2029_aec0,
            buffer_len: 4096,
            code_file: PathBuf::from("/tmp/peeka-gdb-1-0-ab/code.bin"),
        }
    }

    #[test]
    fn command_file_attaches_first_and_detaches_last() {
        let text = command_file(&plan());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "set unwindonsignal on");
        assert_eq!(lines[1], "handle all nostop noprint pass");
        assert_eq!(
            lines[2],
            "handle SIGSEGV SIGBUS SIGILL SIGFPE SIGABRT stop print nopass"
        );
        assert_eq!(lines[3], "attach 4242");
        assert_eq!(
            lines[4],
            "set $peeka_buf = ((void *(*)(void *, unsigned long, int, int, int, long)) 0x7f00001019a0)((void *) 0, 4096, 3, 0x22, -1, 0)"
        );
        assert!(text.contains("  restore /tmp/peeka-gdb-1-0-ab/code.bin binary $peeka_buf\n"));
        assert!(text.contains(
            "  set $peeka_rc = ((int (*)(void *, void *)) 0x7f002024ff20)((void *) 0x7f002029aec0, $peeka_buf)\n"
        ));
        assert_eq!(
            &lines[lines.len() - 3..],
            ["detach", "printf \"PEEKA-DETACHED\\n\"", "quit"]
        );
        // The call is guarded by the mmap check.
        let check = text.find("if $peeka_buf == (void *) -1").unwrap();
        let call = text.find("$peeka_rc =").unwrap();
        let end = text.find("\nend\n").unwrap();
        assert!(check < call && call < end);
    }

    #[test]
    fn armed_statement_has_its_switch_where_it_is_flipped() {
        let statement = armed_statement("try:exec('x')\nexcept BaseException:pass\n", 1).unwrap();
        assert_eq!(
            statement,
            "if 1:exec('try:exec(\\'x\\')\\U0000000aexcept BaseException:pass\\U0000000a')\n"
        );
        assert_eq!(&statement.as_bytes()[SWITCH_OFFSET as usize..][..1], b"1");
        assert!(armed_statement("a\0b", 1).is_err());
    }

    #[test]
    fn reads_the_report() {
        let stdout = "0x00007f in ?? ()\nPEEKA-BUFFER 140282456526848\nRestoring binary file x\nPEEKA-PENDING 0\n[Inferior 1 (process 5) detached]\nPEEKA-DETACHED\n";
        assert_eq!(
            parse_report(stdout),
            Report {
                buffer: Some(140_282_456_526_848),
                mmap_failed: false,
                pending: Some(0),
                detached: true,
            }
        );
        let failed = parse_report("PEEKA-BUFFER 18446744073709551615\nPEEKA-MMAP-FAILED\n");
        assert!(failed.mmap_failed && failed.pending.is_none());
        assert_eq!(parse_report("PEEKA-PENDING -1\n").pending, Some(-1));
        assert_eq!(parse_report(""), Report::default());
    }

    #[test]
    fn names_the_signal_an_injected_call_received() {
        let stdout = "0x7f in ?? ()\n\nProgram received signal SIGSEGV, Segmentation fault.\n0x0000000000001234 in ?? ()\n";
        assert_eq!(received_signal(stdout), Some("SIGSEGV"));
        assert_eq!(received_signal("nothing\n"), None);
    }

    #[test]
    fn recognizes_c_libraries() {
        assert!(is_libc(Path::new("/usr/lib/x86_64-linux-gnu/libc.so.6")));
        assert!(is_libc(Path::new("/lib/libc-2.31.so")));
        assert!(is_libc(Path::new("/lib/ld-musl-x86_64.so.1")));
        assert!(!is_libc(Path::new("/usr/lib/libcrypto.so.3")));
        assert!(!is_libc(Path::new("/usr/lib/libc++.so.1")));
    }

    #[test]
    fn command_line_puts_settings_before_the_file() {
        let command = gdb_command(
            Path::new("gdb"),
            7,
            Path::new("/tmp/s"),
            Path::new("/tmp/s/commands.gdb"),
        );
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(&args[..2], ["--batch", "--nx"]);
        assert_eq!(&args[args.len() - 2..], ["-x", "/tmp/s/commands.gdb"]);
        for setting in [
            "set sysroot /proc/7/root",
            "file /proc/7/exe",
            "set auto-load off",
            "set confirm off",
            "set pagination off",
        ] {
            assert!(
                args.iter().any(|a| a == setting),
                "{setting} missing from {args:?}"
            );
        }
        assert!(
            !args.iter().any(|a| a == "-p"),
            "attach must happen inside the command file"
        );
    }
}
