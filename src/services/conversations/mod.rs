//! The live-chat desk: conversations from the visitor's first message to the wrap-up.
//!
//! [`ConversationService`] is one type; its methods live in one file per job, so each part of the
//! desk's life can be read (and reviewed) without the others:
//! - `mod.rs`: the service, its request and answer types, the [`Desk`] and its lock.
//! - `start.rs`: starting a conversation, leaving a message instead of waiting, visitor pages
//!   connecting and leaving.
//! - `messaging.rs`: messages (visitors', agents', system), typing, files, the history.
//! - `handover.rs`: accepting, transferring, inviting; giving a conversation to an agent and back to
//!   the queue.
//! - `ending.rs`: ending, the wrap-up, the rating, an agent's pending work.
//! - `queue.rs`: the queue and automatic routing, positions and waits, what a new socket gets, the
//!   groups' routing settings.
//! - `timers.rs`: the timers ([`ConversationService::tick`]) and agents' presence changes.
//! - `routing.rs`: who may take a conversation, who gets it, queue positions and waits, working hours.
//! - `hub.rs`: open WebSockets and fan-out. `events.rs`: the frames pushed to them.
//! - `wire.rs`: conversations and messages as the API shows them, apart from the stored records.
//! - `dispatch.rs`: group commit and ordered delivery, so a message is acknowledged only once
//!   durable and every socket gets a conversation's frames in seq order.
//!
//! Open conversations and the queue are kept in memory ([`Desk`]) and written through to the store
//! under one lock ([`ConversationService::locked`]); nothing awaits while holding it, and the work
//! under it runs off the async workers. Messages are appended under the lock and their events queued
//! in lock order; the lock is released, one flush makes a batch durable, and only then are events sent
//! and senders acknowledged.

mod dispatch;
mod ending;
mod events;
mod facts;
mod files;
mod handover;
mod hub;
mod messaging;
mod queue;
mod routing;
mod start;
mod timers;
mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::config::ConversationsConfig;
use crate::domain::{
    AccountId, Attachment, Conversation, ConversationState, GroupId, Message, QueueEntry,
    QueueStatus, SenderKind, VisitorIdentity,
};
use crate::error::{Error, Result};
use crate::search::{Analyzer, MessageIndex};
use crate::services::accounts::AccountService;
use crate::services::clock::Clock;
use crate::services::metrics::Metrics;
use crate::services::settings::SettingsService;
use crate::storage::ConversationStore;

pub use events::{DeskEvent, QueueItem, QueuePosition, VisitorView};
pub use facts::{
    AssignedVia, DeskFact, DeskObserver, ReplyGate, StoredMessageSink, VisitorFrameObserver,
    VisitorMessageStored, VisitorMessageSubscriber,
};
pub use hub::{Connection, Hub, Outbox};
pub use routing::MAX_HOLIDAYS;
pub use wire::{ConversationView, MessageView};

/// Folder of the message index under the data folder (derived; rebuilt from the store when needed).
const MESSAGE_INDEX_FOLDER: &str = "message-index";
/// A queued visitor gone this long without coming back has abandoned the conversation.
const ABANDON_AFTER: SignedDuration = SignedDuration::from_secs(60);
/// Messages before a new visitor message handed to its subscribers: a suggestion's question takes the
/// last three visitor messages, and a few agent or system messages may stand between them.
pub const EARLIER_MESSAGES_ANNOUNCED: u64 = 10;

/// Who sends a message or command.
#[derive(Debug, Clone)]
pub enum Party {
    /// The conversation's visitor.
    Visitor,
    /// An agent (or supervisor, admin) by account.
    Agent(AccountId),
}

/// A caller's permission on a conversation, run under the desk lock against the conversation as it
/// is at that moment: a check on an earlier copy could still pass for an agent whom a transfer has
/// replaced in between.
pub type Check<'a> = &'a (dyn Fn(&Conversation) -> Result<()> + Sync);

/// The check of callers the route has already tied to the conversation (the visitor's own token,
/// the service's own timers and tests).
pub const ANYONE: Check<'static> = &|_| Ok(());

/// What the visitor's page sends to start a conversation.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// `web` by default.
    #[serde(default)]
    pub channel: Option<String>,
    /// The page the visitor is on.
    #[serde(default)]
    pub page: Option<String>,
    /// What the visitor tells about themselves.
    #[serde(default)]
    pub identity: VisitorIdentity,
    /// The first message.
    pub message: String,
    /// The wanted skill group; any agent when absent.
    #[serde(default)]
    pub group: Option<GroupId>,
}

