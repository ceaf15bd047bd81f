//! Limits on every input (issue 12, "Inputs without limits"): each over-long or hostile input gets a
//! 4xx with its code and leaves nothing in the store; uploads, visitor tokens and captchas are bounded;
//! long messages still get suggestions; CSV cells cannot run as formulas; the public avatar route does
//! not tell which accounts exist.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use crate::common::{encode, Reply, Session, TestApp, TestDirs, PASSWORD};
use kefu::services::conversations::Party;

/// A request from `peer` with an optional bearer token and JSON or raw body.
async fn from(
    app: &TestApp,
    method: Method,
    uri: &str,
    peer: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> Reply {
    let peer: IpAddr = peer.parse().unwrap();
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .extension(ConnectInfo(SocketAddr::new(peer, 5000)));
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = match body {
        Some((content_type, bytes)) => builder
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(bytes)),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    app.raw(request).await
}

fn json_body(value: Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", value.to_string().into_bytes()))
}

/// Records in the trees a visitor's arrival or start writes to.
fn visitor_records(app: &TestApp) -> [usize; 5] {
    let store = app.state.accounts.store();
    [
        store.table("visitor_tokens").unwrap().len().unwrap(),
        store.table("visitors").unwrap().len().unwrap(),
        store.table("page_views").unwrap().len().unwrap(),
        store.table("conversations").unwrap().len().unwrap(),
        store.table("messages").unwrap().len().unwrap(),
    ]
}

fn assert_refused(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (status, Some(code)),
        "{}",
        reply.body
    );
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn visitor_fields_over_their_limits_are_refused_and_nothing_is_stored() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let long = |chars: usize| "名".repeat(chars);
    let starts = [
        json!({"message": "你好", "identity": {"name": long(65)}}),
        json!({"message": "你好", "identity": {"phone": "1".repeat(33)}}),
        json!({"message": "你好", "identity": {"email": format!("{}@x.cn", "a".repeat(250))}}),
        json!({"message": "你好", "identity": {"external_id": "u".repeat(129)}}),
        json!({"message": "你好", "page": format!("https://shop.example/{}", "p".repeat(2000))}),
        json!({"message": "你好", "channel": "c".repeat(17)}),
        json!({"message": "你好", "channel": "fax"}),
    ];
    for start in starts {
        let reply = from(
            &app,
            Method::POST,
            "/api/v1/visitor/conversations",
            "203.0.113.9",
            None,
            json_body(start.clone()),
        )
        .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(visitor_records(&app), [0; 5], "{start} left something");
    }
    let arrivals = [
        json!({"identity": {"site": "shop", "user_id": "u1", "name": long(65)}}),
        json!({"identity": {"site": "shop", "user_id": "u1", "member_level": long(33)}}),
        json!({"identity": {"site": "s".repeat(65), "user_id": "u1"}}),
        json!({"identity": {"site": "shop", "user_id": "u".repeat(129)}}),
        json!({"identity": {"site": "shop", "user_id": "u1", "signature": "a".repeat(129)}}),
        json!({"page": {"url": format!("https://shop.example/{}", "p".repeat(2000))}}),
    ];
    for arrival in arrivals {
        let reply = from(
            &app,
            Method::POST,
            "/api/v1/visitors",
            "203.0.113.9",
            None,
            json_body(arrival.clone()),
        )
        .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "invalid_input");
        assert_eq!(visitor_records(&app), [0; 5], "{arrival} left something");
    }

    // At the limits everything is accepted.
    let reply = from(
        &app,
        Method::POST,
        "/api/v1/visitor/conversations",
        "203.0.113.9",
        None,
        json_body(json!({
            "message": "你好",
            "identity": {"name": long(64), "phone": "1".repeat(32), "external_id": "u".repeat(128)},
            "page": format!("https://shop.example/{}", "p".repeat(1979)),
        })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_string();

    // A known visitor's page view, identity and note over the limits change nothing either.
    let before = visitor_records(&app);
    let profiles = || -> Vec<Vec<u8>> {
        let store = app.state.accounts.store();
        store
            .table("visitors")
            .unwrap()
            .iter()
            .unwrap()
            .into_iter()
            .map(|(_, value)| value)
            .collect()
    };
    let profile_before = profiles();
    let page = from(
        &app,
        Method::POST,
        "/api/v1/visitor/pageviews",
        "203.0.113.9",
        Some(&token),
        json_body(json!({"url": "x".repeat(2001)})),
    )
    .await;
    assert_refused(&page, StatusCode::BAD_REQUEST, "invalid_input");
    let identify = from(
        &app,
        Method::POST,
        "/api/v1/visitor/identify",
        "203.0.113.9",
        Some(&token),
        json_body(json!({"site": "shop", "user_id": "u1", "name": long(65)})),
    )
    .await;
    assert_refused(&identify, StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(visitor_records(&app), before);
    assert_eq!(profiles(), profile_before);
}

#[tokio::test]
async fn the_visitor_name_is_stored_once_not_in_every_message() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let name = "王".repeat(64);
    let reply = from(
        &app,
        Method::POST,
        "/api/v1/visitor/conversations",
        "203.0.113.9",
        None,
        json_body(json!({"message": "第一条", "identity": {"name": name}})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for index in 0..5 {
        app.state
            .conversations
            .send(
                &Party::Visitor,
                &id,
                Some(format!("k{index}")),
                "在吗",
                Vec::new(),
                false,
            )
            .await
            .unwrap();
    }
    // The stored messages do not carry the name; the conversation does, once.
    let store = app.state.accounts.store();
    let mut visitor_messages = 0;
    for (_, value) in store.table("messages").unwrap().iter().unwrap() {
        let message: Value = serde_json::from_slice(&value).unwrap();
        if message["kind"] == "visitor" {
            visitor_messages += 1;
            assert!(
                !String::from_utf8_lossy(&value).contains(&name),
                "a stored message repeats the name: {message}"
            );
        }
    }
    assert_eq!(visitor_messages, 6);
    // Readers still see the name with every visitor message, after a resend too.
    let messages = app
        .state
        .conversations
        .messages_after(&id, 0, &Party::Visitor)
        .unwrap();
    let names: Vec<&str> = messages
        .iter()
        .filter(|message| message.kind == kefu::domain::SenderKind::Visitor)
        .map(|message| message.sender_name.as_str())
        .collect();
    assert_eq!(names, vec![name.as_str(); 6]);
    let resent = app
        .state
        .conversations
        .send(
            &Party::Visitor,
            &id,
            Some("k0".into()),
            "在吗",
            Vec::new(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(resent.sender_name, name);
}

#[tokio::test]
async fn over_long_sign_ins_are_refused_before_any_lookup_and_leave_no_trace() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let store = app.state.accounts.store();
    let audit_before = store.table("audit").unwrap().len().unwrap();
    for request in [
        json!({"username": "a".repeat(33), "password": "x"}),
        json!({"username": "a".repeat(200_000), "password": "x"}),
        json!({"username": format!("admin{}", " ".repeat(60)), "password": "x"}),
        json!({"username": "admin", "password": "p".repeat(257)}),
        json!({"username": "admin", "password": "x", "captcha": "c".repeat(65), "captcha_id": "i"}),
        json!({"username": "admin", "password": "x", "totp": "1".repeat(65)}),
    ] {
        let error = app.login_with(request).await.unwrap_err();
        assert_eq!(error.0, StatusCode::BAD_REQUEST, "{}", error.1);
        assert_eq!(error.1["code"], "invalid_input", "{}", error.1);
    }
    assert_eq!(
        store.table("audit").unwrap().len().unwrap(),
        audit_before,
        "nothing audited"
    );
    // Nothing counted: four of those named `admin`, past the three failures that bring the captcha.
    let (status, required) = app
        .get("/api/v1/auth/captcha-required?username=admin")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(required["required"], false, "nothing counted");
    // An unknown name of a real length is audited as it was typed: short by construction.
    let unknown = "nobody-".to_string() + &"x".repeat(25);
    let error = app
        .login_with(json!({"username": unknown, "password": "x"}))
        .await
        .unwrap_err();
    assert_eq!(error.1["code"], "invalid_credentials");
    let (_, audit) = app
        .get_as(Some(&admin), "/api/v1/admin/audit?kind=login_failed")
        .await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["account"], unknown.as_str(), "{audit}");
    assert!(app.login("admin", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn passwords_with_control_characters_and_blocks_wider_than_a_prefix_are_refused() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/me/password",
            json!({"old_password": PASSWORD, "new_password": "Aa1!\0\0\0\0\0\0\0\0"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "weak_password");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no control characters"),
        "{body}"
    );
    assert!(app.login("admin", PASSWORD).await.is_ok(), "unchanged");

    for wide in [
        "::/0",
        "0.0.0.0/0",
        "10.0.0.0/8",
        "10.0.0.0/15",
        "2001:db8::/32",
    ] {
        let (status, body) = app
            .json_as(
                Some(&admin),
                Method::POST,
                "/api/v1/blocks",
                json!({"ip_range": wide, "reason": "刷单"}),
            )
            .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_input")),
            "{wide}: {body}"
        );
    }
    assert_eq!(
        app.state
            .accounts
            .store()
            .table("blocks")
            .unwrap()
            .len()
            .unwrap(),
        0
    );
    for narrow in ["10.1.0.0/16", "2001:db8:1::/48"] {
        let (status, body) = app
            .json_as(
                Some(&admin),
                Method::POST,
                "/api/v1/blocks",
                json!({"ip_range": narrow, "reason": "刷单"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{narrow}: {body}");
    }
}

#[tokio::test]
async fn the_avatar_route_answers_alike_for_unknown_accounts_and_missing_avatars() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let (_, me) = app.get_as(Some(&admin), "/api/v1/me").await;
    let own_id = me["id"].as_u64().unwrap();
    let (known, known_body) = app
        .get_as(None, &format!("/api/v1/accounts/{own_id}/avatar"))
        .await;
    let (unknown, unknown_body) = app.get_as(None, "/api/v1/accounts/999999/avatar").await;
    assert_eq!(
        (known, unknown),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND)
    );
    assert_eq!(known_body["code"], "not_found");
    assert_eq!(unknown_body["code"], "not_found");
}

/// An app whose uploads are bounded tightly; a visitor with an open conversation.
async fn upload_desk(adjust: impl FnOnce(&mut kefu::Config)) -> (TestApp, String, String) {
    let app = TestApp::start_configured(TestDirs::with_fixtures(), adjust).await;
    let reply = from(
        &app,
        Method::POST,
        "/api/v1/visitor/conversations",
        "203.0.113.9",
        None,
        json_body(json!({"message": "发票"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_string();
    let id = reply.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (app, token, id)
}

async fn upload(app: &TestApp, token: &str, id: &str, name: &str, bytes: Vec<u8>) -> Reply {
    from(
        app,
        Method::POST,
        &format!("/api/v1/conversations/{id}/files?name={}", encode(name)),
        "203.0.113.9",
        Some(token),
        Some(("application/octet-stream", bytes)),
    )
    .await
}

/// Attachments indexed, and files stored (on disk with sled, in `file_bytes` with PostgreSQL).
fn upload_records(app: &TestApp) -> (usize, usize) {
    let files = app.dirs.data.join("files");
    let store = app.state.accounts.store();
    let stored = walkdir_count(&files) + store.table("file_bytes").unwrap().len().unwrap();
    (store.table("files").unwrap().len().unwrap(), stored)
}

fn walkdir_count(folder: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return 0;
    };
    entries
        .map(|entry| entry.unwrap().path())
        .map(|path| {
            if path.is_dir() {
                walkdir_count(&path)
            } else {
                1
            }
        })
        .sum()
}

#[tokio::test]
async fn uploads_are_bounded_per_conversation_per_visitor_by_rate_and_by_disk() {
    // Per conversation: 2 files.
    let (app, token, id) = upload_desk(|config| {
        config.conversations.max_uploads_per_conversation = 2;
    })
    .await;
    for index in 0..2 {
        let stored = upload(&app, &token, &id, "a.txt", format!("文本{index}").into()).await;
        assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.body);
    }
    // The same file again is no new file.
    let again = upload(&app, &token, &id, "a.txt", "文本0".into()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let before = upload_records(&app);
    let third = upload(&app, &token, &id, "c.txt", "第三个".into()).await;
    assert_refused(
        &third,
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_quota_exceeded",
    );
    assert_eq!(upload_records(&app), before);

    // Per visitor: 5 bytes in all.
    let (app, token, id) = upload_desk(|config| {
        config.conversations.max_upload_bytes_per_visitor = 5;
    })
    .await;
    let first = upload(&app, &token, &id, "a.txt", b"abcd".to_vec()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let before = upload_records(&app);
    let second = upload(&app, &token, &id, "b.txt", b"efgh".to_vec()).await;
    assert_refused(
        &second,
        StatusCode::PAYLOAD_TOO_LARGE,
        "upload_quota_exceeded",
    );
    assert_eq!(upload_records(&app), before);

    // Rate: 2 a minute per visitor.
    let (app, token, id) = upload_desk(|config| {
        config.conversations.visitor_uploads_per_minute = 2;
    })
    .await;
    for index in 0..2 {
        let stored = upload(&app, &token, &id, "a.txt", format!("{index}").into()).await;
        assert_eq!(stored.status, StatusCode::CREATED, "{}", stored.body);
    }
    let before = upload_records(&app);
    let third = upload(&app, &token, &id, "c.txt", "3".into()).await;
    assert_refused(&third, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(upload_records(&app), before);

    // Disk budget: 10 bytes in all.
    let (app, token, id) = upload_desk(|config| {
        config.conversations.upload_disk_budget_bytes = 10;
    })
    .await;
    let fits = upload(&app, &token, &id, "a.txt", b"12345678".to_vec()).await;
    assert_eq!(fits.status, StatusCode::CREATED, "{}", fits.body);
    let before = upload_records(&app);
    let full = upload(&app, &token, &id, "b.txt", b"abcdefgh".to_vec()).await;
    assert_refused(
        &full,
        StatusCode::INSUFFICIENT_STORAGE,
        "upload_storage_full",
    );
    assert_eq!(upload_records(&app), before);
}

#[tokio::test]
async fn upload_names_lose_bidi_and_control_characters_and_keep_their_extension() {
    let (app, token, id) = upload_desk(|_| {}).await;
    let spoofed = upload(
        &app,
        &token,
        &id,
        "invoice\u{202E}txt.exe.txt",
        "发票".into(),
    )
    .await;
    assert_eq!(spoofed.status, StatusCode::CREATED, "{}", spoofed.body);
    assert_eq!(spoofed.body["name"], "invoicetxt.exe.txt");
    let long_name = format!("{}\u{7}.txt", "长".repeat(300));
    let long = upload(&app, &token, &id, &long_name, "很长的名字".into()).await;
    assert_eq!(long.status, StatusCode::CREATED, "{}", long.body);
    let name = long.body["name"].as_str().unwrap();
    assert_eq!(name.chars().count(), 120, "{name}");
    assert!(name.ends_with("长.txt"), "{name}");
}

#[tokio::test]
async fn visitor_tokens_and_captchas_are_rate_limited_per_address_and_tokens_expire() {
    let app = TestApp::start_configured(TestDirs::with_fixtures(), |config| {
        config.accounts.visitor_tokens_per_minute = 3;
        config.accounts.captchas_per_minute = 2;
        config.accounts.visitor_token_days = 30;
    })
    .await;
    let new_visitor =
        |peer: &'static str| from(&app, Method::POST, "/api/v1/visitors", peer, None, None);
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let reply = new_visitor("203.0.113.9").await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        tokens.push(reply.body["token"].as_str().unwrap().to_string());
    }
    let store = app.state.accounts.store();
    let refused = new_visitor("203.0.113.9").await;
    assert_refused(&refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let start = from(
        &app,
        Method::POST,
        "/api/v1/visitor/conversations",
        "203.0.113.9",
        None,
        json_body(json!({"message": "你好"})),
    )
    .await;
    assert_refused(&start, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(store.table("visitor_tokens").unwrap().len().unwrap(), 3);
    assert_eq!(store.table("conversations").unwrap().len().unwrap(), 0);
    let elsewhere = new_visitor("198.51.100.7").await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "another address");

    for _ in 0..2 {
        let captcha = from(
            &app,
            Method::GET,
            "/api/v1/auth/captcha",
            "203.0.113.9",
            None,
            None,
        )
        .await;
        assert_eq!(captcha.status, StatusCode::OK);
    }
    let captcha = from(
        &app,
        Method::GET,
        "/api/v1/auth/captcha",
        "203.0.113.9",
        None,
        None,
    )
    .await;
    assert_refused(&captcha, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    // Thirty days on, the tokens are refused and housekeeping purges them.
    let me = from(
        &app,
        Method::GET,
        "/api/v1/visitors/me",
        "203.0.113.9",
        Some(&tokens[0]),
        None,
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    app.clock.advance(SignedDuration::from_hours(30 * 24 + 1));
    let expired = from(
        &app,
        Method::GET,
        "/api/v1/visitors/me",
        "203.0.113.9",
        Some(&tokens[0]),
        None,
    )
    .await;
    assert_refused(&expired, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        app.state.accounts.purge_expired_visitor_tokens().unwrap(),
        4
    );
    assert_eq!(store.table("visitor_tokens").unwrap().len().unwrap(), 0);
}

#[tokio::test]
async fn long_messages_get_suggestions_from_their_keywords() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let (_, agent): (u64, Session) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let long = format!(
        "{}我上周申请了退款，到现在还没有到账，请问退款多久到账？",
        "您好，麻烦问一下。".repeat(25)
    );
    assert!(long.chars().count() > 200);
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/assist/suggest",
            json!({"text": long}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|suggestion| suggestion["id"].as_str())
        .collect();
    assert!(ids.contains(&"returns/refund"), "{body}");
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/assist/suggest",
            json!({"text": "退".repeat(2001)}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query")),
        "{body}"
    );
}

#[tokio::test]
async fn csv_cells_that_look_like_formulas_are_escaped_and_the_export_imports_unchanged() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    let (_, lead) = app
        .create_account(&admin, "lead", &["agent", "supervisor"])
        .await;
    let hostile = "=HYPERLINK(\"http://evil.example\",\"点我\")";
    let command = "=cmd|' /C calc'!A0";
    let (status, body) = app
        .json_as(
            Some(&lead),
            Method::POST,
            "/api/v1/quick-replies",
            json!({"scope": {"kind": "team"}, "title": "+标题", "content": command, "category": "@分类", "tags": ["-标签"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let reply_id = body["id"].as_u64().unwrap();
    let exported = app
        .call(
            Method::GET,
            "/api/v1/quick-replies/export?format=csv",
            None,
            Some(&lead),
            None,
        )
        .await;
    let text = exported.body.as_str().unwrap().to_string();
    assert!(text.contains("'=cmd|"), "{text}");
    assert!(
        text.contains("'+标题") && text.contains("'@分类") && text.contains("'-标签"),
        "{text}"
    );
    assert!(!text.contains(",=cmd"), "{text}");

    // Importing the export gives the same reply back (after removing the original).
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/quick-replies/{reply_id}"),
            None,
            Some(&lead),
            None,
        )
        .await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    let reply = app
        .call(
            Method::POST,
            "/api/v1/quick-replies/import?format=csv",
            Some(("text/csv", text.into_bytes())),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let (_, list) = app.get_as(Some(&lead), "/api/v1/quick-replies").await;
    let back = list["replies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|reply| reply["content"] == command)
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(back["title"], "+标题");
    assert_eq!(back["category"], "@分类");
    assert_eq!(back["tags"], json!(["-标签"]));

    // The transcript CSV escapes what the visitor typed.
    let reply = from(
        &app,
        Method::POST,
        "/api/v1/visitor/conversations",
        "203.0.113.9",
        None,
        json_body(json!({"message": hostile})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["conversation"]["id"].as_str().unwrap();
    let csv = app
        .call(
            Method::GET,
            &format!("/api/v1/conversations/{id}/transcript?format=csv"),
            None,
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK, "{}", csv.body);
    let csv = csv.body.as_str().unwrap();
    assert!(csv.contains("\"'=HYPERLINK("), "{csv}");
    assert!(!csv.contains(",\"=HYPERLINK"), "{csv}");
}

/// Every body of the API is a JSON object: the array form serde would read a struct from
/// (`[null, null]`), a bare string or number are refused before anything is stored, and a body
/// without the JSON content type too.
#[tokio::test]
async fn bodies_that_are_not_json_objects_are_refused() {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let before = visitor_records(&app);
    for body in ["[null,null]", "[]", "\"visitor\"", "42"] {
        let reply = from(
            &app,
            Method::POST,
            "/api/v1/visitors",
            "198.51.100.7",
            None,
            Some(("application/json", body.as_bytes().to_vec())),
        )
        .await;
        assert_refused(&reply, StatusCode::BAD_REQUEST, "bad_request");
        let login = from(
            &app,
            Method::POST,
            "/api/v1/auth/login",
            "198.51.100.7",
            None,
            Some(("application/json", body.as_bytes().to_vec())),
        )
        .await;
        assert_refused(&login, StatusCode::BAD_REQUEST, "bad_request");
    }
    assert_eq!(visitor_records(&app), before, "nothing stored");
    let untyped = from(
        &app,
        Method::POST,
        "/api/v1/auth/login",
        "198.51.100.7",
        None,
        Some((
            "text/plain",
            br#"{"username":"admin","password":"x"}"#.to_vec(),
        )),
    )
    .await;
    assert_refused(&untyped, StatusCode::BAD_REQUEST, "bad_request");
    // The object form still works, with or without a charset.
    let welcomed = from(
        &app,
        Method::POST,
        "/api/v1/visitors",
        "198.51.100.7",
        None,
        Some(("application/json; charset=utf-8", b"{}".to_vec())),
    )
    .await;
    assert_eq!(welcomed.status, StatusCode::CREATED, "{}", welcomed.body);
}
