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
//! `--cluster NATS_URL NODES` (with `--postgres URL`) runs NODES `kefu serve` processes as one cluster
//! (docs/ARCHITECTURE.md, "Several nodes") over one fresh schema and the NATS server at NATS_URL, with a
//! cluster name of its own: node 1 starts first and becomes the desk leader (the bench waits until
//! `kefu_desk_lease` names it and desk requests through it no longer answer `503 no_leader`), then the
//! others. The clients are spread round-robin, as behind a load
//! balancer without stickiness: visitor i starts its conversation and opens its socket on node
//! i % NODES, agent j signs in and opens its socket on node j % NODES (the admin uses node 1). Server
//! CPU is the sum of every process; RSS and threads are reported per process; acks are also split by
//! whether the visitor reached the leader directly or through a follower, and deliveries to the agent
//! by how many followers the message crossed. `--compare-cluster NATS_URL NODES` (with
//! `--postgres URL`) runs the scenario on one node on PostgreSQL, then on the cluster, and ends with
//! both side by side and the cross-node cost. The cluster's JetStream streams and buckets (their
//! names hold the cluster name) are deleted afterwards.
//!
//! `--no-suggestions` starts the server with `KEFU_CONVERSATIONS__PUSH_SUGGESTIONS=false` (a server
//! without that setting refuses to start with it, so it is only passed when asked). `KEFU_BIN` names the
//! `kefu` binary to start (default: the one cargo built with the bench); `LOAD_CLIENT_WORKERS` the
//! client's tokio workers (default 1); `LOAD_KEEP_LOGS` a folder where each server's log is copied
//! when it stops (otherwise it goes with its temporary folder).
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

/// Where the server keeps its records, and how many servers run.
#[derive(Debug, Clone)]
enum StoreChoice {
    Sled,
    /// The server URL; each run makes a schema of its own there.
    Postgres(String),
    /// `nodes` servers over one schema of the PostgreSQL at `postgres` and the NATS at `nats`.
    Cluster {
        postgres: String,
        nats: String,
        nodes: usize,
    },
}

impl StoreChoice {
    fn label(&self) -> String {
        match self {
            StoreChoice::Sled => "sled, 1 node".to_string(),
            StoreChoice::Postgres(_) => "postgres, 1 node".to_string(),
            StoreChoice::Cluster { nodes: 1, .. } => "postgres + NATS, 1 node".to_string(),
            StoreChoice::Cluster { nodes, .. } => format!("postgres + NATS, {nodes} nodes"),
        }
    }

    fn is_cluster(&self) -> bool {
        matches!(self, StoreChoice::Cluster { .. })
    }
}

/// The figures the side-by-side table compares.
struct Summary {
    label: String,
    ack_p50_us: u64,
    ack_p99_us: u64,
    /// Suggestions for the message or a newer one of its conversation ("covered").
    suggestion_p99_us: u64,
    delivery_p50_us: u64,
    delivery_p99_us: u64,
    /// Messages handed to the sockets per second of sending.
    messages_per_second: f64,
    /// Acked messages per second from the first send to the last ack.
    acked_per_second: f64,
    /// Every server process together.
    server_cpu_percent: f64,
    /// The whole machine: servers, PostgreSQL, NATS, the client and anything else running.
    machine_cpu_percent: f64,
    /// Node 1 (on a cluster, the desk leader) first.
    processes: Vec<ProcessPeak>,
    lost: usize,
    duplicated: u64,
    reordered: u64,
}

/// The most one server process held while the load ran.
#[derive(Debug, Clone, Copy, Default)]
struct ProcessPeak {
    rss_kib: u64,
    threads: u64,
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
        schema
            .execute(&format!(
                "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
                schema.name
            ))
            .unwrap_or_else(|error| panic!("creating schema {}: {error}", schema.name));
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
    fn execute(&self, sql: &str) -> Result<(), String> {
        let (url, sql) = (self.server_url.clone(), sql.to_string());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .map_err(|error| format!("connecting to PostgreSQL at {url}: {error}"))?;
            client
                .batch_execute(&sql)
                .map_err(|error| format!("{sql}: {error}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the PostgreSQL thread panicked".to_string()))
    }

