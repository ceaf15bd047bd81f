//! Several `kefu serve` nodes over one PostgreSQL and one NATS (see docs/ARCHITECTURE.md, "Several
//! nodes"). Without `cluster.nats_url` none of this runs and kefu is one node as before.
//!
//! - `election.rs`: one node at a time is the desk leader, chosen by a PostgreSQL advisory lock and
//!   fenced by an epoch row, so two nodes never run desk turns at once.
//! - `forward.rs`: the other nodes forward desk requests and sockets to the leader (an HTTP reverse
//!   proxy), and serve knowledge-base and history search from their own indexes.
//! - `kb_sync.rs`: articles, dictionary and synonyms replicated through a JetStream key-value bucket,
//!   so an article saved through any node is searchable on every node.
//! - `message_log.rs`: stored messages published to a JetStream stream that feeds every node's
//!   history index.

pub mod election;
pub mod forward;
pub mod kb_sync;
pub mod message_log;

use anyhow::Context;

use crate::config::Config;

/// This process as a member of the cluster: its name, its address and its NATS connection.
#[derive(Clone, Debug)]
pub struct Node {
    /// Name of the cluster (`cluster.name`): the prefix of its subjects, streams and buckets.
    pub cluster: String,
    /// Unique name of the node (`cluster.node_id`).
    pub id: String,
    /// Where the other nodes reach this node's HTTP server.
    pub advertise_url: String,
    /// The NATS connection.
    pub nats: async_nats::Client,
    /// JetStream over that connection.
    pub jetstream: async_nats::jetstream::Context,
}

impl Node {
    /// Connects to the NATS server of `config.cluster`; `listen` is the address actually bound.
    pub async fn connect(config: &Config, listen: std::net::SocketAddr) -> anyhow::Result<Node> {
        let url = config
            .cluster
            .nats_url
            .as_deref()
            .context("cluster.nats_url is not set")?;
        let id = config
            .cluster
            .node_id
            .clone()
            .unwrap_or_else(|| default_node_id(listen));
        let advertise_url = config
            .cluster
            .advertise_url
            .clone()
            .unwrap_or_else(|| default_advertise_url(listen));
        let nats = async_nats::ConnectOptions::new()
            .name(format!("kefu-{id}"))
            // Reconnects forever: NATS going away pauses replication, it does not stop the node.
            .retry_on_initial_connect()
            .connect(url)
            .await
            .with_context(|| format!("connecting to NATS at {url}"))?;
        let jetstream = async_nats::jetstream::new(nats.clone());
        Ok(Node {
            cluster: config.cluster.name.clone(),
            id,
            advertise_url,
            nats,
            jetstream,
        })
    }
}

fn default_node_id(listen: std::net::SocketAddr) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "kefu".to_string());
    let host: String = host
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{host}-{}", listen.port())
}

fn default_advertise_url(listen: std::net::SocketAddr) -> String {
    let ip = if listen.ip().is_unspecified() {
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    } else {
        listen.ip()
    };
    format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
}
