//! `doctor PID`: every reason an attach could fail, and the fix.

use peeka_attach::doctor::check;
use peeka_attach::{doctor, Severity};
use serde_json::json;

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
