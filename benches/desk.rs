//! Live-chat load benchmark (no libtest harness): `cargo bench --bench desk -- [VISITORS] [AGENTS]
//! [RATE] [SECONDS]`, defaults 1000 visitors, 50 agents, 100 messages/s for 30 s.
//!
//! Starts `kefu serve` as a child process on loopback with fresh folders, signs the agents in over
//! HTTP, opens one `/ws/agent` per agent and one conversation + `/ws/visitor` per visitor, then sends
//! messages at a fixed total rate, alternately from a random visitor to its agent and from an agent to
//! one of its visitors. Each body carries its send time; the receiving socket measures delivery, which
//! includes the durable write (the server sends events only after the flush). The server's resident
//! memory is read from /proc before and after the conversations open.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/http.rs"]
mod http_client;
use http_client::{http, is_ready, login, signed};

const ADMIN_INITIAL: &str = "Bench-Admin-2026#";
const PASSWORD: &str = "Bench-Agent-2026#";
const FINAL_PASSWORD: &str = "Bench-Agent-2027#";

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let visitors = args.first().copied().unwrap_or(1000);
    let agents = args.get(1).copied().unwrap_or(50);
    let rate = args.get(2).copied().unwrap_or(100);
    let seconds = args.get(3).copied().unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(visitors, agents, rate, seconds));
}

