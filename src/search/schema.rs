//! The tantivy schema: field names, boosts and the schema version stored beside the index.

use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STORED, STRING,
};

use super::tokenizer::{JIEBA_TOKENIZER, NGRAM_TOKENIZER};

/// Bumped whenever the schema, the tokenizing or what is stored per article (sections and their answers)
/// changes; an index with another version is rebuilt.
pub const SCHEMA_VERSION: u32 = 4;

/// Handles of every field.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Article id (exact).
    pub id: Field,
    /// Content hash of the source file (exact), for incremental sync.
    pub hash: Field,
    /// Path under `kb/`.
    pub path: Field,
    /// `published` or `draft` (exact).
    pub status: Field,
    /// Category (exact, for filtering).
    pub category: Field,
    /// Category words (searchable).
    pub category_text: Field,
    /// Title words.
    pub title: Field,
    /// Title characters and bigrams.
    pub title_ngram: Field,
    /// Similar-question words.
    pub questions: Field,
    /// Similar-question characters and bigrams.
    pub questions_ngram: Field,
    /// Keyword words.
    pub keywords: Field,
    /// Tag words.
    pub tags: Field,
    /// Heading words.
    pub headings: Field,
    /// Body words (stored for snippets).
    pub body: Field,
    /// Body characters and bigrams.
    pub body_ngram: Field,
    /// Update date as written.
    pub updated: Field,
    /// Sections as JSON (stored only), for passage suggestions.
    pub sections: Field,
}

fn text_field(tokenizer: &str, stored: bool) -> TextOptions {
    // Frequencies without positions: kefu ranks by BM25 and never runs phrase queries, and positions
    // would roughly double the postings.
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(tokenizer)
        .set_index_option(IndexRecordOption::WithFreqs);
    let options = TextOptions::default().set_indexing_options(indexing);
    if stored {
        options.set_stored()
    } else {
        options
    }
}

/// Builds the schema and returns it with its field handles.
pub fn build_schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED | FAST),
        hash: builder.add_text_field("hash", STRING | STORED | FAST),
        path: builder.add_text_field("path", STORED),
        status: builder.add_text_field("status", STRING | STORED),
        category: builder.add_text_field("category", STRING | STORED),
        category_text: builder.add_text_field("category_text", text_field(JIEBA_TOKENIZER, false)),
        title: builder.add_text_field("title", text_field(JIEBA_TOKENIZER, true)),
        title_ngram: builder.add_text_field("title_ngram", text_field(NGRAM_TOKENIZER, false)),
        questions: builder.add_text_field("questions", text_field(JIEBA_TOKENIZER, true)),
        questions_ngram: builder
            .add_text_field("questions_ngram", text_field(NGRAM_TOKENIZER, false)),
        keywords: builder.add_text_field("keywords", text_field(JIEBA_TOKENIZER, true)),
        tags: builder.add_text_field("tags", text_field(JIEBA_TOKENIZER, true)),
        headings: builder.add_text_field("headings", text_field(JIEBA_TOKENIZER, false)),
        body: builder.add_text_field("body", text_field(JIEBA_TOKENIZER, true)),
        body_ngram: builder.add_text_field("body_ngram", text_field(NGRAM_TOKENIZER, false)),
        updated: builder.add_text_field("updated", STORED),
        sections: builder.add_text_field("sections", STORED),
    };
    (builder.build(), fields)
}
