//! [`StreamControl`]: stops a stream that a view's task opened, from the
//! view (on the UI thread), whether or not the stream has opened yet.
//!
//! The task hands the subscription's `Canceller` over with
//! [`opened`](StreamControl::opened) as soon as the stream is open; the
//! view calls [`stop`](StreamControl::stop) at any time. Whichever comes
//! second sends the cancel, at once and without waiting, so a view's
//! `stop()` never blocks and a cancel is never lost to a race with the
//! stream's opening. The task keeps reading until the stream's end (the
//! agent's `stream_end` comes after it removed the probe).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use peeka_core::client::Canceller;

#[derive(Debug, Default)]
struct Inner {
    stopped: AtomicBool,
    canceller: Mutex<Option<Canceller>>,
}

/// A shared stop switch for one stream; clone it into the task.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamControl(Arc<Inner>);

impl StreamControl {
    /// A switch for a stream not opened yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The stream is open: keeps its canceller, or cancels at once when
    /// [`stop`](Self::stop) came first. Returns whether the stream may go on.
    pub(crate) fn opened(&self, canceller: Canceller) -> bool {
        let mut slot = self
            .0
            .canceller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.is_stopped() {
            canceller.cancel();
            return false;
        }
        *slot = Some(canceller);
        true
    }

    /// Asks for the stream's end (its probe removed); never blocks.
    pub(crate) fn stop(&self) {
        self.0.stopped.store(true, Ordering::SeqCst);
        let slot = self
            .0
            .canceller
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(canceller) = slot.as_ref() {
            canceller.cancel();
        }
    }

    /// Whether [`stop`](Self::stop) was called.
    pub(crate) fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::SeqCst)
    }
}
