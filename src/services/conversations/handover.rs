//! Who serves a conversation: an agent accepting it, a transfer to a colleague or a group and its
//! answer, inviting a colleague to help, and the two moves the rest of the desk builds on, giving a
//! conversation to an agent (`assign`) and putting it back at the front of the queue (`requeue`).

use crate::domain::{
    AccountId, Conversation, ConversationState, Message, PendingTransfer, QueueEntry, QueueStatus,
    Role, SenderKind,
};
use crate::error::{Error, Result};
use crate::services::quick_replies::fill_variables;

use super::{
    message_views, routing, seconds_between, AssignedVia, Check, ConversationService,
    ConversationView, Desk, DeskEvent, DeskFact, Outgoing, TransferTarget,
};

impl ConversationService {
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
                    .min(self.config().transfer_timeout_secs);
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

    // ----- internals (called with the desk locked) -----

    /// Gives the conversation to `agent`: `offered` by automatic routing (taken once they answer), or
    /// taken outright (accepted by hand, transferred).
    pub(super) fn assign(
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
    pub(super) fn requeue(
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

    pub(super) fn cancel_transfer(
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
        // An offer that timed out leaves the receiver's list too (one who declined removed it).
        if let Some(receiver) = transfer.to_agent.filter(|_| reason == "timeout") {
            outgoing.agents(
                vec![receiver],
                DeskEvent::Unassigned {
                    conversation: conversation.id.clone(),
                    reason: "transfer_withdrawn".into(),
                },
            );
        }
        self.system_message(conversation, "转接未成功，原客服将继续为您服务。", outgoing)?;
        Ok(())
    }
}
