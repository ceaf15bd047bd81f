//! Shared test harness: a knowledge base of fixture articles in a `TempDir`, and a [`TestApp`] that
//! builds the real state and router over it and sends requests with `tower::ServiceExt::oneshot`.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tempfile::TempDir;
use tower::ServiceExt;

use kefu::http::AppState;
use kefu::services::captcha::CaptchaSource;
use kefu::services::ManualClock;
use kefu::Config;

/// `returns/refund`: the refund article. Says 退款 (never 退钱 or 返款), and carries script text both as
/// inline code (which reaches the plain-text body and so the snippet) and as a raw HTML block (which
/// reaches the rendered HTML).
pub const REFUND: &str = "---
id: returns/refund
title: 如何申请退款
tags: [退款]
keywords: [退款流程]
questions:
  - 退款多久到账
updated: 2026-11-20
---

# 如何申请退款

在订单详情页点击「申请退款」并提交，退款按原路退回。客服不会发送 `<script>alert(1)</script>` 这样的退款链接，请提防诈骗。

<script>alert(\"xss\")</script>

## 到账时间

退款到账时间以银行为准。
";

/// `returns/seven-day`: returns, in Simplified Chinese (退货), without 退款.
pub const SEVEN_DAY: &str = "---
title: 七天无理由退货
tags: 退货
---

# 七天无理由退货

签收后 7 天内，商品完好、不影响二次销售，可以申请无理由退货。寄回商品时请保留快递单号。
";

/// `shipping/freight-insurance`: the only article with the dictionary word 运费险.
pub const FREIGHT_INSURANCE: &str = "# 运费险怎么理赔

购买运费险后，寄回商品产生的运费会自动理赔到账户余额，无需额外操作。
";

/// `invoices/e-invoice`: has similar questions (`questions`).
pub const E_INVOICE: &str = "---
title: 电子发票开具
tags: [发票]
questions:
  - 发票在哪里下载
  - 可以开公司抬头吗
---

# 电子发票开具

订单完成后，可在订单详情页申请开具电子发票，开具后可下载 PDF 文件。
";

/// `returns/trade-in`: a draft.
pub const TRADE_IN_DRAFT: &str = "---
title: 以旧换新活动
status: draft
---

# 以旧换新活动

以旧换新活动即将上线，敬请期待。
";

/// The user dictionary: keeps 运费险 whole.
pub const DICTIONARY: &str = "运费险 1000 n\n";
/// The synonym groups. 收据 shares no character with any fixture except 收, so only the synonym makes
/// it find the invoice article.
pub const SYNONYMS: &str = "退款,退钱,返款\n发票,收据\n";

/// Every fixture: (path under `kb/`, contents).
pub const FIXTURES: [(&str, &str); 5] = [
    ("returns/refund.md", REFUND),
    ("returns/seven-day.md", SEVEN_DAY),
    ("shipping/freight-insurance.md", FREIGHT_INSURANCE),
    ("invoices/e-invoice.md", E_INVOICE),
    ("returns/trade-in.md", TRADE_IN_DRAFT),
];

/// Ids of the published fixtures, sorted.
pub const PUBLISHED_IDS: [&str; 4] = [
    "invoices/e-invoice",
    "returns/refund",
    "returns/seven-day",
    "shipping/freight-insurance",
];

/// The PostgreSQL server the suite runs against instead of the embedded store, when set (unless
/// `KEFU_TEST_STORE=sled`), and that the PostgreSQL-only tests need.
pub const POSTGRES_URL_VAR: &str = "KEFU_TEST_POSTGRES_URL";

/// The PostgreSQL server for tests that need one: `None` (with a note on stderr) when
/// `KEFU_TEST_POSTGRES_URL` is unset; under CI (`CI` set) its absence fails the test instead.
pub fn postgres_url_or_skip(test: &str) -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test} needs PostgreSQL: {POSTGRES_URL_VAR} is unset under CI")
        }
        _ => {
            eprintln!(
                "skipped {test}: {POSTGRES_URL_VAR} is unset (no PostgreSQL to test against)"
            );
            None
        }
    }
}

/// The NATS server (with JetStream) the cluster tests need.
pub const NATS_URL_VAR: &str = "KEFU_TEST_NATS_URL";

