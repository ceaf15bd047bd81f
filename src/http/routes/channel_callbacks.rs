//! WeChat's calls to kefu (`/api/v1/channels/{id}/callback`): the server URL of a 公众号 and the
//! callback of a 企业微信 微信客服 account. `GET` checks the URL, `POST` delivers a push, answered
//! at once (WeChat waits 5 seconds) and handled afterwards.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::channels::official_account::{self, CallbackParams};
use crate::channels::wecom;
use crate::domain::ChannelKind;
use crate::error::{Error, Result};
use crate::http::error::ErrorBody;
use crate::http::extract::{AppPath, AppQuery};
use crate::http::AppState;

/// `GET` and `POST /api/v1/channels/{id}/callback`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check_callback_url, receive_push))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// WeChat checks the URL: the 公众号 gets `echostr` back when `signature` matches; 企业微信 gets
/// it decrypted when `msg_signature` matches.
#[utoipa::path(
    get,
    path = "/api/v1/channels/{id}/callback",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id"), CallbackParams),
    security(()),
    responses(
        (status = 200, description = "The echo, as text", content_type = "text/plain"),
        (status = 400, description = "`bad_request` (no `echostr`)", body = ErrorBody),
        (status = 403, description = "`forbidden`: the signature does not match, or the channel is disabled", body = ErrorBody),
        (status = 404, description = "`channel_not_found` (or not a WeChat channel)", body = ErrorBody),
    ),
)]
async fn check_callback_url(
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
    AppQuery(params): AppQuery<CallbackParams>,
) -> Result<Response> {
    let channel = state.channels.channel(id)?;
    if !channel.enabled {
        return Err(Error::Forbidden(format!("channel {id} is disabled")));
    }
    let echo = match channel.kind {
        ChannelKind::WechatOfficial => official_account::verify_url(&channel, &params)?,
        ChannelKind::WecomKf => wecom::verify_url(&channel, &params)?,
        ChannelKind::Api => return Err(Error::ChannelNotFound(id)),
    };
    Ok(text(echo))
}

/// A push: checked and decrypted now (a bad signature is refused and nothing is kept), answered
/// `success` (公众号) or empty (企业微信) at once, handled afterwards in order.
#[utoipa::path(
    post,
    path = "/api/v1/channels/{id}/callback",
    tag = "channels",
    params(("id" = u64, Path, description = "Channel id"), CallbackParams),
    request_body(content = String, description = "WeChat's XML: a message or event, or an `<Encrypt>` envelope", content_type = "text/xml"),
    security(()),
    responses(
        (status = 200, description = "Taken: `success`, or empty for 企业微信", content_type = "text/plain"),
        (status = 400, description = "`bad_request`: not WeChat's XML", body = ErrorBody),
        (status = 403, description = "`forbidden`: the signature or ciphertext does not check, or the channel is disabled", body = ErrorBody),
        (status = 404, description = "`channel_not_found` (or not a WeChat channel)", body = ErrorBody),
    ),
)]
async fn receive_push(
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
    AppQuery(params): AppQuery<CallbackParams>,
    body: String,
) -> Result<Response> {
    let channel = state.channels.channel(id)?;
    if !channel.enabled {
        return Err(Error::Forbidden(format!("channel {id} is disabled")));
    }
    match channel.kind {
        ChannelKind::WechatOfficial => {
            official_account::accept_push(&state.channels, &channel, &params, &body)?;
            Ok(text("success".into()))
        }
        ChannelKind::WecomKf => {
            wecom::accept_push(&state.channels, &channel, &params, &body)?;
            Ok(text(String::new()))
        }
        ChannelKind::Api => Err(Error::ChannelNotFound(id)),
    }
}
