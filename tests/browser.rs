//! End-to-end tests in headless Chromium (WebDriver through chromedriver): the real pages served by
//! the real router (`TestApp::listen`) over the starter knowledge base in `kb/`. Separate browsers
//! for the visitor, each agent and the editor. Needs `chromium` and `chromium-driver`; without them
//! the tests say so and pass, except under CI (`CI` set), where they fail.
//!
//! Run: `cargo test --test browser`; `KEFU_SCREENSHOTS=1` also refreshes `docs/screenshots/`.

#[path = "common/mod.rs"]
mod common;

#[path = "browser/harness.rs"]
mod harness;

#[path = "browser/admin_console.rs"]
mod admin_console;
#[path = "browser/channel_console.rs"]
mod channel_console;
#[path = "browser/channels.rs"]
mod channels;
#[path = "browser/day_one.rs"]
mod day_one;
#[path = "browser/day_one_more.rs"]
mod day_one_more;
#[path = "browser/self_service.rs"]
mod self_service;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use fantoccini::key::Key;
use serde_json::json;

use common::{Session, TestApp, TestDirs, INITIAL_PASSWORD, PASSWORD};
use harness::{Browser, Harness};

/// The real time, where the browser tests start the test clock (sessions, timers, message times):
/// the pages compare server times with the browser's clock, so they show plausible times and no
/// overdue countdowns. Starting there, rather than moving a clock started at `common::START`,
/// keeps sessions signed in at start from looking idle for however long ago `START` was.
fn real_now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Folders whose knowledge base is a copy of the starter articles in `kb/`.
fn starter_kb() -> TestDirs {
    TestDirs::with_starter_kb()
}

/// The desk: the starter knowledge base, a listener, the admin, and the skill group 售后服务 with
/// manual routing (conversations wait in the queue until accepted).
async fn desk() -> (TestApp, SocketAddr, Session, u64) {
    let mut app = TestApp::start_signed_out_at(starter_kb(), real_now()).await;
    let address = app.listen().await;
    let admin = app.admin().await;
    let group_id = app.skill_group(&admin, "售后服务", "manual").await;
    (app, address, admin, group_id)
}

