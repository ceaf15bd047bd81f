//! Quick replies over the real router: the starter set, CRUD and permissions by scope, shortcut,
//! keyword and pinyin search, import and export, images.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{encode, Session, TestApp, TestDirs};

async fn desk() -> (TestApp, Session) {
    let app = TestApp::start_signed_out(TestDirs::with_fixtures()).await;
    let admin = app.admin().await;
    (app, admin)
}

async fn search(app: &TestApp, session: &Session, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get_as(
            Some(session),
            &format!("/api/v1/quick-replies/search?q={}", encode(query)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["hits"].as_array().unwrap().clone()
}

fn titles(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|hit| hit["title"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_starter_set_is_found_by_shortcut_keywords_and_pinyin() {
    let (app, admin) = desk().await;
    let (_, agent) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    let (status, list) = app.get_as(Some(&agent), "/api/v1/quick-replies").await;
    assert_eq!(status, StatusCode::OK);
    let replies = list["replies"].as_array().unwrap();
    assert!(replies.len() >= 30, "{}", replies.len());
    assert!(replies.iter().all(|reply| reply["scope"]["kind"] == "team"));

    let exact = search(&app, &agent, "/sqtk").await;
    assert_eq!(exact[0]["title"], "申请退款流程");
    assert_eq!(exact[0]["matched"], "shortcut_exact");
    let prefix = search(&app, &agent, "/sq").await;
    assert_eq!(prefix[0]["matched"], "shortcut_prefix");
    for query in ["tk", "tuikuan", "退款"] {
        let hits = search(&app, &agent, query).await;
        assert!(
            titles(&hits[..3.min(hits.len())])
                .iter()
                .any(|title| title.contains("退款")),
            "{query}: {:?}",
            titles(&hits)
        );
    }
    let invoice = search(&app, &agent, "发票").await;
    assert!(
        titles(&invoice)[0].contains("发票"),
        "{:?}",
        titles(&invoice)
    );
    // Nothing odd: empty and over-long queries.
    assert!(search(&app, &agent, "   ").await.is_empty());
    let (status, body) = app
        .get_as(
            Some(&agent),
            &format!("/api/v1/quick-replies/search?q={}", "长".repeat(201)),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    // Seeded once: a restart does not add them again.
    let count = replies.len();
    let dirs = app.stop();
    let app = TestApp::start_signed_out(dirs).await;
    let agent = app
        .login("xiaowang", crate::common::PASSWORD)
        .await
        .unwrap();
    let (_, list) = app.get_as(Some(&agent), "/api/v1/quick-replies").await;
    assert_eq!(list["replies"].as_array().unwrap().len(), count);
}

#[tokio::test]
async fn scopes_decide_who_sees_and_who_edits() {
    let (app, admin) = desk().await;
    let (_, group) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/admin/groups",
            json!({"name": "售后"}),
        )
        .await;
    let group_id = group["id"].as_u64().unwrap();
    let (first_id, first) = app.create_account(&admin, "agent1", &["agent"]).await;
    let (_, second) = app.create_account(&admin, "agent2", &["agent"]).await;
    let (lead_id, lead) = app
        .create_account(&admin, "lead", &["agent", "supervisor"])
        .await;
    for id in [first_id, lead_id] {
        app.json_as(
            Some(&admin),
            Method::PATCH,
            &format!("/api/v1/admin/accounts/{id}"),
            json!({"groups": [group_id]}),
        )
        .await;
    }
    let create = |session: &Session, scope: Value, title: &str, shortcut: &str| {
        let body = json!({"scope": scope, "title": title, "content": format!("{title}的内容"), "category": "测试/分类", "shortcut": shortcut, "tags": ["测试"]});
        let session = session.clone();
        let app = &app;
        async move {
            app.json_as(Some(&session), Method::POST, "/api/v1/quick-replies", body)
                .await
        }
    };
    let (status, personal) =
        create(&first, json!({"kind": "personal"}), "我的私人话术", "/wd").await;
    assert_eq!(status, StatusCode::CREATED, "{personal}");
    let personal_id = personal["id"].as_u64().unwrap();
    let (status, body) = create(&first, json!({"kind": "team"}), "团队话术", "/td").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, team) = create(&lead, json!({"kind": "team"}), "团队话术", "/td").await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    let (status, group_reply) = create(
        &lead,
        json!({"kind": "group", "group": group_id}),
        "售后组话术",
        "/sh",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{group_reply}");
    let (status, body) = create(&lead, json!({"kind": "team"}), "重复", "/td").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("shortcut_taken"))
    );
    let (status, _) = create(&first, json!({"kind": "personal"}), "同码私人", "/td").await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the same code in another scope is fine"
    );
    let (status, body) = create(&first, json!({"kind": "personal"}), "坏码", "/退款").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );

    // Another agent sees neither the personal reply nor the group's.
    let (status, body) = app
        .get_as(
            Some(&second),
            &format!("/api/v1/quick-replies/{personal_id}"),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("quick_reply_not_found"))
    );
    let seen = titles(&search(&app, &second, "话术").await);
    assert!(seen.contains(&"团队话术".to_string()), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|title| title == "我的私人话术" || title == "售后组话术"),
        "{seen:?}"
    );
    let seen = titles(&search(&app, &first, "话术").await);
    assert!(
        seen.contains(&"我的私人话术".to_string()) && seen.contains(&"售后组话术".to_string()),
        "{seen:?}"
    );
    let (_, list) = app
        .get_as(
            Some(&first),
            &format!("/api/v1/quick-replies?category={}", encode("测试")),
        )
        .await;
    assert_eq!(list["replies"].as_array().unwrap().len(), 4);

    // An agent cannot change team replies; the owner changes their own.
    let team_id = team["id"].as_u64().unwrap();
    let edit = json!({"scope": {"kind": "team"}, "title": "改过", "content": "改过的内容"});
    let (status, _) = app
        .json_as(
            Some(&first),
            Method::PUT,
            &format!("/api/v1/quick-replies/{team_id}"),
            edit.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/quick-replies/{team_id}"),
            None,
            Some(&first),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .json_as(
            Some(&first),
            Method::PUT,
            &format!("/api/v1/quick-replies/{personal_id}"),
            json!({"scope": {"kind": "personal"}, "title": "改名了", "content": "新内容"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "改名了");
    assert!(titles(&search(&app, &first, "gaiming").await).contains(&"改名了".to_string()));
    let reply = app
        .call(
            Method::DELETE,
            &format!("/api/v1/quick-replies/{personal_id}"),
            None,
            Some(&first),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(!titles(&search(&app, &first, "改名了").await).contains(&"改名了".to_string()));

    // An image on a reply: checked by content.
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00".to_vec();
    let reply = app
        .call(
            Method::PUT,
            &format!("/api/v1/quick-replies/{team_id}/image"),
            Some(("image/png", png)),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert!(reply.body["image_url"]
        .as_str()
        .unwrap()
        .starts_with(&format!("/api/v1/quick-replies/{team_id}/image")));
    let reply = app
        .call(
            Method::PUT,
            &format!("/api/v1/quick-replies/{team_id}/image"),
            Some(("image/png", b"GIF? no".to_vec())),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = app
        .call(
            Method::GET,
            &format!("/api/v1/quick-replies/{team_id}/image"),
            None,
            Some(&second),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn import_reports_bad_rows_by_line_and_export_round_trips() {
    let (app, admin) = desk().await;
    let (_, lead) = app
        .create_account(&admin, "lead", &["agent", "supervisor"])
        .await;
    let (_, agent) = app.create_account(&admin, "agent1", &["agent"]).await;
    let csv = "\u{feff}scope,title,content,category,shortcut,tags\n\
team,物流延迟安抚,\"亲，非常抱歉，您的包裹因天气原因延迟，预计明天送达。\",物流,/wlyc,物流|安抚\n\
team,缺列的行,只有三列\n\
team,重复码,内容,物流,/wlyc,\n\
group:999,不存在的组,内容,其他,,\n\
personal,我的导入,\"含逗号,的内容\",其他,/wddr,个人\n";
    let reply = app
        .call(
            Method::POST,
            "/api/v1/quick-replies/import?format=csv",
            Some(("text/csv", csv.as_bytes().to_vec())),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["imported"], 2, "{}", reply.body);
    let lines: Vec<u64> = reply.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, [3, 4, 5], "{}", reply.body);
    let reasons = reply.body["errors"].to_string();
    assert!(
        reasons.contains("columns") && reasons.contains("/wlyc"),
        "{reasons}"
    );

    // An agent may import personal rows only.
    let mixed = "scope,title,content,category,shortcut,tags\nteam,团队的,内容,其他,,\npersonal,自己的,内容,其他,,\n";
    let reply = app
        .call(
            Method::POST,
            "/api/v1/quick-replies/import",
            Some(("text/csv", mixed.as_bytes().to_vec())),
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(reply.body["imported"], 1, "{}", reply.body);
    assert_eq!(reply.body["errors"][0]["line"], 2);

    // Whole-file problems: encoding and header.
    let latin1 = b"scope,title,content,category,shortcut,tags\nteam,caf\xe9,x,y,,\n".to_vec();
    let reply = app
        .call(
            Method::POST,
            "/api/v1/quick-replies/import",
            Some(("text/csv", latin1)),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(
        (reply.status, reply.body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_import"))
    );
    let reply = app
        .call(
            Method::POST,
            "/api/v1/quick-replies/import",
            Some(("text/csv", b"a,b,c\n1,2,3\n".to_vec())),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(reply.body["code"], "invalid_import");

    // Export: a BOM for Excel, and the file imports again (into a fresh desk) unchanged.
    let exported = app
        .call(
            Method::GET,
            "/api/v1/quick-replies/export?format=csv",
            None,
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(exported.status, StatusCode::OK);
    let text = exported.body.as_str().unwrap().to_string();
    assert!(text.starts_with('\u{feff}'));
    assert!(text.contains("物流延迟安抚") && text.contains("\"含逗号,的内容\""));
    let (other, other_admin) = desk().await;
    let (_, other_lead) = other
        .create_account(&other_admin, "lead", &["agent", "supervisor"])
        .await;
    let (_, before) = other
        .get_as(Some(&other_lead), "/api/v1/quick-replies")
        .await;
    let reply = other
        .call(
            Method::POST,
            "/api/v1/quick-replies/import",
            Some(("text/csv", text.into_bytes())),
            Some(&other_lead),
            None,
        )
        .await;
    // The starter set is already there with the same shortcuts: those rows are refused, the rest imported.
    let errors = reply.body["errors"].as_array().unwrap().len();
    let imported = reply.body["imported"].as_u64().unwrap() as usize;
    let before = before["replies"].as_array().unwrap().len();
    assert_eq!(imported, 2, "{}", reply.body);
    assert_eq!(
        errors + 2,
        before + 2,
        "every starter row clashes: {}",
        reply.body
    );
    let json_export = app
        .get_as(Some(&lead), "/api/v1/quick-replies/export?format=json")
        .await
        .1;
    assert!(json_export
        .as_array()
        .unwrap()
        .iter()
        .any(|record| record["title"] == "物流延迟安抚"));
    let json_import = json!([{"scope": "team", "title": "JSON导入", "content": "内容", "shortcut": "/jsondr"}, {"scope": "team"}]);
    let reply = app
        .call(
            Method::POST,
            "/api/v1/quick-replies/import?format=json",
            Some(("application/json", json_import.to_string().into_bytes())),
            Some(&lead),
            None,
        )
        .await;
    assert_eq!(reply.body["imported"], 1, "{}", reply.body);
    assert_eq!(reply.body["errors"][0]["line"], 2);
}

/// The passage of a suggested article is the section about the question: words in its heading count
/// double, single characters not at all, and an answer that introduces a list brings the list.
/// An admin may manage every group's replies, but not file one under a group that does not exist:
/// nobody could ever be a member of it, so nobody would see the reply.
#[tokio::test]
async fn replies_of_a_missing_skill_group_are_refused() {
    let (app, admin) = desk().await;
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/quick-replies",
            json!({"scope": {"kind": "group", "group": 999}, "title": "无主的回复", "content": "内容"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "group_not_found");

    let (status, created) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/quick-replies",
            json!({"scope": {"kind": "team"}, "title": "团队回复", "content": "内容"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::PUT,
            &format!("/api/v1/quick-replies/{}", created["id"]),
            json!({"scope": {"kind": "group", "group": 999}, "title": "团队回复", "content": "内容"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "group_not_found");

    let csv = "scope,title,content,category,shortcut,tags
group:999,不存在的组,内容,其他,,
team,存在的范围,内容,其他,,
";
    let reply = app
        .call(
            Method::POST,
            "/api/v1/quick-replies/import?format=csv",
            Some(("text/csv", csv.as_bytes().to_vec())),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["imported"], 1, "{}", reply.body);
    assert_eq!(reply.body["errors"][0]["line"], 2, "{}", reply.body);
    assert_eq!(
        reply.body["errors"][0]["reason"], "skill group 999 not found",
        "{}",
        reply.body
    );
    let listed = app.get_as(Some(&admin), "/api/v1/quick-replies").await.1;
    assert!(
        !listed.to_string().contains("不存在的组"),
        "the refused row was not stored: {listed}"
    );
}

#[tokio::test]
async fn suggested_passages_come_from_the_section_that_answers() {
    let dirs = crate::common::TestDirs::with_fixtures();
    dirs.write(
        "returns/arrival.md",
        "# 退款到账时间\n\n退款按原支付方式退回，支付宝 1–3 个工作日到账。\n\n\
         ## 能否改为退到余额\n\n可以。申请售后时选择退至账户余额，退款即时到账，我的钱包可提现。\n",
    );
    dirs.write(
        "returns/refund-only.md",
        "# 仅退款说明\n\n以下情况支持仅退款：\n\n- 商家未发货\n- 快递丢件\n\n其他情况请申请退货退款。\n",
    );
    dirs.write(
        "account/new-password.md",
        "# 重新设置密码\n\n忘记密码时按下面的步骤重新设置。\n\n1. 在登录页点击「忘记密码」\n2. 填写短信验证码\n3. 设置新的登录密码\n\n## 收不到验证码\n\n请检查短信拦截。\n",
    );
    let app = crate::common::TestApp::start(dirs).await;
    let admin = app.admin().await;
    let suggest = |text: &'static str| {
        let app = &app;
        let admin = &admin;
        async move {
            let (status, body) = app
                .json_as(
                    Some(admin),
                    axum::http::Method::POST,
                    "/api/v1/assist/suggest",
                    serde_json::json!({ "text": text }),
                )
                .await;
            assert_eq!(status, axum::http::StatusCode::OK, "{body}");
            body["suggestions"].as_array().unwrap().clone()
        }
    };
    let reply_of = |suggestions: &[serde_json::Value], id: &str| {
        suggestions
            .iter()
            .find(|suggestion| suggestion["id"] == id)
            .unwrap_or_else(|| panic!("{id} not suggested: {suggestions:?}"))["reply"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let found = suggest("我申请了退款，多久到账？").await;
    assert!(
        reply_of(&found, "returns/arrival").starts_with("退款按原支付方式退回"),
        "{found:?}"
    );
    let found = suggest("哪些情况可以仅退款").await;
    // The whole passage of the heading, with the list's markers, not only its first block.
    assert_eq!(
        reply_of(&found, "returns/refund-only"),
        "以下情况支持仅退款：\n- 商家未发货\n- 快递丢件\n其他情况请申请退货退款。"
    );
    // A lead-in that does not end with a colon still brings its numbered steps along.
    let found = suggest("忘记密码怎么重新设置").await;
    assert_eq!(
        reply_of(&found, "account/new-password"),
        "忘记密码时按下面的步骤重新设置。\n1. 在登录页点击「忘记密码」\n2. 填写短信验证码\n3. 设置新的登录密码"
    );
}
