//! `trace`, `thread` and `top`.

use std::cell::RefCell;

use peeka_core::client::{ThreadRequest, TopRequest, TraceRequest};
use serde_json::{json, Map};

use super::stream::{follow, follow_observing};
use crate::diagnostics_args::{ThreadArgs, TopArgs, TraceArgs};
use crate::diagnostics_text;
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::flamegraph::Collapsed;
use crate::output::Output;
use crate::session::{connect_or_attach, target_pid};

/// Functions shown per snapshot in text when `--limit` is not given.
const TEXT_ROWS: u32 = 20;

pub(crate) fn trace(args: &TraceArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(&args.target)?;
    let request = trace_request(args);
    let session = connect_or_attach(pid, out)?;
    let subscription = session.trace(&request)?;
    follow(out, "trace", subscription, diagnostics_text::trace)
}

/// The request `trace` sends for `args`.
pub(crate) fn trace_request(args: &TraceArgs) -> TraceRequest {
    let mut request = TraceRequest::new(args.pattern.clone()).skip_builtin(args.skip_builtin);
    if let Some(depth) = args.depth {
        request = request.depth(depth);
    }
    if let Some(times) = args.times {
        request = request.times(times);
    }
    if let Some(condition) = &args.condition {
        request = request.condition(condition.clone());
    }
    if let Some(ms) = args.min_duration {
        request = request.min_duration(ms);
    }
    if let Some(percent) = args.budget.send_budget {
        request = request.send_budget(percent);
    }
    request
}

pub(crate) fn thread(args: &ThreadArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(&args.target)?;
    let mut request = match (args.tid, args.top) {
        (Some(tid), _) => ThreadRequest::detail(tid),
        (None, Some(n)) => ThreadRequest::busiest(n),
        (None, None) => ThreadRequest::list(),
    };
    if let Some(depth) = args.depth {
        request = request.depth(depth);
    }
    if let Some(ms) = args.interval {
        request = request.interval_ms(ms);
    }
    if let Some(state) = args.state {
        request = request.state(state.into());
    }
    if let Some(sort) = args.sort_by {
        request = request.sort_by(sort.into());
    }
    request = request.include_agent(args.include_agent);
    let session = connect_or_attach(pid, out)?;
    let report = session.thread(&request)?;
    let data = serde_json::to_value(&report).unwrap_or_default();
    out.result("thread", data, |p| diagnostics_text::thread(p, &report));
    Ok(ExitCode::Success)
}

pub(crate) fn top(args: &TopArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(&args.target)?;
    let exporting = args.collapsed.is_some() || args.flamegraph.is_some();
    let mut request = TopRequest::new()
        .sort(args.sort.into())
        .idle(args.idle)
        .include_agent(args.include_agent)
        .stacks(exporting);
    if let Some(interval) = args.interval {
        request = request.interval(interval);
    }
    if let Some(cycles) = args.cycles {
        request = request.cycles(cycles);
    }
    if let Some(report) = args.report_interval {
        request = request.report_interval(report);
    }
    let rows = args.limit.unwrap_or(TEXT_ROWS);
    if let Some(limit) = args.limit {
        request = request.limit(limit);
    } else if !out.is_json() {
        request = request.limit(TEXT_ROWS);
    }
    let session = connect_or_attach(pid, out)?;
    let subscription = session.top(&request)?;
    let collapsed = RefCell::new(Collapsed::default());
    let outcome = follow_observing(
        out,
        "top",
        subscription,
        |p, snapshot| diagnostics_text::top(p, snapshot, rows as usize),
        |snapshot| {
            if let Some(stacks) = &snapshot.stacks {
                let mut collapsed = collapsed.borrow_mut();
                for (stack, count) in stacks {
                    collapsed.add(stack, *count);
                }
            }
        },
    );
    if exporting {
        export(args, out, pid, &collapsed.borrow())?;
    }
    outcome
}

fn export(args: &TopArgs, out: &Output, pid: u32, collapsed: &Collapsed) -> Result<(), CliError> {
    let failed = |path: &std::path::Path, e: std::io::Error| {
        CliError::new(
            ExitCode::CommandFailed,
            format!(
                "cannot write {}: {e}; choose a writable path",
                path.display()
            ),
        )
    };
    let mut written = Map::new();
    if let Some(path) = &args.collapsed {
        collapsed.write_text(path).map_err(|e| failed(path, e))?;
        written.insert("collapsed".into(), json!(path));
    }
    if let Some(path) = &args.flamegraph {
        let title = format!("peeka top: process {pid}, {} samples", collapsed.samples());
        collapsed
            .write_svg(path, &title)
            .map_err(|e| failed(path, e))?;
        written.insert("flamegraph".into(), json!(path));
    }
    written.insert("samples".into(), json!(collapsed.samples()));
    let files: Vec<String> = ["collapsed", "flamegraph"]
        .iter()
        .filter_map(|k| written.get(*k).and_then(|v| v.as_str()).map(str::to_owned))
        .collect();
    let samples = collapsed.samples();
    out.success("top", serde_json::Value::Object(written), |p| {
        format!(
            "{} {} ({samples} samples)",
            p.good("wrote"),
            files.join(" and ")
        )
    });
    Ok(())
}
