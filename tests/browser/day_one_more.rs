//! Day-one defects found walking the desk in a browser (issue 13, items 8 to 14): long pastes, the
//! visitor list, the editor's ids and titles, category names, the transfer picker, whole passages
//! sent from suggestions, and the small things (scrollbar, captcha, emoji icons).

use std::sync::Arc;

use axum::http::StatusCode;
use fantoccini::key::Key;
use serde_json::{json, Value};

use super::common::{visitor_bodies, TestApp, INITIAL_PASSWORD, PASSWORD};
use super::harness::{self, Harness};
use super::{agent_account, agent_says, desk, open_workbench, real_now, sign_in, starter_kb};

/// A text of `sentences` Chinese sentences of 14 characters each, with no spaces to trim.
fn long_text(sentences: usize) -> String {
    "我的订单有问题，请帮我看看。".repeat(sentences)
}

/// Inserts `text` into the focused field `css` as a paste does (an edit of the user, so a `maxlength`
/// would cut it), firing `input`.
const PASTE: &str = "const field = document.querySelector(arguments[0]); field.focus(); \
     field.setSelectionRange(field.value.length, field.value.length); \
     document.execCommand('insertText', false, arguments[1]); return field.value.length;";

/// Items 8 and 14 on the visitor's page: a paste over the limit arrives whole, the count and the limit
/// show, sending is refused and 分条发送 sends it in pieces; the empty one-line input has no overflow;
/// the composer's icons are drawn, not emoji.
#[tokio::test]
async fn visitor_composer_keeps_long_pastes_whole_and_shows_no_scrollbar() {
    if !harness::chromium_available() {
        return;
    }
    let (app, address, admin, group) = desk().await;
    // An agent of the group at work (signed in: online), so the visitor queues instead of leaving a message.
    agent_account(&app, &admin, "xiaomei", "小美", group).await;
    app.login_and_change_password("xiaomei", INITIAL_PASSWORD)
        .await;
    let (app_ref, admin_ref) = (&app, &admin);
    harness::run("visitor_composer_keeps_long_pastes_whole_and_shows_no_scrollbar", address, |h: Arc<Harness>| async move {
        let visitor = h.browser("visitor", false).await;
        visitor.open(&format!("/chat?group={group}")).await;
        visitor.wait("#welcome:not([hidden])").await;

        // 14: typed and emptied again, the one-line input fits its content (no scrollbar).
        visitor.fill("#message-input", "你").await;
        visitor.press("#message-input", Key::Backspace).await;
        let fits = visitor
            .script(
                "const i = document.querySelector('#message-input'); \
                 return {value: i.value, scroll: i.scrollHeight, client: i.clientHeight};",
                vec![],
            )
            .await;
        assert_eq!(fits["value"], "");
        assert!(fits["scroll"].as_u64() <= fits["client"].as_u64(), "the empty input overflows: {fits}");

        // 14: the tools are SVG icons, not emoji that a machine without an emoji font shows as boxes;
        // the emoji picker is offered only where emoji can be drawn.
        let tools = visitor
            .script(
                "const b = id => document.getElementById(id); \
                 return {emoji: b('emoji-btn').textContent.trim(), upload: b('upload-btn').textContent.trim(), \
                   icons: document.querySelectorAll('#emoji-btn svg, #upload-btn svg, #welcome svg').length, \
                   pickerHidden: b('emoji-btn').hidden, drawn: window.kefu.emojiSupported()};",
                vec![],
            )
            .await;
        assert_eq!((tools["emoji"].as_str(), tools["upload"].as_str()), (Some(""), Some("")), "{tools}");
        assert_eq!(tools["icons"], 3, "{tools}");
        assert_eq!(tools["pickerHidden"].as_bool(), tools["drawn"].as_bool().map(|drawn| !drawn), "{tools}");

        // 8: a paste of 5,208 characters arrives whole; the count shows it against the limit.
        let text = long_text(372);
        assert_eq!(text.chars().count(), 5208);
        let length = visitor.script(PASTE, vec![json!("#message-input"), json!(text)]).await;
        assert_eq!(length, 5208, "the paste was cut");
        visitor.wait("#char-count[data-over=true]:not([hidden])").await;
        let count = visitor.text("#char-count").await;
        assert!(count.contains("5208 / 5000") && count.contains("超出 208 字"), "{count:?}");
        visitor.wait_text("#split-send:not([hidden])", "分 2 条发送").await;

        // Sending it as one message is refused, with the reason, and nothing is lost.
        visitor.press("#message-input", Key::Enter).await;
        visitor.wait_text("#composer-error:not([hidden])", "5000").await;
        assert_eq!(visitor.value("#message-input").await.chars().count(), 5208);
        let sent = visitor.script("return document.querySelectorAll('[data-testid=msg-visitor]').length;", vec![]).await;
        assert_eq!(sent, 0);

        // 分条发送: two messages whose text together is the paste, cut after a sentence.
        visitor.click("#split-send").await;
        visitor
            .wait_until(
                "two visitor messages",
                "return document.querySelectorAll('[data-testid=msg-visitor]').length === 2;",
                vec![],
            )
            .await;
        assert_eq!(visitor.value("#message-input").await, "");
        visitor.wait("#char-count[hidden]").await;
        let (status, conversations) = app_ref.get_as(Some(admin_ref), "/api/v1/conversations?state=queued").await;
        assert_eq!(status, StatusCode::OK, "{conversations}");
        let id = conversations["conversations"][0]["conversation"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("the queued conversation in {conversations}"))
            .to_string();
        let (status, transcript) = app_ref
            .get_as(Some(admin_ref), &format!("/api/v1/conversations/{id}/transcript"))
            .await;
        assert_eq!(status, StatusCode::OK, "{transcript}");
        let bodies = visitor_bodies(&transcript["messages"]);
        assert_eq!(bodies.len(), 2, "{bodies:?}");
        assert!(bodies.iter().all(|body| body.chars().count() <= 5000 && body.ends_with('。')));
        assert_eq!(bodies.concat(), text);
    })
    .await;
}

