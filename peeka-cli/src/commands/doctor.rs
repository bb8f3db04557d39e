//! `doctor PID`: every reason an attach could fail, and the fix.

use peeka_attach::doctor::{check, RouteForecast};
use peeka_attach::{doctor, Severity};
use serde_json::{json, Value};

use crate::args::DoctorArgs;
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;

pub(crate) fn run(args: &DoctorArgs, out: &Output) -> Result<ExitCode, CliError> {
    let diagnosis = doctor(args.pid);
    let findings: Vec<_> = diagnosis
        .findings
        .iter()
        .map(|f| {
            json!({"check": f.check, "severity": f.severity.label(), "summary": f.summary, "fix": f.fix})
        })
        .collect();
    let data = json!({
        "pid": diagnosis.pid,
        "can_attach": diagnosis.can_attach(),
        "usable_methods": diagnosis.usable_methods.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        "unusable_methods": diagnosis.unusable_methods.iter()
            .map(|(m, why)| json!({"method": m.to_string(), "why": why})).collect::<Vec<_>>(),
        "findings": findings,
        "route": diagnosis.route.as_ref().map(route_json),
    });
    out.result("doctor", data, |p| {
        let mut text = String::new();
        for f in &diagnosis.findings {
            let label = match f.severity {
                Severity::Ok => p.good("ok      "),
                Severity::Warning => p.warn("warning "),
                Severity::Blocker => p.error("BLOCKER "),
            };
            text.push_str(&format!(
                "{label}{} {}\n",
                p.dim(&format!("[{}]", f.check)),
                f.summary
            ));
            if let Some(fix) = &f.fix {
                text.push_str(&format!("        fix: {fix}\n"));
            }
        }
        let methods: Vec<String> = diagnosis
            .usable_methods
            .iter()
            .map(|m| m.to_string())
            .collect();
        if let Some(route) = &diagnosis.route {
            text.push_str(&threads_text(route, p));
        }
        if diagnosis.can_attach() {
            text.push_str(&format!(
                "{} with: {}",
                p.good(&format!("process {} can be attached", diagnosis.pid)),
                methods.join(", ")
            ));
        } else {
            text.push_str(&p.error(&format!(
                "process {} cannot be attached until the blockers above are fixed",
                diagnosis.pid
            )));
        }
        text
    });
    Ok(if diagnosis.can_attach() {
        ExitCode::Success
    } else if diagnosis
        .blockers()
        .any(|f| [check::PTRACE_PERMISSION, check::YAMA, check::CAPABILITIES].contains(&f.check))
    {
        ExitCode::PermissionDenied
    } else {
        ExitCode::NoTarget
    })
}

/// The route forecast as JSON: `method`, `route` (a stable name),
/// `summary`, `gil_free`, and every thread as the doctor saw it.
fn route_json(route: &RouteForecast) -> Value {
    let threads: Vec<Value> = route
        .threads
        .iter()
        .map(|t| {
            let (waits_with_gil_released, why_not) = match &t.gil_released {
                Some(Ok(name)) => (Some(true), Value::String((*name).to_owned())),
                Some(Err(why)) => (Some(false), Value::String(why.clone())),
                None => (None, Value::Null),
            };
            json!({
                "tid": t.tid,
                "main": t.main,
                "state": t.state,
                "syscall": t.syscall,
                "gil_released_route": waits_with_gil_released,
                "wait": if waits_with_gil_released == Some(true) { why_not.clone() } else { Value::Null },
                "why_not": if waits_with_gil_released == Some(false) { why_not } else { Value::Null },
                "holds_gil": t.holds_gil,
            })
        })
        .collect();
    json!({
        "method": route.method.map(|m| m.to_string()),
        "route": route.kind.name(),
        "summary": route.summary,
        "gil_free": route.gil_free,
        "threads": threads,
    })
}

/// One line per thread under the findings, for people: what it was doing
/// and whether the GIL-released route could use it.
fn threads_text(route: &RouteForecast, p: &crate::text::Painter) -> String {
    let mut text = p.dim("threads (one look; nothing was stopped):\n");
    for t in &route.threads {
        let state = match (t.state, t.syscall) {
            ("blocked", Some(number)) => format!("blocked in system call {number}"),
            (state, _) => state.to_owned(),
        };
        let route_note = match &t.gil_released {
            Some(Ok(name)) => format!(", waits in `{name}`: the GIL-released route can use it"),
            Some(Err(why)) => format!(", not for the GIL-released route: {why}"),
            None => String::new(),
        };
        let line = format!(
            "  {}{} {state}{}{route_note}\n",
            t.tid,
            if t.main { " (main)" } else { "" },
            if t.holds_gil { ", holds the GIL" } else { "" },
        );
        text.push_str(&p.dim(&line));
    }
    text
}
