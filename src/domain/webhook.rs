//! Webhooks: URLs that admins register for conversation events, and the record of each delivery.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::AccountId;

/// Events a webhook may subscribe to.
pub const WEBHOOK_EVENTS: [&str; 6] = [
    "created",
    "assigned",
    "transferred",
    "ended",
    "rated",
    "offline_message",
];

/// Events of an API channel's webhook: what its visitor is sent, as the visitor's page gets it.
pub const CHANNEL_WEBHOOK_EVENTS: [&str; 7] = [
    "message",
    "typing",
    "state",
    "ended",
    "rating_requested",
    "queue",
    "queue_timeout",
];

/// A registered webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Webhook {
    /// Id.
    pub id: u64,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Subscribed events (a subset of [`WEBHOOK_EVENTS`]).
    pub events: BTreeSet<String>,
    /// Key of the `X-Kefu-Signature` HMAC.
    pub secret: String,
    /// Paused webhooks get nothing (deliveries already queued still go).
    pub enabled: bool,
    /// Who registered it.
    pub by: AccountId,
    /// When.
    pub created: Timestamp,
    /// The API channel whose replies it carries (to that channel's conversations only); such a
    /// webhook is managed with its channel and is not among the admin's webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<u64>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The receiver answered 2xx.
    Succeeded,
    /// Every attempt failed.
    Failed,
}

/// One event sent (or to be sent) to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Id (also sent as `X-Kefu-Delivery`, so receivers can drop duplicates).
    pub id: u64,
    /// The webhook.
    pub webhook: u64,
    /// The event name.
    pub event: String,
    /// The JSON body, exactly as sent and signed.
    pub body: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the next attempt is due (pending only).
    pub next_attempt: Timestamp,
    /// The receiver's status code of the last attempt.
    pub last_status: Option<u16>,
    /// What went wrong in the last attempt (connection refused, timeout, non-2xx).
    pub last_error: Option<String>,
    /// When the event happened.
    pub created: Timestamp,
    /// When it succeeded or finally failed.
    pub finished: Option<Timestamp>,
}
