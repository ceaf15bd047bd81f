//! Defects a team hit on its first day (issue 13), walked again in the browser: the greeting's
//! variables, the transfer note kept as an internal entry, the ⚡ button with the composer focused,
//! the 待处理 badge and list after 稍后填写, and a new consultation on the visitor page.
//!
//! With `KEFU_WALK_SHOTS=1` each step also leaves a screenshot in
//! `target/browser-artifacts/<test>/walk-*.png`, to look the pages over by eye.

use super::*;

/// A screenshot of `browser` named `walk-<step>.png` beside the test's failure artifacts, when
/// `KEFU_WALK_SHOTS=1`.
async fn walk_shot(browser: &Browser, test: &str, step: &str) {
    if std::env::var("KEFU_WALK_SHOTS").as_deref() != Ok("1") {
        return;
    }
    let png = browser
        .client
        .screenshot()
        .await
        .unwrap_or_else(|error| panic!("{}: screenshot: {error}", browser.name));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let folder = target.join("browser-artifacts").join(test);
    std::fs::create_dir_all(&folder).expect("creating the artifacts folder");
    std::fs::write(
        folder.join(format!("walk-{step}-{}.png", browser.name)),
        png,
    )
    .expect("writing the screenshot");
}

/// Whether the quick-reply picker is still open after the page has had `settle_ms` to run whatever
/// it scheduled (the composer's blur used to close it 150 ms after the ⚡ button opened it).
async fn picker_open_after(browser: &Browser, settle_ms: u64) -> bool {
    let open = browser
        .client
        .execute_async(
            "const [ms, done] = arguments; \
             setTimeout(() => done(!document.getElementById('qr-picker').hidden \
               && document.activeElement === document.getElementById('composer-input')), ms);",
            vec![json!(settle_ms)],
        )
        .await
        .unwrap_or_else(|error| panic!("{}: waiting on the picker: {error}", browser.name));
    open.as_bool().unwrap_or(false)
}

