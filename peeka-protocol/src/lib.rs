//! The wire protocol between Peeka's clients and the agent inside a Python
//! process.
//!
//! This crate does no I/O of its own. It defines:
//!
//! - **Framing** ([`frame`]): each frame is a 4-byte big-endian payload
//!   length followed by that many bytes of UTF-8 JSON. [`FrameDecoder`]
//!   takes byte chunks of any size, checks every length against a limit
//!   ([`DEFAULT_MAX_FRAME_LEN`] unless configured) before buffering anything
//!   and reports a corrupt stream after any error.
//! - **Messages** ([`Message`]): the handshake ([`Hello`], [`Welcome`],
//!   [`Rejected`]), [`Request`]/[`Response`] keyed by a client-chosen id, the
//!   streamed [`Observation`]s (one a message, or several consecutive ones
//!   in an [`ObservationBatch`] since protocol 1.1) and [`Event`]s with a
//!   per-stream `seq`, [`StreamEnd`] and [`Cancel`]. Command-specific contents travel as raw
//!   JSON [`Payload`]s that callers parse into their own types.
//! - **Adapters** over the same core: [`MessageReader`]/[`MessageWriter`]
//!   for `std::io`, and [`MessageCodec`] for `tokio_util::codec` behind the
//!   `tokio` feature.
//!
//! The complete specification, with an example of every message, is
//! `docs/protocol.md` in the repository.
//!
//! # Example
//!
//! A client's side of a handshake and one request, over an in-memory pipe:
//!
//! ```
//! use peeka_protocol::{
//!     Hello, Message, MessageReader, MessageWriter, Payload, Request, Response,
//! };
//!
//! let mut wire = Vec::new();
//! let mut writer = MessageWriter::new(&mut wire);
//! writer.write_message(&Message::Hello(Hello::new("example/1")))?;
//! writer.write_message(&Message::Request(Request {
//!     id: 1,
//!     command: "reset".into(),
//!     params: Payload::from_json(r#"{"list": true}"#)?,
//! }))?;
//!
//! let messages: Vec<Message> =
//!     MessageReader::new(&wire[..]).collect::<Result<_, _>>()?;
//! assert_eq!(messages.len(), 2);
//! let Message::Request(request) = &messages[1] else { unreachable!() };
//! assert_eq!(request.command, "reset");
//!
//! // The agent answers with the same id.
//! let answer = Message::Response(Response { id: request.id, result: Ok(Payload::null()) });
//! assert_eq!(answer.to_json(), r#"{"type":"response","id":1,"ok":true,"data":null}"#);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
mod error_code;
pub mod frame;
mod handshake;
mod io;
mod message;
mod payload;
#[cfg(feature = "tokio")]
mod tokio_codec;
mod version;

pub use codec::{encode_message, encode_to_vec, DecodeError, EncodeError, MessageDecoder};
pub use error_code::ErrorCode;
pub use frame::{encode_frame, FrameDecoder, FrameError, DEFAULT_MAX_FRAME_LEN};
pub use io::{MessageReader, MessageWriter, TransportError};
pub use message::{
    BatchError, Cancel, EndReason, ErrorBody, Event, Hello, IntoObservations, Message,
    MessageError, Observation, ObservationBatch, PythonInfo, Rejected, Request, RequestId,
    Response, StreamEnd, StreamId, Welcome, MAX_NESTING,
};
pub use payload::Payload;
#[cfg(feature = "tokio")]
pub use tokio_codec::MessageCodec;
pub use version::{ProtocolVersion, VersionMismatch, PROTOCOL_VERSION};
