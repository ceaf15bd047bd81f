//! Assisted replies' records behind [`AssistRepository`]: agents' feedback counters per suggested item,
//! and which questions each visitor token answered a self-service outcome for. [`StoredAssist`] keeps
//! them in the store's tables.
//!
//! Keys, unchanged since these were first stored:
//! - `assist_feedback`: `article:<id>` or `quick_reply:<id>` → `FeedbackCounts`;
//! - `deflection_outcomes`: BLAKE3 hash of the visitor token → the concatenated 16-byte hashes of the
//!   questions it answered for (not JSON).
//!
//! The self-service totals themselves are a setting (`deflection`, see [`super::SettingsRepository`]).

use crate::domain::suggestion::FeedbackCounts;
use crate::domain::SuggestionKind;
use crate::error::Result;
use crate::storage::{self, Store};

/// Bytes of a question's hash kept per answered question.
pub const QUESTION_HASH_BYTES: usize = 16;

/// What became of a visitor's self-service outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeRecord {
    /// Recorded: the first answer of this token for this question.
    Recorded,
    /// This token had already answered for this question.
    AlreadyAnswered,
    /// This token answered for as many questions as it may.
    TokenFull,
}

/// Where the assist records live.
pub trait AssistRepository: Send + Sync + std::fmt::Debug {
    /// An item's counters (zero when never suggested).
    fn feedback(&self, kind: SuggestionKind, id: &str) -> Result<FeedbackCounts>;
    /// Changes an item's counters atomically and returns them as stored; `change` may run more than
    /// once when another writer got there first.
    fn change_feedback(
        &self,
        kind: SuggestionKind,
        id: &str,
        change: &dyn Fn(&mut FeedbackCounts),
    ) -> Result<FeedbackCounts>;
    /// Every item's counters.
    fn all_feedback(&self) -> Result<Vec<(SuggestionKind, String, FeedbackCounts)>>;
    /// Records, in one atomic step, that `visitor_token` answered for the question hashed
    /// `question_hash`, unless it already did or already answered for `max_questions`.
    fn record_outcome(
        &self,
        visitor_token: &str,
        question_hash: &[u8; QUESTION_HASH_BYTES],
        max_questions: usize,
    ) -> Result<OutcomeRecord>;
}

/// [`AssistRepository`] in the store's tables.
#[derive(Debug, Clone)]
pub struct StoredAssist {
    store: Store,
}

impl StoredAssist {
    /// Assist records in `store`.
    pub fn new(store: &Store) -> StoredAssist {
        StoredAssist {
            store: store.clone(),
        }
    }
}

fn feedback_key(kind: SuggestionKind, id: &str) -> String {
    match kind {
        SuggestionKind::Article => format!("article:{id}"),
        SuggestionKind::QuickReply => format!("quick_reply:{id}"),
    }
}

impl AssistRepository for StoredAssist {
    fn feedback(&self, kind: SuggestionKind, id: &str) -> Result<FeedbackCounts> {
        Ok(
            storage::get_json(&self.store.assist_feedback, feedback_key(kind, id))?
                .unwrap_or_default(),
        )
    }

    fn change_feedback(
        &self,
        kind: SuggestionKind,
        id: &str,
        change: &dyn Fn(&mut FeedbackCounts),
    ) -> Result<FeedbackCounts> {
        storage::update_json(
            &self.store.assist_feedback,
            feedback_key(kind, id),
            |counts: &mut FeedbackCounts| change(counts),
        )
    }

    fn all_feedback(&self) -> Result<Vec<(SuggestionKind, String, FeedbackCounts)>> {
        let mut all = Vec::new();
        for (key, value) in self.store.assist_feedback.iter()? {
            let key = String::from_utf8_lossy(&key).into_owned();
            let (kind, id) = match key.split_once(':') {
                Some(("article", id)) => (SuggestionKind::Article, id.to_string()),
                Some(("quick_reply", id)) => (SuggestionKind::QuickReply, id.to_string()),
                _ => continue,
            };
            all.push((kind, id, storage::decode(&value)?));
        }
        Ok(all)
    }

    fn record_outcome(
        &self,
        visitor_token: &str,
        question_hash: &[u8; QUESTION_HASH_BYTES],
        max_questions: usize,
    ) -> Result<OutcomeRecord> {
        let token_key = blake3::hash(visitor_token.as_bytes());
        let answered_before = |hashes: &[u8]| {
            hashes
                .chunks_exact(QUESTION_HASH_BYTES)
                .any(|hash| hash == question_hash)
        };
        let is_full = |hashes: &[u8]| hashes.len() / QUESTION_HASH_BYTES >= max_questions;
        // The last run of the closure is the one that was stored.
        let mut stored_before: Option<Vec<u8>> = None;
        self.store
            .deflection_outcomes
            .update_and_fetch(token_key.as_bytes(), |old| {
                stored_before = old.map(<[u8]>::to_vec);
                let hashes = old.unwrap_or_default();
                if answered_before(hashes) || is_full(hashes) {
                    return old.map(<[u8]>::to_vec);
                }
                Some([hashes, &question_hash[..]].concat())
            })?;
        let before = stored_before.as_deref().unwrap_or_default();
        Ok(if answered_before(before) {
            OutcomeRecord::AlreadyAnswered
        } else if is_full(before) {
            OutcomeRecord::TokenFull
        } else {
            OutcomeRecord::Recorded
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feedback_counters_change_atomically_per_item() {
        let store = Store::temporary().unwrap();
        let assist = StoredAssist::new(&store);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        assist
                            .change_feedback(SuggestionKind::QuickReply, "7", &|counts| {
                                counts.shown += 1
                            })
                            .unwrap();
                    }
                });
            }
        });
        assist
            .change_feedback(SuggestionKind::Article, "7", &|counts| counts.sent += 1)
            .unwrap();
        assert_eq!(
            assist
                .feedback(SuggestionKind::QuickReply, "7")
                .unwrap()
                .shown,
            100
        );
        let mut all = assist.all_feedback().unwrap();
        all.sort_by_key(|(_, _, counts)| counts.shown);
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].0, all[0].1.as_str()),
            (SuggestionKind::Article, "7")
        );
    }

    #[test]
    fn a_token_answers_once_per_question_and_for_a_bounded_number_of_questions() {
        let store = Store::temporary().unwrap();
        let assist = StoredAssist::new(&store);
        let question = |n: u8| [n; QUESTION_HASH_BYTES];
        assert_eq!(
            assist.record_outcome("t1", &question(1), 2).unwrap(),
            OutcomeRecord::Recorded
        );
        assert_eq!(
            assist.record_outcome("t1", &question(1), 2).unwrap(),
            OutcomeRecord::AlreadyAnswered
        );
        assert_eq!(
            assist.record_outcome("t1", &question(2), 2).unwrap(),
            OutcomeRecord::Recorded
        );
        assert_eq!(
            assist.record_outcome("t1", &question(3), 2).unwrap(),
            OutcomeRecord::TokenFull
        );
        assert_eq!(
            assist.record_outcome("t2", &question(3), 2).unwrap(),
            OutcomeRecord::Recorded
        );
    }
}
