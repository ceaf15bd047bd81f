//! Accounts of the service desk: agents, supervisors, editors and admins, their skill groups, personal
//! settings and presence. Plain data; storage and rules live in `storage` and `services::accounts`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Stable numeric id of an account.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct AccountId(pub u64);

/// Stable numeric id of a skill group (技能组).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct GroupId(pub u64);

/// What an account may do; an account may hold several.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including accounts, groups and the audit log.
    Admin,
    /// Watches and steers the conversations of the groups they belong to.
    Supervisor,
    /// Chats with visitors.
    Agent,
    /// Writes knowledge-base articles.
    Editor,
}

impl Role {
    /// Every role, for parsing and listing.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Supervisor, Role::Agent, Role::Editor];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Supervisor => "supervisor",
            Role::Agent => "agent",
            Role::Editor => "editor",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// An agent's availability, used by routing and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PresenceStatus {
    /// Takes new conversations.
    Online,
    /// Signed in, takes no new conversations.
    Busy,
    /// Away from the desk (set by hand or after idle time).
    Away,
    /// Not at work.
    Offline,
}

/// The current presence and when it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Presence {
    /// The status.
    pub status: PresenceStatus,
    /// When the status was set.
    pub since: Timestamp,
    /// Set by the idle timer rather than by the agent; activity then restores `online`.
    #[serde(default)]
    pub automatic: bool,
}

/// Which key sends a message in the chat box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SendKey {
    /// Enter sends, Shift+Enter breaks the line.
    #[default]
    Enter,
    /// Ctrl+Enter sends, Enter breaks the line.
    #[serde(rename = "Ctrl+Enter")]
    CtrlEnter,
}

/// Personal settings (个人设置) an agent edits themselves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settings {
    /// Sent to the visitor when a conversation starts; empty means none.
    pub greeting: String,
    /// Play a sound on new messages.
    pub sound: bool,
    /// Show desktop notifications.
    pub desktop_notifications: bool,
    /// Which key sends.
    pub send_key: SendKey,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            greeting: String::new(),
            sound: true,
            desktop_notifications: true,
            send_key: SendKey::Enter,
        }
    }
}

/// Two-step verification state; secrets never leave the service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TwoFactor {
    /// Base32 TOTP secret once enrolment is confirmed.
    pub secret: Option<String>,
    /// Secret offered at enrolment and not yet confirmed with a code.
    pub pending_secret: Option<String>,
    /// Hashes of the unused recovery codes.
    pub recovery_code_hashes: Vec<String>,
    /// An admin requires this account to use two-step verification.
    pub required: bool,
    /// Last accepted time step, so a code cannot be replayed.
    pub last_step: Option<u64>,
}

impl TwoFactor {
    /// Whether sign-in asks for a code.
    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }
}

/// Metadata of an uploaded avatar; the bytes are stored apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Avatar {
    /// MIME type of the stored image.
    pub content_type: String,
    /// Upload time, also used as a cache-busting version.
    pub updated: Timestamp,
}

/// A stored account, secrets included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Id.
    pub id: AccountId,
    /// Sign-in name, unique ignoring case.
    pub username: String,
    /// Name shown to visitors and colleagues.
    pub display_name: String,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Skill groups the account belongs to.
    pub groups: BTreeSet<GroupId>,
    /// Most conversations handled at once.
    pub max_concurrent: u32,
    /// A disabled account cannot sign in and its sessions are gone.
    pub disabled: bool,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Sign-in succeeds but nothing else is allowed until the password is changed.
    pub must_change_password: bool,
    /// Two-step verification.
    pub two_factor: TwoFactor,
    /// Personal settings.
    pub settings: Settings,
    /// Avatar, if one was uploaded.
    pub avatar: Option<Avatar>,
    /// Current presence.
    pub presence: Presence,
    /// Creation time.
    pub created: Timestamp,
    /// Employee number (工号), unique when set; empty when none.
    #[serde(default)]
    pub employee_no: String,
    /// Last successful sign-in.
    #[serde(default)]
    pub last_login: Option<Timestamp>,
}

