//! Where records live: [`Store`] opens the installation's database (the embedded sled by default,
//! PostgreSQL when configured) as one [`Table`] per kind of record, keyed by bytes in sorted order,
//! values as JSON. Services own the rules; this module only reads and writes typed values.
//!
//! Depends on `domain`, `config` and `error` only. Nothing outside `storage` names sled or SQL.

use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{StorageBackend, StorageConfig};
use crate::error::{Error, Result};

mod accounts;
mod assist;
mod blobs;
mod channels;
mod conversations;
mod files;
pub(crate) mod postgres;
mod quick_replies;
mod settings;
mod stats;
mod table;
pub mod transfer;
mod unit_of_work;
mod visitors;
mod webhooks;

pub use accounts::{AccountRepository, AuditRepository, SessionRepository, StoredAccounts};
pub use assist::{AssistRepository, OutcomeRecord, StoredAssist, QUESTION_HASH_BYTES};
pub use blobs::Blobs;
pub use channels::{ChannelRepository, InboxEntry, StoredChannels};
pub use conversations::{ConversationStore, NewMessage, StoredConversations};
pub use files::{FileRepository, StoredFiles};
pub use quick_replies::{QuickReplyRepository, StoredQuickReplies};
pub use settings::{SettingsRepository, StoredSettings};
pub use stats::{PendingSlot, StatsRepository, StoredStats};
pub use table::{Record, Table};
pub use unit_of_work::UnitOfWork;
pub use visitors::{ConversationOwner, StoredVisitors, VisitorRepository, VisitorTokenRepository};
pub use webhooks::{QueuedDelivery, StoredWebhooks, WebhookRepository};

use postgres::PgPool;

/// sled's page cache. Its default (1 GiB) let the server's memory grow with every message written;
/// the hot records (open conversations, sessions) are few and small.
const CACHE_BYTES: u64 = 32 << 20;
/// Folder under the data folder that holds the sled files.
const DB_FOLDER: &str = "db";
/// `meta` key of the number added to sled's id generator, so ids continue after an import.
const ID_BASE_KEY: &[u8] = b"id_base";

/// The database behind the tables.
#[derive(Debug, Clone)]
enum Backend {
    Sled(sled::Db),
    Postgres(Arc<PgPool>),
}

/// A write of [`Store::write_all`]: `value` under `key` in `table`, or removal when `None`.
#[derive(Debug)]
pub struct Write<'a> {
    /// The table written.
    pub table: &'a Table,
    /// The record's key.
    pub key: Vec<u8>,
    /// The new value; `None` removes the record.
    pub value: Option<Vec<u8>>,
}

