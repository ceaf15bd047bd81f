//! Conversations and messages as the API shows them: in HTTP answers, in socket frames and in webhook
//! payloads. The stored records ([`Conversation`], [`Message`]) are what the store reads and writes;
//! keeping the API's shape here lets the store change its records (a field renamed, split or added)
//! while clients keep getting the same JSON. The parts both share (state, identity, attachments,
//! transfer, wrap-up, rating) are plain values, as `AccountView` shares `Presence` with `Account`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::{
    AccountId, Attachment, Conversation, ConversationState, GroupId, Message, PendingTransfer,
    Rating, SenderKind, VisitorIdentity, WrapUp,
};

/// A conversation as staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConversationView {
    /// Id, `c_` + random.
    pub id: String,
    /// The visitor.
    pub visitor_id: String,
    /// What the visitor told about themselves.
    pub identity: VisitorIdentity,
    /// Channel, e.g. `web`.
    pub channel: String,
    /// The page the visitor was on.
    pub page: Option<String>,
    /// The skill group wanted; `None` for any agent.
    pub group: Option<GroupId>,
    /// State.
    pub state: ConversationState,
    /// The serving agent.
    pub agent: Option<AccountId>,
    /// Colleagues invited to help (see everything, write internal notes).
    pub invited: BTreeSet<AccountId>,
    /// A transfer waiting for its receiver.
    pub pending_transfer: Option<PendingTransfer>,
    /// Creation time.
    pub created: Timestamp,
    /// When the current agent was assigned.
    pub assigned_at: Option<Timestamp>,
    /// First agent message after the assignment (unanswered-assignment timer).
    pub answered_at: Option<Timestamp>,
    /// Last visitor message, or the last assignment if later: where the idle timer starts.
    pub last_visitor_activity: Timestamp,
    /// Whether the idle reminder was sent since the visitor's last message.
    pub idle_reminded: bool,
    /// End time.
    pub ended_at: Option<Timestamp>,
    /// Who ended it: `visitor`, `agent` or `idle`.
    pub ended_by: Option<String>,
    /// The agent's summary.
    pub wrap_up: Option<WrapUp>,
    /// The visitor's rating.
    pub rating: Option<Rating>,
    /// The first assignment ever; the time from `created` to it is the conversation's queue wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_assigned_at: Option<Timestamp>,
    /// The visitor's oldest message no agent has answered yet; an agent's reply measures its response
    /// time from here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_reply_since: Option<Timestamp>,
}

impl From<Conversation> for ConversationView {
    fn from(conversation: Conversation) -> Self {
        // Taken apart field by field, so a field added to the stored record stops the build here
        // until someone decides whether the API shows it.
        let Conversation {
            id,
            visitor_id,
            identity,
            channel,
            page,
            group,
            state,
            agent,
            invited,
            pending_transfer,
            created,
            assigned_at,
            answered_at,
            last_visitor_activity,
            idle_reminded,
            ended_at,
            ended_by,
            wrap_up,
            rating,
            first_assigned_at,
            awaiting_reply_since,
        } = conversation;
        ConversationView {
            id,
            visitor_id,
            identity,
            channel,
            page,
            group,
            state,
            agent,
            invited,
            pending_transfer,
            created,
            assigned_at,
            answered_at,
            last_visitor_activity,
            idle_reminded,
            ended_at,
            ended_by,
            wrap_up,
            rating,
            first_assigned_at,
            awaiting_reply_since,
        }
    }
}

