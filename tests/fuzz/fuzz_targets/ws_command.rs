//! Frames of the visitor and agent sockets (`/ws/visitor`, `/ws/agent`), read exactly as the sockets
//! read them before any command runs.
#![no_main]

use kefu::http::{parse_agent_command, parse_visitor_command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Sockets take text frames only, which tungstenite has already checked to be UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let visitor = parse_visitor_command(text);
    let agent = parse_agent_command(text);
    // A frame either is a command or gets the `unreadable command` error. A command names its type:
    // in an object's `type`, or (serde's sequence form of an internally tagged enum, found by this
    // target: `["sync", "c_…"]` is read as a `sync`) as an array's first element.
    if visitor.is_ok() || agent.is_ok() {
        let value: serde_json::Value =
            serde_json::from_str(text).expect("a command that is not JSON");
        let kind = match &value {
            serde_json::Value::Array(items) => items.first(),
            other => other.get("type"),
        };
        assert!(
            kind.is_some_and(serde_json::Value::is_string),
            "a command without a type: {text}"
        );
    }
});
