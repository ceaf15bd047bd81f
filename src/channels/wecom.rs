//! 企业微信 微信客服 (WeCom customer service).
//!
//! - **The callback** (`/api/v1/channels/{id}/callback`): 企业微信 checks the URL with a `GET` whose
//!   `echostr` is encrypted (`msg_signature` over Token, `timestamp`, `nonce` and `echostr`); kefu
//!   answers it decrypted. Then every `POST` is an `<Encrypt>` envelope whose message only says that
//!   messages are waiting (`kf_msg_or_event`, with a `Token` for `sync_msg` and the `OpenKfId`).
//!   kefu answers at once and reads them afterwards.
//! - **Reading** with `cgi-bin/kf/sync_msg` from the cursor kept in the `channel_cursors` table (one
//!   per channel and `open_kfid`), page after page while `has_more`; the cursor is written after
//!   each page is handled, so a restart neither misses nor repeats a page (and a message handed to
//!   the desk twice is stored once: its `msgid` is the idempotency key). Only the customer's own
//!   messages (`origin` 3) reach the desk: text, pictures, voice, video and files (fetched with
//!   `media/get`), locations, links.
//! - **Replies** with `cgi-bin/kf/send_msg` (text; pictures and files after `media/upload`), within
//!   48 hours of the customer's message and at most 5 per customer message (see `window.rs`).
//!   The access token comes from `cgi-bin/gettoken` with the CorpID and the 微信客服 Secret.

use std::sync::Arc;

use serde_json::{json, Value};

use super::official_account::CallbackParams;
use super::wechat::client::{query_value, token_of, CallError};
use super::wechat::crypto::MessageCrypt;
use super::wechat::xml::Push;
use super::{off_async, ChannelService, Inbound, InboundJob};
use crate::domain::{Attachment, Channel, ChannelKind, OutboundItem};
use crate::error::{Error, Result};

/// `origin` of a message the customer sent.
const FROM_CUSTOMER: i64 = 3;
/// Pages read in one go at most, so one callback cannot keep the worker forever.
const MAX_PAGES: usize = 100;

/// The corp's crypt (Token, EncodingAESKey, CorpID).
fn crypt(channel: &Channel) -> Result<MessageCrypt> {
    MessageCrypt::new(
        channel.callback_token.as_deref().unwrap_or_default(),
        channel.encoding_aes_key.as_deref().unwrap_or_default(),
        channel.app_id.as_deref().unwrap_or_default(),
    )
}

/// The URL check: `echostr` decrypted, when `msg_signature` matches.
///
/// Returns [`Error::Forbidden`] for a wrong signature or ciphertext, [`Error::BadRequest`] without
/// `echostr`.
pub fn verify_url(channel: &Channel, params: &CallbackParams) -> Result<String> {
    let echostr = params
        .echostr
        .as_deref()
        .ok_or_else(|| Error::BadRequest("`echostr` is missing".into()))?;
    let crypt = crypt(channel)?;
    crypt.verify(
        params.msg_signature.as_deref().unwrap_or_default(),
        params.timestamp.as_deref().unwrap_or_default(),
        params.nonce.as_deref().unwrap_or_default(),
        echostr,
    )?;
    crypt.decrypt(echostr)
}

/// A callback: checked and decrypted now; a `kf_msg_or_event` queues the reading of the messages.
///
/// Returns [`Error::Forbidden`] for a wrong signature or ciphertext, [`Error::BadRequest`] for a
/// body that is not such XML.
pub fn accept_push(
    service: &Arc<ChannelService>,
    channel: &Channel,
    params: &CallbackParams,
    body: &str,
) -> Result<()> {
    let envelope = Push::parse(body)?;
    let encrypted = envelope
        .encrypt
        .as_deref()
        .ok_or_else(|| Error::BadRequest("the callback has no `<Encrypt>`".into()))?;
    let crypt = crypt(channel)?;
    crypt.verify(
        params.msg_signature.as_deref().unwrap_or_default(),
        params.timestamp.as_deref().unwrap_or_default(),
        params.nonce.as_deref().unwrap_or_default(),
        encrypted,
    )?;
    let event = Push::parse(&crypt.decrypt(encrypted)?)?;
    if event.event.as_deref().map(str::trim) == Some("kf_msg_or_event") {
        service.queue_inbound(
            channel.id,
            InboundJob::WecomSync {
                token: event.token.map(|token| token.trim().to_string()),
                open_kfid: event.open_kf_id.map(|id| id.trim().to_string()),
            },
        );
    }
    Ok(())
}

