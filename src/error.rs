//! The crate error and its stable error codes.
//!
//! Every layer returns [`Error`]; [`Error::code`] gives the stable snake_case code that clients rely on.
//! Only `http::error` knows how a code becomes an HTTP status.

use std::fmt;
use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Stable, machine-readable error codes (serialised as snake_case strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// A request was malformed (bad JSON, bad query string).
    BadRequest,
    /// The query text cannot be searched (empty or too long).
    InvalidQuery,
    /// An article id is not acceptable (path traversal, control characters...).
    InvalidArticleId,
    /// An article's markdown or front matter is broken.
    InvalidArticle,
    /// No article has that id.
    ArticleNotFound,
    /// The article changed since the editor opened it (its file no longer has the hash they started from).
    ArticleChanged,
    /// An article with that id exists already (a save meant to create one).
    ArticleExists,
    /// No such route or resource.
    NotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The caller may not do this.
    Forbidden,
    /// No valid session: sign in first.
    Unauthenticated,
    /// The session expired after idle time or was revoked.
    SessionExpired,
    /// Wrong username or password (never says which).
    InvalidCredentials,
    /// Too many failed sign-ins; the account is locked for a while.
    AccountLocked,
    /// The account was disabled by an admin.
    AccountDisabled,
    /// After repeated failures a captcha must accompany sign-in.
    CaptchaRequired,
    /// The captcha answer was wrong or expired.
    CaptchaInvalid,
    /// The account uses two-step verification: send a code.
    TotpRequired,
    /// The two-step verification code was wrong.
    TotpInvalid,
    /// A state-changing request lacked the session's CSRF token.
    CsrfFailed,
    /// The password must be changed before anything else.
    PasswordChangeRequired,
    /// An admin requires two-step verification: enrol first.
    TwoFactorSetupRequired,
    /// The current password given to confirm a change was wrong.
    WrongPassword,
    /// A new password breaks the password rules.
    WeakPassword,
    /// Too many requests from this address.
    RateLimited,
    /// Another account has that username.
    UsernameTaken,
    /// No account has that id.
    AccountNotFound,
    /// No skill group has that id.
    GroupNotFound,
    /// Another skill group has that name.
    GroupNameTaken,
    /// A field's value is not acceptable.
    InvalidInput,
    /// An avatar upload is not a PNG, JPEG, GIF or WebP image.
    InvalidAvatar,
    /// An avatar upload is too large.
    AvatarTooLarge,
    /// No conversation has that id.
    ConversationNotFound,
    /// The conversation has ended or cannot take this message.
    ConversationClosed,
    /// Another agent already took the conversation.
    ConversationTaken,
    /// The agent already serves their maximum of conversations.
    AgentAtCapacity,
    /// The colleague or group cannot receive the conversation.
    TransferTargetUnavailable,
    /// A message is over the length limit.
    MessageTooLong,
    /// An upload is over the size limit.
    UploadTooLarge,
    /// An upload's name, type or content is not accepted.
    InvalidUpload,
    /// The visitor or the conversation has sent as many files (or bytes) as allowed.
    UploadQuotaExceeded,
    /// The server's disk budget for uploaded files is used up.
    UploadStorageFull,
    /// No quick reply has that id.
    QuickReplyNotFound,
    /// Another quick reply of the same scope has that shortcut.
    ShortcutTaken,
    /// An import file is unreadable as a whole (encoding, header, not an array).
    InvalidImport,
    /// The visitor or their address is on the block list (黑名单).
    VisitorBlocked,
    /// A signed visitor identity does not verify or has expired.
    IdentityInvalid,
    /// No visitor with that id.
    VisitorNotFound,
    /// The visitor is already in an open conversation, so an invitation would reach nobody.
    VisitorInConversation,
    /// No block-list entry with that id.
    BlockNotFound,
    /// No channel has that id (or the channel token is unknown).
    ChannelNotFound,
    /// WeChat's rules no longer let this visitor be answered (48 hours, or the messages allowed per
    /// visitor message are used); the message says which, in Chinese, for the agent.
    ReplyWindowClosed,
    /// The server is still loading (building the index); try again shortly.
    Starting,
    /// Several nodes run kefu and none is the desk leader right now (one is taking over), or this
    /// node has just stopped being it; try again shortly.
    NoLeader,
    /// Something went wrong on our side.
    Internal,
}

