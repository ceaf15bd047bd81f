//! The knowledge base replicated through a JetStream key-value bucket (`kefu_kb`), so an article saved
//! through any node is searchable on every node.
//!
//! Each node keeps its own `kb/` folder and index; the bucket holds one entry per knowledge-base file
//! (every article `*.md`, and `_dict.txt`, `_synonyms.txt`, `_categories.txt`), valued with the file's
//! bytes, and a delete marker for a removed file. Other files in `kb/` stay local.
//!
//! **Keys.** A key is the file's path under `kb/` (UTF-8, `/`-separated, e.g. `returns/refund.md`) in
//! URL-safe base64 without padding ([`encode_key`], [`decode_key`]): NATS keys allow only
//! `[-/_=.A-Za-z0-9]`, and paths hold Chinese names. An entry whose key does not decode to a
//! knowledge-base path is ignored, so the bucket can never write outside `kb/`.
//!
//! **Start.** A node reads the whole bucket and makes its `kb/` match it: the bucket wins, so a file
//! that differs is overwritten and a file deleted there is removed. Then it puts the local files the
//! bucket has never seen (with `create` semantics, so two nodes starting at once do not overwrite each
//! other), and watches the bucket from there on, applying each change within a few tens of
//! milliseconds. A node that starts late catches up the same way.
//!
//! **Local changes.** [`KnowledgeService`] tells a [`KbChangeListener`] of every file saved, deleted
//! or edited on disk; the listener queues the change (bounded: when full, the change is logged,
//! counted and not replicated) and one task publishes it. Each publication names the revision the
//! local file was based on (`Nats-Expected-Last-Subject-Sequence`): when another node changed the file
//! first, the publication is refused, the other node's version wins and reaches this node through the
//! watch, so every node ends with the same bytes. Content the bucket already holds is not published
//! again, so a file written here from the bucket (and re-read by the file watcher) does not come back
//! as a new revision.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream;
use base64::Engine as _;
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Node;
use crate::articles::{
    is_knowledge_file, list_article_files, CATEGORIES_FILE, DICT_FILE, SYNONYMS_FILE,
};
use crate::services::{KbChangeListener, KnowledgeService};

/// The bucket's name.
pub const KB_BUCKET: &str = "kefu_kb";
/// Largest file replicated: articles are at most 1 MiB, and the server's `max_payload` may lower it.
const MAX_VALUE_BYTES: usize = 2 << 20;
/// Default bound of the whole bucket.
const DEFAULT_MAX_BUCKET_BYTES: i64 = 1 << 30;
/// Local changes waiting to be published.
const CHANGE_QUEUE: usize = 1024;
/// Bucket entries applied (and committed to the index) together.
const APPLY_BATCH: usize = 256;
/// How long the watch gathers entries arriving together before applying them: a burst of saves costs
/// one index commit, and a single save waits only this long.
const APPLY_GATHER: Duration = Duration::from_millis(30);
/// Longest wait for the next entry while reading the bucket at start.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(30);
/// Files read from disk at once when publishing the local files the bucket lacks.
const PUBLISH_CHUNK: usize = 64;
/// Retries of a publication the server refused for another reason than a conflict.
const MAX_REFUSED_RETRIES: u32 = 5;
/// Backoff between retries.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// The header a key-value delete marker carries.
const KV_OPERATION_HEADER: &str = "KV-Operation";

/// Where the knowledge base is replicated.
#[derive(Debug, Clone)]
pub struct KbSyncConfig {
    /// The bucket ([`KB_BUCKET`]; tests use their own).
    pub bucket: String,
    /// Bound of the bucket in bytes (1 GiB); puts beyond it are refused.
    pub max_bytes: i64,
}

impl Default for KbSyncConfig {
    fn default() -> KbSyncConfig {
        KbSyncConfig {
            bucket: KB_BUCKET.to_string(),
            max_bytes: DEFAULT_MAX_BUCKET_BYTES,
        }
    }
}

