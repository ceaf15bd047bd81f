//! Calls to the WeChat and 企业微信 APIs (blocking, with ureq; callers run them off the async
//! workers) and the access tokens they need, cached per channel until shortly before they expire.
//!
//! Both APIs answer JSON with `errcode` (0 or absent on success) and `errmsg`; media downloads answer
//! the file's bytes, or such JSON on failure.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use parking_lot::Mutex;
use serde_json::Value;

/// A token is renewed this long before WeChat says it expires.
const TOKEN_MARGIN: SignedDuration = SignedDuration::from_mins(5);
/// Largest media file read back from WeChat.
const MAX_MEDIA_BYTES: u64 = 20 << 20;

/// `errcode`s that mean the access token is no good (invalid 40001 and 40014, expired 42001): fetch a
/// new one and try once more.
pub const TOKEN_ERRCODES: [i64; 3] = [40001, 40014, 42001];

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The API could not be reached, or answered something that is not its JSON.
    #[error("{0}")]
    Network(String),
    /// The API answered an error.
    #[error("errcode {code}: {message}")]
    Api {
        /// `errcode`.
        code: i64,
        /// `errmsg`.
        message: String,
    },
}

impl CallError {
    /// Whether the access token was refused (see [`TOKEN_ERRCODES`]).
    pub fn is_token_error(&self) -> bool {
        matches!(self, CallError::Api { code, .. } if TOKEN_ERRCODES.contains(code))
    }
}

/// A downloaded media file.
#[derive(Debug, Clone)]
pub struct Media {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The file name from `Content-Disposition`, when given.
    pub file_name: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
}

/// The HTTP client for both APIs.
#[derive(Clone)]
pub struct ApiClient {
    agent: ureq::Agent,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ApiClient").finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client whose calls give up after `timeout`.
    pub fn new(timeout: Duration) -> ApiClient {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(3)
            .user_agent("kefu-channels")
            .build()
            .into();
        ApiClient { agent }
    }

    /// `GET url`, answered with JSON.
    pub fn get_json(&self, url: &str) -> Result<Value, CallError> {
        let response = self
            .agent
            .get(url)
            .call()
            .map_err(|error| CallError::Network(error.to_string()))?;
        read_json(response)
    }

    /// `POST url` with a JSON body, answered with JSON.
    pub fn post_json(&self, url: &str, body: &Value) -> Result<Value, CallError> {
        let response = self
            .agent
            .post(url)
            .header("Content-Type", "application/json; charset=utf-8")
            .send(body.to_string())
            .map_err(|error| CallError::Network(error.to_string()))?;
        read_json(response)
    }

    /// `POST url` with the file as the multipart field `media` (WeChat's media upload).
    pub fn upload(
        &self,
        url: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<Value, CallError> {
        use ureq::unversioned::multipart::{Form, Part};
        let part = Part::bytes(bytes)
            .file_name(file_name)
            .mime_str(content_type)
            .map_err(|error| CallError::Network(error.to_string()))?;
        let form = Form::new().part("media", part);
        let response = self
            .agent
            .post(url)
            .send(form)
            .map_err(|error| CallError::Network(error.to_string()))?;
        read_json(response)
    }

    /// `GET url` for a media file; JSON in the answer is WeChat's error.
    pub fn download(&self, url: &str) -> Result<Media, CallError> {
        let response = self
            .agent
            .get(url)
            .call()
            .map_err(|error| CallError::Network(error.to_string()))?;
        let status = response.status();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header("content-type");
        let file_name =
            header("content-disposition").and_then(|value| disposition_file_name(&value));
        let bytes = response
            .into_body()
            .with_config()
            .limit(MAX_MEDIA_BYTES)
            .read_to_vec()
            .map_err(|error| CallError::Network(error.to_string()))?;
        let looks_like_json = content_type
            .as_deref()
            .is_some_and(|kind| kind.contains("json") || kind.starts_with("text/plain"))
            || bytes.first() == Some(&b'{');
        if looks_like_json {
            if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
                check_errcode(&value)?;
            }
        }
        if !status.is_success() {
            return Err(CallError::Network(format!("the API answered {status}")));
        }
        Ok(Media {
            bytes,
            file_name,
            content_type,
        })
    }
}

