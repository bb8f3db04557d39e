//! The text gdb runs, and what its output reports.
//!
//! Each gdb session runs one command file in batch mode. gdb stops reading
//! a command file at its first error and then exits, detaching from the
//! target (it was attached, not started, so gdb never kills it). The files
//! print `PEEKA-` lines on stdout, which [`QueueReport`] and
//! [`BreakpointReport`] read back.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::armed_runner::{armed_source, Body};
use crate::elf::page_size;
use crate::error::AttachError;
use crate::method::Method;

use super::addresses::{Queue, SaveThreadRoute};

/// The first lines of every command file: restore the thread if an
/// injected call gets a signal, and pass the application's signals straight
/// through (a stop inside an injected call makes gdb abandon it). `SIGINT`
/// stays gdb's: it is how Peeka interrupts gdb (see the backend's
/// "Deadline"); a `SIGINT` someone else sends the target meanwhile is
/// therefore caught by gdb, and Peeka sends it again once gdb is gone.
const PASS_SIGNALS: &str = "set unwindonsignal on
handle all nostop noprint pass
";

/// Before injected calls: stop on the faults a call itself could cause, so
/// that gdb unwinds the call instead of passing a fault of ours to the
/// application.
const STOP_ON_FAULTS: &str = "handle SIGSEGV SIGBUS SIGILL SIGFPE SIGABRT stop print nopass
";

/// The statement written into the page: the runner code behind the switch
/// and process check of [`crate::armed_runner`], passed to `exec` on the
/// same line ([`Body::Exec`]):
/// `if 1 and __import__('os').getpid()==NSPID:exec('<runner code>')`.
///
/// # Errors
/// [`AttachError::MethodUnavailable`] when the code contains a NUL byte.
pub(super) fn armed_statement(
    runner_code: &str,
    pid: u32,
    ns_pid: u32,
) -> Result<String, AttachError> {
    armed_source(runner_code, ns_pid, Body::Exec).map_err(|_| AttachError::MethodUnavailable {
        method: Method::Gdb,
        pid,
        why: "the bootstrap statement contains a NUL byte, which PyRun_SimpleString cannot take"
            .into(),
    })
}

/// Where things go in the page gdb allocates in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PageLayout {
    /// Bytes of the statement (without its NUL).
    pub(super) code_len: u64,
    /// Offset of three pointer slots for `PyErr_Fetch` (breakpoint route).
    pub(super) slots: u64,
    /// The size mapped: whole pages.
    pub(super) len: u64,
}

impl PageLayout {
    /// The layout for a statement of `code_len` bytes.
    pub(super) fn for_code(code_len: usize) -> Self {
        let code_len = code_len as u64;
        let slots = (code_len + 1).next_multiple_of(8);
        Self {
            code_len,
            slots,
            len: (slots + 3 * 8).next_multiple_of(page_size()),
        }
    }
}

/// What the first session does: allocate the page, fill it, queue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct QueuePlan {
    /// The target.
    pub(super) pid: u32,
    /// The C library's `mmap`.
    pub(super) mmap: u64,
    /// `PyRun_SimpleString`.
    pub(super) run_simple_string: u64,
    /// How to queue.
    pub(super) queue: Queue,
    /// How much to map.
    pub(super) page_len: u64,
    /// The file holding the statement and its NUL.
    pub(super) code_file: PathBuf,
}

/// The first session's command file: attach, allocate, write, queue,
/// detach.
pub(super) fn queue_commands(plan: &QueuePlan) -> String {
    let QueuePlan {
        pid,
        mmap,
        run_simple_string,
        queue,
        page_len,
        code_file,
    } = plan;
    let code_file = code_file.display();
    let allocate = allocate_page(*mmap, *page_len);
    let call = match queue {
        Queue::AnyThread { add, interpreter } => format!(
            "((int (*)(void *, void *, void *, int)) {add:#x})((void *) {interpreter:#x}, (void *) {run_simple_string:#x}, $peeka_buf, 0)"
        ),
        Queue::MainThread { add } => format!(
            "((int (*)(void *, void *)) {add:#x})((void *) {run_simple_string:#x}, $peeka_buf)"
        ),
    };
    format!(
        "{PASS_SIGNALS}{STOP_ON_FAULTS}attach {pid}
{allocate}
if $peeka_buf == (void *) -1
  printf \"PEEKA-MMAP-FAILED\\n\"
else
  restore {code_file} binary $peeka_buf
  set $peeka_rc = {call}
  printf \"PEEKA-PENDING %d\\n\", $peeka_rc
end
detach
printf \"PEEKA-DETACHED\\n\"
quit
"
    )
}

