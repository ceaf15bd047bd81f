//! Visitor identity for the chat page: a token scoped to one visitor and, later, their conversation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::error::Result;
use crate::http::access::{Visitor, VISITOR_TOKEN_PREFIX};
use crate::http::{blocking, AppState};
use crate::services::accounts::VisitorGrant;

/// Routes under `/api/v1/visitors`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/visitors", post(new_visitor))
        .route("/api/v1/visitors/me", get(whoami))
}

#[derive(Debug, Serialize)]
struct NewVisitor {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    #[serde(flatten)]
    grant: VisitorGrant,
}

async fn new_visitor(State(state): State<AppState>) -> Result<(StatusCode, Json<NewVisitor>)> {
    let (token, grant) = blocking(&state, |accounts| accounts.issue_visitor_token()).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewVisitor {
            token: format!("{VISITOR_TOKEN_PREFIX}{token}"),
            grant,
        }),
    ))
}

async fn whoami(visitor: Visitor) -> Json<VisitorGrant> {
    Json(visitor.grant)
}
