//! `POST /api/v1/quick-replies/import` in both formats (the first byte picks CSV or JSON): the file
//! is read, each row checked and the good ones stored, into a real store in a temporary folder.
#![no_main]

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use kefu::domain::{AccountId, GroupId, ReplyScope};
use kefu::error::{Error, ErrorCode};
use kefu::search::Analyzer;
use kefu::services::{QuickReplyService, SystemClock};
use kefu::storage::Store;
use libfuzzer_sys::fuzz_target;
use tempfile::TempDir;

const AUTHOR: AccountId = AccountId(7);

struct Fixture {
    service: QuickReplyService,
    /// The starter replies, kept across inputs (shortcut clashes with them are worth reaching).
    starter: HashSet<u64>,
    _data: TempDir,
}

/// Groups the author may write to; other groups are refused as the route refuses them.
fn writable_scopes() -> Vec<ReplyScope> {
    vec![
        ReplyScope::Team,
        ReplyScope::Personal { owner: AUTHOR },
        ReplyScope::Group { group: GroupId(1) },
        ReplyScope::Group { group: GroupId(2) },
    ]
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // A store flushes after each import: memory-backed when the machine has /dev/shm.
    let data = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| TempDir::new())
        .expect("data temp dir");
    let store = Store::open(data.path()).expect("open store");
    let service = QuickReplyService::open(
        store,
        Arc::new(Analyzer::new()),
        Arc::new(SystemClock),
        AccountId(1),
    )
    .expect("open quick replies");
    let starter = service
        .all_in(&writable_scopes())
        .expect("list starter replies")
        .into_iter()
        .map(|reply| reply.id)
        .collect();
    Fixture {
        service,
        starter,
        _data: data,
    }
});

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let Some((format, file)) = data.split_first() else {
        return;
    };
    let scopes = writable_scopes();
    let may_write = |scope: ReplyScope| {
        if scopes.contains(&scope) {
            Ok(())
        } else {
            Err(Error::Forbidden("not a group of the author".to_string()))
        }
    };
    let outcome = if format & 1 == 0 {
        fixture.service.import_csv(file, AUTHOR, &may_write)
    } else {
        fixture.service.import_json(file, AUTHOR, &may_write)
    };
    match outcome {
        Ok(report) => {
            let lines: Vec<usize> = report.errors.iter().map(|error| error.line).collect();
            assert!(lines.is_sorted(), "row errors out of order: {lines:?}");
        }
        // A file that cannot be read at all is the caller's fault; anything else is a bug.
        Err(error) => assert_eq!(error.code(), ErrorCode::InvalidImport, "{error}"),
    }
    // Back to the starter set, so that every input meets the same store.
    for reply in fixture.service.all_in(&scopes).expect("list replies") {
        if !fixture.starter.contains(&reply.id) {
            fixture
                .service
                .delete(reply.id)
                .expect("delete imported reply");
        }
    }
});
