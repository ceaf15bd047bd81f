//! Visitors: the token for the chat page, what the widget reports (identity, page views, heartbeat,
//! invitations), what agents see of a visitor (访客信息, 访客列表), and the block list (黑名单).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{Block, Invitation, PageView, VisitorProfile};
use crate::error::{Error, Result};
use crate::http::access::{
    authorize, user_agent, Authenticated, ClientIp, Permission, Visitor, VISITOR_TOKEN_PREFIX,
};
use crate::http::error::ErrorBody;
use crate::http::extract::{AppJson, AppPath, OptionalJson};
use crate::http::{off_thread, AppState};
use crate::services::accounts::VisitorGrant;
use crate::services::visitors::{
    Arrival, BlockInput, IdentityClaim, OnlineVisitor, Origin, PageInput, PageVisit,
};

/// Routes under `/api/v1/visitors`, `/api/v1/visitor/*` (the widget) and `/api/v1/blocks`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(new_visitor))
        .routes(routes!(whoami))
        .routes(routes!(online))
        .routes(routes!(visitor, annotate))
        .routes(routes!(invite))
        .routes(routes!(identify))
        .routes(routes!(page_view))
        .routes(routes!(heartbeat))
        .routes(routes!(answer_invitation))
        .routes(routes!(blocks, block))
        .routes(routes!(unblock))
}

#[derive(Debug, Serialize, ToSchema)]
struct NewVisitor {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    #[serde(flatten)]
    grant: VisitorGrant,
    visitor: VisitorProfile,
}

/// Public. The body (channel, identity, page) is optional: an empty body is an anonymous web visitor.
#[utoipa::path(
    post,
    path = "/api/v1/visitors",
    tag = "visitors",
    request_body(content = Option<Arrival>, description = "Optional: none is an anonymous web visitor"),
    security(()),
    responses(
        (status = 201, description = "A new visitor, their token and profile", body = NewVisitor),
        (status = 400, description = "`invalid_input` (unknown channel, empty page URL, bad identity fields, a field over its limit: nothing is stored) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`identity_invalid`", body = ErrorBody),
        (status = 403, description = "`visitor_blocked`: the address is blocked", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more new visitors a minute from this address than `accounts.visitor_tokens_per_minute`", body = ErrorBody),
    ),
)]
async fn new_visitor(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    OptionalJson(arrival): OptionalJson<Arrival>,
) -> Result<(StatusCode, Json<NewVisitor>)> {
    state.visitors.check_blocked(None, ip)?;
    // Checked before the token is issued: a refused arrival leaves nothing behind.
    let arrival = state.visitors.check_arrival(arrival)?;
    state.accounts.check_visitor_token_rate(ip)?;
    let origin = Origin {
        ip,
        user_agent: user_agent(&headers),
    };
    let (token, grant, visitor) = off_thread(&state.visitors, move |visitors| {
        visitors.admit(arrival, &origin)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewVisitor {
            token: format!("{VISITOR_TOKEN_PREFIX}{token}"),
            grant,
            visitor,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/visitors/me",
    tag = "visitors",
    security(("visitor" = [])),
    responses(
        (status = 200, description = "What the token grants", body = VisitorGrant),
        (status = 401, description = "`unauthenticated`", body = ErrorBody),
    ),
)]
async fn whoami(visitor: Visitor) -> Json<VisitorGrant> {
    Json(visitor.grant)
}

/// The host site tells who the visitor is (after they sign in on it, say).
#[utoipa::path(
    post,
    path = "/api/v1/visitor/identify",
    tag = "visitors",
    request_body = IdentityClaim,
    security(("visitor" = [])),
    responses(
        (status = 200, description = "The profile", body = VisitorProfile),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`identity_invalid` or `unauthenticated`", body = ErrorBody),
    ),
)]
async fn identify(
    State(state): State<AppState>,
    visitor: Visitor,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    AppJson(claim): AppJson<IdentityClaim>,
) -> Result<Json<VisitorProfile>> {
    let arrival = Arrival {
        identity: Some(claim),
        ..Arrival::default()
    };
    let origin = Origin {
        ip,
        user_agent: user_agent(&headers),
    };
    let profile = state
        .visitors
        .arrive(&visitor.grant.visitor_id, arrival, &origin)?;
    Ok(Json(profile))
}

