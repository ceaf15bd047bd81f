//! The live-chat desk: conversations from the visitor's first message to the wrap-up.
//!
//! - `mod.rs`: [`ConversationService`]: start, send, accept, transfer, invite, end, wrap-up, rating,
//!   leave a message, and the timers ([`ConversationService::tick`]).
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
mod events;
mod facts;
mod files;
mod hub;
mod routing;
mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::config::ConversationsConfig;
use crate::domain::{
    Account, AccountId, Attachment, Conversation, ConversationState, GroupId, GroupRouting,
    Message, PendingTransfer, PresenceStatus, QueueEntry, QueueStatus, Rating, Role, SenderKind,
    VisitorIdentity, WrapUp,
};
use crate::error::{Error, Result};
use crate::search::{Analyzer, MessageIndex};
use crate::services::accounts::AccountService;
use crate::services::clock::Clock;
use crate::services::metrics::Metrics;
use crate::services::quick_replies::fill_variables;
use crate::services::secrets::random_token;
use crate::storage::{self, id_key, ConversationStore, NewMessage};

pub use events::{DeskEvent, QueueItem, QueuePosition, VisitorView};
pub use facts::{
    AssignedVia, DeskFact, DeskObserver, VisitorMessageStored, VisitorMessageSubscriber,
};
pub use hub::{Connection, Hub, Outbox};
pub use wire::{ConversationView, MessageView};

/// Folder of the message index under the data folder (derived; rebuilt from the store when needed).
const MESSAGE_INDEX_FOLDER: &str = "message-index";
/// Handling times remembered for the estimate shown to queued visitors.
const RECENT_HANDLING: usize = 50;
/// Assumed handling time before any conversation ended, in seconds.
const DEFAULT_HANDLING_SECS: u64 = 180;
/// Told to a visitor who arrives when the queue is full (`conversations.max_queue`).
const QUEUE_FULL_NOTICE: &str =
    "当前咨询人数较多，排队已满。您的问题已作为留言提交，客服会尽快回复您。";
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
    config: ConversationsConfig,
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
    visitor_message_subscribers: RwLock<Vec<Arc<dyn VisitorMessageSubscriber>>>,
}

