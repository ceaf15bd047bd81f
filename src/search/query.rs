//! Turning visitor text into a tantivy query: jieba words and CJK bigrams against every text field
//! with per-field boosts, plus synonym expansion. The text is never handed to tantivy's query parser,
//! so `"`, `:`, `AND` or `*` are just characters.

use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::Term;

use super::schema::Fields;
use super::synonyms::Synonyms;
use super::tokenizer::{query_bigrams, Analyzer};

/// At most this many distinct words (and as many bigrams) of a query are searched, which bounds the
/// cost of a pasted page of text.
pub const MAX_QUERY_TERMS: usize = 64;

/// How much a synonym counts relative to the word the visitor typed.
const SYNONYM_WEIGHT: f32 = 0.8;

/// Field boosts for jieba words: a hit in the title or a similar question says far more than one in the body.
fn word_fields(fields: &Fields) -> [(Field, f32); 7] {
    [
        (fields.title, 3.0),
        (fields.questions, 2.5),
        (fields.keywords, 2.0),
        (fields.tags, 1.5),
        (fields.headings, 1.5),
        (fields.category_text, 1.0),
        (fields.body, 1.0),
    ]
}

/// Field boosts for character bigrams: they rescue short questions that jieba cuts differently from
/// the article, so they weigh less than whole words.
fn bigram_fields(fields: &Fields) -> [(Field, f32); 3] {
    [
        (fields.title_bigram, 1.5),
        (fields.questions_bigram, 1.2),
        (fields.body_bigram, 0.5),
    ]
}

/// The analysed form of a query.
#[derive(Debug, Clone, Default)]
pub struct AnalyzedQuery {
    /// Distinct jieba words, normalised.
    pub words: Vec<String>,
    /// Synonyms added for those words.
    pub synonyms: Vec<String>,
    /// Distinct bigrams.
    pub bigrams: Vec<String>,
}

impl AnalyzedQuery {
    /// Analyses `text`; words and bigrams are capped at [`MAX_QUERY_TERMS`].
    pub fn new(analyzer: &Analyzer, synonyms: &Synonyms, text: &str) -> AnalyzedQuery {
        let mut words = analyzer.query_words(text);
        words.truncate(MAX_QUERY_TERMS);
        let mut bigrams = query_bigrams(text);
        bigrams.truncate(MAX_QUERY_TERMS);
        let expansions = synonyms.expand(&words);
        AnalyzedQuery {
            words,
            synonyms: expansions,
            bigrams,
        }
    }

    /// Whether nothing searchable is left (empty or punctuation-only text).
    pub fn is_empty(&self) -> bool {
        self.words.is_empty() && self.bigrams.is_empty()
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
        for (field, boost) in bigram_fields(fields) {
            for bigram in &self.bigrams {
                add(field, bigram, boost);
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }
}
