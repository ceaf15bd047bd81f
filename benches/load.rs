//! The desk under load (issue 12), no libtest harness:
//!
//! - `cargo bench --bench load -- day [VISITORS=1000] [AGENTS=40] [MAX=5] [RATE=100] [SECONDS=30]`:
//!   AGENTS agents with `max_concurrent` MAX serve AGENTS×MAX of the VISITORS conversations, the rest
//!   queue; then random visitors (served and queued alike) send RATE messages/s in total for SECONDS.
//! - `cargo bench --bench load -- burst [VISITORS=200] [EACH=5]`: VISITORS/5 agents (max 5) serve every
//!   visitor; then every visitor sends EACH messages at the same moment.
//!
//! `--postgres URL` runs the server on PostgreSQL (a fresh schema of the database at URL, dropped
//! afterwards) instead of the embedded store; `--both URL` runs the scenario on sled, then on
//! PostgreSQL, and ends with the two side by side (ack p50/p99, messages/s, server CPU).
//!
//! `--no-suggestions` starts the server with `KEFU_CONVERSATIONS__PUSH_SUGGESTIONS=false` (a server
//! without that setting refuses to start with it, so it is only passed when asked). `KEFU_BIN` names the
//! `kefu` binary to start (default: the one cargo built with the bench); `LOAD_CLIENT_WORKERS` the
//! client's tokio workers (default 1).
//!
//! `kefu serve` runs as a child process on loopback with fresh folders and the starter `kb/`. Every
//! visitor message carries a `client_key`; the figures are taken on the client:
//! - ack latency: the frame handed to the visitor socket → the `ack` with that `client_key`;
//! - suggestion latency (served conversations): the same send time → the `suggestions` frame on the
//!   agent socket for that conversation and the message's `seq` (from the ack); "covered" also accepts a
//!   frame for a newer message of the conversation (a server that coalesces suggestion work answers the
//!   newest message only);
//! - delivery to the agent: the send time → the `message` frame on the serving agent's socket;
//! - lost: sent but never acked; duplicated: the same (conversation, seq) `message` frame twice on one
//!   socket; reordered: a `message` frame with a smaller seq than one already seen on that socket;
//! - the server's threads and RSS (`/proc/PID/status`, sampled every 100 ms) and CPU (`utime + stime`
//!   of `/proc/PID/stat`) during the load; the client's own CPU and how late its send schedule ran, to
//!   show whether the client kept up.
//!
//! Agents greet each conversation as soon as it is assigned, as a real agent would; that also stops the
//! unanswered-assignment timer from moving conversations during the run. The idle timers (visitor idle
//! end, agent auto-away, queue wait limit) are set to hours, since opening the conversations alone can
//! take longer than them.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Targets of issue 12 (section "Load").
const ACK_P99_TARGET_US: u64 = 50_000;
const SUGGESTION_P99_TARGET_US: u64 = 300_000;
const RSS_TARGET_KIB: u64 = 600 * 1024;

/// How long to wait for outstanding acks and suggestions after the last send.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// The drain ends early once every message is acked and no frame arrived for this long.
const DRAIN_QUIET: Duration = Duration::from_secs(3);

/// Customer questions as visitors type them; each message picks one and sometimes a greeting or an
/// order number, so the suggestion queries vary.
const QUESTIONS: &[&str] = &[
    "退款多久到账？",
    "怎么开发票？",
    "订单什么时候发货？",
    "耳机没声音怎么办",
    "我的快递到哪了，三天了还没更新物流",
    "发票抬头写错了，能重新开吗",
    "可以开增值税专用发票吗？公司报销要用",
    "退货运费谁出？",
    "七天无理由退货怎么申请",
    "付款失败了，钱扣了订单没显示",
    "优惠券怎么用不了",
    "优惠券过期了还能退回吗",
    "会员积分怎么兑换",
    "收货地址填错了，能改吗",
    "我想取消订单",
    "商品缺货什么时候补货",
    "预售商品什么时候发货",
    "订单被拆成两个包裹了，是不是少发了",
    "快递丢件了怎么办",
    "签收的时候发现外包装破了",
    "换货要多久",
    "只退款不退货可以吗",
    "重复扣款了，怎么退回来",
    "信用卡分期有手续费吗",
    "支持货到付款吗",
    "运费怎么算的",
    "偏远地区能配送吗",
    "登录不上去，提示密码错误",
    "忘记密码了怎么重置",
    "手机号换了，怎么改绑定手机",
    "怎么注销账号",
    "商品有质量问题，怎么保修",
    "保修需要发票吗",
    "满减活动怎么算",
    "PLUS会员怎么开通，有什么权益",
    "拒收了包裹，退款什么时候到",
    "极速退款是什么意思",
    "退货退款的流程是什么",
    "耳机左边没声音，右边正常",
    "充电器充不进电，刚买的",
    "电子发票在哪里下载",
    "退货的商品可以开发票吗",
];

