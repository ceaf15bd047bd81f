//! The signed-in account itself: profile, password, settings, avatar, presence, sessions, 2FA.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::domain::{AccountView, Presence, PresenceStatus, Settings};
use crate::error::{Error, Result};
use crate::http::access::{Authenticated, ClientIp, SignedIn};
use crate::http::extract::{AppJson, AppPath};
use crate::http::{blocking, AppState};
use crate::services::accounts::{SessionInfo, SettingsPatch, TwoFactorSetup};

/// Routes under `/api/v1/me`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/password", post(change_password))
        .route("/api/v1/me/settings", get(settings).patch(update_settings))
        .route("/api/v1/me/avatar", put(upload_avatar))
        .route("/api/v1/me/presence", put(set_presence))
        .route("/api/v1/me/sessions", get(list_sessions))
        .route("/api/v1/me/sessions/{id}", delete(revoke_session))
        .route("/api/v1/me/2fa/setup", post(begin_two_factor))
        .route("/api/v1/me/2fa/confirm", post(confirm_two_factor))
        .route("/api/v1/me/2fa/disable", post(disable_two_factor))
}

#[derive(Debug, Serialize)]
struct Me {
    #[serde(flatten)]
    account: AccountView,
    settings: Settings,
    /// The session's CSRF token, so a reloaded page can go on sending it.
    csrf_token: String,
}

/// Allowed while a password change or 2FA enrolment is pending: the page needs to know.
async fn me(SignedIn(caller): SignedIn) -> Json<Me> {
    Json(Me {
        account: caller.account.view(),
        settings: caller.account.settings.clone(),
        csrf_token: caller.csrf_token,
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    old_password: String,
    new_password: String,
}

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

#[derive(Debug, Serialize)]
struct SettingsView {
    display_name: String,
    #[serde(flatten)]
    settings: Settings,
}

async fn settings(Authenticated(caller): Authenticated) -> Json<SettingsView> {
    Json(SettingsView {
        display_name: caller.account.display_name,
        settings: caller.account.settings,
    })
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceRequest {
    status: PresenceStatus,
}

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

#[derive(Debug, Serialize)]
struct SessionList {
    sessions: Vec<SessionInfo>,
}

async fn list_sessions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<SessionList>> {
    let sessions = state.accounts.list_sessions(&caller)?;
    Ok(Json(SessionList { sessions }))
}

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
async fn begin_two_factor(
    State(state): State<AppState>,
    SignedIn(caller): SignedIn,
) -> Result<Json<TwoFactorSetup>> {
    let id = caller.account.id;
    let setup = blocking(&state, move |accounts| accounts.begin_two_factor(id)).await?;
    Ok(Json(setup))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    code: String,
}

#[derive(Debug, Serialize)]
struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordConfirmation {
    password: String,
}

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
