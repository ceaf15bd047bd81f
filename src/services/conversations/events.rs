//! What the server pushes over the WebSockets, and what visitors may see of a conversation. Every
//! frame is a JSON object with a `type`; `docs/API.md` lists them with examples.

use jiff::Timestamp;
use serde::Serialize;

use super::wire::{ConversationView, MessageView};
use crate::domain::{AccountId, ConversationState, SenderKind, Suggestion};

/// A conversation as its visitor sees it: no notes, no invitations, no transfer details.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VisitorView {
    /// Id.
    pub id: String,
    /// State.
    pub state: ConversationState,
    /// The serving agent's display name.
    pub agent_name: Option<String>,
    /// The serving agent's avatar.
    pub agent_avatar: Option<String>,
    /// Creation time.
    pub created: Timestamp,
    /// Whether the visitor already rated it.
    pub rated: bool,
    /// Whether the visitor is asked to rate it (ended, served, and the survey is offered after this
    /// kind of end).
    pub survey: bool,
}

/// A waiting conversation as agents see it in the queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueItem {
    /// The conversation.
    pub conversation: ConversationView,
    /// Position in its group's queue, from 1.
    pub position: usize,
    /// Its first visitor message, as a preview.
    pub preview: String,
}

/// A queued conversation's new place, for the agents' queue lists.
#[derive(Debug, Clone, Serialize)]
pub struct QueuePosition {
    /// The conversation.
    pub conversation: String,
    /// Position in its group's queue, from 1.
    pub position: usize,
}

/// A frame pushed to a visitor or an agent.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    /// First frame to a visitor: the conversation and every message after the `last_seq` they sent.
    Hello {
        /// The conversation.
        conversation: VisitorView,
        /// Missed messages, in order.
        messages: Vec<MessageView>,
    },
    /// First frame to an agent: their open conversations and the queue they may pick from.
    AgentHello {
        /// Conversations the agent serves or was invited to.
        conversations: Vec<ConversationView>,
        /// Waiting conversations of the agent's groups.
        queue: Vec<QueueItem>,
    },
    /// A new message.
    Message {
        /// The conversation.
        conversation: String,
        /// The message.
        message: MessageView,
    },
    /// The sender's message is durable.
    Ack {
        /// The conversation.
        conversation: String,
        /// The key the client sent.
        client_key: Option<String>,
        /// Its sequence number.
        seq: u64,
    },
    /// Missed messages of one conversation, answering an agent's `sync`.
    History {
        /// The conversation.
        conversation: String,
        /// Messages after the given sequence number.
        messages: Vec<MessageView>,
    },
    /// The visitor's place in the queue.
    Queue {
        /// The conversation.
        conversation: String,
        /// Position, from 1.
        position: usize,
        /// Estimated wait from recent waits, in seconds.
        estimated_wait_secs: u64,
    },
    /// The queue waited past its limit: the visitor may leave a message (留言).
    QueueTimeout {
        /// The conversation.
        conversation: String,
        /// What to tell the visitor (the desk's `leave_message_prompt`).
        message: String,
    },
    /// A conversation joined the queue of the agent's groups.
    Queued {
        /// It, with its position.
        item: QueueItem,
    },
    /// Queued conversations of the agent's groups moved (one ahead of them was taken or left).
    QueuePositions {
        /// Only the conversations whose position changed.
        positions: Vec<QueuePosition>,
    },
    /// A conversation left the queue (taken, abandoned, left as a message).
    QueueRemoved {
        /// The conversation.
        conversation: String,
    },
    /// The conversation is now the agent's; the whole history comes along.
    Assigned {
        /// The conversation.
        conversation: ConversationView,
        /// Every message.
        messages: Vec<MessageView>,
    },
    /// The conversation was taken away from the agent (went offline, left unanswered, transferred), or
    /// an offer made to them was withdrawn (the conversation ended, or the offer timed out).
    Unassigned {
        /// The conversation.
        conversation: String,
        /// `offline`, `unanswered`, `transferred` or `transfer_withdrawn`.
        reason: String,
    },
    /// The visitor's view changed (accepted, transferred, ended).
    State {
        /// The conversation.
        conversation: VisitorView,
    },
    /// Someone is typing.
    Typing {
        /// The conversation.
        conversation: String,
        /// `visitor` or `agent`.
        from: SenderKind,
        /// Started or stopped.
        typing: bool,
    },
    /// A colleague hands a conversation over (转接).
    TransferOffered {
        /// The conversation.
        conversation: ConversationView,
        /// The colleague handing over.
        from: AccountId,
        /// Their display name.
        from_name: String,
        /// Their note.
        note: String,
        /// The whole history.
        messages: Vec<MessageView>,
    },
    /// A transfer was declined or timed out; the conversation stays with its sender.
    TransferDeclined {
        /// The conversation.
        conversation: String,
        /// `declined` or `timeout`.
        reason: String,
    },
    /// A colleague asks for help without a transfer.
    Invited {
        /// The conversation.
        conversation: ConversationView,
        /// Who invited.
        by: AccountId,
        /// The whole history.
        messages: Vec<MessageView>,
    },
    /// The visitor closed their last page of the conversation (it stays open: they may come back).
    VisitorLeft {
        /// The conversation.
        conversation: String,
    },
    /// The conversation ended.
    Ended {
        /// The conversation.
        conversation: String,
        /// `visitor`, `agent`, `idle` or `system`.
        ended_by: String,
    },
    /// Ask the visitor to rate the conversation.
    Survey {
        /// The conversation.
        conversation: String,
    },
    /// Suggested replies for the agent, after a visitor message (辅助回复).
    Suggestions {
        /// The conversation.
        conversation: String,
        /// The seq of the visitor message they answer.
        seq: u64,
        /// Articles (best passage) and quick replies, each kind best first.
        suggestions: Vec<Suggestion>,
    },
    /// A command was refused.
    Error {
        /// Stable error code.
        code: &'static str,
        /// Explanation.
        message: String,
        /// The key of the refused command, when it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_key: Option<String>,
        /// The conversation the refused command named.
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation: Option<String>,
    },
    /// An agent's command (accept, transfer, answer_transfer, invite, end, wrap_up) succeeded.
    Done {
        /// The command's `type`.
        command: &'static str,
        /// Its conversation.
        conversation: String,
        /// The key the command carried, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_key: Option<String>,
    },
}
