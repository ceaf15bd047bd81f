//! The API channel over REST (`/api/v1/channels/api/…`), for the app's server with the channel
//! token: users, conversations, messages, files, typing, the end and the rating. Replies come back
//! as webhook deliveries (docs/API.md, "API channel").

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

use crate::channels::api_channel::{ApiConversation, ApiMessage, ApiStart, ApiUser, ApiVisitor};
use crate::domain::{Attachment, Rating};
use crate::error::{Error, Result};
use crate::http::access::ApiChannel;
use crate::http::error::ErrorBody;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::{off_thread, AppState};
use crate::services::conversations::{message_views, ConversationView, MessageView};

/// Routes under `/api/v1/channels/api`; uploads may be as large as the `max_upload_bytes` in force
/// (read at each upload, as for the web page's uploads).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(find_visitor))
        .routes(routes!(start_conversation))
        .routes(routes!(get_conversation))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(upload_file).layer(DefaultBodyLimit::disable()))
        .routes(routes!(download_file))
        .routes(routes!(set_typing))
        .routes(routes!(end_conversation))
        .routes(routes!(rate_conversation))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AfterParams {
    /// Messages after this seq (0: all).
    #[serde(default)]
    after: u64,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct FileParams {
    /// The file's name (its extension names the type its content must have).
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiMessageList)]
struct MessageList {
    messages: Vec<MessageView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Typing {
    /// Started (true) or stopped.
    typing: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RatingRequest {
    /// 1-5.
    stars: u8,
    /// Optional comment.
    #[serde(default)]
    comment: String,
}

/// Finds or creates the app's user as a desk visitor; tells their open conversation.
#[utoipa::path(
    post,
    path = "/api/v1/channels/api/visitors",
    tag = "channels",
    request_body = ApiUser,
    security(("channel" = [])),
    responses(
        (status = 200, description = "The visitor", body = ApiVisitor),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` (no or unknown channel token), or `identity_invalid`", body = ErrorBody),
    ),
)]
async fn find_visitor(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppJson(user): AppJson<ApiUser>,
) -> Result<Json<ApiVisitor>> {
    let visitor = off_thread(&state.channels, move |channels| {
        channels.api_visitor(&channel, &user)
    })
    .await?;
    Ok(Json(visitor))
}

/// Starts the user's conversation with a first message (queued, or a message left for later), or
/// adds the message to their open one.
#[utoipa::path(
    post,
    path = "/api/v1/channels/api/conversations",
    tag = "channels",
    request_body = ApiStart,
    security(("channel" = [])),
    responses(
        (status = 201, description = "The conversation as the user sees it, with its messages", body = ApiConversation),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 413, description = "`message_too_long`: over `conversations.max_message_chars`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `identity_invalid`", body = ErrorBody),
        (status = 403, description = "`visitor_blocked`", body = ErrorBody),
    ),
)]
async fn start_conversation(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppJson(start): AppJson<ApiStart>,
) -> Result<(StatusCode, Json<ApiConversation>)> {
    let started = state.channels.api_start(&channel, start).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// A conversation of this channel as its user sees it, with every message.
#[utoipa::path(
    get,
    path = "/api/v1/channels/api/conversations/{id}",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)")),
    security(("channel" = [])),
    responses(
        (status = 200, description = "The conversation", body = ApiConversation),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found` (also another channel's)", body = ErrorBody),
    ),
)]
async fn get_conversation(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath(id): AppPath<String>,
) -> Result<Json<ApiConversation>> {
    let conversation = state.channels.own_conversation(&channel, &id)?;
    let view = state
        .channels
        .api_conversation(&channel, &id, conversation.visitor_id)?;
    Ok(Json(view))
}

/// The messages after `after` (no internal notes).
#[utoipa::path(
    get,
    path = "/api/v1/channels/api/conversations/{id}/messages",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)"), AfterParams),
    security(("channel" = [])),
    responses(
        (status = 200, description = "Messages, in order", body = MessageList),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
)]
async fn list_messages(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<AfterParams>,
) -> Result<Json<MessageList>> {
    let messages = state.channels.api_messages(&channel, &id, params.after)?;
    Ok(Json(MessageList {
        messages: message_views(messages),
    }))
}