/// The widget reports a page the visitor opened; also a heartbeat.
#[utoipa::path(
    post,
    path = "/api/v1/visitor/pageviews",
    tag = "visitors",
    request_body = PageInput,
    security(("visitor" = [])),
    responses(
        (status = 201, description = "The page view as recorded", body = PageView),
        (status = 400, description = "`invalid_input` (URL empty or too long) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no `Bearer v1.` token, or an unknown one", body = ErrorBody),
        (status = 403, description = "`visitor_blocked`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: more than `visitors.page_views_per_minute`", body = ErrorBody),
    ),
)]
async fn page_view(
    State(state): State<AppState>,
    visitor: Visitor,
    ClientIp(ip): ClientIp,
    AppJson(page): AppJson<PageInput>,
) -> Result<(StatusCode, Json<PageView>)> {
    let view = state
        .visitors
        .page_view(&visitor.grant.visitor_id, ip, page)?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Serialize, ToSchema)]
struct Beat {
    /// An agent's invitation to chat, until the visitor answers it.
    invitation: Option<Invitation>,
}

/// The visitor is on the site; answers an agent's pending invitation.
#[utoipa::path(
    post,
    path = "/api/v1/visitor/heartbeat",
    tag = "visitors",
    security(("visitor" = [])),
    responses(
        (status = 200, description = "The pending invitation, or `null`", body = Beat),
        (status = 401, description = "`unauthenticated`: no `Bearer v1.` token, or an unknown one", body = ErrorBody),
        (status = 403, description = "`visitor_blocked`", body = ErrorBody),
    ),
)]
async fn heartbeat(
    State(state): State<AppState>,
    visitor: Visitor,
    ClientIp(ip): ClientIp,
) -> Result<Json<Beat>> {
    let invitation = state.visitors.heartbeat(&visitor.grant.visitor_id, ip)?;
    Ok(Json(Beat { invitation }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InvitationAnswer {
    accept: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct Answered {
    accepted: bool,
}

/// Accepting routes the visitor's next conversation to the inviting agent when they can take it.
#[utoipa::path(
    post,
    path = "/api/v1/visitor/invitation",
    tag = "visitors",
    request_body = InvitationAnswer,
    security(("visitor" = [])),
    responses(
        (status = 200, description = "Whether an invitation was accepted", body = Answered),
        (status = 400, description = "`invalid_input` (no invitation waiting) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: no `Bearer v1.` token, or an unknown one", body = ErrorBody),
    ),
)]
async fn answer_invitation(
    State(state): State<AppState>,
    visitor: Visitor,
    AppJson(answer): AppJson<InvitationAnswer>,
) -> Result<Json<Answered>> {
    let visitor_id = &visitor.grant.visitor_id;
    let accepted = state
        .visitors
        .answer_invitation(visitor_id, answer.accept)?;
    if let Some(invitation) = &accepted {
        state
            .conversations
            .prefer_agent(visitor_id, invitation.agent);
    }
    Ok(Json(Answered {
        accepted: accepted.is_some(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
struct OnlineList {
    visitors: Vec<OnlineEntry>,
}

/// A visitor on the site, and the conversation they are in now, if any.
#[derive(Debug, Serialize, ToSchema)]
struct OnlineEntry {
    #[serde(flatten)]
    online: OnlineVisitor,
    /// Their open (queued or served) conversation: such a visitor is 对话中, not to be invited.
    chat: Option<OpenChat>,
}

/// A visitor's open conversation, as the visitor list shows it.
#[derive(Debug, Serialize, ToSchema)]
struct OpenChat {
    conversation: String,
    state: crate::domain::ConversationState,
    /// The serving agent; `null` while queued.
    agent: Option<u64>,
    agent_name: Option<String>,
}

/// The visitor's open (queued or active) conversation, if any.
fn open_chat(state: &AppState, visitor_id: &str) -> Result<Option<OpenChat>> {
    for conversation_id in state.visitors.conversation_ids(visitor_id)? {
        let Ok(conversation) = state.conversations.conversation(&conversation_id) else {
            continue;
        };
        if !conversation.state.is_open() {
            continue;
        }
        let agent_name = conversation
            .agent
            .and_then(|agent| state.accounts.account(agent).ok())
            .map(|agent| agent.display_name);
        return Ok(Some(OpenChat {
            conversation: conversation.id,
            state: conversation.state,
            agent: conversation.agent.map(|agent| agent.0),
            agent_name,
        }));
    }
    Ok(None)
}

/// Visitors on the site now (访客列表), longest there first.
#[utoipa::path(
    get,
    path = "/api/v1/visitors/online",
    tag = "visitors",
    security(("session" = [])),
    responses(
        (status = 200, description = "Visitors on the site", body = OnlineList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not at the desk (`forbidden`)", body = ErrorBody),
    ),
)]
async fn online(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<OnlineList>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let mut visitors = Vec::new();
    for online in state.visitors.online()? {
        let chat = open_chat(&state, &online.visitor.id)?;
        visitors.push(OnlineEntry { online, chat });
    }
    Ok(Json(OnlineList { visitors }))
}

/// One past conversation of the visitor, as the visitor panel lists it.
#[derive(Debug, Serialize, ToSchema)]
struct PastConversation {
    id: String,
    created: jiff::Timestamp,
    state: crate::domain::ConversationState,
    agent: Option<u64>,
    agent_name: Option<String>,
    problem_type: Option<String>,
    rating: Option<u8>,
    /// Whether the caller may open its transcript.
    can_open: bool,
}

#[derive(Debug, Serialize, ToSchema)]
struct VisitorDetail {
    visitor: VisitorProfile,
    online: bool,
    page_trail: Vec<PageVisit>,
    conversations: Vec<PastConversation>,
}

/// The visitor panel: profile, online or not, page trail, past conversations.
#[utoipa::path(
    get,
    path = "/api/v1/visitors/{id}",
    tag = "visitors",
    params(("id" = String, Path, description = "Visitor id (`v_…`)")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The visitor", body = VisitorDetail),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not at the desk (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`visitor_not_found`", body = ErrorBody),
    ),
)]
async fn visitor(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<String>,
) -> Result<Json<VisitorDetail>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let profile = state.visitors.profile(&id)?;
    let mut conversations = Vec::new();
    for conversation_id in state.visitors.conversation_ids(&id)? {
        let Ok(conversation) = state.conversations.conversation(&conversation_id) else {
            continue;
        };
        let can_open = authorize(
            &caller.account,
            Permission::assist(&conversation, caller.account.id),
        )
        .is_ok();
        let agent_name = conversation
            .agent
            .and_then(|agent| state.accounts.account(agent).ok())
            .map(|agent| agent.display_name);
        conversations.push(PastConversation {
            can_open,
            agent_name,
            agent: conversation.agent.map(|agent| agent.0),
            problem_type: conversation
                .wrap_up
                .as_ref()
                .map(|wrap_up| wrap_up.problem_type.clone()),
            rating: conversation.rating.as_ref().map(|rating| rating.stars),
            created: conversation.created,
            state: conversation.state,
            id: conversation.id,
        });
    }
    conversations.sort_by_key(|past| std::cmp::Reverse(past.created));
    Ok(Json(VisitorDetail {
        online: state.visitors.is_online(&id),
        page_trail: state.visitors.page_trail(&id)?,
        visitor: profile,
        conversations,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Annotation {
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    note: Option<String>,
}

/// Replaces the staff's tags and/or note.
#[utoipa::path(
    patch,
    path = "/api/v1/visitors/{id}",
    tag = "visitors",
    params(("id" = String, Path, description = "Visitor id (`v_…`)")),
    request_body = Annotation,
    security(("session" = [])),
    responses(
        (status = 200, description = "The profile", body = VisitorProfile),
        (status = 400, description = "`invalid_input` (too many or too long tags, note too long) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not at the desk (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`visitor_not_found`", body = ErrorBody),
    ),
)]
async fn annotate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<String>,
    AppJson(annotation): AppJson<Annotation>,
) -> Result<Json<VisitorProfile>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let profile = state
        .visitors
        .annotate(&id, annotation.tags, annotation.note)?;
    Ok(Json(profile))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    #[serde(default)]
    message: String,
}

/// Invites a visitor on the site to chat (主动邀请); the widget shows it at the next heartbeat.
#[utoipa::path(
    post,
    path = "/api/v1/visitors/{id}/invite",
    tag = "visitors",
    params(("id" = String, Path, description = "Visitor id (`v_…`)")),
    request_body = InviteRequest,
    security(("session" = [])),
    responses(
        (status = 201, description = "The invitation", body = Invitation),
        (status = 400, description = "`invalid_input` (the visitor left the site, message too long) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...), not at the desk (`forbidden`), or the visitor is blocked (`visitor_blocked`)", body = ErrorBody),
        (status = 404, description = "`visitor_not_found`", body = ErrorBody),
        (status = 409, description = "`visitor_in_conversation`: the visitor is already queued or chatting", body = ErrorBody),
    ),
)]
async fn invite(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<String>,
    OptionalJson(request): OptionalJson<InviteRequest>,
) -> Result<(StatusCode, Json<Invitation>)> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    // The visitor page shows invitations only to a visitor not in a conversation: inviting one who
    // already chats would report success and reach nobody.
    if let Some(chat) = open_chat(&state, &id)? {
        let with = match &chat.agent_name {
            Some(name) => format!("is chatting with {name}"),
            None => "is waiting in the queue".to_string(),
        };
        return Err(Error::VisitorInConversation(format!(
            "visitor `{id}` {with} in conversation `{}`; there is nothing to invite them to",
            chat.conversation
        )));
    }
    let invitation = state
        .visitors
        .invite(&id, caller.account.id, &request.message)?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

