//! `peeka-cli`: Peeka's scriptable command line (JSON Lines on stdout).

fn main() -> std::process::ExitCode {
    peeka_cli::run_peeka_cli().into()
}
