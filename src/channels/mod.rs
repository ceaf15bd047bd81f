//! Channels (渠道): visitors who reach the desk from the shop's app or 小程序 (the API channel), a
//! WeChat 公众号 (客服消息) or a 企业微信 微信客服 account, served in the same desk as web visitors.
//!
//! A channel is a record an admin creates ([`ChannelService::create`]). Inbound, each channel turns
//! what arrives (a REST call, a push, a `kf/sync_msg` page) into a visitor of the desk and their
//! messages, through the desk's own start and send; outbound, the service watches the frames the
//! desk sends to visitors ([`VisitorFrameObserver`]) and carries them to the app's server as signed
//! webhook deliveries (the webhook queue) or to WeChat through its send APIs (a durable outbox sent
//! in order). WeChat's reply rules are a [`ReplyGate`] of the desk: a message that could not reach
//! the visitor is refused before it is stored. The desk's rules are unchanged.
//!
//! - `window.rs`: WeChat's reply window (48 hours, 5 messages per visitor message).
//! - `api_channel.rs`: the API channel (token, visitors, conversations, messages, files).
//! - `official_account.rs`: the 公众号 callback, its messages and 客服消息 sends.
//! - `wecom.rs`: the 微信客服 callback, `kf/sync_msg` with its durable cursor, `kf/send_msg`.
//! - `outbound.rs`: frames to webhooks and the outbox; the outbox sender.
//! - `wechat/`: WXBizMsgCrypt (`crypto.rs`), the XML of pushes (`xml.rs`), API calls and access
//!   tokens (`client.rs`).
//!
//! Builds on `services` (conversations, visitors, webhooks), `storage` and `domain`; `http` serves it.

pub mod api_channel;
pub mod official_account;
pub mod outbound;
pub mod wechat;
pub mod wecom;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Deserializer, Serialize};

use crate::config::ChannelsConfig;
use crate::domain::{
    AccountId, Attachment, Channel, ChannelError, ChannelKind, ChannelLink, ChannelVisitor,
    Conversation, ConversationState, GroupId, Message, SenderKind, VisitorIdentity,
};
use crate::error::{Error, Result};
use crate::services::accounts::AccountService;
use crate::services::clock::Clock;
use crate::services::conversations::{
    ConversationService, DeskFact, DeskObserver, Party, ReplyGate, StartRequest,
    VisitorFrameObserver,
};
use crate::services::secrets::random_token;
use crate::services::visitors::{Arrival, IdentityClaim, Origin, VisitorService};
use crate::services::webhooks::WebhookService;
use crate::storage::{ChannelRepository, StoredChannels, UnitOfWork};

use wechat::client::{AccessTokens, ApiClient};
pub use window::ReplyWindow;

/// Prefix of API channel tokens in `Authorization: Bearer ch1.<token>`.
pub const CHANNEL_TOKEN_PREFIX: &str = "ch1.";
/// Errors kept per channel for the admin console.
const KEPT_ERRORS: usize = 20;
/// Channel links remembered in memory (found or not) before the memory is cleared.
const LINK_CACHE_ENTRIES: usize = 50_000;
/// Longest channel name.
const MAX_NAME_CHARS: usize = crate::domain::limits::MAX_CHANNEL_NAME_CHARS;
/// Asks a WeChat visitor to rate, after the agent ended the conversation.
pub const RATING_PROMPT: &str =
    "本次服务已结束。请为我们的服务打分：直接回复数字 1-5（5 分为非常满意）。";
/// Thanks a WeChat visitor for their rating.
pub const RATING_THANKS: &str = "感谢您的评价，欢迎随时再来咨询！";

/// A new or changed channel. Fields that do not apply to the kind are refused.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// `api`, `wechat_official` or `wecom_kf`; required at creation, fixed afterwards.
    #[serde(default)]
    pub kind: Option<ChannelKind>,
    /// Name shown to staff.
    #[serde(default)]
    pub name: Option<String>,
    /// Paused or not (default: enabled).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Skill group of its conversations; `null` for any agent.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub group: Option<Option<GroupId>>,
    /// API: where replies are POSTed (http or https).
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// 公众号: AppID; 微信客服: CorpID.
    #[serde(default)]
    pub app_id: Option<String>,
    /// 公众号: AppSecret; 微信客服: the 微信客服 Secret. Never shown again.
    #[serde(default)]
    pub app_secret: Option<String>,
    /// The callback Token; generated when absent at creation.
    #[serde(default)]
    pub callback_token: Option<String>,
    /// The EncodingAESKey (43 characters); generated when absent at creation.
    #[serde(default)]
    pub encoding_aes_key: Option<String>,
    /// 微信客服: take only this customer-service account's messages (`open_kfid`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub open_kfid: Option<Option<String>>,
}

/// A field that is present (even `null`) is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A channel as admins see it: no secrets.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    /// Id.
    pub id: u64,
    /// Kind.
    pub kind: ChannelKind,
    /// The `channel` label of its conversations (`api`, `wechat_official`, `wecom_kf`).
    pub label: &'static str,
    /// Name.
    pub name: String,
    /// Enabled.
    pub enabled: bool,
    /// Skill group of its conversations.
    pub group: Option<GroupId>,
    /// 公众号 and 微信客服: the URL to paste into WeChat's console as the server (callback) URL.
    pub callback_url: Option<String>,
    /// API: where replies go.
    pub webhook_url: Option<String>,
    /// API: the webhook carrying replies (its deliveries are the delivery log).
    pub webhook: Option<u64>,
    /// AppID or CorpID.
    pub app_id: Option<String>,
    /// Whether an AppSecret (or 微信客服 Secret) is set.
    pub has_app_secret: bool,
    /// Whether the callback Token and EncodingAESKey are set.
    pub has_callback_keys: bool,
    /// 微信客服: the customer-service account taken, if only one.
    pub open_kfid: Option<String>,
    /// Recent errors, newest first.
    pub errors: Vec<ChannelError>,
    /// Who created it.
    pub by: AccountId,
    /// When.
    pub created: Timestamp,
}