impl ErrorCode {
    /// The stable wire name of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidQuery => "invalid_query",
            ErrorCode::InvalidArticleId => "invalid_article_id",
            ErrorCode::InvalidArticle => "invalid_article",
            ErrorCode::ArticleNotFound => "article_not_found",
            ErrorCode::ArticleChanged => "article_changed",
            ErrorCode::ArticleExists => "article_exists",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::SessionExpired => "session_expired",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::AccountLocked => "account_locked",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::CaptchaRequired => "captcha_required",
            ErrorCode::CaptchaInvalid => "captcha_invalid",
            ErrorCode::TotpRequired => "totp_required",
            ErrorCode::TotpInvalid => "totp_invalid",
            ErrorCode::CsrfFailed => "csrf_failed",
            ErrorCode::PasswordChangeRequired => "password_change_required",
            ErrorCode::TwoFactorSetupRequired => "two_factor_setup_required",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::WeakPassword => "weak_password",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::AccountNotFound => "account_not_found",
            ErrorCode::GroupNotFound => "group_not_found",
            ErrorCode::GroupNameTaken => "group_name_taken",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::InvalidAvatar => "invalid_avatar",
            ErrorCode::AvatarTooLarge => "avatar_too_large",
            ErrorCode::ConversationNotFound => "conversation_not_found",
            ErrorCode::ConversationClosed => "conversation_closed",
            ErrorCode::ConversationTaken => "conversation_taken",
            ErrorCode::AgentAtCapacity => "agent_at_capacity",
            ErrorCode::TransferTargetUnavailable => "transfer_target_unavailable",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::UploadTooLarge => "upload_too_large",
            ErrorCode::InvalidUpload => "invalid_upload",
            ErrorCode::UploadQuotaExceeded => "upload_quota_exceeded",
            ErrorCode::UploadStorageFull => "upload_storage_full",
            ErrorCode::QuickReplyNotFound => "quick_reply_not_found",
            ErrorCode::ShortcutTaken => "shortcut_taken",
            ErrorCode::InvalidImport => "invalid_import",
            ErrorCode::VisitorBlocked => "visitor_blocked",
            ErrorCode::IdentityInvalid => "identity_invalid",
            ErrorCode::VisitorNotFound => "visitor_not_found",
            ErrorCode::VisitorInConversation => "visitor_in_conversation",
            ErrorCode::BlockNotFound => "block_not_found",
            ErrorCode::ChannelNotFound => "channel_not_found",
            ErrorCode::ReplyWindowClosed => "reply_window_closed",
            ErrorCode::Starting => "starting",
            ErrorCode::NoLeader => "no_leader",
            ErrorCode::Internal => "internal",
        }
    }
}

