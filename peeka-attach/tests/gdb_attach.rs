//! The gdb method against real CPython targets (host and chroot builds).
#![cfg(target_os = "linux")]
// Helpers shared by the tests report measurements and fail loudly, as the
// tests themselves may.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{
    assert_forked_children_survived, marker_agent, marker_runs, min_median_max, signal_main_thread,
    spawn_parked_target, spawn_target, tracer_of, wait_for_report, PreparedTarget, StagingDir,
    TARGETS,
};
use peeka_attach::attach::{attach, AttachOptions};
use peeka_attach::doctor::{check, doctor, Severity};
use peeka_attach::gdb::{check_gdb, GdbCheck, GdbInjector, GdbUnusable, PROBE_LIMIT};
use peeka_attach::runtime_state::main_interpreter;
use peeka_attach::{
    AttachError, BootstrapStatus, InjectRequest, Injector, Method, MethodChoice, Staging, Target,
};
use peeka_testkit::{skip_test, Interpreter, Manifest, TargetProcess};

/// What the host's gdb (the first in `PATH`) can do, as the method's own
/// check found it.
enum HostGdb {
    /// It makes inferior calls and leaves the process intact: the gdb route
    /// is exercised.
    Works,
    /// It cannot (gdb 13.1 on a CPU with AMX): the method must refuse
    /// before touching a target, and that refusal is what is tested.
    CannotCall(GdbUnusable),
}

/// The host's gdb, checked as the method checks it; `None` when gdb is not
/// installed (a skip banner is printed, or the test fails under CI).
fn host_gdb() -> Option<HostGdb> {
    match check_gdb(Path::new("gdb"), Instant::now() + PROBE_LIMIT) {
        GdbCheck::Usable { .. } => Some(HostGdb::Works),
        GdbCheck::Unusable(unusable) => Some(HostGdb::CannotCall(unusable)),
        GdbCheck::Missing { .. } => {
            skip_test("gdb is not installed (apt-get install gdb)");
            None
        }
        GdbCheck::Inconclusive { why, .. } => {
            panic!("could not check what the host's gdb can do: {why}")
        }
    }
}

/// Says loudly, where libtest cannot hide it, that this test checked the
/// refusal and not the gdb route.
fn refusal_banner(unusable: &GdbUnusable) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a gdb test")
        .to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "=== {test}: gdb cannot make inferior calls on this host ({}: {}): checking the refusal instead; the gdb route was NOT exercised ===",
        unusable.display_name(),
        unusable.reason()
    );
}

/// The manifest, when there is one and the host's gdb works: the test then
/// exercises the gdb route. `None` when there is no manifest or no gdb
/// (skipped, see [`host_gdb`]), and when gdb cannot make inferior calls
/// here: then the method's refusal is checked on a target parked in
/// `select()` (see [`attach_to_a_select_target`]) and a banner says that
/// the gdb route was not exercised.
fn manifest_with_working_gdb() -> Option<Manifest> {
    let manifest = Manifest::load_or_skip()?;
    match host_gdb()? {
        HostGdb::Works => Some(manifest),
        HostGdb::CannotCall(unusable) => {
            refusal_banner(&unusable);
            let python = ["3.11", "3.8", "3.13"]
                .into_iter()
                .find_map(|id| manifest.require(id))?;
            attach_to_a_select_target(python, &HostGdb::CannotCall(unusable));
            None
        }
    }
}

/// The pids of gdb processes started for `pid` (our command line names
/// `/proc/<pid>/exe`).
fn gdb_processes_for(pid: u32) -> Vec<u32> {
    let needle = format!("/proc/{pid}/exe");
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let comm = fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            let cmdline = fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            comm.trim() == "gdb" && String::from_utf8_lossy(&cmdline).contains(&needle)
        })
        .collect()
}

