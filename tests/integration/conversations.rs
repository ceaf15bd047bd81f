//! The live-chat desk over real WebSockets (tokio-tungstenite) against the server started in-process:
//! queue and manual accept, auto-assignment by load, presence, transfers, invitations and internal
//! notes, end, wrap-up and rating, offline messages, reconnects, uploads, authorization, timers, and a
//! restart in the middle of a conversation.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use kefu::services::assist::{suggest_articles, DeflectionEvent};

use crate::common::{Reply, Session, TestApp, TestDirs, Ws};

/// An app with a real listener, the admin, and the skill group 售后 in `mode`.
pub(crate) async fn desk(mode: &str) -> (TestApp, std::net::SocketAddr, Session, u64) {
    let mut app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let address = app.listen().await;
    let admin = app.admin().await;
    let group = app.skill_group(&admin, "售后", mode).await;
    (app, address, admin, group)
}

/// An agent of `group`, signed in (so online); returns (id, session).
pub(crate) async fn agent(
    app: &TestApp,
    admin: &Session,
    name: &str,
    group: u64,
) -> (u64, Session) {
    let (id, session) = app.create_account(admin, name, &["agent"]).await;
    app.join_group(admin, id, group, name).await;
    (id, session)
}

/// Sets `session`'s presence (`online`, `busy`, `away`, `offline`).
pub(crate) async fn set_presence(app: &TestApp, session: &Session, status: &str) {
    let (code, body) = app
        .json_as(
            Some(session),
            Method::PUT,
            "/api/v1/me/presence",
            json!({ "status": status }),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// POSTs assist feedback as `session`.
async fn feedback(app: &TestApp, session: &Session, request: Value) -> (StatusCode, Value) {
    app.json_as(
        Some(session),
        Method::POST,
        "/api/v1/assist/feedback",
        request,
    )
    .await
}

/// The conversation's messages as its visitor sees them, from the service.
fn visitor_messages(app: &TestApp, id: &str) -> Vec<kefu::domain::Message> {
    app.state
        .conversations
        .messages_after(id, 0, &kefu::services::conversations::Party::Visitor)
        .unwrap()
}

/// POST as a visitor (bearer token optional).
async fn visitor_call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    uri: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some((content_type, bytes)) => builder
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(bytes))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    };
    app.raw(request).await
}

