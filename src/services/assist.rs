//! Assisted replies (辅助回复): knowledge-base passages and quick replies suggested from what the
//! visitor wrote, agents' feedback on them, and visitor self-service (deflection) counts.
//!
//! The query is the newest visitor message plus the TF-IDF keywords of the two before it, so a
//! follow-up like 那要多久 keeps the topic of the question before it while the newest words count most.
//! For an article the suggested text is the section that best answers (most query words in its heading
//! and text), not the whole article.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::domain::limits::{MAX_REPLY_QUERY_CHARS, MAX_SUGGEST_CHARS};
use crate::domain::{AccountId, ArticleStatus, Message, ReplyScope, SenderKind};
// Owned by `domain` so that the desk's frames can carry them without the desk importing this module.
pub use crate::domain::suggestion::{AdoptedFor, FeedbackCounts};
pub use crate::domain::{Suggestion, SuggestionKind};
use crate::error::{Error, Result};
use crate::search::confidence::{confidence, HitText, MessageProfile};
use crate::search::{classify, Analyzer, Intent, SearchIndex, SearchRequest};
use crate::services::conversations::{ConversationService, Party};
use crate::services::quick_replies::{fill_variables, QuickReplyService, VISITOR_NAME_UNKNOWN};
use crate::services::{KnowledgeService, Metrics};
use crate::storage::{
    AssistRepository, OutcomeRecord, SettingsRepository, Store, StoredAssist, StoredSettings,
    UnitOfWork, QUESTION_HASH_BYTES,
};

/// Articles suggested at most.
pub const SUGGESTED_ARTICLES: usize = 3;
/// Quick replies suggested at most.
pub const SUGGESTED_REPLIES: usize = 3;
/// Beside a confident suggestion, others are kept when their confidence reaches this share of the
/// minimum. Measured on the relevance set (see BENCHMARKS.md, "Abstention").
const COMPANION_SHARE: f32 = 0.25;
/// Earlier visitor messages whose keywords join the query.
const EARLIER_MESSAGES: usize = 2;
/// Keywords taken from each earlier message.
const KEYWORDS_PER_MESSAGE: usize = 3;
/// Keywords a message too long to search as it is is searched by (jieba TF-IDF).
const KEYWORDS_OF_LONG_MESSAGE: usize = 8;
/// Longest suggested passage, in characters: well under a message's limit, and more than any
/// section of the starter articles.
const MAX_PASSAGE_CHARS: usize = 2000;
/// Questions sharing less than this share of their words (Jaccard) with an adopted one get no boost
/// from it: similar wording alone often asks something else (借呗 and 花呗 questions differ by a word).
const MIN_SIMILARITY: f64 = 0.6;
/// Adoptions remembered per item.
pub const REMEMBERED_ADOPTIONS: usize = 50;
/// Who gives feedback, as far as it decides which suggested items exist for them.
pub struct FeedbackReader<'a> {
    /// Whether drafts are readable (editors).
    pub drafts: bool,
    /// Whether quick replies of a scope are readable.
    pub reply_scope: &'a dyn Fn(ReplyScope) -> bool,
}

/// Words remembered per adoption: as many as a search uses of a query (`MAX_QUERY_TERMS`).
const MAX_ADOPTION_WORDS: usize = crate::search::MAX_QUERY_TERMS;
/// Adoptions lose half their weight in this time.
const ADOPTION_HALF_LIFE: SignedDuration = SignedDuration::from_hours(7 * 24);
/// The ranking boost from adoptions never exceeds this factor, so feedback reorders close calls only.
const MAX_ADOPTION_BOOST: f64 = 0.3;
/// Boost per (decayed) adoption.
const BOOST_PER_ADOPTION: f64 = 0.05;

/// What the agent did with a suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackAction {
    /// Sent unchanged.
    Sent,
    /// Edited, then sent.
    Edited,
    /// Dismissed.
    Dismissed,
}

/// Adoption figures of one item, for supervisors.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Adoption {
    /// Article or quick reply.
    pub kind: SuggestionKind,
    /// Its id.
    pub id: String,
    /// The counters.
    #[serde(flatten)]
    pub counts: FeedbackCounts,
    /// (sent + edited) / shown.
    pub adoption_rate: f64,
}

