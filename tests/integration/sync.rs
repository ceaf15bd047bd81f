//! Keeping the index in step with `kb/` across restarts: incremental sync by content hash, rebuilding a
//! missing, stale or corrupt index, and re-reading named files (what the watcher does).

use axum::http::StatusCode;

use kefu::search::WriterOptions;
use kefu::services::{KnowledgeService, SearchQuery, SyncReport};

use crate::common::{TestApp, TestDirs, FIXTURES, REFUND};

fn open(dirs: &TestDirs) -> (KnowledgeService, SyncReport) {
    KnowledgeService::open(
        &dirs.kb,
        &dirs.index,
        dirs.config().search,
        WriterOptions::serving(),
    )
    .unwrap_or_else(|error| panic!("opening the knowledge base: {error}"))
}

fn counts(report: &SyncReport) -> (usize, usize, usize, usize) {
    (
        report.added,
        report.updated,
        report.removed,
        report.unchanged,
    )
}

fn ids(service: &KnowledgeService, text: &str) -> Vec<String> {
    service
        .search(&SearchQuery {
            text: text.to_string(),
            ..SearchQuery::default()
        })
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.id)
        .collect()
}

fn top(service: &KnowledgeService, text: &str) -> Option<String> {
    ids(service, text).into_iter().next()
}

fn finds(service: &KnowledgeService, text: &str, id: &str) -> bool {
    ids(service, text).iter().any(|hit| hit == id)
}

fn listed(service: &KnowledgeService) -> Vec<String> {
    service
        .list(None)
        .unwrap()
        .into_iter()
        .map(|article| article.id)
        .collect()
}

#[test]
fn reopening_touches_only_added_edited_and_removed_files() {
    let dirs = TestDirs::with_fixtures();
    let (service, report) = open(&dirs);
    assert_eq!(counts(&report), (FIXTURES.len(), 0, 0, 0));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    drop(service);

    // Nothing changed; rewriting a file with the same bytes is no change either.
    dirs.write("returns/refund.md", REFUND);
    let (service, report) = open(&dirs);
    assert_eq!(counts(&report), (0, 0, 0, FIXTURES.len()));
    assert!(!report.changed());
    drop(service);

    dirs.write(
        "shipping/freight-insurance.md",
        "# 运费险说明\n\n运费险由保险公司承保，按首重补偿。\n",
    );
    dirs.write("faq/new.md", "# 新文章\n\n会员积分可以抵扣现金。\n");
    dirs.remove("returns/seven-day.md");
    let (service, report) = open(&dirs);
    assert_eq!(counts(&report), (1, 1, 1, FIXTURES.len() - 2), "{report:?}");
    assert!(report.changed());
    assert_eq!(top(&service, "会员积分").as_deref(), Some("faq/new"));
    assert_eq!(
        top(&service, "首重").as_deref(),
        Some("shipping/freight-insurance")
    );
    assert!(!finds(&service, "理赔", "shipping/freight-insurance"));
    assert!(!finds(&service, "无理由退货", "returns/seven-day"));
    assert_eq!(
        listed(&service),
        [
            "faq/new",
            "invoices/e-invoice",
            "returns/refund",
            "returns/trade-in",
            "shipping/freight-insurance"
        ]
    );
}

#[test]
fn a_file_that_breaks_between_runs_is_removed_and_reported() {
    let dirs = TestDirs::with_fixtures();
    drop(open(&dirs));
    dirs.write("returns/seven-day.md", "---\ntitle: [unclosed\n---\n正文\n");
    let (service, report) = open(&dirs);
    assert_eq!(counts(&report), (0, 0, 1, FIXTURES.len() - 1), "{report:?}");
    let files: Vec<&str> = report.errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(files, ["returns/seven-day.md"]);
    assert!(!finds(&service, "无理由退货", "returns/seven-day"));
    assert_eq!(service.errors(), report.errors);
}

#[test]
fn a_deleted_index_folder_is_rebuilt() {
    let dirs = TestDirs::with_fixtures();
    drop(open(&dirs));
    std::fs::remove_dir_all(&dirs.index).unwrap();
    let (service, report) = open(&dirs);
    assert_eq!(counts(&report), (FIXTURES.len(), 0, 0, 0));
    assert_eq!(
        ids(&service, "怎么申请退款").first().map(String::as_str),
        Some("returns/refund")
    );
}

#[test]
fn an_emptied_index_folder_is_rebuilt() {
    let dirs = TestDirs::with_fixtures();
    drop(open(&dirs));
    for entry in std::fs::read_dir(&dirs.index).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let (service, report) = open(&dirs);
    assert_eq!(counts(&report), (FIXTURES.len(), 0, 0, 0));
    assert_eq!(top(&service, "退貨").as_deref(), Some("returns/seven-day"));
}