/// Reads the waiting messages with `kf/sync_msg` from the kept cursor and hands the customers'
/// to the desk, saving the cursor after each page.
pub(super) async fn sync(
    service: &Arc<ChannelService>,
    channel: &Channel,
    token: Option<String>,
    open_kfid: Option<String>,
) -> Result<()> {
    let open_kfid = open_kfid.or_else(|| channel.open_kfid.clone());
    if let (Some(wanted), Some(given)) = (&channel.open_kfid, &open_kfid) {
        if wanted != given {
            return Ok(());
        }
    }
    for _ in 0..MAX_PAGES {
        let cursor = off_async(|| service.records.cursor(channel.id, open_kfid.as_deref()))?;
        let mut request = json!({ "limit": 1000, "voice_format": 0 });
        if let Some(cursor) = &cursor {
            request["cursor"] = json!(cursor);
        }
        if let Some(token) = &token {
            request["token"] = json!(token);
        }
        if let Some(open_kfid) = &open_kfid {
            request["open_kfid"] = json!(open_kfid);
        }
        let page = {
            let service = Arc::clone(service);
            let channel = channel.clone();
            tokio::task::spawn_blocking(move || {
                let base = service
                    .config
                    .wecom_api_base
                    .trim_end_matches('/')
                    .to_string();
                service.with_token(&channel, |access_token| {
                    service.client.post_json(
                        &format!(
                            "{base}/cgi-bin/kf/sync_msg?access_token={}",
                            query_value(access_token)
                        ),
                        &request,
                    )
                })
            })
            .await
            .map_err(|error| Error::Internal(format!("sync_msg task failed: {error}")))?
            .map_err(|error| Error::Internal(format!("kf/sync_msg: {error}")))?
        };
        let messages = page
            .get("msg_list")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for message in &messages {
            match handle_message(service, channel, message).await {
                // A blocked visitor's messages are dropped on purpose.
                Ok(()) | Err(Error::VisitorBlocked) => {}
                Err(error) => service.record_error(
                    channel.id,
                    &format!("a 微信客服 message was not taken: {error}"),
                ),
            }
        }
        if let Some(next) = page.get("next_cursor").and_then(Value::as_str) {
            let next = next.to_string();
            off_async(|| {
                service
                    .records
                    .put_cursor(channel.id, open_kfid.as_deref(), &next)?;
                service.unit_of_work.make_durable()
            })?;
        }
        let has_more = page.get("has_more").and_then(Value::as_i64) == Some(1);
        if !has_more {
            break;
        }
    }
    Ok(())
}

/// One entry of `msg_list`.
async fn handle_message(
    service: &Arc<ChannelService>,
    channel: &Channel,
    message: &Value,
) -> Result<()> {
    let text = |path: &[&str]| {
        let mut value = message;
        for step in path {
            value = value.get(*step)?;
        }
        value.as_str().map(str::to_string)
    };
    let msgtype = text(&["msgtype"]).unwrap_or_default();
    if msgtype == "event" {
        let event = text(&["event", "event_type"]).unwrap_or_default();
        if event == "msg_send_fail" {
            service.record_error(
                channel.id,
                &format!(
                    "微信客服 could not deliver message {} to {}",
                    text(&["event", "fail_msgid"]).unwrap_or_default(),
                    text(&["event", "external_userid"]).unwrap_or_default()
                ),
            );
        }
        return Ok(());
    }
    if message.get("origin").and_then(Value::as_i64) != Some(FROM_CUSTOMER) {
        return Ok(());
    }
    let Some(external_id) = text(&["external_userid"]) else {
        return Ok(());
    };
    let open_kfid = text(&["open_kfid"]);
    if let (Some(wanted), Some(given)) = (&channel.open_kfid, &open_kfid) {
        if wanted != given {
            return Ok(());
        }
    }
    let msgid = text(&["msgid"]).unwrap_or_default();
    if !msgid.is_empty() && service.seen_before(channel.id, &msgid) {
        return Ok(());
    }
    off_async(|| service.visitor(channel, &external_id))?;
    let mut inbound = Inbound {
        client_key: (!msgid.is_empty()).then(|| client_key(&msgid)),
        open_kfid: open_kfid.clone(),
        ..Inbound::default()
    };
    match msgtype.as_str() {
        "text" => inbound.text = text(&["text", "content"]).unwrap_or_default(),
        "image" | "voice" | "video" | "file" => {
            let media_id = text(&[msgtype.as_str(), "media_id"]).unwrap_or_default();
            let (stem, extension) = match msgtype.as_str() {
                "image" => ("图片", "jpg"),
                "voice" => ("语音", "amr"),
                "video" => ("视频", "mp4"),
                _ => ("文件", "bin"),
            };
            match fetch_media(service, channel, &media_id).await {
                Ok(media) => {
                    let name = media.file_name.clone().unwrap_or_else(|| {
                        let extension = infer::get(&media.bytes)
                            .map(|kind| kind.extension())
                            .unwrap_or(extension);
                        format!("{stem}.{extension}")
                    });
                    inbound.files.push((name, media.bytes));
                }
                Err(error) => inbound.text = format!("[{stem}，未能从企业微信取回：{error}]"),
            }
        }
        "location" => {
            inbound.text = format!(
                "[位置] {} {}（纬度 {}，经度 {}）",
                text(&["location", "name"]).unwrap_or_default(),
                text(&["location", "address"]).unwrap_or_default(),
                message["location"]["latitude"],
                message["location"]["longitude"],
            )
            .replace("  ", " ");
        }
        "link" => {
            inbound.text = format!(
                "[链接] {} {}",
                text(&["link", "title"]).unwrap_or_default(),
                text(&["link", "url"]).unwrap_or_default()
            );
        }
        other => inbound.text = format!("[{other} 消息，客服工作台暂不支持查看]"),
    }
    off_async(|| service.open_window(channel, &external_id, true))?;
    service.receive(channel, &external_id, inbound).await?;
    Ok(())
}