/// Visitor self-service outcomes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Deflection {
    /// Visitors shown suggestions before queueing.
    pub shown: u64,
    /// "已解决": the visitor's question was answered without an agent.
    pub resolved: u64,
    /// "仍需人工": the visitor went on to an agent.
    pub escalated: u64,
}

/// How much earlier adoptions speak for an item on a question with `words`: each adoption counts by
/// the Jaccard overlap of its question's words with these, halved every [`ADOPTION_HALF_LIFE`].
///
/// A global popularity count was measured first and hurt: feedback from half the relevance set's
/// questions lowered MRR@10 on the other half from 0.4456 to 0.4338 (popular answers pushed out the
/// right ones). Weighting by question similarity keeps the boost to questions like the adopted ones.
pub fn learned_weight(adoptions: &[AdoptedFor], words: &[String], now: Timestamp) -> f64 {
    if words.is_empty() {
        return 0.0;
    }
    let query: std::collections::HashSet<&str> = words.iter().map(String::as_str).collect();
    adoptions
        .iter()
        .map(|adoption| {
            let earlier: std::collections::HashSet<&str> =
                adoption.words.iter().map(String::as_str).collect();
            let union = query.union(&earlier).count();
            let similarity = if union == 0 {
                0.0
            } else {
                query.intersection(&earlier).count() as f64 / union as f64
            };
            if similarity < MIN_SIMILARITY {
                return 0.0;
            }
            let age = now.duration_since(adoption.at).as_secs_f64().max(0.0);
            similarity * 0.5f64.powf(age / ADOPTION_HALF_LIFE.as_secs_f64())
        })
        .sum()
}

/// The ranking factor for a learned weight: 1 + 0.05 per unit, at most 1.3.
pub fn adoption_boost(weight: f64) -> f64 {
    1.0 + (BOOST_PER_ADOPTION * weight.max(0.0)).min(MAX_ADOPTION_BOOST)
}

/// The query text for visitor messages given newest first: the newest message, or its keywords when
/// it is longer than a search takes, then keywords of the earlier ones. Never longer than
/// [`MAX_REPLY_QUERY_CHARS`], so a long message gets suggestions like a short one instead of a
/// refused search.
pub fn suggestion_query(analyzer: &Analyzer, newest_first: &[&str]) -> String {
    let Some((newest, earlier)) = newest_first.split_first() else {
        return String::new();
    };
    let newest = newest.trim();
    let mut query = String::new();
    if newest.chars().nth(MAX_REPLY_QUERY_CHARS).is_none() {
        query.push_str(newest);
    } else {
        for keyword in analyzer.keywords(newest, KEYWORDS_OF_LONG_MESSAGE) {
            push_bounded(&mut query, &keyword);
        }
        if query.is_empty() {
            // No keyword stands out (say, one character repeated): search its beginning.
            query = newest.chars().take(MAX_REPLY_QUERY_CHARS).collect();
        }
    }
    for message in earlier.iter().take(EARLIER_MESSAGES) {
        for keyword in analyzer.keywords(message, KEYWORDS_PER_MESSAGE) {
            push_bounded(&mut query, &keyword);
        }
    }
    query
}

/// The visitor messages that make up the question, newest first: the newest visitor message and the
/// two before it, from a conversation's messages given newest first.
pub fn question_of<'a>(newest_first: impl Iterator<Item = &'a Message>) -> Vec<&'a str> {
    newest_first
        .filter(|message| message.kind == SenderKind::Visitor)
        .take(EARLIER_MESSAGES + 1)
        .map(|message| message.body.as_str())
        .collect()
}

/// Appends ` word` to `query` when the result stays within [`MAX_REPLY_QUERY_CHARS`].
fn push_bounded(query: &mut String, word: &str) {
    let separator = usize::from(!query.is_empty());
    if query.chars().count() + separator + word.chars().count() > MAX_REPLY_QUERY_CHARS {
        return;
    }
    if separator == 1 {
        query.push(' ');
    }
    query.push_str(word);
}

/// Whether a query word tells passages apart: single CJK characters (我, 了, 吗) are in almost every
/// passage, so they neither choose a passage nor are shown to the agent as a match.
fn is_telling(word: &str) -> bool {
    word.chars().count() > 1 || word.is_ascii()
}

