//! Outbound: what the desk sends a channel's visitor, carried to them.
//!
//! The service is a [`VisitorFrameObserver`] of the desk. For an API channel each frame becomes a
//! webhook delivery (`message`, `typing`, `state`, `ended`, `rating_requested`, `queue`,
//! `queue_timeout`), signed and retried by the webhook queue. For a WeChat channel an agent's
//! message (and the rating request, as text) becomes an [`OutboundItem`] in the `channel_outbox`
//! table, written before the desk's flush; the sender here sends them in order per conversation, the
//! text first and then each file (pictures through the media upload), and retries what failed for
//! a passing reason. What WeChat refuses for good (45015: the 48 hours are over; 45047: too many
//! messages) is dropped, kept among the channel's errors and told to the agent.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use super::wechat::client::CallError;
use super::{window, ChannelService, RATING_PROMPT};
use crate::domain::{
    Attachment, Channel, ChannelKind, ChannelLink, ChannelVisitor, ConversationState, OutboundItem,
    SenderKind,
};
use crate::error::{Error, Result};
use crate::services::conversations::{DeskEvent, VisitorFrameObserver};

/// Attempts before an item is given up.
pub const MAX_ATTEMPTS: u32 = 6;
/// Wait after the n-th failed attempt (then the last one repeats).
const BACKOFF_SECS: [i64; 5] = [5, 30, 120, 600, 1800];

/// What one attempt at an item came to.
#[derive(Debug)]
enum Outcome {
    /// Every part went.
    Sent,
    /// Try again later (the network, WeChat busy, a token that would not come).
    Retry(String),
    /// WeChat refused it for good.
    Failed(String),
}

impl VisitorFrameObserver for ChannelService {
    fn visitor_frames(&self, at: Timestamp, frames: &[(String, DeskEvent)]) -> Result<()> {
        let mut queued = false;
        for (conversation, frame) in frames {
            let Some(link) = self.link(conversation)? else {
                continue;
            };
            let Ok(channel) = self.channel(link.channel) else {
                continue;
            };
            if !channel.enabled {
                continue;
            }
            match channel.kind {
                ChannelKind::Api => self.to_webhook(&channel, &link, conversation, frame, at)?,
                ChannelKind::WechatOfficial | ChannelKind::WecomKf => {
                    queued |= self.to_outbox(&channel, &link, conversation, frame, at)?;
                }
            }
        }
        if queued {
            self.outbox_ready.notify_one();
        }
        Ok(())
    }
}

impl ChannelService {
    /// An API channel's frame as a webhook delivery.
    fn to_webhook(
        &self,
        channel: &Channel,
        link: &ChannelLink,
        conversation: &str,
        frame: &DeskEvent,
        at: Timestamp,
    ) -> Result<()> {
        let Some(webhook) = channel.webhook else {
            return Ok(());
        };
        let (event, mut data) = match frame {
            DeskEvent::Message { message, .. } if message.kind != SenderKind::Visitor => {
                ("message", json!({ "message": message }))
            }
            DeskEvent::Typing {
                from: SenderKind::Agent,
                typing,
                ..
            } => ("typing", json!({ "typing": typing })),
            DeskEvent::State { conversation: view } => {
                let ended = matches!(
                    view.state,
                    ConversationState::Ended | ConversationState::Abandoned
                );
                (
                    if ended { "ended" } else { "state" },
                    json!({ "state": view }),
                )
            }
            DeskEvent::Survey { .. } => ("rating_requested", json!({})),
            DeskEvent::Queue {
                position,
                estimated_wait_secs,
                ..
            } => (
                "queue",
                json!({ "position": position, "estimated_wait_secs": estimated_wait_secs }),
            ),
            DeskEvent::QueueTimeout { .. } => ("queue_timeout", json!({})),
            _ => return Ok(()),
        };
        if let Some(object) = data.as_object_mut() {
            object.insert("conversation".into(), json!(conversation));
            object.insert("user_id".into(), json!(link.external_id));
            object.insert("channel".into(), json!(channel.id));
        }
        self.webhooks.enqueue_for_channel(webhook, at, event, &data)
    }

