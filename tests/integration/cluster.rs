//! Three `kefu serve` processes over one PostgreSQL schema and one NATS server, as a support centre
//! would run them behind a load balancer: the visitor on one node, the agents on the others, a node
//! killed with SIGKILL mid-conversation, then the desk leader itself.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{
    http_call, nats_url_or_skip, postgres_url_or_skip, DeleteStream, PgSchema, Session, TestDirs,
    Ws, INITIAL_ADMIN_PASSWORD, INITIAL_PASSWORD, PASSWORD,
};

/// How long the test waits for something that should take a second or two (replication, takeover);
/// the figures themselves are measured in BENCHMARKS.md, not asserted here.
const PATIENCE: Duration = Duration::from_secs(20);

struct Node {
    name: &'static str,
    child: Child,
    base: String,
    address: std::net::SocketAddr,
    log: PathBuf,
    _dirs: TestDirs,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn start(name: &'static str, cluster: &str, postgres: &str, nats: &str) -> Node {
        let dirs = TestDirs::with_fixtures_on(None);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let log = dirs.data.with_file_name(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["serve", "--listen", &listen])
            .args(["--kb", dirs.kb.to_str().unwrap()])
            .args(["--index", dirs.index.to_str().unwrap()])
            .args(["--data", dirs.data.to_str().unwrap()])
            .env("KEFU_ADMIN_PASSWORD", INITIAL_ADMIN_PASSWORD)
            .env("KEFU_SEARCH__WATCH", "false")
            .env("KEFU_STORAGE__BACKEND", "postgres")
            .env("KEFU_STORAGE__POSTGRES_URL", postgres)
            .env("KEFU_CLUSTER__NATS_URL", nats)
            .env("KEFU_CLUSTER__NAME", cluster)
            .env("KEFU_CLUSTER__NODE_ID", name)
            // Every node reaches the others over loopback: the leader takes the client's address
            // from the forwarding node's X-Forwarded-For.
            .env("KEFU_SERVER__TRUSTED_PROXIES", "[\"127.0.0.1/32\"]")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting kefu serve");
        let node = Node {
            name,
            child,
            base: format!("http://{listen}"),
            address: listen.parse().unwrap(),
            log,
            _dirs: dirs,
        };
        node.wait_until(
            |node| call(node, "GET", "/readyz", None, None).0 == 200,
            "ready",
        );
        node
    }