/// `text` trimmed, and when longer than [`MAX_PASSAGE_CHARS`], its first lines that fit (never a
/// line cut in the middle; a single over-long first line is cut at the limit).
fn whole_lines(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= MAX_PASSAGE_CHARS {
        return text.to_string();
    }
    let mut kept = String::new();
    for line in text.lines() {
        if kept.chars().count() + 1 + line.chars().count() > MAX_PASSAGE_CHARS {
            break;
        }
        if !kept.is_empty() {
            kept.push('\n');
        }
        kept.push_str(line);
    }
    if kept.is_empty() {
        kept = text.chars().take(MAX_PASSAGE_CHARS).collect();
    }
    kept
}

/// Published articles for `query`, each with its best passage.
pub fn suggest_articles(index: &SearchIndex, query: &str, limit: usize) -> Result<Vec<Suggestion>> {
    let hits = index.search_with_sections(&SearchRequest {
        text: query,
        limit,
        category: None,
        include_drafts: false,
        with_snippets: false,
    })?;
    let words: Vec<String> = index.analyzer().query_words(query);
    let mut suggestions = Vec::with_capacity(hits.len());
    for (hit, sections) in hits {
        // A word in the heading says what the passage is about, so it counts double.
        let telling: Vec<&String> = words.iter().filter(|word| is_telling(word)).collect();
        let overlap = |text: &str| {
            let lowered = text.to_lowercase();
            telling
                .iter()
                .filter(|word| lowered.contains(word.as_str()))
                .count()
        };
        // Most telling words wins; ties go to the earlier section (articles lead with the answer).
        let best = sections
            .iter()
            .enumerate()
            .max_by_key(|(position, section)| {
                (
                    2 * overlap(&section.heading) + overlap(&section.text),
                    std::cmp::Reverse(*position),
                )
            })
            .map(|(_, section)| section);
        // The whole passage of that heading, lists included: its first paragraph alone is often a
        // lead-in (按以下步骤操作) whose steps the visitor then never receives.
        let passage = match best {
            Some(section) if !section.text.trim().is_empty() => whole_lines(&section.text),
            Some(section) => section.answer.clone(),
            None => hit.title.clone(),
        };
        let haystack = format!("{} {}", hit.title, passage).to_lowercase();
        let matched_terms = telling
            .iter()
            .filter(|word| haystack.contains(word.as_str()))
            .map(|word| word.to_string())
            .collect();
        suggestions.push(Suggestion {
            kind: SuggestionKind::Article,
            id: hit.id,
            title: hit.title,
            reply: passage,
            score: hit.score,
            confidence: hit.confidence,
            matched_terms,
        });
    }
    Ok(suggestions)
}

/// `ranked` (best first) when one of its first [`SUGGESTED_ARTICLES`] reaches `min_confidence`,
/// otherwise nothing: the agent and the visitor are better served by no suggestion than by a wrong
/// one. Once one is confident, the others stay when they reach [`COMPANION_SHARE`] of the minimum,
/// since the agent chooses among them; a hit matching only single characters (confidence 0) never.
/// A minimum of 0 switches abstention off.
///
/// Deciding per message rather than per hit was measured on the relevance set: dropping each hit
/// below the minimum lost a third of MRR@10 (right answers ranked second or third are often less
/// alike in wording than a wrong first), while one confident hit in three kept the list's worth.
pub fn confident_or_nothing(mut ranked: Vec<Suggestion>, min_confidence: f32) -> Vec<Suggestion> {
    if min_confidence <= 0.0 {
        // Abstention switched off: the ranking as it is.
        return ranked;
    }
    let confident = ranked
        .iter()
        .take(SUGGESTED_ARTICLES)
        .any(|suggestion| suggestion.confidence >= min_confidence);
    if !confident {
        return Vec::new();
    }
    let companion = min_confidence * COMPANION_SHARE;
    ranked.retain(|suggestion| suggestion.confidence > 0.0 && suggestion.confidence >= companion);
    ranked
}

