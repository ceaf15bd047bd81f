//! What was acknowledged survives a crash: `kefu serve` as a child process, killed with SIGKILL right
//! after its answers (no shutdown, no flush on exit), then started again on the same folders.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{
    http_call, visitor_bodies, Session, TestDirs, Ws, INITIAL_ADMIN_PASSWORD, PASSWORD,
};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dirs: &TestDirs) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "--listen", &listen])
        .args(["--kb", dirs.kb.to_str().unwrap()])
        .args(["--index", dirs.index.to_str().unwrap()])
        .args(["--data", dirs.data.to_str().unwrap()])
        .env("KEFU_ADMIN_PASSWORD", INITIAL_ADMIN_PASSWORD)
        .env("KEFU_SEARCH__WATCH", "false")
        .env("RUST_LOG", "warn")
        .envs(dirs.storage_env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kefu serve");
    let server = Server {
        child,
        base: format!("http://{listen}"),
    };
    let started = Instant::now();
    while call(&server, "GET", "/readyz", None, None).0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "kefu serve did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn call(
    server: &Server,
    method: &str,
    path: &str,
    session: Option<&Session>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    http_call(&server.base, method, path, session, body)
}

fn login(server: &Server, password: &str) -> Session {
    let (status, body, cookie) = call(
        server,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": "admin", "password": password})),
    );
    assert_eq!(status, 200, "{body}");
    Session {
        cookie: cookie.expect("a session cookie"),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    }
}

/// A session ended from another device and a block both answered, then SIGKILL: after the restart
/// the session is still gone and the block still there.
#[test]
fn revocations_and_blocks_survive_a_kill_right_after_the_answer() {
    let dirs = TestDirs::with_fixtures();
    let server = serve(&dirs);
    let first = login(&server, INITIAL_ADMIN_PASSWORD);
    let (status, body, _) = call(
        &server,
        "POST",
        "/api/v1/me/password",
        Some(&first),
        Some(json!({"old_password": INITIAL_ADMIN_PASSWORD, "new_password": PASSWORD})),
    );
    assert_eq!(status, 200, "{body}");
    let stolen = login(&server, PASSWORD);
    let (status, sessions, _) = call(&server, "GET", "/api/v1/me/sessions", Some(&first), None);
    assert_eq!(status, 200, "{sessions}");
    let other = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|session| session["current"] == false)
        .expect("the second session")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body, _) = call(
        &server,
        "DELETE",
        &format!("/api/v1/me/sessions/{other}"),
        Some(&first),
        None,
    );
    assert_eq!(status, 204, "{body}");
    let (status, body, _) = call(
        &server,
        "POST",
        "/api/v1/blocks",
        Some(&first),
        Some(json!({"ip_range": "192.0.2.0/24", "reason": "刷单"})),
    );
    assert_eq!(status, 201, "{body}");
    drop(server);

    let server = serve(&dirs);
    let (status, body, _) = call(&server, "GET", "/api/v1/me", Some(&stolen), None);
    assert_eq!(status, 401, "the revoked session stays revoked: {body}");
    let (status, blocks, _) = call(&server, "GET", "/api/v1/blocks", Some(&first), None);
    assert_eq!(status, 200, "{blocks}");
    assert!(
        blocks.to_string().contains("192.0.2.0/24"),
        "the block is still there: {blocks}"
    );
}

/// A visitor's messages, each acknowledged, then SIGKILL: after the restart every acknowledged message
/// is there once, in order, and resending them all with their keys (the page never saw the acks)
/// stores nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_a_kill_and_resends_are_not_stored_twice() {
    const SENT: usize = 30;
    let dirs = TestDirs::with_fixtures();
    let server = tokio::task::block_in_place(|| serve(&dirs));
    let (status, started, _) = tokio::task::block_in_place(|| {
        call(
            &server,
            "POST",
            "/api/v1/visitor/conversations",
            None,
            Some(json!({"message": "你好，我的订单还没发货"})),
        )
    });
    assert_eq!(status, 201, "{started}");
    let token = started["token"].as_str().unwrap().to_string();
    let mut visitor = Ws::visitor(address_of(&server), &token, 0).await;
    visitor.expect("hello").await;
    let mut acked = Vec::new();
    for index in 0..SENT {
        visitor
            .send(json!({"type": "send", "client_key": format!("k{index}"), "body": format!("第 {index} 条")}))
            .await;
        let ack = visitor.expect("ack").await;
        acked.push(ack["seq"].as_u64().unwrap());
    }
    drop(visitor);
    tokio::task::block_in_place(|| drop(server));

    let server = tokio::task::block_in_place(|| serve(&dirs));
    let mut visitor = Ws::visitor(address_of(&server), &token, 0).await;
    let hello = visitor.expect("hello").await;
    let bodies = visitor_bodies(&hello["messages"]);
    let expected: Vec<String> = std::iter::once("你好，我的订单还没发货".to_string())
        .chain((0..SENT).map(|index| format!("第 {index} 条")))
        .collect();
    assert_eq!(
        bodies, expected,
        "every acknowledged message, once, in order"
    );
    for (index, seq) in acked.iter().enumerate() {
        visitor
            .send(json!({"type": "send", "client_key": format!("k{index}"), "body": format!("第 {index} 条")}))
            .await;
        let ack = visitor.expect("ack").await;
        assert_eq!(
            ack["seq"].as_u64(),
            Some(*seq),
            "a resend answers the stored message"
        );
    }
    drop(visitor);
    let mut visitor = Ws::visitor(address_of(&server), &token, 0).await;
    let hello = visitor.expect("hello").await;
    let visitor_messages = visitor_bodies(&hello["messages"]).len();
    assert_eq!(
        visitor_messages,
        SENT + 1,
        "resends stored nothing: {hello}"
    );
    tokio::task::block_in_place(|| drop(server));
}

fn address_of(server: &Server) -> std::net::SocketAddr {
    server.base.trim_start_matches("http://").parse().unwrap()
}
