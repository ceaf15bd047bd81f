//! Stored messages published to one JetStream stream (`KEFU_MESSAGES`, subject `kefu.messages`) that
//! feeds every node's history index, so history search on any node finds what the leader stored.
//!
//! **Publishing.** The leader's desk tells [`MessageLog`] (a [`StoredMessageSink`]) of each message
//! once its desk turn committed; the message is queued (bounded: when full, it is logged, counted and
//! not published) and one task publishes it as JSON `{conversation, message}` with the header
//! `Nats-Msg-Id: {conversation}:{seq}`, awaiting the stream's acknowledgement and retrying while NATS
//! cannot be reached. The stream drops a copy published again within its 2-minute duplicate window,
//! so a new leader can republish the last minutes ([`MessageLog::republish`]) in case the previous
//! one stopped between storing and publishing.
//!
//! **Consuming.** Each node has a durable pull consumer `history-{node id}` that adds every message to
//! the node's [`MessageIndex`] (idempotent: a message seen twice is indexed once) and acknowledges it
//! only once the index committed it, so a crash loses nothing: unacknowledged messages come again.
//! A message is searchable at once (a history search commits first); commits themselves follow the
//! index's own pace ([`MessageIndex::commit_if_due`]). A node whose index is empty (its folder was
//! deleted) replays the stream from its start.
//!
//! **Bounds.** The stream keeps 7 days and at most `max_bytes` (the oldest go first); the consumer
//! holds at most 10,000 unacknowledged messages.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::AckKind;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Node;
use crate::domain::Message;
use crate::search::MessageIndex;
use crate::services::conversations::StoredMessageSink;

/// The stream's name.
pub const MESSAGE_STREAM: &str = "KEFU_MESSAGES";
/// The subject messages are published to.
pub const MESSAGE_SUBJECT: &str = "kefu.messages";
/// How long the stream keeps a message.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default bound of the stream.
const DEFAULT_MAX_BYTES: i64 = 2 << 30;
/// The window within which the stream drops a message published again.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Messages waiting to be published.
const PUBLISH_QUEUE: usize = 4096;
/// Messages published before awaiting their acknowledgements.
const PUBLISH_BATCH: usize = 256;
/// Messages the consumer may hold unacknowledged; the index commits after 2,000 at the latest.
const MAX_ACK_PENDING: i64 = 10_000;
/// Above the index's longest wait for a commit (60 s), so a message is not redelivered while waiting.
const ACK_WAIT: Duration = Duration::from_secs(300);
/// How often the consumer commits when due and acknowledges what is committed.
const COMMIT_CHECK: Duration = Duration::from_secs(1);
/// Largest message published (a stored message is a few KiB at most).
const MAX_MESSAGE_BYTES: i32 = 1 << 20;
/// Retries of a publication the server refused for another reason than being unreachable.
const MAX_REFUSED_RETRIES: u32 = 5;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// Where stored messages are logged.
#[derive(Debug, Clone)]
pub struct MessageLogConfig {
    /// The stream ([`MESSAGE_STREAM`]; tests use their own).
    pub stream: String,
    /// Its subject ([`MESSAGE_SUBJECT`]); streams cannot share subjects.
    pub subject: String,
    /// Bound of the stream in bytes (2 GiB); the oldest messages go first.
    pub max_bytes: i64,
}

