//! Open WebSocket connections and fan-out: each connection is a channel of JSON text; an event is
//! serialised once and cloned to every recipient as a shared string.
//!
//! Each connection may have at most [`MAX_QUEUED_BYTES`] waiting to be written. A client that reads
//! slower than it is sent to is let go (its channel closes, its socket ends) instead of being buffered
//! without end; it reconnects with the highest `seq` it received and gets what it missed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::domain::AccountId;

/// Bytes a connection may have waiting before it is dropped as too slow.
pub const MAX_QUEUED_BYTES: usize = 8 * 1024 * 1024;

/// Accounted per frame on top of its text, so that floods of tiny frames are bounded too.
const FRAME_OVERHEAD: usize = 64;

/// Frames for one connection, in the order they were sent.
#[derive(Debug)]
pub struct Outbox {
    receiver: mpsc::UnboundedReceiver<Arc<str>>,
    queued: Arc<AtomicUsize>,
}

impl Outbox {
    /// The next frame; `None` once the hub let the connection go and every queued frame was read.
    pub async fn recv(&mut self) -> Option<Arc<str>> {
        let frame = self.receiver.recv().await?;
        self.queued
            .fetch_sub(frame.len() + FRAME_OVERHEAD, Ordering::Relaxed);
        Some(frame)
    }
}

#[derive(Debug)]
struct Link {
    id: u64,
    sender: mpsc::UnboundedSender<Arc<str>>,
    queued: Arc<AtomicUsize>,
}

impl Link {
    /// Queues `frame`; `false` when the client is too slow (or gone) and must be let go. One frame
    /// larger than the budget still passes when nothing else waits (an opening snapshot).
    fn push(&self, frame: &Arc<str>) -> bool {
        let size = frame.len() + FRAME_OVERHEAD;
        let before = self.queued.fetch_add(size, Ordering::Relaxed);
        if before > 0 && before + size > MAX_QUEUED_BYTES {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            return false;
        }
        self.sender.send(Arc::clone(frame)).is_ok()
    }
}

/// Who is connected.
#[derive(Debug, Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    next_id: u64,
    agents: HashMap<AccountId, Vec<Link>>,
    visitors: HashMap<String, Vec<Link>>,
    /// Connections let go for being too slow since the start.
    dropped_slow: u64,
}

/// Handle of one connection, to unregister it.
#[derive(Debug, Clone)]
pub enum Connection {
    /// An agent's tab.
    Agent(AccountId, u64),
    /// A visitor's page, by conversation.
    Visitor(String, u64),
}

impl Connection {
    fn id(&self) -> u64 {
        match self {
            Connection::Agent(_, id) | Connection::Visitor(_, id) => *id,
        }
    }
}

impl Hub {
    /// Registers an agent tab.
    pub fn connect_agent(&self, agent: AccountId) -> (Connection, Outbox) {
        let mut inner = self.inner.lock();
        let (link, outbox) = inner.link();
        let connection = Connection::Agent(agent, link.id);
        inner.agents.entry(agent).or_default().push(link);
        (connection, outbox)
    }

    /// Registers a visitor page of a conversation.
    pub fn connect_visitor(&self, conversation: &str) -> (Connection, Outbox) {
        let mut inner = self.inner.lock();
        let (link, outbox) = inner.link();
        let connection = Connection::Visitor(conversation.to_string(), link.id);
        inner
            .visitors
            .entry(conversation.to_string())
            .or_default()
            .push(link);
        (connection, outbox)
    }

    /// Unregisters a connection; returns whether its owner has no connection left.
    pub fn disconnect(&self, connection: &Connection) -> bool {
        let mut inner = self.inner.lock();
        let id = connection.id();
        match connection {
            Connection::Agent(agent, _) => {
                remove(&mut inner.agents, agent, |link| link.id != id);
                !inner.agents.contains_key(agent)
            }
            Connection::Visitor(conversation, _) => {
                remove(&mut inner.visitors, conversation, |link| link.id != id);
                !inner.visitors.contains_key(conversation)
            }
        }
    }

    /// Open connections: (visitor pages, agent tabs).
    pub fn connection_counts(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (
            inner.visitors.values().map(Vec::len).sum(),
            inner.agents.values().map(Vec::len).sum(),
        )
    }

    /// Connections let go because they read too slowly, since the start.
    pub fn dropped_slow(&self) -> u64 {
        self.inner.lock().dropped_slow
    }

