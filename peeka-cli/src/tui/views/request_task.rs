//! [`RequestTask`]: one request a view runs in the background, its answer
//! taken on a later tick. Dropping it abandons the request (the client
//! forgets it; nothing is left in the target).

use std::future::Future;
use std::sync::mpsc::{self, Receiver};

use peeka_core::client::ClientError;
use tokio::task::JoinHandle;

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
}

impl<T> Drop for RequestTask<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