#[derive(Debug, Serialize, ToSchema)]
struct BlockList {
    blocks: Vec<BlockView>,
}

#[derive(Debug, Serialize, ToSchema)]
struct BlockView {
    #[serde(flatten)]
    block: Block,
    /// Still in force (not expired).
    active: bool,
}

/// The block list (黑名单), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/blocks",
    tag = "visitors",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every entry; `active` is false once expired", body = BlockList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not a supervisor or admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn blocks(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<BlockList>> {
    authorize(&caller.account, Permission::ManageBlocks)?;
    let now = state.conversations.now();
    let blocks = state
        .visitors
        .blocks()?
        .into_iter()
        .map(|block| BlockView {
            active: block.active(now),
            block,
        })
        .collect();
    Ok(Json(BlockList { blocks }))
}

/// Blocks a visitor, an address range, or both.
#[utoipa::path(
    post,
    path = "/api/v1/blocks",
    tag = "visitors",
    request_body = BlockInput,
    security(("session" = [])),
    responses(
        (status = 201, description = "The entry", body = BlockView),
        (status = 400, description = "`invalid_input` (no reason, neither target, a bad range, `expires` in the past) or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not a supervisor or admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`visitor_not_found`", body = ErrorBody),
    ),
)]
async fn block(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientIp(ip): ClientIp,
    AppJson(input): AppJson<BlockInput>,
) -> Result<(StatusCode, Json<BlockView>)> {
    authorize(&caller.account, Permission::ManageBlocks)?;
    let actor = caller.actor(ip);
    let by = caller.account.id;
    let block = off_thread(&state.visitors, move |visitors| {
        visitors.block(input, by, &actor)
    })
    .await?;
    let active = block.active(state.conversations.now());
    Ok((StatusCode::CREATED, Json(BlockView { block, active })))
}

/// Lifts a block; answers the removed entry.
#[utoipa::path(
    delete,
    path = "/api/v1/blocks/{id}",
    tag = "visitors",
    params(("id" = u64, Path, description = "Block id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The removed entry", body = Block),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not a supervisor or admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`block_not_found`", body = ErrorBody),
    ),
)]
async fn unblock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientIp(ip): ClientIp,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Block>> {
    authorize(&caller.account, Permission::ManageBlocks)?;
    let actor = caller.actor(ip);
    let block = off_thread(&state.visitors, move |visitors| {
        visitors.unblock(id, &actor)
    })
    .await?;
    Ok(Json(block))
}
