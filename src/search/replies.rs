//! Search over quick replies: shortcut codes, keywords (jieba words and CJK bigrams of title, content
//! and tags) and pinyin of the title, full spelling or initials (`tuikuan` and `tk` both find 退款).
//!
//! Quick replies are few (thousands) and kept in the store; this index lives in memory and is rebuilt at
//! start. Pinyin is indexed as the prefixes of every syllable-aligned suffix (申请退款: `sh`, `shenq`,
//! `tuik`, `tuikuan`, … and `s`, `sq`, `sqt`, `tk`, …), so a typed prefix of any run of syllables is a
//! single term lookup.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

use pinyin::ToPinyin;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, INDEXED, STORED,
    STRING,
};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::text::normalize;
use super::tokenizer::{
    query_ngrams, Analyzer, JiebaTokenizer, NgramTokenizer, JIEBA_TOKENIZER, NGRAM_TOKENIZER,
};
use crate::domain::QuickReply;
use crate::error::Result;

/// Longest pinyin prefix indexed, in letters.
const MAX_PINYIN_PREFIX: usize = 24;
/// Heap of the in-memory writer.
const WRITER_HEAP_BYTES: usize = 15 << 20;

/// How a reply matched, best first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReplyMatch {
    /// The query is the reply's shortcut.
    ShortcutExact,
    /// The query starts the reply's shortcut.
    ShortcutPrefix,
    /// The title matched (words or pinyin).
    Title,
    /// Only the content or tags matched.
    Content,
}

/// A matched reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyHit {
    /// The reply.
    pub id: u64,
    /// How it matched.
    pub matched: ReplyMatch,
    /// BM25 score within its kind of match.
    pub score: f32,
}

#[derive(Debug, Clone, Copy)]
struct ReplyFields {
    id: Field,
    scope: Field,
    title: Field,
    title_ngram: Field,
    pinyin: Field,
    body: Field,
    body_ngram: Field,
}

/// The quick-reply index.
pub struct ReplyIndex {
    writer: Mutex<IndexWriter>,
    reader: IndexReader,
    fields: ReplyFields,
    analyzer: Arc<Analyzer>,
    /// Lower-cased shortcut → (reply id, scope key), for prefix matches without the index.
    shortcuts: Mutex<HashMap<u64, (String, String)>>,
}

impl std::fmt::Debug for ReplyIndex {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ReplyIndex").finish_non_exhaustive()
    }
}