/// The NATS server for tests that need one: `None` (with a note on stderr) when `KEFU_TEST_NATS_URL`
/// is unset; under CI (`CI` set) its absence fails the test instead.
pub fn nats_url_or_skip(test: &str) -> Option<String> {
    match std::env::var(NATS_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{test} needs NATS: {NATS_URL_VAR} is unset under CI")
        }
        _ => {
            eprintln!("skipped {test}: {NATS_URL_VAR} is unset (no NATS to test against)");
            None
        }
    }
}

/// Whether the suite runs on PostgreSQL (see [`POSTGRES_URL_VAR`]).
fn suite_postgres_url() -> Option<String> {
    if std::env::var("KEFU_TEST_STORE").is_ok_and(|store| store == "sled") {
        return None;
    }
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.is_empty())
}

/// A schema of its own in the test PostgreSQL database, dropped with it.
pub struct PgSchema {
    server_url: String,
    name: String,
    /// `server_url` with the schema as the search path: what kefu is configured with.
    pub url: String,
}

impl PgSchema {
    /// Creates a fresh, empty schema on `server_url`.
    pub fn create(server_url: &str) -> PgSchema {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "kefu_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            fastrand::u32(..)
        );
        let separator = if server_url.contains('?') { '&' } else { '?' };
        let url = format!("{server_url}{separator}options=-c%20search_path%3D{name}");
        let schema = PgSchema {
            server_url: server_url.to_string(),
            name,
            url,
        };
        schema.execute(&format!("CREATE SCHEMA {}", schema.name));
        schema
    }

    /// Runs `sql` on the server (on a thread of its own: the synchronous client refuses to run
    /// inside the tests' async runtime).
    fn execute(&self, sql: &str) {
        let (url, sql) = (self.server_url.clone(), sql.to_string());
        std::thread::spawn(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|error| panic!("connecting to the test PostgreSQL {url}: {error}"));
            client.batch_execute(&sql).expect(&sql);
        })
        .join()
        .expect("the PostgreSQL helper thread panicked");
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, sql) = (
            self.server_url.clone(),
            format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
        // Best effort: a failure here leaves a schema behind, not a wrong result.
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = client.batch_execute(&sql);
            }
        })
        .join();
    }
}

/// A root `TempDir` holding `kb/`, `index/` and `data/`; the root lets tests check that nothing is
/// written beside `kb/`. On PostgreSQL (see [`POSTGRES_URL_VAR`]) the records live in a schema of
/// their own instead of `data/db`.
pub struct TestDirs {
    /// The PostgreSQL schema of this installation, when the suite runs on PostgreSQL.
    pub postgres: Option<PgSchema>,
    _root: TempDir,
    /// The root folder.
    pub root: PathBuf,
    /// The knowledge base.
    pub kb: PathBuf,
    /// The index.
    pub index: PathBuf,
    /// The data folder.
    pub data: PathBuf,
}

impl TestDirs {
    /// Folders with an empty knowledge base.
    pub fn empty() -> TestDirs {
        let root_dir = tempfile::tempdir().expect("creating a temporary folder");
        let root = root_dir.path().to_path_buf();
        let dirs = TestDirs {
            postgres: suite_postgres_url().map(|url| PgSchema::create(&url)),
            _root: root_dir,
            kb: root.join("kb"),
            index: root.join("index"),
            data: root.join("data"),
            root,
        };
        std::fs::create_dir_all(&dirs.kb).unwrap();
        dirs
    }

    /// Folders whose knowledge base holds [`FIXTURES`], the dictionary and the synonyms.
    pub fn with_fixtures() -> TestDirs {
        let dirs = TestDirs::empty();
        for (path, contents) in FIXTURES {
            dirs.write(path, contents);
        }
        dirs.write("_dict.txt", DICTIONARY);
        dirs.write("_synonyms.txt", SYNONYMS);
        dirs
    }

