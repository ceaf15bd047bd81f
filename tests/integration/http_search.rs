//! `GET /api/v1/kb/search` over a real index: ranking, response shape, snippets, filters, Chinese
//! normalisation, synonyms, the user dictionary, and bad queries.

use axum::http::StatusCode;
use serde_json::Value;

use crate::common::{encode, error_body, hit_ids, TestApp, TestDirs};

#[tokio::test]
async fn refund_question_ranks_the_refund_article_first_with_the_documented_shape() {
    let app = TestApp::new().await;
    let results = app.search("怎么申请退款", "").await;

    let object = results.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["hits", "took_ms"], "{results}");
    assert!(results["took_ms"].as_f64().unwrap() >= 0.0);

    let hits = results["hits"].as_array().unwrap();
    assert!(!hits.is_empty(), "{results}");
    let first = &hits[0];
    assert_eq!(first["id"], "returns/refund", "{results}");
    assert_eq!(first["title"], "如何申请退款");
    assert_eq!(first["category"], "returns");
    assert_eq!(first["status"], "published");
    for key in ["id", "title", "category", "status", "score", "snippet"] {
        assert!(first.get(key).is_some(), "hit lacks {key}: {first}");
    }
    let scores: Vec<f64> = hits
        .iter()
        .map(|hit| hit["score"].as_f64().unwrap())
        .collect();
    assert!(scores[0] > 0.0);
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "hits are not sorted by score: {scores:?}"
    );
}

#[tokio::test]
async fn snippets_highlight_matches_and_escape_html() {
    let app = TestApp::new().await;
    let results = app.search("退款 诈骗", "").await;
    assert_eq!(hit_ids(&results)[0], "returns/refund", "{results}");
    let snippet = results["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>"), "{snippet}");
    assert!(snippet.contains("</mark>"), "{snippet}");
    // The body holds `<script>alert(1)</script>` as text (inline code); the snippet must show it
    // escaped, and the only tags in it are the highlights.
    assert!(snippet.contains("&lt;script&gt;"), "{snippet}");
    assert!(!snippet.contains("<script"), "{snippet}");
    let without_marks = snippet.replace("<mark>", "").replace("</mark>", "");
    assert!(!without_marks.contains('<'), "{snippet}");
    assert!(!without_marks.contains('>'), "{snippet}");
}

