//! A WeChat 公众号 visitor in the agent's workbench (issue 18): the channel named in the header, the
//! reply window (48 hours, 5 messages per visitor message) shown above the composer and counted down
//! as the agent answers, and the send stopped, with WeChat's rule in Chinese, once nothing more may go.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

use kefu::channels::wechat::crypto::signature;
use kefu::channels::wechat::xml::Push;

use super::harness::{self, Harness};
use super::{agent_account, agent_says, desk, open_workbench};

#[tokio::test]
async fn a_wechat_visitor_shows_the_reply_window_and_the_send_stops_when_it_is_used() {
    if !harness::chromium_available() {
        return;
    }
    let (app, address, admin, group) = desk().await;
    agent_account(&app, &admin, "xiaomei", "小美", group).await;
    let (status, created) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/channels",
            json!({"kind": "wechat_official", "name": "服务号", "group": group, "app_id": "wxapp", "app_secret": "secret",
                   "callback_token": "tok123", "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let channel = created["channel"]["id"].as_u64().unwrap();
    let app_ref = &app;
    harness::run("a_wechat_visitor_shows_the_reply_window_and_the_send_stops_when_it_is_used", address, |h: Arc<Harness>| async move {
        let mei = h.browser("agent-xiaomei", false).await;
        open_workbench(&mei, "xiaomei").await;

        // The WeChat visitor writes: a push signed as WeChat signs it.
        let push = Push {
            to_user_name: Some("gh_7f083739789a".into()),
            from_user_name: Some("oWeChatVisitor".into()),
            create_time: Some("1795595400".into()),
            msg_type: Some("text".into()),
            content: Some("我的快递三天没动了".into()),
            msg_id: Some("6054768590064713728".into()),
            ..Push::default()
        };
        let (timestamp, nonce) = ("1795595400", "263014780");
        let signed = signature(&["tok123", timestamp, nonce]);
        let request = Request::post(format!(
            "/api/v1/channels/{channel}/callback?signature={signed}&timestamp={timestamp}&nonce={nonce}&openid=oWeChatVisitor"
        ))
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Body::from(push.to_xml()))
        .unwrap();
        let answered = app_ref.raw(request).await;
        assert_eq!(answered.status, StatusCode::OK, "{answered:?}");

        let conversation = mei
            .wait_until(
                "the WeChat visitor queued",
                "const row = document.querySelector('#queue-list [data-testid=queue-item]'); \
                 return row && row.dataset.conversation;",
                vec![],
            )
            .await
            .as_str()
            .expect("queue rows carry their id")
            .to_string();
        mei.click(&format!("#queue-accept-{conversation}")).await;
        mei.wait(&format!("#chat-pane[data-conversation=\"{conversation}\"][data-role=serving]"))
            .await;
        mei.wait_text("#chat-sub", "微信公众号").await;
        // Suggestions come as for any visitor.
        mei.wait("#suggestions [data-testid=suggestion]").await;
        mei.wait_text("#reply-window", "还可发送 5 条").await;
        agent_says(&mei, "您好，我帮您查一下物流").await;
        mei.wait_text("#reply-window", "还可发送 4 条").await;
        for text in ["已联系快递", "预计明天更新", "请留意短信", "有消息我再通知您"] {
            agent_says(&mei, text).await;
        }
        // Nothing more may go: the rule is shown and the send is off.
        mei.wait("#reply-window[data-open=false]").await;
        mei.wait_text("#reply-window", "最多可回复 5 条").await;
        let composer = mei
            .script(
                "return {send: document.querySelector('#btn-send').disabled, \
                 suggestion: document.querySelector('[data-testid=suggestion-send]').disabled, \
                 placeholder: document.querySelector('#composer-input').placeholder};",
                vec![],
            )
            .await;
        assert_eq!(composer["send"], true, "{composer}");
        assert_eq!(composer["suggestion"], true, "{composer}");
        assert!(composer["placeholder"].as_str().unwrap().contains("微信"), "{composer}");

        // The history filters by channel and names it on each row.
        mei.click("#nav-history").await;
        mei.wait("#hf-channel").await;
        mei.script(
            "document.querySelector('#hf-channel').value = 'wechat_official'; \
             document.querySelector('#history-filters').requestSubmit(); return true;",
            vec![],
        )
        .await;
        mei.wait_text("[data-testid=history-channel]", "微信公众号").await;
        let rows = mei
            .script(
                "return Array.from(document.querySelectorAll('[data-testid=history-row]')).map(r => r.dataset.conversation);",
                vec![],
            )
            .await;
        assert_eq!(rows, json!([conversation]), "{rows}");
        if let Ok(folder) = std::env::var("KEFU_CHANNEL_SHOT") {
            let png = mei.client.screenshot().await.unwrap();
            std::fs::write(std::path::Path::new(&folder).join("reply-window.png"), png).unwrap();
        }
    })
    .await;
}
