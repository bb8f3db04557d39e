//! One module per command; [`run`] dispatches and turns the outcome into
//! output and an exit code.

mod attach;
mod detach;
mod diagnostics;
mod doctor;
mod probes;
mod reset;
mod run;
mod runtime;
mod stream;

use crate::args::{Cli, Command};
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;

/// Runs the parsed command line.
pub(crate) fn run(cli: Cli) -> ExitCode {
    let out = Output::new(cli.format);
    let (name, result) = match &cli.command {
        Command::Attach(args) => ("attach", attach::run(args, &out)),
        Command::Watch(args) => ("watch", probes::watch(args, &out)),
        Command::Stack(args) => ("stack", probes::stack(args, &out)),
        Command::Monitor(args) => ("monitor", probes::monitor(args, &out)),
        Command::Trace(args) => ("trace", diagnostics::trace(args, &out)),
        Command::Thread(args) => ("thread", diagnostics::thread(args, &out)),
        Command::Top(args) => ("top", diagnostics::top(args, &out)),
        Command::Sc(args) => ("sc", runtime::sc(args, &out)),
        Command::Sm(args) => ("sm", runtime::sm(args, &out)),
        Command::Inspect(args) => ("inspect", runtime::inspect(args, &out)),
        Command::Logger(args) => ("logger", runtime::logger(args, &out)),
        Command::Memory(args) => ("memory", runtime::memory(args, &out)),
        Command::Reset(args) => ("reset", reset::run(args, &out)),
        Command::Detach(args) => ("detach", detach::run(args, &out)),
        Command::Doctor(args) => ("doctor", doctor::run(args, &out)),
        Command::Run(args) => ("run", run::run(args, &out)),
    };
    match result {
        Ok(code) => code,
        Err(CliError {
            message,
            code,
            exit,
        }) => {
            out.error(name, &message, code.as_deref(), exit.code());
            exit
        }
    }
}
