//! Protocol versions and the compatibility rule between peers.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A protocol version: peers talk when their `major` numbers are equal.
///
/// `minor` grows when a release adds something a peer may ignore (a field,
/// a command, a capability); `major` grows when a change would break an
/// older peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProtocolVersion {
    /// Incompatible revisions.
    pub major: u16,
    /// Backward-compatible additions.
    pub minor: u16,
}

/// The version this crate speaks.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The peer speaks a protocol with another major version.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the peer speaks Peeka protocol {peer} but this side speaks {local}; {advice}")]
pub struct VersionMismatch {
    /// Our version.
    pub local: ProtocolVersion,
    /// The peer's version.
    pub peer: ProtocolVersion,
    /// What to do about it, phrased for the side that reports it.
    pub advice: &'static str,
}

impl ProtocolVersion {
    /// Checks that `peer` can talk to `self`.
    ///
    /// # Errors
    /// [`VersionMismatch`] when the major versions differ; its message says
    /// which side to upgrade.
    pub fn check_peer(self, peer: ProtocolVersion) -> Result<(), VersionMismatch> {
        if self.major == peer.major {
            return Ok(());
        }
        let advice = if peer.major > self.major {
            "upgrade this side (or detach the agent with the newer client and attach again with this one)"
        } else {
            "upgrade the peer, or detach the old agent and attach again so that the new agent is loaded"
        };
        Err(VersionMismatch {
            local: self,
            peer,
            advice,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_major_is_compatible_whatever_the_minor() {
        let newer = ProtocolVersion { major: 1, minor: 7 };
        assert!(PROTOCOL_VERSION.check_peer(newer).is_ok());
    }

    #[test]
    fn other_major_is_refused_with_advice() {
        let err = PROTOCOL_VERSION
            .check_peer(ProtocolVersion { major: 2, minor: 0 })
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("2.0") && text.contains("1.0") && text.contains("upgrade"));
    }
}
