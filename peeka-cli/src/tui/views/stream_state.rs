//! The one stream a view runs at a time (trace, stack, monitor):
//! [`StreamSlot`] opens it, drains it and stops it, keeping its
//! [`StreamState`]; the state line says what it follows, or why it
//! stopped, with what to do next.

use std::future::Future;
use std::sync::Arc;

use peeka_core::client::{AsyncSession, AsyncSubscription, ClientError, StreamStarted};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use serde::de::DeserializeOwned;

use super::stream_feed::{FeedMsg, StreamFeed};
use crate::tui::theme;
use crate::tui::view::Ctx;

/// Messages taken from the stream per tick.
const DRAIN_PER_TICK: usize = 64;

/// The stream of a view that runs one at a time, and where it is.
#[derive(Debug)]
pub(crate) struct StreamSlot<T> {
    /// Where the stream is.
    pub(crate) state: StreamState,
    feed: Option<StreamFeed<T>>,
    /// The stream's last event (e.g. `condition_errors`), described.
    pub(crate) note: Option<String>,
    /// Observations dropped because they came faster than shown.
    pub(crate) dropped: u64,
}

impl<T> Default for StreamSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> StreamSlot<T> {
    /// A slot with nothing started.
    pub(crate) fn new() -> Self {
        Self {
            state: StreamState::Idle,
            feed: None,
            note: None,
            dropped: 0,
        }
    }

    /// Opens the stream `open` gives for `pattern`, ending the one before
    /// (its probe removed); the note and the drop count start over.
    pub(crate) fn open<F, Fut>(&mut self, ctx: &Ctx, pattern: String, open: F)
    where
        T: DeserializeOwned + Send + 'static,
        F: FnOnce(Arc<AsyncSession>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<AsyncSubscription<T>, ClientError>> + Send + 'static,
    {
        self.feed = None;
        self.feed = Some(StreamFeed::start(ctx, open));
        self.state = StreamState::Opening(pattern);
        self.dropped = 0;
        self.note = None;
    }

    /// Asks for the stream's end (the agent removes the probe); never
    /// blocks.
    pub(crate) fn stop(&mut self) {
        if let Some(feed) = &self.feed {
            feed.stop();
            if let StreamState::Running { pattern, .. } | StreamState::Opening(pattern) =
                &self.state
            {
                self.state = StreamState::Stopping(pattern.clone());
            }
        }
    }

    /// Takes the messages that arrived (a bounded number per call) and
    /// gives the observations among them, in order.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let Some(feed) = &mut self.feed else {
            return Vec::new();
        };
        let messages = feed.drain(DRAIN_PER_TICK);
        self.dropped = feed.dropped();
        messages
            .into_iter()
            .filter_map(|message| self.take(message))
            .collect()
    }

    /// Follows one message of the stream; an observation is given back.
    fn take(&mut self, message: FeedMsg<T>) -> Option<T> {
        match message {
            FeedMsg::Opened(started) => {
                if let StreamState::Opening(pattern) = &self.state {
                    self.state = StreamState::opened(pattern, &started);
                }
            }
            FeedMsg::Item(item) => return Some(item),
            FeedMsg::Event(text) => self.note = Some(text),
            FeedMsg::Failed(error) => {
                self.state = StreamState::Failed(error);
                self.feed = None;
            }
            FeedMsg::Ended(why) => {
                self.state = StreamState::Ended(why);
                self.feed = None;
            }
        }
        None
    }

    /// What to show while the stream is open or opening and nothing came
    /// yet: its last event, else `waiting` (what is awaited), dimmed;
    /// `None` when the stream is not live.
    pub(crate) fn waiting(&self, waiting: impl FnOnce() -> String) -> Option<Paragraph<'static>> {
        if !self.state.is_live() {
            return None;
        }
        let text = self.note.clone().unwrap_or_else(waiting);
        Some(Paragraph::new(Span::styled(text, theme::dim())))
    }
}

