//! The command line of `run`: the program, then `--` and the probe command.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::args::{parse_seconds, MonitorArgs, StackArgs, WatchArgs};
use crate::diagnostics_args::TraceArgs;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The Python interpreter to start the program with.
    #[arg(long, value_name = "PATH", default_value = "python3")]
    pub(crate) python: OsString,
    /// Run a module as a script (like `python -m MODULE`); the arguments
    /// before `--` are then all the module's.
    #[arg(short = 'm', value_name = "MODULE")]
    pub(crate) module: Option<String>,
    /// How long the interpreter and the agent may take to start.
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECONDS")]
    pub(crate) timeout: Duration,
    /// `SCRIPT [ARGS...] -- watch|stack|monitor|trace PATTERN [OPTIONS]`
    /// (with -m: `[ARGS...] -- ...`). The last `--` separates the program
    /// from the probe command.
    #[arg(
        value_name = "SCRIPT [ARGS...] -- COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..
    )]
    pub(crate) rest: Vec<OsString>,
}

/// The probe command after `--`.
#[derive(Debug, Parser)]
#[command(name = "peeka-cli run ... --", no_binary_name = true)]
pub(crate) struct ProbeLine {
    #[command(subcommand)]
    pub(crate) command: RunProbe,
}

/// The commands `run` can follow from the program's first line.
#[derive(Debug, Subcommand)]
pub(crate) enum RunProbe {
    /// Watch calls of a function: arguments, result, exception, cost.
    Watch(WatchArgs),
    /// Show the call stack leading to a function each time it is called.
    Stack(StackArgs),
    /// Per-interval call statistics of a function.
    Monitor(MonitorArgs),
    /// The call tree below a function, with timings, for each call.
    Trace(TraceArgs),
}

impl RunProbe {
    /// The `--pid` given to the probe command, which `run` cannot use.
    pub(crate) fn pid(&self) -> Option<u32> {
        match self {
            Self::Watch(args) => args.target.pid,
            Self::Stack(args) => args.target.pid,
            Self::Monitor(args) => args.target.pid,
            Self::Trace(args) => args.target.pid,
        }
    }
}

/// The program's part and the probe command's part of `rest`, split at the
/// last `--` (clap keeps a `--` met after the script among the values; one
/// right after the options, as in `run -m mod -- watch ...`, it takes
/// itself, and then there is none: the caller treats it).
pub(crate) fn split_rest(rest: &[OsString]) -> Option<(&[OsString], &[OsString])> {
    let at = rest.iter().rposition(|a| a == "--")?;
    Some((&rest[..at], &rest[at + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};

    fn parse(line: &[&str]) -> RunArgs {
        let cli = Cli::try_parse_from(line).unwrap();
        match cli.command {
            Command::Run(args) => args,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_program_and_the_probe_split_at_the_last_separator() {
        let args = parse(&[
            "peeka-cli",
            "run",
            "--python",
            "/usr/bin/python3.11",
            "app.py",
            "-v",
            "--",
            "x",
            "--",
            "watch",
            "__main__.load",
            "-n",
            "1",
        ]);
        assert_eq!(args.python, "/usr/bin/python3.11");
        let (program, probe) = split_rest(&args.rest).unwrap();
        assert_eq!(program, ["app.py", "-v", "--", "x"].map(OsString::from));
        let line = ProbeLine::try_parse_from(probe).unwrap();
        assert!(
            matches!(line.command, RunProbe::Watch(ref w) if w.pattern == "__main__.load" && w.times == Some(1))
        );
    }

    #[test]
    fn the_probe_after_the_separator_takes_send_budget() {
        let args = parse(&[
            "peeka-cli",
            "run",
            "app.py",
            "--",
            "watch",
            "__main__.load",
            "--send-budget",
            "30",
        ]);
        let (_, probe) = split_rest(&args.rest).unwrap();
        let RunProbe::Watch(watch) = ProbeLine::try_parse_from(probe).unwrap().command else {
            panic!("not watch")
        };
        assert_eq!(watch.budget.send_budget, Some(30));
        let refused = ProbeLine::try_parse_from(["trace", "m.f", "--send-budget", "51"]);
        assert!(refused.is_err());
    }

    #[test]
    fn a_module_takes_every_argument_before_the_separator() {
        let args = parse(&[
            "peeka-cli",
            "run",
            "-m",
            "pkg.tool",
            "a",
            "--",
            "stack",
            "pkg.f",
        ]);
        assert_eq!(args.module.as_deref(), Some("pkg.tool"));
        let (program, probe) = split_rest(&args.rest).unwrap();
        assert_eq!(program, ["a"].map(OsString::from));
        assert!(ProbeLine::try_parse_from(probe).is_ok());
    }
}
