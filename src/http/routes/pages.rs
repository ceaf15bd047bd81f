//! The web pages: files under `web/`, embedded into the binary (read from disk in debug builds, so a
//! page edit shows on reload without a rebuild).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

use crate::error::Error;
use crate::http::AppState;

#[derive(RustEmbed)]
#[folder = "web/"]
struct Assets;

/// Pages may load scripts, styles and images only from this origin; nothing inline runs.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self' ws: wss:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

/// The visitor chat is framed by the widget on customers' own sites.
const CHAT_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self' ws: wss:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors *";

/// `GET /`, the pages, `/widget.js` and `/assets/*`
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/workbench") }))
        .route("/login", get(|| page("login.html", PAGE_POLICY)))
        .route("/workbench", get(|| page("workbench.html", PAGE_POLICY)))
        .route("/editor", get(|| page("editor.html", PAGE_POLICY)))
        .route("/supervisor", get(|| page("supervisor.html", PAGE_POLICY)))
        .route("/admin", get(|| page("admin.html", PAGE_POLICY)))
        .route("/chat", get(|| page("chat.html", CHAT_POLICY)))
        .route("/widget.js", get(|| asset_response("widget.js")))
        .route("/assets/{*path}", get(asset))
}

async fn page(file: &'static str, policy: &'static str) -> Response {
    let mut response = asset_response(file).await;
    if response.status() == StatusCode::OK {
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}

async fn asset(Path(path): Path<String>) -> Response {
    asset_response(&format!("assets/{path}")).await
}

async fn asset_response(path: &str) -> Response {
    let Some(file) = Assets::get(path) else {
        return Error::NotFound(format!("no page or asset {path}")).into_response();
    };
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.ends_with("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_owned()
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        file.data.into_owned(),
    )
        .into_response()
}
