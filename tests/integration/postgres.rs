//! PostgreSQL as the store: the tables, the migrations, atomic counters, and moving a whole
//! installation from the embedded store to PostgreSQL and back with `kefu export` / `kefu import`.
//! These need a server (`KEFU_TEST_POSTGRES_URL`): without one they say they were skipped, and fail
//! under CI. The rest of the suite runs on PostgreSQL too when that variable is set.

use std::ops::Bound;
use std::process::Command;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use kefu::config::{StorageBackend, StorageConfig};
use kefu::storage::Store;
use serde_json::json;

use crate::common::{postgres_url_or_skip, visitor_bodies, PgSchema, TestApp, TestDirs, Ws};

fn postgres_config(schema: &PgSchema) -> StorageConfig {
    StorageConfig {
        backend: StorageBackend::Postgres,
        postgres_url: Some(schema.url.clone()),
        postgres_connections: 2,
    }
}

/// Runs `sql` on the schema with a client of the test's own.
fn query_i64(schema: &PgSchema, sql: &str) -> i64 {
    let mut client = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    client.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn tables_keep_byte_order_swap_atomically_and_migrations_run_once() {
    let Some(url) = postgres_url_or_skip("postgres::tables_keep_byte_order…") else {
        return;
    };
    let schema = PgSchema::create(&url);
    let folder = tempfile::tempdir().unwrap();
    let store = Store::open_configured(&postgres_config(&schema), folder.path()).unwrap();
    assert_eq!(store.backend_name(), "postgres");

    // Keys compare bytewise, as in sled: 0xff sorts last, a prefix scan stops at its end.
    let table = store.table("messages").unwrap();
    for key in [
        &b"c\x00\x02"[..],
        b"c\x00\x01",
        b"c\x00\xff",
        b"c\x01",
        b"d",
    ] {
        table.insert(key, key).unwrap();
    }
    let keys = table.scan_prefix_keys(b"c\x00").unwrap();
    assert_eq!(
        keys,
        vec![
            b"c\x00\x01".to_vec(),
            b"c\x00\x02".to_vec(),
            b"c\x00\xff".to_vec()
        ]
    );
    assert_eq!(
        table.last_with_prefix(b"c\x00").unwrap().unwrap().0,
        b"c\x00\xff"
    );
    let newest = table
        .range_limited(
            Bound::Unbounded,
            Bound::Excluded(b"d".to_vec()),
            Some(2),
            true,
        )
        .unwrap();
    assert_eq!(
        newest
            .iter()
            .map(|(key, _)| key.clone())
            .collect::<Vec<_>>(),
        vec![b"c\x01".to_vec(), b"c\x00\xff".to_vec()]
    );
    assert!(table.remove(b"d").unwrap());
    assert!(!table.remove(b"d").unwrap());
    assert_eq!(table.len().unwrap(), 4);

    // Compare-and-swap claims a key once.
    assert!(store
        .table("usernames")
        .unwrap()
        .compare_and_swap(b"xiaomei", None, Some(b"1"))
        .unwrap());
    assert!(!store
        .table("usernames")
        .unwrap()
        .compare_and_swap(b"xiaomei", None, Some(b"2"))
        .unwrap());
    assert_eq!(
        store
            .table("usernames")
            .unwrap()
            .get(b"xiaomei")
            .unwrap()
            .unwrap(),
        b"1"
    );

    // Counters from several threads lose no increment.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..25 {
                    kefu::storage::update_json::<u64>(
                        store.table("stats").unwrap(),
                        b"hits",
                        |count| *count += 1,
                    )
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(
        kefu::storage::get_json::<u64>(store.table("stats").unwrap(), b"hits").unwrap(),
        Some(100)
    );

    let first = store.next_id().unwrap();
    assert!(store.next_id().unwrap() > first);
    store.close();

    // A second start migrates nothing; a schema newer than this binary is refused.
    let again = Store::open_configured(&postgres_config(&schema), folder.path()).unwrap();
    again.close();
    // One row per migration: the tables, the channels' tables, the desk lease of a cluster.
    assert_eq!(query_i64(&schema, "SELECT count(*) FROM kefu_schema"), 3);
    assert_eq!(
        query_i64(&schema, "SELECT epoch FROM kefu_desk_lease WHERE id = 1"),
        0
    );
    // The fence of a cluster's leader: its epoch passes until another node takes the lease over.
    let fenced = Store::open_configured(&postgres_config(&schema), folder.path()).unwrap();
    fenced.check_desk_epoch(0).unwrap();
    query_i64(
        &schema,
        "UPDATE kefu_desk_lease SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch",
    );
    let refused = fenced.check_desk_epoch(0).unwrap_err();
    assert_eq!(refused.code(), kefu::ErrorCode::NoLeader, "{refused}");
    fenced.check_desk_epoch(1).unwrap();
    fenced.close();
    let mut client = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    client
        .execute("INSERT INTO kefu_schema (version) VALUES (999)", &[])
        .unwrap();
    let error = Store::open_configured(&postgres_config(&schema), folder.path()).unwrap_err();
    assert!(
        error.to_string().contains("newer than this kefu"),
        "{error}"
    );
}

#[test]
fn a_server_that_does_not_answer_is_a_clear_error() {
    let folder = tempfile::tempdir().unwrap();
    let config = StorageConfig {
        backend: StorageBackend::Postgres,
        postgres_url: Some("postgres://kefu@127.0.0.1:1/kefu".into()),
        postgres_connections: 1,
    };
    let error = Store::open_configured(&config, folder.path()).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("cannot reach PostgreSQL at host 127.0.0.1 port 1"),
        "{message}"
    );
    let missing = StorageConfig {
        postgres_url: None,
        ..config
    };
    let error = Store::open_configured(&missing, folder.path()).unwrap_err();
    assert!(
        error.to_string().contains("KEFU_STORAGE__POSTGRES_URL"),
        "{error}"
    );
}

