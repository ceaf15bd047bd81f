//! Visitor context over the real router: arrival with address, location and browser; signed
//! identities; the page trail and its caps; what agents see of past conversations; the block list;
//! the online list and proactive invitations.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use crate::common::{Reply, Session, TestApp, TestDirs};
use kefu::config::SiteConfig;
use kefu::services::visitors::sign_identity;
use kefu::services::Clock;

const SECRET: &str = "shop-secret-2026";
const CHROME_ON_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// An app that trusts the proxy 10.0.0.1, knows the site `shop`, keeps 5 page views per visitor and
/// accepts 8 a minute; with a manual skill group 售后 and the admin.
async fn app() -> (TestApp, Session, u64) {
    let app = TestApp::start_configured(TestDirs::with_fixtures(), |config| {
        config.server.trusted_proxies = vec!["10.0.0.1/32".parse().unwrap()];
        config.visitors.sites = vec![SiteConfig {
            id: "shop".into(),
            secret: SECRET.into(),
        }];
        config.visitors.ip_database =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("geo/ip2region.xdb");
        config.visitors.max_page_views = 5;
        config.visitors.page_views_per_minute = 8;
    })
    .await;
    let admin = app.admin().await;
    let group = app.skill_group(&admin, "售后", "manual").await;
    (app, admin, group)
}

/// A staff account with `roles` in `group`.
async fn staff(
    app: &TestApp,
    admin: &Session,
    name: &str,
    roles: &[&str],
    group: u64,
) -> (u64, Session) {
    let (id, session) = app.create_account(admin, name, roles).await;
    app.join_group(admin, id, group, name).await;
    (id, session)
}

/// A visitor's POST from `peer` (optionally through the trusted proxy for `forwarded`).
async fn visitor_request(
    app: &TestApp,
    uri: &str,
    token: Option<&str>,
    peer: &str,
    forwarded: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let peer: IpAddr = peer.parse().unwrap();
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::USER_AGENT, CHROME_ON_WINDOWS)
        .extension(ConnectInfo(SocketAddr::new(peer, 5000)));
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if let Some(forwarded) = forwarded {
        builder = builder.header("x-forwarded-for", forwarded);
    }
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    app.raw(request).await
}

/// A POST from the usual visitor address (203.0.113.9, no proxy).
async fn post_from_visitor(
    app: &TestApp,
    uri: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    visitor_request(app, uri, token, "203.0.113.9", None, body).await
}

