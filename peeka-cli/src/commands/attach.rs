//! `attach PID [--method M] [--timeout S]`.

use crate::args::AttachArgs;
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;
use crate::remembered;
use crate::session::{attach, attach_config, method_name, millis, report_json};

pub(crate) fn run(args: &AttachArgs, out: &Output) -> Result<ExitCode, CliError> {
    let config = attach_config(out).method(args.method).timeout(args.timeout);
    let (session, report) = attach(args.pid, &config)?;
    let pong = session.ping()?;
    let mut data = report_json(&report);
    data["ping_ms"] = serde_json::json!(millis(pong.round_trip, 2));
    let remembered = remembered::save(args.pid);
    data["remembered"] = serde_json::json!(remembered.is_some());
    let total: std::time::Duration = report.timeline.steps.iter().map(|s| s.elapsed).sum();
    out.success("attach", data, |p| {
        let mut text = format!(
            "{} process {} (Python {}) with {} in {:.1} ms",
            p.good("attached to"),
            report.pid,
            report.python,
            p.bold(&method_name(&report)),
            total.as_secs_f64() * 1000.0
        );
        for step in &report.timeline.steps {
            text.push_str(&p.dim(&format!(
                "\n  {:>8.1} ms  {}",
                step.elapsed.as_secs_f64() * 1000.0,
                step.name
            )));
        }
        if remembered.is_some() {
            text.push_str(&p.dim(&format!(
                "\nlater commands without --pid talk to process {}",
                report.pid
            )));
        }
        text
    });
    Ok(ExitCode::Success)
}