macro_rules! tables {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// The opened database and its tables.
        #[derive(Debug, Clone)]
        pub struct Store {
            backend: Backend,
            /// Added to sled's generated ids (0 on PostgreSQL, which has its own sequence).
            id_base: u64,
            $( $(#[$doc])* pub(in crate::storage) $name: Table, )*
        }

        impl Store {
            fn with_tables(backend: Backend, open: impl Fn(&'static str) -> Result<Table>) -> Result<Store> {
                Ok(Store {
                    backend,
                    id_base: 0,
                    $( $name: open(stringify!($name))?, )*
                })
            }

            /// Every table with its name, for export and import.
            pub fn tables(&self) -> Vec<(&'static str, &Table)> {
                vec![$( (stringify!($name), &self.$name), )*]
            }

            /// The table `name` as raw keys and bytes: for export and import, and for tests that look
            /// at what is stored. Services go through the repositories.
            pub fn table(&self, name: &str) -> Option<&Table> {
                match name {
                    $( stringify!($name) => Some(&self.$name), )*
                    _ => None,
                }
            }
        }
    };
}

tables! {
    /// Account id → `Account`.
    accounts,
    /// Lower-cased username → account id.
    usernames,
    /// Group id → `SkillGroup`.
    groups,
    /// Hash of a session token → session record.
    sessions,
    /// Sequence → `AuditEntry`.
    audit,
    /// Sequence → `PresenceChange`.
    presence_log,
    /// Account id → avatar bytes.
    avatars,
    /// Hash of a visitor token → visitor grant.
    visitor_tokens,
    /// Conversation id → `Conversation`.
    conversations,
    /// Conversation id → `QueueEntry`.
    queue,
    /// Conversation id, 0, seq → `Message`.
    messages,
    /// Conversation id, 0, client key → seq (idempotent sends).
    message_keys,
    /// Group id → routing settings.
    group_routing,
    /// Conversation id, 0, content hash → attachment metadata.
    files,
    /// Content hash → the file's bytes (PostgreSQL; the embedded store keeps them as files).
    file_bytes,
    /// Visitor id → files and bytes they uploaded (their quota).
    visitor_uploads,
    /// Quick-reply id → `QuickReply`.
    quick_replies,
    /// Quick-reply id → image bytes.
    reply_images,
    /// Agent id, reply id → times the agent sent it.
    reply_usage,
    /// `article:<id>` or `quick_reply:<id>` → suggestion feedback counters.
    assist_feedback,
    /// Hash of a visitor token → the 16-byte hashes of the questions it posted a self-service outcome
    /// for (each counts once).
    deflection_outcomes,
    /// Visitor id → `VisitorProfile`.
    visitors,
    /// Visitor id, 0, sequence → `PageView`.
    page_views,
    /// Block id → `Block`.
    blocks,
    /// `v:<visitor id>` or `p:<site>:<user id>`, 0, conversation id → nothing: a visitor's and a verified
    /// person's conversations.
    visitor_conversations,
    /// Webhook id → `Webhook`.
    webhooks,
    /// Webhook id, delivery id → `Delivery`.
    webhook_deliveries,
    /// Webhook id, delivery id → nothing: the deliveries still pending.
    webhook_queue,
    /// Hour, scope → statistics tally; `pending`, scope → open work counts.
    stats,
    /// Flags and small settings of the desk (e.g. that the starter quick replies were seeded).
    meta,
    /// Channel id → `Channel` (API, 公众号, 微信客服).
    channels,
    /// Channel id, external id (OpenID, `external_userid`, the app's user id) → `ChannelVisitor`.
    channel_visitors,
    /// Conversation id → `ChannelLink`: the channel and visitor of a conversation that came through
    /// one.
    channel_conversations,
    /// Sequence → `OutboundItem`: replies waiting to be sent to WeChat, in order.
    channel_outbox,
    /// Channel id, `open_kfid` → the `kf/sync_msg` cursor (微信客服), so no message is read twice
    /// or missed across restarts.
    channel_cursors,
    /// Sequence → a 公众号 push answered but not handled yet (handled at the next start after a
    /// crash).
    channel_inbox,
}

impl Store {
    /// Opens (creating) the embedded database under `data_dir`.
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
        // Failed sign-ins were once kept here per username; they live in memory now (bounded), and
        // the old records would only take space.
        db.drop_tree("login_attempts")?;
        let tree_db = db.clone();
        let mut store = Store::with_tables(Backend::Sled(db), |name| {
            Ok(Table::sled(tree_db.open_tree(name)?))
        })?;
        store.id_base = match store.meta.get(ID_BASE_KEY)? {
            Some(bytes) => id_of(&bytes),
            None => 0,
        };
        Ok(store)
    }

    /// A throw-away embedded database, for unit tests of the repositories and services.
    pub fn temporary() -> Result<Store> {
        let db = sled::Config::new().temporary(true).open()?;
        let tree_db = db.clone();
        Store::with_tables(Backend::Sled(db), |name| {
            Ok(Table::sled(tree_db.open_tree(name)?))
        })
    }

    /// Opens the database `config` names: sled under `data_dir`, or PostgreSQL (migrating its schema
    /// to this version).
    ///
    /// Fails with [`Error::Storage`] when the database cannot be opened or reached.
    pub fn open_configured(config: &StorageConfig, data_dir: &Path) -> Result<Store> {
        match config.backend {
            StorageBackend::Sled => Store::open(data_dir),
            StorageBackend::Postgres => {
                let url = config.postgres_url.as_deref().ok_or_else(|| {
                    Error::Storage(
                        "storage.backend is postgres but storage.postgres_url is not set \
                         (KEFU_STORAGE__POSTGRES_URL)"
                            .into(),
                    )
                })?;
                let pool = PgPool::connect(url, config.postgres_connections)?;
                let tables_pool = Arc::clone(&pool);
                Store::with_tables(Backend::Postgres(pool), |name| {
                    Ok(Table::postgres(postgres::PgTable::new(
                        name,
                        Arc::clone(&tables_pool),
                    )))
                })
            }
        }
    }

    /// `sled` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sled(_) => "sled",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Where uploaded files' bytes live: files under `data_dir` with sled, a table with PostgreSQL
    /// (so every node sees them).
    pub fn blobs(&self, data_dir: &Path) -> Blobs {
        match self.backend {
            Backend::Sled(_) => Blobs::on_disk(data_dir.join("files")),
            Backend::Postgres(_) => Blobs::in_table(self.file_bytes.clone()),
        }
    }

    /// Bytes the database takes on disk (for metrics).
    ///
    /// Returns [`Error::Storage`] when the folder or the server cannot be read.
    pub fn size_on_disk(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sled(db) => Ok(db.size_on_disk()?),
            Backend::Postgres(pool) => pool.run(|client| {
                let bytes: i64 = client
                    .query_one(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint \
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                         WHERE n.nspname = current_schema() AND c.relkind = 'r'",
                        &[],
                    )?
                    .get(0);
                Ok(u64::try_from(bytes).unwrap_or(0))
            }),
        }
    }

    /// A fresh id, unique for the life of the database.
    pub fn next_id(&self) -> Result<u64> {
        match &self.backend {
            // sled starts at 0; ids start at 1 so that 0 never names a record.
            Backend::Sled(db) => Ok(self.id_base + db.generate_id()? + 1),
            Backend::Postgres(pool) => pool.run(|client| {
                let id: i64 = client.query_one("SELECT nextval('kefu_ids')", &[])?.get(0);
                Ok(u64::try_from(id).unwrap_or(0))
            }),
        }
    }

    /// Makes ids continue above `floor` (after an import).
    pub fn raise_ids_above(&mut self, floor: u64) -> Result<()> {
        match &self.backend {
            Backend::Sled(db) => {
                let next = self.id_base + db.generate_id()? + 1;
                if next <= floor {
                    self.id_base += floor - next + 1;
                    self.meta.insert(ID_BASE_KEY, self.id_base.to_be_bytes())?;
                }
                Ok(())
            }
            Backend::Postgres(pool) => {
                let floor = i64::try_from(floor).unwrap_or(i64::MAX);
                pool.run(move |client| {
                    client.execute(
                        "SELECT setval('kefu_ids', greatest($1, (SELECT last_value FROM kefu_ids)))",
                        &[&floor],
                    )?;
                    Ok(())
                })
            }
        }
    }

    /// Makes everything written so far durable. Called before acknowledging a change the user must not
    /// lose (accounts, passwords, audit entries). PostgreSQL commits each write before answering, so
    /// there is nothing left to do there.
    pub fn flush(&self) -> Result<()> {
        match &self.backend {
            Backend::Sled(db) => {
                db.flush()?;
                Ok(())
            }
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Applies `writes` all or none: in one transaction on PostgreSQL; on sled in the order given,
    /// which its log keeps, so a crash leaves a prefix of them (callers order writes so that any
    /// prefix is safe).
    pub fn write_all(&self, writes: &[Write<'_>]) -> Result<()> {
        match &self.backend {
            Backend::Sled(_) => {
                for write in writes {
                    match &write.value {
                        Some(value) => write.table.insert(&write.key, value)?,
                        None => {
                            write.table.remove(&write.key)?;
                        }
                    }
                }
                Ok(())
            }
            Backend::Postgres(pool) => {
                // Inside a transaction already: the statements join it (a nested BEGIN would not).
                let nested = pool.in_scope();
                let statements = writes
                    .iter()
                    .map(|write| {
                        let name = write
                            .table
                            .as_postgres()
                            .map(postgres::PgTable::name)
                            .ok_or_else(|| {
                                Error::Internal(
                                    "a write_all on PostgreSQL names a sled table".into(),
                                )
                            })?;
                        let sql = match write.value {
                            Some(_) => postgres::upsert_sql(name),
                            None => format!("DELETE FROM {name} WHERE key = $1"),
                        };
                        Ok((sql, write.key.clone(), write.value.clone()))
                    })
                    .collect::<Result<Vec<(String, Vec<u8>, Option<Vec<u8>>)>>>()?;
                pool.run(move |client| {
                    if nested {
                        for (sql, key, value) in &statements {
                            match value {
                                Some(value) => client.execute(sql.as_str(), &[key, value])?,
                                None => client.execute(sql.as_str(), &[key])?,
                            };
                        }
                        return Ok(());
                    }
                    let mut transaction = client.transaction()?;
                    for (sql, key, value) in &statements {
                        match value {
                            Some(value) => transaction.execute(sql.as_str(), &[key, value])?,
                            None => transaction.execute(sql.as_str(), &[key])?,
                        };
                    }
                    transaction.commit()?;
                    Ok(())
                })
            }
        }
    }

    /// Runs `work` as one unit of work: on PostgreSQL every read and write this thread makes through
    /// the store joins one transaction, committed when `work` succeeds and rolled back when it fails;
    /// on sled the writes go to its log in order and the next flush makes them durable together.
    pub fn in_transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sled(_) => work(),
            Backend::Postgres(pool) => pool.in_transaction(work),
        }
    }

    /// As [`Store::in_transaction`], for counters only: on PostgreSQL the commit does not wait for the
    /// WAL flush (a crash of the database server may lose the last moments of counts, never
    /// half a unit); on sled the same as `in_transaction`.
    pub fn in_relaxed_transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        match &self.backend {
            Backend::Sled(_) => work(),
            Backend::Postgres(pool) => pool.in_relaxed_transaction(work),
        }
    }

    /// Fails with [`crate::Error::NoLeader`] unless the desk lease still has `epoch`. Called at the
    /// start of every desk turn of a cluster's leader, inside the turn's transaction: the row is read
    /// `FOR SHARE`, so a node taking over (which bumps the epoch) waits for turns in flight, and every
    /// later turn of the old leader fails instead of writing beside the new one. Always passes on sled.
    pub fn check_desk_epoch(&self, epoch: i64) -> Result<()> {
        let Backend::Postgres(pool) = &self.backend else {
            return Ok(());
        };
        let current: i64 = pool.run(|client| {
            Ok(client
                .query_one(
                    "SELECT epoch FROM kefu_desk_lease WHERE id = 1 FOR SHARE",
                    &[],
                )?
                .get(0))
        })?;
        if current == epoch {
            Ok(())
        } else {
            Err(crate::Error::NoLeader(format!(
                "this node no longer leads the desk (epoch {epoch}, now {current}); try again"
            )))
        }
    }

    /// Closes the connections (PostgreSQL); the embedded database closes when its last handle drops.
    pub fn close(&self) {
        if let Backend::Postgres(pool) = &self.backend {
            pool.close();
        }
    }
}

