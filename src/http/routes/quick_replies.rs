//! Quick replies (快捷回复): list, search, create, change, delete, images, import and export.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::domain::ReplyScope;
use crate::error::{Error, Result};
use crate::http::access::{authorize, readable_reply_scopes, Authenticated, Permission};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::AppState;
use crate::services::accounts::Caller;
use crate::services::quick_replies::{
    export_csv, export_json, ImportReport, ReplyInput, ReplySearchHit, ReplyView,
};

/// Largest quick-reply image.
const MAX_IMAGE_BYTES: usize = 2 << 20;

/// Routes under `/api/v1/quick-replies`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(search))
        .routes(routes!(export))
        .routes(routes!(import))
        .routes(routes!(read, update, remove))
        .routes(routes!(image, upload_image))
}

fn desk_user(caller: &Caller) -> Result<()> {
    authorize(&caller.account, Permission::UseAgentDesk)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    category: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct ReplyList {
    replies: Vec<ReplyView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/quick-replies",
    tag = "quick-replies",
    params(ListParams),
    security(("session" = [])),
    responses(
        (status = 200, description = "The replies I may read", body = ReplyList),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(params): AppQuery<ListParams>,
) -> Result<Json<ReplyList>> {
    desk_user(&caller)?;
    let scopes = readable_reply_scopes(&caller.account);
    let replies =
        state
            .quick_replies
            .list(&scopes, params.category.as_deref(), caller.account.id)?;
    Ok(Json(ReplyList { replies }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    q: String,
    limit: Option<usize>,
}

/// Named apart from the article search's `SearchResults`: utoipa keys components by name, and the
/// two shared one, so the document described this answer with the article one (`took_ms` required).
#[derive(Debug, Serialize, ToSchema)]
struct ReplySearchResults {
    hits: Vec<ReplySearchHit>,
}

/// Shortcut prefix, keywords and pinyin; personal, group and team replies together.
#[utoipa::path(
    get,
    path = "/api/v1/quick-replies/search",
    tag = "quick-replies",
    params(SearchParams),
    security(("session" = [])),
    responses(
        (status = 200, description = "Ranked by kind of match, then my usage", body = ReplySearchResults),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn search(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Json<ReplySearchResults>> {
    desk_user(&caller)?;
    let scopes = readable_reply_scopes(&caller.account);
    let limit = params.limit.unwrap_or(10).clamp(1, 50);
    let hits = state
        .quick_replies
        .search(&params.q, &scopes, caller.account.id, limit)?;
    Ok(Json(ReplySearchResults { hits }))
}

#[utoipa::path(
    post,
    path = "/api/v1/quick-replies",
    tag = "quick-replies",
    request_body = ReplyInput,
    security(("session" = [])),
    responses(
        (status = 201, description = "Created", body = ReplyView),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`: the scope names a skill group that does not exist", body = ErrorBody),
        (status = 409, description = "`shortcut_taken`", body = ErrorBody),
    ),
)]
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppJson(input): AppJson<ReplyInput>,
) -> Result<(StatusCode, Json<ReplyView>)> {
    let scope = input.scope.resolve(caller.account.id);
    authorize(&caller.account, Permission::ManageReplies(scope))?;
    let reply = state.quick_replies.create(caller.account.id, input)?;
    let view = state.quick_replies.view(reply, caller.account.id)?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A reply the caller may not read answers `quick_reply_not_found`, as if it did not exist.
fn readable(state: &AppState, caller: &Caller, id: u64) -> Result<crate::domain::QuickReply> {
    let reply = state.quick_replies.get(id)?;
    if authorize(&caller.account, Permission::ReadReplies(reply.scope)).is_err() {
        return Err(Error::QuickReplyNotFound(id));
    }
    Ok(reply)
}

#[utoipa::path(
    get,
    path = "/api/v1/quick-replies/{id}",
    tag = "quick-replies",
    params(("id" = u64, Path, description = "Quick reply id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The reply", body = ReplyView),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`quick_reply_not_found`", body = ErrorBody),
    ),
)]
async fn read(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
) -> Result<Json<ReplyView>> {
    let reply = readable(&state, &caller, id)?;
    Ok(Json(state.quick_replies.view(reply, caller.account.id)?))
}

#[utoipa::path(
    put,
    path = "/api/v1/quick-replies/{id}",
    tag = "quick-replies",
    params(("id" = u64, Path, description = "Quick reply id")),
    request_body = ReplyInput,
    security(("session" = [])),
    responses(
        (status = 200, description = "The reply after the change", body = ReplyView),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`quick_reply_not_found`, or `group_not_found` (the scope names a skill group that does not exist)", body = ErrorBody),
        (status = 409, description = "`shortcut_taken`", body = ErrorBody),
    ),
)]
async fn update(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<ReplyInput>,
) -> Result<Json<ReplyView>> {
    let existing = readable(&state, &caller, id)?;
    authorize(&caller.account, Permission::ManageReplies(existing.scope))?;
    let target = match (input.scope.resolve(caller.account.id), existing.scope) {
        (ReplyScope::Personal { .. }, ReplyScope::Personal { owner }) => {
            ReplyScope::Personal { owner }
        }
        (scope, _) => scope,
    };
    authorize(&caller.account, Permission::ManageReplies(target))?;
    let reply = state.quick_replies.update(id, caller.account.id, input)?;
    Ok(Json(state.quick_replies.view(reply, caller.account.id)?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/quick-replies/{id}",
    tag = "quick-replies",
    params(("id" = u64, Path, description = "Quick reply id")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`quick_reply_not_found`", body = ErrorBody),
    ),
)]
async fn remove(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
) -> Result<StatusCode> {
    let existing = readable(&state, &caller, id)?;
    authorize(&caller.account, Permission::ManageReplies(existing.scope))?;
    state.quick_replies.delete(id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    get,
    path = "/api/v1/quick-replies/{id}/image",
    tag = "quick-replies",
    params(("id" = u64, Path, description = "Quick reply id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The picture, with its own content type", content_type = "image/*"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`quick_reply_not_found` or `not_found` (no picture)", body = ErrorBody),
    ),
)]
async fn image(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
) -> Result<Response> {
    readable(&state, &caller, id)?;
    let (content_type, bytes) = state
        .quick_replies
        .image(id)?
        .ok_or_else(|| Error::NotFound(format!("quick reply {id} has no image")))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(
    put,
    path = "/api/v1/quick-replies/{id}/image",
    tag = "quick-replies",
    params(("id" = u64, Path, description = "Quick reply id")),
    request_body(content = Vec<u8>, description = "The picture: PNG, JPEG, GIF or WebP, up to 2 MiB", content_type = "application/octet-stream"),
    security(("session" = [])),
    responses(
        (status = 200, description = "The reply with its picture", body = ReplyView),
        (status = 400, description = "`bad_request` (an id that is not a number)", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`quick_reply_not_found`", body = ErrorBody),
        (status = 413, description = "`avatar_too_large`", body = ErrorBody),
        (status = 415, description = "`invalid_avatar`", body = ErrorBody),
    ),
)]
async fn upload_image(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Json<ReplyView>> {
    let existing = readable(&state, &caller, id)?;
    authorize(&caller.account, Permission::ManageReplies(existing.scope))?;
    let body = body.map_err(|_| Error::AvatarTooLarge {
        max_bytes: MAX_IMAGE_BYTES,
    })?;
    let reply = state.quick_replies.set_image(id, &body, MAX_IMAGE_BYTES)?;
    Ok(Json(state.quick_replies.view(reply, caller.account.id)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FormatParams {
    #[serde(default)]
    format: Option<String>,
}

/// The replies the caller may see, as CSV (UTF-8 with a BOM, for Excel) or JSON.
#[utoipa::path(
    get,
    path = "/api/v1/quick-replies/export",
    tag = "quick-replies",
    params(FormatParams),
    security(("session" = [])),
    responses(
        (status = 200, description = "The replies I may read: CSV (UTF-8 with BOM, the default) or JSON", content_type = "text/csv"),
        (status = 400, description = "An unknown `format`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(params): AppQuery<FormatParams>,
) -> Result<Response> {
    desk_user(&caller)?;
    let replies = state
        .quick_replies
        .all_in(&readable_reply_scopes(&caller.account))?;
    match params.format.as_deref().unwrap_or("csv") {
        "csv" => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"quick-replies.csv\"",
                ),
            ],
            export_csv(&replies)?,
        )
            .into_response()),
        "json" => Ok(Json(export_json(&replies)).into_response()),
        other => Err(Error::BadRequest(format!(
            "format `{other}` is not csv or json"
        ))),
    }
}

/// Imports a CSV or JSON file (the body); rows whose scope the caller may not manage are reported.
#[utoipa::path(
    post,
    path = "/api/v1/quick-replies/import",
    tag = "quick-replies",
    params(FormatParams),
    request_body(content = Vec<u8>, description = "The CSV or JSON file", content_type = "text/csv"),
    security(("session" = [])),
    responses(
        (status = 200, description = "Rows created, updated and refused, with per-row errors", body = ImportReport),
        (status = 400, description = "`invalid_import` or an unknown `format`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn import(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(params): AppQuery<FormatParams>,
    body: Bytes,
) -> Result<Json<ImportReport>> {
    desk_user(&caller)?;
    let account = caller.account.clone();
    let may_write = move |scope: ReplyScope| authorize(&account, Permission::ManageReplies(scope));
    let report = match params.format.as_deref().unwrap_or("csv") {
        "csv" => state
            .quick_replies
            .import_csv(&body, caller.account.id, &may_write)?,
        "json" => state
            .quick_replies
            .import_json(&body, caller.account.id, &may_write)?,
        other => {
            return Err(Error::BadRequest(format!(
                "format `{other}` is not csv or json"
            )))
        }
    };
    Ok(Json(report))
}