/// Secrets, shown once: at creation and after a rotation.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ChannelSecrets {
    /// API: the channel token, sent as `Authorization: Bearer ch1.…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// API: the key of the webhook signatures (`X-Kefu-Signature`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// 公众号 and 微信客服: the Token to paste into WeChat's console.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_token: Option<String>,
    /// 公众号 and 微信客服: the EncodingAESKey to paste into WeChat's console.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<String>,
}

/// A channel with the secrets just made.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelWithSecrets {
    /// The channel.
    pub channel: ChannelView,
    /// Shown this once.
    pub secrets: ChannelSecrets,
}

/// What the admin console's "test" button learned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChannelTest {
    /// It worked.
    pub ok: bool,
    /// What was tried and what came back.
    pub message: String,
}

/// What a visitor sent through a channel, ready for the desk.
#[derive(Debug, Clone, Default)]
pub struct Inbound {
    /// The sender's idempotency key (a WeChat MsgId), so a repeat is stored once.
    pub client_key: Option<String>,
    /// The text.
    pub text: String,
    /// Files: (name, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// Already uploaded files of the conversation (API channel), by hash.
    pub attachments: Vec<String>,
    /// Who they are, as far as the channel tells.
    pub identity: VisitorIdentity,
    /// A signed identity of the app's user (API channel).
    pub claim: Option<IdentityClaim>,
    /// 微信客服: the account written to.
    pub open_kfid: Option<String>,
    /// The page or screen they are on.
    pub page: Option<String>,
}

/// Conversation links found (or not) lately; cleared when it grows past its bound.
#[derive(Debug, Default)]
struct LinkCache {
    entries: HashMap<String, Option<ChannelLink>>,
}

/// The channels.
pub struct ChannelService {
    records: Arc<dyn ChannelRepository>,
    unit_of_work: UnitOfWork,
    accounts: Arc<AccountService>,
    conversations: Arc<ConversationService>,
    visitors: Arc<VisitorService>,
    webhooks: Arc<WebhookService>,
    clock: Arc<dyn Clock>,
    config: ChannelsConfig,
    client: ApiClient,
    tokens: AccessTokens,
    /// Every channel, by id (they are few): read on every request and frame.
    channels: RwLock<BTreeMap<u64, Channel>>,
    links: Mutex<LinkCache>,
    /// Visitors whose conversation is being started: the `Created` fact links it to the channel.
    starting: Mutex<HashMap<String, ChannelLink>>,
    /// One visitor's inbound messages are handled one at a time, in order.
    visitor_turns: Mutex<HashMap<(u64, String), TurnLock>>,
    /// Inbound work of each WeChat channel, handled in arrival order after the push was answered.
    inbound_queues: Mutex<HashMap<u64, InboundQueue>>,
    /// Wakes the outbox sender.
    outbox_ready: tokio::sync::Notify,
    /// One outbox sender at a time.
    sending: tokio::sync::Mutex<()>,
    /// Agents' messages the reply gate counted, until their frame is queued for WeChat; a message
    /// the gate did not see (the agent's greeting at assignment) is counted when queued.
    counted_replies: Mutex<std::collections::HashSet<(String, u64)>>,
    /// Recently seen WeChat message ids per channel (WeChat repeats a push it thinks unanswered).
    seen_messages: Mutex<HashMap<u64, std::collections::VecDeque<String>>>,
}

impl std::fmt::Debug for ChannelService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChannelService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ChannelService {
    /// Opens the channels of `accounts`' store and hooks them into the desk: the `Created` facts,
    /// the frames to visitors, the reply gate. Nothing is received until [`ChannelService::resume`].
    pub fn open(
        accounts: Arc<AccountService>,
        conversations: Arc<ConversationService>,
        visitors: Arc<VisitorService>,
        webhooks: Arc<WebhookService>,
        clock: Arc<dyn Clock>,
        config: ChannelsConfig,
    ) -> Result<Arc<ChannelService>> {
        let records: Arc<dyn ChannelRepository> = Arc::new(StoredChannels::new(accounts.store()));
        let unit_of_work = UnitOfWork::new(accounts.store());
        let channels: BTreeMap<u64, Channel> = records
            .channels()?
            .into_iter()
            .map(|channel| (channel.id, channel))
            .collect();
        let client = ApiClient::new(Duration::from_secs(config.request_timeout_secs.max(1)));
        let service = Arc::new(ChannelService {
            records,
            unit_of_work,
            accounts,
            conversations,
            visitors,
            webhooks,
            clock,
            config,
            client,
            tokens: AccessTokens::default(),
            channels: RwLock::new(channels),
            links: Mutex::default(),
            starting: Mutex::default(),
            visitor_turns: Mutex::default(),
            inbound_queues: Mutex::default(),
            outbox_ready: tokio::sync::Notify::new(),
            sending: tokio::sync::Mutex::new(()),
            counted_replies: Mutex::default(),
            seen_messages: Mutex::default(),
        });
        // The desk holds the hooks, which hold the service weakly: the service holds the desk.
        let hooks = Arc::new(DeskHooks(Arc::downgrade(&service)));
        service.conversations.add_observer(hooks.clone());
        service
            .conversations
            .add_visitor_frame_observer(hooks.clone());
        service.conversations.add_reply_gate(hooks);
        Ok(service)
    }

