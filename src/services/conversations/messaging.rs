//! Messages of open conversations: the visitor's and agents' messages, internal notes, system
//! messages and their fan-out, typing, uploaded files, and the history of all conversations. Kept
//! apart because every message, whoever sends it, is validated, appended and announced here.

use std::collections::HashMap;

use crate::domain::{
    Attachment, Conversation, ConversationState, Message, QueueStatus, SenderKind,
};
use crate::error::{Error, Result};
use crate::storage::NewMessage;

use super::{
    files, off_async_workers, participants, seconds_between, visitor_message, Check,
    ConversationService, DeskEvent, DeskFact, HistoryItem, HistoryPage, HistoryQuery, MessageView,
    Outgoing, Party, VisitorMessageStored, ANYONE, EARLIER_MESSAGES_ANNOUNCED,
};

impl ConversationService {
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
                let to_visitor = matches!(party, Party::Agent(_)) && !internal;
                let gates = if to_visitor {
                    self.reply_gates.read().clone()
                } else {
                    Vec::new()
                };
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
                for gate in &gates {
                    gate.check_agent_reply(&conversation, &draft)?;
                }
                let (message, new) = self.append(&conversation, draft)?;
                if new {
                    for gate in &gates {
                        gate.agent_reply_stored(&conversation, &message)?;
                    }
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
                // Not stored, so told at once rather than before a flush.
                if !self.frame_observers.read().is_empty() {
                    let frames = [(conversation.id.clone(), event)];
                    off_async_workers(|| {
                        super::dispatch::tell_frames(&self.frame_observers, self.now(), &frames)
                    });
                }
            }
        }
        Ok(())
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
        let attachment =
            self.files
                .store(conversation_id, uploader, name, &bytes, &self.config())?;
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
                && query
                    .channel
                    .as_ref()
                    .is_none_or(|channel| &conversation.channel == channel)
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

    pub(super) fn validate_body(&self, body: &str, attachments: &[Attachment]) -> Result<String> {
        let body = body.trim();
        if body.is_empty() && attachments.is_empty() {
            return Err(Error::InvalidInput("a message needs text or a file".into()));
        }
        let length = body.chars().count();
        if length > self.config().max_message_chars {
            return Err(Error::MessageTooLong {
                length,
                max: self.config().max_message_chars,
            });
        }
        Ok(body.to_string())
    }

    pub(super) fn append(
        &self,
        conversation: &Conversation,
        message: Message,
    ) -> Result<(Message, bool)> {
        let (message, new) = self
            .store
            .append_message(&conversation.id, NewMessage { message })?;
        if new {
            if !self
                .history_fed_by_sink
                .load(std::sync::atomic::Ordering::Acquire)
            {
                self.history.add(&conversation.id, &message)?;
            }
            self.metrics.message_stored(message.kind);
            if !self.stored_message_sinks.read().is_empty() {
                self.stored_this_turn
                    .lock()
                    .push((conversation.id.clone(), message.clone()));
            }
        }
        Ok((message, new))
    }

    /// Tells the stored-message sinks what a committed desk turn stored.
    pub(super) fn tell_stored_message_sinks(&self, stored: &[(String, Message)]) {
        if stored.is_empty() {
            return;
        }
        let sinks = self.stored_message_sinks.read().clone();
        for sink in sinks {
            for (conversation, message) in stored {
                sink.stored(conversation, message);
            }
        }
    }

    /// Messages stored at or after `since`, with their conversations: those of open conversations and
    /// of conversations ended since then (the others cannot have new messages). A node that becomes
    /// the desk leader hands them to the cluster's message log again, in case the previous leader
    /// stored some and stopped before publishing them. Reads every conversation record, and the
    /// messages of the few that qualify; blocking.
    pub fn messages_since(&self, since: jiff::Timestamp) -> Result<Vec<(String, Message)>> {
        let mut found = Vec::new();
        for conversation in self.store.conversations()? {
            let recent = conversation.state.is_open()
                || conversation.ended_at.is_some_and(|ended| ended >= since);
            if !recent {
                continue;
            }
            for message in self.store.messages_after(&conversation.id, 0)? {
                if message.at >= since {
                    found.push((conversation.id.clone(), message));
                }
            }
        }
        Ok(found)
    }

    pub(super) fn system_message(
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
    pub(super) fn broadcast_message(
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
}
