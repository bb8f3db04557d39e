//! The typed messages exchanged between a client and the agent.
//!
//! Every frame holds one JSON object with a `"type"` field naming the
//! message. Fields a version does not know are ignored; a `"type"` it does
//! not know is an error ([`MessageError::UnknownType`]). `docs/protocol.md`
//! is the full specification.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error_code::ErrorCode;
use crate::payload::Payload;
use crate::version::ProtocolVersion;

/// Identifies a request on one connection; chosen by the client.
///
/// Clients in languages whose numbers are doubles should keep ids below
/// 2^53.
pub type RequestId = u64;

/// Identifies a stream on one connection: the id of the request that opened it.
pub type StreamId = u64;

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Message {
    /// Client → agent, first message on a connection.
    Hello(Hello),
    /// Agent → client, the answer to an acceptable [`Hello`].
    Welcome(Welcome),
    /// Agent → client, the answer to an unacceptable [`Hello`]; the agent
    /// closes the connection after sending it.
    Rejected(Rejected),
    /// Client → agent: run a command.
    Request(Request),
    /// Agent → client: the outcome of a request.
    Response(Response),
    /// Agent → client: one item of a stream (a watched call, a stack, ...).
    Observation(Observation),
    /// Agent → client, protocol 1.1: consecutive items of one stream in one
    /// message, equivalent to one [`Observation`] each (see
    /// [`ObservationBatch`]). Sent only to a client whose [`Hello`]
    /// announced 1.1 or later (see
    /// [`ProtocolVersion::accepts_observation_batches`]).
    Observations(ObservationBatch),
    /// Agent → client: something that happened to a stream (a monitor cycle,
    /// a warning, a drop count).
    Event(Event),
    /// Agent → client: a stream ended; nothing follows for its id.
    StreamEnd(StreamEnd),
    /// Client → agent: stop a stream and remove what it installed.
    Cancel(Cancel),
}

/// The client's opening message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks.
    pub protocol: ProtocolVersion,
    /// Name and version of the client program, e.g. `peeka-cli/0.1.0`.
    pub client: String,
}

/// The interpreter the agent runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonInfo {
    /// `platform.python_version()`, e.g. `3.12.1`.
    pub version: String,
    /// `platform.python_implementation()`, e.g. `CPython`.
    pub implementation: String,
}

/// The agent's answer to a [`Hello`] it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The protocol version the agent speaks.
    pub protocol: ProtocolVersion,
    /// The agent's own version.
    pub agent_version: String,
    /// The interpreter the agent runs in.
    pub python: PythonInfo,
    /// The target's pid as the agent sees it (its own pid namespace).
    pub pid: u32,
    /// Optional features this agent offers, e.g. `sys.monitoring`.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// The agent's refusal of a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Why, e.g. [`ErrorCode::ProtocolVersionMismatch`].
    pub code: ErrorCode,
    /// What happened and what to do, for a human.
    pub message: String,
    /// The protocol version the agent speaks.
    pub protocol: ProtocolVersion,
}

/// A command for the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, unique among its requests that are in flight.
    pub id: RequestId,
    /// The command name, e.g. `watch`.
    pub command: String,
    /// Command-specific parameters (a JSON object; `null` when omitted).
    #[serde(default)]
    pub params: Payload,
}

/// What went wrong, as carried by error responses and failed streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation that names the fix.
    pub message: String,
    /// The Python traceback inside the target, when the agent itself failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceback: Option<String>,
}

/// The outcome of a request, keyed by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireResponse", into = "WireResponse")]
pub struct Response {
    /// The id of the request this answers.
    pub id: RequestId,
    /// The command's data on success, the error otherwise.
    pub result: Result<Payload, ErrorBody>,
}

/// The wire form of [`Response`]: `ok` tells which of `data` or `error` is set.
#[derive(Serialize, Deserialize)]
struct WireResponse {
    id: RequestId,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Payload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

impl TryFrom<WireResponse> for Response {
    type Error = &'static str;

