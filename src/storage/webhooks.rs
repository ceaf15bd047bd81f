//! Webhooks behind [`WebhookRepository`]: the webhooks, their deliveries, and the queue of deliveries
//! still pending. [`StoredWebhooks`] keeps them in the store's tables.
//!
//! Keys, unchanged since these were first stored (ids big-endian, so keys sort by id):
//! - `webhooks`: webhook id → `Webhook`;
//! - `webhook_deliveries`: webhook id, delivery id → `Delivery`: one webhook's deliveries are one
//!   range, oldest first;
//! - `webhook_queue`: webhook id, delivery id → the next attempt's time (milliseconds since the
//!   epoch, big-endian), so the sender skips a delivery waiting for a retry without reading it.

use jiff::Timestamp;

use crate::domain::{Delivery, Webhook};
use crate::error::Result;
use crate::storage::{self, id_key, Store};

/// A pending delivery in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedDelivery {
    /// Its webhook.
    pub webhook: u64,
    /// The delivery.
    pub delivery: u64,
    /// When it is due, as queued (`None`: unknown, read the delivery).
    pub next_attempt: Option<Timestamp>,
}

/// Where webhooks and their deliveries live.
pub trait WebhookRepository: Send + Sync + std::fmt::Debug {
    /// A fresh webhook or delivery id.
    fn new_id(&self) -> Result<u64>;
    /// Every webhook, in id order.
    fn webhooks(&self) -> Result<Vec<Webhook>>;
    /// One webhook.
    fn webhook(&self, id: u64) -> Result<Option<Webhook>>;
    /// Writes a webhook (insert or replace).
    fn put_webhook(&self, webhook: &Webhook) -> Result<()>;
    /// Removes a webhook and its deliveries (their queue entries are dropped when next met).
    fn remove_webhook(&self, id: u64) -> Result<()>;
    /// A webhook's deliveries, oldest first.
    fn deliveries(&self, webhook: u64) -> Result<Vec<Delivery>>;
    /// One delivery.
    fn delivery(&self, webhook: u64, delivery: u64) -> Result<Option<Delivery>>;
    /// Writes a delivery (insert or replace), under its webhook and id.
    fn put_delivery(&self, delivery: &Delivery) -> Result<()>;
    /// Removes a delivery.
    fn remove_delivery(&self, webhook: u64, delivery: u64) -> Result<()>;
    /// Queues (or requeues) a pending delivery for `next_attempt`.
    fn queue_delivery(&self, webhook: u64, delivery: u64, next_attempt: Timestamp) -> Result<()>;
    /// Takes a delivery off the queue.
    fn unqueue_delivery(&self, webhook: u64, delivery: u64) -> Result<()>;
    /// The queue, in key order.
    fn queued_deliveries(&self) -> Result<Vec<QueuedDelivery>>;
}

/// [`WebhookRepository`] in the store's tables.
#[derive(Debug, Clone)]
pub struct StoredWebhooks {
    store: Store,
}

impl StoredWebhooks {
    /// Webhooks in `store`.
    pub fn new(store: &Store) -> StoredWebhooks {
        StoredWebhooks {
            store: store.clone(),
        }
    }
}

fn delivery_key(webhook: u64, delivery: u64) -> Vec<u8> {
    [id_key(webhook), id_key(delivery)].concat()
}

fn ids_of(key: &[u8]) -> Option<(u64, u64)> {
    let webhook = u64::from_be_bytes(key.get(..8)?.try_into().ok()?);
    let delivery = u64::from_be_bytes(key.get(8..16)?.try_into().ok()?);
    Some((webhook, delivery))
}

/// The next attempt recorded in a queue entry (`None` for an entry without one: read the delivery).
fn queued_attempt(value: &[u8]) -> Option<Timestamp> {
    let millis = i64::from_be_bytes(value.try_into().ok()?);
    Timestamp::from_millisecond(millis).ok()
}

impl WebhookRepository for StoredWebhooks {
    fn new_id(&self) -> Result<u64> {
        self.store.next_id()
    }

    fn webhooks(&self) -> Result<Vec<Webhook>> {
        storage::scan_json(&self.store.webhooks)
    }