    /// Takes up the work of the desk that runs it: queues what a crash left in the inbox, and marks
    /// the visitors of open channel conversations present (they have no page whose socket would).
    /// Not called on a cluster's followers, whose desk is the leader's.
    pub fn resume(self: &Arc<Self>) -> Result<()> {
        self.resume_inbox()?;
        for visitor in self.records.visitors()? {
            if let Some(conversation) = &visitor.conversation {
                let open = self
                    .conversations
                    .conversation(conversation)
                    .is_ok_and(|conversation| conversation.state.is_open());
                if open {
                    self.conversations.visitor_connected(conversation);
                }
            }
        }
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> &ChannelsConfig {
        &self.config
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    // ----- administration -----

    /// Every channel, by id.
    pub fn list(&self) -> Vec<ChannelView> {
        self.channels
            .read()
            .values()
            .map(|channel| self.view(channel))
            .collect()
    }

    /// One channel as stored (secrets included: not for the wire).
    ///
    /// Returns [`Error::ChannelNotFound`] for an unknown id.
    pub fn channel(&self, id: u64) -> Result<Channel> {
        self.channels
            .read()
            .get(&id)
            .cloned()
            .ok_or(Error::ChannelNotFound(id))
    }

    /// One channel as admins see it.
    pub fn get(&self, id: u64) -> Result<ChannelView> {
        Ok(self.view(&self.channel(id)?))
    }

    /// Creates a channel; the secrets kefu made are in the answer, once.
    ///
    /// Returns [`Error::InvalidInput`] for a missing or misplaced field, [`Error::GroupNotFound`].
    pub fn create(&self, input: ChannelInput, by: AccountId) -> Result<ChannelWithSecrets> {
        let kind = input
            .kind
            .ok_or_else(|| Error::InvalidInput("a channel needs a `kind`".into()))?;
        let name = clean_name(input.name.as_deref().unwrap_or(default_name(kind)))?;
        let group = input.group.flatten();
        if let Some(group) = group {
            self.accounts.group(group)?;
        }
        let id = self.records.new_id()?;
        let mut channel = Channel {
            id,
            kind,
            name,
            enabled: input.enabled.unwrap_or(true),
            group,
            token_hash: None,
            webhook: None,
            app_id: None,
            app_secret: None,
            callback_token: None,
            encoding_aes_key: None,
            open_kfid: None,
            errors: Vec::new(),
            by,
            created: self.now(),
        };
        let mut secrets = ChannelSecrets::default();
        match kind {
            ChannelKind::Api => {
                refuse_wechat_fields(&input)?;
                let url = input.webhook_url.as_deref().ok_or_else(|| {
                    Error::InvalidInput(
                        "an API channel needs a `webhook_url` for its replies".into(),
                    )
                })?;
                let webhook = self.webhooks.create_for_channel(id, url, by)?;
                let token = random_token(24);
                channel.token_hash = Some(token_hash(&token));
                channel.webhook = Some(webhook.id);
                secrets.token = Some(format!("{CHANNEL_TOKEN_PREFIX}{token}"));
                secrets.webhook_secret = Some(webhook.secret);
            }
            ChannelKind::WechatOfficial | ChannelKind::WecomKf => {
                if input.webhook_url.is_some() {
                    return Err(Error::InvalidInput(
                        "`webhook_url` is for API channels".into(),
                    ));
                }
                if kind == ChannelKind::WechatOfficial && input.open_kfid.is_some() {
                    return Err(Error::InvalidInput(
                        "`open_kfid` is for 微信客服 channels".into(),
                    ));
                }
                let app_id = required(input.app_id.as_deref(), app_id_name(kind))?;
                let app_secret = required(input.app_secret.as_deref(), secret_name(kind))?;
                let callback_token = match input.callback_token.as_deref() {
                    Some(token) => check_callback_token(token)?,
                    None => random_callback_token(),
                };
                let encoding_aes_key = match input.encoding_aes_key.as_deref() {
                    Some(key) => {
                        wechat::crypto::decode_encoding_aes_key(key)?;
                        key.trim().to_string()
                    }
                    None => wechat::crypto::generate_encoding_aes_key(),
                };
                channel.app_id = Some(check_plain("app_id", &app_id)?);
                channel.app_secret = Some(check_plain("app_secret", &app_secret)?);
                channel.open_kfid = input
                    .open_kfid
                    .flatten()
                    .map(|open_kfid| check_plain("open_kfid", &open_kfid))
                    .transpose()?;
                secrets.callback_token = Some(callback_token.clone());
                secrets.encoding_aes_key = Some(encoding_aes_key.clone());
                channel.callback_token = Some(callback_token);
                channel.encoding_aes_key = Some(encoding_aes_key);
            }
        }
        self.save(&channel)?;
        Ok(ChannelWithSecrets {
            channel: self.view(&channel),
            secrets,
        })
    }

    /// Changes the given fields; a new AppSecret, Token or EncodingAESKey replaces the old one.
    ///
    /// Returns [`Error::ChannelNotFound`], [`Error::InvalidInput`], [`Error::GroupNotFound`].
    pub fn update(&self, id: u64, input: ChannelInput) -> Result<ChannelView> {
        let mut channel = self.channel(id)?;
        if input.kind.is_some_and(|kind| kind != channel.kind) {
            return Err(Error::InvalidInput(
                "a channel's kind cannot change; create another channel".into(),
            ));
        }
        if let Some(name) = &input.name {
            channel.name = clean_name(name)?;
        }
        if let Some(enabled) = input.enabled {
            channel.enabled = enabled;
        }
        if let Some(group) = input.group {
            if let Some(group) = group {
                self.accounts.group(group)?;
            }
            channel.group = group;
        }
        match channel.kind {
            ChannelKind::Api => {
                refuse_wechat_fields(&input)?;
                if let (Some(webhook), url) = (channel.webhook, input.webhook_url.as_deref()) {
                    self.webhooks
                        .update_for_channel(webhook, url, false, input.enabled)?;
                }
            }
            kind => {
                if input.webhook_url.is_some() {
                    return Err(Error::InvalidInput(
                        "`webhook_url` is for API channels".into(),
                    ));
                }
                if let Some(app_id) = &input.app_id {
                    channel.app_id = Some(check_plain("app_id", app_id)?);
                }
                if let Some(secret) = &input.app_secret {
                    channel.app_secret = Some(check_plain("app_secret", secret)?);
                    self.tokens.forget(id);
                }
                if let Some(token) = &input.callback_token {
                    channel.callback_token = Some(check_callback_token(token)?);
                }
                if let Some(key) = &input.encoding_aes_key {
                    wechat::crypto::decode_encoding_aes_key(key)?;
                    channel.encoding_aes_key = Some(key.trim().to_string());
                }
                if let Some(open_kfid) = input.open_kfid {
                    if kind != ChannelKind::WecomKf {
                        return Err(Error::InvalidInput(
                            "`open_kfid` is for 微信客服 channels".into(),
                        ));
                    }
                    channel.open_kfid = open_kfid
                        .map(|open_kfid| check_plain("open_kfid", &open_kfid))
                        .transpose()?;
                }
            }
        }
        self.save(&channel)?;
        Ok(self.view(&channel))
    }

    /// New secrets for the channel, shown once: the API channel's token and webhook secret, or the
    /// callback Token and EncodingAESKey (to paste into WeChat's console again).
    ///
    /// Returns [`Error::ChannelNotFound`].
    pub fn rotate(&self, id: u64) -> Result<ChannelWithSecrets> {
        let mut channel = self.channel(id)?;
        let mut secrets = ChannelSecrets::default();
        match channel.kind {
            ChannelKind::Api => {
                let token = random_token(24);
                channel.token_hash = Some(token_hash(&token));
                secrets.token = Some(format!("{CHANNEL_TOKEN_PREFIX}{token}"));
                if let Some(webhook) = channel.webhook {
                    let webhook = self
                        .webhooks
                        .update_for_channel(webhook, None, true, None)?;
                    secrets.webhook_secret = Some(webhook.secret);
                }
            }
            ChannelKind::WechatOfficial | ChannelKind::WecomKf => {
                let token = random_callback_token();
                let key = wechat::crypto::generate_encoding_aes_key();
                channel.callback_token = Some(token.clone());
                channel.encoding_aes_key = Some(key.clone());
                secrets.callback_token = Some(token);
                secrets.encoding_aes_key = Some(key);
            }
        }
        self.save(&channel)?;
        Ok(ChannelWithSecrets {
            channel: self.view(&channel),
            secrets,
        })
    }

    /// Removes a channel (its conversations stay, labelled as they were); queued replies are
    /// dropped.
    ///
    /// Returns [`Error::ChannelNotFound`].
    pub fn delete(&self, id: u64) -> Result<ChannelView> {
        let channel = self.channel(id)?;
        if let Some(webhook) = channel.webhook {
            self.webhooks.delete_for_channel(webhook)?;
        }
        self.records.remove_channel(id)?;
        self.unit_of_work.make_durable()?;
        self.channels.write().remove(&id);
        self.tokens.forget(id);
        self.links.lock().entries.clear();
        Ok(self.view(&channel))
    }

    /// The "test" button: the API channel sends a signed `ping` to its webhook now; a WeChat
    /// channel fetches a fresh access token. Blocks on the network.
    ///
    /// Returns [`Error::ChannelNotFound`].
    pub fn test(&self, id: u64) -> Result<ChannelTest> {
        let channel = self.channel(id)?;
        let outcome = match channel.kind {
            ChannelKind::Api => {
                let webhook = channel
                    .webhook
                    .ok_or_else(|| Error::Internal(format!("API channel {id} has no webhook")))?;
                self.webhooks
                    .ping(webhook)
                    .map(|status| format!("the webhook answered {status} to a signed `ping`"))
            }
            ChannelKind::WechatOfficial | ChannelKind::WecomKf => {
                self.tokens.forget(id);
                self.access_token(&channel)
                    .map(|_| "an access token was issued with the AppID and secret".to_string())
                    .map_err(|error| error.to_string())
            }
        };
        Ok(match outcome {
            Ok(message) => ChannelTest { ok: true, message },
            Err(error) => {
                let message = format!("test failed: {error}");
                self.record_error(id, &message);
                ChannelTest { ok: false, message }
            }
        })
    }

    fn save(&self, channel: &Channel) -> Result<()> {
        self.records.put_channel(channel)?;
        self.unit_of_work.make_durable()?;
        self.channels.write().insert(channel.id, channel.clone());
        Ok(())
    }

    fn view(&self, channel: &Channel) -> ChannelView {
        let callback_url = channel.kind.has_reply_window().then(|| {
            format!(
                "{}/api/v1/channels/{}/callback",
                self.config.public_url.trim_end_matches('/'),
                channel.id
            )
        });
        let webhook_url = channel
            .webhook
            .and_then(|webhook| self.webhooks.get(webhook).ok())
            .map(|webhook| webhook.url);
        ChannelView {
            id: channel.id,
            kind: channel.kind,
            label: channel.kind.label(),
            name: channel.name.clone(),
            enabled: channel.enabled,
            group: channel.group,
            callback_url,
            webhook_url,
            webhook: channel.webhook,
            app_id: channel.app_id.clone(),
            has_app_secret: channel.app_secret.is_some(),
            has_callback_keys: channel.callback_token.is_some()
                && channel.encoding_aes_key.is_some(),
            open_kfid: channel.open_kfid.clone(),
            errors: channel.errors.iter().rev().cloned().collect(),
            by: channel.by,
            created: channel.created,
        }
    }

    /// Keeps `message` among the channel's recent errors (for the admin console) and logs it.
    pub fn record_error(&self, id: u64, message: &str) {
        tracing::warn!(channel = id, error = message, "channel error");
        let at = self.now();
        let updated = self.records.change_channel(id, &mut |channel| {
            channel.errors.push(ChannelError {
                at,
                message: message.chars().take(500).collect(),
            });
            let excess = channel.errors.len().saturating_sub(KEPT_ERRORS);
            channel.errors.drain(..excess);
        });
        match updated {
            Ok(Some(channel)) => {
                self.channels.write().insert(id, channel);
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, channel = id, "recording a channel error failed"),
        }
    }

    /// The API channel whose token this is (without its `ch1.` prefix), if enabled.
    pub fn api_channel_by_token(&self, token: &str) -> Option<Channel> {
        let hash = token_hash(token);
        self.channels
            .read()
            .values()
            .find(|channel| {
                channel.kind == ChannelKind::Api
                    && channel.enabled
                    && channel
                        .token_hash
                        .as_deref()
                        .is_some_and(|stored| constant_time_eq(stored.as_bytes(), hash.as_bytes()))
            })
            .cloned()
    }

    // ----- visitors and their conversations -----

    /// The channel's visitor `external_id`, created (with a desk visitor id) when new.
    pub fn visitor(&self, channel: &Channel, external_id: &str) -> Result<ChannelVisitor> {
        if let Some(visitor) = self.records.visitor(channel.id, external_id)? {
            return Ok(visitor);
        }
        let visitor = ChannelVisitor {
            channel: channel.id,
            external_id: external_id.to_string(),
            visitor_id: format!("v_{}", random_token(9)),
            conversation: None,
            name: None,
            open_kfid: None,
            grants: Vec::new(),
            last_inbound: None,
            awaiting_rating: None,
            unsubscribed: false,
        };
        self.records.put_visitor(&visitor)?;
        Ok(visitor)
    }

    /// The stored visitor, if any.
    pub fn find_visitor(&self, channel: u64, external_id: &str) -> Result<Option<ChannelVisitor>> {
        self.records.visitor(channel, external_id)
    }

    /// Changes a stored visitor atomically; the visitor as stored after.
    fn change_visitor(
        &self,
        channel: u64,
        external_id: &str,
        mut change: impl FnMut(&mut ChannelVisitor),
    ) -> Result<Option<ChannelVisitor>> {
        self.records
            .change_visitor(channel, external_id, &mut change)
    }

    /// Waits for the turn of one visitor of a channel, so their messages are handled in order and
    /// never start two conversations.
    async fn visitor_turn(&self, channel: u64, external_id: &str) -> VisitorTurn<'_> {
        let key = (channel, external_id.to_string());
        let lock = Arc::clone(self.visitor_turns.lock().entry(key.clone()).or_default());
        let guard = Arc::clone(&lock).lock_owned().await;
        VisitorTurn {
            service: self,
            key,
            _guard: guard,
        }
    }

    /// The channel and visitor of a conversation, if it came through a channel.
    pub fn link(&self, conversation: &str) -> Result<Option<ChannelLink>> {
        if let Some(found) = self.links.lock().entries.get(conversation) {
            return Ok(found.clone());
        }
        let found = self.records.link(conversation)?;
        let mut links = self.links.lock();
        if links.entries.len() >= LINK_CACHE_ENTRIES {
            links.entries.clear();
        }
        links
            .entries
            .insert(conversation.to_string(), found.clone());
        Ok(found)
    }

    /// Hands what `visitor` sent to the desk: to their open conversation (or offline message), else
    /// to a new one. Returns the conversation. A text `1`-`5` answering a rating request rates it.
    pub async fn receive(
        &self,
        channel: &Channel,
        external_id: &str,
        inbound: Inbound,
    ) -> Result<Conversation> {
        let _turn = self.visitor_turn(channel.id, external_id).await;
        let visitor = off_async(|| self.visitor(channel, external_id))?;
        self.visitors
            .check_blocked(Some(&visitor.visitor_id), None)?;
        if let Some(rated) = self.rating_answer(channel, &visitor, &inbound).await? {
            return Ok(rated);
        }
        let existing = match &visitor.conversation {
            Some(id) => self
                .conversations
                .conversation(id)
                .ok()
                .filter(|conversation| {
                    matches!(
                        conversation.state,
                        ConversationState::Queued
                            | ConversationState::Active
                            | ConversationState::OfflineMessage
                    )
                }),
            None => None,
        };
        let conversation = match existing {
            Some(conversation) => {
                self.send_to(&conversation, &inbound).await?;
                conversation
            }
            None => self.start(channel, &visitor, &inbound).await?,
        };
        let name = inbound.identity.name.clone();
        let open_kfid = inbound.open_kfid.clone();
        let conversation_id = conversation.id.clone();
        off_async(|| {
            self.change_visitor(channel.id, external_id, |visitor| {
                visitor.conversation = Some(conversation_id.clone());
                visitor.awaiting_rating = None;
                if name.is_some() {
                    visitor.name = name.clone();
                }
                if open_kfid.is_some() {
                    visitor.open_kfid = open_kfid.clone();
                }
            })
        })?;
        self.conversations.visitor_connected(&conversation.id);
        Ok(self
            .conversations
            .conversation(&conversation.id)
            .unwrap_or(conversation))
    }

    /// A `1`-`5` from a visitor asked to rate by text rates the conversation.
    async fn rating_answer(
        &self,
        channel: &Channel,
        visitor: &ChannelVisitor,
        inbound: &Inbound,
    ) -> Result<Option<Conversation>> {
        let Some(conversation) = &visitor.awaiting_rating else {
            return Ok(None);
        };
        let stars = match inbound.text.trim() {
            "1" | "１" => 1,
            "2" | "２" => 2,
            "3" | "３" => 3,
            "4" | "４" => 4,
            "5" | "５" => 5,
            _ => return Ok(None),
        };
        if !inbound.files.is_empty() {
            return Ok(None);
        }
        if self
            .conversations
            .rate(conversation, stars, "")
            .await
            .is_err()
        {
            return Ok(None);
        }
        off_async(|| {
            self.change_visitor(channel.id, &visitor.external_id, |visitor| {
                visitor.awaiting_rating = None;
            })
        })?;
        if channel.kind.has_reply_window() {
            off_async(|| self.queue_text(channel, visitor, conversation, RATING_THANKS))?;
        }
        Ok(self.conversations.conversation(conversation).ok())
    }

    /// Starts the visitor's conversation with what they sent (a file first is announced in text,
    /// then sent as the conversation's second message).
    async fn start(
        &self,
        channel: &Channel,
        visitor: &ChannelVisitor,
        inbound: &Inbound,
    ) -> Result<Conversation> {
        let mut identity = inbound.identity.clone();
        let arrival = self.visitors.check_arrival(Arrival {
            channel: Some(channel.kind.label().to_string()),
            identity: inbound.claim.clone(),
            page: None,
        })?;
        let profile = off_async(|| {
            self.visitors
                .settle(&visitor.visitor_id, arrival, &Origin::default())
        })?;
        if let Some(verified) = profile.identity.filter(|identity| identity.verified) {
            identity.external_id = verified.person_key();
            if verified.name.is_some() {
                identity.name = verified.name;
            }
        }
        let text = inbound.text.trim();
        let opening = if text.is_empty() {
            describe_files(&inbound.files, &inbound.attachments)
        } else {
            text.to_string()
        };
        let link = ChannelLink {
            channel: channel.id,
            kind: channel.kind,
            external_id: visitor.external_id.clone(),
        };
        self.starting
            .lock()
            .insert(visitor.visitor_id.clone(), link);
        let started = self
            .conversations
            .start_for_visitor(
                &visitor.visitor_id,
                StartRequest {
                    channel: Some(channel.kind.label().to_string()),
                    page: inbound.page.clone(),
                    identity,
                    message: opening,
                    group: channel.group,
                },
            )
            .await;
        self.starting.lock().remove(&visitor.visitor_id);
        let conversation = started?;
        if !inbound.files.is_empty() || !inbound.attachments.is_empty() {
            let files_only = Inbound {
                text: if text.is_empty() {
                    String::new()
                } else {
                    describe_files(&inbound.files, &inbound.attachments)
                },
                client_key: inbound.client_key.clone(),
                files: inbound.files.clone(),
                attachments: inbound.attachments.clone(),
                ..Inbound::default()
            };
            self.send_to(&conversation, &files_only).await?;
        }
        Ok(conversation)
    }

    /// Stores the visitor's message (files uploaded first; a file the desk refuses is named in the
    /// text instead).
    async fn send_to(&self, conversation: &Conversation, inbound: &Inbound) -> Result<Message> {
        let mut attachments: Vec<Attachment> = if inbound.attachments.is_empty() {
            Vec::new()
        } else {
            self.conversations
                .attachments_for(&conversation.id, &inbound.attachments)?
        };
        let mut text = inbound.text.trim().to_string();
        for (name, bytes) in &inbound.files {
            match self
                .conversations
                .upload(&Party::Visitor, &conversation.id, name, bytes.clone())
                .await
            {
                Ok(attachment) => attachments.push(attachment),
                Err(error) => {
                    tracing::info!(%error, conversation = conversation.id, "a channel file was not kept");
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!("[文件 {name} 未能保存：{error}]"));
                }
            }
        }
        if text.is_empty() && attachments.is_empty() {
            text = "[空消息]".to_string();
        }
        self.conversations
            .send(
                &Party::Visitor,
                &conversation.id,
                inbound.client_key.clone(),
                &text,
                attachments,
                false,
            )
            .await
    }

