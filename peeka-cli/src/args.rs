//! The command line of `peeka-cli` (option names follow the Python
//! implementation of Peeka).

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use peeka_attach::MethodChoice;

use crate::exit_code::{ExitCode, EXIT_CODES_HELP};

/// Live diagnostics for a running CPython process: attach without a
/// restart, watch functions, see stacks and call statistics, then leave the
/// process exactly as it was.
#[derive(Debug, Parser)]
#[command(name = "peeka-cli", version, after_help = EXIT_CODES_HELP)]
pub(crate) struct Cli {
    /// Output format: JSON Lines (one object per line, for scripts) or text
    /// (for people; colour unless NO_COLOR is set or stdout is not a terminal).
    #[arg(long, global = true, value_enum, default_value_t = Format::Jsonl)]
    pub(crate) format: Format,
    /// The command.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// sys.monitoring alone (3.12+; the default of `trace` there).
    Monitoring,
    /// `__code__` swapping (the default; on 3.12+ with sys.monitoring for
    /// the calls that bypass the function object).
    #[value(name = "code_swap", alias = "code-swap")]
    CodeSwap,
}

impl From<Backend> for peeka_core::client::ProbeBackend {
    fn from(backend: Backend) -> Self {
        match backend {
            Backend::Monitoring => Self::Monitoring,
            Backend::CodeSwap => Self::CodeSwap,
        }
    }
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Human-friendly text.
    Text,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Load the agent into a running Python process (remembered as the
    /// target of later commands).
    Attach(AttachArgs),
    /// Watch calls of a function: arguments, result, exception, cost.
    Watch(WatchArgs),
    /// Show the call stack leading to a function each time it is called.
    Stack(StackArgs),
    /// Per-interval call statistics of a function.
    Monitor(MonitorArgs),
    /// The call tree below a function, with timings, for each call.
    Trace(crate::diagnostics_args::TraceArgs),
    /// The threads: names, states, CPU time; one thread's stack; the busiest.
    Thread(crate::diagnostics_args::ThreadArgs),
    /// Sample what every thread executes: the hot functions, and flame graphs.
    Top(crate::diagnostics_args::TopArgs),
    /// Search the loaded classes by a glob over their names.
    Sc(crate::runtime_args::ScArgs),
    /// Search the methods of the classes a glob names.
    Sm(crate::runtime_args::SmArgs),
    /// Read a live value by its path, or find the instances of a class.
    Inspect(crate::runtime_args::InspectArgs),
    /// List the loggers, show one, or change a level.
    Logger(crate::runtime_args::LoggerArgs),
    /// Memory: overview, allocation tracing (tracemalloc), gc, references, dumps.
    Memory(crate::runtime_args::MemoryArgs),
    /// Remove probes (all, or those whose pattern matches), or list them.
    Reset(ResetArgs),
    /// Remove every probe, stop the agent and delete its files.
    Detach(TargetArgs),
    /// Explain whether and how Peeka can attach to a process.
    Doctor(DoctorArgs),
    /// Start a Python program with the agent loaded before its first line
    /// and follow one probe command on it: `run app.py ARGS -- watch
    /// __main__.load_config`; exits with the program's exit code.
    Run(crate::run_args::RunArgs),
}

/// Which process a command talks to.
#[derive(Debug, Clone, Args)]
pub(crate) struct TargetArgs {
    /// The target process (default: the one attached last by this user).
    #[arg(long, value_name = "PID")]
    pub(crate) pid: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct AttachArgs {
    /// The process to attach to.
    pub(crate) pid: u32,
    /// How to get in: auto (pep768 on 3.14+, else ptrace, else gdb), pep768,
    /// ptrace, gdb, lldb.
    #[arg(long, default_value = "auto", value_parser = parse_method)]
    pub(crate) method: MethodChoice,
    /// Give up after this many seconds.
    #[arg(long, default_value = "10", value_parser = parse_seconds, value_name = "SECONDS")]
    pub(crate) timeout: Duration,
}

/// `--send-budget` of the streaming probe commands (`watch`, `stack`,
/// `trace`; not `monitor`, which sends one report per interval).
#[derive(Debug, Clone, Args)]
pub(crate) struct SendBudgetArgs {
    /// Share of one CPU, in percent (1-50, default 10), the agent may spend
    /// sending this stream's observations when calls come faster than it can
    /// send them; what it cannot send is dropped and counted. A larger share
    /// delivers more rows of a flood and slows a busy target by as much.
    #[arg(
        long = "send-budget",
        value_name = "PERCENT",
        value_parser = parse_send_budget
    )]
    pub(crate) send_budget: Option<u8>,
}