/// Items 8, 9, 11, 12 and 13 at the agents' desk.
#[tokio::test]
async fn agents_see_who_chats_pick_colleagues_by_pinyin_and_send_whole_passages() {
    if !harness::chromium_available() {
        return;
    }
    let (app, address, admin, group) = desk().await;
    let _xiaomei = agent_account(&app, &admin, "xiaomei", "小美", group).await;
    let ajie = agent_account(&app, &admin, "ajie", "阿杰", group).await;
    harness::run("agents_see_who_chats_pick_colleagues_by_pinyin_and_send_whole_passages", address, |h: Arc<Harness>| async move {
        let mei = h.browser("agent-xiaomei", false).await;
        let jie = h.browser("agent-ajie", false).await;
        let visitor = h.browser("visitor", false).await;
        open_workbench(&mei, "xiaomei").await;
        open_workbench(&jie, "ajie").await;

        visitor.open(&format!("/chat?group={group}")).await;
        visitor.wait("#welcome:not([hidden])").await;
        visitor.fill("#message-input", "你好，我忘记密码了怎么办").await;
        visitor.press("#message-input", Key::Enter).await;
        visitor.wait("#chat-status[data-state=queued]").await;
        let queued = mei
            .wait_until(
                "the queued conversation",
                "const row = document.querySelector('#queue-list [data-testid=queue-item]'); return row && row.dataset.conversation;",
                vec![],
            )
            .await;
        let conversation = queued.as_str().unwrap().to_string();
        mei.click(&format!("#queue-accept-{conversation}")).await;
        mei.wait("#chat-state[data-state=active]").await;
        visitor.wait("#chat-status[data-state=active]").await;

        // 9: in 阿杰's 访客列表 the visitor chats with 小美, and there is no invitation to send.
        jie.open("/workbench#visitors").await;
        jie.wait("[data-testid=visitor-row]").await;
        jie.wait("[data-testid=visitor-row] [data-testid=visitor-state][data-state=chatting]").await;
        jie.wait_text("[data-testid=visitor-row] [data-testid=visitor-chat-with]", "与 小美 对话中").await;
        let invite_buttons = jie.script("return document.querySelectorAll('[data-testid=visitor-invite]').length;", vec![]).await;
        assert_eq!(invite_buttons, 0, "no 邀请对话 for a visitor in a colleague's chat");

        // 13: the suggestion for the question is the whole passage, numbered steps included; the agent
        // expands it to read all of it, and 直接发送 sends exactly that.
        let found = mei
            .wait_until(
                "the password article suggested",
                "const cards = Array.from(document.querySelectorAll('[data-testid=suggestion][data-kind=article]')); \
                 const i = cards.findIndex(c => c.dataset.id === 'account/reset-password'); return i < 0 ? null : String(i);",
                vec![],
            )
            .await;
        let index: usize = found.as_str().unwrap().parse().unwrap();
        assert!(index < 3, "{found}");
        let before = mei
            .script(
                "const t = document.getElementById('suggestion-text-' + arguments[0]); return {text: t.textContent, clipped: t.scrollHeight > t.clientHeight};",
                vec![json!(index)],
            )
            .await;
        let passage = before["text"].as_str().unwrap().to_string();
        for step in ["步骤如下：", "1. 在登录页点击「忘记密码」", "4. 提交后使用新密码登录"] {
            assert!(passage.contains(step), "{step:?} missing from {passage:?}");
        }
        assert_eq!(before["clipped"], true, "a long passage starts clipped");
        mei.click(&format!("#suggestion-expand-{index}")).await;
        mei.wait(&format!("#suggestion-expand-{index}[aria-expanded=true]")).await;
        let expanded = mei
            .script(
                "const t = document.getElementById('suggestion-text-' + arguments[0]); return t.scrollHeight <= t.clientHeight;",
                vec![json!(index)],
            )
            .await;
        assert_eq!(expanded, true, "expanded, the whole passage is visible");
        mei.click(&format!("#suggestion-send-{index}")).await;
        visitor.wait_text("[data-testid=msg-agent]", "4. 提交后使用新密码登录").await;
        visitor.wait_text("[data-testid=msg-agent]", "1. 在登录页点击「忘记密码」").await;

        // 8: a paste over the limit stays whole in the composer and is not sent.
        let text = long_text(365);
        let length = mei.script(PASTE, vec![json!("#composer-input"), json!(text)]).await;
        assert_eq!(length, 5110, "the paste was cut");
        mei.wait("#composer-count[data-over=true]:not([hidden])").await;
        assert!(mei.text("#composer-count").await.contains("5110 / 5000"));
        mei.wait_text("#composer-split:not([hidden])", "分 2 条发送").await;
        mei.press("#composer-input", Key::Enter).await;
        assert_eq!(mei.value("#composer-input").await.chars().count(), 5110, "refused, and kept");
        mei.script(
            "const i = document.querySelector('#composer-input'); i.focus(); i.select(); document.execCommand('delete');",
            vec![],
        )
        .await;
        mei.wait("#composer-count[hidden]").await;
        agent_says(&mei, "密码重置后如仍无法登录，请告诉我。").await;
        let agent_messages = visitor.script("return document.querySelectorAll('[data-testid=msg-agent]').length;", vec![]).await;
        assert_eq!(agent_messages, 2, "only the passage and the short reply reached the visitor");

        // 12: the transfer dialog lists groups (with their queue) and colleagues (presence and load),
        // found by name, pinyin or initials; there is no account-id field.
        mei.click("#btn-transfer").await;
        mei.wait("#dlg-transfer[open]").await;
        assert_eq!(mei.script("return !!document.getElementById('transfer-agent-id');", vec![]).await, false);
        mei.wait_text(&format!("#transfer-target-group-{group} [data-testid=transfer-target-meta]"), "排队 0").await;
        mei.wait_text(&format!("#transfer-target-agent-{ajie} [data-testid=transfer-target-meta]"), "在线 · 接待 0/").await;
        for (typed, group_shown, ajie_shown) in [("ajie", false, true), ("aj", false, true), ("阿杰", false, true), ("shfw", true, false), ("售后", true, false)] {
            mei.fill("#transfer-search", typed).await;
            let shown = mei
                .script(
                    "return [!!document.getElementById(arguments[0]), !!document.getElementById(arguments[1])];",
                    vec![json!(format!("transfer-target-group-{group}")), json!(format!("transfer-target-agent-{ajie}"))],
                )
                .await;
            assert_eq!(shown, json!([group_shown, ajie_shown]), "typed {typed:?}");
        }
        mei.fill("#transfer-search", "xm").await;
        mei.wait_text("#transfer-list", "没有匹配").await;
        mei.fill("#transfer-search", "aj").await;
        mei.press("#transfer-search", Key::Enter).await;
        mei.wait(&format!("#transfer-target-agent-{ajie}[aria-selected=true]")).await;
        mei.click("#dlg-transfer [data-close]").await;

        // 11: the knowledge panel names categories as the team does.
        mei.click("#tab-kb").await;
        mei.fill("#kb-search-input", "发票抬头开错了").await;
        mei.press("#kb-search-input", Key::Enter).await;
        mei.wait("[data-testid=kb-hit-category][data-category=invoices]").await;
        let shown: Value = mei
            .script(
                "return Array.from(document.querySelectorAll('[data-testid=kb-hit-category]')).map(t => [t.dataset.category, t.textContent]);",
                vec![],
            )
            .await;
        for pair in shown.as_array().unwrap() {
            assert_ne!(pair[0], pair[1], "a category shown by its folder name: {shown}");
        }
        assert!(shown.as_array().unwrap().contains(&json!(["invoices", "发票"])), "{shown}");
    })
    .await;
}