/// Big-endian key of a numeric id, so keys sort in id order.
pub fn id_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The number [`id_key`] wrote (ids, counters, sequence numbers); 0 for bytes of another length.
pub(crate) fn id_of(bytes: &[u8]) -> u64 {
    bytes.try_into().map_or(0, u64::from_be_bytes)
}

/// Reads and decodes a JSON value.
pub fn get_json<T: DeserializeOwned>(tree: &Table, key: impl AsRef<[u8]>) -> Result<Option<T>> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(decode(&bytes)?)),
        None => Ok(None),
    }
}

/// Encodes and writes a JSON value.
pub fn put_json<T: Serialize>(tree: &Table, key: impl AsRef<[u8]>, value: &T) -> Result<()> {
    tree.insert(key, encode(value)?)?;
    Ok(())
}

/// Changes a JSON value in place, atomically: `change` runs on the stored value (or the default) and
/// may run more than once when another writer got there first, so it must only change its argument.
/// Returns the value as stored.
pub fn update_json<T: Serialize + DeserializeOwned + Default>(
    tree: &Table,
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

/// Changes the record under `key` atomically when there is one (a missing one stays missing); the
/// record as stored after. `change` may run more than once when another writer got there first. An
/// undecodable record stays as it is, and the caller hears of it.
pub(crate) fn update_existing_json<T: Serialize + DeserializeOwned>(
    table: &Table,
    key: impl AsRef<[u8]>,
    change: &mut dyn FnMut(&mut T),
) -> Result<Option<T>> {
    let mut failure = None;
    let stored = table.update_and_fetch(key, |old| {
        failure = None;
        let old = old?;
        let outcome = decode::<T>(old).and_then(|mut value| {
            change(&mut value);
            encode(&value)
        });
        match outcome {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                failure = Some(error);
                Some(old.to_vec())
            }
        }
    })?;
    if let Some(error) = failure {
        return Err(error);
    }
    stored.map(|bytes| decode(&bytes)).transpose()
}

/// Every value of a tree in key order, skipping none: a record that does not decode is an error.
pub fn scan_json<T: DeserializeOwned>(tree: &Table) -> Result<Vec<T>> {
    tree.iter()?
        .into_iter()
        .map(|(_, value)| decode(&value))
        .collect()
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
    fn every_table_of_the_store_is_created_by_the_postgres_migrations() {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        let names: Vec<&str> = store.tables().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, postgres::TABLES);
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
