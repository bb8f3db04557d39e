//! [`Session`]: the blocking client.

use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use peeka_attach::attach::AttachOptions;
use peeka_attach::{BootstrapStatus, Timeline};
use peeka_protocol::{
    Cancel, Hello, Message, MessageReader, MessageWriter, Payload, TransportError, Welcome,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::core::{check_welcome, decode_data, encode_params, ClientCore, KeepAlive, Outgoing};
use super::demux::{Demux, Followup};
use super::error::ClientError;
use super::handshake::HandshakeSlot;
use super::locate::{
    agent_paths, check_listener, closed_detail, wait_removed, DETACH_CLEANUP_WAIT, SOCKET_NAME,
};
use super::observations::{MonitorReport, StackObservation, WatchObservation};
use super::options::{AttachConfig, AttachReport, SessionOptions};
use super::replies::{AgentInfo, DetachOutcome, Pong, ResetOutcome};
use super::requests::{MonitorRequest, ResetRequest, StackRequest, WatchRequest};
use super::subscription::Subscription;
use crate::agent::agent_files;

/// Writes messages to the socket, one at a time.
#[derive(Debug)]
struct BlockingWriter {
    pid: u32,
    writer: Mutex<MessageWriter<UnixStream>>,
}

impl Outgoing for BlockingWriter {
    fn send(&self, message: Message) -> Result<(), ClientError> {
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        writer.write_message(&message).map_err(|error| match error {
            TransportError::Io(e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
            {
                ClientError::Timeout {
                    what: format!("sending `{}`", message.kind()),
                    waited: writer
                        .get_ref()
                        .write_timeout()
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                }
            }
            TransportError::Encode(e) => ClientError::InvalidRequest {
                command: message.kind().to_owned(),
                detail: e.to_string(),
            },
            other => ClientError::Disconnected {
                pid: self.pid,
                detail: format!("{other}; {}", closed_detail(self.pid)),
            },
        })
    }
}

/// The socket and the reader thread; dropping it closes the connection.
#[derive(Debug)]
struct Connection {
    socket: UnixStream,
    closing: Arc<AtomicBool>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::Release);
        let _ = self.socket.shutdown(Shutdown::Both);
        let handle = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The reader wakes on the shutdown and only routes messages
            // (it never waits for a consumer), so this is quick.
            let _ = handle.join();
        }
    }
}

/// Reads every message of the connection and hands it to the demultiplexer
/// until the connection ends.
fn read_loop(mut reader: MessageReader<UnixStream>, core: &ClientCore, closing: &AtomicBool) {
    let (demux, outgoing, pid) = (&core.demux, core.outgoing.as_ref(), core.pid);
    if core.handshake.outcome().is_none() {
        // A pipelined session: the first message answers its `hello`.
        // An unreadable answer counts as none (a handshake error).
        let answer = reader.read_message().ok().flatten();
        if let Err(refused) = core.handshake.settle(answer) {
            let _ = reader.get_ref().shutdown(Shutdown::Both);
            demux.close(if closing.load(Ordering::Acquire) {
                "this client closed the connection".into()
            } else {
                refused.to_string()
            });
            return;
        }
    }
    let detail = loop {
        match reader.read_message() {
            Ok(Some(message)) => match demux.dispatch(message) {
                Ok(Followup::None) => {}
                Ok(Followup::Cancel(stream)) => {
                    let _ = outgoing.send(Message::Cancel(Cancel { stream }));
                }
                Err(violation) => {
                    let _ = reader.get_ref().shutdown(Shutdown::Both);
                    break format!("the agent broke the protocol ({violation}); the connection was closed: detach and attach again with this client");
                }
            },
            Ok(None) => break closed_detail(pid),
            Err(_) if closing.load(Ordering::Acquire) => {
                break "this client closed the connection".into()
            }
            Err(TransportError::Io(e)) => {
                break format!("reading from the agent failed: {e}; {}", closed_detail(pid))
            }
            Err(TransportError::Truncated) => break closed_detail(pid),
            Err(other) => {
                let _ = reader.get_ref().shutdown(Shutdown::Both);
                break format!("the agent sent an invalid message ({other}); the connection was closed: detach and attach again with this client");
            }
        }
    };
    let detail = if closing.load(Ordering::Acquire) {
        "this client closed the connection".into()
    } else {
        detail
    };
    demux.close(detail);
}

