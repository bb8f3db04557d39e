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
///
/// 1.1 added the `observations` message ([`Message::Observations`]), which
/// an agent sends only to clients that announced 1.1 or later.
///
/// [`Message::Observations`]: crate::Message::Observations
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 1 };

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
    /// Whether a client that announced this version in its `hello` may be
    /// sent `observations` messages ([`Message::Observations`]): protocol
    /// 1.1 and later minors of major 1.
    ///
    /// [`Message::Observations`]: crate::Message::Observations
    pub fn accepts_observation_batches(self) -> bool {
        self.major == 1 && self.minor >= 1
    }

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
        assert!(text.contains("2.0") && text.contains("1.1") && text.contains("upgrade"));
    }

    #[test]
    fn this_version_is_1_1_and_only_1_1_and_later_minors_get_batches() {
        assert_eq!(PROTOCOL_VERSION.to_string(), "1.1");
        assert!(PROTOCOL_VERSION.accepts_observation_batches());
        for (major, minor, accepts) in [
            (1, 0, false),
            (1, 1, true),
            (1, 7, true),
            (0, 9, false),
            (2, 0, false),
        ] {
            assert_eq!(
                ProtocolVersion { major, minor }.accepts_observation_batches(),
                accepts,
                "{major}.{minor}"
            );
        }
    }
}
