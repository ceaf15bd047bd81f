//! The input limits of `src/domain/limits.rs` (and of the configuration) written into the OpenAPI
//! document, so that a client generated from it, or a tool like schemathesis, knows what the server
//! refuses before sending it. utoipa's `#[schema(max_length = …)]` takes literals only, which would
//! copy every number a second time; this table names the constants instead, and a test checks that
//! every string a request carries has a limit here (or a reason in [`UNBOUNDED`]).

use serde_json::{json, Map, Value};

use crate::domain::limits::*;
use crate::domain::MAX_REPLY_CHARS;
use crate::services::settings;

/// Limits that come from the configuration rather than from constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Configured {
    /// `conversations.max_message_chars`.
    pub max_message_chars: usize,
    /// `search.max_query_chars`.
    pub max_query_chars: usize,
    /// `search.max_limit`.
    pub max_search_limit: usize,
}

/// One constraint of a string, list or map.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// `maxLength`, in characters.
    Chars(usize),
    /// `maxLength` from the configuration.
    Message,
    /// `maxLength` from the configuration.
    Query,
    /// `minLength`.
    AtLeast(usize),
    /// `pattern` (ECMA-262, unanchored unless it says so).
    Pattern(&'static str),
    /// `enum` (a nullable field also lists `null`).
    OneOf(&'static [&'static str]),
    /// `maxItems` of a list, or `maxProperties` of a map.
    Items(usize),
    /// The rules of each item of a list, or each value of a map.
    Each(&'static [Rule]),
    /// The rules of each key of a map (`propertyNames`).
    Keys(&'static [Rule]),
    /// `minimum` of a number.
    Min(u64),
    /// `maximum` of a search's `limit`, from the configuration.
    SearchLimit,
    /// A query parameter the server cannot do without (its struct reads it as optional to answer
    /// its absence with the route's own error code).
    Required,
}

/// Holds at least one character other than white space (the server trims, then refuses empty text).
const NOT_BLANK: Rule = Rule::Pattern(r"\S");
/// A name: not blank, no control characters.
const NAME: Rule =
    Rule::Pattern(r"^[^\u0000-\u001f\u007f]*[^\s\u0000-\u001f\u007f][^\u0000-\u001f\u007f]*$");
/// A time of day as the working hours take it.
const HH_MM: Rule = Rule::Pattern(r"^([01][0-9]|2[0-3]):[0-5][0-9]$");
/// Passwords: the length rule of `domain::limits`, no control characters.
const PASSWORD: &[Rule] = &[
    Rule::Chars(MAX_PASSWORD_CHARS),
    Rule::Pattern(r"^[^\u0000-\u001f\u007f]*$"),
];
const NEW_PASSWORD: &[Rule] = &[
    Rule::AtLeast(MIN_PASSWORD_CHARS),
    Rule::Chars(MAX_PASSWORD_CHARS),
    Rule::Pattern(r"^[^\u0000-\u001f\u007f]*$"),
];
const DISPLAY_NAME: &[Rule] = &[Rule::Chars(MAX_DISPLAY_NAME_CHARS), NAME];
const EMPLOYEE_NO: &[Rule] = &[
    Rule::Chars(MAX_EMPLOYEE_NO_CHARS),
    Rule::Pattern(r"^\s*[A-Za-z0-9_-]*\s*$"),
];
const CREDENTIAL: &[Rule] = &[
    Rule::Chars(MAX_CHANNEL_CREDENTIAL_CHARS),
    Rule::Pattern(r"^\s*[!-~]+\s*$"),
];
const TAGS: &[Rule] = &[
    Rule::Items(MAX_VISITOR_TAGS),
    Rule::Each(&[Rule::Chars(MAX_VISITOR_TAG_CHARS)]),
];

/// (component schema, property, rules) of request bodies.
const BODY_LIMITS: &[(&str, &str, &[Rule])] = &[
    ("AccountPatch", "display_name", DISPLAY_NAME),
    ("AccountPatch", "employee_no", EMPLOYEE_NO),
    ("Annotation", "note", &[Rule::Chars(MAX_VISITOR_NOTE_CHARS)]),
    ("Annotation", "tags", TAGS),
    (
        "ApiMessage",
        "attachments",
        &[Rule::Items(10), Rule::Each(&[Rule::Chars(128)])],
    ),
    ("ApiMessage", "body", &[Rule::Message]),
    (
        "ApiMessage",
        "client_key",
        &[Rule::Chars(MAX_CLIENT_KEY_CHARS)],
    ),
    (
        "ApiStart",
        "client_key",
        &[Rule::Chars(MAX_CLIENT_KEY_CHARS)],
    ),
    ("ApiStart", "message", &[Rule::Message, NOT_BLANK]),
    ("ApiStart", "page", &[Rule::Chars(MAX_URL_CHARS)]),
    ("ApiUser", "email", &[Rule::Chars(MAX_VISITOR_EMAIL_CHARS)]),
    ("ApiUser", "name", &[Rule::Chars(MAX_VISITOR_NAME_CHARS)]),
    ("ApiUser", "phone", &[Rule::Chars(MAX_VISITOR_PHONE_CHARS)]),
    (
        "ApiUser",
        "user_id",
        &[Rule::Chars(MAX_EXTERNAL_ID_CHARS), NOT_BLANK],
    ),
    (
        "Arrival",
        "channel",
        &[Rule::OneOf(&crate::services::visitors::CHANNELS)],
    ),
    ("BlockInput", "ip_range", &[Rule::Chars(64)]),
    (
        "BlockInput",
        "reason",
        &[Rule::Chars(MAX_BLOCK_REASON_CHARS), NOT_BLANK],
    ),
    ("BlockInput", "visitor_id", &[Rule::Chars(64)]),
    (
        "CategoryNames",
        "names",
        &[
            Rule::Items(crate::http::routes::admin_kb::MAX_CATEGORY_NAMES),
            Rule::Keys(&[
                Rule::Chars(crate::http::routes::admin_kb::MAX_CATEGORY_ID_CHARS),
                Rule::Pattern(r"^[^\s#]+$"),
            ]),
            Rule::Each(&[
                Rule::Chars(crate::http::routes::admin_kb::MAX_CATEGORY_NAME_CHARS),
                NOT_BLANK,
            ]),
        ],
    ),
    ("ChannelInput", "app_id", CREDENTIAL),
    ("ChannelInput", "app_secret", CREDENTIAL),
    ("ChannelInput", "open_kfid", CREDENTIAL),
    (
        "ChannelInput",
        "callback_token",
        &[Rule::Pattern(r"^\s*[A-Za-z0-9]{3,32}\s*$")],
    ),
    (
        "ChannelInput",
        "encoding_aes_key",
        &[Rule::Pattern(r"^\s*[A-Za-z0-9]{43}\s*$")],
    ),
    (
        "ChannelInput",
        "name",
        &[Rule::Chars(MAX_CHANNEL_NAME_CHARS), NOT_BLANK],
    ),
    (
        "ChannelInput",
        "webhook_url",
        &[Rule::Chars(MAX_WEBHOOK_URL_BYTES)],
    ),
    ("CodeRequest", "code", &[Rule::Chars(MAX_LOGIN_CODE_CHARS)]),
    ("DayHours", "end", &[HH_MM]),
    ("DayHours", "start", &[HH_MM]),
    (
        "DeflectionRequest",
        "question",
        &[Rule::Chars(MAX_VISITOR_QUESTION_CHARS), NOT_BLANK],
    ),
    ("FeedbackRequest", "conversation_id", &[Rule::Chars(64)]),
    ("FeedbackRequest", "id", &[Rule::Chars(128)]),
    ("FeedbackRequest", "text", &[Rule::Chars(MAX_SUGGEST_CHARS)]),
    (
        "GroupInput",
        "description",
        &[Rule::Chars(MAX_GROUP_DESCRIPTION_CHARS)],
    ),
    (
        "GroupInput",
        "name",
        &[Rule::Chars(MAX_GROUP_NAME_CHARS), NOT_BLANK],
    ),
    (
        "GroupRouting",
        "off_hours_message",
        &[Rule::Chars(MAX_OFF_HOURS_MESSAGE_CHARS)],
    ),
    (
        "GroupRouting",
        "queue_message",
        &[Rule::Chars(MAX_OFF_HOURS_MESSAGE_CHARS)],
    ),
    (
        "IdentityClaim",
        "member_level",
        &[Rule::Chars(MAX_MEMBER_LEVEL_CHARS)],
    ),
    (
        "IdentityClaim",
        "name",
        &[Rule::Chars(MAX_VISITOR_NAME_CHARS)],
    ),
    (
        "IdentityClaim",
        "signature",
        &[Rule::Chars(MAX_SIGNATURE_CHARS)],
    ),
    ("IdentityClaim", "site", &[Rule::Chars(MAX_SITE_ID_CHARS)]),
    (
        "IdentityClaim",
        "user_id",
        &[Rule::Chars(MAX_EXTERNAL_ID_CHARS)],
    ),
    (
        "InviteRequest",
        "message",
        &[Rule::Chars(MAX_INVITATION_CHARS)],
    ),
    (
        "LoginRequest",
        "captcha",
        &[Rule::Chars(MAX_LOGIN_CODE_CHARS)],
    ),
    (
        "LoginRequest",
        "captcha_id",
        &[Rule::Chars(MAX_LOGIN_CODE_CHARS)],
    ),
    ("LoginRequest", "password", PASSWORD),
    ("LoginRequest", "totp", &[Rule::Chars(MAX_LOGIN_CODE_CHARS)]),
    (
        "LoginRequest",
        "username",
        &[Rule::Chars(MAX_LOGIN_USERNAME_CHARS)],
    ),
    ("NewAccount", "display_name", DISPLAY_NAME),
    ("NewAccount", "employee_no", EMPLOYEE_NO),
    ("NewAccount", "password", NEW_PASSWORD),
    (
        "NewAccount",
        "username",
        &[
            Rule::Chars(MAX_USERNAME_CHARS),
            Rule::Pattern(r"^[A-Za-z0-9][A-Za-z0-9._-]+$"),
        ],
    ),
    (
        "NewSite",
        "id",
        &[
            Rule::Chars(MAX_SITE_ID_CHARS),
            Rule::Pattern(r"^[a-z0-9_-]+$"),
        ],
    ),
    (
        "NewSite",
        "name",
        &[
            Rule::Chars(crate::services::visitors::sites::MAX_SITE_NAME_CHARS),
            NAME,
        ],
    ),
    (
        "PageInput",
        "url",
        &[Rule::Chars(MAX_URL_CHARS), Rule::AtLeast(1)],
    ),
    ("PasswordChange", "new_password", NEW_PASSWORD),
    ("PasswordChange", "old_password", PASSWORD),
    ("PasswordConfirmation", "password", PASSWORD),
    ("PasswordReset", "password", NEW_PASSWORD),
    ("PutArticleRequest", "base_hash", &[Rule::Chars(128)]),
    (
        "PutArticleRequest",
        "markdown",
        &[Rule::Chars(crate::services::knowledge::MAX_ARTICLE_BYTES)],
    ),
    (
        "RatingRequest",
        "comment",
        &[Rule::Chars(MAX_RATING_COMMENT_CHARS)],
    ),
    (
        "ReplyInput",
        "category",
        &[Rule::Chars(MAX_REPLY_CATEGORY_CHARS)],
    ),
    (
        "ReplyInput",
        "content",
        &[Rule::Chars(MAX_REPLY_CHARS), NOT_BLANK],
    ),
    (
        "ReplyInput",
        "shortcut",
        &[
            Rule::Chars(MAX_SHORTCUT_CHARS),
            Rule::Pattern(r"^\s*/?[A-Za-z0-9_-]+\s*$|^\s*$"),
        ],
    ),
    (
        "ReplyInput",
        "tags",
        &[
            Rule::Items(MAX_REPLY_TAGS),
            Rule::Each(&[Rule::Chars(MAX_REPLY_TAG_CHARS)]),
        ],
    ),
    (
        "ReplyInput",
        "title",
        &[Rule::Chars(MAX_REPLY_TITLE_CHARS), NOT_BLANK],
    ),
    ("SettingsPatch", "display_name", DISPLAY_NAME),
    (
        "SettingsPatch",
        "greeting",
        &[Rule::Chars(MAX_GREETING_CHARS)],
    ),
    (
        "SiteRename",
        "name",
        &[
            Rule::Chars(crate::services::visitors::sites::MAX_SITE_NAME_CHARS),
            NAME,
        ],
    ),
    ("StartRequest", "channel", &[Rule::Chars(MAX_CHANNEL_CHARS)]),
    ("StartRequest", "message", &[Rule::Message, NOT_BLANK]),
    ("StartRequest", "page", &[Rule::Chars(MAX_URL_CHARS)]),
    ("SuggestRequest", "conversation_id", &[Rule::Chars(64)]),
    (
        "SuggestRequest",
        "text",
        &[Rule::Chars(MAX_SUGGEST_CHARS), NOT_BLANK],
    ),
    (
        "VisitorIdentity",
        "email",
        &[Rule::Chars(MAX_VISITOR_EMAIL_CHARS)],
    ),
    (
        "VisitorIdentity",
        "external_id",
        &[Rule::Chars(MAX_EXTERNAL_ID_CHARS)],
    ),
    (
        "VisitorIdentity",
        "name",
        &[Rule::Chars(MAX_VISITOR_NAME_CHARS)],
    ),
    (
        "VisitorIdentity",
        "phone",
        &[Rule::Chars(MAX_VISITOR_PHONE_CHARS)],
    ),
    (
        "WebhookInput",
        "events",
        &[Rule::Each(&[Rule::OneOf(&crate::domain::WEBHOOK_EVENTS)])],
    ),
    (
        "WebhookInput",
        "secret",
        &[
            Rule::AtLeast(MIN_WEBHOOK_SECRET_BYTES),
            Rule::Chars(MAX_WEBHOOK_SECRET_BYTES),
        ],
    ),
    ("WebhookInput", "url", &[Rule::Chars(MAX_WEBHOOK_URL_BYTES)]),
    ("WorkingHours", "end", &[HH_MM]),
    ("WorkingHours", "start", &[HH_MM]),
    (
        "WorkingHours",
        "holidays",
        &[
            Rule::Items(crate::services::conversations::MAX_HOLIDAYS),
            Rule::Each(&[Rule::Pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]),
        ],
    ),
    ("WorkingHours", "time_zone", &[Rule::Chars(64)]),
    (
        "WrapUpSettings",
        "problem_types",
        &[
            Rule::Items(settings::MAX_PROBLEM_TYPES),
            Rule::Each(&[
                Rule::Chars(2 * settings::MAX_PROBLEM_TYPE_PART_CHARS + 1),
                Rule::Pattern(r"^\s*[^/\s][^/]*(/\s*[^/\s][^/]*)?$"),
            ]),
        ],
    ),
    (
        "SurveySettings",
        "title",
        &[Rule::Chars(settings::MAX_SURVEY_TITLE_CHARS), NOT_BLANK],
    ),
    (
        "SurveySettings",
        "labels",
        &[Rule::Each(&[
            Rule::Chars(settings::MAX_SURVEY_LABEL_CHARS),
            NOT_BLANK,
        ])],
    ),
    (
        "SurveySettings",
        "thanks",
        &[Rule::Chars(settings::MAX_SURVEY_THANKS_CHARS), NOT_BLANK],
    ),
    ("AutoMessages", "idle_reminder", AUTO_MESSAGE),
    ("AutoMessages", "idle_end", AUTO_MESSAGE),
    ("AutoMessages", "ended", AUTO_MESSAGE),
    ("AutoMessages", "leave_message_prompt", AUTO_MESSAGE),
    ("AutoMessages", "message_left", AUTO_MESSAGE),
    ("AutoMessages", "queue_full", AUTO_MESSAGE),
    (
        "UploadSettings",
        "upload_types",
        &[Rule::Each(&[
            Rule::Chars(16),
            Rule::Pattern(r"^\s*\.?[A-Za-z0-9]+\s*$"),
        ])],
    ),
];

const AUTO_MESSAGE: &[Rule] = &[Rule::Chars(settings::MAX_AUTO_MESSAGE_CHARS), NOT_BLANK];

/// (path, query parameter, rules).
const QUERY_LIMITS: &[(&str, &str, &[Rule])] = &[
    (
        "/api/v1/admin/accounts",
        "q",
        &[Rule::Chars(MAX_ACCOUNT_QUERY_CHARS)],
    ),
    (
        "/api/v1/auth/captcha-required",
        "username",
        &[Rule::Chars(MAX_LOGIN_USERNAME_CHARS)],
    ),
    (
        "/api/v1/kb/search",
        "q",
        &[Rule::Required, Rule::Query, NOT_BLANK],
    ),
    (
        "/api/v1/kb/search",
        "limit",
        &[Rule::Min(1), Rule::SearchLimit],
    ),
    (
        "/api/v1/quick-replies/search",
        "q",
        &[Rule::Chars(MAX_REPLY_QUERY_CHARS)],
    ),
    (
        "/api/v1/visitor/suggest",
        "q",
        &[Rule::Chars(MAX_VISITOR_QUESTION_CHARS), NOT_BLANK],
    ),
    (
        "/api/v1/conversations/{id}/transcript",
        "format",
        &[Rule::OneOf(&["json", "csv"])],
    ),
    (
        "/api/v1/quick-replies/export",
        "format",
        &[Rule::OneOf(&["csv", "json"])],
    ),
    (
        "/api/v1/quick-replies/import",
        "format",
        &[Rule::OneOf(&["csv", "json"])],
    ),
    (
        "/api/v1/stats/summary",
        "by",
        &[Rule::OneOf(&["agent", "group", "channel"])],
    ),
    ("/api/v1/stats/summary", "day", &[Rule::Pattern(DAY)]),
    ("/api/v1/stats/summary", "from", &[Rule::Pattern(DATE)]),
    ("/api/v1/stats/summary", "to", &[Rule::Pattern(DATE)]),
    ("/api/v1/stats/hourly", "day", &[Rule::Pattern(DAY)]),
    ("/api/v1/stats/hourly", "from", &[Rule::Pattern(DATE)]),
    ("/api/v1/stats/hourly", "to", &[Rule::Pattern(DATE)]),
    (
        "/api/v1/stats/hourly",
        "scope",
        &[Rule::OneOf(&["team", "agent", "group", "channel"])],
    ),
    (
        "/api/v1/stats/hourly",
        "channel",
        &[Rule::Chars(MAX_CHANNEL_CHARS)],
    ),
];

const DATE: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
const DAY: &str = r"^(today|yesterday|[0-9]{4}-[0-9]{2}-[0-9]{2})$";

/// Strings a request carries that have no limit here, and why. The test below fails for any other.
#[cfg(test)]
pub const UNBOUNDED: &[(&str, &str)] = &[
    // Cut to 200 characters, never refused: the widget cannot control a page's title.
    ("PageInput", ".title"),
    // The body limit (256 KiB, in bytes) is checked by the route; a character count would promise
    // less or more than that for Chinese text.
    ("TermsFile", ".text"),
    // WeChat's XML, bounded by the request body limit and verified by its signature.
    ("String", ""),
];

/// Query parameters with no limit here, and why: all are WeChat's signed callback parameters, the
/// visitor token (checked by its signature) and a file's `name` (kept cut to 120 characters).
#[cfg(test)]
pub const UNBOUNDED_QUERY: &[&str] = &[
    // A filter: a category no article or reply has matches nothing.
    "category",
    "name",
    "echostr",
    "encrypt_type",
    "msg_signature",
    "nonce",
    "openid",
    "signature",
    "timestamp",
    "token",
];

/// Writes the limits into `document` (the JSON of the OpenAPI document).
pub fn apply(document: &mut Value, configured: Configured) {
    write_limits(document, configured);
    // After the limits: a merged schema copies its parts' properties with their limits.
    merge_flattened(document);
}

fn write_limits(document: &mut Value, configured: Configured) {
    for (schema, property, rules) in BODY_LIMITS {
        let Some(node) = property_mut(document, schema, property) else {
            // The table names a property that no longer exists: the test catches it.
            tracing::warn!(%schema, %property, "an input limit names no property of the OpenAPI document");
            continue;
        };
        write_rules(node, rules, configured);
    }
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, name, rules) in QUERY_LIMITS {
        let Some(item) = paths.get_mut(*path).and_then(Value::as_object_mut) else {
            tracing::warn!(%path, "an input limit names no path of the OpenAPI document");
            continue;
        };
        for operation in item.values_mut() {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                if parameter["in"] == "query" && parameter["name"] == *name {
                    if rules.iter().any(|rule| matches!(rule, Rule::Required)) {
                        parameter["required"] = Value::Bool(true);
                    }
                    if let Some(schema) = parameter.get_mut("schema") {
                        write_rules(schema, rules, configured);
                    }
                }
            }
        }
    }
}

