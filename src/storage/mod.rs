//! The embedded database: one sled instance in the data folder, one tree per kind of record, values as
//! JSON. Services own the rules; this module only opens trees and reads and writes typed values.
//!
//! Depends on `domain` and `error` only, so a server database could replace it behind the same calls.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

mod conversations;

pub use conversations::{ConversationStore, NewMessage, SledConversationStore};

/// sled's page cache. Its default (1 GiB) let the server's memory grow with every message written;
/// the hot records (open conversations, sessions) are few and small.
const CACHE_BYTES: u64 = 32 << 20;
/// Folder under the data folder that holds the sled files.
const DB_FOLDER: &str = "db";

/// The opened database and its trees.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    /// Account id → `Account`.
    pub accounts: sled::Tree,
    /// Lower-cased username → account id.
    pub usernames: sled::Tree,
    /// Group id → `SkillGroup`.
    pub groups: sled::Tree,
    /// Hash of a session token → session record.
    pub sessions: sled::Tree,
    /// Sequence → `AuditEntry`.
    pub audit: sled::Tree,
    /// Sequence → `PresenceChange`.
    pub presence_log: sled::Tree,
    /// Account id → avatar bytes.
    pub avatars: sled::Tree,
    /// Hash of a visitor token → visitor grant.
    pub visitor_tokens: sled::Tree,
    /// Conversation id → `Conversation`.
    pub conversations: sled::Tree,
    /// Conversation id → `QueueEntry`.
    pub queue: sled::Tree,
    /// Conversation id, 0, seq → `Message`.
    pub messages: sled::Tree,
    /// Conversation id, 0, client key → seq (idempotent sends).
    pub message_keys: sled::Tree,
    /// Group id → routing settings.
    pub group_routing: sled::Tree,
    /// Conversation id, 0, content hash → attachment metadata.
    pub files: sled::Tree,
    /// Visitor id → files and bytes they uploaded (their quota).
    pub visitor_uploads: sled::Tree,
    /// Quick-reply id → `QuickReply`.
    pub quick_replies: sled::Tree,
    /// Quick-reply id → image bytes.
    pub reply_images: sled::Tree,
    /// Agent id, reply id → times the agent sent it.
    pub reply_usage: sled::Tree,
    /// `article:<id>` or `quick_reply:<id>` → suggestion feedback counters.
    pub assist_feedback: sled::Tree,
    /// Hash of a visitor token → the 16-byte hashes of the questions it posted a self-service outcome
    /// for (each counts once).
    pub deflection_outcomes: sled::Tree,
    /// Visitor id → `VisitorProfile`.
    pub visitors: sled::Tree,
    /// Visitor id, 0, sequence → `PageView`.
    pub page_views: sled::Tree,
    /// Block id → `Block`.
    pub blocks: sled::Tree,
    /// `v:<visitor id>` or `p:<site>:<user id>`, 0, conversation id → nothing: a visitor's and a verified
    /// person's conversations.
    pub visitor_conversations: sled::Tree,
    /// Webhook id → `Webhook`.
    pub webhooks: sled::Tree,
    /// Webhook id, delivery id → `Delivery`.
    pub webhook_deliveries: sled::Tree,
    /// Webhook id, delivery id → nothing: the deliveries still pending.
    pub webhook_queue: sled::Tree,
    /// Hour, scope → statistics tally; `pending`, scope → open work counts.
    pub stats: sled::Tree,
    /// Flags and small settings of the desk (e.g. that the starter quick replies were seeded).
    pub meta: sled::Tree,
}

