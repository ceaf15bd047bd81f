//! What any signed-in colleague (and a visitor, for avatars) may see of accounts and groups.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::domain::{AccountId, GroupId, Presence, Role, SkillGroup};
use crate::error::{Error, Result};
use crate::http::access::{authorize, Authenticated, Permission};
use crate::http::extract::AppPath;
use crate::http::AppState;

/// Routes under `/api/v1/accounts` and `/api/v1/groups`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/accounts/{id}/avatar", get(avatar))
        .route("/api/v1/groups", get(list_groups))
        .route("/api/v1/agents", get(list_agents))
}

/// Public: the visitor's chat page shows the agent's avatar.
async fn avatar(State(state): State<AppState>, AppPath(id): AppPath<u64>) -> Result<Response> {
    let image = state
        .accounts
        .avatar(AccountId(id))?
        .ok_or_else(|| Error::NotFound(format!("account {id} has no avatar")))?;
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

#[derive(Debug, Serialize)]
struct GroupList {
    groups: Vec<SkillGroup>,
}

/// Every colleague sees the groups (to pick one when transferring a conversation).
async fn list_groups(
    State(state): State<AppState>,
    Authenticated(_): Authenticated,
) -> Result<Json<GroupList>> {
    Ok(Json(GroupList {
        groups: state.accounts.list_groups()?,
    }))
}

/// A colleague at the desk, as transfer and invite dialogs and the supervisor view list them.
#[derive(Debug, Serialize)]
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
}

#[derive(Debug, Serialize)]
struct ColleagueList {
    agents: Vec<Colleague>,
}

/// Agents and supervisors (enabled accounts) with presence and load, for anyone at the desk.
async fn list_agents(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<ColleagueList>> {
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let loads = state.conversations.loads();
    let agents = state
        .accounts
        .list_accounts()?
        .into_iter()
        .filter(|account| {
            !account.disabled
                && (account.roles.contains(&Role::Agent)
                    || account.roles.contains(&Role::Supervisor))
        })
        .map(|account| Colleague {
            active: loads.get(&account.id).copied().unwrap_or(0),
            id: account.id,
            display_name: account.display_name,
            avatar_url: account.avatar_url,
            roles: account.roles,
            groups: account.groups,
            presence: account.presence,
            max_concurrent: account.max_concurrent,
        })
        .collect();
    Ok(Json(ColleagueList { agents }))
}
