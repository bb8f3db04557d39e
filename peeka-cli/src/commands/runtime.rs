//! `sc`, `sm`, `inspect`, `logger` and `memory`: one question, one answer.
//!
//! Queries print a `result` line; commands that change the target
//! (`logger --action set`, `memory --action start|stop|snapshot|gc|dump`)
//! print a `success` line. An option the chosen `--action` does not use is
//! refused (exit code 2) before anything is sent.

use peeka_core::client::{
    AllocationQuery, InstancesRequest, ReferencesRequest, ScRequest, Session, SmRequest,
};
use serde::Serialize;

use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;
use crate::runtime_args::{
    InspectAction, InspectArgs, LoggerAction, LoggerArgs, MemoryAction, MemoryArgs, ScArgs, SmArgs,
};
use crate::runtime_text as text;
use crate::session::{connect_or_attach, target_pid};
use crate::text::Painter;

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// Refuses the options (given as `(flag, set)`) that `action` does not use.
fn only(command: &str, action: &str, options: &[(&str, bool)]) -> Result<(), CliError> {
    let extra: Vec<&str> = options
        .iter()
        .filter(|(_, set)| *set)
        .map(|(flag, _)| *flag)
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(CliError::new(
        ExitCode::Usage,
        format!(
            "`{command} --action {action}` does not use {}; see `peeka-cli {command} --help`",
            extra.join(", ")
        ),
    ))
}

fn required<'a>(value: &'a Option<String>, message: &str) -> Result<&'a str, CliError> {
    value
        .as_deref()
        .ok_or_else(|| CliError::new(ExitCode::Usage, message))
}

fn session(target: &crate::args::TargetArgs, out: &Output) -> Result<Session, CliError> {
    let pid = target_pid(target)?;
    connect_or_attach(pid, out)
}

pub(crate) fn sc(args: &ScArgs, out: &Output) -> Result<ExitCode, CliError> {
    let mut request = ScRequest::new(args.pattern.clone()).detail(args.detail);
    if let Some(limit) = args.limit {
        request = request.limit(limit);
    }
    let found = session(&args.target, out)?.sc(&request)?;
    out.result("sc", json(&found), |p| text::sc(p, &args.pattern, &found));
    Ok(ExitCode::Success)
}

pub(crate) fn sm(args: &SmArgs, out: &Output) -> Result<ExitCode, CliError> {
    let mut request = SmRequest::new(args.class_pattern.clone()).detail(args.detail);
    if let Some(glob) = &args.method_pattern {
        request = request.method_pattern(glob.clone());
    }
    if let Some(limit) = args.limit {
        request = request.limit(limit);
    }
    let found = session(&args.target, out)?.sm(&request)?;
    out.result("sm", json(&found), |p| text::sm(p, &found));
    Ok(ExitCode::Success)
}

pub(crate) fn inspect(args: &InspectArgs, out: &Output) -> Result<ExitCode, CliError> {
    if args.action == InspectAction::Get {
        only(
            "inspect",
            "get",
            &[
                ("--type", args.class_name.is_some()),
                ("--limit", args.limit.is_some()),
                ("--filter-express", args.filter_express.is_some()),
                ("--gc-first", args.gc_first),
            ],
        )?;
        let path = required(
            &args.path,
            "`inspect --action get` needs `--target PATH`, e.g. `--target shop.CONFIG.db`",
        )?;
        let value = session(&args.target, out)?.inspect_get(path, args.depth)?;
        out.result("inspect", json(&value), |p| text::inspected(p, &value));
        return Ok(ExitCode::Success);
    }
    let action = if args.action == InspectAction::Count {
        "count"
    } else {
        "instances"
    };
    only(
        "inspect",
        action,
        &[
            ("--target", args.path.is_some()),
            ("--limit", action == "count" && args.limit.is_some()),
        ],
    )?;
    let class_name = required(
        &args.class_name,
        "`inspect --action instances|count` needs `--type CLASS`, e.g. `--type shop.Item`",
    )?;
    let mut request = InstancesRequest::new(class_name).gc_first(args.gc_first);
    if let Some(limit) = args.limit {
        request = request.limit(limit);
    }
    if let Some(depth) = args.depth {
        request = request.depth(depth);
    }
    if let Some(filter) = &args.filter_express {
        request = request.filter(filter.clone());
    }
    let session = session(&args.target, out)?;
    if action == "count" {
        let count = session.inspect_count(&request)?;
        out.result("inspect", json(&count), |p| text::count(p, &count));
    } else {
        let found = session.inspect_instances(&request)?;
        out.result("inspect", json(&found), |p| text::instances(p, &found));
    }
    Ok(ExitCode::Success)
}

