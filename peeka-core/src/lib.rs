//! The heart of Peeka: the agent and the typed client.
//!
//! Two things that belong together:
//!
//! - **The agent** ([`agent`]): the Python code (standard library only, our
//!   own, kept as real `.py` files and embedded here) that runs inside the
//!   target process, listens on a private Unix socket and serves `ping`,
//!   `info`, `detach` and the probe commands `watch`, `stack`, `monitor` and
//!   `reset` (more arrive with issue 5).
//! - **The client** ([`client`]): a typed session over [`peeka_protocol`]
//!   that attaches (through `peeka-attach`, writing the embedded agent into
//!   the target) or connects to an attached process, and exposes each
//!   command as a typed request. [`client::Session`] is blocking, with
//!   streaming commands as iterators ([`client::Subscription`]); with the
//!   `tokio` feature, `client::AsyncSession` has the same methods as
//!   `async fn`s, with streams as `futures_core::Stream`s. Both share one
//!   demultiplexer, so one connection carries concurrent requests and
//!   streams.
//!
//! ```no_run
//! use peeka_core::client::{AttachConfig, MonitorRequest, Session, StreamItem};
//! use std::time::Duration;
//!
//! let (session, _report) = Session::attach(4242, &AttachConfig::default())?;
//! let reports = session.monitor(
//!     &MonitorRequest::new("shop.cart.Cart.total").interval(Duration::from_secs(5)).cycles(3),
//! )?;
//! for item in reports {
//!     if let StreamItem::Observation { data, .. } = item? {
//!         println!("{} calls, p99 {} ms", data.total, data.rt_p99);
//!     }
//! }
//! session.detach()?;
//! # Ok::<(), peeka_core::client::ClientError>(())
//! ```
#![deny(missing_docs)]

pub mod agent;
pub mod client;

pub use peeka_protocol as protocol;