    /// Folders whose knowledge base is the shipped starter set (`kb/` of this repository).
    pub fn with_starter_kb() -> TestDirs {
        let dirs = TestDirs::empty();
        let starter_kb = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kb");
        for entry in walkdir::WalkDir::new(&starter_kb) {
            let entry = entry.unwrap();
            if entry.file_type().is_file() {
                let relative = entry.path().strip_prefix(&starter_kb).unwrap();
                dirs.write(
                    relative.to_str().unwrap(),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
        dirs
    }

    /// As [`TestDirs::with_fixtures`], with the records in `postgres` (`None`: the embedded store),
    /// whichever store the suite runs on.
    pub fn with_fixtures_on(postgres: Option<PgSchema>) -> TestDirs {
        let mut dirs = TestDirs::with_fixtures();
        dirs.postgres = postgres;
        dirs
    }

    /// Writes a file under `kb/`, creating folders.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) {
        let path = self.kb.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// Removes a file under `kb/`.
    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.kb.join(relative)).unwrap();
    }

    /// A configuration over these folders; the watcher is off.
    pub fn config(&self) -> Config {
        let mut config = Config::default();
        config.paths.kb = self.kb.clone();
        config.paths.index = self.index.clone();
        config.paths.data = self.data.clone();
        config.search.watch = false;
        config.accounts.admin_password = Some(INITIAL_ADMIN_PASSWORD.to_string());
        if let Some(schema) = &self.postgres {
            config.storage.backend = kefu::config::StorageBackend::Postgres;
            config.storage.postgres_url = Some(schema.url.clone());
            config.storage.postgres_connections = 3;
        }
        config
    }

    /// The environment that points a `kefu` process at this installation's store (empty for the
    /// embedded store, whose folder is passed with `--data`).
    pub fn storage_env(&self) -> Vec<(String, String)> {
        match &self.postgres {
            Some(schema) => vec![
                ("KEFU_STORAGE__BACKEND".into(), "postgres".into()),
                ("KEFU_STORAGE__POSTGRES_URL".into(), schema.url.clone()),
                ("KEFU_STORAGE__POSTGRES_CONNECTIONS".into(), "3".into()),
            ],
            None => Vec::new(),
        }
    }

    /// Every file under `root`, relative, sorted (for "nothing was written outside kb/" checks).
    pub fn files_outside_kb(&self) -> Vec<String> {
        let mut files = Vec::new();
        collect_files(&self.root, &self.root, &mut files);
        files.retain(|file| {
            !file.starts_with("kb/") && !file.starts_with("index/") && !file.starts_with("data/")
        });
        files.sort();
        files
    }
}

fn collect_files(root: &Path, folder: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(root, &path, files);
        } else {
            files.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
            );
        }
    }
}

/// Password of `admin` at first start (`KEFU_ADMIN_PASSWORD`).
pub const INITIAL_ADMIN_PASSWORD: &str = "First-Start-2026#";
/// Password every test account ends up with after its forced change.
pub const PASSWORD: &str = "Kefu-Desk-2026!";
/// Initial password given to accounts the tests create.
pub const INITIAL_PASSWORD: &str = "Initial-Pass-99";
/// The answer of every captcha in tests.
pub const CAPTCHA_ANSWER: &str = "kefu7";
/// Where the test clock starts.
pub const START: &str = "2026-11-25T08:00:00Z";

/// Captcha pictures with a known answer.
#[derive(Debug)]
pub struct FixedCaptcha;

impl CaptchaSource for FixedCaptcha {
    fn generate(&self) -> (String, Vec<u8>) {
        // A real picture, since the browser tests look at how it is shown; the answer is known.
        let (_, png) = kefu::services::captcha::ImageCaptcha.generate();
        (CAPTCHA_ANSWER.to_string(), png)
    }
}

/// A signed-in browser: the session cookie and the CSRF token from the sign-in answer.
#[derive(Debug, Clone)]
pub struct Session {
    /// `kefu_session=…`, as sent back in `Cookie`.
    pub cookie: String,
    /// The `csrf_token` of the sign-in answer.
    pub csrf: String,
}

/// A response: status, JSON body (or the text, when not JSON) and headers.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: Value,
    /// Headers.
    pub headers: HeaderMap,
}

/// The application over real folders: state from `kefu::app::build_state_with` (a manual clock and
/// captchas with a known answer), router from `kefu::http::router`. `send` and its helpers act as
/// [`TestApp::session`], an editor signed in at start, unless told otherwise.
pub struct TestApp {
    /// The state (the knowledge service), for tests that start the watcher.
    pub state: AppState,
    router: Router,
    /// The clock every service reads.
    pub clock: Arc<ManualClock>,
    /// Who `send` acts as.
    pub session: Option<Session>,
    /// Stops the real listener started by [`TestApp::listen`], if any.
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The folders; dropped last.
    pub dirs: TestDirs,
}

