//! The desk under concurrent load: frames in seq order on every socket when both sides send at once,
//! queue positions kept current for visitors and agents, suggestions computed once per new message.

use std::sync::atomic::Ordering;
use std::time::Duration;

use kefu::domain::{ConversationState, Message, SenderKind};
use kefu::services::conversations::{VisitorMessageStored, VisitorMessageSubscriber};
use serde_json::{json, Value};

use crate::common::Ws;
use crate::conversations::{agent, desk, served, start, Served};

/// How long a socket may stay silent before a collector gives up.
const QUIET: Duration = Duration::from_secs(10);

/// Reads `socket` until `wanted` messages of `conversation` whose body starts with one of `prefixes`
/// arrived; returns the seq of every message frame of the conversation, in arrival order.
async fn message_seqs(
    mut socket: Ws,
    conversation: String,
    prefixes: &[&str],
    wanted: usize,
) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut seen = 0;
    while seen < wanted {
        let Some(frame) = socket.next_within(QUIET).await else {
            panic!("only {seen} of {wanted} messages arrived; seqs {seqs:?}");
        };
        if frame["type"] != "message" || frame["conversation"] != conversation.as_str() {
            continue;
        }
        seqs.push(frame["message"]["seq"].as_u64().unwrap());
        let body = frame["message"]["body"].as_str().unwrap();
        if prefixes.iter().any(|prefix| body.starts_with(prefix)) {
            seen += 1;
        }
    }
    seqs
}