/// Everything that must hold after any gdb attach, successful or not.
fn assert_left_clean(process: &mut TargetProcess, what: &str) {
    let pid = process.pid();
    assert!(process.is_alive(), "{what}: the target died");
    assert_eq!(
        gdb_processes_for(pid),
        Vec::<u32>::new(),
        "{what}: a gdb process remains"
    );
    assert_eq!(tracer_of(pid), 0, "{what}: the target is still traced");
    // Give a stop that would be left behind a moment to show.
    std::thread::sleep(Duration::from_millis(50));
    assert_ne!(
        process.state(),
        Some('T'),
        "{what}: the target was left stopped"
    );
    assert_ne!(
        process.state(),
        Some('t'),
        "{what}: the target was left in a tracing stop"
    );
}

/// [`assert_left_clean`], and the patchable code is back and the target
/// printed nothing on stderr.
fn assert_left_clean_and_restored(prepared: &mut PreparedTarget) {
    assert_left_clean(&mut prepared.process, &prepared.what);
    prepared.assert_code_restored();
    prepared.assert_quiet();
}

/// Attaches once with gdb to a fresh target; returns inject()'s duration,
/// which ends when the bootstrap claimed the attach.
fn attach_once(python: &Interpreter, script: &str) -> Duration {
    let process = if script == "blocked_main.py" {
        // Past `ready` the main thread still runs Python on its way into
        // Event.wait(): attach once it is parked there.
        spawn_parked_target(python, script, libc::SYS_futex as u32)
    } else {
        spawn_target(python, script)
    };
    let mut prepared =
        PreparedTarget::stage_saving_code(process, format!("{} {script}", python.id));
    let (timeline, latency) =
        prepared.attach_claimed(&GdbInjector::default(), Duration::from_secs(15));
    // Let a duplicate run show up if there were one.
    prepared.assert_loaded_exactly_once(Duration::from_secs(10), Duration::from_millis(300));
    assert_left_clean_and_restored(&mut prepared);
    let what = &prepared.what;
    let steps: Vec<String> = timeline
        .steps
        .iter()
        .map(|s| format!("{} {:.1?}", s.name, s.elapsed))
        .collect();
    eprintln!(
        "gdb {what}: claimed after {latency:.1?} ({})",
        steps.join(", ")
    );
    latency
}

/// Every interpreter of the manifest, every target shape (busy, sleeping,
/// main thread blocked while a worker runs Python, 20 threads). Failures
/// are collected so that the report lists which interpreters work.
#[test]
fn attaches_to_every_interpreter_and_every_shape() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for required in ["3.8", "3.13"] {
        let _ = manifest.require(required);
    }
    let mut report = Vec::new();
    manifest.for_each_interpreter(|python| {
        for script in TARGETS {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                attach_once(python, script)
            }));
            let line = match &outcome {
                Ok(latency) => format!("ok   {latency:>9.1?}"),
                Err(panic) => format!(
                    "FAIL {}",
                    panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("?")
                ),
            };
            report.push((format!("{} {script}", python.id), outcome.is_ok(), line));
        }
    });
    eprintln!("gdb attach, per interpreter and shape:");
    for (what, _, line) in &report {
        eprintln!("  {what:<28} {line}");
    }
    let failed: Vec<&str> = report
        .iter()
        .filter(|(_, ok, _)| !ok)
        .map(|(what, _, _)| what.as_str())
        .collect();
    assert!(failed.is_empty(), "gdb attach failed for: {failed:?}");
}

fn latency_report(python: &Interpreter, script: &str) {
    let samples: Vec<Duration> = (0..5).map(|_| attach_once(python, script)).collect();
    let (min, median, max) = min_median_max(samples);
    eprintln!(
        "gdb latency {} {script}: min {min:.0?} median {median:.0?} max {max:.0?} (inject() until claimed, 5 runs)",
        python.id,
    );
}

#[test]
fn latency_on_3_11() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    for script in ["busy.py", "sleeper.py"] {
        latency_report(python, script);
    }
}