    /// Waits until the schema's `kefu_desk_lease` names `node` as the desk leader; the error says what
    /// the lease (or the query) said last.
    fn wait_for_leader(&self, node: &str, limit: Duration) -> Result<Duration, String> {
        let url = self.server_url.clone();
        let query = format!(
            "SELECT node FROM {}.kefu_desk_lease WHERE id = 1",
            self.name
        );
        let expected_leader = node.to_string();
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .map_err(|error| format!("connecting to PostgreSQL at {url}: {error}"))?;
            let mut last_seen = String::from("nothing yet");
            while started.elapsed() < limit {
                // Before node 1 has created its tables the query fails; that is "not yet".
                match client.query_opt(query.as_str(), &[]) {
                    Ok(Some(row)) => {
                        let leader: String = row.get(0);
                        if leader == expected_leader {
                            return Ok(started.elapsed());
                        }
                        last_seen = format!("leader {leader:?}");
                    }
                    Ok(None) => last_seen = "no lease row".to_string(),
                    Err(error) => last_seen = format!("{query}: {error}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(format!(
                "{expected_leader} not the desk leader after {limit:?}; last seen: {last_seen}"
            ))
        })
        .join()
        .unwrap_or_else(|_| Err("the PostgreSQL thread panicked".to_string()))
    }
}

impl Drop for BenchSchema {
    fn drop(&mut self) {
        // No panic here: this also runs while a failed run unwinds.
        if let Err(error) = self.execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name)) {
            eprintln!("dropping schema {}: {error}", self.name);
        }
    }
}

/// The JetStream streams (and key-value buckets, which are streams `KV_<bucket>`) a cluster run made:
/// every stream whose name holds the run's cluster name, deleted with the run.
struct ClusterStreams {
    nats_url: String,
    cluster_name: String,
}

impl ClusterStreams {
    /// On a thread and runtime of their own, so that it can run from `Drop` inside the bench's runtime.
    fn delete(&self) -> Result<Vec<String>, String> {
        let (nats_url, cluster_name) = (self.nats_url.clone(), self.cluster_name.to_uppercase());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async {
                let deleting = async {
                    let client = async_nats::connect(nats_url.as_str())
                        .await
                        .map_err(|error| format!("connecting to NATS at {nats_url}: {error}"))?;
                    let jetstream = async_nats::jetstream::new(client);
                    let mut names = jetstream.stream_names();
                    let mut ours = Vec::new();
                    while let Some(listed) = names.next().await {
                        let name = listed.map_err(|error| format!("listing streams: {error}"))?;
                        if name.to_uppercase().contains(&cluster_name) {
                            ours.push(name);
                        }
                    }
                    for name in &ours {
                        jetstream
                            .delete_stream(name)
                            .await
                            .map_err(|error| format!("deleting stream {name}: {error}"))?;
                    }
                    Ok(ours)
                };
                tokio::time::timeout(Duration::from_secs(10), deleting)
                    .await
                    .unwrap_or_else(|_| Err("NATS did not answer within 10 s".to_string()))
            })
        })
        .join()
        .unwrap_or_else(|_| Err("the NATS thread panicked".to_string()))
    }
}

impl Drop for ClusterStreams {
    fn drop(&mut self) {
        match self.delete() {
            Ok(deleted) => println!(
                "cluster {}: deleted JetStream streams {deleted:?}",
                self.cluster_name
            ),
            Err(error) => eprintln!("cluster {}: {error}", self.cluster_name),
        }
    }
}

const USAGE: &str = "usage: load day [VISITORS] [AGENTS] [MAX] [RATE] [SECONDS] [OPTIONS]
       load burst [VISITORS] [EACH] [OPTIONS]
options: --no-suggestions
         --postgres URL | --both URL
         --postgres URL --cluster NATS_URL NODES
         --postgres URL --compare-cluster NATS_URL NODES";

fn usage_error(problem: &str) -> ! {
    eprintln!("{problem}\n{USAGE}");
    std::process::exit(2);
}

/// A NATS URL and a node count, the two values of `--cluster` and `--compare-cluster`.
fn cluster_arguments(flag: &str, arguments: &mut impl Iterator<Item = String>) -> (String, usize) {
    let Some(nats_url) = arguments.next() else {
        usage_error(&format!("{flag} needs NATS_URL NODES"));
    };
    let nodes = arguments
        .next()
        .and_then(|count| count.parse::<usize>().ok())
        .filter(|count| *count >= 1)
        .unwrap_or_else(|| usage_error(&format!("{flag} {nats_url}: NODES must be 1 or more")));
    (nats_url, nodes)
}

