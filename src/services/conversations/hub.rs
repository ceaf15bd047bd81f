//! Open WebSocket connections and fan-out: each connection is an unbounded channel of JSON text; an
//! event is serialised once and cloned to every recipient as a shared string.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::mpsc;

use crate::domain::AccountId;

/// Frames for one connection.
pub type Outbox = mpsc::UnboundedReceiver<Arc<str>>;

type Senders = Vec<(u64, mpsc::UnboundedSender<Arc<str>>)>;

/// Who is connected.
#[derive(Debug, Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    next_id: u64,
    agents: HashMap<AccountId, Senders>,
    visitors: HashMap<String, Senders>,
}

/// Handle of one connection, to unregister it.
#[derive(Debug, Clone)]
pub enum Connection {
    /// An agent's tab.
    Agent(AccountId, u64),
    /// A visitor's page, by conversation.
    Visitor(String, u64),
}

impl Hub {
    /// Registers an agent tab.
    pub fn connect_agent(&self, agent: AccountId) -> (Connection, Outbox) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock().expect("hub lock poisoned");
        inner.next_id += 1;
        let id = inner.next_id;
        inner.agents.entry(agent).or_default().push((id, sender));
        (Connection::Agent(agent, id), receiver)
    }

    /// Registers a visitor page of a conversation.
    pub fn connect_visitor(&self, conversation: &str) -> (Connection, Outbox) {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut inner = self.inner.lock().expect("hub lock poisoned");
        inner.next_id += 1;
        let id = inner.next_id;
        inner
            .visitors
            .entry(conversation.to_string())
            .or_default()
            .push((id, sender));
        (Connection::Visitor(conversation.to_string(), id), receiver)
    }

    /// Unregisters a connection; returns whether its owner has no connection left.
    pub fn disconnect(&self, connection: &Connection) -> bool {
        let mut inner = self.inner.lock().expect("hub lock poisoned");
        match connection {
            Connection::Agent(agent, id) => remove(&mut inner.agents, agent, *id),
            Connection::Visitor(conversation, id) => remove(&mut inner.visitors, conversation, *id),
        }
    }

    /// Open connections: (visitor pages, agent tabs).
    pub fn connection_counts(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("hub lock poisoned");
        (
            inner.visitors.values().map(Vec::len).sum(),
            inner.agents.values().map(Vec::len).sum(),
        )
    }

    /// Sends to every tab of each agent.
    pub fn to_agents<'a>(
        &self,
        agents: impl IntoIterator<Item = &'a AccountId>,
        event: &impl Serialize,
    ) {
        let frame = encode(event);
        let inner = self.inner.lock().expect("hub lock poisoned");
        for agent in agents {
            if let Some(senders) = inner.agents.get(agent) {
                for (_, sender) in senders {
                    let _ = sender.send(Arc::clone(&frame));
                }
            }
        }
    }

    /// Sends to one connection only (acknowledgements, errors, the opening snapshot).
    pub fn to_connection(&self, connection: &Connection, event: &impl Serialize) {
        let frame = encode(event);
        let inner = self.inner.lock().expect("hub lock poisoned");
        let senders = match connection {
            Connection::Agent(agent, _) => inner.agents.get(agent),
            Connection::Visitor(conversation, _) => inner.visitors.get(conversation),
        };
        let id = match connection {
            Connection::Agent(_, id) | Connection::Visitor(_, id) => *id,
        };
        if let Some(senders) = senders {
            for (sender_id, sender) in senders {
                if *sender_id == id {
                    let _ = sender.send(Arc::clone(&frame));
                }
            }
        }
    }

    /// Sends to every page of a conversation's visitor.
    pub fn to_visitor(&self, conversation: &str, event: &impl Serialize) {
        let frame = encode(event);
        let inner = self.inner.lock().expect("hub lock poisoned");
        if let Some(senders) = inner.visitors.get(conversation) {
            for (_, sender) in senders {
                let _ = sender.send(Arc::clone(&frame));
            }
        }
    }
}

fn remove<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Senders>, key: &K, id: u64) -> bool {
    let Some(senders) = map.get_mut(key) else {
        return true;
    };
    senders.retain(|(sender_id, _)| *sender_id != id);
    if senders.is_empty() {
        map.remove(key);
        true
    } else {
        false
    }
}

fn encode(event: &impl Serialize) -> Arc<str> {
    Arc::from(serde_json::to_string(event).unwrap_or_else(|error| {
        format!(r#"{{"type":"error","code":"internal","message":"encoding an event: {error}"}}"#)
    }))
}