/// Where a transfer goes.
#[derive(Debug, Clone, Copy)]
pub enum TransferTarget {
    /// A skill group: its best available agent is chosen.
    Group(GroupId),
    /// A named colleague.
    Agent(AccountId),
}

/// The wrap-up form.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WrapUpInput {
    /// A configured problem type.
    pub problem_type: String,
    /// How it was resolved.
    #[serde(default)]
    pub resolution: String,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Satisfaction as judged by the agent, 1-5.
    #[serde(default)]
    pub satisfaction: Option<u8>,
}

/// Filters of the history (历史记录).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Served by this agent.
    pub agent: Option<u64>,
    /// Of this skill group.
    pub group: Option<u64>,
    /// Of this visitor.
    pub visitor: Option<String>,
    /// From this channel (`web`, `api`, `wechat_official`, `wecom_kf`…).
    pub channel: Option<String>,
    /// In this state.
    pub state: Option<ConversationState>,
    /// Started at or after.
    pub from: Option<Timestamp>,
    /// Started before.
    pub to: Option<Timestamp>,
    /// Wrapped up with this problem type or one below it (`售后` matches `售后/换货`).
    pub problem_type: Option<String>,
    /// Words in any message.
    pub q: Option<String>,
    /// Page, from 1.
    pub page: Option<usize>,
    /// Conversations per page (default 20, at most 100).
    pub per_page: Option<usize>,
}

/// One conversation of the history.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HistoryItem {
    /// The conversation.
    pub conversation: ConversationView,
    /// Sequence numbers of the messages that matched `q`, best first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<Vec<u64>>,
}

/// A page of the history.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    /// This page, newest first.
    pub conversations: Vec<HistoryItem>,
    /// Matches in all pages.
    pub total: usize,
    /// Page number.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
}

/// Open conversations and the queue.
#[derive(Debug, Default)]
struct Desk {
    open: HashMap<String, Conversation>,
    queue: Vec<QueueEntry>,
    /// Last time each agent got a conversation; longest idle wins ties.
    last_assigned: HashMap<AccountId, Timestamp>,
    /// Last serving agent by visitor id and by the shop's user id (历史坐席优先).
    last_agent: HashMap<String, AccountId>,
    /// Recent handling times (assignment to end), seconds, for the wait estimate.
    recent_handling: VecDeque<u64>,
    /// When each conversation's visitor closed their last page; a queued one is abandoned after
    /// [`ABANDON_AFTER`].
    visitor_gone: HashMap<String, Timestamp>,
    /// Position and wait estimate last sent for each queued conversation, so that a change of the
    /// queue sends only what moved.
    shown_positions: HashMap<String, (usize, u64)>,
}

/// What a change of the desk sends once durable, and whether it moved the queue.
#[derive(Debug, Default)]
struct Outgoing {
    delivery: dispatch::Delivery,
    /// The queue changed: queued visitors get their new position.
    queue_changed: bool,
}

impl Outgoing {
    fn agents(&mut self, agents: Vec<AccountId>, event: DeskEvent) {
        self.delivery.to_agents.push((agents, event));
    }

    fn visitor(&mut self, conversation: &str, event: DeskEvent) {
        self.delivery
            .to_visitors
            .push((conversation.to_string(), event));
    }

    fn fact(&mut self, fact: DeskFact) {
        self.delivery.facts.push(fact);
    }
}

/// The live-chat desk.
pub struct ConversationService {
    store: Arc<dyn ConversationStore>,
    accounts: Arc<AccountService>,
    clock: Arc<dyn Clock>,
    settings: Arc<SettingsService>,
    hub: Arc<Hub>,
    dispatcher: dispatch::Dispatcher,
    files: files::Files,
    history: Arc<MessageIndex>,
    desk: Mutex<Desk>,
    /// Async turn at the desk lock: changes wait here without holding a thread, and only the one
    /// whose turn it is blocks (off the async workers) on the lock itself.
    turn: tokio::sync::Mutex<()>,
    metrics: Arc<Metrics>,
    observers: dispatch::Observers,
    frame_observers: dispatch::FrameObservers,
    reply_gates: RwLock<Vec<Arc<dyn ReplyGate>>>,
    visitor_message_subscribers: RwLock<Vec<Arc<dyn VisitorMessageSubscriber>>>,
    /// Checked inside every turn's unit of work before the change (a cluster's leader checks its
    /// lease there); none on one node.
    fence: RwLock<Option<DeskFence>>,
    stored_message_sinks: RwLock<Vec<Arc<dyn StoredMessageSink>>>,
    /// Messages stored by the desk turn under way, told to the sinks once it commits. Only touched
    /// under the desk lock, and emptied by every turn.
    stored_this_turn: Mutex<Vec<(String, Message)>>,
    /// A sink indexes the stored messages (see [`StoredMessageSink::feeds_history`]).
    history_fed_by_sink: std::sync::atomic::AtomicBool,
}