    fn kill(mut self) {
        // SIGKILL: no shutdown, no goodbye to PostgreSQL or NATS.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn wait_until(&self, mut done: impl FnMut(&Node) -> bool, what: &str) -> Duration {
        let started = Instant::now();
        while !done(self) {
            if started.elapsed() > PATIENCE {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                panic!(
                    "{}: not {what} after {PATIENCE:?}; its log ends with:\n{}",
                    self.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        started.elapsed()
    }
}

fn call(
    node: &Node,
    method: &str,
    path: &str,
    session: Option<&Session>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    http_call(&node.base, method, path, session, body)
}

fn ok(node: &Node, method: &str, path: &str, session: &Session, body: Value) -> Value {
    let (status, answer, _) = call(node, method, path, Some(session), Some(body));
    assert!(
        (200..300).contains(&status),
        "{method} {path} through {}: {status} {answer}",
        node.name
    );
    answer
}

/// Signs in through `node` and changes the first password to [`PASSWORD`].
fn sign_in(node: &Node, username: &str, initial: &str) -> Session {
    let (status, body, cookie) = call(
        node,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(json!({"username": username, "password": initial})),
    );
    assert_eq!(status, 200, "signing in as {username}: {body}");
    let session = Session {
        cookie: cookie.expect("a session cookie"),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    };
    ok(
        node,
        "POST",
        "/api/v1/me/password",
        &session,
        json!({"old_password": initial, "new_password": PASSWORD}),
    );
    session
}

fn leader_of(postgres: &str) -> String {
    let mut client = postgres::Client::connect(postgres, postgres::NoTls).unwrap();
    client
        .query_one("SELECT node FROM kefu_desk_lease WHERE id = 1", &[])
        .unwrap()
        .get(0)
}

fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

/// The whole day of issue 17 on three processes; see the module docs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_one_desk_and_survive_losing_a_node_and_the_leader() {
    let test = "cluster::three_nodes_share_one_desk_and_survive_losing_a_node_and_the_leader";
    let Some(postgres_server) = postgres_url_or_skip(test) else {
        return;
    };
    let Some(nats) = nats_url_or_skip(test) else {
        return;
    };
    let schema = PgSchema::create(&postgres_server);
    let cluster = format!("kefu-test-{}", fastrand::u32(..));
    // Dropped last: the cluster's stream and bucket are deleted even when the test fails.
    let _stream = DeleteStream {
        url: nats.clone(),
        stream: format!("{}_MESSAGES", cluster.to_uppercase()),
    };
    let _bucket = DeleteStream {
        url: nats.clone(),
        stream: format!("KV_{cluster}_kb"),
    };

    let node1 = blocking(|| Node::start("node1", &cluster, &schema.url, &nats));
    blocking(|| node1.wait_until(|_| leader_of(&schema.url) == "node1", "leading"));
    let node2 = blocking(|| Node::start("node2", &cluster, &schema.url, &nats));
    let node3 = blocking(|| Node::start("node3", &cluster, &schema.url, &nats));

    // The team sets itself up through whichever node the load balancer picks.
    let admin = blocking(|| sign_in(&node1, "admin", INITIAL_ADMIN_PASSWORD));
    let group = blocking(|| {
        ok(
            &node2,
            "POST",
            "/api/v1/admin/groups",
            &admin,
            json!({"name": "售后"}),
        )["id"]
            .as_u64()
            .unwrap()
    });
    blocking(|| {
        ok(
            &node3,
            "PUT",
            &format!("/api/v1/admin/groups/{group}/routing"),
            &admin,
            json!({"mode": "auto"}),
        )
    });
    let mut ids = Vec::new();
    for (username, name) in [("alice", "小艾"), ("bob", "小博")] {
        let account = blocking(|| {
            ok(
                &node3,
                "POST",
                "/api/v1/admin/accounts",
                &admin,
                json!({"username": username, "password": INITIAL_PASSWORD, "roles": ["agent"]}),
            )
        });
        let id = account["account"]["id"].as_u64().unwrap();
        blocking(|| {
            ok(
                &node2,
                "PATCH",
                &format!("/api/v1/admin/accounts/{id}"),
                &admin,
                json!({"groups": [group], "display_name": name}),
            )
        });
        ids.push(id);
    }
    let (alice_id, bob_id) = (ids[0], ids[1]);
    let alice = blocking(|| sign_in(&node2, "alice", INITIAL_PASSWORD));
    let bob = blocking(|| sign_in(&node3, "bob", INITIAL_PASSWORD));

    // Alice works through node 2; the visitor comes in through node 1 and is routed to her.
    blocking(|| {
        ok(
            &node2,
            "PUT",
            "/api/v1/me/presence",
            &alice,
            json!({"status": "online"}),
        )
    });
    let mut alice_socket = Ws::agent(node2.address, &alice).await;
    alice_socket.expect("agent_hello").await;
    let (status, started, _) = blocking(|| {
        call(
            &node1,
            "POST",
            "/api/v1/visitor/conversations",
            None,
            Some(json!({"message": "你好，我买的蓝牙耳机没有声音", "group": group})),
        )
    });
    assert_eq!(status, 201, "{started}");
    let token = started["token"].as_str().unwrap().to_string();
    let conversation = started["conversation"]["id"].as_str().unwrap().to_string();
    let assigned = alice_socket.expect("assigned").await;
    assert_eq!(assigned["conversation"]["id"], conversation.as_str());
    assert_eq!(assigned["conversation"]["agent"], alice_id);
    let mut visitor = Ws::visitor(node1.address, &token, 0).await;
    visitor.expect("hello").await;

    // Messages both ways, across nodes.
    alice_socket
        .send(json!({"type": "send", "conversation": conversation, "client_key": "a-0", "body": "您好，请问耳机型号是？"}))
        .await;
    alice_socket.expect("ack").await;
    visitor
        .expect_where("message", |frame| {
            frame["message"]["body"] == "您好，请问耳机型号是？"
        })
        .await;
    visitor
        .send(json!({"type": "send", "client_key": "v-0", "body": "型号是 KF-琥珀七号"}))
        .await;
    visitor.expect("ack").await;
    alice_socket
        .expect_where("message", |frame| {
            frame["message"]["body"] == "型号是 KF-琥珀七号"
        })
        .await;

    // Node 2 dies in the middle of Alice's messages: she reconnects through node 3, resends what
    // was not acknowledged with the same keys, and the visitor has each message once, in order.
    let mut acked = Vec::new();
    for index in 1..=5 {
        alice_socket
            .send(json!({"type": "send", "conversation": conversation, "client_key": format!("a-{index}"), "body": format!("排查步骤 {index}")}))
            .await;
        acked.push(alice_socket.expect("ack").await["seq"].as_u64().unwrap());
    }
    for index in 6..=10 {
        alice_socket
            .send(json!({"type": "send", "conversation": conversation, "client_key": format!("a-{index}"), "body": format!("排查步骤 {index}")}))
            .await;
    }
    blocking(|| node2.kill());
    while let Some(frame) = alice_socket.next_within(Duration::from_secs(2)).await {
        if frame["type"] == "ack" {
            acked.push(frame["seq"].as_u64().unwrap());
        }
    }
    let mut alice_socket = Ws::agent(node3.address, &alice).await;
    let hello = alice_socket.expect("agent_hello").await;
    assert!(
        hello.to_string().contains(&conversation),
        "Alice's conversation is still hers after node 2 died: {hello}"
    );
    let last = *acked.iter().max().unwrap();
    alice_socket
        .send(json!({"type": "sync", "conversation": conversation, "last_seq": last}))
        .await;
    alice_socket.expect("history").await;
    for index in 1..=10 {
        alice_socket
            .send(json!({"type": "send", "conversation": conversation, "client_key": format!("a-{index}"), "body": format!("排查步骤 {index}")}))
            .await;
        let seq = alice_socket.expect("ack").await["seq"].as_u64().unwrap();
        if index <= acked.len() {
            assert_eq!(seq, acked[index - 1], "a resend answers the stored message");
        }
    }
    let mut check = Ws::visitor(node1.address, &token, 0).await;
    let hello = check.expect("hello").await;
    let steps: Vec<&str> = hello["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|message| message["body"].as_str())
        .filter(|body| body.starts_with("排查步骤"))
        .collect();
    let expected: Vec<String> = (1..=10).map(|index| format!("排查步骤 {index}")).collect();
    assert_eq!(steps, expected, "every message once, in order: {hello}");
    drop(check);

    // Alice hands over to Bob, on node 3, with a note for him only.
    blocking(|| {
        ok(
            &node3,
            "PUT",
            "/api/v1/me/presence",
            &bob,
            json!({"status": "online"}),
        )
    });
    let mut bob_socket = Ws::agent(node3.address, &bob).await;
    bob_socket.expect("agent_hello").await;
    alice_socket
        .send(json!({"type": "transfer", "conversation": conversation, "to_agent": bob_id, "note": "客户耳机无声，已排查蓝牙", "reason": "转售后专员"}))
        .await;
    let offer = bob_socket.expect("transfer_offered").await;
    assert_eq!(offer["note"], "客户耳机无声，已排查蓝牙");
    bob_socket
        .send(json!({"type": "answer_transfer", "conversation": conversation, "accept": true}))
        .await;
    let assigned = bob_socket.expect("assigned").await;
    assert_eq!(assigned["conversation"]["agent"], bob_id);
    assert!(
        assigned["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|message| message["kind"] == "internal"
                && message["body"].as_str().unwrap().contains("客户耳机无声")),
        "the note is in the conversation for Bob: {assigned}"
    );
    bob_socket
        .send(json!({"type": "send", "conversation": conversation, "client_key": "b-0", "body": "我是售后专员小博"}))
        .await;
    bob_socket.expect("ack").await;
    visitor
        .expect_where("message", |frame| {
            frame["message"]["body"] == "我是售后专员小博"
        })
        .await;
    assert!(
        !visitor
            .drain(Duration::from_millis(300))
            .await
            .iter()
            .any(|frame| frame.to_string().contains("已排查蓝牙")),
        "the visitor never sees the note"
    );

    // An article saved through node 1 is found on node 3; so is a message sent through node 1.
    let article = "---\ntitle: 琥珀七号耳机固件升级\ncategory: after-sales\n---\n# 琥珀七号耳机固件升级\n\n琥珀七号耳机没有声音时，先在 App 里升级固件到 2.1 版。\n";
    blocking(|| {
        ok(
            &node1,
            "PUT",
            "/api/v1/kb/articles/after-sales/amber-seven-firmware",
            &admin,
            json!({"markdown": article}),
        )
    });
    let replicated = blocking(|| {
        node3.wait_until(
            |node| {
                let (_, found, _) = call(
                    node,
                    "GET",
                    "/api/v1/kb/search?q=琥珀七号固件",
                    Some(&admin),
                    None,
                );
                found
                    .to_string()
                    .contains("after-sales/amber-seven-firmware")
            },
            "finding the article saved on node 1",
        )
    });
    eprintln!("article saved on node 1 found on node 3 after {replicated:?}");
    let indexed = blocking(|| {
        node3.wait_until(
            |node| {
                let (_, found, _) = call(
                    node,
                    "GET",
                    "/api/v1/conversations?q=琥珀七号",
                    Some(&admin),
                    None,
                );
                found.to_string().contains(&conversation)
            },
            "finding the visitor's message in the history",
        )
    });
    eprintln!("message sent through node 1 found in node 3's history after {indexed:?}");

    // The conversation counts once, whichever nodes saw it.
    let (_, summary, _) = blocking(|| {
        call(
            &node3,
            "GET",
            "/api/v1/stats/summary?day=today",
            Some(&admin),
            None,
        )
    });
    assert_eq!(summary["team"]["received"], 1, "{summary}");
    assert_eq!(summary["team"]["transferred_in"], 1, "{summary}");

    // The leader dies: node 3 takes over, the visitor and Bob reconnect through it and go on.
    blocking(|| node1.kill());
    let takeover = blocking(|| {
        node3.wait_until(
            |_| leader_of(&schema.url) == "node3",
            "leading after node 1 died",
        )
    });
    let serving = blocking(|| {
        node3.wait_until(
            |node| call(node, "GET", "/api/v1/me", Some(&bob), None).0 == 200,
            "serving the desk after node 1 died",
        )
    });
    eprintln!(
        "node 3 leads {takeover:?} and serves the desk {:?} after node 1 was killed",
        takeover + serving
    );
    let mut visitor = Ws::visitor(node3.address, &token, 0).await;
    let hello = visitor.expect("hello").await;
    assert!(
        hello.to_string().contains("我是售后专员小博"),
        "the new leader has every committed message: {hello}"
    );
    let mut bob_socket = Ws::agent(node3.address, &bob).await;
    bob_socket.expect("agent_hello").await;
    visitor
        .send(json!({"type": "send", "client_key": "v-1", "body": "升级以后有声音了，谢谢"}))
        .await;
    visitor.expect("ack").await;
    bob_socket
        .expect_where("message", |frame| {
            frame["message"]["body"] == "升级以后有声音了，谢谢"
        })
        .await;
    // The new leader's own history is fed by the message log as well.
    blocking(|| {
        node3.wait_until(
            |node| {
                let (_, found, _) = call(
                    node,
                    "GET",
                    "/api/v1/conversations?q=升级以后",
                    Some(&admin),
                    None,
                );
                found.to_string().contains(&conversation)
            },
            "finding, as the leader, a message stored after the takeover",
        )
    });
    let (_, summary, _) = blocking(|| {
        call(
            &node3,
            "GET",
            "/api/v1/stats/summary?day=today",
            Some(&admin),
            None,
        )
    });
    assert_eq!(summary["team"]["received"], 1, "{summary}");
    drop(visitor);
    drop(bob_socket);
    drop(alice_socket);
    blocking(move || {
        drop(node3);
        drop(schema);
    });
}
