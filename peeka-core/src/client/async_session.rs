//! [`AsyncSession`]: the tokio client (feature `tokio`).
//!
//! The same demultiplexer, requests, replies and subscriptions as the
//! blocking [`Session`](super::Session); only the I/O differs: a reader task
//! routes messages, a writer task sends what a channel hands it (so that
//! cancelling, including from `Drop`, never blocks).

use std::future::Future;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use peeka_attach::attach::AttachOptions;
use peeka_attach::{BootstrapStatus, Timeline};
use peeka_protocol::{Cancel, Hello, Message, MessageCodec, Payload, TransportError, Welcome};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::core::{check_welcome, decode_data, encode_params, ClientCore, KeepAlive, Outgoing};
use super::demux::{Demux, Followup, ResponseSlot};
use super::error::ClientError;
use super::handshake::HandshakeSlot;
use super::locate::{agent_paths, check_listener, closed_detail, DETACH_CLEANUP_WAIT, SOCKET_NAME};
use super::observations::{MonitorReport, StackObservation, WatchObservation};
use super::options::{AttachConfig, AttachReport, SessionOptions};
use super::replies::{AgentInfo, DetachOutcome, Pong, ResetOutcome};
use super::requests::{MonitorRequest, ResetRequest, StackRequest, WatchRequest};
use super::session::{attach_report, connect_error, method_name};
use super::subscription::AsyncSubscription;
use crate::agent::agent_files;

/// Hands messages to the writer task.
#[derive(Debug)]
struct ChannelWriter {
    pid: u32,
    tx: mpsc::UnboundedSender<Message>,
}

impl Outgoing for ChannelWriter {
    fn send(&self, message: Message) -> Result<(), ClientError> {
        self.tx
            .send(message)
            .map_err(|_| ClientError::Disconnected {
                pid: self.pid,
                detail: closed_detail(self.pid),
            })
    }
}

/// The reader and writer tasks; dropping it closes the connection.
#[derive(Debug)]
struct Connection {
    demux: Arc<Demux>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
        self.demux.close("this client closed the connection".into());
    }
}

async fn read_loop(
    mut frames: FramedRead<OwnedReadHalf, MessageCodec>,
    demux: Arc<Demux>,
    outgoing: Arc<dyn Outgoing>,
    pid: u32,
) {
    let detail = loop {
        match frames.next().await {
            Some(Ok(message)) => match demux.dispatch(message) {
                Ok(Followup::None) => {}
                Ok(Followup::Cancel(stream)) => {
                    let _ = outgoing.send(Message::Cancel(Cancel { stream }));
                }
                Err(violation) => break format!("the agent broke the protocol ({violation}); the connection was closed: detach and attach again with this client"),
            },
            None | Some(Err(TransportError::Truncated)) => break closed_detail(pid),
            Some(Err(TransportError::Io(e))) => {
                break format!("reading from the agent failed: {e}; {}", closed_detail(pid))
            }
            Some(Err(other)) => break format!("the agent sent an invalid message ({other}); the connection was closed: detach and attach again with this client"),
        }
    };
    demux.close(detail);
}

async fn write_loop(
    mut sink: FramedWrite<OwnedWriteHalf, MessageCodec>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    demux: Arc<Demux>,
    pid: u32,
) {
    while let Some(message) = rx.recv().await {
        let mut result = sink.feed(message).await;
        while result.is_ok() {
            match rx.try_recv() {
                Ok(message) => result = sink.feed(message).await,
                Err(_) => break,
            }
        }
        if result.is_ok() {
            result = SinkExt::<Message>::flush(&mut sink).await;
        }
        if let Err(e) = result {
            demux.close(format!(
                "writing to the agent failed: {e}; {}",
                closed_detail(pid)
            ));
            return;
        }
    }
}

/// Gives up a request whose waiting future is dropped before its answer
/// (see [`ClientCore::give_up`]).
struct GiveUpOnDrop<'a> {
    core: &'a ClientCore,
    request: Option<&'a super::core::InFlight>,
}

impl GiveUpOnDrop<'_> {
    /// The wait ended normally: the answer is settled by the caller.
    fn disarm(mut self) {
        self.request = None;
    }
}

impl Drop for GiveUpOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(request) = self.request {
            self.core.give_up(request);
        }
    }
}

/// Waits for a request's answer.
struct AnswerFuture(Arc<ResponseSlot>);

