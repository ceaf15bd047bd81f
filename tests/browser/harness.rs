//! The browser side of the end-to-end tests: chromedriver started on a free port (killed on drop),
//! headless Chromium sessions each with a fresh profile, polling waits, the console log, and the
//! screenshots saved on failure (`target/browser-artifacts/<test>/`) or for the README
//! (`docs/screenshots/`, only with `KEFU_SCREENSHOTS=1`).

use std::future::Future;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{json, Value};
use tempfile::TempDir;

/// The browser Debian's `chromium` package installs.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver Debian's `chromium-driver` package installs.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait polls before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);
/// How often a wait polls.
const POLL: Duration = Duration::from_millis(100);

/// One browser test at a time: each runs several Chromiums, and the machines have two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether the browser tests can run here. Without Chromium they are skipped with a message, except
/// under CI (`CI` set), where they must fail.
pub fn chromium_available() -> bool {
    let present = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "browser tests need {CHROMIUM} and {CHROMEDRIVER} under CI: install chromium chromium-driver"
        );
        eprintln!("browser tests skipped: install chromium chromium-driver");
    }
    present
}

/// A running chromedriver; killed on drop.
struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("finding a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("starting {CHROMEDRIVER}: {error}"));
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on port {port}"
            );
            std::thread::sleep(POLL);
        }
        driver
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A POST to a chromedriver extension of the session (`goog/cdp/execute`, `se/log`).
#[derive(Debug)]
struct SessionCommand {
    path: &'static str,
    body: Value,
}

impl WebDriverCompatibleCommand for SessionCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session is open");
        base_url.join(&format!("session/{session}/{}", self.path))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(self.body.to_string()))
    }
}

/// A browser window of one person (visitor, agent, editor).
#[derive(Clone)]
pub struct Browser {
    /// Who uses it, for messages and file names.
    pub name: String,
    /// The WebDriver session.
    pub client: Client,
    /// The server's `http://127.0.0.1:port`.
    base: String,
}

/// One test's browsers and chromedriver.
pub struct Harness {
    test: &'static str,
    driver: ChromeDriver,
    base: String,
    browsers: Mutex<Vec<(Browser, TempDir)>>,
    console: Mutex<Vec<(String, Value)>>,
    /// Console errors a test causes on purpose (a refused form): entries containing one of these.
    expected_errors: Mutex<Vec<String>>,
}

/// Runs `scenario` with a fresh chromedriver against the server at `address`. On a panic every open
/// browser's screenshot and console log go to `target/browser-artifacts/<test>/` (the path is printed)
/// and the panic goes on; on success the console must hold no error.
pub async fn run<F, Fut>(test: &'static str, address: SocketAddr, scenario: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()>,
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let harness = Arc::new(Harness {
        test,
        driver: ChromeDriver::start(),
        base: format!("http://{address}"),
        browsers: Mutex::new(Vec::new()),
        console: Mutex::new(Vec::new()),
        expected_errors: Mutex::new(Vec::new()),
    });
    let outcome = AssertUnwindSafe(scenario(harness.clone()))
        .catch_unwind()
        .await;
    let outcome = match outcome {
        Ok(()) => {
            AssertUnwindSafe(harness.assert_clean_console())
                .catch_unwind()
                .await
        }
        failed => failed,
    };
    if let Err(panic) = outcome {
        let folder = harness.save_artifacts().await;
        eprintln!("browser test `{test}` failed: screenshots and console logs in {folder:?}");
        harness.close().await;
        std::panic::resume_unwind(panic);
    }
    harness.close().await;
}

/// The `target` folder (`CARGO_TARGET_DIR` when set).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

