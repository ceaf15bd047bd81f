//! The queue on the desk: automatic routing of waiting conversations, who is told of them, queue
//! positions and wait estimates, what an agent's or visitor's new socket gets, and each group's
//! routing settings. The pure rules (who may take what, who is picked) are in `routing.rs`; this
//! file applies them to the desk and says what to send.

use std::collections::{BTreeMap, HashMap};

use crate::domain::{
    Account, AccountId, Conversation, ConversationState, GroupId, GroupRouting, PresenceStatus,
    QueueEntry, QueueStatus, SenderKind,
};
use crate::error::Result;

use super::{
    message_views, participants, routing, AssignedVia, ConversationService, ConversationView, Desk,
    DeskEvent, Outgoing, Party, QueueItem, QueuePosition, VisitorView,
};

/// Largest `max_queue` of a group.
pub const MAX_GROUP_QUEUE: usize = 10_000;

/// Assumed handling time before any conversation ended, in seconds.
const DEFAULT_HANDLING_SECS: u64 = 180;

impl ConversationService {
    // ----- settings of groups -----

    /// A group's routing settings (defaults when never set).
    pub fn group_routing(&self, group: GroupId) -> Result<GroupRouting> {
        self.accounts.group_routing(group)
    }

    /// Replaces a group's routing settings.
    pub fn set_group_routing(&self, group: GroupId, routing: GroupRouting) -> Result<GroupRouting> {
        self.accounts.group(group)?;
        routing::validate_working_hours(routing.working_hours.as_ref())?;
        use crate::domain::limits::{check_length, MAX_OFF_HOURS_MESSAGE_CHARS};
        check_length(
            "off_hours_message",
            &routing.off_hours_message,
            MAX_OFF_HOURS_MESSAGE_CHARS,
        )?;
        check_length(
            "queue_message",
            &routing.queue_message,
            MAX_OFF_HOURS_MESSAGE_CHARS,
        )?;
        if routing.off_hours_message.trim().is_empty() || routing.queue_message.trim().is_empty() {
            return Err(crate::error::Error::InvalidInput(
                "off_hours_message and queue_message cannot be empty".into(),
            ));
        }
        if routing
            .max_queue
            .is_some_and(|max| !(1..=MAX_GROUP_QUEUE).contains(&max))
        {
            return Err(crate::error::Error::InvalidInput(format!(
                "max_queue must be between 1 and {MAX_GROUP_QUEUE}"
            )));
        }
        self.accounts.put_group_routing(group, &routing)?;
        Ok(routing)
    }

    // ----- snapshots -----

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

    // ----- internals (called with the desk locked) -----

    /// Takes the conversation off the waiting list. With a status the entry is kept (offered or taken by
    /// that agent), without one it is deleted (abandoned, left as a message).
    pub(super) fn leave_queue(
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
    pub(super) fn route(&self, desk: &mut Desk, outgoing: &mut Outgoing) -> Result<()> {
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
                crate::domain::RoutingMode::LeastLoaded => {
                    routing::least_loaded(desk, &candidates, &staff)
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
    pub(super) fn eligible_agents(
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

    pub(super) fn queue_item(&self, desk: &Desk, conversation: &Conversation) -> Result<QueueItem> {
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
    pub(super) fn estimated_wait(
        &self,
        desk: &Desk,
        group: Option<GroupId>,
        position: usize,
    ) -> u64 {
        let online = self.accounts.online_agents().unwrap_or_default();
        estimated_wait(desk, &online, group, position)
    }

    /// After the queue changed: each queued visitor whose position or wait estimate changed gets it,
    /// and the agents who see a group's queue get the positions that changed in it. One pass over
    /// the queue; nothing is sent for the entries that did not move.
    pub(super) fn queue_positions(&self, desk: &mut Desk, outgoing: &mut Outgoing) {
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

    pub(super) fn visitor_view(&self, conversation: &Conversation) -> VisitorView {
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
            survey: conversation.state == crate::domain::ConversationState::Ended
                && conversation.agent.is_some()
                && self
                    .desk_settings()
                    .survey
                    .offered_after(conversation.ended_by.as_deref()),
        }
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
