//! Conversations of the live-chat desk: the conversation, its queue entry, its messages, wrap-up and
//! rating. Plain data; rules live in `services::conversations`, storage in `storage::conversations`,
//! and the API's form of conversations and messages in `services::conversations` (`wire.rs`).

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{AccountId, GroupId};

/// Longest message body, in characters.
pub const MAX_MESSAGE_CHARS: usize = 5000;

/// Where a conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConversationState {
    /// Waiting for an agent.
    Queued,
    /// An agent is serving it.
    Active,
    /// Ended by the agent, the visitor or the idle timer.
    Ended,
    /// The visitor left before anyone accepted.
    Abandoned,
    /// Nobody was available: the visitor left a message (留言) to be answered later.
    OfflineMessage,
}

impl ConversationState {
    /// Whether messages can still be exchanged.
    pub fn is_open(self) -> bool {
        matches!(self, ConversationState::Queued | ConversationState::Active)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    /// The visitor.
    Visitor,
    /// An agent, to the visitor.
    Agent,
    /// The desk itself (accepted, transferred, ended...).
    System,
    /// An internal note between colleagues: never shown to the visitor.
    Internal,
}

/// A file attached to a message, stored by content hash under the data folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attachment {
    /// BLAKE3 hex of the content.
    pub hash: String,
    /// The name the uploader gave, cleaned of any path.
    pub name: String,
    /// Sniffed MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// Files and bytes uploaded so far, by one visitor or into one conversation (their quotas).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadUsage {
    /// Files.
    pub files: u64,
    /// Bytes of those files together.
    pub bytes: u64,
}

/// One message of a conversation, as stored (the API sends `MessageView`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Position in the conversation, from 1, without gaps.
    pub seq: u64,
    /// Who wrote it.
    pub kind: SenderKind,
    /// The agent who wrote it (agent and internal messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AccountId>,
    /// Name shown with the message.
    pub sender_name: String,
    /// Text.
    pub body: String,
    /// Files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// When it was stored.
    pub at: Timestamp,
    /// The sender's idempotency key, so a resend is recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

/// What the visitor told us about themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorIdentity {
    /// Nickname (访客昵称).
    #[serde(default)]
    pub name: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// The shop's own user id, when the widget knows it.
    #[serde(default)]
    pub external_id: Option<String>,
}

impl VisitorIdentity {
    /// Refuses a field over its limit (`invalid_input`).
    pub fn check_lengths(&self) -> crate::error::Result<()> {
        use super::limits::*;
        check_optional_length(
            "identity.name",
            self.name.as_deref(),
            MAX_VISITOR_NAME_CHARS,
        )?;
        check_optional_length(
            "identity.phone",
            self.phone.as_deref(),
            MAX_VISITOR_PHONE_CHARS,
        )?;
        check_optional_length(
            "identity.email",
            self.email.as_deref(),
            MAX_VISITOR_EMAIL_CHARS,
        )?;
        check_optional_length(
            "identity.external_id",
            self.external_id.as_deref(),
            MAX_EXTERNAL_ID_CHARS,
        )
    }
}

/// A transfer waiting for its receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PendingTransfer {
    /// The agent handing over.
    pub from: AccountId,
    /// Receiving group, when transferred to a group.
    pub to_group: Option<GroupId>,
    /// Receiving agent, when transferred to a person (or once a group member was chosen).
    pub to_agent: Option<AccountId>,
    /// Shown to the receiver.
    pub note: String,
    /// When it was requested.
    pub at: Timestamp,
}

/// The agent's summary (会话小结) of an ended conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WrapUp {
    /// Problem type (问题类型), a path in the category tree such as `售后/退款`.
    pub problem_type: String,
    /// How it was resolved.
    pub resolution: String,
    /// Free tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Satisfaction as judged by the agent, 1-5.
    #[serde(default)]
    pub satisfaction: Option<u8>,
    /// Who wrote it.
    pub by: AccountId,
    /// When.
    pub at: Timestamp,
}

/// The visitor's rating at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rating {
    /// 1-5 stars.
    pub stars: u8,
    /// Optional comment.
    pub comment: String,
    /// When.
    pub at: Timestamp,
}

/// A conversation between a visitor and the desk, as stored (the API sends `ConversationView`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Id, `c_` + random.
    pub id: String,
    /// The visitor.
    pub visitor_id: String,
    /// What the visitor told about themselves.
    pub identity: VisitorIdentity,
    /// Channel, e.g. `web`.
    pub channel: String,
    /// The page the visitor was on.
    pub page: Option<String>,
    /// The skill group wanted; `None` for any agent.
    pub group: Option<GroupId>,
    /// State.
    pub state: ConversationState,
    /// The serving agent.
    pub agent: Option<AccountId>,
    /// Colleagues invited to help (see everything, write internal notes).
    pub invited: BTreeSet<AccountId>,
    /// A transfer waiting for its receiver.
    pub pending_transfer: Option<PendingTransfer>,
    /// Creation time.
    pub created: Timestamp,
    /// When the current agent was assigned.
    pub assigned_at: Option<Timestamp>,
    /// First agent message after the assignment (unanswered-assignment timer).
    pub answered_at: Option<Timestamp>,
    /// Last visitor message, or the last assignment if later: where the idle timer starts.
    pub last_visitor_activity: Timestamp,
    /// Whether the idle reminder was sent since the visitor's last message.
    pub idle_reminded: bool,
    /// End time.
    pub ended_at: Option<Timestamp>,
    /// Who ended it: `visitor`, `agent` or `idle`.
    pub ended_by: Option<String>,
    /// The agent's summary.
    pub wrap_up: Option<WrapUp>,
    /// The visitor's rating.
    pub rating: Option<Rating>,
    /// The first assignment ever; the time from `created` to it is the conversation's queue wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_assigned_at: Option<Timestamp>,
    /// The visitor's oldest message no agent has answered yet; an agent's reply measures its response
    /// time from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_reply_since: Option<Timestamp>,
}

