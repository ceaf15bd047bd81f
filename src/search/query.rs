//! Turning visitor text into a tantivy query: jieba words and CJK characters and bigrams against every text field
//! with per-field boosts, plus synonym expansion. The text is never handed to tantivy's query parser,
//! so `"`, `:`, `AND` or `*` are just characters.

use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use super::schema::Fields;
use super::synonyms::Synonyms;
use super::tokenizer::{query_ngrams, Analyzer};

/// At most this many distinct words (and as many n-grams) of a query are searched, which bounds the
/// cost of a pasted page of text.
pub const MAX_QUERY_TERMS: usize = 64;

/// How much a single shared character counts relative to a shared bigram. Paraphrases of short questions
/// share characters far more often than bigrams (删除/删掉, 延期/延后), and BM25 already discounts
/// common characters. Measured MRR@10 on the relevance set: ×1 0.4370, ×2 0.4482, ×3 0.4491, ×4 0.4468.
const UNIGRAM_WEIGHT: f32 = 2.5;

/// How much a synonym counts relative to the word the visitor typed.
const SYNONYM_WEIGHT: f32 = 0.8;

/// Field boosts for jieba words: a hit in the title or a similar question says far more than one in the body.
///
/// Measured on the shared relevance set (title + body articles): title 1.5 beat 1.0, 2.0 and 3.0; the
/// other fields do not occur there and are weighted by analogy (similar questions are titles in all but name).
fn word_fields(fields: &Fields) -> [(Field, f32); 7] {
    [
        (fields.title, 1.5),
        (fields.questions, 1.5),
        (fields.keywords, 1.5),
        (fields.tags, 1.0),
        (fields.headings, 1.0),
        (fields.category_text, 0.5),
        (fields.body, 1.0),
    ]
}

/// Field boosts for CJK characters and bigrams: they match paraphrases that share characters but not
/// jieba words (删除/删掉, 帐单/账单 share 删, 单), which is most of what short questions differ in.
/// Without them MRR@10 on the relevance set drops from 0.438 to 0.384.
fn ngram_fields(fields: &Fields) -> [(Field, f32); 3] {
    [
        (fields.title_ngram, 1.5),
        (fields.questions_ngram, 1.5),
        (fields.body_ngram, 0.5),
    ]
}

/// The analysed form of a query.
#[derive(Debug, Clone, Default)]
pub struct AnalyzedQuery {
    /// Distinct jieba words, normalised.
    pub words: Vec<String>,
    /// Synonyms added for those words.
    pub synonyms: Vec<String>,
    /// Distinct CJK characters and bigrams (and Latin words).
    pub ngrams: Vec<String>,
}

impl AnalyzedQuery {
    /// Analyses `text`; words and n-grams are capped at [`MAX_QUERY_TERMS`].
    pub fn new(analyzer: &Analyzer, synonyms: &Synonyms, text: &str) -> AnalyzedQuery {
        let mut words = analyzer.query_words(text);
        words.truncate(MAX_QUERY_TERMS);
        let mut ngrams = query_ngrams(text);
        ngrams.truncate(MAX_QUERY_TERMS);
        let expansions = synonyms.expand(&words);
        AnalyzedQuery {
            words,
            synonyms: expansions,
            ngrams,
        }
    }

    /// Whether nothing searchable is left (empty or punctuation-only text).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.ngrams.is_empty()
    }

    /// The scoring query: a disjunction of boosted term queries.
    pub fn to_query(&self, fields: &Fields) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut add = |field: Field, text: &str, boost: f32| {
            let term_query = TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::WithFreqs,
            );
            clauses.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(term_query), boost)),
            ));
        };
        for (field, boost) in word_fields(fields) {
            for word in &self.words {
                add(field, word, boost);
            }
            for synonym in &self.synonyms {
                add(field, synonym, boost * SYNONYM_WEIGHT);
            }
        }
        for (field, boost) in ngram_fields(fields) {
            for ngram in &self.ngrams {
                let factor = if ngram.chars().count() == 1 {
                    UNIGRAM_WEIGHT
                } else {
                    1.0
                };
                add(field, ngram, boost * factor);
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }
}
