//! Who may do what: every permission check of the HTTP layer goes through [`authorize`].
//!
//! Until accounts exist every caller is trusted with every permission; the accounts issue replaces the
//! body of [`authorize`] with a role check against the session, and no route changes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::Error;

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Create, replace and delete knowledge-base articles (editors).
    EditArticles,
    /// See draft articles in search results (editors).
    ReadDrafts,
}

/// Decides whether the request may use `permission`.
///
/// Returns [`Error::Forbidden`] when it may not.
pub fn authorize(_headers: &HeaderMap, permission: Permission) -> Result<(), Error> {
    match permission {
        Permission::EditArticles | Permission::ReadDrafts => Ok(()),
    }
}

/// Proof, as an extractor, that the caller may edit articles.
pub struct CanEditArticles;

impl<S: Send + Sync> FromRequestParts<S> for CanEditArticles {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        authorize(&parts.headers, Permission::EditArticles)?;
        Ok(CanEditArticles)
    }
}
