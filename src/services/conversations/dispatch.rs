//! Group commit and ordered delivery. Every change of the desk queues its events here while it still
//! holds the desk lock, so the queue is in desk order: seq order within each conversation. One task
//! takes whatever is queued, tells the observers (statistics, webhooks), makes it all durable with one
//! flush, and only then sends the frames, batch after batch, in that order. A message is therefore
//! acknowledged only once on disk, flushing does not cap throughput at the disk's fsync rate, and two
//! parties sending at once never see each other's frames out of order.

use std::sync::{Arc, Weak};

use jiff::Timestamp;
use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};

use super::hub::{encode, Hub};
use super::{DeskEvent, DeskFact, DeskObserver, VisitorFrameObserver};
use crate::domain::AccountId;
use crate::error::{Error, Result};
use crate::services::clock::Clock;
use crate::storage::ConversationStore;

/// Batches taken by one flush at most, so the first waiters are not held back by a flood.
const MAX_BATCHES_PER_FLUSH: usize = 4096;

/// The desk's observers, shared with the dispatching task.
pub(super) type Observers = Arc<RwLock<Vec<Arc<dyn DeskObserver>>>>;

/// Those told the frames sent to visitors (channels), shared with the dispatching task.
pub(super) type FrameObservers = Arc<RwLock<Vec<Arc<dyn VisitorFrameObserver>>>>;

/// What one change of the desk sends once durable.
#[derive(Debug, Default)]
pub(super) struct Delivery {
    pub to_agents: Vec<(Vec<AccountId>, DeskEvent)>,
    pub to_visitors: Vec<(String, DeskEvent)>,
    /// For the observers (statistics, webhooks).
    pub facts: Vec<DeskFact>,
}

struct Batch {
    delivery: Delivery,
    done: oneshot::Sender<Result<(), String>>,
}

/// Resolves once the delivery it was handed out for is durable and sent.
#[must_use = "await the ticket to learn that the change is durable"]
pub(super) struct Ticket(oneshot::Receiver<Result<(), String>>);

impl Ticket {
    pub async fn wait(self) -> Result<()> {
        self.0
            .await
            .map_err(|_| Error::Internal("the dispatching task stopped".into()))?
            .map_err(|message| Error::Storage(format!("flushing: {message}")))
    }
}

/// Queue of deliveries in desk order.
#[derive(Debug, Clone)]
pub(super) struct Dispatcher {
    batches: mpsc::UnboundedSender<Batch>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Batch").finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Starts the dispatching task on the current tokio runtime. The task holds the store weakly, so
    /// dropping the service closes the database at once (a restart in the same process reopens it).
    pub fn start(
        store: &Arc<dyn ConversationStore>,
        hub: Arc<Hub>,
        observers: Observers,
        frame_observers: FrameObservers,
        clock: Arc<dyn Clock>,
    ) -> Dispatcher {
        let store = Arc::downgrade(store);
        let (batches, receiver) = mpsc::unbounded_channel::<Batch>();
        tokio::spawn(run(receiver, store, hub, observers, frame_observers, clock));
        Dispatcher { batches }
    }

    /// Queues `delivery`; call it while holding the desk lock, await the ticket after releasing it.
    pub fn queue(&self, delivery: Delivery) -> Ticket {
        let (done, receiver) = oneshot::channel();
        // A send error means the task stopped; the dropped `done` then fails the ticket.
        let _ = self.batches.send(Batch { delivery, done });
        Ticket(receiver)
    }

    /// Returns once everything written before the call is durable.
    pub async fn durable(&self) -> Result<()> {
        self.queue(Delivery::default()).wait().await
    }
}

async fn run(
    mut receiver: mpsc::UnboundedReceiver<Batch>,
    store: Weak<dyn ConversationStore>,
    hub: Arc<Hub>,
    observers: Observers,
    frame_observers: FrameObservers,
    clock: Arc<dyn Clock>,
) {
    while let Some(first) = receiver.recv().await {
        let mut batches = vec![first];
        while batches.len() < MAX_BATCHES_PER_FLUSH {
            match receiver.try_recv() {
                Ok(next) => batches.push(next),
                Err(_) => break,
            }
        }
        let Some(store) = store.upgrade() else {
            break;
        };
        let facts: Vec<DeskFact> = batches
            .iter_mut()
            .flat_map(|batch| std::mem::take(&mut batch.delivery.facts))
            .collect();
        // Frames are copied only when someone listens (a channel is configured).
        let frames: Vec<(String, DeskEvent)> = if frame_observers.read().is_empty() {
            Vec::new()
        } else {
            batches
                .iter()
                .flat_map(|batch| batch.delivery.to_visitors.iter().cloned())
                .collect()
        };
        let observers = Arc::clone(&observers);
        let frame_observers = Arc::clone(&frame_observers);
        let at = clock.now();
        let outcome = tokio::task::spawn_blocking(move || {
            // Facts first: a channel learns of a new conversation before its first frames.
            tell(&observers, at, &facts);
            tell_frames(&frame_observers, at, &frames);
            store.flush()
        })
        .await
        .map_err(|error| error.to_string())
        .and_then(|result| result.map_err(|error| error.to_string()));
        for batch in batches {
            if outcome.is_ok() {
                send(&hub, batch.delivery);
            }
            let _ = batch.done.send(outcome.clone());
        }
    }
}

/// Tells every observer; one failing observer does not keep the others from their facts.
pub(super) fn tell(observers: &Observers, at: Timestamp, facts: &[DeskFact]) {
    if facts.is_empty() {
        return;
    }
    let observers = observers.read().clone();
    for observer in observers {
        if let Err(error) = observer.observe(at, facts) {
            tracing::warn!(%error, ?observer, "a desk observer failed");
        }
    }
}

/// Tells every frame observer; one failing does not keep the others from their frames.
pub(super) fn tell_frames(
    observers: &FrameObservers,
    at: Timestamp,
    frames: &[(String, DeskEvent)],
) {
    if frames.is_empty() {
        return;
    }
    let observers = observers.read().clone();
    for observer in observers {
        if let Err(error) = observer.visitor_frames(at, frames) {
            tracing::warn!(%error, ?observer, "a visitor frame observer failed");
        }
    }
}

fn send(hub: &Hub, delivery: Delivery) {
    for (agents, event) in &delivery.to_agents {
        hub.agents_frame(agents, &encode(event));
    }
    for (conversation, event) in &delivery.to_visitors {
        hub.visitor_frame(conversation, &encode(event));
    }
}