    /// A WeChat channel's frame as an outbox item: agents' messages, and the rating request as
    /// text. Returns whether something was queued.
    fn to_outbox(
        &self,
        channel: &Channel,
        link: &ChannelLink,
        conversation: &str,
        frame: &DeskEvent,
        at: Timestamp,
    ) -> Result<bool> {
        let Some(visitor) = self.find_visitor(channel.id, &link.external_id)? else {
            return Ok(false);
        };
        match frame {
            DeskEvent::Message { message, .. } if message.kind == SenderKind::Agent => {
                let counted = self
                    .counted_replies
                    .lock()
                    .remove(&(conversation.to_string(), message.seq));
                if !counted {
                    // Not seen by the reply gate (the agent's greeting when the conversation was
                    // assigned): counted now, or not sent when WeChat would refuse it.
                    let needed = u32::from(!message.body.trim().is_empty())
                        + message.attachments.len() as u32;
                    let now = self.now();
                    let mut allowed = false;
                    self.change_visitor(channel.id, &link.external_id, |visitor| {
                        let window = window::window(visitor, now);
                        allowed = window.open && window.left.unwrap_or(0) >= needed;
                        if allowed {
                            for _ in 0..needed {
                                window::spend(visitor, now);
                            }
                        }
                    })?;
                    if !allowed {
                        return Ok(false);
                    }
                }
                self.queue_item(
                    channel,
                    &visitor,
                    conversation,
                    message.body.clone(),
                    message.attachments.clone(),
                    message.seq,
                    at,
                )?;
                Ok(true)
            }
            DeskEvent::Survey { .. } => {
                // Asked only while WeChat still lets a message through; the answer is a digit.
                let now = self.now();
                let mut asked = false;
                self.change_visitor(channel.id, &link.external_id, |visitor| {
                    asked = window::window(visitor, now).open && window::spend(visitor, now);
                    if asked {
                        visitor.awaiting_rating = Some(conversation.to_string());
                    }
                })?;
                if asked {
                    self.queue_item(
                        channel,
                        &visitor,
                        conversation,
                        RATING_PROMPT.to_string(),
                        Vec::new(),
                        0,
                        at,
                    )?;
                }
                Ok(asked)
            }
            _ => Ok(false),
        }
    }

