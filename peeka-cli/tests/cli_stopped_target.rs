//! `peeka-cli attach` of a process stopped by job control (SIGSTOP), with
//! the default method and with each method named, on real 3.11, 3.12 and
//! 3.14 targets whose worker thread runs Python and publishes a heartbeat
//! (`tests/targets/select_heartbeat.py`): it exits with code 3 at once,
//! saying why and how to continue (`kill -CONT PID`); the target stays
//! stopped, with the same threads, CPU time and context switches, and its
//! heartbeat does not move; nothing is staged for it. `doctor` reports the
//! stop as a blocker. After SIGCONT the target beats on, unharmed.
//!
//! Before, the attach resumed the stopped target's threads (its loop ran
//! on, the bootstrap's loader thread appeared) and then timed out.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{beating, heartbeat, private_dir, run, state_dir};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};

const LIMIT: Duration = Duration::from_secs(30);

fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a process this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

fn spawn_target(python: &Interpreter) -> TargetProcess {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/select_heartbeat.py");
    let target = TargetProcess::spawn(python, &script, &[], &[])
        .unwrap_or_else(|e| panic!("{}: cannot start select_heartbeat.py: {e}", python.id));
    assert!(
        beating(&target),
        "{}: the target has no heartbeat",
        python.id
    );
    target
}

/// `peeka-cli attach` of a SIGSTOPped target: exit code 3 at once, the
/// reason and the fix; the target stays stopped with the same threads and
/// CPU time, and nothing is staged for it.
#[test]
fn attaching_to_a_stopped_target_is_refused_and_leaves_it_stopped() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    for minor in ["3.11", "3.12", "3.14"] {
        let Some(python) = manifest.require(minor) else {
            continue;
        };
        let id = &python.id;
        let state = state_dir(&format!("stopped-{id}"));
        let mut target = spawn_target(python);
        let pid = target.pid();
        let dir = private_dir(python, &target);
        send(pid, libc::SIGSTOP);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads(pid).iter().all(|t| t.1 == 'T') {
            assert!(Instant::now() < deadline, "{id}: the target did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        let before = all_threads(pid);
        let beat = heartbeat(&target);
        let mut choices = vec![vec![], vec!["--method", "ptrace"]];
        if minor == "3.14" {
            choices.push(vec!["--method", "pep768"]);
        }
        for choice in choices {
            let pid_text = pid.to_string();
            let mut args = vec!["attach", pid_text.as_str(), "--timeout", "5"];
            args.extend(choice.iter().copied());
            let what = format!("{id} {args:?}");
            let started = Instant::now();
            let refused = run(&state, &args, LIMIT);
            let took = started.elapsed();
            std::thread::sleep(Duration::from_millis(200));
            assert_eq!(
                all_threads(pid),
                before,
                "{what}: the stopped target changed"
            );
            assert_eq!(heartbeat(&target), beat, "{what}: the stopped target ran");
            assert_eq!(refused.code, 3, "{what}: {:?}", refused.lines);
            let error = refused.last()["error"].as_str().unwrap_or("").to_owned();
            assert!(
                error.contains(&format!("process {pid} is stopped"))
                    && error.contains("SIGCONT")
                    && error.contains(&format!("kill -CONT {pid}")),
                "{what}: {error}"
            );
            assert_eq!(refused.last()["exit_code"], 3, "{what}");
            assert!(took < Duration::from_secs(3), "{what}: took {took:?}");
            assert!(!dir.exists(), "{what}: {} was left", dir.display());
        }
        // The doctor says the same, as a blocker (exit code 3).
        let doctor = run(&state, &["doctor", &pid.to_string()], LIMIT);
        assert_eq!(doctor.code, 3, "{id}: doctor: {:?}", doctor.lines);
        send(pid, libc::SIGCONT);
        assert!(beating(&target), "{id}: no heartbeat after SIGCONT");
        assert!(target.is_alive(), "{id}: the target died");
        assert_eq!(target.stderr(), "", "{id}: the target printed errors");
        eprintln!("{id}: attach refused while stopped, target untouched, beating after SIGCONT");
    }
}

/// Every thread of `pid`: tid, state, utime + stime, voluntary switches.
fn all_threads(pid: u32) -> Vec<(u32, char, u64, u64)> {
    let mut threads: Vec<(u32, char, u64, u64)> = fs::read_dir(format!("/proc/{pid}/task"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let tid: u32 = e.file_name().to_str()?.parse().ok()?;
                    let dir: PathBuf = e.path();
                    let stat = fs::read_to_string(dir.join("stat")).ok()?;
                    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                    let state = fields.first()?.chars().next()?;
                    let cpu = fields.get(11)?.parse::<u64>().ok()?
                        + fields.get(12)?.parse::<u64>().ok()?;
                    let status = fs::read_to_string(dir.join("status")).ok()?;
                    let switches = status
                        .lines()
                        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))?
                        .trim()
                        .parse()
                        .ok()?;
                    Some((tid, state, cpu, switches))
                })
                .collect()
        })
        .unwrap_or_default();
    threads.sort_unstable();
    threads
}
