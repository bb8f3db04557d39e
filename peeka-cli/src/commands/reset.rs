//! `reset [PATTERN] [--list] [--pid PID]`.

use peeka_core::client::{ProbeInfo, ResetRequest};

use crate::args::ResetArgs;
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;
use crate::session::target_pid;
use crate::text::Painter;

fn probe_lines(p: &Painter, probes: &[ProbeInfo]) -> String {
    probes
        .iter()
        .map(|probe| {
            format!(
                "  {} {} {} {}",
                p.bold(&probe.command),
                p.name(&probe.pattern),
                p.dim(&format!(
                    "(client {}, stream {})",
                    probe.connection, probe.stream
                )),
                p.dim(&format!(
                    "{} observations, {} dropped",
                    probe.observations, probe.dropped
                ))
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn run(args: &ResetArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(&args.target)?;
    // Without an agent there is no probe: never attach just to reset.
    let session = crate::session::connect(pid)?;
    let request = match (&args.pattern, args.list) {
        (_, true) => ResetRequest::list(),
        (Some(pattern), false) => ResetRequest::matching(pattern.clone()),
        (None, false) => ResetRequest::all(),
    };
    let outcome = session.reset(&request)?;
    let data = serde_json::to_value(&outcome).unwrap_or_default();
    if args.list {
        out.result("reset", data, |p| {
            if outcome.probes.is_empty() {
                format!("no probes in process {pid}")
            } else {
                format!(
                    "{} probe(s) in process {pid}:\n{}",
                    outcome.probes.len(),
                    probe_lines(p, &outcome.probes)
                )
            }
        });
    } else {
        out.success("reset", data, |p| {
            let mut text = format!("{} {} probe(s)", p.good("removed"), outcome.removed);
            if !outcome.probes.is_empty() {
                text.push('\n');
                text.push_str(&probe_lines(p, &outcome.probes));
            }
            text
        });
    }
    Ok(ExitCode::Success)
}