fn read_json(response: ureq::http::Response<ureq::Body>) -> Result<Value, CallError> {
    let status = response.status();
    let text = response
        .into_body()
        .read_to_string()
        .map_err(|error| CallError::Network(error.to_string()))?;
    let value: Value = serde_json::from_str(&text).map_err(|_| {
        CallError::Network(format!(
            "the API answered {status} with something that is not JSON: {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    check_errcode(&value)?;
    Ok(value)
}

/// An answer with a non-zero `errcode` is an error.
fn check_errcode(value: &Value) -> Result<(), CallError> {
    match value.get("errcode").and_then(Value::as_i64) {
        None | Some(0) => Ok(()),
        Some(code) => Err(CallError::Api {
            code,
            message: value
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }),
    }
}

/// `filename="x.amr"` of a `Content-Disposition`.
fn disposition_file_name(value: &str) -> Option<String> {
    value.split(';').find_map(|part| {
        let (key, name) = part.trim().split_once('=')?;
        (key.trim().eq_ignore_ascii_case("filename"))
            .then(|| name.trim().trim_matches('"').to_string())
            .filter(|name| !name.is_empty())
    })
}

/// Access tokens by channel, each kept until [`TOKEN_MARGIN`] before its expiry.
#[derive(Debug, Default)]
pub struct AccessTokens {
    tokens: Mutex<HashMap<u64, (String, Timestamp)>>,
}

impl AccessTokens {
    /// The cached token of `channel` at `now`, or a new one from `fetch` (token, `expires_in`
    /// seconds), cached.
    pub fn get(
        &self,
        channel: u64,
        now: Timestamp,
        fetch: impl FnOnce() -> Result<(String, i64), CallError>,
    ) -> Result<String, CallError> {
        if let Some((token, valid_until)) = self.tokens.lock().get(&channel) {
            if *valid_until > now {
                return Ok(token.clone());
            }
        }
        let (token, expires_in) = fetch()?;
        let valid_until = now + SignedDuration::from_secs(expires_in.max(0)) - TOKEN_MARGIN;
        self.tokens
            .lock()
            .insert(channel, (token.clone(), valid_until));
        Ok(token)
    }

    /// Forgets the token of `channel` (refused, or the channel's secret changed).
    pub fn forget(&self, channel: u64) {
        self.tokens.lock().remove(&channel);
    }
}

/// The token of a token endpoint's answer (`access_token`, `expires_in`).
pub fn token_of(answer: &Value) -> Result<(String, i64), CallError> {
    let token = answer
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| CallError::Network("the token answer has no access_token".into()))?;
    let expires_in = answer
        .get("expires_in")
        .and_then(Value::as_i64)
        .unwrap_or(7200);
    Ok((token.to_string(), expires_in))
}

/// `value` percent-encoded for a query string.
pub fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_cached_until_five_minutes_before_they_expire() {
        let tokens = AccessTokens::default();
        let now: Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
        let mut fetched = 0;
        let mut fetch = |token: &str| {
            fetched += 1;
            let token = token.to_string();
            move || Ok((token, 7200))
        };
        assert_eq!(tokens.get(7, now, fetch("a")).unwrap(), "a");
        let later = now + SignedDuration::from_secs(7200 - 301);
        assert_eq!(tokens.get(7, later, fetch("b")).unwrap(), "a");
        let near_expiry = now + SignedDuration::from_secs(7200 - 299);
        assert_eq!(tokens.get(7, near_expiry, fetch("c")).unwrap(), "c");
        tokens.forget(7);
        assert_eq!(tokens.get(7, near_expiry, fetch("d")).unwrap(), "d");
        assert_eq!(fetched, 4);
    }

    #[test]
    fn errcodes_and_file_names_are_read() {
        assert!(check_errcode(&serde_json::json!({"errcode": 0, "errmsg": "ok"})).is_ok());
        let refused =
            check_errcode(&serde_json::json!({"errcode": 42001, "errmsg": "access_token expired"}))
                .unwrap_err();
        assert!(refused.is_token_error());
        assert_eq!(refused.to_string(), "errcode 42001: access_token expired");
        assert_eq!(
            disposition_file_name(r#"attachment; filename="MEDIA_ID.jpg""#).as_deref(),
            Some("MEDIA_ID.jpg")
        );
        assert_eq!(
            token_of(&serde_json::json!({"access_token": "T", "expires_in": 7200})).unwrap(),
            ("T".to_string(), 7200)
        );
    }
}
