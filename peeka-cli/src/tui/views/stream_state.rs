//! The state line of a view that runs one stream at a time (trace, stack,
//! monitor): what it follows, or why it stopped, with what to do next.

use peeka_core::client::StreamStarted;
use ratatui::text::{Line, Span};

use crate::tui::theme;

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
