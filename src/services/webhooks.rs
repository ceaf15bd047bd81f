//! Webhooks: conversation events POSTed to URLs that admins register, signed, retried with backoff,
//! and every outcome kept for the admins to see.
//!
//! The desk tells this service its facts before the flush that makes them durable (see
//! `conversations::facts`); each subscribed webhook gets a pending delivery written in the same
//! database, so an acknowledged event is never lost to a crash. A worker sends what is due.
//!
//! Each request carries `X-Kefu-Event`, `X-Kefu-Delivery` (the delivery id: receivers drop repeats),
//! `X-Kefu-Timestamp` (Unix seconds) and `X-Kefu-Signature: sha256=<hex>`, the HMAC-SHA256 of
//! `<timestamp>.<body>` under the webhook's secret, as Stripe and GitHub do.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::json;

use crate::domain::{AccountId, Delivery, DeliveryStatus, Webhook, WEBHOOK_EVENTS};
use crate::error::{Error, Result};
use crate::services::clock::Clock;
use crate::services::conversations::{ConversationView, DeskFact, DeskObserver};
use crate::services::secrets::random_token;
use crate::storage::{UnitOfWork, WebhookRepository};

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 8;
/// Wait after the n-th failed attempt (then the last one repeats).
const BACKOFF_SECS: [i64; 7] = [10, 30, 120, 600, 1800, 3600, 10_800];
/// Longest wait for one receiver.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries listed per webhook.
const LISTED_DELIVERIES: usize = 100;
/// Finished deliveries kept per webhook; older ones are dropped so the history stays bounded.
pub const KEPT_DELIVERIES: usize = 1000;

/// A new or changed webhook.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// Receiver URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Subscribed events; all of them when absent at creation.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    /// Signing key; generated when absent at creation.
    #[serde(default)]
    pub secret: Option<String>,
    /// Paused or not.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Registered webhooks and their deliveries.
pub struct WebhookService {
    webhooks: Arc<dyn WebhookRepository>,
    unit_of_work: UnitOfWork,
    clock: Arc<dyn Clock>,
    agent: ureq::Agent,
    /// One sender at a time, so a slow receiver never gets the same delivery twice at once.
    sending: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for WebhookService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WebhookService")
            .finish_non_exhaustive()
    }
}

impl WebhookService {
    /// The service over `webhooks`.
    pub fn new(
        webhooks: Arc<dyn WebhookRepository>,
        unit_of_work: UnitOfWork,
        clock: Arc<dyn Clock>,
    ) -> WebhookService {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent("kefu-webhooks")
            .build()
            .into();
        WebhookService {
            webhooks,
            unit_of_work,
            clock,
            agent,
            sending: tokio::sync::Mutex::new(()),
        }
    }

    /// Every webhook the admins registered, by id (not those of API channels).
    pub fn list(&self) -> Result<Vec<Webhook>> {
        let mut webhooks = self.webhooks.webhooks()?;
        webhooks.retain(|webhook| webhook.channel.is_none());
        Ok(webhooks)
    }

    /// A webhook admins may change through the webhook routes (not one of a channel).
    fn get_own(&self, id: u64) -> Result<Webhook> {
        let webhook = self.get(id)?;
        match webhook.channel {
            Some(channel) => Err(Error::InvalidInput(format!(
                "webhook {id} carries the replies of channel {channel}; change it with the channel"
            ))),
            None => Ok(webhook),
        }
    }

    /// The webhook of API channel `channel`: replies to its conversations go to `url`, signed with a
    /// new secret (in the answer).
    pub fn create_for_channel(&self, channel: u64, url: &str, by: AccountId) -> Result<Webhook> {
        let webhook = Webhook {
            id: self.webhooks.new_id()?,
            url: validate_url(url)?,
            events: crate::domain::CHANNEL_WEBHOOK_EVENTS
                .iter()
                .map(|event| event.to_string())
                .collect(),
            secret: random_token(24),
            enabled: true,
            by,
            created: self.clock.now(),
            channel: Some(channel),
        };
        self.webhooks.put_webhook(&webhook)?;
        Ok(webhook)
    }

