//! Full-text search over conversation messages (历史记录), in its own tantivy index under the data
//! folder. It is derived: rebuilt from the stored messages when missing, from another schema version,
//! or holding a different number of messages than the store (a crash between a message and its commit).
//!
//! Bodies are indexed twice, like articles: jieba words (search mode) and CJK characters and bigrams.
//!
//! Adding is idempotent: each message carries the key `{conversation}:{seq}`, and adding a message
//! replaces any document with its key, so a message that arrives twice (the desk, then the cluster's
//! message log; a redelivery) is indexed once.

use parking_lot::Mutex;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, INDEXED, STORED, STRING,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::tokenizer::{
    query_ngrams, Analyzer, JiebaTokenizer, NgramTokenizer, JIEBA_TOKENIZER, NGRAM_TOKENIZER,
};
use crate::domain::Message;
use crate::error::{Error, Result};

/// Bump when the schema changes: the index is rebuilt. 2: the `key` field.
const MESSAGE_SCHEMA_VERSION: u32 = 2;
const VERSION_FILE: &str = "kefu-messages-version";
/// Queued messages that trigger a commit.
const COMMIT_AFTER_MESSAGES: usize = 2000;
/// Longest time a queued message waits for a commit (searches commit at once).
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_secs(60);
/// Heap of the message writer: messages are short.
const WRITER_HEAP_BYTES: usize = 15 << 20;

/// A message that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageHit {
    /// Its conversation.
    pub conversation: String,
    /// Its sequence number.
    pub seq: u64,
    /// BM25 score.
    pub score: f32,
}

#[derive(Debug, Clone, Copy)]
struct MessageFields {
    /// `{conversation}:{seq}`, unique per message: what makes adding idempotent.
    key: tantivy::schema::Field,
    conversation: tantivy::schema::Field,
    seq: tantivy::schema::Field,
    body: tantivy::schema::Field,
    body_ngram: tantivy::schema::Field,
}

fn schema() -> (Schema, MessageFields) {
    let mut builder = Schema::builder();
    let text = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        )
    };
    let fields = MessageFields {
        key: builder.add_text_field("key", STRING),
        conversation: builder.add_text_field("conversation", STRING | STORED),
        seq: builder.add_u64_field("seq", INDEXED | STORED | FAST),
        body: builder.add_text_field("body", text(JIEBA_TOKENIZER)),
        body_ngram: builder.add_text_field("body_ngram", text(NGRAM_TOKENIZER)),
    };
    (builder.build(), fields)
}

/// The unique key of a message in the index.
fn message_key(conversation: &str, seq: u64) -> String {
    format!("{conversation}:{seq}")
}

/// Messages added and not yet committed.
#[derive(Default)]
struct Pending {
    /// Each with its key, to replace an earlier copy at commit.
    documents: Vec<(String, TantivyDocument)>,
    /// Commits that have taken pending documents so far: the next one to take is `taken + 1`.
    taken: u64,
}

/// The message index.
pub struct MessageIndex {
    _index: Index,
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    fields: MessageFields,
    analyzer: Arc<Analyzer>,
    /// Messages waiting for the next commit. Adding only queues, so a sender never waits for a commit
    /// (which holds the writer for tens of milliseconds).
    pending: Mutex<Pending>,
    /// The last commit (numbered as [`Pending::taken`]) that is durable and searchable.
    committed: AtomicU64,
    dirty: AtomicBool,
    last_commit: Mutex<std::time::Instant>,
}

impl std::fmt::Debug for MessageIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MessageIndex")
            .finish_non_exhaustive()
    }
}

