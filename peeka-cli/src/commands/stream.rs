//! Following a stream to its end: every item printed as it arrives, Ctrl-C
//! cancelling it (the agent removes the probe before it confirms the end).

use peeka_core::client::{StreamItem, Subscription};
use peeka_core::protocol::EndReason;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::interrupt;
use crate::output::Output;
use crate::text::Painter;

/// Prints `subscription` until it ends; `render` gives the text form of an
/// observation. Returns the exit code the end calls for.
pub(crate) fn follow<T: Serialize + serde::de::DeserializeOwned>(
    out: &Output,
    command: &str,
    subscription: Subscription<T>,
    render: impl Fn(&Painter, &T) -> String,
) -> Result<ExitCode, CliError> {
    follow_observing(out, command, subscription, render, |_| {})
}

/// [`follow`], also handing every observation to `observe` (before it is
/// printed), in either format.
pub(crate) fn follow_observing<T: Serialize + serde::de::DeserializeOwned>(
    out: &Output,
    command: &str,
    mut subscription: Subscription<T>,
    render: impl Fn(&Painter, &T) -> String,
    mut observe: impl FnMut(&T),
) -> Result<ExitCode, CliError> {
    let started = subscription.started().clone();
    let names: Vec<String> = started.matched.iter().map(|m| m.name.clone()).collect();
    out.event(
        command,
        "started",
        serde_json::to_value(&started).unwrap_or(Value::Null),
        |p| {
            if names.is_empty() {
                return p.dim(&format!("{command}: started; Ctrl-C to stop"));
            }
            p.dim(&format!(
                "{command}: probing {} ({}); Ctrl-C to stop",
                names.join(", "),
                started.backend.as_deref().unwrap_or("probe")
            ))
        },
    );
    let _guard = interrupt::cancel_on_interrupt(subscription.canceller());
    for item in &mut subscription {
        match item {
            Ok(StreamItem::Observation { seq, data }) => {
                observe(&data);
                let value = serde_json::to_value(&data).unwrap_or(Value::Null);
                out.observation(command, seq, value, |p| render(p, &data));
            }
            Ok(StreamItem::Event { kind, data, .. }) => {
                let text = format!("{command}: {kind} {data}");
                out.event(command, &kind, data, |p| p.warn(&text));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let Some(end) = subscription.end().cloned() else {
        return Err(CliError::new(
            ExitCode::NoTarget,
            "the stream stopped without an end message: the connection to the agent was lost",
        ));
    };
    let reason = if interrupt::interrupted() && end.reason == EndReason::Cancelled {
        "interrupted"
    } else {
        reason_name(&end.reason)
    };
    let data = json!({
        "reason": reason,
        "dropped": end.dropped,
        "client_dropped": end.client_dropped,
        "error": end.error,
    });
    out.event(command, "stream_end", data, |p| {
        let mut text = format!("{command}: ended ({reason})");
        if end.dropped + end.client_dropped > 0 {
            text.push_str(&format!(
                ", {} observation(s) dropped by the agent and {} by this client (the consumer was slower than the target)",
                end.dropped, end.client_dropped
            ));
        }
        p.dim(&text)
    });
    match (end.reason, end.error) {
        (EndReason::Error, error) => Err(CliError {
            message: error.as_ref().map_or_else(
                || format!("{command} ended with an error"),
                |e| e.message.clone(),
            ),
            code: error.map(|e| e.code.as_str().to_owned()),
            exit: ExitCode::CommandFailed,
        }),
        _ => Ok(ExitCode::Success),
    }
}

fn reason_name(reason: &EndReason) -> &'static str {
    match reason {
        EndReason::CountReached => "count_reached",
        EndReason::Cancelled => "cancelled",
        EndReason::Reset => "reset",
        EndReason::Detached => "detached",
        EndReason::Error => "error",
        _ => "unknown",
    }
}