fn main() {
    let mut scenario = None;
    let mut numbers = Vec::new();
    let mut push_suggestions = true;
    let mut postgres_url = None;
    let mut both_url = None;
    let mut cluster = None;
    let mut compare_cluster = None;
    let mut arguments = std::env::args().skip(1);
    // `cargo bench` passes `--bench`; other flags are ignored.
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "day" => scenario = Some(Scenario::Day),
            "burst" => scenario = Some(Scenario::Burst),
            "--no-suggestions" => push_suggestions = false,
            "--postgres" => {
                postgres_url = Some(
                    arguments
                        .next()
                        .unwrap_or_else(|| usage_error("--postgres needs a URL")),
                );
            }
            "--both" => {
                both_url = Some(
                    arguments
                        .next()
                        .unwrap_or_else(|| usage_error("--both needs a URL")),
                );
            }
            "--cluster" => cluster = Some(cluster_arguments("--cluster", &mut arguments)),
            "--compare-cluster" => {
                compare_cluster = Some(cluster_arguments("--compare-cluster", &mut arguments));
            }
            other => {
                if let Ok(number) = other.parse() {
                    numbers.push(number);
                }
            }
        }
    }
    let Some(scenario) = scenario else {
        usage_error("name a scenario: day or burst");
    };
    let stores = match (cluster, compare_cluster, both_url, postgres_url) {
        (Some(_), Some(_), _, _) => usage_error("--cluster or --compare-cluster, not both"),
        (Some(_), None, _, None) | (None, Some(_), _, None) => {
            usage_error("a cluster needs --postgres URL")
        }
        (Some((nats, nodes)), None, _, Some(postgres)) => {
            vec![StoreChoice::Cluster {
                postgres,
                nats,
                nodes,
            }]
        }
        (None, Some((nats, nodes)), _, Some(postgres)) => vec![
            StoreChoice::Postgres(postgres.clone()),
            StoreChoice::Cluster {
                postgres,
                nats,
                nodes,
            },
        ],
        (None, None, Some(url), _) => vec![StoreChoice::Sled, StoreChoice::Postgres(url)],
        (None, None, None, Some(url)) => vec![StoreChoice::Postgres(url)],
        (None, None, None, None) => vec![StoreChoice::Sled],
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
        summaries.push(runtime.block_on(run(&options, store, workers)));
    }
    if summaries.len() > 1 {
        print_side_by_side(&summaries);
    }
    if let [single, cluster] = summaries.as_slice() {
        if stores[1].is_cluster() {
            println!(
                "cross-node cost: ack p50 {}, p99 {}",
                signed_ms_difference(cluster.ack_p50_us, single.ack_p50_us),
                signed_ms_difference(cluster.ack_p99_us, single.ack_p99_us)
            );
            println!(
                "  delivery to the agent p50 {}, p99 {}; suggestion p99 {}; acked/s {:+.1}; server CPU {:+.0}, machine CPU {:+.0} points of one core",
                signed_ms_difference(cluster.delivery_p50_us, single.delivery_p50_us),
                signed_ms_difference(cluster.delivery_p99_us, single.delivery_p99_us),
                signed_ms_difference(cluster.suggestion_p99_us, single.suggestion_p99_us),
                cluster.acked_per_second - single.acked_per_second,
                cluster.server_cpu_percent - single.server_cpu_percent,
                cluster.machine_cpu_percent - single.machine_cpu_percent
            );
        }
    }
}

fn print_side_by_side(summaries: &[Summary]) {
    println!("=== side by side ===");
    println!("| setup | ack p50 | ack p99 | suggestion p99 | delivery to agent p50 / p99 | messages/s sent / acked | server CPU | machine CPU | peak RSS | peak threads | lost / duplicated / reordered |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for summary in summaries {
        println!(
            "| {} | {} | {} | {} | {} / {} | {:.1} / {:.1} | {:.0}% of one core | {:.0}% | {} | {} | {} / {} / {} |",
            summary.label,
            ms(summary.ack_p50_us),
            ms(summary.ack_p99_us),
            ms(summary.suggestion_p99_us),
            ms(summary.delivery_p50_us),
            ms(summary.delivery_p99_us),
            summary.messages_per_second,
            summary.acked_per_second,
            summary.server_cpu_percent,
            summary.machine_cpu_percent,
            per_role(&summary.processes, |peak| format!("{:.0} MiB", mib(peak.rss_kib))),
            per_role(&summary.processes, |peak| peak.threads.to_string()),
            summary.lost,
            summary.duplicated,
            summary.reordered
        );
    }
}