/// Items 10 and 11 in the editor: the id rules with a Chinese message, the title and the first
/// heading in step, and categories by their display names.
#[tokio::test]
async fn editor_checks_ids_keeps_the_title_in_step_and_names_categories() {
    if !harness::chromium_available() {
        return;
    }
    let mut app = TestApp::start_at(starter_kb(), real_now()).await;
    let address = app.listen().await;
    let app_ref = &app;
    harness::run("editor_checks_ids_keeps_the_title_in_step_and_names_categories", address, |h: Arc<Harness>| async move {
        let editor = h.browser("editor", false).await;
        sign_in(&editor, "/editor", "editor", PASSWORD).await;
        editor.wait("[data-testid=article-item]").await;

        // 11: the filter and the list show 售后服务, not after-sales.
        let option = editor
            .script("return document.querySelector('#kb-category option[value=\"after-sales\"]').textContent;", vec![])
            .await;
        assert!(option.as_str().unwrap().starts_with("售后服务（"), "{option}");
        let folders = editor
            .script(
                "return Array.from(document.querySelectorAll('[data-testid=article-item-category]')).filter(t => /^[a-z-]+$/.test(t.textContent)).length;",
                vec![],
            )
            .await;
        assert_eq!(folders, 0, "no category shown by its folder name");

        // 10: a new article's title becomes its first heading as it is typed...
        editor.click("#new-article").await;
        editor.fill("#f-title", "运费险理赔").await;
        assert!(editor.value("#f-body").await.starts_with("# 运费险理赔\n"), "{}", editor.value("#f-body").await);
        // ... and the heading, edited, becomes the title.
        editor
            .script(
                "const b = document.querySelector('#f-body'); b.focus(); b.setSelectionRange(7, 7); document.execCommand('insertText', false, '指南');",
                vec![],
            )
            .await;
        assert_eq!(editor.value("#f-title").await, "运费险理赔指南");
        editor
            .script(
                "const b = document.querySelector('#f-body'); b.setSelectionRange(b.value.length, b.value.length);                  document.execCommand('insertText', false, '购买了运费险的订单，退货签收后自动理赔。');",
                vec![],
            )
            .await;
        assert_eq!(editor.value("#f-title").await, "运费险理赔指南", "body text leaves the title alone");

        // An id with spaces is refused in Chinese, while typing and on saving; nothing is written.
        editor.fill("#f-id", "kb/bad id with spaces").await;
        editor.wait_text("#f-id-error", "不能包含空格").await;
        editor.click("#save-btn").await;
        editor.wait_text("#save-status:not([hidden])", "文章 ID 不合法").await;
        assert!(!app_ref.dirs.kb.join("kb/bad id with spaces.md").exists());

        editor.fill("#f-id", "shipping/freight-claim").await;
        editor.wait_until("the id error cleared", "return document.querySelector('#f-id-error').textContent === '';", vec![]).await;
        editor.click("#save-btn").await;
        editor.wait("[data-testid=save-ok]").await;
        let saved = std::fs::read_to_string(app_ref.dirs.kb.join("shipping/freight-claim.md")).unwrap();
        let body = saved.split("\n---\n").nth(1).unwrap_or(saved.as_str());
        assert!(body.trim_start().starts_with("# 运费险理赔指南\n"), "{saved}");
        assert!(saved.contains("title: 运费险理赔指南"), "{saved}");
    })
    .await;
}