impl TestApp {
    /// An application over the fixture knowledge base, acting as an editor.
    pub async fn new() -> TestApp {
        TestApp::start(TestDirs::with_fixtures()).await
    }

    /// An application over `dirs` (the index is opened or built as `kefu serve` does), acting as an
    /// editor (`editor`, created on first start of these folders).
    pub async fn start(dirs: TestDirs) -> TestApp {
        TestApp::start_at(dirs, START.parse().unwrap()).await
    }

    /// As [`TestApp::start`], with the clock starting at `start` instead of [`START`]: the browser
    /// tests start at the real time, which the pages' own clocks read.
    pub async fn start_at(dirs: TestDirs, start: jiff::Timestamp) -> TestApp {
        let mut app = TestApp::start_signed_out_at(dirs, start).await;
        let editor = match app.login("editor", PASSWORD).await {
            Ok(session) => session,
            Err(_) => {
                let admin = app.admin().await;
                app.create_account(&admin, "editor", &["editor"]).await.1
            }
        };
        app.session = Some(editor);
        app
    }

    /// An application over `dirs` with nobody signed in.
    pub async fn start_signed_out(dirs: TestDirs) -> TestApp {
        TestApp::start_signed_out_at(dirs, START.parse().unwrap()).await
    }

    /// As [`TestApp::start_signed_out`], with the clock starting at `start`.
    pub async fn start_signed_out_at(dirs: TestDirs, start: jiff::Timestamp) -> TestApp {
        TestApp::start_configured_at(dirs, start, |_| {}).await
    }

    /// An application over `dirs` with nobody signed in and `adjust` applied to the configuration.
    pub async fn start_configured(dirs: TestDirs, adjust: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start_configured_at(dirs, START.parse().unwrap(), adjust).await
    }