/// A new visitor from `peer`; returns (token, visitor id, answer).
async fn arrive(
    app: &TestApp,
    peer: &str,
    forwarded: Option<&str>,
    body: Value,
) -> (String, String, Value) {
    let reply = visitor_request(app, "/api/v1/visitors", None, peer, forwarded, Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    (
        reply.body["token"].as_str().unwrap().to_string(),
        reply.body["visitor_id"].as_str().unwrap().to_string(),
        reply.body,
    )
}

fn signed(app: &TestApp, user_id: &str, expires_in: i64) -> Value {
    let expires = app.clock.now().as_second() + expires_in;
    json!({
        "site": "shop",
        "user_id": user_id,
        "name": "王女士",
        "member_level": "金卡",
        "expires": expires,
        "signature": sign_identity(SECRET, user_id, Some("王女士"), Some("金卡"), expires),
    })
}

#[tokio::test]
async fn arrival_records_channel_trusted_address_location_and_browser() {
    let (app, _admin, _group) = app().await;
    // Through the trusted proxy: the forwarded address is the visitor's, and ip2region places it.
    let (_, _, answer) = arrive(
        &app,
        "10.0.0.1",
        Some("120.24.78.129"),
        json!({"channel": "app"}),
    )
    .await;
    let visitor = &answer["visitor"];
    assert_eq!(visitor["channel"], "app");
    assert_eq!(visitor["ip"], "120.24.78.129");
    assert_eq!(
        visitor["location"],
        json!({"country": "中国", "province": "广东省", "city": "深圳市", "isp": "阿里云"})
    );
    assert_eq!(visitor["client"]["browser"], "Chrome");
    assert_eq!(visitor["client"]["device"], "pc");

    // From an untrusted peer, X-Forwarded-For is a claim, not an address.
    let (_, _, spoofed) = arrive(&app, "203.0.113.9", Some("120.24.78.129"), json!({})).await;
    assert_eq!(spoofed["visitor"]["ip"], "203.0.113.9");
    assert_eq!(spoofed["visitor"]["location"]["city"], Value::Null);

    // A private address has no location, and that is no error.
    let (_, _, private) = arrive(&app, "192.168.1.20", None, json!({})).await;
    assert_eq!(
        private["visitor"]["location"],
        json!({"country": null, "province": null, "city": null, "isp": null})
    );

    let reply = post_from_visitor(
        &app,
        "/api/v1/visitors",
        None,
        Some(json!({"channel": "fax"})),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
}

#[tokio::test]
async fn signed_identities_are_verified_forged_and_expired_ones_refused() {
    let (app, admin, group) = app().await;
    let (_, verified_id, answer) = arrive(
        &app,
        "203.0.113.9",
        None,
        json!({"identity": signed(&app, "u10086", 600)}),
    )
    .await;
    let identity = &answer["visitor"]["identity"];
    assert_eq!(identity["verified"], true);
    assert_eq!(identity["member_level"], "金卡");

    let mut forged = signed(&app, "u10086", 600);
    forged["member_level"] = json!("钻石");
    let reply = post_from_visitor(
        &app,
        "/api/v1/visitors",
        None,
        Some(json!({"identity": forged})),
    )
    .await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("identity_invalid"))
    );
    assert!(reply.body["message"]
        .as_str()
        .unwrap()
        .contains("does not match"));

    let expired = signed(&app, "u10086", 60);
    app.clock.advance(SignedDuration::from_secs(61));
    let reply = post_from_visitor(
        &app,
        "/api/v1/visitors",
        None,
        Some(json!({"identity": expired})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
    assert!(reply.body["message"].as_str().unwrap().contains("expired"));

    let mut unknown_site = signed(&app, "u10086", 600);
    unknown_site["site"] = json!("other");
    let reply = post_from_visitor(
        &app,
        "/api/v1/visitors",
        None,
        Some(json!({"identity": unknown_site})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // Without a signature the claim is kept, flagged unverified.
    let (token, unsigned_id, answer) = arrive(
        &app,
        "203.0.113.9",
        None,
        json!({"identity": {"site": "shop", "user_id": "u10086", "name": "冒充者"}}),
    )
    .await;
    assert_eq!(answer["visitor"]["identity"]["verified"], false);

    // The verified person's conversation on one device shows on their other device, not on the
    // unverified visitor claiming the same user id.
    let (_agent, agent_session) = staff(&app, &admin, "xiaowang", &["agent"], group).await;
    let (phone_token, phone_id, _) = arrive(
        &app,
        "203.0.113.10",
        None,
        json!({"identity": signed(&app, "u10086", 600)}),
    )
    .await;
    let started = visitor_request(
        &app,
        "/api/v1/visitor/conversations",
        Some(&phone_token),
        "203.0.113.10",
        None,
        Some(json!({"message": "手机上问的问题", "group": group, "identity": {"name": "随便写"}})),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let conversation = started.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, stored) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/conversations/{conversation}/transcript?format=json"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored["conversation"]["identity"]["name"], "王女士",
        "the verified name wins: {stored}"
    );

    for (visitor, expected) in [(&verified_id, 1), (&phone_id, 1), (&unsigned_id, 0)] {
        let (status, detail) = app
            .get_as(Some(&agent_session), &format!("/api/v1/visitors/{visitor}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        let listed = detail["conversations"].as_array().unwrap();
        assert_eq!(listed.len(), expected, "{visitor}: {detail}");
        if expected == 1 {
            assert_eq!(listed[0]["id"], conversation.as_str());
        }
    }
    let reply = post_from_visitor(
        &app,
        "/api/v1/visitor/identify",
        Some(&token),
        Some(signed(&app, "u10010", 600)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["identity"]["verified"], true);
    assert_eq!(reply.body["identity"]["user_id"], "u10010");
}

#[tokio::test]
async fn page_trail_is_ordered_timed_and_capped() {
    let (app, admin, group) = app().await;
    let (_, agent) = staff(&app, &admin, "xiaowang", &["agent"], group).await;
    let (token, visitor, _) = arrive(
        &app,
        "203.0.113.9",
        None,
        json!({"page": {"url": "https://shop.example/", "title": "首页"}}),
    )
    .await;
    for (url, title, stay) in [
        ("https://shop.example/item/1", "商品 1", 30),
        ("https://shop.example/cart", "购物车", 45),
    ] {
        app.clock.advance(SignedDuration::from_secs(stay));
        let reply = post_from_visitor(
            &app,
            "/api/v1/visitor/pageviews",
            Some(&token),
            Some(json!({"url": url, "title": title})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    app.clock.advance(SignedDuration::from_secs(10));
    let (_, detail) = app
        .get_as(Some(&agent), &format!("/api/v1/visitors/{visitor}"))
        .await;
    let trail: Vec<(String, Value)> = detail["page_trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|visit| {
            (
                visit["title"].as_str().unwrap().to_string(),
                visit["secs_on_page"].clone(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        vec![
            ("首页".to_string(), json!(30)),
            ("商品 1".to_string(), json!(45)),
            // Still on the cart page: time until now.
            ("购物车".to_string(), json!(10)),
        ]
    );
    assert_eq!(detail["online"], true);

    // 8 reports a minute are accepted (2 so far; the arrival's page is not a report), then
    // `rate_limited`; only the newest 5 views are kept.
    for n in 0..6 {
        let reply = post_from_visitor(
            &app,
            "/api/v1/visitor/pageviews",
            Some(&token),
            Some(json!({"url": format!("https://shop.example/p/{n}"), "title": format!("页 {n}")})),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{n}: {}", reply.body);
    }
    let flood = post_from_visitor(
        &app,
        "/api/v1/visitor/pageviews",
        Some(&token),
        Some(json!({"url": "https://shop.example/flood"})),
    )
    .await;
    assert_eq!(
        (flood.status, flood.body["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate_limited"))
    );
    let (_, detail) = app
        .get_as(Some(&agent), &format!("/api/v1/visitors/{visitor}"))
        .await;
    let titles: Vec<&str> = detail["page_trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|visit| visit["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["页 1", "页 2", "页 3", "页 4", "页 5"]);

    let empty = post_from_visitor(
        &app,
        "/api/v1/visitor/pageviews",
        Some(&token),
        Some(json!({"url": " "})),
    )
    .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn past_conversations_open_only_for_those_who_may_see_them() {
    let (app, admin, group) = app().await;
    let (served_by, served_session) = staff(&app, &admin, "xiaowang", &["agent"], group).await;
    let (_, other_agent) = staff(&app, &admin, "xiaoli", &["agent"], group).await;
    let (_, supervisor) = staff(&app, &admin, "zhuguan", &["supervisor"], group).await;
    let (token, visitor, _) = arrive(&app, "203.0.113.9", None, json!({})).await;
    let started = post_from_visitor(
        &app,
        "/api/v1/visitor/conversations",
        Some(&token),
        Some(json!({"message": "发票开错了", "group": group})),
    )
    .await;
    let conversation = started.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let desk = &app.state.conversations;
    desk.accept(kefu::domain::AccountId(served_by), &conversation)
        .await
        .unwrap();
    desk.end(
        &kefu::services::conversations::Party::Agent(kefu::domain::AccountId(served_by)),
        &conversation,
    )
    .await
    .unwrap();
    desk.rate(&conversation, 5, "").await.unwrap();

    for (who, can_open) in [
        (&served_session, true),
        (&supervisor, true),
        (&other_agent, false),
        (&admin, true),
    ] {
        let (status, detail) = app
            .get_as(Some(who), &format!("/api/v1/visitors/{visitor}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        let past = &detail["conversations"][0];
        assert_eq!(past["id"], conversation.as_str());
        assert_eq!(past["agent_name"], "xiaowang");
        assert_eq!(past["rating"], 5);
        assert_eq!(past["can_open"], can_open, "{detail}");
        let (status, _) = app
            .get_as(
                Some(who),
                &format!("/api/v1/conversations/{conversation}/transcript?format=json"),
            )
            .await;
        assert_eq!(status == StatusCode::OK, can_open);
    }

    // Tags and a note, kept on the visitor.
    let (status, profile) = app
        .json_as(
            Some(&other_agent),
            Method::PATCH,
            &format!("/api/v1/visitors/{visitor}"),
            json!({"tags": ["VIP", " 老客户 ", ""], "note": "喜欢电话联系"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_eq!(profile["tags"], json!(["VIP", "老客户"]));
    let (_, detail) = app
        .get_as(
            Some(&served_session),
            &format!("/api/v1/visitors/{visitor}"),
        )
        .await;
    assert_eq!(detail["visitor"]["note"], "喜欢电话联系");
    let (status, _) = app
        .get_as(Some(&served_session), "/api/v1/visitors/v_nobody")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blocked_visitors_and_ranges_are_refused_politely_and_audited() {
    let (app, admin, group) = app().await;
    let (_, agent) = staff(&app, &admin, "xiaowang", &["agent"], group).await;
    let (_, supervisor) = staff(&app, &admin, "zhuguan", &["supervisor"], group).await;
    let (token, visitor, _) = arrive(&app, "203.0.113.9", None, json!({})).await;

    let (status, _) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/blocks",
            json!({"visitor_id": visitor, "reason": "骚扰"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "agents do not block");
    let (status, body) = app
        .json_as(
            Some(&supervisor),
            Method::POST,
            "/api/v1/blocks",
            json!({"reason": "?"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, body) = app
        .json_as(
            Some(&supervisor),
            Method::POST,
            "/api/v1/blocks",
            json!({"ip_range": "198.51.100.0/33", "reason": "刷单"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let beat = post_from_visitor(&app, "/api/v1/visitor/heartbeat", Some(&token), None).await;
    assert_eq!(beat.status, StatusCode::OK);
    let (_, online) = app.get_as(Some(&agent), "/api/v1/visitors/online").await;
    assert_eq!(online["visitors"].as_array().unwrap().len(), 1);
    let (status, by_visitor) = app
        .json_as(
            Some(&supervisor),
            Method::POST,
            "/api/v1/blocks",
            json!({"visitor_id": visitor, "reason": "辱骂客服"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{by_visitor}");
    assert_eq!(by_visitor["active"], true);
    // The page learns it at the next heartbeat; the visitor leaves the online list and cannot be invited.
    let beat = post_from_visitor(&app, "/api/v1/visitor/heartbeat", Some(&token), None).await;
    assert_eq!(
        (beat.status, beat.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("visitor_blocked"))
    );
    let (_, online) = app.get_as(Some(&agent), "/api/v1/visitors/online").await;
    assert_eq!(online["visitors"], json!([]));
    let (status, _) = app
        .json_as(
            Some(&agent),
            Method::POST,
            &format!("/api/v1/visitors/{visitor}/invite"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let refused = post_from_visitor(
        &app,
        "/api/v1/visitor/conversations",
        Some(&token),
        Some(json!({"message": "你好", "group": group})),
    )
    .await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("visitor_blocked"))
    );
    assert!(
        !refused.body["message"].as_str().unwrap().contains("辱骂"),
        "the reason stays with the staff"
    );

    let expires = (app.clock.now() + SignedDuration::from_secs(3600)).to_string();
    let (status, by_range) = app
        .json_as(
            Some(&supervisor),
            Method::POST,
            "/api/v1/blocks",
            json!({"ip_range": "198.51.100.0/24", "reason": "刷单", "expires": expires}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{by_range}");
    let from_range =
        visitor_request(&app, "/api/v1/visitors", None, "198.51.100.23", None, None).await;
    assert_eq!(from_range.status, StatusCode::FORBIDDEN);
    let elsewhere =
        visitor_request(&app, "/api/v1/visitors", None, "198.51.101.23", None, None).await;
    assert_eq!(elsewhere.status, StatusCode::CREATED);
    // An expired block no longer applies.
    app.clock.advance(SignedDuration::from_secs(3601));
    let later = visitor_request(&app, "/api/v1/visitors", None, "198.51.100.23", None, None).await;
    assert_eq!(later.status, StatusCode::CREATED);
    let (_, list) = app.get_as(Some(&supervisor), "/api/v1/blocks").await;
    let active: Vec<bool> = list["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|block| block["active"].as_bool().unwrap())
        .collect();
    assert_eq!(active, [false, true]);

    let id = by_visitor["id"].as_u64().unwrap();
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/blocks/{id}"),
            None,
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let again = post_from_visitor(
        &app,
        "/api/v1/visitor/conversations",
        Some(&token),
        Some(json!({"message": "你好", "group": group})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/blocks/{id}"),
            None,
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("block_not_found"))
    );

    let (_, audit) = app.get_as(Some(&admin), "/api/v1/admin/audit").await;
    let kinds: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|entry| entry["kind"].as_str())
        .filter(|kind| kind.starts_with("visitor_"))
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "visitor_blocked")
            .count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds
            .iter()
            .filter(|kind| **kind == "visitor_unblocked")
            .count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn online_visitors_can_be_invited_and_the_inviter_gets_the_conversation() {
    let (app, admin, group) = app().await;
    let (inviter, inviter_session) = staff(&app, &admin, "xiaowang", &["agent"], group).await;
    let (_, _other) = staff(&app, &admin, "xiaoli", &["agent"], group).await;
    let (token, visitor, _) = arrive(
        &app,
        "203.0.113.9",
        None,
        json!({"page": {"url": "https://shop.example/item/7", "title": "羽绒服"}}),
    )
    .await;
    app.clock.advance(SignedDuration::from_secs(20));
    let beat = post_from_visitor(&app, "/api/v1/visitor/heartbeat", Some(&token), None).await;
    assert_eq!(beat.body, json!({"invitation": null}));

    let (status, online) = app
        .get_as(Some(&inviter_session), "/api/v1/visitors/online")
        .await;
    assert_eq!(status, StatusCode::OK, "{online}");
    let entry = &online["visitors"][0];
    assert_eq!(entry["visitor"]["id"], visitor.as_str());
    assert_eq!(entry["current_page"]["title"], "羽绒服");
    assert_eq!(entry["secs_on_site"], 20);

    // The message is optional, and so is the body.
    let invited = app
        .call(
            Method::POST,
            &format!("/api/v1/visitors/{visitor}/invite"),
            None,
            Some(&inviter_session),
            None,
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    let beat = post_from_visitor(&app, "/api/v1/visitor/heartbeat", Some(&token), None).await;
    assert_eq!(beat.body["invitation"]["agent_name"], "xiaowang");
    assert!(beat.body["invitation"]["message"]
        .as_str()
        .unwrap()
        .contains("xiaowang"));
    let answer = post_from_visitor(
        &app,
        "/api/v1/visitor/invitation",
        Some(&token),
        Some(json!({"accept": true})),
    )
    .await;
    assert_eq!(answer.body, json!({"accepted": true}));
    let started = post_from_visitor(
        &app,
        "/api/v1/visitor/conversations",
        Some(&token),
        Some(json!({"message": "有我的码吗", "group": group})),
    )
    .await;
    assert_eq!(
        started.body["conversation"]["state"], "active",
        "{}",
        started.body
    );
    assert_eq!(started.body["conversation"]["agent_name"], "xiaowang");
    let id = started.body["conversation"]["id"].as_str().unwrap();
    assert_eq!(
        app.state.conversations.conversation(id).unwrap().agent,
        Some(kefu::domain::AccountId(inviter))
    );

    // Gone quiet for longer than the online timeout: off the list, and no longer invitable.
    app.clock.advance(SignedDuration::from_secs(61));
    let (_, online) = app
        .get_as(Some(&inviter_session), "/api/v1/visitors/online")
        .await;
    assert_eq!(online["visitors"], json!([]));
    let (status, body) = app
        .json_as(
            Some(&inviter_session),
            Method::POST,
            &format!("/api/v1/visitors/{visitor}/invite"),
            json!({}),
        )
        .await;
    // Still in the conversation the invitation opened: that is the first reason given.
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "visitor_in_conversation", "{body}");
}

#[tokio::test]
async fn a_visitor_chatting_with_a_colleague_is_listed_as_chatting_and_not_invitable() {
    let (app, admin, group) = app().await;
    let (serving_id, serving) = staff(&app, &admin, "xiaowang", &["agent"], group).await;
    let (_, colleague) = staff(&app, &admin, "xiaoli", &["agent"], group).await;
    let (token, visitor, _) = arrive(&app, "203.0.113.9", None, json!({})).await;
    let beat = post_from_visitor(&app, "/api/v1/visitor/heartbeat", Some(&token), None).await;
    assert_eq!(beat.status, StatusCode::OK, "{}", beat.body);
    let (_, online) = app
        .get_as(Some(&colleague), "/api/v1/visitors/online")
        .await;
    assert_eq!(online["visitors"][0]["chat"], Value::Null, "{online}");

    // Queued (manual routing): 排队中, nobody serving yet.
    let started = post_from_visitor(
        &app,
        "/api/v1/visitor/conversations",
        Some(&token),
        Some(json!({"message": "羽绒服有货吗", "group": group})),
    )
    .await;
    let conversation = started.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, online) = app
        .get_as(Some(&colleague), "/api/v1/visitors/online")
        .await;
    let chat = &online["visitors"][0]["chat"];
    assert_eq!(chat["conversation"], conversation.as_str(), "{online}");
    assert_eq!(chat["state"], "queued");
    assert_eq!(chat["agent_name"], Value::Null);

    // Served by xiaowang: the colleague sees with whom, and an invitation is refused, not reported as sent.
    crate::conversations::set_presence(&app, &serving, "online").await;
    app.state
        .conversations
        .accept(kefu::domain::AccountId(serving_id), &conversation)
        .await
        .expect("xiaowang accepts the queued visitor");
    let (_, online) = app
        .get_as(Some(&colleague), "/api/v1/visitors/online")
        .await;
    let chat = &online["visitors"][0]["chat"];
    assert_eq!(
        (chat["state"].as_str(), chat["agent_name"].as_str()),
        (Some("active"), Some("xiaowang")),
        "{online}"
    );
    let (status, body) = app
        .json_as(
            Some(&colleague),
            Method::POST,
            &format!("/api/v1/visitors/{visitor}/invite"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "visitor_in_conversation");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("xiaowang") && message.contains(&conversation),
        "{message}"
    );
    let beat = post_from_visitor(&app, "/api/v1/visitor/heartbeat", Some(&token), None).await;
    assert_eq!(beat.body, json!({"invitation": null}));
}

#[tokio::test]
async fn visitors_who_left_are_forgotten_with_the_invitations_they_never_saw() {
    let (app, admin, group) = app().await;
    let (_, inviter) = staff(&app, &admin, "xiaowang", &["agent"], group).await;
    let (staying_token, staying, _) = arrive(&app, "203.0.113.9", None, json!({})).await;
    let (leaving_token, leaving, _) = arrive(&app, "203.0.113.10", None, json!({})).await;
    for token in [&staying_token, &leaving_token] {
        let beat = post_from_visitor(&app, "/api/v1/visitor/heartbeat", Some(token), None).await;
        assert_eq!(beat.status, StatusCode::OK, "{}", beat.body);
    }
    let invited = app
        .call(
            Method::POST,
            &format!("/api/v1/visitors/{leaving}/invite"),
            None,
            Some(&inviter),
            None,
        )
        .await;
    assert_eq!(invited.status, StatusCode::CREATED, "{}", invited.body);
    assert_eq!(app.state.visitors.forget_departed(), 0);

    app.clock.advance(SignedDuration::from_secs(40));
    let beat = post_from_visitor(
        &app,
        "/api/v1/visitor/heartbeat",
        Some(&staying_token),
        None,
    )
    .await;
    assert_eq!(beat.status, StatusCode::OK, "{}", beat.body);
    app.clock.advance(SignedDuration::from_secs(40));
    assert_eq!(app.state.visitors.forget_departed(), 1);
    assert!(app.state.visitors.is_online(&staying));
    assert!(!app.state.visitors.is_online(&leaving));
    // The invitation went with the visitor: coming back, there is nothing to answer.
    assert!(app
        .state
        .visitors
        .heartbeat(&leaving, None)
        .unwrap()
        .is_none());
    assert!(app
        .state
        .visitors
        .answer_invitation(&leaving, true)
        .is_err());
}