impl Future for AnswerFuture {
    type Output = super::demux::Answer;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.poll(cx)
    }
}

/// An async connection to the agent in one process: the methods of
/// [`Session`](super::Session) as `async fn`s.
///
/// Create and use it inside a tokio runtime (it spawns its reader and
/// writer tasks there). `Send + Sync`; methods take `&self`, so one session
/// serves concurrent tasks. Streaming methods return an
/// [`AsyncSubscription`], a `futures_core::Stream`; dropping it cancels the stream
/// without blocking. Every wait is bounded by
/// [`SessionOptions::request_timeout`], except waiting for a stream's
/// next item (wrap it in `tokio::time::timeout` to bound that).
///
/// Every future is cancel-safe: dropping one while it waits (aborting its
/// task, a `select!` that took another branch) forgets the request, and a
/// stream it would have opened is cancelled as soon as it opens, so the
/// agent removes the probe.
#[derive(Debug)]
pub struct AsyncSession {
    core: Arc<ClientCore>,
    connection: Arc<Connection>,
    /// Always known: an async session waits for it when connecting.
    welcome: Welcome,
}

impl AsyncSession {
    /// Attaches to process `pid` (or reuses the agent already running in
    /// it), connects and completes the handshake. The attach itself runs
    /// on tokio's blocking pool.
    ///
    /// # Errors
    /// As [`Session::attach`](super::Session::attach).
    pub async fn attach(
        pid: u32,
        cfg: &AttachConfig,
    ) -> Result<(AsyncSession, AttachReport), ClientError> {
        let started = Instant::now();
        let mut timeline = Timeline::default();
        cfg.report("look for a running agent", started);
        let (private_dir, socket) = agent_paths(pid)?;
        if socket.exists() {
            let step = Instant::now();
            let connected = Self::connect_socket_with(&socket, pid, &cfg.session).await;
            push_step(&mut timeline, "connect to the running agent", step);
            match connected {
                Ok(session) => {
                    let report = attach_report(
                        session.welcome(),
                        session.socket(),
                        pid,
                        None,
                        timeline,
                        true,
                        private_dir,
                    );
                    return Ok((session, report));
                }
                Err(ClientError::Connect { .. } | ClientError::NotAttached { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        cfg.report(
            &format!(
                "attach ({}): inspect, inject the bootstrap, start the agent",
                method_name(cfg)
            ),
            started,
        );
        let options = AttachOptions {
            method: cfg.method,
            timeout: cfg.timeout,
            agent: agent_files(),
        };
        let attached =
            tokio::task::spawn_blocking(move || peeka_attach::attach::attach(pid, &options))
                .await
                .map_err(|e| ClientError::Io {
                    what: "the attach task".into(),
                    source: std::io::Error::other(e.to_string()),
                })??;
        timeline.extend(attached.timeline.clone());
        cfg.report("connect to the agent", started);
        let socket = attached.staging.host_dir.join(SOCKET_NAME);
        let step = Instant::now();
        let session = Self::connect_socket_with(&socket, pid, &cfg.session).await?;
        push_step(&mut timeline, "connect and handshake", step);
        let reused = attached.status == BootstrapStatus::AlreadyRunning;
        let mut report = attach_report(
            session.welcome(),
            session.socket(),
            pid,
            Some(attached.method),
            timeline,
            reused,
            attached.staging.target_dir.clone(),
        );
        report.skipped = attached.skipped;
        Ok((session, report))
    }

    /// Connects to the agent already running in process `pid`.
    ///
    /// # Errors
    /// As [`Session::connect`](super::Session::connect).
    pub async fn connect(pid: u32) -> Result<AsyncSession, ClientError> {
        Self::connect_with(pid, &SessionOptions::default()).await
    }

    /// [`connect`](Self::connect) with options.
    ///
    /// # Errors
    /// As [`Session::connect`](super::Session::connect).
    pub async fn connect_with(
        pid: u32,
        options: &SessionOptions,
    ) -> Result<AsyncSession, ClientError> {
        let (_, socket) = agent_paths(pid)?;
        Self::connect_socket_with(&socket, pid, options).await
    }

    /// Connects to the agent listening on `path` (the agent of process `pid`).
    ///
    /// # Errors
    /// As [`Session::connect_socket`](super::Session::connect_socket).
    pub async fn connect_socket(path: &Path, pid: u32) -> Result<AsyncSession, ClientError> {
        Self::connect_socket_with(path, pid, &SessionOptions::default()).await
    }

    /// [`connect_socket`](Self::connect_socket) with options.
    ///
    /// # Errors
    /// As [`Session::connect_socket`](super::Session::connect_socket).
    pub async fn connect_socket_with(
        path: &Path,
        pid: u32,
        options: &SessionOptions,
    ) -> Result<AsyncSession, ClientError> {
        let handshake_failed = |detail: String| ClientError::Handshake { pid, detail };
        let limit = options.connect_timeout;
        let stream = tokio::time::timeout(limit, UnixStream::connect(path))
            .await
            .map_err(|_| handshake_failed(format!("connecting took longer than {limit:?}")))?
            .map_err(|source| connect_error(pid, path, source))?;
        check_listener(stream.as_fd(), pid, path)?;
        let (read_half, write_half) = stream.into_split();
        let mut frames = FramedRead::new(read_half, MessageCodec::new());
        let mut sink = FramedWrite::new(write_half, MessageCodec::new());
        let hello = Message::Hello(Hello::new(options.client_name.clone()));
        let answer =
            tokio::time::timeout(limit, async {
                sink.send(hello)
                    .await
                    .map_err(|e| handshake_failed(format!("sending `hello` failed: {e}")))?;
                frames.next().await.transpose().map_err(|e| {
                    handshake_failed(format!("reading its answer to `hello` failed: {e}"))
                })
            })
            .await
            .map_err(|_| handshake_failed(format!("no answer to `hello` within {limit:?}")))??;
        let welcome = check_welcome(pid, answer)?;

        let demux = Arc::new(Demux::new(pid, options.stream_buffer));
        let (tx, rx) = mpsc::unbounded_channel();
        let outgoing: Arc<dyn Outgoing> = Arc::new(ChannelWriter { pid, tx });
        let reader = tokio::spawn(read_loop(
            frames,
            Arc::clone(&demux),
            Arc::clone(&outgoing),
            pid,
        ));
        let writer = tokio::spawn(write_loop(sink, rx, Arc::clone(&demux), pid));
        let connection = Arc::new(Connection {
            demux: Arc::clone(&demux),
            reader,
            writer,
        });
        let core = Arc::new(ClientCore::new(
            pid,
            path.to_path_buf(),
            HandshakeSlot::completed(pid, welcome.clone()),
            options.clone(),
            demux,
            outgoing,
        ));
        Ok(AsyncSession {
            core,
            connection,
            welcome,
        })
    }

    /// The target's pid (as given when connecting).
    pub fn pid(&self) -> u32 {
        self.core.pid
    }

    /// The agent's `welcome`.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// The agent's socket, as this process reaches it.
    pub fn socket(&self) -> &Path {
        &self.core.socket
    }

    /// The options in force.
    pub fn options(&self) -> &SessionOptions {
        &self.core.options
    }

    /// Whether the connection is still open.
    pub fn is_connected(&self) -> bool {
        self.core.demux.closed().is_none()
    }

    /// Why the connection closed: the [`ClientError::Disconnected`] that
    /// requests now fail with (it says what happened, e.g. the target
    /// exited or another client detached the agent, and what to do), or
    /// `None` while it is open. For a front end that shows the state of
    /// its connection without sending a request.
    pub fn disconnection(&self) -> Option<ClientError> {
        self.core.demux.closed().map(|closed| closed.error())
    }

    async fn exchange(
        &self,
        command: &str,
        params: Payload,
        opens_stream: bool,
    ) -> Result<
        (
            super::core::InFlight,
            Payload,
            Option<Arc<super::demux::StreamQueue>>,
        ),
        ClientError,
    > {
        let request = self.core.send_request(command, params, opens_stream)?;
        // Dropping this future while it waits (a task aborted, a `select!`
        // that took another branch) must not leave the request behind: a
        // stream it opens would keep its probe with no one to read it.
        let waiting = GiveUpOnDrop {
            core: &self.core,
            request: Some(&request),
        };
        let answer = tokio::time::timeout(
            self.core.options.request_timeout,
            AnswerFuture(Arc::clone(&request.slot)),
        )
        .await
        .ok();
        waiting.disarm();
        let (data, queue) = self.core.settle(&request, answer)?;
        Ok((request, data, queue))
    }

    pub(super) async fn call_typed<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        command: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let (_, data, _) = self
            .exchange(command, encode_params(command, params)?, false)
            .await?;
        decode_data(command, &data)
    }

    pub(super) async fn open<T: DeserializeOwned>(
        &self,
        command: &str,
        params: Payload,
    ) -> Result<AsyncSubscription<T>, ClientError> {
        let (request, data, queue) = self.exchange(command, params, true).await?;
        let keep_alive: KeepAlive = self.connection.clone();
        self.core
            .subscription(&request, data, queue, keep_alive)
            .map(AsyncSubscription::new)
    }

    /// `ping`; see [`Session::ping`](super::Session::ping).
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::Disconnected`], ...
    pub async fn ping(&self) -> Result<Pong, ClientError> {
        let started = Instant::now();
        let mut pong: Pong = self.call_typed("ping", &serde_json::json!({})).await?;
        pong.round_trip = started.elapsed();
        Ok(pong)
    }

    /// `info`; see [`Session::info`](super::Session::info).
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub async fn info(&self) -> Result<AgentInfo, ClientError> {
        self.call_typed("info", &serde_json::json!({})).await
    }

    /// `watch`; see [`Session::watch`](super::Session::watch).
    ///
    /// # Errors
    /// As [`Session::watch`](super::Session::watch).
    pub async fn watch(
        &self,
        req: &WatchRequest,
    ) -> Result<AsyncSubscription<WatchObservation>, ClientError> {
        self.open("watch", encode_params("watch", req)?).await
    }

    /// `stack`; see [`Session::stack`](super::Session::stack).
    ///
    /// # Errors
    /// As [`Session::watch`](super::Session::watch).
    pub async fn stack(
        &self,
        req: &StackRequest,
    ) -> Result<AsyncSubscription<StackObservation>, ClientError> {
        self.open("stack", encode_params("stack", req)?).await
    }

    /// `monitor`; see [`Session::monitor`](super::Session::monitor).
    ///
    /// # Errors
    /// As [`Session::watch`](super::Session::watch).
    pub async fn monitor(
        &self,
        req: &MonitorRequest,
    ) -> Result<AsyncSubscription<MonitorReport>, ClientError> {
        self.open("monitor", encode_params("monitor", req)?).await
    }

    /// `reset`; see [`Session::reset`](super::Session::reset).
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub async fn reset(&self, req: &ResetRequest) -> Result<ResetOutcome, ClientError> {
        self.call_typed("reset", req).await
    }

    /// `detach`; see [`Session::detach`](super::Session::detach).
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub async fn detach(&self) -> Result<DetachOutcome, ClientError> {
        let mut outcome: DetachOutcome = self.call_typed("detach", &serde_json::json!({})).await?;
        outcome.directory_removed = wait_removed(&self.core.socket, DETACH_CLEANUP_WAIT).await;
        Ok(outcome)
    }

    /// Any command; see [`Session::request`](super::Session::request).
    ///
    /// # Errors
    /// As [`Session::request`](super::Session::request).
    pub async fn request(&self, command: &str, params: Value) -> Result<Value, ClientError> {
        self.call_typed(command, &params).await
    }

    /// Any stream-opening command; see
    /// [`Session::subscribe`](super::Session::subscribe).
    ///
    /// # Errors
    /// As [`Session::request`](super::Session::request).
    pub async fn subscribe(
        &self,
        command: &str,
        params: Value,
    ) -> Result<AsyncSubscription<Value>, ClientError> {
        self.open(command, encode_params(command, &params)?).await
    }
}

fn push_step(timeline: &mut Timeline, name: &str, started: Instant) {
    timeline.steps.push(peeka_attach::Step {
        name: name.to_owned(),
        elapsed: started.elapsed(),
    });
}

async fn wait_removed(socket: &Path, within: Duration) -> bool {
    let dir: PathBuf = socket.parent().map(Path::to_path_buf).unwrap_or_default();
    let deadline = Instant::now() + within;
    loop {
        if !dir.exists() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use peeka_protocol::{PythonInfo, Response, PROTOCOL_VERSION};
    use tokio::net::UnixListener;

    type AgentReader = FramedRead<OwnedReadHalf, MessageCodec>;
    type AgentWriter = FramedWrite<OwnedWriteHalf, MessageCodec>;

    /// A fresh socket in a private directory; the caller removes `dir`.
    fn listen(name: &str) -> (PathBuf, PathBuf, UnixListener) {
        let dir = std::env::temp_dir().join(format!("peeka-async-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        (dir, path, listener)
    }

    /// Accepts one client and welcomes it, checking that its `hello`
    /// announces a version that may be sent `observations` batches.
    async fn welcome_client(listener: UnixListener) -> (AgentReader, AgentWriter) {
        let (stream, _) = listener.accept().await.unwrap();
        let (read_half, write_half) = stream.into_split();
        let mut frames = FramedRead::new(read_half, MessageCodec::new());
        let mut sink = FramedWrite::new(write_half, MessageCodec::new());
        let Some(Ok(Message::Hello(hello))) = frames.next().await else {
            panic!("no hello")
        };
        assert!(hello.protocol.accepts_observation_batches(), "{hello:?}");
        let welcome = Welcome {
            protocol: PROTOCOL_VERSION,
            agent_version: "test".into(),
            python: PythonInfo {
                version: "3.12.0".into(),
                implementation: "CPython".into(),
            },
            pid: 1,
            capabilities: Vec::new(),
        };
        sink.send(Message::Welcome(welcome)).await.unwrap();
        (frames, sink)
    }

    /// An agent that answers the handshake, then the first request only
    /// when told to, and reports every later message it receives.
    async fn fake_agent(
        listener: UnixListener,
        requested: tokio::sync::oneshot::Sender<u64>,
        answer_now: tokio::sync::oneshot::Receiver<()>,
        received: mpsc::UnboundedSender<Message>,
    ) {
        let (mut frames, mut sink) = welcome_client(listener).await;
        let Some(Ok(Message::Request(request))) = frames.next().await else {
            panic!("no request")
        };
        requested.send(request.id).unwrap();
        answer_now.await.unwrap();
        let data = Payload::from_json(&format!(r#"{{"stream": {}}}"#, request.id)).unwrap();
        sink.send(Message::Response(Response {
            id: request.id,
            result: Ok(data),
        }))
        .await
        .unwrap();
        while let Some(Ok(message)) = frames.next().await {
            let _ = received.send(message);
        }
    }

    #[tokio::test]
    async fn a_stream_request_dropped_while_waiting_is_cancelled_when_it_opens() {
        let (dir, path, listener) = listen("drop");
        let (requested_tx, requested) = tokio::sync::oneshot::channel();
        let (answer_now, answer_rx) = tokio::sync::oneshot::channel();
        let (received_tx, mut received) = mpsc::unbounded_channel();
        let agent = tokio::spawn(fake_agent(listener, requested_tx, answer_rx, received_tx));

        let session = AsyncSession::connect_socket(&path, std::process::id())
            .await
            .unwrap();
        let request = WatchRequest::new("m.f");
        let opening = session.watch(&request);
        // Poll it until the request is out, then drop it unanswered.
        tokio::select! {
            _ = opening => panic!("the fake agent has not answered yet"),
            id = requested => {
                let id = id.unwrap();
                answer_now.send(()).unwrap();
                let cancel = tokio::time::timeout(Duration::from_secs(5), received.recv())
                    .await
                    .expect("a cancel within 5 s");
                assert_eq!(cancel, Some(Message::Cancel(Cancel { stream: id })));
                assert_eq!(session.core.demux.open_streams(), 0);
            }
        }
        drop(session);
        agent.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn a_batch_and_the_observation_after_it_come_out_in_order() {
        let (dir, path, listener) = listen("batch");
        let agent = tokio::spawn(async move {
            let (mut frames, mut sink) = welcome_client(listener).await;
            let Some(Ok(Message::Request(request))) = frames.next().await else {
                panic!("no request")
            };
            for message in testing::batch_then_single(request.id).0 {
                sink.send(message).await.unwrap();
            }
            // Stay connected until the client goes away.
            while let Some(Ok(_)) = frames.next().await {}
        });

        let session = AsyncSession::connect_socket(&path, std::process::id())
            .await
            .unwrap();
        let mut stream = session
            .subscribe("tick", serde_json::json!({}))
            .await
            .unwrap();
        let mut items = Vec::new();
        while let Some(item) = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("the items within 5 s")
        {
            items.push(testing::observed(item));
        }
        assert_eq!(items, testing::batch_then_single(stream.id()).1);
        assert_eq!(
            stream.end().map(|end| end.reason),
            Some(peeka_protocol::EndReason::CountReached)
        );
        drop((stream, session));
        agent.await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
