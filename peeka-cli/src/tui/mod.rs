//! `peeka`, the terminal UI: a live workspace on one attached process.
//! Built with ratatui on `peeka-core`'s async client. See `docs/tui.md`.

#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod pattern_input;
pub(crate) mod view;
pub(crate) mod views;

/// Runs the TUI with the process's arguments and returns its exit code.
pub(crate) fn run() -> crate::ExitCode {
    crate::ExitCode::Usage
}