    fn webhook(&self, id: u64) -> Result<Option<Webhook>> {
        storage::get_json(&self.store.webhooks, id_key(id))
    }

    fn put_webhook(&self, webhook: &Webhook) -> Result<()> {
        storage::put_json(&self.store.webhooks, id_key(webhook.id), webhook)
    }

    fn remove_webhook(&self, id: u64) -> Result<()> {
        self.store.webhooks.remove(id_key(id))?;
        for key in self.store.webhook_deliveries.scan_prefix_keys(id_key(id))? {
            self.store.webhook_deliveries.remove(key)?;
        }
        Ok(())
    }

    fn deliveries(&self, webhook: u64) -> Result<Vec<Delivery>> {
        self.store
            .webhook_deliveries
            .scan_prefix(id_key(webhook))?
            .into_iter()
            .map(|(_, value)| storage::decode(&value))
            .collect()
    }

    fn delivery(&self, webhook: u64, delivery: u64) -> Result<Option<Delivery>> {
        storage::get_json(
            &self.store.webhook_deliveries,
            delivery_key(webhook, delivery),
        )
    }

    fn put_delivery(&self, delivery: &Delivery) -> Result<()> {
        storage::put_json(
            &self.store.webhook_deliveries,
            delivery_key(delivery.webhook, delivery.id),
            delivery,
        )
    }

    fn remove_delivery(&self, webhook: u64, delivery: u64) -> Result<()> {
        self.store
            .webhook_deliveries
            .remove(delivery_key(webhook, delivery))?;
        Ok(())
    }

    fn queue_delivery(&self, webhook: u64, delivery: u64, next_attempt: Timestamp) -> Result<()> {
        let millis = next_attempt.as_millisecond().to_be_bytes();
        self.store
            .webhook_queue
            .insert(delivery_key(webhook, delivery), millis)
    }

    fn unqueue_delivery(&self, webhook: u64, delivery: u64) -> Result<()> {
        self.store
            .webhook_queue
            .remove(delivery_key(webhook, delivery))?;
        Ok(())
    }

    fn queued_deliveries(&self) -> Result<Vec<QueuedDelivery>> {
        Ok(self
            .store
            .webhook_queue
            .iter()?
            .into_iter()
            .filter_map(|(key, value)| {
                let (webhook, delivery) = ids_of(&key)?;
                Some(QueuedDelivery {
                    webhook,
                    delivery,
                    next_attempt: queued_attempt(&value),
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DeliveryStatus;

    fn delivery(webhook: u64, id: u64) -> Delivery {
        Delivery {
            id,
            webhook,
            event: "ended".into(),
            body: "{}".into(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt: Timestamp::UNIX_EPOCH,
            last_status: None,
            last_error: None,
            created: Timestamp::UNIX_EPOCH,
            finished: None,
        }
    }

    #[test]
    fn deliveries_belong_to_their_webhook_and_the_queue_names_them() {
        let store = Store::temporary().unwrap();
        let webhooks = StoredWebhooks::new(&store);
        for (webhook, id) in [(1, 3), (1, 2), (2, 4)] {
            webhooks.put_delivery(&delivery(webhook, id)).unwrap();
        }
        let ids: Vec<u64> = webhooks
            .deliveries(1)
            .unwrap()
            .into_iter()
            .map(|delivery| delivery.id)
            .collect();
        assert_eq!(ids, [2, 3]);
        let due: Timestamp = "2026-12-02T08:00:00Z".parse().unwrap();
        webhooks.queue_delivery(2, 4, due).unwrap();
        assert_eq!(
            webhooks.queued_deliveries().unwrap(),
            [QueuedDelivery {
                webhook: 2,
                delivery: 4,
                next_attempt: Some(due),
            }]
        );
        webhooks.unqueue_delivery(2, 4).unwrap();
        assert!(webhooks.queued_deliveries().unwrap().is_empty());
        webhooks.remove_webhook(1).unwrap();
        assert!(webhooks.deliveries(1).unwrap().is_empty());
        assert!(webhooks.delivery(2, 4).unwrap().is_some());
    }
}
