//! The tasks of one live stream (its packager, recorder, rendition supervisor and
//! renditions' packagers), ended together when the stream closes.

use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The tasks of one live stream, ended together.
#[derive(Clone, Default)]
pub struct StreamLife {
    cancel: CancellationToken,
    tasks: TaskTracker,
}

impl StreamLife {
    /// Spawns `task` as one of the stream's. It should end soon after
    /// [`StreamLife::cancelled`] resolves; closing the stream waits for it.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task)
    }

    /// Resolves when the stream closes.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// Whether the stream has closed.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }
}

impl StreamLife {
    /// Cancels the stream's tasks and waits up to `wait` for them to end.
    ///
    /// # Errors
    /// How many tasks had not ended by then.
    pub async fn end(&self, wait: Duration) -> Result<(), usize> {
        self.cancel.cancel();
        self.tasks.close();
        tokio::time::timeout(wait, self.tasks.wait())
            .await
            .map_err(|_| self.tasks.len())
    }
}