    fn try_from(wire: WireResponse) -> Result<Self, Self::Error> {
        let result = match (wire.ok, wire.error) {
            (true, _) => Ok(wire.data.unwrap_or_default()),
            (false, Some(error)) => Err(error),
            (false, None) => return Err("a response with \"ok\": false needs an \"error\" object"),
        };
        Ok(Self {
            id: wire.id,
            result,
        })
    }
}

impl From<Response> for WireResponse {
    fn from(response: Response) -> Self {
        let (ok, data, error) = match response.result {
            Ok(data) => (true, Some(data), None),
            Err(error) => (false, None, Some(error)),
        };
        Self {
            id: response.id,
            ok,
            data,
            error,
        }
    }
}

/// One item of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Position in the stream, counting observations and events together
    /// from 0; a gap means the agent dropped messages.
    pub seq: u64,
    /// Command-specific content.
    pub data: Payload,
}

/// Consecutive observations of one stream, sent as one message
/// (`"type":"observations"`, protocol 1.1).
///
/// Element `i` of [`data`](Self::data) is the `data` of the observation of
/// [`stream`](Self::stream) whose sequence number is [`seq`](Self::seq) plus
/// `i`: a batch means exactly what that many [`Observation`]s with
/// consecutive `seq`s, in that order, mean
/// ([`into_observations`](Self::into_observations) yields them). The fields are private so that every batch holds at least
/// one item and its last `seq` fits in a `u64`; decoding refuses a message
/// that breaks either rule ([`MessageError::InvalidFields`]).
///
/// ```
/// use peeka_protocol::{Message, Observation, ObservationBatch, Payload};
///
/// let data = vec![Payload::from_json("1")?, Payload::from_json(r#"{"n":2}"#)?];
/// let batch = ObservationBatch::new(7, 120, data)?;
/// let message = Message::Observations(batch.clone());
/// assert_eq!(
///     message.to_json(),
///     r#"{"type":"observations","stream":7,"seq":120,"data":[1,{"n":2}]}"#
/// );
///
/// let singles: Vec<Observation> = batch.into_observations().collect();
/// assert_eq!((singles[1].stream, singles[1].seq), (7, 121));
/// assert_eq!(singles[1].data.as_str(), r#"{"n":2}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WireObservationBatch")]
pub struct ObservationBatch {
    stream: StreamId,
    seq: u64,
    data: Vec<Payload>,
}

/// The wire form of [`ObservationBatch`], before its rules are checked.
#[derive(Deserialize)]
struct WireObservationBatch {
    stream: StreamId,
    seq: u64,
    data: Vec<Payload>,
}

impl TryFrom<WireObservationBatch> for ObservationBatch {
    type Error = BatchError;

    fn try_from(wire: WireObservationBatch) -> Result<Self, Self::Error> {
        Self::new(wire.stream, wire.seq, wire.data)
    }
}

/// Why an [`ObservationBatch`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchError {
    /// `data` holds no item.
    #[error("an \"observations\" message needs at least one item in \"data\"")]
    Empty,
    /// The last item's sequence number does not fit in a `u64`.
    #[error("an \"observations\" message starting at seq {seq} cannot hold {len} items: the last seq would not fit in 64 bits")]
    SeqOverflow {
        /// The first item's sequence number.
        seq: u64,
        /// How many items there are.
        len: usize,
    },
}

impl ObservationBatch {
    /// The batch of observations `seq`, `seq + 1`, ... of `stream`, one per
    /// element of `data`.
    ///
    /// # Errors
    /// [`BatchError::Empty`] when `data` is empty, [`BatchError::SeqOverflow`]
    /// when `seq + data.len() - 1` does not fit in a `u64`.
    pub fn new(stream: StreamId, seq: u64, data: Vec<Payload>) -> Result<Self, BatchError> {
        let len = data.len();
        if len == 0 {
            return Err(BatchError::Empty);
        }
        u64::try_from(len - 1)
            .ok()
            .and_then(|extra| seq.checked_add(extra))
            .ok_or(BatchError::SeqOverflow { seq, len })?;
        Ok(Self { stream, seq, data })
    }

    /// The stream the observations belong to.
    pub fn stream(&self) -> StreamId {
        self.stream
    }