fn assert_in_order(socket: &str, seqs: &[u64]) {
    for pair in seqs.windows(2) {
        assert!(
            pair[0] < pair[1],
            "{socket}: seq {} arrived after {}; all: {seqs:?}",
            pair[1],
            pair[0]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_sending_at_once_reach_every_socket_in_seq_order() {
    const EACH: usize = 150;
    let Served {
        app: _app,
        address,
        agent: agent_session,
        desk_socket,
        token,
        id,
        visitor,
        ..
    } = served().await;
    // A second page of the visitor and a second tab of the agent only listen.
    let mut second_page = Ws::visitor(address, &token, 0).await;
    second_page.expect("hello").await;
    let mut second_tab = Ws::agent(address, &agent_session).await;
    second_tab.expect("agent_hello").await;

    const BOTH: [&str; 2] = ["访客 ", "客服 "];
    let conversation = id.clone();
    let visitor_side = tokio::spawn(async move {
        let mut visitor = visitor;
        for index in 0..EACH {
            visitor
                .send(json!({"type": "send", "client_key": format!("v{index}"), "body": format!("访客 {index}")}))
                .await;
        }
        message_seqs(visitor, conversation, &BOTH, 2 * EACH).await
    });
    let conversation = id.clone();
    let agent_side = tokio::spawn(async move {
        let mut desk_socket = desk_socket;
        for index in 0..EACH {
            desk_socket
                .send(json!({"type": "send", "conversation": conversation, "client_key": format!("a{index}"), "body": format!("客服 {index}")}))
                .await;
        }
        message_seqs(desk_socket, conversation, &BOTH, 2 * EACH).await
    });
    let page = tokio::spawn(message_seqs(second_page, id.clone(), &BOTH, 2 * EACH));
    let tab = tokio::spawn(message_seqs(second_tab, id.clone(), &BOTH, 2 * EACH));

    for (socket, task) in [
        ("visitor", visitor_side),
        ("agent", agent_side),
        ("second page", page),
        ("second tab", tab),
    ] {
        let seqs = task.await.unwrap();
        assert_in_order(socket, &seqs);
        assert!(seqs.len() >= 2 * EACH, "{socket}: {}", seqs.len());
    }
}

#[tokio::test]
async fn queue_positions_follow_every_change_for_visitors_and_agents() {
    let (app, address, admin, group) = desk("manual").await;
    let (_, first_agent) = agent(&app, &admin, "xiaowang", group).await;
    let (_, second_agent) = agent(&app, &admin, "xiaoli", group).await;
    let mut first_desk = Ws::agent(address, &first_agent).await;
    first_desk.expect("agent_hello").await;
    let mut second_desk = Ws::agent(address, &second_agent).await;
    second_desk.expect("agent_hello").await;

    let (_, first, _) = start(&app, Some(group), "第一个问题").await;
    app.clock.advance(jiff::SignedDuration::from_secs(5));
    let (second_token, second, _) = start(&app, Some(group), "第二个问题").await;
    let queued = second_desk
        .expect_where("queued", |frame| {
            frame["item"]["conversation"]["id"] == second.as_str()
        })
        .await;
    assert_eq!(queued["item"]["position"], 2);
    let mut second_visitor = Ws::visitor(address, &second_token, 0).await;
    let position = second_visitor.expect("queue").await;
    assert_eq!(position["position"], 2);

    first_desk
        .send(json!({"type": "accept", "conversation": first}))
        .await;
    first_desk.expect("assigned").await;

    // Both agents' lists and the waiting visitor learn that the second moved up.
    for socket in [&mut first_desk, &mut second_desk] {
        let moved = socket.expect("queue_positions").await;
        assert_eq!(
            moved["positions"],
            json!([{"conversation": second, "position": 1}])
        );
    }
    let position = second_visitor.expect("queue").await;
    assert_eq!(position["position"], 1);
    // A position that did not change is not sent again.
    let (_, third, _) = start(&app, Some(group), "第三个问题").await;
    let frames: Vec<Value> = second_desk.drain(Duration::from_millis(500)).await;
    let moves: Vec<&Value> = frames
        .iter()
        .filter(|frame| frame["type"] == "queue_positions")
        .collect();
    assert!(
        moves.iter().all(|frame| frame["positions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["conversation"] != second.as_str())),
        "second {second}, third {third}: {moves:?}"
    );
    assert!(frames.iter().any(|frame| frame["type"] == "queued"
        && frame["item"]["conversation"]["id"] == third.as_str()
        && frame["item"]["position"] == 2));
}

#[tokio::test]
async fn a_resent_message_gets_no_second_suggestion() {
    let mut desk = served().await;
    desk.visitor
        .send(json!({"type": "send", "client_key": "r1", "body": "我申请了退款，多久到账？"}))
        .await;
    let first = desk.desk_socket.expect("suggestions").await;
    let shown_after_first = shown_counts(&desk).await;
    assert!(shown_after_first > 0);
    // The page did not see the ack and sends again with the same key.
    desk.visitor
        .send(json!({"type": "send", "client_key": "r1", "body": "我申请了退款，多久到账？"}))
        .await;
    let ack = desk.visitor.expect("ack").await;
    assert_eq!(ack["seq"], first["seq"]);
    let frames = desk.desk_socket.drain(Duration::from_millis(800)).await;
    assert!(
        !frames.iter().any(|frame| frame["type"] == "suggestions"),
        "{frames:?}"
    );
    assert_eq!(shown_counts(&desk).await, shown_after_first);
}

#[tokio::test]
async fn suggestions_are_computed_from_the_messages_the_desk_hands_over() {
    let mut desk = served().await;
    let state = &desk.app.state;
    let conversation = state.conversations.conversation(&desk.id).unwrap();
    let message = |seq: u64, body: &str| Message {
        seq,
        kind: SenderKind::Visitor,
        agent: None,
        sender_name: conversation.visitor_name().to_string(),
        body: body.to_string(),
        attachments: Vec::new(),
        at: state.conversations.now(),
        client_key: None,
    };
    // Messages the store never held: refund answers can only come from what the pump is handed, and
    // the follow-up names no topic, so the earlier message must be part of the question.
    let handed = VisitorMessageStored {
        conversation: conversation.clone(),
        message: message(4242, "那要等几天"),
        earlier: vec![message(4241, "我申请了退款，银行卡支付的")],
    };
    state.suggestions.visitor_message_stored(&handed);
    let event = desk
        .desk_socket
        .expect_where("suggestions", |frame| frame["seq"] == 4242)
        .await;
    assert_eq!(event["conversation"], desk.id.as_str());
    assert!(
        event["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|suggestion| suggestion["id"] == "returns/refund"),
        "{event}"
    );
    // A conversation handed over without a serving agent gets none.
    let skipped = state.suggestions.counts().skipped.load(Ordering::Relaxed);
    let mut queued = conversation;
    queued.agent = None;
    queued.state = ConversationState::Queued;
    state
        .suggestions
        .visitor_message_stored(&VisitorMessageStored {
            conversation: queued,
            ..handed
        });
    let frames = desk.desk_socket.drain(Duration::from_millis(500)).await;
    assert!(
        !frames.iter().any(|frame| frame["type"] == "suggestions"),
        "{frames:?}"
    );
    assert_eq!(
        state.suggestions.counts().skipped.load(Ordering::Relaxed),
        skipped + 1
    );
}

/// Times the suggestions were shown, summed over every item (the adoption figures).
async fn shown_counts(desk: &Served) -> u64 {
    let (status, body) = desk
        .app
        .get_as(Some(&desk.admin), "/api/v1/assist/adoption")
        .await;
    assert_eq!(status, axum::http::StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["shown"].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_full_queue_takes_a_message_for_later_instead_of_growing() {
    let mut app = crate::common::TestApp::start_configured(
        crate::common::TestDirs::with_fixtures(),
        |config| config.conversations.max_queue = 2,
    )
    .await;
    app.listen().await;
    let admin = app.admin().await;
    let group = app.skill_group(&admin, "售后", "manual").await;
    let (agent_id, _) = agent(&app, &admin, "xiaowang", group).await;
    for question in ["第一个问题", "第二个问题"] {
        let (_, _, started) = start(&app, Some(group), question).await;
        assert_eq!(started["conversation"]["state"], "queued");
    }
    let (_, third, started) = start(&app, Some(group), "第三个问题").await;
    assert_eq!(started["conversation"]["state"], "offline_message");
    let notice = started["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|message| message["kind"] == "system")
        .unwrap();
    assert!(
        notice["body"].as_str().unwrap().contains("排队已满"),
        "{notice}"
    );
    // The visitor's question is kept, as a message for later that the group's agents see.
    let (_, pending) = app
        .state
        .conversations
        .pending(kefu::domain::AccountId(agent_id))
        .unwrap();
    assert!(pending.iter().any(|conversation| conversation.id == third));
}

#[tokio::test]
async fn a_command_sent_as_a_json_array_is_refused_and_stores_nothing() {
    let mut desk = served().await;
    let before = desk
        .app
        .state
        .conversations
        .messages_after(&desk.id, 0, &kefu::services::conversations::Party::Visitor)
        .unwrap()
        .len();
    desk.visitor
        .send(json!(["send", "k1", "数组里的消息"]))
        .await;
    let error = desk.visitor.expect("error").await;
    assert_eq!(error["code"], "bad_request", "{error}");
    let after = desk
        .app
        .state
        .conversations
        .messages_after(&desk.id, 0, &kefu::services::conversations::Party::Visitor)
        .unwrap()
        .len();
    assert_eq!(after, before);
}
