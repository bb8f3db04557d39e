//! How to connect and attach, and what an attach reports.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use peeka_attach::{Method, MethodChoice, Timeline};

/// The request timeout of [`SessionOptions::default`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The connect timeout of [`SessionOptions::default`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The stream buffer of [`SessionOptions::default`].
pub const DEFAULT_STREAM_BUFFER: usize = 16 * 1024;

/// How a session talks to its agent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionOptions {
    /// How long a request waits for its response (and a write for the
    /// socket) before [`ClientError::Timeout`](super::ClientError::Timeout).
    pub request_timeout: Duration,
    /// How long connecting and the handshake may take.
    pub connect_timeout: Duration,
    /// How many items each stream buffers for a consumer that has not
    /// taken them yet. The connection's reader never waits for a slow
    /// consumer (that would hold up every other stream and response on the
    /// connection): items beyond this are dropped by the client and counted
    /// ([`StreamEnd::client_dropped`](super::StreamEnd::client_dropped),
    /// [`Subscription::client_dropped`](super::Subscription::client_dropped)).
    /// Events get some headroom beyond it.
    pub stream_buffer: usize,
    /// The `client` string of the `hello`, e.g. `peeka-cli/0.1.0`.
    pub client_name: String,
    /// [`Session`](super::Session) only: connecting returns once the
    /// `hello` is written, without waiting for the agent's answer, so the
    /// first request follows the `hello` at once and the agent answers both
    /// in one write. That saves a wake-up of the agent's thread, which on a
    /// target whose threads keep the GIL busy waits up to the interpreter's
    /// switch interval (5 ms) each time: a one-shot command is served in
    /// fewer of them. The handshake's outcome then comes with the first
    /// answer: a refusal or an incompatible agent is the error of the first
    /// request (and of [`Session::welcome`](super::Session::welcome)).
    /// Off by default; [`AsyncSession`](super::AsyncSession) always waits.
    pub pipeline_hello: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            stream_buffer: DEFAULT_STREAM_BUFFER,
            client_name: concat!("peeka-core/", env!("CARGO_PKG_VERSION")).to_owned(),
            pipeline_hello: false,
        }
    }
}

impl SessionOptions {
    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`stream_buffer`](Self::stream_buffer) (at least 1).
    pub fn stream_buffer(mut self, items: usize) -> Self {
        self.stream_buffer = items.max(1);
        self
    }

    /// Sets [`client_name`](Self::client_name).
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Sets [`pipeline_hello`](Self::pipeline_hello).
    pub fn pipeline_hello(mut self, on: bool) -> Self {
        self.pipeline_hello = on;
        self
    }
}

/// A step of an attach that is starting, for a progress display: attaching
/// can take seconds (a busy target, a debugger to start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttachProgress<'a> {
    /// What starts now, e.g. `attach with auto (inspect, inject, start the agent)`.
    pub step: &'a str,
    /// Time since the attach began.
    pub elapsed: Duration,
}

/// A callback told about each [`AttachProgress`] step (called on the
/// attaching thread; keep it short).
#[derive(Clone)]
pub struct ProgressCallback(Arc<dyn Fn(&AttachProgress<'_>) + Send + Sync>);

impl ProgressCallback {
    /// Wraps `callback`.
    pub fn new(callback: impl Fn(&AttachProgress<'_>) + Send + Sync + 'static) -> Self {
        Self(Arc::new(callback))
    }

    pub(crate) fn call(&self, progress: &AttachProgress<'_>) {
        (self.0)(progress);
    }
}

impl fmt::Debug for ProgressCallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProgressCallback(..)")
    }
}

/// How to attach (see [`Session::attach`](super::Session::attach)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttachConfig {
    /// The attach method, or `auto`.
    pub method: MethodChoice,
    /// How long injecting the agent may take.
    pub timeout: Duration,
    /// Told when each slow step starts.
    pub progress: Option<ProgressCallback>,
    /// The session's options once attached.
    pub session: SessionOptions,
}

impl Default for AttachConfig {
    fn default() -> Self {
        Self {
            method: MethodChoice::Auto,
            timeout: peeka_attach::attach::DEFAULT_TIMEOUT,
            progress: None,
            session: SessionOptions::default(),
        }
    }
}

impl AttachConfig {
    /// `auto`, the default timeouts, no progress callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`method`](Self::method).
    pub fn method(mut self, method: MethodChoice) -> Self {
        self.method = method;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`progress`](Self::progress).
    pub fn on_progress(
        mut self,
        callback: impl Fn(&AttachProgress<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.progress = Some(ProgressCallback::new(callback));
        self
    }

    /// Sets [`session`](Self::session).
    pub fn session(mut self, options: SessionOptions) -> Self {
        self.session = options;
        self
    }

    pub(crate) fn report(&self, step: &str, started: std::time::Instant) {
        if let Some(progress) = &self.progress {
            progress.call(&AttachProgress {
                step,
                elapsed: started.elapsed(),
            });
        }
    }
}

/// What [`Session::attach`](super::Session::attach) did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttachReport {
    /// The target's pid.
    pub pid: u32,
    /// The method that injected the agent; `None` when an agent was already
    /// running and was reused.
    pub method: Option<Method>,
    /// The target's Python version, as the agent reports it (e.g. `3.12.1`).
    pub python: String,
    /// Every step and how long it took (inspect, inject, wait, connect...).
    pub timeline: Timeline,
    /// Whether an agent was already running in the target.
    pub reused: bool,
    /// Methods `auto` tried first, and why each could not be used.
    pub skipped: Vec<(Method, String)>,
    /// The agent's private directory, as the target sees it.
    pub private_dir: PathBuf,
    /// The agent's socket, as this process reaches it.
    pub socket: PathBuf,
}
