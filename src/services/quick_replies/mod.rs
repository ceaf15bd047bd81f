//! Quick replies (快捷回复): storage, the in-memory search index, usage counts, variables, CSV and JSON
//! import and export, and the starter set seeded at first start.
//!
//! Who may read or change which reply is decided in `http::access`; this service is told the scopes a
//! caller may see and checks nothing about roles itself.

use std::collections::BTreeSet;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::domain::limits::MAX_REPLY_QUERY_CHARS;
use crate::domain::limits::{
    MAX_REPLY_CATEGORY_CHARS, MAX_REPLY_TAGS, MAX_REPLY_TAG_CHARS, MAX_REPLY_TITLE_CHARS,
    MAX_SHORTCUT_CHARS,
};
use crate::domain::{AccountId, GroupId, QuickReply, ReplyScope, MAX_REPLY_CHARS};
use crate::error::{Error, Result};
use crate::search::{Analyzer, ReplyIndex, ReplyMatch};
use crate::services::clock::Clock;
use crate::storage::{
    QuickReplyRepository, SettingsRepository, Store, StoredQuickReplies, StoredSettings, UnitOfWork,
};

mod csv_io;

pub use csv_io::{export_csv, export_json, ImportReport, ReplyRecord, RowError};

/// The starter set, seeded once into an empty desk.
const STARTER_CSV: &str = include_str!("starter.csv");
/// Key in the meta tree recording that the starter set was seeded (deleting them all must not bring
/// them back).
const SEEDED_KEY: &str = "quick_replies_seeded";
/// Time zone of `{当前时间}`.
const DISPLAY_TIME_ZONE: &str = "Asia/Shanghai";

/// A reply as written by a caller; `personal` replies belong to the caller.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyInput {
    /// `team`, `group` (with `group`) or `personal`.
    pub scope: ScopeInput,
    /// Title.
    pub title: String,
    /// Text.
    pub content: String,
    /// Category path.
    #[serde(default)]
    pub category: String,
    /// Shortcut code, `/` and 1-20 of `a-z 0-9 _ -`.
    #[serde(default)]
    pub shortcut: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The scope as a caller names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScopeInput {
    /// Everyone.
    Team,
    /// A skill group.
    Group {
        /// The group.
        group: GroupId,
    },
    /// The caller's own.
    Personal,
}

impl ScopeInput {
    /// The stored scope for `caller`.
    pub fn resolve(self, caller: AccountId) -> ReplyScope {
        match self {
            ScopeInput::Team => ReplyScope::Team,
            ScopeInput::Group { group } => ReplyScope::Group { group },
            ScopeInput::Personal => ReplyScope::Personal { owner: caller },
        }
    }
}

/// A reply with what the caller needs around it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplyView {
    /// The reply.
    #[serde(flatten)]
    pub reply: QuickReply,
    /// Times the caller sent it.
    pub usage: u64,
    /// Where its image is served, when it has one.
    pub image_url: Option<String>,
}

/// A search hit.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReplySearchHit {
    /// The reply.
    #[serde(flatten)]
    pub view: ReplyView,
    /// How it matched.
    pub matched: ReplyMatch,
    /// Within-kind relevance.
    pub score: f32,
}

/// The quick-reply service.
pub struct QuickReplyService {
    replies: Arc<dyn QuickReplyRepository>,
    settings: Arc<dyn SettingsRepository>,
    unit_of_work: UnitOfWork,
    index: ReplyIndex,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for QuickReplyService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("QuickReplyService")
            .finish_non_exhaustive()
    }
}

impl QuickReplyService {
    /// Loads every reply into the index; at first start seeds the starter set as team replies of
    /// `seed_author`.
    pub fn open(
        store: Store,
        analyzer: Arc<Analyzer>,
        clock: Arc<dyn Clock>,
        seed_author: AccountId,
    ) -> Result<QuickReplyService> {
        let service = QuickReplyService {
            index: ReplyIndex::new(analyzer)?,
            replies: Arc::new(StoredQuickReplies::new(&store)),
            settings: Arc::new(StoredSettings::new(&store)),
            unit_of_work: UnitOfWork::new(&store),
            clock,
        };
        if service.settings.document(SEEDED_KEY)?.is_none() {
            let report = service.import_csv(STARTER_CSV.as_bytes(), seed_author, &|_| Ok(()))?;
            if !report.errors.is_empty() {
                return Err(Error::Internal(format!(
                    "the starter quick replies have errors: {:?}",
                    report.errors
                )));
            }
            service.settings.put_document(SEEDED_KEY, "1")?;
            service.unit_of_work.make_durable()?;
        }
        let all = service.replies.replies()?;
        service.index.upsert(&all)?;
        Ok(service)
    }

    /// One reply.
    pub fn get(&self, id: u64) -> Result<QuickReply> {
        self.replies.reply(id)?.ok_or(Error::QuickReplyNotFound(id))
    }

