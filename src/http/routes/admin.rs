//! Administration: accounts, skill groups and their members, the audit log. Admins only.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::domain::{AccountId, AccountView, AuditEntry, GroupId, SkillGroup};
use crate::error::Result;
use crate::http::access::{authorize, Admin, ClientIp, Permission};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::{blocking, AppState};
use crate::services::accounts::{AccountPatch, AuditQuery, GroupInput, NewAccount};

/// Routes under `/api/v1/admin`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts, create_account))
        .routes(routes!(get_account, update_account))
        .routes(routes!(reset_password))
        .routes(routes!(revoke_sessions))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(update_group))
        .routes(routes!(group_members, set_group_members))
        .routes(routes!(audit_log))
}

#[derive(Debug, Serialize, ToSchema)]
struct AccountList {
    accounts: Vec<AccountView>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/accounts",
    tag = "admin",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every account", body = AccountList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_accounts(
    State(state): State<AppState>,
    Admin(_): Admin,
) -> Result<Json<AccountList>> {
    let accounts = blocking(&state, |accounts| accounts.list_accounts()).await?;
    Ok(Json(AccountList { accounts }))
}

#[derive(Debug, Serialize, ToSchema)]
struct CreatedAccount {
    account: AccountView,
    /// Present when the admin gave no password: shown once, to hand to the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    initial_password: Option<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/accounts",
    tag = "admin",
    request_body = NewAccount,
    security(("session" = [])),
    responses(
        (status = 201, description = "Created; a generated initial password is shown once", body = CreatedAccount),
        (status = 400, description = "`weak_password`, `invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    get,
    path = "/api/v1/admin/accounts/{id}",
    tag = "admin",
    params(("id" = u64, Path, description = "Account id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
    ),
)]
async fn get_account(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<AccountView>> {
    Ok(Json(state.accounts.account(AccountId(id))?.view()))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/accounts/{id}",
    tag = "admin",
    params(("id" = u64, Path, description = "Account id")),
    request_body = AccountPatch,
    security(("session" = [])),
    responses(
        (status = 200, description = "The account after the change", body = AccountView),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`account_not_found` or `group_not_found`", body = ErrorBody),
    ),
)]
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

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordReset {
    password: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct PasswordResetResponse {
    /// The generated password when none was given; shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    must_change_password: bool,
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/accounts/{id}/password",
    tag = "admin",
    params(("id" = u64, Path, description = "Account id")),
    request_body = PasswordReset,
    security(("session" = [])),
    responses(
        (status = 200, description = "Reset; the generated password is shown once", body = PasswordResetResponse),
        (status = 400, description = "`weak_password` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
    ),
)]
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

#[derive(Debug, Serialize, ToSchema)]
struct Revoked {
    revoked: usize,
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/accounts/{id}/sessions",
    tag = "admin",
    params(("id" = u64, Path, description = "Account id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "How many sessions ended", body = Revoked),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`account_not_found`", body = ErrorBody),
    ),
)]
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

#[derive(Debug, Serialize, ToSchema)]
struct GroupList {
    groups: Vec<SkillGroup>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/groups",
    tag = "admin",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every skill group", body = GroupList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_groups(State(state): State<AppState>, Admin(_): Admin) -> Result<Json<GroupList>> {
    Ok(Json(GroupList {
        groups: state.accounts.list_groups()?,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/groups",
    tag = "admin",
    request_body = GroupInput,
    security(("session" = [])),
    responses(
        (status = 201, description = "Created", body = SkillGroup),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 409, description = "`group_name_taken`", body = ErrorBody),
    ),
)]
async fn create_group(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppJson(input): AppJson<GroupInput>,
) -> Result<(StatusCode, Json<SkillGroup>)> {
    let group = blocking(&state, move |accounts| accounts.create_group(input)).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/groups/{id}",
    tag = "admin",
    params(("id" = u64, Path, description = "Group id")),
    request_body = GroupInput,
    security(("session" = [])),
    responses(
        (status = 200, description = "The group after the change", body = SkillGroup),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
        (status = 409, description = "`group_name_taken`", body = ErrorBody),
    ),
)]
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

#[derive(Debug, Serialize, ToSchema)]
struct Members {
    members: Vec<AccountView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MembersRequest {
    account_ids: BTreeSet<AccountId>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/groups/{id}/members",
    tag = "admin",
    params(("id" = u64, Path, description = "Group id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The group's members", body = Members),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    ),
)]
async fn group_members(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Members>> {
    Ok(Json(Members {
        members: state.accounts.group_members(GroupId(id))?,
    }))
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/groups/{id}/members",
    tag = "admin",
    params(("id" = u64, Path, description = "Group id")),
    request_body = MembersRequest,
    security(("session" = [])),
    responses(
        (status = 200, description = "The members after the change", body = Members),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found` or `account_not_found`", body = ErrorBody),
    ),
)]
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

#[derive(Debug, Serialize, ToSchema)]
struct AuditLog {
    entries: Vec<AuditEntry>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/audit",
    tag = "admin",
    params(AuditQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "Audit entries, newest first", body = AuditLog),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn audit_log(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Json<AuditLog>> {
    authorize(&admin.account, Permission::ReadAudit)?;
    let entries = blocking(&state, move |accounts| accounts.audit_log(&query)).await?;
    Ok(Json(AuditLog { entries }))
}