impl std::fmt::Debug for ConversationService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConversationService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ConversationService {
    /// Loads open conversations and the queue from `store`; must run inside a tokio runtime (the
    /// flushing task starts here).
    pub fn open(
        store: Arc<dyn ConversationStore>,
        accounts: Arc<AccountService>,
        clock: Arc<dyn Clock>,
        config: ConversationsConfig,
        data_dir: &std::path::Path,
        analyzer: Arc<Analyzer>,
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
        let dispatcher = dispatch::Dispatcher::start(
            &store,
            Arc::clone(&hub),
            Arc::clone(&observers),
            Arc::clone(&clock),
        );
        let files = files::Files::new(
            accounts.store().blobs(data_dir),
            accounts.store().files.clone(),
            accounts.store().visitor_uploads.clone(),
            config.visitor_uploads_per_minute,
        )?;
        let history = Arc::new(MessageIndex::open(
            &data_dir.join(MESSAGE_INDEX_FOLDER),
            analyzer,
            store.message_count()?,
            || store.all_messages(),
        )?);
        Ok(ConversationService {
            history,
            files,
            store,
            accounts,
            clock,
            config,
            hub,
            dispatcher,
            desk: Mutex::new(desk),
            turn: tokio::sync::Mutex::new(()),
            metrics: Arc::default(),
            observers,
            visitor_message_subscribers: RwLock::default(),
        })
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

    /// The configuration in force.
    pub fn config(&self) -> &ConversationsConfig {
        &self.config
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
            self.store.in_transaction(&mut || {
                let change = change
                    .take()
                    .ok_or_else(|| Error::Internal("a desk turn ran twice".into()))?;
                value = Some(change(&mut desk, &mut outgoing)?);
                Ok(())
            })?;
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

    /// Messages after `after`; visitors never get internal notes.
    pub fn messages_after(&self, id: &str, after: u64, party: &Party) -> Result<Vec<Message>> {
        let mut messages = self.store.messages_after(id, after)?;
        if matches!(party, Party::Visitor) {
            messages.retain(|message| message.kind != SenderKind::Internal);
        }
        Ok(messages)
    }

    // ----- files -----

    /// Checks and stores a file sent in an open conversation by `party`; send it with a message by
    /// its hash. A visitor's uploads count against their rate and quota (see `files`).
    pub async fn upload(
        &self,
        party: &Party,
        conversation_id: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Attachment> {
        let conversation = self.conversation(conversation_id)?;
        if !matches!(
            conversation.state,
            ConversationState::Queued
                | ConversationState::Active
                | ConversationState::OfflineMessage
        ) {
            return Err(Error::ConversationClosed(conversation_id.to_string()));
        }
        let uploader = match party {
            Party::Visitor => files::Uploader::Visitor(&conversation.visitor_id),
            Party::Agent(_) => files::Uploader::Staff,
        };
        let attachment = self
            .files
            .store(conversation_id, uploader, name, &bytes, &self.config)?;
        self.dispatcher.durable().await?;
        Ok(attachment)
    }

    /// The uploaded files `hashes` of a conversation, to attach to a message.
    pub fn attachments_for(
        &self,
        conversation_id: &str,
        hashes: &[String],
    ) -> Result<Vec<Attachment>> {
        self.files.attachments(conversation_id, hashes)
    }

    /// Forgets the upload rates of visitors not seen lately. Run periodically.
    pub fn forget_idle_upload_rates(&self) {
        self.files.forget_idle_rates();
    }

    /// A file of a conversation, for its participants.
    pub fn file(&self, conversation_id: &str, hash: &str) -> Result<(Attachment, Vec<u8>)> {
        self.files.read(conversation_id, hash)
    }

    // ----- settings of groups -----

    /// A group's routing settings (defaults when never set).
    pub fn group_routing(&self, group: GroupId) -> Result<GroupRouting> {
        Ok(
            storage::get_json(&self.accounts.store().group_routing, id_key(group.0))?
                .unwrap_or_default(),
        )
    }

    /// Replaces a group's routing settings.
    pub fn set_group_routing(&self, group: GroupId, routing: GroupRouting) -> Result<GroupRouting> {
        self.accounts.group(group)?;
        routing::validate_working_hours(routing.working_hours.as_ref())?;
        crate::domain::limits::check_length(
            "off_hours_message",
            &routing.off_hours_message,
            crate::domain::limits::MAX_OFF_HOURS_MESSAGE_CHARS,
        )?;
        storage::put_json(
            &self.accounts.store().group_routing,
            id_key(group.0),
            &routing,
        )?;
        self.accounts.store().flush()?;
        Ok(routing)
    }

    // ----- visitor side -----

    /// Starts a conversation for the visitor token `token`. Queued when an agent can take it, else
    /// an offline message (留言) with the group's notice. A token already bound to an open
    /// conversation gets that one back.
    pub async fn start(&self, token: &str, request: StartRequest) -> Result<Conversation> {
        let grant = self
            .accounts
            .visitor_grant(token)?
            .ok_or(Error::Unauthenticated)?;
        if let Some(existing) = &grant.conversation {
            if let Ok(conversation) = self.conversation(existing) {
                if conversation.state.is_open() {
                    return Ok(conversation);
                }
            }
        }
        let body = self.check_start(&request)?;
        if let Some(group) = request.group {
            self.accounts.group(group)?;
        }
        let channel = request
            .channel
            .filter(|channel| !channel.trim().is_empty())
            .unwrap_or_else(|| "web".to_string());
        let now = self.now();
        let routing = match request.group {
            Some(group) => self.group_routing(group)?,
            None => GroupRouting::default(),
        };
        let open_hours = routing::within_working_hours(routing.working_hours.as_ref(), now);
        // Busy or away agents are at work: the visitor waits for them rather than leaving a message.
        let anyone_at_work = self
            .accounts
            .present_agents()?
            .iter()
            .any(|account| routing::may_take(account, request.group));
        let state = if open_hours && anyone_at_work {
            ConversationState::Queued
        } else {
            ConversationState::OfflineMessage
        };
        let mut conversation = Conversation {
            id: format!("c_{}", random_token(12)),
            visitor_id: grant.visitor_id.clone(),
            identity: request.identity,
            channel,
            page: request.page,
            group: request.group,
            state,
            agent: None,
            invited: Default::default(),
            pending_transfer: None,
            created: now,
            assigned_at: None,
            answered_at: None,
            last_visitor_activity: now,
            idle_reminded: false,
            ended_at: None,
            ended_by: None,
            wrap_up: None,
            rating: None,
            first_assigned_at: None,
            awaiting_reply_since: Some(now),
        };
        self.locked(|desk, outgoing| {
            // A full queue takes messages for later instead of growing without end: anyone can
            // start conversations, and each waiting one costs every later change of the queue.
            let queue_full = desk.queue.len() >= self.config.max_queue;
            if queue_full {
                conversation.state = ConversationState::OfflineMessage;
            }
            let state = conversation.state;
            outgoing.fact(DeskFact::Created {
                conversation: conversation.clone(),
            });
            self.store.put_conversation(&conversation)?;
            self.append(
                &conversation,
                visitor_message(&conversation, body, Vec::new(), None, now),
            )?;
            if state == ConversationState::Queued {
                let entry = QueueEntry {
                    conversation: conversation.id.clone(),
                    group: conversation.group,
                    status: QueueStatus::Waiting,
                    since: now,
                    declined_by: Default::default(),
                    leave_offered: false,
                    agent: None,
                    assigned_at: None,
                };
                self.store.put_queue_entry(&entry)?;
                desk.queue.push(entry);
                desk.open
                    .insert(conversation.id.clone(), conversation.clone());
                // Counted as away until their page's socket opens (`visitor_connected`): a visitor
                // who never connects is abandoned like one who left, instead of waiting forever.
                desk.visitor_gone.insert(conversation.id.clone(), now);
                self.system_message(&conversation, "正在为您接入客服，请稍候。", outgoing)?;
                let item = self.queue_item(desk, &conversation)?;
                let agents = self.eligible_agents(conversation.group, None)?;
                outgoing.agents(agents, DeskEvent::Queued { item });
                outgoing.queue_changed = true;
                self.route(desk, outgoing)?;
            } else {
                let notice = if queue_full {
                    QUEUE_FULL_NOTICE
                } else {
                    routing.off_hours_message.as_str()
                };
                self.system_message(&conversation, notice, outgoing)?;
                outgoing.fact(DeskFact::OfflineMessage {
                    conversation: conversation.clone(),
                });
            }
            Ok(())
        })
        .await?;
        self.accounts
            .bind_visitor_conversation(token, &conversation.id)?;
        self.conversation(&conversation.id)
    }

    /// Stores a message from the visitor or an agent and returns it once durable. A resend with the
    /// same `client_key` returns the stored message and notifies nobody again.
    pub async fn send(
        &self,
        party: &Party,
        conversation_id: &str,
        client_key: Option<String>,
        body: &str,
        attachments: Vec<Attachment>,
        internal: bool,
    ) -> Result<Message> {
        self.send_reporting_new(
            party,
            conversation_id,
            client_key,
            body,
            attachments,
            internal,
            ANYONE,
        )
        .await
        .map(|(message, _)| message)
    }

    /// [`send`](Self::send) once `check` passes on the conversation under the lock, also telling
    /// whether the message is new (`false` for a resend).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_reporting_new(
        &self,
        party: &Party,
        conversation_id: &str,
        client_key: Option<String>,
        body: &str,
        attachments: Vec<Attachment>,
        internal: bool,
        check: Check<'_>,
    ) -> Result<(Message, bool)> {
        let body = self.validate_body(body, &attachments)?;
        crate::domain::limits::check_optional_length(
            "client_key",
            client_key.as_deref(),
            crate::domain::limits::MAX_CLIENT_KEY_CHARS,
        )?;
        let now = self.now();
        let (message, new, stored_with) = self
            .locked(|desk, outgoing| {
                // Offline messages are not on the desk; their visitor may still add to them.
                let conversation = self.open_or_stored(desk, conversation_id)?;
                check(&conversation)?;
                let writable = match party {
                    Party::Visitor => matches!(
                        conversation.state,
                        ConversationState::Queued
                            | ConversationState::Active
                            | ConversationState::OfflineMessage
                    ),
                    Party::Agent(_) if internal => conversation.state.is_open(),
                    Party::Agent(_) => conversation.state == ConversationState::Active,
                };
                if !writable {
                    return Err(Error::ConversationClosed(conversation_id.to_string()));
                }
                let draft = match party {
                    Party::Visitor => {
                        visitor_message(&conversation, body, attachments, client_key, now)
                    }
                    Party::Agent(agent) => {
                        let account = self.accounts.account(*agent)?;
                        Message {
                            seq: 0,
                            kind: if internal {
                                SenderKind::Internal
                            } else {
                                SenderKind::Agent
                            },
                            agent: Some(*agent),
                            sender_name: account.display_name,
                            body,
                            attachments,
                            at: now,
                            client_key,
                        }
                    }
                };
                let (message, new) = self.append(&conversation, draft)?;
                if new {
                    if let Some(open) = desk.open.get_mut(conversation_id) {
                        let mut changed = false;
                        match party {
                            Party::Visitor => {
                                open.last_visitor_activity = now;
                                open.idle_reminded = false;
                                open.awaiting_reply_since.get_or_insert(now);
                                changed = true;
                            }
                            Party::Agent(agent) if !internal => {
                                if open.agent == Some(*agent) && open.answered_at.is_none() {
                                    open.answered_at = Some(now);
                                    changed = true;
                                    let mut was_offered = false;
                                    if let Some(mut entry) =
                                        self.store.queue_entry(conversation_id)?
                                    {
                                        if entry.status == QueueStatus::Offered {
                                            was_offered = true;
                                            entry.status = QueueStatus::Taken;
                                            self.store.put_queue_entry(&entry)?;
                                        }
                                    }
                                    let assigned_at = open.assigned_at.unwrap_or(now);
                                    outgoing.fact(DeskFact::Taken {
                                        conversation: open.clone(),
                                        agent: *agent,
                                        first_response_secs: seconds_between(assigned_at, now),
                                        was_offered,
                                    });
                                }
                                if let Some(since) = open.awaiting_reply_since.take() {
                                    changed = true;
                                    outgoing.fact(DeskFact::Replied {
                                        conversation: open.clone(),
                                        agent: *agent,
                                        response_secs: seconds_between(since, now),
                                    });
                                }
                            }
                            Party::Agent(_) => {}
                        }
                        if changed {
                            self.store.put_conversation(open)?;
                        }
                    }
                    self.broadcast_message(&conversation, &message, outgoing);
                }
                let stored_with = match party {
                    Party::Visitor if new => Some(
                        desk.open
                            .get(conversation_id)
                            .cloned()
                            .unwrap_or(conversation),
                    ),
                    _ => None,
                };
                Ok((message, new, stored_with))
            })
            .await?;
        if let Some(conversation) = stored_with {
            self.announce_visitor_message(conversation, &message);
        }
        Ok((message, new))
    }

    /// Tells the subscribers of a new visitor message, with the messages just before it. Those are
    /// read only when someone listens, and a failed read leaves them out rather than failing a send
    /// that is already durable.
    fn announce_visitor_message(&self, conversation: Conversation, message: &Message) {
        let subscribers = self.visitor_message_subscribers.read().clone();
        if subscribers.is_empty() {
            return;
        }
        let after = message.seq.saturating_sub(EARLIER_MESSAGES_ANNOUNCED + 1);
        let earlier = match off_async_workers(|| self.store.messages_after(&conversation.id, after))
        {
            Ok(mut earlier) => {
                // Messages stored since by someone else are not before this one.
                earlier.retain(|earlier| earlier.seq < message.seq);
                earlier
            }
            Err(error) => {
                tracing::warn!(%error, conversation = conversation.id, "reading recent messages failed");
                Vec::new()
            }
        };
        let stored = VisitorMessageStored {
            conversation,
            message: message.clone(),
            earlier,
        };
        for subscriber in subscribers {
            subscriber.visitor_message_stored(&stored);
        }
    }

    /// Typing indicator, not stored.
    pub fn typing(&self, party: &Party, conversation_id: &str, typing: bool) -> Result<()> {
        let conversation = self.conversation(conversation_id)?;
        match party {
            Party::Visitor => {
                let event = DeskEvent::Typing {
                    conversation: conversation.id.clone(),
                    from: SenderKind::Visitor,
                    typing,
                };
                self.hub.to_agents(&participants(&conversation), &event);
            }
            Party::Agent(_) => {
                let event = DeskEvent::Typing {
                    conversation: conversation.id.clone(),
                    from: SenderKind::Agent,
                    typing,
                };
                self.hub.to_visitor(&conversation.id, &event);
            }
        }
        Ok(())
    }

    /// The visitor leaves a message (留言) instead of waiting in the queue.
    pub async fn leave_message(&self, conversation_id: &str) -> Result<Conversation> {
        let conversation = self
            .locked(|desk, outgoing| {
                let mut conversation = self.conversation_in(desk, conversation_id)?;
                if conversation.state != ConversationState::Queued {
                    return Err(Error::ConversationClosed(conversation_id.to_string()));
                }
                conversation.state = ConversationState::OfflineMessage;
                outgoing.fact(DeskFact::OfflineMessage {
                    conversation: conversation.clone(),
                });
                self.leave_queue(desk, conversation_id, None, outgoing)?;
                desk.open.remove(conversation_id);
                self.store.put_conversation(&conversation)?;
                self.system_message(
                    &conversation,
                    "已收到您的留言，客服上线后会尽快回复您。",
                    outgoing,
                )?;
                outgoing.visitor(
                    conversation_id,
                    DeskEvent::State {
                        conversation: self.visitor_view(&conversation),
                    },
                );
                Ok(conversation)
            })
            .await?;
        Ok(conversation)
    }

    /// The visitor rates an ended conversation, once.
    pub async fn rate(&self, conversation_id: &str, stars: u8, comment: &str) -> Result<Rating> {
        if !(1..=5).contains(&stars) {
            return Err(Error::InvalidInput("stars must be 1 to 5".into()));
        }
        if comment.chars().count() > 500 {
            return Err(Error::InvalidInput(
                "a comment is at most 500 characters".into(),
            ));
        }
        // Read, check and write under the desk lock: two ratings at once would otherwise both pass
        // the check and be counted twice, and a wrap-up written at the same time could be lost.
        self.locked(|desk, outgoing| {
            let mut conversation = self.open_or_stored(desk, conversation_id)?;
            if conversation.state != ConversationState::Ended {
                return Err(Error::InvalidInput(
                    "only an ended conversation can be rated".into(),
                ));
            }
            if conversation.rating.is_some() {
                return Err(Error::InvalidInput(
                    "this conversation is already rated".into(),
                ));
            }
            let rating = Rating {
                stars,
                comment: comment.trim().to_string(),
                at: self.now(),
            };
            conversation.rating = Some(rating.clone());
            self.store.put_conversation(&conversation)?;
            outgoing.fact(DeskFact::Rated { conversation });
            Ok(rating)
        })
        .await
    }

    // ----- agent side -----

    /// The agent takes a queued conversation (or an offline message) themselves.
    pub async fn accept(&self, agent: AccountId, conversation_id: &str) -> Result<Conversation> {
        self.locked(|desk, outgoing| {
            let conversation = self.open_or_stored(desk, conversation_id)?;
            if !matches!(
                conversation.state,
                ConversationState::Queued | ConversationState::OfflineMessage
            ) {
                return Err(Error::ConversationTaken(conversation_id.to_string()));
            }
            let account = self.accounts.account(agent)?;
            if !routing::may_take(&account, conversation.group) {
                return Err(Error::Forbidden(
                    "this conversation belongs to a skill group you are not in".into(),
                ));
            }
            if routing::active_count(desk, agent) >= account.max_concurrent as usize {
                return Err(Error::AgentAtCapacity);
            }
            // A message left for later lives only in the store until someone takes it; putting it
            // among the open conversations before the checks above left a refused one there, where
            // the visitor could end it and it dropped out of everyone's pending work.
            if conversation.state == ConversationState::OfflineMessage {
                desk.open
                    .insert(conversation.id.clone(), conversation.clone());
            }
            self.assign(
                desk,
                conversation_id,
                agent,
                AssignedVia::Accepted,
                outgoing,
            )?;
            Ok(())
        })
        .await?;
        self.conversation(conversation_id)
    }

    /// Hands a conversation to a group or a colleague with a note; the sender keeps it until the
    /// receiver accepts (or the offer times out).
    pub async fn transfer(
        &self,
        from: AccountId,
        conversation_id: &str,
        target: TransferTarget,
        note: &str,
        reason: &str,
    ) -> Result<Conversation> {
        let note = note.trim();
        let reason = reason.trim();
        if note.chars().count() > 500 || reason.chars().count() > 200 {
            return Err(Error::InvalidInput(
                "a transfer note is at most 500 characters, a reason at most 200".into(),
            ));
        }
        let conversation = self
            .locked(|desk, outgoing| {
                let mut conversation = self.conversation_in(desk, conversation_id)?;
                if conversation.state != ConversationState::Active
                    || conversation.agent != Some(from)
                {
                    return Err(Error::Forbidden(
                        "only the serving agent can transfer an active conversation".into(),
                    ));
                }
                let (to_group, receiver) = match target {
                    TransferTarget::Agent(agent) => {
                        let account = self.accounts.account(agent)?;
                        if account.disabled || !account.has_role(Role::Agent) || agent == from {
                            return Err(Error::TransferTargetUnavailable(format!(
                                "`{}` cannot receive conversations",
                                account.username
                            )));
                        }
                        (None, agent)
                    }
                    TransferTarget::Group(group) => {
                        self.accounts.group(group)?;
                        let staff = routing::Staff::online(desk, &self.accounts)?;
                        let candidates = staff.candidates(Some(group), &[from]);
                        let receiver = routing::pick(desk, &conversation, &candidates, &staff)
                            .ok_or_else(|| {
                                Error::TransferTargetUnavailable(
                                    "no agent of that group is available".into(),
                                )
                            })?;
                        (Some(group), receiver)
                    }
                };
                let from_account = self.accounts.account(from)?;
                let receiver_account = self.accounts.account(receiver)?;
                conversation.pending_transfer = Some(PendingTransfer {
                    from,
                    to_group,
                    to_agent: Some(receiver),
                    note: note.to_string(),
                    at: self.now(),
                });
                desk.open
                    .insert(conversation.id.clone(), conversation.clone());
                self.store.put_conversation(&conversation)?;
                // The note stays in the conversation, where the transfer happened, as an internal
                // entry: whoever serves or reviews it later reads it in place; the visitor never
                // gets it.
                if !note.is_empty() {
                    let to = match to_group {
                        Some(group) => format!(
                            "{} · {}",
                            self.accounts.group(group)?.name,
                            receiver_account.display_name
                        ),
                        None => receiver_account.display_name.clone(),
                    };
                    let entry = Message {
                        seq: 0,
                        kind: SenderKind::Internal,
                        agent: Some(from),
                        sender_name: from_account.display_name.clone(),
                        body: format!("转接备注（转给 {to}）：{note}"),
                        attachments: Vec::new(),
                        at: self.now(),
                        client_key: None,
                    };
                    let (entry, _) = self.append(&conversation, entry)?;
                    self.broadcast_message(&conversation, &entry, outgoing);
                }
                // The receiver answers or the offer lapses within the transfer timeout.
                let wait = self
                    .estimated_wait(desk, to_group.or(conversation.group), 1)
                    .min(self.config.transfer_timeout_secs);
                // The note is for the receiver only; the visitor sees the reason.
                let reason = if reason.is_empty() {
                    String::new()
                } else {
                    format!("（{reason}）")
                };
                self.system_message(
                    &conversation,
                    &format!(
                        "正在为您转接客服{}{reason}，预计等待约 {} 秒。",
                        receiver_account.display_name, wait
                    ),
                    outgoing,
                )?;
                let messages = self.store.messages_after(conversation_id, 0)?;
                outgoing.agents(
                    vec![receiver],
                    DeskEvent::TransferOffered {
                        conversation: ConversationView::from(&conversation),
                        from,
                        from_name: from_account.display_name,
                        note: note.to_string(),
                        messages: message_views(messages),
                    },
                );
                Ok(conversation)
            })
            .await?;
        Ok(conversation)
    }

    /// The receiver of a transfer accepts (`true`) or declines it.
    pub async fn answer_transfer(
        &self,
        receiver: AccountId,
        conversation_id: &str,
        accept: bool,
    ) -> Result<Conversation> {
        self.locked(|desk, outgoing| {
            let mut conversation = self.conversation_in(desk, conversation_id)?;
            let Some(transfer) = conversation.pending_transfer.clone() else {
                return Err(Error::InvalidInput("no transfer is waiting".into()));
            };
            if transfer.to_agent != Some(receiver) {
                return Err(Error::Forbidden("this transfer is for someone else".into()));
            }
            if accept {
                // The offer may have been made to someone already full, or they filled up while it
                // waited: accepting would put them over their limit. The offer stays open.
                let account = self.accounts.account(receiver)?;
                if routing::active_count(desk, receiver) >= account.max_concurrent as usize {
                    return Err(Error::AgentAtCapacity);
                }
                let from_group = conversation.group;
                if let Some(group) = transfer.to_group {
                    conversation.group = Some(group);
                    desk.open
                        .insert(conversation.id.clone(), conversation.clone());
                }
                outgoing.agents(
                    vec![transfer.from],
                    DeskEvent::Unassigned {
                        conversation: conversation_id.to_string(),
                        reason: "transferred".into(),
                    },
                );
                self.assign(
                    desk,
                    conversation_id,
                    receiver,
                    AssignedVia::Transfer,
                    outgoing,
                )?;
                outgoing.fact(DeskFact::Transferred {
                    conversation: self.conversation_in(desk, conversation_id)?,
                    from: transfer.from,
                    to: receiver,
                    from_group,
                });
            } else {
                self.cancel_transfer(desk, &mut conversation, "declined", outgoing)?;
            }
            Ok(())
        })
        .await?;
        self.conversation(conversation_id)
    }

    /// Invites a colleague to help: they see the conversation and may write internal notes.
    pub async fn invite(
        &self,
        by: AccountId,
        conversation_id: &str,
        colleague: AccountId,
        check: Check<'_>,
    ) -> Result<Conversation> {
        let conversation = self
            .locked(|desk, outgoing| {
                let mut conversation = self.conversation_in(desk, conversation_id)?;
                check(&conversation)?;
                if conversation.state != ConversationState::Active {
                    return Err(Error::ConversationClosed(conversation_id.to_string()));
                }
                let account = self.accounts.account(colleague)?;
                let can_help = !account.disabled
                    && (account.has_role(Role::Agent) || account.has_role(Role::Supervisor));
                if !can_help || conversation.agent == Some(colleague) {
                    return Err(Error::TransferTargetUnavailable(format!(
                        "`{}` cannot be invited",
                        account.username
                    )));
                }
                conversation.invited.insert(colleague);
                desk.open
                    .insert(conversation.id.clone(), conversation.clone());
                self.store.put_conversation(&conversation)?;
                let inviter = self.accounts.account(by)?;
                let note = Message {
                    seq: 0,
                    kind: SenderKind::Internal,
                    agent: Some(by),
                    sender_name: inviter.display_name,
                    body: format!("邀请 {} 协助处理", account.display_name),
                    attachments: Vec::new(),
                    at: self.now(),
                    client_key: None,
                };
                let (note, _) = self.append(&conversation, note)?;
                self.broadcast_message(&conversation, &note, outgoing);
                let messages = self.store.messages_after(conversation_id, 0)?;
                outgoing.agents(
                    vec![colleague],
                    DeskEvent::Invited {
                        conversation: ConversationView::from(&conversation),
                        by,
                        messages: message_views(messages),
                    },
                );
                Ok(conversation)
            })
            .await?;
        Ok(conversation)
    }

    /// Ends a conversation. A visitor ending while still queued abandons it.
    pub async fn end(&self, party: &Party, conversation_id: &str) -> Result<Conversation> {
        self.end_checked(party, conversation_id, ANYONE).await
    }

    /// [`end`](Self::end) once `check` passes on the conversation under the lock.
    pub async fn end_checked(
        &self,
        party: &Party,
        conversation_id: &str,
        check: Check<'_>,
    ) -> Result<Conversation> {
        let ended_by = match party {
            Party::Visitor => "visitor",
            Party::Agent(_) => "agent",
        };
        self.locked(|desk, outgoing| {
            check(&self.conversation_in(desk, conversation_id)?)?;
            self.end_locked(desk, conversation_id, ended_by, outgoing)?;
            // A slot is free: waiting conversations may move.
            self.route(desk, outgoing)?;
            Ok(())
        })
        .await?;
        self.conversation(conversation_id)
    }

    /// Saves the agent's wrap-up of an ended conversation.
    pub async fn wrap_up(
        &self,
        agent: AccountId,
        conversation_id: &str,
        input: WrapUpInput,
    ) -> Result<Conversation> {
        if !self.config.problem_types.contains(&input.problem_type) {
            return Err(Error::InvalidInput(format!(
                "unknown problem type `{}`",
                input.problem_type
            )));
        }
        if input
            .satisfaction
            .is_some_and(|stars| !(1..=5).contains(&stars))
        {
            return Err(Error::InvalidInput("satisfaction must be 1 to 5".into()));
        }
        if input.resolution.chars().count() > 2000
            || input.tags.len() > 20
            || input.tags.iter().any(|tag| tag.chars().count() > 20)
        {
            return Err(Error::InvalidInput(
                "a resolution is at most 2000 characters and at most 20 tags of at most 20 characters"
                    .into(),
            ));
        }
        // Read, check and write under the desk lock, as for ratings: a rating stored at the same time
        // would otherwise be overwritten by this older copy of the conversation.
        self.locked(|desk, outgoing| {
            let mut conversation = self.open_or_stored(desk, conversation_id)?;
            if conversation.state != ConversationState::Ended {
                return Err(Error::InvalidInput(
                    "only an ended conversation can be wrapped up".into(),
                ));
            }
            if conversation.agent != Some(agent) {
                return Err(Error::Forbidden(
                    "only the serving agent writes the wrap-up".into(),
                ));
            }
            let first = conversation.wrap_up.is_none();
            conversation.wrap_up = Some(WrapUp {
                problem_type: input.problem_type,
                resolution: input.resolution.trim().to_string(),
                tags: input
                    .tags
                    .into_iter()
                    .map(|tag| tag.trim().to_string())
                    .filter(|tag| !tag.is_empty())
                    .collect(),
                satisfaction: input.satisfaction,
                by: agent,
                at: self.now(),
            });
            self.store.put_conversation(&conversation)?;
            outgoing.fact(DeskFact::WrappedUp {
                conversation: conversation.clone(),
                first,
            });
            Ok(conversation)
        })
        .await
    }

    /// Ended conversations of `agent` still waiting for a wrap-up, and offline messages of the agent's
    /// groups still unanswered.
    pub fn pending(&self, agent: AccountId) -> Result<(Vec<Conversation>, Vec<Conversation>)> {
        let account = self.accounts.account(agent)?;
        let mut wrap_ups = Vec::new();
        let mut messages = Vec::new();
        for conversation in self.store.conversations()? {
            match conversation.state {
                ConversationState::Ended
                    if conversation.agent == Some(agent) && conversation.wrap_up.is_none() =>
                {
                    wrap_ups.push(conversation)
                }
                ConversationState::OfflineMessage
                    if routing::may_take(&account, conversation.group) =>
                {
                    messages.push(conversation)
                }
                _ => {}
            }
        }
        Ok((wrap_ups, messages))
    }

    /// What an agent's tab gets on connecting: their conversations and their groups' queue.
    pub fn agent_snapshot(&self, agent: AccountId) -> Result<DeskEvent> {
        let account = self.accounts.account(agent)?;
        let desk = self.lock();
        let conversations = desk
            .open
            .values()
            .filter(|conversation| participants(conversation).contains(&agent))
            .map(ConversationView::from)
            .collect();
        let mut queue = Vec::new();
        for entry in &desk.queue {
            if let Some(conversation) = desk.open.get(&entry.conversation) {
                if routing::may_take(&account, conversation.group) {
                    queue.push(self.queue_item(&desk, conversation)?);
                }
            }
        }
        Ok(DeskEvent::AgentHello {
            conversations,
            queue,
        })
    }

    /// What a visitor's page gets on connecting: the conversation and the messages after `last_seq`.
    pub fn visitor_snapshot(&self, conversation_id: &str, last_seq: u64) -> Result<Vec<DeskEvent>> {
        let conversation = self.conversation(conversation_id)?;
        let messages = self.messages_after(conversation_id, last_seq, &Party::Visitor)?;
        let mut events = vec![DeskEvent::Hello {
            conversation: self.visitor_view(&conversation),
            messages: message_views(messages),
        }];
        if conversation.state == ConversationState::Queued {
            let desk = self.lock();
            events.push(self.queue_event(&desk, conversation_id));
        }
        Ok(events)
    }

    /// The visitor opened a page of the conversation.
    pub fn visitor_connected(&self, conversation_id: &str) {
        self.lock().visitor_gone.remove(conversation_id);
    }

    /// The visitor closed their last page: agents are told; a queued conversation is abandoned if they
    /// do not come back within a minute.
    pub fn visitor_disconnected(&self, conversation_id: &str) -> Result<()> {
        let conversation = {
            let mut desk = self.lock();
            let Some(conversation) = desk.open.get(conversation_id).cloned() else {
                return Ok(());
            };
            desk.visitor_gone
                .insert(conversation_id.to_string(), self.now());
            conversation
        };
        self.hub.to_agents(
            &participants(&conversation),
            &DeskEvent::VisitorLeft {
                conversation: conversation_id.to_string(),
            },
        );
        Ok(())
    }

    // ----- presence and timers -----

    /// Reacts to a presence change: an agent going offline gives their conversations back to the front
    /// of the queue; an agent coming online may get waiting ones.
    pub async fn on_presence(&self, agent: AccountId, online: bool, offline: bool) -> Result<()> {
        self.locked(|desk, outgoing| {
            if offline {
                let theirs: Vec<String> = desk
                    .open
                    .values()
                    .filter(|conversation| {
                        conversation.agent == Some(agent)
                            && conversation.state == ConversationState::Active
                    })
                    .map(|conversation| conversation.id.clone())
                    .collect();
                for id in theirs {
                    self.requeue(desk, &id, "offline", None, outgoing)?;
                }
            }
            if online || offline {
                self.route(desk, outgoing)?;
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Runs the timers once: unanswered assignments, transfer offers, idle visitors, long waits.
    /// `kefu serve` calls it every second; tests call it after moving the clock.
    pub async fn tick(&self) -> Result<()> {
        let now = self.now();
        let unanswered = SignedDuration::from_secs(self.config.unanswered_secs as i64);
        let transfer_timeout = SignedDuration::from_secs(self.config.transfer_timeout_secs as i64);
        let remind_after = SignedDuration::from_mins(self.config.visitor_idle_remind_mins as i64);
        let end_after = SignedDuration::from_mins(self.config.visitor_idle_end_mins as i64);
        let wait_limit = SignedDuration::from_mins(self.config.queue_wait_limit_mins as i64);
        self.locked(|desk, outgoing| {
            let open: Vec<Conversation> = desk.open.values().cloned().collect();
            for mut conversation in open {
                if conversation.state != ConversationState::Active {
                    continue;
                }
                if let Some(transfer) = &conversation.pending_transfer {
                    if now.duration_since(transfer.at) > transfer_timeout {
                        self.cancel_transfer(desk, &mut conversation, "timeout", outgoing)?;
                    }
                }
                let lapsed = conversation.answered_at.is_none()
                    && conversation
                        .assigned_at
                        .is_some_and(|at| now.duration_since(at) > unanswered);
                let idle = now.duration_since(conversation.last_visitor_activity);
                if lapsed {
                    let agent = conversation.agent;
                    self.requeue(desk, &conversation.id, "unanswered", agent, outgoing)?;
                } else if idle > end_after {
                    self.end_locked(desk, &conversation.id, "idle", outgoing)?;
                } else if idle > remind_after && !conversation.idle_reminded {
                    conversation.idle_reminded = true;
                    desk.open
                        .insert(conversation.id.clone(), conversation.clone());
                    self.store.put_conversation(&conversation)?;
                    self.system_message(
                        &conversation,
                        "您好，请问还有其他问题吗？如无回复，本次会话将自动结束。",
                        outgoing,
                    )?;
                }
            }
            let abandoned: Vec<String> = desk
                .visitor_gone
                .iter()
                .filter(|(id, gone)| {
                    now.duration_since(**gone) > ABANDON_AFTER
                        && desk.open.get(*id).is_some_and(|conversation| {
                            conversation.state == ConversationState::Queued
                        })
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in abandoned {
                desk.visitor_gone.remove(&id);
                self.end_locked(desk, &id, "visitor", outgoing)?;
            }
            let mut long_waits = Vec::new();
            for entry in desk.queue.iter_mut() {
                if entry.status == QueueStatus::Waiting
                    && !entry.leave_offered
                    && now.duration_since(entry.since) > wait_limit
                {
                    entry.leave_offered = true;
                    self.store.put_queue_entry(entry)?;
                    long_waits.push(entry.conversation.clone());
                }
            }
            for conversation in long_waits {
                outgoing.visitor(
                    &conversation,
                    DeskEvent::QueueTimeout {
                        conversation: conversation.clone(),
                    },
                );
            }
            self.route(desk, outgoing)?;
            Ok(())
        })
        .await?;
        let history = Arc::clone(&self.history);
        tokio::task::spawn_blocking(move || history.commit_if_due())
            .await
            .map_err(|error| Error::Internal(format!("message index commit failed: {error}")))??;
        Ok(())
    }

    // ----- history -----

    /// Conversations matching `query` that `may_see` allows, newest first, one page.
    pub fn history(
        &self,
        query: &HistoryQuery,
        may_see: impl Fn(&Conversation) -> bool,
    ) -> Result<HistoryPage> {
        let per_page = query.per_page.unwrap_or(20).clamp(1, 100);
        let page = query.page.unwrap_or(1).max(1);
        let matched: Option<HashMap<String, Vec<u64>>> = match query.q.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => {
                if text.chars().count() > 200 {
                    return Err(Error::InvalidQuery {
                        reason: "at most 200 characters".into(),
                    });
                }
                let mut by_conversation: HashMap<String, Vec<u64>> = HashMap::new();
                for hit in self.history.search(text, 1000)? {
                    by_conversation
                        .entry(hit.conversation)
                        .or_default()
                        .push(hit.seq);
                }
                Some(by_conversation)
            }
            _ => None,
        };
        let mut found: Vec<HistoryItem> = Vec::new();
        for conversation in self.store.conversations()? {
            let wanted = query
                .agent
                .is_none_or(|agent| conversation.agent.map(|a| a.0) == Some(agent))
                && query
                    .group
                    .is_none_or(|group| conversation.group.map(|g| g.0) == Some(group))
                && query
                    .visitor
                    .as_ref()
                    .is_none_or(|visitor| &conversation.visitor_id == visitor)
                && query.state.is_none_or(|state| conversation.state == state)
                && query.from.is_none_or(|from| conversation.created >= from)
                && query.to.is_none_or(|to| conversation.created < to)
                && query.problem_type.as_ref().is_none_or(|wanted| {
                    conversation.wrap_up.as_ref().is_some_and(|wrap_up| {
                        wrap_up.problem_type == *wanted
                            || wrap_up.problem_type.starts_with(&format!("{wanted}/"))
                    })
                });
            if !wanted || !may_see(&conversation) {
                continue;
            }
            let matched_seqs = match &matched {
                Some(by_conversation) => match by_conversation.get(&conversation.id) {
                    Some(seqs) => Some(seqs.clone()),
                    None => continue,
                },
                None => None,
            };
            found.push(HistoryItem {
                conversation: conversation.into(),
                matched: matched_seqs,
            });
        }
        found.sort_by_key(|item| std::cmp::Reverse(item.conversation.created));
        let total = found.len();
        let conversations = found
            .into_iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .collect();
        Ok(HistoryPage {
            conversations,
            total,
            page,
            per_page,
        })
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

    /// Checks a start request's fields against their limits without storing anything (the route
    /// calls it before issuing a token); returns the first message's trimmed body.
    pub fn check_start(&self, request: &StartRequest) -> Result<String> {
        use crate::domain::limits::{check_optional_length, MAX_CHANNEL_CHARS, MAX_URL_CHARS};
        request.identity.check_lengths()?;
        check_optional_length("page", request.page.as_deref(), MAX_URL_CHARS)?;
        check_optional_length("channel", request.channel.as_deref(), MAX_CHANNEL_CHARS)?;
        self.validate_body(&request.message, &[])
    }

    fn validate_body(&self, body: &str, attachments: &[Attachment]) -> Result<String> {
        let body = body.trim();
        if body.is_empty() && attachments.is_empty() {
            return Err(Error::InvalidInput("a message needs text or a file".into()));
        }
        let length = body.chars().count();
        if length > self.config.max_message_chars {
            return Err(Error::MessageTooLong {
                length,
                max: self.config.max_message_chars,
            });
        }
        Ok(body.to_string())
    }

    fn append(&self, conversation: &Conversation, message: Message) -> Result<(Message, bool)> {
        let (message, new) = self
            .store
            .append_message(&conversation.id, NewMessage { message })?;
        if new {
            self.history.add(&conversation.id, &message)?;
            self.metrics.message_stored(message.kind);
        }
        Ok((message, new))
    }

    fn system_message(
        &self,
        conversation: &Conversation,
        text: &str,
        outgoing: &mut Outgoing,
    ) -> Result<Message> {
        let message = Message {
            seq: 0,
            kind: SenderKind::System,
            agent: None,
            sender_name: "系统".into(),
            body: text.to_string(),
            attachments: Vec::new(),
            at: self.now(),
            client_key: None,
        };
        let (message, _) = self.append(conversation, message)?;
        self.broadcast_message(conversation, &message, outgoing);
        Ok(message)
    }

    /// Internal notes go to the agents only; everything else to the visitor as well.
    fn broadcast_message(
        &self,
        conversation: &Conversation,
        message: &Message,
        outgoing: &mut Outgoing,
    ) {
        let event = DeskEvent::Message {
            conversation: conversation.id.clone(),
            message: MessageView::from(message),
        };
        if message.kind != SenderKind::Internal {
            outgoing.visitor(&conversation.id, event.clone());
        }
        outgoing.agents(participants(conversation), event);
    }

    /// Gives the conversation to `agent`: `offered` by automatic routing (taken once they answer), or
    /// taken outright (accepted by hand, transferred).
    fn assign(
        &self,
        desk: &mut Desk,
        conversation_id: &str,
        agent: AccountId,
        via: AssignedVia,
        outgoing: &mut Outgoing,
    ) -> Result<()> {
        let now = self.now();
        let account = self.accounts.account(agent)?;
        let mut conversation = self.conversation_in(desk, conversation_id)?;
        let answers_offline_message = conversation.state == ConversationState::OfflineMessage;
        let status = if via == AssignedVia::Routing {
            QueueStatus::Offered
        } else {
            QueueStatus::Taken
        };
        self.leave_queue(desk, conversation_id, Some((status, agent)), outgoing)?;
        conversation.state = ConversationState::Active;
        conversation.agent = Some(agent);
        conversation.invited.remove(&agent);
        conversation.assigned_at = Some(now);
        conversation.answered_at = None;
        conversation.pending_transfer = None;
        // The idle timer measures the visitor's silence towards an agent: time spent waiting in the
        // queue, or since a message was left for later, is not silence. Without this an offline
        // message accepted after `visitor_idle_end_mins` ended at the next tick.
        conversation.last_visitor_activity = now;
        conversation.idle_reminded = false;
        // A message left for later was never waiting in the queue: its first assignment is no wait.
        let queue_wait_secs = match conversation.first_assigned_at {
            Some(_) => None,
            None => {
                conversation.first_assigned_at = Some(now);
                (!answers_offline_message).then(|| seconds_between(conversation.created, now))
            }
        };
        desk.open
            .insert(conversation.id.clone(), conversation.clone());
        desk.last_assigned.insert(agent, now);
        desk.last_agent
            .insert(conversation.visitor_id.clone(), agent);
        if let Some(external) = &conversation.identity.external_id {
            desk.last_agent.insert(format!("ext:{external}"), agent);
        }
        self.store.put_conversation(&conversation)?;
        self.system_message(
            &conversation,
            &format!("客服{}为您服务", account.display_name),
            outgoing,
        )?;
        if !account.settings.greeting.is_empty() {
            // The same variables as a quick reply's, filled the same way.
            let body = fill_variables(
                &account.settings.greeting,
                conversation.visitor_name(),
                &account.display_name,
                now,
            );
            let greeting = Message {
                seq: 0,
                kind: SenderKind::Agent,
                agent: Some(agent),
                sender_name: account.display_name.clone(),
                body,
                attachments: Vec::new(),
                at: now,
                client_key: None,
            };
            let (greeting, _) = self.append(&conversation, greeting)?;
            self.broadcast_message(&conversation, &greeting, outgoing);
        }
        outgoing.fact(DeskFact::Assigned {
            conversation: conversation.clone(),
            agent,
            via,
            queue_wait_secs,
            answers_offline_message,
        });
        let messages = self.store.messages_after(conversation_id, 0)?;
        outgoing.agents(
            vec![agent],
            DeskEvent::Assigned {
                conversation: ConversationView::from(&conversation),
                messages: message_views(messages),
            },
        );
        outgoing.visitor(
            conversation_id,
            DeskEvent::State {
                conversation: self.visitor_view(&conversation),
            },
        );
        Ok(())
    }

    /// Puts an active conversation back at the front of the queue (its agent went offline or left it
    /// unanswered); `declined` is not offered it again.
    fn requeue(
        &self,
        desk: &mut Desk,
        conversation_id: &str,
        reason: &str,
        declined: Option<AccountId>,
        outgoing: &mut Outgoing,
    ) -> Result<()> {
        let mut conversation = self.conversation_in(desk, conversation_id)?;
        if let Some(agent) = conversation.agent {
            outgoing.agents(
                vec![agent],
                DeskEvent::Unassigned {
                    conversation: conversation_id.to_string(),
                    reason: reason.to_string(),
                },
            );
        }
        conversation.state = ConversationState::Queued;
        conversation.agent = None;
        conversation.assigned_at = None;
        conversation.pending_transfer = None;
        desk.open
            .insert(conversation.id.clone(), conversation.clone());
        self.store.put_conversation(&conversation)?;
        let entry = QueueEntry {
            conversation: conversation.id.clone(),
            group: conversation.group,
            status: QueueStatus::Waiting,
            // The front of the queue: it has waited since it began.
            since: conversation.created,
            declined_by: declined.into_iter().collect(),
            leave_offered: false,
            agent: None,
            assigned_at: None,
        };
        self.store.put_queue_entry(&entry)?;
        desk.queue.push(entry);
        desk.queue.sort_by_key(|entry| entry.since);
        self.system_message(&conversation, "正在为您转接其他客服，请稍候。", outgoing)?;
        outgoing.visitor(
            conversation_id,
            DeskEvent::State {
                conversation: self.visitor_view(&conversation),
            },
        );
        let item = self.queue_item(desk, &conversation)?;
        outgoing.agents(
            self.eligible_agents(conversation.group, None)?,
            DeskEvent::Queued { item },
        );
        outgoing.queue_changed = true;
        Ok(())
    }

    fn cancel_transfer(
        &self,
        desk: &mut Desk,
        conversation: &mut Conversation,
        reason: &str,
        outgoing: &mut Outgoing,
    ) -> Result<()> {
        let Some(transfer) = conversation.pending_transfer.take() else {
            return Ok(());
        };
        desk.open
            .insert(conversation.id.clone(), conversation.clone());
        self.store.put_conversation(conversation)?;
        outgoing.agents(
            vec![transfer.from],
            DeskEvent::TransferDeclined {
                conversation: conversation.id.clone(),
                reason: reason.to_string(),
            },
        );
        self.system_message(conversation, "转接未成功，原客服将继续为您服务。", outgoing)?;
        Ok(())
    }

    fn end_locked(
        &self,
        desk: &mut Desk,
        conversation_id: &str,
        ended_by: &str,
        outgoing: &mut Outgoing,
    ) -> Result<()> {
        let mut conversation = self.conversation_in(desk, conversation_id)?;
        let was_queued = conversation.state == ConversationState::Queued;
        conversation.state = if was_queued && ended_by == "visitor" {
            ConversationState::Abandoned
        } else {
            ConversationState::Ended
        };
        let now = self.now();
        conversation.ended_at = Some(now);
        conversation.ended_by = Some(ended_by.to_string());
        if let Some(assigned_at) = conversation.assigned_at {
            desk.recent_handling
                .push_back(now.duration_since(assigned_at).as_secs().max(0) as u64);
            if desk.recent_handling.len() > RECENT_HANDLING {
                desk.recent_handling.pop_front();
            }
        }
        conversation.pending_transfer = None;
        if was_queued {
            self.leave_queue(desk, conversation_id, None, outgoing)?;
        }
        desk.open.remove(conversation_id);
        desk.visitor_gone.remove(conversation_id);
        self.store.put_conversation(&conversation)?;
        outgoing.fact(if conversation.state == ConversationState::Abandoned {
            DeskFact::Abandoned {
                conversation: conversation.clone(),
            }
        } else {
            DeskFact::Ended {
                conversation: conversation.clone(),
            }
        });
        let text = match ended_by {
            "visitor" => "访客已结束会话。",
            "idle" => "由于长时间未回复，会话已自动结束。",
            _ => "会话已结束，感谢您的咨询。",
        };
        self.system_message(&conversation, text, outgoing)?;
        outgoing.agents(
            participants(&conversation),
            DeskEvent::Ended {
                conversation: conversation_id.to_string(),
                ended_by: ended_by.to_string(),
            },
        );
        outgoing.visitor(
            conversation_id,
            DeskEvent::State {
                conversation: self.visitor_view(&conversation),
            },
        );
        if conversation.state == ConversationState::Ended && conversation.agent.is_some() {
            outgoing.visitor(
                conversation_id,
                DeskEvent::Survey {
                    conversation: conversation_id.to_string(),
                },
            );
        }
        Ok(())
    }

    /// Takes the conversation off the waiting list. With a status the entry is kept (offered or taken by
    /// that agent), without one it is deleted (abandoned, left as a message).
    fn leave_queue(
        &self,
        desk: &mut Desk,
        conversation_id: &str,
        now_with: Option<(QueueStatus, AccountId)>,
        outgoing: &mut Outgoing,
    ) -> Result<()> {
        let Some(position) = desk
            .queue
            .iter()
            .position(|entry| entry.conversation == conversation_id)
        else {
            // An offer takes the entry out of the live queue. Taken by someone else (a transfer, an
            // accept) before the first answer, the stored entry is settled here: left `offered`, the
            // new agent's first reply would count the conversation as accepted a second time.
            if let Some((QueueStatus::Taken, agent)) = now_with {
                if let Some(mut entry) = self.store.queue_entry(conversation_id)? {
                    if entry.status == QueueStatus::Offered {
                        entry.status = QueueStatus::Taken;
                        entry.agent = Some(agent);
                        self.store.put_queue_entry(&entry)?;
                    }
                }
            }
            return Ok(());
        };
        let mut entry = desk.queue.remove(position);
        match now_with {
            Some((status, agent)) => {
                entry.status = status;
                entry.agent = Some(agent);
                entry.assigned_at = Some(self.now());
                self.store.put_queue_entry(&entry)?;
            }
            None => self.store.remove_queue_entry(conversation_id)?,
        }
        outgoing.agents(
            self.eligible_agents(entry.group, None)?,
            DeskEvent::QueueRemoved {
                conversation: conversation_id.to_string(),
            },
        );
        outgoing.queue_changed = true;
        Ok(())
    }

    /// Assigns what automatic routing can: for each waiting entry, oldest first, the returning
    /// visitor's last agent or the least-loaded eligible agent. Manual groups only get the former.
    fn route(&self, desk: &mut Desk, outgoing: &mut Outgoing) -> Result<()> {
        if !desk
            .queue
            .iter()
            .any(|entry| entry.status == QueueStatus::Waiting)
        {
            return Ok(());
        }
        let mut staff = routing::Staff::online(desk, &self.accounts)?;
        let waiting: Vec<QueueEntry> = desk
            .queue
            .iter()
            .filter(|entry| entry.status == QueueStatus::Waiting)
            .cloned()
            .collect();
        let mut modes = HashMap::new();
        for entry in waiting {
            // Nobody has room: the rest of the queue waits, however long it is.
            if !staff.any_room() {
                break;
            }
            let Some(conversation) = desk.open.get(&entry.conversation).cloned() else {
                continue;
            };
            let declined: Vec<AccountId> = entry.declined_by.iter().copied().collect();
            let candidates = staff.candidates(entry.group, &declined);
            if candidates.is_empty() {
                continue;
            }
            let mode = match entry.group {
                Some(group) => match modes.get(&group) {
                    Some(mode) => *mode,
                    None => {
                        let mode = self.group_routing(group)?.mode;
                        modes.insert(group, mode);
                        mode
                    }
                },
                None => crate::domain::RoutingMode::Auto,
            };
            let choice = match mode {
                crate::domain::RoutingMode::Auto => {
                    routing::pick(desk, &conversation, &candidates, &staff)
                }
                crate::domain::RoutingMode::Manual => {
                    routing::returning_agent(desk, &conversation, &candidates)
                }
            };
            if let Some(agent) = choice {
                self.assign(
                    desk,
                    &entry.conversation,
                    agent,
                    AssignedVia::Routing,
                    outgoing,
                )?;
                staff.assigned(agent);
            }
        }
        Ok(())
    }

    /// Agents who may take a conversation of `group` now: enabled, `agent` role, in the group (any
    /// group when `None`), presence online.
    fn eligible_agents(
        &self,
        group: Option<GroupId>,
        except: Option<AccountId>,
    ) -> Result<Vec<AccountId>> {
        Ok(self
            .accounts
            .online_agents()?
            .into_iter()
            .filter(|account| routing::may_take(account, group) && Some(account.id) != except)
            .map(|account| account.id)
            .collect())
    }

    fn queue_item(&self, desk: &Desk, conversation: &Conversation) -> Result<QueueItem> {
        let preview = self
            .store
            .messages_after(&conversation.id, 0)?
            .into_iter()
            .find(|message| message.kind == SenderKind::Visitor)
            .map(|message| message.body.chars().take(100).collect())
            .unwrap_or_default();
        Ok(QueueItem {
            conversation: ConversationView::from(conversation),
            position: routing::position(desk, &conversation.id),
            preview,
        })
    }

    fn queue_event(&self, desk: &Desk, conversation_id: &str) -> DeskEvent {
        let position = routing::position(desk, conversation_id);
        let group = desk
            .queue
            .iter()
            .find(|entry| entry.conversation == conversation_id)
            .and_then(|entry| entry.group);
        DeskEvent::Queue {
            conversation: conversation_id.to_string(),
            position,
            estimated_wait_secs: self.estimated_wait(desk, group, position),
        }
    }

    /// A slot frees about every (average handling time / open slots) seconds; the visitor at
    /// `position` waits for that many. Slots are the maximums of the online agents of the group.
    fn estimated_wait(&self, desk: &Desk, group: Option<GroupId>, position: usize) -> u64 {
        let online = self.accounts.online_agents().unwrap_or_default();
        estimated_wait(desk, &online, group, position)
    }

    /// After the queue changed: each queued visitor whose position or wait estimate changed gets it,
    /// and the agents who see a group's queue get the positions that changed in it. One pass over
    /// the queue; nothing is sent for the entries that did not move.
    fn queue_positions(&self, desk: &mut Desk, outgoing: &mut Outgoing) {
        let positions = routing::positions(desk);
        let present = self.accounts.present_agents().unwrap_or_default();
        let online: Vec<Account> = present
            .iter()
            .filter(|account| account.presence.status == PresenceStatus::Online)
            .cloned()
            .collect();
        let mut moved: BTreeMap<Option<GroupId>, Vec<QueuePosition>> = BTreeMap::new();
        let mut ordered: Vec<(&String, &(Option<GroupId>, usize))> = positions.iter().collect();
        ordered.sort_by_key(|(_, (group, position))| (*group, *position));
        for (conversation, &(group, position)) in ordered {
            let wait = estimated_wait(desk, &online, group, position);
            let shown = desk
                .shown_positions
                .insert(conversation.clone(), (position, wait));
            if shown == Some((position, wait)) {
                continue;
            }
            outgoing.visitor(
                conversation,
                DeskEvent::Queue {
                    conversation: conversation.clone(),
                    position,
                    estimated_wait_secs: wait,
                },
            );
            // A conversation new to the queue reached the agents with its position (`queued`).
            if shown.is_some_and(|(before, _)| before != position) {
                moved.entry(group).or_default().push(QueuePosition {
                    conversation: conversation.clone(),
                    position,
                });
            }
        }
        desk.shown_positions
            .retain(|conversation, _| positions.contains_key(conversation));
        for (group, positions) in moved {
            let agents: Vec<AccountId> = present
                .iter()
                .filter(|account| routing::may_take(account, group))
                .map(|account| account.id)
                .collect();
            if !agents.is_empty() {
                outgoing.agents(agents, DeskEvent::QueuePositions { positions });
            }
        }
    }

    fn visitor_view(&self, conversation: &Conversation) -> VisitorView {
        let agent = conversation
            .agent
            .and_then(|agent| self.accounts.account(agent).ok());
        VisitorView {
            id: conversation.id.clone(),
            state: conversation.state,
            agent_name: agent.as_ref().map(|agent| agent.display_name.clone()),
            agent_avatar: agent.and_then(|agent| agent.view().avatar_url),
            created: conversation.created,
            rated: conversation.rating.is_some(),
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

/// A slot frees about every (average handling time / open slots) seconds; the visitor at `position`
/// waits for that many. Slots are the maximums of the `online` agents who may take `group`.
fn estimated_wait(desk: &Desk, online: &[Account], group: Option<GroupId>, position: usize) -> u64 {
    let average = if desk.recent_handling.is_empty() {
        DEFAULT_HANDLING_SECS
    } else {
        desk.recent_handling.iter().sum::<u64>() / desk.recent_handling.len() as u64
    };
    let slots: u64 = online
        .iter()
        .filter(|account| routing::may_take(account, group))
        .map(|account| u64::from(account.max_concurrent))
        .sum();
    (average * position.max(1) as u64 / slots.max(1)).max(10)
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