/// One figure per process: alone for one node, else "leader X; followers Y, Z".
fn per_role(processes: &[ProcessPeak], figure: impl Fn(&ProcessPeak) -> String) -> String {
    let Some((leader, followers)) = processes.split_first() else {
        return String::new();
    };
    if followers.is_empty() {
        return figure(leader);
    }
    let follower_figures: Vec<String> = followers.iter().map(&figure).collect();
    format!(
        "leader {}; followers {}",
        figure(leader),
        follower_figures.join(", ")
    )
}

/// `later - earlier` in ms with its sign.
fn signed_ms_difference(later_us: u64, earlier_us: u64) -> String {
    format!("{:+.1} ms", (later_us as f64 - earlier_us as f64) / 1000.0)
}

// ---------------------------------------------------------------------------------------------
// The server process and /proc

struct Server {
    /// `server`, or `node1`, `node2`… on a cluster (the node id).
    name: String,
    child: Child,
    address: SocketAddr,
    log: PathBuf,
    _root: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The log goes with the temporary folder unless `LOAD_KEEP_LOGS` names a folder to copy it to.
        if let Some(folder) = std::env::var_os("LOAD_KEEP_LOGS") {
            let kept = Path::new(&folder).join(format!("{}-{}.log", self.name, self.child.id()));
            match std::fs::copy(&self.log, &kept) {
                Ok(_) => eprintln!("{} log kept at {}", self.name, kept.display()),
                Err(error) => eprintln!("keeping {}: {error}", self.log.display()),
            }
        }
    }
}

impl Server {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log's last `lines` lines, to show why a server failed.
    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The server processes of one run and what they share. Fields drop in declaration order, also while a
/// failed run unwinds: the processes stop before their schema is dropped and their streams deleted.
struct Deployment {
    /// Node 1 first: on a cluster, the desk leader.
    servers: Vec<Server>,
    schema: Option<BenchSchema>,
    _streams: Option<ClusterStreams>,
}

impl Deployment {
    fn start(push_suggestions: bool, store: &StoreChoice) -> Deployment {
        match store {
            StoreChoice::Sled => Deployment {
                servers: vec![start_server(push_suggestions, "server", &[])],
                schema: None,
                _streams: None,
            },
            StoreChoice::Postgres(url) => {
                let schema = BenchSchema::create(url);
                let environment = postgres_environment(&schema);
                let mut deployment = Deployment {
                    servers: Vec::new(),
                    schema: Some(schema),
                    _streams: None,
                };
                deployment
                    .servers
                    .push(start_server(push_suggestions, "server", &environment));
                deployment
            }
            StoreChoice::Cluster {
                postgres,
                nats,
                nodes,
            } => start_cluster(push_suggestions, postgres, nats, *nodes),
        }
    }

    fn addresses(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|server| server.address).collect()
    }

    fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(Server::pid).collect()
    }

    /// `leader` for node 1 of a cluster, `follower` for the others, nothing for a single server.
    fn role(&self, index: usize) -> &'static str {
        match (self.servers.len(), index) {
            (1, _) => "",
            (_, 0) => " (leader)",
            _ => " (follower)",
        }
    }
}

fn postgres_environment(schema: &BenchSchema) -> Vec<(&'static str, String)> {
    vec![
        ("KEFU_STORAGE__BACKEND", "postgres".to_string()),
        ("KEFU_STORAGE__POSTGRES_URL", schema.url()),
    ]
}

