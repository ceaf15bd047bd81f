//! The API channel: the shop's app, 小程序 or any system brings its users to the desk over REST, as
//! Chatwoot's API inbox does. Its server holds the channel token (`Authorization: Bearer ch1.…`),
//! names each user by its own `user_id` (optionally with an identity signed for a configured site,
//! as the widget does), starts conversations, posts the user's messages and files, and gets the
//! agents' replies, typing, the end and the rating request back as signed webhook deliveries
//! (`outbound.rs`). A conversation is reachable only through the channel that started it.

use serde::{Deserialize, Serialize};

use super::{off_async, ChannelService, Inbound};
use crate::domain::limits::{
    check_length, check_optional_length, MAX_EXTERNAL_ID_CHARS, MAX_URL_CHARS,
    MAX_VISITOR_EMAIL_CHARS, MAX_VISITOR_NAME_CHARS, MAX_VISITOR_PHONE_CHARS,
};
use crate::domain::{Attachment, Channel, ChannelKind, Conversation, Message, VisitorIdentity};
use crate::error::{Error, Result};
use crate::services::conversations::{DeskEvent, MessageView, Party, VisitorView};
use crate::services::visitors::{Arrival, IdentityClaim, Origin};

/// The app's user, as its server names them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiUser {
    /// The app's own id of the user (1-128 characters).
    pub user_id: String,
    /// Nickname shown to agents.
    #[serde(default)]
    pub name: Option<String>,
    /// Phone.
    #[serde(default)]
    pub phone: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// An identity signed for a site of `visitors.sites` (verified as the widget's is).
    #[serde(default)]
    pub identity: Option<IdentityClaim>,
}

/// A user of the channel and their open conversation.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiVisitor {
    /// The app's user id.
    pub user_id: String,
    /// The desk's visitor id.
    pub visitor_id: String,
    /// Their open conversation (queued, served or a message left for later), if any.
    pub conversation: Option<String>,
}

/// Starts a conversation (or adds to the user's open one).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiStart {
    /// The user.
    #[serde(flatten)]
    pub user: ApiUser,
    /// The first message.
    pub message: String,
    /// The screen or page the user is on.
    #[serde(default)]
    pub page: Option<String>,
    /// Idempotency key of the message.
    #[serde(default)]
    pub client_key: Option<String>,
}

/// The conversation as its user sees it, with its messages.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiConversation {
    /// The desk's visitor id.
    pub visitor_id: String,
    /// The conversation.
    pub conversation: VisitorView,
    /// Its messages (no internal notes).
    pub messages: Vec<MessageView>,
}

/// A message from the user.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiMessage {
    /// Text (may be empty with files).
    #[serde(default)]
    pub body: String,
    /// Idempotency key: a resend with the same key is stored once.
    #[serde(default)]
    pub client_key: Option<String>,
    /// Files uploaded to the conversation, by hash.
    #[serde(default)]
    pub attachments: Vec<String>,
}

impl ChannelService {
    /// The user `user` of the API channel, created with a desk visitor when new; a signed identity is
    /// verified and kept on the visitor's profile.
    ///
    /// Returns [`Error::InvalidInput`] for a field over its limit, [`Error::IdentityInvalid`].
    pub fn api_visitor(&self, channel: &Channel, user: &ApiUser) -> Result<ApiVisitor> {
        let user_id = check_user(user)?;
        let visitor = self.visitor(channel, &user_id)?;
        let arrival = self.visitors.check_arrival(Arrival {
            channel: Some(ChannelKind::Api.label().to_string()),
            identity: user.identity.clone(),
            page: None,
        })?;
        self.visitors
            .settle(&visitor.visitor_id, arrival, &Origin::default())?;
        let open = visitor.conversation.filter(|id| {
            self.conversations
                .conversation(id)
                .is_ok_and(|conversation| conversation.state.is_open())
        });
        Ok(ApiVisitor {
            user_id,
            visitor_id: visitor.visitor_id,
            conversation: open,
        })
    }

