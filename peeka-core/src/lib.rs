//! The heart of Peeka: the agent and the typed client.
//!
//! This crate will hold two things that belong together:
//!
//! - **The agent**: the Python code (standard library only, our own, kept as
//!   real `.py` files and embedded here) that runs inside the target process,
//!   listens on a private Unix socket and serves `watch`, `stack`, `monitor`,
//!   `trace`, `thread`, `top`, `memory`, `inspect`, `logger`, `sc`/`sm`.
//! - **The client**: a typed session API over [`peeka_protocol`] that attaches
//!   (through `peeka-attach`) or connects to an attached process and exposes
//!   each command as a typed request, with streaming commands as iterators,
//!   plus the same API as `futures::Stream`s behind the optional `tokio`
//!   feature.
//!
//! Today it holds the agent's core ([`agent`]: socket server, handshake,
//! streams with bounded queues, value capture, the safe expression
//! language, `ping`/`info`/`detach`); the commands and the typed client
//! arrive with issue 4.
#![deny(missing_docs)]

pub mod agent;
pub mod client;

pub use peeka_protocol as protocol;
