//! What any signed-in colleague (and a visitor, for avatars) may see of accounts and groups.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::domain::{AccountId, GroupId, Presence, Role, SkillGroup};
use crate::error::{Error, Result};
use crate::http::access::{authorize, Authenticated, Permission};
use crate::http::error::ErrorBody;
use crate::http::extract::AppPath;
use crate::http::{blocking, AppState};
use crate::search::pinyin_spelling;

/// Routes under `/api/v1/accounts` and `/api/v1/groups`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(avatar))
        .routes(routes!(list_groups))
        .routes(routes!(list_agents))
}

/// Public: the visitor's chat page shows the agent's avatar.
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{id}/avatar",
    tag = "accounts",
    params(("id" = u64, Path, description = "Account id")),
    security(()),
    responses(
        (status = 200, description = "The image, with its own content type", content_type = "image/*"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 404, description = "`not_found`: no avatar, or no such account (the same answer, so ids cannot be probed)", body = ErrorBody),
    ),
)]
async fn avatar(State(state): State<AppState>, AppPath(id): AppPath<u64>) -> Result<Response> {
    let image = state
        .accounts
        .avatar(AccountId(id))?
        .ok_or_else(|| Error::NotFound(format!("no avatar for account {id}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, image.content_type),
            (header::CACHE_CONTROL, "public, max-age=86400".to_string()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
        ],
        image.bytes,
    )
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
struct GroupList {
    groups: Vec<GroupView>,
}

/// A skill group with what a transfer needs to know of it now.
#[derive(Debug, Serialize, ToSchema)]
struct GroupView {
    #[serde(flatten)]
    group: SkillGroup,
    /// Conversations waiting in its queue.
    queued: u64,
    /// The name's pinyin (`shouhoufuwu`) and initials (`shfw`), to find it by typing.
    pinyin: String,
    initials: String,
}

/// Every colleague sees the groups (to pick one when transferring a conversation).
#[utoipa::path(
    get,
    path = "/api/v1/groups",
    tag = "accounts",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every skill group", body = GroupList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_groups(
    State(state): State<AppState>,
    Authenticated(_): Authenticated,
) -> Result<Json<GroupList>> {
    let (queued, _) = state.conversations.open_counts();
    let groups = state
        .accounts
        .list_groups()?
        .into_iter()
        .map(|group| {
            let (pinyin, initials) = pinyin_spelling(&group.name);
            GroupView {
                queued: queued.get(&Some(group.id)).copied().unwrap_or(0),
                pinyin,
                initials,
                group,
            }
        })
        .collect();
    Ok(Json(GroupList { groups }))
}

/// A colleague at the desk, as transfer and invite dialogs and the supervisor view list them.
#[derive(Debug, Serialize, ToSchema)]
struct Colleague {
    id: AccountId,
    display_name: String,
    avatar_url: Option<String>,
    roles: std::collections::BTreeSet<Role>,
    groups: std::collections::BTreeSet<GroupId>,
    presence: Presence,
    /// Conversations they serve now.
    active: usize,
    max_concurrent: u32,
    /// The display name's pinyin (`xiaomei`) and initials (`xm`), to find a colleague by typing.
    pinyin: String,
    initials: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct ColleagueList {
    agents: Vec<Colleague>,
}

/// Agents and supervisors (enabled accounts) with presence and load, for anyone at the desk.
#[utoipa::path(
    get,
    path = "/api/v1/agents",
    tag = "accounts",
    security(("session" = [])),
    responses(
        (status = 200, description = "Enabled agents and supervisors with presence and load", body = ColleagueList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not at the desk (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_agents(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<ColleagueList>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let loads = state.conversations.loads();
    let accounts = blocking(&state, |accounts| accounts.list_accounts()).await?;
    let agents = accounts
        .into_iter()
        .filter(|account| {
            !account.disabled
                && (account.roles.contains(&Role::Agent)
                    || account.roles.contains(&Role::Supervisor))
        })
        .map(|account| {
            let (pinyin, initials) = pinyin_spelling(&account.display_name);
            Colleague {
                pinyin,
                initials,
                active: loads.get(&account.id).copied().unwrap_or(0),
                id: account.id,
                display_name: account.display_name,
                avatar_url: account.avatar_url,
                roles: account.roles,
                groups: account.groups,
                presence: account.presence,
                max_concurrent: account.max_concurrent,
            }
        })
        .collect();
    Ok(Json(ColleagueList { agents }))
}
