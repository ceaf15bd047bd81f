//! HTTP: the axum router over the services. Only this module knows about status codes and JSON shapes.

pub mod access;
pub mod error;
pub mod extract;
mod routes;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::services::KnowledgeService;

/// Largest request body accepted (an article is at most 1 MiB of markdown, JSON-escaped).
const MAX_BODY_BYTES: usize = 4 << 20;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The knowledge base.
    pub knowledge: Arc<KnowledgeService>,
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::health::router())
        .merge(routes::kb::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> crate::error::Error {
    crate::error::Error::NotFound(format!("no route for {}", uri.path()))
}