    /// Replies in `scopes`, by category then title, with `agent`'s usage.
    pub fn list(
        &self,
        scopes: &[ReplyScope],
        category: Option<&str>,
        agent: AccountId,
    ) -> Result<Vec<ReplyView>> {
        let mut replies: Vec<QuickReply> = self
            .replies
            .replies()?
            .into_iter()
            .filter(|reply| scopes.contains(&reply.scope))
            .filter(|reply| {
                category.is_none_or(|wanted| {
                    reply.category == wanted || reply.category.starts_with(&format!("{wanted}/"))
                })
            })
            .collect();
        replies.sort_by(|left, right| {
            (&left.category, &left.title, left.id).cmp(&(&right.category, &right.title, right.id))
        });
        replies
            .into_iter()
            .map(|reply| self.view(reply, agent))
            .collect()
    }

    /// The reply with `agent`'s usage.
    pub fn view(&self, reply: QuickReply, agent: AccountId) -> Result<ReplyView> {
        let usage = self.usage(agent, reply.id)?;
        let image_url = reply.image.as_ref().map(|_| {
            format!(
                "/api/v1/quick-replies/{}/image?v={}",
                reply.id,
                reply.updated.as_millisecond()
            )
        });
        Ok(ReplyView {
            reply,
            usage,
            image_url,
        })
    }

    /// Creates a reply.
    pub fn create(&self, author: AccountId, input: ReplyInput) -> Result<QuickReply> {
        let scope = input.scope.resolve(author);
        let reply = self.validated(None, scope, author, input)?;
        self.save(&reply)?;
        Ok(reply)
    }

    /// Replaces a reply's fields (and possibly its scope).
    pub fn update(&self, id: u64, editor: AccountId, input: ReplyInput) -> Result<QuickReply> {
        let existing = self.get(id)?;
        let scope = match input.scope {
            // Editing someone's personal reply keeps its owner (only the owner gets here anyway).
            ScopeInput::Personal => match existing.scope {
                ReplyScope::Personal { owner } => ReplyScope::Personal { owner },
                _ => ReplyScope::Personal { owner: editor },
            },
            other => other.resolve(editor),
        };
        let mut reply = self.validated(Some(id), scope, existing.created_by, input)?;
        reply.image = existing.image;
        self.save(&reply)?;
        Ok(reply)
    }

    /// Deletes a reply and its image.
    pub fn delete(&self, id: u64) -> Result<()> {
        self.get(id)?;
        self.replies.remove_reply(id)?;
        self.unit_of_work.make_durable()?;
        self.index.remove(id)
    }

    fn save(&self, reply: &QuickReply) -> Result<()> {
        self.replies.put_reply(reply)?;
        self.unit_of_work.make_durable()?;
        self.index.upsert(std::slice::from_ref(reply))
    }

