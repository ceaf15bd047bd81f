//! Workbench statistics: a scripted day of desk events, replayed against the real services with a
//! manual clock, then every figure read back over HTTP, before and after a restart.

use axum::http::{Method, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use crate::common::{Session, TestApp, Ws};
use crate::conversations::{agent, desk, set_presence, start};
use kefu::domain::AccountId;
use kefu::services::conversations::{Party, TransferTarget, WrapUpInput};

fn later(app: &TestApp, seconds: i64) {
    app.clock.advance(SignedDuration::from_secs(seconds));
}

fn wrap_up() -> WrapUpInput {
    WrapUpInput {
        problem_type: "售后/退货退款".into(),
        resolution: "已退款".into(),
        tags: vec![],
        satisfaction: None,
    }
}

fn row(summary: &Value, id: u64) -> &Value {
    summary["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["id"] == id)
        .unwrap_or_else(|| panic!("no row {id} in {summary}"))
}

fn assert_close(figures: &Value, field: &str, expected: Option<f64>) {
    match expected {
        None => assert!(figures[field].is_null(), "{field}: {figures}"),
        Some(expected) => {
            let actual = figures[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} missing in {figures}"));
            assert!(
                (actual - expected).abs() < 1e-6,
                "{field}: {actual} != {expected}"
            );
        }
    }
}

/// Counts as integers, averages and rates as optional floats.
struct Expected {
    counts: [(&'static str, u64); 9],
    averages: [(&'static str, Option<f64>); 8],
}

fn check(figures: &Value, expected: &Expected) {
    for (field, count) in expected.counts {
        assert_eq!(figures[field], count, "{field}: {figures}");
    }
    for (field, value) in expected.averages {
        assert_close(figures, field, value);
    }
}

async fn summary(app: &TestApp, session: &Session, query: &str) -> Value {
    let (status, body) = app
        .get_as(Some(session), &format!("/api/v1/stats/summary?{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_scripted_day_gives_every_figure_and_the_figures_survive_a_restart() {
    let (app, address, admin, group) = desk("manual").await;
    let (a, a_session) = agent(&app, &admin, "xiaowang", group).await;
    let (b, _b_session) = agent(&app, &admin, "xiaoli", group).await;
    let desk = &app.state.conversations;
    let (a_id, b_id) = (AccountId(a), AccountId(b));

    // Yesterday (the clock starts at 16:00 in Asia/Shanghai): one conversation, 20 s in the queue.
    later(&app, -86_400);
    let (_, c0, _) = start(&app, Some(group), "昨天的问题").await;
    later(&app, 20);
    desk.accept(a_id, &c0).await.unwrap();
    later(&app, 5);
    desk.end(&Party::Agent(a_id), &c0).await.unwrap();
    later(&app, 86_400 - 25);

    // C1: 30 s in the queue, accepted by A, answered, transferred to B, ended by B, rated 4 stars.
    let (v1_token, c1, _) = start(&app, Some(group), "我申请了退款，多久到账？").await;
    let mut a_socket = Ws::agent(address, &a_session).await;
    a_socket.expect("agent_hello").await;
    later(&app, 30);
    desk.accept(a_id, &c1).await.unwrap();
    later(&app, 10);
    desk.send(&Party::Agent(a_id), &c1, None, "您好", vec![], false)
        .await
        .unwrap(); // first response 10 s; response 40 s (from the visitor's first message)
    later(&app, 60);
    let mut visitor = Ws::visitor(address, &v1_token, 0).await;
    visitor.expect("hello").await;
    visitor
        .send(json!({"type": "send", "client_key": "v1", "body": "退款多久到账"}))
        .await;
    visitor.expect("ack").await;
    let suggestions = a_socket.expect("suggestions").await;
    let first = &suggestions["suggestions"][0];
    for action in ["sent", "dismissed"] {
        let (status, body) = app
            .json_as(
                Some(&a_session),
                Method::POST,
                "/api/v1/assist/feedback",
                json!({"kind": first["kind"], "id": first["id"], "action": action, "conversation_id": c1}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    later(&app, 20);
    desk.send(&Party::Agent(a_id), &c1, None, "一般 1-3 天", vec![], false)
        .await
        .unwrap(); // response 20 s
    later(&app, 10);
    desk.transfer(a_id, &c1, TransferTarget::Agent(b_id), "客户要退款", "")
        .await
        .unwrap();
    later(&app, 10);
    desk.answer_transfer(b_id, &c1, true).await.unwrap();
    later(&app, 10);
    desk.send(&Party::Agent(b_id), &c1, None, "我来处理", vec![], false)
        .await
        .unwrap(); // B's first response 10 s; nothing was waiting, so no response time
    later(&app, 50);
    desk.end(&Party::Agent(b_id), &c1).await.unwrap(); // B handled it 60 s
    later(&app, 10);
    desk.rate(&c1, 4, "不错").await.unwrap();
    desk.wrap_up(b_id, &c1, wrap_up()).await.unwrap();
    desk.wrap_up(b_id, &c1, wrap_up()).await.unwrap(); // a rewrite closes nothing more

    // C2: 90 s in the queue, A answers after 10 s (response 100 s), ends after 70 s; not rated.
    later(&app, 90);
    let (_, c2, _) = start(&app, Some(group), "发票怎么开").await;
    later(&app, 90);
    desk.accept(a_id, &c2).await.unwrap();
    later(&app, 10);
    desk.send(
        &Party::Agent(a_id),
        &c2,
        None,
        "在订单页申请",
        vec![],
        false,
    )
    .await
    .unwrap();
    later(&app, 60);
    desk.end(&Party::Agent(a_id), &c2).await.unwrap();

    // C3: the visitor leaves a message; A accepts it later (not a queue wait) and ends it 60 s on.
    later(&app, 40);
    let (_, c3, _) = start(&app, Some(group), "晚上再联系我").await;
    desk.leave_message(&c3).await.unwrap();
    let staff = summary(&app, &admin, "by=group").await;
    assert_eq!(row(&staff, group)["figures"]["pending_offline_messages"], 1);
    later(&app, 200);
    desk.accept(a_id, &c3).await.unwrap();
    later(&app, 60);
    desk.end(&Party::Agent(a_id), &c3).await.unwrap();

    // C4: the visitor gives up while queued.
    later(&app, 40);
    let (_, c4, _) = start(&app, Some(group), "算了").await;
    desk.end(&Party::Visitor, &c4).await.unwrap();

    let a_today = Expected {
        counts: [
            ("received", 3),
            ("accepted", 3),
            ("transferred_in", 0),
            ("transferred_out", 1),
            ("ended", 2),
            ("abandoned", 0),
            ("offline_messages", 0),
            // C2 and C3, and yesterday's C0: open work is counted now, whatever the range.
            ("pending_wrap_ups", 3),
            ("pending_offline_messages", 0),
        ],
        averages: [
            ("avg_first_response_secs", Some(10.0)),
            ("avg_response_secs", Some((40.0 + 20.0 + 100.0) / 3.0)),
            ("avg_handle_secs", Some(65.0)),
            ("avg_queue_wait_secs", Some(60.0)),
            ("p90_queue_wait_secs", Some(90.0)),
            ("satisfaction_avg", None),
            ("satisfaction_response_rate", Some(0.0)),
            ("suggestion_adoption_rate", Some(1.0)),
        ],
    };
    let b_today = Expected {
        counts: [
            ("received", 1),
            ("accepted", 1),
            ("transferred_in", 1),
            ("transferred_out", 0),
            ("ended", 1),
            ("abandoned", 0),
            ("offline_messages", 0),
            ("pending_wrap_ups", 0),
            ("pending_offline_messages", 0),
        ],
        averages: [
            ("avg_first_response_secs", Some(10.0)),
            ("avg_response_secs", None),
            ("avg_handle_secs", Some(60.0)),
            ("avg_queue_wait_secs", None),
            ("p90_queue_wait_secs", None),
            ("satisfaction_avg", Some(4.0)),
            ("satisfaction_response_rate", Some(1.0)),
            ("suggestion_adoption_rate", None),
        ],
    };
    let shared_averages = |transferred: u64| Expected {
        counts: [
            ("received", 4),
            ("accepted", 4),
            ("transferred_in", transferred),
            ("transferred_out", transferred),
            ("ended", 3),
            ("abandoned", 1),
            ("offline_messages", 1),
            // The sum of the agents': A's three.
            ("pending_wrap_ups", 3),
            ("pending_offline_messages", 0),
        ],
        averages: [
            ("avg_first_response_secs", Some(10.0)),
            ("avg_response_secs", Some((40.0 + 20.0 + 100.0) / 3.0)),
            ("avg_handle_secs", Some((60.0 + 70.0 + 60.0) / 3.0)),
            ("avg_queue_wait_secs", Some(60.0)),
            ("p90_queue_wait_secs", Some(90.0)),
            ("satisfaction_avg", Some(4.0)),
            ("satisfaction_response_rate", Some(1.0 / 3.0)),
            ("suggestion_adoption_rate", Some(1.0)),
        ],
    };
    // A transfer inside the group is no transfer of the group's; the team counts it once each way.
    let group_today = shared_averages(0);
    let team_today = shared_averages(1);

    let check_day = |by_agent: &Value, by_group: &Value| {
        check(&row(by_agent, a)["figures"], &a_today);
        check(&row(by_agent, b)["figures"], &b_today);
        check(&by_agent["team"], &team_today);
        check(&row(by_group, group)["figures"], &group_today);
    };
    let by_agent = summary(&app, &admin, "day=today").await;
    assert_eq!(by_agent["from"], "2026-11-25");
    assert_eq!(by_agent["time_zone"], "Asia/Shanghai");
    let by_group = summary(&app, &admin, "by=group&from=2026-11-25&to=2026-11-25").await;
    check_day(&by_agent, &by_group);

    // Yesterday holds C0 only; a two-day range adds both.
    let yesterday = summary(&app, &admin, "day=yesterday").await;
    let a_yesterday = &row(&yesterday, a)["figures"];
    assert_eq!(a_yesterday["received"], 1);
    assert_eq!(a_yesterday["ended"], 1);
    assert_close(a_yesterday, "avg_queue_wait_secs", Some(20.0));
    assert_close(a_yesterday, "avg_handle_secs", Some(5.0));
    assert_eq!(row(&yesterday, b)["figures"]["received"], 0);
    let both = summary(&app, &admin, "from=2026-11-24&to=2026-11-25").await;
    assert_eq!(row(&both, a)["figures"]["received"], 4);
    assert_close(&both["team"], "avg_queue_wait_secs", Some(140.0 / 3.0));

    // Hourly: 24 hours of today; everything happened between 16:00 and 17:00 local (08:00Z).
    let (status, hourly) = app
        .get_as(Some(&admin), "/api/v1/stats/hourly?scope=team&day=today")
        .await;
    assert_eq!(status, StatusCode::OK, "{hourly}");
    let hours = hourly["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    assert_eq!(hours[0]["hour"], "2026-11-24T16:00:00Z");
    let busy: Vec<&Value> = hours
        .iter()
        .filter(|hour| hour["figures"]["received"].as_u64() > Some(0))
        .collect();
    assert_eq!(busy.len(), 1, "{hourly}");
    assert_eq!(busy[0]["hour"], "2026-11-25T08:00:00Z");
    assert_eq!(busy[0]["figures"]["received"], 4);

    // An agent sees their own row and no team figures; another agent's series is refused.
    let own = summary(&app, &a_session, "day=today").await;
    assert!(own["team"].is_null());
    assert_eq!(own["rows"].as_array().unwrap().len(), 1);
    check(&own["rows"][0]["figures"], &a_today);
    let (status, _) = app
        .get_as(
            Some(&a_session),
            &format!("/api/v1/stats/hourly?scope=agent&id={b}"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The tallies are in the database: a restart gives the same figures.
    drop(a_socket);
    drop(visitor);
    let dirs = app.shutdown().await;
    let app = TestApp::start_signed_out(dirs).await;
    let admin = app.admin().await;
    let by_agent = summary(&app, &admin, "day=today").await;
    let by_group = summary(&app, &admin, "by=group").await;
    check_day(&by_agent, &by_group);
}

#[tokio::test]
async fn bad_ranges_are_refused_with_a_message() {
    let (app, _address, admin, _group) = desk("manual").await;
    for query in [
        "from=2026-11-25&to=2026-11-01",
        "from=2025-01-01&to=2026-11-25",
        "day=2026-13-01",
        "day=today&from=2026-11-01",
        "to=2026-11-01",
        "by=week",
    ] {
        let (status, body) = app
            .get_as(Some(&admin), &format!("/api/v1/stats/summary?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "invalid_input", "{query}: {body}");
    }
    let (status, body) = app
        .get_as(Some(&admin), "/api/v1/stats/hourly?scope=agent")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app.get_as(None, "/api/v1/stats/summary").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// Routed to one agent, handed on unanswered to another who accepts and replies: one conversation
/// accepted, once, by the one who took it.
#[tokio::test]
async fn a_routed_conversation_transferred_before_any_answer_is_accepted_once() {
    let (app, address, admin, group) = desk("auto").await;
    let (amy, amy_session) = agent(&app, &admin, "amy", group).await;
    let (ben, ben_session) = agent(&app, &admin, "ben", group).await;
    // Ben is busy, so routing offers the conversation to Amy.
    set_presence(&app, &ben_session, "busy").await;
    let mut amy_socket = Ws::agent(address, &amy_session).await;
    amy_socket.expect("agent_hello").await;
    let (_, id, started) = start(&app, Some(group), "能帮我查一下物流吗").await;
    assert_eq!(started["conversation"]["agent_name"], "amy", "{started}");
    let desk = &app.state.conversations;
    desk.transfer(
        AccountId(amy),
        &id,
        TransferTarget::Agent(AccountId(ben)),
        "物流问题请你跟进",
        "",
    )
    .await
    .unwrap();
    desk.answer_transfer(AccountId(ben), &id, true)
        .await
        .unwrap();
    desk.send(
        &Party::Agent(AccountId(ben)),
        &id,
        None,
        "您好，我来帮您查物流",
        Vec::new(),
        false,
    )
    .await
    .unwrap();
    let figures = summary(&app, &admin, "day=today").await;
    assert_eq!(figures["team"]["accepted"], 1, "{figures}");
    assert_eq!(row(&figures, ben)["figures"]["accepted"], 1, "{figures}");
    assert_eq!(row(&figures, amy)["figures"]["accepted"], 0, "{figures}");
}