    /// Queues kefu's own text to a WeChat visitor (the thanks for a rating), counted against the
    /// window when it is open; dropped when it is not.
    pub(super) fn queue_text(
        &self,
        channel: &Channel,
        visitor: &ChannelVisitor,
        conversation: &str,
        text: &str,
    ) -> Result<()> {
        let now = self.now();
        let mut allowed = false;
        self.change_visitor(channel.id, &visitor.external_id, |visitor| {
            allowed = window::window(visitor, now).open && window::spend(visitor, now);
        })?;
        if allowed {
            self.queue_item(
                channel,
                visitor,
                conversation,
                text.to_string(),
                Vec::new(),
                0,
                now,
            )?;
            self.outbox_ready.notify_one();
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn queue_item(
        &self,
        channel: &Channel,
        visitor: &ChannelVisitor,
        conversation: &str,
        text: String,
        files: Vec<Attachment>,
        seq: u64,
        at: Timestamp,
    ) -> Result<()> {
        let item = OutboundItem {
            channel: channel.id,
            conversation: conversation.to_string(),
            external_id: visitor.external_id.clone(),
            open_kfid: visitor
                .open_kfid
                .clone()
                .or_else(|| channel.open_kfid.clone()),
            text,
            files,
            seq,
            parts_sent: 0,
            attempts: 0,
            next_attempt: at,
            created: at,
        };
        self.records.push_outbound(&item)
    }

    /// Sends every outbox item that is due, in order per conversation (an item waiting for a retry
    /// holds back the later ones of its conversation). `kefu serve` runs it when items are queued and
    /// every second; tests call it. Returns how many were attempted.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize> {
        let _sending = self.sending.lock().await;
        let now = self.now();
        let outbox = super::off_async(|| self.records.outbox())?;
        let mut held: HashSet<String> = HashSet::new();
        let mut attempted = 0;
        for (place, mut item) in outbox {
            if held.contains(&item.conversation) {
                continue;
            }
            if item.next_attempt > now {
                held.insert(item.conversation.clone());
                continue;
            }
            attempted += 1;
            let service = Arc::clone(self);
            let sending = item.clone();
            let (parts_sent, outcome) =
                tokio::task::spawn_blocking(move || service.send_item(&sending))
                    .await
                    .map_err(|error| {
                        Error::Internal(format!("channel send task failed: {error}"))
                    })?;
            item.parts_sent = parts_sent;
            match outcome {
                Outcome::Sent => {
                    super::off_async(|| self.records.remove_outbound(place))?;
                }
                Outcome::Retry(error) if item.attempts + 1 < MAX_ATTEMPTS => {
                    item.attempts += 1;
                    let wait =
                        BACKOFF_SECS[(item.attempts as usize - 1).min(BACKOFF_SECS.len() - 1)];
                    item.next_attempt = now + SignedDuration::from_secs(wait);
                    tracing::info!(channel = item.channel, attempt = item.attempts, %error, "channel send will be retried");
                    super::off_async(|| self.records.put_outbound(place, &item))?;
                    held.insert(item.conversation.clone());
                }
                Outcome::Retry(error) | Outcome::Failed(error) => {
                    super::off_async(|| self.records.remove_outbound(place))?;
                    let message = format!(
                        "to `{}` in conversation {}: {error}",
                        item.external_id, item.conversation
                    );
                    self.record_error(item.channel, &message);
                    self.announce_failure(&item.conversation, &failure_text(&error));
                }
            }
        }
        if attempted > 0 {
            super::off_async(|| self.unit_of_work.make_durable())?;
        }
        Ok(attempted)
    }

    /// One attempt at an item: its parts from the first not yet sent. Returns the parts sent by
    /// now and the outcome.
    fn send_item(&self, item: &OutboundItem) -> (u32, Outcome) {
        let Ok(channel) = self.channel(item.channel) else {
            return (
                item.parts_sent,
                Outcome::Failed("the channel was deleted".into()),
            );
        };
        let mut parts_sent = item.parts_sent;
        let has_text = !item.text.trim().is_empty();
        let parts = u32::from(has_text) + item.files.len() as u32;
        while parts_sent < parts {
            let result = if has_text && parts_sent == 0 {
                self.send_text(&channel, item, &item.text)
            } else {
                let index = (parts_sent - u32::from(has_text)) as usize;
                self.send_file(&channel, item, &item.files[index])
            };
            match result {
                Ok(()) => parts_sent += 1,
                Err(error) => return (parts_sent, classify(error)),
            }
        }
        (parts_sent, Outcome::Sent)
    }

    fn send_text(
        &self,
        channel: &Channel,
        item: &OutboundItem,
        text: &str,
    ) -> std::result::Result<(), CallError> {
        match channel.kind {
            ChannelKind::WechatOfficial => {
                super::official_account::send_text(self, channel, &item.external_id, text)
            }
            ChannelKind::WecomKf => super::wecom::send_text(self, channel, item, text),
            ChannelKind::Api => Ok(()),
        }
    }

    fn send_file(
        &self,
        channel: &Channel,
        item: &OutboundItem,
        attachment: &Attachment,
    ) -> std::result::Result<(), CallError> {
        let bytes = match self
            .conversations
            .file(&item.conversation, &attachment.hash)
        {
            Ok((_, bytes)) => bytes,
            Err(error) => {
                return Err(CallError::Api {
                    code: 0,
                    message: format!("the file `{}` cannot be read: {error}", attachment.name),
                })
            }
        };
        match channel.kind {
            ChannelKind::WechatOfficial => super::official_account::send_file(
                self,
                channel,
                &item.external_id,
                attachment,
                &bytes,
            ),
            ChannelKind::WecomKf => {
                super::wecom::send_file(self, channel, item, attachment, &bytes)
            }
            ChannelKind::Api => Ok(()),
        }
    }
}

/// A failure WeChat may not repeat (network, busy, a token) is retried; others are final.
fn classify(error: CallError) -> Outcome {
    match &error {
        CallError::Network(_) => Outcome::Retry(error.to_string()),
        CallError::Api { code: -1, .. } => Outcome::Retry(error.to_string()),
        CallError::Api { .. } if error.is_token_error() => Outcome::Retry(error.to_string()),
        CallError::Api { .. } => Outcome::Failed(error.to_string()),
    }
}

/// What the agent is told, in Chinese, about a message that did not reach the visitor.
fn failure_text(error: &str) -> String {
    let why = if error.contains("errcode 45015") {
        "已超过 48 小时回复时限或用户已取消关注"
    } else if error.contains("errcode 45047") {
        "已达到微信允许的回复条数上限"
    } else if error.contains("errcode 95018") || error.contains("errcode 95016") {
        "微信客服会话状态不允许发送（会话已结束或已转人工接待）"
    } else {
        "微信接口返回错误"
    };
    format!("消息未能发送到微信：{why}（{error}）")
}

/// Sends due outbox items whenever some are queued, and every second for retries, as long as the
/// service lives.
pub fn start_delivery(service: &Arc<ChannelService>) {
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        loop {
            let Some(service) = weak.upgrade() else {
                return;
            };
            if let Err(error) = service.deliver_due().await {
                tracing::warn!(%error, "channel deliveries failed");
            }
            let ready = async {
                service.outbox_ready.notified().await;
            };
            let _ = tokio::time::timeout(Duration::from_secs(1), ready).await;
        }
    });
}
