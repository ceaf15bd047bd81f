//! The channels' records behind [`ChannelRepository`]: the channels, their visitors, the link of a
//! conversation to its channel, the outbox of replies to WeChat, the `kf/sync_msg` cursors and the
//! inbox of 公众号 pushes answered but not yet handled. [`StoredChannels`] keeps them in the store's
//! tables.
//!
//! Keys, unchanged since these were first stored (ids and sequences big-endian):
//! - `channels`: channel id → `Channel`;
//! - `channel_visitors`: channel id, external id → `ChannelVisitor`;
//! - `channel_conversations`: conversation id → `ChannelLink`;
//! - `channel_outbox`: sequence → `OutboundItem`, so the outbox reads in the order queued;
//! - `channel_cursors`: channel id, `open_kfid` → the cursor (a JSON string);
//! - `channel_inbox`: sequence → `{"channel": id, "push": …}`.
//!
//! A kept push is JSON text here: its type belongs to the channels' WeChat code, above storage.

use serde::{Deserialize, Serialize};

use crate::domain::{Channel, ChannelLink, ChannelVisitor, OutboundItem};
use crate::error::{Error, Result};
use crate::storage::{self, id_key, Store};

/// A kept 公众号 push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// Its place in the inbox (arrival order).
    pub id: u64,
    /// The channel it came to.
    pub channel: u64,
    /// The push, as JSON.
    pub push_json: String,
}

/// Where the channels' records live.
pub trait ChannelRepository: Send + Sync + std::fmt::Debug {
    /// A fresh channel id.
    fn new_id(&self) -> Result<u64>;
    /// Every channel, in id order.
    fn channels(&self) -> Result<Vec<Channel>>;
    /// Writes a channel (insert or replace).
    fn put_channel(&self, channel: &Channel) -> Result<()>;
    /// Changes a stored channel atomically (a missing one stays missing); the channel as stored after.
    /// `change` may run more than once.
    fn change_channel(
        &self,
        id: u64,
        change: &mut dyn FnMut(&mut Channel),
    ) -> Result<Option<Channel>>;
    /// Removes a channel with its visitors, cursors, queued replies and kept pushes.
    fn remove_channel(&self, id: u64) -> Result<()>;
    /// Every channel's visitors.
    fn visitors(&self) -> Result<Vec<ChannelVisitor>>;
    /// The visitor `external_id` of `channel`.
    fn visitor(&self, channel: u64, external_id: &str) -> Result<Option<ChannelVisitor>>;
    /// Writes a visitor (insert or replace), under its channel and external id.
    fn put_visitor(&self, visitor: &ChannelVisitor) -> Result<()>;
    /// Changes a stored visitor atomically, as [`ChannelRepository::change_channel`].
    fn change_visitor(
        &self,
        channel: u64,
        external_id: &str,
        change: &mut dyn FnMut(&mut ChannelVisitor),
    ) -> Result<Option<ChannelVisitor>>;
    /// The channel and visitor of a conversation that came through a channel.
    fn link(&self, conversation: &str) -> Result<Option<ChannelLink>>;
    /// Links a conversation to its channel and visitor.
    fn put_link(&self, conversation: &str, link: &ChannelLink) -> Result<()>;
    /// Queues a reply at the end of the outbox.
    fn push_outbound(&self, item: &OutboundItem) -> Result<()>;
    /// The outbox, in the order queued, each item with its place.
    fn outbox(&self) -> Result<Vec<(u64, OutboundItem)>>;
    /// Rewrites the item at `place` (after an attempt).
    fn put_outbound(&self, place: u64, item: &OutboundItem) -> Result<()>;
    /// Takes the item at `place` off the outbox.
    fn remove_outbound(&self, place: u64) -> Result<()>;
    /// The `kf/sync_msg` cursor of a channel's account.
    fn cursor(&self, channel: u64, open_kfid: Option<&str>) -> Result<Option<String>>;
    /// Keeps the `kf/sync_msg` cursor of a channel's account.
    fn put_cursor(&self, channel: u64, open_kfid: Option<&str>, cursor: &str) -> Result<()>;
    /// Keeps a push (JSON) for `channel` at the end of the inbox; returns its place.
    fn keep_push(&self, channel: u64, push_json: &str) -> Result<u64>;
    /// Forgets a handled push.
    fn remove_push(&self, id: u64) -> Result<()>;
    /// The kept pushes, in arrival order.
    fn kept_pushes(&self) -> Result<Vec<InboxEntry>>;
}