/// Published articles for `query` (a [`suggestion_query`]): the `searched` best hits, reordered by
/// score times `boost` (learned adoptions), the first `kept` of them. No abstention: `kefu suggest
/// --feedback` learns from the whole ranking.
pub fn ranked_articles(
    index: &SearchIndex,
    query: &str,
    searched: usize,
    kept: usize,
    mut boost: impl FnMut(&Suggestion, &[String]) -> Result<f64>,
) -> Result<Vec<Suggestion>> {
    if query.trim().is_empty() {
        return Ok(Vec::new());
    }
    let words = index.analyzer().query_words(query);
    let mut articles = suggest_articles(index, query, searched)?;
    for article in articles.iter_mut() {
        article.score *= boost(article, &words)? as f32;
    }
    articles.sort_by(|left, right| {
        right
            .score
            .total_cmp(&left.score)
            .then_with(|| left.id.cmp(&right.id))
    });
    articles.truncate(kept);
    Ok(articles)
}

/// The articles suggested for `query` (built from visitor messages whose newest is `newest`): none
/// when `newest` is a greeting, thanks or 转人工 (answered by the agent, never by an article),
/// otherwise [`ranked_articles`] when one of them is confident enough ([`confident_or_nothing`]).
/// The one rule of the agent's suggestions, the visitor's self-service and `kefu suggest`.
pub fn article_suggestions(
    index: &SearchIndex,
    newest: &str,
    query: &str,
    searched: usize,
    kept: usize,
    min_confidence: f32,
    boost: impl FnMut(&Suggestion, &[String]) -> Result<f64>,
) -> Result<Vec<Suggestion>> {
    if !classify(newest).is_question() {
        return Ok(Vec::new());
    }
    let ranked = ranked_articles(index, query, searched, kept, boost)?;
    Ok(confident_or_nothing(ranked, min_confidence))
}

/// What the visitor's self-service (自助服务) shows for a question typed before a conversation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VisitorSuggestions {
    /// What the message is: a `question`, or a greeting, thanks, acknowledgement or farewell (no
    /// articles), or `ask_for_agent` (转人工: the page offers the queue at once).
    pub intent: Intent,
    /// Articles, best first; empty when nothing is confident enough or the message is not a question.
    pub suggestions: Vec<Suggestion>,
}

/// Suggestions, feedback and deflection.
pub struct AssistService {
    knowledge: Arc<KnowledgeService>,
    replies: Arc<QuickReplyService>,
    conversations: Arc<ConversationService>,
    records: Arc<dyn AssistRepository>,
    settings: Arc<dyn SettingsRepository>,
    unit_of_work: UnitOfWork,
    metrics: Arc<Metrics>,
    min_confidence: f32,
}

impl std::fmt::Debug for AssistService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AssistService")
            .finish_non_exhaustive()
    }
}

impl AssistService {
    /// The service over the knowledge base, quick replies and conversations.
    pub fn new(
        knowledge: Arc<KnowledgeService>,
        replies: Arc<QuickReplyService>,
        conversations: Arc<ConversationService>,
        store: Store,
    ) -> AssistService {
        AssistService {
            knowledge,
            replies,
            conversations,
            records: Arc::new(StoredAssist::new(&store)),
            settings: Arc::new(StoredSettings::new(&store)),
            unit_of_work: UnitOfWork::new(&store),
            metrics: Arc::default(),
            min_confidence: crate::config::DEFAULT_MIN_CONFIDENCE,
        }
    }

    /// Suggestions are made only from hits of at least this confidence (`search.min_confidence`).
    pub fn with_min_confidence(mut self, min_confidence: f32) -> AssistService {
        self.min_confidence = min_confidence;
        self
    }

    /// What the visitor's self-service shows for `question`: nothing for greetings, thanks and
    /// chit-chat or when no article is confident enough, and the wish for a person recognised.
    pub fn for_visitor(&self, question: &str) -> Result<VisitorSuggestions> {
        let intent = classify(question);
        if !intent.is_question() {
            return Ok(VisitorSuggestions {
                intent,
                suggestions: Vec::new(),
            });
        }
        let index = self.knowledge.index();
        let suggestions = article_suggestions(
            index,
            question,
            &suggestion_query(&index.analyzer(), &[question]),
            SUGGESTED_ARTICLES,
            SUGGESTED_ARTICLES,
            self.min_confidence,
            |_, _| Ok(1.0),
        )?;
        if !suggestions.is_empty() {
            self.record_deflection(DeflectionEvent::Shown)?;
        }
        Ok(VisitorSuggestions {
            intent,
            suggestions,
        })
    }

