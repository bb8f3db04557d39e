//! [`ClientError`]: everything that can go wrong talking to an agent, each
//! message naming what to do next.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use peeka_attach::AttachError;
use peeka_protocol::{ErrorCode, VersionMismatch};
use thiserror::Error;

/// Why a client operation failed.
///
/// Every message says what happened and what to do about it, so a binary can
/// print it as it is. Match on the variant (and on [`ClientError::code`] for
/// the agent's machine-readable codes) to react in code.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No agent is running in the process.
    #[error("no Peeka agent is running in process {pid} (no socket at {}); attach first: `peeka-cli attach {pid}`", socket.display())]
    NotAttached {
        /// The process.
        pid: u32,
        /// Where its socket would be, as this process reaches it.
        socket: PathBuf,
    },
    /// The process does not exist.
    #[error("process {pid} does not exist (it may have exited); check the pid with `ps` or `pgrep -a python`")]
    NoSuchProcess {
        /// The pid.
        pid: u32,
    },
    /// Attaching failed (the target is left as it was).
    #[error(transparent)]
    Attach(#[from] AttachError),
    /// The agent's socket exists but cannot be connected to.
    #[error("cannot connect to the agent of process {pid} at {}: {source}; if the agent died with the socket left behind, attach again (`peeka-cli attach {pid}`), which replaces it", socket.display())]
    Connect {
        /// The process.
        pid: u32,
        /// The socket path.
        socket: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The agent did not complete the handshake.
    #[error("the agent of process {pid} did not complete the handshake: {detail}; detach (`peeka-cli detach {pid}`) and attach again")]
    Handshake {
        /// The process.
        pid: u32,
        /// What went wrong.
        detail: String,
    },
    /// The agent speaks another major version of the protocol.
    #[error("the agent of process {pid} is incompatible with this client: {mismatch}")]
    Incompatible {
        /// The process.
        pid: u32,
        /// The two versions, and which side to upgrade.
        mismatch: VersionMismatch,
    },
    /// The agent refused the connection.
    #[error("the agent of process {pid} refused the connection ({code}): {message}")]
    Rejected {
        /// The process.
        pid: u32,
        /// Why, machine-readable.
        code: ErrorCode,
        /// Why, and what to do (the agent's words).
        message: String,
    },
    /// The agent answered a request with an error.
    #[error("`{command}` failed ({code}): {message}")]
    Agent {
        /// The command.
        command: String,
        /// Machine-readable code, e.g. `not_found` or `invalid_expression`.
        code: ErrorCode,
        /// What happened and what to do (the agent's words), e.g. the close
        /// matches of a pattern that matched nothing.
        message: String,
        /// The traceback inside the target when the agent itself failed.
        traceback: Option<String>,
    },
    /// The connection to the agent is gone.
    #[error("lost the connection to the agent of process {pid}: {detail}")]
    Disconnected {
        /// The process.
        pid: u32,
        /// Why, as far as the client can tell, and what to do.
        detail: String,
    },
    /// An answer did not come in time.
    #[error("no answer to `{what}` within {waited:?}; the target may be busy in native code holding the GIL or heavily loaded: retry, or raise the timeout (SessionOptions::request_timeout, `--timeout`)")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        waited: Duration,
    },
    /// The agent sent something this client does not understand.
    #[error("the agent sent something this client does not understand ({detail}); use a client and agent of the same Peeka version: detach, then attach again with this client")]
    Protocol {
        /// What was wrong.
        detail: String,
    },
    /// A local I/O operation failed.
    #[error("{what} failed: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The request could not be built (e.g. parameters that cannot be
    /// represented as JSON).
    #[error("invalid request `{command}`: {detail}")]
    InvalidRequest {
        /// The command.
        command: String,
        /// What is wrong with it.
        detail: String,
    },
}

impl ClientError {
    /// The agent's error code, for [`ClientError::Agent`] and
    /// [`ClientError::Rejected`].
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Agent { code, .. } | Self::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the connection is gone (the session can no longer be used).
    pub fn is_disconnected(&self) -> bool {
        matches!(self, Self::Disconnected { .. })
    }

    /// Whether this is a timeout (the session is still usable).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }
}