/// A blocked main thread: the breakpoint route on 3.8 (after the grace
/// period), the any-thread pending call on 3.13.
#[test]
fn latency_with_a_blocked_main_thread() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for minor in ["3.8", "3.13"] {
        if let Some(python) = manifest.require(minor) {
            latency_report(python, "blocked_main.py");
        }
    }
}

#[test]
fn a_missing_gdb_is_reported_and_the_target_untouched() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let mut prepared = PreparedTarget::stage(spawn_target(python, "sleeper.py"), "missing gdb");
    let err = GdbInjector::with_program("/nonexistent/peeka-test/gdb")
        .inject(&prepared.request(Instant::now() + Duration::from_secs(5)))
        .unwrap_err();
    assert!(
        matches!(err, AttachError::DebuggerMissing { program: "gdb", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("apt-get install gdb"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(prepared.marker_runs(), 0);
    assert!(!prepared.staging.claimed());
    assert_left_clean(&mut prepared.process, "missing gdb");
    assert_eq!(prepared.process.stderr(), "");
}

#[test]
fn a_target_traced_by_someone_else_is_permission_denied() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let process = spawn_target(python, "sleeper.py");
    let pid = process.pid();
    // Another tracer: a thread of ours seizes the target (without stopping
    // it) and holds it until told to let go; its exit detaches it.
    let (seized_tx, seized_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let tracer = std::thread::spawn(move || {
        // SAFETY: PTRACE_SEIZE takes no pointers; addr and data are unused.
        let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid as libc::pid_t, 0usize, 0usize) };
        seized_tx.send(rc).unwrap();
        let _ = release_rx.recv();
    });
    assert_eq!(seized_rx.recv().unwrap(), 0, "PTRACE_SEIZE failed");

    let mut prepared = PreparedTarget::stage(process, "traced by another process");
    let err = GdbInjector::default()
        .inject(&prepared.request(Instant::now() + Duration::from_secs(10)))
        .unwrap_err();
    assert!(matches!(err, AttachError::PermissionDenied { .. }), "{err}");
    assert!(err.to_string().contains("already traced"), "{err}");
    assert!(gdb_processes_for(pid).is_empty(), "a gdb process remains");
    release_tx.send(()).unwrap();
    tracer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tracer_of(pid) != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(prepared.marker_runs(), 0);
    assert_left_clean(&mut prepared.process, "traced by another process");
    assert_eq!(prepared.process.stderr(), "");
}

/// When no thread runs Python at all (main thread in `Event().wait()`, a
/// worker in a long `time.sleep`), the attach fails with a timeout within
/// the deadline, and leaves nothing armed: no breakpoint, no gdb, no stop,
/// no script, and a queued call that does nothing when it finally runs.
#[test]
fn a_target_where_no_thread_runs_python_times_out_cleanly() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for minor in ["3.8", "3.13"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{minor} all_blocked.py");
        let mut prepared = PreparedTarget::parked_saving_code(
            python,
            "all_blocked.py",
            libc::SYS_futex as u32,
            what.clone(),
        );
        let pid = prepared.pid();
        let staging = &prepared.staging;
        let script_on_host = staging.host_dir.join(staging.script.file_name().unwrap());
        let script = fs::read(&script_on_host).unwrap();
        let deadline = Duration::from_secs(3);
        let (result, waited) = prepared.inject_timed(&GdbInjector::default(), deadline);
        let err = result.unwrap_err();
        assert!(matches!(err, AttachError::Timeout { .. }), "{what}: {err}");
        let text = err.to_string();
        assert!(text.contains("disarmed"), "{what}: {text}");
        if minor == "3.8" {
            assert!(text.contains("PyEval_SaveThread"), "{what}: {text}");
        } else {
            assert!(text.contains("any thread"), "{what}: {text}");
        }
        // The deadline, plus the time gdb takes to stop and detach.
        assert!(
            waited < deadline + Duration::from_secs(2),
            "{what}: the deadline was not kept ({waited:?})"
        );
        assert!(!script_on_host.exists(), "{what}: the script was left");
        assert_eq!(prepared.marker_runs(), 0, "{what}");
        assert_left_clean(&mut prepared.process, &what);
        prepared.assert_code_restored();

        // The queued call is disarmed: with the script put back, waking the
        // main thread (it runs its pending calls) must not load the agent.
        fs::write(&script_on_host, script).unwrap();
        assert!(signal_main_thread(pid, libc::SIGUSR1));
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !prepared.staging.claimed(),
            "{what}: the disarmed call ran the bootstrap"
        );
        assert_eq!(prepared.marker_runs(), 0, "{what}");
        assert_left_clean(&mut prepared.process, &what);
        prepared.assert_quiet();
        eprintln!("gdb {what}: timed out cleanly after {waited:.1?}");
    }
}

