//! Administration: accounts, skill groups and their members, the audit log. Admins only.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, AccountView, AuditEntry, GroupId, SkillGroup};
use crate::error::Result;
use crate::http::access::{authorize, Admin, ClientIp, Permission};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::{blocking, AppState};
use crate::services::accounts::{AccountPatch, AuditQuery, GroupInput, NewAccount};

/// Routes under `/api/v1/admin`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/accounts",
            get(list_accounts).post(create_account),
        )
        .route(
            "/api/v1/admin/accounts/{id}",
            get(get_account).patch(update_account),
        )
        .route("/api/v1/admin/accounts/{id}/password", post(reset_password))
        .route(
            "/api/v1/admin/accounts/{id}/sessions",
            axum::routing::delete(revoke_sessions),
        )
        .route("/api/v1/admin/groups", get(list_groups).post(create_group))
        .route(
            "/api/v1/admin/groups/{id}",
            axum::routing::patch(update_group),
        )
        .route(
            "/api/v1/admin/groups/{id}/members",
            get(group_members).put(set_group_members),
        )
        .route("/api/v1/admin/audit", get(audit_log))
}

#[derive(Debug, Serialize)]
struct AccountList {
    accounts: Vec<AccountView>,
}

async fn list_accounts(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<AccountList>> {
    let accounts = blocking(&state, |accounts| accounts.list_accounts()).await?;
    Ok(Json(AccountList { accounts }))
}

#[derive(Debug, Serialize)]
struct CreatedAccount {
    account: AccountView,
    /// Present when the admin gave no password: shown once, to hand to the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_password: Option<String>,
}

async fn create_account(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppJson(new_account): AppJson<NewAccount>,
) -> Result<(StatusCode, Json<CreatedAccount>)> {
    let actor = admin.actor(ip);
    let (account, initial_password) = blocking(&state, move |accounts| {
        accounts.create_account(new_account, &actor)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedAccount {
            account,
            initial_password,
        }),
    ))
}

async fn get_account(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<AccountView>> {
    Ok(Json(state.accounts.account(AccountId(id))?.view()))
}

async fn update_account(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(patch): AppJson<AccountPatch>,
) -> Result<Json<AccountView>> {
    let actor = admin.actor(ip);
    let account = blocking(&state, move |accounts| {
        accounts.update_account(AccountId(id), patch, &actor)
    })
    .await?;
    Ok(Json(account))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    password: Option<String>,
}

#[derive(Debug, Serialize)]
struct PasswordResetResponse {
    /// The generated password when none was given; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    must_change_password: bool,
}

async fn reset_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(reset): AppJson<PasswordReset>,
) -> Result<Json<PasswordResetResponse>> {
    let actor = admin.actor(ip);
    let password = blocking(&state, move |accounts| {
        accounts.reset_password(AccountId(id), reset.password, &actor)
    })
    .await?;
    Ok(Json(PasswordResetResponse {
        password,
        must_change_password: true,
    }))
}

#[derive(Debug, Serialize)]
struct Revoked {
    revoked: usize,
}

async fn revoke_sessions(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Revoked>> {
    let actor = admin.actor(ip);
    let revoked = blocking(&state, move |accounts| {
        accounts.revoke_all_sessions(AccountId(id), &actor)
    })
    .await?;
    Ok(Json(Revoked { revoked }))
}

#[derive(Debug, Serialize)]
struct GroupList {
    groups: Vec<SkillGroup>,
}

async fn list_groups(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<GroupList>> {
    Ok(Json(GroupList {
        groups: state.accounts.list_groups()?,
    }))
}

async fn create_group(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppJson(input): AppJson<GroupInput>,
) -> Result<(StatusCode, Json<SkillGroup>)> {
    let group = blocking(&state, move |accounts| accounts.create_group(input)).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

async fn update_group(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<GroupInput>,
) -> Result<Json<SkillGroup>> {
    let group = blocking(&state, move |accounts| {
        accounts.update_group(GroupId(id), input)
    })
    .await?;
    Ok(Json(group))
}

#[derive(Debug, Serialize)]
struct Members {
    members: Vec<AccountView>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersRequest {
    account_ids: BTreeSet<AccountId>,
}

async fn group_members(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Members>> {
    Ok(Json(Members {
        members: state.accounts.group_members(GroupId(id))?,
    }))
}

async fn set_group_members(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(request): AppJson<MembersRequest>,
) -> Result<Json<Members>> {
    let members = blocking(&state, move |accounts| {
        accounts.set_group_members(GroupId(id), &request.account_ids)
    })
    .await?;
    Ok(Json(Members { members }))
}

#[derive(Debug, Serialize)]
struct AuditLog {
    entries: Vec<AuditEntry>,
}

async fn audit_log(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<AuditLog>> {
    authorize(&admin.account, Permission::ReadAudit)?;
    let entries = blocking(&state, move |accounts| accounts.audit_log(&query)).await?;
    Ok(Json(AuditLog { entries }))
}