/// `nodes` servers over one fresh schema: node 1 first, until it is ready, named in the desk lease and
/// answering desk requests; then the others one by one, each until it is ready and forwards them.
fn start_cluster(
    push_suggestions: bool,
    postgres_url: &str,
    nats_url: &str,
    nodes: usize,
) -> Deployment {
    let started_at_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    // Letters, digits and `_` only: it prefixes the cluster's NATS streams and buckets.
    let cluster_name = format!("kefu_bench_{}_{started_at_unix}", std::process::id());
    let schema = BenchSchema::create(postgres_url);
    let mut cluster_environment = postgres_environment(&schema);
    cluster_environment.extend([
        ("KEFU_CLUSTER__NATS_URL", nats_url.to_string()),
        ("KEFU_CLUSTER__NAME", cluster_name.clone()),
        (
            "KEFU_SERVER__TRUSTED_PROXIES",
            "[\"127.0.0.1/32\"]".to_string(),
        ),
        // Election and takeover lines, to read when a run fails.
        ("RUST_LOG", "warn,kefu::cluster=info".to_string()),
    ]);
    let mut deployment = Deployment {
        servers: Vec::new(),
        schema: Some(schema),
        _streams: Some(ClusterStreams {
            nats_url: nats_url.to_string(),
            cluster_name: cluster_name.clone(),
        }),
    };
    for node in 1..=nodes {
        let node_id = format!("node{node}");
        let mut environment = cluster_environment.clone();
        environment.push(("KEFU_CLUSTER__NODE_ID", node_id.clone()));
        let starting = Instant::now();
        deployment
            .servers
            .push(start_server(push_suggestions, &node_id, &environment));
        if node == 1 {
            let schema = deployment.schema.as_ref().expect("a cluster has a schema");
            if let Err(problem) = schema.wait_for_leader(&node_id, Duration::from_secs(60)) {
                panic!(
                    "{problem}; {node_id}'s log ends with:\n{}",
                    deployment.servers[0].log_tail(40)
                );
            }
        }
        // A node answers `/readyz` before it serves the desk: the leader records itself in the lease
        // before it has opened the desk, and a follower learns the leader's address within its next
        // election round; meanwhile desk requests answer `503 no_leader`.
        let server = deployment.servers.last().expect("the node just started");
        let waiting_for_desk = Instant::now();
        if let Err(last_status) = wait_until_desk_answers(server.address, Duration::from_secs(60)) {
            panic!(
                "{node_id}: desk requests still answer {last_status} after 60 s; its log ends with:\n{}",
                server.log_tail(40)
            );
        }
        println!(
            "cluster {cluster_name}: {node_id} {} in {:.1} s (desk requests answered {:.2} s after that)",
            if node == 1 {
                "ready and named in the desk lease"
            } else {
                "ready"
            },
            waiting_for_desk.duration_since(starting).as_secs_f64(),
            waiting_for_desk.elapsed().as_secs_f64()
        );
    }
    deployment
}

