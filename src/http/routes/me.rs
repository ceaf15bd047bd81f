//! The signed-in account itself: profile, password, settings, avatar, presence, sessions, 2FA.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::domain::{AccountView, Presence, PresenceStatus, Settings};
use crate::error::{Error, Result};
use crate::http::access::{Authenticated, ClientIp, SignedIn};
use crate::http::extract::{AppJson, AppPath};
use crate::http::{blocking, AppState};
use crate::services::accounts::{SessionInfo, SettingsPatch, TwoFactorSetup};

/// Routes under `/api/v1/me`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(settings, update_settings))
        .routes(routes!(upload_avatar))
        .routes(routes!(set_presence))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(begin_two_factor))
        .routes(routes!(confirm_two_factor))
        .routes(routes!(disable_two_factor))
}

#[derive(Debug, Serialize, ToSchema)]
struct Me {
    #[serde(flatten)]
    account: AccountView,
    settings: Settings,
    /// The session's CSRF token, so a reloaded page can go on sending it.
    csrf_token: String,
}

/// Allowed while a password change or 2FA enrolment is pending: the page needs to know.
#[utoipa::path(
    get,
    path = "/api/v1/me",
    tag = "me",
    security(("session" = [])),
    responses(
        (status = 200, description = "My account, settings and the session's CSRF token", body = Me),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
    ),
)]
async fn me(SignedIn(caller): SignedIn) -> Json<Me> {
    Json(Me {
        account: caller.account.view(),
        settings: caller.account.settings.clone(),
        csrf_token: caller.csrf_token,
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    old_password: String,
    new_password: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/me/password",
    tag = "me",
    request_body = PasswordChange,
    security(("session" = [])),
    responses(
        (status = 200, description = "Changed; other sessions end", body = AccountView),
        (status = 400, description = "`wrong_password`, `weak_password` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "`csrf_failed` or `account_disabled`", body = ErrorBody),
    ),
)]
async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SignedIn(caller): SignedIn,
    AppJson(change): AppJson<PasswordChange>,
) -> Result<Json<AccountView>> {
    let account = blocking(&state, move |accounts| {
        accounts.change_password(&caller, &change.old_password, &change.new_password, ip)
    })
    .await?;
    Ok(Json(account))
}

#[derive(Debug, Serialize, ToSchema)]
struct SettingsView {
    display_name: String,
    #[serde(flatten)]
    settings: Settings,
}

#[utoipa::path(
    get,
    path = "/api/v1/me/settings",
    tag = "me",
    security(("session" = [])),
    responses(
        (status = 200, description = "My display name and settings", body = SettingsView),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn settings(Authenticated(caller): Authenticated) -> Json<SettingsView> {
    Json(SettingsView {
        display_name: caller.account.display_name,
        settings: caller.account.settings,
    })
}

#[utoipa::path(
    patch,
    path = "/api/v1/me/settings",
    tag = "me",
    request_body = SettingsPatch,
    security(("session" = [])),
    responses(
        (status = 200, description = "The settings after the change", body = SettingsView),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn update_settings(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppJson(patch): AppJson<SettingsPatch>,
) -> Result<Json<SettingsView>> {
    let id = caller.account.id;
    let account = blocking(&state, move |accounts| accounts.update_settings(id, patch)).await?;
    Ok(Json(SettingsView {
        display_name: account.display_name,
        settings: account.settings,
    }))
}

/// The body is the image itself; its bytes decide the type, not the Content-Type header.
#[utoipa::path(
    put,
    path = "/api/v1/me/avatar",
    tag = "me",
    request_body(content = Vec<u8>, description = "The image: PNG, JPEG, GIF or WebP, recognised by its bytes", content_type = "application/octet-stream"),
    security(("session" = [])),
    responses(
        (status = 200, description = "My account with the new avatar", body = AccountView),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 413, description = "`avatar_too_large`", body = ErrorBody),
        (status = 415, description = "`invalid_avatar`", body = ErrorBody),
    ),
)]
async fn upload_avatar(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AccountView>> {
    // Past the server's body limit axum refuses to read on; that is an oversized avatar too.
    let body = body.map_err(|_| Error::AvatarTooLarge {
        max_bytes: state.accounts.config().max_avatar_bytes,
    })?;
    let id = caller.account.id;
    let account = blocking(&state, move |accounts| accounts.set_avatar(id, &body)).await?;
    Ok(Json(account))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PresenceRequest {
    status: PresenceStatus,
}

#[utoipa::path(
    put,
    path = "/api/v1/me/presence",
    tag = "me",
    request_body = PresenceRequest,
    security(("session" = [])),
    responses(
        (status = 200, description = "My presence", body = Presence),
        (status = 400, description = "`bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn set_presence(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppJson(request): AppJson<PresenceRequest>,
) -> Result<Json<Presence>> {
    let id = caller.account.id;
    let presence = blocking(&state, move |accounts| {
        accounts.set_presence(id, request.status)
    })
    .await?;
    Ok(Json(presence))
}

#[derive(Debug, Serialize, ToSchema)]
struct SessionList {
    sessions: Vec<SessionInfo>,
}

#[utoipa::path(
    get,
    path = "/api/v1/me/sessions",
    tag = "me",
    security(("session" = [])),
    responses(
        (status = 200, description = "My sessions, this one marked", body = SessionList),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn list_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<SessionList>> {
    let sessions = state.accounts.list_sessions(&caller)?;
    Ok(Json(SessionList { sessions }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/me/sessions/{id}",
    tag = "me",
    params(("id" = String, Path, description = "Session id from the list")),
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out on that device"),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    ),
)]
async fn revoke_session(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    AppPath(session_id): AppPath<String>,
) -> Result<StatusCode> {
    let id = caller.account.id;
    blocking(&state, move |accounts| {
        accounts.revoke_session(id, &session_id)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Allowed while enrolment is pending: that is how a required enrolment gets done.
#[utoipa::path(
    post,
    path = "/api/v1/me/2fa/setup",
    tag = "me",
    security(("session" = [])),
    responses(
        (status = 200, description = "A new TOTP secret with its QR code, to confirm", body = TwoFactorSetup),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "`csrf_failed` or `account_disabled`", body = ErrorBody),
    ),
)]
async fn begin_two_factor(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<TwoFactorSetup>> {
    let id = caller.account.id;
    let setup = blocking(&state, move |accounts| accounts.begin_two_factor(id)).await?;
    Ok(Json(setup))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    code: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

#[utoipa::path(
    post,
    path = "/api/v1/me/2fa/confirm",
    tag = "me",
    request_body = CodeRequest,
    security(("session" = [])),
    responses(
        (status = 200, description = "Enabled; the recovery codes, shown once", body = RecoveryCodes),
        (status = 400, description = "`invalid_input` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`totp_invalid`, `unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "`csrf_failed` or `account_disabled`", body = ErrorBody),
    ),
)]
async fn confirm_two_factor(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SignedIn(caller): SignedIn,
    AppJson(request): AppJson<CodeRequest>,
) -> Result<Json<RecoveryCodes>> {
    let recovery_codes = blocking(&state, move |accounts| {
        accounts.confirm_two_factor(&caller, &request.code, ip)
    })
    .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordConfirmation {
    password: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/me/2fa/disable",
    tag = "me",
    request_body = PasswordConfirmation,
    security(("session" = [])),
    responses(
        (status = 204, description = "Disabled"),
        (status = 400, description = "`wrong_password` or `bad_request`", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn disable_two_factor(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    Authenticated(caller): Authenticated,
    AppJson(request): AppJson<PasswordConfirmation>,
) -> Result<StatusCode> {
    blocking(&state, move |accounts| {
        accounts.disable_two_factor(&caller, &request.password, ip)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