impl From<&Conversation> for ConversationView {
    fn from(conversation: &Conversation) -> Self {
        conversation.clone().into()
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    /// Position in the conversation, from 1, without gaps.
    pub seq: u64,
    /// Who wrote it.
    pub kind: SenderKind,
    /// The agent who wrote it (agent and internal messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<AccountId>,
    /// Name shown with the message.
    pub sender_name: String,
    /// Text.
    pub body: String,
    /// Files.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// When it was stored.
    pub at: Timestamp,
    /// The sender's idempotency key, so a resend is recognised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

impl From<Message> for MessageView {
    fn from(message: Message) -> Self {
        // Field by field for the same reason as the conversation's.
        let Message {
            seq,
            kind,
            agent,
            sender_name,
            body,
            attachments,
            at,
            client_key,
        } = message;
        MessageView {
            seq,
            kind,
            agent,
            sender_name,
            body,
            attachments,
            at,
            client_key,
        }
    }
}

impl From<&Message> for MessageView {
    fn from(message: &Message) -> Self {
        message.clone().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    /// A conversation with every field filled.
    fn full_conversation() -> Conversation {
        Conversation {
            id: "c_Hk2pQ9sLm4Xw7TbA".into(),
            visitor_id: "v_Pq4sLm9TzXa2".into(),
            identity: VisitorIdentity {
                name: Some("王女士".into()),
                phone: Some("13800000000".into()),
                email: None,
                external_id: Some("u10086".into()),
            },
            channel: "web".into(),
            page: Some("https://shop.example/order/42".into()),
            group: Some(GroupId(3)),
            state: ConversationState::Ended,
            agent: Some(AccountId(5)),
            invited: [AccountId(9), AccountId(7)].into(),
            pending_transfer: Some(PendingTransfer {
                from: AccountId(5),
                to_group: None,
                to_agent: Some(AccountId(9)),
                note: "客户要开专票".into(),
                at: at("2026-11-25T08:44:00Z"),
            }),
            created: at("2026-11-25T08:40:00Z"),
            assigned_at: Some(at("2026-11-25T08:40:02Z")),
            answered_at: Some(at("2026-11-25T08:40:30Z")),
            last_visitor_activity: at("2026-11-25T08:43:10Z"),
            idle_reminded: true,
            ended_at: Some(at("2026-11-25T08:50:00Z")),
            ended_by: Some("agent".into()),
            wrap_up: Some(WrapUp {
                problem_type: "发票/开具发票".into(),
                resolution: "指导开具电子发票".into(),
                tags: vec!["发票".into()],
                satisfaction: Some(5),
                by: AccountId(5),
                at: at("2026-11-25T08:51:00Z"),
            }),
            rating: Some(Rating {
                stars: 5,
                comment: "很耐心".into(),
                at: at("2026-11-25T08:50:30Z"),
            }),
            first_assigned_at: Some(at("2026-11-25T08:40:02Z")),
            awaiting_reply_since: Some(at("2026-11-25T08:43:10Z")),
        }
    }

    /// A conversation with every optional field empty.
    fn bare_conversation() -> Conversation {
        Conversation {
            id: "c_T0aWm3Qe9rLx5BvN".into(),
            visitor_id: "v_Zr8uXn1Kb4Qs".into(),
            identity: VisitorIdentity::default(),
            channel: "web".into(),
            page: None,
            group: None,
            state: ConversationState::Queued,
            agent: None,
            invited: BTreeSet::new(),
            pending_transfer: None,
            created: at("2026-11-25T09:00:00Z"),
            assigned_at: None,
            answered_at: None,
            last_visitor_activity: at("2026-11-25T09:00:00Z"),
            idle_reminded: false,
            ended_at: None,
            ended_by: None,
            wrap_up: None,
            rating: None,
            first_assigned_at: None,
            awaiting_reply_since: None,
        }
    }

    const FULL_CONVERSATION_JSON: &str = concat!(
        r#"{"id":"c_Hk2pQ9sLm4Xw7TbA","visitor_id":"v_Pq4sLm9TzXa2","#,
        r#""identity":{"name":"王女士","phone":"13800000000","email":null,"external_id":"u10086"},"#,
        r#""channel":"web","page":"https://shop.example/order/42","group":3,"state":"ended","#,
        r#""agent":5,"invited":[7,9],"#,
        r#""pending_transfer":{"from":5,"to_group":null,"to_agent":9,"note":"客户要开专票","at":"2026-11-25T08:44:00Z"},"#,
        r#""created":"2026-11-25T08:40:00Z","assigned_at":"2026-11-25T08:40:02Z","#,
        r#""answered_at":"2026-11-25T08:40:30Z","last_visitor_activity":"2026-11-25T08:43:10Z","#,
        r#""idle_reminded":true,"ended_at":"2026-11-25T08:50:00Z","ended_by":"agent","#,
        r#""wrap_up":{"problem_type":"发票/开具发票","resolution":"指导开具电子发票","tags":["发票"],"satisfaction":5,"by":5,"at":"2026-11-25T08:51:00Z"},"#,
        r#""rating":{"stars":5,"comment":"很耐心","at":"2026-11-25T08:50:30Z"},"#,
        r#""first_assigned_at":"2026-11-25T08:40:02Z","awaiting_reply_since":"2026-11-25T08:43:10Z"}"#,
    );

    /// Empty optionals are `null`, but the two added later are left out, as they always were.
    const BARE_CONVERSATION_JSON: &str = concat!(
        r#"{"id":"c_T0aWm3Qe9rLx5BvN","visitor_id":"v_Zr8uXn1Kb4Qs","#,
        r#""identity":{"name":null,"phone":null,"email":null,"external_id":null},"#,
        r#""channel":"web","page":null,"group":null,"state":"queued","agent":null,"invited":[],"#,
        r#""pending_transfer":null,"created":"2026-11-25T09:00:00Z","assigned_at":null,"#,
        r#""answered_at":null,"last_visitor_activity":"2026-11-25T09:00:00Z","idle_reminded":false,"#,
        r#""ended_at":null,"ended_by":null,"wrap_up":null,"rating":null}"#,
    );

    fn agent_message() -> Message {
        Message {
            seq: 8,
            kind: SenderKind::Agent,
            agent: Some(AccountId(5)),
            sender_name: "小美".into(),
            body: "您好，这是电子发票的开具入口".into(),
            attachments: vec![Attachment {
                hash: "9c1e5b7d".into(),
                name: "截图.png".into(),
                content_type: "image/png".into(),
                size: 48213,
            }],
            at: at("2026-11-25T08:42:00Z"),
            client_key: Some("a-7f3c".into()),
        }
    }

    fn visitor_message() -> Message {
        Message {
            seq: 9,
            kind: SenderKind::Visitor,
            agent: None,
            sender_name: "访客".into(),
            body: "谢谢".into(),
            attachments: Vec::new(),
            at: at("2026-11-25T08:43:10Z"),
            client_key: None,
        }
    }

    const AGENT_MESSAGE_JSON: &str = concat!(
        r#"{"seq":8,"kind":"agent","agent":5,"sender_name":"小美","body":"您好，这是电子发票的开具入口","#,
        r#""attachments":[{"hash":"9c1e5b7d","name":"截图.png","content_type":"image/png","size":48213}],"#,
        r#""at":"2026-11-25T08:42:00Z","client_key":"a-7f3c"}"#,
    );

    /// `agent`, `attachments` and `client_key` are left out when empty.
    const VISITOR_MESSAGE_JSON: &str = r#"{"seq":9,"kind":"visitor","sender_name":"访客","body":"谢谢","at":"2026-11-25T08:43:10Z"}"#;

    fn wire<V: Serialize>(view: V) -> String {
        serde_json::to_string(&view).unwrap()
    }

    #[test]
    fn conversations_reach_the_wire_as_the_api_documents_them() {
        assert_eq!(
            wire(ConversationView::from(full_conversation())),
            FULL_CONVERSATION_JSON
        );
        assert_eq!(
            wire(ConversationView::from(&bare_conversation())),
            BARE_CONVERSATION_JSON
        );
    }

    #[test]
    fn messages_reach_the_wire_as_the_api_documents_them() {
        assert_eq!(wire(MessageView::from(agent_message())), AGENT_MESSAGE_JSON);
        assert_eq!(
            wire(MessageView::from(&visitor_message())),
            VISITOR_MESSAGE_JSON
        );
    }

    /// Records written before the wire types existed are the API's JSON of that time: the store must
    /// keep reading them, whatever the wire types become.
    #[test]
    fn records_stored_before_the_split_still_read() {
        let read = |json: &str| serde_json::from_str::<Conversation>(json).unwrap();
        assert_eq!(read(FULL_CONVERSATION_JSON), full_conversation());
        assert_eq!(read(BARE_CONVERSATION_JSON), bare_conversation());
        let read = |json: &str| serde_json::from_str::<Message>(json).unwrap();
        assert_eq!(read(AGENT_MESSAGE_JSON), agent_message());
        assert_eq!(read(VISITOR_MESSAGE_JSON), visitor_message());
    }
}