    /// Starts the user's conversation with `start.message`, or adds it to their open one.
    pub async fn api_start(&self, channel: &Channel, start: ApiStart) -> Result<ApiConversation> {
        let user_id = check_user(&start.user)?;
        check_optional_length("page", start.page.as_deref(), MAX_URL_CHARS)?;
        let inbound = Inbound {
            client_key: start.client_key,
            text: start.message,
            identity: VisitorIdentity {
                name: start.user.name.clone(),
                phone: start.user.phone.clone(),
                email: start.user.email.clone(),
                external_id: Some(user_id.clone()),
            },
            claim: start.user.identity.clone(),
            page: start.page,
            ..Inbound::default()
        };
        if inbound.text.trim().is_empty() {
            return Err(Error::InvalidInput(
                "a conversation starts with a message".into(),
            ));
        }
        let conversation = self.receive(channel, &user_id, inbound).await?;
        let visitor_id = conversation.visitor_id.clone();
        self.api_conversation(channel, &conversation.id, visitor_id)
    }

    /// The conversation as its user sees it, with every message.
    pub fn api_conversation(
        &self,
        channel: &Channel,
        conversation: &str,
        visitor_id: String,
    ) -> Result<ApiConversation> {
        self.own_conversation(channel, conversation)?;
        let snapshot = self.conversations.visitor_snapshot(conversation, 0)?;
        match snapshot.into_iter().next() {
            Some(DeskEvent::Hello {
                conversation,
                messages,
            }) => Ok(ApiConversation {
                visitor_id,
                conversation,
                messages,
            }),
            _ => Err(Error::Internal("a snapshot starts with hello".into())),
        }
    }

    /// The conversation, if this channel started it.
    ///
    /// Returns [`Error::ConversationNotFound`] for another channel's or web conversation.
    pub fn own_conversation(&self, channel: &Channel, conversation: &str) -> Result<Conversation> {
        match self.link(conversation)? {
            Some(link) if link.channel == channel.id => {
                self.conversations.conversation(conversation)
            }
            _ => Err(Error::ConversationNotFound(conversation.to_string())),
        }
    }

    /// A message from the user in their conversation (open, or a message left for later).
    pub async fn api_message(
        &self,
        channel: &Channel,
        conversation: &str,
        message: ApiMessage,
    ) -> Result<Message> {
        let found = off_async(|| self.own_conversation(channel, conversation))?;
        self.visitors.check_blocked(Some(&found.visitor_id), None)?;
        let attachments = self
            .conversations
            .attachments_for(conversation, &message.attachments)?;
        self.conversations
            .send(
                &Party::Visitor,
                conversation,
                message.client_key,
                &message.body,
                attachments,
                false,
            )
            .await
    }

    /// A file from the user, to send in a message by its hash.
    pub async fn api_upload(
        &self,
        channel: &Channel,
        conversation: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Attachment> {
        off_async(|| self.own_conversation(channel, conversation))?;
        self.conversations
            .upload(&Party::Visitor, conversation, name, bytes)
            .await
    }

    /// The user is typing (or stopped).
    pub fn api_typing(&self, channel: &Channel, conversation: &str, typing: bool) -> Result<()> {
        self.own_conversation(channel, conversation)?;
        self.conversations
            .typing(&Party::Visitor, conversation, typing)
    }

    /// The user ends the conversation.
    pub async fn api_end(&self, channel: &Channel, conversation: &str) -> Result<Conversation> {
        off_async(|| self.own_conversation(channel, conversation))?;
        self.conversations.end(&Party::Visitor, conversation).await
    }

    /// The user rates the ended conversation.
    pub async fn api_rate(
        &self,
        channel: &Channel,
        conversation: &str,
        stars: u8,
        comment: &str,
    ) -> Result<crate::domain::Rating> {
        off_async(|| self.own_conversation(channel, conversation))?;
        self.conversations.rate(conversation, stars, comment).await
    }

    /// The messages after `after` (no internal notes).
    pub fn api_messages(
        &self,
        channel: &Channel,
        conversation: &str,
        after: u64,
    ) -> Result<Vec<Message>> {
        self.own_conversation(channel, conversation)?;
        self.conversations
            .messages_after(conversation, after, &Party::Visitor)
    }
}

/// The user's id, trimmed, after the checks of every field.
fn check_user(user: &ApiUser) -> Result<String> {
    let user_id = user.user_id.trim();
    if user_id.is_empty() {
        return Err(Error::InvalidInput("a user needs a `user_id`".into()));
    }
    check_length("user_id", user_id, MAX_EXTERNAL_ID_CHARS)?;
    check_optional_length("name", user.name.as_deref(), MAX_VISITOR_NAME_CHARS)?;
    check_optional_length("phone", user.phone.as_deref(), MAX_VISITOR_PHONE_CHARS)?;
    check_optional_length("email", user.email.as_deref(), MAX_VISITOR_EMAIL_CHARS)?;
    Ok(user_id.to_string())
}
