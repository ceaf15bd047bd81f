//! The one place where errors become HTTP responses: status by error code, body `{"code", "message"}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::error::{Error, ErrorCode};

/// The JSON error body every route and socket uses.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"code": "invalid_query", "message": "invalid query: query is empty"}))]
pub struct ErrorBody {
    /// Stable snake_case code (docs/API.md lists them); clients act on it.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// Human-readable explanation (English; the UI shows its own text per code).
    pub message: String,
}

/// HTTP status for an error code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::InvalidQuery
        | ErrorCode::InvalidArticleId
        | ErrorCode::InvalidArticle
        | ErrorCode::WrongPassword
        | ErrorCode::WeakPassword
        | ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthenticated
        | ErrorCode::SessionExpired
        | ErrorCode::InvalidCredentials
        | ErrorCode::CaptchaRequired
        | ErrorCode::CaptchaInvalid
        | ErrorCode::TotpRequired
        | ErrorCode::TotpInvalid => StatusCode::UNAUTHORIZED,
        ErrorCode::AccountLocked => StatusCode::LOCKED,
        ErrorCode::AccountDisabled
        | ErrorCode::CsrfFailed
        | ErrorCode::PasswordChangeRequired
        | ErrorCode::TwoFactorSetupRequired => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::UsernameTaken | ErrorCode::GroupNameTaken => StatusCode::CONFLICT,
        ErrorCode::AccountNotFound | ErrorCode::GroupNotFound => StatusCode::NOT_FOUND,
        ErrorCode::InvalidAvatar => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::ConversationNotFound => StatusCode::NOT_FOUND,
        ErrorCode::ConversationClosed
        | ErrorCode::ConversationTaken
        | ErrorCode::AgentAtCapacity
        | ErrorCode::TransferTargetUnavailable
        | ErrorCode::VisitorInConversation
        | ErrorCode::ReplyWindowClosed => StatusCode::CONFLICT,
        ErrorCode::MessageTooLong | ErrorCode::UploadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::InvalidUpload => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UploadQuotaExceeded => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UploadStorageFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::QuickReplyNotFound => StatusCode::NOT_FOUND,
        ErrorCode::ShortcutTaken | ErrorCode::ArticleChanged | ErrorCode::ArticleExists => {
            StatusCode::CONFLICT
        }
        ErrorCode::InvalidImport => StatusCode::BAD_REQUEST,
        ErrorCode::VisitorBlocked => StatusCode::FORBIDDEN,
        ErrorCode::IdentityInvalid => StatusCode::UNAUTHORIZED,
        ErrorCode::VisitorNotFound | ErrorCode::BlockNotFound | ErrorCode::ChannelNotFound => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::Starting | ErrorCode::NoLeader => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::AvatarTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::ArticleNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let message = if code == ErrorCode::Internal {
            // The cause stays in the log; clients learn only that it was our fault.
            tracing::error!(error = %self, "internal error");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            code: code.as_str(),
            message,
        };
        (status_of(code), Json(body)).into_response()
    }
}