/// The desk's idempotency key of a `msgid` (at most 64 characters).
fn client_key(msgid: &str) -> String {
    if msgid.len() <= 58 {
        format!("wecom:{msgid}")
    } else {
        format!("wecom:{}", &blake3::hash(msgid.as_bytes()).to_hex()[..58])
    }
}

async fn fetch_media(
    service: &Arc<ChannelService>,
    channel: &Channel,
    media_id: &str,
) -> std::result::Result<super::wechat::client::Media, CallError> {
    let service = Arc::clone(service);
    let channel = channel.clone();
    let media_id = media_id.to_string();
    tokio::task::spawn_blocking(move || {
        let base = service
            .config
            .wecom_api_base
            .trim_end_matches('/')
            .to_string();
        service.with_token(&channel, |token| {
            service.client.download(&format!(
                "{base}/cgi-bin/media/get?access_token={}&media_id={}",
                query_value(token),
                query_value(&media_id)
            ))
        })
    })
    .await
    .unwrap_or_else(|error| Err(CallError::Network(error.to_string())))
}

/// A new access token from `cgi-bin/gettoken`.
pub(super) fn fetch_token(
    service: &ChannelService,
    channel: &Channel,
) -> std::result::Result<(String, i64), CallError> {
    debug_assert_eq!(channel.kind, ChannelKind::WecomKf);
    let base = service.config.wecom_api_base.trim_end_matches('/');
    let answer = service.client.get_json(&format!(
        "{base}/cgi-bin/gettoken?corpid={}&corpsecret={}",
        query_value(channel.app_id.as_deref().unwrap_or_default()),
        query_value(channel.app_secret.as_deref().unwrap_or_default())
    ))?;
    token_of(&answer)
}

/// Sends `text` with `kf/send_msg`.
pub(super) fn send_text(
    service: &ChannelService,
    channel: &Channel,
    item: &OutboundItem,
    text: &str,
) -> std::result::Result<(), CallError> {
    send(service, channel, item, "text", json!({ "content": text }))
}

/// Sends a picture (or any other file) after `media/upload`.
pub(super) fn send_file(
    service: &ChannelService,
    channel: &Channel,
    item: &OutboundItem,
    attachment: &Attachment,
    bytes: &[u8],
) -> std::result::Result<(), CallError> {
    let kind = if attachment.content_type.starts_with("image/") {
        "image"
    } else {
        "file"
    };
    let base = service
        .config
        .wecom_api_base
        .trim_end_matches('/')
        .to_string();
    let uploaded = service.with_token(channel, |token| {
        service.client.upload(
            &format!(
                "{base}/cgi-bin/media/upload?access_token={}&type={kind}",
                query_value(token)
            ),
            &attachment.name,
            &attachment.content_type,
            bytes,
        )
    })?;
    let media_id = uploaded
        .get("media_id")
        .and_then(Value::as_str)
        .ok_or_else(|| CallError::Network("the upload answer has no media_id".into()))?
        .to_string();
    send(
        service,
        channel,
        item,
        kind,
        json!({ "media_id": media_id }),
    )
}

fn send(
    service: &ChannelService,
    channel: &Channel,
    item: &OutboundItem,
    msgtype: &str,
    content: Value,
) -> std::result::Result<(), CallError> {
    let open_kfid = item
        .open_kfid
        .clone()
        .or_else(|| channel.open_kfid.clone())
        .ok_or_else(|| CallError::Api {
            code: 0,
            message: "no open_kfid is known for this customer".into(),
        })?;
    let mut body = json!({
        "touser": item.external_id,
        "open_kfid": open_kfid,
        "msgtype": msgtype,
    });
    body[msgtype] = content;
    let base = service
        .config
        .wecom_api_base
        .trim_end_matches('/')
        .to_string();
    service
        .with_token(channel, |token| {
            service.client.post_json(
                &format!(
                    "{base}/cgi-bin/kf/send_msg?access_token={}",
                    query_value(token)
                ),
                &body,
            )
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_msgids_become_keys_the_desk_accepts() {
        assert_eq!(client_key("abc"), "wecom:abc");
        let long = "x".repeat(120);
        let key = client_key(&long);
        assert!(key.len() <= 64, "{key}");
        assert_ne!(key, client_key(&"y".repeat(120)));
    }
}
