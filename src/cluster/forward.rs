//! The front of a cluster node: what it answers itself and what it forwards to the desk leader.
//!
//! The leader answers everything with its full application. A follower answers from its own copies
//! what only reads them: web pages, health, its metrics, knowledge-base search (its index, kept in step
//! by `kb_sync`) and history search (its message index, fed by `message_log`); every other request,
//! WebSockets included, goes to the leader through an HTTP reverse proxy (hyper's client, upgrades
//! piped both ways), with the client's address appended to `X-Forwarded-For`. A
//! follower that dies closes its proxied connections, so the leader sees its sockets leave at once; a
//! leader that dies closes them on the followers, whose clients reconnect and reach the next leader.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::RwLock;
use tower::ServiceExt;

use crate::error::Error;

/// Marks a request a follower forwarded: a node that is not the leader answers it `no_leader` instead
/// of forwarding it again, so two nodes that briefly each think the other leads cannot bounce it.
const FORWARDED_BY: &str = "x-kefu-forwarded-by";

/// What the node answers with, as its role changes.
#[derive(Clone)]
enum Mode {
    /// Services still opening: `/healthz` answers, everything else is `503 starting`.
    Starting,
    /// The leader's full application.
    Leading(Router),
    /// A follower: its own application for what it serves itself, the leader for the rest.
    Following {
        local: Router,
        leader_url: Option<Arc<str>>,
    },
}

/// The node's router, switched as the election decides.
pub struct Front {
    mode: RwLock<Mode>,
    client: Client<HttpConnector, Body>,
}

impl std::fmt::Debug for Front {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Front").finish_non_exhaustive()
    }
}

impl Default for Front {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        // Frames through a proxied socket are small: Nagle would hold each one for the peer's
        // delayed acknowledgement.
        connector.set_nodelay(true);
        Front {
            mode: RwLock::new(Mode::Starting),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl Front {
    /// This node leads: `app` answers everything.
    pub fn lead(&self, app: Router) {
        *self.mode.write() = Mode::Leading(app);
    }

    /// This node follows: `local` answers what a follower serves itself.
    pub fn follow(&self, local: Router) {
        let mut mode = self.mode.write();
        let leader_url = match &*mode {
            Mode::Following { leader_url, .. } => leader_url.clone(),
            _ => None,
        };
        *mode = Mode::Following { local, leader_url };
    }

    /// Where the leader is now (`None` while one takes over).
    pub fn set_leader_url(&self, url: Option<&str>) {
        if let Mode::Following { leader_url, .. } = &mut *self.mode.write() {
            *leader_url = url.map(|url| Arc::from(url.trim_end_matches('/')));
        }
    }

    /// Whether this node answers as the leader.
    pub fn is_leading(&self) -> bool {
        matches!(*self.mode.read(), Mode::Leading(_))
    }

    /// The router `kefu serve` listens with.
    pub fn router(self: &Arc<Self>) -> Router {
        let front = Arc::clone(self);
        Router::new().fallback(move |request: Request<Body>| {
            let front = Arc::clone(&front);
            async move { front.answer(request).await }
        })
    }

    async fn answer(&self, request: Request<Body>) -> Response {
        let mode = self.mode.read().clone();
        match mode {
            Mode::Starting if request.uri().path() == "/healthz" => {
                axum::Json(serde_json::json!({"status": "ok"})).into_response()
            }
            Mode::Starting => Error::Starting.into_response(),
            // Ready means able to serve the desk: a follower that knows no leader cannot, so a load
            // balancer that checks `/readyz` sends nobody here during a takeover.
            Mode::Following {
                leader_url: None, ..
            } if request.uri().path() == "/readyz" => no_leader().into_response(),
            Mode::Leading(app) => into_response(app.oneshot(request).await),
            Mode::Following { local, .. }
                if served_by_followers(request.method(), request.uri()) =>
            {
                into_response(local.oneshot(request).await)
            }
            Mode::Following { .. } if request.headers().contains_key(FORWARDED_BY) => {
                Error::NoLeader(
                    "the node this was forwarded to no longer leads the desk; try again in a moment"
                        .into(),
                )
                .into_response()
            }
            Mode::Following {
                leader_url: Some(leader),
                ..
            } => self.forward(&leader, request).await,
            Mode::Following {
                leader_url: None, ..
            } => no_leader().into_response(),
        }
    }

    /// Sends `request` to the leader at `leader` and its answer back; a WebSocket upgrade is then
    /// piped both ways until either side closes.
    async fn forward(&self, leader: &str, mut request: Request<Body>) -> Response {
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str());
        let Ok(target) = format!("{leader}{path}").parse::<Uri>() else {
            return Error::Internal(format!("cannot forward to {leader}{path}")).into_response();
        };
        let upgrading = is_upgrade(&request);
        let client_side = upgrading.then(|| hyper::upgrade::on(&mut request));
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let (mut parts, body) = request.into_parts();
        parts.uri = target;
        if !upgrading {
            for hop in [
                header::CONNECTION,
                header::UPGRADE,
                header::TE,
                header::TRAILER,
            ] {
                parts.headers.remove(hop);
            }
            parts.headers.remove("keep-alive");
        }
        if let Some(peer) = peer {
            append_forwarded_for(&mut parts.headers, peer);
        }
        parts
            .headers
            .insert(FORWARDED_BY, HeaderValue::from_static("follower"));
        let mut response = match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, leader, "forwarding to the desk leader failed");
                return Error::NoLeader(format!(
                    "the node leading the desk did not answer ({error}); try again in a moment"
                ))
                .into_response();
            }
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_side) = client_side {
                let leader_side = hyper::upgrade::on(&mut response);
                tokio::spawn(async move {
                    match tokio::try_join!(client_side, leader_side) {
                        Ok((client, leader)) => {
                            let mut client = TokioIo::new(client);
                            let mut leader = TokioIo::new(leader);
                            // Ends when either side closes or fails; the other then closes too.
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut leader).await;
                        }
                        Err(error) => tracing::debug!(%error, "a forwarded upgrade failed"),
                    }
                });
            }
        }
        response.map(Body::new)
    }
}

