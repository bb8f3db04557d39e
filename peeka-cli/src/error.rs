//! A failed `peeka-cli` command: its message (which names the fix), the
//! agent's error code if any, and the exit code it leads to.

use peeka_attach::AttachError;
use peeka_core::client::ClientError;

use crate::exit_code::ExitCode;
use crate::remembered::NoTarget;

/// Why a command failed.
#[derive(Debug)]
pub(crate) struct CliError {
    pub(crate) message: String,
    pub(crate) code: Option<String>,
    pub(crate) exit: ExitCode,
}

impl CliError {
    pub(crate) fn new(exit: ExitCode, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: None,
            exit,
        }
    }
}

impl From<NoTarget> for CliError {
    fn from(e: NoTarget) -> Self {
        Self::new(ExitCode::NoTarget, e.to_string())
    }
}

fn attach_exit(e: &AttachError) -> ExitCode {
    match e {
        AttachError::PermissionDenied { .. } => ExitCode::PermissionDenied,
        // Stopped by job control: unusable until it is resumed (SIGCONT).
        AttachError::TargetStopped { .. } => ExitCode::NoTarget,
        _ => ExitCode::NoTarget,
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let exit = match &e {
            ClientError::Agent { .. } | ClientError::InvalidRequest { .. } => {
                ExitCode::CommandFailed
            }
            ClientError::Attach(inner) => attach_exit(inner),
            ClientError::Connect { source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                ExitCode::PermissionDenied
            }
            ClientError::Rejected { .. } => ExitCode::PermissionDenied,
            ClientError::Incompatible { .. } | ClientError::Protocol { .. } => {
                ExitCode::Incompatible
            }
            ClientError::Timeout { .. } => ExitCode::CommandFailed,
            _ => ExitCode::NoTarget,
        };
        let mut message = e.to_string();
        if let ClientError::Agent {
            traceback: Some(traceback),
            ..
        } = &e
        {
            message.push_str("\ntraceback in the target:\n");
            message.push_str(traceback);
        }
        Self {
            message,
            code: e.code().map(|c| c.as_str().to_owned()),
            exit,
        }
    }
}
