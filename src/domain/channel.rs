//! Channels (渠道): the ways visitors reach the desk besides the web page and widget. An admin
//! creates each one as a record: an API channel for the shop's app, 小程序 or any system; a WeChat
//! 公众号 (客服消息); a 企业微信 微信客服 account. The rules and protocols live in `crate::channels`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{AccountId, GroupId};

/// What kind of channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// The app's server talks to kefu over REST with the channel token and gets webhooks back.
    Api,
    /// A WeChat 公众号 (Official Account): pushes to the callback URL, replies through 客服消息.
    WechatOfficial,
    /// A 企业微信 微信客服 account: callback, `kf/sync_msg`, `kf/send_msg`.
    WecomKf,
}

impl ChannelKind {
    /// The `channel` label of its conversations (also the name of the kind).
    pub fn label(self) -> &'static str {
        match self {
            ChannelKind::Api => "api",
            ChannelKind::WechatOfficial => "wechat_official",
            ChannelKind::WecomKf => "wecom_kf",
        }
    }

    /// Whether WeChat's rules on replies apply (48 hours, a few messages per visitor message).
    pub fn has_reply_window(self) -> bool {
        !matches!(self, ChannelKind::Api)
    }
}

/// Something that went wrong with a channel (a refused send, a token that would not come), kept for
/// the admin console.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelError {
    /// When.
    pub at: Timestamp,
    /// What, as the remote API said it (`errcode` and `errmsg` when it had them).
    pub message: String,
}

/// A channel as stored. Secrets are kept here (the AppSecret is needed for every token) and never
/// sent back after creation; the API channel's token is kept as a hash only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// Id.
    pub id: u64,
    /// Kind.
    pub kind: ChannelKind,
    /// Name shown to staff (e.g. 官方商城 App, 服务号).
    pub name: String,
    /// A disabled channel takes nothing in and sends nothing out.
    pub enabled: bool,
    /// Skill group its conversations ask for; any agent when `None`.
    #[serde(default)]
    pub group: Option<GroupId>,
    /// API: BLAKE3 hex of the channel token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    /// API: the webhook (in the webhook service) that carries replies to the app's server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<u64>,
    /// 公众号: AppID; 微信客服: CorpID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// 公众号: AppSecret; 微信客服: the 微信客服 Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_secret: Option<String>,
    /// The callback Token entered in WeChat's console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_token: Option<String>,
    /// The EncodingAESKey entered in WeChat's console (43 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<String>,
    /// 微信客服: only this customer-service account (`open_kfid`); all of the corp's when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
    /// Recent errors, oldest first (a few dozen at most).
    #[serde(default)]
    pub errors: Vec<ChannelError>,
    /// Who created it.
    pub by: AccountId,
    /// When.
    pub created: Timestamp,
}

/// What may still be sent to a WeChat visitor after one of their actions: WeChat counts each
/// grant apart (a visitor message gives 5 messages for 48 hours; a menu click or a follow, 3 for a
/// minute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplyGrant {
    /// Until when it may be used.
    pub until: Timestamp,
    /// Messages left.
    pub left: u32,
    /// Given by a visitor message (a new message replaces it); else by an event.
    pub by_message: bool,
}

/// A visitor of a channel: who they are on the other side (OpenID, `external_userid`, the app's
/// user id) and what kefu knows of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelVisitor {
    /// The channel.
    pub channel: u64,
    /// OpenID, `external_userid`, or the app's user id.
    pub external_id: String,
    /// The desk's visitor id.
    pub visitor_id: String,
    /// Their latest conversation.
    #[serde(default)]
    pub conversation: Option<String>,
    /// Name, when known.
    #[serde(default)]
    pub name: Option<String>,
    /// 微信客服: the customer-service account they wrote to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
    /// What may still be sent (WeChat channels).
    #[serde(default)]
    pub grants: Vec<ReplyGrant>,
    /// Their last message or event.
    #[serde(default)]
    pub last_inbound: Option<Timestamp>,
    /// The conversation whose rating was asked by text (a reply `1`-`5` rates it).
    #[serde(default)]
    pub awaiting_rating: Option<String>,
    /// They unfollowed the 公众号: nothing can be sent until they come back.
    #[serde(default)]
    pub unsubscribed: bool,
}

/// Which channel and which of its visitors a conversation belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelLink {
    /// The channel.
    pub channel: u64,
    /// Its kind.
    pub kind: ChannelKind,
    /// The visitor on the other side.
    pub external_id: String,
}

/// What is queued for a WeChat visitor, sent in order by the outbound worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundItem {
    /// The channel.
    pub channel: u64,
    /// The conversation.
    pub conversation: String,
    /// The visitor on the other side.
    pub external_id: String,
    /// 微信客服: the account to send from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_kfid: Option<String>,
    /// The text (may be empty when only files go).
    pub text: String,
    /// Files (by hash, in the conversation) to send after the text.
    #[serde(default)]
    pub files: Vec<super::Attachment>,
    /// The message's seq in the conversation (0 for kefu's own prompts).
    pub seq: u64,
    /// Parts (the text, then each file) already sent, so a retry sends only the rest.
    #[serde(default)]
    pub parts_sent: u32,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt: Timestamp,
    /// When it was queued.
    pub created: Timestamp,
}