/// [`ChannelRepository`] in the store's tables.
#[derive(Debug, Clone)]
pub struct StoredChannels {
    store: Store,
}

impl StoredChannels {
    /// The channels' records in `store`.
    pub fn new(store: &Store) -> StoredChannels {
        StoredChannels {
            store: store.clone(),
        }
    }
}

/// A kept push as read back: the push stays JSON.
#[derive(Serialize, Deserialize)]
struct InboxRecord {
    channel: u64,
    push: serde_json::Value,
}

fn visitor_key(channel: u64, external_id: &str) -> Vec<u8> {
    [&id_key(channel)[..], external_id.as_bytes()].concat()
}

fn cursor_key(channel: u64, open_kfid: Option<&str>) -> Vec<u8> {
    [
        &id_key(channel)[..],
        open_kfid.unwrap_or_default().as_bytes(),
    ]
    .concat()
}

impl ChannelRepository for StoredChannels {
    fn new_id(&self) -> Result<u64> {
        self.store.next_id()
    }

    fn channels(&self) -> Result<Vec<Channel>> {
        storage::scan_json(&self.store.channels)
    }

    fn put_channel(&self, channel: &Channel) -> Result<()> {
        storage::put_json(&self.store.channels, id_key(channel.id), channel)
    }

    fn change_channel(
        &self,
        id: u64,
        change: &mut dyn FnMut(&mut Channel),
    ) -> Result<Option<Channel>> {
        storage::update_existing_json(&self.store.channels, id_key(id), change)
    }

    fn remove_channel(&self, id: u64) -> Result<()> {
        for (key, value) in self.store.channel_outbox.iter()? {
            let item: OutboundItem = storage::decode(&value)?;
            if item.channel == id {
                self.store.channel_outbox.remove(key)?;
            }
        }
        for key in self.store.channel_visitors.scan_prefix_keys(id_key(id))? {
            self.store.channel_visitors.remove(key)?;
        }
        for key in self.store.channel_cursors.scan_prefix_keys(id_key(id))? {
            self.store.channel_cursors.remove(key)?;
        }
        for (key, value) in self.store.channel_inbox.iter()? {
            if storage::decode::<InboxRecord>(&value)?.channel == id {
                self.store.channel_inbox.remove(key)?;
            }
        }
        self.store.channels.remove(id_key(id))?;
        Ok(())
    }

    fn visitors(&self) -> Result<Vec<ChannelVisitor>> {
        storage::scan_json(&self.store.channel_visitors)
    }

    fn visitor(&self, channel: u64, external_id: &str) -> Result<Option<ChannelVisitor>> {
        storage::get_json(
            &self.store.channel_visitors,
            visitor_key(channel, external_id),
        )
    }

    fn put_visitor(&self, visitor: &ChannelVisitor) -> Result<()> {
        storage::put_json(
            &self.store.channel_visitors,
            visitor_key(visitor.channel, &visitor.external_id),
            visitor,
        )
    }

    fn change_visitor(
        &self,
        channel: u64,
        external_id: &str,
        change: &mut dyn FnMut(&mut ChannelVisitor),
    ) -> Result<Option<ChannelVisitor>> {
        storage::update_existing_json(
            &self.store.channel_visitors,
            visitor_key(channel, external_id),
            change,
        )
    }

    fn link(&self, conversation: &str) -> Result<Option<ChannelLink>> {
        storage::get_json(&self.store.channel_conversations, conversation)
    }

    fn put_link(&self, conversation: &str, link: &ChannelLink) -> Result<()> {
        storage::put_json(&self.store.channel_conversations, conversation, link)
    }