    /// The reply window of a conversation, as the workbench shows it.
    pub fn reply_window(&self, conversation: &Conversation) -> Result<ReplyWindow> {
        let Some(link) = self.link(&conversation.id)? else {
            return Ok(ReplyWindow::unlimited());
        };
        if !link.kind.has_reply_window() {
            return Ok(ReplyWindow::unlimited());
        }
        let visitor = self.find_visitor(link.channel, &link.external_id)?;
        Ok(match visitor {
            Some(visitor) => window::window(&visitor, self.now()),
            None => ReplyWindow::unlimited(),
        })
    }

    /// Tells the conversation's agents its reply window (after the visitor wrote, or a reply was
    /// counted).
    fn announce_window(&self, conversation: &Conversation, window: &ReplyWindow) {
        let agents: Vec<AccountId> = conversation
            .agent
            .into_iter()
            .chain(conversation.invited.iter().copied())
            .collect();
        if agents.is_empty() {
            return;
        }
        self.conversations.hub().to_agents(
            &agents,
            &serde_json::json!({
                "type": "reply_window",
                "conversation": conversation.id,
                "window": window,
            }),
        );
    }

    /// Tells the conversation's agents that something could not be sent to the visitor.
    fn announce_failure(&self, conversation: &str, message: &str) {
        let Ok(conversation) = self.conversations.conversation(conversation) else {
            return;
        };
        let agents: Vec<AccountId> = conversation
            .agent
            .into_iter()
            .chain(conversation.invited.iter().copied())
            .collect();
        self.conversations.hub().to_agents(
            &agents,
            &serde_json::json!({
                "type": "delivery_failed",
                "conversation": conversation.id,
                "message": message,
            }),
        );
    }