#[tokio::test]
async fn category_and_limit_restrict_the_hits() {
    let app = TestApp::new().await;
    // 申请 appears in two returns articles and in the invoice article.
    let all = hit_ids(&app.search("申请", "").await);
    assert!(all.contains(&"invoices/e-invoice".to_string()), "{all:?}");
    assert!(all.contains(&"returns/refund".to_string()), "{all:?}");
    assert!(all.contains(&"returns/seven-day".to_string()), "{all:?}");

    let invoices = app.search("申请", "&category=invoices").await;
    assert_eq!(hit_ids(&invoices), ["invoices/e-invoice"]);
    let returns = app.search("申请", "&category=returns").await;
    let returns_ids = hit_ids(&returns);
    assert!(
        returns_ids.contains(&"returns/refund".to_string()),
        "{returns_ids:?}"
    );
    assert!(
        returns_ids.contains(&"returns/seven-day".to_string()),
        "{returns_ids:?}"
    );
    assert!(!returns_ids.contains(&"invoices/e-invoice".to_string()));
    assert!(returns["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|hit| hit["category"] == "returns"));
    let nowhere = app.search("申请", "&category=nowhere").await;
    assert_eq!(hit_ids(&nowhere), Vec::<String>::new());
    // An empty category means no filter.
    assert_eq!(hit_ids(&app.search("申请", "&category=").await), all);

    let limited = hit_ids(&app.search("申请", "&limit=1").await);
    assert_eq!(limited, all[..1]);
    let two = hit_ids(&app.search("申请", "&limit=2").await);
    assert_eq!(two, all[..2]);
}

#[tokio::test]
async fn drafts_are_hidden_unless_asked_for() {
    let app = TestApp::new().await;
    let default = app.search("以旧换新", "").await;
    assert!(
        default["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|hit| hit["status"] == "published" && hit["id"] != "returns/trade-in"),
        "{default}"
    );
    let with_drafts = app.search("以旧换新", "&drafts=true").await;
    assert_eq!(
        hit_ids(&with_drafts).first().map(String::as_str),
        Some("returns/trade-in"),
        "{with_drafts}"
    );
    assert_eq!(with_drafts["hits"][0]["status"], "draft");
    let explicit_false = app.search("以旧换新", "&drafts=false").await;
    assert_eq!(hit_ids(&explicit_false), hit_ids(&default));
}

#[tokio::test]
async fn traditional_synonym_and_dictionary_queries_match() {
    let app = TestApp::new().await;

    // Traditional 退貨 finds the article written in Simplified 退货.
    let traditional = app.search_ids("退貨").await;
    assert_eq!(
        traditional.first().map(String::as_str),
        Some("returns/seven-day"),
        "{traditional:?}"
    );
    // Full-width letters and upper case fold too.
    assert_eq!(
        app.top_hit("ＰＤＦ").await.as_deref(),
        Some("invoices/e-invoice")
    );

    // 退钱 never appears in the knowledge base; the synonym group 退款,退钱,返款 finds the refund article.
    let synonym = app.search_ids("退钱").await;
    assert_eq!(
        synonym.first().map(String::as_str),
        Some("returns/refund"),
        "{synonym:?}"
    );
    assert_eq!(app.top_hit("返款").await.as_deref(), Some("returns/refund"));
    // 收据 shares no character with the invoice article; only the group 发票,收据 finds it.
    assert_eq!(
        app.top_hit("收据").await.as_deref(),
        Some("invoices/e-invoice")
    );

    // 运费险 is in `_dict.txt`: found, and highlighted as one word.
    let dictionary = app.search("运费险", "").await;
    assert_eq!(
        hit_ids(&dictionary).first().map(String::as_str),
        Some("shipping/freight-insurance")
    );
    let snippet = dictionary["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>运费险</mark>"), "{snippet}");
}

/// The control for the test above: without `_dict.txt` and `_synonyms.txt` the same queries behave
/// differently, so that test really exercises the two files.
#[tokio::test]
async fn without_dictionary_and_synonyms_those_queries_differ() {
    let dirs = TestDirs::with_fixtures();
    dirs.remove("_dict.txt");
    dirs.remove("_synonyms.txt");
    let app = TestApp::start(dirs).await;
    assert!(!app.finds("收据", "invoices/e-invoice").await);
    let dictionary = app.search("运费险", "").await;
    assert_eq!(
        hit_ids(&dictionary).first().map(String::as_str),
        Some("shipping/freight-insurance")
    );
    let snippet = dictionary["hits"][0]["snippet"].as_str().unwrap();
    assert!(!snippet.contains("<mark>运费险</mark>"), "{snippet}");
}

#[tokio::test]
async fn similar_questions_are_searched() {
    let app = TestApp::new().await;
    let hits = app.search_ids("发票在哪里下载").await;
    assert_eq!(
        hits.first().map(String::as_str),
        Some("invoices/e-invoice"),
        "{hits:?}"
    );
    assert_eq!(
        app.top_hit("公司抬头").await.as_deref(),
        Some("invoices/e-invoice")
    );
}

#[tokio::test]
async fn sub_words_of_longer_words_are_found_through_the_http_route() {
    let app = TestApp::new().await;
    let cases = [
        (
            "misc/pending",
            "待处理",
            "订单状态显示待处理时，说明仓库正在备货。",
            "处理",
        ),
        (
            "misc/bank",
            "对公转账",
            "支持中国农业发展银行的对公转账。",
            "农业",
        ),
        (
            "misc/purifier",
            "净水器",
            "这款净水器安装简单，无需专业工具。",
            "简单",
        ),
        (
            "misc/construction",
            "对公发票",
            "在建工程项目的发票请联系对公客服。",
            "工程",
        ),
    ];
    for (id, title, body, _) in cases {
        let markdown = format!("---\ntitle: {title}\n---\n\n{body}\n");
        let (status, view) = app.put_article(id, &markdown).await;
        assert_eq!(status, StatusCode::CREATED, "{view}");
    }
    for (id, _, body, query) in cases {
        let results = app.search(query, "").await;
        assert_eq!(
            hit_ids(&results).first().map(String::as_str),
            Some(id),
            "{query} should find {body}: {results}"
        );
        let snippet = results["hits"][0]["snippet"].as_str().unwrap();
        assert!(
            snippet.contains(&format!("<mark>{query}</mark>"))
                || snippet.contains(&format!("{query}</mark>"))
                || snippet.contains(&format!("<mark>{query}")),
            "{query} not highlighted in {snippet}"
        );
    }
}

#[tokio::test]
async fn empty_and_overlong_queries_are_invalid_queries() {
    let app = TestApp::new().await;
    let empty = error_body("invalid_query", "invalid query: query is empty");
    for uri in [
        "/api/v1/kb/search?q=",
        "/api/v1/kb/search",
        "/api/v1/kb/search?q=%20%20%E3%80%80",
    ] {
        assert_eq!(
            app.get(uri).await,
            (StatusCode::BAD_REQUEST, empty.clone()),
            "{uri}"
        );
    }

    let ten_thousand = "a".repeat(10_000);
    assert_eq!(
        app.get(&format!("/api/v1/kb/search?q={ten_thousand}"))
            .await,
        (
            StatusCode::BAD_REQUEST,
            error_body(
                "invalid_query",
                "invalid query: query has 10000 characters, at most 1000 are searched"
            )
        )
    );
    // The limit is in characters, not bytes: 1000 Chinese characters pass, 1001 do not.
    let (status, body) = app
        .get(&format!(
            "/api/v1/kb/search?q={}",
            encode(&"退款".repeat(500))
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        hit_ids(&body).first().map(String::as_str),
        Some("returns/refund")
    );
    let (status, body) = app
        .get(&format!(
            "/api/v1/kb/search?q={}",
            encode(&format!("{}退", "退款".repeat(500)))
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_query");
}

#[tokio::test]
async fn odd_queries_never_fail() {
    let app = TestApp::new().await;
    for query in ["！！？？", "。，、；", "😀😀", "...", "---"] {
        let results = app.search(query, "").await;
        assert_eq!(
            hit_ids(&results),
            Vec::<String>::new(),
            "{query}: {results}"
        );
    }
    // Query-parser syntax is plain text: no 500, no parse error.
    for query in [
        "\"",
        "\"退款",
        "title:退款",
        "(AND OR *)",
        "退款 AND",
        "退款 OR NOT",
        "*",
        "退款~2^3",
        "[退款 TO 退货]",
        "\\",
        "id:returns/refund",
        "<script>alert(1)</script>",
        "'; DROP TABLE articles; --",
        "退款😀",
        "\u{0}退款",
    ] {
        let (status, body) = app
            .get(&format!("/api/v1/kb/search?q={}", encode(query)))
            .await;
        assert_eq!(status, StatusCode::OK, "{query:?}: {body}");
        assert!(body["hits"].is_array(), "{query:?}: {body}");
    }
    // The Chinese part of syntax-looking queries is still searched.
    for query in ["title:退款", "退款 AND", "\"退款"] {
        let ids = app.search_ids(query).await;
        assert_eq!(
            ids.first().map(String::as_str),
            Some("returns/refund"),
            "{query}: {ids:?}"
        );
    }
}

#[tokio::test]
async fn bad_limits_and_parameters_are_refused() {
    let app = TestApp::new().await;
    let out_of_range = error_body(
        "invalid_query",
        "invalid query: limit must be between 1 and 100",
    );
    for limit in ["0", "101"] {
        let uri = format!("/api/v1/kb/search?q={}&limit={limit}", encode("退款"));
        assert_eq!(
            app.get(&uri).await,
            (StatusCode::BAD_REQUEST, out_of_range.clone()),
            "{uri}"
        );
    }
    let (status, body) = app.get("/api/v1/kb/search?q=a&limit=100").await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for uri in [
        "/api/v1/kb/search?q=a&limit=abc",
        "/api/v1/kb/search?q=a&limit=-1",
        "/api/v1/kb/search?q=a&limit=1.5",
        "/api/v1/kb/search?q=a&drafts=maybe",
    ] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["code"], "bad_request", "{uri}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{uri}: {body}"
        );
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    }
}

#[tokio::test]
async fn unknown_routes_and_health() {
    let app = TestApp::new().await;
    assert_eq!(
        app.get("/api/v1/nope").await,
        (
            StatusCode::NOT_FOUND,
            error_body("not_found", "no route for /api/v1/nope")
        )
    );
    assert_eq!(
        app.get("/no-such-page").await,
        (
            StatusCode::NOT_FOUND,
            error_body("not_found", "no route for /no-such-page")
        )
    );
    assert_eq!(
        app.get("/healthz").await,
        (StatusCode::OK, serde_json::json!({"status": "ok"}))
    );
    let _: Value = app.search("退款", "").await;
}

/// The shipped starter knowledge base loads without a single broken file, and every similar question
/// written for an article, sent as a search with snippets, answers 200 and finds its own article in the
/// top 5. Regression: jieba's search mode emitted sub-words before their enclosing word, offsets stepped
/// backwards and tantivy's snippet builder panicked on queries such as 你好可以电子发票报销吗.
#[tokio::test]
async fn every_similar_question_of_the_starter_knowledge_base_finds_its_article() {
    let app = TestApp::start(TestDirs::with_starter_kb()).await;
    let (status, errors) = app.get("/api/v1/kb/errors").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(errors, serde_json::json!({"errors": []}));

    let (_, listing) = app.get("/api/v1/kb/articles").await;
    let articles = listing["articles"].as_array().unwrap().clone();
    assert!(articles.len() >= 40, "{} starter articles", articles.len());
    let mut questions_checked = 0;
    let mut found_in_top_5 = 0;
    for article in &articles {
        let id = article["id"].as_str().unwrap();
        let (_, full) = app
            .get(&format!("/api/v1/kb/articles/{}", encode(id)))
            .await;
        let drafts = if full["status"] == "draft" {
            "&drafts=true"
        } else {
            ""
        };
        for question in full["questions"].as_array().unwrap() {
            let question = question.as_str().unwrap();
            let results = app.search(question, drafts).await;
            for hit in results["hits"].as_array().unwrap() {
                assert!(hit["snippet"].is_string(), "{question}: {hit}");
            }
            questions_checked += 1;
            if hit_ids(&results).iter().take(5).any(|hit| hit == id) {
                found_in_top_5 += 1;
            }
        }
    }
    assert!(questions_checked >= 2 * articles.len());
    // Similar questions are indexed with their article, so each should find it near the top.
    assert_eq!(found_in_top_5, questions_checked);
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_readyz_reports_the_loaded_index() {
    let app = TestApp::new().await;
    let reply = app
        .raw(
            axum::http::Request::builder()
                .uri("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let generated = reply.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let reply = app
        .raw(
            axum::http::Request::builder()
                .uri("/api/v1/kb/search?q=x")
                .header("x-request-id", "trace-me-42")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(
        reply.headers["x-request-id"], "trace-me-42",
        "a client's id is kept"
    );
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, axum::http::StatusCode::OK);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["articles"], 5, "four published fixtures and one draft");
}

#[tokio::test]
async fn while_starting_only_health_answers_then_everything_does() {
    use tower::ServiceExt;
    let app = TestApp::new().await;
    let ready: std::sync::Arc<std::sync::OnceLock<axum::Router>> = Default::default();
    let front = kefu::http::starting_router(std::sync::Arc::clone(&ready));
    let get = |uri: &str| {
        axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let status = |response: axum::response::Response| response.status();
    assert_eq!(
        status(front.clone().oneshot(get("/healthz")).await.unwrap()),
        StatusCode::OK
    );
    let starting = front.clone().oneshot(get("/readyz")).await.unwrap();
    assert_eq!(starting.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = axum::body::to_bytes(starting.into_body(), 1 << 16)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "starting");
    assert_eq!(
        status(
            front
                .clone()
                .oneshot(get("/api/v1/kb/search?q=退款"))
                .await
                .unwrap()
        ),
        StatusCode::SERVICE_UNAVAILABLE
    );
    ready.set(kefu::http::router(app.state.clone())).unwrap();
    assert_eq!(
        status(front.clone().oneshot(get("/readyz")).await.unwrap()),
        StatusCode::OK
    );
    assert_eq!(
        status(
            front
                .oneshot(get("/api/v1/kb/search?q=退款"))
                .await
                .unwrap()
        ),
        StatusCode::OK
    );
}
