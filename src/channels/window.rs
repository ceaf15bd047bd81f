//! WeChat's rules on answering a visitor (客服消息下发规则), as kept on the visitor's record: each
//! visitor action grants a number of messages for a time, counted apart.
//!
//! | action | messages | for |
//! |---|---|---|
//! | the visitor sends a message | 5 | 48 hours |
//! | a menu click, a follow, a QR scan (公众号) | 3 | 1 minute |
//!
//! 企业微信 微信客服 grants 5 messages for 48 hours per visitor message. A new visitor message
//! replaces the previous message grant; a message sent spends from the grant that ends first.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::domain::{ChannelVisitor, ReplyGrant};

/// Longest text WeChat takes in one 客服消息 or `kf/send_msg` text message, in bytes (UTF-8).
pub const MAX_TEXT_BYTES: usize = 2048;

/// How long a visitor message opens the window.
pub const MESSAGE_WINDOW: SignedDuration = SignedDuration::from_hours(48);
/// Messages allowed per visitor message.
pub const MESSAGES_PER_VISITOR_MESSAGE: u32 = 5;
/// How long a menu click, follow or scan opens the window (公众号).
pub const EVENT_WINDOW: SignedDuration = SignedDuration::from_mins(1);
/// Messages allowed per menu click, follow or scan (公众号).
pub const MESSAGES_PER_EVENT: u32 = 3;

/// Whether and how long the agent may still answer, as the workbench shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplyWindow {
    /// WeChat's rules apply to this conversation (a 公众号 or 微信客服 visitor).
    pub limited: bool,
    /// A message can be sent now.
    pub open: bool,
    /// Until when (the latest grant's end), when open.
    pub until: Option<Timestamp>,
    /// Messages that may still be sent, when open.
    pub left: Option<u32>,
    /// Why not, for the agent, in Chinese; `None` when open.
    pub reason: Option<String>,
}

impl ReplyWindow {
    /// A conversation without such rules (web, API).
    pub fn unlimited() -> ReplyWindow {
        ReplyWindow {
            limited: false,
            open: true,
            until: None,
            left: None,
            reason: None,
        }
    }
}

/// The refusal when the 48 hours are over.
pub const EXPIRED: &str =
    "该微信用户已超过 48 小时未发消息，按微信规定无法再回复；请等待用户再次发来消息后再回复。";
/// The refusal when the messages allowed are used.
pub const USED_UP: &str =
    "按微信规定，用户每发来一条消息后最多可回复 5 条，已达上限；请等待用户再次发来消息后再回复。";
/// The refusal after the visitor unfollowed the 公众号.
pub const UNSUBSCRIBED: &str = "该用户已取消关注公众号，无法再向其发送消息。";
/// The refusal before the visitor ever wrote (nothing was granted).
pub const NEVER_OPENED: &str = "该微信用户尚未发来消息，按微信规定暂时无法主动发送。";

/// Grants still in force at `now`.
fn in_force(visitor: &ChannelVisitor, now: Timestamp) -> impl Iterator<Item = &ReplyGrant> {
    visitor
        .grants
        .iter()
        .filter(move |grant| grant.until > now && grant.left > 0)
}

/// The window of `visitor` at `now`.
pub fn window(visitor: &ChannelVisitor, now: Timestamp) -> ReplyWindow {
    let closed = |reason: &str| ReplyWindow {
        limited: true,
        open: false,
        until: None,
        left: None,
        reason: Some(reason.to_string()),
    };
    if visitor.unsubscribed {
        return closed(UNSUBSCRIBED);
    }
    let grants: Vec<&ReplyGrant> = in_force(visitor, now).collect();
    if grants.is_empty() {
        let message_grant_ended = visitor
            .grants
            .iter()
            .any(|grant| grant.by_message && grant.until > now);
        return closed(if message_grant_ended {
            USED_UP
        } else if visitor.grants.is_empty() && visitor.last_inbound.is_none() {
            NEVER_OPENED
        } else {
            EXPIRED
        });
    }
    ReplyWindow {
        limited: true,
        open: true,
        until: grants.iter().map(|grant| grant.until).max(),
        left: Some(grants.iter().map(|grant| grant.left).sum()),
        reason: None,
    }
}