/// A check every desk turn must pass, inside its unit of work, before it changes anything.
pub type DeskFence = Arc<dyn Fn() -> Result<()> + Send + Sync>;

impl std::fmt::Debug for ConversationService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConversationService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ConversationService {
    /// Loads open conversations and the queue from `store`; must run inside a tokio runtime (the
    /// flushing task starts here). Opens the message index under `data_dir` (see
    /// [`ConversationService::open_message_index`]).
    pub fn open(
        store: Arc<dyn ConversationStore>,
        accounts: Arc<AccountService>,
        clock: Arc<dyn Clock>,
        config: ConversationsConfig,
        data_dir: &std::path::Path,
        analyzer: Arc<Analyzer>,
    ) -> Result<ConversationService> {
        let history = ConversationService::open_message_index(&*store, data_dir, analyzer)?;
        ConversationService::open_with_history(store, accounts, clock, config, data_dir, history)
    }

    /// Opens (or rebuilds from `store`) the message index of the history under `data_dir`, as
    /// [`ConversationService::open`] does. One process opens it once: a second open of the same folder
    /// fails while the first is alive (tantivy's writer lock). Blocking.
    pub fn open_message_index(
        store: &dyn ConversationStore,
        data_dir: &std::path::Path,
        analyzer: Arc<Analyzer>,
    ) -> Result<Arc<MessageIndex>> {
        Ok(Arc::new(MessageIndex::open(
            &data_dir.join(MESSAGE_INDEX_FOLDER),
            analyzer,
            store.message_count()?,
            || store.all_messages(),
        )?))
    }

