//! Channels for admins (`/api/v1/admin/channels`): create, list, change, rotate secrets, test,
//! delete, and the API channel's delivery log; and the reply window of a WeChat conversation for
//! the agents serving it (`/api/v1/conversations/{id}/reply-window`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::channels::{ChannelInput, ChannelTest, ChannelView, ChannelWithSecrets, ReplyWindow};
use crate::domain::Delivery;
use crate::error::{Error, Result};
use crate::http::access::{authorize, Admin, Authenticated, Permission};
use crate::http::error::ErrorBody;
use crate::http::extract::{AppJson, AppPath};
use crate::http::{off_thread, AppState};

/// Routes under `/api/v1/admin/channels` and the reply window.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_channels, create_channel))
        .routes(routes!(get_channel, update_channel, delete_channel))
        .routes(routes!(rotate_channel))
        .routes(routes!(test_channel))
        .routes(routes!(channel_deliveries))
        .routes(routes!(reply_window))
}

#[derive(Debug, Serialize, ToSchema)]
struct ChannelList {
    channels: Vec<ChannelView>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ChannelDeliveries {
    deliveries: Vec<Delivery>,
}

/// Every channel, without secrets.
#[utoipa::path(
    get,
    path = "/api/v1/admin/channels",
    tag = "channels",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every channel with its callback URL and recent errors", body = ChannelList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_channels(State(state): State<AppState>, Admin(_): Admin) -> Json<ChannelList> {
    Json(ChannelList {
        channels: state.channels.list(),
    })
}

/// Creates a channel; the secrets kefu made are in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/admin/channels",
    tag = "channels",
    request_body = ChannelInput,
    security(("session" = [])),
    responses(
        (status = 201, description = "The channel and its secrets, shown once", body = ChannelWithSecrets),
        (status = 400, description = "`invalid_input` (no kind, a field of another kind, a missing AppID or secret, a bad Token or EncodingAESKey, not an http(s) webhook URL) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    ),
)]
async fn create_channel(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppJson(input): AppJson<ChannelInput>,
) -> Result<(StatusCode, Json<ChannelWithSecrets>)> {
    let by = admin.account.id;
    let created = off_thread(&state.channels, move |channels| channels.create(input, by)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// One channel, without secrets.
#[utoipa::path(
    get,
    path = "/api/v1/admin/channels/{id}",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The channel", body = ChannelView),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`channel_not_found`", body = ErrorBody),
    ),
)]
async fn get_channel(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<ChannelView>> {
    Ok(Json(state.channels.get(id)?))
}

/// Changes the given fields (name, enabled, group, webhook URL, AppID, secrets).
#[utoipa::path(
    patch,
    path = "/api/v1/admin/channels/{id}",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id")),
    request_body = ChannelInput,
    security(("session" = [])),
    responses(
        (status = 200, description = "The channel", body = ChannelView),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`channel_not_found` or `group_not_found`", body = ErrorBody),
    ),
)]
async fn update_channel(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<ChannelInput>,
) -> Result<Json<ChannelView>> {
    let view = off_thread(&state.channels, move |channels| channels.update(id, input)).await?;
    Ok(Json(view))
}

/// Removes a channel; its conversations stay in the history with their label.
#[utoipa::path(
    delete,
    path = "/api/v1/admin/channels/{id}",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The removed channel", body = ChannelView),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`channel_not_found`", body = ErrorBody),
    ),
)]
async fn delete_channel(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<ChannelView>> {
    let view = off_thread(&state.channels, move |channels| channels.delete(id)).await?;
    Ok(Json(view))
}

/// New secrets, shown once: the API channel's token and webhook secret, or the callback Token and
/// EncodingAESKey (to enter in WeChat's console again).
#[utoipa::path(
    post,
    path = "/api/v1/admin/channels/{id}/rotate",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The channel and its new secrets, shown once", body = ChannelWithSecrets),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`channel_not_found`", body = ErrorBody),
    ),
)]
async fn rotate_channel(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<ChannelWithSecrets>> {
    let rotated = off_thread(&state.channels, move |channels| channels.rotate(id)).await?;
    Ok(Json(rotated))
}

/// The "test" button: a signed `ping` to the API channel's webhook, or a fresh access token from
/// WeChat; a failure is also kept among the channel's errors.
#[utoipa::path(
    post,
    path = "/api/v1/admin/channels/{id}/test",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Whether it worked and what came back", body = ChannelTest),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`channel_not_found`", body = ErrorBody),
    ),
)]
async fn test_channel(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<ChannelTest>> {
    let outcome = off_thread(&state.channels, move |channels| channels.test(id)).await?;
    Ok(Json(outcome))
}

/// The API channel's webhook deliveries (replies, typing, end, rating requests), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/admin/channels/{id}/deliveries",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The newest 100 deliveries", body = ChannelDeliveries),
        (status = 400, description = "`bad_request`, or `invalid_input` for a WeChat channel (it has no webhook)", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`channel_not_found`", body = ErrorBody),
    ),
)]
async fn channel_deliveries(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<ChannelDeliveries>> {
    let channel = state.channels.channel(id)?;
    let webhook = channel.webhook.ok_or_else(|| {
        Error::InvalidInput("only API channels deliver webhooks; see the channel's errors".into())
    })?;
    let deliveries = off_thread(&state.webhooks, move |webhooks| {
        webhooks.deliveries(webhook)
    })
    .await?;
    Ok(Json(ChannelDeliveries { deliveries }))
}

/// Whether the serving agent may still answer (WeChat: 48 hours and 5 messages per visitor
/// message); `limited: false` for web and API conversations.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/reply-window",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The reply window", body = ReplyWindow),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Not a participant (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
)]
async fn reply_window(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<String>,
) -> Result<Json<ReplyWindow>> {
    let conversation = state.conversations.conversation(&id)?;
    authorize(
        &caller.account,
        Permission::assist(&conversation, caller.account.id),
    )?;
    let window = off_thread(&state.channels, move |channels| {
        channels.reply_window(&conversation)
    })
    .await?;
    Ok(Json(window))
}