    /// As [`TestApp::start_configured`], with the clock starting at `start`.
    pub async fn start_configured_at(
        dirs: TestDirs,
        start: jiff::Timestamp,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let mut config = dirs.config();
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new(start));
        let state = kefu::app::build_state_with(&config, clock.clone(), Box::new(FixedCaptcha))
            .await
            .expect("building the application state");
        let router = kefu::http::router(state.clone());
        TestApp {
            state,
            router,
            clock,
            session: None,
            server: None,
            dirs,
        }
    }

    /// Drops the state and router and hands back the folders, for a restart.
    pub fn stop(self) -> TestDirs {
        let TestApp { dirs, .. } = self;
        dirs
    }

    /// Serves the router on a real loopback port (for WebSocket clients); returns its address.
    pub async fn listen(&mut self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = self
            .router
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        let handle = tokio::spawn(async move {
            axum::serve(kefu::http::without_nagle(listener), app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.server = Some((stop, handle));
        address
    }

    /// Stops the listener, waits until every connection let go of the state (close client sockets
    /// first), drops everything and hands back the folders.
    pub async fn shutdown(mut self) -> TestDirs {
        if let Some((stop, handle)) = self.server.take() {
            let _ = stop.send(());
            let _ = handle.await;
        }
        let TestApp {
            state,
            router,
            dirs,
            ..
        } = self;
        drop(router);
        for _ in 0..250 {
            if Arc::strong_count(&state.assist) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            Arc::strong_count(&state.assist),
            1,
            "a connection still holds the state"
        );
        drop(state);
        dirs
    }

    /// Sends a request as `session`, from `ip` when given, with an optional raw body.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<(&str, Vec<u8>)>,
        session: Option<&Session>,
        ip: Option<IpAddr>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(session) = session {
            builder = builder
                .header(header::COOKIE, &session.cookie)
                .header("x-csrf-token", &session.csrf);
        }
        let mut request = match body {
            Some((content_type, bytes)) => builder
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(bytes)),
            None => builder.body(Body::empty()),
        }
        .unwrap_or_else(|error| panic!("building a request for {uri}: {error}"));
        if let Some(ip) = ip {
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 40000)));
        }
        self.raw(request).await
    }

    /// Sends a request built by the test.
    pub async fn raw(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                // Not JSON: keep the text so the assertion message shows it.
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    /// Sends a request as [`TestApp::session`] with an optional raw body and content type.
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let reply = self
            .call(method, uri, body, self.session.as_ref(), None)
            .await;
        (reply.status, reply.body)
    }

    /// Sends JSON as `session` (none: signed out).
    pub async fn json_as(
        &self,
        session: Option<&Session>,
        method: Method,
        uri: &str,
        json: Value,
    ) -> (StatusCode, Value) {
        let body = ("application/json", serde_json::to_vec(&json).unwrap());
        let reply = self.call(method, uri, Some(body), session, None).await;
        (reply.status, reply.body)
    }

    /// `GET uri` as `session`.
    pub async fn get_as(&self, session: Option<&Session>, uri: &str) -> (StatusCode, Value) {
        let reply = self.call(Method::GET, uri, None, session, None).await;
        (reply.status, reply.body)
    }

    /// Signs in; the session, or the refusal's status and body.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Session, (StatusCode, Value)> {
        self.login_with(serde_json::json!({ "username": username, "password": password }))
            .await
    }

    /// Signs in with a whole request body.
    pub async fn login_with(&self, request: Value) -> Result<Session, (StatusCode, Value)> {
        let body = ("application/json", serde_json::to_vec(&request).unwrap());
        let reply = self
            .call(Method::POST, "/api/v1/auth/login", Some(body), None, None)
            .await;
        if reply.status != StatusCode::OK {
            return Err((reply.status, reply.body));
        }
        let set_cookie = reply
            .headers
            .get(header::SET_COOKIE)
            .expect("sign-in sets a cookie")
            .to_str()
            .unwrap()
            .to_string();
        let cookie = set_cookie.split(';').next().unwrap().to_string();
        let csrf = reply.body["csrf_token"].as_str().unwrap().to_string();
        Ok(Session { cookie, csrf })
    }

    /// Signs in and changes the forced password from `initial` to [`PASSWORD`].
    pub async fn login_and_change_password(&self, username: &str, initial: &str) -> Session {
        let session = self
            .login(username, initial)
            .await
            .unwrap_or_else(|refusal| panic!("signing in as {username}: {refusal:?}"));
        let (status, body) = self
            .json_as(
                Some(&session),
                Method::POST,
                "/api/v1/me/password",
                serde_json::json!({ "old_password": initial, "new_password": PASSWORD }),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "changing the password of {username}: {body}"
        );
        session
    }

    /// A session of `admin`, changing the first-start password on first use.
    pub async fn admin(&self) -> Session {
        match self.login("admin", PASSWORD).await {
            Ok(session) => session,
            Err(_) => {
                self.login_and_change_password("admin", INITIAL_ADMIN_PASSWORD)
                    .await
            }
        }
    }

    /// A skill group named `name` with routing `mode` (`auto` or `manual`); its id.
    pub async fn skill_group(&self, admin: &Session, name: &str, mode: &str) -> u64 {
        let (status, group) = self
            .json_as(
                Some(admin),
                Method::POST,
                "/api/v1/admin/groups",
                serde_json::json!({ "name": name }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{group}");
        let id = group["id"].as_u64().unwrap();
        let (status, body) = self
            .json_as(
                Some(admin),
                Method::PUT,
                &format!("/api/v1/admin/groups/{id}/routing"),
                serde_json::json!({ "mode": mode }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        id
    }

    /// Puts account `id` in `group` under `display_name`.
    pub async fn join_group(&self, admin: &Session, id: u64, group: u64, display_name: &str) {
        let (status, body) = self
            .json_as(
                Some(admin),
                Method::PATCH,
                &format!("/api/v1/admin/accounts/{id}"),
                serde_json::json!({ "groups": [group], "display_name": display_name }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Creates an account with `roles` (by `admin`), signs it in and does the forced password change;
    /// returns its id and session.
    pub async fn create_account(
        &self,
        admin: &Session,
        username: &str,
        roles: &[&str],
    ) -> (u64, Session) {
        let (status, body) = self
            .json_as(
                Some(admin),
                Method::POST,
                "/api/v1/admin/accounts",
                serde_json::json!({
                    "username": username,
                    "password": INITIAL_PASSWORD,
                    "roles": roles,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "creating {username}: {body}");
        let id = body["account"]["id"].as_u64().unwrap();
        (
            id,
            self.login_and_change_password(username, INITIAL_PASSWORD)
                .await,
        )
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Method::GET, uri, None).await
    }

    /// `PUT uri` with a JSON body.
    pub async fn put(&self, uri: &str, json: Option<Value>) -> (StatusCode, Value) {
        let body = json.map(|json| ("application/json", serde_json::to_vec(&json).unwrap()));
        self.send(Method::PUT, uri, body).await
    }

    /// `DELETE uri`.
    pub async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Method::DELETE, uri, None).await
    }

    /// `PUT /api/v1/kb/articles/{id}` with `{"markdown": markdown}`.
    pub async fn put_article(&self, id: &str, markdown: &str) -> (StatusCode, Value) {
        self.put(
            &format!("/api/v1/kb/articles/{}", encode(id)),
            Some(serde_json::json!({ "markdown": markdown })),
        )
        .await
    }

    /// `GET /api/v1/kb/search?q=…` plus `extra` (already encoded, e.g. `&limit=2`); asserts 200.
    pub async fn search(&self, query: &str, extra: &str) -> Value {
        let uri = format!("/api/v1/kb/search?q={}{extra}", encode(query));
        let (status, body) = self.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        body
    }

    /// Ids of the hits for `query`, best first.
    pub async fn search_ids(&self, query: &str) -> Vec<String> {
        hit_ids(&self.search(query, "").await)
    }

    /// The best hit for `query`, if any.
    pub async fn top_hit(&self, query: &str) -> Option<String> {
        self.search_ids(query).await.into_iter().next()
    }

    /// Whether `id` is among the hits for `query`. Search also matches single characters, so "not
    /// found" is asserted about one article, never as an empty hit list.
    pub async fn finds(&self, query: &str, id: &str) -> bool {
        self.search_ids(query).await.iter().any(|hit| hit == id)
    }
}

/// Sends `json` to `uri` on the listener at `server` (see [`TestApp::listen`]) over a real TCP
/// connection whose local end is bound to `from` (any of 127.0.0.0/8 works on Linux): the handler sees
/// `from` as the client address, exactly as it would a remote client's.
pub async fn post_from(server: SocketAddr, from: IpAddr, uri: &str, json: &Value) -> Reply {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_local_address(Some(from));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Body>(connector);
    let request = Request::post(format!("http://{server}{uri}"))
        .header(header::CONTENT_TYPE, "application/json")
        // No pooled connection outlives the call (TestApp::shutdown waits for connections to end).
        .header(header::CONNECTION, "close")
        .body(Body::from(serde_json::to_vec(json).unwrap()))
        .unwrap();
    let response = client
        .request(request)
        .await
        .unwrap_or_else(|error| panic!("POST {uri} from {from}: {error}"));
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Reply {
        status,
        body,
        headers,
    }
}

/// The bodies of the visitor's messages in a list of messages (a `hello`, a transcript, a history).
pub fn visitor_bodies(messages: &Value) -> Vec<&str> {
    messages
        .as_array()
        .expect("a list of messages")
        .iter()
        .filter(|message| message["kind"] == "visitor")
        .map(|message| message["body"].as_str().expect("a message body"))
        .collect()
}

/// Ids of the hits of a search response, best first.
pub fn hit_ids(results: &Value) -> Vec<String> {
    results["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits array in {results}"))
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_string())
        .collect()
}

/// Percent-encodes everything but unreserved characters and `/`, for paths and query values.
pub fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// The `{"code", "message"}` error body.
pub fn error_body(code: &str, message: &str) -> Value {
    serde_json::json!({ "code": code, "message": message })
}

/// A WebSocket client speaking the desk's JSON frames.
pub struct Ws {
    stream: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

/// How long a test waits for an expected frame.
const FRAME_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Ws {
    /// Opens `/ws/visitor` with a visitor token (`v1.…`).
    pub async fn visitor(address: SocketAddr, token: &str, last_seq: u64) -> Ws {
        let url = format!(
            "ws://{address}/ws/visitor?token={}&last_seq={last_seq}",
            encode(token)
        );
        let (stream, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("visitor socket");
        Ws { stream }
    }

    /// Opens `/ws/agent` with a session cookie.
    pub async fn agent(address: SocketAddr, session: &Session) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{address}/ws/agent")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert(header::COOKIE, session.cookie.parse().unwrap());
        let (stream, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("agent socket");
        Ws { stream }
    }

    /// Sends one JSON frame.
    pub async fn send(&mut self, frame: Value) {
        use futures_util::SinkExt;
        self.stream
            .send(tokio_tungstenite::tungstenite::Message::Text(
                frame.to_string().into(),
            ))
            .await
            .expect("sending a frame");
    }

    /// The next JSON frame, or `None` after `wait` without one (or when the socket closed).
    pub async fn next_within(&mut self, wait: std::time::Duration) -> Option<Value> {
        use futures_util::StreamExt;
        loop {
            let frame = tokio::time::timeout(wait, self.stream.next())
                .await
                .ok()??;
            match frame.ok()? {
                tokio_tungstenite::tungstenite::Message::Text(text) => {
                    return Some(serde_json::from_str(&text).expect("frames are JSON"))
                }
                tokio_tungstenite::tungstenite::Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Skips frames until one of type `kind` arrives; panics after 5 s.
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, |_| true).await
    }

    /// Skips frames until one of type `kind` satisfying `matches` arrives; panics after 5 s.
    pub async fn expect_where(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + FRAME_WAIT;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_within(left).await {
                Some(frame) if frame["type"] == kind && matches(&frame) => return frame,
                Some(frame) => skipped.push(frame),
                None => panic!("no `{kind}` frame within 5 s; got {skipped:#?}"),
            }
        }
    }

    /// Whether the server closes the socket within `wait` (frames before the close are skipped).
    pub async fn closed_within(&mut self, wait: std::time::Duration) -> bool {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.stream.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_)))) => return true,
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Every frame that arrives within `wait`.
    pub async fn drain(&mut self, wait: std::time::Duration) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(frame) = self.next_within(wait).await {
            frames.push(frame);
        }
        frames
    }
}

/// Deletes a test's stream (a bucket is the stream `KV_<bucket>`) when dropped, even when the test
/// fails, so the shared server does not collect them.
pub struct DeleteStream {
    /// The NATS server.
    pub url: String,
    /// The stream.
    pub stream: String,
}

impl Drop for DeleteStream {
    fn drop(&mut self) {
        let url = self.url.clone();
        let stream = self.stream.clone();
        // A runtime of its own: the test's may be shutting down.
        let deleted = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to clean up");
            runtime.block_on(async {
                let nats = async_nats::connect(&url).await.ok()?;
                async_nats::jetstream::new(nats)
                    .delete_stream(&stream)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(deleted, Ok(Some(_))) {
            eprintln!("could not delete the test stream {}", self.stream);
        }
    }
}

/// One blocking request to a `kefu serve` process at `base` (`http://host:port`), for the tests that
/// run the binary: status (0 when it did not answer), JSON body (the text when not JSON, Null when
/// empty) and the session cookie it set, if any. `GET`, `DELETE`, `POST`, `PUT` and `PATCH`.
pub fn http_call(
    base: &str,
    method: &str,
    path: &str,
    session: Option<&Session>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    let url = format!("{base}{path}");
    let signed = |request: ureq::RequestBuilder<ureq::typestate::WithoutBody>| match session {
        Some(session) => request
            .header("Cookie", &session.cookie)
            .header("X-CSRF-Token", &session.csrf),
        None => request,
    };
    let with_body = |request: ureq::RequestBuilder<ureq::typestate::WithBody>| {
        match session {
            Some(session) => request
                .header("Cookie", &session.cookie)
                .header("X-CSRF-Token", &session.csrf),
            None => request,
        }
        .header("Content-Type", "application/json")
        .send(body.clone().unwrap_or(Value::Null).to_string())
    };
    let response = match method {
        "GET" => signed(agent.get(&url)).call(),
        "DELETE" => signed(agent.delete(&url)).call(),
        "POST" => with_body(agent.post(&url)),
        "PUT" => with_body(agent.put(&url)),
        "PATCH" => with_body(agent.patch(&url)),
        other => panic!("http_call does not send {other}"),
    };
    let Ok(mut response) = response else {
        return (0, Value::Null, None);
    };
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("kefu_session="))
        .and_then(|value| value.split(';').next())
        .map(str::to_string);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let body = match text.trim() {
        "" => Value::Null,
        trimmed => serde_json::from_str(trimmed).unwrap_or(Value::String(text)),
    };
    (response.status().as_u16(), body, cookie)
}