    fn validated(
        &self,
        id: Option<u64>,
        scope: ReplyScope,
        author: AccountId,
        input: ReplyInput,
    ) -> Result<QuickReply> {
        // Admins may manage every group's replies, including groups that do not exist: without this a
        // reply could be filed under a group nobody can ever be a member of, and so never be seen.
        if let ReplyScope::Group { group } = scope {
            if !self.replies.group_exists(group)? {
                return Err(Error::GroupNotFound(group.0));
            }
        }
        let title = input.title.trim().to_string();
        if title.is_empty() || title.chars().count() > MAX_REPLY_TITLE_CHARS {
            return Err(Error::InvalidInput(format!(
                "a title is 1-{MAX_REPLY_TITLE_CHARS} characters"
            )));
        }
        let content = input.content.trim().to_string();
        if content.is_empty() || content.chars().count() > MAX_REPLY_CHARS {
            return Err(Error::InvalidInput(format!(
                "content is 1-{MAX_REPLY_CHARS} characters"
            )));
        }
        let category = input
            .category
            .split('/')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        if category.chars().count() > MAX_REPLY_CATEGORY_CHARS {
            return Err(Error::InvalidInput(format!(
                "a category is at most {MAX_REPLY_CATEGORY_CHARS} characters"
            )));
        }
        let tags: Vec<String> = input
            .tags
            .iter()
            .map(|tag| tag.trim().to_string())
            .filter(|tag| !tag.is_empty())
            .collect();
        if tags.len() > MAX_REPLY_TAGS
            || tags
                .iter()
                .any(|tag| tag.chars().count() > MAX_REPLY_TAG_CHARS)
        {
            return Err(Error::InvalidInput(format!(
                "at most {MAX_REPLY_TAGS} tags of at most {MAX_REPLY_TAG_CHARS} characters"
            )));
        }
        let shortcut = match input
            .shortcut
            .as_deref()
            .map(str::trim)
            .filter(|code| !code.is_empty())
        {
            Some(code) => {
                let code = code.to_lowercase();
                let code = if code.starts_with('/') {
                    code
                } else {
                    format!("/{code}")
                };
                let valid = (2..=MAX_SHORTCUT_CHARS).contains(&code.len())
                    && code[1..].chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'
                    });
                if !valid {
                    return Err(Error::InvalidInput(format!(
                        "shortcut `{code}` must be `/` and 1-20 of a-z, 0-9, `_`, `-`"
                    )));
                }
                if self.index.shortcut_taken(&scope.key(), &code, id) {
                    return Err(Error::ShortcutTaken(code));
                }
                Some(code)
            }
            None => None,
        };
        Ok(QuickReply {
            id: match id {
                Some(id) => id,
                None => self.replies.new_id()?,
            },
            scope,
            title,
            content,
            category,
            shortcut,
            tags,
            image: None,
            created_by: author,
            updated: self.clock.now(),
        })
    }

    // ----- search and usage -----

    /// Replies in `scopes` matching `text`: by kind of match, then by `agent`'s usage, then relevance.
    pub fn search(
        &self,
        text: &str,
        scopes: &[ReplyScope],
        agent: AccountId,
        limit: usize,
    ) -> Result<Vec<ReplySearchHit>> {
        if text.chars().nth(MAX_REPLY_QUERY_CHARS).is_some() {
            return Err(Error::InvalidQuery {
                reason: format!("at most {MAX_REPLY_QUERY_CHARS} characters"),
            });
        }
        let keys: Vec<String> = scopes.iter().map(|scope| scope.key()).collect();
        let mut hits = Vec::new();
        for hit in self.index.search(text, &keys, limit.max(1) * 3)? {
            let Ok(reply) = self.get(hit.id) else {
                continue;
            };
            hits.push(ReplySearchHit {
                view: self.view(reply, agent)?,
                matched: hit.matched,
                score: hit.score,
            });
        }
        hits.sort_by(|left, right| {
            left.matched
                .cmp(&right.matched)
                .then(right.view.usage.cmp(&left.view.usage))
                .then(right.score.total_cmp(&left.score))
        });
        hits.truncate(limit);
        Ok(hits)
    }

    /// Times `agent` sent reply `id`.
    pub fn usage(&self, agent: AccountId, id: u64) -> Result<u64> {
        self.replies.usage(agent, id)
    }

    /// `body` as it is sent with the quick replies `ids` inserted into it: each must exist and be one
    /// the sender may read (`may_read` of its scope), and their variables are then filled for this
    /// conversation. A body without quick replies is sent as typed, braces and all.
    ///
    /// Errors: [`Error::QuickReplyNotFound`] for a reply that does not exist or that the sender may
    /// not read, so that its id tells nothing of others' replies.
    pub fn fill_inserted(
        &self,
        ids: &[u64],
        may_read: &dyn Fn(ReplyScope) -> bool,
        body: &str,
        visitor_name: &str,
        agent_name: &str,
        now: Timestamp,
    ) -> Result<String> {
        if ids.is_empty() {
            return Ok(body.to_string());
        }
        for id in ids {
            if !may_read(self.get(*id)?.scope) {
                return Err(Error::QuickReplyNotFound(*id));
            }
        }
        Ok(fill_variables(body, visitor_name, agent_name, now))
    }

    /// Counts one use of each reply by `agent` (a message may combine several), as one unit of work
    /// that does not wait for PostgreSQL's WAL flush: usage counts rank the agent's replies, and the
    /// agent's message is already stored when they are counted.
    pub fn record_use(&self, agent: AccountId, ids: &[u64]) -> Result<()> {
        // In id order, so two counts at once never wait on each other in a cycle.
        let distinct: BTreeSet<u64> = ids.iter().copied().collect();
        self.unit_of_work
            .run_relaxed(|| self.count_uses(agent, &distinct))
    }

    fn count_uses(&self, agent: AccountId, distinct: &BTreeSet<u64>) -> Result<()> {
        for &id in distinct {
            self.replies.count_use(agent, id)?;
        }
        Ok(())
    }

    // ----- images -----

    /// Attaches an image (checked like an avatar) to a reply.
    pub fn set_image(&self, id: u64, bytes: &[u8], max_bytes: usize) -> Result<QuickReply> {
        let content_type = crate::services::images::check_image(bytes, max_bytes)?;
        let mut reply = self.get(id)?;
        self.replies.put_image(id, bytes)?;
        reply.image = Some(content_type.to_string());
        reply.updated = self.clock.now();
        self.save(&reply)?;
        Ok(reply)
    }

    /// A reply's image.
    pub fn image(&self, id: u64) -> Result<Option<(String, Vec<u8>)>> {
        let reply = self.get(id)?;
        let Some(content_type) = reply.image else {
            return Ok(None);
        };
        Ok(self.replies.image(id)?.map(|bytes| (content_type, bytes)))
    }

    /// Every reply in `scopes`, for export.
    pub fn all_in(&self, scopes: &[ReplyScope]) -> Result<Vec<QuickReply>> {
        Ok(self
            .replies
            .replies()?
            .into_iter()
            .filter(|reply| scopes.contains(&reply.scope))
            .collect())
    }

    /// Imports rows, each checked by `may_write` for its scope; bad rows are reported by line and
    /// skipped, good ones stored.
    pub fn import_rows(
        &self,
        rows: Vec<(usize, ReplyInput)>,
        author: AccountId,
        may_write: &dyn Fn(ReplyScope) -> Result<()>,
    ) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let mut created = Vec::new();
        for (line, input) in rows {
            let scope = input.scope.resolve(author);
            let outcome =
                may_write(scope).and_then(|()| self.validated(None, scope, author, input));
            match outcome {
                Ok(reply) => {
                    self.replies.put_reply(&reply)?;
                    // So that a duplicate shortcut later in the same file is caught.
                    self.index.remember_shortcut(&reply);
                    created.push(reply);
                }
                Err(error) => report.errors.push(RowError {
                    line,
                    reason: error.to_string(),
                }),
            }
        }
        self.unit_of_work.make_durable()?;
        self.index.upsert(&created)?;
        report.imported = created.len();
        Ok(report)
    }
}