/// The knowledge base of this node kept in step with the bucket. Dropping it stops replication (the
/// listener registered with the [`KnowledgeService`] then does nothing).
#[derive(Debug)]
pub struct KbSync {
    bucket: String,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the listener, the publishing task and the watching task share.
#[derive(Debug)]
struct Shared {
    /// Newest revision of each path this node applied or published, with its content hash: what the
    /// local file is based on, and whether a local change is news to the bucket.
    known: Mutex<HashMap<String, Known>>,
    changes: mpsc::Sender<LocalChange>,
    dropped: AtomicU64,
    max_value_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Known {
    revision: u64,
    /// `None`: deleted.
    hash: Option<blake3::Hash>,
    /// This node published the revision: a later local change builds on it.
    ours: bool,
}

/// A local change waiting to be published.
#[derive(Debug)]
struct LocalChange {
    path: String,
    /// `None`: removed.
    content: Option<Vec<u8>>,
    hash: Option<blake3::Hash>,
    /// The revision the local file was based on when it changed (0: none).
    base_revision: u64,
}

/// The bucket and how to publish to it.
#[derive(Debug, Clone)]
struct Bucket {
    store: kv::Store,
    jetstream: async_nats::jetstream::Context,
}

impl KbSync {
    /// Replicates `knowledge` through the cluster's bucket, `<cluster name>_kb` (for the default name,
    /// [`KB_BUCKET`]); see [`KbSync::start_with`].
    pub async fn start(node: &Node, knowledge: Arc<KnowledgeService>) -> anyhow::Result<KbSync> {
        let config = KbSyncConfig {
            bucket: format!("{}_kb", node.cluster),
            ..KbSyncConfig::default()
        };
        KbSync::start_with(node, knowledge, config).await
    }