impl Account {
    /// Whether the account holds `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The account as others may see it: no secrets.
    pub fn view(&self) -> AccountView {
        AccountView {
            id: self.id,
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            roles: self.roles.clone(),
            groups: self.groups.clone(),
            max_concurrent: self.max_concurrent,
            disabled: self.disabled,
            must_change_password: self.must_change_password,
            two_factor_enabled: self.two_factor.enabled(),
            two_factor_required: self.two_factor.required,
            avatar_url: self.avatar.as_ref().map(|avatar| {
                format!(
                    "/api/v1/accounts/{}/avatar?v={}",
                    self.id.0,
                    avatar.updated.as_millisecond()
                )
            }),
            presence: self.presence,
            created: self.created,
            employee_no: self.employee_no.clone(),
            last_login: self.last_login,
        }
    }
}

/// An account without its secrets, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    /// Id.
    pub id: AccountId,
    /// Sign-in name.
    pub username: String,
    /// Name shown to visitors.
    pub display_name: String,
    /// Roles.
    pub roles: BTreeSet<Role>,
    /// Skill groups.
    pub groups: BTreeSet<GroupId>,
    /// Most conversations at once.
    pub max_concurrent: u32,
    /// Disabled accounts cannot sign in.
    pub disabled: bool,
    /// The password must be changed before anything else.
    pub must_change_password: bool,
    /// Sign-in asks for a TOTP code.
    pub two_factor_enabled: bool,
    /// An admin requires two-step verification.
    pub two_factor_required: bool,
    /// Where the avatar is served, if there is one.
    pub avatar_url: Option<String>,
    /// Current presence.
    pub presence: Presence,
    /// Creation time.
    pub created: Timestamp,
    /// Employee number (工号); empty when none.
    #[serde(default)]
    pub employee_no: String,
    /// Last successful sign-in, if any.
    #[serde(default)]
    pub last_login: Option<Timestamp>,
}

/// A skill group (技能组): conversations are routed to a group's agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SkillGroup {
    /// Id.
    pub id: GroupId,
    /// Unique name, e.g. 售后.
    pub name: String,
    /// What the group handles.
    pub description: String,
    /// Creation time.
    pub created: Timestamp,
}

/// A security event kept in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// Signed in.
    LoginSucceeded,
    /// A sign-in attempt was refused.
    LoginFailed,
    /// Too many failures locked the account.
    AccountLocked,
    /// Signed out.
    Logout,
    /// The password was changed by its owner.
    PasswordChanged,
    /// An admin reset the password.
    PasswordReset,
    /// Roles changed.
    RolesChanged,
    /// An account was created.
    AccountCreated,
    /// An account was disabled.
    AccountDisabled,
    /// A disabled account was enabled again.
    AccountEnabled,
    /// Two-step verification enabled, disabled or required.
    TwoFactorChanged,
    /// Sessions were revoked.
    SessionsRevoked,
    /// A visitor or address range was put on the block list.
    VisitorBlocked,
    /// A block was lifted.
    VisitorUnblocked,
    /// An admin changed an account's display name, employee number, skill groups or concurrency.
    AccountChanged,
    /// A skill group was created, renamed, or its members or routing changed.
    GroupChanged,
    /// A desk setting changed (problem types, survey, timers, automatic messages, uploads).
    SettingsChanged,
    /// A site of signed identities was added, renamed, removed or its secret rotated.
    SiteChanged,
    /// A webhook was registered, changed, removed or tested.
    WebhookChanged,
    /// The knowledge base's dictionary, synonyms or category names changed.
    KnowledgeChanged,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Sequence number, increasing.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: AuditKind,
    /// The account concerned (the username typed, for failed sign-ins).
    pub account: String,
    /// Who did it, when someone else than `account` (e.g. the admin).
    pub actor: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Extra detail, e.g. the failure reason or the new roles.
    pub detail: String,
}

/// A presence change, kept for statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    /// The agent.
    pub account: AccountId,
    /// The new status.
    pub status: PresenceStatus,
    /// When.
    pub at: Timestamp,
    /// Set by the idle timer.
    pub automatic: bool,
}

/// A signed-in session as stored; it is stored under the BLAKE3 hash of its token, so a copy of the
/// database holds no usable session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Public id (the hash's first 8 bytes in hex), for listing and revoking.
    pub id: String,
    /// Whose session.
    pub account: AccountId,
    /// Must accompany every state-changing request.
    pub csrf_token: String,
    /// Sign-in time.
    pub created: Timestamp,
    /// Last request (written at most once a minute).
    pub last_seen: Timestamp,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// `User-Agent` at sign-in, cut.
    pub user_agent: Option<String>,
}
