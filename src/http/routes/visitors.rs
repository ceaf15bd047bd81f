//! Visitors: the token for the chat page, what the widget reports (identity, page views, heartbeat,
//! invitations), what agents see of a visitor (访客信息, 访客列表), and the block list (黑名单).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::domain::{Block, Invitation, PageView, VisitorProfile};
use crate::error::{Error, Result};
use crate::http::access::{
    authorize, user_agent, Authenticated, ClientIp, Permission, Visitor, VISITOR_TOKEN_PREFIX,
};
use crate::http::extract::{AppJson, AppPath};
use crate::http::{blocking, AppState};
use crate::services::accounts::VisitorGrant;
use crate::services::visitors::{
    Arrival, BlockInput, IdentityClaim, OnlineVisitor, Origin, PageInput, PageVisit,
};

/// Routes under `/api/v1/visitors`, `/api/v1/visitor/*` (the widget) and `/api/v1/blocks`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/visitors", post(new_visitor))
        .route("/api/v1/visitors/me", get(whoami))
        .route("/api/v1/visitors/online", get(online))
        .route("/api/v1/visitors/{id}", get(visitor).patch(annotate))
        .route("/api/v1/visitors/{id}/invite", post(invite))
        .route("/api/v1/visitor/identify", post(identify))
        .route("/api/v1/visitor/pageviews", post(page_view))
        .route("/api/v1/visitor/heartbeat", post(heartbeat))
        .route("/api/v1/visitor/invitation", post(answer_invitation))
        .route("/api/v1/blocks", get(blocks).post(block))
        .route("/api/v1/blocks/{id}", delete(unblock))
}

#[derive(Debug, Serialize)]
struct NewVisitor {
    /// Send as `Authorization: Bearer <token>`.
    token: String,
    #[serde(flatten)]
    grant: VisitorGrant,
    visitor: VisitorProfile,
}

/// Public. The body (channel, identity, page) is optional: an empty body is an anonymous web visitor.
async fn new_visitor(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<NewVisitor>)> {
    let arrival: Arrival = if body.iter().all(u8::is_ascii_whitespace) {
        Arrival::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| Error::BadRequest(format!("invalid JSON body: {error}")))?
    };
    state.visitors.check_blocked(None, ip)?;
    let (token, grant) = blocking(&state, |accounts| accounts.issue_visitor_token()).await?;
    let origin = Origin {
        ip,
        user_agent: user_agent(&headers),
    };
    let visitor = state.visitors.arrive(&grant.visitor_id, arrival, &origin)?;
    Ok((
        StatusCode::CREATED,
        Json(NewVisitor {
            token: format!("{VISITOR_TOKEN_PREFIX}{token}"),
            grant,
            visitor,
        }),
    ))
}

async fn whoami(visitor: Visitor) -> Json<VisitorGrant> {
    Json(visitor.grant)
}

/// The host site tells who the visitor is (after they sign in on it, say).
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

async fn page_view(
    State(state): State<AppState>,
    visitor: Visitor,
    AppJson(page): AppJson<PageInput>,
) -> Result<(StatusCode, Json<PageView>)> {
    let view = state.visitors.page_view(&visitor.grant.visitor_id, page)?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Serialize)]
struct Beat {
    /// An agent's invitation to chat, until the visitor answers it.
    invitation: Option<Invitation>,
}

async fn heartbeat(State(state): State<AppState>, visitor: Visitor) -> Result<Json<Beat>> {
    let invitation = state.visitors.heartbeat(&visitor.grant.visitor_id)?;
    Ok(Json(Beat { invitation }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvitationAnswer {
    accept: bool,
}

#[derive(Debug, Serialize)]
struct Answered {
    accepted: bool,
}

/// Accepting routes the visitor's next conversation to the inviting agent when they can take it.
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

#[derive(Debug, Serialize)]
struct OnlineList {
    visitors: Vec<OnlineVisitor>,
}

async fn online(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<OnlineList>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    Ok(Json(OnlineList {
        visitors: state.visitors.online()?,
    }))
}

/// One past conversation of the visitor, as the visitor panel lists it.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
struct VisitorDetail {
    visitor: VisitorProfile,
    online: bool,
    page_trail: Vec<PageVisit>,
    conversations: Vec<PastConversation>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Annotation {
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    note: Option<String>,
}

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    #[serde(default)]
    message: String,
}

async fn invite(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<String>,
    AppJson(request): AppJson<InviteRequest>,
) -> Result<(StatusCode, Json<Invitation>)> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let invitation = state
        .visitors
        .invite(&id, caller.account.id, &request.message)?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

#[derive(Debug, Serialize)]
struct BlockList {
    blocks: Vec<BlockView>,
}

#[derive(Debug, Serialize)]
struct BlockView {
    #[serde(flatten)]
    block: Block,
    /// Still in force (not expired).
    active: bool,
}

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

async fn block(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientIp(ip): ClientIp,
    AppJson(input): AppJson<BlockInput>,
) -> Result<(StatusCode, Json<Block>)> {
    authorize(&caller.account, Permission::ManageBlocks)?;
    let actor = caller.actor(ip);
    let by = caller.account.id;
    let visitors = std::sync::Arc::clone(&state.visitors);
    let block = tokio::task::spawn_blocking(move || visitors.block(input, by, &actor))
        .await
        .map_err(|error| Error::Internal(format!("block task failed: {error}")))??;
    Ok((StatusCode::CREATED, Json(block)))
}

async fn unblock(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    ClientIp(ip): ClientIp,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Block>> {
    authorize(&caller.account, Permission::ManageBlocks)?;
    let actor = caller.actor(ip);
    let visitors = std::sync::Arc::clone(&state.visitors);
    let block = tokio::task::spawn_blocking(move || visitors.unblock(id, &actor))
        .await
        .map_err(|error| Error::Internal(format!("unblock task failed: {error}")))??;
    Ok(Json(block))
}
