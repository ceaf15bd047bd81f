//! Quick replies behind [`QuickReplyRepository`]: the replies, their pictures and each agent's usage
//! counts. [`StoredQuickReplies`] keeps them in the store's tables.
//!
//! Keys, unchanged since these were first stored (ids big-endian):
//! - `quick_replies`: reply id → `QuickReply`;
//! - `reply_images`: reply id → the picture's bytes;
//! - `reply_usage`: agent id, reply id → times sent (u64 big-endian, not JSON).

use crate::domain::{AccountId, GroupId, QuickReply};
use crate::error::Result;
use crate::storage::{self, id_key, Store};

/// Where quick replies live.
pub trait QuickReplyRepository: Send + Sync + std::fmt::Debug {
    /// A fresh reply id.
    fn new_id(&self) -> Result<u64>;
    /// Every reply, in id order.
    fn replies(&self) -> Result<Vec<QuickReply>>;
    /// One reply.
    fn reply(&self, id: u64) -> Result<Option<QuickReply>>;
    /// Writes a reply (insert or replace).
    fn put_reply(&self, reply: &QuickReply) -> Result<()>;
    /// Removes a reply and its picture.
    fn remove_reply(&self, id: u64) -> Result<()>;
    /// Stores a reply's picture.
    fn put_image(&self, id: u64, bytes: &[u8]) -> Result<()>;
    /// A reply's picture.
    fn image(&self, id: u64) -> Result<Option<Vec<u8>>>;
    /// Times `agent` sent reply `id`.
    fn usage(&self, agent: AccountId, id: u64) -> Result<u64>;
    /// Counts one more use of reply `id` by `agent`, atomically.
    fn count_use(&self, agent: AccountId, id: u64) -> Result<()>;
    /// Whether the skill group a group reply is filed under exists.
    fn group_exists(&self, group: GroupId) -> Result<bool>;
}

/// [`QuickReplyRepository`] in the store's tables.
#[derive(Debug, Clone)]
pub struct StoredQuickReplies {
    store: Store,
}

impl StoredQuickReplies {
    /// Quick replies in `store`.
    pub fn new(store: &Store) -> StoredQuickReplies {
        StoredQuickReplies {
            store: store.clone(),
        }
    }
}

fn usage_key(agent: AccountId, id: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&agent.0.to_be_bytes());
    key[8..].copy_from_slice(&id.to_be_bytes());
    key
}

impl QuickReplyRepository for StoredQuickReplies {
    fn new_id(&self) -> Result<u64> {
        self.store.next_id()
    }

    fn replies(&self) -> Result<Vec<QuickReply>> {
        storage::scan_json(&self.store.quick_replies)
    }

    fn reply(&self, id: u64) -> Result<Option<QuickReply>> {
        storage::get_json(&self.store.quick_replies, id_key(id))
    }

    fn put_reply(&self, reply: &QuickReply) -> Result<()> {
        storage::put_json(&self.store.quick_replies, id_key(reply.id), reply)
    }

    fn remove_reply(&self, id: u64) -> Result<()> {
        self.store.quick_replies.remove(id_key(id))?;
        self.store.reply_images.remove(id_key(id))?;
        Ok(())
    }

    fn put_image(&self, id: u64, bytes: &[u8]) -> Result<()> {
        self.store.reply_images.insert(id_key(id), bytes)
    }

    fn image(&self, id: u64) -> Result<Option<Vec<u8>>> {
        self.store.reply_images.get(id_key(id))
    }

    fn usage(&self, agent: AccountId, id: u64) -> Result<u64> {
        Ok(self
            .store
            .reply_usage
            .get(usage_key(agent, id))?
            .map(|bytes| storage::id_of(&bytes))
            .unwrap_or(0))
    }

    fn count_use(&self, agent: AccountId, id: u64) -> Result<()> {
        self.store
            .reply_usage
            .update_and_fetch(usage_key(agent, id), |old| {
                let count = old.map(storage::id_of).unwrap_or(0);
                Some((count + 1).to_be_bytes().to_vec())
            })?;
        Ok(())
    }

    fn group_exists(&self, group: GroupId) -> Result<bool> {
        self.store.groups.contains_key(id_key(group.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_counted_per_agent_and_reply_from_several_threads() {
        let store = Store::temporary().unwrap();
        let replies = StoredQuickReplies::new(&store);
        let (amy, ben) = (AccountId(1), AccountId(2));
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        replies.count_use(amy, 7).unwrap();
                    }
                });
            }
        });
        replies.count_use(ben, 7).unwrap();
        assert_eq!(replies.usage(amy, 7).unwrap(), 100);
        assert_eq!(replies.usage(ben, 7).unwrap(), 1);
        assert_eq!(replies.usage(amy, 8).unwrap(), 0);
    }

    #[test]
    fn removing_a_reply_removes_its_picture() {
        let store = Store::temporary().unwrap();
        let replies = StoredQuickReplies::new(&store);
        replies.put_image(3, b"png").unwrap();
        assert_eq!(replies.image(3).unwrap().as_deref(), Some(&b"png"[..]));
        replies.remove_reply(3).unwrap();
        assert!(replies.image(3).unwrap().is_none());
        assert!(!replies.group_exists(GroupId(3)).unwrap());
    }
}