/// An agent account of `group` with its initial password (it must change it at first sign-in).
async fn agent_account(
    app: &TestApp,
    admin: &Session,
    username: &str,
    display_name: &str,
    group: u64,
) -> u64 {
    let (status, body) = app
        .json_as(
            Some(admin),
            Method::POST,
            "/api/v1/admin/accounts",
            json!({"username": username, "password": INITIAL_PASSWORD, "roles": ["agent"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "creating {username}: {body}");
    let id = body["account"]["id"].as_u64().unwrap();
    app.join_group(admin, id, group, display_name).await;
    id
}

/// Signs in on `/login?next=<next>`, doing the forced password change when the page asks for it,
/// and waits until the browser is on `next`.
async fn sign_in(browser: &Browser, next: &str, username: &str, password: &str) {
    browser.open(&format!("/login?next={next}")).await;
    browser.fill("#login-username", username).await;
    browser.fill("#login-password", password).await;
    browser.click("#login-submit").await;
    if password == INITIAL_PASSWORD {
        browser.wait("#step-password:not([hidden])").await;
        browser.fill("#pw-new", PASSWORD).await;
        browser.fill("#pw-confirm", PASSWORD).await;
        browser.click("#pw-submit").await;
    }
    browser
        .wait_until(
            &format!("arriving on {next}"),
            "return location.pathname === arguments[0];",
            vec![json!(next)],
        )
        .await;
}

/// Signs an agent in on the workbench and waits for its socket.
async fn open_workbench(browser: &Browser, username: &str) {
    sign_in(browser, "/workbench", username, INITIAL_PASSWORD).await;
    browser.wait_text("#ws-text", "已连接").await;
}

/// The visitor writes `text` in the chat page and sends it with Enter; waits until it is shown as sent.
async fn visitor_says(visitor: &Browser, text: &str) {
    visitor.fill("#message-input", text).await;
    visitor.press("#message-input", Key::Enter).await;
    visitor.wait_text("[data-testid=msg-visitor]", text).await;
    visitor
        .wait_until(
            "the visitor's message acknowledged",
            "return !document.querySelector('#messages [data-testid=msg-sending]');",
            vec![],
        )
        .await;
}

/// The agent types `text` in the composer and sends it with Enter; waits for the `ack` (已送达).
async fn agent_says(agent: &Browser, text: &str) {
    agent.fill("#composer-input", text).await;
    agent.press("#composer-input", Key::Enter).await;
    agent_sent(agent, text).await;
}

/// Waits until the agent's message containing `text` is acknowledged.
async fn agent_sent(agent: &Browser, text: &str) {
    agent
        .wait_until(
            &format!("agent message {text:?} delivered"),
            "return Array.from(document.querySelectorAll('#messages [data-testid=message-agent]')).some(row => \
               row.textContent.includes(arguments[0]) && \
               (row.querySelector('[data-testid=message-status]') || {}).textContent === '已送达');",
            vec![json!(text)],
        )
        .await;
}

/// Scenarios 1–6: a visitor asks on `/chat`, agent 小美 (signed in through the real page with the
/// forced password change) is notified, accepts from the queue, answers with a suggested article and
/// a quick reply found by pinyin initials, transfers to 阿杰, who accepts, answers, ends and wraps up;
/// the visitor rates. The API then holds the rating and the wrap-up.
#[tokio::test]
async fn visitor_is_served_by_two_agents_and_rates_the_conversation() {
    if !harness::chromium_available() {
        return;
    }
    let (app, address, admin, group) = desk().await;
    let xiaomei = agent_account(&app, &admin, "xiaomei", "小美", group).await;
    let ajie = agent_account(&app, &admin, "ajie", "阿杰", group).await;
    let (status, reply) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/quick-replies",
            json!({
                "scope": {"kind": "team"},
                "title": "原路退款到账时效",
                "category": "售后/退货退款",
                "content": "您好，退款审核通过后会按原路退回：微信支付退回微信零钱（或付款时用的银行卡），支付宝退回支付宝余额，一般 1-3 个工作日到账，到账后会有微信或支付宝通知，请留意。",
                "tags": ["退款", "到账"],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let reply_id = reply["id"].as_u64().unwrap();

    let (app_ref, admin_ref) = (&app, &admin);
    harness::run("visitor_is_served_by_two_agents_and_rates_the_conversation", address, |h: Arc<Harness>| async move {
        let mei = h.browser("agent-xiaomei", true).await;
        let jie = h.browser("agent-ajie", true).await;
        let visitor = h.browser("visitor", false).await;
        open_workbench(&mei, "xiaomei").await;
        open_workbench(&jie, "ajie").await;

        // 1. The visitor opens /chat and writes; the conversation waits in the queue.
        visitor.open(&format!("/chat?group={group}")).await;
        visitor.wait("#welcome:not([hidden])").await;
        let first = "你好，在吗？我上周退了一件羽绒服";
        visitor_says(&visitor, first).await;
        visitor.wait("#chat-status[data-state=queued]").await;

        // ... and 小美's workbench shows it: queue row (highlighted), badge, desktop notification.
        let queued = mei
            .wait_until(
                "a queued conversation, its row flashing",
                "const row = document.querySelector('#queue-list [data-testid=queue-item].highlight'); \
                 return row && row.dataset.conversation;",
                vec![],
            )
            .await;
        let conversation = queued.as_str().expect("queue rows carry their id").to_string();
        mei.wait_text(&format!("#queue-{conversation}"), first).await;
        mei.wait_text("#queue-count", "1").await;
        let notified = mei.notifications().await;
        assert!(
            notified.iter().any(|(title, body)| title == "新访客排队" && body.contains(first)),
            "desktop notification for the queued visitor: {notified:?}"
        );

        // Accept from the queue.
        mei.click(&format!("#queue-accept-{conversation}")).await;
        mei.wait(&format!("#chat-pane[data-conversation=\"{conversation}\"][data-role=serving]")).await;
        mei.wait("#chat-state[data-state=active]").await;
        visitor.wait("#chat-status[data-state=active]").await;
        visitor.wait_text("#agent-name", "小美").await;

        // 2. Messages both ways.
        let hello = "您好，我是客服小美，很高兴为您服务。请问退货的订单是哪一笔呢？";
        mei.wait_text("#state-banner-text", "秒内回复访客").await;
        agent_says(&mei, hello).await;
        // Answered: the "reply within n seconds" countdown is gone.
        mei.wait("#state-banner[hidden]").await;
        visitor.wait_text("[data-testid=msg-agent]", hello).await;
        let question = "我申请了退款，多久到账？";
        visitor_says(&visitor, question).await;
        mei.wait_text("#messages [data-testid=message-visitor]", question).await;

        // 3. A suggestion for the question, inserted into the composer with one click.
        let suggestion = mei
            .wait_until(
                "the refund-arrival article suggested",
                "const cards = Array.from(document.querySelectorAll('[data-testid=suggestion][data-kind=article]')); \
                 const i = cards.findIndex(c => c.dataset.id === 'returns/refund-arrival-time'); \
                 return i < 0 ? null : { index: i, id: cards[i].dataset.id };",
                vec![],
            )
            .await;
        let index = suggestion["index"].as_u64().unwrap();
        assert_eq!(mei.value("#composer-input").await, "");
        mei.click(&format!("#suggestion-insert-{index}")).await;
        let inserted = mei.value("#composer-input").await;
        // The passage that answers "how long": the article's lead, not its other sections.
        assert!(
            inserted.starts_with("退款会按原支付方式退回"),
            "inserted suggestion: {inserted:?}"
        );
        mei.press("#composer-input", Key::Enter).await;
        let snippet: String = inserted.chars().take(12).collect();
        agent_sent(&mei, &snippet).await;
        visitor.wait_text("[data-testid=msg-agent]", &snippet).await;

        // 4. The `/` picker finds the quick reply by the pinyin initials of 退款到账时间.
        visitor_says(&visitor, "我是用微信付的，钱是退回零钱吗？").await;
        mei.wait_text("#messages [data-testid=message-visitor]", "退回零钱吗").await;
        mei.fill("#composer-input", "/yltkdzsx").await;
        mei.wait("#qr-picker:not([hidden])").await;
        let first_item = mei.wait("#qr-item-0").await;
        assert_eq!(
            first_item.attr("data-reply-id").await.unwrap().as_deref(),
            Some(reply_id.to_string().as_str()),
            "the reply titled 原路退款到账时效 comes first for yltkdzsx"
        );
        assert_eq!(first_item.attr("aria-selected").await.unwrap().as_deref(), Some("true"));
        mei.press("#composer-input", Key::Enter).await;
        let quick = mei.value("#composer-input").await;
        assert!(quick.contains("退款审核通过后会按原路退回"), "inserted quick reply: {quick:?}");
        mei.wait("#qr-picker[hidden]").await;
        mei.press("#composer-input", Key::Enter).await;
        agent_sent(&mei, "微信支付退回微信零钱").await;
        visitor.wait_text("[data-testid=msg-agent]", "微信支付退回微信零钱").await;
        visitor_says(&visitor, "好的，谢谢！另外发票抬头开错了，能帮我重开吗？").await;
        mei.wait_text("#messages [data-testid=message-visitor]", "发票抬头开错了").await;
        visitor.save_screenshot_for_docs("chat.png").await;
        mei.save_screenshot_for_docs("workbench.png").await;

        // 5. Transfer to 阿杰, who accepts in his browser and carries on.
        mei.click("#btn-transfer").await;
        mei.wait("#dlg-transfer[open]").await;
        mei.fill("#transfer-search", "aj").await;
        mei.click(&format!("#transfer-target-agent-{ajie}[aria-selected=false]")).await;
        mei.wait(&format!("#transfer-target-agent-{ajie}[aria-selected=true]")).await;
        mei.fill("#transfer-note", "客户退款已说明，发票抬头需要重开，麻烦跟进").await;
        mei.click("#transfer-submit").await;
        mei.wait("#state-banner:not([hidden])").await;

        jie.click(&format!("#conv-{conversation}")).await;
        jie.wait("#transfer-banner:not([hidden])").await;
        jie.wait_text("#transfer-banner-text", "小美").await;
        let notified = jie.notifications().await;
        assert!(
            notified.iter().any(|(title, _)| title.starts_with("转接请求") && title.contains("小美")),
            "desktop notification for the transfer: {notified:?}"
        );
        jie.click("#transfer-accept").await;
        jie.wait(&format!("#chat-pane[data-conversation=\"{conversation}\"][data-role=serving]")).await;
        mei.wait_until(
            "the conversation leaving 小美's list",
            "return !document.getElementById('conv-' + arguments[0]);",
            vec![json!(conversation)],
        )
        .await;
        jie.wait_text("#messages [data-testid=message-visitor]", "发票抬头开错了").await;
        let takeover = "您好，我是阿杰，发票的事由我来处理。请把正确的抬头和税号发给我，我马上为您重开。";
        agent_says(&jie, takeover).await;
        visitor.wait_text("[data-testid=msg-agent]", takeover).await;
        visitor_says(&visitor, "抬头：杭州云栖科技有限公司，税号 91330106MA2KXXXX8L").await;
        jie.wait_text("#messages [data-testid=message-visitor]", "杭州云栖科技有限公司").await;
        agent_says(&jie, "已为您提交重开申请，新的电子发票会在 1-2 个工作日内发送到您的邮箱。").await;

        // What people type is shown as text on both pages, never run or rendered as markup.
        let markup = "<img src=x onerror=\"window.pwned=1\"><b>邮箱</b>写错了怎么办";
        visitor_says(&visitor, markup).await;
        jie.wait_text("#messages [data-testid=message-visitor]", markup).await;
        for page in [&visitor, &jie] {
            let injected = page
                .script(
                    "return [window.pwned === undefined, \
                     document.querySelectorAll('#messages img[src=\"x\"], #messages b').length];",
                    vec![],
                )
                .await;
            assert_eq!(injected, json!([true, 0]), "markup stays text");
        }

        // 6. 阿杰 ends and wraps up; the visitor rates.
        jie.click("#btn-end").await;
        jie.click("#btn-end").await;
        jie.wait("#chat-state[data-state=ended]").await;
        jie.wait("#dlg-wrapup[open]").await;
        jie.click("[data-testid=wrapup-type][data-type=\"支付/退款到账\"]").await;
        jie.wait_text("#wrapup-selected", "退款到账").await;
        jie.fill("#wrapup-resolution", "说明退款到账时间；已提交发票重开申请").await;
        jie.fill("#wrapup-tags", "退款 发票").await;
        jie.click("#wrapup-submit").await;
        jie.wait("#dlg-wrapup:not([open])").await;

        visitor.wait("#ended-notice:not([hidden])").await;
        visitor.wait("#rating-panel:not([hidden])").await;
        assert_eq!(visitor.wait("#rating-submit").await.prop("disabled").await.unwrap().as_deref(), Some("true"));
        visitor.click("#rating-star-5").await;
        visitor.fill("#rating-comment", "小美和阿杰都很耐心，问题一次就解决了").await;
        visitor.click("#rating-submit").await;
        visitor.wait("#rating-thanks:not([hidden])").await;

        let (status, transcript) = app_ref
            .get_as(Some(admin_ref), &format!("/api/v1/conversations/{conversation}/transcript"))
            .await;
        assert_eq!(status, StatusCode::OK, "{transcript}");
        let stored = &transcript["conversation"];
        assert_eq!(stored["state"], "ended");
        assert_eq!(stored["agent"], ajie);
        assert_eq!(stored["rating"]["stars"], 5, "{stored}");
        assert_eq!(stored["rating"]["comment"], "小美和阿杰都很耐心，问题一次就解决了");
        assert_eq!(stored["wrap_up"]["problem_type"], "支付/退款到账", "{stored}");
        assert_eq!(stored["wrap_up"]["resolution"], "说明退款到账时间；已提交发票重开申请");
        assert_eq!(stored["wrap_up"]["by"], ajie);
        let bodies: Vec<&str> = transcript["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|message| message["kind"] == "agent")
            .map(|message| (message["agent"].as_u64().unwrap_or(0), message["body"].as_str().unwrap_or_default()))
            .filter(|(agent, _)| *agent == xiaomei || *agent == ajie)
            .map(|(_, body)| body)
            .collect();
        assert!(bodies.iter().any(|body| body.contains("退款审核通过后会按原路退回")), "{bodies:?}");
        assert!(bodies.contains(&hello) && bodies.contains(&takeover), "{bodies:?}");
    })
    .await;
}

/// Scenario 7: an editor saves a new article on `/editor` and finds it at once in the editor's search.
#[tokio::test]
async fn editor_saves_an_article_and_finds_it_in_search() {
    if !harness::chromium_available() {
        return;
    }
    let mut app = TestApp::start_at(starter_kb(), real_now()).await;
    let (status, me) = app.get("/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let editor_id = me["id"]
        .as_u64()
        .or(me["account"]["id"].as_u64())
        .expect("the editor's id");
    let admin = app.admin().await;
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{editor_id}"),
            json!({"display_name": "林编辑"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let address = app.listen().await;
    let app_ref = &app;
    harness::run("editor_saves_an_article_and_finds_it_in_search", address, |h: Arc<Harness>| async move {
        let editor = h.browser("editor", false).await;
        sign_in(&editor, "/editor", "editor", PASSWORD).await;
        editor.wait("[data-testid=article-item]").await;

        let id = "shipping/freight-insurance-claim";
        editor.click("#new-article").await;
        editor.fill("#f-id", id).await;
        editor.fill("#f-title", "运费险理赔").await;
        editor.fill("#f-category", "shipping").await;
        editor.fill("#f-tags", "运费险, 理赔").await;
        editor.fill("#f-keywords", "运费险理赔, 退货运费").await;
        editor.fill("#f-questions", "运费险怎么赔\n退货运费能报销吗\n运费险理赔多久到账").await;
        editor
            .fill(
                "#f-body",
                "# 运费险理赔\n\n购买了运费险的订单，退货寄回并被商家签收后，系统会自动发起理赔，理赔金额在 72 小时内打到支付账户。\n\n## 理赔金额\n\n按寄件地与收件地的首重运费计算，一般为 5–25 元，以理赔页面显示为准。\n\n## 没有收到理赔款\n\n请在「我的订单 → 退货详情 → 运费险」查看理赔进度；若显示失败，可联系在线客服人工处理。\n",
            )
            .await;
        editor.script(
            "const s = document.querySelector('#f-status'); s.value = 'published'; s.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![],
        )
        .await;
        editor.wait_text("#preview", "系统会自动发起理赔").await;
        editor.click("#save-btn").await;
        editor.wait("[data-testid=save-ok]").await;
        let saved = editor.text("[data-testid=save-ok]").await;
        assert!(saved.contains("排第"), "save result names the search rank: {saved:?}");

        // The list is the search's answer (not the full list), and holds the new article.
        editor.fill("#kb-search", "运费险怎么赔").await;
        editor.wait_text("#list-info", "找到").await;
        let found = editor
            .wait_until(
                "the new article among the search results",
                "const items = Array.from(document.querySelectorAll('#article-list [data-testid=article-item]')); \
                 const rank = items.findIndex(i => i.dataset.id === arguments[0]); \
                 return rank >= 0 && { title: items[rank].querySelector('[data-testid=article-item-title]').textContent, rank };",
                vec![json!(id)],
            )
            .await;
        assert_eq!(found["title"], "运费险理赔");
        let rank = found["rank"].as_u64().unwrap();
        assert!(rank < 3, "the new article is among the best hits for its own question: rank {rank}");
        // Snippets arrive escaped (spaces and newlines as &#32; and &#10;) with <mark> around the matches:
        // the list shows them as text with highlights, no entity left over.
        let snippets = editor
            .script(
                "return Array.from(document.querySelectorAll('#article-list .ed-item-snippet')).map(s => \
                 ({text: s.textContent, marks: s.querySelectorAll('mark').length}));",
                vec![],
            )
            .await;
        let snippets = snippets.as_array().unwrap();
        assert!(snippets.iter().any(|s| s["marks"].as_u64() > Some(0)), "{snippets:?}");
        assert!(
            snippets.iter().all(|s| !s["text"].as_str().unwrap().contains("&#")),
            "no raw entities in snippets: {snippets:?}"
        );
        editor.save_screenshot_for_docs("editor.png").await;

        // The public search finds it too: it was saved as published.
        assert!(app_ref.finds("运费险怎么赔", id).await, "public search finds the new article");

        // Sign-in's `next` never leaves this server, not even as "/\host", which browsers read as
        // "//host"; signed in, `resume=1` goes on at once, to the workbench, which sends an editor on to
        // the knowledge editor.
        editor.open("/login?next=%2F%5Cexample.invalid%2Fx&resume=1").await;
        let landed = editor
            .wait_until(
                "arriving at the knowledge editor",
                "return location.pathname === '/editor' && { host: location.host, path: location.pathname };",
                vec![],
            )
            .await;
        assert_eq!(landed["host"], address.to_string(), "{landed}");
        assert_eq!(landed["path"], "/editor", "{landed}");
        editor.wait("[data-testid=article-item]").await;
    })
    .await;
}
