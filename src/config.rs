//! Configuration: one [`Config`], layered defaults ← `kefu.toml` ← `KEFU_*` environment ← command-line flags.
//!
//! The environment uses `__` between section and key: `KEFU_SERVER__LISTEN=0.0.0.0:8080`,
//! `KEFU_PATHS__KB=/srv/kb`. The loader takes the environment as an argument so tests never touch
//! the process environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP server settings.
    pub server: ServerConfig,
    /// Where things live on disk.
    pub paths: PathsConfig,
    /// Search behaviour.
    pub search: SearchConfig,
    /// Accounts, sign-in and sessions.
    pub accounts: AccountsConfig,
    /// The live-chat desk.
    pub conversations: ConversationsConfig,
    /// Visitor context: location database, signing sites, page-trail limits.
    pub visitors: VisitorsConfig,
    /// Where records live: the embedded database (default) or PostgreSQL.
    pub storage: StorageConfig,
    /// Channels: where the WeChat and 企业微信 APIs are, and kefu's public address.
    pub channels: ChannelsConfig,
    /// Several nodes over one PostgreSQL and one NATS; off unless `cluster.nats_url` is set.
    pub cluster: ClusterConfig,
}

/// Several `kefu serve` nodes sharing one desk (see docs/ARCHITECTURE.md, "Several nodes").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Name of the cluster, which prefixes its NATS subjects, streams and buckets, so that several
    /// installations can share one NATS server (default `kefu`).
    pub name: String,
    /// NATS server, e.g. `nats://127.0.0.1:4222`; unset runs one node with nothing else needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// This node's name, unique in the cluster (letters, digits, `-`, `_`); defaults to the host name
    /// and the port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Where the other nodes reach this node's HTTP server, e.g. `http://10.0.0.5:8080`; defaults to
    /// `http://` and `server.listen` (with 127.0.0.1 for an unspecified address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_url: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            name: "kefu".into(),
            nats_url: None,
            node_id: None,
            advertise_url: None,
        }
    }
}

impl ClusterConfig {
    /// Whether kefu runs as one node of several.
    pub fn enabled(&self) -> bool {
        self.nats_url
            .as_deref()
            .is_some_and(|url| !url.trim().is_empty())
    }
}

/// Channels (API, WeChat 公众号, 企业微信 微信客服).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChannelsConfig {
    /// Base URL of the WeChat 公众号 API (`cgi-bin/token`, `cgi-bin/message/custom/send`, media).
    /// Only tests and proxies change it.
    pub wechat_api_base: String,
    /// Base URL of the 企业微信 API (`cgi-bin/gettoken`, `cgi-bin/kf/sync_msg`, `kf/send_msg`).
    pub wecom_api_base: String,
    /// kefu's address as WeChat reaches it (`https://kefu.example.com`), for the callback URLs the
    /// admin console shows; empty shows them relative.
    pub public_url: String,
    /// Longest wait for one call to WeChat or 企业微信, in seconds.
    pub request_timeout_secs: u64,
}

impl Default for ChannelsConfig {
    fn default() -> Self {
        ChannelsConfig {
            wechat_api_base: "https://api.weixin.qq.com".into(),
            wecom_api_base: "https://qyapi.weixin.qq.com".into(),
            public_url: String::new(),
            request_timeout_secs: 10,
        }
    }
}

/// Which database holds accounts, conversations, messages and the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// The embedded sled database under `paths.data`: nothing to install.
    #[default]
    Sled,
    /// A PostgreSQL server at `storage.postgres_url`.
    Postgres,
}