/// Whether a gdb process of the breakpoint route is attached to `pid` and
/// has let it run (its main thread is not in a tracing stop).
fn breakpoint_wait_in_progress(pid: u32) -> bool {
    let waiting_gdb = gdb_processes_for(pid).into_iter().any(|gdb| {
        fs::read(format!("/proc/{gdb}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("peeka-gdb-bp-"))
    });
    let state = fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).unwrap_or_default();
    let running = state
        .rfind(") ")
        .and_then(|at| state[at + 2..].chars().next())
        .is_some_and(|s| s == 'S' || s == 'R');
    waiting_gdb && tracer_of(pid) != 0 && running
}

/// gdb keeps `SIGINT` for itself. One sent to the target while gdb waits
/// at the breakpoint is sent on once gdb is gone: the target's handler
/// runs exactly once, and (woken by it, the main thread runs the queued
/// call) the attach succeeds.
#[test]
fn a_sigint_sent_to_the_target_during_the_breakpoint_wait_reaches_it() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for minor in ["3.8", "3.11"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{minor} all_blocked.py + SIGINT");
        let mut prepared = PreparedTarget::parked_saving_code(
            python,
            "all_blocked.py",
            libc::SYS_futex as u32,
            what.clone(),
        );
        let pid = prepared.pid();
        let request = prepared.request(Instant::now() + Duration::from_secs(8));
        let sender = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut settled = 0;
            while settled < 3 {
                if Instant::now() > deadline {
                    return false;
                }
                settled = if breakpoint_wait_in_progress(pid) {
                    settled + 1
                } else {
                    0
                };
                std::thread::sleep(Duration::from_millis(10));
            }
            signal_main_thread(pid, libc::SIGINT)
        });
        let result = GdbInjector::default().inject(&request);
        assert!(
            sender.join().unwrap(),
            "{what}: the breakpoint wait was not seen"
        );
        let timeline = result.unwrap_or_else(|e| panic!("{what}: {e}"));
        prepared.assert_loaded_exactly_once(Duration::from_secs(5), Duration::from_millis(300));
        let handled =
            fs::read_to_string(prepared.process.host_dir().join("sigint.txt")).unwrap_or_default();
        assert_eq!(handled.lines().count(), 1, "{what}: {:?}", timeline.steps);
        assert_left_clean_and_restored(&mut prepared);
        eprintln!("gdb {what}: {:?}", timeline.steps);
    }
}

/// On 3.8-3.11, the breakpoint wait ends as soon as the main thread runs
/// the queued call after all (it is woken late): the attach succeeds early,
/// once, whichever route won.
#[test]
fn a_main_thread_that_wakes_during_the_breakpoint_wait_ends_it() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for minor in ["3.8", "3.11"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{minor} pauser.py");
        let mut prepared = PreparedTarget::parked_saving_code(
            python,
            "pauser.py",
            libc::SYS_pause as u32,
            what.clone(),
        );
        let pid = prepared.pid();
        let started = Instant::now();
        let request = prepared.request(started + Duration::from_secs(10));
        // Wake the main thread once gdb is (most likely) waiting at the
        // breakpoint: after the first session and the grace period.
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1200));
            // SAFETY: kill takes no pointers.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
        });
        let timeline = GdbInjector::default()
            .inject(&request)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let waited = started.elapsed();
        waker.join().unwrap();
        assert!(
            waited < Duration::from_secs(5),
            "{what}: the wait did not end with the claim ({waited:?}): {:?}",
            timeline.steps
        );
        prepared.assert_loaded_exactly_once(Duration::from_secs(5), Duration::from_millis(300));
        assert_left_clean_and_restored(&mut prepared);
        eprintln!(
            "gdb {what}: claimed after {waited:.1?}: {:?}",
            timeline.steps
        );
    }
}

