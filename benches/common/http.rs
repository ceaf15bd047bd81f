//! The benches' HTTP client: one request per connection on a raw socket (no client library in the
//! measured path), signing in, and calls with a session. Shared by `desk` and `load`.

use std::net::SocketAddr;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Whether `/readyz` answers 200 (blocking: called while waiting for the server to start).
pub fn is_ready(address: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return false;
    };
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut response).is_ok()
        && response.starts_with("HTTP/1.1 200")
}

/// One HTTP/1.1 request with `Connection: close`; returns status, `Set-Cookie` value and JSON body.
pub async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Option<String>, Value) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let body = body.map(|body| body.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let cookie = head
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("set-cookie:"))
        .and_then(|line| line.split_once(':'))
        .and_then(|(_, value)| value.trim().split(';').next())
        .map(str::to_string);
    (
        status,
        cookie,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// A signed-in agent: the session cookie and its CSRF token.
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub async fn login(address: SocketAddr, username: &str, password: &str) -> Session {
    let (status, cookie, body) = http(
        address,
        "POST",
        "/api/v1/auth/login",
        &[],
        Some(json!({"username": username, "password": password})),
    )
    .await;
    assert_eq!(status, 200, "signing in {username}: {body}");
    Session {
        cookie: cookie.unwrap(),
        csrf: body["csrf_token"].as_str().unwrap().to_string(),
    }
}

pub async fn signed(
    address: SocketAddr,
    session: &Session,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let headers = [
        ("Cookie", session.cookie.as_str()),
        ("X-CSRF-Token", session.csrf.as_str()),
    ];
    let (status, _, body) = http(address, method, path, &headers, Some(body)).await;
    (status, body)
}
