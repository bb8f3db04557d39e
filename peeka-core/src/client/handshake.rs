//! The outcome of a session's handshake: known at once when `connect`
//! waited for the agent's answer to `hello`, or filled in later by the
//! reader thread of a session that sent its first requests right behind
//! the `hello` ([`SessionOptions::pipeline_hello`](super::SessionOptions::pipeline_hello)).

use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use peeka_protocol::{Message, Welcome};

use super::core::check_welcome;
use super::error::ClientError;

/// The agent's answer to `hello`, once it is known.
#[derive(Debug)]
pub(crate) struct HandshakeSlot {
    pid: u32,
    /// The welcome, or the answer that was not one (`None`: the connection
    /// closed first), kept to rebuild the typed error for every caller.
    outcome: OnceLock<Result<Welcome, Option<Message>>>,
    lock: Mutex<()>,
    known: Condvar,
}

impl HandshakeSlot {
    /// A handshake already completed with `welcome`.
    pub(crate) fn completed(pid: u32, welcome: Welcome) -> Self {
        let slot = Self::pending(pid);
        let _ = slot.outcome.set(Ok(welcome));
        slot
    }

    /// A handshake whose answer the reader thread has yet to read.
    pub(crate) fn pending(pid: u32) -> Self {
        Self {
            pid,
            outcome: OnceLock::new(),
            lock: Mutex::new(()),
            known: Condvar::new(),
        }
    }

    /// Records the agent's answer to `hello` (`None`: the connection ended
    /// first). Returns the error when it is not an acceptable welcome.
    pub(crate) fn settle(&self, answer: Option<Message>) -> Result<(), ClientError> {
        let checked = check_welcome(self.pid, answer.clone());
        let outcome = match &checked {
            Ok(welcome) => Ok(welcome.clone()),
            Err(_) => Err(answer),
        };
        let _ = self.outcome.set(outcome);
        drop(
            self.lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.known.notify_all();
        checked.map(|_| ())
    }

    /// The welcome, or why the handshake failed; `None` while unknown.
    pub(crate) fn outcome(&self) -> Option<Result<&Welcome, ClientError>> {
        self.outcome.get().map(|outcome| match outcome {
            Ok(welcome) => Ok(welcome),
            Err(answer) => Err(check_welcome(self.pid, answer.clone())
                .err()
                .unwrap_or_else(|| ClientError::Handshake {
                    pid: self.pid,
                    detail: "its answer to `hello` was not accepted".into(),
                })),
        })
    }

    /// The failure of the handshake, if it is known to have failed.
    pub(crate) fn failure(&self) -> Option<ClientError> {
        self.outcome().and_then(Result::err)
    }

    /// Waits at most `limit` for the outcome; `None` if it is still unknown.
    pub(crate) fn wait_outcome(&self, limit: Duration) -> Option<Result<&Welcome, ClientError>> {
        let deadline = Instant::now() + limit;
        let mut guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if let Some(outcome) = self.outcome() {
                return Some(outcome);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            guard = self
                .known
                .wait_timeout(guard, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// The welcome, waiting at most `limit` for it.
    pub(crate) fn wait(&self, limit: Duration) -> Result<&Welcome, ClientError> {
        self.wait_outcome(limit).unwrap_or_else(|| {
            Err(ClientError::Handshake {
                pid: self.pid,
                detail: format!("no answer to `hello` within {limit:?}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use peeka_protocol::{ErrorCode, Rejected};

    fn welcome() -> Welcome {
        serde_json::from_value(serde_json::json!({
            "protocol": {"major": 1, "minor": 0},
            "agent_version": "0.1.0",
            "pid": 7,
            "python": {"version": "3.12.1", "implementation": "CPython"},
            "capabilities": []
        }))
        .unwrap()
    }

    #[test]
    fn a_welcome_completes_it_for_every_waiter() {
        let slot = std::sync::Arc::new(HandshakeSlot::pending(7));
        assert!(slot.outcome().is_none());
        let waiter = {
            let slot = std::sync::Arc::clone(&slot);
            std::thread::spawn(move || slot.wait(Duration::from_secs(5)).map(|w| w.pid))
        };
        slot.settle(Some(Message::Welcome(welcome()))).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 7);
        assert!(slot.failure().is_none());
    }

    #[test]
    fn a_refusal_is_the_same_typed_error_for_every_caller() {
        let slot = HandshakeSlot::pending(7);
        let refusal = Message::Rejected(Rejected {
            code: ErrorCode::LimitExceeded,
            message: "too many clients".into(),
            protocol: peeka_protocol::PROTOCOL_VERSION,
        });
        assert!(matches!(
            slot.settle(Some(refusal)),
            Err(ClientError::Rejected { .. })
        ));
        for _ in 0..2 {
            assert!(matches!(slot.failure(), Some(ClientError::Rejected { .. })));
        }
        assert!(matches!(
            slot.wait(Duration::ZERO),
            Err(ClientError::Rejected { .. })
        ));
    }

    #[test]
    fn no_answer_is_a_handshake_error() {
        let slot = HandshakeSlot::pending(7);
        let error = slot.wait(Duration::from_millis(10)).unwrap_err();
        assert!(
            error.to_string().contains("no answer to `hello`"),
            "{error}"
        );
        assert!(slot.settle(None).is_err());
        assert!(matches!(
            slot.failure(),
            Some(ClientError::Handshake { .. })
        ));
    }
}