const GREETINGS: &[&str] = &["", "", "", "你好，", "在吗？", "客服你好，", "麻烦问一下，"];

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;
type SharedSink = Arc<tokio::sync::Mutex<Sink>>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    Day,
    Burst,
}

struct Options {
    scenario: Scenario,
    numbers: Vec<usize>,
    push_suggestions: bool,
}

/// Where the server keeps its records.
#[derive(Debug, Clone)]
enum StoreChoice {
    Sled,
    /// The server URL; each run makes a schema of its own there.
    Postgres(String),
}

impl StoreChoice {
    fn name(&self) -> &'static str {
        match self {
            StoreChoice::Sled => "sled",
            StoreChoice::Postgres(_) => "postgres",
        }
    }
}

/// The figures the side-by-side table compares.
struct Summary {
    ack_p50_us: u64,
    ack_p99_us: u64,
    messages_per_second: f64,
    server_cpu_percent: f64,
    rss_peak_kib: u64,
    lost: usize,
}

/// A PostgreSQL schema for one run, dropped with it.
struct BenchSchema {
    server_url: String,
    name: String,
}

impl BenchSchema {
    fn create(server_url: &str) -> BenchSchema {
        let name = format!("kefu_bench_{}", std::process::id());
        let schema = BenchSchema {
            server_url: server_url.to_string(),
            name,
        };
        schema.execute(&format!(
            "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
            schema.name
        ));
        schema
    }

    fn url(&self) -> String {
        let separator = if self.server_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options=-c%20search_path%3D{}",
            self.server_url, self.name
        )
    }

    /// On a thread of its own: the synchronous client refuses to run inside the async runtime.
    fn execute(&self, sql: &str) {
        let (url, sql) = (self.server_url.clone(), sql.to_string());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|error| panic!("connecting to PostgreSQL at {url}: {error}"));
            client.batch_execute(&sql).unwrap();
        })
        .join()
        .unwrap();
    }
}