    /// [`ConversationService::open`] with a message index opened by the caller, which may outlive this
    /// service (a cluster node keeps one index while it builds a new desk on becoming the leader).
    pub fn open_with_history(
        store: Arc<dyn ConversationStore>,
        accounts: Arc<AccountService>,
        clock: Arc<dyn Clock>,
        config: ConversationsConfig,
        data_dir: &std::path::Path,
        history: Arc<MessageIndex>,
    ) -> Result<ConversationService> {
        let mut desk = Desk::default();
        for conversation in store.conversations()? {
            if let Some(agent) = conversation.agent {
                desk.last_agent
                    .insert(conversation.visitor_id.clone(), agent);
                if let Some(external) = &conversation.identity.external_id {
                    desk.last_agent.insert(format!("ext:{external}"), agent);
                }
            }
            if conversation.state.is_open() {
                // Nobody is connected at start: queued visitors whose pages do not reconnect within
                // a minute are abandoned, as if they had left just now.
                if conversation.state == ConversationState::Queued {
                    desk.visitor_gone
                        .insert(conversation.id.clone(), clock.now());
                }
                desk.open.insert(conversation.id.clone(), conversation);
            }
        }
        desk.queue = store
            .queue_entries()?
            .into_iter()
            .filter(|entry| entry.status == QueueStatus::Waiting)
            .collect();
        desk.queue.sort_by_key(|entry| entry.since);
        let hub = Arc::new(Hub::default());
        let observers = dispatch::Observers::default();
        let frame_observers = dispatch::FrameObservers::default();
        let dispatcher = dispatch::Dispatcher::start(
            &store,
            Arc::clone(&hub),
            Arc::clone(&observers),
            Arc::clone(&frame_observers),
            Arc::clone(&clock),
        );
        let files = files::Files::new(
            Arc::new(crate::storage::StoredFiles::new(accounts.store(), data_dir)),
            config.visitor_uploads_per_minute,
        )?;
        let settings = Arc::new(SettingsService::open(
            Arc::new(crate::storage::StoredSettings::new(accounts.store())),
            config,
        )?);
        Ok(ConversationService {
            history,
            files,
            store,
            accounts,
            clock,
            settings,
            hub,
            dispatcher,
            desk: Mutex::new(desk),
            turn: tokio::sync::Mutex::new(()),
            metrics: Arc::default(),
            observers,
            frame_observers,
            reply_gates: RwLock::default(),
            visitor_message_subscribers: RwLock::default(),
            fence: RwLock::default(),
            stored_message_sinks: RwLock::default(),
            stored_this_turn: Mutex::default(),
            history_fed_by_sink: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The message index of the history (shared: the cluster's message log feeds it too).
    pub fn history_index(&self) -> Arc<MessageIndex> {
        Arc::clone(&self.history)
    }

    /// Tells `sink` every message stored from now on, once its desk turn committed.
    pub fn add_stored_message_sink(&self, sink: Arc<dyn StoredMessageSink>) {
        if sink.feeds_history() {
            self.history_fed_by_sink
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.stored_message_sinks.write().push(sink);
    }

    /// Every later turn first runs `fence` inside its unit of work and fails with its error.
    pub fn set_fence(&self, fence: DeskFence) {
        *self.fence.write() = Some(fence);
    }

    /// Stored messages are counted into `metrics` (by default into instruments nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> ConversationService {
        self.metrics = metrics;
        self
    }

    /// Tells `observer` every fact from now on.
    pub fn add_observer(&self, observer: Arc<dyn DeskObserver>) {
        self.observers.write().push(observer);
    }

    /// Tells `observer` every frame sent to visitors from now on.
    pub fn add_visitor_frame_observer(&self, observer: Arc<dyn VisitorFrameObserver>) {
        self.frame_observers.write().push(observer);
    }

    /// Asks `gate` before storing an agent's message to the visitor, from now on.
    pub fn add_reply_gate(&self, gate: Arc<dyn ReplyGate>) {
        self.reply_gates.write().push(gate);
    }

    /// Tells `subscriber` every new visitor message from now on.
    pub fn subscribe_to_visitor_messages(&self, subscriber: Arc<dyn VisitorMessageSubscriber>) {
        self.visitor_message_subscribers.write().push(subscriber);
    }

    /// Whether `agent` serves the open conversation `conversation_id` now; read from the desk in
    /// memory, for work queued earlier that is pointless once the conversation moved on.
    pub fn is_served_by(&self, conversation_id: &str, agent: AccountId) -> bool {
        self.lock().open.get(conversation_id).is_some_and(|open| {
            open.state == ConversationState::Active && open.agent == Some(agent)
        })
    }

    /// Records facts that happened outside the desk (suggestions shown and adopted); they are made
    /// durable by the next flush.
    pub fn note(&self, facts: &[DeskFact]) {
        self.tell_observers(facts);
    }

    fn tell_observers(&self, facts: &[DeskFact]) {
        dispatch::tell(&self.observers, self.now(), facts);
    }

    /// How many active conversations each agent serves now.
    pub fn loads(&self) -> HashMap<AccountId, usize> {
        routing::loads(&self.lock())
    }

    /// Routes this visitor's next conversation to `agent` when they can take it, as for a returning
    /// visitor (a visitor who accepted the agent's invitation).
    pub fn prefer_agent(&self, visitor_id: &str, agent: AccountId) {
        self.lock().last_agent.insert(visitor_id.to_string(), agent);
    }

    /// Open connections.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The configuration in force: `conversations` of the configuration file with the sections saved
    /// in the admin console applied (read anew on every call, so changes apply at once).
    pub fn config(&self) -> Arc<ConversationsConfig> {
        Arc::clone(&self.settings.current().config)
    }

    /// The desk settings (problem types, survey, timers, automatic messages, uploads).
    pub fn settings(&self) -> &Arc<SettingsService> {
        &self.settings
    }

    /// The desk settings in force.
    pub fn desk_settings(&self) -> crate::services::settings::DeskSettings {
        self.settings.current().settings.clone()
    }

    /// Open conversations by state, for metrics: (queued ones per wanted group, active ones).
    pub fn open_counts(&self) -> (BTreeMap<Option<GroupId>, u64>, u64) {
        let desk = self.lock();
        let mut queued = BTreeMap::new();
        let mut active = 0;
        for conversation in desk.open.values() {
            match conversation.state {
                ConversationState::Queued => *queued.entry(conversation.group).or_default() += 1,
                ConversationState::Active => active += 1,
                _ => {}
            }
        }
        (queued, active)
    }

    /// The desk's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The desk for a read or a change that sends nothing. The lock does not poison: a panic under it
    /// fails that one call, not every later one.
    fn lock(&self) -> MutexGuard<'_, Desk> {
        self.desk.lock()
    }

    /// Runs a change of the desk under its lock, off the async workers, queues its events in lock
    /// order, and returns once they are durable and sent.
    async fn locked<T>(
        &self,
        change: impl FnOnce(&mut Desk, &mut Outgoing) -> Result<T> + Send,
    ) -> Result<T> {
        let turn = self.turn.lock().await;
        let (value, ticket) = off_async_workers(|| {
            let mut desk = self.lock();
            let mut outgoing = Outgoing::default();
            // One unit of work per turn: on PostgreSQL the turn's writes commit together, before
            // anything is acknowledged.
            let mut change = Some(change);
            let mut value = None;
            let fence = self.fence.read().clone();
            let committed = self.store.in_transaction(&mut || {
                if let Some(fence) = &fence {
                    fence()?;
                }
                let change = change
                    .take()
                    .ok_or_else(|| Error::Internal("a desk turn ran twice".into()))?;
                value = Some(change(&mut desk, &mut outgoing)?);
                Ok(())
            });
            // Taken whatever the outcome, so a failed turn's messages are never told later.
            let stored = std::mem::take(&mut *self.stored_this_turn.lock());
            committed?;
            self.tell_stored_message_sinks(&stored);
            let value = value.ok_or_else(|| Error::Internal("a desk turn left no value".into()))?;
            let ticket = self.dispatch(&mut desk, outgoing);
            Ok::<_, Error>((value, ticket))
        })?;
        drop(turn);
        ticket.wait().await?;
        Ok(value)
    }

    /// One conversation, open or not.
    pub fn conversation(&self, id: &str) -> Result<Conversation> {
        self.open_or_stored(&self.lock(), id)
    }

    // ----- internals (called with the desk locked) -----

    /// The conversation from the desk when open, else from the store, whatever its state.
    fn open_or_stored(&self, desk: &Desk, id: &str) -> Result<Conversation> {
        match desk.open.get(id) {
            Some(open) => Ok(open.clone()),
            None => self
                .store
                .conversation(id)?
                .ok_or_else(|| Error::ConversationNotFound(id.to_string())),
        }
    }

    /// The conversation if it is open; a closed one answers `conversation_closed`.
    fn conversation_in(&self, desk: &Desk, id: &str) -> Result<Conversation> {
        match desk.open.get(id) {
            Some(open) => Ok(open.clone()),
            None => match self.store.conversation(id)? {
                Some(closed) => Err(Error::ConversationClosed(closed.id)),
                None => Err(Error::ConversationNotFound(id.to_string())),
            },
        }
    }

    /// Queues the events of a change in desk order; queued visitors, and the agents who see the
    /// queue, get the positions that changed.
    fn dispatch(&self, desk: &mut Desk, mut outgoing: Outgoing) -> dispatch::Ticket {
        if outgoing.queue_changed {
            self.queue_positions(desk, &mut outgoing);
        }
        self.dispatcher.queue(outgoing.delivery)
    }
}

/// Runs `work`, which blocks (the desk lock, sled, the message index), without stalling the async
/// worker it is called on: under a multi-threaded runtime the worker's other tasks move elsewhere.
fn off_async_workers<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// Seconds from `from` to `to`, never negative.
fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64().max(0.0)
}

/// The wire form of stored messages, in order.
pub fn message_views(messages: Vec<Message>) -> Vec<MessageView> {
    messages.into_iter().map(MessageView::from).collect()
}

/// The serving agent and the invited colleagues.
fn participants(conversation: &Conversation) -> Vec<AccountId> {
    conversation
        .agent
        .into_iter()
        .chain(conversation.invited.iter().copied())
        .collect()
}

fn visitor_message(
    conversation: &Conversation,
    body: String,
    attachments: Vec<Attachment>,
    client_key: Option<String>,
    at: Timestamp,
) -> Message {
    Message {
        seq: 0,
        kind: SenderKind::Visitor,
        agent: None,
        // The store keeps the name on the conversation only and puts it back when reading.
        sender_name: conversation.visitor_name().to_string(),
        body,
        attachments,
        at,
        client_key,
    }
}