    /// Suggestions are timed into `metrics` (by default into instruments nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> AssistService {
        self.metrics = metrics;
        self
    }

    /// Suggestions for a conversation's recent visitor messages, for `agent` (who sees quick replies of
    /// `scopes`); quick replies have their variables filled for this conversation.
    pub fn for_conversation(
        &self,
        conversation_id: &str,
        agent: AccountId,
        agent_name: &str,
        scopes: &[ReplyScope],
    ) -> Result<Vec<Suggestion>> {
        let conversation = self.conversations.conversation(conversation_id)?;
        let messages = self.visitor_visible_messages(conversation_id)?;
        self.for_messages(
            messages.iter().rev(),
            agent,
            agent_name,
            conversation.visitor_name(),
            scopes,
        )
    }

    /// Suggestions for the question asked by a conversation's messages given newest first (any kind;
    /// the last few visitor messages make the question), for `agent` (who sees quick replies of
    /// `scopes`); quick replies have their variables filled with `visitor_name`.
    pub fn for_messages<'a>(
        &self,
        newest_first: impl Iterator<Item = &'a Message>,
        agent: AccountId,
        agent_name: &str,
        visitor_name: &str,
        scopes: &[ReplyScope],
    ) -> Result<Vec<Suggestion>> {
        let question = question_of(newest_first);
        self.suggest(&question, agent, agent_name, visitor_name, scopes)
    }

    /// Suggestions for one text (the agent's search box, or an API call).
    pub fn for_text(
        &self,
        text: &str,
        agent: AccountId,
        agent_name: &str,
        scopes: &[ReplyScope],
    ) -> Result<Vec<Suggestion>> {
        if text.chars().nth(MAX_SUGGEST_CHARS).is_some() {
            return Err(Error::InvalidQuery {
                reason: format!("at most {MAX_SUGGEST_CHARS} characters"),
            });
        }
        self.suggest(&[text], agent, agent_name, VISITOR_NAME_UNKNOWN, scopes)
    }

    fn suggest(
        &self,
        newest_first: &[&str],
        agent: AccountId,
        agent_name: &str,
        visitor_name: &str,
        scopes: &[ReplyScope],
    ) -> Result<Vec<Suggestion>> {
        let started = std::time::Instant::now();
        // A conversation's messages may be longer than a text sent to suggest for: the query is
        // built from their keywords, so their length is not refused here.
        let newest_is_empty = newest_first.first().is_none_or(|text| text.is_empty());
        if newest_is_empty || newest_first.iter().all(|text| text.trim().is_empty()) {
            return Err(Error::InvalidQuery {
                reason: "nothing to suggest from: the text is empty".into(),
            });
        }
        let index = self.knowledge.index();
        let analyzer = index.analyzer();
        let query = suggestion_query(&analyzer, newest_first);
        let words = analyzer.query_words(&query);
        let now = self.conversations.now();
        let articles = article_suggestions(
            index,
            newest_first[0],
            &query,
            SUGGESTED_ARTICLES * 2,
            SUGGESTED_ARTICLES,
            self.min_confidence,
            |article, words| self.boost(SuggestionKind::Article, &article.id, words, now),
        )?;
        let profile = MessageProfile::new(&analyzer, &query);

        let mut replies = Vec::new();
        for hit in self
            .replies
            .search(&query, scopes, agent, SUGGESTED_REPLIES * 2)?
        {
            let id = hit.view.reply.id.to_string();
            let boost = self.boost(SuggestionKind::QuickReply, &id, &words, now)? as f32;
            let content = fill_variables(&hit.view.reply.content, visitor_name, agent_name, now);
            let reply_confidence = confidence(
                &analyzer,
                &profile,
                HitText {
                    title: &hit.view.reply.title,
                    questions: &[],
                    body: &content,
                },
                None,
            );
            if reply_confidence < self.min_confidence {
                continue;
            }
            let haystack = format!("{} {}", hit.view.reply.title, content).to_lowercase();
            let matched_terms = words
                .iter()
                .filter(|word| is_telling(word) && haystack.contains(word.as_str()))
                .cloned()
                .collect();
            replies.push(Suggestion {
                kind: SuggestionKind::QuickReply,
                id,
                title: hit.view.reply.title,
                reply: content,
                score: hit.score * boost,
                confidence: reply_confidence,
                matched_terms,
            });
        }
        replies.sort_by(|left, right| right.score.total_cmp(&left.score));
        replies.truncate(SUGGESTED_REPLIES);
        let mut all = articles;
        all.extend(replies);
        self.metrics.suggest_done(started.elapsed());
        Ok(all)
    }

    // ----- feedback -----

    fn counts(&self, kind: SuggestionKind, id: &str) -> Result<FeedbackCounts> {
        self.records.feedback(kind, id)
    }

    fn boost(
        &self,
        kind: SuggestionKind,
        id: &str,
        words: &[String],
        now: Timestamp,
    ) -> Result<f64> {
        let counts = self.counts(kind, id)?;
        Ok(adoption_boost(learned_weight(
            &counts.adoptions,
            words,
            now,
        )))
    }

    /// The conversation's messages as its visitor sees them, oldest first.
    fn visitor_visible_messages(&self, conversation_id: &str) -> Result<Vec<Message>> {
        self.conversations
            .messages_after(conversation_id, 0, &Party::Visitor)
    }

    /// The jieba words of the question suggestions are built from: a conversation's recent visitor
    /// messages, or a text.
    pub fn question_words(
        &self,
        conversation_id: Option<&str>,
        text: Option<&str>,
    ) -> Result<Vec<String>> {
        if text.is_some_and(|text| text.chars().nth(MAX_SUGGEST_CHARS).is_some()) {
            return Err(Error::InvalidQuery {
                reason: format!("at most {MAX_SUGGEST_CHARS} characters"),
            });
        }
        let analyzer = self.knowledge.index().analyzer();
        let messages = match conversation_id {
            Some(id) => self.visitor_visible_messages(id)?,
            None => Vec::new(),
        };
        let recent: Vec<&str> = match (conversation_id, text) {
            (Some(_), _) => question_of(messages.iter().rev()),
            (None, Some(text)) => vec![text],
            (None, None) => Vec::new(),
        };
        let mut words = analyzer.query_words(&suggestion_query(&analyzer, &recent));
        // What an adoption remembers per question; more words would only make every later
        // suggestion slower to weigh.
        words.truncate(MAX_ADOPTION_WORDS);
        Ok(words)
    }

    /// Counts that `suggestions` were shown: one unit of work (one commit on PostgreSQL, which does not
    /// wait for the WAL flush: these are statistics on the path of every pushed suggestion, not
    /// something a user was told is saved), the counters changed in key order so that two workers
    /// counting at once never wait on each other in a cycle.
    pub fn record_shown(&self, suggestions: &[Suggestion]) -> Result<()> {
        // The order of the records' keys (`article:<id>` before `quick_reply:<id>`).
        let mut items: Vec<(bool, &str, SuggestionKind)> = suggestions
            .iter()
            .map(|suggestion| {
                let is_reply = suggestion.kind == SuggestionKind::QuickReply;
                (is_reply, suggestion.id.as_str(), suggestion.kind)
            })
            .collect();
        items.sort_by(|left, right| (left.0, left.1).cmp(&(right.0, right.1)));
        items.dedup_by(|left, right| (left.0, left.1) == (right.0, right.1));
        self.unit_of_work.run_relaxed(|| {
            for (_, id, kind) in &items {
                self.records
                    .change_feedback(*kind, id, &|counts| counts.shown += 1)?;
            }
            Ok(())
        })
    }

    /// Records what an agent did with a suggestion made for a question with `words`.
    ///
    /// Feedback answers the item's counters and moves its ranking, so it is taken only for items the
    /// `reader` could have been shown; any other answers as if it did not exist.
    pub fn record_feedback(
        &self,
        kind: SuggestionKind,
        id: &str,
        action: FeedbackAction,
        words: Vec<String>,
        now: Timestamp,
        reader: &FeedbackReader<'_>,
    ) -> Result<FeedbackCounts> {
        match kind {
            SuggestionKind::Article => {
                let readable = self.knowledge.index().get(id)?.is_some_and(|(article, _)| {
                    reader.drafts || article.status != ArticleStatus::Draft
                });
                if !readable {
                    return Err(Error::ArticleNotFound(id.to_string()));
                }
            }
            SuggestionKind::QuickReply => {
                let reply_id: u64 = id
                    .parse()
                    .map_err(|_| Error::InvalidInput(format!("`{id}` is not a quick-reply id")))?;
                if !(reader.reply_scope)(self.replies.get(reply_id)?.scope) {
                    return Err(Error::QuickReplyNotFound(reply_id));
                }
            }
        }
        let counts = self.records.change_feedback(kind, id, &|counts| {
            match action {
                FeedbackAction::Sent => counts.sent += 1,
                FeedbackAction::Edited => counts.edited += 1,
                FeedbackAction::Dismissed => counts.dismissed += 1,
            }
            if action != FeedbackAction::Dismissed && !words.is_empty() {
                counts.adoptions.push(AdoptedFor {
                    words: words.clone(),
                    at: now,
                });
                let excess = counts.adoptions.len().saturating_sub(REMEMBERED_ADOPTIONS);
                counts.adoptions.drain(..excess);
            }
        })?;
        self.unit_of_work.make_durable()?;
        Ok(counts)
    }

    /// Adoption figures of every suggested item, most shown first.
    pub fn adoption(&self) -> Result<Vec<Adoption>> {
        let mut figures = Vec::new();
        for (kind, id, counts) in self.records.all_feedback()? {
            let adopted = (counts.sent + counts.edited) as f64;
            let adoption_rate = if counts.shown == 0 {
                0.0
            } else {
                adopted / counts.shown as f64
            };
            figures.push(Adoption {
                kind,
                id,
                counts,
                adoption_rate,
            });
        }
        figures.sort_by_key(|figure| std::cmp::Reverse(figure.counts.shown));
        Ok(figures)
    }

    // ----- deflection -----

    /// Counts a self-service event: shown, resolved or escalated.
    pub fn record_deflection(&self, event: DeflectionEvent) -> Result<Deflection> {
        let figures = self
            .settings
            .update(DEFLECTION_KEY, |figures| count_deflection(figures, event))?;
        self.unit_of_work.make_durable()?;
        Ok(figures)
    }

    /// Counts a visitor's answer to the articles shown for `question`, once per visitor token and
    /// question: the figures, and whether this answer was counted (`false`: that token had already
    /// answered for that question).
    ///
    /// Errors: [`Error::InvalidInput`] for `shown` or a question not 1-500 characters;
    /// [`Error::RateLimited`] once the token answered for [`MAX_OUTCOMES_PER_TOKEN`] questions.
    pub fn record_visitor_outcome(
        &self,
        visitor_token: &str,
        question: &str,
        outcome: DeflectionEvent,
    ) -> Result<(bool, Deflection)> {
        if outcome == DeflectionEvent::Shown {
            return Err(Error::InvalidInput(
                "outcome is `resolved` or `escalated`".into(),
            ));
        }
        let question = question.trim().to_lowercase();
        if question.is_empty() || question.chars().count() > MAX_QUESTION_CHARS {
            return Err(Error::InvalidInput(format!(
                "question is 1-{MAX_QUESTION_CHARS} characters"
            )));
        }
        let question_digest = blake3::hash(question.as_bytes());
        let mut question_hash = [0u8; QUESTION_HASH_BYTES];
        question_hash.copy_from_slice(&question_digest.as_bytes()[..QUESTION_HASH_BYTES]);
        // One atomic step decides and records, so repeated or parallel posts count once.
        match self
            .records
            .record_outcome(visitor_token, &question_hash, MAX_OUTCOMES_PER_TOKEN)?
        {
            OutcomeRecord::AlreadyAnswered => return Ok((false, self.deflection()?)),
            OutcomeRecord::TokenFull => return Err(Error::RateLimited),
            OutcomeRecord::Recorded => {}
        }
        Ok((true, self.record_deflection(outcome)?))
    }

    /// Self-service figures so far.
    pub fn deflection(&self) -> Result<Deflection> {
        Ok(self.settings.get(DEFLECTION_KEY)?.unwrap_or_default())
    }

    /// The knowledge base, for visitor self-service.
    pub fn knowledge(&self) -> &KnowledgeService {
        &self.knowledge
    }
}

