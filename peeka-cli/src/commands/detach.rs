//! `detach [--pid PID]`.

use crate::args::TargetArgs;
use crate::error::CliError;
use crate::exit_code::ExitCode;
use crate::output::Output;
use crate::remembered;
use crate::session::target_pid;

pub(crate) fn run(args: &TargetArgs, out: &Output) -> Result<ExitCode, CliError> {
    let pid = target_pid(args)?;
    let session = crate::session::connect(pid)?;
    // Remote-exec requests an attach killed midway left pending (3.14+)
    // name a script in the directory the agent is about to remove.
    if let Ok(target) = peeka_attach::Target::inspect(pid) {
        let _ = peeka_attach::pep768::withdraw_pending_requests(&target);
    }
    let outcome = session.detach()?;
    remembered::forget(pid);
    let data = serde_json::to_value(&outcome).unwrap_or_default();
    out.success("detach", data, |p| {
        format!(
            "{} process {pid}: {} stream(s) ended, {} connection(s) closed, agent files {}",
            p.good("detached from"),
            outcome.streams_ended,
            outcome.connections,
            if outcome.directory_removed {
                "removed"
            } else {
                "still being removed"
            }
        )
    });
    Ok(ExitCode::Success)
}
