//! An agent's message from the desk with the quick replies inserted into it. The desk stores the
//! message; the quick-reply service checks the replies, fills their variables and counts their use.
//! Composed here so that neither service needs the other and the socket route only forwards.

use crate::domain::{AccountId, Message, ReplyScope};
use crate::error::Result;
use crate::services::conversations::{Check, ConversationService, Party};
use crate::services::QuickReplyService;

/// What an agent sends in a conversation.
#[derive(Debug, Clone)]
pub struct AgentMessage {
    /// The conversation.
    pub conversation: String,
    /// The page's idempotency key.
    pub client_key: Option<String>,
    /// The text, with the variables of the inserted quick replies still unfilled.
    pub body: String,
    /// Hashes of files uploaded to the conversation.
    pub attachments: Vec<String>,
    /// Quick replies inserted into `body`.
    pub quick_replies: Vec<u64>,
}

/// The agent sending, as far as the message needs them.
pub struct Sender<'a> {
    /// Their account.
    pub agent: AccountId,
    /// Their display name, for `{客服昵称}`.
    pub name: &'a str,
    /// Whether they may read quick replies of a scope (the HTTP layer's access rules decide).
    pub may_read: &'a (dyn Fn(ReplyScope) -> bool + Sync),
}

/// Stores `message` from `sender` once `check` passes and returns it once durable; the inserted quick
/// replies must be readable by the sender, get their variables filled with the visitor's name, the
/// sender's name and the desk's time, and are counted as used once the message is stored.
pub async fn send(
    conversations: &ConversationService,
    replies: &QuickReplyService,
    sender: &Sender<'_>,
    message: AgentMessage,
    check: Check<'_>,
) -> Result<Message> {
    // Checked on the conversation as it is now before anything else is read, so a refused caller
    // learns nothing about files or quick replies; the desk checks again under its lock.
    let current = conversations.conversation(&message.conversation)?;
    check(&current)?;
    let files = conversations.attachments_for(&message.conversation, &message.attachments)?;
    let body = replies.fill_inserted(
        &message.quick_replies,
        sender.may_read,
        &message.body,
        current.visitor_name(),
        sender.name,
        conversations.now(),
    )?;
    let (stored, _) = conversations
        .send_reporting_new(
            &Party::Agent(sender.agent),
            &message.conversation,
            message.client_key,
            &body,
            files,
            false,
            check,
        )
        .await?;
    if !message.quick_replies.is_empty() {
        replies.record_use(sender.agent, &message.quick_replies)?;
    }
    Ok(stored)
}
