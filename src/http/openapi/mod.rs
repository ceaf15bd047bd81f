//! The OpenAPI 3 document of the HTTP API, generated from the handlers' `#[utoipa::path]`
//! annotations as `OpenApiRouter` collects them (see "How to add a route" in docs/ARCHITECTURE.md),
//! and the route that serves it.

mod limits;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;
use crate::http::AppState;

/// What the generated paths are added to: title, version, security schemes, the error body, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kefu",
        description = "Customer-service desk: knowledge base, accounts, live chat, quick replies, \
                       assisted replies. The WebSocket messages and the rules behind each route are \
                       described in docs/API.md.",
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "kb", description = "Knowledge base"),
        (name = "auth", description = "Sign-in"),
        (name = "me", description = "My account"),
        (name = "accounts", description = "Colleagues"),
        (name = "admin", description = "Administration (admins)"),
        (name = "visitors", description = "Visitors: token, widget reports, visitor panel, online list, block list (黑名单)"),
        (name = "conversations", description = "Conversations"),
        (name = "quick-replies", description = "Quick replies (快捷回复)"),
        (name = "assist", description = "Assisted replies (辅助回复) and visitor self-service"),
        (name = "webhooks", description = "Webhooks for conversation events (admins)"),
        (name = "statistics", description = "Workbench statistics (工作台数据)"),
        (name = "channels", description = "Channels: the API channel for apps, WeChat 公众号, 企业微信 微信客服"),
        (name = "ws", description = "WebSockets (messages in docs/API.md)"),
    )
)]
struct ApiDoc;

/// The ways a caller is known: the staff session cookie, the visitor token and an API channel's
/// token.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "kefu_session",
                "Staff session from POST /api/v1/auth/login. Methods other than GET, HEAD and \
                 OPTIONS also send the session's CSRF token as `X-CSRF-Token`.",
            ))),
        );
        components.add_security_scheme(
            "visitor",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Visitor token `v1.…` from POST /api/v1/visitors or \
                         POST /api/v1/visitor/conversations",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "channel",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "API channel token `ch1.…`, shown once when an admin creates the channel \
                         (POST /api/v1/admin/channels) or rotates its secrets",
                    ))
                    .build(),
            ),
        );
    }
}

/// An empty router carrying the document's title, security schemes and error body; the route
/// files add their paths to it.
pub(crate) fn base() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

/// `GET /api/v1/openapi.json`
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_openapi))
}

/// The document of every route [`crate::http::router`] serves, but the web pages.
pub fn document() -> Document {
    let mut document = crate::http::api_router().into_openapi();
    // axum writes a catch-all segment `{*id}`; OpenAPI knows only `{id}`.
    document.paths.paths = std::mem::take(&mut document.paths.paths)
        .into_iter()
        .map(|(path, item)| (path.replace("{*", "{"), item))
        .collect();
    document
}

/// The served document with the input limits written in, for the configured limits it was made
/// with: built once per configuration (in practice once per process).
static DOCUMENT_JSON: Mutex<Option<(limits::Configured, Bytes)>> = Mutex::new(None);

/// The document as served: [`document`] with every input's limit (see [`limits`]).
pub fn document_json(configured: limits::Configured) -> Bytes {
    let mut cached = DOCUMENT_JSON.lock();
    if let Some((made_for, json)) = cached.as_ref() {
        if *made_for == configured {
            // A shared buffer: every request serves the same bytes without copying 200 KB.
            return json.clone();
        }
    }
    let mut value =
        serde_json::to_value(document()).expect("an OpenAPI document always serialises");
    limits::apply(&mut value, configured);
    let json = Bytes::from(value.to_string());
    *cached = Some((configured, json.clone()));
    json
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "health",
    responses((status = 200, description = "The OpenAPI 3 document of the HTTP routes", content_type = "application/json")),
)]
async fn get_openapi(State(state): State<AppState>) -> Response {
    let configured = limits::Configured {
        max_message_chars: state.conversations.config().max_message_chars,
        max_query_chars: state.knowledge.max_query_chars(),
        max_search_limit: state.knowledge.max_search_limit(),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(configured),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// utoipa keys component schemas by name: two types of one name (`SettingsView` of the admin
    /// console and of "my settings") made one route described by the other's schema, which
    /// schemathesis found twice. Each type that derives `ToSchema` has a name of its own (or an
    /// `#[schema(as = …)]`).
    #[test]
    fn no_two_schema_types_share_a_name() {
        let mut names: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut folders = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                if path.extension().is_none_or(|extension| extension != "rs") {
                    continue;
                }
                let source = std::fs::read_to_string(&path).unwrap();
                for name in schema_names(&source) {
                    names
                        .entry(name)
                        .or_default()
                        .push(path.display().to_string());
                }
            }
        }
        let shared: Vec<_> = names.iter().filter(|(_, files)| files.len() > 1).collect();
        assert!(shared.is_empty(), "schema names used twice: {shared:?}");
        assert!(names.contains_key("DeskSettingsView"), "{names:?}");
    }

    /// The names `ToSchema` derives give the types of `source`: the type's own, or its `as`.
    fn schema_names(source: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut deriving = false;
        let mut in_derive = false;
        let mut renamed = None;
        for line in source.lines().map(str::trim) {
            if line.starts_with("#[derive(") || in_derive {
                if line.starts_with("#[derive(") {
                    deriving = false;
                    renamed = None;
                }
                deriving |= line.contains("ToSchema");
                in_derive = !line.ends_with(")]");
                continue;
            }
            if !deriving {
                continue;
            }
            if let Some(rest) = line.strip_prefix("#[schema(as = ") {
                renamed = rest.split(')').next().map(str::to_string);
                continue;
            }
            if line.is_empty()
                || line.starts_with("#[")
                || line.ends_with(',')
                || line.starts_with("//")
            {
                continue;
            }
            let declared = line
                .split_whitespace()
                .skip_while(|word| !matches!(*word, "struct" | "enum"))
                .nth(1)
                .map(|name| name.trim_end_matches(['{', '(', ';', '<']).to_string());
            if let Some(name) = declared {
                names.push(renamed.take().unwrap_or(name));
            }
            deriving = false;
        }
        names
    }

    /// Conversations and messages are described by their wire types; a stored record showing up
    /// here would tie the API to the store again.
    #[test]
    fn conversations_and_messages_are_described_by_their_wire_types() {
        let document = serde_json::to_value(super::document()).unwrap();
        let schemas = document["components"]["schemas"]
            .as_object()
            .expect("schemas");
        for wire in ["ConversationView", "MessageView"] {
            assert!(schemas.contains_key(wire), "no {wire} schema");
        }
        for stored in ["Conversation", "Message"] {
            assert!(
                !schemas.contains_key(stored),
                "the stored {stored} is in the API"
            );
        }
    }
}
