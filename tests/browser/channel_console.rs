//! The console's 渠道 section (`/admin#chan`) in the browser, at 1280×800: the admin meets a Chinese
//! error for a webhook URL that is not http(s), creates an API channel and sees its token once, sees
//! a failed 测试 among the channel's last errors and the app's first conversation in its delivery log
//! (one sent again), creates a 公众号 channel and sees its callback URL (in the secrets shown once and
//! in the list), disables and enables it, and rotates its keys after a warning.
//!
//! With `KEFU_WALK_SHOTS=1` the section is saved as `target/browser-artifacts/<test>/chan-*.png`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use serde_json::json;

use super::common::PASSWORD;
use super::harness::{self, Browser, Harness};
use super::{desk, sign_in};

const TEST: &str = "admin_console_creates_channels_shows_secrets_once_and_toggles_them";

async fn shot(browser: &Browser, step: &str) {
    if std::env::var("KEFU_WALK_SHOTS").as_deref() != Ok("1") {
        return;
    }
    let png = browser.client.screenshot().await.expect("screenshot");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let folder = target.join("browser-artifacts").join(TEST);
    std::fs::create_dir_all(&folder).expect("creating the artifacts folder");
    std::fs::write(folder.join(format!("chan-{step}.png")), png).expect("writing the screenshot");
}

/// Picks `value` in the select `css` the way the user would, and tells the page.
async fn choose(browser: &Browser, css: &str, value: &str) {
    browser.wait(css).await;
    browser
        .script(
            "const e = document.querySelector(arguments[0]); e.value = arguments[1]; \
             e.dispatchEvent(new Event('change', {bubbles: true})); return e.value;",
            vec![json!(css), json!(value)],
        )
        .await;
}

