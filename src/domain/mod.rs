//! Plain data and validation shared by every layer: no IO, no async.

pub mod account;
pub mod article;

pub use account::{
    Account, AccountId, AccountView, AuditEntry, AuditKind, Avatar, GroupId, Presence,
    PresenceChange, PresenceStatus, Role, SendKey, Settings, SkillGroup, TwoFactor,
};
pub use article::{Article, ArticleId, ArticleStatus, Section};