impl ReplyIndex {
    /// An empty in-memory index.
    pub fn new(analyzer: Arc<Analyzer>) -> Result<ReplyIndex> {
        let mut builder = Schema::builder();
        let text = |tokenizer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(tokenizer)
                    .set_index_option(IndexRecordOption::WithFreqs),
            )
        };
        let fields = ReplyFields {
            id: builder.add_u64_field("id", INDEXED | STORED),
            scope: builder.add_text_field("scope", STRING),
            title: builder.add_text_field("title", text(JIEBA_TOKENIZER)),
            title_ngram: builder.add_text_field("title_ngram", text(NGRAM_TOKENIZER)),
            pinyin: builder.add_text_field("pinyin", STRING),
            body: builder.add_text_field("body", text(JIEBA_TOKENIZER)),
            body_ngram: builder.add_text_field("body_ngram", text(NGRAM_TOKENIZER)),
        };
        let index = Index::create_in_ram(builder.build());
        index
            .tokenizers()
            .register(JIEBA_TOKENIZER, JiebaTokenizer::new(Arc::clone(&analyzer)));
        index.tokenizers().register(NGRAM_TOKENIZER, NgramTokenizer);
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(ReplyIndex {
            writer: Mutex::new(writer),
            reader,
            fields,
            analyzer,
            shortcuts: Mutex::new(HashMap::new()),
        })
    }

    /// Adds or replaces replies and makes them searchable.
    pub fn upsert(&self, replies: &[QuickReply]) -> Result<()> {
        {
            let mut writer = self.writer.lock();
            let mut shortcuts = self.shortcuts.lock();
            for reply in replies {
                writer.delete_term(Term::from_field_u64(self.fields.id, reply.id));
                writer.add_document(self.document(reply))?;
                match &reply.shortcut {
                    Some(shortcut) => {
                        shortcuts.insert(reply.id, (shortcut.to_lowercase(), reply.scope.key()));
                    }
                    None => {
                        shortcuts.remove(&reply.id);
                    }
                }
            }
            writer.commit()?;
        }
        self.reader.reload()?;
        Ok(())
    }

    /// Whether another reply than `except` in scope `scope_key` has shortcut `code`.
    pub fn shortcut_taken(&self, scope_key: &str, code: &str, except: Option<u64>) -> bool {
        self.shortcuts.lock().iter().any(|(id, (shortcut, scope))| {
            Some(*id) != except && scope == scope_key && shortcut == code
        })
    }

    /// Records a reply's shortcut before the reply is indexed (an import checks duplicates row by row
    /// and indexes the rows together at the end).
    pub fn remember_shortcut(&self, reply: &QuickReply) {
        if let Some(shortcut) = &reply.shortcut {
            self.shortcuts
                .lock()
                .insert(reply.id, (shortcut.to_lowercase(), reply.scope.key()));
        }
    }

    /// Removes a reply.
    pub fn remove(&self, id: u64) -> Result<()> {
        {
            let mut writer = self.writer.lock();
            writer.delete_term(Term::from_field_u64(self.fields.id, id));
            writer.commit()?;
        }
        self.shortcuts.lock().remove(&id);
        self.reader.reload()?;
        Ok(())
    }

    fn document(&self, reply: &QuickReply) -> TantivyDocument {
        let mut document = TantivyDocument::default();
        document.add_u64(self.fields.id, reply.id);
        document.add_text(self.fields.scope, reply.scope.key());
        document.add_text(self.fields.title, &reply.title);
        document.add_text(self.fields.title_ngram, &reply.title);
        for prefix in pinyin_prefixes(&reply.title) {
            document.add_text(self.fields.pinyin, prefix);
        }
        let body = format!("{}\n{}", reply.content, reply.tags.join(" "));
        document.add_text(self.fields.body, &body);
        document.add_text(self.fields.body_ngram, &body);
        document
    }

    /// Replies in `scopes` (scope keys) matching `text`, best first: shortcut matches, then title
    /// matches, then content matches; BM25 within each.
    pub fn search(&self, text: &str, scopes: &[String], limit: usize) -> Result<Vec<ReplyHit>> {
        let query_text = text.trim();
        if query_text.is_empty() || scopes.is_empty() {
            return Ok(Vec::new());
        }
        let mut hits: HashMap<u64, ReplyHit> = HashMap::new();
        let mut keep = |hit: ReplyHit| {
            let better = hits.get(&hit.id).is_none_or(|current| {
                (hit.matched, -hit.score) < (current.matched, -current.score)
            });
            if better {
                hits.insert(hit.id, hit);
            }
        };

        let lowered = query_text.to_lowercase();
        let shortcut_query = if lowered.starts_with('/') {
            lowered.clone()
        } else {
            format!("/{lowered}")
        };
        for (id, (shortcut, scope)) in self.shortcuts.lock().iter() {
            if !scopes.contains(scope) {
                continue;
            }
            let matched = if *shortcut == shortcut_query {
                ReplyMatch::ShortcutExact
            } else if shortcut.starts_with(&shortcut_query) {
                ReplyMatch::ShortcutPrefix
            } else {
                continue;
            };
            keep(ReplyHit {
                id: *id,
                matched,
                score: 0.0,
            });
        }

        let searcher = self.reader.searcher();
        let scope_filter = || -> Box<dyn Query> {
            Box::new(BooleanQuery::new(
                scopes
                    .iter()
                    .map(|scope| {
                        let term = Term::from_field_text(self.fields.scope, scope);
                        let query: Box<dyn Query> =
                            Box::new(TermQuery::new(term, IndexRecordOption::Basic));
                        (Occur::Should, query)
                    })
                    .collect(),
            ))
        };
        let words = self.analyzer.query_words(query_text);
        let grams: Vec<String> = query_ngrams(query_text)
            .into_iter()
            .filter(|gram| gram.chars().count() == 2)
            .collect();
        let pinyin_key: String = normalize(query_text)
            .text
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .collect();
        let term_clause = |field: Field, text: &str, boost: f32| -> (Occur, Box<dyn Query>) {
            let term = Term::from_field_text(field, text);
            let query = TermQuery::new(term, IndexRecordOption::WithFreqs);
            (
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(query), boost)),
            )
        };
        let mut title_clauses = Vec::new();
        let mut body_clauses = Vec::new();
        for word in &words {
            title_clauses.push(term_clause(self.fields.title, word, 1.0));
            body_clauses.push(term_clause(self.fields.body, word, 1.0));
        }
        for gram in &grams {
            title_clauses.push(term_clause(self.fields.title_ngram, gram, 0.5));
            body_clauses.push(term_clause(self.fields.body_ngram, gram, 0.5));
        }
        // Pinyin only for what could be pinyin: Latin letters, the whole query.
        if !pinyin_key.is_empty() && pinyin_key.len() == query_text.trim_start_matches('/').len() {
            title_clauses.push(term_clause(self.fields.pinyin, &pinyin_key, 2.0));
        }
        for (clauses, matched) in [
            (title_clauses, ReplyMatch::Title),
            (body_clauses, ReplyMatch::Content),
        ] {
            if clauses.is_empty() {
                continue;
            }
            let query = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>,
                ),
                (Occur::Must, scope_filter()),
            ]);
            let top = searcher.search(
                &query,
                &TopDocs::with_limit(limit.max(1) * 2).order_by_score(),
            )?;
            for (score, address) in top {
                let document: TantivyDocument = searcher.doc(address)?;
                if let Some(id) = document
                    .get_first(self.fields.id)
                    .and_then(|value| value.as_u64())
                {
                    keep(ReplyHit { id, matched, score });
                }
            }
        }
        let mut ranked: Vec<ReplyHit> = hits.into_values().collect();
        ranked.sort_by(|left, right| {
            left.matched
                .cmp(&right.matched)
                .then(right.score.total_cmp(&left.score))
                .then(left.id.cmp(&right.id))
        });
        Ok(ranked)
    }
}