/// Starts a conversation; returns (token, conversation id, response body).
pub(crate) async fn start(
    app: &TestApp,
    group: Option<u64>,
    text: &str,
) -> (String, String, Value) {
    let body = json!({"message": text, "group": group, "page": "https://shop.example/order/42", "identity": {"name": "王女士"}});
    let reply = visitor_call(
        app,
        None,
        Method::POST,
        "/api/v1/visitor/conversations",
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_string();
    let id = reply.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (token, id, reply.body)
}

fn bodies(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn queued_conversations_are_accepted_by_hand_and_messages_flow_both_ways() {
    let (app, address, admin, group) = desk("manual").await;
    let (agent_id, agent_session) = agent(&app, &admin, "xiaowang", group).await;
    let mut desk_socket = Ws::agent(address, &agent_session).await;
    let hello = desk_socket.expect("agent_hello").await;
    assert_eq!(hello["queue"], json!([]));

    let (token, id, started) = start(&app, Some(group), "我的订单还没发货").await;
    assert_eq!(started["conversation"]["state"], "queued");
    let queued = desk_socket.expect("queued").await;
    assert_eq!(queued["item"]["conversation"]["id"], id.as_str());
    assert_eq!(queued["item"]["preview"], "我的订单还没发货");
    assert_eq!(queued["item"]["position"], 1);

    let mut visitor = Ws::visitor(address, &token, 0).await;
    let hello = visitor.expect("hello").await;
    assert_eq!(hello["conversation"]["state"], "queued");
    assert_eq!(bodies(&hello["messages"])[0], "我的订单还没发货");
    let queue = visitor.expect("queue").await;
    assert_eq!(queue["position"], 1);
    assert!(queue["estimated_wait_secs"].as_u64().unwrap() > 0);

    desk_socket
        .send(json!({"type": "accept", "conversation": id, "client_key": "k-accept"}))
        .await;
    let assigned = desk_socket.expect("assigned").await;
    assert_eq!(assigned["conversation"]["agent"], agent_id);
    // The command itself is answered, with its key.
    let done = desk_socket.expect("done").await;
    assert_eq!(
        done,
        json!({"type": "done", "command": "accept", "conversation": id, "client_key": "k-accept"})
    );
    assert!(bodies(&assigned["messages"]).contains(&"我的订单还没发货".to_string()));
    visitor
        .expect_where("message", |frame| {
            frame["message"]["body"] == "客服xiaowang为您服务"
        })
        .await;
    let state = visitor.expect("state").await;
    assert_eq!(state["conversation"]["state"], "active");
    assert_eq!(state["conversation"]["agent_name"], "xiaowang");

    visitor
        .send(json!({"type": "send", "client_key": "v-1", "body": "订单号 20261125001"}))
        .await;
    let ack = visitor.expect("ack").await;
    assert_eq!(ack["client_key"], "v-1");
    let seq = ack["seq"].as_u64().unwrap();
    let received = desk_socket.expect("message").await;
    assert_eq!(received["message"]["body"], "订单号 20261125001");
    assert_eq!(received["message"]["seq"], seq);
    assert_eq!(received["message"]["sender_name"], "王女士");

    desk_socket
        .send(json!({"type": "send", "conversation": id, "client_key": "a-1", "body": "您好，正在为您查询"}))
        .await;
    assert_eq!(desk_socket.expect("ack").await["seq"], seq + 1);
    let reply = visitor.expect("message").await;
    assert_eq!(reply["message"]["body"], "您好，正在为您查询");
    assert_eq!(reply["message"]["kind"], "agent");

    visitor
        .send(json!({"type": "typing", "typing": true}))
        .await;
    let typing = desk_socket.expect("typing").await;
    assert_eq!(
        (typing["from"].as_str(), typing["typing"].as_bool()),
        (Some("visitor"), Some(true))
    );

    // A second agent of the group cannot take it any more.
    let (_, other) = agent(&app, &admin, "xiaoli", group).await;
    let mut other_socket = Ws::agent(address, &other).await;
    other_socket.expect("agent_hello").await;
    other_socket
        .send(json!({"type": "accept", "conversation": id, "client_key": "k-2"}))
        .await;
    let refused = other_socket.expect("error").await;
    assert_eq!(refused["code"], "conversation_taken");
    // A refusal names the command's conversation and key.
    assert_eq!(refused["conversation"], id.as_str());
    assert_eq!(refused["client_key"], "k-2");
}

#[tokio::test]
async fn automatic_routing_balances_load_and_respects_presence_and_capacity() {
    let (app, address, admin, group) = desk("auto").await;
    let (first_id, first) = agent(&app, &admin, "agent1", group).await;
    let (second_id, second) = agent(&app, &admin, "agent2", group).await;
    let mut first_socket = Ws::agent(address, &first).await;
    let mut second_socket = Ws::agent(address, &second).await;
    first_socket.expect("agent_hello").await;
    second_socket.expect("agent_hello").await;

    let mut owners = Vec::new();
    for n in 0..4 {
        app.clock.advance(SignedDuration::from_secs(1));
        let (_, id, _) = start(&app, Some(group), &format!("问题{n}")).await;
        let conversation = app.state.conversations.conversation(&id).unwrap();
        assert_eq!(format!("{:?}", conversation.state), "Active");
        owners.push(conversation.agent.unwrap().0);
    }
    let first_count = owners.iter().filter(|owner| **owner == first_id).count();
    assert_eq!(first_count, 2, "two each: {owners:?}");
    // Ties go to the agent idle longest: they alternate.
    assert_ne!(owners[0], owners[1]);
    first_socket.expect("assigned").await;
    second_socket.expect("assigned").await;

    // Busy takes nothing new.
    set_presence(&app, &second, "busy").await;
    let (_, id, _) = start(&app, Some(group), "忙碌时的问题").await;
    assert_eq!(
        app.state
            .conversations
            .conversation(&id)
            .unwrap()
            .agent
            .unwrap()
            .0,
        first_id
    );

    // Capacity: with a maximum of 3 the first agent is full, the second busy: the next one waits.
    app.json_as(
        Some(&admin),
        Method::PATCH,
        &format!("/api/v1/admin/accounts/{first_id}"),
        json!({"max_concurrent": 3}),
    )
    .await;
    let (_, waiting, started) = start(&app, Some(group), "排队的问题").await;
    assert_eq!(started["conversation"]["state"], "queued");

    // The second agent comes back online and gets it.
    set_presence(&app, &second, "online").await;
    second_socket
        .expect_where("assigned", |frame| {
            frame["conversation"]["id"] == waiting.as_str()
        })
        .await;

    // An agent going offline gives their conversations back to the front of the queue.
    let (status, _) = app
        .json_as(
            Some(&second),
            Method::POST,
            "/api/v1/auth/logout",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    second_socket
        .expect_where("unassigned", |frame| frame["reason"] == "offline")
        .await;
    // The presence change reaches the desk asynchronously.
    let mut state = String::new();
    for _ in 0..100 {
        state = format!(
            "{:?}",
            app.state
                .conversations
                .conversation(&waiting)
                .unwrap()
                .state
        );
        if state == "Queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        state, "Queued",
        "the offline agent's conversation waits again"
    );
    // Waiting since they began: ahead of a conversation that starts now.
    app.clock.advance(SignedDuration::from_secs(60));
    let (_, newest, _) = start(&app, Some(group), "新来的问题").await;
    let snapshot = app
        .state
        .conversations
        .agent_snapshot(kefu::domain::AccountId(first_id))
        .unwrap();
    let queue = serde_json::to_value(&snapshot).unwrap()["queue"].clone();
    let order: Vec<&str> = queue
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["conversation"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(order.len(), 4, "{queue}");
    assert_eq!(order[3], newest.as_str(), "{order:?}");
    assert!(order[..3].contains(&waiting.as_str()));
    assert_eq!(queue[3]["position"], 4);
    let _ = second_id;
}

/// A group in auto mode with one serving agent who already has the visitor's conversation.
pub(crate) struct Served {
    pub(crate) app: TestApp,
    pub(crate) address: std::net::SocketAddr,
    pub(crate) admin: Session,
    pub(crate) group: u64,
    pub(crate) agent_id: u64,
    pub(crate) agent: Session,
    pub(crate) desk_socket: Ws,
    pub(crate) token: String,
    pub(crate) id: String,
    pub(crate) visitor: Ws,
}

pub(crate) async fn served() -> Served {
    let (app, address, admin, group) = desk("auto").await;
    let (agent_id, agent_session) = agent(&app, &admin, "xiaowang", group).await;
    let mut desk_socket = Ws::agent(address, &agent_session).await;
    desk_socket.expect("agent_hello").await;
    let (token, id, started) = start(&app, Some(group), "发票怎么开").await;
    assert_eq!(started["conversation"]["state"], "active");
    desk_socket.expect("assigned").await;
    let mut visitor = Ws::visitor(address, &token, 0).await;
    visitor.expect("hello").await;
    Served {
        app,
        address,
        admin,
        group,
        agent_id,
        agent: agent_session,
        desk_socket,
        token,
        id,
        visitor,
    }
}

#[tokio::test]
async fn transfers_to_an_agent_and_to_a_group_carry_the_note_and_the_history() {
    let mut desk = served().await;
    let (colleague_id, colleague) = agent(&desk.app, &desk.admin, "xiaoli", desk.group).await;
    let mut colleague_socket = Ws::agent(desk.address, &colleague).await;
    colleague_socket.expect("agent_hello").await;

    desk.desk_socket
        .send(json!({"type": "transfer", "conversation": desk.id, "to_agent": colleague_id, "note": "客户要开专票", "reason": "专票由财务专员办理"}))
        .await;
    let offer = colleague_socket.expect("transfer_offered").await;
    assert_eq!(offer["note"], "客户要开专票");
    assert_eq!(offer["from_name"], "xiaowang");
    assert!(bodies(&offer["messages"]).contains(&"发票怎么开".to_string()));
    let notice = desk
        .visitor
        .expect_where("message", |frame| frame["message"]["kind"] == "system")
        .await;
    let text = notice["message"]["body"].as_str().unwrap();
    assert!(
        text.contains("xiaoli")
            && text.contains("专票由财务专员办理")
            && text.contains("预计等待")
            && !text.contains("客户要开专票"),
        "{text}"
    );

    colleague_socket
        .send(json!({"type": "answer_transfer", "conversation": desk.id, "accept": true}))
        .await;
    let assigned = colleague_socket.expect("assigned").await;
    assert_eq!(assigned["conversation"]["agent"], colleague_id);
    // The note stays in the conversation as an internal entry by its sender, before the notice.
    let history = assigned["messages"].as_array().unwrap();
    let note = history
        .iter()
        .position(|message| message["kind"] == "internal")
        .unwrap_or_else(|| panic!("no internal note in {assigned}"));
    assert_eq!(
        history[note]["body"], "转接备注（转给 xiaoli）：客户要开专票",
        "{assigned}"
    );
    assert_eq!(history[note]["agent"], desk.agent_id);
    assert!(
        bodies(&Value::Array(history[note + 1..].to_vec()))
            .iter()
            .any(|body| body.contains("专票由财务专员办理")),
        "the note comes before the visitor's notice: {assigned}"
    );
    assert!(
        visitor_messages(&desk.app, &desk.id)
            .iter()
            .all(|message| !message.body.contains("客户要开专票")),
        "the visitor never gets the note"
    );
    desk.desk_socket
        .expect_where("unassigned", |frame| frame["reason"] == "transferred")
        .await;
    let state = desk.visitor.expect("state").await;
    assert_eq!(state["conversation"]["agent_name"], "xiaoli");

    // The former agent can no longer write to the visitor.
    desk.desk_socket
        .send(json!({"type": "send", "conversation": desk.id, "client_key": "late", "body": "还在吗"}))
        .await;
    assert_eq!(desk.desk_socket.expect("error").await["code"], "forbidden");

    // To a group: its available agent is chosen (here the first agent again); declined, it stays.
    colleague_socket
        .send(json!({"type": "transfer", "conversation": desk.id, "to_group": desk.group, "note": "转回"}))
        .await;
    let offer = desk.desk_socket.expect("transfer_offered").await;
    assert_eq!(
        offer["conversation"]["pending_transfer"]["to_group"],
        desk.group
    );
    desk.desk_socket
        .send(json!({"type": "answer_transfer", "conversation": desk.id, "accept": false}))
        .await;
    let declined = colleague_socket.expect("transfer_declined").await;
    assert_eq!(declined["reason"], "declined");
    assert_eq!(
        desk.app
            .state
            .conversations
            .conversation(&desk.id)
            .unwrap()
            .agent
            .unwrap()
            .0,
        colleague_id
    );

    // A transfer not answered in time returns to its sender.
    colleague_socket
        .send(json!({"type": "transfer", "conversation": desk.id, "to_agent": desk.agent_id, "note": ""}))
        .await;
    desk.desk_socket.expect("transfer_offered").await;
    desk.app.clock.advance(SignedDuration::from_secs(61));
    desk.app.state.conversations.tick().await.unwrap();
    let timed_out = colleague_socket.expect("transfer_declined").await;
    assert_eq!(timed_out["reason"], "timeout");
    // The offer leaves the receiver's list: nobody can accept it any more.
    let withdrawn = desk.desk_socket.expect("unassigned").await;
    assert_eq!(
        (
            withdrawn["conversation"].as_str(),
            withdrawn["reason"].as_str()
        ),
        (Some(desk.id.as_str()), Some("transfer_withdrawn"))
    );

    // Disabled colleagues cannot receive transfers.
    let (disabled_id, _) = agent(&desk.app, &desk.admin, "gone", desk.group).await;
    desk.app
        .json_as(
            Some(&desk.admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{disabled_id}"),
            json!({"disabled": true}),
        )
        .await;
    colleague_socket
        .send(json!({"type": "transfer", "conversation": desk.id, "to_agent": disabled_id, "note": "x"}))
        .await;
    let refused = colleague_socket.expect("error").await;
    assert_eq!(refused["code"], "transfer_target_unavailable");
}

#[tokio::test]
async fn invited_colleagues_see_everything_and_internal_notes_never_reach_the_visitor() {
    let mut desk = served().await;
    let (helper_id, helper) = agent(&desk.app, &desk.admin, "helper", desk.group).await;
    let mut helper_socket = Ws::agent(desk.address, &helper).await;
    helper_socket.expect("agent_hello").await;

    // Before the invitation the colleague may not write notes.
    helper_socket
        .send(json!({"type": "note", "conversation": desk.id, "client_key": "n0", "body": "我来看看"}))
        .await;
    assert_eq!(helper_socket.expect("error").await["code"], "forbidden");

    desk.desk_socket
        .send(json!({"type": "invite", "conversation": desk.id, "agent": helper_id}))
        .await;
    let invited = helper_socket.expect("invited").await;
    assert!(bodies(&invited["messages"]).contains(&"发票怎么开".to_string()));

    helper_socket
        .send(json!({"type": "note", "conversation": desk.id, "client_key": "n1", "body": "内部备注：该客户是VIP"}))
        .await;
    helper_socket.expect("ack").await;
    let note = desk
        .desk_socket
        .expect_where("message", |frame| {
            frame["message"]["kind"] == "internal"
                && frame["message"]["body"] == "内部备注：该客户是VIP"
        })
        .await;
    assert_eq!(note["message"]["agent"], helper_id);
    // An invited colleague cannot write to the visitor.
    helper_socket
        .send(json!({"type": "send", "conversation": desk.id, "client_key": "s1", "body": "hi"}))
        .await;
    assert_eq!(helper_socket.expect("error").await["code"], "forbidden");

    desk.desk_socket
        .send(json!({"type": "send", "conversation": desk.id, "client_key": "a1", "body": "可以开电子发票"}))
        .await;
    let frames = desk.visitor.drain(Duration::from_millis(400)).await;
    let seen: Vec<&str> = frames
        .iter()
        .filter(|frame| frame["type"] == "message")
        .map(|frame| frame["message"]["body"].as_str().unwrap())
        .collect();
    assert!(seen.contains(&"可以开电子发票"), "{frames:?}");
    let everything = serde_json::to_string(&frames).unwrap();
    assert!(
        !everything.contains("内部备注") && !everything.contains("协助"),
        "{everything}"
    );

    // Nor over HTTP, nor on reconnect.
    let reply = visitor_call(
        &desk.app,
        Some(&desk.token),
        Method::GET,
        &format!("/api/v1/conversations/{}/messages", desk.id),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(!reply.body.to_string().contains("内部备注"));
    assert!(reply.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .all(|message| message["kind"] != "internal"));
    let mut again = Ws::visitor(desk.address, &desk.token, 0).await;
    let hello = again.expect("hello").await;
    assert!(!hello.to_string().contains("内部备注"));
    // The serving agent sees the note over HTTP.
    let (status, body) = desk
        .app
        .get_as(
            Some(&desk.agent),
            &format!("/api/v1/conversations/{}/messages", desk.id),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.to_string().contains("内部备注"));
}

#[tokio::test]
async fn ending_asks_for_a_rating_and_leaves_a_wrap_up_pending() {
    let mut desk = served().await;
    desk.desk_socket
        .send(json!({"type": "end", "conversation": desk.id}))
        .await;
    desk.desk_socket.expect("ended").await;
    desk.visitor.expect("survey").await;
    desk.visitor
        .send(json!({"type": "rate", "stars": 5, "comment": "很耐心"}))
        .await;
    desk.visitor.send(json!({"type": "rate", "stars": 1})).await;
    assert_eq!(desk.visitor.expect("error").await["code"], "invalid_input");
    let conversation = desk.app.state.conversations.conversation(&desk.id).unwrap();
    assert_eq!(conversation.rating.as_ref().unwrap().stars, 5);
    assert_eq!(conversation.rating.unwrap().comment, "很耐心");

    // Writing to an ended conversation is refused.
    desk.visitor
        .send(json!({"type": "send", "client_key": "late", "body": "还有个问题"}))
        .await;
    let refused = desk.visitor.expect("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["client_key"].as_str()),
        (Some("conversation_closed"), Some("late"))
    );

    let (_, pending) = desk
        .app
        .get_as(Some(&desk.agent), "/api/v1/conversations/pending")
        .await;
    assert_eq!(pending["wrap_ups"][0]["id"], desk.id.as_str());
    desk.desk_socket
        .send(json!({"type": "wrap_up", "conversation": desk.id, "problem_type": "不存在/的类型", "resolution": "x"}))
        .await;
    assert_eq!(
        desk.desk_socket.expect("error").await["code"],
        "invalid_input"
    );
    let (_, types) = desk
        .app
        .get_as(Some(&desk.agent), "/api/v1/conversations/problem-types")
        .await;
    assert!(types["problem_types"]
        .as_array()
        .unwrap()
        .contains(&json!("发票/开具发票")));
    desk.desk_socket
        .send(json!({"type": "wrap_up", "conversation": desk.id, "problem_type": "发票/开具发票", "resolution": "指导开具电子发票", "tags": ["发票"], "satisfaction": 5}))
        .await;
    let mut wrapped = None;
    for _ in 0..100 {
        wrapped = desk
            .app
            .state
            .conversations
            .conversation(&desk.id)
            .unwrap()
            .wrap_up;
        if wrapped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(wrapped.unwrap().problem_type, "发票/开具发票");
    let (_, pending) = desk
        .app
        .get_as(Some(&desk.agent), "/api/v1/conversations/pending")
        .await;
    assert_eq!(pending["wrap_ups"], json!([]));
}

#[tokio::test]
async fn with_nobody_online_the_visitor_leaves_a_message_that_waits_in_the_workbench() {
    let (app, address, admin, group) = desk("auto").await;
    let (_, agent_session) = agent(&app, &admin, "xiaowang", group).await;
    set_presence(&app, &agent_session, "offline").await;
    let (_, id, started) = start(&app, Some(group), "晚上有人吗？想退货").await;
    assert_eq!(started["conversation"]["state"], "offline_message");
    let texts = bodies(&started["messages"]);
    assert_eq!(texts[0], "晚上有人吗？想退货");
    assert!(texts[1].contains("留下您的问题"), "{texts:?}");
    let (_, pending) = app
        .get_as(Some(&agent_session), "/api/v1/conversations/pending")
        .await;
    assert_eq!(pending["offline_messages"][0]["id"], id.as_str());
    // The visitor may add to the message.
    let token = started["token"].as_str().unwrap().to_string();
    let mut visitor = Ws::visitor(address, &token, 0).await;
    visitor.expect("hello").await;
    visitor
        .send(json!({"type": "send", "client_key": "more", "body": "订单号 123"}))
        .await;
    visitor.expect("ack").await;

    // Outside working hours the same happens, with the group's own notice.
    set_presence(&app, &agent_session, "online").await;
    let (status, _) = app
        .json_as(
            Some(&admin),
            Method::PUT,
            &format!("/api/v1/admin/groups/{group}/routing"),
            // 08:00 UTC on a Wednesday is 16:00 in Shanghai: closed at 09:00-12:00.
            json!({"working_hours": {"time_zone": "Asia/Shanghai", "days": [1,2,3,4,5], "start": "09:00", "end": "12:00"}, "off_hours_message": "我们的工作时间是 9:00-12:00"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, started) = start(&app, Some(group), "在吗").await;
    assert_eq!(started["conversation"]["state"], "offline_message");
    assert!(bodies(&started["messages"]).contains(&"我们的工作时间是 9:00-12:00".to_string()));
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PUT,
            &format!("/api/v1/admin/groups/{group}/routing"),
            json!({"working_hours": {"time_zone": "Nowhere/Land", "days": [1], "start": "09:00", "end": "12:00"}}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
}

#[tokio::test]
async fn a_long_wait_offers_to_leave_a_message() {
    let (app, address, admin, group) = desk("manual").await;
    agent(&app, &admin, "xiaowang", group).await;
    let (token, id, _) = start(&app, Some(group), "排队好久了").await;
    let mut visitor = Ws::visitor(address, &token, 0).await;
    visitor.expect("hello").await;
    app.clock.advance(SignedDuration::from_mins(6));
    app.state.conversations.tick().await.unwrap();
    visitor.expect("queue_timeout").await;
    visitor.send(json!({"type": "leave_message"})).await;
    let state = visitor.expect("state").await;
    assert_eq!(state["conversation"]["state"], "offline_message");
    assert_eq!(
        format!(
            "{:?}",
            app.state.conversations.conversation(&id).unwrap().state
        ),
        "OfflineMessage"
    );
}

#[tokio::test]
async fn resends_are_not_duplicated_and_a_reconnect_gets_exactly_what_was_missed() {
    let mut desk = served().await;
    desk.visitor
        .send(json!({"type": "send", "client_key": "k1", "body": "第一条"}))
        .await;
    let first = desk.visitor.expect("ack").await["seq"].as_u64().unwrap();
    desk.desk_socket
        .expect_where("message", |frame| frame["message"]["body"] == "第一条")
        .await;
    // The same key again (the page did not see the ack): same number, nobody notified twice.
    desk.visitor
        .send(json!({"type": "send", "client_key": "k1", "body": "第一条"}))
        .await;
    assert_eq!(desk.visitor.expect("ack").await["seq"], first);
    let repeats = desk.desk_socket.drain(Duration::from_millis(300)).await;
    assert!(
        repeats.iter().all(|frame| frame["type"] != "message"),
        "{repeats:?}"
    );

    // The visitor drops; the agent writes twice; the visitor comes back with the last number seen.
    drop(desk.visitor);
    for (key, text) in [("a1", "您好"), ("a2", "请提供订单号")] {
        desk.desk_socket
            .send(json!({"type": "send", "conversation": desk.id, "client_key": key, "body": text}))
            .await;
        desk.desk_socket.expect("ack").await;
    }
    let mut back = Ws::visitor(desk.address, &desk.token, first).await;
    let hello = back.expect("hello").await;
    assert_eq!(bodies(&hello["messages"]), ["您好", "请提供订单号"]);
    let seqs: Vec<u64> = hello["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [first + 1, first + 2]);
    // The agent catches up the same way.
    desk.desk_socket
        .send(json!({"type": "sync", "conversation": desk.id, "last_seq": first}))
        .await;
    let history = desk.desk_socket.expect("history").await;
    assert_eq!(bodies(&history["messages"]), ["您好", "请提供订单号"]);
}

#[tokio::test]
async fn bad_messages_and_unknown_conversations_are_refused_without_losing_anything() {
    let mut desk = served().await;
    let long = "长".repeat(5001);
    desk.visitor
        .send(json!({"type": "send", "client_key": "big", "body": long}))
        .await;
    let refused = desk.visitor.expect("error").await;
    assert_eq!(refused["code"], "message_too_long");
    desk.visitor
        .send(json!({"type": "send", "client_key": "empty", "body": "   "}))
        .await;
    assert_eq!(desk.visitor.expect("error").await["code"], "invalid_input");
    desk.visitor.send(json!({"type": "nonsense"})).await;
    assert_eq!(desk.visitor.expect("error").await["code"], "bad_request");
    desk.desk_socket
        .send(json!({"type": "send", "conversation": "c_missing", "client_key": "x", "body": "hi"}))
        .await;
    assert_eq!(
        desk.desk_socket.expect("error").await["code"],
        "conversation_not_found"
    );
    let messages = visitor_messages(&desk.app, &desk.id);
    assert!(messages
        .iter()
        .all(|message| message.body != "   " && message.body.chars().count() <= 5000));
    assert!(messages.iter().any(|message| message.body == "发票怎么开"));

    // Sockets refuse bad credentials before upgrading.
    let forged = format!("ws://{}/ws/visitor?token=v1.forged", desk.address);
    match tokio_tungstenite::connect_async(forged).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("a forged token opened a socket: {:?}", other.map(|_| ())),
    }
    let anonymous = format!("ws://{}/ws/agent", desk.address);
    match tokio_tungstenite::connect_async(anonymous).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED)
        }
        other => panic!("no cookie opened the agent socket: {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn visitors_and_agents_only_reach_their_own_conversations() {
    let mut desk = served().await;
    // The serving agent is busy, so the next conversation waits in the queue.
    set_presence(&desk.app, &desk.agent, "busy").await;
    let (other_token, other_id, started) = start(&desk.app, Some(desk.group), "另一个访客").await;
    assert_eq!(started["conversation"]["state"], "queued");
    // Another visitor's token on this conversation.
    let reply = visitor_call(
        &desk.app,
        Some(&other_token),
        Method::GET,
        &format!("/api/v1/conversations/{}/messages", desk.id),
        None,
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    // An agent outside the conversation and its group.
    let (status, group) = desk
        .app
        .json_as(
            Some(&desk.admin),
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售前"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, outsider) = agent(
        &desk.app,
        &desk.admin,
        "outsider",
        group["id"].as_u64().unwrap(),
    )
    .await;
    let (status, _) = desk
        .app
        .get_as(
            Some(&outsider),
            &format!("/api/v1/conversations/{}/messages", desk.id),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut outsider_socket = Ws::agent(desk.address, &outsider).await;
    outsider_socket.expect("agent_hello").await;
    outsider_socket
        .send(json!({"type": "end", "conversation": desk.id}))
        .await;
    assert_eq!(outsider_socket.expect("error").await["code"], "forbidden");
    outsider_socket
        .send(json!({"type": "accept", "conversation": other_id}))
        .await;
    assert_eq!(outsider_socket.expect("error").await["code"], "forbidden");
    // An editor has no desk at all.
    let (_, editor) = desk
        .app
        .create_account(&desk.admin, "editor2", &["editor"])
        .await;
    let reply = desk
        .app
        .call(Method::GET, "/ws/agent", None, Some(&editor), None)
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Cross-site pages cannot open the agent socket with the cookie.
    let request = Request::builder()
        .uri("/ws/agent")
        .header(header::COOKIE, &desk.agent.cookie)
        .header(header::ORIGIN, "https://evil.example")
        .header(header::HOST, "kefu.example")
        .body(Body::empty())
        .unwrap();
    assert_eq!(desk.app.raw(request).await.status, StatusCode::FORBIDDEN);
    desk.visitor.send(json!({"type": "ping"})).await;
}

#[tokio::test]
async fn uploads_are_checked_stored_by_hash_and_served_only_to_participants() {
    let desk = served().await;
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89".to_vec();
    let upload = |name: &str, bytes: Vec<u8>, token: Option<String>| {
        let app = &desk.app;
        let uri = format!(
            "/api/v1/conversations/{}/files?name={}",
            desk.id,
            crate::common::encode(name)
        );
        async move {
            visitor_call(
                app,
                token.as_deref(),
                Method::POST,
                &uri,
                Some(("application/octet-stream", bytes)),
            )
            .await
        }
    };
    let token = Some(desk.token.clone());
    let stored = upload("../../截图.png", png.clone(), token.clone()).await;
    assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.body);
    assert_eq!(stored.body["name"], "截图.png");
    assert_eq!(stored.body["content_type"], "image/png");
    let hash = stored.body["hash"].as_str().unwrap().to_string();
    // The embedded store keeps the bytes as a file named by their hash (PostgreSQL, in a table).
    assert_eq!(
        desk.app
            .dirs
            .data
            .join("files")
            .join(&hash[..2])
            .join(&hash)
            .exists(),
        desk.app.dirs.postgres.is_none()
    );

    let forged = upload("invoice.pdf", png.clone(), token.clone()).await;
    assert_eq!(
        (forged.status, forged.body["code"].as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("invalid_upload"))
    );
    let exe = upload("tool.exe", b"MZ\x90\x00".to_vec(), token.clone()).await;
    assert_eq!(exe.body["code"], "invalid_upload");
    let dots = upload("..", png.clone(), token.clone()).await;
    assert_eq!(dots.body["code"], "invalid_upload");
    // Above the server's general 4 MiB body limit, within the 10 MiB upload limit.
    let mut large = png.clone();
    large.resize(5 << 20, 0);
    let accepted = upload("scan.png", large, token.clone()).await;
    assert_eq!(accepted.status, StatusCode::CREATED, "{}", accepted.body);
    let mut big = png.clone();
    big.resize((10 << 20) + 1, 0);
    let too_big = upload("big.png", big, token.clone()).await;
    assert_eq!(
        (too_big.status, too_big.body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("upload_too_large"))
    );
    let anonymous = upload("a.png", png.clone(), None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Sent with a message, the agent sees the attachment.
    let mut visitor = Ws::visitor(desk.address, &desk.token, 100).await;
    visitor.expect("hello").await;
    visitor
        .send(json!({"type": "send", "client_key": "img", "body": "", "attachments": [hash]}))
        .await;
    visitor.expect("ack").await;
    visitor
        .send(json!({"type": "send", "client_key": "bad", "body": "x", "attachments": ["0000"]}))
        .await;
    assert_eq!(visitor.expect("error").await["code"], "invalid_upload");

    let path = format!("/api/v1/conversations/{}/files/{hash}", desk.id);
    let (status, _) = desk.app.get_as(Some(&desk.agent), &path).await;
    assert_eq!(status, StatusCode::OK);
    let own = visitor_call(
        &desk.app,
        None,
        Method::GET,
        &format!("{path}?token={}", crate::common::encode(&desk.token)),
        None,
    )
    .await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.headers[header::CONTENT_TYPE], "image/png");
    let (other_token, _, _) = start(&desk.app, Some(desk.group), "别人").await;
    let stranger = visitor_call(&desk.app, Some(&other_token), Method::GET, &path, None).await;
    assert_eq!(stranger.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unanswered_assignments_move_on_and_idle_visitors_are_reminded_then_ended() {
    let mut desk = served().await;
    let (second_id, second) = agent(&desk.app, &desk.admin, "xiaoli", desk.group).await;
    let mut second_socket = Ws::agent(desk.address, &second).await;
    second_socket.expect("agent_hello").await;
    // The first agent never answers.
    desk.app.clock.advance(SignedDuration::from_secs(121));
    desk.app.state.conversations.tick().await.unwrap();
    desk.desk_socket
        .expect_where("unassigned", |frame| frame["reason"] == "unanswered")
        .await;
    second_socket.expect("assigned").await;
    assert_eq!(
        desk.app
            .state
            .conversations
            .conversation(&desk.id)
            .unwrap()
            .agent
            .unwrap()
            .0,
        second_id
    );

    second_socket
        .send(json!({"type": "send", "conversation": desk.id, "client_key": "hi", "body": "您好"}))
        .await;
    second_socket.expect("ack").await;
    desk.app.clock.advance(SignedDuration::from_mins(6));
    desk.app.state.conversations.tick().await.unwrap();
    desk.visitor
        .expect_where("message", |frame| {
            frame["message"]["body"]
                .as_str()
                .unwrap_or_default()
                .contains("还有其他问题")
        })
        .await;
    desk.app.clock.advance(SignedDuration::from_mins(5));
    desk.app.state.conversations.tick().await.unwrap();
    let ended = second_socket.expect("ended").await;
    assert_eq!(ended["ended_by"], "idle");
    let _ = (desk.agent_id, &desk.agent);
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_conversation_loses_nothing_acknowledged() {
    let mut desk = served().await;
    desk.visitor
        .send(json!({"type": "send", "client_key": "before", "body": "重启前的消息"}))
        .await;
    let acked = desk.visitor.expect("ack").await["seq"].as_u64().unwrap();
    let Served {
        app,
        token,
        id,
        agent: agent_session,
        visitor,
        desk_socket,
        ..
    } = desk;
    drop((visitor, desk_socket));
    let dirs = app.shutdown().await;

    let mut app = TestApp::start_signed_out(dirs).await;
    let address = app.listen().await;
    let conversation = app.state.conversations.conversation(&id).unwrap();
    assert_eq!(format!("{:?}", conversation.state), "Active");
    let mut visitor = Ws::visitor(address, &token, 0).await;
    let hello = visitor.expect("hello").await;
    let messages = hello["messages"].as_array().unwrap();
    assert!(messages
        .iter()
        .any(|m| m["body"] == "重启前的消息" && m["seq"] == acked));
    // Sessions survive too; the conversation goes on with new numbers.
    let mut desk_socket = Ws::agent(address, &agent_session).await;
    let hello = desk_socket.expect("agent_hello").await;
    assert_eq!(hello["conversations"][0]["id"], id.as_str());
    visitor
        .send(json!({"type": "send", "client_key": "after", "body": "重启后的消息"}))
        .await;
    assert_eq!(visitor.expect("ack").await["seq"], acked + 1);
    // A resend of the message from before the restart is still recognised.
    visitor
        .send(json!({"type": "send", "client_key": "before", "body": "重启前的消息"}))
        .await;
    assert_eq!(visitor.expect("ack").await["seq"], acked);
}

#[tokio::test]
async fn history_filters_searches_messages_and_exports_transcripts() {
    let mut desk = served().await;
    desk.visitor
        .send(json!({"type": "send", "client_key": "q", "body": "电子发票的抬头写错了，能重开吗"}))
        .await;
    desk.visitor.expect("ack").await;
    desk.desk_socket
        .send(json!({"type": "note", "conversation": desk.id, "client_key": "n", "body": "需要财务审核"}))
        .await;
    desk.desk_socket.expect("ack").await;
    desk.desk_socket
        .send(json!({"type": "end", "conversation": desk.id}))
        .await;
    desk.desk_socket.expect("ended").await;
    desk.desk_socket
        .send(json!({"type": "wrap_up", "conversation": desk.id, "problem_type": "发票/开具发票", "resolution": "已重开"}))
        .await;
    // A second conversation about something else, still open.
    desk.app.clock.advance(SignedDuration::from_mins(1));
    let (_, other, _) = start(&desk.app, Some(desk.group), "快递一直没有更新物流").await;
    for _ in 0..100 {
        if desk
            .app
            .state
            .conversations
            .conversation(&desk.id)
            .unwrap()
            .wrap_up
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let list = |query: &str| {
        let app = &desk.app;
        let session = desk.agent.clone();
        let uri = format!("/api/v1/conversations{query}");
        async move {
            let (status, body) = app.get_as(Some(&session), &uri).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {body}");
            body["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["conversation"]["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list("").await,
        [other.clone(), desk.id.clone()],
        "newest first"
    );
    assert_eq!(list("?state=ended").await, [desk.id.clone()]);
    assert_eq!(
        list(&format!("?q={}", crate::common::encode("发票重开"))).await,
        [desk.id.clone()]
    );
    assert_eq!(
        list(&format!("?q={}", crate::common::encode("物流"))).await,
        [other]
    );
    assert_eq!(
        list(&format!("?q={}", crate::common::encode("财务审核"))).await,
        [desk.id.clone()],
        "notes are searchable by agents"
    );
    assert_eq!(
        list(&format!("?problem_type={}", crate::common::encode("发票"))).await,
        [desk.id.clone()]
    );
    assert_eq!(
        list(&format!("?agent={}&per_page=1&page=2", desk.agent_id)).await,
        [desk.id.clone()]
    );
    assert!(list("?from=2030-01-01T00:00:00Z").await.is_empty());
    let (status, body) = desk
        .app
        .get_as(Some(&desk.agent), "/api/v1/conversations?state=bogus")
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );

    // An agent of another group sees none of them.
    let (status, group) = desk
        .app
        .json_as(
            Some(&desk.admin),
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售前"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, outsider) = agent(
        &desk.app,
        &desk.admin,
        "outsider",
        group["id"].as_u64().unwrap(),
    )
    .await;
    let (_, body) = desk
        .app
        .get_as(Some(&outsider), "/api/v1/conversations")
        .await;
    assert_eq!(body["total"], 0);
    let (status, _) = desk
        .app
        .get_as(
            Some(&outsider),
            &format!("/api/v1/conversations/{}/transcript", desk.id),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, transcript) = desk
        .app
        .get_as(
            Some(&desk.agent),
            &format!("/api/v1/conversations/{}/transcript", desk.id),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(bodies(&transcript["messages"]).contains(&"需要财务审核".to_string()));
    let reply = desk
        .app
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{}/transcript?format=csv", desk.id),
            None,
            Some(&desk.agent),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/csv; charset=utf-8"
    );
    let text = reply.body.as_str().unwrap();
    assert!(text.starts_with('\u{feff}'), "BOM for Excel");
    assert!(text.contains("seq,time,kind,sender,body,attachments"));
    assert!(text.contains("电子发票的抬头写错了，能重开吗"));
}

#[tokio::test]
async fn a_returning_visitor_goes_to_the_agent_who_served_them_last() {
    let (app, address, admin, group) = desk("auto").await;
    let (first_id, first) = agent(&app, &admin, "agent1", group).await;
    let (second_id, second) = agent(&app, &admin, "agent2", group).await;
    let mut first_socket = Ws::agent(address, &first).await;
    let mut second_socket = Ws::agent(address, &second).await;
    first_socket.expect("agent_hello").await;
    second_socket.expect("agent_hello").await;
    let (token, id, _) = start(&app, Some(group), "第一次咨询").await;
    let served_by = app
        .state
        .conversations
        .conversation(&id)
        .unwrap()
        .agent
        .unwrap()
        .0;
    let (served, served_socket) = if served_by == first_id {
        (first_id, &mut first_socket)
    } else {
        (second_id, &mut second_socket)
    };
    served_socket.expect("assigned").await;
    served_socket
        .send(json!({"type": "end", "conversation": id}))
        .await;
    served_socket.expect("ended").await;
    // Load now favours the other agent, but the visitor returns to theirs.
    app.clock.advance(SignedDuration::from_mins(5));
    let body = json!({"message": "我又来了"});
    let reply = visitor_call(
        &app,
        Some(&token),
        Method::POST,
        "/api/v1/visitor/conversations",
        Some(("application/json", body.to_string().into_bytes())),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(
        reply.body["token"],
        token.as_str(),
        "the same visitor token"
    );
    let again = reply.body["conversation"]["id"].as_str().unwrap();
    assert_ne!(again, id);
    assert_eq!(
        app.state
            .conversations
            .conversation(again)
            .unwrap()
            .agent
            .unwrap()
            .0,
        served
    );
}

#[tokio::test]
async fn agents_learn_when_the_visitor_leaves_and_a_queued_visitor_who_never_returns_abandons() {
    let mut desk = served().await;
    drop(desk.visitor);
    desk.desk_socket.expect("visitor_left").await;
    assert_eq!(
        format!(
            "{:?}",
            desk.app
                .state
                .conversations
                .conversation(&desk.id)
                .unwrap()
                .state
        ),
        "Active",
        "an active conversation waits for the visitor's return"
    );

    // Queued, gone, not back within a minute: abandoned.
    set_presence(&desk.app, &desk.agent, "busy").await;
    let (token, id, _) = start(&desk.app, Some(desk.group), "排队中离开").await;
    let mut visitor = Ws::visitor(desk.address, &token, 0).await;
    visitor.expect("hello").await;
    drop(visitor);
    // The server notices the close asynchronously.
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        desk.app.clock.advance(SignedDuration::from_secs(1));
        desk.app.state.conversations.tick().await.unwrap();
        if format!(
            "{:?}",
            desk.app
                .state
                .conversations
                .conversation(&id)
                .unwrap()
                .state
        ) != "Queued"
        {
            break;
        }
    }
    assert_eq!(
        format!(
            "{:?}",
            desk.app
                .state
                .conversations
                .conversation(&id)
                .unwrap()
                .state
        ),
        "Abandoned"
    );
}

fn queue_estimate(app: &TestApp, id: &str) -> u64 {
    let events = app.state.conversations.visitor_snapshot(id, 0).unwrap();
    let events = serde_json::to_value(&events).unwrap();
    let queue = events
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["type"] == "queue")
        .unwrap_or_else(|| panic!("no queue event in {events}"))
        .clone();
    queue["estimated_wait_secs"].as_u64().unwrap()
}

#[tokio::test]
async fn queue_entries_go_from_offered_to_taken_and_waits_are_estimated_from_handling_times() {
    let mut desk = served().await;
    let stored = |app: &TestApp, id: &str| {
        let entries: Vec<kefu::domain::QueueEntry> =
            kefu::storage::ConversationStore::queue_entries(
                &kefu::storage::StoredConversations::new(app.state.accounts.store().clone()),
            )
            .unwrap();
        entries
            .into_iter()
            .find(|entry| entry.conversation == id)
            .unwrap()
    };
    let entry = stored(&desk.app, &desk.id);
    assert_eq!(format!("{:?}", entry.status), "Offered");
    assert_eq!(entry.agent.unwrap().0, desk.agent_id);
    desk.desk_socket
        .send(json!({"type": "send", "conversation": desk.id, "client_key": "hi", "body": "您好"}))
        .await;
    desk.desk_socket.expect("ack").await;
    assert_eq!(format!("{:?}", stored(&desk.app, &desk.id).status), "Taken");

    // One slot: the next visitor waits; no handling time measured yet, so 180 s per slot.
    desk.app
        .json_as(
            Some(&desk.admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{}", desk.agent_id),
            json!({"max_concurrent": 1}),
        )
        .await;
    let (_, second, started) = start(&desk.app, Some(desk.group), "第二位访客").await;
    assert_eq!(started["conversation"]["state"], "queued");
    assert_eq!(queue_estimate(&desk.app, &second), 180);
    // The first conversation took 100 s: the next estimate uses it.
    desk.app.clock.advance(SignedDuration::from_secs(100));
    desk.desk_socket
        .send(json!({"type": "end", "conversation": desk.id}))
        .await;
    desk.desk_socket
        .expect_where("assigned", |frame| {
            frame["conversation"]["id"] == second.as_str()
        })
        .await;
    let (_, third, _) = start(&desk.app, Some(desk.group), "第三位访客").await;
    assert_eq!(queue_estimate(&desk.app, &third), 100);
}

#[tokio::test]
async fn quick_replies_sent_in_a_conversation_fill_variables_and_count_usage() {
    let mut desk = served().await;
    let search = |query: &str| {
        let app = &desk.app;
        let session = desk.agent.clone();
        let uri = format!(
            "/api/v1/quick-replies/search?q={}",
            crate::common::encode(query)
        );
        async move {
            let (status, body) = app.get_as(Some(&session), &uri).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["hits"].as_array().unwrap().clone()
        }
    };
    let welcome = search("/kchyy").await[0].clone();
    assert!(welcome["content"].as_str().unwrap().contains("{访客昵称}"));
    desk.desk_socket
        .send(json!({
            "type": "send", "conversation": desk.id, "client_key": "qr1",
            "body": welcome["content"], "quick_replies": [welcome["id"]],
        }))
        .await;
    desk.desk_socket.expect("ack").await;
    let received = desk
        .visitor
        .expect_where("message", |frame| frame["message"]["kind"] == "agent")
        .await;
    let text = received["message"]["body"].as_str().unwrap();
    assert!(
        text.contains("王女士") && text.contains("xiaowang"),
        "{text}"
    );
    assert!(!text.contains('{'), "{text}");

    // Used replies rise above equally good matches.
    let title_hits: Vec<Value> = search("退款")
        .await
        .into_iter()
        .filter(|hit| hit["matched"] == "title")
        .collect();
    assert!(title_hits.len() >= 2, "{title_hits:?}");
    let last = title_hits.last().unwrap().clone();
    assert_eq!(last["usage"], 0);
    desk.desk_socket
        .send(json!({
            "type": "send", "conversation": desk.id, "client_key": "qr2",
            "body": last["content"], "quick_replies": [last["id"]],
        }))
        .await;
    desk.desk_socket.expect("ack").await;
    let again: Vec<Value> = search("退款")
        .await
        .into_iter()
        .filter(|hit| hit["matched"] == "title")
        .collect();
    assert_eq!(again[0]["id"], last["id"]);
    assert_eq!(again[0]["usage"], 1);
    // A reply the agent may not see cannot be "used".
    desk.desk_socket
        .send(json!({"type": "send", "conversation": desk.id, "client_key": "qr3", "body": "x", "quick_replies": [987654]}))
        .await;
    assert_eq!(
        desk.desk_socket.expect("error").await["code"],
        "quick_reply_not_found"
    );
}

#[tokio::test]
async fn suggestions_follow_visitor_messages_and_feedback_is_counted() {
    let mut desk = served().await;
    desk.visitor
        .send(json!({"type": "send", "client_key": "s1", "body": "我申请了退款，多久到账？"}))
        .await;
    let event = desk.desk_socket.expect("suggestions").await;
    assert_eq!(event["conversation"], desk.id.as_str());
    let suggestions = event["suggestions"].as_array().unwrap();
    let first_article = suggestions
        .iter()
        .find(|suggestion| suggestion["kind"] == "article")
        .unwrap();
    assert_eq!(first_article["id"], "returns/refund");
    assert!(
        first_article["reply"].as_str().unwrap().contains("退款"),
        "{first_article}"
    );
    assert!(!first_article["matched_terms"]
        .as_array()
        .unwrap()
        .is_empty());
    let reply = suggestions
        .iter()
        .find(|suggestion| suggestion["kind"] == "quick_reply")
        .expect("a starter quick reply about refunds");
    assert!(!reply["reply"].as_str().unwrap().contains("{访客昵称}"));

    // A follow-up without the topic still gets refund answers: earlier messages add their keywords.
    desk.visitor
        .send(json!({"type": "send", "client_key": "s2", "body": "那要等几天"}))
        .await;
    let event = desk
        .desk_socket
        .expect_where("suggestions", |frame| {
            frame["seq"].as_u64() > event["seq"].as_u64()
        })
        .await;
    assert!(
        event["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "returns/refund"),
        "{event}"
    );
    // Drafts are never suggested.
    let (status, body) = desk
        .app
        .json_as(
            Some(&desk.agent),
            Method::POST,
            "/api/v1/assist/suggest",
            json!({"text": "以旧换新活动什么时候上线"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["id"] != "returns/trade-in"));
    let (status, body) = desk
        .app
        .json_as(
            Some(&desk.agent),
            Method::POST,
            "/api/v1/assist/suggest",
            json!({"conversation_id": desk.id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == "returns/refund"));
    for bad in [
        json!({"text": "   "}),
        json!({"text": "退".repeat(10_000)}),
        json!({"text": "退款", "conversation_id": desk.id}),
        json!({}),
    ] {
        let (status, _) = desk
            .app
            .json_as(
                Some(&desk.agent),
                Method::POST,
                "/api/v1/assist/suggest",
                bad,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (_, outsider) = desk
        .app
        .create_account(&desk.admin, "outsider", &["agent"])
        .await;
    let (status, _) = desk
        .app
        .json_as(
            Some(&outsider),
            Method::POST,
            "/api/v1/assist/suggest",
            json!({"conversation_id": desk.id}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Feedback, and the adoption figures supervisors see.
    let (status, counts) = feedback(&desk.app, &desk.agent, json!({"kind": "article", "id": "returns/refund", "action": "edited", "conversation_id": desk.id})).await;
    assert_eq!(status, StatusCode::OK, "{counts}");
    assert_eq!(counts["edited"], 1);
    // The adoption remembers the question it answered (the recent visitor messages' words).
    let learned = counts["adoptions"][0]["words"].as_array().unwrap();
    assert!(learned.iter().any(|word| word == "退款"), "{counts}");
    assert!(counts["shown"].as_u64().unwrap() >= 2);
    let (status, _) = feedback(
        &desk.app,
        &desk.agent,
        json!({"kind": "article", "id": "no/such", "action": "sent"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Items the agent may not read answer as if they did not exist: a draft, a colleague's own reply.
    let (status, body) = feedback(
        &desk.app,
        &desk.agent,
        json!({"kind": "article", "id": "returns/trade-in", "action": "sent", "text": "以旧换新"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("article_not_found")),
        "{body}"
    );
    let (status, body) = feedback(
        &desk.app,
        &desk.admin,
        json!({"kind": "article", "id": "returns/trade-in", "action": "dismissed"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the draft exists; an editor may give feedback: {body}"
    );
    let (_, colleague) = desk
        .app
        .create_account(&desk.admin, "tongshi", &["agent"])
        .await;
    let (status, personal) = desk
        .app
        .json_as(
            Some(&colleague),
            Method::POST,
            "/api/v1/quick-replies",
            json!({"scope": {"kind": "personal"}, "title": "我的私人回复", "content": "只给自己用"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{personal}");
    let (status, body) = feedback(
        &desk.app,
        &desk.agent,
        json!({"kind": "quick_reply", "id": personal["id"].to_string(), "action": "sent"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("quick_reply_not_found")),
        "{body}"
    );
    // A question is at most as long as one suggestions are made from.
    let (status, body) = feedback(&desk.app, &desk.agent, json!({"kind": "article", "id": "returns/refund", "action": "sent", "text": "退款".repeat(1001)})).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{body}"
    );
    let (status, _) = desk
        .app
        .get_as(Some(&desk.agent), "/api/v1/assist/adoption")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, adoption) = desk
        .app
        .get_as(Some(&desk.admin), "/api/v1/assist/adoption")
        .await;
    assert_eq!(status, StatusCode::OK);
    let refund = adoption["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["id"] == "returns/refund")
        .unwrap()
        .clone();
    let rate = refund["adoption_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 0.5, "{refund}");
    // Charts name items by their titles, not by ids like `returns/refund` or `41`.
    assert_eq!(refund["title"], "如何申请退款", "{refund}");
    for item in adoption["items"].as_array().unwrap() {
        assert!(
            item.get("title").is_some(),
            "every item carries its title: {item}"
        );
    }
}

#[tokio::test]
async fn visitors_can_help_themselves_before_queueing_and_outcomes_are_counted() {
    let (app, _address, admin, _group) = desk("auto").await;
    let (status, body) = app
        .get_as(
            None,
            &format!(
                "/api/v1/visitor/suggest?q={}",
                crate::common::encode("发票在哪里下载")
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let suggestions = body["suggestions"].as_array().unwrap();
    assert!(suggestions.len() <= 3);
    assert_eq!(suggestions[0]["id"], "invoices/e-invoice");
    let (status, _) = app.get_as(None, "/api/v1/visitor/suggest?q=").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let first = visitor_token(&app).await;
    let second = visitor_token(&app).await;
    // (token, outcome, question, status): each token's outcome counts once per question.
    let posts = [
        (
            Some(first.as_str()),
            "resolved",
            "发票在哪里下载",
            StatusCode::CREATED,
        ),
        (
            Some(first.as_str()),
            "resolved",
            "发票在哪里下载",
            StatusCode::OK,
        ),
        (
            Some(first.as_str()),
            "escalated",
            " 发票在哪里下载 ",
            StatusCode::OK,
        ),
        (
            Some(first.as_str()),
            "escalated",
            "怎么退款",
            StatusCode::CREATED,
        ),
        (
            Some(second.as_str()),
            "resolved",
            "发票在哪里下载",
            StatusCode::CREATED,
        ),
        (None, "resolved", "发票在哪里下载", StatusCode::UNAUTHORIZED),
        (
            Some("v1.not-a-token"),
            "resolved",
            "怎么退款",
            StatusCode::UNAUTHORIZED,
        ),
        (
            Some(first.as_str()),
            "shown",
            "运费险",
            StatusCode::BAD_REQUEST,
        ),
        (
            Some(first.as_str()),
            "resolved",
            "",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (token, outcome, question, expected) in posts {
        let (status, body) = deflection_outcome(&app, token, outcome, question).await;
        assert_eq!(status, expected, "{outcome} for {question:?}: {body}");
    }
    let (_, figures) = app.get_as(Some(&admin), "/api/v1/assist/deflection").await;
    assert_eq!(figures, json!({"shown": 1, "resolved": 2, "escalated": 1}));
}

/// A fresh visitor token from `POST /api/v1/visitors`.
async fn visitor_token(app: &TestApp) -> String {
    let (status, body) = app
        .json_as(None, Method::POST, "/api/v1/visitors", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// Posts a self-service outcome with `token` (none: without one).
async fn deflection_outcome(
    app: &TestApp,
    token: Option<&str>,
    outcome: &str,
    question: &str,
) -> (StatusCode, Value) {
    let body = json!({"outcome": outcome, "question": question}).to_string();
    let reply = visitor_call(
        app,
        token,
        Method::POST,
        "/api/v1/visitor/deflection",
        Some(("application/json", body.into_bytes())),
    )
    .await;
    (reply.status, reply.body)
}

/// Counters are updated atomically: thousands of outcomes and "shown" counts from many threads at
/// once are all counted, and the same outcome posted in parallel under one token counts once.
#[tokio::test]
async fn concurrent_outcomes_and_counts_are_all_counted_and_repeats_once() {
    let app = TestApp::new().await;
    let assist = &app.state.assist;
    let suggestion = suggest_articles(assist.knowledge().index(), "发票 下载", 1)
        .unwrap()
        .into_iter()
        .next()
        .expect("a suggestion for the invoice question");
    const THREADS: usize = 16;
    const EACH: usize = 200;
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let suggestion = suggestion.clone();
            scope.spawn(move || {
                for n in 0..EACH {
                    let token = format!("token-{thread}-{n}");
                    let (counted, _) = assist
                        .record_visitor_outcome(&token, "发票在哪里下载", DeflectionEvent::Resolved)
                        .unwrap();
                    assert!(counted);
                    assist
                        .record_visitor_outcome("one-token", "发票", DeflectionEvent::Escalated)
                        .unwrap();
                    assist.record_deflection(DeflectionEvent::Shown).unwrap();
                    assist
                        .record_shown(std::slice::from_ref(&suggestion))
                        .unwrap();
                }
            });
        }
    });
    let figures = assist.deflection().unwrap();
    let total = (THREADS * EACH) as u64;
    assert_eq!(
        (figures.shown, figures.resolved, figures.escalated),
        (total, total, 1)
    );
    let shown = assist
        .adoption()
        .unwrap()
        .into_iter()
        .find(|item| item.id == suggestion.id)
        .unwrap()
        .counts
        .shown;
    assert_eq!(shown, total);
}

#[tokio::test]
async fn colleagues_are_listed_with_presence_and_load_for_transfers() {
    let desk = served().await;
    let app = &desk.app;
    let (colleague_id, _) = agent(app, &desk.admin, "xiaoli", desk.group).await;
    let (editor_id, editor) = app.create_account(&desk.admin, "bianji", &["editor"]).await;
    let (gone_id, _) = app.create_account(&desk.admin, "lizhi", &["agent"]).await;
    let (status, body) = app
        .json_as(
            Some(&desk.admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{gone_id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, listed) = app.get_as(Some(&desk.agent), "/api/v1/agents").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let agents = listed["agents"].as_array().unwrap();
    let find = |id: u64| agents.iter().find(|agent| agent["id"] == id);
    let serving = find(desk.agent_id).expect("the serving agent is listed");
    assert_eq!(serving["active"], 1, "{serving}");
    assert_eq!(serving["groups"], json!([desk.group]));
    assert_eq!(serving["display_name"], "xiaowang");
    let colleague = find(colleague_id).expect("the colleague is listed");
    assert_eq!(colleague["active"], 0);
    assert_eq!(colleague["presence"]["status"], "online", "{colleague}");
    assert!(find(editor_id).is_none(), "an editor is not at the desk");
    assert!(find(gone_id).is_none(), "a disabled account is not listed");

    let (status, _) = app.get_as(Some(&editor), "/api/v1/agents").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.get_as(None, "/api/v1/agents").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_chat_pages_learn_the_configured_limits_without_signing_in() {
    let app = TestApp::start_configured(TestDirs::with_fixtures(), |config| {
        config.conversations.max_message_chars = 800;
        config.conversations.max_upload_bytes = 2 << 20;
        config.conversations.upload_types = vec!["image/png".into(), "application/pdf".into()];
    })
    .await;
    let (status, limits) = app.get_as(None, "/api/v1/visitor/limits").await;
    assert_eq!(status, StatusCode::OK, "{limits}");
    assert_eq!(
        limits,
        json!({
            "max_message_chars": 800,
            "max_upload_bytes": 2 << 20,
            "upload_types": ["image/png", "application/pdf"],
        })
    );
}

fn state_of(app: &TestApp, id: &str) -> String {
    format!(
        "{:?}",
        app.state.conversations.conversation(id).unwrap().state
    )
}

/// The idle timer counts the visitor's silence towards an agent, not the wait: an offline message
/// taken long after it was left goes on, and so does a refused attempt to take it.
#[tokio::test]
async fn offline_messages_taken_late_or_refused_stay_as_they_should() {
    use kefu::domain::AccountId;
    let (app, _address, admin, group) = desk("manual").await;
    let (agent_id, agent_session) = agent(&app, &admin, "xiaowang", group).await;
    let (outsider_id, _) = app.create_account(&admin, "waibu", &["agent"]).await;
    set_presence(&app, &agent_session, "offline").await;
    let (_, id, started) = start(&app, Some(group), "晚上有人吗？想退货").await;
    assert_eq!(started["conversation"]["state"], "offline_message");

    // Someone outside the group is refused; the message is left as it was.
    let refused = app
        .state
        .conversations
        .accept(AccountId(outsider_id), &id)
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "forbidden");
    assert_eq!(state_of(&app, &id), "OfflineMessage");
    assert!(
        app.state
            .conversations
            .end(&kefu::services::conversations::Party::Visitor, &id)
            .await
            .is_err(),
        "the visitor still cannot end a message left for later"
    );
    let (_, pending) = app
        .get_as(Some(&agent_session), "/api/v1/conversations/pending")
        .await;
    assert_eq!(
        pending["offline_messages"][0]["id"],
        id.as_str(),
        "{pending}"
    );

    // Taken a day later: the conversation is not ended as idle at the next tick.
    app.clock.advance(SignedDuration::from_hours(24));
    app.state
        .conversations
        .accept(AccountId(agent_id), &id)
        .await
        .unwrap();
    app.clock.advance(SignedDuration::from_secs(2));
    app.state.conversations.tick().await.unwrap();
    assert_eq!(state_of(&app, &id), "Active");
    let messages = visitor_messages(&app, &id);
    assert!(
        !messages.iter().any(|m| m.body.contains("自动结束")),
        "no idle reminder or end right after the assignment"
    );
}

/// A queued visitor who never opens the chat page's socket, or whose page does not come back after a
/// restart, is abandoned after a minute instead of holding a place in the queue for ever.
#[tokio::test]
async fn queued_visitors_who_never_connect_are_abandoned_also_after_a_restart() {
    let (app, _address, admin, group) = desk("manual").await;
    let (_, agent_session) = agent(&app, &admin, "xiaowang", group).await;
    set_presence(&app, &agent_session, "online").await;
    let (_, never, _) = start(&app, Some(group), "我只发了这一句").await;
    let (kept_token, kept, _) = start(&app, Some(group), "我一直在").await;
    let (_, restarted, _) = start(&app, Some(group), "重启时我在排队").await;
    let mut app = app;
    let address = app.listen().await;
    let mut kept_page = Ws::visitor(address, &kept_token, 0).await;
    kept_page.expect("hello").await;
    app.clock.advance(SignedDuration::from_secs(30));
    app.state.conversations.tick().await.unwrap();
    assert_eq!(state_of(&app, &never), "Queued", "a minute's grace");
    app.clock.advance(SignedDuration::from_secs(31));
    app.state.conversations.tick().await.unwrap();
    assert_eq!(state_of(&app, &never), "Abandoned");
    assert_eq!(state_of(&app, &kept), "Queued", "a connected visitor waits");
    // `restarted` was not connected either and is abandoned too; start again with `kept` queued.
    assert_eq!(state_of(&app, &restarted), "Abandoned");
    drop(kept_page);
    let dirs = app.shutdown().await;

    let app = TestApp::start_signed_out(dirs).await;
    app.clock.advance(SignedDuration::from_secs(30));
    app.state.conversations.tick().await.unwrap();
    assert_eq!(state_of(&app, &kept), "Queued");
    app.clock.advance(SignedDuration::from_secs(31));
    app.state.conversations.tick().await.unwrap();
    assert_eq!(
        state_of(&app, &kept),
        "Abandoned",
        "no page came back after the restart"
    );
}

/// A disabled agent's conversations go back to the queue; a transfer is not accepted beyond the
/// receiver's limit.
#[tokio::test]
async fn disabling_an_agent_frees_their_conversations_and_transfers_respect_capacity() {
    use kefu::domain::AccountId;
    use kefu::services::conversations::TransferTarget;
    let mut desk = served().await;
    let (second_id, second) = agent(&desk.app, &desk.admin, "xiaoli", desk.group).await;
    let (status, body) = desk
        .app
        .json_as(
            Some(&desk.admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{second_id}"),
            json!({"max_concurrent": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut second_socket = Ws::agent(desk.address, &second).await;
    second_socket.expect("agent_hello").await;
    // xiaoli serves one conversation: full.
    let (_, other, _) = start(&desk.app, Some(desk.group), "第二位访客").await;
    let conversations = &desk.app.state.conversations;
    if conversations.conversation(&other).unwrap().agent != Some(AccountId(second_id)) {
        conversations
            .transfer(
                AccountId(desk.agent_id),
                &other,
                TransferTarget::Agent(AccountId(second_id)),
                "",
                "",
            )
            .await
            .unwrap();
        conversations
            .answer_transfer(AccountId(second_id), &other, true)
            .await
            .unwrap();
    }
    conversations
        .transfer(
            AccountId(desk.agent_id),
            &desk.id,
            TransferTarget::Agent(AccountId(second_id)),
            "发票问题请你跟进",
            "",
        )
        .await
        .unwrap();
    let refused = conversations
        .answer_transfer(AccountId(second_id), &desk.id, true)
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "agent_at_capacity");
    let still = conversations.conversation(&desk.id).unwrap();
    assert_eq!(still.agent, Some(AccountId(desk.agent_id)));
    assert!(still.pending_transfer.is_some(), "the offer stays open");

    // Disabled: xiaoli's conversation goes back to the queue for someone else.
    let (status, body) = desk
        .app
        .json_as(
            Some(&desk.admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{second_id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut freed = false;
    for _ in 0..200 {
        let conversation = conversations.conversation(&other).unwrap();
        if conversation.agent != Some(AccountId(second_id)) {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(freed, "the disabled agent no longer holds the conversation");
    desk.desk_socket.drain(Duration::from_millis(50)).await;
}

/// A socket is authenticated at the handshake but may stay open for hours: each command checks the
/// session and the block list again, so a disabled agent or a blocked visitor is stopped at once.
#[tokio::test]
async fn open_sockets_stop_working_once_the_agent_is_disabled_or_the_visitor_blocked() {
    let mut desk = served().await;
    // Blocked while the chat page is open: the next message is refused and the socket closed.
    let visitor_id = desk
        .app
        .state
        .conversations
        .conversation(&desk.id)
        .unwrap()
        .visitor_id;
    let (status, body) = desk
        .app
        .json_as(
            Some(&desk.admin),
            Method::POST,
            "/api/v1/blocks",
            json!({"visitor_id": visitor_id, "reason": "辱骂客服"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    desk.visitor
        .send(json!({"type": "send", "client_key": "after-block", "body": "我还在说话"}))
        .await;
    let refused = desk.visitor.expect("error").await;
    assert_eq!(refused["code"], "visitor_blocked", "{refused}");
    assert!(desk.visitor.closed_within(Duration::from_secs(2)).await);
    let upload = visitor_call(
        &desk.app,
        Some(&desk.token),
        Method::POST,
        &format!("/api/v1/conversations/{}/files?name=a.txt", desk.id),
        Some(("application/octet-stream", b"hello".to_vec())),
    )
    .await;
    assert_eq!(upload.status, StatusCode::FORBIDDEN, "{}", upload.body);
    assert_eq!(upload.body["code"], "visitor_blocked");
    let messages = visitor_messages(&desk.app, &desk.id);
    assert!(!messages.iter().any(|m| m.body == "我还在说话"));

    // Disabled while the workbench is open: the agent's next command is refused, nothing is sent.
    let (status, body) = desk
        .app
        .json_as(
            Some(&desk.admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{}", desk.agent_id),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    desk.desk_socket
        .send(json!({"type": "send", "conversation": desk.id, "client_key": "k1", "body": "停用后发出的消息"}))
        .await;
    let refused = desk.desk_socket.expect("error").await;
    assert!(
        refused["code"] == "session_expired" || refused["code"] == "account_disabled",
        "{refused}"
    );
    assert!(desk.desk_socket.closed_within(Duration::from_secs(2)).await);
    let messages = visitor_messages(&desk.app, &desk.id);
    assert!(!messages.iter().any(|m| m.body == "停用后发出的消息"));
}

/// The permission of a desk command is checked under the desk lock, on the conversation as it is
/// then: an agent whom a transfer replaced cannot end the conversation or write in it, whatever copy
/// of it their command was checked against before.
#[tokio::test]
async fn commands_are_checked_against_the_conversation_as_it_is_when_they_run() {
    use kefu::domain::{AccountId, ConversationState};
    use kefu::services::conversations::{Party, TransferTarget};
    let desk = served().await;
    let (colleague_id, colleague) = agent(&desk.app, &desk.admin, "xiaoli", desk.group).await;
    let mut colleague_socket = Ws::agent(desk.address, &colleague).await;
    colleague_socket.expect("agent_hello").await;
    let conversations = &desk.app.state.conversations;
    let first = AccountId(desk.agent_id);
    // The check the socket route makes for the first agent's commands: "I serve it".
    let serves = |conversation: &kefu::domain::Conversation| {
        if conversation.agent == Some(first) {
            Ok(())
        } else {
            Err(kefu::Error::Forbidden("not serving".into()))
        }
    };
    let before = conversations.conversation(&desk.id).unwrap();
    assert!(
        serves(&before).is_ok(),
        "checked on the copy, the first agent may end it"
    );
    conversations
        .transfer(
            first,
            &desk.id,
            TransferTarget::Agent(AccountId(colleague_id)),
            "",
            "",
        )
        .await
        .unwrap();
    conversations
        .answer_transfer(AccountId(colleague_id), &desk.id, true)
        .await
        .unwrap();

    let refused = conversations
        .end_checked(&Party::Agent(first), &desk.id, &serves)
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "forbidden");
    let written = conversations
        .send_reporting_new(
            &Party::Agent(first),
            &desk.id,
            Some("late".into()),
            "我来结束吧",
            Vec::new(),
            false,
            &serves,
        )
        .await
        .unwrap_err();
    assert_eq!(written.code().as_str(), "forbidden");
    let now = conversations.conversation(&desk.id).unwrap();
    assert_eq!(now.state, ConversationState::Active);
    assert_eq!(now.agent, Some(AccountId(colleague_id)));
    assert!(!visitor_messages(&desk.app, &desk.id)
        .iter()
        .any(|message| message.body == "我来结束吧"));
}

/// A conversation that ends while a transfer is offered withdraws the offer from its receiver (who
/// could otherwise still click 接受转接 on an ended chat); the sender gets `ended` as the serving agent.
#[tokio::test]
async fn ending_a_conversation_withdraws_the_transfer_offered_for_it() {
    let mut desk = served().await;
    let (colleague_id, colleague) = agent(&desk.app, &desk.admin, "xiaoli", desk.group).await;
    let mut colleague_socket = Ws::agent(desk.address, &colleague).await;
    colleague_socket.expect("agent_hello").await;
    desk.desk_socket
        .send(json!({"type": "transfer", "conversation": desk.id, "to_agent": colleague_id, "note": "专票"}))
        .await;
    colleague_socket.expect("transfer_offered").await;
    desk.visitor.send(json!({"type": "end"})).await;
    let ended = desk.desk_socket.expect("ended").await;
    assert_eq!(ended["conversation"], desk.id.as_str());
    let withdrawn = colleague_socket.expect("unassigned").await;
    assert_eq!(
        (
            withdrawn["conversation"].as_str(),
            withdrawn["reason"].as_str()
        ),
        (Some(desk.id.as_str()), Some("transfer_withdrawn"))
    );
    let refused = desk
        .app
        .state
        .conversations
        .answer_transfer(kefu::domain::AccountId(colleague_id), &desk.id, true)
        .await;
    assert!(refused.is_err(), "the withdrawn offer cannot be accepted");
}