/// A struct with a `#[serde(flatten)]` field is described as `allOf` of the flattened type and its
/// own fields; with `deny_unknown_fields` each part forbids the other's properties, so no body can
/// satisfy both (schemathesis: "the schema at …/allOf/0 conflicts with …/allOf/1"). Such a schema
/// becomes one object with the parts' properties and requirements.
fn merge_flattened(document: &mut Value) {
    let Some(schemas) = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    for (name, schema) in &schemas {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else {
            continue;
        };
        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut closed = true;
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    match schemas.get(reference.rsplit('/').next().unwrap_or_default()) {
                        Some(referenced) => referenced,
                        None => continue,
                    }
                }
                None => part,
            };
            if let Some(own) = part.get("properties").and_then(Value::as_object) {
                properties.extend(own.clone());
            }
            if let Some(own) = part.get("required").and_then(Value::as_array) {
                required.extend(own.iter().cloned());
            }
            closed &= part.get("additionalProperties") == Some(&Value::Bool(false));
        }
        let mut merged = Map::new();
        merged.insert("type".into(), json!("object"));
        if let Some(description) = schema.get("description") {
            merged.insert("description".into(), description.clone());
        }
        merged.insert("required".into(), Value::Array(required));
        merged.insert("properties".into(), Value::Object(properties));
        if closed {
            merged.insert("additionalProperties".into(), Value::Bool(false));
        }
        if let Some(target) = document.pointer_mut(&format!("/components/schemas/{name}")) {
            *target = Value::Object(merged);
        }
    }
}