#[tokio::test]
async fn admin_console_creates_channels_shows_secrets_once_and_toggles_them() {
    if !harness::chromium_available() {
        return;
    }
    let (app, address, admin_session, group) = desk().await;
    let app_ref = &app;
    let admin_ref = &admin_session;
    harness::run(TEST, address, |h: Arc<Harness>| async move {
        let admin = h.browser("admin", false).await;
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
        sign_in(&admin, "/admin", "admin", PASSWORD).await;
        admin.click("#menu-chan").await;
        admin.wait("#view-chan:not([hidden]):not([data-loading])").await;
        admin.wait_text("#ch-body", "还没有渠道").await;

        // A webhook URL that is not http(s): the server's refusal, in Chinese, in the dialog.
        admin.click("#ch-new").await;
        admin.wait("#dlg-channel[open]").await;
        admin.fill("#ch-name", "商城 App").await;
        choose(&admin, "#ch-group", &group.to_string()).await;
        admin.fill("#ch-webhook", "ftp://app.example.com/kefu").await;
        h.expect_console_error("/api/v1/admin/channels - Failed to load resource");
        admin.click("#ch-create").await;
        admin
            .wait_text("#ch-error", "接收地址须为 http:// 或 https:// 开头的网址")
            .await;
        assert!(admin.script("return document.querySelector('#dlg-channel').open;", vec![]).await.as_bool().unwrap());

        // A good one: the token and the webhook secret, shown once.
        admin.fill("#ch-webhook", "http://127.0.0.1:9/kefu/events").await;
        admin.click("#ch-create").await;
        admin.wait("#dlg-ch-secrets[open]").await;
        let token = admin.text("[data-testid=ch-secret-token]").await;
        assert!(token.starts_with("ch1."), "{token}");
        let webhook_secret = admin.text("[data-testid=ch-secret-webhook_secret]").await;
        assert!(!webhook_secret.is_empty());
        admin.wait_text("#ch-secrets-warning", "只显示这一次").await;
        shot(&admin, "api-secrets").await;
        admin.click("#ch-secrets-done").await;
        let api_row = "[data-testid=channel-row][data-kind=api]";
        admin.wait(api_row).await;
        admin.wait_text(&format!("{api_row} [data-testid=channel-kind]"), "API").await;
        admin.wait_text(&format!("{api_row} [data-testid=channel-webhook-url]"), "http://127.0.0.1:9/kefu/events").await;
        admin.wait_text(api_row, "售后服务").await;
        // Once: the page no longer holds it, and a reload does not bring it back.
        let shown = admin
            .script("return document.body.innerText.includes(arguments[0]) || document.querySelector('#dlg-ch-secrets').open;", vec![json!(token)])
            .await;
        assert_eq!(shown, json!(false));
        let api_id = admin
            .script(&format!("return document.querySelector('{api_row}').dataset.channelId;"), vec![])
            .await
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();

        // The app's server starts a conversation with the token: its replies go to the webhook,
        // which nobody answers; the delivery log shows them and one is sent again.
        let request = Request::post("/api/v1/channels/api/conversations")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(json!({"user_id": "u10086", "name": "王女士", "message": "订单什么时候发货？"}).to_string()))
            .unwrap();
        let started = app_ref.raw(request).await;
        assert_eq!(started.status, StatusCode::CREATED, "{:?}", started.body);
        // 测试: the signed ping finds nobody at the webhook; the answer is shown, with the server's
        // words, and kept among the channel's last errors.
        admin.click(&format!("#channel-test-{api_id}")).await;
        admin.wait(&format!("#ch-detail[data-channel=\"{api_id}\"]:not([hidden])")).await;
        admin.wait("#ch-test-result[data-ok=false]:not([hidden])").await;
        admin.wait_text("#ch-test-result", "测试失败").await;
        admin.wait_text("#ch-errors [data-testid=channel-error]", "test failed").await;
        admin.wait_text(&format!("{api_row} [data-testid=channel-errors]"), "1 条").await;
        admin.wait("#ch-log:not([hidden])").await;
        let mut tries = 0;
        while admin
            .script("return document.querySelectorAll('[data-testid=ch-delivery-row]').length;", vec![])
            .await
            .as_u64()
            .unwrap_or(0)
            == 0
        {
            tries += 1;
            assert!(tries < 40, "no delivery in the channel's log");
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            admin.click("#ch-detail-refresh").await;
        }
        admin.click("[data-testid=ch-delivery-redeliver]").await;
        admin.wait_text("#toasts", "已重新加入投递队列").await;

        // 公众号: AppID and AppSecret; the callback URL to enter in WeChat's console, the Token and
        // EncodingAESKey kefu made.
        admin.click("#ch-new").await;
        admin.wait("#dlg-channel[open]").await;
        admin.click("#ch-kind-wechat_official").await;
        admin.wait("#ch-app-id").await;
        admin.wait_text("#ch-app-id-label", "AppID").await;
        admin.fill("#ch-name", "服务号").await;
        admin.fill("#ch-app-id", "wx2c2769f8efd9abc2").await;
        admin.fill("#ch-secret", "0123456789abcdef0123456789abcdef").await;
        shot(&admin, "create-wechat").await;
        // A bad EncodingAESKey first: refused in Chinese.
        admin.fill("#ch-aes", "too-short").await;
        admin.click("#ch-create").await;
        admin.wait_text("#ch-error", "EncodingAESKey 须为 43 位").await;
        admin.fill("#ch-aes", "").await;
        admin.click("#ch-create").await;
        admin.wait("#dlg-ch-secrets[open]").await;
        let callback = admin.text("[data-testid=ch-secret-callback_url]").await;
        assert!(callback.contains("/api/v1/channels/") && callback.ends_with("/callback"), "{callback}");
        assert!(callback.starts_with("http"), "an address WeChat can call: {callback}");
        let aes = admin.text("[data-testid=ch-secret-encoding_aes_key]").await;
        assert_eq!(aes.len(), 43, "{aes}");
        assert!(!admin.text("[data-testid=ch-secret-callback_token]").await.is_empty());
        admin.click("#ch-secrets-done").await;
        let mp_row = "[data-testid=channel-row][data-kind=wechat_official]";
        admin.wait_text(&format!("{mp_row} [data-testid=channel-kind]"), "公众号").await;
        admin.wait_text(&format!("{mp_row} [data-testid=channel-callback-url]"), &callback).await;
        admin.wait(&format!("{mp_row} [data-testid=channel-copy-url]")).await;
        let mp_id = admin
            .script(&format!("return document.querySelector('{mp_row}').dataset.channelId;"), vec![])
            .await
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap();
        shot(&admin, "list").await;
        admin.click(&format!("#channel-open-{mp_id}")).await;
        admin.wait(&format!("#ch-detail[data-channel=\"{mp_id}\"]:not([hidden])")).await;
        admin.wait("#ch-log[hidden]").await;

        // Disabled, then enabled again: the server agrees each time.
        admin.click(&format!("#channel-enabled-{mp_id}")).await;
        admin.wait(&format!("{mp_row}[data-enabled=false]")).await;
        admin.wait_text(&format!("{mp_row} [data-testid=channel-status]"), "已停用").await;
        let (_, stored) = app_ref
            .get_as(Some(admin_ref), &format!("/api/v1/admin/channels/{mp_id}"))
            .await;
        assert_eq!(stored["enabled"], false, "{stored}");
        admin.click(&format!("#channel-enabled-{mp_id}")).await;
        admin.wait(&format!("{mp_row}[data-enabled=true]")).await;
        // Renamed, with a new AppSecret, in the detail.
        admin.wait("#ch-edit-app-id:not([hidden])").await;
        assert_eq!(admin.value("#ch-edit-app-id").await, "wx2c2769f8efd9abc2");
        admin.fill("#ch-edit-name", "官方服务号").await;
        admin.fill("#ch-edit-secret", "fedcba9876543210fedcba9876543210").await;
        admin.click("#ch-edit-save").await;
        admin.wait_text(&format!("{mp_row} [data-testid=channel-name]"), "官方服务号").await;
        shot(&admin, "detail").await;

        // Rotation warns that WeChat's console must be updated, then shows the new keys once.
        admin.click(&format!("#channel-rotate-{mp_id}")).await;
        admin.wait_text("#confirm-text", "重新填写").await;
        admin.click("#confirm-yes").await;
        admin.wait("#dlg-ch-secrets[open]").await;
        let rotated = admin.text("[data-testid=ch-secret-encoding_aes_key]").await;
        assert_ne!(rotated, aes);
        admin.click("#ch-secrets-done").await;

        // 微信客服: CorpID, Secret and one open_kfid; its callback URL too.
        admin.click("#ch-new").await;
        admin.wait("#dlg-channel[open]").await;
        admin.click("#ch-kind-wecom_kf").await;
        admin.wait_text("#ch-app-id-label", "CorpID").await;
        admin.fill("#ch-app-id", "ww1234567890abcdef").await;
        admin.fill("#ch-secret", "kf-secret-0123456789").await;
        admin.fill("#ch-open-kfid", "wkAbCdEf0123").await;
        admin.click("#ch-create").await;
        admin.wait("#dlg-ch-secrets[open]").await;
        let kf_callback = admin.text("[data-testid=ch-secret-callback_url]").await;
        assert!(kf_callback.ends_with("/callback") && kf_callback != callback, "{kf_callback}");
        admin.click("#ch-secrets-done").await;
        let kf_row = "[data-testid=channel-row][data-kind=wecom_kf]";
        admin.wait_text(&format!("{kf_row} [data-testid=channel-kind]"), "微信客服").await;
        admin.wait_text(kf_row, "CorpID ww1234567890abcdef · wkAbCdEf0123").await;
        admin.wait_text(&format!("{kf_row} [data-testid=channel-callback-url]"), &kf_callback).await;
        shot(&admin, "three-kinds").await;
    })
    .await;
}