/// The visitor sent a message at `now`: 5 messages for 48 hours, replacing the previous message
/// grant; expired grants are dropped.
pub fn visitor_message(visitor: &mut ChannelVisitor, now: Timestamp) {
    visitor
        .grants
        .retain(|grant| !grant.by_message && grant.until > now);
    visitor.grants.push(ReplyGrant {
        until: now + MESSAGE_WINDOW,
        left: MESSAGES_PER_VISITOR_MESSAGE,
        by_message: true,
    });
    visitor.last_inbound = Some(now);
    visitor.unsubscribed = false;
}

/// The visitor clicked a menu, followed or scanned at `now` (公众号): 3 messages for a minute.
pub fn visitor_event(visitor: &mut ChannelVisitor, now: Timestamp) {
    visitor.grants.retain(|grant| grant.until > now);
    visitor.grants.push(ReplyGrant {
        until: now + EVENT_WINDOW,
        left: MESSAGES_PER_EVENT,
        by_message: false,
    });
    visitor.last_inbound = Some(now);
    visitor.unsubscribed = false;
}

/// Spends one message at `now` from the grant that ends first; `false` when none is left.
pub fn spend(visitor: &mut ChannelVisitor, now: Timestamp) -> bool {
    let soonest = visitor
        .grants
        .iter_mut()
        .filter(|grant| grant.until > now && grant.left > 0)
        .min_by_key(|grant| grant.until);
    match soonest {
        Some(grant) => {
            grant.left -= 1;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visitor() -> ChannelVisitor {
        ChannelVisitor {
            channel: 1,
            external_id: "oABC".into(),
            visitor_id: "v_1".into(),
            conversation: None,
            name: None,
            open_kfid: None,
            grants: Vec::new(),
            last_inbound: None,
            awaiting_rating: None,
            unsubscribed: false,
        }
    }

    #[test]
    fn a_visitor_message_allows_five_messages_for_48_hours() {
        let now: Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
        let mut visitor = visitor();
        assert_eq!(window(&visitor, now).reason.as_deref(), Some(NEVER_OPENED));
        visitor_message(&mut visitor, now);
        let open = window(&visitor, now);
        assert!(open.open && open.limited);
        assert_eq!(open.left, Some(5));
        assert_eq!(open.until, Some(now + MESSAGE_WINDOW));
        for _ in 0..5 {
            assert!(spend(&mut visitor, now));
        }
        assert!(!spend(&mut visitor, now));
        assert_eq!(window(&visitor, now).reason.as_deref(), Some(USED_UP));
        // The visitor writes again: five more.
        visitor_message(&mut visitor, now + SignedDuration::from_hours(1));
        assert_eq!(
            window(&visitor, now + SignedDuration::from_hours(1)).left,
            Some(5)
        );
        let later = now + SignedDuration::from_hours(49) + SignedDuration::from_secs(1);
        assert_eq!(window(&visitor, later).reason.as_deref(), Some(EXPIRED));
    }

    #[test]
    fn event_grants_add_up_and_are_spent_first() {
        let now: Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
        let mut visitor = visitor();
        visitor_message(&mut visitor, now);
        visitor_event(&mut visitor, now);
        assert_eq!(window(&visitor, now).left, Some(8));
        assert!(spend(&mut visitor, now));
        let event_grant = visitor.grants.iter().find(|grant| !grant.by_message);
        assert_eq!(event_grant.map(|grant| grant.left), Some(2));
        // A minute later only the message grant is left.
        let later = now + SignedDuration::from_secs(61);
        assert_eq!(window(&visitor, later).left, Some(5));
        visitor.unsubscribed = true;
        assert_eq!(
            window(&visitor, later).reason.as_deref(),
            Some(UNSUBSCRIBED)
        );
    }
}
