//! The search path of `GET /api/v1/kb/search`: query checks, jieba and n-gram analysis, synonym
//! expansion, the tantivy query, ranking and the highlighted snippets, against an index built once
//! from the repository's `kb/`.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use kefu::config::SearchConfig;
use kefu::error::ErrorCode;
use kefu::search::WriterOptions;
use kefu::services::knowledge::{KnowledgeService, SearchQuery};
use libfuzzer_sys::fuzz_target;
use tempfile::TempDir;

struct Fixture {
    service: KnowledgeService,
    max_limit: usize,
    _kb: TempDir,
    _index: TempDir,
}

fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create kb copy");
    for entry in std::fs::read_dir(from).expect("read kb") {
        let entry = entry.expect("kb entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("kb entry type").is_dir() {
            copy_folder(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy kb file");
        }
    }
}

/// A copy of `kb/` (the service may write beside it) and its index, built at the first input.
static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let kb = TempDir::new().expect("kb temp dir");
    let index = TempDir::new().expect("index temp dir");
    copy_folder(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kb"),
        kb.path(),
    );
    let config = SearchConfig::default();
    let max_limit = config.max_limit;
    let (service, report) =
        KnowledgeService::open(kb.path(), index.path(), config, WriterOptions::serving())
            .expect("index kb/");
    assert!(
        report.errors.is_empty(),
        "kb/ has errors: {:?}",
        report.errors
    );
    Fixture {
        service,
        max_limit,
        _kb: kb,
        _index: index,
    }
});

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let [limit_byte, flags, rest @ ..] = data else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    // `text\ncategory`: the second line, when there is one, is the category filter.
    let (text, category) = match text.split_once('\n') {
        Some((text, category)) if flags & 1 == 1 => (text.to_string(), Some(category.to_string())),
        _ => (text.into_owned(), None),
    };
    let limit = usize::from(*limit_byte) % (fixture.max_limit + 2);
    let query = SearchQuery {
        text,
        limit: (flags & 2 == 2).then_some(limit),
        category,
        include_drafts: flags & 4 == 4,
    };
    match fixture.service.search(&query) {
        Ok(results) => {
            assert!(results.hits.len() <= query.limit.unwrap_or(fixture.max_limit));
            for hit in &results.hits {
                // Snippets are inserted as HTML: the only markup in them is the highlight.
                let bare = hit.snippet.replace("<mark>", "").replace("</mark>", "");
                assert!(!bare.contains('<'), "markup in snippet {:?}", hit.snippet);
                assert!(hit.score.is_finite(), "score {} for {:?}", hit.score, query);
            }
        }
        // Bad text or limits are the caller's fault; anything else is a bug.
        Err(error) => assert_eq!(
            error.code(),
            ErrorCode::InvalidQuery,
            "{error} for {query:?}"
        ),
    }
});
