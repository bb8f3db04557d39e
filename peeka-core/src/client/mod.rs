//! The typed client: talk to the agent in a running Python process.
//!
//! - [`Session`] (blocking) attaches to a process or connects to the agent
//!   already there, and runs commands: [`ping`](Session::ping),
//!   [`info`](Session::info), [`watch`](Session::watch),
//!   [`stack`](Session::stack), [`monitor`](Session::monitor),
//!   [`reset`](Session::reset), [`detach`](Session::detach),
//!   [`trace`](Session::trace), [`thread`](Session::thread),
//!   [`top`](Session::top), the runtime commands ([`sc`](Session::sc),
//!   [`sm`](Session::sm), [`inspect_get`](Session::inspect_get),
//!   [`logger_set`](Session::logger_set),
//!   [`memory_overview`](Session::memory_overview) and their siblings), and any other
//!   command through [`request`](Session::request) and
//!   [`subscribe`](Session::subscribe).
//! - Streaming commands return a [`Subscription`]: an iterator of
//!   [`StreamItem`]s, cancelled by a [`Canceller`] from anywhere or by
//!   dropping it.
//! - `AsyncSession` (feature `tokio`) has the same methods as `async fn`s;
//!   its streaming methods return an `AsyncSubscription`, a
//!   `futures_core::Stream` of the same items with the same semantics.
//!
//! Both clients share one demultiplexer: whoever reads the socket (a thread,
//! or a task) routes each response to its request and each stream item to
//! its subscription, so one connection carries any number of concurrent
//! requests and streams.
//!
//! # Memory and flow control
//!
//! The reader never waits for a consumer: each stream buffers up to
//! [`SessionOptions::stream_buffer`] items, and a stream whose consumer
//! falls further behind loses the newest items, counted in
//! [`StreamEnd::client_dropped`]. The agent, for its part, never blocks the
//! target: when the client reads too slowly it drops and counts
//! ([`StreamEnd::dropped`], gaps in `seq`). Answers to requests are bounded
//! by the requests in flight.
//!
//! # Example
//!
//! ```no_run
//! use peeka_core::client::{AttachConfig, Session, StreamItem, WatchRequest};
//!
//! let (session, report) = Session::attach(4242, &AttachConfig::default())?;
//! println!("attached to Python {} in {:?}", report.python, report.timeline.total());
//! let watch = session.watch(&WatchRequest::new("shop.cart.Cart.total").times(5))?;
//! for item in watch {
//!     if let StreamItem::Observation { data, .. } = item? {
//!         println!("{} took {:?} ms", data.func_name, data.cost);
//!     }
//! }
//! session.detach()?;
//! # Ok::<(), peeka_core::client::ClientError>(())
//! ```

#[cfg(feature = "tokio")]
mod async_session;
mod core;
mod demux;
mod diagnostics;
mod error;
mod handshake;
mod launch;
mod locate;
mod observations;
mod options;
mod replies;
mod requests;
mod runtime;
mod session;
mod subscription;
#[cfg(test)]
mod testing;

#[cfg(feature = "tokio")]
pub use async_session::AsyncSession;
pub use diagnostics::{
    ThreadEntry, ThreadReport, ThreadRequest, ThreadSort, ThreadState, TopFunction, TopRequest,
    TopSnapshot, TopSort, TraceNode, TraceObservation, TraceRequest,
};
pub use error::ClientError;
pub use launch::{Launch, LaunchConfig, Program, LAUNCHER};
pub use locate::{agent_paths, socket_path, SOCKET_NAME};
pub use observations::{Location, MonitorReport, StackFrame, StackObservation, WatchObservation};
pub use options::{
    AttachConfig, AttachProgress, AttachReport, ProgressCallback, SessionOptions,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_STREAM_BUFFER,
};
pub use peeka_attach::{Method, MethodChoice};
pub use peeka_protocol::{EndReason, ErrorCode, Welcome};
pub use replies::{
    AgentErrorEntry, AgentInfo, DetachOutcome, InterpreterInfo, MatchedTarget, Pong, ProbeInfo,
    ResetOutcome, StreamEnd, StreamItem, StreamStarted, StreamSummary,
};
pub use requests::{MonitorRequest, ProbeBackend, ResetRequest, StackRequest, WatchRequest};
pub use runtime::{
    AllocationDiff, AllocationQuery, AllocationStat, AllocationTop, ClassInfo, ClassSearch,
    DumpReport, GcReport, GroupBy, HandlerInfo, InspectedValue, InstanceCount, InstanceInfo,
    Instances, InstancesRequest, LevelChange, LoggerDetail, LoggerList, LoggerSummary,
    MemoryOverview, MethodInfo, MethodSearch, ReferenceNode, ReferenceTree, ReferencesRequest,
    ScRequest, ScanSummary, SmRequest, SnapshotTaken, TracingState, TypeUsage,
};
pub use session::Session;
#[cfg(feature = "tokio")]
pub use subscription::AsyncSubscription;
pub use subscription::{Canceller, Subscription};
