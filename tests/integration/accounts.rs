//! Accounts over the real router and a temporary sled: first start, sign-in and sign-out, lockout with
//! an injected clock, captcha, TOTP, password rules, session revocation, roles on every route group,
//! CSRF, settings, presence, avatars, the audit log, and `kefu user`.

use std::net::IpAddr;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use jiff::SignedDuration;
use serde_json::{json, Value};

use kefu::services::Clock;

use crate::common::{
    encode, post_from, Session, TestApp, TestDirs, CAPTCHA_ANSWER, INITIAL_ADMIN_PASSWORD,
    INITIAL_PASSWORD, PASSWORD,
};

async fn signed_out() -> TestApp {
    TestApp::start_signed_out(TestDirs::with_fixtures()).await
}

fn code(body: &Value) -> &str {
    body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"))
}

async fn refusal(app: &TestApp, username: &str, password: &str) -> (StatusCode, String) {
    let (status, body) = app.login(username, password).await.unwrap_err();
    (status, code(&body).to_string())
}

async fn audit(app: &TestApp, admin: &Session, filter: &str) -> Vec<Value> {
    let (status, body) = app
        .get_as(Some(admin), &format!("/api/v1/admin/audit{filter}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["entries"].as_array().unwrap().clone()
}

fn kinds(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|entry| entry["kind"].as_str().unwrap().to_string())
        .collect()
}

/// A minimal PNG header: signature and IHDR with the given size (imagesize reads no further).
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    bytes.extend_from_slice(&width.to_be_bytes());
    bytes.extend_from_slice(&height.to_be_bytes());
    bytes.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

#[tokio::test]
async fn first_start_creates_admin_who_must_change_the_password_first() {
    let app = signed_out().await;
    let session = app.login("admin", INITIAL_ADMIN_PASSWORD).await.unwrap();
    let (status, me) = app.get_as(Some(&session), "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["username"], "admin");
    assert_eq!(me["must_change_password"], true);
    assert_eq!(
        me["roles"],
        json!(["admin", "supervisor", "agent", "editor"])
    );
    assert!(me["csrf_token"]
        .as_str()
        .is_some_and(|token| token.len() > 20));

    let (status, body) = app.get_as(Some(&session), "/api/v1/admin/accounts").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "password_change_required");

    let (status, _) = app
        .json_as(
            Some(&session),
            Method::POST,
            "/api/v1/me/password",
            json!({"old_password": INITIAL_ADMIN_PASSWORD, "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app.get_as(Some(&session), "/api/v1/admin/accounts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accounts"].as_array().unwrap().len(), 1);

    // A restart over the same data keeps the account and does not bootstrap again.
    let dirs = app.stop();
    let app = TestApp::start_signed_out(dirs).await;
    assert!(app.login("admin", PASSWORD).await.is_ok());
    assert!(app.login("admin", INITIAL_ADMIN_PASSWORD).await.is_err());
}

#[tokio::test]
async fn without_a_configured_password_a_random_one_is_generated_and_works() {
    use kefu::services::accounts::Bootstrap;
    let folder = tempfile::tempdir().unwrap();
    let store = kefu::storage::Store::open(folder.path()).unwrap();
    let (accounts, bootstrap) = kefu::services::AccountService::open(
        store,
        kefu::config::AccountsConfig::default(),
        std::sync::Arc::new(kefu::services::SystemClock),
        Box::new(crate::common::FixedCaptcha),
    )
    .unwrap();
    let Bootstrap::CreatedWithRandomPassword(password) = bootstrap else {
        panic!("expected a generated password, got {bootstrap:?}");
    };
    assert!(kefu::services::accounts::check_password_rules("admin", &password).is_ok());
    let request = kefu::services::accounts::LoginRequest {
        username: "admin".into(),
        password,
        captcha_id: None,
        captcha: None,
        totp: None,
    };
    let outcome = accounts.login(&request, None, None).unwrap();
    assert!(outcome.account.must_change_password);
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_sign_out_ends_the_session() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let request = |proto: Option<&str>| {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(proto) = proto {
            builder = builder.header("x-forwarded-proto", proto);
        }
        builder
            .body(Body::from(
                json!({"username": "ADMIN", "password": PASSWORD}).to_string(),
            ))
            .unwrap()
    };
    let reply = app.raw(request(None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let cookie = reply.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("kefu_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(reply.body["account"]["username"], "admin");
    let behind_tls = app.raw(request(Some("https"))).await;
    let cookie = behind_tls.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");

    let (status, _) = app
        .json_as(Some(&admin), Method::POST, "/api/v1/auth/logout", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get_as(Some(&admin), "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "session_expired");
    let (status, body) = app.get_as(None, "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&body), "unauthenticated");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_answer_alike_and_disabled_accounts_are_refused() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (agent_id, agent) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let wrong = app.login("xiaomei", "Wrong-Pass-123").await.unwrap_err();
    let unknown = app.login("nobody", "Wrong-Pass-123").await.unwrap_err();
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong, unknown,
        "the answers must not tell which names exist"
    );
    assert_eq!(code(&wrong.1), "invalid_credentials");

    let (status, _) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{agent_id}"),
            json!({"disabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        refusal(&app, "xiaomei", PASSWORD).await,
        (StatusCode::FORBIDDEN, "account_disabled".into())
    );
    // A disabled account's open session is over too.
    let (status, body) = app.get_as(Some(&agent), "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn five_failures_lock_the_account_for_fifteen_minutes_even_for_the_right_password() {
    let app = signed_out().await;
    let admin = app.admin().await;
    app.create_account(&admin, "xiaomei", &["agent"]).await;
    for _ in 0..3 {
        assert_eq!(
            refusal(&app, "xiaomei", "Wrong-Pass-1").await.1,
            "invalid_credentials"
        );
    }
    let captcha = |answer: &str| json!({"username": "xiaomei", "password": "Wrong-Pass-1", "captcha_id": "", "captcha": answer});
    // 4th: with a captcha that was never issued; 5th reaches the limit.
    let (status, body) = app.login_with(captcha("x")).await.unwrap_err();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "captcha_invalid")
    );
    let (status, body) = app.login_with(captcha("x")).await.unwrap_err();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::LOCKED, "account_locked")
    );

    assert_eq!(
        refusal(&app, "xiaomei", PASSWORD).await,
        (StatusCode::LOCKED, "account_locked".into())
    );
    app.clock.advance(SignedDuration::from_mins(14));
    assert_eq!(refusal(&app, "xiaomei", PASSWORD).await.1, "account_locked");
    app.clock.advance(SignedDuration::from_mins(2));
    assert!(app.login("xiaomei", PASSWORD).await.is_ok());

    // Unknown names lock the same way, so locking tells nothing either.
    for _ in 0..3 {
        refusal(&app, "ghost", "Wrong-Pass-1").await;
    }
    for _ in 0..2 {
        app.login_with(json!({"username": "ghost", "password": "x"}))
            .await
            .unwrap_err();
    }
    assert_eq!(refusal(&app, "ghost", "x").await.1, "account_locked");

    let entries = audit(&app, &admin, "?account=xiaomei").await;
    let kinds = kinds(&entries);
    assert!(kinds.contains(&"account_locked".to_string()), "{kinds:?}");
    assert_eq!(kinds[0], "login_succeeded", "{kinds:?}");
    assert!(kinds.iter().filter(|kind| *kind == "login_failed").count() >= 6);
}

#[tokio::test]
async fn after_three_failures_a_captcha_is_required_and_a_missing_one_counts_as_a_failure() {
    let app = signed_out().await;
    let admin = app.admin().await;
    app.create_account(&admin, "xiaomei", &["agent"]).await;
    let (_, required) = app
        .get_as(None, "/api/v1/auth/captcha-required?username=xiaomei")
        .await;
    assert_eq!(required["required"], false);
    for _ in 0..3 {
        refusal(&app, "xiaomei", "Wrong-Pass-1").await;
    }
    let (_, required) = app
        .get_as(None, "/api/v1/auth/captcha-required?username=XIAOMEI")
        .await;
    assert_eq!(required["required"], true);

    // The right password without a captcha: refused, and counted (4th failure).
    assert_eq!(
        refusal(&app, "xiaomei", PASSWORD).await,
        (StatusCode::UNAUTHORIZED, "captcha_required".into())
    );
    let (status, challenge) = app.get_as(None, "/api/v1/auth/captcha").await;
    assert_eq!(status, StatusCode::OK);
    assert!(challenge["image"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    let captcha_id = challenge["captcha_id"].as_str().unwrap();
    let session = app
        .login_with(json!({
            "username": "xiaomei", "password": PASSWORD,
            "captcha_id": captcha_id, "captcha": CAPTCHA_ANSWER.to_uppercase(),
        }))
        .await;
    assert!(session.is_ok(), "{session:?}");
    // Success clears the count: no captcha next time.
    assert!(app.login("xiaomei", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn two_step_verification_enrols_with_a_qr_code_and_guards_sign_in() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (_, agent) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let (status, setup) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/me/2fa/setup",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{setup}");
    assert!(setup["qr_svg"].as_str().unwrap().contains("<svg"));
    assert!(setup["otpauth_url"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/kefu:xiaomei?"));
    let secret = setup["secret"].as_str().unwrap().to_string();
    let current_code =
        || kefu::services::accounts::totp_code(&secret, "xiaomei", app.clock.now()).unwrap();
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/me/2fa/confirm",
            json!({"code": "000000"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "totp_invalid")
    );
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/me/2fa/confirm",
            json!({"code": current_code()}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recovery: Vec<String> = serde_json::from_value(body["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    assert_eq!(
        refusal(&app, "xiaomei", PASSWORD).await,
        (StatusCode::UNAUTHORIZED, "totp_required".into())
    );
    let with = |totp: &str| json!({"username": "xiaomei", "password": PASSWORD, "totp": totp});
    let (status, body) = app.login_with(with("123456")).await.unwrap_err();
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "totp_invalid")
    );
    // The confirming code was used at this time step: replaying it is refused.
    let (_, body) = app.login_with(with(&current_code())).await.unwrap_err();
    assert_eq!(code(&body), "totp_invalid");
    app.clock.advance(SignedDuration::from_secs(30));
    assert!(app.login_with(with(&current_code())).await.is_ok());
    // A recovery code works once.
    assert!(app
        .login_with(with(&recovery[0].to_uppercase()))
        .await
        .is_ok());
    assert!(app.login_with(with(&recovery[0])).await.is_err());

    let entries = audit(&app, &admin, "?kind=two_factor_changed").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["detail"], "enabled");
}

#[tokio::test]
async fn admins_can_require_two_step_verification() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (agent_id, agent) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let (status, view) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{agent_id}"),
            json!({"two_factor_required": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["two_factor_required"], true);
    let (status, body) = app.get_as(Some(&agent), "/api/v1/me/settings").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "two_factor_setup_required")
    );
    let (status, me) = app.get_as(Some(&agent), "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["two_factor_required"], true);
    let (_, setup) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/me/2fa/setup",
            json!({}),
        )
        .await;
    let code_now = kefu::services::accounts::totp_code(
        setup["secret"].as_str().unwrap(),
        "xiaomei",
        app.clock.now(),
    )
    .unwrap();
    let (status, _) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/me/2fa/confirm",
            json!({"code": code_now}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.get_as(Some(&agent), "/api/v1/me/settings").await;
    assert_eq!(status, StatusCode::OK);
    // Required: it cannot be turned off.
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/me/2fa/disable",
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
}

#[tokio::test]
async fn password_rules_are_enforced_and_a_change_ends_every_other_session() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (_, first) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let second = app.login("xiaomei", PASSWORD).await.unwrap();
    let change = |old: &str, new: &str| json!({"old_password": old, "new_password": new});
    for weak in [
        "short1A",
        "alllowercase",
        "Xiaomei-2026",
        "Password1!",
        "P@ssw0rd123",
    ] {
        let (status, body) = app
            .json_as(
                Some(&first),
                Method::POST,
                "/api/v1/me/password",
                change(PASSWORD, weak),
            )
            .await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "weak_password"),
            "{weak}"
        );
    }
    let (status, body) = app
        .json_as(
            Some(&first),
            Method::POST,
            "/api/v1/me/password",
            change("Not-It-2026", "Brand-New-Pass-7"),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "wrong_password")
    );
    let (status, body) = app
        .json_as(
            Some(&first),
            Method::POST,
            "/api/v1/me/password",
            change(PASSWORD, "Brand-New-Pass-7"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.get_as(Some(&first), "/api/v1/me").await.0,
        StatusCode::OK
    );
    let (status, body) = app.get_as(Some(&second), "/api/v1/me").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_expired")
    );
    assert!(app.login("xiaomei", "Brand-New-Pass-7").await.is_ok());
    let entries = audit(&app, &admin, "?account=xiaomei&kind=password_changed").await;
    assert_eq!(entries.len(), 2, "the forced change and this one");
}

#[tokio::test]
async fn sessions_expire_after_idle_time_and_can_be_revoked() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (agent_id, agent) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    app.clock.advance(SignedDuration::from_hours(7));
    assert_eq!(
        app.get_as(Some(&agent), "/api/v1/me").await.0,
        StatusCode::OK
    );
    // Activity reset the idle timer: 7 more hours are still within 8 h of it.
    app.clock.advance(SignedDuration::from_hours(7));
    assert_eq!(
        app.get_as(Some(&agent), "/api/v1/me").await.0,
        StatusCode::OK
    );
    app.clock.advance(SignedDuration::from_mins(8 * 60 + 1));
    let (status, body) = app.get_as(Some(&agent), "/api/v1/me").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_expired")
    );

    // My sessions: list and revoke one.
    let admin = app.admin().await;
    let one = app.login("xiaomei", PASSWORD).await.unwrap();
    let two = app.login("xiaomei", PASSWORD).await.unwrap();
    let (_, list) = app.get_as(Some(&one), "/api/v1/me/sessions").await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other = sessions
        .iter()
        .find(|session| session["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/me/sessions/{other}"),
            None,
            Some(&one),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(Some(&two), "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    // An admin signs the account out everywhere.
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::DELETE,
            &format!("/api/v1/admin/accounts/{agent_id}/sessions"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], 1);
    assert_eq!(
        app.get_as(Some(&one), "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn state_changing_requests_need_the_csrf_token() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let settings = json!({"greeting": "您好"}).to_string();
    for token in [None, Some("wrong"), Some("")] {
        let mut builder = Request::builder()
            .method(Method::PATCH)
            .uri("/api/v1/me/settings")
            .header(header::COOKIE, &admin.cookie)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            builder = builder.header("x-csrf-token", token);
        }
        let reply = app
            .raw(builder.body(Body::from(settings.clone())).unwrap())
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{token:?}");
        assert_eq!(code(&reply.body), "csrf_failed");
    }
    let (status, _) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            "/api/v1/me/settings",
            json!({"greeting": "您好"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn every_route_group_checks_roles() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (_, agent) = app.create_account(&admin, "agent1", &["agent"]).await;
    let (_, editor) = app.create_account(&admin, "editor1", &["editor"]).await;
    let (_, supervisor) = app.create_account(&admin, "super1", &["supervisor"]).await;
    let (_, visitor) = app
        .json_as(None, Method::POST, "/api/v1/visitors", json!({}))
        .await;
    let visitor_token = visitor["token"].as_str().unwrap().to_string();

    let admin_routes: [(Method, &str, Value); 5] = [
        (Method::GET, "/api/v1/admin/accounts", Value::Null),
        (
            Method::POST,
            "/api/v1/admin/accounts",
            json!({"username": "x1", "password": INITIAL_PASSWORD}),
        ),
        (Method::GET, "/api/v1/admin/groups", Value::Null),
        (
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售后"}),
        ),
        (Method::GET, "/api/v1/admin/audit", Value::Null),
    ];
    for (method, uri, body) in &admin_routes {
        for session in [&agent, &editor, &supervisor] {
            let (status, reply) = app
                .json_as(Some(session), method.clone(), uri, body.clone())
                .await;
            assert_eq!(
                (status, code(&reply)),
                (StatusCode::FORBIDDEN, "forbidden"),
                "{method} {uri}"
            );
        }
        let (status, reply) = app.json_as(None, method.clone(), uri, body.clone()).await;
        assert_eq!(
            (status, code(&reply)),
            (StatusCode::UNAUTHORIZED, "unauthenticated"),
            "{method} {uri}"
        );
    }

    let article = json!({"markdown": "# 新文章\n\n正文。\n"});
    for session in [&agent, &supervisor] {
        let (status, body) = app
            .json_as(
                Some(session),
                Method::PUT,
                "/api/v1/kb/articles/faq/new",
                article.clone(),
            )
            .await;
        assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
        let (status, _) = app
            .get_as(
                Some(session),
                &format!("/api/v1/kb/search?q={}&drafts=true", encode("以旧换新")),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = app
            .get_as(Some(session), "/api/v1/kb/articles/returns/trade-in")
            .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "drafts are invisible to non-editors"
        );
    }
    let (status, _) = app
        .json_as(
            None,
            Method::PUT,
            "/api/v1/kb/articles/faq/new",
            article.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .json_as(
            Some(&editor),
            Method::PUT,
            "/api/v1/kb/articles/faq/new",
            article.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        app.get_as(Some(&editor), "/api/v1/kb/articles/returns/trade-in")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.get_as(None, "/api/v1/kb/errors").await.0,
        StatusCode::UNAUTHORIZED
    );
    // Search of published articles stays public (the visitor page's self-service FAQ).
    assert_eq!(
        app.get_as(None, &format!("/api/v1/kb/search?q={}", encode("退款")))
            .await
            .0,
        StatusCode::OK
    );

    // Every colleague sees the groups; visitors see none of the desk.
    assert_eq!(
        app.get_as(Some(&agent), "/api/v1/groups").await.0,
        StatusCode::OK
    );
    let visitor_request = |uri: &str| {
        Request::builder()
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {visitor_token}"))
            .body(Body::empty())
            .unwrap()
    };
    for uri in ["/api/v1/me", "/api/v1/groups", "/api/v1/admin/accounts"] {
        assert_eq!(
            app.raw(visitor_request(uri)).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    let me = app.raw(visitor_request("/api/v1/visitors/me")).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["visitor_id"], visitor["visitor_id"]);
    assert_eq!(me.body["conversation"], Value::Null);
}

#[tokio::test]
async fn admins_manage_accounts_groups_and_passwords() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (status, group) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售后", "description": "退换货"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let group_id = group["id"].as_u64().unwrap();
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售后"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "group_name_taken")
    );

    // No password given: one is generated and shown once.
    let (status, created) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/accounts",
            json!({"username": "Xiaomei", "display_name": "小美", "groups": [group_id]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["account"]["username"], "xiaomei");
    assert_eq!(created["account"]["roles"], json!(["agent"]));
    assert_eq!(created["account"]["max_concurrent"], 5);
    assert_eq!(created["account"]["groups"], json!([group_id]));
    let id = created["account"]["id"].as_u64().unwrap();
    let generated = created["initial_password"].as_str().unwrap().to_string();
    let session = app.login("xiaomei", &generated).await.unwrap();
    let (_, me) = app.get_as(Some(&session), "/api/v1/me").await;
    assert_eq!(me["must_change_password"], true);
    assert_eq!(me["display_name"], "小美");

    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/accounts",
            json!({"username": "XIAOMEI", "password": INITIAL_PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "username_taken")
    );
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/accounts",
            json!({"username": "a b", "password": INITIAL_PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/accounts",
            json!({"username": "weak", "password": "123"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "weak_password")
    );

    let (status, view) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{id}"),
            json!({"roles": ["agent", "supervisor"], "max_concurrent": 8}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["roles"], json!(["supervisor", "agent"]));
    assert_eq!(view["max_concurrent"], 8);

    let (status, members) = app
        .json_as(
            Some(&admin),
            Method::PUT,
            &format!("/api/v1/admin/groups/{group_id}/members"),
            json!({"account_ids": [1]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert_eq!(members["members"][0]["username"], "admin");
    let (_, account) = app
        .get_as(Some(&admin), &format!("/api/v1/admin/accounts/{id}"))
        .await;
    assert_eq!(account["groups"], json!([]), "membership replaced");
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PUT,
            "/api/v1/admin/groups/999/members",
            json!({"account_ids": []}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "group_not_found")
    );

    let (status, reset) = app
        .json_as(
            Some(&admin),
            Method::POST,
            &format!("/api/v1/admin/accounts/{id}/password"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let reset_password = reset["password"].as_str().unwrap();
    assert_eq!(
        app.get_as(Some(&session), "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(app.login("xiaomei", reset_password).await.is_ok());

    // The last admin cannot demote or disable themselves.
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            "/api/v1/admin/accounts/1",
            json!({"roles": ["agent"]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    let (status, body) = app
        .get_as(Some(&admin), "/api/v1/admin/accounts/424242")
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::NOT_FOUND, "account_not_found")
    );

    let kinds = kinds(&audit(&app, &admin, "").await);
    for expected in [
        "account_created",
        "roles_changed",
        "password_reset",
        "login_succeeded",
    ] {
        assert!(
            kinds.contains(&expected.to_string()),
            "{expected} in {kinds:?}"
        );
    }
}

#[tokio::test]
async fn audit_entries_record_time_account_and_address() {
    let app = signed_out().await;
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    let body = json!({"username": "admin", "password": "Wrong-Pass-1"}).to_string();
    let reply = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(("application/json", body.into_bytes())),
            None,
            Some(ip),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let admin = app.admin().await;
    let entries = audit(&app, &admin, "?kind=login_failed").await;
    let from_address: Vec<&Value> = entries
        .iter()
        .filter(|entry| entry["ip"] == "203.0.113.9")
        .collect();
    assert_eq!(from_address.len(), 1, "{entries:?}");
    assert_eq!(from_address[0]["account"], "admin");
    assert_eq!(from_address[0]["detail"], "invalid_credentials");
    assert_eq!(from_address[0]["at"], crate::common::START);
    let limited = audit(&app, &admin, "?limit=1").await;
    assert_eq!(limited.len(), 1);
    let older = audit(&app, &admin, &format!("?before={}", limited[0]["seq"])).await;
    assert!(older
        .iter()
        .all(|entry| entry["seq"].as_u64() < limited[0]["seq"].as_u64()));
}

#[tokio::test]
async fn sign_in_is_rate_limited_per_address() {
    // Failures lock an address after `address_lockout_failures`; this test is about the rate limit.
    let app = TestApp::start_configured(TestDirs::with_fixtures(), |config| {
        config.accounts.address_lockout_failures = 1000;
    })
    .await;
    let first: IpAddr = "198.51.100.1".parse().unwrap();
    let second: IpAddr = "198.51.100.2".parse().unwrap();
    let attempt = |ip: IpAddr, n: usize| {
        let body = json!({"username": format!("user{n}"), "password": "x"}).to_string();
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(("application/json", body.into_bytes())),
            None,
            Some(ip),
        )
    };
    let limit = app.state.accounts.config().login_attempts_per_minute as usize;
    // The limiter refills one attempt every 60/limit seconds of real time, so a slow machine may be
    // granted a few more than `limit` before the first refusal; never fewer.
    let mut allowed = 0;
    let refused = loop {
        let reply = attempt(first, allowed).await;
        if reply.status != StatusCode::UNAUTHORIZED {
            break reply;
        }
        allowed += 1;
        assert!(allowed <= limit + 5, "no refusal after {allowed} attempts");
    };
    assert!(allowed >= limit, "refused after {allowed} of {limit}");
    assert_eq!(
        (refused.status, code(&refused.body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert_eq!(attempt(second, 0).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    // (trusted proxies, TCP peer, X-Forwarded-For, address recorded)
    let cases = [
        // The peer is a trusted proxy; so is the proxy before it: the client is left of both.
        (
            vec!["10.0.0.0/8"],
            "10.9.9.9",
            "192.0.2.77, 10.0.0.1",
            "192.0.2.77",
        ),
        // Only the peer is trusted: the entry it appended (10.0.0.1) is the client as far as we know;
        // the client-written entry further left proves nothing.
        (
            vec!["10.9.9.9/32"],
            "10.9.9.9",
            "192.0.2.77, 10.0.0.1",
            "10.0.0.1",
        ),
        // An untrusted peer's header is ignored (a client spoofing its address).
        (
            vec!["10.0.0.0/8"],
            "203.0.113.5",
            "192.0.2.77",
            "203.0.113.5",
        ),
        // No trusted proxies: the peer.
        (vec![], "10.9.9.9", "192.0.2.77", "10.9.9.9"),
    ];
    for (trusted, peer, forwarded, expected) in cases {
        let app = TestApp::start_configured(TestDirs::with_fixtures(), |config| {
            config.server.trusted_proxies =
                trusted.iter().map(|net| net.parse().unwrap()).collect();
        })
        .await;
        let body = json!({"username": "admin", "password": "nope"}).to_string();
        let peer: IpAddr = peer.parse().unwrap();
        let builder = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/auth/login")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", forwarded)
            .extension(axum::extract::ConnectInfo(std::net::SocketAddr::new(
                peer, 5000,
            )));
        let reply = app.raw(builder.body(Body::from(body)).unwrap()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        let admin = app.admin().await;
        let entries = audit(&app, &admin, "?kind=login_failed").await;
        assert!(
            entries.iter().any(|entry| entry["ip"] == expected),
            "{trusted:?} {forwarded}: {entries:?}"
        );
    }
}

#[tokio::test]
async fn personal_settings_presence_and_auto_away() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (agent_id, agent) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let (_, settings) = app.get_as(Some(&agent), "/api/v1/me/settings").await;
    assert_eq!(settings["send_key"], "Enter");
    assert_eq!(settings["sound"], true);
    let (status, settings) = app
        .json_as(
            Some(&agent),
            Method::PATCH,
            "/api/v1/me/settings",
            json!({"display_name": "小美", "greeting": "您好，我是小美，很高兴为您服务", "send_key": "Ctrl+Enter", "sound": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["send_key"], "Ctrl+Enter");
    let (_, me) = app.get_as(Some(&agent), "/api/v1/me").await;
    assert_eq!(me["display_name"], "小美");
    assert_eq!(me["settings"]["greeting"], "您好，我是小美，很高兴为您服务");
    assert_eq!(me["settings"]["sound"], false);
    assert_eq!(me["settings"]["desktop_notifications"], true);
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::PATCH,
            "/api/v1/me/settings",
            json!({"send_key": "Shift"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, body) = app
        .json_as(
            Some(&agent),
            Method::PATCH,
            "/api/v1/me/settings",
            json!({"display_name": "  "}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );

    // Signing in made the agent online; a change by hand is timestamped.
    assert_eq!(me["presence"]["status"], "online");
    app.clock.advance(SignedDuration::from_mins(1));
    let (status, presence) = app
        .json_as(
            Some(&agent),
            Method::PUT,
            "/api/v1/me/presence",
            json!({"status": "busy"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(presence["status"], "busy");
    assert_eq!(presence["since"], "2026-11-25T08:01:00Z");
    app.json_as(
        Some(&agent),
        Method::PUT,
        "/api/v1/me/presence",
        json!({"status": "online"}),
    )
    .await;

    app.clock.advance(SignedDuration::from_mins(9));
    assert!(
        app.state.accounts.apply_auto_away().unwrap().is_empty(),
        "idle 9 min < 10"
    );
    app.clock.advance(SignedDuration::from_mins(2));
    let away: Vec<u64> = app
        .state
        .accounts
        .apply_auto_away()
        .unwrap()
        .iter()
        .map(|id| id.0)
        .collect();
    assert!(away.contains(&agent_id), "{away:?}");
    let (_, admin_view) = app.get_as(Some(&admin), "/api/v1/admin/accounts").await;
    let agent_view = admin_view["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["username"] == "xiaomei")
        .unwrap()
        .clone();
    assert_eq!(agent_view["presence"]["status"], "away");
    assert_eq!(agent_view["presence"]["automatic"], true);
    // Activity brings the agent back.
    let (_, me) = app.get_as(Some(&agent), "/api/v1/me").await;
    assert_eq!(me["presence"]["status"], "online");
    let history = app
        .state
        .accounts
        .presence_history(None, crate::common::START.parse().unwrap())
        .unwrap();
    let statuses: Vec<_> = history
        .iter()
        .filter(|change| change.account.0 == me["id"].as_u64().unwrap())
        .map(|change| format!("{:?}", change.status))
        .collect();
    assert_eq!(statuses, ["Online", "Busy", "Online", "Away", "Online"]);
}

#[tokio::test]
async fn avatars_must_be_small_images() {
    let app = signed_out().await;
    let admin = app.admin().await;
    let (id, agent) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let upload = |bytes: Vec<u8>, content_type: &'static str| {
        let agent = agent.clone();
        let app = &app;
        async move {
            app.call(
                Method::PUT,
                "/api/v1/me/avatar",
                Some((content_type, bytes)),
                Some(&agent),
                None,
            )
            .await
        }
    };
    let reply = upload(b"<svg onload=alert(1)>".to_vec(), "image/png").await;
    assert_eq!(
        (reply.status, code(&reply.body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_avatar")
    );
    let reply = upload(png(8000, 8000), "image/png").await;
    assert_eq!(
        (reply.status, code(&reply.body)),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "invalid_avatar")
    );
    let mut large = png(64, 64);
    large.resize(2 << 20, 0);
    let reply = upload(large, "image/png").await;
    assert_eq!(
        (reply.status, code(&reply.body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "avatar_too_large")
    );
    let mut huge = png(64, 64);
    huge.resize(5 << 20, 0);
    let reply = upload(huge, "image/png").await;
    assert_eq!(
        (reply.status, code(&reply.body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "avatar_too_large")
    );

    let reply = upload(png(64, 64), "application/octet-stream").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let url = reply.body["avatar_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("/api/v1/accounts/{id}/avatar?v=")),
        "{url}"
    );
    let served = app.call(Method::GET, &url, None, None, None).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.headers[header::CONTENT_TYPE], "image/png");
    let (status, _) = app.get_as(None, "/api/v1/accounts/1/avatar").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn the_user_command_adds_resets_and_disables_accounts() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dirs = TestDirs::empty();
    let data = dirs.data.to_str().unwrap().to_string();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(args)
            .args(["--data", &data])
            .current_dir(&dirs.root)
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("KEFU_ADMIN_PASSWORD", INITIAL_ADMIN_PASSWORD)
            .envs(dirs.storage_env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, out, err) = run(
        &[
            "user",
            "add",
            "xiaomei",
            "--role",
            "agent",
            "--role",
            "editor",
            "--password-stdin",
        ],
        Some("Initial-Pass-99\n"),
    );
    assert_eq!(status, Some(0), "{out}{err}");
    assert!(out.contains("created `xiaomei`"), "{out}");
    let (status, _, err) = run(&["user", "add", "weak", "--password-stdin"], Some("123\n"));
    assert_eq!(status, Some(1));
    assert!(err.contains("too weak"), "{err}");
    let (status, _, err) = run(&["user", "add", "x", "--role", "boss"], None);
    assert_eq!(status, Some(2), "clap refuses an unknown role: {err}");
    let (status, out, _) = run(
        &["user", "passwd", "xiaomei", "--password-stdin"],
        Some("Another-Pass-42\n"),
    );
    assert_eq!(status, Some(0), "{out}");
    let (status, _, _) = run(&["user", "disable", "xiaomei"], None);
    assert_eq!(status, Some(0));
    let (_, listing, _) = run(&["user", "list"], None);
    let line = listing
        .lines()
        .find(|line| line.contains("xiaomei"))
        .unwrap();
    assert!(
        line.contains("agent,editor") && line.contains("(disabled)"),
        "{listing}"
    );
    assert!(
        listing.contains("admin"),
        "first start bootstrapped admin: {listing}"
    );
    let (status, _, err) = run(&["user", "disable", "nobody"], None);
    assert_eq!(status, Some(1));
    assert!(err.contains("no account `nobody`"), "{err}");

    // The server sees the CLI's work: the reset password, and the disabled flag.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app = TestApp::start_signed_out(dirs).await;
        let (status, body) = app.login("xiaomei", "Another-Pass-42").await.unwrap_err();
        assert_eq!(
            (status, code(&body)),
            (StatusCode::FORBIDDEN, "account_disabled")
        );
    });
}

/// Sign-ins to one name are checked one at a time: twenty wrong passwords sent at once get exactly
/// as many password checks as sent one by one (three, then a captcha is required, then the lock),
/// and the right password is refused during the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_cannot_outrun_the_captcha_and_the_lock() {
    let app = signed_out().await;
    let admin = app.admin().await;
    app.create_account(&admin, "gina", &["agent"]).await;
    let attempts = (0..20).map(|attempt| {
        app.json_as(
            None,
            Method::POST,
            "/api/v1/auth/login",
            json!({"username": "gina", "password": format!("Wrong-Guess-{attempt}!")}),
        )
    });
    let answers = futures_util::future::join_all(attempts).await;
    let codes: Vec<String> = answers
        .iter()
        .map(|(_, body)| code(body).to_string())
        .collect();
    let checked = codes
        .iter()
        .filter(|code| *code == "invalid_credentials")
        .count();
    assert_eq!(checked, 3, "{codes:?}");
    assert!(
        codes.iter().any(|code| code == "account_locked"),
        "{codes:?}"
    );
    assert_eq!(
        refusal(&app, "gina", PASSWORD).await,
        (
            StatusCode::from_u16(423).unwrap(),
            "account_locked".to_string()
        )
    );
}

/// A sign-in as `username` sent over a real connection from `from`: the status and error code (empty
/// on success).
async fn sign_in_from(
    app: &TestApp,
    server: std::net::SocketAddr,
    from: IpAddr,
    username: &str,
    password: &str,
    with_captcha: bool,
) -> (StatusCode, String) {
    let mut request = json!({"username": username, "password": password});
    if with_captcha {
        let (status, challenge) = app.get_as(None, "/api/v1/auth/captcha").await;
        assert_eq!(status, StatusCode::OK);
        request["captcha_id"] = challenge["captcha_id"].clone();
        request["captcha"] = json!(CAPTCHA_ANSWER);
    }
    let reply = post_from(server, from, "/api/v1/auth/login", &request).await;
    let code = reply.body["code"].as_str().unwrap_or_default().to_string();
    (reply.status, code)
}

const OWNER_ADDRESS: &str = "127.0.0.1";
const ATTACKER_ADDRESS: &str = "127.0.0.2";

/// Failures from an attacker's address lock that address out of `admin`, and make `admin` need a
/// captcha everywhere; they never lock the owner out: from another address the right password with a
/// solved captcha signs in, while the attacker stays locked even with the right password.
#[tokio::test]
async fn failures_from_one_address_never_lock_the_owner_out() {
    let mut app = signed_out().await;
    app.admin().await;
    let server = app.listen().await;
    let owner: IpAddr = OWNER_ADDRESS.parse().unwrap();
    let attacker: IpAddr = ATTACKER_ADDRESS.parse().unwrap();
    let mut answers = Vec::new();
    for attempt in 0..5 {
        let wrong = format!("Wrong-Guess-{attempt}!");
        answers.push(sign_in_from(&app, server, attacker, "admin", &wrong, false).await);
    }
    let codes: Vec<&str> = answers.iter().map(|(_, code)| code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "invalid_credentials",
            "invalid_credentials",
            "invalid_credentials",
            "captcha_required",
            "account_locked"
        ]
    );
    assert_eq!(
        sign_in_from(&app, server, attacker, "admin", PASSWORD, true).await,
        (StatusCode::LOCKED, "account_locked".to_string()),
        "the attacker's address may not confirm the password during its lock"
    );
    let (_, required) = app
        .get_as(None, "/api/v1/auth/captcha-required?username=admin")
        .await;
    assert_eq!(required["required"], true);

    assert_eq!(
        sign_in_from(&app, server, owner, "admin", PASSWORD, false).await,
        (StatusCode::UNAUTHORIZED, "captcha_required".to_string())
    );
    assert_eq!(
        sign_in_from(&app, server, owner, "admin", PASSWORD, true).await,
        (StatusCode::OK, String::new())
    );
    assert_eq!(
        sign_in_from(&app, server, attacker, "admin", PASSWORD, true).await,
        (StatusCode::LOCKED, "account_locked".to_string()),
        "the owner's sign-in does not lift the attacker's lock"
    );
    // The lock is recorded with the address it holds for.
    let admin = app.admin().await;
    let entries = audit(&app, &admin, "?kind=account_locked").await;
    assert!(
        entries[0]["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains(ATTACKER_ADDRESS)),
        "{entries:?}"
    );
    app.shutdown().await;
}

/// An address failing for many usernames is locked out of every username, the one it knows the
/// password of included, while other addresses sign in as usual.
#[tokio::test]
async fn an_address_failing_across_usernames_is_locked_out_of_all_of_them() {
    let mut app = signed_out().await;
    let admin = app.admin().await;
    app.create_account(&admin, "xiaomei", &["agent"]).await;
    let server = app.listen().await;
    let owner: IpAddr = OWNER_ADDRESS.parse().unwrap();
    let attacker: IpAddr = ATTACKER_ADDRESS.parse().unwrap();
    let limit = app.state.accounts.config().address_lockout_failures;
    for n in 0..limit - 1 {
        let answer = sign_in_from(&app, server, attacker, &format!("user{n}"), "x", false).await;
        assert_eq!(
            answer,
            (StatusCode::UNAUTHORIZED, "invalid_credentials".into())
        );
    }
    assert_eq!(
        sign_in_from(&app, server, attacker, "another", "x", false).await,
        (StatusCode::LOCKED, "account_locked".to_string()),
        "the failure that reaches the limit locks the address"
    );
    assert_eq!(
        sign_in_from(&app, server, attacker, "xiaomei", PASSWORD, false).await,
        (StatusCode::LOCKED, "account_locked".to_string())
    );
    assert_eq!(
        sign_in_from(&app, server, owner, "xiaomei", PASSWORD, false).await,
        (StatusCode::OK, String::new())
    );
    // The lock ends with its window.
    app.clock.advance(SignedDuration::from_mins(
        app.state.accounts.config().lockout_minutes as i64,
    ));
    assert_eq!(
        sign_in_from(&app, server, attacker, "xiaomei", PASSWORD, false).await,
        (StatusCode::OK, String::new())
    );
    app.shutdown().await;
}

/// An agent online for longer than the auto-away limit is not set away by the first housekeeping
/// after a restart (or after another node of a cluster takes over the desk): their activity before it
/// is unknown, so idleness counts from the restart.
#[tokio::test]
async fn auto_away_counts_idleness_from_a_restart_at_the_earliest() {
    let start: jiff::Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
    let app = TestApp::start_signed_out_at(TestDirs::with_fixtures(), start).await;
    let admin = app.admin().await;
    let (agent_id, agent) = app.create_account(&admin, "xiaomei", &["agent"]).await;
    let (status, _) = app
        .json_as(
            Some(&agent),
            Method::PUT,
            "/api/v1/me/presence",
            json!({"status": "online"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let dirs = app.stop();
    let restarted = start + SignedDuration::from_mins(30);
    let app = TestApp::start_signed_out_at(dirs, restarted).await;
    assert!(
        app.state.accounts.apply_auto_away().unwrap().is_empty(),
        "online since 30 min, but the process only knows 0 min of it"
    );
    app.clock.advance(SignedDuration::from_mins(11));
    let away = app.state.accounts.apply_auto_away().unwrap();
    assert!(away.iter().any(|id| id.0 == agent_id), "{away:?}");
}
