//! The command lines of `trace`, `thread` and `top` (option names follow
//! the Python implementation of Peeka).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use peeka_core::client::{ThreadSort, ThreadState, TopSort};

use crate::args::{parse_seconds, SendBudgetArgs, TargetArgs};

#[derive(Debug, Args)]
pub(crate) struct TraceArgs {
    /// The function: module.function or module.Class.method.
    pub(crate) pattern: String,
    /// Levels of calls below the function to show (default 3, at most 20).
    #[arg(short = 'd', long = "depth", value_name = "N")]
    pub(crate) depth: Option<u32>,
    /// Stop after this many traced calls.
    #[arg(short = 'n', long = "times", value_name = "N")]
    pub(crate) times: Option<u64>,
    /// Only calls for which this safe expression is true, e.g. `cost > 50`
    /// (cost: the call's milliseconds), `params[0] == 'x'`.
    #[arg(long, value_name = "EXPR")]
    pub(crate) condition: Option<String>,
    /// Leave out calls below this many milliseconds (summed per node).
    #[arg(long = "min-duration", value_name = "MS", value_parser = parse_ms)]
    pub(crate) min_duration: Option<f64>,
    /// Leave out the standard library and C functions (default true;
    /// `--skip-builtin=false` shows them).
    #[arg(
        long = "skip-builtin",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub(crate) skip_builtin: bool,
    #[command(flatten)]
    pub(crate) budget: SendBudgetArgs,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `--state` of `thread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum StateArg {
    /// Running or using CPU.
    Runnable,
    /// Waiting on a lock, a queue, I/O or a C call.
    Waiting,
    /// Sleeping.
    TimedWaiting,
}

impl From<StateArg> for ThreadState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Runnable => ThreadState::Runnable,
            StateArg::Waiting => ThreadState::Waiting,
            StateArg::TimedWaiting => ThreadState::TimedWaiting,
        }
    }
}

/// `--sort-by` of `thread`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ThreadSortArg {
    /// By thread ident.
    Tid,
    /// By name.
    Name,
    /// By state.
    State,
    /// By CPU use over the interval, busiest first.
    Cpu,
}

impl From<ThreadSortArg> for ThreadSort {
    fn from(sort: ThreadSortArg) -> Self {
        match sort {
            ThreadSortArg::Tid => ThreadSort::Tid,
            ThreadSortArg::Name => ThreadSort::Name,
            ThreadSortArg::State => ThreadSort::State,
            ThreadSortArg::Cpu => ThreadSort::Cpu,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ThreadArgs {
    /// Show this thread (its ident or native id) with its stack.
    #[arg(long, value_name = "ID")]
    pub(crate) tid: Option<u64>,
    /// Frames per stack (default 50).
    #[arg(long, value_name = "N")]
    pub(crate) depth: Option<u32>,
    /// Show the N threads that used the most CPU over the interval, with
    /// their stacks.
    #[arg(short = 'n', long = "top", value_name = "N", conflicts_with = "tid")]
    pub(crate) top: Option<u32>,
    /// Milliseconds over which CPU use is measured (default 200 with -n,
    /// else 100; at most 5000).
    #[arg(short = 'i', long = "interval", value_name = "MS")]
    pub(crate) interval: Option<u32>,
    /// Only threads in this state.
    #[arg(long, value_enum, ignore_case = true)]
    pub(crate) state: Option<StateArg>,
    /// Order of the list (default tid; cpu with -n).
    #[arg(long = "sort-by", value_enum)]
    pub(crate) sort_by: Option<ThreadSortArg>,
    /// Show the agent's own threads too.
    #[arg(long = "include-agent")]
    pub(crate) include_agent: bool,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `--sort` of `top`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TopSortArg {
    /// Own samples (the function itself executing).
    Own,
    /// Total samples (the function anywhere on the stack).
    Total,
    /// Own time.
    OwnTime,
    /// Total time.
    TotalTime,
}

impl From<TopSortArg> for TopSort {
    fn from(sort: TopSortArg) -> Self {
        match sort {
            TopSortArg::Own => TopSort::Own,
            TopSortArg::Total => TopSort::Total,
            TopSortArg::OwnTime => TopSort::OwnTime,
            TopSortArg::TotalTime => TopSort::TotalTime,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct TopArgs {
    /// Seconds between samples (default 0.02).
    #[arg(short = 'i', long, value_parser = parse_seconds, value_name = "SECONDS")]
    pub(crate) interval: Option<Duration>,
    /// Stop after this many snapshots (one per report interval).
    #[arg(short = 'c', long = "cycles", value_name = "N")]
    pub(crate) cycles: Option<u64>,
    /// Ranking of the functions.
    #[arg(long, value_enum, default_value = "own")]
    pub(crate) sort: TopSortArg,
    /// Functions per snapshot (default 50 in JSON Lines, 20 in text).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    /// Seconds between snapshots (default 1).
    #[arg(long = "report-interval", value_parser = parse_seconds, value_name = "SECONDS")]
    pub(crate) report_interval: Option<Duration>,
    /// Count the samples of waiting threads too.
    #[arg(long)]
    pub(crate) idle: bool,
    /// Sample the agent's own threads too.
    #[arg(long = "include-agent", alias = "no-filter-peeka")]
    pub(crate) include_agent: bool,
    /// Write every sampled stack to FILE in the collapsed-stack format
    /// (`outer;...;inner count` per line) when the command ends.
    #[arg(long, value_name = "FILE")]
    pub(crate) collapsed: Option<PathBuf>,
    /// Write a flame graph of the samples to FILE (SVG) when the command ends.
    #[arg(long, value_name = "FILE")]
    pub(crate) flamegraph: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

fn parse_ms(text: &str) -> Result<f64, String> {
    let ms: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of milliseconds (e.g. 10 or 0.5)"))?;
    if !ms.is_finite() || ms < 0.0 {
        return Err(format!(
            "`{text}` is out of range: give 0 or more milliseconds"
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::{Cli, Command};

    #[test]
    fn trace_takes_the_python_implementation_options() {
        let cli = Cli::try_parse_from([
            "peeka-cli",
            "trace",
            "m.f",
            "-d",
            "2",
            "-n",
            "1",
            "--min-duration",
            "5",
            "--skip-builtin=false",
            "--condition",
            "cost > 1",
        ])
        .unwrap();
        let Command::Trace(t) = cli.command else {
            panic!("not trace")
        };
        assert_eq!(
            (t.depth, t.times, t.min_duration),
            (Some(2), Some(1), Some(5.0))
        );
        assert!(!t.skip_builtin);
        let cli = Cli::try_parse_from(["peeka-cli", "trace", "m.f", "--skip-builtin"]).unwrap();
        let Command::Trace(t) = cli.command else {
            panic!("not trace")
        };
        assert!(t.skip_builtin);
    }

    #[test]
    fn thread_and_top_options() {
        let cli = Cli::try_parse_from([
            "peeka-cli",
            "thread",
            "-n",
            "2",
            "-i",
            "300",
            "--state",
            "waiting",
            "--sort-by",
            "cpu",
        ])
        .unwrap();
        let Command::Thread(t) = cli.command else {
            panic!("not thread")
        };
        assert_eq!((t.top, t.interval), (Some(2), Some(300)));
        assert!(Cli::try_parse_from(["peeka-cli", "thread", "--tid", "1", "-n", "1"]).is_err());
        let cli = Cli::try_parse_from([
            "peeka-cli",
            "top",
            "-i",
            "0.02",
            "-c",
            "3",
            "--sort",
            "total-time",
            "--no-filter-peeka",
            "--flamegraph",
            "x.svg",
        ])
        .unwrap();
        let Command::Top(t) = cli.command else {
            panic!("not top")
        };
        assert_eq!(t.cycles, Some(3));
        assert!(t.include_agent);
        assert!(t.flamegraph.is_some());
    }
}