pub use crate::domain::VISITOR_NAME_UNKNOWN;

/// Fills `{访客昵称}`, `{客服昵称}` and `{当前时间}`: in quick replies and suggestions when they are
/// sent, and in an agent's greeting (欢迎语).
pub fn fill_variables(text: &str, visitor_name: &str, agent_name: &str, now: Timestamp) -> String {
    let time = jiff::tz::TimeZone::get(DISPLAY_TIME_ZONE)
        .map(|zone| now.to_zoned(zone).strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| now.to_string());
    text.replace("{访客昵称}", visitor_name)
        .replace("{客服昵称}", agent_name)
        .replace("{当前时间}", &time)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::clock::ManualClock;

    fn service(folder: &std::path::Path) -> QuickReplyService {
        let store = Store::open(folder).unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-25T08:05:00Z".parse().unwrap()));
        QuickReplyService::open(store, Arc::new(Analyzer::new()), clock, AccountId(1)).unwrap()
    }

    fn reply(scope: ScopeInput, title: &str) -> ReplyInput {
        ReplyInput {
            scope,
            title: title.into(),
            content: "您好{访客昵称}，我是{客服昵称}".into(),
            category: String::new(),
            shortcut: None,
            tags: Vec::new(),
        }
    }

    #[test]
    fn inserted_replies_are_checked_by_scope_before_their_variables_are_filled() {
        let folder = tempfile::tempdir().unwrap();
        let replies = service(folder.path());
        let team = replies
            .create(AccountId(1), reply(ScopeInput::Team, "团队问候"))
            .unwrap();
        let someone_elses = replies
            .create(AccountId(7), reply(ScopeInput::Personal, "别人的问候"))
            .unwrap();
        let now: Timestamp = "2026-11-25T08:05:00Z".parse().unwrap();
        let team_only = |scope: ReplyScope| scope == ReplyScope::Team;
        let body = "您好{访客昵称}，我是{客服昵称}，现在是{当前时间}";

        let filled = replies
            .fill_inserted(&[team.id], &team_only, body, "王女士", "小美", now)
            .unwrap();
        assert_eq!(filled, "您好王女士，我是小美，现在是2026-11-25 16:05");

        // One reply the sender may not read refuses the whole message, as if it did not exist.
        let refused = replies.fill_inserted(
            &[team.id, someone_elses.id],
            &team_only,
            body,
            "王女士",
            "小美",
            now,
        );
        assert!(
            matches!(refused, Err(Error::QuickReplyNotFound(id)) if id == someone_elses.id),
            "{refused:?}"
        );
        let missing = replies.fill_inserted(&[987_654], &|_| true, body, "王女士", "小美", now);
        assert!(matches!(missing, Err(Error::QuickReplyNotFound(987_654))));

        // Typed text is sent as typed.
        let typed = replies
            .fill_inserted(&[], &team_only, body, "王女士", "小美", now)
            .unwrap();
        assert_eq!(typed, body);
    }

    #[test]
    fn variables_are_filled_in_shanghai_time() {
        let now: Timestamp = "2026-11-25T08:05:00Z".parse().unwrap();
        let filled = fill_variables(
            "您好{访客昵称}，我是{客服昵称}，现在是{当前时间}",
            "王女士",
            "小美",
            now,
        );
        assert_eq!(filled, "您好王女士，我是小美，现在是2026-11-25 16:05");
    }
}