impl MessageIndex {
    /// Opens the index in `directory`; when it is missing, stale or does not hold `stored_messages`
    /// messages, rebuilds it from `all_messages` (conversation id, message).
    pub fn open(
        directory: &Path,
        analyzer: Arc<Analyzer>,
        stored_messages: u64,
        all_messages: impl FnOnce() -> Result<Vec<(String, Message)>>,
    ) -> Result<MessageIndex> {
        std::fs::create_dir_all(directory).map_err(|error| Error::io(directory, error))?;
        let (schema, fields) = schema();
        let version_ok = std::fs::read_to_string(directory.join(VERSION_FILE))
            .is_ok_and(|text| text.trim() == MESSAGE_SCHEMA_VERSION.to_string());
        let existing = if version_ok {
            Index::open_in_dir(directory).ok()
        } else {
            None
        };
        let (index, rebuild) = match existing {
            Some(index) => (index, false),
            None => {
                clear(directory)?;
                (Index::create_in_dir(directory, schema)?, true)
            }
        };
        index
            .tokenizers()
            .register(JIEBA_TOKENIZER, JiebaTokenizer::new(Arc::clone(&analyzer)));
        index.tokenizers().register(NGRAM_TOKENIZER, NgramTokenizer);
        // One indexing thread: messages arrive a few at a time, and each thread keeps its own arena.
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let message_index = MessageIndex {
            _index: index,
            writer: Mutex::new(writer),
            reader,
            fields,
            analyzer,
            pending: Mutex::default(),
            committed: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
            last_commit: Mutex::new(std::time::Instant::now()),
        };
        let indexed = message_index.reader.searcher().num_docs();
        if rebuild || indexed != stored_messages {
            tracing::info!(indexed, stored_messages, "rebuilding the message index");
            message_index.rebuild(all_messages()?)?;
        }
        std::fs::write(
            directory.join(VERSION_FILE),
            MESSAGE_SCHEMA_VERSION.to_string(),
        )
        .map_err(|error| Error::io(directory, error))?;
        Ok(message_index)
    }

    fn rebuild(&self, messages: Vec<(String, Message)>) -> Result<()> {
        {
            let mut writer = self.writer.lock();
            writer.delete_all_documents()?;
            for (conversation, message) in &messages {
                writer.add_document(self.document(conversation, message))?;
            }
            writer.commit()?;
        }
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, conversation: &str, message: &Message) -> TantivyDocument {
        let mut document = TantivyDocument::default();
        document.add_text(self.fields.key, message_key(conversation, message.seq));
        document.add_text(self.fields.conversation, conversation);
        document.add_u64(self.fields.seq, message.seq);
        document.add_text(self.fields.body, &message.body);
        document.add_text(self.fields.body_ngram, &message.body);
        document
    }

    /// Queues a stored message; searchable after the next [`MessageIndex::commit`]. Adding a message
    /// again (same conversation and seq) replaces the earlier copy.
    pub fn add(&self, conversation: &str, message: &Message) -> Result<()> {
        let document = self.document(conversation, message);
        let key = message_key(conversation, message.seq);
        self.pending.lock().documents.push((key, document));
        self.dirty.store(true, Ordering::Release);
        Ok(())
    }

    /// A ticket for everything added so far: [`MessageIndex::is_committed`] says when all of it is
    /// durable, so a consumer of a message log acknowledges a message only once a crash cannot lose it.
    pub fn commit_ticket(&self) -> u64 {
        self.pending.lock().taken + 1
    }

    /// Whether everything added before [`MessageIndex::commit_ticket`] returned `ticket` is committed.
    pub fn is_committed(&self, ticket: u64) -> bool {
        self.committed.load(Ordering::Acquire) >= ticket
    }

    /// Commits when enough waits or the last commit is old; searches commit first anyway, so history
    /// search never misses a message. Every commit costs tantivy a fresh segment writer (measured:
    /// committing every second grew the server by ~4 MiB/s), so the desk commits rarely.
    pub fn commit_if_due(&self) -> Result<()> {
        let waiting = self.pending.lock().documents.len();
        let last = *self.last_commit.lock();
        if waiting >= COMMIT_AFTER_MESSAGES || (waiting > 0 && last.elapsed() >= COMMIT_AFTER) {
            self.commit()?;
        }
        Ok(())
    }

    /// Indexes and commits queued messages, if any, and makes them searchable. Blocking: call it off
    /// the async workers.
    pub fn commit(&self) -> Result<()> {
        *self.last_commit.lock() = std::time::Instant::now();
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        {
            // Taken under the writer lock, so commits finish in the order they took their documents
            // and `committed` never runs ahead of what is on disk.
            let mut writer = self.writer.lock();
            let (documents, ticket) = {
                let mut pending = self.pending.lock();
                pending.taken += 1;
                (std::mem::take(&mut pending.documents), pending.taken)
            };
            for (key, document) in documents {
                // A delete only hides documents added before it, so the copy added next survives.
                writer.delete_term(Term::from_field_text(self.fields.key, &key));
                writer.add_document(document)?;
            }
            writer.commit()?;
            self.committed.fetch_max(ticket, Ordering::AcqRel);
        }
        self.reader.reload()?;
        Ok(())
    }

