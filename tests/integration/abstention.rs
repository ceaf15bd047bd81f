//! Suggestions that stay quiet: every hit carries a confidence, suggestions are made only when one
//! is confident, greetings and 转人工 never get articles, and the starter knowledge base answers
//! product faults with the product-fault articles (not with whatever shares a character).

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{encode, TestApp, TestDirs};
use crate::conversations::{served, start};

/// `GET /api/v1/visitor/suggest` for `question`.
async fn visitor_suggest(app: &TestApp, question: &str) -> Value {
    let (status, body) = app
        .get_as(
            None,
            &format!("/api/v1/visitor/suggest?q={}", encode(question)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{question}: {body}");
    body
}

fn ids(suggestions: &Value) -> Vec<String> {
    suggestions
        .as_array()
        .unwrap()
        .iter()
        .map(|suggestion| suggestion["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn product_faults_find_the_product_fault_articles_of_the_starter_knowledge_base() {
    let app = TestApp::start(TestDirs::with_starter_kb()).await;
    for (question, article) in [
        ("耳机没声音", "after-sales/no-sound"),
        ("耳机坏了怎么办", "after-sales/no-sound"),
        ("收到的耳机有质量问题", "after-sales/no-sound"),
        ("手机屏幕碎了", "after-sales/cracked-screen"),
        ("平板充不进电", "after-sales/cannot-charge"),
        (
            "快递送到的时候东西已经摔坏了",
            "shipping/damaged-on-arrival",
        ),
    ] {
        let answer = visitor_suggest(&app, question).await;
        let found = ids(&answer["suggestions"]);
        assert_eq!(
            found.first().map(String::as_str),
            Some(article),
            "{question}: {answer}"
        );
        // 修改绑定手机号 shares only the character 机 with 耳机: never suggested for it.
        if question.contains("耳机") {
            assert!(
                !found.contains(&"account/change-phone".to_string()),
                "{question}: {answer}"
            );
        }
        assert_eq!(answer["intent"], "question");
    }
    // The editor's search still lists what shares a character, each hit with its confidence, and a
    // match on 机 alone has none.
    let results = app.search("耳机没声音", "&limit=50").await;
    let hits = results["hits"].as_array().unwrap();
    assert_eq!(hits[0]["id"], "after-sales/no-sound", "{results}");
    for hit in hits {
        let confidence = hit["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence), "{hit}");
        if hit["id"] == "account/change-phone" {
            assert_eq!(confidence, 0.0, "{hit}");
        }
    }
    assert!(hits[0]["confidence"].as_f64().unwrap() >= 0.33, "{results}");
}

#[tokio::test]
async fn self_service_shows_nothing_for_chit_chat_and_recognises_a_wish_for_a_person() {
    let app = TestApp::start(TestDirs::with_starter_kb()).await;
    let admin = app.admin().await;
    let shown_before = app
        .get_as(Some(&admin), "/api/v1/assist/deflection")
        .await
        .1["shown"]
        .as_u64()
        .unwrap();
    for (message, intent) in [
        ("你好", "greeting"),
        ("在吗？", "greeting"),
        ("谢谢你", "thanks"),
        ("好的", "acknowledgement"),
        ("拜拜", "farewell"),
        ("转人工", "ask_for_agent"),
        ("你好，我要人工客服", "ask_for_agent"),
        ("今天的天气很好哦", "question"),
        ("你是不是傻呀", "question"),
        ("周杰伦的新歌叫什么", "question"),
    ] {
        let answer = visitor_suggest(&app, message).await;
        assert_eq!(answer["intent"], intent, "{message}: {answer}");
        assert_eq!(answer["suggestions"], json!([]), "{message}: {answer}");
    }
    // Nothing was shown, so nothing counts as shown.
    let shown_after = app
        .get_as(Some(&admin), "/api/v1/assist/deflection")
        .await
        .1["shown"]
        .as_u64()
        .unwrap();
    assert_eq!(shown_after, shown_before);
    // A real question still gets its article, confident, and counts as shown.
    let answer = visitor_suggest(&app, "发票抬头开错了怎么改").await;
    let found = ids(&answer["suggestions"]);
    assert_eq!(
        found.first().map(String::as_str),
        Some("invoices/change-invoice-title"),
        "{answer}"
    );
    assert!(answer["suggestions"][0]["confidence"].as_f64().unwrap() >= 0.33);
    let shown = app
        .get_as(Some(&admin), "/api/v1/assist/deflection")
        .await
        .1["shown"]
        .as_u64()
        .unwrap();
    assert_eq!(shown, shown_before + 1);
    // The agent's search box abstains the same way.
    let (status, body) = app
        .json_as(
            Some(&admin),
            Method::POST,
            "/api/v1/assist/suggest",
            json!({"text": "今天的天气很好哦"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|suggestion| suggestion["kind"] != "article"),
        "{body}"
    );
}

#[tokio::test]
async fn a_greeting_gets_no_suggested_article_and_a_question_after_it_does() {
    let mut desk = served().await;
    desk.visitor
        .send(json!({"type": "send", "client_key": "hello", "body": "你好"}))
        .await;
    let ack = desk.visitor.expect("ack").await;
    let pushed = desk
        .desk_socket
        .expect_where("suggestions", |frame| frame["seq"] == ack["seq"])
        .await;
    assert!(
        pushed["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|suggestion| suggestion["kind"] != "article"),
        "{pushed}"
    );
    desk.visitor
        .send(json!({"type": "send", "client_key": "q", "body": "退款多久能到账"}))
        .await;
    let ack = desk.visitor.expect("ack").await;
    let pushed = desk
        .desk_socket
        .expect_where("suggestions", |frame| frame["seq"] == ack["seq"])
        .await;
    let articles: Vec<&Value> = pushed["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|suggestion| suggestion["kind"] == "article")
        .collect();
    assert!(!articles.is_empty(), "{pushed}");
    assert!(articles
        .iter()
        .all(|article| (0.0..=1.0).contains(&article["confidence"].as_f64().unwrap())));
    // A visitor who asks for a person is still a conversation like any other: 转人工 queues it.
    let (_, _, started) = start(&desk.app, Some(desk.group), "转人工").await;
    assert!(started["conversation"]["state"].is_string(), "{started}");
}

#[test]
fn kefu_suggest_stays_quiet_for_greetings_and_chit_chat_and_refuses_a_bad_minimum() {
    let dirs = TestDirs::with_starter_kb();
    let binary = env!("CARGO_BIN_EXE_kefu");
    let run = |args: &[&str]| {
        std::process::Command::new(binary)
            .args(args)
            .current_dir(&dirs.root)
            .env_clear()
            .env("RUST_LOG", "warn")
            .output()
            .expect("running kefu")
    };
    let printed =
        |output: &std::process::Output| String::from_utf8_lossy(&output.stdout).trim().to_string();
    let kb = dirs.kb.to_str().unwrap();
    let index = dirs.index.to_str().unwrap();
    assert!(run(&["index", "--kb", kb, "--index", index])
        .status
        .success());
    assert_eq!(
        printed(&run(&["suggest", "--index", index, "你好"])),
        "no suggestion"
    );
    let refund = printed(&run(&["suggest", "--index", index, "退款多久到账"]));
    assert!(
        refund.contains("[returns/refund-arrival-time]") && refund.contains("confidence"),
        "{refund}"
    );
    // Chit-chat shares characters with some articles: ranked, but not confident.
    let chit_chat = "今天的天气很好哦";
    assert_eq!(
        printed(&run(&["suggest", "--index", index, chit_chat])),
        "no suggestion"
    );
    let unfiltered = printed(&run(&[
        "suggest",
        "--index",
        index,
        "--min-confidence",
        "0",
        chit_chat,
    ]));
    assert!(unfiltered.starts_with("1. "), "{unfiltered}");
    let bad = run(&[
        "suggest",
        "--index",
        index,
        "--min-confidence",
        "1.5",
        "退款",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("between 0 and 1"));
}