/// Property `property` of component `schema`, also when serde's `flatten` made the schema an
/// `allOf` of parts.
fn property_mut<'a>(
    document: &'a mut Value,
    schema: &str,
    property: &str,
) -> Option<&'a mut Value> {
    let schema = document.pointer_mut(&format!("/components/schemas/{schema}"))?;
    if schema["properties"].get(property).is_some() {
        return schema["properties"].get_mut(property);
    }
    schema
        .get_mut("allOf")?
        .as_array_mut()?
        .iter_mut()
        .find_map(|part| part.get_mut("properties")?.get_mut(property))
}

/// The node a rule applies to: a nullable reference (`oneOf: [null, {$ref}]`) is left alone, and
/// every property the table names is a plain (possibly nullable) string, list or map.
fn write_rules(node: &mut Value, rules: &[Rule], configured: Configured) {
    let Some(object) = node.as_object_mut() else {
        return;
    };
    let nullable = match object.get("type") {
        Some(Value::Array(types)) => types.iter().any(|kind| kind == "null"),
        _ => false,
    };
    for rule in rules {
        write_rule(object, *rule, nullable, configured);
    }
}

fn write_rule(object: &mut Map<String, Value>, rule: Rule, nullable: bool, configured: Configured) {
    match rule {
        Rule::Chars(max) => {
            object.insert("maxLength".into(), json!(max));
        }
        Rule::Message => {
            object.insert("maxLength".into(), json!(configured.max_message_chars));
        }
        Rule::Query => {
            object.insert("maxLength".into(), json!(configured.max_query_chars));
        }
        Rule::AtLeast(min) => {
            object.insert("minLength".into(), json!(min));
        }
        Rule::Pattern(pattern) => {
            object.insert("pattern".into(), json!(pattern));
        }
        Rule::OneOf(values) => {
            let mut values: Vec<Value> = values.iter().map(|value| json!(value)).collect();
            if nullable {
                values.push(Value::Null);
            }
            object.insert("enum".into(), Value::Array(values));
        }
        Rule::Items(max) => {
            let is_map = object.contains_key("additionalProperties");
            let key = if is_map { "maxProperties" } else { "maxItems" };
            object.insert(key.into(), json!(max));
        }
        Rule::Each(rules) => {
            let key = if object.contains_key("additionalProperties") {
                "additionalProperties"
            } else {
                "items"
            };
            if let Some(Value::Object(inner)) = object.get_mut(key) {
                for rule in rules {
                    write_rule(inner, *rule, false, configured);
                }
            }
        }
        Rule::Keys(rules) => {
            let mut keys = Map::new();
            keys.insert("type".into(), json!("string"));
            for rule in rules {
                write_rule(&mut keys, *rule, false, configured);
            }
            object.insert("propertyNames".into(), Value::Object(keys));
        }
        Rule::Min(min) => {
            object.insert("minimum".into(), json!(min));
        }
        Rule::SearchLimit => {
            object.insert("maximum".into(), json!(configured.max_search_limit));
        }
        // Written on the parameter, not its schema (see `apply`).
        Rule::Required => {}
    }
}

