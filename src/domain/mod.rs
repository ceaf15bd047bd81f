//! Plain data and validation shared by every layer: no IO, no async.

pub mod account;
pub mod article;
pub mod channel;
pub mod conversation;
pub mod limits;
pub mod quick_reply;
pub mod stats;
pub mod suggestion;
pub mod visitor;
pub mod webhook;

pub use account::{
    Account, AccountId, AccountView, AuditEntry, AuditKind, Avatar, GroupId, Presence,
    PresenceChange, PresenceStatus, Role, SendKey, SessionRecord, Settings, SkillGroup, TwoFactor,
};
pub use article::{Article, ArticleId, ArticleStatus, Section};
pub use channel::{
    Channel, ChannelError, ChannelKind, ChannelLink, ChannelVisitor, OutboundItem, ReplyGrant,
};
pub use conversation::{
    Attachment, Conversation, ConversationState, DayHours, GroupRouting, Message, PendingTransfer,
    QueueEntry, QueueStatus, Rating, RoutingMode, SenderKind, UploadUsage, VisitorIdentity,
    WorkingHours, WrapUp, MAX_MESSAGE_CHARS, VISITOR_NAME_UNKNOWN,
};
pub use quick_reply::{QuickReply, ReplyScope, MAX_REPLY_CHARS};
pub use suggestion::{Suggestion, SuggestionKind};
pub use visitor::{
    Block, ClientInfo, Invitation, Location, PageView, SiteIdentity, VisitorGrant, VisitorProfile,
};
pub use webhook::{Delivery, DeliveryStatus, Webhook, CHANNEL_WEBHOOK_EVENTS, WEBHOOK_EVENTS};
