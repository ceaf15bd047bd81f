//! Group commit: many writers wait for one flush. A message is acknowledged only once durable, and
//! flushing once per message would cap throughput at the disk's fsync rate.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::storage::ConversationStore;

/// Hands out "durable now" notifications; one flush serves every waiter that arrived before it began.
#[derive(Debug, Clone)]
pub struct FlushBatcher {
    requests: mpsc::UnboundedSender<oneshot::Sender<Result<(), String>>>,
}

impl FlushBatcher {
    /// Starts the flushing task on the current tokio runtime. The task holds the store weakly, so
    /// dropping the service closes the database at once (a restart in the same process reopens it).
    pub fn start(store: &Arc<dyn ConversationStore>) -> FlushBatcher {
        let store = Arc::downgrade(store);
        let (requests, mut receiver) =
            mpsc::unbounded_channel::<oneshot::Sender<Result<(), String>>>();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut waiters = vec![first];
                while let Ok(next) = receiver.try_recv() {
                    waiters.push(next);
                }
                let Some(store) = store.upgrade() else {
                    break;
                };
                let outcome = tokio::task::spawn_blocking(move || store.flush())
                    .await
                    .map_err(|error| error.to_string())
                    .and_then(|result| result.map_err(|error| error.to_string()));
                for waiter in waiters {
                    let _ = waiter.send(outcome.clone());
                }
            }
        });
        FlushBatcher { requests }
    }

    /// Returns once everything written before the call is durable.
    pub async fn durable(&self) -> Result<()> {
        let (sender, receiver) = oneshot::channel();
        self.requests
            .send(sender)
            .map_err(|_| Error::Internal("the flushing task stopped".into()))?;
        receiver
            .await
            .map_err(|_| Error::Internal("the flushing task stopped".into()))?
            .map_err(|message| Error::Storage(format!("flushing: {message}")))
    }
}
