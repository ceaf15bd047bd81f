//! Webhooks for admins: `/api/v1/admin/webhooks` and their deliveries.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::AuditKind;
use crate::domain::{Delivery, Webhook};
use crate::error::Result;
use crate::http::access::{Admin, ClientIp};
use crate::http::error::ErrorBody;
use crate::http::extract::{AppJson, AppPath};
use crate::http::routes::admin::audit_change;
use crate::http::{off_thread, AppState};
use crate::services::webhooks::WebhookInput;

/// Routes under `/api/v1/admin/webhooks`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(test))
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
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<(StatusCode, Json<Webhook>)> {
    let by = admin.account.id;
    let webhook = off_thread(&state.webhooks, move |webhooks| webhooks.create(input, by)).await?;
    audit_change(
        &state,
        AuditKind::WebhookChanged,
        format!("webhook:{}", webhook.id),
        admin.actor(ip),
        format!("registered {} ({})", webhook.url, events_text(&webhook)),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(webhook)))
}

fn events_text(webhook: &Webhook) -> String {
    webhook
        .events
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(",")
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
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<WebhookInput>,
) -> Result<Json<Webhook>> {
    let before = state.webhooks.get(id)?;
    let after = off_thread(&state.webhooks, move |webhooks| webhooks.update(id, input)).await?;
    let mut changes = Vec::new();
    if before.url != after.url {
        changes.push(format!("url: {} → {}", before.url, after.url));
    }
    if before.events != after.events {
        changes.push(format!(
            "events: {} → {}",
            events_text(&before),
            events_text(&after)
        ));
    }
    if before.enabled != after.enabled {
        changes.push(format!("enabled: {} → {}", before.enabled, after.enabled));
    }
    if before.secret != after.secret {
        // Never the secret itself.
        changes.push("secret replaced".into());
    }
    if !changes.is_empty() {
        audit_change(
            &state,
            AuditKind::WebhookChanged,
            format!("webhook:{id}"),
            admin.actor(ip),
            changes.join("; "),
        )
        .await?;
    }
    Ok(Json(after))
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
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Webhook>> {
    let removed = off_thread(&state.webhooks, move |webhooks| webhooks.delete(id)).await?;
    audit_change(
        &state,
        AuditKind::WebhookChanged,
        format!("webhook:{id}"),
        admin.actor(ip),
        format!("removed {}", removed.url),
    )
    .await?;
    Ok(Json(removed))
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

/// Sends a `ping` event to the webhook now, once, and answers the delivery with its outcome (also
/// listed in the delivery log, where it can be redelivered).
#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{id}/test",
    tag = "webhooks",
    params(("id" = u64, Path, description = "Webhook id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The test delivery: `succeeded` or `failed` with the receiver's status or the error", body = Delivery),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn test(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Delivery>> {
    let delivery = off_thread(&state.webhooks, move |webhooks| webhooks.test(id)).await?;
    let outcome = match (&delivery.last_status, &delivery.last_error) {
        (_, None) => "succeeded".to_string(),
        (_, Some(error)) => format!("failed: {error}"),
    };
    audit_change(
        &state,
        AuditKind::WebhookChanged,
        format!("webhook:{id}"),
        admin.actor(ip),
        format!("test delivery {}: {outcome}", delivery.id),
    )
    .await?;
    Ok(Json(delivery))
}