/// Where records live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sled` (embedded, the default) or `postgres`.
    pub backend: StorageBackend,
    /// libpq-style URL of the PostgreSQL database, e.g. `postgres://kefu@127.0.0.1/kefu`; a
    /// `?options=-csearch_path%3Dname` parameter puts kefu's tables in their own schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_url: Option<String>,
    /// Connections to PostgreSQL, each served by one worker thread.
    pub postgres_connections: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: StorageBackend::Sled,
            postgres_url: None,
            postgres_connections: 8,
        }
    }
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Reverse proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed. From anyone
    /// else the header is ignored: a client could otherwise pick its own address and dodge the
    /// sign-in limit.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Folders used by kefu; relative paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathsConfig {
    /// The markdown knowledge base (source of truth for articles).
    pub kb: PathBuf,
    /// The tantivy index (derived from `kb`, safe to delete).
    pub index: PathBuf,
    /// Primary data (accounts, conversations); never inside `index`.
    pub data: PathBuf,
}

/// Search behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Hits returned when the request names no limit.
    pub default_limit: usize,
    /// Largest limit a request may ask for.
    pub max_limit: usize,
    /// Longest query accepted, in characters.
    pub max_query_chars: usize,
    /// How long the index writer gathers edits before one commit, in milliseconds.
    pub commit_delay_ms: u64,
    /// Whether `kefu serve` watches `kb` for edits made on disk.
    pub watch: bool,
    /// Suggestions (the agent's 辅助回复, the visitor's 自助服务, `kefu suggest`) are made only when
    /// a hit's confidence (0 to 1) reaches this; 0 switches abstention off (whatever ranks first).
    pub min_confidence: f32,
}

/// Accounts, sign-in and sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// Password of the `admin` account created at first start; from `KEFU_ADMIN_PASSWORD`. When unset a
    /// random one is printed once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// A session unused for this long expires.
    pub session_idle_minutes: u64,
    /// Failed sign-ins of one username from one client address that lock that address out of that
    /// username (never the username from elsewhere).
    pub lockout_failures: u32,
    /// Failed sign-ins from one client address, whatever the usernames, that lock the address out.
    pub address_lockout_failures: u32,
    /// How long failures are remembered after the last one, and so how long a lock lasts.
    pub lockout_minutes: u64,
    /// Failed sign-ins of a username, from any address, after which it needs a captcha.
    pub captcha_after_failures: u32,
    /// Sign-in attempts allowed per client address per minute.
    pub login_attempts_per_minute: u32,
    /// An online agent idle this long is shown as away; 0 turns it off.
    pub auto_away_minutes: u64,
    /// Largest avatar upload.
    pub max_avatar_bytes: usize,
    /// Visitor tokens issued per client address per minute (`POST /api/v1/visitors`, a conversation
    /// started without a token); more answer `429 rate_limited`. Generous: many visitors may share
    /// one address behind a carrier's NAT.
    pub visitor_tokens_per_minute: u32,
    /// A visitor token stops working this many days after it was issued, and is then purged.
    pub visitor_token_days: u64,
    /// Captchas issued per client address per minute; more answer `429 rate_limited`.
    pub captchas_per_minute: u32,
    /// Concurrent conversations of a new agent.
    pub default_max_concurrent: u32,
    /// Mark the session cookie `Secure` even without an `X-Forwarded-Proto: https` header (serving
    /// behind a TLS proxy that does not send it).
    pub secure_cookies: bool,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        AccountsConfig {
            admin_password: None,
            session_idle_minutes: 8 * 60,
            lockout_failures: 5,
            address_lockout_failures: 20,
            lockout_minutes: 15,
            captcha_after_failures: 3,
            login_attempts_per_minute: 30,
            auto_away_minutes: 10,
            max_avatar_bytes: 1 << 20,
            visitor_tokens_per_minute: 60,
            visitor_token_days: 30,
            captchas_per_minute: 20,
            default_max_concurrent: 5,
            secure_cookies: false,
        }
    }
}

/// A host site that signs its users' identities for the widget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// The id the widget passes (`data-site`).
    pub id: String,
    /// The HMAC-SHA256 key shared with the site's server (never sent to browsers).
    pub secret: String,
}

