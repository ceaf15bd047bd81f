//! Quick replies (快捷回复): list, search, create, change, delete, images, import and export.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

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
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/quick-replies", get(list).post(create))
        .route("/api/v1/quick-replies/search", get(search))
        .route("/api/v1/quick-replies/export", get(export))
        .route("/api/v1/quick-replies/import", axum::routing::post(import))
        .route(
            "/api/v1/quick-replies/{id}",
            get(read).put(update).delete(remove),
        )
        .route(
            "/api/v1/quick-replies/{id}/image",
            get(image).put(upload_image),
        )
}

fn desk_user(caller: &Caller) -> Result<()> {
    authorize(&caller.account, Permission::UseAgentDesk)
}

#[derive(Debug, Deserialize)]
struct ListParams {
    category: Option<String>,
}

#[derive(Debug, Serialize)]
struct ReplyList {
    replies: Vec<ReplyView>,
}

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

#[derive(Debug, Deserialize)]
struct SearchParams {
    q: String,
    limit: Option<usize>,
}

#[derive(Debug, Serialize)]
struct SearchResults {
    hits: Vec<ReplySearchHit>,
}

/// Shortcut prefix, keywords and pinyin; personal, group and team replies together.
async fn search(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(params): AppQuery<SearchParams>,
) -> Result<Json<SearchResults>> {
    desk_user(&caller)?;
    let scopes = readable_reply_scopes(&caller.account);
    let limit = params.limit.unwrap_or(10).clamp(1, 50);
    let hits = state
        .quick_replies
        .search(&params.q, &scopes, caller.account.id, limit)?;
    Ok(Json(SearchResults { hits }))
}

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

async fn read(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
) -> Result<Json<ReplyView>> {
    let reply = readable(&state, &caller, id)?;
    Ok(Json(state.quick_replies.view(reply, caller.account.id)?))
}

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

#[derive(Debug, Deserialize)]
struct FormatParams {
    #[serde(default)]
    format: Option<String>,
}

/// The replies the caller may see, as CSV (UTF-8 with a BOM, for Excel) or JSON.
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