/// While no node holds the leader's lock (a takeover, about a second).
fn no_leader() -> Error {
    Error::NoLeader(
        "no node leads the desk at the moment (one is taking over); try again in a moment".into(),
    )
}

fn into_response(result: Result<Response, std::convert::Infallible>) -> Response {
    match result {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// What a follower answers from its own copies: pages, health, metrics, knowledge-base search and
/// history search. Everything else changes or reads the desk, which only the leader holds.
fn served_by_followers(method: &Method, uri: &Uri) -> bool {
    if method != Method::GET && method != Method::HEAD {
        return false;
    }
    let path = uri.path();
    if path == "/api/v1/conversations" {
        // History search: the message index is this node's own.
        return true;
    }
    if path.starts_with("/api/v1/kb/") {
        // Search, the busy read, from this node's index. The editor's reads of articles and lists go
        // to the leader, which wrote its kb/ before answering the save: an editor reading back what
        // they just saved must not get the copy replication has not reached yet.
        return path == "/api/v1/kb/search";
    }
    !(path.starts_with("/api/") || path.starts_with("/ws/"))
}

fn is_upgrade(request: &Request<Body>) -> bool {
    request
        .headers()
        .get(header::CONNECTION)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
        })
        && request.headers().contains_key(header::UPGRADE)
}

fn append_forwarded_for(headers: &mut axum::http::HeaderMap, peer: std::net::IpAddr) {
    let value = match headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
    {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {peer}"),
        _ => peer.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_serve_reads_of_their_own_copies_and_forward_the_rest() {
        let local =
            |method: Method, path: &str| served_by_followers(&method, &path.parse().unwrap());
        assert!(local(Method::GET, "/api/v1/kb/search?q=退款"));
        assert!(!local(Method::GET, "/api/v1/kb/articles/returns/refund"));
        assert!(local(Method::GET, "/api/v1/conversations?q=发票"));
        assert!(local(Method::GET, "/desk"));
        assert!(local(Method::GET, "/healthz"));
        assert!(!local(Method::PUT, "/api/v1/kb/articles/returns/refund"));
        assert!(!local(Method::GET, "/api/v1/kb/dictionary"));
        assert!(!local(Method::GET, "/ws/agent"));
        assert!(!local(Method::GET, "/api/v1/conversations/pending"));
        assert!(!local(Method::POST, "/api/v1/auth/login"));
        assert!(!local(Method::GET, "/api/v1/me"));
    }

    #[test]
    fn the_peer_is_appended_to_forwarded_for() {
        let mut headers = axum::http::HeaderMap::new();
        append_forwarded_for(&mut headers, "10.0.0.9".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "10.0.0.9");
        append_forwarded_for(&mut headers, "10.0.0.7".parse().unwrap());
        assert_eq!(headers["x-forwarded-for"], "10.0.0.9, 10.0.0.7");
    }
}
