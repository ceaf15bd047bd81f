//! The knowledge-base watcher: edits made on disk while serving reach search without a restart.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu::services::watch_knowledge_base;

use crate::common::{TestApp, TestDirs};

/// Polls `condition` every 50 ms for up to 5 s; returns how long it took, or `None` if it never held.
async fn wait_for<F, Fut>(mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        if condition().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_written_edited_and_deleted_on_disk_reach_search() {
    let app = TestApp::start(TestDirs::with_fixtures()).await;
    let _watcher = watch_knowledge_base(Arc::clone(&app.state.knowledge)).unwrap();

    // A new file.
    app.dirs.write(
        "faq/watched.md",
        "# 监听\n\n磁盘上新写的文章：分期付款免息。\n",
    );
    let took =
        wait_for(|| async { app.top_hit("分期付款").await.as_deref() == Some("faq/watched") })
            .await
            .expect("a new file never became searchable");
    eprintln!("new file searchable after {took:?}");
    assert!(took < Duration::from_secs(5));

    // An edit.
    app.dirs
        .write("faq/watched.md", "# 监听\n\n改过的文章：以旧换新补贴。\n");
    wait_for(|| async {
        app.top_hit("以旧换新补贴").await.as_deref() == Some("faq/watched")
            && !app.finds("分期付款", "faq/watched").await
    })
    .await
    .expect("an edited file was never re-indexed");

    // A deletion.
    app.dirs.remove("faq/watched.md");
    let took = wait_for(|| async { !app.finds("以旧换新补贴", "faq/watched").await })
        .await
        .expect("a deleted file stayed searchable");
    eprintln!("deleted file gone after {took:?}");
    let (_, list) = app.get("/api/v1/kb/articles/faq/watched").await;
    assert_eq!(list["code"], "article_not_found");

    // A broken file shows up in the errors report, and fixing it clears the report.
    app.dirs
        .write("faq/broken.md", "---\ntitle: [unclosed\n---\n坏掉的文章\n");
    wait_for(|| async {
        let (_, errors) = app.get("/api/v1/kb/errors").await;
        errors["errors"]
            .as_array()
            .is_some_and(|errors| errors.iter().any(|error| error["file"] == "faq/broken.md"))
    })
    .await
    .expect("a broken file never reached the errors report");
    app.dirs.write("faq/broken.md", "# 修好\n\n修好的文章。\n");
    wait_for(|| async {
        let (_, errors) = app.get("/api/v1/kb/errors").await;
        errors["errors"].as_array().is_some_and(Vec::is_empty)
            && app.top_hit("修好").await.as_deref() == Some("faq/broken")
    })
    .await
    .expect("a fixed file was never indexed");

    // A folder renamed: its articles change id (the id defaults to the path).
    std::fs::rename(app.dirs.kb.join("shipping"), app.dirs.kb.join("logistics")).unwrap();
    wait_for(|| async {
        app.top_hit("运费险").await.as_deref() == Some("logistics/freight-insurance")
            && !app.finds("运费险", "shipping/freight-insurance").await
    })
    .await
    .expect("a renamed folder was never re-synced");

    // A folder removed with its articles.
    std::fs::remove_dir_all(app.dirs.kb.join("logistics")).unwrap();
    wait_for(|| async { !app.finds("运费险", "logistics/freight-insurance").await })
        .await
        .expect("articles of a removed folder stayed searchable");
    let (_, list) = app.get("/api/v1/kb/articles").await;
    let ids: Vec<&str> = list["articles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|article| article["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "faq/broken",
            "invoices/e-invoice",
            "returns/refund",
            "returns/seven-day",
            "returns/trade-in"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_synonyms_on_disk_apply_without_a_restart() {
    let app = TestApp::start(TestDirs::with_fixtures()).await;
    let _watcher = watch_knowledge_base(Arc::clone(&app.state.knowledge)).unwrap();
    // 索偿 shares no character with any fixture.
    assert!(!app.finds("索偿", "shipping/freight-insurance").await);
    app.dirs
        .write("_synonyms.txt", "退款,退钱,返款\n发票,收据\n理赔,索偿\n");
    let took = wait_for(|| async {
        app.top_hit("索偿").await.as_deref() == Some("shipping/freight-insurance")
    })
    .await
    .expect("new synonyms never applied");
    eprintln!("synonyms applied after {took:?}");
    assert_eq!(
        app.search_ids("退钱").await.first().map(String::as_str),
        Some("returns/refund")
    );
}

/// A folder with a dot in its name (`promo.2026/`) moved out of `kb/`: its articles leave search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dotted_folder_moved_away_takes_its_articles_out_of_search() {
    let app = TestApp::start(TestDirs::with_fixtures()).await;
    let _watcher = watch_knowledge_base(Arc::clone(&app.state.knowledge)).unwrap();
    app.dirs.write(
        "promo.2026/double-eleven.md",
        "# 双十一活动\n\n双十一当天满减叠加优惠券。\n",
    );
    wait_for(|| async { app.finds("满减叠加", "promo.2026/double-eleven").await })
        .await
        .expect("the article in the dotted folder never became searchable");
    std::fs::rename(
        app.dirs.kb.join("promo.2026"),
        app.dirs.root.join("promo.2026"),
    )
    .unwrap();
    wait_for(|| async { !app.finds("满减叠加", "promo.2026/double-eleven").await })
        .await
        .expect("the moved folder's article stayed searchable");
    let (status, _) = app
        .get("/api/v1/kb/articles/promo.2026/double-eleven")
        .await;
    assert_eq!(status, axum::http::StatusCode::NOT_FOUND);
}
