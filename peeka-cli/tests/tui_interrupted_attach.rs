//! SIGTERM, SIGHUP and Ctrl-C while the real `peeka` TUI attaches, in
//! tmux like a person at a terminal, against a real 3.11 target whose main
//! thread is parked in `select()` while a worker thread runs Python
//! (`tests/targets/select_heartbeat.py`).
//!
//! Each round runs `peeka PID` (which attaches at once) and, at a random
//! moment of the attach, sends it SIGTERM or SIGHUP, or presses Ctrl-C.
//! `peeka` must finish the attach, restore the terminal (the alternate
//! screen is off), say what happened in one line, and exit with 128 + N
//! for a signal (0 for the key). The target stays alive, quiet and
//! beating; an agent that loaded is detached between rounds, and no
//! private directory is left without one.
//!
//! Before, SIGTERM and SIGHUP killed `peeka` wherever it was: in the middle
//! of an injection (the target could die of the breakpoint left in it) and
//! with the terminal left in raw mode on the alternate screen.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{beating, catches_the_signals, private_dir, run, seed_from_env, state_dir};
use peeka_testkit::{Interpreter, Manifest, TargetProcess};

const LIMIT: Duration = Duration::from_secs(30);

/// A private tmux server (its own socket) with one shell, killed when
/// dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(env: &[(&str, &str)]) -> Self {
        let tmux = Self {
            socket: format!("peeka-tui-signals-{}", std::process::id()),
        };
        let mut command = tmux.command();
        command.args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            "120",
            "-y",
            "40",
        ]);
        for (name, value) in env {
            command.args(["-e", &format!("{name}={value}")]);
        }
        command.args(["bash", "--norc", "--noprofile"]);
        let output = command.output().unwrap_or_else(|e| {
            panic!("cannot run tmux ({e}); this test needs it: apt-get install -y tmux")
        });
        assert!(output.status.success(), "tmux new-session: {output:?}");
        tmux
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &self.socket]);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.command().args(args).output().unwrap();
        assert!(output.status.success(), "tmux {args:?}: {output:?}");
        output
    }

    fn format(&self, format: &str) -> String {
        let output = self.run(&["display-message", "-p", "-t", "tui", format]);
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-J", "-t", "tui"]).stdout)
            .into_owned()
    }

    fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "waited {LIMIT:?} for {what}; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

/// The pid of the `peeka` the shell `shell` started, once it runs.
fn peeka_child(shell: u32) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
        let (name, rest) = stat.split_once(" (")?.1.rsplit_once(')')?;
        let parent: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (parent == shell && name == "peeka").then_some(pid)
    })
}

/// How `peeka` is interrupted in a round.
#[derive(Debug, Clone, Copy)]
enum Interruption {
    Signal(i32),
    CtrlC,
}