/// 3.8-3.11: children forked while the breakpoint is in place (the main
/// thread is blocked, the only other thread never calls
/// `PyEval_SaveThread` but forks children that do) must not inherit it.
#[test]
fn children_forked_during_the_breakpoint_wait_survive() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for minor in ["3.8", "3.11"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{minor} ptrace_forker.py");
        let mut prepared = PreparedTarget::parked_saving_code(
            python,
            "ptrace_forker.py",
            libc::SYS_futex as u32,
            what.clone(),
        );
        let pid = prepared.pid();
        let result = GdbInjector::default()
            .inject(&prepared.request(Instant::now() + Duration::from_secs(2)));
        assert!(
            matches!(result, Err(AttachError::Timeout { .. })),
            "{what}: {result:?}"
        );
        assert_left_clean(&mut prepared.process, &what);
        prepared.assert_code_restored();
        let report = prepared.process.host_dir().join("children.txt");
        // SAFETY: kill takes no pointers.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
        let counts = wait_for_report(&report, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{what}: no report"));
        let ok = assert_forked_children_survived(&counts, &prepared.process, &what);
        prepared.assert_quiet();
        eprintln!("gdb {what}: {ok} children forked during the attach, all exited normally");
    }
}

/// The main interpreter found in memory (3.12: fixed offsets checked
/// against the live process; 3.13+: the debug offsets) is the one
/// `PyInterpreterState_Main()` returns, called in the live target by gdb.
#[test]
fn the_main_interpreter_is_found_without_debug_info() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for minor in ["3.12", "3.13", "3.14", "3.15"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{} sleeper.py", python.id);
        let mut process = spawn_target(python, "sleeper.py");
        let pid = process.pid();
        let target = Target::inspect(pid).unwrap();
        let found = main_interpreter(&target).unwrap_or_else(|e| panic!("{what}: {e}"));
        let function = target
            .python
            .symbol_address("PyInterpreterState_Main")
            .unwrap();
        let output = Command::new("gdb")
            .args(["--batch", "--nx", "-iex", "set auto-load off"])
            .args(["-iex", "set auto-solib-add off", "-p", &pid.to_string()])
            .args([
                "-ex",
                &format!("printf \"PEEKA-MAIN %lu\\n\", ((void *(*)(void)) {function:#x})()"),
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let reported: u64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("PEEKA-MAIN "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{what}: {stdout}"));
        assert_eq!(found, reported, "{what}");
        assert_left_clean(&mut process, &what);
        eprintln!("{what}: main interpreter at {found:#x}, as PyInterpreterState_Main() says");
    }
}

/// After a timeout the queued call is disarmed: even with the bootstrap
/// script put back, the call does nothing when the main thread finally runs.
#[test]
fn a_late_pending_call_is_disarmed() {
    let Some(manifest) = manifest_with_working_gdb() else {
        return;
    };
    for minor in ["3.8", "3.11", "3.13"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let what = format!("{minor} pauser.py");
        let mut prepared = PreparedTarget::stage(spawn_target(python, "pauser.py"), what.clone());
        let pid = prepared.pid();
        let staging = &prepared.staging;
        let script_on_host = staging.host_dir.join(staging.script.file_name().unwrap());
        let script = fs::read(&script_on_host).unwrap();
        let err = GdbInjector::default()
            .inject(&prepared.request(Instant::now() + Duration::from_secs(2)))
            .unwrap_err();
        assert!(matches!(err, AttachError::Timeout { .. }), "{minor}: {err}");
        assert!(err.to_string().contains("disarmed"), "{minor}: {err}");

        // Put the script back, then wake the main thread: an armed call
        // would now load the agent.
        fs::write(&script_on_host, script).unwrap();
        // SAFETY: kill takes no pointers.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) }, 0);
        std::thread::sleep(Duration::from_millis(500));
        assert!(
            !prepared.staging.claimed(),
            "{minor}: the disarmed call ran the bootstrap"
        );
        assert_eq!(prepared.marker_runs(), 0, "{minor}");
        assert_left_clean(&mut prepared.process, &what);
        assert_eq!(
            prepared.process.stderr(),
            "",
            "{minor}: the target printed errors"
        );

        // The same target accepts a new attach once its main thread runs:
        // keep waking it while gdb queues the call.
        let staging = StagingDir::marker(&prepared.target);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let waker = std::thread::spawn(move || {
            while stop_rx.recv_timeout(Duration::from_millis(20)).is_err() {
                // SAFETY: kill takes no pointers.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGUSR1) };
            }
        });
        let request = InjectRequest {
            target: &prepared.target,
            staging: &staging,
            deadline: Instant::now() + Duration::from_secs(10),
        };
        let result = GdbInjector::default().inject(&request);
        stop_tx.send(()).unwrap();
        waker.join().unwrap();
        result.unwrap_or_else(|e| panic!("{minor}: second attach: {e}"));
        assert!(matches!(
            staging.wait_status(Instant::now() + Duration::from_secs(5)),
            Some(BootstrapStatus::Loaded(_))
        ));
        assert_eq!(marker_runs(&staging), 1, "{minor}");
        assert_left_clean(
            &mut prepared.process,
            &format!("{minor} pauser.py, second attach"),
        );
    }
}

/// Waits until the main thread of `pid` is parked in `select()` (glibc
/// makes it `pselect6` on x86_64).
fn wait_until_main_blocks_in_select(pid: u32) {
    let numbers = [libc::SYS_select, libc::SYS_pselect6].map(|n| n.to_string());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut settled = 0;
    while settled < 3 {
        assert!(
            Instant::now() < deadline,
            "process {pid} never blocked in select()"
        );
        let now = fs::read_to_string(format!("/proc/{pid}/task/{pid}/syscall")).unwrap_or_default();
        let number = now.split_whitespace().next().unwrap_or("");
        settled = if numbers.iter().any(|n| n == number) {
            settled + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Attaches with the gdb method (the whole `attach()`, as the CLI does) to
/// a `select_main.py` target of `python` whose main thread is parked in
/// `select()`. Where gdb works, the agent loads exactly once; where it
/// cannot make inferior calls, the attach is refused with the probe's
/// reason before the target is touched. In both cases the target runs on
/// unharmed: alive, silent, untraced, not stopped, no gdb left, its main
/// thread still in `select()`; and after a refusal no private directory is
/// left.
fn attach_to_a_select_target(python: &Interpreter, gdb: &HostGdb) {
    let what = format!("{} select_main.py", python.id);
    let mut process = spawn_target(python, "select_main.py");
    let pid = process.pid();
    wait_until_main_blocks_in_select(pid);
    let target = Target::inspect(pid).unwrap();
    let private_dir = target.host_path(&Staging::target_dir_for(&target));
    let mut options = AttachOptions::new(marker_agent());
    options.method = MethodChoice::Only(Method::Gdb);
    options.timeout = Duration::from_secs(15);
    let started = Instant::now();
    let result = attach(pid, &options);
    let took = started.elapsed();
    match (gdb, result) {
        (HostGdb::Works, Ok(attached)) => {
            assert!(
                matches!(attached.status, BootstrapStatus::Loaded(_)),
                "{what}: {:?}",
                attached.status
            );
            std::thread::sleep(Duration::from_millis(300));
            assert_eq!(marker_runs(&attached.staging), 1, "{what}");
            attached.staging.remove_all();
            eprintln!("gdb {what}: attached in {took:.1?}");
        }
        (HostGdb::Works, Err(error)) => panic!("{what}: {error}"),
        (HostGdb::CannotCall(unusable), Err(error)) => {
            let text = error.to_string();
            assert!(
                matches!(
                    &error,
                    AttachError::MethodUnavailable {
                        method: Method::Gdb,
                        ..
                    }
                ),
                "{what}: {text}"
            );
            assert!(text.contains(&unusable.headline()), "{what}: {text}");
            assert!(text.contains("ptrace method"), "{what}: {text}");
            assert!(!text.contains("--method"), "{what}: {text}");
            assert!(
                !private_dir.exists(),
                "{what}: the refusal left {}",
                private_dir.display()
            );
            eprintln!("gdb {what}: refused in {took:.1?}: {text}");
        }
        (HostGdb::CannotCall(_), Ok(_)) => {
            panic!("{what}: a gdb that cannot make inferior calls was used")
        }
    }
    // A select() that failed raises at once; give it time to show.
    std::thread::sleep(Duration::from_millis(300));
    assert_left_clean(&mut process, &what);
    assert_eq!(process.stderr(), "", "{what}: the target printed errors");
    wait_until_main_blocks_in_select(pid);
}

/// Issue 13, part 4: a gdb that cannot restore a thread's registers after
/// an inferior call (gdb 13.1 on a CPU with AMX) made `select()` in the
/// target's main thread fail with `OSError: [Errno 514]`, killing it. The
/// gdb method must attach where gdb works and refuse before touching the
/// target where it does not; the target runs on unharmed in both cases.
#[test]
fn gdb_method_never_harms_a_target_parked_in_select() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(gdb) = host_gdb() else {
        return;
    };
    if let HostGdb::CannotCall(unusable) = &gdb {
        refusal_banner(unusable);
    }
    for id in ["3.8", "3.11", "3.13"] {
        if let Some(python) = manifest.require(id) {
            attach_to_a_select_target(python, &gdb);
        }
    }
}

/// `doctor` reports the host's gdb as the method's check found it: where
/// it cannot make inferior calls, as a warning with gdb's message and the
/// fix, and gdb is not among the methods expected to work.
#[test]
fn doctor_reports_what_the_hosts_gdb_can_do() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let Some(gdb) = host_gdb() else {
        return;
    };
    let mut process = spawn_target(python, "sleeper.py");
    let diagnosis = doctor(process.pid());
    let finding = diagnosis.finding(check::GDB).unwrap();
    match &gdb {
        HostGdb::Works => {
            assert_eq!(finding.severity, Severity::Ok, "{diagnosis}");
            assert!(
                diagnosis.usable_methods.contains(&Method::Gdb),
                "{diagnosis}"
            );
        }
        HostGdb::CannotCall(unusable) => {
            refusal_banner(unusable);
            assert_eq!(finding.severity, Severity::Warning, "{diagnosis}");
            assert!(
                finding.summary.contains(&unusable.headline()),
                "{diagnosis}"
            );
            let fix = finding.fix.as_deref().unwrap_or("");
            assert!(fix.contains("newer gdb"), "{diagnosis}");
            assert!(fix.contains("ptrace method"), "{diagnosis}");
            assert_eq!(diagnosis.usable_methods, [Method::Ptrace], "{diagnosis}");
            assert!(
                diagnosis
                    .why_not(Method::Gdb)
                    .is_some_and(|why| why.contains(&unusable.reason())),
                "{diagnosis}"
            );
            if unusable.cpu_feature.is_some() {
                assert!(finding.summary.contains("AMX"), "{diagnosis}");
            }
        }
    }
    assert!(diagnosis.can_attach(), "{diagnosis}");
    assert_left_clean(&mut process, "doctor of 3.11 sleeper.py");
    assert_eq!(process.stderr(), "");
}
