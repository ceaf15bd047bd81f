//! Liveness and readiness.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::http::error::ErrorBody;
use crate::http::AppState;

/// `GET /healthz`, `GET /readyz`
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Readiness {
    /// Always `ready`.
    status: &'static str,
    /// Articles in the index, drafts included.
    articles: u64,
    /// Segments of the index.
    index_segments: usize,
}

/// The state exists only once the index is open and in step with `kb/` and the database is open, so
/// answering at all means ready; the body says what is loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready: the index and the database are open", body = Readiness),
        (status = 503, description = "`starting`: `kefu serve` is still opening the database and the index (every route but `/healthz` answers so meanwhile)", body = ErrorBody),
    ),
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Readiness>> {
    let index = state.knowledge.index();
    Ok(Json(Readiness {
        status: "ready",
        articles: index.article_count(),
        index_segments: index.segment_count(),
    }))
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "Alive", body = Health)),
)]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}