    /// The visitor wrote or acted at `now`: their window opens (a message: 5 for 48 hours; an
    /// event: 3 for a minute).
    fn open_window(&self, channel: &Channel, external_id: &str, by_message: bool) -> Result<()> {
        let now = self.now();
        let visitor = self.change_visitor(channel.id, external_id, |visitor| {
            if by_message {
                window::visitor_message(visitor, now);
            } else {
                window::visitor_event(visitor, now);
            }
        })?;
        if let Some(visitor) = visitor {
            if let Some(conversation) = visitor
                .conversation
                .as_deref()
                .and_then(|id| self.conversations.conversation(id).ok())
            {
                self.announce_window(&conversation, &window::window(&visitor, now));
            }
        }
        Ok(())
    }

    /// A fresh access token of a WeChat channel (cached until shortly before it expires).
    fn access_token(
        &self,
        channel: &Channel,
    ) -> std::result::Result<String, wechat::client::CallError> {
        let now = self.now();
        self.tokens.get(channel.id, now, || match channel.kind {
            ChannelKind::WechatOfficial => official_account::fetch_token(self, channel),
            ChannelKind::WecomKf => wecom::fetch_token(self, channel),
            ChannelKind::Api => Err(wechat::client::CallError::Network(
                "API channels have no access token".into(),
            )),
        })
    }

