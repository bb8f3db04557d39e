//! What the sync and the async session share: request ids, encoding
//! parameters, turning answers into results, the handshake's checks, and
//! the seam ([`Outgoing`]) through which each sends messages.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use peeka_protocol::{
    Cancel, ErrorCode, Message, Payload, Request, RequestId, Welcome, PROTOCOL_VERSION,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::demux::{Answer, Demux, ResponseSlot, StreamQueue};
use super::error::ClientError;
use super::handshake::HandshakeSlot;
use super::options::SessionOptions;
use super::replies::StreamStarted;
use super::subscription::{Canceller, Subscription};

/// How a session sends messages: the sync one writes to the socket under a
/// lock, the async one hands them to its writer task.
pub(crate) trait Outgoing: Send + Sync + fmt::Debug {
    /// Sends (or queues) `message`.
    fn send(&self, message: Message) -> Result<(), ClientError>;
}

/// Something whose lifetime keeps a connection open (its reader running).
pub(crate) type KeepAlive = Arc<dyn Any + Send + Sync>;

/// The state of one connected session, shared by its handles.
#[derive(Debug)]
pub(crate) struct ClientCore {
    pub(crate) pid: u32,
    pub(crate) socket: PathBuf,
    /// The agent's answer to `hello` (known at once unless the session
    /// pipelined its first requests behind the `hello`).
    pub(crate) handshake: HandshakeSlot,
    pub(crate) options: SessionOptions,
    pub(crate) demux: Arc<Demux>,
    pub(crate) outgoing: Arc<dyn Outgoing>,
    next_id: AtomicU64,
}

/// A sent request, waiting for its answer.
#[derive(Debug)]
pub(crate) struct InFlight {
    pub(crate) id: RequestId,
    pub(crate) command: String,
    pub(crate) slot: Arc<ResponseSlot>,
}

impl ClientCore {
    pub(crate) fn new(
        pid: u32,
        socket: PathBuf,
        handshake: HandshakeSlot,
        options: SessionOptions,
        demux: Arc<Demux>,
        outgoing: Arc<dyn Outgoing>,
    ) -> Self {
        Self {
            pid,
            socket,
            handshake,
            options,
            demux,
            outgoing,
            next_id: AtomicU64::new(1),
        }
    }