/// The first inferior call of every gdb attach: the target's own `mmap`,
/// through an explicit cast of its address, for `len` bytes of fresh
/// anonymous read-write memory; gdb prints the address it returned as a
/// `PEEKA-BUFFER` line.
fn allocate_page(mmap: u64, len: u64) -> String {
    let prot = libc::PROT_READ | libc::PROT_WRITE;
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    format!(
        "set $peeka_buf = ((void *(*)(void *, unsigned long, int, int, int, long)) {mmap:#x})((void *) 0, {len}, {prot}, {flags:#x}, -1, 0)
printf \"PEEKA-BUFFER %lu\\n\", $peeka_buf"
    )
}

/// What the probe session does (see `gdb/probe.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ProbePlan {
    /// The throwaway process of ours.
    pub(super) pid: u32,
    /// Its C library's `mmap`.
    pub(super) mmap: u64,
    /// Its C library's `getpid`.
    pub(super) getpid: u64,
}

/// The probe session's command file: the same first lines and the same
/// first inferior call as an attach (`mmap` of one page), then `getpid()`,
/// whose result the caller knows, then detach. gdb's version comes first,
/// for the report.
pub(super) fn probe_commands(plan: &ProbePlan) -> String {
    let ProbePlan { pid, mmap, getpid } = *plan;
    let allocate = allocate_page(mmap, page_size());
    format!(
        "show version
{PASS_SIGNALS}{STOP_ON_FAULTS}attach {pid}
{allocate}
set $peeka_pid = ((int (*)(void)) {getpid:#x})()
printf \"PEEKA-PID %d\\n\", $peeka_pid
detach
printf \"PEEKA-DETACHED\\n\"
quit
"
    )
}

/// What the probe session's command file reported on gdb's stdout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ProbeReport {
    /// gdb's version (`13.1` from `GNU gdb (Debian 13.1-3) 13.1`).
    pub(super) version: Option<String>,
    /// What `mmap` returned.
    pub(super) buffer: Option<u64>,
    /// What `getpid` returned.
    pub(super) pid: Option<i64>,
    /// gdb detached as the file asked.
    pub(super) detached: bool,
}

impl ProbeReport {
    /// Reads the version line and the `PEEKA-` lines.
    pub(super) fn parse(stdout: &str) -> Self {
        let mut report = Self::default();
        for line in stdout.lines().map(str::trim) {
            if let Some(value) = line.strip_prefix("PEEKA-BUFFER ") {
                report.buffer = value.trim().parse().ok();
            } else if let Some(value) = line.strip_prefix("PEEKA-PID ") {
                report.pid = value.trim().parse().ok();
            } else if line == "PEEKA-DETACHED" {
                report.detached = true;
            } else if line.starts_with("GNU gdb ") && report.version.is_none() {
                report.version = line.split_whitespace().last().map(str::to_owned);
            }
        }
        report
    }
}

/// What the second session (breakpoint route) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BreakpointPlan {
    /// The target.
    pub(super) pid: u32,
    /// The functions of the route.
    pub(super) route: SaveThreadRoute,
    /// `PyRun_SimpleString`.
    pub(super) run_simple_string: u64,
    /// The page holding the statement (written by the first session).
    pub(super) page: u64,
    /// Its layout.
    pub(super) layout: PageLayout,
    /// The file with the call commands while the call may still be made.
    pub(super) go_file: PathBuf,
    /// Where gdb moves it when it commits to making the call.
    pub(super) went_file: PathBuf,
}