    /// Messages matching `text`, best first: any jieba word or CJK character/bigram of it.
    pub fn search(&self, text: &str, limit: usize) -> Result<Vec<MessageHit>> {
        self.commit()?;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for word in self.analyzer.query_words(text).into_iter().take(32) {
            let term = Term::from_field_text(self.fields.body, &word);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
            ));
        }
        for gram in query_ngrams(text).into_iter().take(32) {
            if gram.chars().count() < 2 {
                // Single characters match nearly every message of a long history.
                continue;
            }
            let term = Term::from_field_text(self.fields.body_ngram, &gram);
            clauses.push((
                Occur::Should,
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
            ));
        }
        if clauses.is_empty() {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let query = BooleanQuery::new(clauses);
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let document: TantivyDocument = searcher.doc(address)?;
            let conversation = document
                .get_first(self.fields.conversation)
                .and_then(|value| value.as_str())
                .unwrap_or_default()
                .to_string();
            let seq = document
                .get_first(self.fields.seq)
                .and_then(|value| value.as_u64())
                .unwrap_or_default();
            hits.push(MessageHit {
                conversation,
                seq,
                score,
            });
        }
        Ok(hits)
    }

    /// Documents in the index, for checks.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Empties a message-index folder before a rebuild.
fn clear(directory: &Path) -> Result<()> {
    for entry in std::fs::read_dir(directory).map_err(|error| Error::io(directory, error))? {
        let path = entry.map_err(|error| Error::io(directory, error))?.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|error| Error::io(&path, error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SenderKind;

    fn message(seq: u64, body: &str) -> Message {
        Message {
            seq,
            kind: SenderKind::Visitor,
            agent: None,
            sender_name: "访客".into(),
            body: body.into(),
            attachments: Vec::new(),
            at: jiff::Timestamp::UNIX_EPOCH,
            client_key: None,
        }
    }

    #[test]
    fn messages_are_found_by_words_and_the_index_rebuilds_when_it_lags() {
        let folder = tempfile::tempdir().unwrap();
        let analyzer = Arc::new(Analyzer::new());
        let stored = vec![
            ("c_1".to_string(), message(1, "我想申请退款")),
            ("c_2".to_string(), message(1, "发票抬头写错了")),
        ];
        let index = MessageIndex::open(folder.path(), Arc::clone(&analyzer), 2, || {
            Ok(stored.clone())
        })
        .unwrap();
        assert_eq!(index.len(), 2);
        let hits = index.search("退款进度", 10).unwrap();
        assert_eq!(hits[0].conversation, "c_1");
        index.add("c_3", &message(1, "退款还没到账")).unwrap();
        assert_eq!(index.search("到账", 10).unwrap()[0].conversation, "c_3");
        assert!(index.search("！！", 10).unwrap().is_empty());
        drop(index);
        // The store holds one more message than the index: rebuilt from the store.
        let mut more = stored.clone();
        more.push(("c_3".to_string(), message(1, "退款还没到账")));
        more.push(("c_4".to_string(), message(1, "物流一直没有更新")));
        let reopened = MessageIndex::open(folder.path(), analyzer, 4, || Ok(more)).unwrap();
        assert_eq!(reopened.len(), 4);
        assert_eq!(reopened.search("物流", 10).unwrap()[0].conversation, "c_4");
    }

    #[test]
    fn adding_a_message_again_keeps_one_copy() {
        let folder = tempfile::tempdir().unwrap();
        let index = MessageIndex::open(folder.path(), Arc::new(Analyzer::new()), 0, || {
            Ok(Vec::new())
        })
        .unwrap();
        // Twice before a commit, and once more after it, as the desk and a message log would.
        index.add("c_1", &message(1, "发票抬头写错了")).unwrap();
        index.add("c_1", &message(1, "发票抬头写错了")).unwrap();
        index.add("c_1", &message(2, "发票什么时候开")).unwrap();
        let ticket = index.commit_ticket();
        assert!(!index.is_committed(ticket));
        index.commit().unwrap();
        assert!(index.is_committed(ticket));
        index.add("c_1", &message(1, "发票抬头写错了")).unwrap();
        // Another conversation's message with the same seq is another message.
        index.add("c_2", &message(1, "发票抬头写错了")).unwrap();
        let hits = index.search("发票抬头", 10).unwrap();
        let mut found: Vec<(String, u64)> = hits
            .into_iter()
            .map(|hit| (hit.conversation, hit.seq))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                ("c_1".to_string(), 1),
                ("c_1".to_string(), 2),
                ("c_2".to_string(), 1)
            ]
        );
        assert_eq!(index.len(), 3);
    }
}