    /// Sends to every tab of each agent.
    pub fn to_agents<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a AccountId>,
        event: &impl Serialize,
    ) {
        self.agents_frame(agents, &encode(event));
    }

    /// Sends an encoded frame to every tab of each agent.
    pub(super) fn agents_frame<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a AccountId>,
        frame: &Arc<str>,
    ) {
        let mut inner = self.inner.lock();
        let mut dropped = 0;
        for agent in agents {
            dropped += remove(&mut inner.agents, agent, |link| link.push(frame)) as u64;
        }
        inner.dropped_slow += dropped;
    }

    /// Sends to one connection only (acknowledgements, errors, the opening snapshot).
    pub fn to_connection(&self, connection: &Connection, event: &impl Serialize) {
        let frame = encode(event);
        let id = connection.id();
        let mut inner = self.inner.lock();
        let keep = |link: &Link| link.id != id || link.push(&frame);
        let dropped = match connection {
            Connection::Agent(agent, _) => remove(&mut inner.agents, agent, keep),
            Connection::Visitor(conversation, _) => remove(&mut inner.visitors, conversation, keep),
        };
        inner.dropped_slow += dropped as u64;
    }

    /// Sends to every page of a conversation's visitor.
    pub fn to_visitor(&self, conversation: &str, event: &impl Serialize) {
        self.visitor_frame(conversation, &encode(event));
    }

    /// Sends an encoded frame to every page of a conversation's visitor.
    pub(super) fn visitor_frame(&self, conversation: &str, frame: &Arc<str>) {
        let mut inner = self.inner.lock();
        let dropped = match inner.visitors.get_mut(conversation) {
            Some(links) => {
                let before = links.len();
                links.retain(|link| link.push(frame));
                let dropped = before - links.len();
                if links.is_empty() {
                    inner.visitors.remove(conversation);
                }
                dropped
            }
            None => 0,
        };
        inner.dropped_slow += dropped as u64;
    }
}

impl HubInner {
    fn link(&mut self) -> (Link, Outbox) {
        self.next_id += 1;
        let (sender, receiver) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let link = Link {
            id: self.next_id,
            sender,
            queued: Arc::clone(&queued),
        };
        (link, Outbox { receiver, queued })
    }
}

/// Keeps the links of `key` for which `keep` holds (dropping a link closes its socket); forgets the
/// key when none is left. Returns how many links were dropped.
fn remove<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Vec<Link>>,
    key: &K,
    keep: impl FnMut(&Link) -> bool,
) -> usize {
    let Some(links) = map.get_mut(key) else {
        return 0;
    };
    let before = links.len();
    links.retain(keep);
    let dropped = before - links.len();
    if links.is_empty() {
        map.remove(key);
    }
    dropped
}

/// One event as a frame.
pub(super) fn encode(event: &impl Serialize) -> Arc<str> {
    Arc::from(serde_json::to_string(event).unwrap_or_else(|error| {
        format!(r#"{{"type":"error","code":"internal","message":"encoding an event: {error}"}}"#)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_that_does_not_read_is_let_go_and_the_others_keep_their_frames() {
        let hub = Hub::default();
        let (_slow, mut slow_outbox) = hub.connect_visitor("c1");
        let (_fast, mut fast_outbox) = hub.connect_visitor("c1");
        let frame: Arc<str> = Arc::from("x".repeat(64 * 1024));
        let mut sent = 0;
        for _ in 0..(MAX_QUEUED_BYTES / (64 * 1024)) * 2 {
            hub.visitor_frame("c1", &frame);
            sent += 1;
            // The fast client reads everything as it comes.
            assert!(fast_outbox.recv().await.is_some());
        }
        assert_eq!(hub.connection_counts().0, 1, "the slow page was let go");
        assert_eq!(hub.dropped_slow(), 1);
        // What the slow page had queued is still readable, then its outbox ends.
        let mut received = 0;
        while slow_outbox.recv().await.is_some() {
            received += 1;
        }
        assert!(received > 0 && received < sent);
    }

    #[tokio::test]
    async fn one_large_snapshot_passes_when_nothing_waits() {
        let hub = Hub::default();
        let (connection, mut outbox) = hub.connect_agent(AccountId(1));
        let big = serde_json::json!({ "text": "y".repeat(MAX_QUEUED_BYTES + 1) });
        hub.to_connection(&connection, &big);
        assert!(outbox.recv().await.is_some());
        assert_eq!(hub.connection_counts().1, 1);
    }
}
