//! The visitor's self-service (自助服务) before a conversation: articles only when the server is
//! confident, nothing for greetings and chit-chat, and the queue offered at once to a visitor who
//! asks for a person (issue 15).

use std::sync::Arc;

use super::common::INITIAL_PASSWORD;
use super::harness::{self, Harness};
use super::{agent_account, desk};

/// Whether the self-service panel is shown, and its heading and first article title.
const PANEL: &str = "const panel = document.querySelector('#suggest-panel'); \
     const first = document.querySelector('[data-testid=suggest-title]'); \
     return {shown: !panel.hidden, heading: document.querySelector('#suggest-heading').textContent, \
       first: first ? first.textContent : null, resolvedShown: !document.querySelector('#suggest-resolved').hidden, \
       items: document.querySelectorAll('[data-testid=suggest-item]').length};";

#[tokio::test]
async fn self_service_answers_questions_stays_quiet_for_chit_chat_and_offers_a_person() {
    if !harness::chromium_available() {
        return;
    }
    let (app, address, admin, group) = desk().await;
    agent_account(&app, &admin, "xiaomei", "小美", group).await;
    app.login_and_change_password("xiaomei", INITIAL_PASSWORD)
        .await;
    harness::run(
        "self_service_answers_questions_stays_quiet_for_chit_chat_and_offers_a_person",
        address,
        |h: Arc<Harness>| async move {
            let visitor = h.browser("visitor", false).await;
            visitor.open(&format!("/chat?group={group}")).await;
            visitor.wait("#welcome:not([hidden])").await;

            // A product fault: the product-fault article, not 修改绑定手机号 (which shares 机).
            visitor.fill("#message-input", "耳机没声音").await;
            let panel = visitor
                .wait_until("the self-service articles", &format!("const p = (() => {{ {PANEL} }})(); return p.items > 0 && p;"), vec![])
                .await;
            assert_eq!(panel["first"], "耳机、音箱没有声音怎么办", "{panel}");
            assert_eq!(panel["heading"], "猜您想问");
            assert_eq!(panel["resolvedShown"], true);

            // A greeting: the panel goes away and stays away.
            visitor.fill("#message-input", "你好呀").await;
            visitor
                .wait_until("the panel hidden for a greeting", "return document.querySelector('#suggest-panel').hidden;", vec![])
                .await;
            // Chit-chat that shares a word with an article (天气 in 恶劣天气): nothing either.
            visitor.fill("#message-input", "今天的天气很好哦").await;
            tokio::time::sleep(std::time::Duration::from_millis(800)).await;
            let panel = visitor.script(PANEL, vec![]).await;
            assert_eq!(panel["shown"], false, "{panel}");

            // 转人工: the queue is offered at once, without 解决了.
            visitor.fill("#message-input", "转人工").await;
            let panel = visitor
                .wait_until("the offer of a person", &format!("const p = (() => {{ {PANEL} }})(); return p.shown && p;"), vec![])
                .await;
            assert_eq!(panel["heading"], "需要人工服务？", "{panel}");
            assert_eq!(panel["resolvedShown"], false, "{panel}");
            assert_eq!(panel["items"], 0, "{panel}");
            visitor.click("#suggest-escalate").await;
            visitor
                .wait_until(
                    "the conversation started with the visitor's words",
                    "const m = document.querySelector('[data-testid=msg-visitor]'); return m && m.textContent.includes('转人工');",
                    vec![],
                )
                .await;
        },
    )
    .await;
}
