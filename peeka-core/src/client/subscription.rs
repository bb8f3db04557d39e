//! [`Subscription`]: the items of one stream, as an iterator (and, with the
//! `tokio` feature, as a `futures::Stream`), and [`Canceller`].

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use peeka_protocol::{Cancel, EndReason, Message, StreamId};
use serde::de::DeserializeOwned;

use super::core::{decode_data, KeepAlive, Outgoing};
use super::demux::{Demux, Next, RawItem, StreamQueue};
use super::error::ClientError;
use super::replies::{StreamEnd, StreamItem, StreamStarted};

/// Ends a stream from anywhere: another thread, a Ctrl-C handler, a task.
///
/// Cheap to clone. [`cancel`](Self::cancel) sends `cancel` once (later calls,
/// and calls after the stream ended, do nothing); the stream's iteration
/// then yields what the agent had already sent and ends after the agent's
/// `stream_end` (reason [`EndReason::Cancelled`]).
#[derive(Clone)]
pub struct Canceller {
    outgoing: Arc<dyn Outgoing>,
    queue: Arc<StreamQueue>,
    sent: Arc<AtomicBool>,
}

impl fmt::Debug for Canceller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Canceller")
            .field("stream", &self.queue.id())
            .field("sent", &self.sent.load(Ordering::Relaxed))
            .finish()
    }
}

