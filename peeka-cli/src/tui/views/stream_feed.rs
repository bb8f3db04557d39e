//! [`StreamFeed`]: a stream a view opened, read by a task on the runtime
//! and handed to the view through a bounded channel that the view drains a
//! bounded amount per tick. So a flood of observations never grows memory
//! or stalls drawing: when the view falls behind, the newest are dropped
//! and counted ([`StreamFeed::dropped`]).
//!
//! Stopping ([`StreamFeed::stop`], or dropping the feed) cancels the
//! stream through a [`StreamControl`] without waiting, whether or not it
//! has opened yet; the agent then removes the probe.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use peeka_core::client::{
    AsyncSession, AsyncSubscription, ClientError, StreamEnd, StreamItem, StreamStarted,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::tui::stream_control::StreamControl;
use crate::tui::view::Ctx;

/// Items waiting for the view at most.
const CAPACITY: usize = 1024;

/// What the task tells the view.
#[derive(Debug)]
pub(crate) enum FeedMsg<T> {
    /// The stream is open: what it probes.
    Opened(StreamStarted),
    /// An observation.
    Item(T),
    /// An event of the stream (e.g. `condition_errors`), described.
    Event(String),
    /// The stream failed, or could not open: the error's message.
    Failed(String),
    /// The stream ended: why, in words.
    Ended(String),
}

/// One running stream of a view.
#[derive(Debug)]
pub(crate) struct StreamFeed<T> {
    rx: Receiver<FeedMsg<T>>,
    control: StreamControl,
    dropped: Arc<AtomicU64>,
}

impl<T: DeserializeOwned + Send + 'static> StreamFeed<T> {
    /// Opens a stream with `open` on the view's runtime.
    pub(crate) fn start<F, Fut>(ctx: &Ctx, open: F) -> Self
    where
        F: FnOnce(Arc<AsyncSession>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AsyncSubscription<T>, ClientError>> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(CAPACITY);
        let control = StreamControl::new();
        let dropped = Arc::new(AtomicU64::new(0));
        ctx.runtime.spawn(follow(
            open(Arc::clone(&ctx.session)),
            tx,
            control.clone(),
            Arc::clone(&dropped),
        ));
        Self {
            rx,
            control,
            dropped,
        }
    }
}

impl<T> StreamFeed<T> {
    /// Takes at most `max` messages that arrived.
    pub(crate) fn drain(&mut self, max: usize) -> Vec<FeedMsg<T>> {
        let mut taken = Vec::new();
        while taken.len() < max {
            match self.rx.try_recv() {
                Ok(message) => taken.push(message),
                Err(_) => break,
            }
        }
        taken
    }

    /// Asks for the stream's end; never blocks.
    pub(crate) fn stop(&self) {
        self.control.stop();
    }

    /// Observations dropped because the view fell behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl<T> Drop for StreamFeed<T> {
    fn drop(&mut self) {
        self.control.stop();
    }
}

async fn follow<T: DeserializeOwned>(
    opening: impl Future<Output = Result<AsyncSubscription<T>, ClientError>>,
    tx: SyncSender<FeedMsg<T>>,
    control: StreamControl,
    dropped: Arc<AtomicU64>,
) {
    let mut subscription = match opening.await {
        Ok(subscription) => subscription,
        Err(e) => {
            deliver(&tx, FeedMsg::Failed(e.to_string())).await;
            return;
        }
    };
    if !control.opened(subscription.canceller()) {
        deliver(&tx, FeedMsg::Ended("stopped".into())).await;
        return;
    }
    if !deliver(&tx, FeedMsg::Opened(subscription.started().clone())).await {
        return;
    }
    while let Some(item) = subscription.next().await {
        let message = match item {
            Ok(StreamItem::Observation { data, .. }) => FeedMsg::Item(data),
            Ok(StreamItem::Event { kind, data, .. }) => FeedMsg::Event(event_text(&kind, &data)),
            Err(e @ (ClientError::Agent { .. } | ClientError::Disconnected { .. })) => {
                deliver(&tx, FeedMsg::Failed(e.to_string())).await;
                return;
            }
            Err(e) => FeedMsg::Event(format!("an item could not be read: {e}")),
        };
        match tx.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
    let why = subscription.end().map_or_else(|| "ended".into(), end_text);
    deliver(&tx, FeedMsg::Ended(why)).await;
}

/// Sends a message that must not be lost, waiting for room while the view
/// is there; false when it is gone.
async fn deliver<T>(tx: &SyncSender<FeedMsg<T>>, message: FeedMsg<T>) -> bool {
    let mut message = message;
    loop {
        match tx.try_send(message) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                message = back;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn event_text(kind: &str, data: &Value) -> String {
    match data {
        Value::Null => kind.to_owned(),
        Value::Object(fields) if fields.is_empty() => kind.to_owned(),
        other => format!("{kind}: {other}"),
    }
}

/// How a stream ended, in words: `cancelled`, `limit reached`, with the
/// drops when there were any.
pub(crate) fn end_text(end: &StreamEnd) -> String {
    let reason = serde_json::to_value(end.reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", end.reason));
    let mut text = reason.replace('_', " ");
    if end.dropped > 0 || end.client_dropped > 0 {
        text.push_str(&format!(
            " ({} dropped by the agent, {} by this client)",
            end.dropped, end.client_dropped
        ));
    }
    text
}