#[test]
fn signals_and_ctrl_c_while_the_tui_attaches_leave_target_and_terminal_intact() {
    let Some(manifest) = Manifest::load_or_skip() else {
        return;
    };
    let Some(python) = manifest.require("3.11") else {
        return;
    };
    let id = python.id.clone();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/targets/select_heartbeat.py");
    let spawn = |python: &Interpreter| {
        let target = TargetProcess::spawn(python, &script, &[], &[])
            .unwrap_or_else(|e| panic!("{}: cannot start the target: {e}", python.id));
        assert!(beating(&target), "{}: no heartbeat", python.id);
        target
    };
    let mut target = spawn(python);
    let state = state_dir(&format!("tui-signals-{id}"));
    let state_text = state.display().to_string();
    let tmux = Tmux::start(&[
        ("XDG_STATE_HOME", &state_text),
        ("PS1", "shell$ "),
        ("TERM", "screen-256color"),
    ]);
    tmux.wait_for("the shell prompt", |s| s.contains("shell$"));
    let shell: u32 = tmux.format("#{pane_pid}").parse().unwrap();
    let mut seed = seed_from_env("PEEKA_SIGNAL_SEED");
    eprintln!("random delays: PEEKA_SIGNAL_SEED={seed}");
    let mut below = |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let plan = [
        (Interruption::Signal(libc::SIGTERM), 8),
        (Interruption::Signal(libc::SIGHUP), 8),
        (Interruption::CtrlC, 6),
    ];
    let mut failures = Vec::new();
    let mut round = 0;
    let started = Instant::now();
    for (interruption, rounds) in plan {
        for _ in 0..rounds {
            round += 1;
            let pid = target.pid();
            let dir = private_dir(python, &target);
            let delay = Duration::from_millis(below(151));
            let what = format!("{id} round {round} ({interruption:?} after {delay:?})");
            tmux.run(&["send-keys", "-t", "tui", "clear", "Enter"]);
            tmux.wait_for("a clear screen", |s| s.trim() == "shell$");
            tmux.run(&[
                "send-keys",
                "-t",
                "tui",
                "-l",
                &format!(
                    "{} {pid} ; echo peeka-exit-{round}=$?",
                    env!("CARGO_BIN_EXE_peeka")
                ),
            ]);
            tmux.run(&["send-keys", "-t", "tui", "Enter"]);
            let launched = Instant::now();
            let peeka = loop {
                if let Some(peeka) = peeka_child(shell) {
                    break peeka;
                }
                assert!(
                    launched.elapsed() < Duration::from_secs(10),
                    "{what}: peeka did not start"
                );
                std::thread::sleep(Duration::from_micros(500));
            };
            // Until it catches the signals, a signal kills it whatever it
            // does (a binary that never does is signalled once its attach
            // has begun).
            while launched.elapsed() < Duration::from_secs(2)
                && !catches_the_signals(peeka)
                && !dir.exists()
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep((launched + delay).saturating_duration_since(Instant::now()));
            match interruption {
                // SAFETY: kill(2) on the peeka this test started.
                Interruption::Signal(signal) => unsafe {
                    libc::kill(peeka as libc::pid_t, signal);
                },
                Interruption::CtrlC => {
                    tmux.run(&["send-keys", "-t", "tui", "C-c"]);
                }
            }
            let marker = format!("peeka-exit-{round}=");
            let screen = tmux.wait_for(&format!("{what}: the exit"), |s| {
                s.lines().any(|l| l.starts_with(&marker))
            });
            let code: i32 = screen
                .lines()
                .find_map(|l| l.strip_prefix(&marker))
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(-1);
            let alternate = tmux.format("#{alternate_on}") == "1";
            if alternate {
                failures.push(format!(
                    "{what}: the terminal was left on the alternate screen:\n{screen}"
                ));
                tmux.run(&["send-keys", "-t", "tui", "reset", "Enter"]);
            }
            match interruption {
                Interruption::Signal(signal) => {
                    let name = if signal == libc::SIGTERM {
                        "SIGTERM"
                    } else {
                        "SIGHUP"
                    };
                    if code != 128 + signal || !screen.contains(&format!("peeka: {name} received"))
                    {
                        failures.push(format!(
                            "{what}: exit code {code}, expected {} with `peeka: {name} received`:\n{screen}",
                            128 + signal
                        ));
                    }
                }
                Interruption::CtrlC => {
                    // 130: the key came before the terminal was in raw
                    // mode, as SIGINT.
                    if code != 0 && code != 130 {
                        failures.push(format!(
                            "{what}: exit code {code}, expected 0 (or 130):\n{screen}"
                        ));
                    }
                }
            }
            let mut lost = false;
            if !target.is_alive() {
                failures.push(format!("{what}: the target died"));
                lost = true;
            } else if !beating(&target) {
                failures.push(format!("{what}: the target's heartbeat stopped"));
                lost = true;
            } else if !target.stderr().is_empty() {
                failures.push(format!("{what}: the target printed {}", target.stderr()));
                lost = true;
            }
            if dir.exists() {
                let detached = run(&state, &["detach", "--pid", &pid.to_string()], LIMIT);
                if detached.code != 0 {
                    failures.push(format!(
                        "{what}: {} was left without an agent: {:?}",
                        dir.display(),
                        detached.last()
                    ));
                    let _ = fs::remove_dir_all(&dir);
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                while dir.exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if lost {
                target = spawn(python);
            }
        }
    }
    eprintln!(
        "{id}: {round} interrupted TUI attaches in {:.1?}; {} failures",
        started.elapsed(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {round} rounds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