/// A message from the user; a resend with the same `client_key` answers the stored message.
#[utoipa::path(
    post,
    path = "/api/v1/channels/api/conversations/{id}/messages",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)")),
    request_body = ApiMessage,
    security(("channel" = [])),
    responses(
        (status = 201, description = "The stored message", body = MessageView),
        (status = 400, description = "`invalid_input` (no text or file) or `bad_request`", body = ErrorBody),
        (status = 413, description = "`message_too_long`: over `conversations.max_message_chars`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 403, description = "`visitor_blocked`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_closed`: start a new conversation", body = ErrorBody),
        (status = 415, description = "`invalid_upload`: a file not uploaded to this conversation", body = ErrorBody),
    ),
)]
async fn post_message(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath(id): AppPath<String>,
    AppJson(message): AppJson<ApiMessage>,
) -> Result<(StatusCode, Json<MessageView>)> {
    let stored = state.channels.api_message(&channel, &id, message).await?;
    Ok((StatusCode::CREATED, Json(MessageView::from(stored))))
}

/// A file from the user (the body; `?name=` gives its name); send it in a message by its hash.
#[utoipa::path(
    post,
    path = "/api/v1/channels/api/conversations/{id}/files",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)"), FileParams),
    request_body(content = Vec<u8>, description = "The file", content_type = "application/octet-stream"),
    security(("channel" = [])),
    responses(
        (status = 201, description = "Stored", body = Attachment),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_closed`", body = ErrorBody),
        (status = 413, description = "`upload_too_large` or `upload_quota_exceeded`", body = ErrorBody),
        (status = 415, description = "`invalid_upload`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
        (status = 507, description = "`upload_storage_full`", body = ErrorBody),
    ),
)]
async fn upload_file(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<FileParams>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Attachment>)> {
    // Read no further than one byte past the limit, so a larger body is never held in memory.
    let max_bytes = state.conversations.config().max_upload_bytes;
    let body = axum::body::to_bytes(body, max_bytes + 1)
        .await
        .map_err(|_| Error::UploadTooLarge { max_bytes })?;
    let name = params
        .name
        .ok_or_else(|| Error::InvalidUpload("give the file name as `?name=`".into()))?;
    let attachment = state
        .channels
        .api_upload(&channel, &id, &name, body.to_vec())
        .await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

/// A file of the conversation (the agent's or the user's).
#[utoipa::path(
    get,
    path = "/api/v1/channels/api/conversations/{id}/files/{hash}",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)"), ("hash" = String, Path, description = "The file's BLAKE3 hash")),
    security(("channel" = [])),
    responses(
        (status = 200, description = "The file, with its own content type", content_type = "application/octet-stream"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found` or `not_found`", body = ErrorBody),
    ),
)]
async fn download_file(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath((id, hash)): AppPath<(String, String)>,
) -> Result<Response> {
    state.channels.own_conversation(&channel, &id)?;
    let (attachment, bytes) = state.conversations.file(&id, &hash)?;
    Ok((
        [
            (header::CONTENT_TYPE, attachment.content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response())
}

/// The user started or stopped typing (shown to the agent; not stored).
#[utoipa::path(
    post,
    path = "/api/v1/channels/api/conversations/{id}/typing",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)")),
    request_body = Typing,
    security(("channel" = [])),
    responses(
        (status = 204, description = "Told"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
)]
async fn set_typing(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath(id): AppPath<String>,
    AppJson(typing): AppJson<Typing>,
) -> Result<StatusCode> {
    state.channels.api_typing(&channel, &id, typing.typing)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user ends the conversation (a queued one is abandoned).
#[utoipa::path(
    post,
    path = "/api/v1/channels/api/conversations/{id}/end",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)")),
    security(("channel" = [])),
    responses(
        (status = 200, description = "The conversation", body = ConversationView),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_closed`", body = ErrorBody),
    ),
)]
async fn end_conversation(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath(id): AppPath<String>,
) -> Result<Json<ConversationView>> {
    let ended = state.channels.api_end(&channel, &id).await?;
    Ok(Json(ConversationView::from(ended)))
}

/// The user rates the ended conversation, once (after a `rating_requested` delivery).
#[utoipa::path(
    post,
    path = "/api/v1/channels/api/conversations/{id}/rating",
    tag = "channels",
    params(("id" = String, Path, description = "Conversation id (`c_…`)")),
    request_body = RatingRequest,
    security(("channel" = [])),
    responses(
        (status = 201, description = "The rating", body = Rating),
        (status = 400, description = "`invalid_input` (not ended, already rated, stars outside 1-5) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
)]
async fn rate_conversation(
    State(state): State<AppState>,
    ApiChannel(channel): ApiChannel,
    AppPath(id): AppPath<String>,
    AppJson(rating): AppJson<RatingRequest>,
) -> Result<(StatusCode, Json<Rating>)> {
    let rated = state
        .channels
        .api_rate(&channel, &id, rating.stars, &rating.comment)
        .await?;
    Ok((StatusCode::CREATED, Json(rated)))
}
