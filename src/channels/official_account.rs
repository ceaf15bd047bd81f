//! WeChat 公众号 (Official Account), 客服消息.
//!
//! - **The server URL** (`/api/v1/channels/{id}/callback`): WeChat checks it with a `GET` signed over
//!   the Token, `timestamp` and `nonce` and expects `echostr` back; then it `POST`s every message
//!   and event as XML, in plain mode (signed the same way) or safe mode (`encrypt_type=aes`: an
//!   `<Encrypt>` envelope, `msg_signature` over the ciphertext too, AES with the EncodingAESKey).
//!   kefu keeps the checked push in the `channel_inbox` table, answers `success` at once (WeChat
//!   waits 5 seconds, then repeats the push) and handles the message afterwards, in order
//!   ([`InboundJob`](super::InboundJob)); a push left by a crash is handled at the next start.
//! - **Messages**: text; a picture and a voice message become files of the conversation (fetched
//!   with `media/get`; WeChat's transcription of a voice message goes with it); a location is
//!   written out; following (`subscribe`), scanning and a menu `CLICK` open the reply window, a
//!   click also speaks for the visitor; unfollowing closes it. The visitor is the OpenID.
//! - **Replies** go through `cgi-bin/message/custom/send`: text, pictures after `media/upload`; other
//!   files are announced by name (the 公众号 cannot send them). The access token comes from
//!   `cgi-bin/token` and is cached until shortly before it expires, and fetched again when WeChat
//!   refuses it (40001, 40014, 42001).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::wechat::client::{query_value, token_of, CallError, Media};
use super::wechat::crypto::{signature_matches, MessageCrypt};
use super::wechat::xml::{OfficialMessage, Push};
use super::{off_async, ChannelService, Inbound, InboundJob};
use crate::domain::{Attachment, Channel, ChannelKind};
use crate::error::{Error, Result};

/// The query string of WeChat's calls to the server URL (公众号 and 企业微信 alike).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// 公众号: SHA-1 over Token, `timestamp`, `nonce`.
    #[serde(default)]
    pub signature: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Random.
    #[serde(default)]
    pub nonce: Option<String>,
    /// URL check: to be echoed (公众号) or decrypted and echoed (企业微信).
    #[serde(default)]
    pub echostr: Option<String>,
    /// 公众号: the sender's OpenID.
    #[serde(default)]
    pub openid: Option<String>,
    /// 公众号: `aes` in safe mode.
    #[serde(default)]
    pub encrypt_type: Option<String>,
    /// SHA-1 over Token, `timestamp`, `nonce` and the ciphertext.
    #[serde(default)]
    pub msg_signature: Option<String>,
}

impl CallbackParams {
    fn timestamp(&self) -> &str {
        self.timestamp.as_deref().unwrap_or_default()
    }

    fn nonce(&self) -> &str {
        self.nonce.as_deref().unwrap_or_default()
    }
}

/// The account's crypt (Token, EncodingAESKey, AppID).
fn crypt(channel: &Channel) -> Result<MessageCrypt> {
    MessageCrypt::new(
        channel.callback_token.as_deref().unwrap_or_default(),
        channel.encoding_aes_key.as_deref().unwrap_or_default(),
        channel.app_id.as_deref().unwrap_or_default(),
    )
}

/// Checks the plain-mode signature of a call.
///
/// Returns [`Error::Forbidden`] when it does not match.
fn check_signature(channel: &Channel, params: &CallbackParams) -> Result<()> {
    let token = channel.callback_token.as_deref().unwrap_or_default();
    let given = params.signature.as_deref().unwrap_or_default();
    if signature_matches(given, &[token, params.timestamp(), params.nonce()]) {
        Ok(())
    } else {
        Err(Error::Forbidden("the signature does not match".into()))
    }
}

/// The URL check: `echostr` when the signature matches.
///
/// Returns [`Error::Forbidden`] for a wrong signature, [`Error::BadRequest`] without `echostr`.
pub fn verify_url(channel: &Channel, params: &CallbackParams) -> Result<String> {
    check_signature(channel, params)?;
    params
        .echostr
        .clone()
        .ok_or_else(|| Error::BadRequest("`echostr` is missing".into()))
}

