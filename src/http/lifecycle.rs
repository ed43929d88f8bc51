//! How the gateway stops: first it drains (readiness answers 503, the
//! listener closes, requests in flight may finish), then, past the grace
//! period, it cuts what still streams. Every export still open at the end
//! gets its completion event before the audit log is flushed.

use std::sync::{Arc, Mutex, Weak};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::streamed::Completion;

/// Shared by the server loop, readiness, exports and their completion events.
#[derive(Clone, Default)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    draining: CancellationToken,
    cut: CancellationToken,
    /// Completion events written off the request's task (a body dropped on
    /// disconnect), waited for before the audit log is flushed.
    tasks: TaskTracker,
    /// Streamed responses whose completion event is not written yet.
    open: Mutex<Vec<Weak<Completion>>>,
}

impl Lifecycle {
    /// True once a stop was asked for: readiness answers 503.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.is_cancelled()
    }

    pub fn begin_drain(&self) {
        self.inner.draining.cancel();
    }

    /// Resolves when the drain begins.
    pub async fn draining(&self) {
        self.inner.draining.cancelled().await;
    }

    /// Every export producer stops when this is cancelled.
    pub fn cut_token(&self) -> CancellationToken {
        self.inner.cut.clone()
    }

    /// Ends every export still streaming.
    pub fn cut(&self) {
        self.inner.cut.cancel();
    }

    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// Tracks a streamed response until its completion event is written.
    pub(crate) fn register(&self, completion: &Arc<Completion>) {
        if let Ok(mut open) = self.inner.open.lock() {
            open.retain(|entry| entry.strong_count() > 0);
            open.push(Arc::downgrade(completion));
        }
    }

    /// Writes the completion event (`complete: false`) of every streamed
    /// response that has none yet: a connection stuck on a client that
    /// reads nothing never polls its body again, so its own guard would
    /// only run when the runtime is torn down, after the audit log is closed.
    pub async fn finish_open_exports(&self) {
        let open: Vec<Arc<Completion>> = match self.inner.open.lock() {
            Ok(mut open) => open.drain(..).filter_map(|entry| entry.upgrade()).collect(),
            Err(_) => Vec::new(),
        };
        for completion in open {
            completion.finish(false).await;
        }
    }
}
