//! [`RequestTask`]: one request a view runs in the background, its answer
//! taken on a later tick. Dropping it abandons the request (the client
//! forgets it; nothing is left in the target). [`Reread`]: the read a view
//! makes when it first shows and again on demand.

use std::future::Future;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use peeka_core::client::{AsyncSession, ClientError};
use tokio::task::JoinHandle;

use crate::tui::view::Ctx;

/// A request in flight.
#[derive(Debug)]
pub(crate) struct RequestTask<T> {
    rx: Receiver<Result<T, String>>,
    handle: JoinHandle<()>,
}

impl<T: Send + 'static> RequestTask<T> {
    /// Runs `request` on `runtime`.
    pub(crate) fn spawn(
        runtime: &tokio::runtime::Handle,
        request: impl Future<Output = Result<T, ClientError>> + Send + 'static,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let handle = runtime.spawn(async move {
            let _ = tx.send(request.await.map_err(|e| e.to_string()));
        });
        Self { rx, handle }
    }
}

impl<T> RequestTask<T> {
    /// The answer, once it came.
    pub(crate) fn try_take(&self) -> Option<Result<T, String>> {
        match self.rx.try_recv() {
            Ok(answer) => Some(answer),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => {
                Some(Err("the request was dropped before it was answered".into()))
            }
        }
    }

    /// The answer of the request in `slot`, once it came; the slot is
    /// emptied then.
    pub(crate) fn take_answer(slot: &mut Option<Self>) -> Option<Result<T, String>> {
        let answer = slot.as_ref()?.try_take()?;
        *slot = None;
        Some(answer)
    }

    /// The same for a request kept with what it asked about (a path, a
    /// name, an action): that, and the answer.
    pub(crate) fn take_answer_with<K>(
        slot: &mut Option<(K, Self)>,
    ) -> Option<(K, Result<T, String>)> {
        let answer = slot.as_ref()?.1.try_take()?;
        let (asked, _) = slot.take()?;
        Some((asked, answer))
    }
}

impl<T> Drop for RequestTask<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// The read a view makes when it first shows, and again on demand (`r`,
/// after a change): one at a time, its answer taken on a later tick.
#[derive(Debug)]
pub(crate) struct Reread<T> {
    task: Option<RequestTask<T>>,
    shown: bool,
}

impl<T> Default for Reread<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Reread<T> {
    /// Nothing read yet.
    pub(crate) fn new() -> Self {
        Self {
            task: None,
            shown: false,
        }
    }

    /// Whether the view shows (`visible`) for the first time: then it
    /// should read.
    pub(crate) fn first_shown(&mut self, visible: bool) -> bool {
        let first = visible && !self.shown;
        self.shown |= visible;
        first
    }

    /// The answer of the read in flight, once it came.
    pub(crate) fn take_answer(&mut self) -> Option<Result<T, String>> {
        RequestTask::take_answer(&mut self.task)
    }

    /// Abandons the read in flight.
    pub(crate) fn abandon(&mut self) {
        self.task = None;
    }
}

impl<T: Send + 'static> Reread<T> {
    /// Reads with `read` on the view's runtime, unless a read is in flight.
    pub(crate) fn start<Fut>(&mut self, ctx: &Ctx, read: impl FnOnce(Arc<AsyncSession>) -> Fut)
    where
        Fut: Future<Output = Result<T, ClientError>> + Send + 'static,
    {
        if self.task.is_some() {
            return;
        }
        self.task = Some(RequestTask::spawn(&ctx.runtime, read(ctx.session.clone())));
    }
}