/// Visitor context (访客信息).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisitorsConfig {
    /// The ip2region xdb file; locations are unknown without it.
    pub ip_database: PathBuf,
    /// Sites whose signed identities are verified.
    pub sites: Vec<SiteConfig>,
    /// Page views kept per visitor (the oldest go first).
    pub max_page_views: usize,
    /// Page views accepted per visitor per minute; more answer `429 rate_limited`.
    pub page_views_per_minute: u32,
    /// A visitor without a heartbeat for this long is no longer on the site.
    pub online_timeout_secs: u64,
    /// Longest lifetime of a signed identity (its `expires` may not be further ahead).
    pub identity_max_age_secs: u64,
}

impl Default for VisitorsConfig {
    fn default() -> Self {
        VisitorsConfig {
            ip_database: PathBuf::from("geo/ip2region.xdb"),
            sites: Vec::new(),
            max_page_views: 200,
            page_views_per_minute: 30,
            online_timeout_secs: 60,
            identity_max_age_secs: 86_400,
        }
    }
}

/// The live-chat desk: timers, limits, uploads, the problem-type tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversationsConfig {
    /// An assigned conversation the agent has not answered within this many seconds goes to the next
    /// agent.
    pub unanswered_secs: u64,
    /// A transfer not accepted within this many seconds returns to its sender.
    pub transfer_timeout_secs: u64,
    /// A visitor silent this long gets a reminder.
    pub visitor_idle_remind_mins: u64,
    /// A visitor silent this long has the conversation ended.
    pub visitor_idle_end_mins: u64,
    /// A visitor queued this long is offered to leave a message.
    pub queue_wait_limit_mins: u64,
    /// Longest message, in characters.
    pub max_message_chars: usize,
    /// Largest upload.
    pub max_upload_bytes: usize,
    /// Accepted upload types, by extension.
    pub upload_types: Vec<String>,
    /// Files one conversation may hold (both parties' uploads).
    pub max_uploads_per_conversation: usize,
    /// Bytes one conversation's files may take.
    pub max_upload_bytes_per_conversation: u64,
    /// Files one visitor may upload in all their conversations.
    pub max_uploads_per_visitor: usize,
    /// Bytes one visitor may upload in all their conversations.
    pub max_upload_bytes_per_visitor: u64,
    /// Uploads accepted per visitor per minute; more answer `429 rate_limited`.
    pub visitor_uploads_per_minute: u32,
    /// Bytes all uploaded files may take on disk; past it every upload answers
    /// `507 upload_storage_full` (a file already stored still attaches).
    pub upload_disk_budget_bytes: u64,
    /// Problem types (问题类型) of the wrap-up form, as `parent/child` paths.
    pub problem_types: Vec<String>,
    /// The team's time zone (IANA name): where statistics' days begin.
    pub time_zone: String,
    /// Push suggested replies (辅助回复) to the serving agent after each visitor message.
    pub push_suggestions: bool,
    /// Most conversations waiting in the queue (all groups); later ones become offline messages.
    pub max_queue: usize,
}