impl Store {
    /// Opens (creating) the database under `data_dir`.
    ///
    /// Fails with [`Error::Storage`] when another process holds it, e.g. a running `kefu serve`.
    pub fn open(data_dir: &Path) -> Result<Store> {
        let path = data_dir.join(DB_FOLDER);
        std::fs::create_dir_all(&path).map_err(|error| Error::io(&path, error))?;
        let db = sled::Config::new()
            .path(&path)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|error| {
                Error::Storage(format!(
                    "cannot open the database in {} (is another kefu process using it?): {error}",
                    path.display()
                ))
            })?;
        Store::with_db(db)
    }

    fn with_db(db: sled::Db) -> Result<Store> {
        // Failed sign-ins were once kept here per username; they live in memory now (bounded), and
        // the old records would only take space.
        db.drop_tree("login_attempts")?;
        let tree = |name: &str| db.open_tree(name).map_err(Error::from);
        Ok(Store {
            accounts: tree("accounts")?,
            usernames: tree("usernames")?,
            groups: tree("groups")?,
            sessions: tree("sessions")?,
            audit: tree("audit")?,
            presence_log: tree("presence_log")?,
            avatars: tree("avatars")?,
            visitor_tokens: tree("visitor_tokens")?,
            conversations: tree("conversations")?,
            queue: tree("queue")?,
            messages: tree("messages")?,
            message_keys: tree("message_keys")?,
            group_routing: tree("group_routing")?,
            files: tree("files")?,
            visitor_uploads: tree("visitor_uploads")?,
            quick_replies: tree("quick_replies")?,
            reply_images: tree("reply_images")?,
            reply_usage: tree("reply_usage")?,
            meta: tree("meta")?,
            stats: tree("stats")?,
            webhooks: tree("webhooks")?,
            webhook_deliveries: tree("webhook_deliveries")?,
            webhook_queue: tree("webhook_queue")?,
            visitors: tree("visitors")?,
            page_views: tree("page_views")?,
            blocks: tree("blocks")?,
            visitor_conversations: tree("visitor_conversations")?,
            assist_feedback: tree("assist_feedback")?,
            deflection_outcomes: tree("deflection_outcomes")?,
            db,
        })
    }

    /// Bytes the database takes on disk (for metrics).
    ///
    /// Returns [`Error::Storage`] when the folder cannot be read.
    pub fn size_on_disk(&self) -> Result<u64> {
        Ok(self.db.size_on_disk()?)
    }

    /// A fresh id, unique for the life of the database.
    pub fn next_id(&self) -> Result<u64> {
        // sled starts at 0; ids start at 1 so that 0 never names a record.
        Ok(self.db.generate_id()? + 1)
    }

    /// Makes everything written so far durable. Called before acknowledging a change the user must not
    /// lose (accounts, passwords, audit entries).
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// Big-endian key of a numeric id, so keys sort in id order.
pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// Reads and decodes a JSON value.
pub fn get_json<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
) -> Result<Option<T>> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Encodes and writes a JSON value.
pub fn put_json<T: Serialize>(tree: &sled::Tree, key: impl AsRef<[u8]>, value: &T) -> Result<()> {
    tree.insert(key, encode(value)?)?;
    Ok(())
}

/// Changes a JSON value in place, atomically: `change` runs on the stored value (or the default) and
/// may run more than once when another writer got there first, so it must only change its argument.
/// Returns the value as stored.
pub fn update_json<T: Serialize + DeserializeOwned + Default>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
    mut change: impl FnMut(&mut T),
) -> Result<T> {
    let mut failure = None;
    let stored = tree.update_and_fetch(key, |old| {
        failure = None;
        let mut value = match old.map(decode::<T>).transpose() {
            Ok(value) => value.unwrap_or_default(),
            Err(error) => {
                // An undecodable record stays as it is, and the caller hears of it.
                failure = Some(error);
                return old.map(<[u8]>::to_vec);
            }
        };
        change(&mut value);
        match encode(&value) {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                failure = Some(error);
                old.map(<[u8]>::to_vec)
            }
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    stored.map_or_else(|| Ok(T::default()), |bytes| decode(&bytes))
}

/// Every value of a tree in key order, skipping none: a record that does not decode is an error.
pub fn scan_json<T: DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>> {
    tree.iter().values().map(|value| decode(&value?)).collect()
}

/// JSON bytes of a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|error| Error::Storage(format!("encoding a record: {error}")))
}

/// A value from JSON bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|error| Error::Storage(format!("decoding a stored record: {error}")))
}

impl From<sled::Error> for Error {
    fn from(error: sled::Error) -> Error {
        Error::Storage(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_ids_increase() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        let first = store.next_id().unwrap();
        let second = store.next_id().unwrap();
        assert!(first >= 1 && second > first);
        put_json(&store.groups, id_key(first), &"售后".to_string()).unwrap();
        let read: Option<String> = get_json(&store.groups, id_key(first)).unwrap();
        assert_eq!(read.as_deref(), Some("售后"));
        assert_eq!(scan_json::<String>(&store.groups).unwrap(), vec!["售后"]);
    }

    #[test]
    fn a_second_open_of_the_same_folder_is_a_clear_error() {
        let folder = tempfile::tempdir().unwrap();
        let _store = Store::open(folder.path()).unwrap();
        let error = Store::open(folder.path()).unwrap_err();
        assert!(
            error.to_string().contains("another kefu process"),
            "{error}"
        );
    }
}