/// Waits until `GET /api/v1/me` without a session, a desk request that only the leader answers, gets
/// something other than 503 (the leader's `401`) through `address`; the error is the last status.
fn wait_until_desk_answers(address: SocketAddr, limit: Duration) -> Result<(), u16> {
    use std::io::{Read, Write};
    let started = Instant::now();
    let mut last_status = 0;
    while started.elapsed() < limit {
        if let Ok(mut stream) = std::net::TcpStream::connect(address) {
            let request =
                format!("GET /api/v1/me HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
            let mut response = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut response).is_ok()
            {
                last_status = response
                    .split_whitespace()
                    .nth(1)
                    .and_then(|code| code.parse().ok())
                    .unwrap_or(0);
                if last_status != 0 && last_status != 503 {
                    return Ok(());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(last_status)
}

fn kefu_binary() -> PathBuf {
    std::env::var_os("KEFU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kefu")))
}

/// Starts `kefu serve` with `environment` added (later entries win) and waits until it is ready.
fn start_server(
    push_suggestions: bool,
    name: &str,
    environment: &[(&'static str, String)],
) -> Server {
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let kb = Path::new(env!("CARGO_MANIFEST_DIR")).join("kb");
    let log = root.path().join(format!("{name}.log"));
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
        .env("NO_COLOR", "1")
        .envs(
            environment
                .iter()
                .map(|(key, value)| (*key, value.as_str())),
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    if !push_suggestions {
        command.env("KEFU_CONVERSATIONS__PUSH_SUGGESTIONS", "false");
    }
    let child = command.spawn().expect("starting kefu serve");
    let mut server = Server {
        name: name.to_string(),
        child,
        address,
        log,
        _root: root,
    };
    // kefu listens before it has opened the index; every route but `/healthz` answers `503 starting`
    // until `/readyz` answers 200.
    let started = Instant::now();
    while !is_ready(address) {
        if started.elapsed() > Duration::from_secs(60) || server.child.try_wait().unwrap().is_some()
        {
            panic!(
                "kefu serve ({name}) did not become ready; its log:\n{}",
                server.log_tail(200)
            );
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

/// CPU seconds the whole machine spent busy (every core, every process: the servers, PostgreSQL, NATS,
/// this client and anything else running), from the `cpu` line of `/proc/stat`.
fn machine_busy_seconds(ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(total_line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal (guest time is counted in user already).
    let ticks: Vec<f64> = total_line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|value| value.parse().unwrap_or(0.0))
        .collect();
    let busy: f64 = ticks
        .iter()
        .enumerate()
        .filter(|(field, _)| ![3, 4].contains(field))
        .map(|(_, value)| value)
        .sum();
    busy / ticks_per_second
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Samples the servers' thread counts and RSS every 100 ms until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<Vec<ProcessPeak>>,
}

impl Sampler {
    fn start(pids: Vec<u32>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peaks = vec![ProcessPeak::default(); pids.len()];
            while !stopped.load(Ordering::Relaxed) {
                for (peak, pid) in peaks.iter_mut().zip(&pids) {
                    peak.threads = peak.threads.max(status_value(*pid, "Threads:"));
                    peak.rss_kib = peak.rss_kib.max(status_value(*pid, "VmRSS:"));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            peaks
        });
        Sampler { stop, handle }
    }

    /// Peak threads and peak RSS seen, per process in the order given.
    fn finish(self) -> Vec<ProcessPeak> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// CPU seconds of each process.
fn cpu_seconds_each(pids: &[u32], ticks_per_second: f64) -> Vec<f64> {
    pids.iter()
        .map(|pid| cpu_seconds(&pid.to_string(), ticks_per_second))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP

// ---------------------------------------------------------------------------------------------
// What the sockets saw

/// A visitor message handed to its socket.
struct Sent {
    conversation: String,
    sent_us: u64,
    /// Index of the server the visitor's socket is open on (0: node 1, the leader).
    node: usize,
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
    /// Agent → index of the server its socket is open on.
    agent_nodes: Mutex<HashMap<u64, usize>>,
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
            agent_nodes: Mutex::default(),
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
    /// Index of the server its socket is open on.
    node: usize,
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

/// Signs the admin in (and out of the queue) on the first server, and `agents` agents with
/// `max_concurrent`, agent j signing in and opening its `/ws/agent` on server j % servers.
async fn open_agents(
    addresses: &[SocketAddr],
    agents: usize,
    max_concurrent: usize,
    observations: &Arc<Observations>,
) {
    let admin_address = addresses[0];
    let admin = login(admin_address, "admin", ADMIN_INITIAL).await;
    let (status, body) = signed(
        admin_address,
        &admin,
        "POST",
        "/api/v1/me/password",
        json!({"old_password": ADMIN_INITIAL, "new_password": FINAL_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The admin takes no conversations.
    signed(
        admin_address,
        &admin,
        "PUT",
        "/api/v1/me/presence",
        json!({"status": "offline"}),
    )
    .await;
    for n in 0..agents {
        let node = n % addresses.len();
        let address = addresses[node];
        let username = format!("agent{n:03}");
        let (status, body) = signed(
            admin_address,
            &admin,
            "POST",
            "/api/v1/admin/accounts",
            json!({"username": username, "password": PASSWORD, "roles": ["agent"], "max_concurrent": max_concurrent}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["account"]["id"].as_u64().unwrap();
        observations.agent_nodes.lock().unwrap().insert(id, node);
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

/// Starts `visitors` conversations one after the other, each with its `/ws/visitor`, visitor n on server
/// n % servers; prints how long starting took at the beginning and at the end (the queue grows
/// meanwhile).
async fn open_visitors(
    addresses: &[SocketAddr],
    visitors: usize,
    observations: &Arc<Observations>,
) -> Vec<Visitor> {
    let opening = Instant::now();
    let mut start_us = Vec::with_capacity(visitors);
    let mut opened = Vec::with_capacity(visitors);
    for n in 0..visitors {
        let node = n % addresses.len();
        let address = addresses[node];
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
            node,
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
    node: usize,
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
            node,
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
    /// Load messages acked, and when the last of those acks arrived (µs since `origin`).
    acked: usize,
    last_ack_us: u64,
    lost: usize,
    suggestion_exact: Stats,
    suggestion_covered: Stats,
    delivery: Stats,
    served_messages: usize,
    duplicated: u64,
    reordered: u64,
}

/// `servers` is how many servers the clients were spread over, the first of them the desk leader.
fn analyse(observations: &Observations, servers: usize) -> Measured {
    let sends = observations.sends.lock().unwrap();
    let agent_nodes = observations.agent_nodes.lock().unwrap();
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
    // On a cluster: acks of visitors on the leader, and of visitors on a follower (a proxy hop).
    let mut ack_on_leader_us = Vec::new();
    let mut ack_on_follower_us = Vec::new();
    // Deliveries by how many followers the message crossed (the visitor's, the agent's): 0, 1, 2.
    let mut delivery_by_hops_us: [Vec<u64>; 3] = Default::default();
    let mut last_ack_us = 0;
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
        last_ack_us = last_ack_us.max(*acked_at);
        if sent.node == 0 {
            ack_on_leader_us.push(latency);
        } else {
            ack_on_follower_us.push(latency);
        }
        if !assigned.contains_key(&sent.conversation) {
            queued_ack_us.push(latency);
            continue;
        }
        served_ack_us.push(latency);
        served_messages += 1;
        served_acked += 1;
        let conversation = sent.conversation.as_str();
        match first_delivery.get(&(conversation, *seq)) {
            Some(at) => {
                let delivery_latency = at.saturating_sub(sent.sent_us);
                delivery_us.push(delivery_latency);
                let agent_node = assigned
                    .get(&sent.conversation)
                    .and_then(|agent| agent_nodes.get(agent))
                    .copied()
                    .unwrap_or(0);
                let hops = usize::from(sent.node != 0) + usize::from(agent_node != 0);
                delivery_by_hops_us[hops].push(delivery_latency);
            }
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
    let acked = ack_us.len();
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
    if servers > 1 {
        println!(
            "  visitor on the leader: {}; on a follower (through its proxy): {}",
            Stats::of(ack_on_leader_us).line(),
            Stats::of(ack_on_follower_us).line()
        );
    }
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
    if servers > 1 {
        let [direct, one_follower, two_followers] = delivery_by_hops_us;
        println!(
            "  visitor and agent on the leader: {}; one of them on a follower: {}; both on followers: {}",
            Stats::of(direct).line(),
            Stats::of(one_follower).line(),
            Stats::of(two_followers).line()
        );
    }
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
    let reordered = observations.reordered.load(Ordering::Relaxed);
    println!(
        "suggestions frames received: {}; message frames duplicated on a socket: {duplicated}; reordered on a socket (seq below one already seen): {reordered}",
        suggestions.len()
    );
    Measured {
        ack,
        acked,
        last_ack_us,
        lost: lost + refused,
        suggestion_exact,
        suggestion_covered,
        delivery,
        served_messages,
        duplicated,
        reordered,
    }
}

fn server_log_summary(server: &Server) {
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    println!(
        "{} log ({}): {} lines",
        server.name,
        server.log.display(),
        lines.len()
    );
    for line in lines.iter().take(3) {
        let shown: String = line.chars().take(300).collect();
        println!("  {shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

async fn run(options: &Options, store: &StoreChoice, workers: usize) -> Summary {
    let ticks = clock_ticks_per_second();
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
            "=== load day on {}: {visitors} visitors, {agents} agents x max {max_concurrent}, {} msg/s for {} s, suggestions {} ===",
            store.label(),
            number(3, 100),
            number(4, 30),
            if options.push_suggestions { "on" } else { "off" }
        ),
        Scenario::Burst => println!(
            "=== load burst on {}: {visitors} visitors each sending {} at once, {agents} agents x max 5, suggestions {} ===",
            store.label(),
            number(1, 5),
            if options.push_suggestions { "on" } else { "off" }
        ),
    }
    let deployment = Deployment::start(options.push_suggestions, store);
    let addresses = deployment.addresses();
    let pids = deployment.pids();
    for (index, server) in deployment.servers.iter().enumerate() {
        println!(
            "server: {} serve on {}, {}{}, pid {} on {}",
            kefu_binary().display(),
            store.label(),
            server.name,
            deployment.role(index),
            server.pid(),
            server.address
        );
    }
    println!(
        "client: this process, {workers} tokio worker(s); load average at start {}",
        load_average()
    );
    let print_servers_now = |moment: &str| {
        for (index, server) in deployment.servers.iter().enumerate() {
            println!(
                "{moment}: {}{} RSS {:.1} MiB, {} threads",
                server.name,
                deployment.role(index),
                mib(status_value(server.pid(), "VmRSS:")),
                status_value(server.pid(), "Threads:")
            );
        }
    };
    let observations = Arc::new(Observations::new());
    open_agents(&addresses, agents, max_concurrent, &observations).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_servers_now(&format!("with {agents} agents signed in"));
    let cpu_opening: f64 = cpu_seconds_each(&pids, ticks).iter().sum();
    let visitors_open = open_visitors(&addresses, visitors, &observations).await;
    let expected = visitors.min(agents * max_concurrent);
    let served = wait_for_assignments(&observations, expected).await;
    println!(
        "conversations served: {served} (expected {expected}), queued: {}; server CPU for the opening {:.1} s",
        visitors - served,
        cpu_seconds_each(&pids, ticks).iter().sum::<f64>() - cpu_opening
    );
    print_servers_now("before the load");
    println!("load average before the load {}", load_average());

    let sampler = Sampler::start(pids.clone());
    let server_cpu_start = cpu_seconds_each(&pids, ticks);
    let client_cpu_start = cpu_seconds("self", ticks);
    let machine_cpu_start = machine_busy_seconds(ticks);
    let load_started = Instant::now();
    let load_started_us = observations.now_us();
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
    let server_cpu_each: Vec<f64> = cpu_seconds_each(&pids, ticks)
        .iter()
        .zip(&server_cpu_start)
        .map(|(now, start)| now - start)
        .collect();
    let server_cpu: f64 = server_cpu_each.iter().sum();
    let machine_cpu = machine_busy_seconds(ticks) - machine_cpu_start;
    let sampled_peaks = sampler.finish();
    let load_seconds = sending_seconds + last_frame_after;
    let mut processes = Vec::with_capacity(pids.len());
    for (index, server) in deployment.servers.iter().enumerate() {
        let pid = server.pid();
        let rss_after = status_value(pid, "VmRSS:");
        let sampled = sampled_peaks[index];
        println!(
            "after the load: {}{} RSS {:.1} MiB (peak sampled {:.1} MiB, VmHWM {:.1} MiB), threads {} now, peak {}; CPU during the load {:.1} s ({:.0}% of one core)",
            server.name,
            deployment.role(index),
            mib(rss_after),
            mib(sampled.rss_kib),
            mib(status_value(pid, "VmHWM:")),
            status_value(pid, "Threads:"),
            sampled.threads,
            server_cpu_each[index],
            100.0 * server_cpu_each[index] / load_seconds
        );
        processes.push(ProcessPeak {
            rss_kib: sampled.rss_kib.max(rss_after),
            threads: sampled.threads,
        });
    }
    println!("load average after the load {}", load_average());
    println!(
        "server CPU during the load{}: {server_cpu:.1} s over {load_seconds:.1} s ({:.0}% of one core; sending {sending_seconds:.1} s, last frame {:.1} s after); client CPU while sending {client_cpu_sending:.1} s ({:.0}% of one core)",
        if pids.len() > 1 { ", every node" } else { "" },
        100.0 * server_cpu / load_seconds,
        last_frame_after,
        100.0 * client_cpu_sending / sending_seconds.max(0.001)
    );
    println!(
        "machine CPU during the load (every process: servers, PostgreSQL, NATS, client, others): {machine_cpu:.1} s ({:.0}% of one core, of {} cores)",
        100.0 * machine_cpu / load_seconds,
        std::thread::available_parallelism().map_or(1, |cores| cores.get())
    );
    let measured = analyse(&observations, addresses.len());
    let acked_seconds = measured.last_ack_us.saturating_sub(load_started_us) as f64 / 1e6;
    let acked_per_second = measured.acked as f64 / acked_seconds.max(0.001);
    println!(
        "throughput: {} messages acked in {acked_seconds:.2} s from the first send to the last ack: {acked_per_second:.1}/s",
        measured.acked
    );
    for server in &deployment.servers {
        server_log_summary(server);
    }
    let rss_peak = processes.iter().map(|peak| peak.rss_kib).max().unwrap_or(0);
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
        "  RSS <= 600 MiB{}: {} (peak {:.1} MiB)",
        if pids.len() > 1 { " per process" } else { "" },
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
        label: store.label(),
        ack_p50_us: measured.ack.p50,
        ack_p99_us: measured.ack.p99,
        suggestion_p99_us: measured.suggestion_covered.p99,
        delivery_p50_us: measured.delivery.p50,
        delivery_p99_us: measured.delivery.p99,
        messages_per_second: sent as f64 / sending_seconds.max(0.001),
        acked_per_second,
        server_cpu_percent: 100.0 * server_cpu / load_seconds,
        machine_cpu_percent: 100.0 * machine_cpu / load_seconds,
        processes,
        lost: measured.lost,
        duplicated: measured.duplicated,
        reordered: measured.reordered,
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
            visitor.node,
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
        let node = visitor.node;
        tasks.push(tokio::spawn(async move {
            let bodies: Vec<String> = (0..each).map(|k| question(index * each + k)).collect();
            barrier.wait().await;
            for (k, body) in bodies.into_iter().enumerate() {
                send_visitor_message(
                    Arc::clone(&observations),
                    Arc::clone(&sink),
                    conversation.clone(),
                    node,
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