/// A name's full pinyin without tones and its initials (`小美` → `xiaomei`, `xm`), for finding people and
/// groups by what agents type; Latin letters and digits are kept lower-cased, anything else dropped.
pub fn pinyin_spelling(name: &str) -> (String, String) {
    let mut full = String::new();
    let mut initials = String::new();
    for character in name.chars() {
        if let Some(pinyin) = character.to_pinyin() {
            full.push_str(pinyin.plain());
            initials.extend(pinyin.plain().chars().next());
        } else if character.is_ascii_alphanumeric() {
            full.push(character.to_ascii_lowercase());
            initials.push(character.to_ascii_lowercase());
        }
    }
    (full, initials)
}

/// Prefixes (up to [`MAX_PINYIN_PREFIX`] letters) of every syllable-aligned suffix of the title's
/// full pinyin and of its initials.
pub fn pinyin_prefixes(title: &str) -> Vec<String> {
    let syllables: Vec<&'static str> = title
        .to_pinyin()
        .flatten()
        .map(|pinyin| pinyin.plain())
        .collect();
    if syllables.is_empty() {
        return Vec::new();
    }
    let mut prefixes = std::collections::BTreeSet::new();
    for start in 0..syllables.len() {
        let full: String = syllables[start..].concat();
        let initials: String = syllables[start..]
            .iter()
            .filter_map(|syllable| syllable.chars().next())
            .collect();
        for text in [full, initials] {
            let letters: Vec<char> = text.chars().collect();
            for end in 1..=letters.len().min(MAX_PINYIN_PREFIX) {
                prefixes.insert(letters[..end].iter().collect::<String>());
            }
        }
    }
    prefixes.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, ReplyScope};

    fn reply(
        id: u64,
        title: &str,
        content: &str,
        shortcut: Option<&str>,
        scope: ReplyScope,
    ) -> QuickReply {
        QuickReply {
            id,
            scope,
            title: title.into(),
            content: content.into(),
            category: "售后".into(),
            shortcut: shortcut.map(str::to_string),
            tags: vec!["退款".into()],
            image: None,
            created_by: AccountId(1),
            updated: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn names_are_spelt_in_pinyin_and_initials() {
        assert_eq!(
            pinyin_spelling("小美"),
            ("xiaomei".to_string(), "xm".to_string())
        );
        assert_eq!(
            pinyin_spelling("Amy 王2"),
            ("amywang2".to_string(), "amyw2".to_string())
        );
    }

    #[test]
    fn pinyin_prefixes_cover_full_spelling_and_initials_of_every_syllable_run() {
        let prefixes = pinyin_prefixes("申请退款");
        for wanted in ["shenqingtuikuan", "tuikuan", "tuik", "sqtk", "tk", "qt"] {
            assert!(
                prefixes.contains(&wanted.to_string()),
                "{wanted}: {prefixes:?}"
            );
        }
        assert!(!prefixes.contains(&"kt".to_string()));
    }

    #[test]
    fn shortcuts_pinyin_and_words_find_replies_only_in_allowed_scopes() {
        let index = ReplyIndex::new(Arc::new(Analyzer::new())).unwrap();
        index
            .upsert(&[
                reply(
                    1,
                    "申请退款流程",
                    "在订单详情页点击申请退款",
                    Some("/sqtk"),
                    ReplyScope::Team,
                ),
                reply(
                    2,
                    "发票开具",
                    "订单完成后可申请电子发票",
                    Some("/fp"),
                    ReplyScope::Team,
                ),
                reply(
                    3,
                    "我的退款话术",
                    "亲，退款已提交",
                    Some("/tk"),
                    ReplyScope::Personal {
                        owner: AccountId(9),
                    },
                ),
            ])
            .unwrap();
        let team = vec!["team".to_string()];
        let ids = |query: &str, scopes: &[String]| -> Vec<(u64, ReplyMatch)> {
            index
                .search(query, scopes, 10)
                .unwrap()
                .into_iter()
                .map(|hit| (hit.id, hit.matched))
                .collect()
        };
        assert_eq!(ids("/sqtk", &team)[0], (1, ReplyMatch::ShortcutExact));
        assert_eq!(ids("/sq", &team)[0], (1, ReplyMatch::ShortcutPrefix));
        assert_eq!(ids("tk", &team)[0], (1, ReplyMatch::Title));
        assert_eq!(ids("tuikuan", &team)[0], (1, ReplyMatch::Title));
        assert_eq!(ids("发票", &team)[0].0, 2);
        assert_eq!(ids("电子发票", &team)[0].0, 2);
        // The personal reply is only found by its owner's scopes.
        assert!(ids("/tk", &team).iter().all(|(id, _)| *id != 3));
        let mine = vec!["team".to_string(), "personal:9".to_string()];
        assert_eq!(ids("/tk", &mine)[0], (3, ReplyMatch::ShortcutExact));
        index.remove(1).unwrap();
        assert!(ids("tuikuan", &team).iter().all(|(id, _)| *id != 1));
    }
}