    /// Changes a channel's webhook: its URL, a new secret, paused or not.
    pub fn update_for_channel(
        &self,
        id: u64,
        url: Option<&str>,
        new_secret: bool,
        enabled: Option<bool>,
    ) -> Result<Webhook> {
        let mut webhook = self.get(id)?;
        if let Some(url) = url {
            webhook.url = validate_url(url)?;
        }
        if new_secret {
            webhook.secret = random_token(24);
        }
        if let Some(enabled) = enabled {
            webhook.enabled = enabled;
        }
        self.webhooks.put_webhook(&webhook)?;
        Ok(webhook)
    }

    /// Removes a channel's webhook and its deliveries.
    pub fn delete_for_channel(&self, id: u64) -> Result<()> {
        self.webhooks.remove_webhook(id)?;
        Ok(())
    }

    /// Queues one delivery of `event` to the channel webhook `id` (whatever its subscribed events);
    /// made durable by the caller's flush (the desk's, for replies).
    pub fn enqueue_for_channel(
        &self,
        id: u64,
        at: Timestamp,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<()> {
        let mut webhook = self.get(id)?;
        if !webhook.enabled {
            return Ok(());
        }
        webhook.events.insert(event.to_string());
        self.enqueue(&[webhook], at, event, data)
    }

    /// One webhook.
    pub fn get(&self, id: u64) -> Result<Webhook> {
        self.webhooks
            .webhook(id)?
            .ok_or_else(|| Error::NotFound(format!("webhook {id} not found")))
    }

    /// Registers a webhook.
    pub fn create(&self, input: WebhookInput, by: AccountId) -> Result<Webhook> {
        let url = validate_url(input.url.as_deref().unwrap_or_default())?;
        let events = match input.events {
            Some(events) => validate_events(events)?,
            None => WEBHOOK_EVENTS
                .iter()
                .map(|event| event.to_string())
                .collect(),
        };
        let secret = match input.secret {
            Some(secret) => validate_secret(secret)?,
            None => random_token(24),
        };
        let webhook = Webhook {
            id: self.webhooks.new_id()?,
            url,
            events,
            secret,
            enabled: input.enabled.unwrap_or(true),
            by,
            created: self.clock.now(),
            channel: None,
        };
        self.webhooks.put_webhook(&webhook)?;
        self.unit_of_work.make_durable()?;
        Ok(webhook)
    }

    /// Changes the given fields.
    pub fn update(&self, id: u64, input: WebhookInput) -> Result<Webhook> {
        let mut webhook = self.get_own(id)?;
        if let Some(url) = input.url {
            webhook.url = validate_url(&url)?;
        }
        if let Some(events) = input.events {
            webhook.events = validate_events(events)?;
        }
        if let Some(secret) = input.secret {
            webhook.secret = validate_secret(secret)?;
        }
        if let Some(enabled) = input.enabled {
            webhook.enabled = enabled;
        }
        self.webhooks.put_webhook(&webhook)?;
        self.unit_of_work.make_durable()?;
        Ok(webhook)
    }

    /// Removes a webhook and its deliveries.
    pub fn delete(&self, id: u64) -> Result<Webhook> {
        let webhook = self.get_own(id)?;
        self.webhooks.remove_webhook(id)?;
        self.unit_of_work.make_durable()?;
        Ok(webhook)
    }

    /// The newest deliveries of a webhook, newest first.
    pub fn deliveries(&self, id: u64) -> Result<Vec<Delivery>> {
        self.get(id)?;
        let mut deliveries = self.webhooks.deliveries(id)?;
        deliveries.reverse();
        deliveries.truncate(LISTED_DELIVERIES);
        Ok(deliveries)
    }

    /// Sends a delivery again now (a failed one gets a fresh round of attempts).
    pub fn redeliver(&self, webhook: u64, delivery: u64) -> Result<Delivery> {
        let mut record = self
            .webhooks
            .delivery(webhook, delivery)?
            .ok_or_else(|| Error::NotFound(format!("delivery {delivery} not found")))?;
        record.status = DeliveryStatus::Pending;
        record.attempts = 0;
        record.next_attempt = self.clock.now();
        record.finished = None;
        self.webhooks.put_delivery(&record)?;
        self.webhooks
            .queue_delivery(record.webhook, record.id, record.next_attempt)?;
        self.unit_of_work.make_durable()?;
        Ok(record)
    }

    /// Sends a `ping` event to the webhook now, once (no retries), whether or not it is enabled, and
    /// keeps the outcome in its delivery log; answers the delivery. Blocking: waits for the receiver
    /// (at most 10 seconds).
    pub fn test(&self, id: u64) -> Result<Delivery> {
        let webhook = self.get(id)?;
        let now = self.clock.now();
        let delivery_id = self.webhooks.new_id()?;
        let body = json!({
            "event": "ping",
            "delivery": delivery_id,
            "at": now,
            "webhook": webhook.id,
        });
        let pending = Delivery {
            id: delivery_id,
            webhook: webhook.id,
            event: "ping".into(),
            body: body.to_string(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt: now,
            last_status: None,
            last_error: None,
            created: now,
            finished: None,
        };
        let mut sent = self.send(&webhook, &pending);
        if sent.status == DeliveryStatus::Pending {
            // A test is tried once: its outcome is the answer.
            sent.status = DeliveryStatus::Failed;
            sent.finished = Some(self.clock.now());
        }
        self.webhooks.put_delivery(&sent)?;
        self.trim(webhook.id, KEPT_DELIVERIES)?;
        self.unit_of_work.make_durable()?;
        Ok(sent)
    }

    /// Sends a signed `ping` to webhook `id` now, outside the queue (the admin console's "test"
    /// button); the receiver's status, or what went wrong.
    pub fn ping(&self, id: u64) -> std::result::Result<u16, String> {
        let webhook = self.get(id).map_err(|error| error.to_string())?;
        let now = self.clock.now();
        let body = json!({ "event": "ping", "delivery": 0, "at": now }).to_string();
        let timestamp = now.as_second().to_string();
        let signature = sign(&webhook.secret, &timestamp, &body);
        let response = self
            .agent
            .post(&webhook.url)
            .header("Content-Type", "application/json")
            .header("X-Kefu-Event", "ping")
            .header("X-Kefu-Delivery", "0")
            .header("X-Kefu-Timestamp", &timestamp)
            .header("X-Kefu-Signature", format!("sha256={signature}"))
            .send(body.as_bytes())
            .map_err(|error| error.to_string())?;
        let status = response.status().as_u16();
        if response.status().is_success() {
            Ok(status)
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }

    /// Sends every pending delivery that is due; `kefu serve` calls it every second, tests after
    /// moving the clock. Returns how many were attempted.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<usize> {
        let _sending = self.sending.lock().await;
        let now = self.clock.now();
        // Only pending deliveries are in the queue, so this never reads the history.
        let mut due = Vec::new();
        for queued in self.webhooks.queued_deliveries()? {
            // A delivery waiting for a retry (up to hours) is not read every second.
            if queued
                .next_attempt
                .is_some_and(|next_attempt| next_attempt > now)
            {
                continue;
            }
            match self.webhooks.delivery(queued.webhook, queued.delivery)? {
                Some(delivery) if delivery.status == DeliveryStatus::Pending => {
                    if delivery.next_attempt <= now {
                        due.push(delivery);
                    }
                }
                _ => {
                    self.webhooks
                        .unqueue_delivery(queued.webhook, queued.delivery)?;
                }
            }
        }
        let attempted = due.len();
        let mut finished_for = std::collections::BTreeSet::new();
        for delivery in due {
            let webhook = match self.get(delivery.webhook) {
                Ok(webhook) => webhook,
                Err(_) => continue,
            };
            let service = Arc::clone(self);
            let sent = tokio::task::spawn_blocking(move || service.send(&webhook, &delivery))
                .await
                .map_err(|error| Error::Internal(format!("webhook task failed: {error}")))?;
            self.webhooks.put_delivery(&sent)?;
            if sent.status == DeliveryStatus::Pending {
                self.webhooks
                    .queue_delivery(sent.webhook, sent.id, sent.next_attempt)?;
            } else {
                self.webhooks.unqueue_delivery(sent.webhook, sent.id)?;
                finished_for.insert(sent.webhook);
            }
        }
        for webhook in finished_for {
            self.trim(webhook, KEPT_DELIVERIES)?;
        }
        if attempted > 0 {
            self.unit_of_work.make_durable()?;
        }
        Ok(attempted)
    }

    /// Drops the oldest finished deliveries of `webhook` beyond `keep`; pending ones always stay.
    fn trim(&self, webhook: u64, keep: usize) -> Result<usize> {
        let finished: Vec<u64> = self
            .webhooks
            .deliveries(webhook)?
            .into_iter()
            .filter(|delivery| delivery.status != DeliveryStatus::Pending)
            .map(|delivery| delivery.id)
            .collect();
        // Oldest first.
        let excess = finished.len().saturating_sub(keep);
        for delivery in finished.into_iter().take(excess) {
            self.webhooks.remove_delivery(webhook, delivery)?;
        }
        Ok(excess)
    }

    /// One attempt; the delivery as it stands after it.
    fn send(&self, webhook: &Webhook, delivery: &Delivery) -> Delivery {
        let mut delivery = delivery.clone();
        let now = self.clock.now();
        let timestamp = now.as_second().to_string();
        let signature = sign(&webhook.secret, &timestamp, &delivery.body);
        let outcome = self
            .agent
            .post(&webhook.url)
            .header("Content-Type", "application/json")
            .header("X-Kefu-Event", &delivery.event)
            .header("X-Kefu-Delivery", delivery.id.to_string())
            .header("X-Kefu-Timestamp", &timestamp)
            .header("X-Kefu-Signature", format!("sha256={signature}"))
            .send(delivery.body.as_bytes());
        delivery.attempts += 1;
        let failure = match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                delivery.last_status = Some(status);
                (!response.status().is_success()).then(|| format!("the receiver answered {status}"))
            }
            Err(error) => {
                delivery.last_status = None;
                Some(error.to_string())
            }
        };
        match failure {
            None => {
                delivery.status = DeliveryStatus::Succeeded;
                delivery.last_error = None;
                delivery.finished = Some(now);
            }
            Some(error) => {
                tracing::warn!(webhook = webhook.id, delivery = delivery.id, attempt = delivery.attempts, %error, "webhook delivery failed");
                delivery.last_error = Some(error);
                if delivery.attempts >= MAX_ATTEMPTS {
                    delivery.status = DeliveryStatus::Failed;
                    delivery.finished = Some(now);
                } else {
                    let wait =
                        BACKOFF_SECS[(delivery.attempts as usize - 1).min(BACKOFF_SECS.len() - 1)];
                    delivery.next_attempt = now + SignedDuration::from_secs(wait);
                }
            }
        }
        delivery
    }