/// The second session's command file: attach, set a temporary breakpoint
/// at `PyEval_SaveThread`, let the target run until a thread stops there,
/// then (only if gdb wins the hand-off, see `blocked_main`) run the call
/// commands; finally remove any breakpoint left and detach.
///
/// When the hand-off is lost, `source` fails, gdb stops reading and exits,
/// which detaches too: the target is stopped then, so no breakpoint is
/// inserted in its memory. While it waits, faults are the application's
/// own business and pass through like any other signal.
pub(super) fn breakpoint_commands(plan: &BreakpointPlan) -> String {
    let BreakpointPlan {
        pid,
        route,
        go_file,
        went_file,
        ..
    } = plan;
    let save_thread = route.save_thread;
    let (go, went) = (go_file.display(), went_file.display());
    format!(
        "{PASS_SIGNALS}attach {pid}
tbreak *{save_thread:#x}
printf \"PEEKA-ARMED\\n\"
continue
shell mv -- {go} {went} 2>/dev/null
source {went}
delete
detach
printf \"PEEKA-DETACHED\\n\"
quit
"
    )
}

/// The call commands of the breakpoint route, run on the thread that
/// stopped at the breakpoint: it holds the GIL there. An exception the
/// interrupted C code may have set is kept aside with `PyErr_Fetch` and
/// put back with `PyErr_Restore`.
pub(super) fn breakpoint_call_commands(plan: &BreakpointPlan) -> String {
    let BreakpointPlan {
        route,
        run_simple_string,
        page,
        layout,
        ..
    } = plan;
    let SaveThreadRoute {
        save_thread,
        error_fetch,
        error_restore,
    } = route;
    let slot = |n: u64| page + layout.slots + 8 * n;
    let (s0, s1, s2) = (slot(0), slot(1), slot(2));
    format!(
        "{STOP_ON_FAULTS}if (unsigned long) $pc == {save_thread:#x}
  printf \"PEEKA-HIT\\n\"
  call ((void (*)(void *, void *, void *)) {error_fetch:#x})((void *) {s0:#x}, (void *) {s1:#x}, (void *) {s2:#x})
  set $peeka_rc = ((int (*)(void *)) {run_simple_string:#x})((void *) {page:#x})
  call ((void (*)(void *, void *, void *)) {error_restore:#x})(*(void **) {s0:#x}, *(void **) {s1:#x}, *(void **) {s2:#x})
  printf \"PEEKA-RAN %d\\n\", $peeka_rc
end
"
    )
}

/// The gdb command line. Settings go in `-iex` options, each on its own,
/// so that one an older gdb does not know is skipped with a message rather
/// than aborting the command file.
pub(super) fn gdb_command(program: &Path, pid: u32, scratch: &Path, commands: &Path) -> Command {
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
    // `shell` commands run with $SHELL: make it a POSIX shell.
    command.env("SHELL", "/bin/sh");
    command
}

/// What the first session's command file reported on gdb's stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct QueueReport {
    /// The page's address.
    pub(super) buffer: Option<u64>,
    /// `mmap` returned `MAP_FAILED`.
    pub(super) mmap_failed: bool,
    /// What the queueing call returned (0: queued).
    pub(super) pending: Option<i64>,
    /// gdb detached as the file asked.
    pub(super) detached: bool,
}

impl QueueReport {
    /// Reads the `PEEKA-` lines.
    pub(super) fn parse(stdout: &str) -> Self {
        let mut report = Self::default();
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
}

/// What the second session's command files reported on gdb's stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BreakpointReport {
    /// The breakpoint was set and the target let go.
    pub(super) armed: bool,
    /// A thread stopped at the breakpoint and gdb started the call.
    pub(super) hit: bool,
    /// The thread gdb switched to for the stop (`None`: the main thread,
    /// which gdb had selected at attach, or unknown).
    pub(super) thread: Option<u32>,
    /// What `PyRun_SimpleString` returned (0: ran without an exception).
    pub(super) ran: Option<i64>,
    /// gdb detached as the file asked.
    pub(super) detached: bool,
}

impl BreakpointReport {
    /// Reads the `PEEKA-` lines and gdb's `[Switching to LWP N]` line.
    pub(super) fn parse(stdout: &str) -> Self {
        let mut report = Self::default();
        for line in stdout.lines().map(str::trim) {
            if line == "PEEKA-ARMED" {
                report.armed = true;
            } else if line == "PEEKA-HIT" {
                report.hit = true;
            } else if let Some(value) = line.strip_prefix("PEEKA-RAN ") {
                report.ran = value.trim().parse().ok();
            } else if line == "PEEKA-DETACHED" {
                report.detached = true;
            } else if let Some(rest) = line.strip_prefix("[Switching to LWP ") {
                report.thread = rest.trim_end_matches(']').trim().parse().ok();
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::armed_runner::SWITCH_OFFSET;

    fn queue_plan(queue: Queue) -> QueuePlan {
        QueuePlan {
            pid: 4242,
            mmap: 0x7f00_0010_19a0,
            run_simple_string: 0x7f00_2029_aec0,
            queue,
            page_len: 4096,
            code_file: PathBuf::from("/tmp/peeka-gdb-1-0-ab/code.bin"),
        }
    }

    fn breakpoint_plan() -> BreakpointPlan {
        BreakpointPlan {
            pid: 4242,
            route: SaveThreadRoute {
                save_thread: 0x7f00_0000_1000,
                error_fetch: 0x7f00_0000_2000,
                error_restore: 0x7f00_0000_3000,
            },
            run_simple_string: 0x7f00_0000_4000,
            page: 0x7f00_5000_0000,
            layout: PageLayout::for_code(99),
            go_file: PathBuf::from("/tmp/s/go.gdb"),
            went_file: PathBuf::from("/tmp/s/went.gdb"),
        }
    }

    #[test]
    fn queue_commands_attach_first_and_detach_last() {
        let text = queue_commands(&queue_plan(Queue::MainThread {
            add: 0x7f00_2024_ff20,
        }));
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
    fn the_probe_makes_the_queue_sessions_first_call() {
        let plan = ProbePlan {
            pid: 77,
            mmap: 0x7f00_0010_19a0,
            getpid: 0x7f00_0010_2000,
        };
        let text = probe_commands(&plan);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "show version");
        assert_eq!(
            lines[1..4],
            queue_commands(&queue_plan(Queue::MainThread { add: 1 }))
                .lines()
                .collect::<Vec<_>>()[..3]
        );
        assert_eq!(lines[4], "attach 77");
        // The same mmap call as an attach, for one page.
        assert_eq!(
            lines[5],
            format!(
                "set $peeka_buf = ((void *(*)(void *, unsigned long, int, int, int, long)) 0x7f00001019a0)((void *) 0, {}, 3, 0x22, -1, 0)",
                page_size()
            )
        );
        assert_eq!(lines[6], "printf \"PEEKA-BUFFER %lu\\n\", $peeka_buf");
        assert_eq!(
            lines[7],
            "set $peeka_pid = ((int (*)(void)) 0x7f0000102000)()"
        );
        assert_eq!(
            &lines[lines.len() - 3..],
            ["detach", "printf \"PEEKA-DETACHED\\n\"", "quit"]
        );
    }

    #[test]
    fn reads_the_probe_report() {
        let stdout = "GNU gdb (Debian 13.1-3) 13.1\nCopyright (C) 2023 Free Software Foundation, Inc.\n0x00007f in clock_nanosleep () from /proc/9/root/lib/libc.so.6\nPEEKA-BUFFER 139758987128832\nPEEKA-PID 15747\n[Inferior 1 (process 15747) detached]\nPEEKA-DETACHED\n";
        let report = ProbeReport::parse(stdout);
        assert_eq!(report.version.as_deref(), Some("13.1"));
        assert_eq!(report.buffer, Some(139_758_987_128_832));
        assert_eq!(report.pid, Some(15747));
        assert!(report.detached);
        let failed = ProbeReport::parse("GNU gdb (GDB) 18.1\n0x7f in ?? ()\n");
        assert_eq!(failed.version.as_deref(), Some("18.1"));
        assert_eq!(
            (failed.buffer, failed.pid, failed.detached),
            (None, None, false)
        );
    }

    #[test]
    fn any_thread_queue_passes_the_interpreter_and_a_zero_flag() {
        let text = queue_commands(&queue_plan(Queue::AnyThread {
            add: 0x7f00_2026_66d0,
            interpreter: 0x5555_0000_1230,
        }));
        assert!(text.contains(
            "  set $peeka_rc = ((int (*)(void *, void *, void *, int)) 0x7f00202666d0)((void *) 0x555500001230, (void *) 0x7f002029aec0, $peeka_buf, 0)\n"
        ));
    }

    #[test]
    fn breakpoint_commands_hand_off_before_calling() {
        let plan = breakpoint_plan();
        let text = breakpoint_commands(&plan);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..2],
            ["set unwindonsignal on", "handle all nostop noprint pass"]
        );
        assert_eq!(lines[2], "attach 4242");
        assert_eq!(lines[3], "tbreak *0x7f0000001000");
        let order = [
            "continue",
            "shell mv -- /tmp/s/go.gdb /tmp/s/went.gdb 2>/dev/null",
            "source /tmp/s/went.gdb",
            "delete",
            "detach",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|l| lines.iter().position(|x| x == l).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(lines.last(), Some(&"quit"));
        assert!(
            !text.contains("0x7f0000004000"),
            "no call before the hand-off"
        );
    }

    #[test]
    fn breakpoint_call_runs_only_at_the_breakpoint_and_keeps_exceptions() {
        let plan = breakpoint_plan();
        let text = breakpoint_call_commands(&plan);
        let lines: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(
            text.lines().next(),
            Some("handle SIGSEGV SIGBUS SIGILL SIGFPE SIGABRT stop print nopass")
        );
        assert_eq!(lines[0], "if (unsigned long) $pc == 0x7f0000001000");
        // Slots follow the statement, 8-byte aligned: 99 + NUL -> 104.
        assert_eq!(plan.layout.slots, 104);
        let s0 = 0x7f00_5000_0000u64 + 104;
        assert!(lines[2].contains("0x7f0000002000"), "{}", lines[2]);
        assert!(lines[2].contains(&format!("(void *) {s0:#x}")));
        assert_eq!(
            lines[3],
            "  set $peeka_rc = ((int (*)(void *)) 0x7f0000004000)((void *) 0x7f0050000000)"
        );
        assert!(
            lines[4].contains("0x7f0000003000")
                && lines[4].contains(&format!("*(void **) {s0:#x}"))
        );
        assert_eq!(lines.last(), Some(&"end"));
    }

    #[test]
    fn page_layout_fits_code_and_slots() {
        let layout = PageLayout::for_code(4095);
        assert_eq!(layout.slots, 4096);
        assert_eq!(layout.len, (4096 + 24u64).next_multiple_of(page_size()));
        assert!(layout.len >= layout.slots + 24 && layout.len % page_size() == 0);
        let small = PageLayout::for_code(10);
        assert_eq!(small.slots, 16);
        assert_eq!(small.len, page_size());
    }

    #[test]
    fn armed_statement_has_its_switch_where_it_is_flipped() {
        let statement =
            armed_statement("try:exec('x')\nexcept BaseException:pass\n", 1, 42).unwrap();
        assert_eq!(
            statement,
            "if 1 and __import__('os').getpid()==42:exec('try:exec(\\'x\\')\\U0000000aexcept BaseException:pass\\U0000000a')\n"
        );
        assert_eq!(&statement.as_bytes()[SWITCH_OFFSET as usize..][..1], b"1");
        assert!(armed_statement("a\0b", 1, 1).is_err());
    }

    #[test]
    fn reads_the_queue_report() {
        let stdout = "0x00007f in ?? ()\nPEEKA-BUFFER 140282456526848\nRestoring binary file x\nPEEKA-PENDING 0\n[Inferior 1 (process 5) detached]\nPEEKA-DETACHED\n";
        assert_eq!(
            QueueReport::parse(stdout),
            QueueReport {
                buffer: Some(140_282_456_526_848),
                mmap_failed: false,
                pending: Some(0),
                detached: true,
            }
        );
        let failed = QueueReport::parse("PEEKA-BUFFER 18446744073709551615\nPEEKA-MMAP-FAILED\n");
        assert!(failed.mmap_failed && failed.pending.is_none());
        assert_eq!(QueueReport::parse("PEEKA-PENDING -1\n").pending, Some(-1));
        assert_eq!(QueueReport::parse(""), QueueReport::default());
    }

    #[test]
    fn reads_the_breakpoint_report() {
        let stdout = "Temporary breakpoint 1 at 0x7fa2159746f0\nPEEKA-ARMED\n[Switching to LWP 4517]\n\nThread 2 \"python3.8\" hit Temporary breakpoint 1, 0x00007fa2159746f0 in ?? ()\nPEEKA-HIT\nPEEKA-RAN 0\n[Inferior 1 (process 4510) detached]\nPEEKA-DETACHED\n";
        assert_eq!(
            BreakpointReport::parse(stdout),
            BreakpointReport {
                armed: true,
                hit: true,
                thread: Some(4517),
                ran: Some(0),
                detached: true,
            }
        );
        let cancelled =
            BreakpointReport::parse("PEEKA-ARMED\n\nProgram received signal SIGINT, Interrupt.\n");
        assert!(cancelled.armed && !cancelled.hit && cancelled.ran.is_none());
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
        let shell = command
            .get_envs()
            .find(|(k, _)| *k == "SHELL")
            .and_then(|(_, v)| v);
        assert_eq!(shell, Some(std::ffi::OsStr::new("/bin/sh")));
    }
}