impl Harness {
    /// Opens a headless Chromium with a fresh profile. `stub_notifications` replaces the page's
    /// `Notification` (permission granted, calls recorded in `window.__kefuNotifications`) and makes
    /// the page believe it is not focused, so that desktop notifications are raised.
    pub async fn browser(&self, name: &str, stub_notifications: bool) -> Browser {
        let profile = tempfile::tempdir().expect("a browser profile folder");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1440,900",
                    "--lang=zh-CN",
                    "--autoplay-policy=no-user-gesture-required",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--no-default-browser-check",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.driver.url)
            .await
            .unwrap_or_else(|error| panic!("opening a Chromium session for {name}: {error}"));
        if stub_notifications {
            client
                .issue_cmd(SessionCommand {
                    path: "goog/cdp/execute",
                    body: json!({
                        "cmd": "Page.addScriptToEvaluateOnNewDocument",
                        "params": {"source": NOTIFICATION_STUB},
                    }),
                })
                .await
                .expect("injecting the Notification stub");
        }
        let browser = Browser {
            name: name.to_string(),
            client,
            base: self.base.clone(),
        };
        self.browsers
            .lock()
            .unwrap()
            .push((browser.clone(), profile));
        browser
    }

    /// The browsers opened so far (a copy, so the lock is not held across awaits).
    fn open_browsers(&self) -> Vec<Browser> {
        self.browsers
            .lock()
            .unwrap()
            .iter()
            .map(|(browser, _)| browser.clone())
            .collect()
    }

    /// Reads what each browser logged since the last call into the test's console record.
    async fn collect_console(&self) {
        let browsers = self.open_browsers();
        for browser in browsers {
            let entries = browser
                .client
                .issue_cmd(SessionCommand {
                    path: "se/log",
                    body: json!({"type": "browser"}),
                })
                .await
                .unwrap_or_else(|error| json!([{"level": "SEVERE", "message": format!("reading the log: {error}")}]));
            let mut console = self.console.lock().unwrap();
            for entry in entries.as_array().cloned().unwrap_or_default() {
                console.push((browser.name.clone(), entry));
            }
        }
    }

    /// Accepts console errors containing `needle` (e.g. the browser's own "Failed to load resource"
    /// line for a request the test makes the server refuse on purpose); any other still fails.
    pub fn expect_console_error(&self, needle: &str) {
        self.expected_errors
            .lock()
            .unwrap()
            .push(needle.to_string());
    }

    /// Fails on any console error (JavaScript errors, CSP violations, failed requests) but the
    /// expected ones.
    async fn assert_clean_console(&self) {
        self.collect_console().await;
        let console = self.console.lock().unwrap();
        let expected = self.expected_errors.lock().unwrap();
        let errors: Vec<String> = console
            .iter()
            .filter(|(_, entry)| entry["level"] == "SEVERE")
            .filter(|(_, entry)| {
                let message = entry["message"].as_str().unwrap_or_default();
                !expected
                    .iter()
                    .any(|needle| message.contains(needle.as_str()))
            })
            .map(|(name, entry)| format!("{name}: {}", entry["message"]))
            .collect();
        assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    }

    /// Screenshots of every browser and the console log; returns the folder.
    async fn save_artifacts(&self) -> PathBuf {
        let folder = target_dir().join("browser-artifacts").join(self.test);
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).expect("creating the artifacts folder");
        self.collect_console().await;
        let browsers = self.open_browsers();
        for browser in &browsers {
            if let Ok(png) = browser.client.screenshot().await {
                let _ = std::fs::write(folder.join(format!("{}.png", browser.name)), png);
            }
            if let Ok(url) = browser.client.current_url().await {
                let _ = std::fs::write(
                    folder.join(format!("{}.url.txt", browser.name)),
                    url.as_str(),
                );
            }
        }
        let mut log = String::new();
        for (name, entry) in self.console.lock().unwrap().iter() {
            log.push_str(&format!(
                "[{name}] {} {}\n",
                entry["level"].as_str().unwrap_or("?"),
                entry["message"].as_str().unwrap_or_default()
            ));
        }
        let _ = std::fs::write(folder.join("console.log"), log);
        folder
    }

    async fn close(&self) {
        let browsers: Vec<(Browser, TempDir)> = std::mem::take(&mut *self.browsers.lock().unwrap());
        for (browser, _profile) in browsers {
            let _ = browser.client.close().await;
        }
    }
}