    /// Creates or opens the bucket, brings `kb/` in step with it (see the module docs), registers the
    /// change listener with `knowledge` and starts watching. Returns once the local knowledge base
    /// holds everything the bucket held at the call.
    ///
    /// Fails when the bucket cannot be opened or created, read within 30 s, or its files written.
    pub async fn start_with(
        node: &Node,
        knowledge: Arc<KnowledgeService>,
        config: KbSyncConfig,
    ) -> anyhow::Result<KbSync> {
        let started = Instant::now();
        // Headers take a few hundred bytes of the server's limit.
        let max_value_bytes =
            MAX_VALUE_BYTES.min(node.nats.server_info().max_payload.saturating_sub(1024));
        let bucket = Bucket {
            store: open_bucket(&node.jetstream, &config, max_value_bytes).await?,
            jetstream: node.jetstream.clone(),
        };
        let (changes, receiver) = mpsc::channel(CHANGE_QUEUE);
        let shared = Arc::new(Shared {
            known: Mutex::default(),
            changes,
            dropped: AtomicU64::new(0),
            max_value_bytes,
        });
        let caught_up = catch_up(&bucket.store, &knowledge, &shared)
            .await
            .with_context(|| format!("reading the knowledge-base bucket `{}`", config.bucket))?;
        knowledge.on_local_change(Arc::new(Listener(Arc::clone(&shared))));
        let publishing = tokio::spawn(publish_changes(
            bucket.clone(),
            Arc::clone(&shared),
            receiver,
        ));
        let published = publish_files_the_bucket_lacks(&bucket, &knowledge, &shared)
            .await
            .context("publishing the local knowledge base")?;
        let watching = tokio::spawn(watch_bucket(
            bucket.store.clone(),
            caught_up.watch,
            caught_up.last_revision,
            knowledge,
            Arc::clone(&shared),
        ));
        tracing::info!(
            bucket = %config.bucket,
            applied = caught_up.applied,
            published,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "knowledge base in step with the cluster"
        );
        Ok(KbSync {
            bucket: config.bucket,
            shared,
            tasks: vec![publishing, watching],
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Local changes not replicated because the queue was full (since start).
    pub fn dropped_changes(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for KbSync {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The bucket's key for a path under `kb/`: the path's UTF-8 bytes in URL-safe base64 without padding.
pub fn encode_key(relative_path: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(relative_path)
}

/// The path under `kb/` a key stands for, if it is a knowledge-base file (see [`is_knowledge_file`]).
pub fn decode_key(key: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key)
        .ok()?;
    let path = String::from_utf8(bytes).ok()?;
    is_knowledge_file(&path).then_some(path)
}

async fn open_bucket(
    jetstream: &async_nats::jetstream::Context,
    config: &KbSyncConfig,
    max_value_bytes: usize,
) -> anyhow::Result<kv::Store> {
    if let Ok(store) = jetstream.get_key_value(&config.bucket).await {
        return Ok(store);
    }
    // The stream `create_key_value` would make, made directly: that call first reads the account's
    // limits, whose reply from a 2.9 server async-nats 0.50 cannot parse.
    let created = jetstream
        .create_stream(stream::Config {
            name: format!("KV_{}", config.bucket),
            description: Some("kefu knowledge base: kb/ files by base64url path".to_string()),
            subjects: vec![format!("$KV.{}.>", config.bucket)],
            max_messages_per_subject: 1,
            max_bytes: config.max_bytes,
            max_message_size: i32::try_from(max_value_bytes).unwrap_or(i32::MAX),
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        })
        .await;
    let opened = jetstream.get_key_value(&config.bucket).await;
    match (created, opened) {
        (_, Ok(store)) => Ok(store),
        // Another node may have created it in between, with other limits: then opening works.
        (Err(error), Err(_)) => {
            Err(error).with_context(|| format!("creating the bucket `{}`", config.bucket))
        }
        (Ok(_), Err(error)) => {
            Err(error).with_context(|| format!("opening the bucket `{}`", config.bucket))
        }
    }
}

/// The bucket as read at start, and the watch that goes on from there.
struct CaughtUp {
    watch: kv::Watch,
    last_revision: u64,
    applied: usize,
}

/// Reads every entry of the bucket and applies it to `kb/`, in batches.
async fn catch_up(
    store: &kv::Store,
    knowledge: &Arc<KnowledgeService>,
    shared: &Arc<Shared>,
) -> anyhow::Result<CaughtUp> {
    let mut bucket_stream = store.stream.clone();
    let state = bucket_stream
        .info()
        .await
        .context("reading its state")?
        .state
        .clone();
    // The last value of every key, then every change after it: nothing falls between reading and
    // watching.
    let mut watch = store.watch_with_history(">").await.context("watching it")?;
    let mut last_revision = 0;
    let mut applied = 0;
    if state.messages > 0 {
        let mut batch = Vec::new();
        loop {
            let entry = tokio::time::timeout(CATCH_UP_TIMEOUT, watch.next())
                .await
                .context("timed out")?
                .context("the watch ended")?
                .context("reading an entry")?;
            last_revision = last_revision.max(entry.revision);
            let caught_up = entry.delta == 0 || entry.revision >= state.last_sequence;
            batch.push(entry);
            if caught_up || batch.len() >= APPLY_BATCH {
                applied += apply_entries(knowledge, shared, std::mem::take(&mut batch))
                    .await
                    .context("writing its files")?;
            }
            if caught_up {
                break;
            }
        }
    }
    Ok(CaughtUp {
        watch,
        last_revision,
        applied,
    })
}

/// Applies bucket entries to `kb/` and the index: for each path the newest entry not yet applied.
/// Returns how many files were applied.
async fn apply_entries(
    knowledge: &Arc<KnowledgeService>,
    shared: &Shared,
    entries: Vec<kv::Entry>,
) -> crate::error::Result<usize> {
    let mut newest: HashMap<String, (u64, Option<Vec<u8>>)> = HashMap::new();
    {
        let known = shared.known.lock();
        for entry in entries {
            let Some(path) = decode_key(&entry.key) else {
                tracing::warn!(key = %entry.key, "ignored a bucket entry that names no knowledge-base file");
                continue;
            };
            let already_applied = known
                .get(&path)
                .is_some_and(|known| known.revision >= entry.revision);
            if already_applied {
                continue;
            }
            let content = match entry.operation {
                kv::Operation::Put => Some(entry.value.to_vec()),
                kv::Operation::Delete | kv::Operation::Purge => None,
            };
            let newer = newest
                .get(&path)
                .is_none_or(|(revision, _)| *revision < entry.revision);
            if newer {
                newest.insert(path, (entry.revision, content));
            }
        }
    }
    if newest.is_empty() {
        return Ok(0);
    }
    let mut revisions = Vec::with_capacity(newest.len());
    let mut files = Vec::with_capacity(newest.len());
    for (path, (revision, content)) in newest {
        revisions.push((
            path.clone(),
            Known {
                revision,
                hash: content.as_deref().map(blake3::hash),
                ours: false,
            },
        ));
        files.push((path, content));
    }
    let count = files.len();
    let service = Arc::clone(knowledge);
    let report =
        crate::services::knowledge::run_blocking(move || service.apply_replicated(&files)).await?;
    // Recorded once written, never before: the file watcher may re-read a file this call just wrote
    // and tell it as a local change, which the publisher then recognises as the bucket's own content.
    let mut known = shared.known.lock();
    for (path, applied) in revisions {
        let newer = known
            .get(&path)
            .is_none_or(|current| current.revision < applied.revision);
        if newer {
            known.insert(path, applied);
        }
    }
    drop(known);
    if report.changed() {
        tracing::debug!(
            files = count,
            added = report.added,
            updated = report.updated,
            removed = report.removed,
            "knowledge-base changes from the cluster applied"
        );
    }
    Ok(count)
}

/// Applies the bucket's changes as they come, gathering those that arrive together.
async fn watch_bucket(
    store: kv::Store,
    mut watch: kv::Watch,
    mut last_revision: u64,
    knowledge: Arc<KnowledgeService>,
    shared: Arc<Shared>,
) {
    let mut retry_delay = FIRST_RETRY_DELAY;
    loop {
        let mut batch = Vec::new();
        let mut ended = false;
        match watch.next().await {
            Some(Ok(entry)) => batch.push(entry),
            Some(Err(error)) => {
                tracing::warn!(%error, "watching the knowledge-base bucket failed");
                // An error repeating at once would otherwise spin.
                tokio::time::sleep(FIRST_RETRY_DELAY).await;
            }
            None => ended = true,
        }
        if !batch.is_empty() {
            let gathered_until = tokio::time::Instant::now() + APPLY_GATHER;
            while batch.len() < APPLY_BATCH {
                match tokio::time::timeout_at(gathered_until, watch.next()).await {
                    Ok(Some(Ok(entry))) => batch.push(entry),
                    Ok(Some(Err(error))) => {
                        tracing::warn!(%error, "watching the knowledge-base bucket failed")
                    }
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            let newest = batch.iter().map(|entry| entry.revision).max().unwrap_or(0);
            match apply_entries(&knowledge, &shared, batch).await {
                Ok(_) => last_revision = last_revision.max(newest),
                // Left for the next start, which applies the whole bucket again.
                Err(error) => {
                    tracing::error!(%error, "applying knowledge-base changes from the cluster failed")
                }
            }
        }
        while ended {
            match store.watch_all_from_revision(last_revision + 1).await {
                Ok(resumed) => {
                    watch = resumed;
                    ended = false;
                    retry_delay = FIRST_RETRY_DELAY;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = retry_delay.as_millis() as u64, "watching the knowledge-base bucket again failed");
                    tokio::time::sleep(retry_delay).await;
                    retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
}

/// Tells the publishing task of local changes.
#[derive(Debug)]
struct Listener(Arc<Shared>);

impl KbChangeListener for Listener {
    fn changed(&self, relative_path: &str, content: Option<&[u8]>) {
        let shared = &self.0;
        if content.is_some_and(|bytes| bytes.len() > shared.max_value_bytes) {
            tracing::warn!(
                path = %relative_path,
                bytes = content.map_or(0, <[u8]>::len),
                max = shared.max_value_bytes,
                "knowledge-base file too large to replicate"
            );
            return;
        }
        let hash = content.map(blake3::hash);
        let base_revision = match shared.known.lock().get(relative_path) {
            Some(known) if known.hash == hash => return,
            Some(known) => known.revision,
            None if hash.is_none() => return,
            None => 0,
        };
        let change = LocalChange {
            path: relative_path.to_string(),
            content: content.map(<[u8]>::to_vec),
            hash,
            base_revision,
        };
        match shared.changes.try_send(change) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(change)) => {
                let dropped = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(path = %change.path, dropped, "knowledge-base change queue full, change not replicated");
            }
            // Replication stopped (the KbSync was dropped).
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Publishes the queued local changes one after the other.
async fn publish_changes(
    bucket: Bucket,
    shared: Arc<Shared>,
    mut receiver: mpsc::Receiver<LocalChange>,
) {
    while let Some(change) = receiver.recv().await {
        publish_change(&bucket, &shared, &change).await;
    }
}

/// Publishes one change unless the bucket already holds it or another node changed the file first;
/// retries while NATS cannot be reached. Returns whether a revision was written.
async fn publish_change(bucket: &Bucket, shared: &Shared, change: &LocalChange) -> bool {
    let subject = format!("{}{}", bucket.store.prefix, encode_key(&change.path));
    let mut retry_delay = FIRST_RETRY_DELAY;
    let mut refusals = 0;
    loop {
        let base_revision = match shared.known.lock().get(&change.path) {
            Some(known) if known.hash == change.hash => return false,
            // This node's own earlier change: the local file builds on it.
            Some(known) if known.ours => known.revision,
            Some(known) if known.revision > change.base_revision => {
                tracing::info!(path = %change.path, "knowledge-base file changed on another node first, its version is kept");
                return false;
            }
            None if change.hash.is_none() => return false,
            _ => change.base_revision,
        };
        let mut message = PublishMessage::build().expected_last_subject_sequence(base_revision);
        message = match &change.content {
            Some(bytes) => message.payload(bytes.clone().into()),
            None => message.header(KV_OPERATION_HEADER, "DEL"),
        };
        let published = match bucket
            .jetstream
            .send_publish(subject.clone(), message)
            .await
        {
            Ok(ack) => ack.await,
            Err(error) => Err(error),
        };
        let error = match published {
            Ok(ack) => {
                let mut known = shared.known.lock();
                let newer = known
                    .get(&change.path)
                    .is_none_or(|current| current.revision < ack.sequence);
                if newer {
                    known.insert(
                        change.path.clone(),
                        Known {
                            revision: ack.sequence,
                            hash: change.hash,
                            ours: true,
                        },
                    );
                }
                tracing::debug!(path = %change.path, revision = ack.sequence, deleted = change.hash.is_none(), "knowledge-base change published");
                return true;
            }
            Err(error) => error,
        };
        match error.kind() {
            PublishErrorKind::WrongLastSequence => {
                tracing::info!(path = %change.path, "knowledge-base file changed on another node first, its version is kept");
                return false;
            }
            PublishErrorKind::MaxPayloadExceeded => {
                tracing::error!(path = %change.path, %error, "knowledge-base file too large to replicate");
                return false;
            }
            // Refused by the server (over the bucket's limits…) or a broken client: not forever.
            PublishErrorKind::Other | PublishErrorKind::WrongLastMessageId => {
                refusals += 1;
                if refusals > MAX_REFUSED_RETRIES {
                    tracing::error!(path = %change.path, %error, "knowledge-base change not replicated");
                    return false;
                }
            }
            // NATS unreachable or slow: replication waits for it.
            PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::MaxAckPending => {}
        }
        tracing::warn!(path = %change.path, %error, retry_in_ms = retry_delay.as_millis() as u64, "publishing a knowledge-base change failed");
        tokio::time::sleep(retry_delay).await;
        retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// Puts the local files the bucket has never held (nor deleted). Returns how many were put.
async fn publish_files_the_bucket_lacks(
    bucket: &Bucket,
    knowledge: &KnowledgeService,
    shared: &Shared,
) -> anyhow::Result<usize> {
    let kb_dir = knowledge.kb_dir().to_path_buf();
    let listing_dir = kb_dir.clone();
    let mut paths = tokio::task::spawn_blocking(move || list_article_files(&listing_dir))
        .await
        .context("listing kb/")??
        .0;
    paths.extend(
        [DICT_FILE, SYNONYMS_FILE, CATEGORIES_FILE]
            .into_iter()
            .filter(|name| kb_dir.join(name).is_file())
            .map(str::to_string),
    );
    {
        let known = shared.known.lock();
        paths.retain(|path| !known.contains_key(path));
    }
    let mut published = 0;
    for chunk in paths.chunks(PUBLISH_CHUNK) {
        let chunk = chunk.to_vec();
        let folder = kb_dir.clone();
        let files = tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .filter_map(|path| {
                    let bytes = std::fs::read(folder.join(&path)).ok()?;
                    Some((path, bytes))
                })
                .collect::<Vec<_>>()
        })
        .await
        .context("reading kb/")?;
        for (path, bytes) in files {
            if bytes.len() > shared.max_value_bytes {
                tracing::warn!(path = %path, bytes = bytes.len(), "knowledge-base file too large to replicate");
                continue;
            }
            let change = LocalChange {
                path,
                hash: Some(blake3::hash(&bytes)),
                content: Some(bytes),
                base_revision: 0,
            };
            if publish_change(bucket, shared, &change).await {
                published += 1;
            }
        }
    }
    Ok(published)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_nats_keys_and_decode_to_knowledge_base_paths_only() {
        for path in [
            "returns/refund.md",
            "售后/退款流程.md",
            "_dict.txt",
            "a b/c.md",
        ] {
            let key = encode_key(path);
            assert!(
                key.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{key}"
            );
            assert_eq!(decode_key(&key).as_deref(), Some(path));
        }
        for outside in [
            "../etc/passwd.md",
            "/etc/x.md",
            "notes.txt",
            ".git/config",
            "_drafts/a.md",
        ] {
            assert_eq!(decode_key(&encode_key(outside)), None, "{outside}");
        }
        assert_eq!(decode_key("not base64!"), None);
    }
}
