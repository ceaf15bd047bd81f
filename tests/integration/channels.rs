//! Channels against the real router, with a stand-in server on a loopback port playing the other
//! side: the app's server for the API channel (webhook receiver), WeChat's API for a 公众号 (token,
//! 客服消息 send, media), 企业微信's for 微信客服 (gettoken, sync_msg with cursors, send_msg).
//! Pushes are signed and encrypted as WeChat does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use jiff::SignedDuration;
use serde_json::{json, Value};

use kefu::channels::wechat::crypto::{signature, MessageCrypt};
use kefu::channels::wechat::xml::Push;
use kefu::domain::AccountId;
use kefu::services::conversations::{Party, TransferTarget};
use kefu::services::webhooks::sign;

use crate::common::{Reply, Session, TestApp, TestDirs};
use crate::conversations::agent;

/// A 1×1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\x0dIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82";

/// The start of an AMR voice file (its magic, then silence frames).
const AMR: &[u8] = b"#!AMR\n\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

/// Everything a stand-in received: (path, query, headers, body).
type Calls = Arc<Mutex<Vec<(String, HashMap<String, String>, HeaderMap, Bytes)>>>;

/// The other side of a channel: records every call; the WeChat routes answer as WeChat does.
#[derive(Clone, Default)]
struct StandIn {
    calls: Calls,
    /// Access tokens issued so far; only the newest is accepted.
    tokens: Arc<Mutex<Vec<String>>>,
    /// Tokens WeChat no longer accepts (answered 40001).
    revoked: Arc<Mutex<Vec<String>>>,
    /// 微信客服 messages waiting, in order; a cursor is the index of the next one.
    kf_messages: Arc<Mutex<Vec<Value>>>,
}