/// Runs the `kefu` binary on `dirs`' store.
fn kefu(dirs: &TestDirs, args: &[&str]) -> std::process::Output {
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(args)
        .args(["--data", dirs.data.to_str().unwrap()])
        .current_dir(&dirs.root)
        .env_clear()
        .env("RUST_LOG", "warn")
        .envs(dirs.storage_env())
        .output()
        .expect("running kefu");
    assert!(
        output.status.success(),
        "kefu {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// What the installation holds, seen through the API: the agent signs in, the conversation's
/// messages in order, its file's bytes, the quick reply.
async fn assert_installation(
    dirs: TestDirs,
    conversation: &str,
    hash: &str,
    file: &[u8],
) -> TestDirs {
    let app = TestApp::start(dirs).await;
    let admin = app.admin().await;
    let agent = app
        .login("xiaowang", crate::common::PASSWORD)
        .await
        .expect("the agent signs in");
    let (status, messages) = app
        .get_as(
            Some(&admin),
            &format!("/api/v1/conversations/{conversation}/messages"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{messages}");
    let bodies = visitor_bodies(&messages["messages"]);
    assert_eq!(bodies, ["我想开发票", "抬头是杭州某某公司"]);
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("/api/v1/conversations/{conversation}/files/{hash}"))
        .header(header::COOKIE, &admin.cookie)
        .body(Body::empty())
        .unwrap();
    let reply = app.raw(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, json!(String::from_utf8(file.to_vec()).unwrap()));
    let (status, replies) = app
        .get_as(Some(&agent), "/api/v1/quick-replies?q=发票抬头")
        .await;
    assert_eq!(status, StatusCode::OK, "{replies}");
    assert!(replies.to_string().contains("发票抬头怎么改"), "{replies}");
    // Ids continue above the imported ones: a new account does not collide.
    let newcomer = if app.dirs.postgres.is_some() {
        "newcomer-pg"
    } else {
        "newcomer-sled"
    };
    let (id, _) = app.create_account(&admin, newcomer, &["agent"]).await;
    let (status, accounts) = app.get_as(Some(&admin), "/api/v1/admin/accounts").await;
    assert_eq!(status, StatusCode::OK);
    let same_id = accounts["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|account| account["id"] == id)
        .count();
    assert_eq!(same_id, 1, "{accounts}");
    app.stop()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_moves_from_sled_to_postgres_and_back() {
    let Some(url) = postgres_url_or_skip("postgres::an_installation_moves…") else {
        return;
    };
    // On the embedded store: an agent, a visitor's conversation with a file, a quick reply.
    let mut app = TestApp::start(TestDirs::with_fixtures_on(None)).await;
    let address = app.listen().await;
    let admin = app.admin().await;
    let (_, agent) = app.create_account(&admin, "xiaowang", &["agent"]).await;
    let (status, reply) = app
        .json_as(
            Some(&agent),
            Method::POST,
            "/api/v1/quick-replies",
            json!({"scope": {"kind": "personal"}, "title": "发票抬头怎么改", "content": "您好，发票抬头可以在订单详情里修改。"}),
        )
        .await;
    assert!(status.is_success(), "{reply}");
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/visitor/conversations")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"message": "我想开发票"}).to_string()))
        .unwrap();
    let started = app.raw(request).await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let token = started.body["token"].as_str().unwrap().to_string();
    let conversation = started.body["conversation"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut visitor = Ws::visitor(address, &token, 0).await;
    visitor.expect("hello").await;
    visitor
        .send(json!({"type": "send", "client_key": "k1", "body": "抬头是杭州某某公司"}))
        .await;
    visitor.expect("ack").await;
    let file = b"%PDF-1.4\n% kefu export test\n".to_vec();
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "/api/v1/conversations/{conversation}/files?name=invoice.pdf"
        ))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(file.clone()))
        .unwrap();
    let uploaded = app.raw(request).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    let hash = uploaded.body["hash"].as_str().unwrap().to_string();
    drop(visitor);
    let sled_dirs = app.shutdown().await;

    // sled → PostgreSQL.
    let export = sled_dirs.root.join("kefu.export");
    kefu(&sled_dirs, &["export", "--out", export.to_str().unwrap()]);
    let postgres_dirs = TestDirs::with_fixtures_on(Some(PgSchema::create(&url)));
    // `kefu migrate` creates the schema ahead of the import (and says which store it opened).
    let migrated = kefu(&postgres_dirs, &["migrate"]);
    assert_eq!(
        String::from_utf8_lossy(&migrated.stdout).trim(),
        "postgres store ready"
    );
    let imported = kefu(&postgres_dirs, &["import", export.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&imported.stderr).contains("into the postgres store"));
    // A second import into the filled store is refused and changes nothing.
    let refused = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["import", export.to_str().unwrap()])
        .env_clear()
        .envs(postgres_dirs.storage_env())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already holds records"));
    let postgres_dirs = assert_installation(postgres_dirs, &conversation, &hash, &file).await;

    // PostgreSQL → a fresh embedded store.
    let back = postgres_dirs.root.join("back.export");
    kefu(&postgres_dirs, &["export", "--out", back.to_str().unwrap()]);
    let sled_again = TestDirs::with_fixtures_on(None);
    kefu(&sled_again, &["import", back.to_str().unwrap()]);
    assert_installation(sled_again, &conversation, &hash, &file).await;
}

#[test]
fn a_unit_of_work_commits_together_or_not_at_all() {
    let Some(url) = postgres_url_or_skip("postgres::a_unit_of_work…") else {
        return;
    };
    let schema = PgSchema::create(&url);
    let folder = tempfile::tempdir().unwrap();
    let store = Store::open_configured(&postgres_config(&schema), folder.path()).unwrap();

    // Inside the unit: its own writes are visible to it, to nobody else until the commit.
    let seen_outside = store
        .in_transaction(|| {
            store
                .table("conversations")
                .unwrap()
                .insert(b"c_1", b"{}")?;
            store.write_all(&[kefu::storage::Write {
                table: store.table("queue").unwrap(),
                key: b"c_1".to_vec(),
                value: Some(b"{}".to_vec()),
            }])?;
            // A nested unit joins this one.
            store.in_transaction(|| {
                store
                    .table("messages")
                    .unwrap()
                    .insert(b"c_1\x00\x01", b"m")
            })?;
            assert_eq!(
                store
                    .table("conversations")
                    .unwrap()
                    .get(b"c_1")?
                    .as_deref(),
                Some(&b"{}"[..])
            );
            Ok(query_i64(&schema, "SELECT count(*) FROM conversations"))
        })
        .unwrap();
    assert_eq!(
        seen_outside, 0,
        "uncommitted writes are not seen by other connections"
    );
    assert_eq!(query_i64(&schema, "SELECT count(*) FROM conversations"), 1);
    assert_eq!(query_i64(&schema, "SELECT count(*) FROM queue"), 1);
    assert_eq!(query_i64(&schema, "SELECT count(*) FROM messages"), 1);

    // A unit that fails leaves nothing behind, and the thread's next calls run on their own.
    let failed = store.in_transaction(|| {
        store
            .table("conversations")
            .unwrap()
            .insert(b"c_2", b"{}")?;
        store
            .table("messages")
            .unwrap()
            .insert(b"c_2\x00\x01", b"m")?;
        Err::<(), _>(kefu::Error::InvalidInput("the change was refused".into()))
    });
    assert!(failed.is_err());
    assert!(store
        .table("conversations")
        .unwrap()
        .get(b"c_2")
        .unwrap()
        .is_none());
    assert_eq!(query_i64(&schema, "SELECT count(*) FROM messages"), 1);
    store
        .table("conversations")
        .unwrap()
        .insert(b"c_3", b"{}")
        .unwrap();
    assert_eq!(query_i64(&schema, "SELECT count(*) FROM conversations"), 2);

    // A statement PostgreSQL refuses inside the unit (a key longer than a btree index entry may be)
    // fails the unit and rolls back what came before it.
    let huge_key: Vec<u8> = (0..10_000u32).map(|_| fastrand::u8(..)).collect();
    let failed = store.in_transaction(|| {
        store
            .table("conversations")
            .unwrap()
            .insert(b"c_4", b"{}")?;
        store
            .table("conversations")
            .unwrap()
            .insert(&huge_key, b"{}")?;
        Ok(())
    });
    assert!(failed.is_err());
    assert!(store
        .table("conversations")
        .unwrap()
        .get(b"c_4")
        .unwrap()
        .is_none());
    assert_eq!(query_i64(&schema, "SELECT count(*) FROM conversations"), 2);
    store.close();
}

#[test]
fn calls_go_on_after_the_server_ends_the_connections() {
    let Some(url) = postgres_url_or_skip("postgres::calls_go_on_after…") else {
        return;
    };
    let schema = PgSchema::create(&url);
    let name = format!("kefu_lost_{}", fastrand::u32(..));
    let config = StorageConfig {
        postgres_url: Some(format!("{}&application_name={name}", schema.url)),
        ..postgres_config(&schema)
    };
    let folder = tempfile::tempdir().unwrap();
    let store = Store::open_configured(&config, folder.path()).unwrap();
    // Both connections open: one held by a unit of work while another thread calls.
    store
        .in_transaction(|| {
            std::thread::scope(|scope| {
                scope.spawn(|| store.table("meta").unwrap().insert(b"other", b"1").unwrap());
            });
            store.table("meta").unwrap().insert(b"k", b"v")
        })
        .unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let count = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(count(&mut admin), 2);
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .unwrap();
    // Every call after it still answers, each worker reconnecting once.
    for _ in 0..6 {
        assert_eq!(
            store.table("meta").unwrap().get(b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
    // Both workers again: a unit holds one, another thread calls on the other.
    store
        .in_transaction(|| {
            std::thread::scope(|scope| {
                scope.spawn(|| store.table("meta").unwrap().insert(b"other", b"2").unwrap());
            });
            store.table("meta").unwrap().insert(b"after", b"1")
        })
        .unwrap();
    assert_eq!(
        store
            .table("meta")
            .unwrap()
            .get(b"after")
            .unwrap()
            .as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        store
            .table("meta")
            .unwrap()
            .get(b"other")
            .unwrap()
            .as_deref(),
        Some(&b"2"[..])
    );
    // The ended backends leave pg_stat_activity within moments; the two new connections stay.
    let started = std::time::Instant::now();
    while count(&mut admin) != 2 && started.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(count(&mut admin), 2, "each worker opened a new connection");
    store.close();
}
