//! Stable, machine-readable error codes carried by error responses.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What went wrong with a request, as a stable `snake_case` string on the wire.
///
/// Scripts match on these; messages are for humans and may change. A code
/// this version does not know arrives as [`ErrorCode::Other`], so a newer
/// agent never breaks an older client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The message could not be understood (missing or ill-typed fields).
    BadRequest,
    /// The command name is not known to the agent.
    UnknownCommand,
    /// A parameter has an invalid value.
    InvalidParams,
    /// A function, class, type, logger or path pattern matched nothing.
    NotFound,
    /// An expression (`--condition`, `--filter-express`) is invalid.
    InvalidExpression,
    /// The referenced stream does not exist (or has already ended).
    UnknownStream,
    /// A request id is already in use on this connection.
    DuplicateId,
    /// A bound was reached (probes, matched functions, streams).
    LimitExceeded,
    /// The action needs a state the target is not in (e.g. tracemalloc not started).
    InvalidState,
    /// The peer's protocol major version differs.
    ProtocolVersionMismatch,
    /// The agent is shutting down (detach in progress).
    ShuttingDown,
    /// The agent itself failed; the response carries the traceback.
    Internal,
    /// A code this version does not know, kept verbatim.
    Other(String),
}

impl ErrorCode {
    /// The wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownCommand => "unknown_command",
            Self::InvalidParams => "invalid_params",
            Self::NotFound => "not_found",
            Self::InvalidExpression => "invalid_expression",
            Self::UnknownStream => "unknown_stream",
            Self::DuplicateId => "duplicate_id",
            Self::LimitExceeded => "limit_exceeded",
            Self::InvalidState => "invalid_state",
            Self::ProtocolVersionMismatch => "protocol_version_mismatch",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
            Self::Other(code) => code,
        }
    }

    /// Parses the wire spelling; unknown codes become [`ErrorCode::Other`].
    pub fn from_wire(code: &str) -> Self {
        match code {
            "bad_request" => Self::BadRequest,
            "unknown_command" => Self::UnknownCommand,
            "invalid_params" => Self::InvalidParams,
            "not_found" => Self::NotFound,
            "invalid_expression" => Self::InvalidExpression,
            "unknown_stream" => Self::UnknownStream,
            "duplicate_id" => Self::DuplicateId,
            "limit_exceeded" => Self::LimitExceeded,
            "invalid_state" => Self::InvalidState,
            "protocol_version_mismatch" => Self::ProtocolVersionMismatch,
            "shutting_down" => Self::ShuttingDown,
            "internal" => Self::Internal,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Self::from_wire(&code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_round_trip_and_unknown_codes_are_kept() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::NotFound,
            ErrorCode::Internal,
            ErrorCode::ProtocolVersionMismatch,
        ] {
            assert_eq!(ErrorCode::from_wire(code.as_str()), code);
        }
        assert_eq!(
            ErrorCode::from_wire("brand_new"),
            ErrorCode::Other("brand_new".into())
        );
    }
}
