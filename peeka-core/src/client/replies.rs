//! The typed answers of the agent's commands, and what a stream reports
//! when it starts and when it ends.

use std::time::Duration;

use peeka_protocol::{EndReason, ErrorBody, ProtocolVersion, StreamId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The answer to `ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    /// Always true.
    pub pong: bool,
    /// The target's pid in its own pid namespace.
    pub pid: u32,
    /// What was sent as `echo`, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo: Option<Value>,
    /// The round trip the client measured (not on the wire).
    #[serde(skip)]
    pub round_trip: Duration,
}

/// The interpreter, as `info` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterpreterInfo {
    /// `platform.python_version()`.
    pub version: String,
    /// `platform.python_implementation()`.
    pub implementation: String,
    /// `sys.executable`, as the target sees it.
    #[serde(default)]
    pub executable: String,
}

/// One open stream, as `info` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSummary {
    /// The stream's id on its connection.
    pub stream: StreamId,
    /// The command that opened it.
    pub command: String,
    /// The command's labels (pattern, probe details).
    #[serde(default)]
    pub labels: Value,
    /// Messages the agent dropped for it so far.
    #[serde(default)]
    pub dropped: u64,
    /// Seconds since it opened.
    #[serde(default)]
    pub age: f64,
    /// The agent's number of the connection that owns it.
    #[serde(default)]
    pub connection: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One entry of the agent's log of its own recent failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentErrorEntry {
    /// Unix time.
    pub time: f64,
    /// What failed.
    pub message: String,
    /// The traceback, when there was an exception.
    #[serde(default)]
    pub traceback: Option<String>,
}

/// The answer to `info`: what the agent is and what it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// The agent's version.
    pub agent_version: String,
    /// The protocol version it speaks.
    pub protocol: ProtocolVersion,
    /// The interpreter it runs in.
    pub python: InterpreterInfo,
    /// The target's pid in its own namespace.
    pub pid: u32,
    /// The socket path, as the target sees it.
    #[serde(default)]
    pub socket: String,
    /// Unix time the agent started.
    #[serde(default)]
    pub started_at: f64,
    /// The names of the agent's threads.
    #[serde(default)]
    pub threads: Vec<String>,
    /// Optional features.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// The commands it serves.
    #[serde(default)]
    pub commands: Vec<String>,
    /// Open client connections.
    #[serde(default)]
    pub connections: u64,
    /// Open streams of every client.
    #[serde(default)]
    pub streams: Vec<StreamSummary>,
    /// Connections refused (limits, credentials).
    #[serde(default)]
    pub refused_connections: u64,
    /// The per-connection queue bound.
    #[serde(default)]
    pub queue_limit: u64,
    /// Recent internal errors.
    #[serde(default)]
    pub errors: Vec<AgentErrorEntry>,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to `detach`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetachOutcome {
    /// Always true.
    pub detached: bool,
    /// Streams (of every client) that ended with reason `detached`.
    #[serde(default)]
    pub streams_ended: u64,
    /// Connections the agent closed.
    #[serde(default)]
    pub connections: u64,
    /// Whether the client saw the agent's private directory disappear
    /// (checked by the client after the answer, within a short wait).
    #[serde(default)]
    pub directory_removed: bool,
}

/// One probe, as `reset` lists or removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// The stream the probe belongs to.
    pub stream: StreamId,
    /// The command that installed it.
    pub command: String,
    /// Its pattern.
    #[serde(default)]
    pub pattern: String,
    /// The agent's number of the owning connection.
    #[serde(default)]
    pub connection: u64,
    /// The probed functions.
    #[serde(default)]
    pub functions: Value,
    /// Observations it produced.
    #[serde(default)]
    pub observations: u64,
    /// Observations the agent dropped.
    #[serde(default)]
    pub dropped: u64,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The answer to `reset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResetOutcome {
    /// How many probes were removed (0 for a listing).
    #[serde(default)]
    pub removed: u64,
    /// The removed probes, or for a listing every probe.
    #[serde(default)]
    pub probes: Vec<ProbeInfo>,
}

/// A function a probe was installed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "MatchedWire")]
pub struct MatchedTarget {
    /// Qualified name, e.g. `shop.cart.Cart.total`.
    pub name: String,
    /// Its source file.
    #[serde(default)]
    pub file: Option<String>,
    /// Its first line.
    #[serde(default)]
    pub line: Option<u32>,
    /// `function`, `coroutine`, `generator` or `async_generator`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// Either a bare name or the full object.
#[derive(Deserialize)]
#[serde(untagged)]
enum MatchedWire {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        file: Option<String>,
        #[serde(default)]
        line: Option<u32>,
        #[serde(default)]
        kind: Option<String>,
    },
}

impl From<MatchedWire> for MatchedTarget {
    fn from(wire: MatchedWire) -> Self {
        match wire {
            MatchedWire::Name(name) => Self {
                name,
                file: None,
                line: None,
                kind: None,
            },
            MatchedWire::Full {
                name,
                file,
                line,
                kind,
            } => Self {
                name,
                file,
                line,
                kind,
            },
        }
    }
}

/// What the agent said when it opened a stream (the response's data).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStarted {
    /// The stream's id (the id of the request that opened it).
    pub stream: StreamId,
    /// The functions probed.
    #[serde(default)]
    pub matched: Vec<MatchedTarget>,
    /// `code_swap` (the default), or `monitoring` (3.12+, opt-in in the target).
    #[serde(default)]
    pub backend: Option<String>,
    /// The `sys.monitoring` tool id used, if any.
    #[serde(default)]
    pub tool_id: Option<u32>,
    /// The limits in force.
    #[serde(default)]
    pub limits: Value,
    /// Fields this version does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// Why.
    pub reason: EndReason,
    /// Messages the agent dropped because the client read too slowly.
    pub dropped: u64,
    /// Items this client dropped because the consumer fell more than the
    /// stream buffer behind (see [`SessionOptions::stream_buffer`](super::SessionOptions::stream_buffer)).
    pub client_dropped: u64,
    /// Why it failed, when `reason` is [`EndReason::Error`].
    pub error: Option<ErrorBody>,
}

/// One item of a stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamItem<T> {
    /// An observation.
    Observation {
        /// Position in the stream (gaps are drops).
        seq: u64,
        /// The observation.
        data: T,
    },
    /// Something that happened to the stream, e.g. `condition_errors`.
    Event {
        /// Position in the stream (shared with observations).
        seq: u64,
        /// What happened.
        kind: String,
        /// Details.
        data: Value,
    },
}

impl<T> StreamItem<T> {
    /// The item's position in its stream.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Observation { seq, .. } | Self::Event { seq, .. } => *seq,
        }
    }

    /// The observation, if this is one.
    pub fn observation(self) -> Option<T> {
        match self {
            Self::Observation { data, .. } => Some(data),
            Self::Event { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matched_targets_may_be_names_or_objects() {
        let started: StreamStarted = serde_json::from_str(
            r#"{"stream":1,"matched":["a.b",{"name":"c.d","file":"/x.py","line":3,"kind":"function"}],
                "backend":"monitoring","tool_id":3,"limits":{"max_string":255}}"#,
        )
        .unwrap();
        assert_eq!(started.matched[0].name, "a.b");
        assert_eq!(started.matched[1].line, Some(3));
        assert_eq!(started.tool_id, Some(3));
    }
}
