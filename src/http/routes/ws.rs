//! The two WebSockets: `/ws/visitor` (visitor token) and `/ws/agent` (session cookie). Frames are
//! JSON objects with a `type`; commands come in, [`DeskEvent`]s go out.
//!
//! Each socket is split: one task forwards the hub's frames to the client, the other reads commands;
//! when either ends, the other is stopped and the connection leaves the hub.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ErrorBody;

use crate::domain::{AccountId, Conversation, GroupId};
use crate::error::{Error, Result};
use crate::http::access::{
    authorize, current_caller, session_token_in, Authenticated, ClientIp, Permission,
    VISITOR_TOKEN_PREFIX,
};
use crate::http::extract::AppQuery;
use crate::http::AppState;
use crate::services::accounts::Caller;
use crate::services::agent_messages::{self, AgentMessage, Sender};
use crate::services::conversations::{
    message_views, Connection, DeskEvent, Outbox, Party, TransferTarget, WrapUpInput,
};

/// Largest frame accepted from a client: a message of 5,000 characters is at most 20 kB of UTF-8.
const MAX_FRAME_BYTES: usize = 64 << 10;
/// Per-socket read buffer. tungstenite's default (128 KiB) would dominate the memory of an open
/// conversation; frames here are small.
const READ_BUFFER_BYTES: usize = 4 << 10;

/// Routes `/ws/visitor` and `/ws/agent`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(visitor_socket))
        .routes(routes!(agent_socket))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VisitorParams {
    token: String,
    #[serde(default)]
    last_seq: u64,
}

/// Browsers cannot set headers on a WebSocket, so the visitor token comes in the query string.
#[utoipa::path(
    get,
    path = "/ws/visitor",
    tag = "ws",
    params(VisitorParams),
    security(()),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are described in docs/API.md (WebSockets)"),
        (status = 400, description = "Not a WebSocket upgrade, or no conversation started yet (`invalid_input`)", body = ErrorBody),
        (status = 401, description = "`unauthenticated`: unknown token", body = ErrorBody),
        (status = 403, description = "`visitor_blocked`: the visitor or their address is on the block list", body = ErrorBody),
    ),
)]
async fn visitor_socket(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppQuery(params): AppQuery<VisitorParams>,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let token = params
        .token
        .strip_prefix(VISITOR_TOKEN_PREFIX)
        .ok_or(Error::Unauthenticated)?
        .to_string();
    let grant = state
        .accounts
        .visitor_grant(&token)?
        .ok_or(Error::Unauthenticated)?;
    state.visitors.check_blocked(Some(&grant.visitor_id), ip)?;
    let conversation = grant.conversation.ok_or_else(|| {
        Error::InvalidInput("start a conversation before opening the socket".into())
    })?;
    let snapshot = state
        .conversations
        .visitor_snapshot(&conversation, params.last_seq)?;
    Ok(sized(upgrade)?.on_upgrade(move |socket| async move {
        let (connection, outbox) = state.conversations.hub().connect_visitor(&conversation);
        state.conversations.visitor_connected(&conversation);
        for event in &snapshot {
            state.conversations.hub().to_connection(&connection, event);
        }
        let visitor_id = grant.visitor_id.clone();
        run(socket, outbox, |text| {
            let state = state.clone();
            let conversation = conversation.clone();
            let connection = connection.clone();
            let visitor_id = visitor_id.clone();
            async move {
                let command =
                    visitor_command(&state, &conversation, &visitor_id, ip, &connection, &text);
                guarded(&state, &connection, command).await
            }
        })
        .await;
        if state.conversations.hub().disconnect(&connection) {
            if let Err(error) = state.conversations.visitor_disconnected(&conversation) {
                tracing::warn!(%error, "noting a visitor leaving failed");
            }
        }
    }))
}

