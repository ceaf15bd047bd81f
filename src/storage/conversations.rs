//! Conversations, queue entries and messages behind [`ConversationStore`]. [`StoredConversations`]
//! keeps them in the store's tables, whichever database holds them.
//!
//! Messages are keyed `conversation id, 0x00, seq (big-endian)`, so one conversation's messages are a
//! contiguous, ordered range and the next sequence number is the last key's plus one.
//!
//! A visitor message is stored without its `sender_name`: the visitor's name lives once, on the
//! conversation, and is put back on every read. Copied into each message, one long name multiplied
//! the store by the number of messages.

use parking_lot::Mutex;

use crate::domain::{Conversation, Message, QueueEntry, SenderKind, VISITOR_NAME_UNKNOWN};
use crate::error::Result;
use crate::storage::{self, Store, Write};

/// A message before the store numbers it.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Everything but `seq`, which the store assigns.
    pub message: Message,
}

/// Where conversations live.
pub trait ConversationStore: Send + Sync + std::fmt::Debug {
    /// Writes a conversation (insert or replace).
    fn put_conversation(&self, conversation: &Conversation) -> Result<()>;
    /// One conversation.
    fn conversation(&self, id: &str) -> Result<Option<Conversation>>;
    /// Every conversation, oldest first.
    fn conversations(&self) -> Result<Vec<Conversation>>;
    /// Writes a queue entry (insert or replace).
    fn put_queue_entry(&self, entry: &QueueEntry) -> Result<()>;
    /// Removes a conversation's queue entry, if any.
    fn remove_queue_entry(&self, conversation: &str) -> Result<()>;
    /// Every queue entry.
    fn queue_entries(&self) -> Result<Vec<QueueEntry>>;
    /// A conversation's queue entry.
    fn queue_entry(&self, conversation: &str) -> Result<Option<QueueEntry>>;
    /// Appends a message with the next sequence number. When a message with the same `client_key` is
    /// already stored, returns that one and `false` instead (a resend after a reconnect).
    fn append_message(&self, conversation: &str, message: NewMessage) -> Result<(Message, bool)>;
    /// Messages with a sequence number above `after`, in order.
    fn messages_after(&self, conversation: &str, after: u64) -> Result<Vec<Message>>;
    /// Every message with its conversation id, for rebuilding the message index.
    fn all_messages(&self) -> Result<Vec<(String, Message)>>;
    /// How many messages are stored.
    fn message_count(&self) -> Result<u64>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<()>;
    /// Runs `work` as one unit of work (see `Store::in_transaction`): its writes commit together.
    fn in_transaction(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()>;
}

/// [`ConversationStore`] in the store's tables.
#[derive(Debug)]
pub struct StoredConversations {
    store: Store,
    /// Appends read the last sequence number and write the next: one at a time.
    append_lock: Mutex<()>,
}

impl StoredConversations {
    /// Conversations in `store`.
    pub fn new(store: Store) -> StoredConversations {
        StoredConversations {
            store,
            append_lock: Mutex::new(()),
        }
    }
}

fn message_prefix(conversation: &str) -> Vec<u8> {
    let mut prefix = conversation.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

fn message_key(conversation: &str, seq: u64) -> Vec<u8> {
    let mut key = message_prefix(conversation);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn client_key(conversation: &str, key: &str) -> Vec<u8> {
    let mut bytes = message_prefix(conversation);
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

impl ConversationStore for StoredConversations {
    fn put_conversation(&self, conversation: &Conversation) -> Result<()> {
        storage::put_json(&self.store.conversations, &conversation.id, conversation)
    }

    fn conversation(&self, id: &str) -> Result<Option<Conversation>> {
        storage::get_json(&self.store.conversations, id)
    }

    fn conversations(&self) -> Result<Vec<Conversation>> {
        let mut conversations: Vec<Conversation> = storage::scan_json(&self.store.conversations)?;
        conversations.sort_by_key(|conversation| conversation.created);
        Ok(conversations)
    }

    fn put_queue_entry(&self, entry: &QueueEntry) -> Result<()> {
        storage::put_json(&self.store.queue, &entry.conversation, entry)
    }

    fn remove_queue_entry(&self, conversation: &str) -> Result<()> {
        self.store.queue.remove(conversation)?;
        Ok(())
    }

    fn queue_entries(&self) -> Result<Vec<QueueEntry>> {
        storage::scan_json(&self.store.queue)
    }

    fn queue_entry(&self, conversation: &str) -> Result<Option<QueueEntry>> {
        storage::get_json(&self.store.queue, conversation)
    }

    fn append_message(&self, conversation: &str, new: NewMessage) -> Result<(Message, bool)> {
        let _guard = self.append_lock.lock();
        let mut message = new.message;
        if let Some(key) = &message.client_key {
            if let Some(seq) = self.store.message_keys.get(client_key(conversation, key))? {
                let seq = u64::from_be_bytes(seq.as_slice().try_into().unwrap_or([0; 8]));
                if let Some(mut existing) = storage::get_json::<Message>(
                    &self.store.messages,
                    message_key(conversation, seq),
                )? {
                    if existing.kind == SenderKind::Visitor {
                        existing.sender_name = message.sender_name;
                    }
                    return Ok((existing, false));
                }
            }
        }
        let last_seq = match self
            .store
            .messages
            .last_with_prefix(message_prefix(conversation))?
        {
            Some((key, _)) => {
                let seq_bytes = &key[key.len() - 8..];
                u64::from_be_bytes(seq_bytes.try_into().unwrap_or([0; 8]))
            }
            None => 0,
        };
        message.seq = last_seq + 1;
        let sender_name = if message.kind == SenderKind::Visitor {
            std::mem::take(&mut message.sender_name)
        } else {
            String::new()
        };
        let encoded = storage::encode(&message);
        if message.kind == SenderKind::Visitor {
            message.sender_name = sender_name;
        }
        // The client key first: a crash between the two writes (sled keeps their order) leaves a key
        // without its message, which a resend then stores; never a message a resend would duplicate.
        let mut writes = Vec::with_capacity(2);
        if let Some(key) = &message.client_key {
            writes.push(Write {
                table: &self.store.message_keys,
                key: client_key(conversation, key),
                value: Some(message.seq.to_be_bytes().to_vec()),
            });
        }
        writes.push(Write {
            table: &self.store.messages,
            key: message_key(conversation, message.seq),
            value: Some(encoded?),
        });
        self.store.write_all(&writes)?;
        Ok((message, true))
    }

    fn messages_after(&self, conversation: &str, after: u64) -> Result<Vec<Message>> {
        let start = message_key(conversation, after.saturating_add(1));
        let end = message_key(conversation, u64::MAX);
        let mut messages: Vec<Message> = self
            .store
            .messages
            .range(
                std::ops::Bound::Included(start),
                std::ops::Bound::Included(end),
            )?
            .into_iter()
            .map(|(_, value)| storage::decode(&value))
            .collect::<Result<_>>()?;
        if messages
            .iter()
            .any(|message| message.kind == SenderKind::Visitor)
        {
            let name = self.visitor_name(conversation)?;
            name_visitor_messages(&mut messages, &name);
        }
        Ok(messages)
    }

    fn all_messages(&self) -> Result<Vec<(String, Message)>> {
        let mut messages = Vec::new();
        let mut names: std::collections::HashMap<String, String> = Default::default();
        for (key, value) in self.store.messages.iter()? {
            let end = key.iter().position(|byte| *byte == 0).unwrap_or(key.len());
            let conversation = String::from_utf8_lossy(&key[..end]).into_owned();
            let mut message: Message = storage::decode(&value)?;
            if message.kind == SenderKind::Visitor {
                message.sender_name = match names.get(&conversation) {
                    Some(name) => name.clone(),
                    None => {
                        let name = self.visitor_name(&conversation)?;
                        names.insert(conversation.clone(), name.clone());
                        name
                    }
                };
            }
            messages.push((conversation, message));
        }
        Ok(messages)
    }

    fn message_count(&self) -> Result<u64> {
        Ok(self.store.messages.len()? as u64)
    }

    fn flush(&self) -> Result<()> {
        self.store.flush()
    }

    fn in_transaction(&self, work: &mut dyn FnMut() -> Result<()>) -> Result<()> {
        self.store.in_transaction(work)
    }
}

impl StoredConversations {
    /// The name of a conversation's visitor, as shown with their messages.
    fn visitor_name(&self, conversation: &str) -> Result<String> {
        Ok(self
            .conversation(conversation)?
            .as_ref()
            .map_or(VISITOR_NAME_UNKNOWN, |conversation| {
                conversation.visitor_name()
            })
            .to_string())
    }
}

/// Puts the visitor's name back on their messages (stored without it).
fn name_visitor_messages(messages: &mut [Message], name: &str) {
    for message in messages
        .iter_mut()
        .filter(|message| message.kind == SenderKind::Visitor)
    {
        message.sender_name = name.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SenderKind;

    fn message(body: &str, key: Option<&str>) -> NewMessage {
        NewMessage {
            message: Message {
                seq: 0,
                kind: SenderKind::Visitor,
                agent: None,
                sender_name: "访客".into(),
                body: body.into(),
                attachments: Vec::new(),
                at: jiff::Timestamp::UNIX_EPOCH,
                client_key: key.map(str::to_string),
            },
        }
    }

    #[test]
    fn messages_are_numbered_per_conversation_and_resends_are_recognised() {
        let folder = tempfile::tempdir().unwrap();
        let store = StoredConversations::new(Store::open(folder.path()).unwrap());
        let (first, new) = store
            .append_message("c_a", message("你好", Some("k1")))
            .unwrap();
        assert_eq!((first.seq, new), (1, true));
        let (second, _) = store
            .append_message("c_a", message("在吗", Some("k2")))
            .unwrap();
        assert_eq!(second.seq, 2);
        // A conversation whose id extends another's does not share its numbers.
        let (other, _) = store.append_message("c_ab", message("别的", None)).unwrap();
        assert_eq!(other.seq, 1);
        let (again, new) = store
            .append_message("c_a", message("你好", Some("k1")))
            .unwrap();
        assert_eq!((again.seq, new), (1, false));
        let bodies: Vec<String> = store
            .messages_after("c_a", 0)
            .unwrap()
            .into_iter()
            .map(|message| message.body)
            .collect();
        assert_eq!(bodies, ["你好", "在吗"]);
        assert_eq!(store.messages_after("c_a", 1).unwrap().len(), 1);
        assert!(store.messages_after("c_a", 2).unwrap().is_empty());
    }
}
