//! The end of a conversation and what follows it: ending (by the visitor, the agent or a timer), the
//! agent's wrap-up, the visitor's rating, and the wrap-ups and offline messages still waiting for an
//! agent. Kept together because each of them works on a conversation that is over or about to be.

use crate::domain::{AccountId, Conversation, ConversationState, Rating, WrapUp};
use crate::error::{Error, Result};

use super::{
    participants, routing, Check, ConversationService, Desk, DeskEvent, DeskFact, Outgoing, Party,
    WrapUpInput, ANYONE,
};

/// Handling times remembered for the estimate shown to queued visitors.
const RECENT_HANDLING: usize = 50;

impl ConversationService {
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
        if !self.config().problem_types.contains(&input.problem_type) {
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

    /// The visitor rates an ended conversation, once.
    /// `stars` are of the survey's scale (1 to `survey.scale`); they are stored on the five-point
    /// scale. Refused when the survey is not offered after this conversation's kind of end.
    pub async fn rate(&self, conversation_id: &str, stars: u8, comment: &str) -> Result<Rating> {
        let survey = self.desk_settings().survey;
        let stars = survey.to_five_points(stars)?;
        if comment.chars().count() > crate::domain::limits::MAX_RATING_COMMENT_CHARS {
            return Err(Error::InvalidInput(format!(
                "a comment is at most {} characters",
                crate::domain::limits::MAX_RATING_COMMENT_CHARS
            )));
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
            if !survey.offered_after(conversation.ended_by.as_deref()) {
                return Err(Error::InvalidInput(
                    "the survey is not offered for this conversation".into(),
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

    // ----- internals (called with the desk locked) -----

    pub(super) fn end_locked(
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
        let withdrawn = conversation.pending_transfer.take();
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
        let settings = self.desk_settings();
        let text = match ended_by {
            "visitor" => "访客已结束会话。",
            "idle" => settings.messages.idle_end.as_str(),
            _ => settings.messages.ended.as_str(),
        };
        self.system_message(&conversation, text, outgoing)?;
        outgoing.agents(
            participants(&conversation),
            DeskEvent::Ended {
                conversation: conversation_id.to_string(),
                ended_by: ended_by.to_string(),
            },
        );
        // A colleague offered the conversation would otherwise keep an offer nobody can accept.
        if let Some(receiver) = withdrawn.and_then(|transfer| transfer.to_agent) {
            outgoing.agents(
                vec![receiver],
                DeskEvent::Unassigned {
                    conversation: conversation_id.to_string(),
                    reason: "transfer_withdrawn".into(),
                },
            );
        }
        outgoing.visitor(
            conversation_id,
            DeskEvent::State {
                conversation: self.visitor_view(&conversation),
            },
        );
        if conversation.state == ConversationState::Ended
            && conversation.agent.is_some()
            && settings.survey.offered_after(Some(ended_by))
        {
            outgoing.visitor(
                conversation_id,
                DeskEvent::Survey {
                    conversation: conversation_id.to_string(),
                },
            );
        }
        Ok(())
    }
}