    /// The sequence number of the first observation.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The sequence number of the last observation.
    pub fn last_seq(&self) -> u64 {
        // `new` checked that this does not overflow; `data` is never empty.
        self.seq + (self.data.len() as u64 - 1)
    }

    /// Every observation's data, in `seq` order; never empty.
    pub fn data(&self) -> &[Payload] {
        &self.data
    }

    /// The equivalent single observations, in `seq` order.
    pub fn into_observations(self) -> IntoObservations {
        IntoObservations {
            stream: self.stream,
            seq: self.seq,
            items: self.data.into_iter().enumerate(),
        }
    }
}

impl IntoIterator for ObservationBatch {
    type Item = Observation;
    type IntoIter = IntoObservations;

    fn into_iter(self) -> IntoObservations {
        self.into_observations()
    }
}

/// The [`Observation`]s an [`ObservationBatch`] stands for, in `seq` order
/// (from [`ObservationBatch::into_observations`]).
#[derive(Debug)]
pub struct IntoObservations {
    stream: StreamId,
    seq: u64,
    items: std::iter::Enumerate<std::vec::IntoIter<Payload>>,
}

impl Iterator for IntoObservations {
    type Item = Observation;

    fn next(&mut self) -> Option<Observation> {
        let (i, data) = self.items.next()?;
        Some(Observation {
            stream: self.stream,
            // At most the batch's last seq, which fits (checked by `new`).
            seq: self.seq + i as u64,
            data,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl ExactSizeIterator for IntoObservations {}

impl std::iter::FusedIterator for IntoObservations {}

/// Something that happened to a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Position in the stream (shared with observations).
    pub seq: u64,
    /// What happened, e.g. `cycle`, `warning`, `dropped`.
    pub kind: String,
    /// Details, specific to `kind`.
    #[serde(default)]
    pub data: Payload,
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EndReason {
    /// The requested number of items (`-n`, `-c`) was delivered.
    CountReached,
    /// The client cancelled it.
    Cancelled,
    /// A `reset` removed its probe.
    Reset,
    /// The agent is detaching.
    Detached,
    /// It failed; [`StreamEnd::error`] says why.
    Error,
    /// A reason this version does not know.
    #[serde(other)]
    Unknown,
}

/// The last message of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// The stream that ended.
    pub stream: StreamId,
    /// Why it ended.
    pub reason: EndReason,
    /// How many messages of this stream the agent dropped because the
    /// client was slower than the target.
    #[serde(default)]
    pub dropped: u64,
    /// Set when `reason` is [`EndReason::Error`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// A request to end a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The stream to end.
    pub stream: StreamId,
}

/// Why a frame's text is not a valid message.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not JSON, or nested deeper than the parser's limit of 128 levels.
    #[error("frame is not valid JSON ({0}); the peer is not speaking the Peeka protocol")]
    InvalidJson(#[source] serde_json::Error),
    /// Arrays and objects nested deeper than [`MAX_NESTING`] levels.
    #[error("message nests arrays and objects deeper than {MAX_NESTING} levels; the peer is not speaking the Peeka protocol")]
    TooDeep,
    /// Valid JSON, but not an object.
    #[error("a message must be a JSON object with a \"type\" field")]
    NotAnObject,
    /// An object without a string `"type"` field.
    #[error("message has no string \"type\" field; the peer is not speaking the Peeka protocol")]
    MissingType,
    /// A `"type"` this version does not know.
    #[error("unknown message type {0:?}; the peer speaks a newer protocol, upgrade this side")]
    UnknownType(String),
    /// A known `"type"` whose fields are missing or ill-typed.
    #[error("invalid {kind:?} message: {source}")]
    InvalidFields {
        /// The message type.
        kind: &'static str,
        /// What serde found wrong.
        #[source]
        source: serde_json::Error,
    },
}

/// How deeply arrays and objects may nest in a message, the envelope included.
///
/// The same bound as `serde_json`'s own recursion limit, so that any payload
/// that passes can later be parsed into a typed value.
pub const MAX_NESTING: usize = 128;

/// Whether `json` nests arrays and objects deeper than [`MAX_NESTING`].
///
/// `serde_json` skips ignored and raw values without a depth limit, so the
/// envelope parser checks depth itself, in one pass over the bytes.
fn nests_too_deep(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            // Skip a string's body in a tight loop: brackets inside it do not
            // count. The text is valid JSON, so every string is terminated.
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    false
}

/// The first pass of parsing: only the `"type"` field.
#[derive(Deserialize)]
struct TypeTag<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

impl Message {
    /// Every message type, as spelled on the wire.
    pub const TYPES: [&'static str; 10] = [
        "hello",
        "welcome",
        "rejected",
        "request",
        "response",
        "observation",
        "observations",
        "event",
        "stream_end",
        "cancel",
    ];

    /// The wire name of this message's type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello(_) => "hello",
            Self::Welcome(_) => "welcome",
            Self::Rejected(_) => "rejected",
            Self::Request(_) => "request",
            Self::Response(_) => "response",
            Self::Observation(_) => "observation",
            Self::Observations(_) => "observations",
            Self::Event(_) => "event",
            Self::StreamEnd(_) => "stream_end",
            Self::Cancel(_) => "cancel",
        }
    }

    /// Parses one message from a frame's JSON text.
    ///
    /// ```
    /// use peeka_protocol::{Message, Cancel};
    ///
    /// let msg = Message::parse(r#"{"type":"cancel","stream":7,"added_later":true}"#)?;
    /// assert_eq!(msg, Message::Cancel(Cancel { stream: 7 }));
    /// # Ok::<(), peeka_protocol::MessageError>(())
    /// ```
    ///
    /// # Errors
    /// A [`MessageError`] saying what is wrong; never panics.
    pub fn parse(json: &str) -> Result<Self, MessageError> {
        // A message must be an object. Anything else is told apart here, as
        // valid or invalid JSON: the typed first pass below would accept some
        // arrays and reject others as "trailing characters" (a syntax error).
        if !json.trim_start().starts_with('{') {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(json) {
                Ok(_) => MessageError::NotAnObject,
                Err(e) => MessageError::InvalidJson(e),
            });
        }
        let tag: TypeTag<'_> = serde_json::from_str(json).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => MessageError::MissingType,
            _ => MessageError::InvalidJson(e),
        })?;
        let kind = tag.kind.ok_or(MessageError::MissingType)?;
        if nests_too_deep(json) {
            return Err(MessageError::TooDeep);
        }
        fn fields<'a, T: Deserialize<'a>>(
            json: &'a str,
            kind: &'static str,
        ) -> Result<T, MessageError> {
            serde_json::from_str(json)
                .map_err(|source| MessageError::InvalidFields { kind, source })
        }
        Ok(match kind.as_ref() {
            "hello" => Self::Hello(fields(json, "hello")?),
            "welcome" => Self::Welcome(fields(json, "welcome")?),
            "rejected" => Self::Rejected(fields(json, "rejected")?),
            "request" => Self::Request(fields(json, "request")?),
            "response" => Self::Response(fields(json, "response")?),
            "observation" => Self::Observation(fields(json, "observation")?),
            "observations" => Self::Observations(fields(json, "observations")?),
            "event" => Self::Event(fields(json, "event")?),
            "stream_end" => Self::StreamEnd(fields(json, "stream_end")?),
            "cancel" => Self::Cancel(fields(json, "cancel")?),
            other => return Err(MessageError::UnknownType(other.to_owned())),
        })
    }

    /// The message as compact JSON text (the payload of its frame).
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string and
        // payloads are already valid JSON.
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("messages always serialize"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PROTOCOL_VERSION;

    #[test]
    fn every_type_round_trips() {
        let error = ErrorBody {
            code: ErrorCode::NotFound,
            message: "no function matches `app.nope`".into(),
            traceback: Some("Traceback ...".into()),
        };
        let messages = [
            Message::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                client: "test/1".into(),
            }),
            Message::Welcome(Welcome {
                protocol: PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
                python: PythonInfo {
                    version: "3.12.1".into(),
                    implementation: "CPython".into(),
                },
                pid: 42,
                capabilities: vec!["sys.monitoring".into()],
            }),
            Message::Rejected(Rejected {
                code: ErrorCode::ProtocolVersionMismatch,
                message: "upgrade".into(),
                protocol: PROTOCOL_VERSION,
            }),
            Message::Request(Request {
                id: 1,
                command: "watch".into(),
                params: Payload::from_json(r#"{"pattern":"a.b"}"#).unwrap(),
            }),
            Message::Response(Response {
                id: 1,
                result: Ok(Payload::from_json(r#"{"stream":1}"#).unwrap()),
            }),
            Message::Response(Response {
                id: 2,
                result: Err(error.clone()),
            }),
            Message::Observation(Observation {
                stream: 1,
                seq: 0,
                data: Payload::from_json(r#"{"cost":0.1}"#).unwrap(),
            }),
            Message::Observations(
                ObservationBatch::new(
                    1,
                    2,
                    vec![
                        Payload::from_json(r#"{"cost":0.2}"#).unwrap(),
                        Payload::null(),
                    ],
                )
                .unwrap(),
            ),
            Message::Event(Event {
                stream: 1,
                seq: 1,
                kind: "cycle".into(),
                data: Payload::null(),
            }),
            Message::StreamEnd(StreamEnd {
                stream: 1,
                reason: EndReason::Error,
                dropped: 3,
                error: Some(error),
            }),
            Message::Cancel(Cancel { stream: 1 }),
        ];
        for message in messages {
            let json = message.to_json();
            assert!(json.starts_with(&format!(r#"{{"type":"{}""#, message.kind())));
            assert_eq!(Message::parse(&json).unwrap(), message, "{json}");
        }
    }

    #[test]
    fn response_wire_form() {
        let ok = Message::Response(Response {
            id: 5,
            result: Ok(Payload::from_json("[1]").unwrap()),
        });
        assert_eq!(
            ok.to_json(),
            r#"{"type":"response","id":5,"ok":true,"data":[1]}"#
        );
        let missing_data = Message::parse(r#"{"type":"response","id":5,"ok":true}"#).unwrap();
        assert_eq!(
            missing_data,
            Message::Response(Response {
                id: 5,
                result: Ok(Payload::null())
            })
        );
        assert!(matches!(
            Message::parse(r#"{"type":"response","id":5,"ok":false}"#),
            Err(MessageError::InvalidFields {
                kind: "response",
                ..
            })
        ));
    }

    #[test]
    fn malformed_messages_are_typed_errors() {
        assert!(matches!(
            Message::parse("{"),
            Err(MessageError::InvalidJson(_))
        ));
        assert!(matches!(
            Message::parse("[1,2]"),
            Err(MessageError::NotAnObject)
        ));
        assert!(matches!(
            Message::parse(r#"["hello"]"#),
            Err(MessageError::NotAnObject)
        ));
        assert!(matches!(
            Message::parse("17"),
            Err(MessageError::NotAnObject)
        ));
        assert!(matches!(
            Message::parse("{}"),
            Err(MessageError::MissingType)
        ));
        assert!(matches!(
            Message::parse(r#"{"type":3}"#),
            Err(MessageError::MissingType)
        ));
        assert!(matches!(
            Message::parse(r#"{"type":"teleport"}"#),
            Err(MessageError::UnknownType(t)) if t == "teleport"
        ));
        assert!(matches!(
            Message::parse(r#"{"type":"cancel","stream":"seven"}"#),
            Err(MessageError::InvalidFields { kind: "cancel", .. })
        ));
        let deep = format!(
            r#"{{"type":"request","id":1,"command":"x","params":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert!(matches!(Message::parse(&deep), Err(MessageError::TooDeep)));
        let nested = |n: usize| {
            format!(
                r#"{{"type":"request","id":1,"command":"x","params":{}"[{{\"]"{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert!(Message::parse(&nested(MAX_NESTING - 1)).is_ok());
        assert!(matches!(
            Message::parse(&nested(MAX_NESTING)),
            Err(MessageError::TooDeep)
        ));
    }

    fn batch(seq: u64, items: &[&str]) -> Result<ObservationBatch, BatchError> {
        let data = items
            .iter()
            .map(|j| Payload::from_json(j).unwrap())
            .collect();
        ObservationBatch::new(7, seq, data)
    }

    #[test]
    fn observations_wire_form_and_accessors() {
        let json =
            r#"{"type":"observations","stream":7,"seq":120,"data":[{"a":1},[2],"x",null,true]}"#;
        let Message::Observations(parsed) = Message::parse(json).unwrap() else {
            panic!("not a batch");
        };
        assert_eq!(
            parsed,
            batch(120, &[r#"{"a":1}"#, "[2]", r#""x""#, "null", "true"]).unwrap()
        );
        assert_eq!(Message::Observations(parsed.clone()).to_json(), json);
        assert_eq!(
            (parsed.stream(), parsed.seq(), parsed.last_seq()),
            (7, 120, 124)
        );
        assert_eq!(parsed.data().len(), 5);
        // Unknown fields are ignored, as in every message.
        let later = r#"{"type":"observations","stream":7,"seq":0,"data":[1],"compressed":false}"#;
        assert!(matches!(
            Message::parse(later),
            Ok(Message::Observations(b)) if b == batch(0, &["1"]).unwrap()
        ));
    }

    #[test]
    fn a_batch_is_its_single_observations_in_order() {
        let items = [r#"{"cost":1}"#, r#"{"cost":2}"#, r#"{"cost":3}"#];
        let observations: Vec<Observation> = batch(40, &items).unwrap().into_iter().collect();
        let singles: Vec<Observation> = (40..)
            .zip(items)
            .map(|(seq, data)| Observation {
                stream: 7,
                seq,
                data: Payload::from_json(data).unwrap(),
            })
            .collect();
        assert_eq!(observations, singles);
        let iter = batch(0, &items).unwrap().into_observations();
        assert_eq!(iter.len(), 3);

        // The last seq may be u64::MAX itself.
        let top = batch(u64::MAX - 1, &["1", "2"]).unwrap();
        assert_eq!(top.last_seq(), u64::MAX);
        let seqs: Vec<u64> = top.into_observations().map(|o| o.seq).collect();
        assert_eq!(seqs, [u64::MAX - 1, u64::MAX]);
    }

    #[test]
    fn empty_and_overflowing_batches_are_refused() {
        assert_eq!(batch(0, &[]), Err(BatchError::Empty));
        assert_eq!(
            batch(u64::MAX, &["1", "2"]),
            Err(BatchError::SeqOverflow {
                seq: u64::MAX,
                len: 2
            })
        );
        assert!(batch(u64::MAX, &["1"]).is_ok());
        for json in [
            r#"{"type":"observations","stream":7,"seq":0,"data":[]}"#,
            r#"{"type":"observations","stream":7,"seq":18446744073709551615,"data":[1,2]}"#,
            r#"{"type":"observations","stream":7,"seq":18446744073709551614,"data":[1,2,3]}"#,
            r#"{"type":"observations","stream":7,"seq":0}"#,
            r#"{"type":"observations","stream":7,"seq":0,"data":null}"#,
            r#"{"type":"observations","stream":7,"seq":0,"data":{"0":1}}"#,
            r#"{"type":"observations","stream":7,"seq":-1,"data":[1]}"#,
            r#"{"type":"observations","seq":0,"data":[1]}"#,
            r#"{"type":"observations","stream":7,"data":[1]}"#,
            r#"{"type":"observations","stream":7,"seq":0,"data":[1],"data":[2]}"#,
        ] {
            assert!(
                matches!(
                    Message::parse(json),
                    Err(MessageError::InvalidFields {
                        kind: "observations",
                        ..
                    })
                ),
                "{json}"
            );
        }
        let err =
            Message::parse(r#"{"type":"observations","stream":7,"seq":0,"data":[]}"#).unwrap_err();
        assert!(err.to_string().contains("at least one item"), "{err}");
    }

    #[test]
    fn unknown_stream_end_reason_is_kept_as_unknown() {
        let msg = Message::parse(r#"{"type":"stream_end","stream":1,"reason":"meteor"}"#).unwrap();
        assert!(matches!(
            msg,
            Message::StreamEnd(StreamEnd {
                reason: EndReason::Unknown,
                dropped: 0,
                ..
            })
        ));
    }
}
