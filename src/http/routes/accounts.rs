//! What any signed-in colleague (and a visitor, for avatars) may see of accounts and groups.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::{AccountId, SkillGroup};
use crate::error::{Error, Result};
use crate::http::access::Authenticated;
use crate::http::extract::AppPath;
use crate::http::AppState;

/// Routes under `/api/v1/accounts` and `/api/v1/groups`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{id}/avatar", get(avatar))
        .route("/api/v1/groups", get(list_groups))
}

/// Public: the visitor's chat page shows the agent's avatar.
async fn avatar(State(state): State<AppState>, AppPath(id): AppPath<u64>) -> Result<Response> {
    let image = state
        .accounts
        .avatar(AccountId(id))?
        .ok_or_else(|| Error::NotFound(format!("account {id} has no avatar")))?;
    Ok((
        [
            (header::CONTENT_TYPE, image.content_type),
            (header::CACHE_CONTROL, "public, max-age=86400".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        image.bytes,
    )
        .into_response())
}

#[derive(Debug, Serialize)]
struct GroupList {
    groups: Vec<SkillGroup>,
}

/// Every colleague sees the groups (to pick one when transferring a conversation).
async fn list_groups(
    State(state): State<AppState>,
    Authenticated(_): Authenticated,
) -> Result<Json<GroupList>> {
    Ok(Json(GroupList {
        groups: state.accounts.list_groups()?,
    }))
}