/// Where a view's stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StreamState {
    /// Nothing started yet.
    Idle,
    /// Asked the agent to open it.
    Opening(String),
    /// Open: the pattern, the functions it probes, the backend.
    Running {
        /// The pattern.
        pattern: String,
        /// The functions probed.
        matched: Vec<String>,
        /// The probe's backend.
        backend: Option<String>,
    },
    /// Asked to stop; waiting for its end.
    Stopping(String),
    /// Ended (why).
    Ended(String),
    /// Failed to open, or failed while running (the error, naming the fix).
    Failed(String),
}

impl StreamState {
    /// The stream opened.
    pub(crate) fn opened(pattern: &str, started: &StreamStarted) -> Self {
        Self::Running {
            pattern: pattern.to_owned(),
            matched: started.matched.iter().map(|m| m.name.clone()).collect(),
            backend: started.backend.clone(),
        }
    }

    /// Whether a stream is open or opening.
    pub(crate) fn is_live(&self) -> bool {
        matches!(
            self,
            Self::Opening(_) | Self::Running { .. } | Self::Stopping(_)
        )
    }

    /// One line for the top of the view; `verb` is what the view does
    /// ("tracing", "monitoring").
    pub(crate) fn line(&self, verb: &str, idle_hint: &str) -> Line<'static> {
        match self {
            Self::Idle => Line::from(Span::styled(idle_hint.to_owned(), theme::dim())),
            Self::Opening(pattern) => Line::from(vec![
                Span::raw("opening "),
                Span::styled(pattern.clone(), theme::name()),
                Span::styled(" …", theme::dim()),
            ]),
            Self::Running {
                pattern,
                matched,
                backend,
            } => {
                let what = match matched.as_slice() {
                    [one] if one == pattern => String::new(),
                    [one] => format!(" ({one})"),
                    many => format!(" ({} functions)", many.len()),
                };
                let backend = backend
                    .as_deref()
                    .map_or_else(String::new, |b| format!("  [{b}]"));
                Line::from(vec![
                    Span::styled(format!("{verb} "), theme::good()),
                    Span::styled(pattern.clone(), theme::name()),
                    Span::raw(what),
                    Span::styled(format!("{backend}  s: stop"), theme::dim()),
                ])
            }
            Self::Stopping(pattern) => Line::from(vec![
                Span::raw("stopping "),
                Span::styled(pattern.clone(), theme::name()),
                Span::styled(" (removing the probe) …", theme::dim()),
            ]),
            Self::Ended(why) => Line::from(vec![
                Span::styled(format!("ended: {why}"), theme::warn()),
                Span::styled("  enter: start again  e: edit the pattern", theme::dim()),
            ]),
            Self::Failed(_) => Line::from(vec![
                Span::styled("failed (below)", theme::error()),
                Span::styled("  e: edit the pattern  enter: try again", theme::dim()),
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_follows_the_stream_and_gives_back_its_observations() {
        let mut slot = StreamSlot::<u32>::new();
        assert!(slot.waiting(|| "waiting".into()).is_none());
        slot.state = StreamState::Opening("shop.checkout".into());
        assert!(slot.waiting(|| "waiting".into()).is_some());
        assert_eq!(slot.take(FeedMsg::Item(7)), Some(7));
        assert_eq!(slot.take(FeedMsg::Event("condition_errors".into())), None);
        assert_eq!(slot.note.as_deref(), Some("condition_errors"));
        slot.take(FeedMsg::Failed("no function matches".into()));
        assert_eq!(
            slot.state,
            StreamState::Failed("no function matches".into())
        );
        assert!(slot.waiting(|| "waiting".into()).is_none());
        slot.take(FeedMsg::Ended("cancelled".into()));
        assert_eq!(slot.state, StreamState::Ended("cancelled".into()));
        // Nothing open: stopping leaves the state alone, draining gives nothing.
        slot.stop();
        assert_eq!(slot.state, StreamState::Ended("cancelled".into()));
        assert!(slot.drain().is_empty());
    }
}
