//! Administration: accounts, skill groups and their members, the audit log. Admins only.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::domain::{AccountId, AccountView, AuditEntry, AuditKind, GroupId, SkillGroup};
use crate::error::{Error, Result};
use crate::http::access::{authorize, Admin, Authenticated, ClientIp, Permission};
use crate::http::extract::{AppJson, AppPath, AppQuery};
use crate::http::{blocking, AppState};
use crate::search::pinyin_spelling;
use crate::services::accounts::{AccountPatch, AuditQuery, GroupInput, NewAccount};
use crate::services::spreadsheet::escape_cell;

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
        .routes(routes!(export_audit_log))
}

/// An account as the admin console lists it: the account, its name's pinyin for searching, and
/// how many conversations it serves now.
#[derive(Debug, Serialize, ToSchema)]
struct AdminAccountView {
    #[serde(flatten)]
    account: AccountView,
    /// The display name's pinyin (`xiaomei`) and initials (`xm`).
    pinyin: String,
    initials: String,
    /// Conversations served now.
    active: usize,
}

#[derive(Debug, Serialize, ToSchema)]
struct AccountList {
    accounts: Vec<AdminAccountView>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AccountSearch {
    /// Only accounts whose username, display name, employee number, or the display name's pinyin or
    /// initials contain this (ignoring case).
    q: Option<String>,
}

/// Whether `account` matches the search `term` (lower-cased, not empty).
fn account_matches(account: &AdminAccountView, term: &str) -> bool {
    account.account.username.contains(term)
        || account.account.display_name.to_lowercase().contains(term)
        || account.account.employee_no.to_lowercase().contains(term)
        || account.pinyin.contains(term)
        || account.initials.contains(term)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/accounts",
    tag = "admin",
    params(AccountSearch),
    security(("session" = [])),
    responses(
        (status = 200, description = "Every account (matching `q`), with pinyin and current load", body = AccountList),
        (status = 400, description = "`bad_request` (unknown parameter) or `invalid_input` (`q` over 64 characters)", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_accounts(
    State(state): State<AppState>,
    Admin(_): Admin,
    AppQuery(search): AppQuery<AccountSearch>,
) -> Result<Json<AccountList>> {
    let term = search.q.unwrap_or_default().trim().to_lowercase();
    crate::domain::limits::check_length(
        "q",
        &term,
        crate::domain::limits::MAX_ACCOUNT_QUERY_CHARS,
    )?;
    let loads = state.conversations.loads();
    let accounts = blocking(&state, |accounts| accounts.list_accounts()).await?;
    let accounts = accounts
        .into_iter()
        .map(|account| {
            let (pinyin, initials) = pinyin_spelling(&account.display_name);
            AdminAccountView {
                pinyin,
                initials,
                active: loads.get(&account.id).copied().unwrap_or(0),
                account,
            }
        })
        .filter(|account| term.is_empty() || account_matches(account, &term))
        .collect();
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
#[schema(as = AdminGroupList)]
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
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppJson(input): AppJson<GroupInput>,
) -> Result<(StatusCode, Json<SkillGroup>)> {
    let group = blocking(&state, move |accounts| accounts.create_group(input)).await?;
    audit_change(
        &state,
        AuditKind::GroupChanged,
        format!("group:{}", group.name),
        admin.actor(ip),
        format!("created (id {})", group.id.0),
    )
    .await?;
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
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<GroupInput>,
) -> Result<Json<SkillGroup>> {
    let before = state.accounts.group(GroupId(id))?;
    let group = blocking(&state, move |accounts| {
        accounts.update_group(GroupId(id), input)
    })
    .await?;
    let mut changes = Vec::new();
    if before.name != group.name {
        changes.push(format!("name: {} → {}", before.name, group.name));
    }
    if before.description != group.description {
        changes.push(format!(
            "description: {} → {}",
            before.description, group.description
        ));
    }
    if !changes.is_empty() {
        audit_change(
            &state,
            AuditKind::GroupChanged,
            format!("group:{}", group.name),
            admin.actor(ip),
            changes.join("; "),
        )
        .await?;
    }
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
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or neither an admin nor a supervisor of the group (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`group_not_found`", body = ErrorBody),
    ),
)]
async fn group_members(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(id): AppPath<u64>,
) -> Result<Json<Members>> {
    authorize(&caller.account, Permission::SuperviseGroup(GroupId(id)))?;
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
    ClientIp(ip): ClientIp,
    Admin(admin): Admin,
    AppPath(id): AppPath<u64>,
    AppJson(request): AppJson<MembersRequest>,
) -> Result<Json<Members>> {
    let group = state.accounts.group(GroupId(id))?;
    let names = |members: &[AccountView]| -> String {
        let names: Vec<&str> = members
            .iter()
            .map(|member| member.username.as_str())
            .collect();
        if names.is_empty() {
            "—".into()
        } else {
            names.join(",")
        }
    };
    let before = names(&state.accounts.group_members(GroupId(id))?);
    let members = blocking(&state, move |accounts| {
        accounts.set_group_members(GroupId(id), &request.account_ids)
    })
    .await?;
    let after = names(&members);
    if before != after {
        audit_change(
            &state,
            AuditKind::GroupChanged,
            format!("group:{}", group.name),
            admin.actor(ip),
            format!("members: {before} → {after}"),
        )
        .await?;
    }
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

/// Most entries one export holds (newest first).
const MAX_EXPORTED_AUDIT_ENTRIES: usize = 100_000;

/// The audit log as CSV for Excel (UTF-8 with BOM; formula-looking cells quoted).
#[utoipa::path(
    get,
    path = "/api/v1/admin/audit/export",
    tag = "admin",
    params(AuditQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "`seq,time,kind,account,actor,ip,detail`, newest first, at most 100,000 rows", content_type = "text/csv"),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or not an admin (`forbidden`)", body = ErrorBody),
    ),
)]
async fn export_audit_log(
    State(state): State<AppState>,
    Admin(admin): Admin,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<Response> {
    authorize(&admin.account, Permission::ReadAudit)?;
    let entries = blocking(&state, move |accounts| {
        accounts.audit_entries(&query, MAX_EXPORTED_AUDIT_ENTRIES)
    })
    .await?;
    let mut writer = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
    let csv_error = |error: csv::Error| Error::Internal(format!("writing CSV: {error}"));
    writer
        .write_record(["seq", "time", "kind", "account", "actor", "ip", "detail"])
        .map_err(csv_error)?;
    for entry in &entries {
        let kind = serde_json::to_value(entry.kind)
            .ok()
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_default();
        let record = [
            entry.seq.to_string(),
            entry.at.to_string(),
            kind,
            entry.account.clone(),
            entry.actor.clone().unwrap_or_default(),
            entry.ip.clone().unwrap_or_default(),
            entry.detail.clone(),
        ];
        writer
            .write_record(record.iter().map(|cell| escape_cell(cell).into_owned()))
            .map_err(csv_error)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| Error::Internal(format!("writing CSV: {error}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.csv\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Writes a change an admin (or editor, supervisor) made to the audit log and makes it durable:
/// `subject` names what changed (`settings`, `group:售后`, `webhook:12`), `detail` how
/// (`before → after`).
pub(crate) async fn audit_change(
    state: &AppState,
    kind: crate::domain::AuditKind,
    subject: String,
    actor: crate::services::accounts::Actor,
    detail: String,
) -> Result<()> {
    blocking(state, move |accounts| {
        accounts.audit(kind, &subject, &actor, &detail)?;
        accounts.make_durable()
    })
    .await
}
