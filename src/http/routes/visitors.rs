//! Visitor identity for the chat page: a token scoped to one visitor and, later, their conversation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::error::Result;
use crate::http::access::{Visitor, VISITOR_TOKEN_PREFIX};
use crate::http::{blocking, AppState};
use crate::services::accounts::VisitorGrant;

/// Routes under `/api/v1/visitors`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(new_visitor))
        .routes(routes!(whoami))
}

#[derive(Debug, Serialize, ToSchema)]
struct NewVisitor {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    #[serde(flatten)]
    grant: VisitorGrant,
}

#[utoipa::path(
    post,
    path = "/api/v1/visitors",
    tag = "visitors",
    security(()),
    responses(
        (status = 201, description = "A new visitor and their token", body = NewVisitor),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/visitors/me",
    tag = "visitors",
    security(("visitor" = [])),
    responses(
        (status = 200, description = "What the token grants", body = VisitorGrant),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ),
)]
async fn whoami(visitor: Visitor) -> Json<VisitorGrant> {
    Json(visitor.grant)
}
