//! Conversations over HTTP: starting one (visitor), files, pending work, message history for
//! participants, group routing settings. Live traffic goes over the sockets in `ws.rs`.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;

use crate::domain::{Attachment, Conversation, GroupId, GroupRouting};
use crate::error::{Error, Result};
use crate::http::access::{
    authorize, user_agent, visitor_token, Authenticated, ClientIp, MaybeSignedIn, Permission,
    VISITOR_TOKEN_PREFIX,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::{off_thread, AppState};
use crate::services::accounts::Caller;
use crate::services::conversations::{
    message_views, ConversationView, DeskEvent, HistoryPage, HistoryQuery, MessageView, Party,
    StartRequest, VisitorView,
};
use crate::services::spreadsheet::escape_cell;
use crate::services::visitors::{Arrival, Origin};

/// Routes under `/api/v1/visitor/conversations`, `/api/v1/conversations` and group routing; uploads
/// may be as large as the `max_upload_bytes` in force (read at each upload, so a change in the admin
/// console applies at once), above the server-wide body limit.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(limits))
        .routes(routes!(history))
        .routes(routes!(pending))
        .routes(routes!(transcript))
        .routes(routes!(problem_types))
        .routes(routes!(messages))
        // The handler reads the body itself, up to the limit in force.
        .routes(routes!(upload).layer(DefaultBodyLimit::disable()))
        .routes(routes!(download))
        .routes(routes!(group_routing, set_group_routing))
}

#[derive(Debug, Serialize, ToSchema)]
struct Started {
    /// Send as `Authorization: Bearer <token>`, or `?token=` on the socket.
    token: String,
    visitor_id: String,
    conversation: VisitorView,
    messages: Vec<MessageView>,
}

