//! `watch`, `stack` and `monitor`: install a probe and follow its stream.

use peeka_core::client::{MonitorRequest, StackRequest, WatchRequest};

use super::stream::follow;
use crate::args::{MonitorArgs, StackArgs, WatchArgs};
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;
use crate::session::{connect_or_attach, target_pid};
use crate::text;

pub(crate) fn watch(args: &WatchArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(&args.target)?;
    let request = watch_request(args);
    let session = connect_or_attach(pid, out)?;
    let subscription = session.watch(&request)?;
    follow(out, "watch", subscription, text::watch)
}

/// The request `watch` sends for `args`.
pub(crate) fn watch_request(args: &WatchArgs) -> WatchRequest {
    let mut request = WatchRequest::new(args.pattern.clone())
        .before(args.before)
        .exception(args.exception)
        .success(args.success)
        .finish(args.finish);
    if let Some(depth) = args.depth {
        request = request.depth(depth);
    }
    if let Some(times) = args.times {
        request = request.times(times);
    }
    if let Some(condition) = &args.condition {
        request = request.condition(condition.clone());
    }
    if let Some(backend) = args.backend {
        request = request.backend(backend.into());
    }
    if let Some(percent) = args.budget.send_budget {
        request = request.send_budget(percent);
    }
    request.call_repr(args.repr.call_repr)
}

pub(crate) fn stack(args: &StackArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(&args.target)?;
    let request = stack_request(args);
    let session = connect_or_attach(pid, out)?;
    let subscription = session.stack(&request)?;
    follow(out, "stack", subscription, text::stack)
}

/// The request `stack` sends for `args`.
pub(crate) fn stack_request(args: &StackArgs) -> StackRequest {
    let mut request = StackRequest::new(args.pattern.clone());
    if let Some(depth) = args.depth {
        request = request.depth(depth);
    }
    if let Some(times) = args.times {
        request = request.times(times);
    }
    if let Some(condition) = &args.condition {
        request = request.condition(condition.clone());
    }
    if let Some(backend) = args.backend {
        request = request.backend(backend.into());
    }
    if let Some(percent) = args.budget.send_budget {
        request = request.send_budget(percent);
    }
    request.call_repr(args.repr.call_repr)
}

pub(crate) fn monitor(args: &MonitorArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(&args.target)?;
    let request = monitor_request(args);
    let session = connect_or_attach(pid, out)?;
    let subscription = session.monitor(&request)?;
    if !out.is_json() {
        out.text_line(&text::monitor_header(&out.paint));
    }
    follow(out, "monitor", subscription, text::monitor)
}

/// The request `monitor` sends for `args`.
pub(crate) fn monitor_request(args: &MonitorArgs) -> MonitorRequest {
    let mut request = MonitorRequest::new(args.pattern.clone()).interval(args.interval);
    if let Some(cycles) = args.cycles {
        request = request.cycles(cycles);
    }
    if let Some(condition) = &args.condition {
        request = request.condition(condition.clone());
    }
    if let Some(backend) = args.backend {
        request = request.backend(backend.into());
    }
    request
}
