//! Starting a conversation: the visitor's first message, queued or left as a message (留言) when
//! nobody can take it, and the visitor's pages coming and going. Kept apart because this is where a
//! conversation enters the desk; what happens to it afterwards is in the other files.

use crate::domain::{Conversation, ConversationState, GroupRouting, QueueEntry, QueueStatus};
use crate::error::{Error, Result};
use crate::services::secrets::random_token;

use super::{
    participants, routing, visitor_message, ConversationService, DeskEvent, DeskFact, StartRequest,
};

impl ConversationService {
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
        // The token is bound inside the start's own desk turn: one unit of work (one commit on
        // PostgreSQL), and never a conversation whose visitor token does not lead back to it.
        let accounts = &self.accounts;
        self.start_with(&grant.visitor_id, request, &|conversation| {
            accounts
                .bind_visitor_conversation(token, &conversation.id)
                .map(drop)
        })
        .await
    }

    /// Starts a conversation for the visitor `visitor_id` without a token: the visitor of a channel
    /// (an app's user, a WeChat OpenID), whom the channel vouches for. Queued or an offline message
    /// (留言), as [`start`](Self::start).
    pub async fn start_for_visitor(
        &self,
        visitor_id: &str,
        request: StartRequest,
    ) -> Result<Conversation> {
        self.start_with(visitor_id, request, &|_| Ok(())).await
    }

    /// [`start_for_visitor`](Self::start_for_visitor), running `within_turn` with the new
    /// conversation inside the desk turn that stores it, so its writes commit with the start's.
    async fn start_with(
        &self,
        visitor_id: &str,
        request: StartRequest,
        within_turn: &(dyn Fn(&Conversation) -> Result<()> + Sync),
    ) -> Result<Conversation> {
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
            visitor_id: visitor_id.to_string(),
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
        let queue_full_notice = self.desk_settings().messages.queue_full;
        self.locked(|desk, outgoing| {
            // A full queue takes messages for later instead of growing without end: anyone can
            // start conversations, and each waiting one costs every later change of the queue.
            let group_full = routing.max_queue.is_some_and(|max| {
                desk.queue
                    .iter()
                    .filter(|entry| entry.group == conversation.group)
                    .count()
                    >= max
            });
            let queue_full = desk.queue.len() >= self.config().max_queue || group_full;
            if queue_full {
                conversation.state = ConversationState::OfflineMessage;
            }
            let state = conversation.state;
            outgoing.fact(DeskFact::Created {
                conversation: conversation.clone(),
            });
            self.store.put_conversation(&conversation)?;
            within_turn(&conversation)?;
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
                self.system_message(&conversation, &routing.queue_message, outgoing)?;
                let item = self.queue_item(desk, &conversation)?;
                let agents = self.eligible_agents(conversation.group, None)?;
                outgoing.agents(agents, DeskEvent::Queued { item });
                outgoing.queue_changed = true;
                self.route(desk, outgoing)?;
            } else {
                let notice = if queue_full {
                    queue_full_notice.as_str()
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
        self.conversation(&conversation.id)
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
                    &self.desk_settings().messages.message_left,
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
}