impl Canceller {
    pub(crate) fn new(outgoing: Arc<dyn Outgoing>, queue: Arc<StreamQueue>) -> Self {
        Self {
            outgoing,
            queue,
            sent: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The stream this cancels.
    pub fn stream(&self) -> StreamId {
        self.queue.id()
    }

    /// Asks the agent to end the stream and remove its probe. Never blocks
    /// longer than the session's request timeout (a write to the socket).
    /// A connection that is already gone needs no cancel: the agent removes
    /// the probes of a client that disconnects.
    ///
    /// The agent applies a connection's messages in the order they were
    /// sent, and removes a stream's probe before it answers anything sent
    /// after the cancel. So a request on the same session that was made
    /// after `cancel` returned (a `ping`, say) is answered only once the
    /// probe is gone: a front end that quits confirms its cancels that way
    /// without following each stream to its end.
    pub fn cancel(&self) {
        if self.queue.is_finished() || self.sent.swap(true, Ordering::AcqRel) {
            return;
        }
        let _ = self.outgoing.send(Message::Cancel(Cancel {
            stream: self.queue.id(),
        }));
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.sent.load(Ordering::Acquire)
    }
}

/// The items of one stream (`watch`, `stack`, `monitor`, or any command
/// opened with `subscribe`).
///
/// As an [`Iterator`], `next()` blocks until the next item; it yields
/// `Ok(item)`s, then ends (`None`) after the stream's end: see
/// [`end`](Self::end) for why it ended. A stream that failed yields one
/// `Err` ([`ClientError::Agent`]) before ending, and so does a connection
/// lost before the stream ended ([`ClientError::Disconnected`]). An
/// observation that cannot be decoded into `T` yields an `Err`
/// ([`ClientError::Protocol`]) and the iteration goes on.
///
/// Dropping it before its end cancels the stream (without waiting for the
/// agent's answer) and discards whatever still arrives for it. A
/// subscription keeps its connection open even after its session is
/// dropped.
pub struct Subscription<T> {
    command: String,
    started: StreamStarted,
    queue: Arc<StreamQueue>,
    canceller: Canceller,
    demux: Arc<Demux>,
    end: Option<StreamEnd>,
    done: bool,
    _keep_alive: KeepAlive,
    _items: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("command", &self.command)
            .field("stream", &self.queue.id())
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl<T> Subscription<T> {
    pub(crate) fn new(
        command: String,
        started: StreamStarted,
        queue: Arc<StreamQueue>,
        canceller: Canceller,
        demux: Arc<Demux>,
        keep_alive: KeepAlive,
    ) -> Self {
        Self {
            command,
            started,
            queue,
            canceller,
            demux,
            end: None,
            done: false,
            _keep_alive: keep_alive,
            _items: PhantomData,
        }
    }

    /// The stream's id on its connection.
    pub fn id(&self) -> StreamId {
        self.queue.id()
    }

    /// The command that opened it.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// What the agent said when it opened the stream: the functions
    /// matched, the instrumentation backend, the limits.
    pub fn started(&self) -> &StreamStarted {
        &self.started
    }

    /// How the stream ended, once the iteration reached its end.
    pub fn end(&self) -> Option<&StreamEnd> {
        self.end.as_ref()
    }

    /// Whether the iteration is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Items this client dropped so far because they came faster than they
    /// were taken (see [`SessionOptions::stream_buffer`](super::SessionOptions::stream_buffer)).
    pub fn client_dropped(&self) -> u64 {
        self.queue.client_dropped()
    }

    /// A handle that cancels this stream from elsewhere.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// Cancels the stream and drops the subscription without waiting.
    /// To see the remaining items and the end, use a
    /// [`canceller`](Self::canceller) and keep iterating instead.
    pub fn cancel(self) {
        self.canceller.cancel();
    }
}

impl<T: DeserializeOwned> Subscription<T> {
    /// The next item, waiting at most `timeout`: `None` after the end,
    /// `Some(Err(ClientError::Timeout))` when nothing came in time (the
    /// subscription stays usable).
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Option<Result<StreamItem<T>, ClientError>> {
        if self.done {
            return None;
        }
        match self.queue.wait(Some(Instant::now() + timeout)) {
            Some(next) => self.handle(next),
            None => Some(Err(ClientError::Timeout {
                what: format!("the next item of `{}`", self.command),
                waited: timeout,
            })),
        }
    }

    fn handle(&mut self, next: Next) -> Option<Result<StreamItem<T>, ClientError>> {
        match next {
            Next::Item(RawItem::Observation { seq, data }) => Some(
                decode_data(&self.command, &data).map(|data| StreamItem::Observation { seq, data }),
            ),
            Next::Item(RawItem::Event { seq, kind, data }) => Some(
                decode_data(&self.command, &data).map(|data| StreamItem::Event { seq, kind, data }),
            ),
            Next::End(end) => {
                self.done = true;
                let failure = end.error.clone().filter(|_| end.reason == EndReason::Error);
                self.end = Some(StreamEnd {
                    reason: end.reason,
                    dropped: end.dropped,
                    client_dropped: self.queue.client_dropped(),
                    error: end.error,
                });
                failure.map(|error| {
                    Err(ClientError::Agent {
                        command: self.command.clone(),
                        code: error.code,
                        message: error.message,
                        traceback: error.traceback,
                    })
                })
            }
            Next::Lost(closed) => {
                self.done = true;
                Some(Err(closed.error()))
            }
        }
    }
}

impl<T: DeserializeOwned> Iterator for Subscription<T> {
    type Item = Result<StreamItem<T>, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.queue.wait(None)?;
        self.handle(next)
    }
}

/// The items of one stream of an [`AsyncSession`](super::AsyncSession), as
/// a `futures_core::Stream` (feature `tokio`).
///
/// The same items, end, cancel and drop semantics as [`Subscription`]
/// (it wraps one), without the blocking `Iterator`, so that `.next()` from
/// `futures::StreamExt` is unambiguous.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct AsyncSubscription<T>(Subscription<T>);

#[cfg(feature = "tokio")]
impl<T> AsyncSubscription<T> {
    pub(crate) fn new(inner: Subscription<T>) -> Self {
        Self(inner)
    }

    /// The stream's id on its connection.
    pub fn id(&self) -> StreamId {
        self.0.id()
    }

    /// The command that opened it.
    pub fn command(&self) -> &str {
        self.0.command()
    }

    /// See [`Subscription::started`].
    pub fn started(&self) -> &StreamStarted {
        self.0.started()
    }

    /// See [`Subscription::end`].
    pub fn end(&self) -> Option<&StreamEnd> {
        self.0.end()
    }

    /// Whether the stream is over.
    pub fn is_done(&self) -> bool {
        self.0.is_done()
    }

    /// See [`Subscription::client_dropped`].
    pub fn client_dropped(&self) -> u64 {
        self.0.client_dropped()
    }

    /// See [`Subscription::canceller`].
    pub fn canceller(&self) -> Canceller {
        self.0.canceller()
    }

    /// Cancels the stream and drops the subscription without waiting.
    pub fn cancel(self) {
        self.0.cancel();
    }
}

#[cfg(feature = "tokio")]
impl<T: DeserializeOwned> futures_core::Stream for AsyncSubscription<T> {
    type Item = Result<StreamItem<T>, ClientError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let inner = &mut self.0;
        if inner.done {
            return Poll::Ready(None);
        }
        match inner.queue.poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(next) => Poll::Ready(inner.handle(next)),
        }
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        if !self.done {
            self.canceller.cancel();
        }
        self.demux.forget_stream(self.queue.id());
    }
}
