//! Full-text search over articles: normalisation ([`text`]), jieba and bigram tokenizers
//! ([`tokenizer`]), synonyms, the schema, query building and the on-disk index.
//!
//! Depends on `domain` and `articles`; knows nothing of HTTP or storage.

pub mod confidence;
mod index;
pub mod intent;
mod messages;
mod query;
mod replies;
mod schema;
mod snippet;
mod synonyms;
pub mod text;
pub mod tokenizer;

pub use confidence::{DocumentFrequency, HitText, JudgedText, MessageProfile};
pub use index::{
    IndexFingerprint, IndexedArticle, IndexedEntry, OpenOutcome, SearchHit, SearchIndex,
    SearchRequest, WriterOptions, INDEX_DICT_COPY, INDEX_SYNONYMS_COPY,
};
pub use intent::{classify, Intent};
pub use messages::{MessageHit, MessageIndex};
pub use query::{AnalyzedQuery, MAX_QUERY_TERMS};
pub use replies::{pinyin_prefixes, pinyin_spelling, ReplyHit, ReplyIndex, ReplyMatch};
pub use schema::{build_schema, Fields, SCHEMA_VERSION};
pub use synonyms::Synonyms;
pub use tokenizer::{Analyzer, DictionaryLineError};