/// The crate error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The query cannot be searched.
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// Why the query was refused.
        reason: String,
    },
    /// An article id was refused.
    #[error("invalid article id `{id}`: {reason}")]
    InvalidArticleId {
        /// The refused id.
        id: String,
        /// Why it was refused.
        reason: String,
    },
    /// An article could not be parsed.
    #[error("{0}")]
    InvalidArticle(#[from] ArticleError),
    /// No article with that id.
    #[error("article `{0}` not found")]
    ArticleNotFound(String),
    /// The article's file changed since the caller read it.
    #[error("article `{0}` was changed by someone else since it was opened")]
    ArticleChanged(String),
    /// The article exists already.
    #[error("article `{0}` exists already")]
    ArticleExists(String),
    /// No such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The caller lacks a permission.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No valid session.
    #[error("sign in first")]
    Unauthenticated,
    /// The session expired or was revoked.
    #[error("the session expired; sign in again")]
    SessionExpired,
    /// Wrong username or password.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The account is locked after repeated failures.
    #[error("too many failed sign-ins; try again after {until}")]
    AccountLocked {
        /// When the lock ends.
        until: jiff::Timestamp,
    },
    /// The account is disabled.
    #[error("this account is disabled")]
    AccountDisabled,
    /// A captcha must accompany this sign-in.
    #[error("a captcha is required; fetch one from /api/v1/auth/captcha")]
    CaptchaRequired,
    /// The captcha answer was wrong or expired.
    #[error("the captcha answer is wrong or expired")]
    CaptchaInvalid,
    /// A TOTP code must accompany this sign-in.
    #[error("a two-step verification code is required")]
    TotpRequired,
    /// The TOTP or recovery code was wrong.
    #[error("the two-step verification code is wrong")]
    TotpInvalid,
    /// Missing or wrong CSRF token.
    #[error("missing or wrong X-CSRF-Token header")]
    CsrfFailed,
    /// The password must be changed first.
    #[error("change your password first")]
    PasswordChangeRequired,
    /// Two-step verification must be set up first.
    #[error("set up two-step verification first")]
    TwoFactorSetupRequired,
    /// The current password given to confirm a change was wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// The new password breaks the rules; each reason is listed.
    #[error("the new password is too weak: {}", .0.join("; "))]
    WeakPassword(Vec<String>),
    /// Too many requests from one address.
    #[error("too many requests; slow down")]
    RateLimited,
    /// The username is in use.
    #[error("username `{0}` is taken")]
    UsernameTaken(String),
    /// No account with that id.
    #[error("account {0} not found")]
    AccountNotFound(u64),
    /// No group with that id.
    #[error("skill group {0} not found")]
    GroupNotFound(u64),
    /// The group name is in use.
    #[error("skill group name `{0}` is taken")]
    GroupNameTaken(String),
    /// A field's value is not acceptable.
    #[error("{0}")]
    InvalidInput(String),
    /// An avatar is not an accepted image.
    #[error("{0}")]
    InvalidAvatar(String),
    /// An avatar is too large.
    #[error("the avatar is larger than {max_bytes} bytes")]
    AvatarTooLarge {
        /// The limit.
        max_bytes: usize,
    },
    /// No conversation with that id.
    #[error("conversation `{0}` not found")]
    ConversationNotFound(String),
    /// The conversation is not open for this.
    #[error("conversation `{0}` is closed")]
    ConversationClosed(String),
    /// Someone else has the conversation.
    #[error("conversation `{0}` was already taken")]
    ConversationTaken(String),
    /// The agent is at their maximum.
    #[error("you already serve your maximum number of conversations")]
    AgentAtCapacity,
    /// A transfer or invitation target cannot take it.
    #[error("{0}")]
    TransferTargetUnavailable(String),
    /// A message is too long.
    #[error("the message has {length} characters; at most {max} are allowed")]
    MessageTooLong {
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// An upload is too large.
    #[error("the file is larger than {max_bytes} bytes")]
    UploadTooLarge {
        /// The limit.
        max_bytes: usize,
    },
    /// An upload is refused.
    #[error("{0}")]
    InvalidUpload(String),
    /// A visitor's or a conversation's upload quota is used up; the message names which.
    #[error("{0}")]
    UploadQuotaExceeded(String),
    /// The disk budget of uploaded files is used up.
    #[error("the server has no room for more files ({budget_bytes} bytes are allowed in all)")]
    UploadStorageFull {
        /// `conversations.upload_disk_budget_bytes`.
        budget_bytes: u64,
    },
    /// No quick reply with that id.
    #[error("quick reply {0} not found")]
    QuickReplyNotFound(u64),
    /// A shortcut is in use in the scope.
    #[error("shortcut `{0}` is already used in this scope")]
    ShortcutTaken(String),
    /// An import file cannot be read at all.
    #[error("{0}")]
    InvalidImport(String),
    /// The visitor may not open conversations (the reason stays with the staff).
    #[error("this visitor is blocked")]
    VisitorBlocked,
    /// A signed identity was refused.
    #[error("identity refused: {0}")]
    IdentityInvalid(String),
    /// No visitor with that id.
    #[error("visitor `{0}` not found")]
    VisitorNotFound(String),
    /// The visitor already chats (queued or served); the message names the conversation and agent.
    #[error("{0}")]
    VisitorInConversation(String),
    /// No block with that id.
    #[error("block {0} not found")]
    BlockNotFound(u64),
    /// No channel with that id.
    #[error("channel {0} not found")]
    ChannelNotFound(u64),
    /// The visitor can no longer be answered on their channel; the message is for the agent.
    #[error("{0}")]
    ReplyWindowClosed(String),
    /// The server is still starting.
    #[error("kefu is starting (loading the index); try again in a moment")]
    Starting,
    /// No node of the cluster leads the desk at the moment.
    #[error("{0}")]
    NoLeader(String),
    /// The database failed.
    #[error("storage: {0}")]
    Storage(String),
    /// File-system failure, with the path involved.
    #[error("io error on {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Tantivy failure.
    #[error(transparent)]
    Tantivy(#[from] tantivy::TantivyError),
    /// Tantivy could not open a directory.
    #[error(transparent)]
    OpenDirectory(#[from] tantivy::directory::error::OpenDirectoryError),
    /// Any other internal failure.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::InvalidQuery { .. } => ErrorCode::InvalidQuery,
            Error::InvalidArticleId { .. } => ErrorCode::InvalidArticleId,
            Error::InvalidArticle(_) => ErrorCode::InvalidArticle,
            Error::ArticleNotFound(_) => ErrorCode::ArticleNotFound,
            Error::ArticleChanged(_) => ErrorCode::ArticleChanged,
            Error::ArticleExists(_) => ErrorCode::ArticleExists,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Unauthenticated => ErrorCode::Unauthenticated,
            Error::SessionExpired => ErrorCode::SessionExpired,
            Error::InvalidCredentials => ErrorCode::InvalidCredentials,
            Error::AccountLocked { .. } => ErrorCode::AccountLocked,
            Error::AccountDisabled => ErrorCode::AccountDisabled,
            Error::CaptchaRequired => ErrorCode::CaptchaRequired,
            Error::CaptchaInvalid => ErrorCode::CaptchaInvalid,
            Error::TotpRequired => ErrorCode::TotpRequired,
            Error::TotpInvalid => ErrorCode::TotpInvalid,
            Error::CsrfFailed => ErrorCode::CsrfFailed,
            Error::PasswordChangeRequired => ErrorCode::PasswordChangeRequired,
            Error::TwoFactorSetupRequired => ErrorCode::TwoFactorSetupRequired,
            Error::WrongPassword => ErrorCode::WrongPassword,
            Error::WeakPassword(_) => ErrorCode::WeakPassword,
            Error::RateLimited => ErrorCode::RateLimited,
            Error::UsernameTaken(_) => ErrorCode::UsernameTaken,
            Error::AccountNotFound(_) => ErrorCode::AccountNotFound,
            Error::GroupNotFound(_) => ErrorCode::GroupNotFound,
            Error::GroupNameTaken(_) => ErrorCode::GroupNameTaken,
            Error::InvalidInput(_) => ErrorCode::InvalidInput,
            Error::InvalidAvatar(_) => ErrorCode::InvalidAvatar,
            Error::AvatarTooLarge { .. } => ErrorCode::AvatarTooLarge,
            Error::ConversationNotFound(_) => ErrorCode::ConversationNotFound,
            Error::ConversationClosed(_) => ErrorCode::ConversationClosed,
            Error::ConversationTaken(_) => ErrorCode::ConversationTaken,
            Error::AgentAtCapacity => ErrorCode::AgentAtCapacity,
            Error::TransferTargetUnavailable(_) => ErrorCode::TransferTargetUnavailable,
            Error::MessageTooLong { .. } => ErrorCode::MessageTooLong,
            Error::UploadTooLarge { .. } => ErrorCode::UploadTooLarge,
            Error::InvalidUpload(_) => ErrorCode::InvalidUpload,
            Error::UploadQuotaExceeded(_) => ErrorCode::UploadQuotaExceeded,
            Error::UploadStorageFull { .. } => ErrorCode::UploadStorageFull,
            Error::QuickReplyNotFound(_) => ErrorCode::QuickReplyNotFound,
            Error::ShortcutTaken(_) => ErrorCode::ShortcutTaken,
            Error::InvalidImport(_) => ErrorCode::InvalidImport,
            Error::VisitorBlocked => ErrorCode::VisitorBlocked,
            Error::IdentityInvalid(_) => ErrorCode::IdentityInvalid,
            Error::VisitorNotFound(_) => ErrorCode::VisitorNotFound,
            Error::VisitorInConversation(_) => ErrorCode::VisitorInConversation,
            Error::BlockNotFound(_) => ErrorCode::BlockNotFound,
            Error::ChannelNotFound(_) => ErrorCode::ChannelNotFound,
            Error::ReplyWindowClosed(_) => ErrorCode::ReplyWindowClosed,
            Error::Starting => ErrorCode::Starting,
            Error::NoLeader(_) => ErrorCode::NoLeader,
            Error::Storage(_)
            | Error::Io { .. }
            | Error::Tantivy(_)
            | Error::OpenDirectory(_)
            | Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// Wraps an io error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// A file that could not become an article, with where and why. Kept here rather than in `articles`,
/// which produces it, because [`Error::InvalidArticle`] carries it and `error` imports nothing internal.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ArticleError {
    /// Path relative to the knowledge base, `/`-separated.
    pub file: String,
    /// 1-based line of the problem (1 when the whole file is at fault).
    pub line: usize,
    /// What is wrong, in lowercase English.
    pub reason: String,
}

impl fmt::Display for ArticleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

impl std::error::Error for ArticleError {}
