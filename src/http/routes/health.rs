//! Liveness and readiness.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::error::Result;
use crate::http::AppState;

/// `GET /healthz`, `GET /readyz`
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
}

/// The state exists only once the index is open and in step with `kb/` and the database is open, so
/// answering at all means ready; the body says what is loaded.
async fn ready(State(state): State<AppState>) -> Result<Json<Value>> {
    let articles = state.knowledge.index().article_count();
    let segments = state.knowledge.index().segment_count();
    Ok(Json(
        json!({"status": "ready", "articles": articles, "index_segments": segments}),
    ))
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