    /// Calls `call` with the channel's access token; a token WeChat refuses (40001, 40014, 42001)
    /// is fetched again and the call made once more.
    fn with_token<T>(
        &self,
        channel: &Channel,
        call: impl Fn(&str) -> std::result::Result<T, wechat::client::CallError>,
    ) -> std::result::Result<T, wechat::client::CallError> {
        let token = self.access_token(channel)?;
        match call(&token) {
            Err(error) if error.is_token_error() => {
                tracing::info!(channel = channel.id, %error, "access token refused; fetching a new one");
                self.tokens.forget(channel.id);
                let token = self.access_token(channel)?;
                call(&token)
            }
            outcome => outcome,
        }
    }

    /// Whether a WeChat message id was seen lately on the channel (and notes it).
    fn seen_before(&self, channel: u64, message_id: &str) -> bool {
        let mut seen = self.seen_messages.lock();
        let recent = seen.entry(channel).or_default();
        if recent.iter().any(|seen| seen == message_id) {
            return true;
        }
        recent.push_back(message_id.to_string());
        if recent.len() > 1000 {
            recent.pop_front();
        }
        false
    }
}

/// One visitor's turn at handling their messages.
type TurnLock = Arc<tokio::sync::Mutex<()>>;

/// Where a channel's inbound work waits for its worker.
type InboundQueue = tokio::sync::mpsc::UnboundedSender<InboundJob>;

