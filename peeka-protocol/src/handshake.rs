//! The opening exchange: `hello` from the client, `welcome` or `rejected`
//! from the agent.

use crate::error_code::ErrorCode;
use crate::message::{Hello, Message, Rejected, Welcome};
use crate::version::{ProtocolVersion, VersionMismatch, PROTOCOL_VERSION};

impl Hello {
    /// A hello speaking this crate's [`PROTOCOL_VERSION`].
    pub fn new(client: impl Into<String>) -> Self {
        Self {
            protocol: PROTOCOL_VERSION,
            client: client.into(),
        }
    }

    /// The agent's answer to this hello: `welcome` when the majors match,
    /// otherwise `rejected` with a message telling the client what to do.
    pub fn answer(&self, welcome: Welcome) -> Message {
        match welcome.protocol.check_peer(self.protocol) {
            Ok(()) => Message::Welcome(welcome),
            Err(mismatch) => Message::Rejected(Rejected {
                code: ErrorCode::ProtocolVersionMismatch,
                message: format!(
                    "this agent speaks Peeka protocol {} and the client speaks {}; use a client of the same major version, or detach and attach again with this client so that its agent is loaded",
                    mismatch.local, mismatch.peer
                ),
                protocol: welcome.protocol,
            }),
        }
    }
}

impl Welcome {
    /// Client-side check of the agent's version.
    ///
    /// # Errors
    /// [`VersionMismatch`] when the agent speaks another major version.
    pub fn check_compatible(&self) -> Result<(), VersionMismatch> {
        PROTOCOL_VERSION.check_peer(self.protocol)
    }
}

impl Rejected {
    /// The agent's protocol version as a mismatch seen from this side.
    pub fn as_mismatch(&self) -> Option<VersionMismatch> {
        PROTOCOL_VERSION.check_peer(self.protocol).err()
    }
}

impl ProtocolVersion {
    /// Whether this is the version this crate speaks.
    pub fn is_current(self) -> bool {
        self == PROTOCOL_VERSION
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PythonInfo;

    fn welcome(protocol: ProtocolVersion) -> Welcome {
        Welcome {
            protocol,
            agent_version: "0.1.0".into(),
            python: PythonInfo {
                version: "3.13.0".into(),
                implementation: "CPython".into(),
            },
            pid: 1,
            capabilities: Vec::new(),
        }
    }

    #[test]
    fn agent_rejects_another_major_and_client_refuses_it_too() {
        let old_client = Hello {
            protocol: ProtocolVersion { major: 0, minor: 9 },
            client: "old".into(),
        };
        let Message::Rejected(rejected) = old_client.answer(welcome(PROTOCOL_VERSION)) else {
            panic!("a different major must be rejected");
        };
        assert_eq!(rejected.code, ErrorCode::ProtocolVersionMismatch);
        assert!(rejected.message.contains("0.9"));

        let future_agent = welcome(ProtocolVersion { major: 2, minor: 0 });
        let err = future_agent.check_compatible().unwrap_err();
        assert!(err.to_string().contains("upgrade this side"));
    }

    #[test]
    fn other_minors_of_the_same_major_talk_both_ways() {
        let old = ProtocolVersion { major: 1, minor: 0 };
        let old_client = Hello {
            protocol: old,
            client: "peeka-cli/0.0.9".into(),
        };
        assert!(matches!(
            old_client.answer(welcome(PROTOCOL_VERSION)),
            Message::Welcome(_)
        ));
        assert!(welcome(old).check_compatible().is_ok());
        assert!(!old.is_current() && PROTOCOL_VERSION.is_current());
    }

    #[test]
    fn same_major_is_welcomed() {
        let hello = Hello::new("peeka-cli/0.1.0");
        assert!(matches!(
            hello.answer(welcome(PROTOCOL_VERSION)),
            Message::Welcome(_)
        ));
    }
}
