//! Sign-in, sign-out and the captcha shown after repeated failures.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::domain::AccountView;
use crate::error::Result;
use crate::http::access::{ClientIp, SignedIn, SESSION_COOKIE};
use crate::http::extract::{AppJson, AppQuery};
use crate::http::{blocking, AppState};
use crate::services::accounts::LoginRequest;

/// Routes under `/api/v1/auth`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(captcha))
        .routes(routes!(captcha_required))
}

#[derive(Debug, Serialize, ToSchema)]
struct LoginResponse {
    csrf_token: String,
    account: AccountView,
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Signed in: sets the `kefu_session` cookie; send `csrf_token` as `X-CSRF-Token`", body = LoginResponse),
        (status = 400, description = "`invalid_input`: a field is longer than any real one (username over 32 characters, password over 256, codes over 64), refused before any lookup; or `bad_request`", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`, `captcha_required`, `captcha_invalid`, `totp_required` or `totp_invalid`", body = ErrorBody),
        (status = 403, description = "`account_disabled`", body = ErrorBody),
        (status = 423, description = "`account_locked`", body = ErrorBody),
        (status = 429, description = "`rate_limited`", body = ErrorBody),
    ),
)]
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

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out; the cookie is removed"),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "`csrf_failed`", body = ErrorBody),
    ),
)]
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

#[derive(Debug, Serialize, ToSchema)]
struct CaptchaResponse {
    captcha_id: String,
    image: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/captcha",
    tag = "auth",
    security(()),
    responses(
        (status = 200, description = "A new captcha (PNG data URL), answerable once within 5 minutes", body = CaptchaResponse),
        (status = 429, description = "`rate_limited`: more captchas a minute from this address than `accounts.captchas_per_minute`", body = ErrorBody),
    ),
)]
async fn captcha(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
) -> Result<Json<CaptchaResponse>> {
    state.accounts.check_captcha_rate(ip)?;
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CaptchaRequiredParams {
    username: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct CaptchaRequired {
    required: bool,
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/captcha-required",
    tag = "auth",
    params(CaptchaRequiredParams),
    security(()),
    responses(
        (status = 200, description = "Whether the next sign-in of this username needs a captcha", body = CaptchaRequired),
        (status = 400, description = "`bad_request`, or `invalid_input` for a username over 64 characters", body = ErrorBody),
    ),
)]
async fn captcha_required(
    State(state): State<AppState>,
    AppQuery(params): AppQuery<CaptchaRequiredParams>,
) -> Result<Json<CaptchaRequired>> {
    use crate::domain::limits::{check_length, MAX_LOGIN_USERNAME_CHARS};
    check_length("username", &params.username, MAX_LOGIN_USERNAME_CHARS)?;
    let required = state.accounts.captcha_required(&params.username)?;
    Ok(Json(CaptchaRequired { required }))
}