pub(crate) fn logger(args: &LoggerArgs, out: &Output) -> Result<ExitCode, CliError> {
    match args.action {
        LoggerAction::List => {
            only(
                "logger",
                "list",
                &[
                    ("--logger", args.logger.is_some()),
                    ("--level", args.level.is_some()),
                ],
            )?;
            let list = session(&args.target, out)?.logger_list(args.pattern.as_deref())?;
            out.result("logger", json(&list), |p| text::loggers(p, &list));
        }
        LoggerAction::Get => {
            only(
                "logger",
                "get",
                &[
                    ("--level", args.level.is_some()),
                    ("--pattern", args.pattern.is_some()),
                ],
            )?;
            let name = required(
                &args.logger,
                "`logger --action get` needs `--logger NAME` (`root` for the root logger)",
            )?;
            let detail = session(&args.target, out)?.logger_get(name)?;
            out.result("logger", json(&detail), |p| text::logger(p, &detail));
        }
        LoggerAction::Set => {
            only("logger", "set", &[("--pattern", args.pattern.is_some())])?;
            let name = required(
                &args.logger,
                "`logger --action set` needs `--logger NAME` and `--level LEVEL`",
            )?;
            let level = required(
                &args.level,
                "`logger --action set` needs `--level LEVEL` (DEBUG, INFO, WARNING, ERROR, CRITICAL or a number)",
            )?;
            let change = session(&args.target, out)?.logger_set(name, level)?;
            out.success("logger", json(&change), |p| text::level_change(p, &change));
        }
    }
    Ok(ExitCode::Success)
}

pub(crate) fn memory(args: &MemoryArgs, out: &Output) -> Result<ExitCode, CliError> {
    let action = args.action;
    let name = match action {
        MemoryAction::Overview => "overview",
        MemoryAction::Start => "start",
        MemoryAction::Stop => "stop",
        MemoryAction::Top => "top",
        MemoryAction::Snapshot => "snapshot",
        MemoryAction::Diff => "diff",
        MemoryAction::Gc => "gc",
        MemoryAction::Referrers => "referrers",
        MemoryAction::Referents => "referents",
        MemoryAction::Dump => "dump",
    };
    let uses_limit = matches!(
        action,
        MemoryAction::Overview | MemoryAction::Top | MemoryAction::Diff
    );
    let uses_group = matches!(action, MemoryAction::Top | MemoryAction::Diff);
    let uses_refs = matches!(action, MemoryAction::Referrers | MemoryAction::Referents);
    only(
        "memory",
        name,
        &[
            (
                "--nframe",
                args.nframe.is_some() && action != MemoryAction::Start,
            ),
            ("--group-by", args.group_by.is_some() && !uses_group),
            ("--limit", args.limit.is_some() && !uses_limit),
            (
                "--filename",
                args.filename.is_some() && action != MemoryAction::Dump,
            ),
            ("--type-name", args.type_name.is_some() && !uses_refs),
            ("--max-depth", args.max_depth.is_some() && !uses_refs),
            (
                "--max-per-level",
                args.max_per_level.is_some() && !uses_refs,
            ),
        ],
    )?;
    let mut query = AllocationQuery::new();
    if let Some(group) = args.group_by {
        query = query.group_by(group.into());
    }
    if let Some(limit) = args.limit {
        query = query.limit(limit);
    }
    let session = session(&args.target, out)?;
    match action {
        MemoryAction::Overview => {
            let data = session.memory_overview(args.limit)?;
            out.result("memory", json(&data), |p| text::overview(p, &data));
        }
        MemoryAction::Start | MemoryAction::Stop => {
            let state = if action == MemoryAction::Start {
                session.memory_start(args.nframe)?
            } else {
                session.memory_stop()?
            };
            out.success("memory", json(&state), |p| text::tracing(p, &state));
        }
        MemoryAction::Top => {
            let top = session.memory_top(&query)?;
            out.result("memory", json(&top), |p| text::allocations(p, &top));
        }
        MemoryAction::Snapshot => {
            let taken = session.memory_snapshot()?;
            out.success("memory", json(&taken), |p: &Painter| {
                format!(
                    "{} snapshot {}: {} traces, {} (diff compares against it)",
                    p.good("took"),
                    taken.snapshot,
                    taken.traces,
                    text::bytes(taken.total_size)
                )
            });
        }
        MemoryAction::Diff => {
            let diff = session.memory_diff(&query)?;
            out.result("memory", json(&diff), |p| text::diff(p, &diff));
        }
        MemoryAction::Gc => {
            let report = session.memory_gc()?;
            out.success("memory", json(&report), |p| text::gc(p, &report));
        }
        MemoryAction::Referrers | MemoryAction::Referents => {
            let type_name = required(
                &args.type_name,
                "`memory --action referrers|referents` needs `--type-name CLASS`, e.g. `--type-name shop.Item`",
            )?;
            let mut request = if action == MemoryAction::Referrers {
                ReferencesRequest::referrers(type_name)
            } else {
                ReferencesRequest::referents(type_name)
            };
            if let Some(depth) = args.max_depth {
                request = request.max_depth(depth);
            }
            if let Some(n) = args.max_per_level {
                request = request.max_per_level(n);
            }
            let tree = session.memory_references(&request)?;
            out.result("memory", json(&tree), |p| text::references(p, &tree));
        }
        MemoryAction::Dump => {
            let report = session.memory_dump(args.filename.as_deref())?;
            out.success("memory", json(&report), |p| {
                format!(
                    "{} {} to {} ({} objects{}, {} types) in the target's filesystem",
                    p.good("wrote"),
                    text::bytes(report.bytes as i64),
                    report.filename,
                    report.objects,
                    if report.truncated { ", truncated" } else { "" },
                    report.types
                )
            });
        }
    }
    Ok(ExitCode::Success)
}