/// The name of a visitor who gave none: on their messages and for `{访客昵称}`.
pub const VISITOR_NAME_UNKNOWN: &str = "访客";

impl Conversation {
    /// The name shown with the visitor's messages, and `{访客昵称}`: their nickname, or 访客. Stored
    /// once, on the conversation; messages get it when they are read (see `storage::conversations`).
    pub fn visitor_name(&self) -> &str {
        self.identity
            .name
            .as_deref()
            .unwrap_or(VISITOR_NAME_UNKNOWN)
    }
}

/// Where a queue entry stands (kept apart from the conversation, like Rocket.Chat's inquiries). Entries
/// of served conversations stay in the store as `taken`: their wait is what statistics measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueStatus {
    /// Waiting for an agent.
    Waiting,
    /// Routed to an agent who has not answered yet; back to `waiting` if they do not in time.
    Offered,
    /// An agent accepted it or answered.
    Taken,
}

/// A conversation's place in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The conversation.
    pub conversation: String,
    /// The group it waits for.
    pub group: Option<GroupId>,
    /// Status.
    pub status: QueueStatus,
    /// Ordering key: when it (re)entered the queue; a returning conversation gets an early time.
    pub since: Timestamp,
    /// Agents that let an assignment lapse unanswered; not offered again.
    #[serde(default)]
    pub declined_by: BTreeSet<AccountId>,
    /// The visitor was told the wait is long and may leave a message.
    #[serde(default)]
    pub leave_offered: bool,
    /// The agent it was offered to (automatic routing) or who took it.
    #[serde(default)]
    pub agent: Option<AccountId>,
    /// When it left the waiting state.
    #[serde(default)]
    pub assigned_at: Option<Timestamp>,
}

/// How a skill group's queue is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoutingMode {
    /// Assigned automatically: a returning visitor to the agent who served them last (历史坐席优先)
    /// when that agent can take it, otherwise to the least-loaded online agent of the group.
    #[default]
    Auto,
    /// Assigned automatically to the least-loaded online agent of the group, whoever served the
    /// visitor before.
    LeastLoaded,
    /// Agents see the queue and accept.
    Manual,
}

/// Working hours (工作时间) of a group, in its time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkingHours {
    /// IANA time zone, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// Working days, 1 = Monday … 7 = Sunday.
    pub days: Vec<u8>,
    /// Opening time, `HH:MM`.
    pub start: String,
    /// Closing time, `HH:MM`.
    pub end: String,
    /// Other hours on some working days (e.g. Saturday 10:00-16:00); each day at most once and
    /// among `days`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub day_hours: Vec<DayHours>,
    /// Dates (`YYYY-MM-DD`, in `time_zone`) without work, e.g. public holidays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holidays: Vec<String>,
}

/// The hours of one weekday that differ from a group's usual ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayHours {
    /// 1 = Monday … 7 = Sunday.
    pub day: u8,
    /// Opening time, `HH:MM`.
    pub start: String,
    /// Closing time, `HH:MM`.
    pub end: String,
}

/// Routing settings of a skill group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRouting {
    /// Automatic or manual.
    #[serde(default)]
    pub mode: RoutingMode,
    /// When the group works; `None` means always.
    #[serde(default)]
    pub working_hours: Option<WorkingHours>,
    /// Shown to visitors outside working hours or when nobody is online.
    #[serde(default = "default_off_hours_message")]
    pub off_hours_message: String,
    /// Posted to a visitor whose conversation joins the group's queue.
    #[serde(default = "default_queue_message")]
    pub queue_message: String,
    /// Most conversations waiting for this group at once; later ones become offline messages (留言).
    /// `None`: only the desk-wide `conversations.max_queue` applies.
    #[serde(default)]
    pub max_queue: Option<usize>,
}

fn default_off_hours_message() -> String {
    "您好，当前客服不在线。请留下您的问题和联系方式，我们会尽快回复您。".to_string()
}

fn default_queue_message() -> String {
    "正在为您接入客服，请稍候。".to_string()
}

impl Default for GroupRouting {
    fn default() -> Self {
        GroupRouting {
            mode: RoutingMode::Auto,
            working_hours: None,
            off_hours_message: default_off_hours_message(),
            queue_message: default_queue_message(),
            max_queue: None,
        }
    }
}
