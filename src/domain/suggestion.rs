//! Suggested replies (辅助回复) as the agent receives them: pushed by the desk after a visitor message
//! and answered by the assist routes, so the type lives below both.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// What is suggested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionKind {
    /// A knowledge-base article (its best passage).
    Article,
    /// A quick reply.
    QuickReply,
}

/// One suggestion.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Suggestion {
    /// Article or quick reply.
    pub kind: SuggestionKind,
    /// Article id, or quick-reply id as text.
    pub id: String,
    /// Title.
    pub title: String,
    /// Ready-to-send text: the best passage of the article, or the quick reply with its variables filled.
    pub reply: String,
    /// Relevance, comparable within a kind.
    pub score: f32,
    /// How sure it is to answer the visitor, from 0 to 1, comparable across messages (see
    /// `search::confidence`); suggestions are made only when one reaches `search.min_confidence`.
    pub confidence: f32,
    /// Query words found in the title or the passage.
    pub matched_terms: Vec<String>,
}

/// Counters of one suggested item.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FeedbackCounts {
    /// Times suggested.
    pub shown: u64,
    /// Sent as is.
    pub sent: u64,
    /// Edited then sent.
    pub edited: u64,
    /// Dismissed.
    pub dismissed: u64,
    /// The questions under which it was adopted (sent or edited), newest last, at most
    /// `services::assist::REMEMBERED_ADOPTIONS`: the boost goes to questions like these, not to every
    /// question.
    #[serde(default)]
    pub adoptions: Vec<AdoptedFor>,
}

/// One adoption: the words of the visitor's question, and when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AdoptedFor {
    /// jieba words of the question.
    pub words: Vec<String>,
    /// When the agent sent it.
    pub at: Timestamp,
}
