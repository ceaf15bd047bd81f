//! `GET /api/v1/openapi.json`: an OpenAPI 3 document that describes exactly the routes of
//! docs/API.md (its `### `METHOD /path`` headings), every one of which the router serves, with one
//! error schema behind every error response.

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;

use crate::common::TestApp;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// (method, path) of every route heading in docs/API.md, query strings left out.
fn documented_routes() -> BTreeSet<(String, String)> {
    let api = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md"))
        .expect("reading docs/API.md");
    api.lines()
        .filter_map(|line| line.strip_prefix("### `"))
        .filter_map(|heading| {
            let route = heading.split('`').next()?;
            let (method, target) = route.split_once(' ')?;
            METHODS.contains(&method.to_lowercase().as_str()).then(|| {
                let path = target.split('?').next().unwrap_or(target);
                (method.to_lowercase(), path.to_string())
            })
        })
        .collect()
}

fn described_routes(document: &Value) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                routes.insert((method.to_string(), path.clone()));
            }
        }
    }
    routes
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_the_app_serves() {
    let app = TestApp::start_signed_out(crate::common::TestDirs::with_fixtures()).await;
    let (status, document) = app.get_as(None, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let version = document["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3."), "{version}");

    let documented = documented_routes();
    assert!(documented.len() > 60, "{documented:?}");
    let described = described_routes(&document);
    let undescribed: Vec<_> = documented.difference(&described).collect();
    assert!(
        undescribed.is_empty(),
        "in docs/API.md but not in the OpenAPI document: {undescribed:?}"
    );
    let undocumented: Vec<_> = described.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "in the OpenAPI document but not in docs/API.md: {undocumented:?}"
    );

    // Each described route is served: the router's fallbacks never answer it.
    for (method, path) in &described {
        let uri = path
            .replace("{id}", "1")
            .replace("{hash}", "0")
            .replace(['{', '}'], "");
        let request = Request::builder()
            .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            .uri(&uri)
            .body(Body::empty())
            .unwrap();
        let reply = app.raw(request).await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(
            !message.starts_with("no route for"),
            "{method} {uri}: {message}"
        );
    }

    // Every error response carries the one error body.
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    for scheme in ["session", "visitor"] {
        assert!(
            document["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
}

/// The component a `$ref` such as `#/components/schemas/X` names.
fn component<'a>(document: &'a Value, reference: &Value) -> &'a Value {
    let name = reference
        .as_str()
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a schema reference: {reference}"));
    &document["components"]["schemas"][name]
}

/// Found by schemathesis (BENCHMARKS.md): the quick-reply search and the article search each had a
/// `SearchResults`, and the document described both with the article one, so a quick-reply answer
/// (`{"hits": [...]}`) broke its own schema for want of `took_ms`.
#[tokio::test]
async fn the_quick_reply_search_is_described_by_its_own_answer_schema() {
    let app = TestApp::start_signed_out(crate::common::TestDirs::with_fixtures()).await;
    let (status, document) = app.get_as(None, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let answer = |path: &str| {
        let reference = &document["paths"][path]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"]["$ref"];
        component(&document, reference).clone()
    };
    let replies = answer("/api/v1/quick-replies/search");
    let articles = answer("/api/v1/kb/search");
    assert_eq!(
        replies["required"],
        serde_json::json!(["hits"]),
        "{replies}"
    );
    assert_eq!(
        articles["required"],
        serde_json::json!(["hits", "took_ms"]),
        "{articles}"
    );
    assert_ne!(
        replies["properties"]["hits"]["items"], articles["properties"]["hits"]["items"],
        "quick-reply hits are not article hits"
    );
}

/// Found by schemathesis: both answer 400 for an id they cannot read (`invalid_article_id`, or a
/// quick-reply id that is not a number), which their descriptions left out.
#[tokio::test]
async fn unreadable_ids_are_described_as_400() {
    let app = TestApp::start_signed_out(crate::common::TestDirs::with_fixtures()).await;
    let (_, document) = app.get_as(None, "/api/v1/openapi.json").await;
    for (path, method) in [
        ("/api/v1/kb/articles/{id}", "delete"),
        ("/api/v1/quick-replies/{id}/image", "put"),
    ] {
        let error = &document["paths"][path][method]["responses"]["400"];
        assert_eq!(
            component(
                &document,
                &error["content"]["application/json"]["schema"]["$ref"]
            )["required"],
            serde_json::json!(["code", "message"]),
            "{method} {path}: {error}"
        );
    }
}

/// schemathesis found requests valid by the document that the server refused (lengths of names,
/// titles, messages): every input schema now carries the limits the server applies, the
/// configured ones as configured.
#[tokio::test]
async fn input_schemas_carry_the_limits_the_server_applies() {
    let app = TestApp::start_configured(crate::common::TestDirs::with_fixtures(), |config| {
        config.conversations.max_message_chars = 800;
    })
    .await;
    let (status, document) = app.get_as(None, "/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{document}");
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["StartRequest"]["properties"]["message"]["maxLength"],
        800
    );
    assert_eq!(
        schemas["VisitorIdentity"]["properties"]["name"]["maxLength"],
        64
    );
    assert_eq!(
        schemas["LoginRequest"]["properties"]["username"]["maxLength"],
        64
    );

    // The limit is the server's: one character more is refused, as the document says.
    let name = "王".repeat(65);
    let (status, body) = app
        .json_as(
            None,
            Method::POST,
            "/api/v1/visitor/conversations",
            serde_json::json!({"message": "你好", "identity": {"name": name}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_input", "{body}");
}

/// The desk settings and the personal settings each had a `SettingsPatch`; the document described
/// the admin route with the personal one (utoipa keys schemas by name).
#[tokio::test]
async fn the_desk_settings_are_described_by_their_own_patch() {
    let app = TestApp::start_signed_out(crate::common::TestDirs::with_fixtures()).await;
    let (_, document) = app.get_as(None, "/api/v1/openapi.json").await;
    let body = |path: &str| {
        let reference = &document["paths"][path]["patch"]["requestBody"]["content"]
            ["application/json"]["schema"]["$ref"];
        component(&document, reference).clone()
    };
    let desk = body("/api/v1/admin/settings");
    let personal = body("/api/v1/me/settings");
    assert!(desk["properties"]["wrap_up"].is_object(), "{desk}");
    assert!(personal["properties"]["greeting"].is_object(), "{personal}");
    assert!(desk["properties"]["greeting"].is_null(), "{desk}");
}
