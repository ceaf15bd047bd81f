//! Webhooks for admins: `/api/v1/admin/webhooks` and their deliveries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::{Delivery, Webhook};
use crate::error::{Error, Result};
use crate::http::access::Admin;
use crate::http::extract::{AppJson, AppPath};
use crate::http::AppState;
use crate::services::webhooks::WebhookInput;

/// Routes under `/api/v1/admin/webhooks`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/webhooks", get(list).post(create))
        .route(
            "/api/v1/admin/webhooks/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/api/v1/admin/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/api/v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(redeliver),
        )
}

#[derive(Debug, Serialize)]
struct WebhookList {
    webhooks: Vec<Webhook>,
}

#[derive(Debug, Serialize)]
struct DeliveryList {
    deliveries: Vec<Delivery>,
}

/// The webhook store is sled: quick, but it flushes, so it runs off the async threads.
async fn off_thread<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&crate::services::webhooks::WebhookService) -> Result<T> + Send + 'static,
) -> Result<T> {
    let webhooks = std::sync::Arc::clone(&state.webhooks);
    tokio::task::spawn_blocking(move || work(&webhooks))
        .await
        .map_err(|error| Error::Internal(format!("webhook task failed: {error}")))?
}

async fn list(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<WebhookList>> {
    Ok(Json(WebhookList {
        webhooks: state.webhooks.list()?,
    }))
}

async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<(StatusCode, Json<Webhook>)> {
    let by = admin.account.id;
    let webhook = off_thread(&state, move |webhooks| webhooks.create(input, by)).await?;
    Ok((StatusCode::CREATED, Json(webhook)))
}

async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Webhook>> {
    Ok(Json(state.webhooks.get(id)?))
}

async fn update(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<Json<Webhook>> {
    Ok(Json(
        off_thread(&state, move |webhooks| webhooks.update(id, input)).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Webhook>> {
    Ok(Json(
        off_thread(&state, move |webhooks| webhooks.delete(id)).await?,
    ))
}

async fn deliveries(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<DeliveryList>> {
    Ok(Json(DeliveryList {
        deliveries: state.webhooks.deliveries(id)?,
    }))
}

async fn redeliver(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath((id, delivery)): AppPath<(u64, u64)>,
) -> Result<Json<Delivery>> {
    Ok(Json(
        off_thread(&state, move |webhooks| webhooks.redeliver(id, delivery)).await?,
    ))
}