/// Regression: the index folder also holds `kefu-dict.txt` and `kefu-synonyms.txt`; when
/// `clear_index_directory` did not recognise them, every rebuild of an existing index was refused with
/// "holds files that are not a kefu index".
///
/// Overwrites `name` in the index folder with garbage, reopens, and expects a full rebuild.
fn assert_rebuilds_after_corrupting(name: &str) {
    let dirs = TestDirs::with_fixtures();
    drop(open(&dirs));
    let target = dirs.index.join(name);
    assert!(target.is_file(), "{name} should exist in a built index");
    std::fs::write(&target, b"\x00garbage{{{ not json").unwrap();
    let result = KnowledgeService::open(
        &dirs.kb,
        &dirs.index,
        dirs.config().search,
        WriterOptions::serving(),
    );
    let (service, report) = match result {
        Ok(opened) => opened,
        Err(error) => panic!("corrupt {name}: expected a rebuild, got an error: {error}"),
    };
    assert_eq!(counts(&report), (FIXTURES.len(), 0, 0, 0), "{name}");
    assert_eq!(
        ids(&service, "怎么申请退款").first().map(String::as_str),
        Some("returns/refund")
    );
}

#[test]
fn a_corrupt_tantivy_meta_json_is_rebuilt() {
    assert_rebuilds_after_corrupting("meta.json");
}

#[test]
fn a_corrupt_kefu_fingerprint_is_rebuilt() {
    assert_rebuilds_after_corrupting("kefu-meta.json");
}

/// Regression: the index folder also holds `kefu-dict.txt` and `kefu-synonyms.txt`; when
/// `clear_index_directory` did not recognise them, every rebuild of an existing index was refused with
/// "holds files that are not a kefu index".
#[test]
fn a_changed_dictionary_rebuilds_the_index_on_the_next_start() {
    let dirs = TestDirs::with_fixtures();
    drop(open(&dirs));
    dirs.write("_dict.txt", "运费险 1000 n\n账户余额 500 n\n");
    let result = KnowledgeService::open(
        &dirs.kb,
        &dirs.index,
        dirs.config().search,
        WriterOptions::serving(),
    );
    let (service, report) =
        result.unwrap_or_else(|error| panic!("a new dictionary should rebuild: {error}"));
    assert_eq!(counts(&report), (FIXTURES.len(), 0, 0, 0));
    assert_eq!(
        top(&service, "账户余额").as_deref(),
        Some("shipping/freight-insurance")
    );
}

/// Regression: the index folder also holds `kefu-dict.txt` and `kefu-synonyms.txt`; when
/// `clear_index_directory` did not recognise them, every rebuild of an existing index was refused with
/// "holds files that are not a kefu index".
/// Synonym words are part of the analyzer hash, so this hits `kefu serve` after any synonyms edit.
#[tokio::test]
async fn the_app_starts_after_synonyms_were_edited_while_it_was_down() {
    let app = TestApp::new().await;
    assert!(!app.finds("索偿", "shipping/freight-insurance").await);
    let dirs = app.stop();
    dirs.write("_synonyms.txt", "退款,退钱,返款\n发票,收据\n理赔,索偿\n");
    let config = dirs.config();
    let state = kefu::app::build_state(&config)
        .await
        .unwrap_or_else(|error| panic!("startup after a synonyms edit failed: {error:#}"));
    drop(state);
    let app = TestApp::start(dirs).await;
    assert_eq!(
        app.top_hit("索偿").await.as_deref(),
        Some("shipping/freight-insurance")
    );
}

#[test]
fn an_index_folder_holding_other_files_is_never_cleared() {
    let dirs = TestDirs::with_fixtures();
    std::fs::create_dir_all(&dirs.index).unwrap();
    std::fs::write(dirs.index.join("precious.txt"), "do not delete").unwrap();
    let result = KnowledgeService::open(
        &dirs.kb,
        &dirs.index,
        dirs.config().search,
        WriterOptions::serving(),
    );
    assert!(result.is_err(), "a folder with foreign files is refused");
    assert_eq!(
        std::fs::read_to_string(dirs.index.join("precious.txt")).unwrap(),
        "do not delete"
    );
}