/// Item 14: the captcha is shown at the size it is drawn, with a button for another one.
#[tokio::test]
async fn the_captcha_is_shown_at_its_size_with_a_refresh_button() {
    if !harness::chromium_available() {
        return;
    }
    let (app, address, _admin, _group) = desk().await;
    for _ in 0..3 {
        let refused = app
            .login_with(json!({"username": "admin", "password": "not the password"}))
            .await;
        assert!(refused.is_err());
    }
    harness::run("the_captcha_is_shown_at_its_size_with_a_refresh_button", address, |h: Arc<Harness>| async move {
        let page = h.browser("login", false).await;
        page.open("/login").await;
        page.fill("#login-username", "admin").await;
        page.click("#login-password").await;
        page.wait("#captcha-row:not([hidden])").await;
        let first = page
            .wait_until(
                "the captcha drawn",
                "const i = document.getElementById('captcha-image'); \
                 return i.complete && i.naturalWidth > 0 && {src: i.src, natural: [i.naturalWidth, i.naturalHeight], shown: [i.clientWidth, i.clientHeight]};",
                vec![],
            )
            .await;
        assert_eq!(first["natural"], json!([200, 70]), "{first}");
        assert_eq!(first["shown"], first["natural"], "shown at its size: {first}");
        page.click("#captcha-refresh").await;
        page.wait_until(
            "another captcha",
            "return document.getElementById('captcha-image').src !== arguments[0];",
            vec![first["src"].clone()],
        )
        .await;
    })
    .await;
}