    fn enqueue(
        &self,
        webhooks: &[Webhook],
        at: Timestamp,
        event: &str,
        data: &serde_json::Value,
    ) -> Result<()> {
        for webhook in webhooks {
            if !webhook.events.contains(event) {
                continue;
            }
            let id = self.webhooks.new_id()?;
            let mut body = data.as_object().cloned().unwrap_or_default();
            body.insert("event".into(), json!(event));
            body.insert("delivery".into(), json!(id));
            body.insert("at".into(), json!(at));
            let delivery = Delivery {
                id,
                webhook: webhook.id,
                event: event.to_string(),
                body: serde_json::Value::Object(body).to_string(),
                status: DeliveryStatus::Pending,
                attempts: 0,
                next_attempt: at,
                last_status: None,
                last_error: None,
                created: at,
                finished: None,
            };
            self.webhooks.put_delivery(&delivery)?;
            self.webhooks
                .queue_delivery(webhook.id, id, delivery.next_attempt)?;
        }
        Ok(())
    }
}

impl DeskObserver for WebhookService {
    fn observe(&self, at: Timestamp, facts: &[DeskFact]) -> Result<()> {
        // Read once per batch; with no webhook in use nothing is serialised at all.
        let mut webhooks = self.list()?;
        webhooks.retain(|webhook| webhook.enabled);
        if webhooks.is_empty() {
            return Ok(());
        }
        // One unit for the batch's deliveries: one commit on PostgreSQL.
        self.unit_of_work
            .run(|| self.enqueue_facts(&webhooks, at, facts))
    }
}

