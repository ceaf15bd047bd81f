//! Quick replies (快捷回复): texts an agent inserts instead of typing, shared by the team, a skill
//! group, or kept by one agent.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{AccountId, GroupId};

/// Longest quick-reply content, in characters (the same as a chat message).
pub const MAX_REPLY_CHARS: usize = 5000;

/// Who shares a quick reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyScope {
    /// Everyone at the desk; managed by supervisors.
    Team,
    /// One skill group; managed by that group's supervisors.
    Group {
        /// The group.
        group: GroupId,
    },
    /// One agent's own.
    Personal {
        /// The owner.
        owner: AccountId,
    },
}

impl ReplyScope {
    /// Compact text form used in CSV files and the search index: `team`, `group:3`, `personal:7`.
    pub fn key(self) -> String {
        match self {
            ReplyScope::Team => "team".to_string(),
            ReplyScope::Group { group } => format!("group:{}", group.0),
            ReplyScope::Personal { owner } => format!("personal:{}", owner.0),
        }
    }
}

/// A quick reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuickReply {
    /// Id.
    pub id: u64,
    /// Who shares it.
    pub scope: ReplyScope,
    /// Short title shown in the picker.
    pub title: String,
    /// The text; `{访客昵称}`, `{客服昵称}` and `{当前时间}` are filled when it is sent.
    pub content: String,
    /// Category path, e.g. `售后/退货退款`.
    pub category: String,
    /// Shortcut code, e.g. `/tk`; unique within its scope.
    pub shortcut: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// MIME type of the attached image, when there is one.
    pub image: Option<String>,
    /// Who wrote it.
    pub created_by: AccountId,
    /// Last change.
    pub updated: Timestamp,
}
