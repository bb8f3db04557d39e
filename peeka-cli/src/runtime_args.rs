//! The command lines of `sc`, `sm`, `inspect`, `logger` and `memory`
//! (option names follow the Python implementation of Peeka).

use clap::{Args, ValueEnum};
use peeka_core::client::GroupBy;

use crate::args::TargetArgs;

#[derive(Debug, Args)]
pub(crate) struct ScArgs {
    /// A glob over `module.Class` names, e.g. `shop.*` or `*Cart*` (a
    /// pattern without a dot also matches bare class names).
    pub(crate) pattern: String,
    /// Show each class's file, bases, MRO and methods.
    #[arg(short = 'd', long)]
    pub(crate) detail: bool,
    /// List at most this many classes (default 50, at most 1000).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SmArgs {
    /// The classes, as for `sc`, e.g. `shop.Cart`.
    pub(crate) class_pattern: String,
    /// A glob over method names (default `*`).
    #[arg(long = "method-pattern", value_name = "GLOB")]
    pub(crate) method_pattern: Option<String>,
    /// Show each method's signature, file, line and kind.
    #[arg(short = 'd', long)]
    pub(crate) detail: bool,
    /// List at most this many methods (default 100, at most 5000).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `--action` of `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum InspectAction {
    /// Read the value at `--target`.
    Get,
    /// List live instances of `--type`.
    Instances,
    /// Count live instances of `--type`.
    Count,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// What to do.
    #[arg(long, value_enum, default_value_t = InspectAction::Get)]
    pub(crate) action: InspectAction,
    /// For get: the path of the value, a module then attributes and items,
    /// e.g. `shop.CONFIG.db['hosts'][0]`.
    #[arg(long = "target", value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// For instances and count: the class, e.g. `shop.Item` or `dict`.
    #[arg(long = "type", value_name = "CLASS")]
    pub(crate) class_name: Option<String>,
    /// For instances: list at most this many (default 10, at most 1000).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    /// Expansion depth of values (0-4, default 2).
    #[arg(long, value_name = "N")]
    pub(crate) depth: Option<u32>,
    /// For instances and count: only objects for which this safe
    /// expression over `obj` is true, e.g. `obj.qty > 10`.
    #[arg(long = "filter-express", value_name = "EXPR")]
    pub(crate) filter_express: Option<String>,
    /// For instances and count: run a full garbage collection first.
    #[arg(long = "gc-first")]
    pub(crate) gc_first: bool,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `--action` of `logger`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LoggerAction {
    /// List the loggers (`--pattern` to filter).
    List,
    /// Show one logger (`--logger`).
    Get,
    /// Set a logger's level (`--logger`, `--level`).
    Set,
}

#[derive(Debug, Args)]
pub(crate) struct LoggerArgs {
    /// What to do.
    #[arg(long, value_enum, default_value_t = LoggerAction::List)]
    pub(crate) action: LoggerAction,
    /// For get and set: the logger's name (`root` for the root logger).
    #[arg(long = "logger", visible_alias = "name", value_name = "NAME")]
    pub(crate) logger: Option<String>,
    /// For set: the level, e.g. DEBUG, info, WARNING or 10. It stays after
    /// detach; the answer shows the previous level.
    #[arg(long, value_name = "LEVEL")]
    pub(crate) level: Option<String>,
    /// For list: only loggers whose name matches this glob.
    #[arg(long, value_name = "GLOB")]
    pub(crate) pattern: Option<String>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}

/// `--action` of `memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MemoryAction {
    /// Memory figures, the collector, the types using most memory.
    Overview,
    /// Start tracemalloc (`--nframe`).
    Start,
    /// Stop the tracemalloc Peeka started.
    Stop,
    /// The live allocations, grouped (`--group-by`, `--limit`).
    Top,
    /// Record the baseline of `diff`.
    Snapshot,
    /// The allocations now against the snapshot (`--group-by`, `--limit`).
    Diff,
    /// Run a full garbage collection.
    Gc,
    /// What refers to the instances of `--type-name`.
    Referrers,
    /// What the instances of `--type-name` refer to.
    Referents,
    /// Write the heap to a file in the target's filesystem (`--filename`).
    Dump,
}

/// `--group-by` of `memory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum GroupByArg {
    /// By allocating line.
    Lineno,
    /// By file.
    Filename,
    /// By whole traceback.
    Traceback,
}

impl From<GroupByArg> for GroupBy {
    fn from(group: GroupByArg) -> Self {
        match group {
            GroupByArg::Lineno => GroupBy::Lineno,
            GroupByArg::Filename => GroupBy::Filename,
            GroupByArg::Traceback => GroupBy::Traceback,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct MemoryArgs {
    /// What to do.
    #[arg(long, value_enum, default_value_t = MemoryAction::Overview)]
    pub(crate) action: MemoryAction,
    /// For start: frames kept per allocation (default 25, at most 100).
    #[arg(long, value_name = "N")]
    pub(crate) nframe: Option<u32>,
    /// For top and diff: how allocations are grouped (default lineno).
    #[arg(long = "group-by", value_enum)]
    pub(crate) group_by: Option<GroupByArg>,
    /// For overview, top and diff: rows listed (default 20, at most 1000).
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u32>,
    /// For dump: the file to write, in the target's filesystem (default
    /// /tmp/peeka-memory-<pid>-<time>.jsonl); never overwritten.
    #[arg(long, value_name = "PATH")]
    pub(crate) filename: Option<String>,
    /// For referrers and referents: the class of the instances, e.g.
    /// `shop.Item` or `dict`.
    #[arg(long = "type-name", value_name = "CLASS")]
    pub(crate) type_name: Option<String>,
    /// For referrers and referents: levels followed (1-3, default 2).
    #[arg(long = "max-depth", value_name = "N")]
    pub(crate) max_depth: Option<u32>,
    /// For referrers and referents: instances, and objects per object and
    /// level (1-20, default 10).
    #[arg(long = "max-per-level", value_name = "N")]
    pub(crate) max_per_level: Option<u32>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
}