/// Work a WeChat channel's push asked for, done after the push was answered, in arrival order.
#[derive(Debug)]
pub enum InboundJob {
    /// A 公众号 message or event, checked, decrypted and kept in the `channel_inbox` table under
    /// `inbox` until handled.
    OfficialPush {
        /// Its key in `channel_inbox`.
        inbox: u64,
        /// The push.
        push: Box<wechat::xml::Push>,
    },
    /// 微信客服 has messages waiting: read them with `kf/sync_msg`.
    WecomSync {
        /// The callback's token for `sync_msg`.
        token: Option<String>,
        /// The account with new messages.
        open_kfid: Option<String>,
    },
}

impl ChannelService {
    /// Hands `job` to the channel's inbound worker (started on first use), which does the work in
    /// arrival order.
    pub fn queue_inbound(self: &Arc<Self>, channel: u64, job: InboundJob) {
        let mut queues = self.inbound_queues.lock();
        let sender = queues.entry(channel).or_insert_with(|| {
            let (sender, mut jobs) = tokio::sync::mpsc::unbounded_channel::<InboundJob>();
            let weak = Arc::downgrade(self);
            tokio::spawn(async move {
                while let Some(job) = jobs.recv().await {
                    let Some(service) = weak.upgrade() else {
                        break;
                    };
                    service.run_inbound(channel, job).await;
                }
            });
            sender
        });
        if let Err(refused) = sender.send(job) {
            tracing::warn!(channel, job = ?refused.0, "a channel's inbound worker stopped");
            queues.remove(&channel);
        }
    }

    async fn run_inbound(self: &Arc<Self>, channel: u64, job: InboundJob) {
        let inbox = match &job {
            InboundJob::OfficialPush { inbox, .. } => Some(*inbox),
            InboundJob::WecomSync { .. } => None,
        };
        let outcome = match self.channel(channel) {
            // A deleted or disabled channel takes nothing in.
            Ok(channel) if channel.enabled => Some(self.handle_inbound(&channel, job).await),
            _ => None,
        };
        if let Some(inbox) = inbox {
            if let Err(error) = off_async(|| {
                self.records.remove_push(inbox)?;
                self.unit_of_work.make_durable()
            }) {
                tracing::warn!(%error, channel, "a handled push stays in the inbox");
            }
        }
        match outcome {
            None | Some(Ok(())) => {}
            // A blocked visitor's messages are dropped on purpose.
            Some(Err(Error::VisitorBlocked)) => {}
            Some(Err(error)) => self.record_error(channel, &format!("receiving: {error}")),
        }
    }

    async fn handle_inbound(self: &Arc<Self>, channel: &Channel, job: InboundJob) -> Result<()> {
        match job {
            InboundJob::OfficialPush { push, .. } => {
                official_account::handle_push(self, channel, *push).await
            }
            InboundJob::WecomSync { token, open_kfid } => {
                wecom::sync(self, channel, token, open_kfid).await
            }
        }
    }

    /// Keeps a checked 公众号 push in the `channel_inbox` table (durably) before it is answered, so
    /// a crash before it is handled loses nothing: it is handled at the next start. Returns its key.
    pub fn keep_push(&self, channel: u64, push: &wechat::xml::Push) -> Result<u64> {
        let push_json = serde_json::to_string(push)
            .map_err(|error| Error::Internal(format!("encoding a push: {error}")))?;
        let inbox = self.records.keep_push(channel, &push_json)?;
        self.unit_of_work.make_durable()?;
        Ok(inbox)
    }

    /// Queues the pushes kept but not handled before the last stop, in arrival order.
    fn resume_inbox(self: &Arc<Self>) -> Result<()> {
        for kept in self.records.kept_pushes()? {
            let push: wechat::xml::Push = serde_json::from_str(&kept.push_json)
                .map_err(|error| Error::Storage(format!("a kept push does not decode: {error}")))?;
            self.queue_inbound(
                kept.channel,
                InboundJob::OfficialPush {
                    inbox: kept.id,
                    push: Box::new(push),
                },
            );
        }
        Ok(())
    }
}

/// One visitor's turn; forgets the lock when nobody else waits for it.
struct VisitorTurn<'a> {
    service: &'a ChannelService,
    key: (u64, String),
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for VisitorTurn<'_> {
    fn drop(&mut self) {
        let mut turns = self.service.visitor_turns.lock();
        // The map's copy and this guard's: nobody else holds or waits for it.
        if turns
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) <= 2)
        {
            turns.remove(&self.key);
        }
    }
}

/// The service's hooks in the desk, holding it weakly (it holds the desk).
#[derive(Debug)]
struct DeskHooks(std::sync::Weak<ChannelService>);

impl DeskObserver for DeskHooks {
    fn observe(&self, at: Timestamp, facts: &[DeskFact]) -> Result<()> {
        match self.0.upgrade() {
            Some(service) => DeskObserver::observe(&*service, at, facts),
            None => Ok(()),
        }
    }
}

impl VisitorFrameObserver for DeskHooks {
    fn visitor_frames(
        &self,
        at: Timestamp,
        frames: &[(String, crate::services::conversations::DeskEvent)],
    ) -> Result<()> {
        match self.0.upgrade() {
            Some(service) => service.visitor_frames(at, frames),
            None => Ok(()),
        }
    }
}

impl ReplyGate for DeskHooks {
    fn check_agent_reply(&self, conversation: &Conversation, message: &Message) -> Result<()> {
        match self.0.upgrade() {
            Some(service) => service.check_agent_reply(conversation, message),
            None => Ok(()),
        }
    }

    fn agent_reply_stored(&self, conversation: &Conversation, message: &Message) -> Result<()> {
        match self.0.upgrade() {
            Some(service) => service.agent_reply_stored(conversation, message),
            None => Ok(()),
        }
    }
}

impl DeskObserver for ChannelService {
    fn observe(&self, _at: Timestamp, facts: &[DeskFact]) -> Result<()> {
        let links: Vec<(String, ChannelLink)> = facts
            .iter()
            .filter_map(|fact| match fact {
                DeskFact::Created { conversation } => {
                    let link = self.starting.lock().get(&conversation.visitor_id).cloned();
                    link.map(|link| (conversation.id.clone(), link))
                }
                _ => None,
            })
            .collect();
        if links.is_empty() {
            return Ok(());
        }
        // The batch's links as one unit: one commit on PostgreSQL.
        self.unit_of_work.run(|| {
            for (conversation, link) in &links {
                self.records.put_link(conversation, link)?;
            }
            Ok(())
        })?;
        let mut cached = self.links.lock();
        for (conversation, link) in links {
            cached.entries.insert(conversation, Some(link));
        }
        Ok(())
    }
}