impl Default for MessageLogConfig {
    fn default() -> MessageLogConfig {
        MessageLogConfig {
            stream: MESSAGE_STREAM.to_string(),
            subject: MESSAGE_SUBJECT.to_string(),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// One stored message as published.
#[derive(Debug, Serialize, Deserialize)]
struct LoggedMessage {
    conversation: String,
    message: Message,
}

/// The message log of this node: publishes what the desk stores, and feeds the history index from
/// the stream. Dropping it stops both.
pub struct MessageLog {
    queue: mpsc::Sender<LoggedMessage>,
    publisher: Publisher,
    dropped: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for MessageLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MessageLog")
            .field("stream", &self.publisher.config.stream)
            .finish_non_exhaustive()
    }
}

/// Publishes to the stream.
#[derive(Debug, Clone)]
struct Publisher {
    jetstream: async_nats::jetstream::Context,
    config: MessageLogConfig,
}

impl MessageLog {
    /// Logs through the cluster's stream, `<CLUSTER NAME>_MESSAGES` on `<cluster name>.messages` (for
    /// the default name, [`MESSAGE_STREAM`] on [`MESSAGE_SUBJECT`]); see [`MessageLog::start_with`].
    pub async fn start(node: &Node, history: Arc<MessageIndex>) -> anyhow::Result<MessageLog> {
        let config = MessageLogConfig {
            stream: format!("{}_MESSAGES", node.cluster.to_uppercase()),
            subject: format!("{}.messages", node.cluster),
            ..MessageLogConfig::default()
        };
        MessageLog::start_with(node, history, config).await
    }

    /// Creates or opens the stream and this node's consumer `history-{node id}` (anew, to replay the
    /// whole stream, when `history` is empty), and starts publishing and consuming.
    ///
    /// Fails when the stream or the consumer cannot be created or opened.
    pub async fn start_with(
        node: &Node,
        history: Arc<MessageIndex>,
        config: MessageLogConfig,
    ) -> anyhow::Result<MessageLog> {
        let publisher = Publisher {
            jetstream: node.jetstream.clone(),
            config,
        };
        let stream = publisher.ensure_stream().await?;
        let consumer_name = consumer_name(&node.id);
        if history.is_empty() {
            // A consumer that acknowledged messages an empty index no longer holds would skip them.
            match stream.delete_consumer(&consumer_name).await {
                Ok(_) => tracing::info!(
                    consumer = %consumer_name,
                    "message index empty, replaying the message log from its start"
                ),
                Err(error) => {
                    tracing::debug!(consumer = %consumer_name, %error, "no consumer to reset")
                }
            }
        }
        let consumer = open_consumer(&stream, &consumer_name).await?;
        let (queue, receiver) = mpsc::channel(PUBLISH_QUEUE);
        let publishing = tokio::spawn(publish_queued(publisher.clone(), receiver));
        let consuming = tokio::spawn(consume(stream, consumer_name, consumer, history));
        Ok(MessageLog {
            queue,
            publisher,
            dropped: Arc::default(),
            tasks: vec![publishing, consuming],
        })
    }

    /// Publishes `messages` (conversation id, message) now and waits for the stream to hold them,
    /// retrying while NATS cannot be reached; copies already published within the last 2 minutes are
    /// dropped by the stream. For a node that becomes the desk leader, with
    /// [`crate::services::ConversationService::messages_since`] two minutes back. Returns how many
    /// were published.
    pub async fn republish(&self, messages: Vec<(String, Message)>) -> usize {
        let mut published = 0;
        let mut logged = messages
            .into_iter()
            .map(|(conversation, message)| LoggedMessage {
                conversation,
                message,
            })
            .peekable();
        while logged.peek().is_some() {
            let batch: Vec<LoggedMessage> = logged.by_ref().take(PUBLISH_BATCH).collect();
            published += self.publisher.publish_batch(batch).await;
        }
        published
    }

    /// Stored messages not published because the queue was full (since start).
    pub fn dropped_messages(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for MessageLog {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl StoredMessageSink for MessageLog {
    fn feeds_history(&self) -> bool {
        true
    }

    fn stored(&self, conversation: &str, message: &Message) {
        let logged = LoggedMessage {
            conversation: conversation.to_string(),
            message: message.clone(),
        };
        match self.queue.try_send(logged) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(logged)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(
                    conversation = %logged.conversation,
                    seq = logged.message.seq,
                    dropped,
                    "message log queue full, message not published to the other nodes"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A durable consumer name from a node id: NATS refuses `.`, `*`, `>`, spaces and path separators.
fn consumer_name(node_id: &str) -> String {
    let safe: String = node_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("history-{safe}")
}

impl Publisher {
    async fn ensure_stream(&self) -> anyhow::Result<stream::Stream> {
        let config = stream::Config {
            name: self.config.stream.clone(),
            description: Some("kefu stored messages, for every node's history index".to_string()),
            subjects: vec![self.config.subject.clone()],
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            max_age: MAX_AGE,
            max_bytes: self.config.max_bytes,
            max_message_size: MAX_MESSAGE_BYTES,
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        self.jetstream
            .get_or_create_stream(config)
            .await
            .with_context(|| format!("opening the stream `{}`", self.config.stream))
    }

    /// Publishes a batch (pipelined: every message sent, then the acknowledgements awaited), retrying
    /// the failed ones with backoff. Returns how many the stream acknowledged.
    async fn publish_batch(&self, batch: Vec<LoggedMessage>) -> usize {
        let mut remaining: Vec<(String, Vec<u8>)> = Vec::with_capacity(batch.len());
        for logged in &batch {
            match serde_json::to_vec(logged) {
                Ok(payload) => remaining.push((
                    format!("{}:{}", logged.conversation, logged.message.seq),
                    payload,
                )),
                Err(error) => tracing::error!(%error, "cannot encode a stored message"),
            }
        }
        let mut published = 0;
        let mut retry_delay = FIRST_RETRY_DELAY;
        let mut refusals = 0;
        while !remaining.is_empty() {
            let mut pending_acks = Vec::with_capacity(remaining.len());
            let mut failed = Vec::new();
            let mut worst = None;
            for (id, payload) in remaining {
                let message = PublishMessage::build()
                    .message_id(&id)
                    .payload(payload.clone().into());
                match self
                    .jetstream
                    .send_publish(self.config.subject.clone(), message)
                    .await
                {
                    Ok(ack) => pending_acks.push((id, payload, ack)),
                    Err(error) => {
                        worst = Some(error);
                        failed.push((id, payload));
                    }
                }
            }
            for (id, payload, ack) in pending_acks {
                match ack.await {
                    Ok(_) => published += 1,
                    Err(error) => {
                        worst = Some(error);
                        failed.push((id, payload));
                    }
                }
            }
            let Some(error) = worst else {
                break;
            };
            match error.kind() {
                PublishErrorKind::MaxPayloadExceeded => {
                    tracing::error!(%error, messages = failed.len(), "stored messages too large for the message log");
                    break;
                }
                PublishErrorKind::StreamNotFound => {
                    // Deleted by hand, or NATS lost it: make it again.
                    if let Err(error) = self.ensure_stream().await {
                        tracing::warn!(%error, "recreating the message log stream failed");
                    }
                }
                PublishErrorKind::Other
                | PublishErrorKind::WrongLastMessageId
                | PublishErrorKind::WrongLastSequence => {
                    refusals += 1;
                    if refusals > MAX_REFUSED_RETRIES {
                        tracing::error!(%error, messages = failed.len(), "stored messages not published to the message log");
                        break;
                    }
                }
                PublishErrorKind::TimedOut
                | PublishErrorKind::BrokenPipe
                | PublishErrorKind::MaxAckPending => {}
            }
            tracing::warn!(%error, messages = failed.len(), retry_in_ms = retry_delay.as_millis() as u64, "publishing stored messages failed");
            tokio::time::sleep(retry_delay).await;
            retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
            remaining = failed;
        }
        published
    }
}

/// Publishes what the desk queued, in batches of what is waiting.
async fn publish_queued(publisher: Publisher, mut receiver: mpsc::Receiver<LoggedMessage>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < PUBLISH_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        publisher.publish_batch(batch).await;
    }
}

async fn open_consumer(
    stream: &stream::Stream,
    name: &str,
) -> anyhow::Result<async_nats::jetstream::consumer::PullConsumer> {
    stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                description: Some("kefu history index of one node".to_string()),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("opening the consumer `{name}`"))
}

/// Feeds the index from the consumer, for ever: messages are added as they come, committed at the
/// index's pace and acknowledged once committed.
async fn consume(
    stream: stream::Stream,
    name: String,
    mut consumer: async_nats::jetstream::consumer::PullConsumer,
    history: Arc<MessageIndex>,
) {
    // Received messages waiting for the commit that makes them durable, with its ticket.
    let mut unacknowledged: VecDeque<(u64, async_nats::jetstream::Message)> = VecDeque::new();
    let mut retry_delay = FIRST_RETRY_DELAY;
    let mut commit_check = tokio::time::interval(COMMIT_CHECK);
    commit_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(error) => {
                tracing::warn!(%error, retry_in_ms = retry_delay.as_millis() as u64, "reading the message log failed");
                tokio::time::sleep(retry_delay).await;
                retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                if let Ok(reopened) = open_consumer(&stream, &name).await {
                    consumer = reopened;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                received = messages.next() => match received {
                    Some(Ok(message)) => {
                        retry_delay = FIRST_RETRY_DELAY;
                        if let Some(ticket) = index_message(&history, &message).await {
                            unacknowledged.push_back((ticket, message));
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "reading the message log failed");
                        // Without its consumer the pull stream would fail for ever: make it again.
                        let consumer_gone = matches!(
                            error.kind(),
                            pull::MessagesErrorKind::ConsumerDeleted
                                | pull::MessagesErrorKind::NoResponders
                        );
                        if consumer_gone {
                            break;
                        }
                        tokio::time::sleep(retry_delay).await;
                        retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
                    }
                    None => break,
                },
                _ = commit_check.tick() => {
                    commit_and_acknowledge(&history, &mut unacknowledged).await;
                }
            }
        }
        // The pull stream ended or lost its consumer (deleted, or NATS lost it): open it again.
        tokio::time::sleep(retry_delay).await;
        retry_delay = (retry_delay * 2).min(MAX_RETRY_DELAY);
        match open_consumer(&stream, &name).await {
            Ok(reopened) => consumer = reopened,
            Err(error) => tracing::warn!(%error, "opening the message log consumer again failed"),
        }
    }
}

/// Adds one logged message to the index; returns the ticket of the commit that will hold it, or
/// `None` for a message that is not one (terminated, so it is not delivered again).
async fn index_message(
    history: &MessageIndex,
    message: &async_nats::jetstream::Message,
) -> Option<u64> {
    match serde_json::from_slice::<LoggedMessage>(&message.payload) {
        Ok(logged) => match history.add(&logged.conversation, &logged.message) {
            Ok(()) => Some(history.commit_ticket()),
            Err(error) => {
                tracing::error!(%error, "indexing a logged message failed");
                None
            }
        },
        Err(error) => {
            tracing::warn!(%error, "ignored a message log entry that is no stored message");
            if let Err(error) = message.ack_with(AckKind::Term).await {
                tracing::debug!(%error, "terminating a message log entry failed");
            }
            None
        }
    }
}

/// Commits the index when due (or when the consumer holds many messages) and acknowledges the
/// messages it now holds durably.
async fn commit_and_acknowledge(
    history: &Arc<MessageIndex>,
    unacknowledged: &mut VecDeque<(u64, async_nats::jetstream::Message)>,
) {
    if unacknowledged.is_empty() {
        return;
    }
    let must_commit = unacknowledged.len() as i64 >= MAX_ACK_PENDING / 2;
    let index = Arc::clone(history);
    let committed = tokio::task::spawn_blocking(move || {
        if must_commit {
            index.commit()
        } else {
            index.commit_if_due()
        }
    })
    .await;
    match committed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "committing the message index failed"),
        Err(error) => tracing::error!(%error, "committing the message index failed"),
    }
    while let Some((ticket, _)) = unacknowledged.front() {
        if !history.is_committed(*ticket) {
            break;
        }
        if let Some((_, message)) = unacknowledged.pop_front() {
            // A lost acknowledgement only means the message comes again, and is indexed once.
            if let Err(error) = message.ack().await {
                tracing::debug!(%error, "acknowledging a message log entry failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_are_valid_whatever_the_node_id() {
        assert_eq!(consumer_name("kefu-8080"), "history-kefu-8080");
        assert_eq!(consumer_name("node.a b>*/x"), "history-node_a_b___x");
    }
}