/// A push: checked (and decrypted in safe mode) now, handled after the answer. Nothing is stored
/// for a push that does not check.
///
/// Returns [`Error::Forbidden`] for a wrong signature or ciphertext, [`Error::BadRequest`] for a
/// body that is not WeChat's XML.
pub fn accept_push(
    service: &Arc<ChannelService>,
    channel: &Channel,
    params: &CallbackParams,
    body: &str,
) -> Result<()> {
    let outer = Push::parse(body)?;
    let safe_mode = params
        .encrypt_type
        .as_deref()
        .is_some_and(|kind| kind.eq_ignore_ascii_case("aes"));
    // Safe and compatible mode carry the ciphertext: it is what is trusted when present.
    let push = match (&outer.encrypt, params.msg_signature.as_deref()) {
        (Some(encrypted), Some(msg_signature)) => {
            let crypt = crypt(channel)?;
            crypt.verify(msg_signature, params.timestamp(), params.nonce(), encrypted)?;
            Push::parse(&crypt.decrypt(encrypted)?)?
        }
        _ if safe_mode => {
            return Err(Error::Forbidden(
                "a safe-mode push needs `msg_signature` and `<Encrypt>`".into(),
            ))
        }
        _ => {
            check_signature(channel, params)?;
            outer
        }
    };
    let inbox = service.keep_push(channel.id, &push)?;
    service.queue_inbound(
        channel.id,
        InboundJob::OfficialPush {
            inbox,
            push: Box::new(push),
        },
    );
    Ok(())
}

/// Handles a checked push: the visitor's message into the desk, or an event's effect on the reply
/// window.
pub(super) async fn handle_push(
    service: &Arc<ChannelService>,
    channel: &Channel,
    push: Push,
) -> Result<()> {
    let Some(openid) = push.sender().map(str::to_string) else {
        return Ok(());
    };
    let message = push.official_message();
    let repeat_key = match &push.msg_id {
        Some(id) => id.clone(),
        None => format!(
            "{openid}:{}:{:?}",
            push.create_time.as_deref().unwrap_or_default(),
            push.event
        ),
    };
    if service.seen_before(channel.id, &repeat_key) {
        return Ok(());
    }
    off_async(|| service.visitor(channel, &openid))?;
    let client_key = push
        .msg_id
        .as_deref()
        .map(|id| format!("wx:{}", id.chars().take(60).collect::<String>()));
    let mut inbound = Inbound {
        client_key,
        ..Inbound::default()
    };
    match message {
        OfficialMessage::Text { content } => inbound.text = content,
        OfficialMessage::Image { media_id, pic_url } => {
            match fetch_media(service, channel, media_id.as_deref(), pic_url.as_deref()).await {
                Ok(media) => inbound
                    .files
                    .push((file_name(&media, "图片", "jpg"), media.bytes)),
                Err(error) => inbound.text = format!("[图片，未能从微信取回：{error}]"),
            }
        }
        OfficialMessage::Voice {
            media_id,
            format,
            recognition,
        } => {
            if let Some(recognition) = recognition {
                inbound.text = format!("[语音转文字] {recognition}");
            }
            let extension = format.as_deref().unwrap_or("amr");
            match fetch_media(service, channel, media_id.as_deref(), None).await {
                Ok(media) => inbound
                    .files
                    .push((file_name(&media, "语音", extension), media.bytes)),
                Err(error) => {
                    if !inbound.text.is_empty() {
                        inbound.text.push('\n');
                    }
                    inbound
                        .text
                        .push_str(&format!("[语音，未能从微信取回：{error}]"));
                }
            }
        }
        OfficialMessage::Location {
            latitude,
            longitude,
            label,
        } => {
            inbound.text = format!("[位置] {label}（纬度 {latitude}，经度 {longitude}）");
        }
        OfficialMessage::Event { event, key } => {
            match event.as_str() {
                "subscribe" | "scan" => {
                    off_async(|| service.open_window(channel, &openid, false))?;
                }
                "unsubscribe" => {
                    off_async(|| {
                        service.change_visitor(channel.id, &openid, |visitor| {
                            visitor.unsubscribed = true;
                            visitor.grants.clear();
                        })
                    })?;
                }
                "click" => {
                    off_async(|| service.open_window(channel, &openid, false))?;
                    let inbound = Inbound {
                        text: format!("[点击菜单] {}", key.unwrap_or_default()),
                        ..Inbound::default()
                    };
                    service.receive(channel, &openid, inbound).await?;
                }
                _ => {}
            }
            return Ok(());
        }
        OfficialMessage::Other { msg_type } => {
            inbound.text = format!("[{msg_type} 消息，客服工作台暂不支持查看]");
        }
    }
    off_async(|| service.open_window(channel, &openid, true))?;
    service.receive(channel, &openid, inbound).await?;
    Ok(())
}

