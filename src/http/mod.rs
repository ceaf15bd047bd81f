//! HTTP: the axum router over the services. Only this module knows about status codes and JSON shapes.

pub mod access;
pub mod error;
pub mod extract;
pub mod openapi;
mod routes;

pub use routes::ws::{parse_agent_command, parse_visitor_command};

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

use crate::error::{Error, Result};
use crate::services::stats::StatsService;
use crate::services::visitors::VisitorService;
use crate::services::webhooks::WebhookService;
use crate::services::{
    AccountService, AssistService, ConversationService, KnowledgeService, Metrics,
    QuickReplyService,
};

/// Largest request body accepted (an article is at most 1 MiB of markdown, JSON-escaped).
const MAX_BODY_BYTES: usize = 4 << 20;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The knowledge base.
    pub knowledge: Arc<KnowledgeService>,
    /// Accounts, sessions, settings.
    pub accounts: Arc<AccountService>,
    /// The live-chat desk.
    pub conversations: Arc<ConversationService>,
    /// Quick replies.
    pub quick_replies: Arc<QuickReplyService>,
    /// Suggestions, feedback, deflection.
    pub assist: Arc<AssistService>,
    /// Suggestions pushed to agents after visitor messages, on a bounded pool.
    pub suggestions: Arc<crate::services::suggestions::SuggestionPump>,
    /// Instruments observed by the services, rendered by `GET /metrics`.
    pub metrics: Arc<Metrics>,
    /// Workbench statistics.
    pub stats: Arc<StatsService>,
    /// Visitor context, block list, online visitors.
    pub visitors: Arc<VisitorService>,
    /// Webhooks and their deliveries.
    pub webhooks: Arc<WebhookService>,
    /// Channels: the API channel, WeChat 公众号, 企业微信 微信客服.
    pub channels: Arc<crate::channels::ChannelService>,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

/// `listener` with Nagle's algorithm off on every accepted connection. A socket's echo and its `ack`
/// (or a response's head and body) go out as separate small writes; with Nagle on, the second waited
/// for the client's delayed acknowledgement, about 40 ms on every acknowledged message.
pub fn without_nagle(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    listener.tap_io(set_nodelay)
}

fn set_nodelay(stream: &mut tokio::net::TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY on a connection");
    }
}

/// Runs account work (argon2 hashing, database writes made durable) on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    work: impl FnOnce(&AccountService) -> Result<T> + Send + 'static,
) -> Result<T> {
    off_thread(&state.accounts, work).await
}

/// Runs a service's synchronous work (database units of work, statistics scans, argon2) on the
/// blocking pool.
pub(crate) async fn off_thread<S: Send + Sync + 'static, T: Send + 'static>(
    service: &Arc<S>,
    work: impl FnOnce(&S) -> Result<T> + Send + 'static,
) -> Result<T> {
    let service = Arc::clone(service);
    // The request's span (with its request id) follows the work onto the blocking thread.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(|| work(&service)))
        .await
        .map_err(|error| Error::Internal(format!("background task failed: {error}")))?
}

/// Every route but the web pages, each with its OpenAPI description: `routes!` registers a handler
/// and its `#[utoipa::path]` together, so no API route exists undocumented.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    openapi::base()
        .merge(openapi::router())
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .merge(routes::kb::router())
        .merge(routes::auth::router())
        .merge(routes::me::router())
        .merge(routes::admin::router())
        .merge(routes::accounts::router())
        .merge(routes::visitors::router())
        .merge(routes::conversations::router())
        .merge(routes::ws::router())
        .merge(routes::quick_replies::router())
        .merge(routes::assist::router())
        .merge(routes::stats::router())
        .merge(routes::webhooks::router())
        .merge(routes::admin_settings::router())
        .merge(routes::admin_kb::router())
        .merge(routes::channels::router())
        .merge(routes::channel_api::router())
        .merge(routes::channel_callbacks::router())
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, _document) = api_router().split_for_parts();
    api.merge(routes::pages::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        // Layers run outside-in from the bottom: the id is set (or kept from the client) first, the
        // request's span carries it, so every log line of the request names it; the answer echoes it.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The router `kefu serve` listens with from the first moment: until `ready` holds the application it
/// answers `/healthz` and `503 starting` to everything else; then it hands every request over.
pub fn starting_router(ready: Arc<std::sync::OnceLock<Router>>) -> Router {
    Router::new().fallback(move |request: axum::http::Request<axum::body::Body>| {
        let ready = Arc::clone(&ready);
        async move {
            use tower::ServiceExt;
            match ready.get() {
                Some(app) => match app.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                },
                None if request.uri().path() == "/healthz" => {
                    axum::response::IntoResponse::into_response(axum::Json(
                        serde_json::json!({"status": "ok"}),
                    ))
                }
                None => axum::response::IntoResponse::into_response(Error::Starting),
            }
        }
    })
}

fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}

async fn not_found(uri: axum::http::Uri) -> Error {
    Error::NotFound(format!("no route for {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Error {
    Error::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path()))
}

/// A handler panic is a bug; the client still gets the usual JSON body and the connection survives.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    axum::response::IntoResponse::into_response(Error::Internal(format!(
        "handler panicked: {detail}"
    )))
}
