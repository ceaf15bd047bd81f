//! The admin console (`/admin`, issue 14) in the browser: on a fresh start the admin signs in (with the
//! forced password change) and, only through the console, creates two skill groups with working hours,
//! three agents (each initial password shown once), adds a member by pinyin, edits the problem types,
//! adds a site, registers and tests a webhook, and meets Chinese errors for bad input; then a visitor
//! is routed by those settings and the agent's wrap-up offers the new problem type.
//!
//! With `KEFU_WALK_SHOTS=1` each section is also saved at 1280×800 as
//! `target/browser-artifacts/<test>/walk-*.png`, to look the console over by eye.

use super::*;
use serde_json::Value;

const TEST: &str = "admin_console_sets_up_a_team_that_then_serves_a_visitor";

/// A screenshot named `walk-<step>.png` beside the test's failure artifacts, when `KEFU_WALK_SHOTS=1`.
async fn shot(browser: &Browser, step: &str) {
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
    let folder = target.join("browser-artifacts").join(TEST);
    std::fs::create_dir_all(&folder).expect("creating the artifacts folder");
    std::fs::write(folder.join(format!("walk-{step}.png")), png).expect("writing the screenshot");
}

/// Signs in through `/login?next=<next>` with a first password, which the page makes the person
/// change; waits until the browser is on `next`.
async fn first_sign_in(browser: &Browser, next: &str, username: &str, initial: &str) {
    browser.open(&format!("/login?next={next}")).await;
    browser.fill("#login-username", username).await;
    browser.fill("#login-password", initial).await;
    browser.click("#login-submit").await;
    browser.wait("#step-password:not([hidden])").await;
    browser.fill("#pw-new", PASSWORD).await;
    browser.fill("#pw-confirm", PASSWORD).await;
    browser.click("#pw-submit").await;
    browser
        .wait_until(
            &format!("arriving on {next}"),
            "return location.pathname === arguments[0];",
            vec![json!(next)],
        )
        .await;
}

/// Sets a form field's value the way the browser's own picker would (time and date inputs take
/// typed keys differently per locale), then tells the page.
async fn set_value(browser: &Browser, css: &str, value: &str) {
    browser.wait(css).await;
    browser
        .script(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![json!(css), json!(value)],
        )
        .await;
}

/// Clicks a checkbox until it is in the state wanted.
async fn check(browser: &Browser, css: &str, on: bool) {
    let checked = browser
        .script(
            "return document.querySelector(arguments[0]).checked;",
            vec![json!(css)],
        )
        .await;
    if checked.as_bool() != Some(on) {
        browser.click(css).await;
    }
}

/// Creates an account in the console's dialog; returns the one-time password it showed.
async fn create_account(
    admin: &Browser,
    username: &str,
    display_name: &str,
    group: Option<u64>,
) -> String {
    admin.click("#acc-new").await;
    admin.wait("#dlg-account[open]").await;
    admin.fill("#acc-username", username).await;
    admin.fill("#acc-display-name", display_name).await;
    if let Some(group) = group {
        check(
            admin,
            &format!("[data-testid=acc-group][data-group-id=\"{group}\"]"),
            true,
        )
        .await;
    }
    admin.click("#acc-save").await;
    admin.wait("#dlg-secret[open]").await;
    admin.wait_text("#secret-intro", username).await;
    if username == "xiaomei" {
        shot(admin, "1b-initial-password").await;
    }
    let password = admin.text("#secret-value").await;
    assert!(password.len() >= 16, "a generated password: {password:?}");
    admin.click("#secret-done").await;
    admin
        .wait_until(
            "the secret dialog closed",
            "return !document.getElementById('dlg-secret').open;",
            vec![],
        )
        .await;
    admin
        .wait(&format!(
            "[data-testid=account-row][data-username=\"{username}\"]"
        ))
        .await;
    password
}