impl StandIn {
    fn calls_to(&self, path: &str) -> Vec<(HashMap<String, String>, Value)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(called, ..)| called == path)
            .map(|(_, query, _, body)| {
                (
                    query.clone(),
                    serde_json::from_slice(body).unwrap_or(Value::Null),
                )
            })
            .collect()
    }

    fn record(&self, path: &str, query: HashMap<String, String>, headers: HeaderMap, body: Bytes) {
        self.calls
            .lock()
            .unwrap()
            .push((path.to_string(), query, headers, body));
    }

    /// `errcode` 40001 for a revoked or unknown token.
    fn token_refused(&self, query: &HashMap<String, String>) -> Option<Json<Value>> {
        let token = query.get("access_token").cloned().unwrap_or_default();
        let valid = self.tokens.lock().unwrap().contains(&token)
            && !self.revoked.lock().unwrap().contains(&token);
        (!valid).then(|| {
            Json(json!({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid or not latest"}))
        })
    }

    fn issue_token(&self) -> Json<Value> {
        let mut tokens = self.tokens.lock().unwrap();
        let token = format!("TOKEN-{}", tokens.len() + 1);
        tokens.push(token.clone());
        Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}))
    }

    /// Serves the stand-in on a loopback port; its base URL.
    async fn serve(self) -> String {
        async fn token(
            State(stand_in): State<StandIn>,
            Query(query): Query<HashMap<String, String>>,
            headers: HeaderMap,
        ) -> Json<Value> {
            stand_in.record("token", query, headers, Bytes::new());
            stand_in.issue_token()
        }
        async fn send(
            State(stand_in): State<StandIn>,
            Query(query): Query<HashMap<String, String>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Json<Value> {
            if let Some(refused) = stand_in.token_refused(&query) {
                stand_in.record("send refused", query, headers, body);
                return refused;
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            // Scripted refusals: a visitor who unfollowed (45015 for good); a busy moment (-1, once).
            if request["touser"] == "oGONE" {
                stand_in.record("send refused", query, headers, body);
                return Json(
                    json!({"errcode": 45015, "errmsg": "response out of time limit or subscription is canceled"}),
                );
            }
            if request["touser"] == "oBUSY" && stand_in.calls_to("send busy").is_empty() {
                stand_in.record("send busy", query, headers, body);
                return Json(json!({"errcode": -1, "errmsg": "system error"}));
            }
            stand_in.record("send", query, headers, body);
            Json(json!({"errcode": 0, "errmsg": "ok"}))
        }
        async fn upload(
            State(stand_in): State<StandIn>,
            Query(query): Query<HashMap<String, String>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Json<Value> {
            if let Some(refused) = stand_in.token_refused(&query) {
                return refused;
            }
            stand_in.record("upload", query, headers, body);
            Json(json!({"type": "image", "media_id": "MEDIA-UP-1", "created_at": 1_795_595_400}))
        }
        async fn media(
            State(stand_in): State<StandIn>,
            Query(query): Query<HashMap<String, String>>,
            headers: HeaderMap,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            if let Some(refused) = stand_in.token_refused(&query) {
                return refused.into_response();
            }
            let voice = query
                .get("media_id")
                .is_some_and(|id| id.starts_with("VOICE"));
            stand_in.record("media", query, headers, Bytes::new());
            if voice {
                return ([(header::CONTENT_TYPE, "audio/amr")], AMR).into_response();
            }
            ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
        }
        async fn sync_msg(
            State(stand_in): State<StandIn>,
            Query(query): Query<HashMap<String, String>>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Json<Value> {
            if let Some(refused) = stand_in.token_refused(&query) {
                return refused;
            }
            let request: Value = serde_json::from_slice(&body).unwrap();
            stand_in.record("sync_msg", query, headers, body);
            let from: usize = request["cursor"]
                .as_str()
                .map(|cursor| cursor.trim_start_matches('c').parse().unwrap())
                .unwrap_or(0);
            let messages = stand_in.kf_messages.lock().unwrap().clone();
            // One message per page, so the cursor moves page by page.
            let page: Vec<Value> = messages.iter().skip(from).take(1).cloned().collect();
            let next = from + page.len();
            Json(json!({
                "errcode": 0, "errmsg": "ok",
                "next_cursor": format!("c{next}"),
                "has_more": i32::from(next < messages.len()),
                "msg_list": page,
            }))
        }
        let app = axum::Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/gettoken", get(token))
            .route("/cgi-bin/message/custom/send", post(send))
            .route("/cgi-bin/kf/send_msg", post(send))
            .route("/cgi-bin/media/upload", post(upload))
            .route("/cgi-bin/media/get", get(media))
            .route("/cgi-bin/kf/sync_msg", post(sync_msg))
            .route(
                "/kefu/events",
                post(
                    |State(stand_in): State<StandIn>, headers: HeaderMap, body: Bytes| async move {
                        stand_in.record("events", HashMap::new(), headers, body);
                        StatusCode::OK
                    },
                ),
            )
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }
}

/// The app pointed at the stand-in, the admin, a group in `mode` and its agent (online).
async fn app_with(
    dirs: TestDirs,
    base: &str,
    mode: &str,
) -> (TestApp, Session, u64, (u64, Session)) {
    let base = base.to_string();
    let app = TestApp::start_configured(dirs, move |config| {
        config.channels.wechat_api_base = base.clone();
        config.channels.wecom_api_base = base;
        config.channels.public_url = "https://kefu.example.com".into();
    })
    .await;
    let admin = app.admin().await;
    let group = app.skill_group(&admin, "售后", mode).await;
    let agent = agent(&app, &admin, "xiaowang", group).await;
    (app, admin, group, agent)
}

async fn create_channel(app: &TestApp, admin: &Session, request: Value) -> Value {
    let (status, created) = app
        .json_as(Some(admin), Method::POST, "/api/v1/admin/channels", request)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// Sends `request` with `Authorization: Bearer <token>`.
async fn with_token(
    app: &TestApp,
    token: &str,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> Reply {
    let builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let request = match body {
        Some(body) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    app.raw(request).await
}

/// A raw XML or empty POST/GET to the callback.
async fn callback(app: &TestApp, method: Method, uri: &str, xml: Option<String>) -> Reply {
    let builder = Request::builder().method(method).uri(uri);
    let request = match xml {
        Some(xml) => builder
            .header(header::CONTENT_TYPE, "text/xml")
            .body(Body::from(xml)),
        None => builder.body(Body::empty()),
    }
    .unwrap();
    app.raw(request).await
}

/// Waits (up to 5 s) until `check` holds.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..250 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within 5 s: {what}");
}

/// The latest conversation of `visitor` (by the desk's visitor id) in the history, as the admin sees it.
async fn conversations_of_channel(app: &TestApp, admin: &Session, label: &str) -> Vec<Value> {
    let (status, page) = app
        .get_as(
            Some(admin),
            &format!("/api/v1/conversations?channel={label}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["conversation"].clone())
        .collect()
}

fn bodies(app: &TestApp, conversation: &str) -> Vec<String> {
    app.state
        .conversations
        .messages_after(conversation, 0, &Party::Visitor)
        .unwrap()
        .into_iter()
        .map(|message| message.body)
        .collect()
}

#[tokio::test]
async fn the_api_channel_brings_app_users_to_the_desk_and_replies_come_back_signed() {
    let stand_in = StandIn::default();
    let base = stand_in.clone().serve().await;
    let (app, admin, group, (agent_id, agent_session)) =
        app_with(TestDirs::with_fixtures(), &base, "manual").await;

    // Only admins manage channels; fields of another kind are refused.
    let (status, _) = app
        .json_as(
            Some(&agent_session),
            Method::POST,
            "/api/v1/admin/channels",
            json!({"kind": "api", "webhook_url": format!("{base}/kefu/events")}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/channels",
            json!({"kind": "api", "webhook_url": format!("{base}/kefu/events"), "app_id": "wx1"}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "{body}"
    );

    let created = create_channel(
        &app,
        &admin,
        json!({"kind": "api", "name": "商城 App", "group": group, "webhook_url": format!("{base}/kefu/events")}),
    )
    .await;
    let channel_id = created["channel"]["id"].as_u64().unwrap();
    let token = created["secrets"]["token"].as_str().unwrap().to_string();
    let secret = created["secrets"]["webhook_secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("ch1."), "{created}");
    // Secrets are shown once.
    let (_, listed) = app.get_as(Some(&admin), "/api/v1/admin/channels").await;
    assert!(!listed.to_string().contains(&token[4..]), "{listed}");
    assert!(!listed.to_string().contains(&secret), "{listed}");
    // The channel's webhook is not among the admin's own webhooks.
    let (_, webhooks) = app.get_as(Some(&admin), "/api/v1/admin/webhooks").await;
    assert_eq!(webhooks["webhooks"], json!([]));

    // Without a token, or with a wrong one, nothing.
    let refused = with_token(
        &app,
        "ch1.wrong",
        Method::POST,
        "/api/v1/channels/api/visitors",
        Some(json!({"user_id": "u1"})),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let visitor = with_token(
        &app,
        &token,
        Method::POST,
        "/api/v1/channels/api/visitors",
        Some(json!({"user_id": "u10086", "name": "王女士"})),
    )
    .await;
    assert_eq!(visitor.status, StatusCode::OK, "{}", visitor.body);
    assert_eq!(visitor.body["conversation"], Value::Null);
    let started = with_token(
        &app,
        &token,
        Method::POST,
        "/api/v1/channels/api/conversations",
        Some(json!({"user_id": "u10086", "name": "王女士", "message": "订单什么时候发货？", "page": "app://orders/1"})),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    assert_eq!(started.body["visitor_id"], visitor.body["visitor_id"]);
    assert_eq!(started.body["conversation"]["state"], "queued");
    let conversation = started.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stored = app.state.conversations.conversation(&conversation).unwrap();
    assert_eq!(stored.channel, "api");
    assert_eq!(stored.identity.external_id.as_deref(), Some("u10086"));
    assert_eq!(stored.identity.name.as_deref(), Some("王女士"));

    // The agent accepts and answers, types, and the user's next message comes in.
    let desk = &app.state.conversations;
    desk.accept(AccountId(agent_id), &conversation)
        .await
        .unwrap();
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        &conversation,
        None,
        "今天下午发出",
        vec![],
        false,
    )
    .await
    .unwrap();
    // Transferred to a colleague, who answers too.
    let (colleague_id, _) = agent(&app, &admin, "xiaoli", group).await;
    desk.transfer(
        AccountId(agent_id),
        &conversation,
        TransferTarget::Agent(AccountId(colleague_id)),
        "请跟进发货",
        "",
    )
    .await
    .unwrap();
    desk.answer_transfer(AccountId(colleague_id), &conversation, true)
        .await
        .unwrap();
    desk.send(
        &Party::Agent(AccountId(colleague_id)),
        &conversation,
        None,
        "我来跟进",
        vec![],
        false,
    )
    .await
    .unwrap();
    desk.typing(&Party::Agent(AccountId(agent_id)), &conversation, true)
        .unwrap();
    let upload = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "/api/v1/channels/api/conversations/{conversation}/files?name=shot.png"
        ))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::from(PNG.to_vec()))
        .unwrap();
    let uploaded = app.raw(upload).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    let hash = uploaded.body["hash"].as_str().unwrap();
    let message = with_token(
        &app,
        &token,
        Method::POST,
        &format!("/api/v1/channels/api/conversations/{conversation}/messages"),
        Some(json!({"body": "好的，谢谢", "client_key": "app-1", "attachments": [hash]})),
    )
    .await;
    assert_eq!(message.status, StatusCode::CREATED, "{}", message.body);
    let again = with_token(
        &app,
        &token,
        Method::POST,
        &format!("/api/v1/channels/api/conversations/{conversation}/messages"),
        Some(json!({"body": "好的，谢谢", "client_key": "app-1", "attachments": [hash]})),
    )
    .await;
    assert_eq!(
        again.body["seq"], message.body["seq"],
        "a resend is stored once"
    );
    desk.end(&Party::Agent(AccountId(agent_id)), &conversation)
        .await
        .unwrap();

    // Replies, typing, the end and the rating request go to the app's server, signed.
    app.state.webhooks.deliver_due().await.unwrap();
    let received: Vec<(HeaderMap, Value, String)> = stand_in
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, ..)| path == "events")
        .map(|(_, _, headers, body)| {
            (
                headers.clone(),
                serde_json::from_slice(body).unwrap(),
                String::from_utf8(body.to_vec()).unwrap(),
            )
        })
        .collect();
    let events: Vec<&str> = received
        .iter()
        .map(|(_, body, _)| body["event"].as_str().unwrap())
        .collect();
    for wanted in ["message", "typing", "state", "ended", "rating_requested"] {
        assert!(events.contains(&wanted), "{wanted} not in {events:?}");
    }
    for (headers, body, raw) in &received {
        let timestamp = headers["x-kefu-timestamp"].to_str().unwrap();
        let expected = format!("sha256={}", sign(&secret, timestamp, raw));
        assert_eq!(headers["x-kefu-signature"].to_str().unwrap(), expected);
        assert_eq!(body["conversation"], conversation.as_str());
        assert_eq!(body["user_id"], "u10086");
    }
    let reply = received
        .iter()
        .find(|(_, body, _)| body["event"] == "message" && body["message"]["kind"] == "agent")
        .expect("the agent's reply");
    assert_eq!(reply.1["message"]["body"], "今天下午发出");
    assert!(
        received
            .iter()
            .any(|(_, body, _)| body["message"]["body"] == "我来跟进"
                && body["message"]["sender_name"] == "xiaoli"),
        "the colleague's reply after the transfer"
    );
    assert!(
        !received
            .iter()
            .any(|(_, body, _)| body["message"]["body"] == "好的，谢谢"),
        "the user's own messages are not sent back"
    );

    // The user rates; the delivery log shows every delivery.
    let rated = with_token(
        &app,
        &token,
        Method::POST,
        &format!("/api/v1/channels/api/conversations/{conversation}/rating"),
        Some(json!({"stars": 5, "comment": "很快"})),
    )
    .await;
    assert_eq!(rated.status, StatusCode::CREATED, "{}", rated.body);
    let (_, deliveries) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/channels/{channel_id}/deliveries"),
        )
        .await;
    assert!(
        deliveries["deliveries"].as_array().unwrap().len() >= 5,
        "{deliveries}"
    );

    // The conversation is in the history under its channel, and only there.
    let api = conversations_of_channel(&app, &admin, "api").await;
    assert_eq!(api.len(), 1);
    assert_eq!(api[0]["id"], conversation.as_str());
    assert!(conversations_of_channel(&app, &admin, "web")
        .await
        .is_empty());

    // Statistics count by channel.
    let (status, summary) = app
        .get_as(Some(&admin), "/api/v1/stats/summary?by=channel&day=today")
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let row = |label: &str| {
        summary["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["channel"] == label)
            .cloned()
            .unwrap_or_else(|| panic!("no `{label}` row in {summary}"))
    };
    assert_eq!(row("api")["figures"]["received"], 1, "{summary}");
    assert_eq!(row("api")["figures"]["ended"], 1, "{summary}");
    assert_eq!(row("api")["figures"]["satisfaction_avg"], 5.0, "{summary}");
    assert_eq!(row("web")["figures"]["received"], 0, "{summary}");
    let (status, hourly) = app
        .get_as(
            Some(&admin),
            "/api/v1/stats/hourly?scope=channel&channel=api&day=today",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hourly}");
    let received: u64 = hourly["hours"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hour| hour["figures"]["received"].as_u64().unwrap())
        .sum();
    assert_eq!(received, 1);
    let (status, _) = app
        .get_as(Some(&agent_session), "/api/v1/stats/summary?by=channel")
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "channel figures are for supervisors"
    );

    // Another channel's token cannot reach it; the test button pings the webhook.
    let other = create_channel(
        &app,
        &admin,
        json!({"kind": "api", "webhook_url": format!("{base}/kefu/events")}),
    )
    .await;
    let other_token = other["secrets"]["token"].as_str().unwrap();
    let hidden = with_token(
        &app,
        other_token,
        Method::GET,
        &format!("/api/v1/channels/api/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND, "{}", hidden.body);
    let (status, test) = app
        .json_as(
            Some(&admin),
            Method::POST,
            &format!("/api/v1/admin/channels/{channel_id}/test"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{test}");
    assert_eq!(test["ok"], true, "{test}");

    // A rotated token replaces the old one.
    let (_, rotated) = app
        .json_as(
            Some(&admin),
            Method::POST,
            &format!("/api/v1/admin/channels/{channel_id}/rotate"),
            json!({}),
        )
        .await;
    let new_token = rotated["secrets"]["token"].as_str().unwrap();
    let old = with_token(
        &app,
        &token,
        Method::GET,
        &format!("/api/v1/channels/api/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let new = with_token(
        &app,
        new_token,
        Method::GET,
        &format!("/api/v1/channels/api/conversations/{conversation}"),
        None,
    )
    .await;
    assert_eq!(new.status, StatusCode::OK, "{}", new.body);
    assert_eq!(new.body["conversation"]["rated"], true);
}

/// A signed plain-mode push of the 公众号.
fn plain_push(token: &str, push: &Push, timestamp: &str, nonce: &str) -> (String, String) {
    let signature = signature(&[token, timestamp, nonce]);
    let openid = push.from_user_name.clone().unwrap_or_default();
    (
        format!("signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={openid}"),
        push.to_xml(),
    )
}

/// A safe-mode push: the message encrypted in an `<Encrypt>` envelope, with `msg_signature`.
fn safe_push(
    crypt: &MessageCrypt,
    token: &str,
    push: &Push,
    timestamp: &str,
    nonce: &str,
) -> (String, String) {
    let encrypted = crypt.encrypt(&push.to_xml());
    let msg_signature = crypt.msg_signature(timestamp, nonce, &encrypted);
    let signature = signature(&[token, timestamp, nonce]);
    let envelope = Push {
        to_user_name: push.to_user_name.clone(),
        encrypt: Some(encrypted),
        ..Push::default()
    };
    (
        format!("signature={signature}&timestamp={timestamp}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_signature}"),
        envelope.to_xml(),
    )
}

fn text_push(openid: &str, text: &str, msg_id: u64) -> Push {
    Push {
        to_user_name: Some("gh_7f083739789a".into()),
        from_user_name: Some(openid.into()),
        create_time: Some("1795595400".into()),
        msg_type: Some("text".into()),
        content: Some(text.into()),
        msg_id: Some(msg_id.to_string()),
        ..Push::default()
    }
}

#[tokio::test]
async fn a_wechat_official_account_visitor_reaches_the_desk_and_is_answered_within_the_rules() {
    let stand_in = StandIn::default();
    let base = stand_in.clone().serve().await;
    let (app, admin, group, (agent_id, agent_session)) =
        app_with(TestDirs::with_fixtures(), &base, "manual").await;
    let created = create_channel(
        &app,
        &admin,
        json!({"kind": "wechat_official", "name": "服务号", "group": group, "app_id": "wx2c2769f8efd9abc2", "app_secret": "app-secret-1"}),
    )
    .await;
    let id = created["channel"]["id"].as_u64().unwrap();
    assert_eq!(
        created["channel"]["callback_url"],
        format!("https://kefu.example.com/api/v1/channels/{id}/callback")
    );
    let token = created["secrets"]["callback_token"]
        .as_str()
        .unwrap()
        .to_string();
    let aes_key = created["secrets"]["encoding_aes_key"]
        .as_str()
        .unwrap()
        .to_string();
    let crypt = MessageCrypt::new(&token, &aes_key, "wx2c2769f8efd9abc2").unwrap();
    let url = format!("/api/v1/channels/{id}/callback");

    // The URL check echoes `echostr` when the signature matches.
    let good = signature(&[&token, "1795595400", "263014780"]);
    let checked = callback(
        &app,
        Method::GET,
        &format!("{url}?signature={good}&timestamp=1795595400&nonce=263014780&echostr=5837397520"),
        None,
    )
    .await;
    assert_eq!(
        (checked.status, checked.body.clone()),
        (StatusCode::OK, json!(5837397520u64))
    );
    let forged = callback(
        &app,
        Method::GET,
        &format!("{url}?signature=0000&timestamp=1795595400&nonce=263014780&echostr=1"),
        None,
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // A plain-mode text push is answered `success` at once, then reaches the desk.
    let (query, xml) = plain_push(
        &token,
        &text_push("oABC123", "我的快递三天没动了", 6054768590064713728),
        "1795595400",
        "1",
    );
    let answered = callback(
        &app,
        Method::POST,
        &format!("{url}?{query}"),
        Some(xml.clone()),
    )
    .await;
    assert_eq!(answered.body, json!("success"), "{answered:?}");
    // WeChat repeats a push it thinks unanswered: taken once.
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    let mut conversation = String::new();
    for _ in 0..250 {
        if let Some(found) = conversations_of_channel(&app, &admin, "wechat_official")
            .await
            .first()
        {
            conversation = found["id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!conversation.is_empty(), "the push did not reach the desk");
    // A forged push is refused and nothing is kept.
    let (query, xml) = plain_push(
        "wrong-token",
        &text_push("oEVIL", "假消息", 1),
        "1795595400",
        "2",
    );
    let refused = callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // Safe mode: the encrypted push lands in the same conversation; so does a picture.
    let (query, xml) = safe_push(
        &crypt,
        &token,
        &text_push("oABC123", "单号 SF123", 6054768590064713729),
        "1795595401",
        "3",
    );
    let answered = callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    assert_eq!(answered.body, json!("success"));
    let image = Push {
        msg_type: Some("image".into()),
        content: None,
        pic_url: Some("http://mmbiz.example/pic".into()),
        media_id: Some("MEDIA-IN-1".into()),
        msg_id: Some("6054768590064713730".into()),
        ..text_push("oABC123", "", 0)
    };
    let (query, xml) = safe_push(&crypt, &token, &image, "1795595402", "4");
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    let location = Push {
        msg_type: Some("location".into()),
        content: None,
        location_x: Some("23.134521".into()),
        location_y: Some("113.358803".into()),
        label: Some("广州市海珠区".into()),
        msg_id: Some("6054768590064713731".into()),
        ..text_push("oABC123", "", 0)
    };
    let (query, xml) = plain_push(&token, &location, "1795595403", "5");
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    eventually("four visitor messages", || {
        app.state
            .conversations
            .messages_after(&conversation, 0, &Party::Visitor)
            .unwrap()
            .iter()
            .filter(|message| message.kind == kefu::domain::SenderKind::Visitor)
            .count()
            == 4
    })
    .await;
    let texts = bodies(&app, &conversation);
    assert_eq!(texts[0], "我的快递三天没动了");
    assert!(texts.contains(&"单号 SF123".to_string()), "{texts:?}");
    assert!(
        texts.iter().any(|text| text.contains("广州市海珠区")),
        "{texts:?}"
    );
    let messages = app
        .state
        .conversations
        .messages_after(&conversation, 0, &Party::Visitor)
        .unwrap();
    let picture = messages
        .iter()
        .find(|message| !message.attachments.is_empty())
        .expect("the picture");
    assert_eq!(picture.attachments[0].content_type, "image/png");
    assert_eq!(stand_in.calls_to("media")[0].0["media_id"], "MEDIA-IN-1");
    let stored = app.state.conversations.conversation(&conversation).unwrap();
    assert_eq!(stored.channel, "wechat_official");

    // The agent answers: 客服消息 send gets the text, and a picture after media/upload.
    let desk = &app.state.conversations;
    desk.accept(AccountId(agent_id), &conversation)
        .await
        .unwrap();
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        &conversation,
        None,
        "您好，我帮您查一下",
        vec![],
        false,
    )
    .await
    .unwrap();
    app.state.channels.deliver_due().await.unwrap();
    let sent = stand_in.calls_to("send");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        sent[0].1,
        json!({"touser": "oABC123", "msgtype": "text", "text": {"content": "您好，我帮您查一下"}})
    );
    assert_eq!(stand_in.calls_to("token").len(), 1);
    assert_eq!(
        stand_in.calls_to("token")[0].0["appid"],
        "wx2c2769f8efd9abc2"
    );

    // WeChat stops accepting the token (40001): a new one is fetched and the send made again.
    stand_in.revoked.lock().unwrap().push("TOKEN-1".into());
    let attachment = desk
        .upload(
            &Party::Agent(AccountId(agent_id)),
            &conversation,
            "快递单.png",
            PNG.to_vec(),
        )
        .await
        .unwrap();
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        &conversation,
        None,
        "这是快递单",
        vec![attachment],
        false,
    )
    .await
    .unwrap();
    app.state.channels.deliver_due().await.unwrap();
    assert_eq!(
        stand_in.calls_to("token").len(),
        2,
        "the token was fetched again"
    );
    let sent = stand_in.calls_to("send");
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert_eq!(sent[1].0["access_token"], "TOKEN-2");
    assert_eq!(sent[1].1["text"]["content"], "这是快递单");
    assert_eq!(
        sent[2].1,
        json!({"touser": "oABC123", "msgtype": "image", "image": {"media_id": "MEDIA-UP-1"}})
    );
    assert_eq!(stand_in.calls_to("upload")[0].0["type"], "image");

    // WeChat takes at most 2048 bytes of text in one message: a longer one is refused, uncounted.
    let refused = desk
        .send(
            &Party::Agent(AccountId(agent_id)),
            &conversation,
            None,
            &"很".repeat(700),
            vec![],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "reply_window_closed");
    assert!(refused.to_string().contains("2048 字节"), "{refused}");

    // Five messages per visitor message: three were sent, two more may go, then none.
    let (_, window) = app
        .get_as(
            Some(&agent_session),
            &format!("/api/v1/conversations/{conversation}/reply-window"),
        )
        .await;
    assert_eq!(
        (window["open"].clone(), window["left"].clone()),
        (json!(true), json!(2)),
        "{window}"
    );
    for text in ["第四条", "第五条"] {
        desk.send(
            &Party::Agent(AccountId(agent_id)),
            &conversation,
            None,
            text,
            vec![],
            false,
        )
        .await
        .unwrap();
    }
    let refused = desk
        .send(
            &Party::Agent(AccountId(agent_id)),
            &conversation,
            None,
            "第六条",
            vec![],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "reply_window_closed");
    assert!(refused.to_string().contains("最多可回复 5 条"), "{refused}");

    // The visitor writes again: five more, for 48 hours.
    let (query, xml) = plain_push(
        &token,
        &text_push("oABC123", "还在吗", 6054768590064713732),
        "1795595404",
        "6",
    );
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    eventually("the window reopens", || {
        app.state
            .channels
            .reply_window(&app.state.conversations.conversation(&conversation).unwrap())
            .unwrap()
            .left
            == Some(5)
    })
    .await;
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        &conversation,
        None,
        "在的",
        vec![],
        false,
    )
    .await
    .unwrap();

    // 48 hours later WeChat allows nothing: the send is refused with a clear message.
    app.clock.advance(SignedDuration::from_hours(49));
    let refused = desk
        .send(
            &Party::Agent(AccountId(agent_id)),
            &conversation,
            None,
            "您好？",
            vec![],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "reply_window_closed");
    assert!(refused.to_string().contains("48 小时"), "{refused}");
    // Two days idle ended the session: the agent signs in again.
    let agent_session = app
        .login("xiaowang", crate::common::PASSWORD)
        .await
        .unwrap();
    let (_, window) = app
        .get_as(
            Some(&agent_session),
            &format!("/api/v1/conversations/{conversation}/reply-window"),
        )
        .await;
    assert_eq!(window["open"], false, "{window}");
    assert!(
        window["reason"].as_str().unwrap().contains("48 小时"),
        "{window}"
    );
    // Internal notes are not WeChat's business.
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        &conversation,
        None,
        "备注：用户失联",
        vec![],
        true,
    )
    .await
    .unwrap();
    app.state.channels.deliver_due().await.unwrap();
    assert!(
        !stand_in
            .calls_to("send")
            .iter()
            .any(|(_, body)| body.to_string().contains("备注")),
        "notes never go to WeChat"
    );
}

#[tokio::test]
async fn a_wechat_visitor_rates_by_replying_a_digit() {
    let stand_in = StandIn::default();
    let base = stand_in.clone().serve().await;
    let (app, admin, group, (agent_id, agent_session)) =
        app_with(TestDirs::with_fixtures(), &base, "manual").await;
    // The agent greets at every assignment: the greeting goes to WeChat too, and counts.
    let (status, body) = app
        .json_as(
            Some(&agent_session),
            Method::PATCH,
            "/api/v1/me/settings",
            json!({"greeting": "您好，我是小王"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let created = create_channel(
        &app,
        &admin,
        json!({"kind": "wechat_official", "group": group, "app_id": "wxapp", "app_secret": "s", "callback_token": "tok123", "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}),
    )
    .await;
    let id = created["channel"]["id"].as_u64().unwrap();
    let url = format!("/api/v1/channels/{id}/callback");
    let push = |text: &str, msg_id: u64| {
        plain_push(
            "tok123",
            &text_push("oRATE", text, msg_id),
            "1795595400",
            "9",
        )
    };
    let (query, xml) = push("发票开错了", 1);
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    let mut conversation = String::new();
    for _ in 0..250 {
        if let Some(found) = conversations_of_channel(&app, &admin, "wechat_official")
            .await
            .first()
        {
            conversation = found["id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let desk = &app.state.conversations;
    desk.accept(AccountId(agent_id), &conversation)
        .await
        .unwrap();
    let window = app
        .state
        .channels
        .reply_window(&desk.conversation(&conversation).unwrap())
        .unwrap();
    assert_eq!(window.left, Some(4), "the greeting was counted");
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        &conversation,
        None,
        "已为您重开",
        vec![],
        false,
    )
    .await
    .unwrap();
    desk.end(&Party::Agent(AccountId(agent_id)), &conversation)
        .await
        .unwrap();
    app.state.channels.deliver_due().await.unwrap();
    let sent = stand_in.calls_to("send");
    assert_eq!(sent[0].1["text"]["content"], "您好，我是小王", "{sent:?}");
    assert!(
        sent.iter().any(|(_, body)| body["text"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("回复数字 1-5")),
        "{sent:?}"
    );
    let (query, xml) = push("5", 2);
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    eventually("the rating", || {
        app.state
            .conversations
            .conversation(&conversation)
            .unwrap()
            .rating
            .is_some()
    })
    .await;
    assert_eq!(
        desk.conversation(&conversation)
            .unwrap()
            .rating
            .unwrap()
            .stars,
        5
    );
    // The thanks is queued right after the rating is stored.
    let mut thanked = false;
    for _ in 0..250 {
        app.state.channels.deliver_due().await.unwrap();
        thanked = stand_in
            .calls_to("send")
            .iter()
            .any(|(_, body)| body["text"]["content"] == "感谢您的评价，欢迎随时再来咨询！");
        if thanked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(thanked, "{:?}", stand_in.calls_to("send"));
}

/// A 微信客服 message as `sync_msg` lists it.
fn kf_text(msgid: &str, text: &str) -> Value {
    json!({"msgid": msgid, "open_kfid": "wkKF001", "external_userid": "wmEXT001", "send_time": 1_795_595_400, "origin": 3, "msgtype": "text", "text": {"content": text}})
}

/// The encrypted `kf_msg_or_event` callback of 企业微信.
fn kf_event(crypt: &MessageCrypt, token_param: &str, nonce: &str) -> (String, String) {
    let event = Push {
        to_user_name: Some("ww12345678910".into()),
        create_time: Some("1795595400".into()),
        msg_type: Some("event".into()),
        event: Some("kf_msg_or_event".into()),
        token: Some(token_param.into()),
        open_kf_id: Some("wkKF001".into()),
        ..Push::default()
    };
    let encrypted = crypt.encrypt(&event.to_xml());
    let msg_signature = crypt.msg_signature("1795595400", nonce, &encrypted);
    let envelope = Push {
        to_user_name: Some("ww12345678910".into()),
        encrypt: Some(encrypted),
        agent_id: Some("1000002".into()),
        ..Push::default()
    };
    (
        format!("msg_signature={msg_signature}&timestamp=1795595400&nonce={nonce}"),
        envelope.to_xml(),
    )
}

#[tokio::test]
async fn wecom_customer_service_reads_with_a_durable_cursor_and_keeps_the_five_message_limit() {
    let stand_in = StandIn::default();
    let base = stand_in.clone().serve().await;
    let (app, admin, group, (agent_id, _)) =
        app_with(TestDirs::with_fixtures(), &base, "manual").await;
    let created = create_channel(
        &app,
        &admin,
        json!({"kind": "wecom_kf", "name": "微信客服", "group": group, "app_id": "ww12345678910", "app_secret": "kf-secret"}),
    )
    .await;
    let id = created["channel"]["id"].as_u64().unwrap();
    let token = created["secrets"]["callback_token"]
        .as_str()
        .unwrap()
        .to_string();
    let aes_key = created["secrets"]["encoding_aes_key"]
        .as_str()
        .unwrap()
        .to_string();
    let crypt = MessageCrypt::new(&token, &aes_key, "ww12345678910").unwrap();
    let url = format!("/api/v1/channels/{id}/callback");

    // The URL check: the echostr comes back decrypted.
    let echostr = crypt.encrypt("1616140317555161061");
    let msg_signature = crypt.msg_signature("1795595400", "263014780", &echostr);
    let checked = callback(
        &app,
        Method::GET,
        &format!(
            "{url}?msg_signature={msg_signature}&timestamp=1795595400&nonce=263014780&echostr={}",
            crate::common::encode(&echostr)
        ),
        None,
    )
    .await;
    assert_eq!(
        (checked.status, checked.body),
        (StatusCode::OK, json!(1616140317555161061u64))
    );

    // Two messages wait; the callback makes kefu read them page by page.
    stand_in.kf_messages.lock().unwrap().extend([
        kf_text("msg-1", "你好，想退货"),
        kf_text("msg-2", "订单号 20261125"),
    ]);
    let (query, xml) = kf_event(
        &crypt,
        "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR",
        "1",
    );
    let answered = callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    assert_eq!(answered.status, StatusCode::OK, "{answered:?}");
    let mut conversation = String::new();
    for _ in 0..250 {
        if let Some(found) = conversations_of_channel(&app, &admin, "wecom_kf")
            .await
            .first()
        {
            conversation = found["id"].as_str().unwrap().to_string();
            if bodies(&app, &conversation).contains(&"订单号 20261125".to_string()) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(bodies(&app, &conversation).contains(&"订单号 20261125".to_string()));
    let syncs = stand_in.calls_to("sync_msg");
    assert_eq!(
        syncs[0].1["token"],
        "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR"
    );
    assert_eq!(syncs[0].1["open_kfid"], "wkKF001");
    assert_eq!(
        syncs[0].1.get("cursor"),
        None,
        "the first read has no cursor"
    );
    assert_eq!(syncs[1].1["cursor"], "c1");

    // The agent answers through kf/send_msg, five times at most per customer message.
    let desk = &app.state.conversations;
    desk.accept(AccountId(agent_id), &conversation)
        .await
        .unwrap();
    for n in 1..=5 {
        desk.send(
            &Party::Agent(AccountId(agent_id)),
            &conversation,
            None,
            &format!("回复{n}"),
            vec![],
            false,
        )
        .await
        .unwrap();
    }
    let refused = desk
        .send(
            &Party::Agent(AccountId(agent_id)),
            &conversation,
            None,
            "回复6",
            vec![],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(refused.code().as_str(), "reply_window_closed");
    app.state.channels.deliver_due().await.unwrap();
    let sent = stand_in.calls_to("send");
    assert_eq!(sent.len(), 5, "{sent:?}");
    assert_eq!(
        sent[0].1,
        json!({"touser": "wmEXT001", "open_kfid": "wkKF001", "msgtype": "text", "text": {"content": "回复1"}})
    );
    assert_eq!(stand_in.calls_to("token")[0].0["corpid"], "ww12345678910");
    assert_eq!(stand_in.calls_to("token")[0].0["corpsecret"], "kf-secret");

    // kefu restarts; the cursor survived, so only the new message is read.
    let dirs = app.stop();
    let app = TestApp::start_configured(dirs, {
        let base = base.clone();
        move |config| {
            config.channels.wechat_api_base = base.clone();
            config.channels.wecom_api_base = base;
        }
    })
    .await;
    stand_in
        .kf_messages
        .lock()
        .unwrap()
        .push(kf_text("msg-3", "什么时候退款"));
    let (query, xml) = kf_event(&crypt, "ENCnext", "2");
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    eventually("the third message", || {
        bodies(&app, &conversation).contains(&"什么时候退款".to_string())
    })
    .await;
    let syncs = stand_in.calls_to("sync_msg");
    assert_eq!(syncs.last().unwrap().1["cursor"], "c2", "{syncs:?}");
    let customer_messages = app
        .state
        .conversations
        .messages_after(&conversation, 0, &Party::Visitor)
        .unwrap()
        .into_iter()
        .filter(|message| message.kind == kefu::domain::SenderKind::Visitor)
        .count();
    assert_eq!(customer_messages, 3, "nothing read twice");
    // The customer wrote again: the agent may answer again.
    desk_send_ok(&app, agent_id, &conversation, "马上处理").await;
}

async fn desk_send_ok(app: &TestApp, agent: u64, conversation: &str, text: &str) {
    app.state
        .conversations
        .send(
            &Party::Agent(AccountId(agent)),
            conversation,
            None,
            text,
            vec![],
            false,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn wechat_events_open_the_window_a_click_speaks_and_voice_is_kept_as_a_file() {
    let stand_in = StandIn::default();
    let base = stand_in.clone().serve().await;
    let (app, admin, group, _) = app_with(TestDirs::with_fixtures(), &base, "manual").await;
    let created = create_channel(
        &app,
        &admin,
        json!({"kind": "wechat_official", "group": group, "app_id": "wxapp", "app_secret": "s", "callback_token": "tok123", "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}),
    )
    .await;
    let id = created["channel"]["id"].as_u64().unwrap();
    let channel = app.state.channels.channel(id).unwrap();
    let url = format!("/api/v1/channels/{id}/callback");
    let event = |openid: &str, event: &str, key: Option<&str>, nonce: &str| {
        let push = Push {
            to_user_name: Some("gh_7f083739789a".into()),
            from_user_name: Some(openid.into()),
            create_time: Some(format!("17955954{nonce}")),
            msg_type: Some("event".into()),
            event: Some(event.into()),
            event_key: key.map(str::to_string),
            ..Push::default()
        };
        plain_push("tok123", &push, "1795595400", nonce)
    };
    let window_of = |openid: &str| {
        let visitor = app
            .state
            .channels
            .find_visitor(channel.id, openid)
            .unwrap()
            .expect("the visitor is known");
        kefu::channels::window::window(&visitor, app.state.conversations.now())
    };

    // Following opens the window for three messages within a minute, and starts no conversation.
    let (query, xml) = event("oFOLLOW", "subscribe", None, "11");
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    eventually("the follower is known", || {
        app.state
            .channels
            .find_visitor(channel.id, "oFOLLOW")
            .unwrap()
            .is_some_and(|visitor| visitor.last_inbound.is_some())
    })
    .await;
    assert_eq!(window_of("oFOLLOW").left, Some(3));
    assert!(conversations_of_channel(&app, &admin, "wechat_official")
        .await
        .is_empty());
    app.clock.advance(SignedDuration::from_secs(61));
    assert!(!window_of("oFOLLOW").open, "a minute later");
    // Unfollowing closes it for good.
    let (query, xml) = event("oFOLLOW", "unsubscribe", None, "12");
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    eventually("the unfollow", || {
        app.state
            .channels
            .find_visitor(channel.id, "oFOLLOW")
            .unwrap()
            .is_some_and(|visitor| visitor.unsubscribed)
    })
    .await;
    assert!(window_of("oFOLLOW").reason.unwrap().contains("取消关注"));

    // A menu click speaks for the visitor: a conversation starts with the menu's key.
    let (query, xml) = event("oCLICK", "CLICK", Some("MENU_HUMAN_SERVICE"), "13");
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    let mut conversation = String::new();
    for _ in 0..250 {
        if let Some(found) = conversations_of_channel(&app, &admin, "wechat_official")
            .await
            .first()
        {
            conversation = found["id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        bodies(&app, &conversation)[0],
        "[点击菜单] MENU_HUMAN_SERVICE"
    );
    assert_eq!(window_of("oCLICK").left, Some(3));

    // A voice message becomes an .amr file of the conversation, with WeChat's transcription.
    let voice = Push {
        to_user_name: Some("gh_7f083739789a".into()),
        from_user_name: Some("oCLICK".into()),
        create_time: Some("1795595414".into()),
        msg_type: Some("voice".into()),
        media_id: Some("VOICE-1".into()),
        format: Some("amr".into()),
        recognition: Some("我要退货".into()),
        msg_id: Some("6054768590064719999".into()),
        ..Push::default()
    };
    let (query, xml) = plain_push("tok123", &voice, "1795595400", "14");
    callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
    eventually("the voice message", || {
        app.state
            .conversations
            .messages_after(&conversation, 0, &Party::Visitor)
            .unwrap()
            .iter()
            .any(|message| !message.attachments.is_empty())
    })
    .await;
    let messages = app
        .state
        .conversations
        .messages_after(&conversation, 0, &Party::Visitor)
        .unwrap();
    let voice = messages
        .iter()
        .find(|message| !message.attachments.is_empty())
        .unwrap();
    assert_eq!(voice.attachments[0].content_type, "audio/amr");
    assert!(voice.attachments[0].name.ends_with(".amr"), "{voice:?}");
    assert_eq!(voice.body, "[语音转文字] 我要退货");
    // The message also opened the 48-hour window on top of the click's.
    assert_eq!(window_of("oCLICK").left, Some(8));
}

#[tokio::test]
async fn a_push_answered_but_not_handled_before_a_crash_is_handled_at_the_next_start() {
    let stand_in = StandIn::default();
    let base = stand_in.clone().serve().await;
    let (app, admin, group, _) = app_with(TestDirs::with_fixtures(), &base, "manual").await;
    let created = create_channel(
        &app,
        &admin,
        json!({"kind": "wechat_official", "group": group, "app_id": "wxapp", "app_secret": "s"}),
    )
    .await;
    let id = created["channel"]["id"].as_u64().unwrap();
    // The push was checked and kept (what the callback does before answering `success`), and
    // kefu stopped before handling it.
    app.state
        .channels
        .keep_push(
            id,
            &text_push("oCRASH", "在吗？我的订单还没到", 6054768590064700001),
        )
        .unwrap();
    let dirs = app.stop();
    let app = TestApp::start_configured(dirs, move |config| {
        config.channels.wechat_api_base = base.clone();
    })
    .await;
    let admin = app.admin().await;
    let mut found = Vec::new();
    for _ in 0..250 {
        found = conversations_of_channel(&app, &admin, "wechat_official").await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(found.len(), 1, "the kept push was handled at the start");
    let conversation = found[0]["id"].as_str().unwrap();
    assert_eq!(bodies(&app, conversation)[0], "在吗？我的订单还没到");
    eventually("the inbox emptied", || {
        app.state
            .accounts
            .store()
            .table("channel_inbox")
            .unwrap()
            .is_empty()
            .unwrap()
    })
    .await;
}

#[tokio::test]
async fn refused_sends_are_kept_as_errors_and_busy_ones_retried_in_order() {
    let stand_in = StandIn::default();
    let base = stand_in.clone().serve().await;
    let (app, admin, group, (agent_id, _)) =
        app_with(TestDirs::with_fixtures(), &base, "manual").await;
    let created = create_channel(
        &app,
        &admin,
        json!({"kind": "wechat_official", "group": group, "app_id": "wxapp", "app_secret": "s", "callback_token": "tok123", "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}),
    )
    .await;
    let id = created["channel"]["id"].as_u64().unwrap();
    let url = format!("/api/v1/channels/{id}/callback");
    let desk = &app.state.conversations;
    let mut conversations = HashMap::new();
    for (openid, msg_id) in [("oGONE", 1u64), ("oBUSY", 2)] {
        let (query, xml) = plain_push(
            "tok123",
            &text_push(openid, "你好", msg_id),
            "1795595400",
            &msg_id.to_string(),
        );
        callback(&app, Method::POST, &format!("{url}?{query}"), Some(xml)).await;
        let mut conversation = None;
        for _ in 0..250 {
            conversation = app
                .state
                .channels
                .find_visitor(id, openid)
                .unwrap()
                .and_then(|visitor| visitor.conversation);
            if conversation.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let conversation = conversation.expect("the conversation started");
        desk.accept(AccountId(agent_id), &conversation)
            .await
            .unwrap();
        conversations.insert(openid, conversation);
    }
    let gone = &conversations["oGONE"];
    let busy = &conversations["oBUSY"];
    desk.send(
        &Party::Agent(AccountId(agent_id)),
        gone,
        None,
        "还在吗",
        vec![],
        false,
    )
    .await
    .unwrap();
    for text in ["第一条", "第二条"] {
        desk.send(
            &Party::Agent(AccountId(agent_id)),
            busy,
            None,
            text,
            vec![],
            false,
        )
        .await
        .unwrap();
    }
    app.state.channels.deliver_due().await.unwrap();
    // 45015 is final: dropped, kept among the channel's errors.
    let (_, channel) = app
        .get_as(Some(&admin), &format!("/api/v1/admin/channels/{id}"))
        .await;
    assert!(
        channel["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("errcode 45015"),
        "{channel}"
    );
    // -1 (busy) is retried after 5 s; the second message waits behind the first.
    assert!(
        stand_in.calls_to("send").is_empty(),
        "{:?}",
        stand_in.calls_to("send")
    );
    app.clock.advance(SignedDuration::from_secs(6));
    app.state.channels.deliver_due().await.unwrap();
    let sent: Vec<Value> = stand_in
        .calls_to("send")
        .into_iter()
        .map(|(_, body)| body["text"]["content"].clone())
        .collect();
    assert_eq!(sent, [json!("第一条"), json!("第二条")]);
    assert!(app
        .state
        .accounts
        .store()
        .table("channel_outbox")
        .unwrap()
        .is_empty()
        .unwrap());
}
