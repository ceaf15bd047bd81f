//! Webhooks over the real router and a real receiver on a loopback port: events of a conversation
//! are delivered signed, a failing receiver is retried with backoff, an unreachable one finally fails,
//! and admins see every outcome.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use crate::conversations::{agent, desk, start};
use kefu::domain::AccountId;
use kefu::services::conversations::Party;
use kefu::services::webhooks::{sign, MAX_ATTEMPTS};

const SECRET: &str = "whsec-0123456789abcdef";

/// What the receiver got: headers and body of each request.
pub(crate) type Received = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A receiver that answers the given statuses in turn, then 200.
pub(crate) async fn receiver(mut statuses: Vec<u16>) -> (String, Received) {
    let received: Received = Arc::default();
    statuses.reverse();
    let answers = Arc::new(Mutex::new(statuses));
    let log = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let log = Arc::clone(&log);
            let answers = Arc::clone(&answers);
            async move {
                log.lock().unwrap().push((headers, body));
                let status = answers.lock().unwrap().pop().unwrap_or(200);
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}/hook"), received)
}

fn deliveries_by_event(deliveries: &Value) -> Vec<(String, String, u64)> {
    assert!(deliveries["deliveries"].is_array(), "{deliveries}");
    let mut listed: Vec<(String, String, u64)> = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|delivery| {
            (
                delivery["event"].as_str().unwrap().to_string(),
                delivery["status"].as_str().unwrap().to_string(),
                delivery["attempts"].as_u64().unwrap(),
            )
        })
        .collect();
    listed.sort();
    listed
}

#[tokio::test]
async fn conversation_events_are_delivered_signed_and_retried_with_backoff() {
    let (app, _address, admin, group) = desk("manual").await;
    let (agent_id, agent_session) = agent(&app, &admin, "xiaowang", group).await;
    let (url, received) = receiver(vec![500]).await;

    let (status, body) = app
        .json_as(
            Some(&agent_session),
            Method::POST,
            "/api/v1/admin/webhooks",
            json!({"url": url}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for bad in [
        json!({"url": "ftp://example.com/hook"}),
        json!({"url": url, "events": ["created", "exploded"]}),
        json!({"url": url, "secret": "short"}),
    ] {
        let (status, body) = app
            .json_as(
                Some(&admin),
                Method::POST,
                "/api/v1/admin/webhooks",
                bad.clone(),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_input")),
            "{bad}"
        );
    }
    let (status, webhook) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/webhooks",
            json!({"url": url, "events": ["created", "assigned", "ended", "rated"], "secret": SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    let webhook_id = webhook["id"].as_u64().unwrap();

    let (_, conversation, _) = start(&app, Some(group), "发票抬头写错了").await;
    let desk = &app.state.conversations;
    desk.accept(AccountId(agent_id), &conversation)
        .await
        .unwrap();
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        &conversation,
        None,
        "可以重开",
        vec![],
        false,
    )
    .await
    .unwrap();
    desk.end(&Party::Agent(AccountId(agent_id)), &conversation)
        .await
        .unwrap();
    desk.rate(&conversation, 5, "谢谢").await.unwrap();

    // The first request (created) gets a 500; the others get 200.
    assert_eq!(app.state.webhooks.deliver_due().await.unwrap(), 4);
    let (_, deliveries) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/webhooks/{webhook_id}/deliveries"),
        )
        .await;
    assert_eq!(
        deliveries_by_event(&deliveries),
        [
            ("assigned".into(), "succeeded".into(), 1),
            ("created".into(), "pending".into(), 1),
            ("ended".into(), "succeeded".into(), 1),
            ("rated".into(), "succeeded".into(), 1),
        ]
    );
    let created = deliveries["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|delivery| delivery["event"] == "created")
        .unwrap()
        .clone();
    assert_eq!(created["last_status"], 500);
    assert!(created["last_error"].as_str().unwrap().contains("500"));

    // Every request is signed over its timestamp and body, and says what it carries.
    {
        let received = received.lock().unwrap();
        assert_eq!(received.len(), 4);
        for (headers, body) in received.iter() {
            let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_string();
            let timestamp = header("x-kefu-timestamp");
            assert_eq!(
                header("x-kefu-signature"),
                format!("sha256={}", sign(SECRET, &timestamp, body))
            );
            let payload: Value = serde_json::from_str(body).unwrap();
            assert_eq!(payload["event"], header("x-kefu-event"));
            assert_eq!(payload["delivery"].to_string(), header("x-kefu-delivery"));
            assert_eq!(payload["conversation"]["id"], conversation.as_str());
        }
        let rated = received
            .iter()
            .find(|(headers, _)| headers["x-kefu-event"] == "rated")
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&rated.1).unwrap()["conversation"]["rating"]["stars"],
            5
        );
    }

    // Not due before its backoff; delivered after it.
    app.clock.advance(SignedDuration::from_secs(5));
    assert_eq!(app.state.webhooks.deliver_due().await.unwrap(), 0);
    app.clock.advance(SignedDuration::from_secs(5));
    assert_eq!(app.state.webhooks.deliver_due().await.unwrap(), 1);
    let (_, deliveries) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/webhooks/{webhook_id}/deliveries"),
        )
        .await;
    assert!(deliveries_by_event(&deliveries).contains(&("created".into(), "succeeded".into(), 2)));
    assert_eq!(received.lock().unwrap().len(), 5);
}

#[tokio::test]
async fn an_unreachable_receiver_fails_after_every_attempt_and_can_be_redelivered() {
    let (app, _address, admin, group) = desk("manual").await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (status, webhook) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/webhooks",
            json!({"url": format!("http://{closed}/hook"), "events": ["offline_message", "created"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    assert!(
        webhook["secret"].as_str().unwrap().len() >= 16,
        "a secret is generated"
    );
    let id = webhook["id"].as_u64().unwrap();
    // No agent at work: an offline message (created + offline_message).
    start(&app, Some(group), "晚上联系我").await;
    for _ in 0..MAX_ATTEMPTS {
        assert_eq!(app.state.webhooks.deliver_due().await.unwrap(), 2);
        app.clock.advance(SignedDuration::from_hours(3));
    }
    assert_eq!(app.state.webhooks.deliver_due().await.unwrap(), 0);
    // A day went by: sign in again.
    let admin = app.admin().await;
    let (_, deliveries) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/webhooks/{id}/deliveries"),
        )
        .await;
    assert_eq!(
        deliveries_by_event(&deliveries),
        [
            ("created".into(), "failed".into(), u64::from(MAX_ATTEMPTS)),
            (
                "offline_message".into(),
                "failed".into(),
                u64::from(MAX_ATTEMPTS)
            ),
        ]
    );
    assert!(deliveries["deliveries"][0]["last_error"].is_string());

    // A redelivery starts a fresh round; a paused webhook gets no new events.
    let delivery = deliveries["deliveries"][0]["id"].as_u64().unwrap();
    let reply = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver"),
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.body["status"], "pending", "{}", reply.body);
    assert_eq!(app.state.webhooks.deliver_due().await.unwrap(), 1);
    let (status, paused) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/webhooks/{id}"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(
        (status, paused["enabled"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    start(&app, Some(group), "又来了").await;
    app.clock.advance(SignedDuration::from_hours(3));
    assert_eq!(
        app.state.webhooks.deliver_due().await.unwrap(),
        1,
        "only the redelivered one"
    );
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/webhooks/{id}"),
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (status, _) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/webhooks/{id}/deliveries"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