#[utoipa::path(
    get,
    path = "/ws/agent",
    tag = "ws",
    security(("session" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; frames are described in docs/API.md (WebSockets)"),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorBody),
        (status = 401, description = "`unauthenticated` or `session_expired`", body = ErrorBody),
        (status = 403, description = "Session refused (`csrf_failed`, `password_change_required`, ...) or role missing (`forbidden`)", body = ErrorBody),
    ),
)]
async fn agent_socket(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    check_same_origin(&headers)?;
    authorize(&caller.account, Permission::UseAgentDesk)?;
    let agent = caller.account.id;
    let token = session_token_in(&headers).ok_or(Error::Unauthenticated)?;
    let snapshot = state.conversations.agent_snapshot(agent)?;
    Ok(sized(upgrade)?.on_upgrade(move |socket| async move {
        let (connection, outbox) = state.conversations.hub().connect_agent(agent);
        state
            .conversations
            .hub()
            .to_connection(&connection, &snapshot);
        run(socket, outbox, |text| {
            let state = state.clone();
            let token = token.clone();
            let connection = connection.clone();
            async move {
                let command = agent_command(&state, &token, agent, &connection, &text);
                guarded(&state, &connection, command).await
            }
        })
        .await;
        state.conversations.hub().disconnect(&connection);
    }))
}

/// The upgrade with the desk's frame and buffer sizes. Credentials are checked before this, so a plain
/// request learns why it was refused first.
fn sized(
    upgrade: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade> {
    let upgrade = upgrade.map_err(|rejection| {
        Error::BadRequest(format!(
            "expected a WebSocket upgrade: {}",
            rejection.body_text()
        ))
    })?;
    Ok(upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0))
}

/// The cookie is SameSite=Strict, but a WebSocket handshake is not subject to CORS: refuse pages of
/// other origins explicitly.
fn check_same_origin(headers: &HeaderMap) -> Result<()> {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(origin);
    if origin_host == host {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "origin `{origin}` may not open the agent socket"
        )))
    }
}

/// How often the server pings every socket (browsers and WebSocket libraries answer with a pong).
const KEEPALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a socket may be silent (no frame, no pong) before it is taken for gone.
const SILENCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(75);