/// `--call-repr` of the commands that capture values (`watch`, `stack`).
#[derive(Debug, Clone, Args)]
pub(crate) struct CallReprArgs {
    /// Show values that are not expanded (objects beyond the depth or
    /// without fields, dict keys, exceptions) with their own __repr__.
    /// RISK: that runs the application's code, unbounded in time: with -b
    /// on the application's thread, inside the watched call (a __repr__
    /// that sleeps, locks or queries delays the call by as much), else on
    /// the agent's writer thread, with the GIL. Off by default: capture then
    /// runs none of the application's code and shows such a value as
    /// <module.Class object at 0x...>.
    #[arg(long = "call-repr")]
    pub(crate) call_repr: bool,
}

#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// The function: module.function or module.Class.method.
    pub(crate) pattern: String,
    /// Expansion depth of captured values (0-4; default 1).
    #[arg(short = 'x', long = "depth", value_name = "N")]
    pub(crate) depth: Option<u32>,
    /// Stop after this many observations.
    #[arg(short = 'n', long = "times", value_name = "N")]
    pub(crate) times: Option<u64>,
    /// Observe at entry.
    #[arg(short = 'b', long)]
    pub(crate) before: bool,
    /// Observe exits by exception.
    #[arg(short = 'e', long)]
    pub(crate) exception: bool,
    /// Observe normal returns.
    #[arg(short = 's', long)]
    pub(crate) success: bool,
    /// Observe every exit (the default when no -b/-e/-s/-f is given).
    #[arg(short = 'f', long)]
    pub(crate) finish: bool,
    /// Instrumentation: code_swap (the default; on 3.12+ sys.monitoring sees
    /// the calls that bypass the function object) or monitoring
    /// (sys.monitoring alone, 3.12+; 3-4 times the per-call cost).
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub(crate) backend: Option<Backend>,
    /// Only calls for which this safe expression is true, e.g.
    /// `cost > 10`, `params[0] == 'x'`, `target.user.id == 7`.
    #[arg(long, value_name = "EXPR")]
    pub(crate) condition: Option<String>,
    #[command(flatten)]
    pub(crate) repr: CallReprArgs,
    #[command(flatten)]
    pub(crate) budget: SendBudgetArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StackArgs {
    /// The function: module.function or module.Class.method.
    pub(crate) pattern: String,
    /// Caller frames to show (default 10, at most 64).
    #[arg(long, value_name = "N")]
    pub(crate) depth: Option<u32>,
    /// Stop after this many observations.
    #[arg(short = 'n', long = "times", value_name = "N")]
    pub(crate) times: Option<u64>,
    /// Instrumentation: code_swap (the default; on 3.12+ sys.monitoring sees
    /// the calls that bypass the function object) or monitoring
    /// (sys.monitoring alone, 3.12+; 3-4 times the per-call cost).
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub(crate) backend: Option<Backend>,
    /// Only calls for which this safe expression is true.
    #[arg(long, value_name = "EXPR")]
    pub(crate) condition: Option<String>,
    #[command(flatten)]
    pub(crate) repr: CallReprArgs,
    #[command(flatten)]
    pub(crate) budget: SendBudgetArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// The function: module.function or module.Class.method.
    pub(crate) pattern: String,
    /// Seconds per report.
    #[arg(long, default_value = "60", value_parser = parse_seconds, value_name = "SECONDS")]
    pub(crate) interval: Duration,
    /// Stop after this many reports.
    #[arg(short = 'c', long = "cycles", value_name = "N")]
    pub(crate) cycles: Option<u64>,
    /// Instrumentation: code_swap (the default; on 3.12+ sys.monitoring sees
    /// the calls that bypass the function object) or monitoring
    /// (sys.monitoring alone, 3.12+; 3-4 times the per-call cost).
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub(crate) backend: Option<Backend>,
    /// Only count calls for which this safe expression is true.
    #[arg(long, value_name = "EXPR")]
    pub(crate) condition: Option<String>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ResetArgs {
    /// Only probes whose pattern matches this glob (default: all).
    pub(crate) pattern: Option<String>,
    /// List the probes instead of removing them.
    #[arg(long)]
    pub(crate) list: bool,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The process to examine.
    pub(crate) pid: u32,
}

/// Parses the process's arguments into `P` (the command line of
/// `peeka-cli` or of `peeka`). On `--help`, `--version` or a usage error,
/// prints clap's text and gives the exit code to end with: success for
/// help and version, usage for an error.
pub(crate) fn parse_command_line<P: Parser>() -> Result<P, ExitCode> {
    P::try_parse().map_err(|e| {
        let code = if e.use_stderr() {
            ExitCode::Usage
        } else {
            ExitCode::Success
        };
        let _ = e.print();
        code
    })
}

/// `--method`: auto, pep768, ptrace, gdb or lldb.
pub(crate) fn parse_method(text: &str) -> Result<MethodChoice, String> {
    text.parse::<MethodChoice>().map_err(|e| e.to_string())
}

pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (e.g. 5 or 0.5)"))?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 86_400.0 {
        return Err(format!(
            "`{text}` is out of range: give a number of seconds above 0 and at most 86400"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `--send-budget`: a whole percentage of one CPU from 1 to 50.
pub(crate) fn parse_send_budget(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(percent @ 1..=50) => Ok(percent),
        _ => Err(format!(
            "`{text}` is not a whole percentage from 1 to 50 (of one CPU)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn watch_takes_the_python_implementation_options() {
        let cli = Cli::try_parse_from([
            "peeka-cli",
            "watch",
            "m.f",
            "-x",
            "2",
            "-n",
            "3",
            "-b",
            "-e",
            "-s",
            "-f",
            "--condition",
            "cost > 1",
            "--pid",
            "42",
        ])
        .unwrap();
        let Command::Watch(w) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(
            (w.depth, w.times, w.target.pid),
            (Some(2), Some(3), Some(42))
        );
        assert!(w.before && w.exception && w.success && w.finish);
        assert_eq!(w.condition.as_deref(), Some("cost > 1"));
    }

    #[test]
    fn call_repr_is_off_unless_asked_for_on_the_capturing_probes() {
        for command in ["watch", "stack"] {
            let parse = |extra: &[&str]| {
                let mut line = vec!["peeka-cli", command, "m.f"];
                line.extend_from_slice(extra);
                match Cli::try_parse_from(line).unwrap().command {
                    Command::Watch(w) => w.repr.call_repr,
                    Command::Stack(s) => s.repr.call_repr,
                    other => panic!("{command}: {other:?}"),
                }
            };
            assert!(!parse(&[]), "{command}");
            assert!(parse(&["--call-repr"]), "{command}");
        }
        // The others capture no values.
        for command in ["monitor", "trace"] {
            assert!(Cli::try_parse_from(["peeka-cli", command, "m.f", "--call-repr"]).is_err());
        }
    }

    #[test]
    fn send_budget_is_a_percentage_from_1_to_50_on_the_streaming_probes() {
        for command in ["watch", "stack", "trace"] {
            let cli =
                Cli::try_parse_from(["peeka-cli", command, "m.f", "--send-budget", "30"]).unwrap();
            let budget = match cli.command {
                Command::Watch(w) => w.budget,
                Command::Stack(s) => s.budget,
                Command::Trace(t) => t.budget,
                other => panic!("{command}: {other:?}"),
            };
            assert_eq!(budget.send_budget, Some(30), "{command}");
            for bad in ["0", "51", "ten"] {
                let e = Cli::try_parse_from(["peeka-cli", command, "m.f", "--send-budget", bad])
                    .unwrap_err();
                assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
                assert!(
                    e.to_string().contains("from 1 to 50"),
                    "{command} {bad}: {e}"
                );
            }
        }
        // `monitor` sends one report per interval: it has no such option.
        assert!(
            Cli::try_parse_from(["peeka-cli", "monitor", "m.f", "--send-budget", "30"]).is_err()
        );
    }

    #[test]
    fn bad_numbers_are_refused_with_the_fix() {
        let e = Cli::try_parse_from(["peeka-cli", "monitor", "m.f", "--interval", "0"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("above 0"), "{e}");
        let e = Cli::try_parse_from(["peeka-cli", "attach", "1", "--method", "dtrace"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dtrace"), "{e}");
    }
}