#[test]
fn sync_paths_applies_only_the_named_files() {
    let dirs = TestDirs::with_fixtures();
    let (service, _) = open(&dirs);

    dirs.write("faq/points.md", "# 积分\n\n会员积分可以抵扣现金。\n");
    dirs.write(
        "returns/refund.md",
        "# 如何申请退款\n\n新的退款说明：极速退款。\n",
    );
    dirs.remove("returns/seven-day.md");
    dirs.write("faq/unnamed.md", "# 没点名\n\n这个文件没有被点名同步。\n");
    let report = service
        .sync_paths(&[
            "faq/points.md".to_string(),
            "returns/refund.md".to_string(),
            "returns/seven-day.md".to_string(),
            "returns/trade-in.md".to_string(),
            "faq/absent.md".to_string(),
        ])
        .unwrap();
    assert_eq!(counts(&report), (1, 1, 1, 1), "{report:?}");
    assert_eq!(top(&service, "会员积分").as_deref(), Some("faq/points"));
    assert_eq!(top(&service, "极速退款").as_deref(), Some("returns/refund"));
    assert!(!finds(&service, "无理由退货", "returns/seven-day"));
    assert!(!finds(&service, "没点名", "faq/unnamed"));

    // A file that takes another article's id is refused and reported; the original keeps it.
    dirs.write(
        "faq/clash.md",
        "---\nid: faq/points\n---\n# 冲突\n\n撞车的文章。\n",
    );
    let report = service.sync_paths(&["faq/clash.md".to_string()]).unwrap();
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(report.errors[0].file, "faq/clash.md");
    assert!(
        report.errors[0].reason.contains("faq/points.md"),
        "{report:?}"
    );
    assert_eq!(top(&service, "会员积分").as_deref(), Some("faq/points"));
    assert!(!finds(&service, "撞车", "faq/points"));

    // A file whose id changes drops the old id and indexes the new one.
    dirs.write(
        "faq/points.md",
        "---\nid: faq/points-v2\n---\n# 积分\n\n会员积分可以抵扣现金。\n",
    );
    let report = service.sync_paths(&["faq/points.md".to_string()]).unwrap();
    assert_eq!((report.added, report.removed), (1, 1), "{report:?}");
    assert_eq!(top(&service, "会员积分").as_deref(), Some("faq/points-v2"));
    assert!(!finds(&service, "会员积分", "faq/points"));

    // A full sync then picks up the file that was never named, and nothing else.
    let report = service.sync_all().unwrap();
    assert_eq!(
        report.added, 2,
        "faq/unnamed and the freed id of faq/clash: {report:?}"
    );
    assert_eq!(report.updated + report.removed, 0, "{report:?}");
    assert_eq!(top(&service, "没点名").as_deref(), Some("faq/unnamed"));
}

#[tokio::test]
async fn articles_written_through_the_api_survive_a_restart() {
    let app = TestApp::new().await;
    let (status, view) = app
        .put_article("faq/restart", "# 重启\n\n重启之后依然存在的文章。\n")
        .await;
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let (status, _) = app.delete("/api/v1/kb/articles/returns/seven-day").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let dirs = app.stop();

    let app = TestApp::start(dirs).await;
    assert_eq!(
        app.top_hit("依然存在").await.as_deref(),
        Some("faq/restart")
    );
    assert!(!app.finds("无理由退货", "returns/seven-day").await);
    let (_, list) = app.get("/api/v1/kb/articles").await;
    assert_eq!(list["total"], FIXTURES.len());
}

/// A rename that the watcher reports as two paths, the new name sorting first: the article keeps its
/// explicit id and stays searchable; and a file refused for a taken id gets it once the holder goes.
#[test]
fn renamed_files_keep_their_id_and_freed_ids_go_to_the_waiting_file() {
    let dirs = TestDirs::with_fixtures();
    let (service, _) = open(&dirs);
    let moved = std::fs::read_to_string(dirs.kb.join("returns/refund.md")).unwrap();
    dirs.remove("returns/refund.md");
    dirs.write("returns/a-refund.md", &moved);
    let report = service
        .sync_paths(&[
            "returns/a-refund.md".to_string(),
            "returns/refund.md".to_string(),
        ])
        .unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(
        finds(&service, "退款多久到账", "returns/refund"),
        "{report:?}"
    );

    // Another file claims the id and is refused; when the holder is removed, it takes the id.
    dirs.write(
        "returns/z-copy.md",
        "---\nid: returns/refund\n---\n# 退款副本\n\n副本里的极光退款说明。\n",
    );
    let report = service
        .sync_paths(&["returns/z-copy.md".to_string()])
        .unwrap();
    assert_eq!(report.errors.len(), 1, "{report:?}");
    dirs.remove("returns/a-refund.md");
    let report = service
        .sync_paths(&["returns/a-refund.md".to_string()])
        .unwrap();
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(finds(&service, "极光退款", "returns/refund"), "{report:?}");
}