    fn push_outbound(&self, item: &OutboundItem) -> Result<()> {
        let place = self.store.next_id()?;
        storage::put_json(&self.store.channel_outbox, id_key(place), item)
    }

    fn outbox(&self) -> Result<Vec<(u64, OutboundItem)>> {
        self.store
            .channel_outbox
            .iter()?
            .into_iter()
            .map(|(key, value)| Ok((storage::id_of(&key), storage::decode(&value)?)))
            .collect()
    }

    fn put_outbound(&self, place: u64, item: &OutboundItem) -> Result<()> {
        storage::put_json(&self.store.channel_outbox, id_key(place), item)
    }

    fn remove_outbound(&self, place: u64) -> Result<()> {
        self.store.channel_outbox.remove(id_key(place))?;
        Ok(())
    }

    fn cursor(&self, channel: u64, open_kfid: Option<&str>) -> Result<Option<String>> {
        storage::get_json(&self.store.channel_cursors, cursor_key(channel, open_kfid))
    }

    fn put_cursor(&self, channel: u64, open_kfid: Option<&str>, cursor: &str) -> Result<()> {
        storage::put_json(
            &self.store.channel_cursors,
            cursor_key(channel, open_kfid),
            &cursor,
        )
    }

    fn keep_push(&self, channel: u64, push_json: &str) -> Result<u64> {
        // Checked, so that a kept push always reads back.
        serde_json::from_str::<serde_json::Value>(push_json)
            .map_err(|error| Error::Storage(format!("a push to keep is not JSON: {error}")))?;
        let place = self.store.next_id()?;
        // The bytes `{"channel":…,"push":…}` that serialising the record always gave.
        let record = format!("{{\"channel\":{channel},\"push\":{push_json}}}");
        self.store.channel_inbox.insert(id_key(place), record)?;
        Ok(place)
    }

    fn remove_push(&self, id: u64) -> Result<()> {
        self.store.channel_inbox.remove(id_key(id))?;
        Ok(())
    }

    fn kept_pushes(&self) -> Result<Vec<InboxEntry>> {
        self.store
            .channel_inbox
            .iter()?
            .into_iter()
            .map(|(key, value)| {
                let record: InboxRecord = storage::decode(&value)?;
                Ok(InboxEntry {
                    id: storage::id_of(&key),
                    channel: record.channel,
                    push_json: record.push.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_pushes_read_back_in_order_and_go_with_their_channel() {
        let store = Store::temporary().unwrap();
        let channels = StoredChannels::new(&store);
        let first = channels
            .keep_push(1, r#"{"FromUserName":"o_1","Content":"你好"}"#)
            .unwrap();
        let second = channels.keep_push(2, r#"{"Content":"在吗"}"#).unwrap();
        assert!(channels.keep_push(1, "not json").is_err());
        let kept = channels.kept_pushes().unwrap();
        assert_eq!(
            kept.iter()
                .map(|entry| (entry.id, entry.channel))
                .collect::<Vec<_>>(),
            [(first, 1), (second, 2)]
        );
        let push: serde_json::Value = serde_json::from_str(&kept[0].push_json).unwrap();
        assert_eq!(push["Content"], "你好");
        channels.remove_channel(1).unwrap();
        assert_eq!(channels.kept_pushes().unwrap().len(), 1);
        channels.remove_push(second).unwrap();
        assert!(channels.kept_pushes().unwrap().is_empty());
    }

    #[test]
    fn cursors_are_kept_per_account_of_a_channel() {
        let store = Store::temporary().unwrap();
        let channels = StoredChannels::new(&store);
        channels.put_cursor(1, Some("wk_a"), "c1").unwrap();
        channels.put_cursor(1, None, "c0").unwrap();
        assert_eq!(
            channels.cursor(1, Some("wk_a")).unwrap().as_deref(),
            Some("c1")
        );
        assert_eq!(channels.cursor(1, None).unwrap().as_deref(), Some("c0"));
        assert_eq!(channels.cursor(2, None).unwrap(), None);
        channels.remove_channel(1).unwrap();
        assert_eq!(channels.cursor(1, Some("wk_a")).unwrap(), None);
    }
}