impl Default for ConversationsConfig {
    fn default() -> Self {
        ConversationsConfig {
            unanswered_secs: 120,
            transfer_timeout_secs: 60,
            visitor_idle_remind_mins: 5,
            visitor_idle_end_mins: 10,
            queue_wait_limit_mins: 5,
            max_message_chars: 5000,
            max_upload_bytes: 10 << 20,
            upload_types: [
                "jpg", "jpeg", "png", "gif", "webp", "pdf", "docx", "xlsx", "txt", "zip", "amr",
            ]
            .map(String::from)
            .to_vec(),
            max_uploads_per_conversation: 50,
            max_upload_bytes_per_conversation: 100 << 20,
            max_uploads_per_visitor: 100,
            max_upload_bytes_per_visitor: 200 << 20,
            visitor_uploads_per_minute: 10,
            upload_disk_budget_bytes: 10 << 30,
            problem_types: [
                "订单/查询订单",
                "订单/修改订单",
                "订单/取消订单",
                "支付/支付失败",
                "支付/退款到账",
                "物流/催发货",
                "物流/查询物流",
                "售后/退货退款",
                "售后/换货",
                "售后/维修",
                "发票/开具发票",
                "账户/登录与安全",
                "会员/优惠券",
                "咨询/商品咨询",
                "其他",
            ]
            .map(String::from)
            .to_vec(),
            time_zone: "Asia/Shanghai".into(),
            push_suggestions: true,
            max_queue: 2000,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for PathsConfig {
    fn default() -> Self {
        PathsConfig {
            kb: PathBuf::from("kb"),
            index: PathBuf::from("index"),
            data: PathBuf::from("data"),
        }
    }
}

/// Measured on the shared relevance and abstention sets (see BENCHMARKS.md, "Abstention").
pub const DEFAULT_MIN_CONFIDENCE: f32 = 0.33;

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            default_limit: 10,
            max_limit: 100,
            max_query_chars: 1000,
            commit_delay_ms: 50,
            watch: true,
            min_confidence: DEFAULT_MIN_CONFIDENCE,
        }
    }
}