/// Creates a skill group in the console and waits until it is selected; returns its id.
async fn create_group(admin: &Browser, name: &str) -> u64 {
    admin.click("#grp-new").await;
    admin.wait("#dlg-group[open]").await;
    admin.fill("#grp-new-name", name).await;
    admin.click("#grp-create").await;
    let id = admin
        .wait_until(
            &format!("group {name} selected"),
            "const item = document.querySelector('#grp-list .ad-list-item.selected'); \
             return item && item.textContent.includes(arguments[0]) && !document.getElementById('grp-editor').hidden \
               && document.getElementById('grp-name').value === arguments[0] && item.dataset.groupId;",
            vec![json!(name)],
        )
        .await;
    id.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn admin_console_sets_up_a_team_that_then_serves_a_visitor() {
    if !harness::chromium_available() {
        return;
    }
    let mut app = TestApp::start_signed_out_at(starter_kb(), real_now()).await;
    let address = app.listen().await;
    // The first group works every day, all day, in a zone where it is not the day's last hour now
    // (`end` is exclusive); the second group has a holiday today.
    let now = jiff::Timestamp::now();
    let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let open_zone = if now.to_zoned(shanghai.clone()).hour() == 23 {
        "UTC"
    } else {
        "Asia/Shanghai"
    };
    let today_in_shanghai = now.to_zoned(shanghai).date().to_string();

    let app_ref = &app;
    harness::run(TEST, address, |h: Arc<Harness>| async move {
        let admin = h.browser("admin", false).await;
        // A viewport of 1280×800: the window is that plus the browser's own frame.
        let frame = admin
            .script("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];", vec![])
            .await;
        let (frame_width, frame_height) = (
            frame[0].as_u64().unwrap_or(0) as u32,
            frame[1].as_u64().unwrap_or(0) as u32,
        );
        admin
            .client
            .set_window_size(1280 + frame_width, 800 + frame_height)
            .await
            .expect("resizing");
        first_sign_in(&admin, "/admin", "admin", common::INITIAL_ADMIN_PASSWORD).await;
        admin.wait("#view-accounts:not([hidden])").await;
        admin.wait("[data-testid=account-row][data-username=admin]").await;
        let viewport = admin
            .script("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        assert_eq!(viewport, json!([1280, 800]), "the console is looked at in 1280×800");

        // 技能组: 售后服务 assigned automatically to the least-loaded agent, open all week.
        admin.click("#menu-groups").await;
        admin.wait("#view-groups:not([hidden])").await;
        let after_sales = create_group(&admin, "售后服务").await;
        admin.click("#grp-mode-least_loaded").await;
        admin.click("#grp-hours-scheduled").await;
        set_value(&admin, "#grp-tz", open_zone).await;
        for day in 1..=7 {
            check(&admin, &format!("#grp-day-{day}"), true).await;
            set_value(&admin, &format!("#grp-day-{day}-start"), "00:00").await;
            set_value(&admin, &format!("#grp-day-{day}-end"), "23:59").await;
        }
        admin.fill("#grp-queue-message", "售后同事马上为您服务，请稍候。").await;
        admin.click("#grp-routing-save").await;
        admin.wait_text("#grp-routing-msg", "已保存").await;
        // 物流: weekdays 9-18 with today as a holiday, and its own off-hours message.
        let logistics = create_group(&admin, "物流").await;
        admin.click("#grp-mode-manual").await;
        admin.click("#grp-hours-scheduled").await;
        set_value(&admin, "#grp-holiday-input", &today_in_shanghai).await;
        admin.click("#grp-holiday-add").await;
        admin
            .wait(&format!("[data-testid=grp-holiday][data-date=\"{today_in_shanghai}\"]"))
            .await;
        admin.fill("#grp-off-hours", "物流组今天休息，请留下您的问题。").await;
        admin.click("#grp-routing-save").await;
        admin.wait_text("#grp-routing-msg", "已保存").await;
        shot(&admin, "2-groups").await;

        // 账号管理: three agents, each password shown once; a bad username gets a Chinese error.
        admin.click("#menu-accounts").await;
        admin.wait("#view-accounts:not([hidden])").await;
        let mei_password = create_account(&admin, "xiaomei", "小美", Some(after_sales)).await;
        create_account(&admin, "ajie", "阿杰", Some(logistics)).await;
        create_account(&admin, "xiaoli", "小丽", None).await;
        h.expect_console_error("/api/v1/admin/accounts - Failed to load resource");
        admin.click("#acc-new").await;
        admin.fill("#acc-username", "Bad Name!").await;
        admin.click("#acc-save").await;
        admin.wait_text("#acc-error", "用户名须为 2–32 位小写字母").await;
        shot(&admin, "1a-account-error").await;
        admin.click("#dlg-account [data-close]").await;
        admin.fill("#acc-search", "xm").await;
        admin
            .wait_until(
                "only 小美 listed for `xm`",
                "const rows = document.querySelectorAll('[data-testid=account-row]'); \
                 return rows.length === 1 && rows[0].dataset.username === 'xiaomei';",
                vec![],
            )
            .await;
        set_value(&admin, "#acc-search", "").await;
        shot(&admin, "1-accounts").await;

        // 技能组 → 成员: 小丽 joins 售后服务, found by the pinyin initials of her name.
        admin.click("#menu-groups").await;
        // The list is drawn again once the section has loaded: click after that.
        admin.wait("#view-groups:not([hidden]):not([data-loading])").await;
        admin
            .click(&format!("[data-testid=grp-item][data-group-id=\"{after_sales}\"]"))
            .await;
        admin
            .wait(&format!(
                "#grp-list .ad-list-item.selected[data-group-id=\"{after_sales}\"]"
            ))
            .await;
        admin.wait_text("#grp-member-count", "1").await;
        admin.fill("#grp-member-search", "xl").await;
        admin
            .wait_until(
                "only 小丽 shown for `xl`",
                "const rows = document.querySelectorAll('#grp-members [data-testid=grp-member]'); \
                 return rows.length === 1 && rows[0].textContent.includes('小丽');",
                vec![],
            )
            .await;
        admin
            .click("#grp-members [data-testid=grp-member] input")
            .await;
        admin.click("#grp-members-save").await;
        admin.wait_text("#grp-members-msg", "共 2 人").await;
        set_value(&admin, "#grp-member-search", "").await;
        shot(&admin, "3-group-members").await;
        admin.save_screenshot_for_docs("admin.png").await;

        // 会话设置: a new problem type with a child, an existing child renamed.
        admin.click("#menu-desk").await;
        admin.wait("#pt-tree [data-testid=pt-parent]").await;
        admin.fill("#pt-new-parent", "价格保护").await;
        admin.click("#pt-add-parent").await;
        admin
            .click("#pt-tree [data-testid=pt-add-child][data-parent=\"价格保护\"]")
            .await;
        admin
            .fill("#pt-tree [data-testid=pt-child][data-type=\"价格保护/\"] input", "申请价保")
            .await;
        admin
            .fill("#pt-tree [data-testid=pt-child][data-type=\"售后/换货\"] input", "换货补发")
            .await;
        admin.click("#wrapup-required").await;
        admin.click("#pt-save").await;
        admin.wait_text("#pt-msg", "已保存").await;
        admin.wait_text("#src-wrap_up", "已在后台修改").await;
        admin.script("document.getElementById('ad-main').scrollTop = 0;", vec![]).await;
        shot(&admin, "4a-desk-problem-types").await;
        // A timer that ends the conversation before the reminder is refused, in Chinese.
        h.expect_console_error("/api/v1/admin/settings - Failed to load resource");
        admin.fill("#t-remind", "9").await;
        admin.fill("#t-end", "5").await;
        admin.click("#timers-save").await;
        admin.wait_text("#timers-error", "自动结束时间须长于提醒时间").await;
        admin.fill("#t-remind", "5").await;
        admin.fill("#t-end", "10").await;
        shot(&admin, "4b-desk-timers").await;
        // A three-point survey with its own question.
        set_value(&admin, "#survey-scale", "3").await;
        admin.wait("#survey-label-3").await;
        admin.fill("#survey-title", "您对本次服务满意吗？").await;
        admin.click("#survey-save").await;
        admin.wait_text("#survey-msg", "已保存").await;

        // 访客与渠道: a site, its secret shown once; the widget preview follows the colour.
        admin.click("#menu-channels").await;
        admin.wait("#view-channels:not([hidden])").await;
        admin.fill("#site-id", "shop").await;
        admin.fill("#site-name", "官方商城").await;
        admin.click("#site-add").await;
        admin.wait("#dlg-secret[open]").await;
        let secret = admin.text("#secret-value").await;
        assert!(secret.len() >= 40, "{secret}");
        admin.click("#secret-done").await;
        admin.wait("[data-testid=site-row][data-site-id=shop]").await;
        set_value(&admin, "#wg-color", "#00b42a").await;
        set_value(&admin, "#wg-group", &after_sales.to_string()).await;
        admin.click("#wg-preview-bubble").await;
        let snippet = admin.value("#wg-snippet").await;
        assert!(
            snippet.contains(&format!("data-group=\"{after_sales}\""))
                && snippet.contains("data-color=\"#00b42a\""),
            "{snippet}"
        );
        let bubble = admin
            .script(
                "return getComputedStyle(document.getElementById('wg-preview-bubble')).backgroundColor;",
                vec![],
            )
            .await;
        assert_eq!(bubble, json!("rgb(0, 180, 42)"));
        shot(&admin, "5-channels").await;

        // Webhooks: one registered and tested against a port nobody listens on.
        admin.click("#menu-webhooks").await;
        admin.click("#wh-new").await;
        admin.fill("#wh-url", "http://127.0.0.1:9/kefu-hook").await;
        admin.click("#wh-save").await;
        admin.wait("#dlg-secret[open]").await;
        admin.click("#secret-done").await;
        admin.click("[data-testid=webhook-test]").await;
        admin.wait_text("#toasts .toast.error", "测试失败").await;
        admin.click("[data-testid=webhook-log]").await;
        admin.wait("[data-testid=delivery-row][data-status=failed]").await;
        shot(&admin, "6-webhooks").await;

        // 审计日志 lists what was just done; 知识库 shows the dictionary.
        admin.click("#menu-audit").await;
        admin.wait("[data-testid=audit-row][data-kind=settings_changed]").await;
        admin.wait("[data-testid=audit-row][data-kind=site_changed]").await;
        shot(&admin, "7-audit").await;
        admin.click("#menu-kb").await;
        admin.wait("[data-testid=cat-row]").await;
        shot(&admin, "8-kb").await;

        // The settings are stored as the console showed them.
        let (_, survey) = app_ref.get_as(None, "/api/v1/visitor/survey").await;
        assert_eq!(survey["scale"], 3);
        assert_eq!(survey["labels"], json!(["不满意", "一般", "满意"]));
        let stored = app_ref.state.conversations.desk_settings();
        assert!(stored
            .wrap_up
            .problem_types
            .contains(&"价格保护/申请价保".to_string()));
        assert!(stored
            .wrap_up
            .problem_types
            .contains(&"售后/换货补发".to_string()));
        assert_eq!(stored.timers.visitor_idle_end_mins, 10);

        // 小美 signs in with the password the console showed; a visitor of 售后服务 is assigned to
        // her at once (least loaded: 小丽 is not signed in, so not online).
        let mei = h.browser("agent-xiaomei", true).await;
        first_sign_in(&mei, "/workbench", "xiaomei", &mei_password).await;
        mei.wait_text("#ws-text", "已连接").await;
        let visitor = h.browser("visitor", false).await;
        visitor.open(&format!("/chat?group={after_sales}")).await;
        visitor.wait("#welcome:not([hidden])").await;
        visitor_says(&visitor, "我买的羽绒服降价了，能退差价吗？").await;
        visitor.wait("#chat-status[data-state=active]").await;
        visitor.wait_text("#agent-name", "小美").await;
        mei.click("#my-list [data-testid=conv-item]").await;
        mei.wait("#chat-pane[data-role=serving]").await;
        agent_says(&mei, "您好，可以为您申请价格保护。").await;
        mei.click("#btn-end").await;
        mei.click("#btn-end").await;
        mei.wait("#chat-state[data-state=ended]").await;
        mei.wait("#dlg-wrapup[open]").await;
        // Required: no "later" in the dialog, and the note says why.
        mei.wait("#wrapup-required-note:not([hidden])").await;
        let later_hidden = mei
            .script(
                "return Array.from(document.querySelectorAll('#dlg-wrapup [data-close]')).every(b => b.hidden);",
                vec![],
            )
            .await;
        assert_eq!(later_hidden, json!(true));
        mei.click("[data-testid=wrapup-type][data-type=\"价格保护/申请价保\"]").await;
        mei.fill("#wrapup-resolution", "已为客户申请价保").await;
        mei.click("#wrapup-submit").await;
        mei.wait_until(
            "the wrap-up dialog closed",
            "return !document.getElementById('dlg-wrapup').open;",
            vec![],
        )
        .await;

        // The visitor is asked the console's question on three stars, and rates 3 of 3.
        visitor.wait("#rating-panel:not([hidden])").await;
        assert_eq!(visitor.text("#rating-title").await, "您对本次服务满意吗？");
        let stars_shown = visitor
            .script(
                "return Array.from(document.querySelectorAll('#rating-stars .star')).filter(s => !s.hidden).length;",
                vec![],
            )
            .await;
        assert_eq!(stars_shown, json!(3));
        visitor.click("#rating-star-3").await;
        visitor.wait_text("#rating-label", "满意").await;
        visitor.click("#rating-submit").await;
        visitor.wait("#rating-thanks:not([hidden])").await;

        // A visitor of 物流 on its holiday leaves a message and reads the group's notice.
        let (status, started) = app_ref
            .json_as(
                None,
                Method::POST,
                "/api/v1/visitor/conversations",
                json!({"message": "我的快递到哪了", "group": logistics}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{started}");
        assert_eq!(started["conversation"]["state"], "offline_message");
        assert!(started["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|message| message["body"] == "物流组今天休息，请留下您的问题。"));
    })
    .await;

    // The visitor's conversation was served by 小美 and wrapped up with the new type.
    let (_, admin_session) = (
        (),
        app.login("admin", PASSWORD).await.expect("admin signs in"),
    );
    // The rating travels over the visitor's socket: wait until it is stored.
    let mut served = Value::Null;
    for _ in 0..100 {
        let (status, history) = app
            .get_as(Some(&admin_session), "/api/v1/conversations?per_page=10")
            .await;
        assert_eq!(status, StatusCode::OK, "{history}");
        served = history["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["conversation"].clone())
            .find(|conversation| conversation["wrap_up"].is_object())
            .expect("a wrapped-up conversation");
        if served["rating"].is_object() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(served["wrap_up"]["problem_type"], "价格保护/申请价保");
    // 3 of 3 is stored as 5 of 5.
    assert_eq!(served["rating"]["stars"], 5);
    let (_, accounts) = app
        .get_as(Some(&admin_session), "/api/v1/admin/accounts?q=xiaomei")
        .await;
    assert_eq!(served["agent"], accounts["accounts"][0]["id"]);
    let _ = &mut app;
}

/// A supervisor sees the routing of their own group only (name and members read-only) and the block
/// list; an editor sees the knowledge-base settings only, with a Chinese error for a bad synonym line.
#[tokio::test]
async fn supervisors_and_editors_see_only_what_they_may_change() {
    if !harness::chromium_available() {
        return;
    }
    const TEST: &str = "supervisors_and_editors_see_only_what_they_may_change";
    let mut app = TestApp::start_signed_out_at(starter_kb(), real_now()).await;
    let address = app.listen().await;
    let admin = app.admin().await;
    let mine = app.skill_group(&admin, "售后服务", "auto").await;
    let other = app.skill_group(&admin, "物流", "auto").await;
    for (username, roles, group) in [
        ("zhuguan", json!(["supervisor", "agent"]), Some(mine)),
        ("bianji", json!(["editor"]), None),
    ] {
        let (status, body) = app
            .json_as(
                Some(&admin),
                Method::POST,
                "/api/v1/admin/accounts",
                json!({"username": username, "password": INITIAL_PASSWORD, "roles": roles,
                    "groups": group.into_iter().collect::<Vec<u64>>()}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    harness::run(TEST, address, |h: Arc<Harness>| async move {
        let supervisor = h.browser("supervisor", false).await;
        first_sign_in(&supervisor, "/admin", "zhuguan", INITIAL_PASSWORD).await;
        supervisor.wait("#view-groups:not([hidden]):not([data-loading])").await;
        let menu = supervisor
            .script(
                "return Array.from(document.querySelectorAll('#ad-menu a')).filter(a => !a.hidden).map(a => a.dataset.section);",
                vec![],
            )
            .await;
        assert_eq!(menu, json!(["groups", "channels"]));
        let groups = supervisor
            .script(
                "return Array.from(document.querySelectorAll('[data-testid=grp-item]')).map(i => Number(i.dataset.groupId));",
                vec![],
            )
            .await;
        assert_eq!(groups, json!([mine]), "not group {other}");
        let read_only = supervisor
            .script(
                "return [document.getElementById('grp-name').disabled, document.getElementById('grp-members-save').hidden, \
                 document.getElementById('grp-new').hidden];",
                vec![],
            )
            .await;
        assert_eq!(read_only, json!([true, true, true]));
        supervisor.fill("#grp-queue-message", "主管设置的排队提示").await;
        supervisor.click("#grp-routing-save").await;
        supervisor.wait_text("#grp-routing-msg", "已保存").await;
        shot_as(&supervisor, TEST, "supervisor-groups").await;
        supervisor.click("#menu-channels").await;
        supervisor.wait("#view-channels:not([hidden]):not([data-loading])").await;
        let cards = supervisor
            .script(
                "return ['card-sites', 'card-widget', 'card-uploads', 'card-blocks'].map(id => document.getElementById(id).hidden);",
                vec![],
            )
            .await;
        assert_eq!(cards, json!([true, true, true, false]));
        // Another section by its address falls back to one they may see.
        supervisor.open("/admin#accounts").await;
        supervisor.wait("#view-groups:not([hidden])").await;

        let editor = h.browser("editor", false).await;
        first_sign_in(&editor, "/admin", "bianji", INITIAL_PASSWORD).await;
        editor.wait("#view-kb:not([hidden]):not([data-loading])").await;
        let menu = editor
            .script(
                "return Array.from(document.querySelectorAll('#ad-menu a')).filter(a => !a.hidden).map(a => a.dataset.section);",
                vec![],
            )
            .await;
        assert_eq!(menu, json!(["kb"]));
        h.expect_console_error("/api/v1/kb/synonyms - Failed to load resource");
        editor.fill("#kb-syn", "退款,退钱,返款\n发票\n").await;
        editor.click("#kb-syn-save").await;
        editor
            .wait_text("#kb-syn-error", "同义词第 2 行：每行至少 2 个不同的词")
            .await;
        editor.fill("#kb-syn", "退款,退钱,返款\n发票,收据,凭证\n").await;
        editor.click("#kb-syn-save").await;
        editor.wait_text("#kb-syn-msg", "已保存").await;
        shot_as(&editor, TEST, "editor-kb").await;
    })
    .await;
    let (_, routing) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/admin/groups/{mine}/routing"),
        )
        .await;
    assert_eq!(routing["queue_message"], "主管设置的排队提示");
    assert_eq!(
        std::fs::read_to_string(app.dirs.kb.join("_synonyms.txt")).unwrap(),
        "退款,退钱,返款\n发票,收据,凭证\n"
    );
}

/// As [`shot`], into the folder of `test`.
async fn shot_as(browser: &Browser, test: &str, step: &str) {
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
    std::fs::write(folder.join(format!("walk-{step}.png")), png).expect("writing the screenshot");
}
