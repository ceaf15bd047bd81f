//! The articles API (`/api/v1/kb/articles`) and the broken-files report (`/api/v1/kb/errors`).

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{
    encode, error_body, hit_ids, TestApp, TestDirs, FIXTURES, PUBLISHED_IDS, REFUND,
};

fn ids_of(list: &Value) -> Vec<String> {
    list["articles"]
        .as_array()
        .unwrap_or_else(|| panic!("no articles array in {list}"))
        .iter()
        .map(|article| article["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every file under `kb/`, relative, sorted.
fn kb_files(dirs: &TestDirs) -> Vec<String> {
    let mut files: Vec<String> = walk(&dirs.kb)
        .into_iter()
        .map(|path| {
            path.strip_prefix(&dirs.kb)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

fn walk(folder: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn list_returns_every_indexed_article_sorted_and_filters_by_category() {
    let app = TestApp::new().await;
    let (status, list) = app.get("/api/v1/kb/articles").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let mut all: Vec<String> = PUBLISHED_IDS.iter().map(|id| id.to_string()).collect();
    all.push("returns/trade-in".to_string());
    all.sort();
    assert_eq!(ids_of(&list), all);
    assert_eq!(list["total"], FIXTURES.len());

    let refund = list["articles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|article| article["id"] == "returns/refund")
        .unwrap();
    assert_eq!(refund["title"], "如何申请退款");
    assert_eq!(refund["category"], "returns");
    assert_eq!(refund["status"], "published");
    assert_eq!(refund["tags"], json!(["退款"]));
    assert_eq!(refund["updated"], "2026-11-20");
    assert_eq!(refund["path"], "returns/refund.md");
    assert_eq!(
        refund["content_hash"].as_str().unwrap().len(),
        64,
        "{refund}"
    );

    let (status, returns) = app.get("/api/v1/kb/articles?category=returns").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        ids_of(&returns),
        ["returns/refund", "returns/seven-day", "returns/trade-in"]
    );
    assert_eq!(returns["total"], 3);
    let (_, invoices) = app.get("/api/v1/kb/articles?category=invoices").await;
    assert_eq!(ids_of(&invoices), ["invoices/e-invoice"]);
    let (_, nothing) = app.get("/api/v1/kb/articles?category=none").await;
    assert_eq!(nothing, json!({"articles": [], "total": 0}));
}

#[tokio::test]
async fn get_returns_the_source_and_sanitised_html() {
    let app = TestApp::new().await;
    let (status, view) = app.get("/api/v1/kb/articles/returns/refund").await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["id"], "returns/refund");
    assert_eq!(view["title"], "如何申请退款");
    assert_eq!(view["category"], "returns");
    assert_eq!(view["tags"], json!(["退款"]));
    assert_eq!(view["keywords"], json!(["退款流程"]));
    assert_eq!(view["questions"], json!(["退款多久到账"]));
    assert_eq!(view["status"], "published");
    assert_eq!(view["updated"], "2026-11-20");
    assert_eq!(view["path"], "returns/refund.md");
    assert_eq!(view["markdown"], REFUND);

    let html = view["html"].as_str().unwrap();
    assert!(html.contains("<h1>如何申请退款</h1>"), "{html}");
    assert!(html.contains("<h2>到账时间</h2>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("alert(\"xss\")"), "{html}");
    assert!(
        html.contains("&lt;script&gt;"),
        "inline code is shown escaped: {html}"
    );
    assert!(
        !html.contains("id: returns/refund"),
        "front matter leaked: {html}"
    );

    let headings: Vec<&str> = view["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|section| section["heading"].as_str().unwrap())
        .collect();
    assert_eq!(headings, ["如何申请退款", "到账时间"]);
    assert_eq!(view["sections"][1]["answer"], "退款到账时间以银行为准。");

    assert_eq!(
        app.get("/api/v1/kb/articles/returns/absent").await,
        (
            StatusCode::NOT_FOUND,
            error_body("article_not_found", "article `returns/absent` not found")
        )
    );
}

#[tokio::test]
async fn put_creates_an_article_that_is_searchable_on_return() {
    let app = TestApp::new().await;
    assert!(!app.finds("保价", "orders/price-protection").await);
    let markdown = "---\ntitle: 价格保护说明\nquestions: [降价了能退差价吗]\n---\n\n# 价格保护说明\n\n签收后 7 天内降价，可申请保价，差价退回原支付账户。\n";
    let (status, view) = app.put_article("orders/price-protection", markdown).await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["id"], "orders/price-protection");
    assert_eq!(view["title"], "价格保护说明");
    assert_eq!(view["category"], "orders");
    assert_eq!(view["path"], "orders/price-protection.md");
    assert_eq!(view["markdown"], markdown);
    assert_eq!(view["questions"], json!(["降价了能退差价吗"]));
    assert!(view["html"]
        .as_str()
        .unwrap()
        .contains("<h1>价格保护说明</h1>"));

    // Searchable as soon as the PUT returned, no sleep.
    assert_eq!(
        app.top_hit("保价").await.as_deref(),
        Some("orders/price-protection")
    );
    assert_eq!(
        app.search_ids("降价了能退差价吗")
            .await
            .first()
            .map(String::as_str),
        Some("orders/price-protection")
    );
    let on_disk = std::fs::read_to_string(app.dirs.kb.join("orders/price-protection.md")).unwrap();
    assert_eq!(on_disk, markdown);
    let (status, fetched) = app.get("/api/v1/kb/articles/orders/price-protection").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["markdown"], markdown);
    let (_, list) = app.get("/api/v1/kb/articles").await;
    assert_eq!(list["total"], FIXTURES.len() + 1);

    // A Chinese id, percent-encoded in the URL, becomes a Chinese path.
    let (status, view) = app
        .put_article("常见问题/运费", "# 运费说明\n\n满 99 元包邮。\n")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["id"], "常见问题/运费");
    assert_eq!(view["category"], "常见问题");
    assert!(app.dirs.kb.join("常见问题/运费.md").is_file());
    let (status, fetched) = app
        .get(&format!("/api/v1/kb/articles/{}", encode("常见问题/运费")))
        .await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["title"], "运费说明");
    assert_eq!(app.top_hit("包邮").await.as_deref(), Some("常见问题/运费"));

    // A draft written through the API is hidden from default search.
    let (status, _) = app
        .put_article(
            "orders/draft",
            "---\nstatus: draft\n---\n# 草稿\n\n预售定金规则。\n",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(!app.finds("预售定金", "orders/draft").await);
    let drafts = app.search("预售定金", "&drafts=true").await;
    assert_eq!(
        hit_ids(&drafts).first().map(String::as_str),
        Some("orders/draft")
    );
}

#[tokio::test]
async fn concurrent_puts_are_all_searchable_when_they_return() {
    let app = TestApp::new().await;
    let (a, b, c) = tokio::join!(
        app.put_article("batch/a", "# 甲\n\n蓝牙耳机保修一年。\n"),
        app.put_article("batch/b", "# 乙\n\n扫地机器人保修两年。\n"),
        app.put_article("batch/c", "# 丙\n\n空气炸锅保修三年。\n"),
    );
    for (status, view) in [a, b, c] {
        assert_eq!(status, StatusCode::CREATED, "{view}");
    }
    assert_eq!(app.top_hit("蓝牙耳机").await.as_deref(), Some("batch/a"));
    assert_eq!(app.top_hit("扫地机器人").await.as_deref(), Some("batch/b"));
    assert_eq!(app.top_hit("空气炸锅").await.as_deref(), Some("batch/c"));
}

#[tokio::test]
async fn put_replaces_an_article_and_its_old_text_is_no_longer_found() {
    let app = TestApp::new().await;
    assert_eq!(
        app.top_hit("理赔").await.as_deref(),
        Some("shipping/freight-insurance")
    );
    let replacement = "# 运费险说明\n\n运费险由保险公司承保，退回运费按首重计算补偿。\n";
    let (status, view) = app
        .put_article("shipping/freight-insurance", replacement)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["title"], "运费险说明");
    assert_eq!(view["markdown"], replacement);
    assert!(!app.finds("理赔", "shipping/freight-insurance").await);
    assert_eq!(
        app.top_hit("首重").await.as_deref(),
        Some("shipping/freight-insurance")
    );
    assert_eq!(
        std::fs::read_to_string(app.dirs.kb.join("shipping/freight-insurance.md")).unwrap(),
        replacement
    );
    let (_, list) = app.get("/api/v1/kb/articles").await;
    assert_eq!(list["total"], FIXTURES.len(), "replacing adds nothing");
    let titles: Vec<&str> = list["articles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|article| article["id"] == "shipping/freight-insurance")
        .map(|article| article["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["运费险说明"]);
}

#[tokio::test]
async fn put_refuses_broken_articles_and_keeps_the_old_version() {
    let app = TestApp::new().await;
    let broken = "---\ntitle: 坏了\ntags: [退款, 售后\nstatus: published\n---\n\n正文\n";

    // Replacing an existing article: the message names its file and the line.
    let (status, body) = app.put_article("returns/refund", broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_article");
    let message = body["message"].as_str().unwrap();
    let line = line_in(message, "returns/refund.md:");
    assert!((3..=5).contains(&line), "{message}");
    assert!(message.contains("front matter"), "{message}");
    assert_eq!(body.as_object().unwrap().len(), 2);
    assert_eq!(
        std::fs::read_to_string(app.dirs.kb.join("returns/refund.md")).unwrap(),
        REFUND,
        "a refused PUT leaves the file alone"
    );
    assert_eq!(
        app.search_ids("怎么申请退款")
            .await
            .first()
            .map(String::as_str),
        Some("returns/refund")
    );

    // A new article: same, and no file is created.
    let (status, body) = app.put_article("faq/broken", broken).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_article");
    let message = body["message"].as_str().unwrap();
    assert_eq!(line_in(message, "faq/broken.md:"), line, "{message}");
    assert!(!app.dirs.kb.join("faq/broken.md").exists());

    // Unclosed front matter points at line 1; an unknown field at its own line.
    let (_, body) = app
        .put_article("faq/unclosed", "---\ntitle: x\n正文\n")
        .await;
    assert_eq!(body["code"], "invalid_article");
    assert_eq!(
        line_in(body["message"].as_str().unwrap(), "faq/unclosed.md:"),
        1
    );
    let (_, body) = app
        .put_article("faq/unknown", "---\ntitle: a\ntittle: b\n---\n正文\n")
        .await;
    assert_eq!(body["code"], "invalid_article");
    assert_eq!(
        line_in(body["message"].as_str().unwrap(), "faq/unknown.md:"),
        3
    );
    let (_, body) = app
        .put_article("faq/status", "---\nstatus: hidden\n---\n正文\n")
        .await;
    assert_eq!(
        body,
        error_body(
            "invalid_article",
            "faq/status.md:1: status `hidden` is neither `published` nor `draft`"
        )
    );
    assert!(
        !app.dirs.kb.join("faq").exists(),
        "no file for refused PUTs"
    );
}

/// The line number after `prefix` in `file:line: reason`.
fn line_in(message: &str, prefix: &str) -> usize {
    let rest = message
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("`{message}` does not start with `{prefix}`"));
    rest.split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no line number in `{message}`"))
}

#[tokio::test]
async fn put_refuses_mismatched_ids_bad_json_and_oversized_articles() {
    let app = TestApp::new().await;
    let before = kb_files(&app.dirs);

    assert_eq!(
        app.put_article("faq/one", "---\nid: faq/other\n---\n# 一\n")
            .await,
        (
            StatusCode::BAD_REQUEST,
            error_body(
                "bad_request",
                "front matter id `faq/other` does not match `faq/one` in the url"
            )
        )
    );
    // Changing the id of an existing article through its URL is refused too.
    let (status, body) = app
        .put_article("returns/refund", "---\nid: returns/renamed\n---\n# 改名\n")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_request");

    let uri = "/api/v1/kb/articles/faq/json";
    for (content_type, bytes) in [
        ("application/json", b"{\"markdown\": ".to_vec()),
        ("application/json", b"not json".to_vec()),
        ("application/json", b"".to_vec()),
        ("application/json", b"{}".to_vec()),
        ("application/json", b"{\"markdown\": 1}".to_vec()),
        (
            "application/json",
            b"{\"markdown\": \"# x\", \"extra\": true}".to_vec(),
        ),
        ("text/plain", b"{\"markdown\": \"# x\"}".to_vec()),
    ] {
        let (status, body) = app
            .send(Method::PUT, uri, Some((content_type, bytes.clone())))
            .await;
        let shown = String::from_utf8_lossy(&bytes);
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{content_type} {shown}: {body}"
        );
        assert_eq!(body["code"], "bad_request", "{shown}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, body) = app.send(Method::PUT, uri, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "bad_request");

    let oversized = format!("# 大\n\n{}", "字".repeat(400_000));
    let (status, body) = app.put_article("faq/big", &oversized).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            error_body(
                "bad_request",
                &format!(
                    "article is {} bytes, at most 1048576 are accepted",
                    oversized.len()
                )
            )
        )
    );

    assert_eq!(kb_files(&app.dirs), before, "no refused PUT wrote a file");
}

#[tokio::test]
async fn delete_removes_the_file_and_the_search_hit() {
    let app = TestApp::new().await;
    assert_eq!(
        app.search_ids("怎么申请退款")
            .await
            .first()
            .map(String::as_str),
        Some("returns/refund")
    );
    let (status, body) = app.delete("/api/v1/kb/articles/returns/refund").await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));

    assert!(!app.dirs.kb.join("returns/refund.md").exists());
    assert!(!app.finds("怎么申请退款", "returns/refund").await);
    assert!(!app.finds("退款流程", "returns/refund").await);
    let not_found = error_body("article_not_found", "article `returns/refund` not found");
    assert_eq!(
        app.get("/api/v1/kb/articles/returns/refund").await,
        (StatusCode::NOT_FOUND, not_found.clone())
    );
    assert_eq!(
        app.delete("/api/v1/kb/articles/returns/refund").await,
        (StatusCode::NOT_FOUND, not_found)
    );
    let (_, list) = app.get("/api/v1/kb/articles").await;
    assert_eq!(list["total"], FIXTURES.len() - 1);

    // It can be created again afterwards.
    let (status, _) = app.put_article("returns/refund", REFUND).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        app.search_ids("怎么申请退款")
            .await
            .first()
            .map(String::as_str),
        Some("returns/refund")
    );
}

#[tokio::test]
async fn hostile_ids_are_refused_and_nothing_is_written_outside_kb() {
    let app = TestApp::new().await;
    let kb_before = kb_files(&app.dirs);
    let outside_before = app.dirs.files_outside_kb();
    let markdown = json!({"markdown": "# 逃逸\n\n不该被写入。\n"});

    // (path after /api/v1/kb/articles/, the id as the error message shows it, reason)
    let cases = [
        (
            "../escaped",
            "../escaped",
            "id must not contain `.` or `..` segments",
        ),
        (
            "%2e%2e/escaped",
            "../escaped",
            "id must not contain `.` or `..` segments",
        ),
        (
            "%2E%2E%2Fescaped",
            "../escaped",
            "id must not contain `.` or `..` segments",
        ),
        (
            "a/../../escaped",
            "a/../../escaped",
            "id must not contain `.` or `..` segments",
        ),
        (
            "a/./escaped",
            "a/./escaped",
            "id must not contain `.` or `..` segments",
        ),
        ("%2Fetc%2Fescaped", "/etc/escaped", "id must be relative"),
        ("/etc/escaped", "/etc/escaped", "id must be relative"),
        (
            "%01escaped",
            "\\u{1}escaped",
            "id contains control characters",
        ),
        ("escaped%00", "escaped\\0", "id contains control characters"),
        (
            "line%0Abreak",
            "line\\nbreak",
            "id contains control characters",
        ),
        (
            "..%5Cescaped",
            "..\\\\escaped",
            "id contains a character not allowed in file names",
        ),
        (
            "C:%2Fescaped",
            "C:/escaped",
            "id contains a character not allowed in file names",
        ),
        (
            "_dict",
            "_dict",
            "id segments must not start with `_` or `.`",
        ),
        (
            "a/.hidden",
            "a/.hidden",
            "id segments must not start with `_` or `.`",
        ),
        (
            "a//escaped",
            "a//escaped",
            "id has an empty segment or one with surrounding spaces",
        ),
        (
            "trailing/",
            "trailing/",
            "id has an empty segment or one with surrounding spaces",
        ),
        (
            "%20spaced",
            " spaced",
            "id has an empty segment or one with surrounding spaces",
        ),
    ];
    for (suffix, shown_id, reason) in cases {
        let uri = format!("/api/v1/kb/articles/{suffix}");
        let expected = (
            StatusCode::BAD_REQUEST,
            error_body(
                "invalid_article_id",
                &format!("invalid article id `{shown_id}`: {reason}"),
            ),
        );
        assert_eq!(app.get(&uri).await, expected, "GET {uri}");
        assert_eq!(
            app.put(&uri, Some(markdown.clone())).await,
            expected,
            "PUT {uri}"
        );
        assert_eq!(app.delete(&uri).await, expected, "DELETE {uri}");
    }

    let long_id = "x".repeat(201);
    let (status, body) = app.put_article(&long_id, "# 长\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_article_id");

    // With nothing after the prefix the wildcard route is not reached.
    for uri in ["/api/v1/kb/articles/"] {
        let (status, body) = app.put(uri, Some(markdown.clone())).await;
        assert!(!status.is_success(), "PUT {uri}: {status} {body}");
    }

    assert_eq!(kb_files(&app.dirs), kb_before, "no file written in kb/");
    assert_eq!(
        app.dirs.files_outside_kb(),
        outside_before,
        "no file written outside kb/"
    );
    assert!(!app.dirs.root.join("escaped.md").exists());
    assert!(!std::path::Path::new("/etc/escaped.md").exists());
}

/// Asserts the `{"code", "message"}` contract of STYLE §3 ("the body is always ...").
fn assert_error_shape(what: &str, body: &Value, codes: &[&str]) {
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: body is not the JSON error body: {body:?}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message"], "{what}: {body}");
    assert!(
        codes.contains(&object["code"].as_str().unwrap_or_default()),
        "{what}: code should be one of {codes:?}: {body}"
    );
    assert!(
        object["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn oversized_request_bodies_are_refused_in_the_error_shape() {
    let app = TestApp::new().await;
    let (status, body) = app
        .send(
            Method::PUT,
            "/api/v1/kb/articles/faq/huge",
            Some(("application/json", vec![b'a'; 5 << 20])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error_shape("5 MiB body", &body, &["bad_request"]);
    assert!(!app.dirs.kb.join("faq").exists());
}

/// Regression: axum's default 405 has an empty body; ours carries `{"code", "message"}`.
#[tokio::test]
async fn wrong_methods_answer_405_with_the_error_body() {
    let app = TestApp::new().await;
    for (method, uri) in [
        (Method::POST, "/api/v1/kb/search?q=a"),
        (Method::DELETE, "/api/v1/kb/articles"),
        (Method::PATCH, "/api/v1/kb/articles/returns/refund"),
        (Method::POST, "/api/v1/kb/errors"),
    ] {
        let (status, body) = app.send(method.clone(), uri, None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_error_shape(&format!("{method} {uri}"), &body, &["method_not_allowed"]);
    }
    // The article is untouched.
    let (status, _) = app.get("/api/v1/kb/articles/returns/refund").await;
    assert_eq!(status, StatusCode::OK);
}

/// Regression: axum's own `Path` rejection for a percent-encoded byte that is not UTF-8 is plain text;
/// ours is the JSON error body.
#[tokio::test]
async fn ids_that_are_not_utf8_answer_with_the_error_body() {
    let app = TestApp::new().await;
    let kb_before = kb_files(&app.dirs);
    for uri in [
        "/api/v1/kb/articles/%FF",
        "/api/v1/kb/articles/returns/%E9%80",
    ] {
        let (status, body) = app.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "GET {uri}: {body}");
        assert_error_shape(&format!("GET {uri}"), &body, &["bad_request"]);
        let (status, body) = app.put(uri, Some(json!({"markdown": "# x\n"}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "PUT {uri}: {body}");
        assert_error_shape(&format!("PUT {uri}"), &body, &["bad_request"]);
        let (status, body) = app.delete(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "DELETE {uri}: {body}");
        assert_error_shape(&format!("DELETE {uri}"), &body, &["bad_request"]);
    }
    assert_eq!(kb_files(&app.dirs), kb_before);
}

#[tokio::test]
async fn broken_files_at_startup_are_reported_and_the_rest_indexed() {
    let dirs = TestDirs::with_fixtures();
    dirs.write(
        "returns/broken.md",
        "---\ntitle: 坏了\ntags: [退款, 售后\nstatus: published\n---\n\n坏文章正文\n",
    );
    let mut invalid_utf8 = "---\ntitle: 乱码\n---\n\n第一段\n".as_bytes().to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, b'\n']);
    dirs.write("shipping/garbled.md", &invalid_utf8);
    let app = TestApp::start(dirs).await;

    let (status, list) = app.get("/api/v1/kb/articles").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["total"], FIXTURES.len(), "{list}");
    assert_eq!(
        app.search_ids("怎么申请退款")
            .await
            .first()
            .map(String::as_str),
        Some("returns/refund")
    );
    assert!(!app.finds("坏文章正文", "returns/broken").await);

    let (status, errors) = app.get("/api/v1/kb/errors").await;
    assert_eq!(status, StatusCode::OK, "{errors}");
    let errors = errors["errors"].as_array().unwrap();
    let files: Vec<&str> = errors
        .iter()
        .map(|error| error["file"].as_str().unwrap())
        .collect();
    assert_eq!(
        files,
        ["returns/broken.md", "shipping/garbled.md"],
        "{errors:?}"
    );
    let broken_line = errors[0]["line"].as_u64().unwrap();
    assert!((3..=5).contains(&broken_line), "{errors:?}");
    assert!(errors[0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("front matter"));
    assert_eq!(
        errors[1],
        json!({
            "file": "shipping/garbled.md",
            "line": 6,
            "reason": format!("invalid utf-8 at byte {}", invalid_utf8.len() - 3),
        })
    );

    // Fixing the file through the API clears its entry.
    let (status, body) = app
        .put_article("returns/broken", "# 修好了\n\n坏文章正文已修复。\n")
        .await;
    // The broken file is not in the catalog, so the PUT creates the article over it.
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        app.top_hit("坏文章正文").await.as_deref(),
        Some("returns/broken")
    );
    let (_, errors) = app.get("/api/v1/kb/errors").await;
    let files: Vec<&str> = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["shipping/garbled.md"]);
}

#[tokio::test]
async fn bad_dictionary_lines_are_reported_and_the_rest_used() {
    let dirs = TestDirs::with_fixtures();
    dirs.write("_dict.txt", "运费险 1000 n\n坏词 many n\n");
    let app = TestApp::start(dirs).await;
    assert_eq!(
        app.get("/api/v1/kb/errors").await,
        (
            StatusCode::OK,
            json!({"errors": [{
                "file": "_dict.txt",
                "line": 2,
                "reason": "frequency of `坏词` is not a whole number",
            }]})
        )
    );
    let results = app.search("运费险", "").await;
    let snippet = results["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<mark>运费险</mark>"), "{snippet}");
}

#[tokio::test]
async fn a_knowledge_base_without_errors_reports_none() {
    let app = TestApp::new().await;
    assert_eq!(
        app.get("/api/v1/kb/errors").await,
        (StatusCode::OK, json!({"errors": []}))
    );
}

/// Two editors (or an editor and a `git pull`) on one article: a save names the version it started
/// from, and a save over a newer version is refused instead of silently undoing it.
#[tokio::test]
async fn saves_over_a_changed_article_are_refused_and_nothing_is_lost() {
    let app = TestApp::new().await;
    let id = "shipping/freight-insurance";
    let (status, opened) = app.get(&format!("/api/v1/kb/articles/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{opened}");
    let base = opened["content_hash"].as_str().unwrap().to_string();
    let path = app.dirs.kb.join("shipping/freight-insurance.md");
    assert_eq!(
        base,
        blake3::hash(&std::fs::read(&path).unwrap())
            .to_hex()
            .to_string()
    );

    // The first editor saves from the version both opened.
    let first = "# 运费险说明\n\n第一位编辑的修改。\n";
    let (status, saved) = app
        .put(
            &format!("/api/v1/kb/articles/{id}"),
            Some(json!({"markdown": first, "base_hash": base})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let after_first = saved["content_hash"].as_str().unwrap().to_string();
    assert_ne!(after_first, base);

    // The second, still on the old version, is refused; the first editor's text stays.
    let (status, refused) = app
        .put(
            &format!("/api/v1/kb/articles/{id}"),
            Some(json!({"markdown": "# 运费险说明\n\n第二位编辑的修改。\n", "base_hash": base})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "article_changed");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), first);

    // An edit on disk that the server has not read yet counts as a newer version too.
    std::fs::write(&path, "# 运费险说明\n\n磁盘上的修改（git pull）。\n").unwrap();
    let (status, refused) = app
        .put(
            &format!("/api/v1/kb/articles/{id}"),
            Some(json!({"markdown": first, "base_hash": after_first})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(std::fs::read_to_string(&path).unwrap().contains("git pull"));

    // Creating only: refused for a taken id, accepted for a free one.
    let (status, refused) = app
        .put(
            &format!("/api/v1/kb/articles/{id}"),
            Some(json!({"markdown": first, "base_hash": ""})),
        )
        .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::CONFLICT, Some("article_exists")),
        "{refused}"
    );
    let (status, created) = app
        .put(
            "/api/v1/kb/articles/shipping/new-claim",
            Some(json!({"markdown": "# 新文章\n\n内容。\n", "base_hash": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
}

/// Saved articles stay readable like the other files of `kb/` (tempfile makes 0600 files).
#[cfg(unix)]
#[tokio::test]
async fn saved_articles_keep_or_get_ordinary_file_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::new().await;
    let path = app.dirs.kb.join("shipping/freight-insurance.md");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (status, body) = app
        .put_article("shipping/freight-insurance", "# 运费险\n\n新内容。\n")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "an existing article keeps its mode");
    let (status, body) = app
        .put_article("shipping/brand-new", "# 新文章\n\n内容。\n")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mode = std::fs::metadata(app.dirs.kb.join("shipping/brand-new.md"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    let probe = app.dirs.root.join("probe.txt");
    std::fs::write(&probe, "x").unwrap();
    let ordinary = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, ordinary,
        "a new article gets what any new file gets under this umask"
    );
}

/// Deleting an article whose id another file also claims: the other file, refused until now, holds
/// the id at once, as it would after a restart, instead of only after one.
#[tokio::test]
async fn a_deleted_articles_id_goes_to_the_file_that_also_claimed_it() {
    let dirs = TestDirs::with_fixtures();
    dirs.write(
        "returns/refund-copy.md",
        "---\nid: returns/refund\n---\n# 退款（副本）\n\n副本里的说明。\n",
    );
    let app = TestApp::start(dirs).await;
    let (status, errors) = app.get("/api/v1/kb/errors").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        errors.to_string().contains("returns/refund-copy.md"),
        "{errors}"
    );
    let (status, body) = app.delete("/api/v1/kb/articles/returns/refund").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, article) = app.get("/api/v1/kb/articles/returns/refund").await;
    assert_eq!(status, StatusCode::OK, "{article}");
    assert_eq!(article["path"], "returns/refund-copy.md");
    assert!(app.finds("副本里的说明", "returns/refund").await);
}

/// Deepest nesting of `<tag…>` elements in `html`.
fn nesting_of(html: &str, tag: &str) -> usize {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut rest = html;
    while let Some(position) = rest.find('<') {
        rest = &rest[position..];
        if rest.starts_with(&close) {
            depth = depth.saturating_sub(1);
        } else if rest.starts_with(&open) {
            depth += 1;
            deepest = deepest.max(depth);
        }
        rest = &rest[1..];
    }
    deepest
}

/// Hostile articles (40 KB of `>`, 100,000 nested `<div>`s) are saved and served anonymously with
/// their structure cut at the documented depth; the HTML is the same on every read of one version.
#[tokio::test]
async fn hostile_nesting_is_saved_and_served_cut_at_the_documented_depth() {
    let app = TestApp::new().await;
    let quotes = format!("---\ntitle: 引用\n---\n{} 深处\n", ">".repeat(40 * 1024));
    // Never closed: the parser closes them at the end (and the file stays under the 1 MiB limit).
    let divs = format!("---\ntitle: 嵌套\n---\n{}底\n", "<div>".repeat(100_000));
    for (id, markdown, tag) in [
        ("hostile/quotes", &quotes, "blockquote"),
        ("hostile/divs", &divs, "div"),
    ] {
        let (status, saved) = app.put_article(id, markdown).await;
        assert_eq!(status, StatusCode::CREATED, "{}", saved["code"]);
        let (status, served) = app.get_as(None, &format!("/api/v1/kb/articles/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        let html = served["html"].as_str().unwrap();
        assert_eq!(
            nesting_of(html, tag),
            kefu::articles::MAX_RENDERED_DEPTH,
            "{id}"
        );
        assert!(html.len() < markdown.len(), "{id}: {} bytes", html.len());
        assert_eq!(served["html"], saved["html"]);
    }
}

/// The rendered HTML is cached per content hash: the same version reads the same HTML, an edit
/// (a new hash) reads the new one.
#[tokio::test]
async fn an_edit_is_rendered_anew_and_an_unchanged_article_reads_the_same() {
    let app = TestApp::new().await;
    let uri = format!("/api/v1/kb/articles/{}", encode("returns/refund"));
    let (_, first) = app.get_as(None, &uri).await;
    let (_, again) = app.get_as(None, &uri).await;
    assert_eq!(first["html"], again["html"]);
    assert_eq!(first["content_hash"], again["content_hash"]);

    let edited = REFUND.replace("## 到账时间", "## 到账时间（已更新）");
    let (status, saved) = app.put_article("returns/refund", &edited).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    let (_, after) = app.get_as(None, &uri).await;
    assert_ne!(after["content_hash"], first["content_hash"]);
    assert!(after["html"]
        .as_str()
        .unwrap()
        .contains("<h2>到账时间（已更新）</h2>"));
}
#[tokio::test]
async fn new_article_ids_follow_the_documented_rules_and_old_files_stay_editable() {
    let dirs = TestDirs::with_fixtures();
    // A file named before the rules: it keeps its id and can still be saved.
    dirs.write("faq/Old Name.md", "# 旧文章\n\n保留原来的文件名。\n");
    let app = TestApp::start(dirs).await;
    let kb_before = kb_files(&app.dirs);
    for (id, reason) in [
        (
            "kb/bad id with spaces",
            "a space is not allowed: use lower-case letters, digits, `-`, `_` or Chinese characters, and `/` between parts",
        ),
        (
            "Returns/Refund",
            "`R` is not allowed: use lower-case letters, digits, `-`, `_` or Chinese characters, and `/` between parts",
        ),
        (
            "returns/-draft",
            "part `-draft` must start with a letter, digit or Chinese character",
        ),
    ] {
        let (status, body) = app.put_article(id, "# 标题\n\n正文。\n").await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                error_body(
                    "invalid_article_id",
                    &format!("invalid article id `{id}`: {reason}")
                )
            ),
            "PUT {id}"
        );
    }
    assert_eq!(
        kb_files(&app.dirs),
        kb_before,
        "nothing written for refused ids"
    );

    let (status, view) = app
        .put_article("售后/退货-v2_新", "# 退货\n\n七天无理由。\n")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let (status, view) = app
        .put_article("faq/Old Name", "# 旧文章\n\n改过的正文。\n")
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an existing file keeps its id: {view}"
    );
}

#[tokio::test]
async fn categories_have_display_names_from_the_knowledge_base() {
    let dirs = TestDirs::with_fixtures();
    dirs.write(
        "_categories.txt",
        "# 目录名 名称\nreturns 退货退款\n\nshipping 物流 配送\nempty-yet 新分类\nbroken\n",
    );
    let app = TestApp::start(dirs).await;
    let (status, body) = app.get("/api/v1/kb/categories").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let categories = body["categories"].as_array().unwrap();
    let named = |id: &str| {
        categories
            .iter()
            .find(|category| category["id"] == id)
            .unwrap_or_else(|| panic!("{id} missing from {body}"))
            .clone()
    };
    assert_eq!(named("returns")["name"], "退货退款");
    assert!(named("returns")["articles"].as_u64().unwrap() > 0);
    assert_eq!(
        named("shipping")["name"],
        "物流 配送",
        "a name may hold spaces"
    );
    assert_eq!(
        named("empty-yet")["articles"],
        0,
        "a named category without articles yet"
    );
    assert!(categories.iter().all(|category| category["id"] != "broken"));
    let ids: Vec<&str> = categories
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);

    // An edit of the file shows at the next request.
    app.dirs.write("_categories.txt", "returns 退换货\n");
    let (_, body) = app.get("/api/v1/kb/categories").await;
    let returns = body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|category| category["id"] == "returns")
        .unwrap()
        .clone();
    assert_eq!(returns["name"], "退换货");
}

#[test]
fn the_starter_knowledge_base_names_every_folder() {
    let kb = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kb");
    let names = kefu::articles::parse_category_names(
        &std::fs::read_to_string(kb.join("_categories.txt")).expect("kb/_categories.txt"),
    );
    for entry in std::fs::read_dir(&kb).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            let folder = entry.file_name().to_string_lossy().into_owned();
            let name = names
                .get(&folder)
                .unwrap_or_else(|| panic!("kb/{folder} has no display name"));
            assert!(!name.is_ascii(), "kb/{folder} is named in Chinese: {name}");
        }
    }
}