    /// Registers and sends a request.
    pub(crate) fn send_request(
        &self,
        command: &str,
        params: Payload,
        opens_stream: bool,
    ) -> Result<InFlight, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = self
            .demux
            .register(id, opens_stream)
            .map_err(|closed| self.handshake.failure().unwrap_or(closed))?;
        let sent = self.outgoing.send(Message::Request(Request {
            id,
            command: command.to_owned(),
            params,
        }));
        if let Err(error) = sent {
            self.demux.abandon(id);
            // A pipelined session whose agent refused it: the write failed
            // because the agent closed; its answer to `hello` says why.
            return Err(self.handshake_failure().unwrap_or(error));
        }
        Ok(InFlight {
            id,
            command: command.to_owned(),
            slot,
        })
    }

    /// Turns what waiting produced (`None`: the timeout passed) into a result.
    pub(crate) fn settle(
        &self,
        request: &InFlight,
        answer: Option<Answer>,
    ) -> Result<(Payload, Option<Arc<StreamQueue>>), ClientError> {
        match answer {
            Some(Answer::Ok(data, queue)) => Ok((data, queue)),
            Some(Answer::Err(error)) => Err(ClientError::Agent {
                command: request.command.clone(),
                code: error.code,
                message: error.message,
                traceback: error.traceback,
            }),
            Some(Answer::Closed(closed)) => Err(self.handshake.failure().unwrap_or(closed.error())),
            None => {
                self.give_up(request);
                if self.handshake.outcome().is_none() {
                    return Err(ClientError::Handshake {
                        pid: self.pid,
                        detail: format!(
                            "no answer to `hello` within {:?}",
                            self.options.request_timeout
                        ),
                    });
                }
                Err(ClientError::Timeout {
                    what: request.command.clone(),
                    waited: self.options.request_timeout,
                })
            }
        }
    }

    /// Why the handshake failed, waiting (at most the connect timeout) for
    /// the reader thread to read the agent's answer when it is still
    /// unknown; `None` when it succeeded or never came.
    fn handshake_failure(&self) -> Option<ClientError> {
        self.handshake
            .wait_outcome(self.options.connect_timeout)
            .and_then(Result::err)
    }

    /// The waiter of `request` stops waiting (a timeout, or an async
    /// caller's future dropped before the answer was taken): the request is
    /// forgotten, and a stream it opened, or opens later, is cancelled at
    /// once, so no probe stays installed without a subscription.
    pub(crate) fn give_up(&self, request: &InFlight) {
        self.demux.abandon(request.id);
        if let Some(Answer::Ok(_, Some(queue))) = request.slot.give_up() {
            self.demux.forget_stream(queue.id());
            let _ = self
                .outgoing
                .send(Message::Cancel(Cancel { stream: queue.id() }));
        }
    }

    /// Builds a subscription from a stream-opening request's answer.
    pub(crate) fn subscription<T: DeserializeOwned>(
        &self,
        request: &InFlight,
        data: Payload,
        queue: Option<Arc<StreamQueue>>,
        keep_alive: KeepAlive,
    ) -> Result<Subscription<T>, ClientError> {
        let Some(queue) = queue else {
            return Err(ClientError::Protocol {
                detail: format!("`{}` answered without opening a stream", request.command),
            });
        };
        // A command added later may describe its stream differently: keep
        // what it said in `extra`.
        let started = data
            .parse::<StreamStarted>()
            .unwrap_or_else(|_| StreamStarted {
                stream: request.id,
                matched: Vec::new(),
                backend: None,
                tool_id: None,
                limits: serde_json::Value::Null,
                extra: match data.parse::<serde_json::Value>() {
                    Ok(serde_json::Value::Object(map)) => map,
                    _ => serde_json::Map::new(),
                },
            });
        let canceller = Canceller::new(Arc::clone(&self.outgoing), Arc::clone(&queue));
        Ok(Subscription::new(
            request.command.clone(),
            started,
            queue,
            canceller,
            Arc::clone(&self.demux),
            keep_alive,
        ))
    }
}

/// Encodes `params` for `command`.
pub(crate) fn encode_params<P: Serialize + ?Sized>(
    command: &str,
    params: &P,
) -> Result<Payload, ClientError> {
    Payload::from_serialize(params).map_err(|e| ClientError::InvalidRequest {
        command: command.to_owned(),
        detail: e.to_string(),
    })
}

/// Decodes the data of `command`'s answer.
pub(crate) fn decode_data<R: DeserializeOwned>(
    command: &str,
    data: &Payload,
) -> Result<R, ClientError> {
    data.parse().map_err(|e| unexpected(command, &e))
}

fn unexpected(command: &str, error: &serde_json::Error) -> ClientError {
    ClientError::Protocol {
        detail: format!("the answer to `{command}` has an unexpected shape: {error}"),
    }
}

/// Checks the agent's answer to `hello`.
pub(crate) fn check_welcome(pid: u32, answer: Option<Message>) -> Result<Welcome, ClientError> {
    match answer {
        Some(Message::Welcome(welcome)) => {
            welcome
                .check_compatible()
                .map_err(|mismatch| ClientError::Incompatible { pid, mismatch })?;
            Ok(welcome)
        }
        Some(Message::Rejected(rejected)) => {
            if rejected.code == ErrorCode::ProtocolVersionMismatch {
                if let Err(mismatch) = PROTOCOL_VERSION.check_peer(rejected.protocol) {
                    return Err(ClientError::Incompatible { pid, mismatch });
                }
            }
            Err(ClientError::Rejected {
                pid,
                code: rejected.code,
                message: rejected.message,
            })
        }
        Some(other) => Err(ClientError::Handshake {
            pid,
            detail: format!("it answered `hello` with a `{}` message", other.kind()),
        }),
        None => Err(ClientError::Handshake {
            pid,
            detail: "it closed the connection without answering `hello`".into(),
        }),
    }
}