/// (schema, property path) or (path, query parameter).
#[cfg(test)]
type Place = (String, String);

/// Every (schema, property path) of a request body whose string has no `maxLength`, `enum`,
/// `format` or `pattern`, and every (path, query parameter) likewise.
#[cfg(test)]
pub fn unbounded_inputs(document: &Value) -> (Vec<Place>, Vec<Place>) {
    let schemas = &document["components"]["schemas"];
    let mut roots = Vec::new();
    let mut queries = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            for operation in item.as_object().into_iter().flat_map(|item| item.values()) {
                if let Some(body) = operation.get("requestBody") {
                    references(body, &mut roots);
                }
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    if parameter["in"] == "query" && is_unbounded_string(&parameter["schema"]) {
                        let name = parameter["name"].as_str().unwrap_or_default().to_string();
                        queries.push((path.clone(), name));
                    }
                }
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    while let Some(name) = roots.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        references(&schemas[&name], &mut roots);
    }
    let mut bodies = Vec::new();
    for name in seen {
        unbounded_strings(&name, &schemas[&name], String::new(), &mut bodies);
    }
    (bodies, queries)
}

#[cfg(test)]
fn references(node: &Value, out: &mut Vec<String>) {
    match node {
        Value::Object(object) => {
            if let Some(Value::String(reference)) = object.get("$ref") {
                if let Some(name) = reference.rsplit('/').next() {
                    out.push(name.to_string());
                }
            }
            object.values().for_each(|value| references(value, out));
        }
        Value::Array(values) => values.iter().for_each(|value| references(value, out)),
        _ => {}
    }
}

