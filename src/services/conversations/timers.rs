//! What happens without anyone asking: the timers run every second (unanswered assignments, transfer
//! offers, idle and gone visitors, long waits) and agents' presence changes. Kept apart because these
//! are the desk's own decisions, each built from the moves of the other files.

use std::sync::Arc;

use jiff::SignedDuration;

use crate::domain::{AccountId, Conversation, ConversationState, QueueStatus};
use crate::error::{Error, Result};

use super::{ConversationService, DeskEvent, ABANDON_AFTER};

impl ConversationService {
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
        // Read once per tick: the admin console may change them at any moment.
        let settings = self.desk_settings();
        let timers = settings.timers;
        let unanswered = SignedDuration::from_secs(timers.unanswered_secs as i64);
        let transfer_timeout = SignedDuration::from_secs(timers.transfer_timeout_secs as i64);
        let remind_after = SignedDuration::from_mins(timers.visitor_idle_remind_mins as i64);
        let end_after = SignedDuration::from_mins(timers.visitor_idle_end_mins as i64);
        let wait_limit = SignedDuration::from_mins(timers.queue_wait_limit_mins as i64);
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
                    self.system_message(&conversation, &settings.messages.idle_reminder, outgoing)?;
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
                        message: settings.messages.leave_message_prompt.clone(),
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
}
