//! `GET /metrics`: the scrape is parsed with a Prometheus text parser and its figures are compared
//! with what the test did (a search, conversations, sockets, messages).

use axum::http::{header, Method, StatusCode};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::{json, Value};

use crate::common::{encode, Session, TestApp, TestDirs, Ws};

async fn scrape(app: &TestApp) -> Scrape {
    let reply = app.call(Method::GET, "/metrics", None, None, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let content_type = reply.headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = reply.body.as_str().expect("a text body").to_string();
    Scrape::parse(text.lines().map(|line| Ok(line.to_string()))).expect("a Prometheus scrape")
}

/// The value of the sample `name` whose labels include `labels`; histograms give their count.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|sample| {
            sample.metric == name
                && labels
                    .iter()
                    .all(|(key, wanted)| sample.labels.get(key) == Some(*wanted))
        })
        .map(|sample| match &sample.value {
            Sample::Counter(value) | Sample::Gauge(value) | Sample::Untyped(value) => *value,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |bucket| bucket.count),
            Sample::Summary(_) => panic!("{name} is a summary"),
        })
}

fn must(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(scrape, name, labels).unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// Starts a conversation for `group`; returns (visitor token, conversation id).
async fn start(app: &TestApp, group: u64, text: &str) -> (String, String) {
    let body = json!({"message": text, "group": group, "identity": {"name": "王女士"}});
    let reply = app
        .call(
            Method::POST,
            "/api/v1/visitor/conversations",
            Some(("application/json", body.to_string().into_bytes())),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["conversation"]["state"], "queued");
    (
        reply.body["token"].as_str().unwrap().to_string(),
        reply.body["conversation"]["id"]
            .as_str()
            .unwrap()
            .to_string(),
    )
}

/// Stored messages of a conversation by kind, as its visitor reads them (there are no internal notes).
async fn message_kinds(app: &TestApp, token: &str, id: &str, kinds: &mut Vec<String>) {
    let request = axum::http::Request::builder()
        .uri(format!("/api/v1/conversations/{id}/messages"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let reply = app.raw(request).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    for message in reply.body["messages"].as_array().unwrap() {
        kinds.push(message["kind"].as_str().unwrap().to_string());
    }
}

async fn manual_group(app: &TestApp, admin: &Session) -> u64 {
    let (status, group) = app
        .json_as(
            Some(admin),
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售后"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{group}");
    let id = group["id"].as_u64().unwrap();
    let (status, body) = app
        .json_as(
            Some(admin),
            Method::PUT,
            &format!("/api/v1/admin/groups/{id}/routing"),
            json!({"mode": "manual"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

#[tokio::test]
async fn metrics_count_searches_queues_sockets_and_messages() {
    let mut app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let address = app.listen().await;
    let admin = app.admin().await;
    let group = manual_group(&app, &admin).await;
    let (agent_id, agent) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{agent_id}"),
            json!({"groups": [group]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let before = scrape(&app).await;
    let searches_before = must(&before, "kefu_search_duration_seconds_count", &[]);
    let suggestions_before = must(&before, "kefu_suggest_duration_seconds_count", &[]);
    assert_eq!(
        must(&before, "kefu_messages_total", &[("kind", "visitor")]),
        0.0
    );
    let group_label = group.to_string();
    let this_group = [("group", group_label.as_str()), ("name", "售后")];
    assert_eq!(must(&before, "kefu_queue_length", &this_group), 0.0);

    let (status, _) = app
        .get_as(None, &format!("/api/v1/kb/search?q={}", encode("退款")))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/assist/suggest",
            json!({"text": "怎么退款"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Two visitors wait; the agent takes the second and answers it, the first keeps waiting.
    let mut desk = Ws::agent(address, &agent).await;
    desk.expect("agent_hello").await;
    let (waiting_token, waiting) = start(&app, group, "我的订单还没发货").await;
    let (served_token, served) = start(&app, group, "发票在哪里下载").await;
    let mut visitor = Ws::visitor(address, &served_token, 0).await;
    visitor.expect("hello").await;
    desk.send(json!({"type": "accept", "conversation": served}))
        .await;
    desk.expect("assigned").await;
    desk.send(json!({"type": "send", "conversation": served, "client_key": "a-1", "body": "您好，请稍等"}))
        .await;
    desk.expect("ack").await;
    visitor
        .expect_where("message", |frame| frame["message"]["kind"] == "agent")
        .await;

    let after = scrape(&app).await;
    assert_eq!(
        must(&after, "kefu_search_duration_seconds_count", &[]),
        searches_before + 1.0
    );
    assert!(must(&after, "kefu_suggest_duration_seconds_count", &[]) > suggestions_before);
    assert_eq!(must(&after, "kefu_queue_length", &this_group), 1.0);
    assert_eq!(must(&after, "kefu_active_conversations", &[]), 1.0);
    assert_eq!(
        must(&after, "kefu_connected_sockets", &[("kind", "visitor")]),
        1.0
    );
    assert_eq!(
        must(&after, "kefu_connected_sockets", &[("kind", "agent")]),
        1.0
    );

    let mut kinds = Vec::new();
    message_kinds(&app, &waiting_token, &waiting, &mut kinds).await;
    message_kinds(&app, &served_token, &served, &mut kinds).await;
    for kind in ["visitor", "agent", "system", "internal"] {
        let stored = kinds.iter().filter(|stored| *stored == kind).count() as f64;
        assert_eq!(
            must(&after, "kefu_messages_total", &[("kind", kind)]),
            stored,
            "{kind} messages: {kinds:?}"
        );
    }
    assert_eq!(
        must(&after, "kefu_messages_total", &[("kind", "visitor")]),
        2.0
    );
    assert_eq!(
        must(&after, "kefu_messages_total", &[("kind", "agent")]),
        1.0
    );

    let (_, ready): (StatusCode, Value) = app.get_as(None, "/readyz").await;
    assert_eq!(
        must(&after, "kefu_articles", &[]),
        ready["articles"].as_f64().unwrap()
    );
    assert!(must(&after, "kefu_index_segments", &[]) >= 1.0);
    assert!(must(&after, "kefu_db_size_bytes", &[]) > 0.0);
}