/// 小美 writes her greeting with the variable buttons of 接待设置 and it reaches the visitor filled;
/// the ⚡ button opens the picker while the composer has focus; her transfer note stays in the
/// conversation for 阿杰 (page and transcript), never for the visitor; 阿杰 ends, chooses 稍后填写,
/// and finds the wrap-up in 待处理 with the badge at 1, then writes it there.
#[tokio::test]
async fn greeting_quick_button_transfer_note_and_pending_wrap_up() {
    if !harness::chromium_available() {
        return;
    }
    const TEST: &str = "greeting_quick_button_transfer_note_and_pending_wrap_up";
    let (app, address, admin, group) = desk().await;
    agent_account(&app, &admin, "xiaomei", "小美", group).await;
    let ajie = agent_account(&app, &admin, "ajie", "阿杰", group).await;
    let (app_ref, admin_ref) = (&app, &admin);
    harness::run(TEST, address, |h: Arc<Harness>| async move {
        let mei = h.browser("agent-xiaomei", true).await;
        let jie = h.browser("agent-ajie", true).await;
        let visitor = h.browser("visitor", false).await;
        open_workbench(&mei, "xiaomei").await;
        open_workbench(&jie, "ajie").await;

        // 1. 个人设置 → 接待设置 lists the variables; a click inserts one where the cursor is.
        mei.click("#nav-settings").await;
        mei.wait_text("#set-greeting-vars", "{当前时间}").await;
        mei.fill("#set-greeting", "您好，我是").await;
        mei.click("#set-greeting-vars [data-var=\"{客服昵称}\"]").await;
        mei.type_into("#set-greeting", "，很高兴为您服务").await;
        assert_eq!(mei.value("#set-greeting").await, "您好，我是{客服昵称}，很高兴为您服务");
        mei.click("#chat-settings-save").await;
        mei.wait_text("#chat-settings-msg", "已保存").await;
        walk_shot(&mei, TEST, "1-greeting-settings").await;
        mei.click("#nav-chat").await;

        visitor.open(&format!("/chat?group={group}")).await;
        visitor.wait("#welcome").await;
        visitor_says(&visitor, "你好，我想开发票").await;
        let conversation = mei
            .wait_until(
                "the visitor queued",
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
        visitor.wait_text("[data-testid=msg-agent]", "您好，我是小美，很高兴为您服务").await;
        let greetings = visitor
            .script(
                "return Array.from(document.querySelectorAll('[data-testid=msg-agent]')).map(m => m.textContent);",
                vec![],
            )
            .await;
        assert!(
            greetings.as_array().unwrap().iter().all(|text| !text.as_str().unwrap().contains('{')),
            "no placeholder reaches the visitor: {greetings}"
        );
        walk_shot(&visitor, TEST, "1-greeting-visitor").await;

        // 3. The ⚡ button with the composer focused: the picker opens and stays open.
        mei.click("#composer-input").await;
        mei.click("#btn-quick").await;
        mei.wait("#qr-picker:not([hidden]) #qr-item-0").await;
        assert!(
            picker_open_after(&mei, 600).await,
            "the picker stays open, the composer keeps focus"
        );
        walk_shot(&mei, TEST, "3-quick-picker").await;
        let chosen = mei
            .script("return document.getElementById('qr-item-0').querySelector('.qr-content').textContent;", vec![])
            .await;
        mei.press("#composer-input", Key::Enter).await;
        mei.wait("#qr-picker[hidden]").await;
        assert_eq!(json!(mei.value("#composer-input").await), chosen, "Enter inserts the first reply");
        mei.fill("#composer-input", "").await;

        // 2. Transfer to 阿杰 with a note: after 接受转接 the note is in his conversation, in place.
        let note = "客户要开增值税专票，抬头和税号已确认，麻烦跟进";
        mei.click("#btn-transfer").await;
        mei.wait("#dlg-transfer[open]").await;
        mei.fill("#transfer-search", "aj").await;
        mei.click(&format!("#transfer-target-agent-{ajie}[aria-selected=false]")).await;
        mei.wait(&format!("#transfer-target-agent-{ajie}[aria-selected=true]")).await;
        mei.fill("#transfer-note", note).await;
        mei.click("#transfer-submit").await;
        mei.wait_text("#messages [data-testid=message-internal]", note).await;
        jie.click(&format!("#conv-{conversation}")).await;
        jie.wait_text("#transfer-banner-text", note).await;
        jie.click("#transfer-accept").await;
        jie.wait(&format!("#chat-pane[data-conversation=\"{conversation}\"][data-role=serving]"))
            .await;
        jie.wait_text("#messages [data-testid=message-internal]", note).await;
        let internal = jie.text("#messages [data-testid=message-internal]").await;
        assert!(internal.contains("小美") && internal.contains("阿杰"), "{internal}");
        walk_shot(&jie, TEST, "2-transfer-note").await;
        agent_says(&jie, "您好，我是阿杰，专票由我来开").await;
        visitor.wait_text("[data-testid=msg-agent]", "专票由我来开").await;
        let seen_by_visitor = visitor.text("#messages").await;
        assert!(!seen_by_visitor.contains(note), "the visitor never sees the note: {seen_by_visitor}");
        let (status, transcript) = app_ref
            .get_as(Some(admin_ref), &format!("/api/v1/conversations/{conversation}/transcript"))
            .await;
        assert_eq!(status, StatusCode::OK, "{transcript}");
        let entries: Vec<&serde_json::Value> = transcript["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|message| message["body"].as_str().unwrap_or_default().contains(note))
            .collect();
        assert_eq!(entries.len(), 1, "{transcript}");
        assert_eq!(entries[0]["kind"], "internal");

        // 7. 阿杰 ends, chooses 稍后填写: 待处理 lists the wrap-up the badge counts, also after 刷新.
        jie.click("#btn-end").await;
        jie.click("#btn-end").await;
        jie.wait("#dlg-wrapup[open]").await;
        jie.click("#dlg-wrapup [data-close]").await;
        jie.wait("#dlg-wrapup:not([open])").await;
        jie.wait_text("#pending-count", "1").await;
        jie.wait(&format!("#pending-list [data-testid=wrapup-item][data-conversation=\"{conversation}\"]"))
            .await;
        jie.click("#pending-refresh").await;
        jie.wait(&format!("#pending-list [data-testid=wrapup-item][data-conversation=\"{conversation}\"]"))
            .await;
        assert_eq!(jie.text("#pending-count").await, "1");
        walk_shot(&jie, TEST, "7-pending").await;

        // 5. The team's figures are the sum of their agents': the supervisor view and 统计 (全团队)
        //    count 阿杰's unwritten wrap-up.
        let boss = h.browser("admin", false).await;
        super::sign_in(&boss, "/supervisor", "admin", PASSWORD).await;
        boss.wait_text("[data-testid=stat-abandoned]", "待写小结 1").await;
        boss.open("/workbench#stats").await;
        boss.wait("#stats-scope").await;
        boss.script(
            "const s = document.getElementById('stats-scope'); s.value = 'team'; s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await;
        boss.wait_text("#stat-pending_wrap_ups", "1").await;
        walk_shot(&boss, TEST, "5-team-pending-wrap-ups").await;
        jie.click(&format!("#pending-{conversation} [data-testid=pending-wrapup]")).await;
        jie.wait("#dlg-wrapup[open]").await;
        jie.click("[data-testid=wrapup-type]").await;
        jie.click("#wrapup-submit").await;
        jie.wait("#dlg-wrapup:not([open])").await;
        jie.wait_text("#pending-count", "0").await;
        jie.wait_text("#pending-list", "没有待处理的留言或小结").await;
    })
    .await;
}

/// The visitor ends a consultation and starts a new one: the welcome card is back, the page logs
/// no error (the harness fails on any), and the new question is queued.
#[tokio::test]
async fn visitor_starts_a_new_consultation_after_ending_one() {
    if !harness::chromium_available() {
        return;
    }
    const TEST: &str = "visitor_starts_a_new_consultation_after_ending_one";
    let (app, address, admin, group) = desk().await;
    agent_account(&app, &admin, "xiaomei", "小美", group).await;
    harness::run(TEST, address, |h: Arc<Harness>| async move {
        // An agent at the desk, so that the visitor queues instead of leaving a message.
        let mei = h.browser("agent-xiaomei", true).await;
        open_workbench(&mei, "xiaomei").await;
        let visitor = h.browser("visitor", false).await;
        visitor.open(&format!("/chat?group={group}")).await;
        visitor.wait("#messages #welcome").await;
        visitor_says(&visitor, "你好，在吗").await;
        visitor.wait("#chat-status[data-state=queued]").await;
        visitor.click("#end-btn").await;
        visitor.click("#end-confirm-yes").await;
        visitor.wait("#ended-notice:not([hidden])").await;
        walk_shot(&visitor, TEST, "4-ended").await;
        visitor.click("#new-chat-btn").await;
        visitor.wait("#messages #welcome").await;
        assert!(visitor.text("#messages").await.contains("欢迎咨询在线客服"));
        walk_shot(&visitor, TEST, "4-new-chat").await;
        visitor_says(&visitor, "我想再问一个问题").await;
        visitor.wait("#chat-status[data-state=queued]").await;
    })
    .await;
}
