//! Sign-in, sign-out and the captcha shown after repeated failures.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::domain::AccountView;
use crate::error::Result;
use crate::http::access::{ClientIp, SignedIn, SESSION_COOKIE};
use crate::http::extract::{AppJson, AppQuery};
use crate::http::{blocking, AppState};
use crate::services::accounts::LoginRequest;

/// Routes under `/api/v1/auth`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/captcha", get(captcha))
        .route("/api/v1/auth/captcha-required", get(captcha_required))
}

#[derive(Debug, Serialize)]
struct LoginResponse {
    csrf_token: String,
    account: AccountView,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    jar: CookieJar,
    AppJson(request): AppJson<LoginRequest>,
) -> Result<(CookieJar, Json<LoginResponse>)> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    let secure = state.accounts.config().secure_cookies || forwarded_https(&headers);
    let outcome = blocking(&state, move |accounts| {
        accounts.login(&request, ip, user_agent)
    })
    .await?;
    let cookie = Cookie::build((SESSION_COOKIE, outcome.token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    Ok((
        jar.add(cookie),
        Json(LoginResponse {
            csrf_token: outcome.csrf_token,
            account: outcome.account,
        }),
    ))
}

/// Behind a TLS-terminating proxy the connection is plain HTTP; the proxy says what the browser used.
fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    SignedIn(caller): SignedIn,
    jar: CookieJar,
) -> Result<(CookieJar, StatusCode)> {
    blocking(&state, move |accounts| accounts.logout(&caller, ip)).await?;
    let expired = Cookie::build((SESSION_COOKIE, "")).path("/").build();
    Ok((jar.remove(expired), StatusCode::NO_CONTENT))
}

#[derive(Debug, Serialize)]
struct CaptchaResponse {
    captcha_id: String,
    image: String,
}

async fn captcha(State(state): State<AppState>) -> Result<Json<CaptchaResponse>> {
    let challenge = blocking(&state, |accounts| Ok(accounts.captcha_challenge())).await?;
    let image = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&challenge.png)
    );
    Ok(Json(CaptchaResponse {
        captcha_id: challenge.id,
        image,
    }))
}

#[derive(Debug, Deserialize)]
struct CaptchaRequiredParams {
    username: String,
}

#[derive(Debug, Serialize)]
struct CaptchaRequired {
    required: bool,
}

async fn captcha_required(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<CaptchaRequiredParams>,
) -> Result<Json<CaptchaRequired>> {
    let required = state.accounts.captcha_required(&params.username)?;
    Ok(Json(CaptchaRequired { required }))
}