#[cfg(test)]
fn types(node: &Value) -> Vec<&str> {
    match &node["type"] {
        Value::String(kind) => vec![kind.as_str()],
        Value::Array(kinds) => kinds.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
fn is_unbounded_string(node: &Value) -> bool {
    types(node).contains(&"string")
        && ["maxLength", "enum", "format", "pattern"]
            .iter()
            .all(|key| node.get(key).is_none())
}

#[cfg(test)]
fn unbounded_strings(schema: &str, node: &Value, at: String, out: &mut Vec<(String, String)>) {
    if is_unbounded_string(node) {
        out.push((schema.to_string(), at.clone()));
    }
    if types(node).contains(&"array") {
        unbounded_strings(schema, &node["items"], format!("{at}[]"), out);
    }
    if let Some(properties) = node["properties"].as_object() {
        for (name, property) in properties {
            unbounded_strings(schema, property, format!("{at}.{name}"), out);
        }
    }
    if node["additionalProperties"].is_object() {
        unbounded_strings(
            schema,
            &node["additionalProperties"],
            format!("{at}{{}}"),
            out,
        );
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        for variant in node[key].as_array().into_iter().flatten() {
            unbounded_strings(schema, variant, at.clone(), out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIGURED: Configured = Configured {
        max_message_chars: 5000,
        max_query_chars: 1000,
        max_search_limit: 50,
    };

    fn document() -> Value {
        let mut document = serde_json::to_value(crate::http::openapi::document()).unwrap();
        apply(&mut document, CONFIGURED);
        document
    }

    #[test]
    fn every_string_a_request_carries_has_a_limit_or_a_reason() {
        let (bodies, queries) = unbounded_inputs(&document());
        let bodies: Vec<_> = bodies
            .into_iter()
            .filter(|(schema, at)| !UNBOUNDED.contains(&(schema.as_str(), at.as_str())))
            .collect();
        assert!(
            bodies.is_empty(),
            "request strings without a limit: {bodies:?}"
        );
        let queries: Vec<_> = queries
            .into_iter()
            .filter(|(_, name)| !UNBOUNDED_QUERY.contains(&name.as_str()))
            .collect();
        assert!(
            queries.is_empty(),
            "query parameters without a limit: {queries:?}"
        );
    }

    #[test]
    fn every_limit_names_a_property_of_the_document() {
        let mut document = document();
        for (schema, property, _) in BODY_LIMITS {
            assert!(
                property_mut(&mut document, schema, property).is_some(),
                "no property {property} in {schema}"
            );
        }
    }

    #[test]
    fn limits_are_those_of_the_constants_and_the_configuration() {
        let document = document();
        let property = |schema: &str, name: &str| {
            document
                .pointer(&format!("/components/schemas/{schema}/properties/{name}"))
                .cloned()
                .unwrap()
        };
        assert_eq!(
            property("VisitorIdentity", "name")["maxLength"],
            json!(MAX_VISITOR_NAME_CHARS)
        );
        assert_eq!(
            property("StartRequest", "message")["maxLength"],
            json!(5000)
        );
        assert_eq!(
            property("ReplyInput", "tags")["items"]["maxLength"],
            json!(MAX_REPLY_TAG_CHARS)
        );
        assert_eq!(
            property("ReplyInput", "tags")["maxItems"],
            json!(MAX_REPLY_TAGS)
        );
        // A nullable enum still admits null.
        assert!(property("Arrival", "channel")["enum"]
            .as_array()
            .unwrap()
            .contains(&Value::Null));
        let search = &document["paths"]["/api/v1/kb/search"]["get"]["parameters"];
        let q = search
            .as_array()
            .unwrap()
            .iter()
            .find(|parameter| parameter["name"] == "q")
            .unwrap();
        assert_eq!(q["schema"]["maxLength"], json!(1000));
        assert_eq!(q["required"], json!(true));
        // A flattened struct is one object (it was an unsatisfiable `allOf`).
        let start = &document["components"]["schemas"]["ApiStart"];
        assert!(start.get("allOf").is_none(), "{start}");
        assert_eq!(
            start["properties"]["user_id"]["maxLength"],
            json!(MAX_EXTERNAL_ID_CHARS),
            "{start}"
        );
        assert!(start["properties"]["message"].is_object(), "{start}");
    }
}