impl ReplyGate for ChannelService {
    fn check_agent_reply(&self, conversation: &Conversation, message: &Message) -> Result<()> {
        if !is_wechat_label(&conversation.channel) {
            return Ok(());
        }
        let Some(link) = self.link(&conversation.id)? else {
            return Ok(());
        };
        let Some(visitor) = self.find_visitor(link.channel, &link.external_id)? else {
            return Ok(());
        };
        if message.body.trim().len() > window::MAX_TEXT_BYTES {
            return Err(Error::ReplyWindowClosed(format!(
                "微信每条文字消息最多 {} 字节（约 {} 个汉字），这条有 {} 字节；请分条发送。",
                window::MAX_TEXT_BYTES,
                window::MAX_TEXT_BYTES / 3,
                message.body.trim().len()
            )));
        }
        let window = window::window(&visitor, self.now());
        if !window.open {
            return Err(Error::ReplyWindowClosed(
                window.reason.unwrap_or_else(|| window::EXPIRED.to_string()),
            ));
        }
        let needed = parts(message);
        let left = window.left.unwrap_or(0);
        if needed > left {
            return Err(Error::ReplyWindowClosed(format!(
                "按微信规定，此时最多还能发送 {left} 条消息，这条消息（文字和每个文件各算一条）需要 {needed} 条；请减少文件后再发送。"
            )));
        }
        Ok(())
    }

    fn agent_reply_stored(&self, conversation: &Conversation, message: &Message) -> Result<()> {
        if message.kind != SenderKind::Agent || !is_wechat_label(&conversation.channel) {
            return Ok(());
        }
        let Some(link) = self.link(&conversation.id)? else {
            return Ok(());
        };
        let now = self.now();
        let needed = parts(message);
        let visitor = self.change_visitor(link.channel, &link.external_id, |visitor| {
            for _ in 0..needed {
                window::spend(visitor, now);
            }
        })?;
        self.counted_replies
            .lock()
            .insert((conversation.id.clone(), message.seq));
        if let Some(visitor) = visitor {
            self.announce_window(conversation, &window::window(&visitor, now));
        }
        Ok(())
    }
}

/// WeChat messages an agent's message takes: its text, and each file apart.
fn parts(message: &Message) -> u32 {
    u32::from(!message.body.trim().is_empty()) + message.attachments.len() as u32
}

/// Whether a conversation label is a WeChat channel's (reply rules apply).
fn is_wechat_label(label: &str) -> bool {
    label == ChannelKind::WechatOfficial.label() || label == ChannelKind::WecomKf.label()
}

/// Runs store work without stalling an async worker (as the desk does).
fn off_async<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// The text that stands for files sent without words.
fn describe_files(files: &[(String, Vec<u8>)], attachments: &[String]) -> String {
    let mut names: Vec<String> = files
        .iter()
        .map(|(name, _)| {
            if name.ends_with(".amr") || name.ends_with(".speex") {
                "[语音]".to_string()
            } else if [".jpg", ".jpeg", ".png", ".gif", ".webp"]
                .iter()
                .any(|extension| name.to_lowercase().ends_with(extension))
            {
                "[图片]".to_string()
            } else {
                format!("[文件] {name}")
            }
        })
        .collect();
    if names.is_empty() && !attachments.is_empty() {
        names.push("[文件]".to_string());
    }
    names.join(" ")
}

/// BLAKE3 hex of an API channel token.
fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn default_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Api => "App",
        ChannelKind::WechatOfficial => "微信公众号",
        ChannelKind::WecomKf => "微信客服",
    }
}

fn app_id_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::WecomKf => "`app_id` (the CorpID)",
        _ => "`app_id` (the AppID)",
    }
}

fn secret_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::WecomKf => "`app_secret` (the 微信客服 Secret)",
        _ => "`app_secret` (the AppSecret)",
    }
}

fn required(value: Option<&str>, what: &str) -> Result<String> {
    value
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidInput(format!("this channel needs {what}")))
}

fn refuse_wechat_fields(input: &ChannelInput) -> Result<()> {
    let misplaced = [
        ("app_id", input.app_id.is_some()),
        ("app_secret", input.app_secret.is_some()),
        ("callback_token", input.callback_token.is_some()),
        ("encoding_aes_key", input.encoding_aes_key.is_some()),
        ("open_kfid", input.open_kfid.is_some()),
    ];
    match misplaced.iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(Error::InvalidInput(format!(
            "`{field}` is for WeChat channels, not API channels"
        ))),
        None => Ok(()),
    }
}

fn clean_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::InvalidInput(format!(
            "a channel name is 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

/// An id or secret: printable ASCII without spaces, at most 128 characters.
fn check_plain(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty()
        || value.len() > crate::domain::limits::MAX_CHANNEL_CREDENTIAL_CHARS
        || !value.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(Error::InvalidInput(format!(
            "`{field}` is 1 to 128 letters, digits or symbols without spaces"
        )));
    }
    Ok(value.to_string())
}

/// WeChat's consoles take a Token of 3 to 32 letters and digits.
fn check_callback_token(token: &str) -> Result<String> {
    let token = token.trim();
    if !(3..=32).contains(&token.len()) || !token.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
        return Err(Error::InvalidInput(
            "a callback Token is 3 to 32 letters and digits".into(),
        ));
    }
    Ok(token.to_string())
}

fn random_callback_token() -> String {
    random_token(24)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_callback_tokens_are_what_wechat_accepts() {
        for _ in 0..20 {
            let token = random_callback_token();
            assert!(check_callback_token(&token).is_ok(), "{token}");
        }
        assert!(check_callback_token("ab").is_err());
        assert!(check_callback_token("has space").is_err());
    }

    #[test]
    fn files_without_words_are_named() {
        let files = vec![
            ("image.jpg".to_string(), vec![1]),
            ("voice.amr".to_string(), vec![2]),
            ("报价.pdf".to_string(), vec![3]),
        ];
        assert_eq!(describe_files(&files, &[]), "[图片] [语音] [文件] 报价.pdf");
    }
}