/// Pumps `outbox` to the socket and the socket's text frames to `on_text`, until either side ends or
/// `on_text` answers `false` (the caller may no longer use the socket: its error frame is sent first).
async fn run<F, Fut>(socket: WebSocket, mut outbox: Outbox, mut on_text: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (mut sink, mut stream) = socket.split();
    let mut forward = tokio::spawn(async move {
        let mut keepalive = tokio::time::interval(KEEPALIVE_EVERY);
        keepalive.tick().await;
        loop {
            let message = tokio::select! {
                frame = outbox.recv() => match frame {
                    Some(frame) => WsMessage::Text(frame.as_ref().into()),
                    None => break,
                },
                _ = keepalive.tick() => WsMessage::Ping(Vec::new().into()),
            };
            if sink.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut refused = false;
    loop {
        tokio::select! {
            _ = &mut forward => break,
            // Nothing at all from the client (not even the pong every WebSocket client answers our
            // pings with) for this long: its machine, or the node that proxied it, is gone without
            // closing the connection. Leaving the hub lets the desk treat it as a closed socket.
            _ = tokio::time::sleep(SILENCE_LIMIT) => {
                tracing::debug!("closing a silent socket");
                break;
            }
            incoming = stream.next() => match incoming {
                Some(Ok(WsMessage::Text(text))) => {
                    if !on_text(text.to_string()).await {
                        refused = true;
                        break;
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    if refused {
        // The outbox stays open until the hub lets the connection go, so the forwarder will not end
        // by itself: give it a moment to deliver the error frame that explains the close.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(200), &mut forward).await;
    }
    forward.abort();
}

/// Runs one socket command as the HTTP routes run a request: a panic is logged and answered with an
/// `internal` error frame instead of ending the socket's task (the desk's locks do not poison, so
/// the next command works).
async fn guarded(
    state: &AppState,
    connection: &Connection,
    command: impl std::future::Future<Output = bool>,
) -> bool {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(command).catch_unwind().await {
        Ok(keep) => keep,
        Err(_) => {
            let error = Error::Internal("a socket command panicked".into());
            reply_error(state, connection, &error, None);
            true
        }
    }
}

fn reply_error(
    state: &AppState,
    connection: &Connection,
    error: &Error,
    client_key: Option<String>,
) {
    reply_error_in(state, connection, error, client_key, None);
}

fn reply_error_in(
    state: &AppState,
    connection: &Connection,
    error: &Error,
    client_key: Option<String>,
    conversation: Option<String>,
) {
    let event = DeskEvent::Error {
        code: error.code().as_str(),
        message: if error.code() == crate::error::ErrorCode::Internal {
            tracing::error!(%error, "socket command failed");
            "internal error".to_string()
        } else {
            error.to_string()
        },
        client_key,
        conversation,
    };
    state.conversations.hub().to_connection(connection, &event);
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum VisitorCommand {
    Send {
        #[serde(default)]
        client_key: Option<String>,
        body: String,
        #[serde(default)]
        attachments: Vec<String>,
    },
    Typing {
        typing: bool,
    },
    End,
    Rate {
        stars: u8,
        #[serde(default)]
        comment: String,
    },
    LeaveMessage,
    Ping,
}

/// Reads a command frame. A command is a JSON object with a `type`: serde alone also reads a JSON array
/// as the command's fields in order (`["send", "k1", "…"]`), which docs/API.md does not allow and which
/// would answer without the frame's keys.
fn read_command<T: serde::de::DeserializeOwned>(text: &str) -> serde_json::Result<T> {
    if !text.trim_start().starts_with('{') {
        return Err(serde::de::Error::custom(
            "a command is a JSON object with a `type`",
        ));
    }
    serde_json::from_str(text)
}

/// Reads a visitor frame as `visitor_command` does; public for the fuzz targets in `tests/fuzz`.
pub fn parse_visitor_command(text: &str) -> serde_json::Result<()> {
    read_command::<VisitorCommand>(text).map(drop)
}

/// One command of a visitor's socket; `false` when the visitor was blocked since the page opened,
/// which closes it.
async fn visitor_command(
    state: &AppState,
    conversation: &str,
    visitor_id: &str,
    ip: Option<std::net::IpAddr>,
    connection: &Connection,
    text: &str,
) -> bool {
    let command: VisitorCommand = match read_command(text) {
        Ok(command) => command,
        Err(error) => {
            let error = Error::BadRequest(format!("unreadable command: {error}"));
            reply_error(state, connection, &error, None);
            return true;
        }
    };
    if matches!(command, VisitorCommand::Ping) {
        // Keeps proxies from closing an idle socket; reaches nobody, so the block list is not read.
        return true;
    }
    // A block made while the page is open applies to its next command.
    if let Err(error) = state.visitors.check_blocked(Some(visitor_id), ip) {
        reply_error(state, connection, &error, None);
        return false;
    }
    let conversations = &state.conversations;
    let (client_key, outcome) = match command {
        VisitorCommand::Send {
            client_key,
            body,
            attachments,
        } => {
            let outcome = match conversations.attachments_for(conversation, &attachments) {
                Ok(files) => {
                    conversations
                        .send(
                            &Party::Visitor,
                            conversation,
                            client_key.clone(),
                            &body,
                            files,
                            false,
                        )
                        .await
                }
                Err(error) => Err(error),
            };
            match outcome {
                Ok(message) => {
                    let ack = DeskEvent::Ack {
                        conversation: conversation.to_string(),
                        client_key: client_key.clone(),
                        seq: message.seq,
                    };
                    conversations.hub().to_connection(connection, &ack);
                    (client_key, Ok(()))
                }
                Err(error) => (client_key, Err(error)),
            }
        }
        VisitorCommand::Typing { typing } => (
            None,
            conversations.typing(&Party::Visitor, conversation, typing),
        ),
        VisitorCommand::End => (
            None,
            conversations
                .end(&Party::Visitor, conversation)
                .await
                .map(drop),
        ),
        VisitorCommand::Rate { stars, comment } => (
            None,
            conversations
                .rate(conversation, stars, &comment)
                .await
                .map(drop),
        ),
        VisitorCommand::LeaveMessage => (
            None,
            conversations.leave_message(conversation).await.map(drop),
        ),
        VisitorCommand::Ping => (None, Ok(())),
    };
    if let Err(error) = outcome {
        reply_error(state, connection, &error, client_key);
    }
    true
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AgentCommand {
    Accept {
        conversation: String,
    },
    Send {
        conversation: String,
        #[serde(default)]
        client_key: Option<String>,
        body: String,
        #[serde(default)]
        attachments: Vec<String>,
        /// Quick replies inserted into `body`: their variables are filled and their use counted.
        #[serde(default)]
        quick_replies: Vec<u64>,
    },
    Note {
        conversation: String,
        #[serde(default)]
        client_key: Option<String>,
        body: String,
    },
    Typing {
        conversation: String,
        typing: bool,
    },
    Transfer {
        conversation: String,
        #[serde(default)]
        to_group: Option<u64>,
        #[serde(default)]
        to_agent: Option<u64>,
        /// For the receiving colleague only.
        #[serde(default)]
        note: String,
        /// Shown to the visitor in the transfer notice.
        #[serde(default)]
        reason: String,
    },
    AnswerTransfer {
        conversation: String,
        accept: bool,
    },
    Invite {
        conversation: String,
        agent: u64,
    },
    End {
        conversation: String,
    },
    WrapUp {
        conversation: String,
        #[serde(flatten)]
        form: WrapUpInput,
    },
    Sync {
        conversation: String,
        #[serde(default)]
        last_seq: u64,
    },
    Ping,
}

/// Reads an agent frame as `agent_command` does; public for the fuzz targets in `tests/fuzz`.
pub fn parse_agent_command(text: &str) -> serde_json::Result<()> {
    read_command::<AgentCommand>(text).map(drop)
}

/// What a command needs of the caller with respect to the conversation.
enum Needs {
    /// Serving agent, supervisor of its group, or admin.
    Serve,
    /// The above or an invited colleague.
    Assist,
}

fn check(caller: &Caller, conversation: &Conversation, needs: Needs) -> Result<()> {
    let permission = match needs {
        Needs::Serve => Permission::serve(conversation),
        Needs::Assist => Permission::assist(conversation, caller.account.id),
    };
    authorize(&caller.account, permission)
}

/// The agent behind a socket's session as they are now, checked again on every command: the
/// handshake's copy of the account (its roles and groups) may be hours old, and the session may have
/// been revoked or the account disabled since.
fn desk_caller(state: &AppState, token: &str, agent: AccountId) -> Result<Caller> {
    let caller = current_caller(state, token)?;
    if caller.account.id != agent {
        return Err(Error::SessionExpired);
    }
    authorize(&caller.account, Permission::UseAgentDesk)?;
    Ok(caller)
}

/// One command of an agent's socket; `false` when the session behind the socket may no longer use
/// the desk (signed out, disabled, role gone), which closes it.
async fn agent_command(
    state: &AppState,
    token: &str,
    agent: AccountId,
    connection: &Connection,
    text: &str,
) -> bool {
    let command: AgentCommand = match read_command(text) {
        Ok(command) => command,
        Err(error) => {
            let error = Error::BadRequest(format!("unreadable command: {error}"));
            reply_error(state, connection, &error, None);
            return true;
        }
    };
    if matches!(command, AgentCommand::Ping) {
        // Keeps proxies from closing an idle socket; not the agent's activity.
        return true;
    }
    let caller = match desk_caller(state, token, agent) {
        Ok(caller) => caller,
        Err(error) => {
            reply_error(state, connection, &error, None);
            return false;
        }
    };
    let caller = &caller;
    // Messages are answered by their `ack`; typing, sync and ping need no answer.
    let answered = match &command {
        AgentCommand::Accept { .. } => Some("accept"),
        AgentCommand::Transfer { .. } => Some("transfer"),
        AgentCommand::AnswerTransfer { .. } => Some("answer_transfer"),
        AgentCommand::Invite { .. } => Some("invite"),
        AgentCommand::End { .. } => Some("end"),
        AgentCommand::WrapUp { .. } => Some("wrap_up"),
        _ => None,
    };
    let outcome = agent_command_inner(state, caller, connection, command).await;
    if outcome.is_ok() && answered.is_none() {
        return true;
    }
    // Any command may carry a `client_key`; the answer (`done` or `error`) echoes it and names the
    // conversation, so a page can tell which of its requests succeeded. Read only when answering, so
    // messages and typing are parsed once.
    let envelope: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    let field = |name: &str| {
        envelope
            .get(name)
            .and_then(|value| value.as_str())
            .map(str::to_string)
    };
    let (key, conversation) = (field("client_key"), field("conversation"));
    match outcome {
        Ok(()) => {
            if let (Some(command), Some(conversation)) = (answered, conversation) {
                let done = DeskEvent::Done {
                    command,
                    conversation,
                    client_key: key,
                };
                state.conversations.hub().to_connection(connection, &done);
            }
        }
        Err(error) => reply_error_in(state, connection, &error, key, conversation),
    }
    true
}

async fn agent_command_inner(
    state: &AppState,
    caller: &Caller,
    connection: &Connection,
    command: AgentCommand,
) -> Result<()> {
    let conversations = &state.conversations;
    let me = caller.account.id;
    let party = Party::Agent(me);
    match command {
        AgentCommand::Accept { conversation } => {
            conversations.accept(me, &conversation).await?;
        }
        AgentCommand::Send {
            conversation,
            client_key,
            body,
            attachments,
            quick_replies,
        } => {
            let may_read =
                |scope| authorize(&caller.account, Permission::ReadReplies(scope)).is_ok();
            let sender = Sender {
                agent: me,
                name: &caller.account.display_name,
                may_read: &may_read,
            };
            let message = AgentMessage {
                conversation: conversation.clone(),
                client_key: client_key.clone(),
                body,
                attachments,
                quick_replies,
            };
            let stored = agent_messages::send(
                conversations,
                &state.quick_replies,
                &sender,
                message,
                &|now| check(caller, now, Needs::Serve),
            )
            .await?;
            let ack = DeskEvent::Ack {
                conversation,
                client_key,
                seq: stored.seq,
            };
            conversations.hub().to_connection(connection, &ack);
        }
        AgentCommand::Note {
            conversation,
            client_key,
            body,
        } => {
            let message = conversations
                .send_reporting_new(
                    &party,
                    &conversation,
                    client_key.clone(),
                    &body,
                    Vec::new(),
                    true,
                    &|now| check(caller, now, Needs::Assist),
                )
                .await?
                .0;
            let ack = DeskEvent::Ack {
                conversation,
                client_key,
                seq: message.seq,
            };
            conversations.hub().to_connection(connection, &ack);
        }
        AgentCommand::Typing {
            conversation,
            typing,
        } => {
            check(
                caller,
                &conversations.conversation(&conversation)?,
                Needs::Serve,
            )?;
            conversations.typing(&party, &conversation, typing)?;
        }
        AgentCommand::Transfer {
            conversation,
            to_group,
            to_agent,
            note,
            reason,
        } => {
            let target = match (to_group, to_agent) {
                (Some(group), None) => TransferTarget::Group(GroupId(group)),
                (None, Some(agent)) => TransferTarget::Agent(AccountId(agent)),
                _ => {
                    return Err(Error::InvalidInput(
                        "give exactly one of to_group and to_agent".into(),
                    ))
                }
            };
            check(
                caller,
                &conversations.conversation(&conversation)?,
                Needs::Serve,
            )?;
            conversations
                .transfer(me, &conversation, target, &note, &reason)
                .await?;
        }
        AgentCommand::AnswerTransfer {
            conversation,
            accept,
        } => {
            conversations
                .answer_transfer(me, &conversation, accept)
                .await?;
        }
        AgentCommand::Invite {
            conversation,
            agent,
        } => {
            conversations
                .invite(me, &conversation, AccountId(agent), &|now| {
                    check(caller, now, Needs::Serve)
                })
                .await?;
        }
        AgentCommand::End { conversation } => {
            conversations
                .end_checked(&party, &conversation, &|now| {
                    check(caller, now, Needs::Serve)
                })
                .await?;
        }
        AgentCommand::WrapUp { conversation, form } => {
            conversations.wrap_up(me, &conversation, form).await?;
        }
        AgentCommand::Sync {
            conversation,
            last_seq,
        } => {
            check(
                caller,
                &conversations.conversation(&conversation)?,
                Needs::Assist,
            )?;
            let messages = conversations.messages_after(&conversation, last_seq, &party)?;
            conversations.hub().to_connection(
                connection,
                &DeskEvent::History {
                    conversation,
                    messages: message_views(messages),
                },
            );
        }
        AgentCommand::Ping => {}
    }
    Ok(())
}