/// Replaces `Notification` before the page's scripts run: permission granted, each notification
/// recorded as `{title, body}` in `window.__kefuNotifications`; the page is told it has no focus.
const NOTIFICATION_STUB: &str = r#"
(() => {
  const shown = [];
  class StubNotification {
    constructor(title, options) { shown.push({ title: String(title), body: String((options || {}).body || "") }); this.onclick = null; }
    close() {}
    static requestPermission() { return Promise.resolve("granted"); }
  }
  StubNotification.permission = "granted";
  Object.defineProperty(window, "Notification", { value: StubNotification, configurable: true, writable: true });
  Object.defineProperty(window, "__kefuNotifications", { value: shown });
  document.hasFocus = () => false;
})();
"#;

impl Browser {
    /// Opens `path` on the server.
    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|error| panic!("{}: opening {url}: {error}", self.name));
    }

    /// Waits for an element matching `css`.
    pub async fn wait(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{}: no `{css}` within {WAIT:?}: {error}", self.name))
    }

    /// Waits for `css` and clicks it.
    pub async fn click(&self, css: &str) {
        let element = self.wait(css).await;
        element
            .click()
            .await
            .unwrap_or_else(|error| panic!("{}: clicking `{css}`: {error}", self.name));
    }

    /// Waits for `css`, empties it and types `text` (keys such as Enter may follow as `fantoccini::key::Key`).
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|error| panic!("{}: clearing `{css}`: {error}", self.name));
        self.type_into(css, text).await;
    }

    /// Types `text` into `css` without clearing it first.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait(css).await;
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("{}: typing into `{css}`: {error}", self.name));
    }

    /// Presses a key in `css`.
    pub async fn press(&self, css: &str, key: fantoccini::key::Key) {
        self.type_into(css, &char::from(key).to_string()).await;
    }

    /// Runs a script and returns its value.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|error| panic!("{}: running a script: {error}", self.name))
    }

    /// Polls `script` (a function body returning a value) until it returns something truthy;
    /// returns that value. Panics with `what` after [`WAIT`].
    pub async fn wait_until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        let mut last = Value::Null;
        loop {
            if let Ok(value) = self.client.execute(script, args.clone()).await {
                let truthy = match &value {
                    Value::Null => false,
                    Value::Bool(flag) => *flag,
                    Value::String(text) => !text.is_empty(),
                    Value::Array(items) => !items.is_empty(),
                    _ => true,
                };
                if truthy {
                    return value;
                }
                last = value;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {what} not within {WAIT:?} (last: {last})",
                self.name
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matching `css` has `needle` in its text.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        self.wait_until(
            &format!("`{css}` containing {needle:?}"),
            "return Array.from(document.querySelectorAll(arguments[0])).some(e => e.textContent.includes(arguments[1]));",
            vec![json!(css), json!(needle)],
        )
        .await;
    }

    /// The value of a form field.
    pub async fn value(&self, css: &str) -> String {
        self.wait(css).await;
        self.script(
            "return document.querySelector(arguments[0]).value;",
            vec![json!(css)],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let element = self.wait(css).await;
        element
            .text()
            .await
            .unwrap_or_else(|error| panic!("{}: text of `{css}`: {error}", self.name))
    }

    /// The notifications raised so far on the current page (see [`Harness::browser`]).
    pub async fn notifications(&self) -> Vec<(String, String)> {
        let shown = self
            .script("return window.__kefuNotifications || [];", vec![])
            .await;
        shown
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                (
                    entry["title"].as_str().unwrap_or_default().to_string(),
                    entry["body"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Saves a screenshot to `docs/screenshots/<file>` when `KEFU_SCREENSHOTS=1`.
    pub async fn save_screenshot_for_docs(&self, file: &str) {
        if std::env::var("KEFU_SCREENSHOTS").as_deref() != Ok("1") {
            return;
        }
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|error| panic!("{}: screenshot: {error}", self.name));
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&folder).expect("creating docs/screenshots");
        std::fs::write(folder.join(file), png).expect("writing the screenshot");
        eprintln!("saved docs/screenshots/{file}");
    }
}