impl WebhookService {
    fn enqueue_facts(&self, webhooks: &[Webhook], at: Timestamp, facts: &[DeskFact]) -> Result<()> {
        for fact in facts {
            // Payloads carry the conversation in its API form, as the sockets and routes do.
            let data = match fact {
                DeskFact::Created { conversation }
                | DeskFact::OfflineMessage { conversation }
                | DeskFact::Ended { conversation }
                | DeskFact::Rated { conversation } => {
                    json!({ "conversation": ConversationView::from(conversation) })
                }
                DeskFact::Assigned {
                    conversation,
                    agent,
                    via,
                    ..
                } => json!({
                    "conversation": ConversationView::from(conversation),
                    "agent": agent,
                    "via": via,
                }),
                DeskFact::Transferred {
                    conversation,
                    from,
                    to,
                    ..
                } => json!({
                    "conversation": ConversationView::from(conversation),
                    "from": from,
                    "to": to,
                }),
                _ => continue,
            };
            self.enqueue(webhooks, at, fact.name(), &data)?;
        }
        Ok(())
    }
}

/// Sends due deliveries every second for as long as the service lives.
pub fn start_delivery(service: &Arc<WebhookService>) {
    let service = Arc::downgrade(service);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        loop {
            ticks.tick().await;
            let Some(service) = service.upgrade() else {
                return;
            };
            if let Err(error) = service.deliver_due().await {
                tracing::warn!(%error, "webhook deliveries failed");
            }
        }
    });
}

/// Hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.
pub fn sign(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn validate_url(url: &str) -> Result<String> {
    let url = url.trim();
    let parsed: axum::http::Uri = url
        .parse()
        .map_err(|_| Error::InvalidInput(format!("`{url}` is not a URL")))?;
    let scheme_ok = matches!(parsed.scheme_str(), Some("http" | "https"));
    if !scheme_ok
        || parsed.host().is_none()
        || url.len() > crate::domain::limits::MAX_WEBHOOK_URL_BYTES
    {
        return Err(Error::InvalidInput(
            "a webhook URL is an http:// or https:// address with a host".into(),
        ));
    }
    Ok(url.to_string())
}

fn validate_events(events: Vec<String>) -> Result<BTreeSet<String>> {
    let events: BTreeSet<String> = events.into_iter().collect();
    if events.is_empty() {
        return Err(Error::InvalidInput(
            "subscribe to at least one event".into(),
        ));
    }
    if let Some(unknown) = events
        .iter()
        .find(|event| !WEBHOOK_EVENTS.contains(&event.as_str()))
    {
        return Err(Error::InvalidInput(format!(
            "unknown event `{unknown}`; events are {}",
            WEBHOOK_EVENTS.join(", ")
        )));
    }
    Ok(events)
}

fn validate_secret(secret: String) -> Result<String> {
    if secret.len() < crate::domain::limits::MIN_WEBHOOK_SECRET_BYTES
        || secret.len() > crate::domain::limits::MAX_WEBHOOK_SECRET_BYTES
    {
        return Err(Error::InvalidInput(
            "a webhook secret is 16 to 200 bytes".into(),
        ));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::clock::ManualClock;

    #[test]
    fn only_the_newest_finished_deliveries_are_kept_and_pending_ones_never_go() {
        let store = crate::storage::Store::temporary().unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-25T08:00:00Z".parse().unwrap()));
        let webhooks = Arc::new(crate::storage::StoredWebhooks::new(&store));
        let service = WebhookService::new(webhooks.clone(), UnitOfWork::new(&store), clock.clone());
        let webhook = service
            .create(
                WebhookInput {
                    url: Some("http://127.0.0.1:9/hook".into()),
                    ..WebhookInput::default()
                },
                AccountId(1),
            )
            .unwrap();
        let now = clock.now();
        let statuses = [
            DeliveryStatus::Succeeded,
            DeliveryStatus::Pending,
            DeliveryStatus::Failed,
            DeliveryStatus::Succeeded,
            DeliveryStatus::Succeeded,
        ];
        for (id, status) in (1u64..).zip(statuses) {
            let delivery = Delivery {
                id,
                webhook: webhook.id,
                event: "ended".into(),
                body: "{}".into(),
                status,
                attempts: 1,
                next_attempt: now,
                last_status: Some(200),
                last_error: None,
                created: now,
                finished: None,
            };
            webhooks.put_delivery(&delivery).unwrap();
        }
        assert_eq!(service.trim(webhook.id, 2).unwrap(), 2);
        let left: Vec<(u64, DeliveryStatus)> = service
            .deliveries(webhook.id)
            .unwrap()
            .into_iter()
            .map(|delivery| (delivery.id, delivery.status))
            .collect();
        assert_eq!(
            left,
            [
                (5, DeliveryStatus::Succeeded),
                (4, DeliveryStatus::Succeeded),
                (2, DeliveryStatus::Pending),
            ]
        );
    }
}