impl Drop for BenchSchema {
    fn drop(&mut self) {
        self.execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn main() {
    let mut scenario = None;
    let mut numbers = Vec::new();
    let mut push_suggestions = true;
    let mut stores = vec![StoreChoice::Sled];
    let mut arguments = std::env::args().skip(1);
    // `cargo bench` passes `--bench`; other flags are ignored.
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "day" => scenario = Some(Scenario::Day),
            "burst" => scenario = Some(Scenario::Burst),
            "--no-suggestions" => push_suggestions = false,
            "--postgres" => {
                let url = arguments.next().expect("--postgres URL");
                stores = vec![StoreChoice::Postgres(url)];
            }
            "--both" => {
                let url = arguments.next().expect("--both URL");
                stores = vec![StoreChoice::Sled, StoreChoice::Postgres(url)];
            }
            other => {
                if let Ok(number) = other.parse() {
                    numbers.push(number);
                }
            }
        }
    }
    let Some(scenario) = scenario else {
        eprintln!(
            "usage: load day [VISITORS] [AGENTS] [MAX] [RATE] [SECONDS] [--no-suggestions] [--postgres URL | --both URL]\n       load burst [VISITORS] [EACH] [--no-suggestions] [--postgres URL | --both URL]"
        );
        std::process::exit(2);
    };
    let workers = std::env::var("LOAD_CLIENT_WORKERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap();
    let options = Options {
        scenario,
        numbers,
        push_suggestions,
    };
    let mut summaries = Vec::new();
    for store in &stores {
        summaries.push((
            store.name(),
            runtime.block_on(run(&options, store, workers)),
        ));
    }
    if summaries.len() > 1 {
        println!("=== side by side ===");
        println!("| store | ack p50 | ack p99 | messages/s | server CPU | peak RSS | lost |");
        println!("|---|---|---|---|---|---|---|");
        for (name, summary) in &summaries {
            println!(
                "| {name} | {} | {} | {:.1} | {:.0}% of one core | {:.0} MiB | {} |",
                ms(summary.ack_p50_us),
                ms(summary.ack_p99_us),
                summary.messages_per_second,
                summary.server_cpu_percent,
                mib(summary.rss_peak_kib),
                summary.lost
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server process and /proc

struct Server {
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    _root: tempfile::TempDir,
    /// Dropped after `Drop for Server` stopped the process.
    _schema: Option<BenchSchema>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kefu_binary() -> PathBuf {
    std::env::var_os("KEFU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kefu")))
}

fn start_server(push_suggestions: bool, store: &StoreChoice) -> Server {
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("kb");
    let log = root.path().join("server.log");
    let mut command = Command::new(kefu_binary());
    command
        .args(["serve", "--listen", &address.to_string()])
        .args(["--kb", kb.to_str().unwrap()])
        .args(["--index", root.path().join("index").to_str().unwrap()])
        .args(["--data", root.path().join("data").to_str().unwrap()])
        .env("KEFU_ADMIN_PASSWORD", ADMIN_INITIAL)
        .env("KEFU_SEARCH__WATCH", "false")
        // The benchmark signs every agent in, and starts every visitor, from one address.
        .env("KEFU_ACCOUNTS__LOGIN_ATTEMPTS_PER_MINUTE", "100000")
        .env("KEFU_ACCOUNTS__VISITOR_TOKENS_PER_MINUTE", "100000")
        // Opening a thousand conversations can take minutes while the queue grows: the desk's idle
        // timers (visitors silent for 10 minutes are ended, agents idle for 10 minutes go away, queued
        // visitors are offered to leave a message after 5) must not change who serves what meanwhile.
        .env("KEFU_ACCOUNTS__AUTO_AWAY_MINUTES", "0")
        .env("KEFU_CONVERSATIONS__VISITOR_IDLE_REMIND_MINS", "600")
        .env("KEFU_CONVERSATIONS__VISITOR_IDLE_END_MINS", "600")
        .env("KEFU_CONVERSATIONS__QUEUE_WAIT_LIMIT_MINS", "600")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if !push_suggestions {
        command.env("KEFU_CONVERSATIONS__PUSH_SUGGESTIONS", "false");
    }
    let schema = match store {
        StoreChoice::Sled => None,
        StoreChoice::Postgres(url) => {
            let schema = BenchSchema::create(url);
            command
                .env("KEFU_STORAGE__BACKEND", "postgres")
                .env("KEFU_STORAGE__POSTGRES_URL", schema.url());
            Some(schema)
        }
    };
    let child = command.spawn().expect("starting kefu serve");
    let mut server = Server {
        child,
        address,
        log,
        _root: root,
        _schema: schema,
    };
    // kefu listens before it has opened the index; every route but `/healthz` answers `503 starting`
    // until `/readyz` answers 200.
    let started = Instant::now();
    while !is_ready(address) {
        if started.elapsed() > Duration::from_secs(30) || server.child.try_wait().unwrap().is_some()
        {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            panic!("kefu serve did not become ready; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A `/proc/PID/status` number (`VmRSS:` and `VmHWM:` in KiB, `Threads:`).
fn status_value(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process (`self` for this one).
fn cpu_seconds(pid: &str, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name is in parentheses and may hold spaces; fields count on from the last `)`,
    // where the state is field 3, utime 14 and stime 15.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |field: usize| -> f64 {
        fields
            .get(field - 3)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(14) + ticks(15)) / ticks_per_second
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Samples the server's thread count and RSS every 100 ms until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(u64, u64)>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peak_threads = 0;
            let mut peak_rss = 0;
            while !stopped.load(Ordering::Relaxed) {
                peak_threads = peak_threads.max(status_value(pid, "Threads:"));
                peak_rss = peak_rss.max(status_value(pid, "VmRSS:"));
                std::thread::sleep(Duration::from_millis(100));
            }
            (peak_threads, peak_rss)
        });
        Sampler { stop, handle }
    }

    /// Peak threads and peak RSS (KiB) seen.
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

// ---------------------------------------------------------------------------------------------
// What the sockets saw

/// A visitor message handed to its socket.
struct Sent {
    conversation: String,
    sent_us: u64,
}

/// Frames of interest, with their arrival time in µs since `origin`.
struct Observations {
    origin: Instant,
    sends: Mutex<HashMap<String, Sent>>,
    /// `client_key`, seq, arrival.
    acks: Mutex<Vec<(String, u64, u64)>>,
    /// Conversation, seq, arrival: `suggestions` frames on agent sockets.
    suggestions: Mutex<Vec<(String, u64, u64)>>,
    /// Conversation, seq, arrival: visitor `message` frames on agent sockets.
    agent_deliveries: Mutex<Vec<(String, u64, u64)>>,
    /// Conversation → serving agent, from `assigned` frames.
    assigned: Mutex<HashMap<String, u64>>,
    errors: Mutex<Vec<String>>,
    error_count: AtomicU64,
    /// `client_key`s of the `error` frames: refused sends, not lost ones.
    refused: Mutex<HashSet<String>>,
    /// `ended` frames on agent sockets.
    ended: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    frames: AtomicU64,
    last_frame_us: AtomicU64,
}

impl Observations {
    fn new() -> Observations {
        Observations {
            origin: Instant::now(),
            sends: Mutex::default(),
            acks: Mutex::default(),
            suggestions: Mutex::default(),
            agent_deliveries: Mutex::default(),
            assigned: Mutex::default(),
            errors: Mutex::default(),
            error_count: AtomicU64::new(0),
            refused: Mutex::default(),
            ended: AtomicU64::new(0),
            duplicated: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            last_frame_us: AtomicU64::new(0),
        }
    }

    fn now_us(&self) -> u64 {
        self.origin.elapsed().as_micros() as u64
    }
}

/// The agent a socket belongs to, so that it can greet what it is assigned.
struct AgentSide {
    id: u64,
    sink: SharedSink,
}

/// Reads one socket until it closes, recording what `Observations` keeps. Each socket checks its own
/// `message` frames for duplicates and order.
async fn read_socket(
    mut stream: futures_util::stream::SplitStream<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    >,
    observations: Arc<Observations>,
    agent: Option<AgentSide>,
) {
    // Conversation → (highest seq seen, every seq seen).
    let mut seen: HashMap<String, (u64, HashSet<u64>)> = HashMap::new();
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else {
            continue;
        };
        let now = observations.now_us();
        observations.frames.fetch_add(1, Ordering::Relaxed);
        observations.last_frame_us.fetch_max(now, Ordering::Relaxed);
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let conversation = value["conversation"].as_str().unwrap_or("").to_string();
        match value["type"].as_str().unwrap_or("") {
            "message" => {
                let seq = value["message"]["seq"].as_u64().unwrap_or(0);
                let entry = seen.entry(conversation.clone()).or_default();
                if !entry.1.insert(seq) {
                    observations.duplicated.fetch_add(1, Ordering::Relaxed);
                }
                if seq < entry.0 {
                    observations.reordered.fetch_add(1, Ordering::Relaxed);
                }
                entry.0 = entry.0.max(seq);
                if agent.is_some() && value["message"]["kind"] == "visitor" {
                    observations
                        .agent_deliveries
                        .lock()
                        .unwrap()
                        .push((conversation, seq, now));
                }
            }
            // Visitor acks only: the agents' greetings are not part of the load.
            "ack" if agent.is_none() => {
                if let Some(key) = value["client_key"].as_str() {
                    let seq = value["seq"].as_u64().unwrap_or(0);
                    observations
                        .acks
                        .lock()
                        .unwrap()
                        .push((key.to_string(), seq, now));
                }
            }
            "suggestions" => {
                let seq = value["seq"].as_u64().unwrap_or(0);
                observations
                    .suggestions
                    .lock()
                    .unwrap()
                    .push((conversation, seq, now));
            }
            "assigned" => {
                let Some(agent) = &agent else {
                    continue;
                };
                let id = value["conversation"]["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                observations
                    .assigned
                    .lock()
                    .unwrap()
                    .insert(id.clone(), agent.id);
                let greeting = json!({"type": "send", "conversation": id, "client_key": format!("greet-{id}"), "body": "您好，我是客服，很高兴为您服务，请问有什么可以帮您？"});
                let sink = Arc::clone(&agent.sink);
                tokio::spawn(async move {
                    let _ = sink
                        .lock()
                        .await
                        .send(Message::Text(greeting.to_string().into()))
                        .await;
                });
            }
            "ended" => {
                observations.ended.fetch_add(1, Ordering::Relaxed);
            }
            "error" => {
                observations.error_count.fetch_add(1, Ordering::Relaxed);
                if let Some(key) = value["client_key"].as_str() {
                    observations.refused.lock().unwrap().insert(key.to_string());
                }
                let mut errors = observations.errors.lock().unwrap();
                if errors.len() < 5 {
                    errors.push(text.to_string());
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Setting up the desk

struct Visitor {
    conversation: String,
    sink: SharedSink,
}

async fn connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    // Browsers send each frame at once (TCP_NODELAY); so does this client.
    let (socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
        .await
        .unwrap();
    socket
}

/// Signs the admin in (and out of the queue) and `agents` agents with `max_concurrent`, each with an
/// open `/ws/agent`.
async fn open_agents(
    address: SocketAddr,
    agents: usize,
    max_concurrent: usize,
    observations: &Arc<Observations>,
) {
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
    for n in 0..agents {
        let username = format!("agent{n:03}");
        let (status, body) = signed(
            address,
            &admin,
            "POST",
            "/api/v1/admin/accounts",
            json!({"username": username, "password": PASSWORD, "roles": ["agent"], "max_concurrent": max_concurrent}),
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
        let (sink, stream) = connect(request).await.split();
        let sink = Arc::new(tokio::sync::Mutex::new(sink));
        let agent = AgentSide { id, sink };
        tokio::spawn(read_socket(stream, Arc::clone(observations), Some(agent)));
    }
}

/// Starts `visitors` conversations one after the other, each with its `/ws/visitor`; prints how long
/// starting took at the beginning and at the end (the queue grows meanwhile).
async fn open_visitors(
    address: SocketAddr,
    visitors: usize,
    observations: &Arc<Observations>,
) -> Vec<Visitor> {
    let opening = Instant::now();
    let mut start_us = Vec::with_capacity(visitors);
    let mut opened = Vec::with_capacity(visitors);
    for n in 0..visitors {
        let started = Instant::now();
        let (status, _, body) = http(
            address,
            "POST",
            "/api/v1/visitor/conversations",
            &[],
            Some(json!({"message": question(n)})),
        )
        .await;
        start_us.push(started.elapsed().as_micros() as u64);
        assert_eq!(status, 201, "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        let conversation = body["conversation"]["id"].as_str().unwrap().to_string();
        let url = format!("ws://{address}/ws/visitor?token={token}");
        let (sink, stream) = connect(url.into_client_request().unwrap()).await.split();
        tokio::spawn(read_socket(stream, Arc::clone(observations), None));
        opened.push(Visitor {
            conversation,
            sink: Arc::new(tokio::sync::Mutex::new(sink)),
        });
    }
    let seconds = opening.elapsed().as_secs_f64();
    let window = visitors.min(100);
    let first = Stats::of(start_us[..window].to_vec());
    let last = Stats::of(start_us[visitors - window..].to_vec());
    println!(
        "opened {visitors} conversations and visitor sockets in {seconds:.1} s ({:.0}/s); start latency, first {window}: p50 {} p99 {}; last {window}: p50 {} p99 {}",
        visitors as f64 / seconds,
        ms(first.p50),
        ms(first.p99),
        ms(last.p50),
        ms(last.p99)
    );
    opened
}

/// Waits until `expected` conversations are assigned (or 20 s), then lets the greetings settle.
async fn wait_for_assignments(observations: &Observations, expected: usize) -> usize {
    let waiting = Instant::now();
    while observations.assigned.lock().unwrap().len() < expected
        && waiting.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    observations.assigned.lock().unwrap().len()
}

fn question(n: usize) -> String {
    let greeting = GREETINGS[fastrand::usize(..GREETINGS.len())];
    let question = QUESTIONS[fastrand::usize(..QUESTIONS.len())];
    if fastrand::u8(..4) == 0 {
        format!(
            "{greeting}{question}订单号{}",
            20261201000000u64 + n as u64 * 7
        )
    } else {
        format!("{greeting}{question}")
    }
}

/// Sends one visitor message, stamping its send time once the socket is ours.
async fn send_visitor_message(
    observations: Arc<Observations>,
    visitor_sink: SharedSink,
    conversation: String,
    client_key: String,
    body: String,
) {
    let frame = json!({"type": "send", "client_key": client_key, "body": body}).to_string();
    let mut sink = visitor_sink.lock().await;
    let sent_us = observations.now_us();
    observations.sends.lock().unwrap().insert(
        client_key,
        Sent {
            conversation,
            sent_us,
        },
    );
    let _ = sink.send(Message::Text(frame.into())).await;
}

/// Waits until every message is acked and the sockets have been quiet for a while (suggestions
/// arrive after the ack), or `DRAIN_LIMIT`.
async fn drain(observations: &Observations, sent: usize) {
    let draining = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let acked = observations.acks.lock().unwrap().len();
        let quiet_us = observations
            .now_us()
            .saturating_sub(observations.last_frame_us.load(Ordering::Relaxed));
        if (acked >= sent && quiet_us >= DRAIN_QUIET.as_micros() as u64)
            || draining.elapsed() > DRAIN_LIMIT
        {
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

struct Stats {
    count: usize,
    p50: u64,
    p90: u64,
    p99: u64,
    max: u64,
}

impl Stats {
    fn of(mut values: Vec<u64>) -> Stats {
        values.sort_unstable();
        let pick = |fraction: f64| -> u64 {
            if values.is_empty() {
                return 0;
            }
            values[((values.len() - 1) as f64 * fraction).round() as usize]
        };
        Stats {
            count: values.len(),
            p50: pick(0.5),
            p90: pick(0.9),
            p99: pick(0.99),
            max: values.last().copied().unwrap_or(0),
        }
    }

    fn line(&self) -> String {
        format!(
            "n {} p50 {} p90 {} p99 {} max {}",
            self.count,
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max)
        )
    }
}

fn ms(micros: u64) -> String {
    format!("{:.1} ms", micros as f64 / 1000.0)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "NOT MET"
    }
}

/// What the load measured, with the server figures around it.
struct Measured {
    ack: Stats,
    lost: usize,
    suggestion_exact: Stats,
    suggestion_covered: Stats,
    served_messages: usize,
    duplicated: u64,
}

fn analyse(observations: &Observations) -> Measured {
    let sends = observations.sends.lock().unwrap();
    let assigned = observations.assigned.lock().unwrap();
    let mut acked: HashMap<&str, (u64, u64)> = HashMap::new();
    let mut duplicate_acks = 0;
    let acks = observations.acks.lock().unwrap();
    for (key, seq, at) in acks.iter() {
        if !sends.contains_key(key.as_str()) {
            continue; // greetings
        }
        if acked.insert(key.as_str(), (*seq, *at)).is_some() {
            duplicate_acks += 1;
        }
    }
    // First `suggestions` frame per (conversation, seq), and per conversation sorted by seq.
    let mut first_suggestion: HashMap<(&str, u64), u64> = HashMap::new();
    let suggestions = observations.suggestions.lock().unwrap();
    for (conversation, seq, at) in suggestions.iter() {
        let entry = first_suggestion
            .entry((conversation.as_str(), *seq))
            .or_insert(*at);
        *entry = (*entry).min(*at);
    }
    let mut by_conversation: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
    for ((conversation, seq), at) in &first_suggestion {
        by_conversation
            .entry(conversation)
            .or_default()
            .push((*seq, *at));
    }
    let mut first_delivery: HashMap<(&str, u64), u64> = HashMap::new();
    let deliveries = observations.agent_deliveries.lock().unwrap();
    for (conversation, seq, at) in deliveries.iter() {
        first_delivery
            .entry((conversation.as_str(), *seq))
            .or_insert(*at);
    }

    let mut ack_us = Vec::new();
    let mut served_ack_us = Vec::new();
    let mut queued_ack_us = Vec::new();
    let mut exact_us = Vec::new();
    let mut covered_us = Vec::new();
    let mut delivery_us = Vec::new();
    let refused_keys = observations.refused.lock().unwrap();
    let mut lost = 0;
    let mut refused = 0;
    let mut served_messages = 0;
    let mut served_acked = 0;
    let mut undelivered = 0;
    for (key, sent) in sends.iter() {
        let Some((seq, acked_at)) = acked.get(key.as_str()) else {
            if refused_keys.contains(key) {
                refused += 1;
            } else {
                lost += 1;
            }
            continue;
        };
        let latency = acked_at.saturating_sub(sent.sent_us);
        ack_us.push(latency);
        if !assigned.contains_key(&sent.conversation) {
            queued_ack_us.push(latency);
            continue;
        }
        served_ack_us.push(latency);
        served_messages += 1;
        served_acked += 1;
        let conversation = sent.conversation.as_str();
        match first_delivery.get(&(conversation, *seq)) {
            Some(at) => delivery_us.push(at.saturating_sub(sent.sent_us)),
            None => undelivered += 1,
        }
        if let Some(at) = first_suggestion.get(&(conversation, *seq)) {
            exact_us.push(at.saturating_sub(sent.sent_us));
        }
        let covering = by_conversation
            .get(conversation)
            .into_iter()
            .flatten()
            .filter(|(frame_seq, _)| frame_seq >= seq)
            .map(|(_, at)| *at)
            .min();
        if let Some(at) = covering {
            covered_us.push(at.saturating_sub(sent.sent_us));
        }
    }
    let ack = Stats::of(ack_us);
    let suggestion_exact = Stats::of(exact_us);
    let suggestion_covered = Stats::of(covered_us);
    let delivery = Stats::of(delivery_us);
    let duplicated = observations.duplicated.load(Ordering::Relaxed);
    println!(
        "ack latency (send -> ack on the visitor socket): {}",
        ack.line()
    );
    println!(
        "  served conversations: {}; queued: {}",
        Stats::of(served_ack_us).line(),
        Stats::of(queued_ack_us).line()
    );
    println!(
        "lost (sent, neither acked nor refused): {lost}; refused with an error frame: {refused}; duplicated acks: {duplicate_acks}; error frames: {}; conversations ended under the agents: {}",
        observations.error_count.load(Ordering::Relaxed),
        observations.ended.load(Ordering::Relaxed)
    );
    for error in observations.errors.lock().unwrap().iter() {
        println!("  error frame: {error}");
    }
    println!(
        "messages in served conversations: {served_messages} ({served_acked} acked); delivered to the agent socket: {} ({undelivered} not delivered): {}",
        delivery.count,
        delivery.line()
    );
    println!(
        "suggestions for that very message: {} of {served_messages}: {}",
        suggestion_exact.count,
        suggestion_exact.line()
    );
    println!(
        "suggestions for that message or a newer one of the conversation: {} of {served_messages}: {}",
        suggestion_covered.count,
        suggestion_covered.line()
    );
    println!(
        "suggestions frames received: {}; message frames duplicated on a socket: {duplicated}; reordered on a socket (seq below one already seen): {}",
        suggestions.len(),
        observations.reordered.load(Ordering::Relaxed)
    );
    Measured {
        ack,
        lost: lost + refused,
        suggestion_exact,
        suggestion_covered,
        served_messages,
        duplicated,
    }
}

fn server_log_summary(server: &Server) {
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    println!("server log (RUST_LOG=warn): {} lines", lines.len());
    for line in lines.iter().take(3) {
        let shown: String = line.chars().take(300).collect();
        println!("  {shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn run(options: &Options, store: &StoreChoice, workers: usize) -> Summary {
    let ticks = clock_ticks_per_second();
    let server = start_server(options.push_suggestions, store);
    let address = server.address;
    let pid = server.child.id();
    let number =
        |index: usize, default: usize| options.numbers.get(index).copied().unwrap_or(default);
    let (visitors, agents, max_concurrent) = match options.scenario {
        Scenario::Day => (number(0, 1000), number(1, 40), number(2, 5)),
        Scenario::Burst => {
            let visitors = number(0, 200);
            (visitors, (visitors / 5).max(1), 5)
        }
    };
    match options.scenario {
        Scenario::Day => println!(
            "=== load day: {visitors} visitors, {agents} agents x max {max_concurrent}, {} msg/s for {} s, suggestions {} ===",
            number(3, 100),
            number(4, 30),
            if options.push_suggestions { "on" } else { "off" }
        ),
        Scenario::Burst => println!(
            "=== load burst: {visitors} visitors each sending {} at once, {agents} agents x max 5, suggestions {} ===",
            number(1, 5),
            if options.push_suggestions { "on" } else { "off" }
        ),
    }
    println!(
        "server: {} serve on {}, pid {pid} on {address}; client: this process, {workers} tokio worker(s); load average at start {}",
        kefu_binary().display(),
        store.name(),
        load_average()
    );
    let observations = Arc::new(Observations::new());
    open_agents(address, agents, max_concurrent, &observations).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!(
        "server with {agents} agents signed in: RSS {:.1} MiB, {} threads",
        mib(status_value(pid, "VmRSS:")),
        status_value(pid, "Threads:")
    );
    let cpu_opening = cpu_seconds(&pid.to_string(), ticks);
    let visitors_open = open_visitors(address, visitors, &observations).await;
    let expected = visitors.min(agents * max_concurrent);
    let served = wait_for_assignments(&observations, expected).await;
    println!(
        "conversations served: {served} (expected {expected}), queued: {}; server CPU for the opening {:.1} s",
        visitors - served,
        cpu_seconds(&pid.to_string(), ticks) - cpu_opening
    );
    let rss_before = status_value(pid, "VmRSS:");
    let threads_before = status_value(pid, "Threads:");
    println!(
        "before the load: server RSS {:.1} MiB, {threads_before} threads; load average {}",
        mib(rss_before),
        load_average()
    );

    let sampler = Sampler::start(pid);
    let server_cpu_start = cpu_seconds(&pid.to_string(), ticks);
    let client_cpu_start = cpu_seconds("self", ticks);
    let load_started = Instant::now();
    let sent = match options.scenario {
        Scenario::Day => {
            day_load(&observations, &visitors_open, number(3, 100), number(4, 30)).await
        }
        Scenario::Burst => burst_load(&observations, &visitors_open, number(1, 5)).await,
    };
    let sending_seconds = load_started.elapsed().as_secs_f64();
    let client_cpu_sending = cpu_seconds("self", ticks) - client_cpu_start;
    let sending_end_us = observations.now_us();
    drain(&observations, sent).await;
    let last_frame_after = observations
        .last_frame_us
        .load(Ordering::Relaxed)
        .saturating_sub(sending_end_us) as f64
        / 1e6;
    let server_cpu = cpu_seconds(&pid.to_string(), ticks) - server_cpu_start;
    let (peak_threads, peak_rss) = sampler.finish();
    let rss_after = status_value(pid, "VmRSS:");
    let load_seconds = sending_seconds + last_frame_after;
    println!(
        "after the load: server RSS {:.1} MiB (peak sampled {:.1} MiB, VmHWM {:.1} MiB), threads {} now, peak {peak_threads}; load average {}",
        mib(rss_after),
        mib(peak_rss),
        mib(status_value(pid, "VmHWM:")),
        status_value(pid, "Threads:"),
        load_average()
    );
    println!(
        "server CPU during the load: {server_cpu:.1} s over {load_seconds:.1} s ({:.0}% of one core; sending {sending_seconds:.1} s, last frame {:.1} s after); client CPU while sending {client_cpu_sending:.1} s ({:.0}% of one core)",
        100.0 * server_cpu / load_seconds,
        last_frame_after,
        100.0 * client_cpu_sending / sending_seconds.max(0.001)
    );
    let measured = analyse(&observations);
    server_log_summary(&server);
    let rss_peak = peak_rss.max(rss_after);
    println!("targets (issue 12):");
    println!(
        "  ack p99 <= 50 ms: {} ({})",
        verdict(measured.ack.p99 <= ACK_P99_TARGET_US && measured.ack.count > 0),
        ms(measured.ack.p99)
    );
    if options.push_suggestions {
        // Every message of a served conversation must be answered by suggestions for it or a newer one.
        let all_covered = measured.suggestion_covered.count == measured.served_messages;
        println!(
            "  suggestion p99 <= 300 ms: exact {} ({}, {} of {}), covered {} ({}, {} of {})",
            verdict(
                measured.suggestion_exact.p99 <= SUGGESTION_P99_TARGET_US
                    && measured.suggestion_exact.count == measured.served_messages
            ),
            ms(measured.suggestion_exact.p99),
            measured.suggestion_exact.count,
            measured.served_messages,
            verdict(measured.suggestion_covered.p99 <= SUGGESTION_P99_TARGET_US && all_covered),
            ms(measured.suggestion_covered.p99),
            measured.suggestion_covered.count,
            measured.served_messages
        );
    }
    println!(
        "  RSS <= 600 MiB: {} (peak {:.1} MiB)",
        verdict(rss_peak <= RSS_TARGET_KIB),
        mib(rss_peak)
    );
    println!(
        "  0 lost: {} ({})",
        verdict(measured.lost == 0),
        measured.lost
    );
    println!(
        "  0 duplicated: {} ({})",
        verdict(measured.duplicated == 0),
        measured.duplicated
    );
    Summary {
        ack_p50_us: measured.ack.p50,
        ack_p99_us: measured.ack.p99,
        messages_per_second: sent as f64 / sending_seconds.max(0.001),
        server_cpu_percent: 100.0 * server_cpu / load_seconds,
        rss_peak_kib: rss_peak,
        lost: measured.lost,
    }
}

/// `rate` messages/s in total for `seconds`, each from a random visitor (served or queued).
/// Returns how many were sent.
async fn day_load(
    observations: &Arc<Observations>,
    visitors: &[Visitor],
    rate: usize,
    seconds: usize,
) -> usize {
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let total = rate * seconds;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut lateness_us = Vec::with_capacity(total);
    for n in 0..total {
        ticker.tick().await;
        let due = interval * n as u32;
        lateness_us.push(started.elapsed().saturating_sub(due).as_micros() as u64);
        let visitor = &visitors[fastrand::usize(..visitors.len())];
        tokio::spawn(send_visitor_message(
            Arc::clone(observations),
            Arc::clone(&visitor.sink),
            visitor.conversation.clone(),
            format!("m{n}"),
            question(n),
        ));
    }
    let seconds_taken = started.elapsed().as_secs_f64();
    let lateness = Stats::of(lateness_us);
    println!(
        "sent {total} messages in {seconds_taken:.2} s: achieved {:.1} msg/s (asked {rate}); send schedule lateness p50 {} p99 {} max {}",
        total as f64 / seconds_taken,
        ms(lateness.p50),
        ms(lateness.p99),
        ms(lateness.max)
    );
    total
}

/// Every visitor sends `each` messages at the same moment. Returns how many were sent.
async fn burst_load(observations: &Arc<Observations>, visitors: &[Visitor], each: usize) -> usize {
    let barrier = Arc::new(tokio::sync::Barrier::new(visitors.len() + 1));
    let mut tasks = Vec::with_capacity(visitors.len());
    for (index, visitor) in visitors.iter().enumerate() {
        let barrier = Arc::clone(&barrier);
        let observations = Arc::clone(observations);
        let sink = Arc::clone(&visitor.sink);
        let conversation = visitor.conversation.clone();
        tasks.push(tokio::spawn(async move {
            let bodies: Vec<String> = (0..each).map(|k| question(index * each + k)).collect();
            barrier.wait().await;
            for (k, body) in bodies.into_iter().enumerate() {
                send_visitor_message(
                    Arc::clone(&observations),
                    Arc::clone(&sink),
                    conversation.clone(),
                    format!("b{index}-{k}"),
                    body,
                )
                .await;
            }
        }));
    }
    let started = Instant::now();
    barrier.wait().await;
    for task in tasks {
        task.await.unwrap();
    }
    let total = visitors.len() * each;
    println!(
        "sent {total} messages ({} visitors x {each}) in {} on the client",
        visitors.len(),
        ms(started.elapsed().as_micros() as u64)
    );
    total
}
