//! `peeka`, the terminal UI: a live workspace on one attached process.
//! Built with ratatui on `peeka-core`'s async client. See `docs/tui.md`.
//!
//! The way through: [`run`] parses the arguments, starts a tokio runtime
//! (the session and the views' tasks live there), takes the terminal
//! ([`terminal`]: restored on exit, error and panic) and hands over to the
//! application loop ([`app`]): the process picker ([`picker`]) until a
//! session is attached, then the views ([`views`], one per number key).

pub(crate) mod app;
pub(crate) mod line_edit;
pub(crate) mod pattern_input;
pub(crate) mod picker;
pub(crate) mod processes;
pub(crate) mod stream_control;
pub(crate) mod terminal;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod theme;
pub(crate) mod view;
pub(crate) mod views;

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use peeka_attach::MethodChoice;

use crate::exit_code::ExitCode;

/// The command line of `peeka`.
#[derive(Debug, Parser)]
#[command(
    name = "peeka",
    version,
    about = "Live diagnostics of a running CPython process, in the terminal",
    long_about = "Live diagnostics of a running CPython process, in the terminal.\n\n\
        Without PID, peeka lists the Python processes of the machine to pick one. \
        Keys: 1-0 switch views, ? shows every key, q quits (the agent stays attached \
        with no probe of peeka's left; `peeka-cli detach` removes it).",
    after_help = "For scripts, use peeka-cli (JSON Lines); see docs/tui.md and docs/cli.md."
)]
pub(crate) struct TuiArgs {
    /// The process to attach to; skips the process picker.
    pub(crate) pid: Option<u32>,
    /// How to get in: auto (pep768 on 3.14+, else ptrace, else gdb), pep768,
    /// ptrace, gdb, lldb.
    #[arg(long, default_value = "auto", value_parser = crate::args::parse_method)]
    pub(crate) method: MethodChoice,
    /// Give the attach this many seconds.
    #[arg(long, default_value = "10", value_parser = crate::args::parse_seconds, value_name = "SECONDS")]
    pub(crate) timeout: Duration,
}

/// Runs the TUI with the process's arguments and returns its exit code.
pub(crate) fn run() -> ExitCode {
    let args = match crate::args::parse_command_line::<TuiArgs>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    if !crossterm::tty::IsTty::is_tty(&std::io::stdout()) {
        complain("peeka is interactive and needs a terminal; for scripts use peeka-cli");
        return ExitCode::Usage;
    }
    // SIGINT, SIGTERM and SIGHUP: recorded for the loop, which quits
    // cleanly (after the attach in progress, if any).
    crate::interrupt::install(crate::interrupt::Idle::Record);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("peeka-tui")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            complain(&format!("peeka: cannot start its runtime: {e}"));
            return ExitCode::NoTarget;
        }
    };
    terminal::install_panic_hook();
    let outcome = match terminal::TerminalGuard::enter() {
        Ok(mut guard) => app::App::new(&args, runtime.handle().clone()).run(guard.screen()),
        Err(e) => Err(std::io::Error::other(format!(
            "peeka cannot set up the terminal ({e}); run it in an interactive terminal"
        ))),
    };
    // The guard is dropped: the terminal is the user's again.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match outcome {
        Ok(ended) => {
            if let Some(message) = &ended.message {
                let _ = writeln!(std::io::stdout(), "{message}");
            }
            ended.code
        }
        Err(e) => {
            complain(&format!("peeka: {e}"));
            ExitCode::NoTarget
        }
    }
}

fn complain(message: &str) {
    let _ = writeln!(std::io::stderr(), "{message}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_takes_a_pid_a_method_and_a_timeout() {
        let args =
            TuiArgs::try_parse_from(["peeka", "42", "--method", "gdb", "--timeout", "3"]).unwrap();
        assert_eq!(args.pid, Some(42));
        assert_eq!(args.timeout, Duration::from_secs(3));
        assert!(matches!(args.method, MethodChoice::Only(_)));
        let none = TuiArgs::try_parse_from(["peeka"]).unwrap();
        assert_eq!(none.pid, None);
        assert!(TuiArgs::try_parse_from(["peeka", "--method", "dtrace"]).is_err());
    }
}
