//! The live-chat desk over real WebSockets (tokio-tungstenite) against the server started in-process:
//! queue and manual accept, auto-assignment by load, presence, transfers, invitations and internal
//! notes, end, wrap-up and rating, offline messages, reconnects, uploads, authorization, timers, and a
//! restart in the middle of a conversation.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use crate::common::{Reply, Session, TestApp, TestDirs, Ws};

/// An app with a real listener, the admin, and the skill group 售后 in `mode`.
async fn desk(mode: &str) -> (TestApp, std::net::SocketAddr, Session, u64) {
    let mut app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let address = app.listen().await;
    let admin = app.admin().await;
    let (status, group) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售后"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let group_id = group["id"].as_u64().unwrap();
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PUT,
            &format!("/api/v1/admin/groups/{group_id}/routing"),
            json!({"mode": mode}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (app, address, admin, group_id)
}

/// An agent of `group`, signed in (so online); returns (id, session).
async fn agent(app: &TestApp, admin: &Session, name: &str, group: u64) -> (u64, Session) {
    let (id, session) = app.create_account(admin, name, &["agent"]).await;
    let (status, body) = app
        .json_as(
            Some(admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{id}"),
            json!({"groups": [group], "display_name": name}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (id, session)
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
async fn start(app: &TestApp, group: Option<u64>, text: &str) -> (String, String, Value) {
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
        .send(json!({"type": "accept", "conversation": id}))
        .await;
    let assigned = desk_socket.expect("assigned").await;
    assert_eq!(assigned["conversation"]["agent"], agent_id);
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
        .send(json!({"type": "accept", "conversation": id}))
        .await;
    let refused = other_socket.expect("error").await;
    assert_eq!(refused["code"], "conversation_taken");
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
    let (status, _) = app
        .json_as(
            Some(&second),
            Method::PUT,
            "/api/v1/me/presence",
            json!({"status": "busy"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
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
    app.json_as(
        Some(&second),
        Method::PUT,
        "/api/v1/me/presence",
        json!({"status": "online"}),
    )
    .await;
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