/// A name for a fetched file: WeChat's own, else `{stem}.{extension}` with the extension the bytes
/// show.
fn file_name(media: &Media, stem: &str, fallback_extension: &str) -> String {
    if let Some(name) = &media.file_name {
        return name.clone();
    }
    let extension = infer::get(&media.bytes)
        .map(|kind| kind.extension())
        .unwrap_or(fallback_extension);
    format!("{stem}.{extension}")
}

/// Fetches a message's media file with `media/get` (or from `PicUrl` when there is no media id).
async fn fetch_media(
    service: &Arc<ChannelService>,
    channel: &Channel,
    media_id: Option<&str>,
    pic_url: Option<&str>,
) -> std::result::Result<Media, CallError> {
    let service = Arc::clone(service);
    let channel = channel.clone();
    let media_id = media_id.map(str::to_string);
    let pic_url = pic_url.map(str::to_string);
    tokio::task::spawn_blocking(move || match (media_id, pic_url) {
        (Some(media_id), _) => {
            let base = service
                .config
                .wechat_api_base
                .trim_end_matches('/')
                .to_string();
            service.with_token(&channel, |token| {
                service.client.download(&format!(
                    "{base}/cgi-bin/media/get?access_token={}&media_id={}",
                    query_value(token),
                    query_value(&media_id)
                ))
            })
        }
        (None, Some(url)) => service.client.download(&url),
        (None, None) => Err(CallError::Network("the message names no media".into())),
    })
    .await
    .unwrap_or_else(|error| Err(CallError::Network(error.to_string())))
}

/// A new access token from `cgi-bin/token`.
pub(super) fn fetch_token(
    service: &ChannelService,
    channel: &Channel,
) -> std::result::Result<(String, i64), CallError> {
    debug_assert_eq!(channel.kind, ChannelKind::WechatOfficial);
    let base = service.config.wechat_api_base.trim_end_matches('/');
    let answer = service.client.get_json(&format!(
        "{base}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
        query_value(channel.app_id.as_deref().unwrap_or_default()),
        query_value(channel.app_secret.as_deref().unwrap_or_default())
    ))?;
    token_of(&answer)
}

/// Sends `text` to `openid` through 客服消息.
pub(super) fn send_text(
    service: &ChannelService,
    channel: &Channel,
    openid: &str,
    text: &str,
) -> std::result::Result<(), CallError> {
    send(
        service,
        channel,
        &json!({ "touser": openid, "msgtype": "text", "text": { "content": text } }),
    )
}

/// Sends a file: a picture as an image message after `media/upload`; anything else by name.
pub(super) fn send_file(
    service: &ChannelService,
    channel: &Channel,
    openid: &str,
    attachment: &Attachment,
    bytes: &[u8],
) -> std::result::Result<(), CallError> {
    if !attachment.content_type.starts_with("image/") {
        let notice = format!(
            "[文件] {}（公众号消息无法发送文件，如需该文件请联系客服通过其他方式获取）",
            attachment.name
        );
        return send_text(service, channel, openid, &notice);
    }
    let base = service
        .config
        .wechat_api_base
        .trim_end_matches('/')
        .to_string();
    let uploaded = service.with_token(channel, |token| {
        service.client.upload(
            &format!(
                "{base}/cgi-bin/media/upload?access_token={}&type=image",
                query_value(token)
            ),
            &attachment.name,
            &attachment.content_type,
            bytes,
        )
    })?;
    let media_id = uploaded
        .get("media_id")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| CallError::Network("the upload answer has no media_id".into()))?
        .to_string();
    send(
        service,
        channel,
        &json!({ "touser": openid, "msgtype": "image", "image": { "media_id": media_id } }),
    )
}

fn send(
    service: &ChannelService,
    channel: &Channel,
    body: &serde_json::Value,
) -> std::result::Result<(), CallError> {
    let base = service
        .config
        .wechat_api_base
        .trim_end_matches('/')
        .to_string();
    service
        .with_token(channel, |token| {
            service.client.post_json(
                &format!(
                    "{base}/cgi-bin/message/custom/send?access_token={}",
                    query_value(token)
                ),
                body,
            )
        })
        .map(|_| ())
}