/// Overrides given on the command line; `None` leaves the lower layers in force.
#[derive(Debug, Clone, Default)]
pub struct FlagOverrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--kb`
    pub kb: Option<PathBuf>,
    /// `--index`
    pub index: Option<PathBuf>,
    /// `--data`
    pub data: Option<PathBuf>,
}

/// The default config file read when present and no other is named.
pub const DEFAULT_CONFIG_FILE: &str = "kefu.toml";

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A config file that was named explicitly does not exist.
    #[error("config file {0} not found")]
    MissingFile(PathBuf),
    /// A value is malformed or a key is unknown.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value is well-formed but outside what it may be.
    #[error("invalid configuration: {0}")]
    OutOfRange(String),
}

impl Config {
    /// Loads from the real environment: `--config`/`KEFU_CONFIG` names a file that must exist,
    /// otherwise `./kefu.toml` is read if present.
    pub fn load(config_file: Option<&Path>, flags: &FlagOverrides) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        Config::load_from(config_file, &env, flags)
    }

    /// Pure loader behind [`Config::load`].
    pub fn load_from(
        config_file: Option<&Path>,
        env: &HashMap<String, String>,
        flags: &FlagOverrides,
    ) -> Result<Config, ConfigError> {
        let named_file = config_file
            .map(Path::to_path_buf)
            .or_else(|| env.get("KEFU_CONFIG").map(PathBuf::from));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match named_file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path)),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        figment = figment.merge(Serialized::defaults(env_layer(env)));
        let mut config: Config = figment.extract().map_err(Box::new)?;
        if let Some(password) = env.get("KEFU_ADMIN_PASSWORD") {
            config.accounts.admin_password = Some(password.clone());
        }
        config.apply(flags);
        if !(0.0..=1.0).contains(&config.search.min_confidence) {
            return Err(ConfigError::OutOfRange(format!(
                "search.min_confidence is {}; it must be between 0 and 1",
                config.search.min_confidence
            )));
        }
        config.check_cluster()?;
        Ok(config)
    }

    fn check_cluster(&self) -> Result<(), ConfigError> {
        if !self.cluster.enabled() {
            return Ok(());
        }
        if self.storage.backend != StorageBackend::Postgres {
            return Err(ConfigError::OutOfRange(
                "cluster.nats_url is set: several nodes share one PostgreSQL, so storage.backend must be \"postgres\"".into(),
            ));
        }
        let valid = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        for (key, value) in [
            ("cluster.name", Some(&self.cluster.name)),
            ("cluster.node_id", self.cluster.node_id.as_ref()),
        ] {
            if let Some(value) = value.filter(|value| !valid(value)) {
                return Err(ConfigError::OutOfRange(format!(
                    "{key} {value:?}: use 1 to 64 letters, digits, '-' or '_'"
                )));
            }
        }
        if let Some(advertised) = &self.cluster.advertise_url {
            // The other nodes forward requests to `<advertise_url><path>`: anything but a plain
            // http(s) origin would fail every forwarded request instead of failing here.
            let plain_origin = url::Url::parse(advertised).is_ok_and(|url| {
                matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && url.query().is_none()
            });
            if !plain_origin {
                return Err(ConfigError::OutOfRange(format!(
                    "cluster.advertise_url {advertised:?}: give http(s)://host:port, with no path"
                )));
            }
        }
        Ok(())
    }

    fn apply(&mut self, flags: &FlagOverrides) {
        if let Some(listen) = flags.listen {
            self.server.listen = listen;
        }
        if let Some(kb) = &flags.kb {
            self.paths.kb = kb.clone();
        }
        if let Some(index) = &flags.index {
            self.paths.index = index.clone();
        }
        if let Some(data) = &flags.data {
            self.paths.data = data.clone();
        }
    }
}

/// Turns `KEFU_SECTION__KEY=value` pairs into a nested TOML value so that figment can type-check them
/// like file values. `KEFU_CONFIG` and the `KEFU_LOG*` variables belong to other parts of startup.
fn env_layer(env: &HashMap<String, String>) -> toml_value::Table {
    let mut root = toml_value::Table::new();
    for (key, raw_value) in env {
        let Some(rest) = key.strip_prefix("KEFU_") else {
            continue;
        };
        let Some((section, field)) = rest.split_once("__") else {
            continue;
        };
        // figment parses env values the way its own `Env` provider does: numbers, booleans, else strings.
        let value: toml_value::Value = match raw_value.parse() {
            Ok(parsed) => parsed,
            Err(never) => match never {},
        };
        let section_table = root.entry(section.to_lowercase()).or_insert_with(|| {
            toml_value::Value::Dict(Default::default(), toml_value::Dict::new())
        });
        if let toml_value::Value::Dict(_, dict) = section_table {
            dict.insert(field.to_lowercase(), value);
        }
    }
    root
}

/// figment's own value types, so env values are typed the same way as file values.
mod toml_value {
    pub use figment::value::{Dict, Value};
    pub type Table = Dict;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let config = Config::load_from(None, &HashMap::new(), &FlagOverrides::default()).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.paths.kb, PathBuf::from("kb"));
        assert_eq!(config.paths.index, PathBuf::from("index"));
        assert_eq!(config.paths.data, PathBuf::from("data"));
    }

    #[test]
    fn file_then_env_then_flags_take_precedence_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kefu.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[paths]\nkb = \"from-file\"\nindex = \"idx-file\"\n",
        )
        .unwrap();
        let env = HashMap::from([
            ("KEFU_PATHS__KB".to_string(), "from-env".to_string()),
            ("KEFU_SEARCH__DEFAULT_LIMIT".to_string(), "7".to_string()),
        ]);
        let flags = FlagOverrides {
            index: Some(PathBuf::from("idx-flag")),
            ..FlagOverrides::default()
        };
        let config = Config::load_from(Some(&file), &env, &flags).unwrap();
        assert_eq!(config.server.listen.port(), 9000);
        assert_eq!(config.paths.kb, PathBuf::from("from-env"));
        assert_eq!(config.paths.index, PathBuf::from("idx-flag"));
        assert_eq!(config.search.default_limit, 7);
    }

    #[test]
    fn unknown_keys_and_missing_named_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kefu.toml");
        std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:9000\"\nport = 1\n").unwrap();
        let unknown = Config::load_from(Some(&file), &HashMap::new(), &FlagOverrides::default());
        assert!(matches!(unknown, Err(ConfigError::Invalid(_))));
        let missing = dir.path().join("absent.toml");
        let result = Config::load_from(Some(&missing), &HashMap::new(), &FlagOverrides::default());
        assert!(matches!(result, Err(ConfigError::MissingFile(_))));
    }

    #[test]
    fn trusted_proxies_and_the_admin_password_come_from_the_environment() {
        let env = HashMap::from([
            (
                "KEFU_SERVER__TRUSTED_PROXIES".to_string(),
                r#"["10.0.0.0/8", "192.168.1.5/32"]"#.to_string(),
            ),
            (
                "KEFU_ADMIN_PASSWORD".to_string(),
                "Start-Here-2026#".to_string(),
            ),
        ]);
        let config = Config::load_from(None, &env, &FlagOverrides::default()).unwrap();
        let proxies: Vec<String> = config
            .server
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.5/32"]);
        assert_eq!(
            config.accounts.admin_password.as_deref(),
            Some("Start-Here-2026#")
        );
        let bad = HashMap::from([(
            "KEFU_SERVER__TRUSTED_PROXIES".to_string(),
            r#"["not a network"]"#.to_string(),
        )]);
        assert!(Config::load_from(None, &bad, &FlagOverrides::default()).is_err());
    }

    #[test]
    fn a_cluster_needs_postgres_and_plain_names() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect()
        };
        let load = |pairs: &[(&str, &str)]| {
            Config::load_from(None, &env(pairs), &FlagOverrides::default())
        };
        let nats = ("KEFU_CLUSTER__NATS_URL", "nats://127.0.0.1:4222");
        let postgres = [
            ("KEFU_STORAGE__BACKEND", "postgres"),
            (
                "KEFU_STORAGE__POSTGRES_URL",
                "postgres://kefu@127.0.0.1/kefu",
            ),
        ];
        assert!(matches!(load(&[nats]), Err(ConfigError::OutOfRange(_))));
        let config = load(&[nats, postgres[0], postgres[1]]).unwrap();
        assert!(config.cluster.enabled());
        assert_eq!(config.cluster.name, "kefu");
        let bad_node = ("KEFU_CLUSTER__NODE_ID", "node one");
        assert!(matches!(
            load(&[nats, postgres[0], postgres[1], bad_node]),
            Err(ConfigError::OutOfRange(_))
        ));
        let advertised = |url| ("KEFU_CLUSTER__ADVERTISE_URL", url);
        assert!(load(&[
            nats,
            postgres[0],
            postgres[1],
            advertised("http://10.0.0.5:8080")
        ])
        .is_ok());
        for bad in [
            "10.0.0.5:8080",
            "http://10.0.0.5:8080/kefu",
            "ftp://10.0.0.5",
        ] {
            assert!(
                matches!(
                    load(&[nats, postgres[0], postgres[1], advertised(bad)]),
                    Err(ConfigError::OutOfRange(_))
                ),
                "{bad}"
            );
        }
        assert!(!load(&[]).unwrap().cluster.enabled());
    }

    #[test]
    fn a_confidence_outside_0_to_1_is_refused() {
        let env = HashMap::from([("KEFU_SEARCH__MIN_CONFIDENCE".to_string(), "1.5".to_string())]);
        let result = Config::load_from(None, &env, &FlagOverrides::default());
        assert!(matches!(result, Err(ConfigError::OutOfRange(_))));
        let env = HashMap::from([("KEFU_SEARCH__MIN_CONFIDENCE".to_string(), "0.5".to_string())]);
        let config = Config::load_from(None, &env, &FlagOverrides::default()).unwrap();
        assert_eq!(config.search.min_confidence, 0.5);
    }

    #[test]
    fn malformed_env_values_are_reported() {
        let env = HashMap::from([(
            "KEFU_SERVER__LISTEN".to_string(),
            "not an address".to_string(),
        )]);
        let result = Config::load_from(None, &env, &FlagOverrides::default());
        assert!(matches!(result, Err(ConfigError::Invalid(_))));
    }
}