struct Server {
    child: Child,
    address: SocketAddr,
    _root: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("kb");
    let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "--listen", &address.to_string()])
        .args(["--kb", kb.to_str().unwrap()])
        .args(["--index", root.path().join("index").to_str().unwrap()])
        .args(["--data", root.path().join("data").to_str().unwrap()])
        .env("KEFU_ADMIN_PASSWORD", ADMIN_INITIAL)
        .env("KEFU_SEARCH__WATCH", "false")
        // The benchmark signs in a thousand times from one address.
        .env("KEFU_ACCOUNTS__LOGIN_ATTEMPTS_PER_MINUTE", "100000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("starting kefu serve");
    let server = Server {
        child,
        address,
        _root: root,
    };
    // kefu listens before it has opened the index; every route but `/healthz` answers `503 starting`
    // until `/readyz` answers 200.
    let started = Instant::now();
    while !is_ready(address) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "kefu serve did not become ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/PID/status` line in KiB (`VmRSS:`, `RssAnon:`, `RssFile:`).
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn memory_line(pid: u32) -> String {
    format!(
        "RSS {} KiB (anonymous {} KiB, file-backed {} KiB)",
        status_kib(pid, "VmRSS:"),
        status_kib(pid, "RssAnon:"),
        status_kib(pid, "RssFile:")
    )
}

/// Shared measurements.
#[derive(Default)]
struct Stats {
    latencies_us: Mutex<Vec<u64>>,
    received: AtomicU64,
}

fn record(stats: &Stats, origin: Instant, frame: &str) {
    let Ok(value) = serde_json::from_str::<Value>(frame) else {
        return;
    };
    if value["type"] != "message" {
        return;
    }
    let Some(sent) = value["message"]["body"]
        .as_str()
        .and_then(|body| body.strip_prefix("bench "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|micros| micros.parse::<u64>().ok())
    else {
        return;
    };
    let now = origin.elapsed().as_micros() as u64;
    stats
        .latencies_us
        .lock()
        .unwrap()
        .push(now.saturating_sub(sent));
    stats.received.fetch_add(1, Ordering::Relaxed);
}

async fn run(visitors: usize, agents: usize, rate: usize, seconds: usize) {
    let server = start_server();
    let address = server.address;
    let pid = server.child.id();
    println!("=== desk {visitors} visitors, {agents} agents, {rate} msg/s, {seconds} s ===");
    println!("server: kefu serve pid {pid} on {address}; client: this process, 1 tokio worker");

    let admin = login(address, "admin", ADMIN_INITIAL).await;
    let (status, body) = signed(
        address,
        &admin,
        "POST",
        "/api/v1/me/password",
        json!({"old_password": ADMIN_INITIAL, "new_password": FINAL_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The admin takes no conversations.
    signed(
        address,
        &admin,
        "PUT",
        "/api/v1/me/presence",
        json!({"status": "offline"}),
    )
    .await;
    let per_agent = visitors.div_ceil(agents).clamp(1, 100);
    let origin = Instant::now();
    let stats = Arc::new(Stats::default());
    let mut agent_sinks: HashMap<u64, Arc<tokio::sync::Mutex<Sink>>> = HashMap::new();
    for n in 0..agents {
        let username = format!("agent{n:03}");
        let (status, body) = signed(
            address,
            &admin,
            "POST",
            "/api/v1/admin/accounts",
            json!({"username": username, "password": PASSWORD, "roles": ["agent"], "max_concurrent": per_agent}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["account"]["id"].as_u64().unwrap();
        let session = login(address, &username, PASSWORD).await;
        let (status, body) = signed(
            address,
            &session,
            "POST",
            "/api/v1/me/password",
            json!({"old_password": PASSWORD, "new_password": FINAL_PASSWORD}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let mut request = format!("ws://{address}/ws/agent")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", session.cookie.parse().unwrap());
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let (sink, mut stream) = socket.split();
        agent_sinks.insert(id, Arc::new(tokio::sync::Mutex::new(sink)));
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                record(&stats, origin, &text);
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(pid);
    println!(
        "server with {agents} agents signed in, no conversation: {}",
        memory_line(pid)
    );

    // Conversations: each visitor starts one and opens its socket.
    let opening = Instant::now();
    let mut conversations: Vec<(String, u64, Arc<tokio::sync::Mutex<Sink>>)> = Vec::new();
    for n in 0..visitors {
        let (status, _, body) = http(
            address,
            "POST",
            "/api/v1/visitor/conversations",
            &[],
            Some(json!({"message": format!("访客{n}的问题：订单什么时候发货")})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        let id = body["conversation"]["id"].as_str().unwrap().to_string();
        let url = format!("ws://{address}/ws/visitor?token={token}");
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (sink, mut stream) = socket.split();
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(text))) = stream.next().await {
                record(&stats, origin, &text);
            }
        });
        conversations.push((id, 0, Arc::new(tokio::sync::Mutex::new(sink))));
    }
    println!(
        "opened {visitors} conversations and visitor sockets in {:.1} s",
        opening.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    // Who serves which conversation, from the history as the admin sees it.
    let mut served = 0;
    let mut page = 1;
    let mut agent_of: HashMap<String, u64> = HashMap::new();
    loop {
        let (status, body) = signed(
            address,
            &admin,
            "GET",
            &format!("/api/v1/conversations?state=active&per_page=100&page={page}"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let items = body["conversations"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        for item in items {
            let id = item["conversation"]["id"].as_str().unwrap().to_string();
            if let Some(agent) = item["conversation"]["agent"].as_u64() {
                agent_of.insert(id, agent);
                served += 1;
            }
        }
        page += 1;
    }
    for conversation in conversations.iter_mut() {
        conversation.1 = agent_of.get(&conversation.0).copied().unwrap_or(0);
    }
    let busy_rss = rss_kib(pid);
    println!("server with conversations open: {}", memory_line(pid));
    println!("active conversations with an agent: {served} of {visitors}");
    println!(
        "server RSS with {visitors} open conversations and sockets: {busy_rss} KiB; {:.1} KiB per conversation",
        (busy_rss.saturating_sub(idle_rss)) as f64 / visitors as f64
    );

    // Load: `rate` messages per second, alternating directions.
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = rate * seconds;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let load_started = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        let index = fastrand::usize(..conversations.len());
        let (conversation, agent, visitor_sink) = &conversations[index];
        let stamp = origin.elapsed().as_micros();
        let frame = if n % 2 == 0 || *agent == 0 {
            let frame = json!({"type": "send", "client_key": format!("v{n}"), "body": format!("bench {stamp} 请问我的订单到哪了")});
            (Arc::clone(visitor_sink), frame)
        } else {
            let frame = json!({"type": "send", "conversation": conversation, "client_key": format!("a{n}"), "body": format!("bench {stamp} 您好，正在为您查询")});
            (Arc::clone(&agent_sinks[agent]), frame)
        };
        let (sink, frame) = frame;
        tokio::spawn(async move {
            let _ = sink
                .lock()
                .await
                .send(Message::Text(frame.to_string().into()))
                .await;
        });
        sent += 1;
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut latencies = stats.latencies_us.lock().unwrap().clone();
    latencies.sort_unstable();
    let pick = |fraction: f64| -> u64 {
        if latencies.is_empty() {
            return 0;
        }
        latencies[((latencies.len() - 1) as f64 * fraction).round() as usize]
    };
    println!(
        "sent {sent} messages in {load_seconds:.1} s ({:.0}/s); {} message events received (each message reaches the other side and the sender's own socket)",
        sent as f64 / load_seconds,
        stats.received.load(Ordering::Relaxed)
    );
    println!(
        "delivery latency us: p50 {} p90 {} p99 {} max {}",
        pick(0.5),
        pick(0.9),
        pick(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    let target = 20_000;
    println!(
        "target p99 <= {} ms: {}",
        target / 1000,
        if pick(0.99) <= target {
            "MET"
        } else {
            "NOT MET"
        }
    );
    println!(
        "target RSS <= 64 KiB per conversation: {}",
        if (busy_rss.saturating_sub(idle_rss)) as f64 / visitors as f64 <= 64.0 {
            "MET"
        } else {
            "NOT MET"
        }
    );
    println!("final server memory: {}", memory_line(pid));
}
