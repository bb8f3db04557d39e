//! `peeka`: the terminal UI. See `docs/tui.md`.
fn main() -> std::process::ExitCode {
    peeka_cli::run_peeka_tui().into()
}
