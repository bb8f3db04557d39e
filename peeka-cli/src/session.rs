//! Choosing the target and getting a session with its agent.

use std::time::Duration;

use peeka_core::client::{AttachConfig, AttachReport, ClientError, Session, SessionOptions};
use serde_json::{json, Map, Value};

use crate::args::TargetArgs;
use crate::error::CliError;
use crate::interrupt::{self, Signal};
use crate::output::Output;
use crate::remembered;

/// The pid given with `--pid`, else the one remembered.
pub(crate) fn target_pid(args: &TargetArgs) -> Result<u32, CliError> {
    match args.pid {
        Some(pid) => Ok(pid),
        None => Ok(remembered::load()?),
    }
}

/// An attach config whose progress goes to `out` as status lines.
pub(crate) fn attach_config(out: &Output) -> AttachConfig {
    let out = *out;
    AttachConfig::new().on_progress(move |progress| {
        let mut extra = Map::new();
        extra.insert("elapsed_ms".into(), json!(millis(progress.elapsed, 1)));
        out.status(progress.step, extra);
    })
}

/// `duration` in milliseconds, rounded to `decimals` places, for output.
pub(crate) fn millis(duration: Duration, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (duration.as_secs_f64() * 1000.0 * scale).round() / scale
}

/// The session options of every command: the first request follows the
/// `hello` without waiting for the agent's answer (one wake-up of the
/// agent fewer per command, which counts on a target that keeps the GIL
/// busy).
pub(crate) fn session_options() -> SessionOptions {
    SessionOptions::default()
        .client_name(concat!("peeka-cli/", env!("CARGO_PKG_VERSION")))
        .pipeline_hello(true)
}

/// Connects to the agent of `pid` (see [`session_options`]).
pub(crate) fn connect(pid: u32) -> Result<Session, ClientError> {
    Session::connect_with(pid, &session_options())
}

/// Attaches to `pid` (or reuses its agent) with SIGINT, SIGTERM and SIGHUP
/// deferred until the attach is over: the attach completes or fails as it
/// would have (the library leaves the target as it was), and a signal that
/// arrived meanwhile then ends the command with its exit code and one line
/// saying how the target was left.
pub(crate) fn attach(pid: u32, config: &AttachConfig) -> Result<(Session, AttachReport), CliError> {
    let guard = interrupt::AttachGuard::begin();
    let attached = Session::attach(pid, config);
    match guard.finish() {
        None => Ok(attached?),
        Some(signal) => Err(interrupted_attach(pid, signal, attached)),
    }
}

/// The error of an attach that `signal` interrupted, saying how `pid` was
/// left. The session, if the attach got that far, is closed.
fn interrupted_attach(
    pid: u32,
    signal: Signal,
    attached: Result<(Session, AttachReport), ClientError>,
) -> CliError {
    let name = signal.name();
    let message = match attached {
        Ok((session, report)) => {
            drop(session);
            let agent = if report.reused {
                "its agent, which was already running, stays"
            } else {
                "the agent is loaded in it, with no probe"
            };
            format!(
                "{name} arrived during the attach to process {pid}, which completed first: {agent}; `peeka-cli detach --pid {pid}` removes it"
            )
        }
        Err(error) => format!(
            "{name} interrupted the attach to process {pid}; it was finished safely and process {pid} was left as it was (the attach ended with: {})",
            CliError::from(error).message.replace('\n', " ")
        ),
    };
    CliError::new(signal.exit_code(), message)
}

/// Connects to the agent of `pid`, attaching first (with the defaults) when
/// none is running; the attach is announced on `out` and remembered.
pub(crate) fn connect_or_attach(pid: u32, out: &Output) -> Result<Session, CliError> {
    match connect(pid) {
        Ok(session) => Ok(session),
        Err(ClientError::NotAttached { .. }) => {
            let (session, report) = attach(pid, &attach_config(out))?;
            out.status(
                &format!(
                    "attached to process {pid} (Python {}) with {}",
                    report.python,
                    method_name(&report)
                ),
                Map::new(),
            );
            remembered::save(pid);
            Ok(session)
        }
        Err(e) => Err(e.into()),
    }
}

/// The method that attached, or `reused`.
pub(crate) fn method_name(report: &AttachReport) -> String {
    match report.method {
        Some(method) => method.to_string(),
        None => "the agent already running (reused)".into(),
    }
}

/// The attach report as JSON for the `attach` command's output.
pub(crate) fn report_json(report: &AttachReport) -> Value {
    let steps: Vec<Value> = report
        .timeline
        .steps
        .iter()
        .map(|s| json!({"step": s.name, "ms": millis(s.elapsed, 1)}))
        .collect();
    let skipped: Vec<Value> = report
        .skipped
        .iter()
        .map(|(m, why)| json!({"method": m.to_string(), "why": why}))
        .collect();
    json!({
        "pid": report.pid,
        "method": report.method.map(|m| m.to_string()),
        "reused": report.reused,
        "python": report.python,
        "socket": report.socket,
        "private_dir": report.private_dir,
        "timeline": steps,
        "skipped": skipped,
    })
}
