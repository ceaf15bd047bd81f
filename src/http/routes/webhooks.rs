//! Webhooks for admins: `/api/v1/admin/webhooks` and their deliveries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Delivery, Webhook};
use crate::error::Result;
use crate::http::access::Admin;
use crate::http::error::ErrorBody;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{off_thread, AppState};
use crate::services::webhooks::WebhookInput;

/// Routes under `/api/v1/admin/webhooks`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
}

#[derive(Debug, Serialize, ToSchema)]
struct WebhookList {
    webhooks: Vec<Webhook>,
}

#[derive(Debug, Serialize, ToSchema)]
struct DeliveryList {
    deliveries: Vec<Delivery>,
}

/// Every webhook.
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks",
    tag = "webhooks",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every webhook", body = WebhookList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<WebhookList>> {
    Ok(Json(WebhookList {
        webhooks: state.webhooks.list()?,
    }))
}

/// Registers a webhook; `events` default to all, `secret` is generated when absent.
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks",
    tag = "webhooks",
    request_body = WebhookInput,
    security(("session" = [])),
    responses(
        (status = 201, description = "The webhook", body = Webhook),
        (status = 400, description = "`invalid_input` (not an http(s) URL, an unknown event, no events, a short secret) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<(StatusCode, Json<Webhook>)> {
    let by = admin.account.id;
    let webhook = off_thread(&state.webhooks, move |webhooks| webhooks.create(input, by)).await?;
    Ok((StatusCode::CREATED, Json(webhook)))
}

/// One webhook.
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/{id}",
    tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The webhook", body = Webhook),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn show(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Webhook>> {
    Ok(Json(state.webhooks.get(id)?))
}

/// Changes any of url, events, secret, enabled; `{"enabled": false}` pauses it.
#[utoipa::path(
    patch,
    path = "/api/v1/admin/webhooks/{id}",
    tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    request_body = WebhookInput,
    security(("session" = [])),
    responses(
        (status = 200, description = "The webhook", body = Webhook),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn update(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<Json<Webhook>> {
    Ok(Json(
        off_thread(&state.webhooks, move |webhooks| webhooks.update(id, input)).await?,
    ))
}

/// Removes a webhook with its deliveries; answers the removed webhook.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/webhooks/{id}",
    tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The removed webhook", body = Webhook),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn remove(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Webhook>> {
    Ok(Json(
        off_thread(&state.webhooks, move |webhooks| webhooks.delete(id)).await?,
    ))
}

/// The newest deliveries of a webhook, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/{id}/deliveries",
    tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The newest 100 deliveries with their outcome", body = DeliveryList),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn deliveries(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<DeliveryList>> {
    Ok(Json(DeliveryList {
        deliveries: state.webhooks.deliveries(id)?,
    }))
}

/// Sends a delivery again now, with a fresh round of attempts.
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "webhooks",
    params(
        ("id" = u64, Path, description = "Webhook id"),
        ("delivery" = u64, Path, description = "Delivery id"),
    ),
    security(("session" = [])),
    responses(
        (status = 200, description = "The delivery, pending again", body = Delivery),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn redeliver(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath((id, delivery)): AppPath<(u64, u64)>,
) -> Result<Json<Delivery>> {
    Ok(Json(
        off_thread(&state.webhooks, move |webhooks| {
            webhooks.redeliver(id, delivery)
        })
        .await?,
    ))
}
