//! What happened on the desk, for those who keep score or tell others: statistics and webhooks.
//!
//! The desk collects facts while it changes conversations and hands them to its observers just before
//! the flush that makes those changes durable, so an observer's own writes to the same database are
//! durable with them: a figure never counts a change that was lost, nor misses one that was
//! acknowledged.
//!
//! A new visitor message is also announced to its subscribers (suggestions), after it is durable and
//! delivered, so that what they push the agent never arrives before the message it answers.

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::{AccountId, Conversation, GroupId, Message};
use crate::error::Result;

/// How a conversation reached its agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignedVia {
    /// Automatic routing offered it; the agent takes it by answering.
    Routing,
    /// The agent accepted it from the queue or the offline messages.
    Accepted,
    /// The agent accepted a transfer.
    Transfer,
}

/// One thing that happened, with the conversation as it stands after it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeskFact {
    /// A visitor started a conversation (queued, or an offline message).
    Created {
        /// The conversation.
        conversation: Conversation,
    },
    /// Nobody could take it: the visitor's first message is a message left for later (留言), from the
    /// start or after waiting in the queue.
    OfflineMessage {
        /// The conversation.
        conversation: Conversation,
    },
    /// An agent got the conversation.
    Assigned {
        /// The conversation.
        conversation: Conversation,
        /// The agent.
        agent: AccountId,
        /// How.
        via: AssignedVia,
        /// Seconds from the visitor's first message to the first assignment ever; `None` for later
        /// assignments (a requeue, a transfer), so each conversation's wait counts once.
        queue_wait_secs: Option<f64>,
        /// The agent accepted a message left for later (留言).
        answers_offline_message: bool,
    },
    /// An agent's first answer since the assignment: the conversation is taken.
    Taken {
        /// The conversation.
        conversation: Conversation,
        /// The agent.
        agent: AccountId,
        /// Seconds from the assignment to this answer.
        first_response_secs: f64,
        /// The assignment was an automatic offer (manual accepts and transfers are taken at once).
        was_offered: bool,
    },
    /// An agent answered the visitor's waiting message(s).
    Replied {
        /// The conversation.
        conversation: Conversation,
        /// The agent.
        agent: AccountId,
        /// Seconds from the visitor's oldest unanswered message to this answer.
        response_secs: f64,
    },
    /// A transfer was accepted.
    Transferred {
        /// The conversation (already with its new agent and group).
        conversation: Conversation,
        /// The agent who handed it over.
        from: AccountId,
        /// The agent who took it.
        to: AccountId,
        /// The group before the transfer.
        from_group: Option<GroupId>,
    },
    /// Ended by the visitor, the agent or the idle timer.
    Ended {
        /// The conversation.
        conversation: Conversation,
    },
    /// The visitor left while still queued.
    Abandoned {
        /// The conversation.
        conversation: Conversation,
    },
    /// The visitor rated it.
    Rated {
        /// The conversation.
        conversation: Conversation,
    },
    /// The agent wrote the wrap-up.
    WrappedUp {
        /// The conversation.
        conversation: Conversation,
        /// No wrap-up was written before (a later one replaces it).
        first: bool,
    },
    /// Suggestions (辅助回复) were pushed to the serving agent.
    SuggestionsShown {
        /// The agent.
        agent: AccountId,
        /// The conversation's group.
        group: Option<GroupId>,
    },
    /// The agent sent or edited a suggestion.
    SuggestionAdopted {
        /// The agent.
        agent: AccountId,
        /// The conversation's group.
        group: Option<GroupId>,
    },
}

impl DeskFact {
    /// The event name, as webhooks and logs call it.
    pub fn name(&self) -> &'static str {
        match self {
            DeskFact::Created { .. } => "created",
            DeskFact::OfflineMessage { .. } => "offline_message",
            DeskFact::Assigned { .. } => "assigned",
            DeskFact::Taken { .. } => "taken",
            DeskFact::Replied { .. } => "replied",
            DeskFact::Transferred { .. } => "transferred",
            DeskFact::Ended { .. } => "ended",
            DeskFact::Abandoned { .. } => "abandoned",
            DeskFact::Rated { .. } => "rated",
            DeskFact::WrappedUp { .. } => "wrapped_up",
            DeskFact::SuggestionsShown { .. } => "suggestions_shown",
            DeskFact::SuggestionAdopted { .. } => "suggestion_adopted",
        }
    }
}

/// Keeps score of, or passes on, what happens on the desk. Called with the desk unlocked, possibly
/// from several tasks at once; an error is logged and does not undo the change.
pub trait DeskObserver: Send + Sync + std::fmt::Debug {
    /// Takes note of `facts`, which happened at `at`.
    fn observe(&self, at: Timestamp, facts: &[DeskFact]) -> Result<()>;
}

/// A visitor message stored for the first time (a resend is not one), with what answering it needs.
#[derive(Debug, Clone)]
pub struct VisitorMessageStored {
    /// The conversation as stored with the message.
    pub conversation: Conversation,
    /// The message.
    pub message: Message,
    /// The conversation's messages just before it, oldest first: the last few only (see
    /// [`EARLIER_MESSAGES_ANNOUNCED`](super::EARLIER_MESSAGES_ANNOUNCED)), enough for a question that
    /// spans a few visitor messages.
    pub earlier: Vec<Message>,
}

/// Told what the desk sends to a conversation's visitor (messages, state changes, the rating request,
/// queue positions, the agent typing), with the desk unlocked and before the flush that makes the
/// change durable, so writes of its own are durable with it. Channels use it to carry the frames to
/// visitors who are not on a page of ours (an app's server, WeChat).
pub trait VisitorFrameObserver: Send + Sync + std::fmt::Debug {
    /// Takes note of `frames` (conversation id, frame), which were sent at `at`, in order.
    fn visitor_frames(&self, at: Timestamp, frames: &[(String, super::DeskEvent)]) -> Result<()>;
}

/// May refuse an agent's message to the visitor before it is stored (WeChat lets a 公众号 answer only
/// within 48 hours of the visitor's last message, a few messages each time), and counts those
/// stored. Both run under the desk lock, in order, so a count is never read stale.
pub trait ReplyGate: Send + Sync + std::fmt::Debug {
    /// Refuses (`reply_window_closed`) an agent's `message` (not stored yet) that could not reach the
    /// visitor.
    fn check_agent_reply(&self, conversation: &Conversation, message: &Message) -> Result<()>;
    /// An agent's message to the visitor was stored.
    fn agent_reply_stored(&self, conversation: &Conversation, message: &Message) -> Result<()>;
}

/// Told of every message stored for the first time (a resend is not one), once the desk turn that
/// stored it has committed (a turn that fails tells nothing): the cluster's message log copies them
/// to the other nodes' history indexes. Called under the desk lock: never block (queue the work).
pub trait StoredMessageSink: Send + Sync + std::fmt::Debug {
    /// `message` of `conversation` was stored.
    fn stored(&self, conversation: &str, message: &Message);

    /// Whether this sink puts every message it is told into this node's history index (the message
    /// log, whose consumer does): the desk then leaves indexing to it instead of tokenizing each
    /// message a second time under its lock.
    fn feeds_history(&self) -> bool {
        false
    }
}

/// Answers new visitor messages (suggested replies). Told from the sender's task once the message is
/// durable and delivered: it should hand the work elsewhere and return at once.
pub trait VisitorMessageSubscriber: Send + Sync + std::fmt::Debug {
    /// Takes note of a new visitor message.
    fn visitor_message_stored(&self, stored: &VisitorMessageStored);
}