/// A blocking connection to the agent in one process.
///
/// `Send + Sync`: share it between threads (`&Session` or `Arc<Session>`);
/// every method takes `&self`. Requests from several threads and several
/// open streams share the one connection: a reader thread routes each
/// answer to its request and each stream item to its [`Subscription`].
/// Every wait is bounded by [`SessionOptions::request_timeout`], except
/// waiting for a stream's next item (use
/// [`Subscription::next_timeout`] to bound that).
///
/// Dropping the session closes the connection once its subscriptions are
/// dropped too (they keep it open), which stops the reader thread; the
/// agent then removes every probe this connection installed.
#[derive(Debug)]
pub struct Session {
    core: Arc<ClientCore>,
    connection: Arc<Connection>,
}

impl Session {
    /// Attaches to process `pid` (or reuses the agent already running in
    /// it), connects and completes the handshake.
    ///
    /// # Errors
    /// [`ClientError::Attach`] when attaching fails (the target is left as
    /// it was), [`ClientError::NoSuchProcess`], and the errors of
    /// [`connect_socket`](Self::connect_socket).
    pub fn attach(pid: u32, cfg: &AttachConfig) -> Result<(Session, AttachReport), ClientError> {
        let started = Instant::now();
        let mut timeline = Timeline::default();
        cfg.report("look for a running agent", started);
        let (private_dir, socket) = agent_paths(pid)?;
        if socket.exists() {
            let connected = timeline.time("connect to the running agent", || {
                Self::connect_socket_with(&socket, pid, &cfg.session)
            });
            match connected {
                Ok(session) => {
                    let report = attach_report(
                        session.welcome()?,
                        session.socket(),
                        pid,
                        None,
                        timeline,
                        true,
                        private_dir,
                    );
                    return Ok((session, report));
                }
                // A socket left by an agent that died: attaching replaces it.
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
        let attached = peeka_attach::attach::attach(pid, &options)?;
        timeline.extend(attached.timeline.clone());
        cfg.report("connect to the agent", started);
        let socket = attached.staging.host_dir.join(SOCKET_NAME);
        let session = timeline.time("connect and handshake", || {
            Self::connect_socket_with(&socket, pid, &cfg.session)
        })?;
        let reused = attached.status == BootstrapStatus::AlreadyRunning;
        let mut report = attach_report(
            session.welcome()?,
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
    /// [`ClientError::NotAttached`] when there is none (the message names
    /// the fix, `peeka-cli attach PID`), [`ClientError::NoSuchProcess`],
    /// and the errors of [`connect_socket`](Self::connect_socket).
    pub fn connect(pid: u32) -> Result<Session, ClientError> {
        Self::connect_with(pid, &SessionOptions::default())
    }

    /// [`connect`](Self::connect) with options.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub fn connect_with(pid: u32, options: &SessionOptions) -> Result<Session, ClientError> {
        let (_, socket) = agent_paths(pid)?;
        Self::connect_socket_with(&socket, pid, options)
    }

    /// Connects to the agent listening on `path`: the agent of process
    /// `pid`, which must be the socket's listener (checked before anything
    /// is sent, so that a link planted at `path` leads nowhere).
    ///
    /// # Errors
    /// [`ClientError::NotAttached`] when nothing is at `path`,
    /// [`ClientError::Connect`] (also when another process listens there),
    /// [`ClientError::Handshake`],
    /// [`ClientError::Incompatible`], [`ClientError::Rejected`].
    pub fn connect_socket(path: &Path, pid: u32) -> Result<Session, ClientError> {
        Self::connect_socket_with(path, pid, &SessionOptions::default())
    }

    /// [`connect_socket`](Self::connect_socket) with options.
    ///
    /// # Errors
    /// As [`connect_socket`](Self::connect_socket).
    pub fn connect_socket_with(
        path: &Path,
        pid: u32,
        options: &SessionOptions,
    ) -> Result<Session, ClientError> {
        let socket =
            UnixStream::connect(path).map_err(|source| connect_error(pid, path, source))?;
        check_listener(socket.as_fd(), pid, path)?;
        let setup = |e: io::Error| ClientError::Io {
            what: "setting up the agent's socket".into(),
            source: e,
        };
        socket
            .set_read_timeout(Some(options.connect_timeout))
            .map_err(setup)?;
        socket
            .set_write_timeout(Some(options.connect_timeout))
            .map_err(setup)?;
        let mut reader = MessageReader::new(socket.try_clone().map_err(setup)?);
        let mut writer = MessageWriter::new(socket.try_clone().map_err(setup)?);
        let handshake_failed = |detail: String| ClientError::Handshake { pid, detail };
        writer
            .write_message(&Message::Hello(Hello::new(options.client_name.clone())))
            .map_err(|e| handshake_failed(format!("sending `hello` failed: {e}")))?;
        let handshake = if options.pipeline_hello {
            // The reader thread reads the answer (see `pipeline_hello`).
            HandshakeSlot::pending(pid)
        } else {
            let answer = reader.read_message().map_err(|e| match e {
                TransportError::Io(e)
                    if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    handshake_failed(format!(
                        "no answer to `hello` within {:?}",
                        options.connect_timeout
                    ))
                }
                other => handshake_failed(format!("reading its answer to `hello` failed: {other}")),
            })?;
            HandshakeSlot::completed(pid, check_welcome(pid, answer)?)
        };
        socket.set_read_timeout(None).map_err(setup)?;
        socket
            .set_write_timeout(Some(options.request_timeout))
            .map_err(setup)?;

        let demux = Arc::new(Demux::new(pid, options.stream_buffer));
        let outgoing: Arc<dyn Outgoing> = Arc::new(BlockingWriter {
            pid,
            writer: Mutex::new(writer),
        });
        let closing = Arc::new(AtomicBool::new(false));
        let core = Arc::new(ClientCore::new(
            pid,
            path.to_path_buf(),
            handshake,
            options.clone(),
            demux,
            outgoing,
        ));
        let reader_thread = {
            let core = Arc::clone(&core);
            let closing = Arc::clone(&closing);
            std::thread::Builder::new()
                .name(format!("peeka-client-{pid}"))
                .spawn(move || read_loop(reader, &core, &closing))
                .map_err(|e| ClientError::Io {
                    what: "starting the client's reader thread".into(),
                    source: e,
                })?
        };
        let connection = Arc::new(Connection {
            socket,
            closing,
            reader: Mutex::new(Some(reader_thread)),
        });
        Ok(Session { core, connection })
    }

    /// The target's pid (as given when connecting).
    pub fn pid(&self) -> u32 {
        self.core.pid
    }

    /// The agent's `welcome`: its version, protocol, interpreter,
    /// capabilities.
    ///
    /// # Errors
    /// Only for a session connected with
    /// [`SessionOptions::pipeline_hello`], whose handshake completes after
    /// `connect` returned: this waits for it (at most the connect timeout)
    /// and returns its failure ([`ClientError::Rejected`],
    /// [`ClientError::Incompatible`], [`ClientError::Handshake`]).
    pub fn welcome(&self) -> Result<&Welcome, ClientError> {
        self.core.handshake.wait(self.core.options.connect_timeout)
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

    fn call(&self, command: &str, params: Payload) -> Result<Payload, ClientError> {
        let request = self.core.send_request(command, params, false)?;
        let answer = request
            .slot
            .wait(Instant::now() + self.core.options.request_timeout);
        self.core.settle(&request, answer).map(|(data, _)| data)
    }

    pub(super) fn call_typed<P: Serialize + ?Sized, R: DeserializeOwned>(
        &self,
        command: &str,
        params: &P,
    ) -> Result<R, ClientError> {
        let data = self.call(command, encode_params(command, params)?)?;
        decode_data(command, &data)
    }

    pub(super) fn open<T: DeserializeOwned>(
        &self,
        command: &str,
        params: Payload,
    ) -> Result<Subscription<T>, ClientError> {
        let request = self.core.send_request(command, params, true)?;
        let answer = request
            .slot
            .wait(Instant::now() + self.core.options.request_timeout);
        let (data, queue) = self.core.settle(&request, answer)?;
        let keep_alive: KeepAlive = self.connection.clone();
        self.core.subscription(&request, data, queue, keep_alive)
    }

    /// `ping`: proves the agent answers, and measures the round trip.
    ///
    /// # Errors
    /// [`ClientError::Timeout`], [`ClientError::Disconnected`], ...
    pub fn ping(&self) -> Result<Pong, ClientError> {
        let started = Instant::now();
        let mut pong: Pong = self.call_typed("ping", &serde_json::json!({}))?;
        pong.round_trip = started.elapsed();
        Ok(pong)
    }

    /// `info`: what the agent is and what it is doing.
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub fn info(&self) -> Result<AgentInfo, ClientError> {
        self.call_typed("info", &serde_json::json!({}))
    }

    /// `watch`: observes calls of the functions `req` names.
    ///
    /// # Errors
    /// [`ClientError::Agent`] with code `not_found` (the message lists close
    /// matches), `invalid_expression` (with line, column and a caret),
    /// `invalid_params`, `limit_exceeded`; and as [`ping`](Self::ping).
    pub fn watch(&self, req: &WatchRequest) -> Result<Subscription<WatchObservation>, ClientError> {
        self.open("watch", encode_params("watch", req)?)
    }

    /// `stack`: the callers of each call of the functions `req` names.
    ///
    /// # Errors
    /// As [`watch`](Self::watch).
    pub fn stack(&self, req: &StackRequest) -> Result<Subscription<StackObservation>, ClientError> {
        self.open("stack", encode_params("stack", req)?)
    }

    /// `monitor`: periodic call statistics of the functions `req` names.
    ///
    /// # Errors
    /// As [`watch`](Self::watch).
    pub fn monitor(
        &self,
        req: &MonitorRequest,
    ) -> Result<Subscription<MonitorReport>, ClientError> {
        self.open("monitor", encode_params("monitor", req)?)
    }

    /// `reset`: removes probes (of every client), or lists them.
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub fn reset(&self, req: &ResetRequest) -> Result<ResetOutcome, ClientError> {
        self.call_typed("reset", req)
    }

    /// `detach`: ends every stream of every client, removes the agent and
    /// its private directory from the target. The connection then closes;
    /// the session cannot be used afterwards. Waits briefly for the
    /// directory to disappear
    /// ([`DetachOutcome::directory_removed`]).
    ///
    /// # Errors
    /// As [`ping`](Self::ping).
    pub fn detach(&self) -> Result<DetachOutcome, ClientError> {
        let mut outcome: DetachOutcome = self.call_typed("detach", &serde_json::json!({}))?;
        outcome.directory_removed = wait_removed(&self.core.socket, DETACH_CLEANUP_WAIT);
        Ok(outcome)
    }

    /// Runs any command and returns its data (for commands without a typed
    /// method yet).
    ///
    /// # Errors
    /// As [`ping`](Self::ping); [`ClientError::Agent`] with code
    /// `unknown_command` when the agent does not know `command`.
    pub fn request(&self, command: &str, params: Value) -> Result<Value, ClientError> {
        self.call_typed(command, &params)
    }

    /// Runs any stream-opening command; its items stay JSON values.
    ///
    /// # Errors
    /// As [`request`](Self::request).
    pub fn subscribe(
        &self,
        command: &str,
        params: Value,
    ) -> Result<Subscription<Value>, ClientError> {
        self.open(command, encode_params(command, &params)?)
    }
}

pub(crate) fn method_name(cfg: &AttachConfig) -> String {
    match cfg.method {
        peeka_attach::MethodChoice::Auto => "auto".into(),
        peeka_attach::MethodChoice::Only(method) => method.to_string(),
    }
}

pub(crate) fn connect_error(pid: u32, path: &Path, source: io::Error) -> ClientError {
    if source.kind() == ErrorKind::NotFound {
        ClientError::NotAttached {
            pid,
            socket: path.to_path_buf(),
        }
    } else {
        ClientError::Connect {
            pid,
            socket: path.to_path_buf(),
            source,
        }
    }
}

pub(crate) fn attach_report(
    welcome: &Welcome,
    socket: &Path,
    pid: u32,
    method: Option<peeka_attach::Method>,
    timeline: Timeline,
    reused: bool,
    private_dir: PathBuf,
) -> AttachReport {
    AttachReport {
        pid,
        method,
        python: welcome.python.version.clone(),
        timeline,
        reused,
        skipped: Vec::new(),
        private_dir,
        socket: socket.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixListener;
    use std::time::Duration;

    /// A fake agent on a fresh socket: reads what the client sends until
    /// it has seen `expect` messages, then writes `answers` (JSON objects)
    /// in one write and closes.
    fn fake_agent(name: &str, expect: usize, answers: Vec<Value>) -> (PathBuf, JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("peeka-fake-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let handle = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut reader = MessageReader::new(socket.try_clone().unwrap());
            for _ in 0..expect {
                if let Message::Hello(hello) = reader.read_message().unwrap().unwrap() {
                    assert!(hello.protocol.accepts_observation_batches(), "{hello:?}");
                }
            }
            let mut data = Vec::new();
            for answer in answers {
                let payload = serde_json::to_vec(&answer).unwrap();
                data.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
                data.extend_from_slice(&payload);
            }
            socket.write_all(&data).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            let _ = std::fs::remove_dir_all(dir);
        });
        (path, handle)
    }

    fn welcome() -> Value {
        serde_json::json!({
            "type": "welcome", "protocol": {"major": 1, "minor": 1}, "agent_version": "0.1.0",
            "pid": 7, "python": {"version": "3.12.1", "implementation": "CPython"},
            "capabilities": []
        })
    }

    fn pipelined() -> SessionOptions {
        SessionOptions::default()
            .pipeline_hello(true)
            .request_timeout(Duration::from_secs(5))
    }

    #[test]
    fn a_pipelined_request_is_answered_with_the_welcome() {
        // The fake agent answers only once it has the hello *and* the
        // request: a client that waited for the welcome first would hang.
        let pong = serde_json::json!({"type": "response", "id": 1, "ok": true,
                                      "data": {"pong": true, "pid": 7}});
        let (path, agent) = fake_agent("pipelined", 2, vec![welcome(), pong]);
        let session =
            Session::connect_socket_with(&path, std::process::id(), &pipelined()).unwrap();
        assert_eq!(session.ping().unwrap().pid, 7);
        assert_eq!(session.welcome().unwrap().python.version, "3.12.1");
        agent.join().unwrap();
    }

    #[test]
    fn a_batch_and_the_observation_after_it_come_out_in_order() {
        let (messages, expected) = testing::batch_then_single(1);
        let mut answers = vec![welcome()];
        answers.extend(
            messages
                .iter()
                .map(|message| serde_json::from_str::<Value>(&message.to_json()).unwrap()),
        );
        let (path, agent) = fake_agent("batch", 2, answers);
        let session =
            Session::connect_socket_with(&path, std::process::id(), &pipelined()).unwrap();
        let mut stream = session.subscribe("tick", serde_json::json!({})).unwrap();
        let items: Vec<(u64, Value)> = stream.by_ref().map(testing::observed).collect();
        assert_eq!(items, expected);
        assert_eq!(
            stream.end().map(|end| end.reason),
            Some(peeka_protocol::EndReason::CountReached)
        );
        assert_eq!(stream.client_dropped(), 0);
        agent.join().unwrap();
    }

    #[test]
    fn a_refusal_comes_back_from_the_first_request_as_a_typed_error() {
        let refusal = serde_json::json!({"type": "rejected", "code": "limit_exceeded",
                                         "message": "too many clients",
                                         "protocol": {"major": 1, "minor": 0}});
        let (path, agent) = fake_agent("refused", 1, vec![refusal]);
        let session =
            Session::connect_socket_with(&path, std::process::id(), &pipelined()).unwrap();
        let error = session.ping().unwrap_err();
        assert!(matches!(error, ClientError::Rejected { .. }), "{error:?}");
        assert!(matches!(
            session.welcome(),
            Err(ClientError::Rejected { .. })
        ));
        assert!(matches!(session.info(), Err(ClientError::Rejected { .. })));
        agent.join().unwrap();
    }
}