const DEFLECTION_KEY: &str = "deflection";
/// Longest self-service question, in characters (as `GET /api/v1/visitor/suggest`).
const MAX_QUESTION_CHARS: usize = crate::domain::limits::MAX_VISITOR_QUESTION_CHARS;
/// Questions one visitor token may answer "resolved" or "escalated" for: what a visitor asks in a
/// visit, and a bound on what one token stores.
pub const MAX_OUTCOMES_PER_TOKEN: usize = 32;

fn count_deflection(figures: &mut Deflection, event: DeflectionEvent) {
    match event {
        DeflectionEvent::Shown => figures.shown += 1,
        DeflectionEvent::Resolved => figures.resolved += 1,
        DeflectionEvent::Escalated => figures.escalated += 1,
    }
}

/// A visitor self-service event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeflectionEvent {
    /// Suggestions were shown.
    Shown,
    /// "已解决".
    Resolved,
    /// "仍需人工".
    Escalated,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, kind: SenderKind, body: &str) -> Message {
        Message {
            seq,
            kind,
            agent: None,
            sender_name: String::new(),
            body: body.into(),
            attachments: Vec::new(),
            at: "2026-11-25T08:00:00Z".parse().unwrap(),
            client_key: None,
        }
    }

    #[test]
    fn the_question_is_the_last_three_visitor_messages_newest_first() {
        let messages = [
            message(1, SenderKind::Visitor, "你好"),
            message(2, SenderKind::Visitor, "我申请了退款"),
            message(3, SenderKind::Agent, "请稍等"),
            message(4, SenderKind::Internal, "查一下退款单"),
            message(5, SenderKind::Visitor, "银行卡支付的"),
            message(6, SenderKind::System, "客服已接入"),
            message(7, SenderKind::Visitor, "那要多久"),
        ];
        assert_eq!(
            question_of(messages.iter().rev()),
            ["那要多久", "银行卡支付的", "我申请了退款"]
        );
        assert!(question_of(messages[2..4].iter().rev()).is_empty());
    }

    #[test]
    fn earlier_messages_add_their_keywords_after_the_newest_message() {
        let analyzer = Analyzer::new();
        let query = suggestion_query(&analyzer, &["那要多久", "我昨天申请了退款，银行卡支付的"]);
        assert!(query.starts_with("那要多久 "), "{query}");
        assert!(query.contains("退款"), "{query}");
        assert_eq!(suggestion_query(&analyzer, &[]), "");
    }

    #[test]
    fn a_long_message_is_searched_by_its_keywords_within_the_search_limit() {
        let analyzer = Analyzer::new();
        let long = format!(
            "{}我上周申请了退款，银行卡支付的，到现在还没有到账，请问退款到账需要多久？",
            "您好，打扰一下。".repeat(40)
        );
        assert!(long.chars().count() > MAX_REPLY_QUERY_CHARS);
        let query = suggestion_query(&analyzer, &[&long, &long, &long]);
        assert!(query.chars().count() <= MAX_REPLY_QUERY_CHARS, "{query}");
        assert!(query.contains("退款"), "{query}");
        // Nothing but one character repeated: its beginning, cut to the limit.
        let repeated = "啊".repeat(3000);
        let query = suggestion_query(&analyzer, &[&repeated]);
        assert!(!query.is_empty());
        assert!(query.chars().count() <= MAX_REPLY_QUERY_CHARS);
    }

    #[test]
    fn adoptions_count_by_question_similarity_halve_each_week_and_the_boost_is_bounded() {
        let now: Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
        let words = |text: &str| text.split(' ').map(str::to_string).collect::<Vec<_>>();
        let adoptions = vec![AdoptedFor {
            words: words("退款 多久 到账"),
            at: now,
        }];
        assert!((learned_weight(&adoptions, &words("退款 多久 到账"), now) - 1.0).abs() < 1e-9);
        assert!((learned_weight(&adoptions, &words("退款 到账"), now) - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(learned_weight(&adoptions, &words("发票 抬头"), now), 0.0);
        let week_later = now + SignedDuration::from_hours(7 * 24);
        assert!(
            (learned_weight(&adoptions, &words("退款 多久 到账"), week_later) - 0.5).abs() < 1e-9
        );
        assert!((adoption_boost(1000.0) - 1.3).abs() < 1e-9);
        assert!((adoption_boost(2.0) - 1.1).abs() < 1e-9);
    }
}
