//! The admin console's API (issue 14) over the real router and store: accounts with employee numbers,
//! last sign-in and pinyin search; the audit log filtered by time and exported as CSV; skill groups'
//! routing (least-loaded, per-day hours, holidays, queue message and limit) and who may change it;
//! the desk settings stored in the database (problem types, wrap-up required, survey, timers,
//! automatic messages, uploads) taking effect at once; sites of signed identities; a webhook's test
//! delivery; and the dictionary, synonyms and category names edited through the API.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use kefu::domain::AccountId;
use kefu::services::conversations::Party;
use kefu::services::visitors::sign_identity;
use kefu::services::Clock;

use crate::common::{hit_ids, Session, TestApp, TestDirs, Ws, INITIAL_PASSWORD};
use crate::conversations::{agent, desk, served, start};

/// The audit entries of `kind` as the admin reads them.
async fn audit_of(app: &TestApp, admin: &Session, kind: &str) -> Vec<Value> {
    let (status, log) = app
        .get_as(Some(admin), &format!("/api/v1/admin/audit?kind={kind}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    log["entries"].as_array().unwrap().clone()
}

/// PATCH /api/v1/admin/settings as `session`.
async fn patch_settings(app: &TestApp, session: &Session, patch: Value) -> (StatusCode, Value) {
    app.json_as(
        Some(session),
        Method::PATCH,
        "/api/v1/admin/settings",
        patch,
    )
    .await
}

/// The current settings as the admin reads them.
async fn settings(app: &TestApp, admin: &Session) -> Value {
    let (status, body) = app.get_as(Some(admin), "/api/v1/admin/settings").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn code(body: &Value) -> &str {
    body["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn accounts_carry_employee_numbers_last_sign_in_and_are_found_by_pinyin() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let (status, created) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/accounts",
            json!({"username": "xiaomei", "display_name": "小美", "employee_no": "KF-007", "roles": ["agent"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["account"]["employee_no"], "KF-007");
    assert_eq!(created["account"]["last_login"], Value::Null);
    let initial = created["initial_password"].as_str().unwrap().to_string();
    let id = created["account"]["id"].as_u64().unwrap();

    // A second account cannot take the same employee number (ignoring case), nor a malformed one.
    for (body, needle) in [
        (
            json!({"username": "ajie", "employee_no": "kf-007"}),
            "already used",
        ),
        (
            json!({"username": "ajie", "employee_no": "工号 1"}),
            "employee number",
        ),
    ] {
        let (status, refused) = app
            .json_as(Some(&admin), Method::POST, "/api/v1/admin/accounts", body)
            .await;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::BAD_REQUEST, "invalid_input")
        );
        assert!(
            refused["message"].as_str().unwrap().contains(needle),
            "{refused}"
        );
    }

    // Found by pinyin initials, full pinyin, employee number and username; not by something else.
    for term in ["xm", "xiaomei", "kf-007", "XIAOMEI", "小"] {
        let (status, found) = app
            .get_as(
                Some(&admin),
                &format!("/api/v1/admin/accounts?q={}", crate::common::encode(term)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        let names: Vec<&str> = found["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|account| account["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["xiaomei"], "{term}");
        assert_eq!(found["accounts"][0]["initials"], "xm");
        assert_eq!(found["accounts"][0]["active"], 0);
    }
    let (_, none) = app
        .get_as(Some(&admin), "/api/v1/admin/accounts?q=zzz")
        .await;
    assert_eq!(none["accounts"], json!([]));

    // Signing in records the time.
    app.clock.advance(SignedDuration::from_mins(3));
    let mei = app.login_and_change_password("xiaomei", &initial).await;
    let (_, account) = app
        .get_as(Some(&admin), &format!("/api/v1/admin/accounts/{id}"))
        .await;
    assert_eq!(
        account["last_login"].as_str().unwrap(),
        app.clock.now().to_string()
    );

    // Edits are audited before → after; an agent may not list accounts.
    let (status, edited) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{id}"),
            json!({"max_concurrent": 8, "employee_no": "KF-008", "display_name": "小美美"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["employee_no"], "KF-008");
    let changed = audit_of(&app, &admin, "account_changed").await;
    let detail = changed[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("max_concurrent: 5 → 8")
            && detail.contains("employee_no: KF-007 → KF-008")
            && detail.contains("display_name: 小美 → 小美美"),
        "{detail}"
    );
    assert_eq!(changed[0]["actor"], "admin");
    let (status, _) = app.get_as(Some(&mei), "/api/v1/admin/accounts").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_audit_log_is_filtered_by_time_and_exported_as_csv() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let early = app.clock.now();
    app.clock.advance(SignedDuration::from_hours(1));
    let middle = app.clock.now();
    for name in ["售后", "物流"] {
        // Created, then its routing changed: two entries each.
        app.skill_group(&admin, name, "manual").await;
        app.clock.advance(SignedDuration::from_mins(10));
    }
    let (_, all) = app
        .get_as(Some(&admin), "/api/v1/admin/audit?kind=group_changed")
        .await;
    assert_eq!(all["entries"].as_array().unwrap().len(), 4, "{all}");
    // From `middle` plus 5 minutes: only the second group's entries (creation and routing).
    let from = (middle + SignedDuration::from_mins(5)).to_string();
    let (status, later) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/audit?kind=group_changed&from={from}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{later}");
    let subjects: Vec<&str> = later["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["account"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, vec!["group:物流", "group:物流"]);
    let (_, before) = app
        .get_as(Some(&admin), &format!("/api/v1/admin/audit?to={middle}"))
        .await;
    let before = before["entries"].as_array().unwrap();
    assert!(!before.is_empty());
    assert!(before
        .iter()
        .all(|entry| entry["at"].as_str().unwrap() == early.to_string()));
    let reply = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/audit/export?kind=group_changed&from={from}"),
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = reply.body.as_str().unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "\u{feff}seq,time,kind,account,actor,ip,detail"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "{text}");
    assert!(rows
        .iter()
        .all(|row| row.contains(",group_changed,group:物流,admin,")));

    let (_, agent_session) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    let reply = app
        .call(
            Method::GET,
            "/api/v1/admin/audit/export",
            None,
            Some(&agent_session),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn supervisors_see_and_change_the_routing_of_their_own_groups_only() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let mine = app.skill_group(&admin, "售后", "auto").await;
    let other = app.skill_group(&admin, "物流", "auto").await;
    let (supervisor_id, supervisor) = app
        .create_account(&admin, "zhuguan", &["supervisor", "agent"])
        .await;
    app.join_group(&admin, supervisor_id, mine, "主管").await;
    let (agent_id, agent_session) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    app.join_group(&admin, agent_id, mine, "小王").await;

    let routing =
        json!({"mode": "manual", "queue_message": "您好，已为您排队，请稍候。", "max_queue": 20});
    let (status, body) = app
        .json_as(
            Some(&supervisor),
            Method::PUT,
            &format!("/api/v1/admin/groups/{mine}/routing"),
            routing.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["queue_message"], "您好，已为您排队，请稍候。");
    let (status, members) = app
        .get_as(
            Some(&supervisor),
            &format!("/api/v1/admin/groups/{mine}/members"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(members["members"].as_array().unwrap().len(), 2);

    // Not another group, not the members, not groups or accounts as such.
    for (method, uri, body) in [
        (
            Method::PUT,
            format!("/api/v1/admin/groups/{other}/routing"),
            Some(routing.clone()),
        ),
        (
            Method::GET,
            format!("/api/v1/admin/groups/{other}/routing"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/admin/groups/{other}/members"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/admin/groups/{mine}/members"),
            Some(json!({"account_ids": [supervisor_id]})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/admin/groups/{mine}"),
            Some(json!({"name": "售后部"})),
        ),
        (Method::GET, "/api/v1/admin/settings".to_string(), None),
        (Method::GET, "/api/v1/admin/sites".to_string(), None),
    ] {
        let (status, refused) = match body {
            Some(body) => {
                app.json_as(Some(&supervisor), method.clone(), &uri, body)
                    .await
            }
            None => app.get_as(Some(&supervisor), &uri).await,
        };
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{method} {uri}"
        );
    }
    // An agent of the group may not change its routing either.
    let (status, _) = app
        .json_as(
            Some(&agent_session),
            Method::PUT,
            &format!("/api/v1/admin/groups/{mine}/routing"),
            routing,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The supervisor's change is in the audit log, before → after, with who made it.
    let changes = audit_of(&app, &admin, "group_changed").await;
    let by_supervisor = changes
        .iter()
        .find(|entry| entry["actor"] == "zhuguan")
        .expect("the supervisor's change is audited");
    assert_eq!(by_supervisor["account"], "group:售后");
    let detail = by_supervisor["detail"].as_str().unwrap();
    assert!(
        detail.contains("routing.mode: auto → manual")
            && detail.contains("routing.max_queue: — → 20"),
        "{detail}"
    );
}

/// A conversation from a returning person (`external_id`), started without a token.
async fn start_as(app: &TestApp, group: u64, external_id: &str, text: &str) -> Value {
    let (status, body) = app
        .json_as(
            None,
            Method::POST,
            "/api/v1/visitor/conversations",
            json!({"message": text, "group": group, "identity": {"name": "王女士", "external_id": external_id}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

fn served_by(app: &TestApp, started: &Value) -> Option<u64> {
    let id = started["conversation"]["id"].as_str().unwrap();
    app.state
        .conversations
        .conversation(id)
        .unwrap()
        .agent
        .map(|agent| agent.0)
}

#[tokio::test]
async fn least_loaded_routing_ignores_the_agent_who_served_the_visitor_before() {
    let (app, _address, admin, group) = desk("auto").await;
    let (first, _first_session) = agent(&app, &admin, "xiaowang", group).await;
    // The returning visitor's first conversation goes to the only agent, who ends it.
    let visit = start_as(&app, group, "u1", "第一次咨询").await;
    assert_eq!(served_by(&app, &visit), Some(first));
    let id = visit["conversation"]["id"].as_str().unwrap().to_string();
    app.state
        .conversations
        .end(&Party::Agent(AccountId(first)), &id)
        .await
        .unwrap();
    // Someone else keeps the first agent busy; then a second agent comes online, idle.
    let other = start_as(&app, group, "u2", "别的访客").await;
    assert_eq!(served_by(&app, &other), Some(first));
    let (second, _second_session) = agent(&app, &admin, "xiaoli", group).await;

    // `auto`: the returning visitor goes back to the first agent although the second is idle.
    let back = start_as(&app, group, "u1", "又来了").await;
    assert_eq!(served_by(&app, &back), Some(first));
    let id = back["conversation"]["id"].as_str().unwrap().to_string();
    app.state
        .conversations
        .end(&Party::Agent(AccountId(first)), &id)
        .await
        .unwrap();

    // `least_loaded`: the same visitor now goes to the least-loaded agent.
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PUT,
            &format!("/api/v1/admin/groups/{group}/routing"),
            json!({"mode": "least_loaded"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again = start_as(&app, group, "u1", "第三次").await;
    assert_eq!(served_by(&app, &again), Some(second));
}

#[tokio::test]
async fn per_day_hours_holidays_the_queue_message_and_the_group_queue_limit_apply() {
    // 2026-11-25T08:00:00Z is Wednesday 16:00 in Shanghai.
    let (app, _address, admin, group) = desk("manual").await;
    let (_, _agent_session) = agent(&app, &admin, "xiaowang", group).await;
    let put = |routing: Value| {
        let (app, admin) = (&app, &admin);
        async move {
            app.json_as(
                Some(admin),
                Method::PUT,
                &format!("/api/v1/admin/groups/{group}/routing"),
                routing,
            )
            .await
        }
    };
    let hours = |extra: Value| {
        let mut hours = json!({"time_zone": "Asia/Shanghai", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"});
        for (key, value) in extra.as_object().unwrap() {
            hours[key] = value.clone();
        }
        hours
    };

    // Wednesday closes at 15:00 on its own hours: offline message with the group's notice.
    let (status, body) = put(json!({"mode": "manual", "off_hours_message": "今天已下班",
        "working_hours": hours(json!({"day_hours": [{"day": 3, "start": "09:00", "end": "15:00"}]}))}))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, started) = start(&app, Some(group), "在吗").await;
    assert_eq!(started["conversation"]["state"], "offline_message");
    let texts: Vec<&str> = started["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap())
        .collect();
    assert!(texts.contains(&"今天已下班"), "{texts:?}");

    // A holiday closes the whole day.
    let (status, _) = put(json!({"mode": "manual", "off_hours_message": "节假日休息",
        "working_hours": hours(json!({"holidays": ["2026-11-25"]}))}))
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, started) = start(&app, Some(group), "在吗").await;
    assert_eq!(started["conversation"]["state"], "offline_message");

    // Open again: queued with the group's own queue message; one conversation at most in its queue.
    let (status, _) = put(
        json!({"mode": "manual", "queue_message": "已为您排队，售后同事马上来",
        "max_queue": 1, "working_hours": hours(json!({"holidays": ["2026-11-26"]}))}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, queued) = start(&app, Some(group), "第一位").await;
    assert_eq!(queued["conversation"]["state"], "queued");
    let texts: Vec<String> = queued["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["body"].as_str().unwrap().to_string())
        .collect();
    assert!(
        texts.contains(&"已为您排队，售后同事马上来".to_string()),
        "{texts:?}"
    );
    let (_, _, second) = start(&app, Some(group), "第二位").await;
    assert_eq!(second["conversation"]["state"], "offline_message");

    // Bad hours are refused with what is wrong.
    for (routing, needle) in [
        (
            json!({"working_hours": hours(json!({"day_hours": [{"day": 6, "start": "10:00", "end": "12:00"}]}))}),
            "not a working day",
        ),
        (
            json!({"working_hours": hours(json!({"holidays": ["11/25"]}))}),
            "YYYY-MM-DD",
        ),
        (json!({"max_queue": 0}), "max_queue"),
        (json!({"queue_message": " "}), "cannot be empty"),
    ] {
        let (status, refused) = put(routing).await;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::BAD_REQUEST, "invalid_input")
        );
        assert!(
            refused["message"].as_str().unwrap().contains(needle),
            "{refused}"
        );
    }
}

#[tokio::test]
async fn desk_settings_are_admin_only_validated_stored_and_take_effect_at_once() {
    let mut desk = served().await;
    let (app, admin) = (&desk.app, &desk.admin);
    let initial = settings(app, admin).await;
    assert_eq!(initial["customized"], json!([]));
    assert_eq!(initial["settings"]["timers"]["unanswered_secs"], 120);

    // Agents may not read or change them.
    let (status, _) = app
        .get_as(Some(&desk.agent), "/api/v1/admin/settings")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = patch_settings(
        app,
        &desk.agent,
        json!({"wrap_up": {"problem_types": ["其他"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A bad section refuses the whole change.
    let mut timers = initial["settings"]["timers"].clone();
    timers["visitor_idle_end_mins"] = json!(2);
    timers["visitor_idle_remind_mins"] = json!(3);
    let mut wrap_up = initial["settings"]["wrap_up"].clone();
    wrap_up["problem_types"]
        .as_array_mut()
        .unwrap()
        .push(json!("售后/价格保护"));
    let (status, refused) =
        patch_settings(app, admin, json!({"timers": timers, "wrap_up": wrap_up})).await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("visitor_idle_end_mins"));
    assert_eq!(settings(app, admin).await["customized"], json!([]));

    // A new problem type, required wrap-ups, a shorter unanswered timer and another reminder text.
    wrap_up["required"] = json!(true);
    let mut timers = initial["settings"]["timers"].clone();
    timers["unanswered_secs"] = json!(30);
    let mut messages = initial["settings"]["messages"].clone();
    messages["idle_reminder"] = json!("亲，还在吗？");
    let (status, saved) = patch_settings(
        app,
        admin,
        json!({"timers": timers, "wrap_up": wrap_up, "messages": messages}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        saved["customized"],
        json!(["wrap_up", "timers", "messages"])
    );
    let (_, types) = app
        .get_as(Some(&desk.agent), "/api/v1/conversations/problem-types")
        .await;
    assert!(types["problem_types"]
        .as_array()
        .unwrap()
        .contains(&json!("售后/价格保护")));
    assert_eq!(types["wrap_up_required"], true);
    let audited = audit_of(app, admin, "settings_changed").await;
    let detail = audited[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("timers.unanswered_secs: 120 → 30")
            && detail.contains("wrap_up.required: false → true")
            && detail.contains("messages.idle_reminder:"),
        "{detail}"
    );

    // 31 seconds without an answer now take the conversation away (the default was 120).
    desk.app.clock.advance(SignedDuration::from_secs(31));
    desk.app.state.conversations.tick().await.unwrap();
    desk.desk_socket
        .expect_where("unassigned", |frame| frame["reason"] == "unanswered")
        .await;

    // Another conversation: the reminder uses the new text, and the new problem type is accepted.
    let mut served = served_again(&mut desk).await;
    desk.app.clock.advance(SignedDuration::from_mins(6));
    desk.app.state.conversations.tick().await.unwrap();
    served
        .expect_where("message", |frame| {
            frame["message"]["body"] == "亲，还在吗？"
        })
        .await;
    let id = served_id(&desk);
    desk.desk_socket
        .send(json!({"type": "end", "conversation": id}))
        .await;
    desk.desk_socket.expect("ended").await;
    desk.desk_socket
        .send(json!({"type": "wrap_up", "conversation": id, "problem_type": "售后/价格保护", "resolution": "已申请价保"}))
        .await;
    let mut wrapped = None;
    for _ in 0..100 {
        wrapped = desk
            .app
            .state
            .conversations
            .conversation(&id)
            .unwrap()
            .wrap_up;
        if wrapped.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(wrapped.unwrap().problem_type, "售后/价格保护");

    // Reset: the configuration's timers apply again.
    let reply = desk
        .app
        .call(
            Method::DELETE,
            "/api/v1/admin/settings/timers",
            None,
            Some(&desk.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["settings"]["timers"]["unanswered_secs"], 120);
    assert_eq!(reply.body["customized"], json!(["wrap_up", "messages"]));
    assert_eq!(desk.app.state.conversations.config().unanswered_secs, 120);
    let reply = desk
        .app
        .call(
            Method::DELETE,
            "/api/v1/admin/settings/nothing",
            None,
            Some(&desk.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

/// The id of the conversation `served_again` started.
fn served_id(desk: &crate::conversations::Served) -> String {
    desk.id.clone()
}

/// After the first conversation went back to the queue unanswered: the agent takes it again (it is
/// routed to them once more only after an answer), so start a new one instead and answer it at once.
async fn served_again(desk: &mut crate::conversations::Served) -> Ws {
    // The lapsed conversation is not offered to the same agent again: end it.
    desk.app
        .state
        .conversations
        .end(&Party::Visitor, &desk.id)
        .await
        .unwrap();
    let (token, id, started) = start(&desk.app, Some(desk.group), "还有个问题").await;
    assert_eq!(started["conversation"]["state"], "active", "{started}");
    desk.desk_socket.expect("assigned").await;
    desk.desk_socket
        .send(json!({"type": "send", "conversation": id, "client_key": "hi", "body": "您好"}))
        .await;
    desk.desk_socket.expect("ack").await;
    desk.id = id;
    desk.token = token.clone();
    let mut visitor = Ws::visitor(desk.address, &token, 0).await;
    visitor.expect("hello").await;
    visitor
}

#[tokio::test]
async fn the_survey_follows_its_scale_and_when_it_is_offered() {
    let mut desk = served().await;
    let survey = json!({"offer": "agent_end", "scale": 3, "title": "您对本次服务满意吗？",
        "labels": ["不满意", "一般", "满意"], "thanks": "谢谢！"});
    let (status, body) = patch_settings(&desk.app, &desk.admin, json!({"survey": survey})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, public) = desk.app.get_as(None, "/api/v1/visitor/survey").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(public, survey);

    // Ended by the agent: asked, rated 3 of 3, stored as 5 of 5.
    desk.desk_socket
        .send(json!({"type": "end", "conversation": desk.id}))
        .await;
    desk.desk_socket.expect("ended").await;
    let state = desk
        .visitor
        .expect_where("state", |frame| frame["conversation"]["state"] == "ended")
        .await;
    assert_eq!(state["conversation"]["survey"], true);
    desk.visitor.expect("survey").await;
    desk.visitor.send(json!({"type": "rate", "stars": 4})).await;
    assert_eq!(desk.visitor.expect("error").await["code"], "invalid_input");
    desk.visitor.send(json!({"type": "rate", "stars": 3})).await;
    let mut rating = None;
    for _ in 0..100 {
        rating = desk
            .app
            .state
            .conversations
            .conversation(&desk.id)
            .unwrap()
            .rating;
        if rating.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rating.unwrap().stars, 5);

    // Ended by the visitor: not asked, and a rating is refused.
    let (token, id, started) = start(&desk.app, Some(desk.group), "还有一个问题").await;
    assert_eq!(started["conversation"]["state"], "active");
    desk.desk_socket.expect("assigned").await;
    let mut visitor = Ws::visitor(desk.address, &token, 0).await;
    visitor.expect("hello").await;
    visitor.send(json!({"type": "end"})).await;
    let state = visitor
        .expect_where("state", |frame| frame["conversation"]["state"] == "ended")
        .await;
    assert_eq!(state["conversation"]["survey"], false);
    visitor.send(json!({"type": "rate", "stars": 2})).await;
    let refused = visitor.expect("error").await;
    assert_eq!(refused["code"], "invalid_input");
    assert!(refused["message"].as_str().unwrap().contains("not offered"));
    assert!(desk
        .app
        .state
        .conversations
        .conversation(&id)
        .unwrap()
        .rating
        .is_none());
}

#[tokio::test]
async fn upload_settings_limit_files_at_once() {
    let desk = served().await;
    let png = {
        let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89".to_vec();
        png.resize(3000, 0);
        png
    };
    let upload = |name: &str, bytes: Vec<u8>| {
        let uri = format!(
            "/api/v1/conversations/{}/files?name={}",
            desk.id,
            crate::common::encode(name)
        );
        let app = &desk.app;
        let agent = desk.agent.clone();
        async move {
            app.call(
                Method::POST,
                &uri,
                Some(("application/octet-stream", bytes)),
                Some(&agent),
                None,
            )
            .await
        }
    };
    assert_eq!(
        upload("a.png", png.clone()).await.status,
        StatusCode::CREATED
    );
    let uploads = json!({"upload_types": ["PNG", ".jpg"], "max_upload_bytes": 2048,
        "max_uploads_per_conversation": 50, "max_uploads_per_visitor": 100});
    let (status, saved) = patch_settings(&desk.app, &desk.admin, json!({"uploads": uploads})).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(
        saved["settings"]["uploads"]["upload_types"],
        json!(["png", "jpg"])
    );
    let (_, limits) = desk.app.get_as(None, "/api/v1/visitor/limits").await;
    assert_eq!(limits["max_upload_bytes"], 2048);
    assert_eq!(limits["upload_types"], json!(["png", "jpg"]));

    let too_large = upload("b.png", png).await;
    assert_eq!(
        (too_large.status, code(&too_large.body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large")
    );
    let not_allowed = upload("c.txt", b"hello".to_vec()).await;
    assert_eq!(
        (not_allowed.status, code(&not_allowed.body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_upload")
    );
    let (status, refused) = patch_settings(
        &desk.app,
        &desk.admin,
        json!({"uploads": {"upload_types": ["exe"], "max_upload_bytes": 2048,
            "max_uploads_per_conversation": 50, "max_uploads_per_visitor": 100}}),
    )
    .await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
}

/// A signed identity of site `site` under `secret`, as its server would make it.
fn identity(app: &TestApp, site: &str, secret: &str) -> Value {
    let expires = app.clock.now().as_second() + 600;
    json!({"identity": {
        "site": site,
        "user_id": "u10086",
        "name": "王女士",
        "expires": expires,
        "signature": sign_identity(secret, "u10086", Some("王女士"), None, expires),
    }})
}

async fn arrive(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.json_as(None, Method::POST, "/api/v1/visitors", body)
        .await
}

#[tokio::test]
async fn sites_live_in_the_database_with_secrets_shown_once_and_rotated() {
    let app = TestApp::start_configured(TestDirs::with_fixtures(), |config| {
        config.visitors.sites = vec![kefu::config::SiteConfig {
            id: "shop".into(),
            secret: "from-kefu-toml".into(),
        }];
    })
    .await;
    let admin = app.admin().await;
    // The configuration's site is the first stored one; its secret never shows.
    let (status, listed) = app.get_as(Some(&admin), "/api/v1/admin/sites").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["sites"][0]["id"], "shop");
    assert_eq!(listed["sites"][0]["secret_hint"], "toml");
    assert!(!listed.to_string().contains("from-kefu-toml"));
    let (status, verified) = arrive(&app, identity(&app, "shop", "from-kefu-toml")).await;
    assert_eq!(status, StatusCode::CREATED, "{verified}");
    assert_eq!(verified["visitor"]["identity"]["verified"], true);

    // A new site: its secret is in the answer only.
    let (status, created) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/sites",
            json!({"id": "app", "name": "App 商城"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();
    let (_, listed) = app.get_as(Some(&admin), "/api/v1/admin/sites").await;
    assert!(!listed.to_string().contains(&secret));
    let (status, _) = arrive(&app, identity(&app, "app", &secret)).await;
    assert_eq!(status, StatusCode::CREATED);

    // Rotated: the old secret is refused at once, the new one works.
    let reply = app
        .call(
            Method::POST,
            "/api/v1/admin/sites/app/secret",
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let rotated = reply.body["secret"].as_str().unwrap().to_string();
    assert_ne!(rotated, secret);
    let (status, refused) = arrive(&app, identity(&app, "app", &secret)).await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::UNAUTHORIZED, "identity_invalid")
    );
    let (status, _) = arrive(&app, identity(&app, "app", &rotated)).await;
    assert_eq!(status, StatusCode::CREATED);

    // Renamed, then removed: its signatures are refused.
    let (status, renamed) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            "/api/v1/admin/sites/app",
            json!({"name": "App"}),
        )
        .await;
    assert_eq!(
        (status, renamed["name"].as_str()),
        (StatusCode::OK, Some("App"))
    );
    let reply = app
        .call(
            Method::DELETE,
            "/api/v1/admin/sites/app",
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let (status, _) = arrive(&app, identity(&app, "app", &rotated)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Bad input, other roles, the audit trail.
    for (body, needle) in [
        (json!({"id": "Shop 2", "name": "x"}), "site id"),
        (json!({"id": "shop", "name": "again"}), "already exists"),
        (json!({"id": "new", "name": ""}), "site name"),
    ] {
        let (status, refused) = app
            .json_as(Some(&admin), Method::POST, "/api/v1/admin/sites", body)
            .await;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::BAD_REQUEST, "invalid_input")
        );
        assert!(
            refused["message"].as_str().unwrap().contains(needle),
            "{refused}"
        );
    }
    let (_, agent_session) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    let (status, _) = app
        .json_as(
            Some(&agent_session),
            Method::POST,
            "/api/v1/admin/sites",
            json!({"id": "x", "name": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let changes: Vec<String> = audit_of(&app, &admin, "site_changed")
        .await
        .iter()
        .map(|entry| {
            format!(
                "{} {}",
                entry["account"].as_str().unwrap(),
                entry["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert!(changes[0].starts_with("site:app removed"), "{changes:?}");
    assert!(
        changes[2].starts_with("site:app secret rotated"),
        "{changes:?}"
    );
    assert!(changes.iter().all(|change| !change.contains(&rotated)));
}

#[tokio::test]
async fn a_webhook_test_is_sent_once_logged_and_audited() {
    let (app, _address, admin, _group) = desk("manual").await;
    let (url, received) = crate::webhooks::receiver(vec![]).await;
    let (status, webhook) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/webhooks",
            json!({"url": url, "events": ["ended"], "secret": "whsec-0123456789abcdef"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    let id = webhook["id"].as_u64().unwrap();
    let reply = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/webhooks/{id}/test"),
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["event"], "ping");
    let (_, agent_session) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    let refused = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/webhooks/{id}/test"),
            None,
            Some(&agent_session),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.body["status"], "succeeded");
    assert_eq!(reply.body["last_status"], 200);
    {
        let received = received.lock().unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].0["x-kefu-event"], "ping");
    }
    let (_, deliveries) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/webhooks/{id}/deliveries"),
        )
        .await;
    assert_eq!(deliveries["deliveries"][0]["id"], reply.body["id"]);

    // An unreachable receiver: failed at once, no retries queued.
    let (status, _) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/webhooks/{id}"),
            json!({"url": "http://127.0.0.1:9/hook", "enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reply = app
        .call(
            Method::POST,
            &format!("/api/v1/admin/webhooks/{id}/test"),
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.body["status"], "failed", "{}", reply.body);
    assert_eq!(reply.body["attempts"], 1);
    assert_eq!(app.state.webhooks.deliver_due().await.unwrap(), 0);

    let details: Vec<String> = audit_of(&app, &admin, "webhook_changed")
        .await
        .iter()
        .map(|entry| entry["detail"].as_str().unwrap().to_string())
        .collect();
    assert!(details[0].contains("failed"), "{details:?}");
    assert!(
        details[1].contains(&format!("url: {url} → http://127.0.0.1:9/hook")),
        "{details:?}"
    );
    assert!(details[1].contains("enabled: true → false"), "{details:?}");
    assert!(details[2].contains("succeeded"), "{details:?}");
    assert!(details[3].starts_with("registered"), "{details:?}");
}

#[tokio::test]
async fn dictionary_synonyms_and_category_names_are_edited_and_applied_at_once() {
    // Acting as the editor of the fixture knowledge base.
    let app = TestApp::new().await;
    let (status, dictionary) = app.get("/api/v1/kb/dictionary").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(dictionary["text"], "运费险 1000 n\n");

    // Without 运费险 in the dictionary it is no longer highlighted as one word; with it again, it is.
    let (status, saved) = app
        .put("/api/v1/kb/dictionary", Some(json!({"text": "# 空\n"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert!(saved["reindexed"].as_u64().unwrap() >= 4, "{saved}");
    let found = app.search("运费险", "").await;
    assert_eq!(
        hit_ids(&found).first().map(String::as_str),
        Some("shipping/freight-insurance")
    );
    assert!(!found["hits"][0]["snippet"]
        .as_str()
        .unwrap()
        .contains("<mark>运费险</mark>"));
    let (status, _) = app
        .put(
            "/api/v1/kb/dictionary",
            Some(json!({"text": "运费险 1000 n\r\n价格保护 800 n"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let found = app.search("运费险", "").await;
    assert!(found["hits"][0]["snippet"]
        .as_str()
        .unwrap()
        .contains("<mark>运费险</mark>"));
    assert_eq!(
        std::fs::read_to_string(app.dirs.kb.join("_dict.txt")).unwrap(),
        "运费险 1000 n\n价格保护 800 n\n"
    );

    // Synonyms: 凭证 finds the invoice article only once it is in a group with 发票.
    assert!(!app.finds("凭证", "invoices/e-invoice").await);
    let (status, _) = app
        .put(
            "/api/v1/kb/synonyms",
            Some(json!({"text": "退款,退钱,返款\n发票，凭证\n"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.top_hit("凭证").await.as_deref(),
        Some("invoices/e-invoice")
    );
    assert!(!app.finds("收据", "invoices/e-invoice").await);

    // Bad lines are refused with their number; nothing is written.
    for (uri, text, needle) in [
        (
            "/api/v1/kb/dictionary",
            "运费险 1000 n\n价保 很多 n\n",
            "line 2",
        ),
        ("/api/v1/kb/synonyms", "发票\n", "line 1"),
    ] {
        let (status, refused) = app.put(uri, Some(json!({"text": text}))).await;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::BAD_REQUEST, "invalid_input")
        );
        assert!(
            refused["message"].as_str().unwrap().contains(needle),
            "{refused}"
        );
    }
    assert!(std::fs::read_to_string(app.dirs.kb.join("_synonyms.txt"))
        .unwrap()
        .contains("凭证"));

    // Category display names, shown by the categories route.
    let (status, names) = app
        .put(
            "/api/v1/kb/category-names",
            Some(json!({"names": {"returns": "退换货", "invoices": "发票"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{names}");
    assert_eq!(names["names"]["returns"], "退换货");
    let (_, categories) = app.get("/api/v1/kb/categories").await;
    let returns = categories["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|category| category["id"] == "returns")
        .cloned()
        .unwrap();
    assert_eq!(returns["name"], "退换货", "{categories}");
    let (status, refused) = app
        .put(
            "/api/v1/kb/category-names",
            Some(json!({"names": {"after sales": "售后"}})),
        )
        .await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );

    // Agents may not; the changes are audited.
    let admin = app.admin().await;
    let (_, agent_session) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    let (status, _) = app
        .json_as(
            Some(&agent_session),
            Method::PUT,
            "/api/v1/kb/synonyms",
            json!({"text": ""}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .get_as(Some(&agent_session), "/api/v1/kb/dictionary")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let subjects: Vec<String> = audit_of(&app, &admin, "knowledge_changed")
        .await
        .iter()
        .map(|entry| entry["account"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        subjects,
        vec![
            "kb:_categories.txt",
            "kb:_synonyms.txt",
            "kb:_dict.txt",
            "kb:_dict.txt"
        ]
    );
    let _ = INITIAL_PASSWORD;
}

#[tokio::test]
async fn console_settings_and_sites_survive_a_restart() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let mut timers = settings(&app, &admin).await["settings"]["timers"].clone();
    timers["transfer_timeout_secs"] = json!(45);
    let (status, _) = patch_settings(&app, &admin, json!({"timers": timers})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/sites",
            json!({"id": "shop", "name": "官方商城"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_string();

    let app = TestApp::start_signed_out(app.stop()).await;
    let admin = app.admin().await;
    let restored = settings(&app, &admin).await;
    assert_eq!(restored["customized"], json!(["timers"]));
    assert_eq!(restored["settings"]["timers"]["transfer_timeout_secs"], 45);
    assert_eq!(app.state.conversations.config().transfer_timeout_secs, 45);
    let (status, verified) = arrive(&app, identity(&app, "shop", &secret)).await;
    assert_eq!(status, StatusCode::CREATED, "{verified}");
    assert_eq!(verified["visitor"]["identity"]["verified"], true);
}
