//! The crate error and its stable error codes.
//!
//! Every layer returns [`Error`]; [`Error::code`] gives the stable snake_case code that clients rely on.
//! Only `http::error` knows how a code becomes an HTTP status.

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
    /// No such route or resource.
    NotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The caller may not do this.
    Forbidden,
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
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Forbidden => "forbidden",
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
        reason: &'static str,
    },
    /// An article could not be parsed.
    #[error("{0}")]
    InvalidArticle(#[from] crate::articles::ArticleError),
    /// No article with that id.
    #[error("article `{0}` not found")]
    ArticleNotFound(String),
    /// No such route or resource.
    #[error("{0}")]
    NotFound(String),
    /// The route exists but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The caller lacks a permission.
    #[error("forbidden: {0}")]
    Forbidden(String),
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
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Io { .. } | Error::Tantivy(_) | Error::OpenDirectory(_) | Error::Internal(_) => {
                ErrorCode::Internal
            }
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
