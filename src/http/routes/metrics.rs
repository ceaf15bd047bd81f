//! `GET /metrics` for Prometheus. Public like `/healthz`: it is scraped from inside the network and
//! tells no secrets (counts, latencies, sizes).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::Result;
use crate::http::error::ErrorBody;
use crate::http::{blocking, AppState};
use crate::services::metrics::{DeskGauges, CONTENT_TYPE};

/// `GET /metrics`
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics (no sign-in: scraped from inside the network).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "The metrics in OpenMetrics text", content_type = "application/openmetrics-text"),
        (status = 500, description = "The database size could not be read", body = ErrorBody),
    ),
)]
async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let gauges = desk_gauges(&state).await?;
    let body = state.metrics.render(&gauges)?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response())
}

/// Reads the figures their owners already keep, so nothing has to be kept in step by hand.
async fn desk_gauges(state: &AppState) -> Result<DeskGauges> {
    // Listing groups and sizing the database walk sled and the data folder: off the async workers.
    let (groups, db_bytes) = blocking(state, |accounts| {
        Ok((accounts.list_groups()?, accounts.store().size_on_disk()?))
    })
    .await?;
    let (mut queued, active_conversations) = state.conversations.open_counts();
    let mut queues: Vec<(String, String, u64)> = groups
        .into_iter()
        .map(|group| {
            let waiting = queued.remove(&Some(group.id)).unwrap_or(0);
            (group.id.0.to_string(), group.name, waiting)
        })
        .collect();
    // Conversations for no group, or for a group deleted meanwhile.
    for (group, waiting) in queued {
        let id = group.map_or_else(|| "none".to_string(), |group| group.0.to_string());
        queues.push((id, String::new(), waiting));
    }
    let (visitor_sockets, agent_sockets) = state.conversations.hub().connection_counts();
    let index = state.knowledge.index();
    Ok(DeskGauges {
        queues,
        active_conversations,
        visitor_sockets: visitor_sockets as u64,
        agent_sockets: agent_sockets as u64,
        index_segments: index.segment_count() as u64,
        articles: index.article_count(),
        db_bytes,
    })
}