/// A visitor token in `Authorization` is reused (a returning visitor); otherwise one is issued.
#[utoipa::path(
    post,
    path = "/api/v1/visitor/conversations",
    tag = "conversations",
    request_body = StartRequest,
    security((), ("visitor" = [])),
    responses(
        (status = 201, description = "Queued, or an offline message (留言) when nobody is at work; a visitor token is issued unless one was sent", body = Started),
        (status = 400, description = "`invalid_input` (a field over its limit: nothing is stored, no token issued) or `bad_request`", body = ErrorBody),
        (status = 413, description = "`message_too_long`: over `conversations.max_message_chars` (nothing stored, no token issued)", body = ErrorBody),
        (status = 401, description = "An unknown visitor token", body = ErrorBody),
        (status = 403, description = "`visitor_blocked`: the visitor or their address is on the block list", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: a new visitor past `accounts.visitor_tokens_per_minute` from this address", body = ErrorBody),
    ),
)]
async fn start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    AppJson(mut request): AppJson<StartRequest>,
) -> Result<(StatusCode, Json<Started>)> {
    // Every field is checked before a token is issued: a refused start leaves nothing behind.
    state.conversations.check_start(&request)?;
    let arrival = state.visitors.check_arrival(Arrival {
        channel: request.channel.clone(),
        ..Arrival::default()
    })?;
    let origin = Origin {
        ip,
        user_agent: user_agent(&headers),
    };
    let (token, profile) = match visitor_token(&headers) {
        Some(token) => match state.accounts.visitor_grant(&token)? {
            Some(grant) => {
                state.visitors.check_blocked(Some(&grant.visitor_id), ip)?;
                let profile = state.visitors.settle(&grant.visitor_id, arrival, &origin)?;
                (token, profile)
            }
            None => return Err(Error::Unauthenticated),
        },
        // A new visitor can only be blocked by address, and is refused before a token is issued.
        None => {
            state.visitors.check_blocked(None, ip)?;
            state.accounts.check_visitor_token_rate(ip)?;
            let (token, _grant, profile) = off_thread(&state.visitors, move |visitors| {
                visitors.admit(arrival, &origin)
            })
            .await?;
            (token, profile)
        }
    };
    // What the host site vouched for outranks what the page typed in.
    if let Some(identity) = profile.identity.filter(|identity| identity.verified) {
        request.identity.external_id = identity.person_key();
        if identity.name.is_some() {
            request.identity.name = identity.name;
        }
    }
    let conversation = state.conversations.start(&token, request).await?;
    let snapshot = state.conversations.visitor_snapshot(&conversation.id, 0)?;
    let Some(DeskEvent::Hello {
        conversation: view,
        messages,
    }) = snapshot.into_iter().next()
    else {
        return Err(Error::Internal("a snapshot starts with hello".into()));
    };
    Ok((
        StatusCode::CREATED,
        Json(Started {
            token: format!("{VISITOR_TOKEN_PREFIX}{token}"),
            visitor_id: conversation.visitor_id,
            conversation: view,
            messages,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
struct Limits {
    max_message_chars: usize,
    max_upload_bytes: usize,
    upload_types: Vec<String>,
}

/// Public: what the chat pages may send, so they can say so before the server refuses.
#[utoipa::path(
    get,
    path = "/api/v1/visitor/limits",
    tag = "conversations",
    security(()),
    responses(
        (status = 200, description = "Longest message, largest upload and accepted upload types", body = Limits),
    ),
)]
async fn limits(State(state): State<AppState>) -> Json<Limits> {
    let config = state.conversations.config();
    Json(Limits {
        max_message_chars: config.max_message_chars,
        max_upload_bytes: config.max_upload_bytes,
        upload_types: config.upload_types.clone(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
struct Pending {
    /// Ended conversations of mine without a wrap-up.
    wrap_ups: Vec<ConversationView>,
    /// Offline messages (留言) of my groups, unanswered.
    offline_messages: Vec<ConversationView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/conversations/pending",
    tag = "conversations",
    security(("session" = [])),
    responses(
        (status = 200, description = "My wrap-ups to write and my groups' unanswered offline messages", body = Pending),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn pending(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Pending>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let (wrap_ups, offline_messages) = state.conversations.pending(caller.account.id)?;
    Ok(Json(Pending {
        wrap_ups: wrap_ups.into_iter().map(ConversationView::from).collect(),
        offline_messages: offline_messages
            .into_iter()
            .map(ConversationView::from)
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct ProblemTypes {
    problem_types: Vec<String>,
    /// The wrap-up must be written before the conversation leaves the agent's list.
    wrap_up_required: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/conversations/problem-types",
    tag = "conversations",
    security(("session" = [])),
    responses(
        (status = 200, description = "The problem types of the wrap-up form and whether the wrap-up is required", body = ProblemTypes),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn problem_types(
    State(state): State<AppState>,
    Authenticated(_): Authenticated,
) -> Json<ProblemTypes> {
    let wrap_up = state.conversations.desk_settings().wrap_up;
    Json(ProblemTypes {
        problem_types: wrap_up.problem_types,
        wrap_up_required: wrap_up.required,
    })
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AccessParams {
    /// Visitor token, for `<img src>` and links where no header can be set.
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    after: u64,
    #[serde(default)]
    name: Option<String>,
}

/// The visitor of the conversation (header or `?token=`), or a colleague allowed to see it.
fn participant(
    state: &AppState,
    headers: &HeaderMap,
    params: &AccessParams,
    caller: &MaybeSignedIn,
    conversation: &Conversation,
) -> Result<Party> {
    let token = visitor_token(headers).or_else(|| {
        params
            .token
            .as_deref()
            .and_then(|token| token.strip_prefix(VISITOR_TOKEN_PREFIX))
            .map(str::to_string)
    });
    if let Some(token) = token {
        let grant = state
            .accounts
            .visitor_grant(&token)?
            .ok_or(Error::Unauthenticated)?;
        if grant.conversation.as_deref() != Some(conversation.id.as_str()) {
            return Err(Error::Forbidden(
                "a visitor may only access their own conversation".into(),
            ));
        }
        return Ok(Party::Visitor);
    }
    let caller = caller.0.as_ref().ok_or(Error::Unauthenticated)?;
    authorize(
        &caller.account,
        Permission::assist(conversation, caller.account.id),
    )?;
    Ok(Party::Agent(caller.account.id))
}

#[derive(Debug, Serialize, ToSchema)]
struct MessageList {
    messages: Vec<MessageView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/messages",
    tag = "conversations",
    params(("id" = String, Path, description = "Conversation id (`c_…`)"), AccessParams),
    security((), ("visitor" = []), ("session" = [])),
    responses(
        (status = 200, description = "Messages after `after` (visitors never get internal notes)", body = MessageList),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "Neither a visitor token nor a session", body = ErrorBody),
        (status = 403, description = "Not a participant", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
)]
async fn messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: MaybeSignedIn,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<AccessParams>,
) -> Result<Json<MessageList>> {
    let conversation = state.conversations.conversation(&id)?;
    let party = participant(&state, &headers, &params, &caller, &conversation)?;
    let messages = state
        .conversations
        .messages_after(&id, params.after, &party)?;
    Ok(Json(MessageList {
        messages: message_views(messages),
    }))
}

/// The body is the file; `?name=` gives its name (and so the type it must be).
#[utoipa::path(
    post,
    path = "/api/v1/conversations/{id}/files",
    tag = "conversations",
    params(("id" = String, Path, description = "Conversation id (`c_…`)"), AccessParams),
    request_body(content = Vec<u8>, description = "The file; `?name=` gives its name and so the type its content must have", content_type = "application/octet-stream"),
    security((), ("visitor" = []), ("session" = [])),
    responses(
        (status = 201, description = "Stored; send it in a message by its hash", body = Attachment),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "Neither a visitor token nor a session", body = ErrorBody),
        (status = 403, description = "Not a participant (`forbidden`), or `visitor_blocked`", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
        (status = 409, description = "`conversation_closed`", body = ErrorBody),
        (status = 413, description = "`upload_too_large`, or `upload_quota_exceeded` (the conversation's or the visitor's files or bytes)", body = ErrorBody),
        (status = 415, description = "`invalid_upload`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more uploads a minute than `conversations.visitor_uploads_per_minute` from one visitor", body = ErrorBody),
        (status = 507, description = "`upload_storage_full`: the disk budget of all uploaded files is used up", body = ErrorBody),
    ),
)]
async fn upload(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    caller: MaybeSignedIn,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<AccessParams>,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Attachment>)> {
    let conversation = state.conversations.conversation(&id)?;
    let party = participant(&state, &headers, &params, &caller, &conversation)?;
    // A block made after the chat page opened applies to its uploads as to its messages.
    if matches!(party, Party::Visitor) {
        state
            .visitors
            .check_blocked(Some(&conversation.visitor_id), ip)?;
    }
    // Read no further than one byte past the limit: the service answers `upload_too_large` for that
    // byte, and a larger body is never held in memory.
    let max_bytes = state.conversations.config().max_upload_bytes;
    let body = axum::body::to_bytes(body, max_bytes + 1)
        .await
        .map_err(|_| Error::UploadTooLarge { max_bytes })?;
    let name = params
        .name
        .clone()
        .ok_or_else(|| Error::InvalidUpload("give the file name as `?name=`".into()))?;
    let attachment = state
        .conversations
        .upload(&party, &id, &name, body.to_vec())
        .await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/files/{hash}",
    tag = "conversations",
    params(("id" = String, Path, description = "Conversation id (`c_…`)"), ("hash" = String, Path, description = "The file's BLAKE3 hash"), AccessParams),
    security((), ("visitor" = []), ("session" = [])),
    responses(
        (status = 200, description = "The file, with its own content type; images inline, others as attachments", content_type = "application/octet-stream"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "Neither a visitor token nor a session", body = ErrorBody),
        (status = 403, description = "Not a participant", body = ErrorBody),
        (status = 404, description = "`conversation_not_found` or `not_found`", body = ErrorBody),
    ),
)]
async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: MaybeSignedIn,
    AppPath((id, hash)): AppPath<(String, String)>,
    AppQuery(params): AppQuery<AccessParams>,
) -> Result<Response> {
    let conversation = state.conversations.conversation(&id)?;
    participant(&state, &headers, &params, &caller, &conversation)?;
    let (attachment, bytes) = state.conversations.file(&id, &hash)?;
    // Only images are shown inline; everything else downloads, so no upload renders as a page here.
    let disposition = if attachment.content_type.starts_with("image/") {
        "inline".to_string()
    } else {
        format!(
            "attachment; filename*=UTF-8''{}",
            percent_encode(&attachment.name)
        )
    };
    Ok((
        [
            (header::CONTENT_TYPE, attachment.content_type),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (header::CACHE_CONTROL, "private, max-age=86400".to_string()),
        ],
        bytes,
    )
        .into_response())
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/groups/{id}/routing",
    tag = "admin",
    params(("id" = u64, Path, description = "Group id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The group's routing mode and working hours", body = GroupRouting),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or neither an admin nor a supervisor of the group (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    ),
)]
async fn group_routing(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
) -> Result<Json<GroupRouting>> {
    authorize(&caller.account, Permission::SuperviseGroup(GroupId(id)))?;
    state.accounts.group(GroupId(id))?;
    Ok(Json(state.conversations.group_routing(GroupId(id))?))
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/groups/{id}/routing",
    tag = "admin",
    params(("id" = u64, Path, description = "Group id")),
    request_body = GroupRouting,
    security(("session" = [])),
    responses(
        (status = 200, description = "The routing after the change", body = GroupRouting),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or neither an admin nor a supervisor of the group (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    ),
)]
async fn set_group_routing(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
    AppJson(routing): AppJson<GroupRouting>,
) -> Result<Json<GroupRouting>> {
    authorize(&caller.account, Permission::SuperviseGroup(GroupId(id)))?;
    let group = state.accounts.group(GroupId(id))?;
    let before = state.conversations.group_routing(GroupId(id))?;
    let after = state
        .conversations
        .set_group_routing(GroupId(id), routing)?;
    let changes = routing_changes(&before, &after);
    if !changes.is_empty() {
        crate::http::routes::admin::audit_change(
            &state,
            crate::domain::AuditKind::GroupChanged,
            format!("group:{}", group.name),
            caller.actor(ip),
            changes.join("; "),
        )
        .await?;
    }
    Ok(Json(after))
}

/// `routing.field: before → after` for each field of a group's routing that changed.
fn routing_changes(before: &GroupRouting, after: &GroupRouting) -> Vec<String> {
    let (Ok(serde_json::Value::Object(before)), Ok(serde_json::Value::Object(after))) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        return Vec::new();
    };
    after
        .iter()
        .filter(|(field, value)| before.get(*field) != Some(*value))
        .map(|(field, value)| {
            let show = |value: Option<&serde_json::Value>| match value {
                Some(serde_json::Value::String(text)) => text.clone(),
                Some(serde_json::Value::Null) | None => "—".to_string(),
                Some(other) => other.to_string(),
            };
            format!(
                "routing.{field}: {} → {}",
                show(before.get(field)),
                show(Some(value))
            )
        })
        .collect()
}

fn may_assist(caller: &Caller, conversation: &Conversation) -> bool {
    authorize(
        &caller.account,
        Permission::assist(conversation, caller.account.id),
    )
    .is_ok()
}

/// The history (历史记录): agents see the conversations they serve or were invited to, supervisors
/// those of their groups, admins all.
#[utoipa::path(
    get,
    path = "/api/v1/conversations",
    tag = "conversations",
    params(HistoryQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "A page of the history, newest first", body = HistoryPage),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn history(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppQuery(query): AppQuery<HistoryQuery>,
) -> Result<Json<HistoryPage>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let page = off_thread(&state.conversations, move |conversations| {
        conversations.history(&query, |conversation| may_assist(&caller, conversation))
    })
    .await?;
    Ok(Json(page))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TranscriptParams {
    #[serde(default)]
    format: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct Transcript {
    conversation: ConversationView,
    messages: Vec<MessageView>,
}

/// The whole conversation as JSON, or as CSV (UTF-8 with a BOM so that Excel reads the Chinese).
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{id}/transcript",
    tag = "conversations",
    params(("id" = String, Path, description = "Conversation id (`c_…`)"), TranscriptParams),
    security(("session" = [])),
    responses(
        (status = 200, description = "The conversation and its messages (JSON), or CSV with a BOM for `format=csv`", content(
            (Transcript = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "An unknown `format`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`conversation_not_found`", body = ErrorBody),
    ),
)]
async fn transcript(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<String>,
    AppQuery(params): AppQuery<TranscriptParams>,
) -> Result<Response> {
    let conversation = state.conversations.conversation(&id)?;
    if !may_assist(&caller, &conversation) {
        return Err(Error::Forbidden(
            "you may not read this conversation".into(),
        ));
    }
    let messages = state
        .conversations
        .messages_after(&id, 0, &Party::Agent(caller.account.id))?;
    match params.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(Transcript {
            conversation: conversation.into(),
            messages: message_views(messages),
        })
        .into_response()),
        "csv" => {
            let mut writer = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
            // Every cell escaped: a visitor's `=HYPERLINK(…)` stays text when Excel opens the file.
            let write = |writer: &mut csv::Writer<Vec<u8>>, record: &[String]| {
                writer
                    .write_record(record.iter().map(|cell| escape_cell(cell).into_owned()))
                    .map_err(|error| Error::Internal(format!("writing CSV: {error}")))
            };
            write(
                &mut writer,
                &["seq", "time", "kind", "sender", "body", "attachments"].map(String::from),
            )?;
            for message in &messages {
                let kind = serde_json::to_value(message.kind)
                    .ok()
                    .and_then(|value| value.as_str().map(str::to_string))
                    .unwrap_or_default();
                let attachments: Vec<&str> = message
                    .attachments
                    .iter()
                    .map(|file| file.name.as_str())
                    .collect();
                write(
                    &mut writer,
                    &[
                        message.seq.to_string(),
                        message.at.to_string(),
                        kind,
                        message.sender_name.clone(),
                        message.body.clone(),
                        attachments.join("; "),
                    ],
                )?;
            }
            let bytes = writer
                .into_inner()
                .map_err(|error| Error::Internal(format!("writing CSV: {error}")))?;
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{id}.csv\""),
                    ),
                ],
                bytes,
            )
                .into_response())
        }
        other => Err(Error::BadRequest(format!(
            "format `{other}` is not json or csv"
        ))),
    }
}
