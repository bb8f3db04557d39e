//! End to end through the real `peeka` binary, driven in tmux like a
//! person at a terminal: start the demo service, launch `peeka`, pick the
//! service in the process picker, watch a function and see its calls with
//! their values, stop and restart the watch, switch to the threads and
//! dashboard views, quit. Then the
//! terminal is the shell's again (tmux's alternate screen is off, the
//! prompt is back) and the service has no probe left (`peeka-cli reset
//! --list`), though its agent stays for the next client.
//!
//! One interpreter suffices for the TUI (the commands it uses are tested
//! on every interpreter elsewhere): 3.12, else the first modern one of the
//! manifest. tmux is required; the test fails, saying so, without it.
//!
//! With `PEEKA_TUI_CAPTURES=DIR`, each screen the test waited for is also
//! written to `DIR/<name>.txt` (the captures in `docs/tui.md` come from it).
#![allow(clippy::print_stderr, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use peeka_testkit::{Interpreter, Manifest, TargetProcess};
use serde_json::Value;

/// How long any one screen may take to appear.
const SCREEN_LIMIT: Duration = Duration::from_secs(30);
const WIDTH: u16 = 150;
const HEIGHT: u16 = 45;

/// A private tmux server (its own socket), killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(shell_env: &[(&str, &str)]) -> Self {
        let socket = format!("peeka-tui-test-{}", std::process::id());
        let tmux = Self { socket };
        let mut command = tmux.command();
        command.args([
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            &WIDTH.to_string(),
            "-y",
            &HEIGHT.to_string(),
        ]);
        for (name, value) in shell_env {
            command.args(["-e", &format!("{name}={value}")]);
        }
        command.args(["bash", "--norc", "--noprofile"]);
        let output = command.output().unwrap_or_else(|e| {
            panic!("cannot run tmux ({e}); the TUI test needs it: apt-get install -y tmux")
        });
        assert!(
            output.status.success(),
            "tmux new-session failed: {output:?}"
        );
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

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "tui", "-l", text]);
    }

    /// Presses keys by tmux name (`Enter`, `Escape`, `q`).
    fn press(&self, key: &str) {
        self.run(&["send-keys", "-t", "tui", key]);
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "tui"]).stdout).into_owned()
    }

    fn alternate_screen_on(&self) -> bool {
        let output = self.run(&["display-message", "-p", "-t", "tui", "#{alternate_on}"]);
        String::from_utf8_lossy(&output.stdout).trim() == "1"
    }

    /// Waits until the screen satisfies `wanted`; the screen. Panics with
    /// the last screen after [`SCREEN_LIMIT`].
    fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_LIMIT;
        loop {
            let screen = self.screen();
            if wanted(&screen) {
                save_capture(what, &screen);
                return screen;
            }
            if Instant::now() > deadline {
                panic!("waited {SCREEN_LIMIT:?} for {what}; the screen:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

fn save_capture(what: &str, screen: &str) {
    if let Some(dir) = std::env::var_os("PEEKA_TUI_CAPTURES") {
        let name: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(Path::new(&dir).join(format!("{name}.txt")), screen);
    }
}

/// 3.12, else the first modern interpreter of the manifest.
fn interpreter(manifest: &Manifest) -> &Interpreter {
    for id in ["3.12", "3.13", "3.11", "3.14", "3.10"] {
        if let Some(python) = manifest.get(id) {
            return python;
        }
    }
    panic!(
        "the TUI test needs CPython 3.10-3.14 and the manifest has none of them; run scripts/provision-pythons.sh"
    );
}

/// `peeka-cli args`, its JSON result line.
fn peeka_cli(state: &Path, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_peeka-cli"))
        .args(args)
        .env("XDG_STATE_HOME", state)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["type"] == "result" || line["type"] == "success")
        .unwrap_or_else(|| panic!("peeka-cli {args:?} gave no result: {output:?}"))
}

fn probes(state: &Path, pid: &str) -> Vec<Value> {
    peeka_cli(state, &["reset", "--list", "--pid", pid])["data"]["probes"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The key the tab bar shows for view `title` (`8` in ` 8 threads `).
fn key_of(screen: &str, title: &str) -> String {
    // capture-pane trims trailing spaces: pad the line again.
    let tabs = format!("{} ", screen.lines().next().unwrap_or(""));
    let at = tabs
        .find(&format!(" {title} "))
        .unwrap_or_else(|| panic!("no tab {title} in: {tabs}"));
    tabs[..at].chars().last().unwrap().to_string()
}

#[test]
fn pick_watch_threads_dashboard_quit_leaves_no_probe() {
    let manifest =
        Manifest::load().unwrap_or_else(|e| panic!("the TUI test needs the interpreters: {e}"));
    let python = interpreter(&manifest);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo_target.py");
    let target = TargetProcess::spawn(python, &script, &[], &[])
        .unwrap_or_else(|e| panic!("{}: cannot start demo_target.py: {e}", python.id));
    let pid = target.pid().to_string();
    let state: PathBuf =
        std::env::temp_dir().join(format!("peeka-tui-test-{}", std::process::id()));
    std::fs::create_dir_all(&state).unwrap();
    let state_text = state.display().to_string();

    let tmux = Tmux::start(&[
        ("XDG_STATE_HOME", &state_text),
        ("PS1", "shell$ "),
        ("TERM", "screen-256color"),
    ]);
    tmux.wait_for("the shell prompt", |s| s.contains("shell$"));
    tmux.type_text(&format!(
        "{} ; echo peeka-exit=$?",
        env!("CARGO_BIN_EXE_peeka")
    ));
    tmux.press("Enter");

    // The picker lists the service; typing its pid filters, Enter attaches.
    tmux.wait_for("picker", |s| {
        s.contains("pick the Python process") && s.contains(&pid)
    });
    tmux.type_text(&pid);
    tmux.wait_for("picker_filtered", |s| s.contains("1 of "));
    tmux.press("Enter");
    let dashboard = tmux.wait_for("attached", |s| {
        s.contains("1 dashboard") && s.contains(&format!("pid {pid} · Python"))
    });

    // Watch: a pattern, Enter, and the calls with their values.
    tmux.press(&key_of(&dashboard, "watch"));
    tmux.wait_for("watch_idle", |s| s.contains("no watch running"));
    tmux.press("e");
    tmux.type_text("__main__.place_order");
    tmux.press("Enter");
    tmux.wait_for("watch", |s| {
        s.contains("● watching __main__.place_order")
            && s.contains("(1 function")
            && (s.contains("=> {\"item\"") || s.contains("!! __main__.OrderError"))
            && s.matches("__main__.place_order").count() >= 8
            && s.contains("arguments (3)")
            && (s.contains("result") || s.contains("exception"))
    });
    let installed = probes(&state, &pid);
    assert_eq!(installed.len(), 1, "the watch's probe: {installed:?}");
    assert_eq!(installed[0]["pattern"], "__main__.place_order");

    // `s` stops the stream: the agent removes the probe. Enter starts the
    // watch again, so that quitting has a probe to remove.
    tmux.press("s");
    tmux.wait_for("watch_stopped", |s| {
        s.contains("watch ended: cancelled; probe removed")
    });
    assert!(probes(&state, &pid).is_empty(), "`s` left the probe");
    tmux.press("Enter");
    tmux.wait_for("watch_again", |s| {
        s.contains("● watching __main__.place_order")
    });
    assert_eq!(probes(&state, &pid).len(), 1, "the watch started again");

    // Threads: the list and a stack.
    tmux.press(&key_of(&dashboard, "threads"));
    tmux.wait_for("threads", |s| {
        s.contains("MainThread")
            && s.contains("restocker")
            && s.contains("stack of ")
            && s.contains("demo_target.py:")
    });

    // The dashboard: threads, memory, hot functions.
    tmux.press(&key_of(&dashboard, "dashboard"));
    tmux.wait_for("dashboard", |s| {
        s.contains("busiest first")
            && s.contains("rss ")
            && s.contains("hot functions")
            && !s.contains("reading…")
    });

    // Quit: the shell is back, the terminal restored, no probe left.
    tmux.press("q");
    let after = tmux.wait_for("after_quit", |s| {
        s.lines().any(|l| l.starts_with("peeka-exit=")) && s.trim_end().ends_with("shell$")
    });
    assert!(after.lines().any(|l| l == "peeka-exit=0"), "{after}");
    assert!(
        after.contains("keeps its agent, with no probe of peeka's"),
        "{after}"
    );
    assert!(
        !tmux.alternate_screen_on(),
        "the terminal is still on the alternate screen:\n{after}"
    );
    let prompt = after
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    assert!(
        prompt.starts_with("shell$"),
        "no prompt after quitting:\n{after}"
    );
    assert!(probes(&state, &pid).is_empty(), "peeka left a probe behind");

    let detached = peeka_cli(&state, &["detach", "--pid", &pid]);
    assert_eq!(detached["data"]["detached"], true, "{detached}");
    drop(target);
    let _ = std::fs::remove_dir_all(&state);
}
