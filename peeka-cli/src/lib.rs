//! The command-line front ends of Peeka.
//!
//! - `peeka-cli`: the scriptable client. Every command prints JSON Lines on
//!   stdout (one object per line with a `type` field: `status`, `success`,
//!   `error`, `event`, `observation`, `result`; the schema is in
//!   `docs/cli.md`), or with `--format text` a human-friendly rendering in
//!   colour (honouring `NO_COLOR`). Exit codes are documented in
//!   [`ExitCode`] and `docs/cli.md`.
//! - `peeka`: the terminal UI for a person debugging a live process
//!   (`docs/tui.md`).
//!
//! This crate is a thin layer over `peeka-core`'s typed client: it parses
//! arguments, picks the target (`--pid`, or the process attached last,
//! remembered per user), runs one command and decides output and exit code.
//! Library users should depend on `peeka-core` instead.
#![deny(missing_docs)]

mod args;
mod commands;
mod diagnostics_args;
mod diagnostics_text;
mod error;
pub mod exit_code;
mod flamegraph;
mod interrupt;
mod output;
mod remembered;
mod run_args;
mod runtime_args;
mod runtime_text;
mod session;
mod text;
mod tui;

pub use exit_code::ExitCode;

/// Runs the `peeka` terminal UI with the process's arguments and returns
/// its exit code. The terminal is restored on exit, on error and on panic.
pub fn run_peeka_tui() -> ExitCode {
    tui::run()
}

/// Runs `peeka-cli` with the process's arguments and returns its exit code.
///
/// SIGINT, SIGTERM and SIGHUP are taken over for the run: one that arrives
/// during an attach waits until the attach is finished safely (see
/// `docs/cli.md`, "Signals").
pub fn run_peeka_cli() -> ExitCode {
    match args::parse_command_line::<args::Cli>() {
        Ok(cli) => {
            interrupt::install(interrupt::Idle::Exit);
            commands::run(cli)
        }
        Err(code) => code,
    }
}
