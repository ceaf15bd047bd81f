//! `kefu serve` as one node of several (see docs/ARCHITECTURE.md, "Several nodes"): the node's own
//! knowledge base and history index kept in step through JetStream, a follower's read-only services
//! behind the forwarding front, and, once the election makes this node the leader, the whole desk.

use std::sync::Arc;

use anyhow::Context;

use super::{assemble, open_knowledge, open_store, shutdown_signal, start_desk_work, Desk};
use crate::cluster::election::{self, OpeningLock, Role};
use crate::cluster::forward::Front;
use crate::cluster::kb_sync::KbSync;
use crate::cluster::message_log::MessageLog;
use crate::cluster::Node;
use crate::config::Config;
use crate::http::router;
use crate::services::captcha::ImageCaptcha;
use crate::services::{watch_knowledge_base, ConversationService, SystemClock};
use crate::storage::StoredConversations;

/// Serves on `listener` until Ctrl-C or SIGTERM, following the election.
pub(super) async fn serve(config: Config, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
    let postgres_url = config
        .storage
        .postgres_url
        .clone()
        .context("storage.postgres_url is not set")?;
    let node = Node::connect(&config, listener.local_addr()?).await?;
    tracing::info!(node = %node.id, url = %node.advertise_url, "joining the cluster");
    let front = Arc::new(Front::default());
    let app = front
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let mut server = tokio::spawn(async move {
        axum::serve(crate::http::without_nagle(listener), app)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    let (knowledge, metrics) = open_knowledge(&config).await?;
    // Kept for the life of the node: dropping it stops the replication.
    let _kb_sync = KbSync::start(&node, Arc::clone(&knowledge))
        .await
        .context("replicating the knowledge base")?;
    let opening = opening_lock(&postgres_url).await?;
    let store = open_store(&config).await?;
    let history = {
        let conversations = StoredConversations::new(store.clone());
        let data = config.paths.data.clone();
        let analyzer = knowledge.index().analyzer();
        tokio::task::spawn_blocking(move || {
            ConversationService::open_message_index(&conversations, &data, analyzer)
        })
        .await?
        .context("opening the message index")?
    };
    let message_log = Arc::new(
        MessageLog::start(&node, Arc::clone(&history))
            .await
            .context("following the message log")?,
    );
    let follower = assemble(
        &config,
        store.clone(),
        Arc::new(SystemClock),
        Box::new(ImageCaptcha),
        Arc::clone(&knowledge),
        Arc::clone(&metrics),
        Desk::Follower {
            history: Arc::clone(&history),
        },
    )
    .await?;
    release(opening).await;
    let _watcher = if config.search.watch {
        Some(watch_knowledge_base(Arc::clone(&knowledge))?)
    } else {
        None
    };
    front.follow(router(follower.clone()));
    let mut roles = election::start(&postgres_url, &node)?;
    tracing::info!("ready");
    // Follow until the election makes this node the leader; a leader stays one until its process ends
    // (it exits when it loses the lock), so there is no way back.
    let epoch = loop {
        tokio::select! {
            changed = roles.changed() => {
                if changed.is_err() {
                    break None;
                }
            }
            served = &mut server => return stopped(served),
        }
        match roles.borrow_and_update().clone() {
            Role::Unknown => {}
            Role::Follower { leader_url, .. } => front.set_leader_url(leader_url.as_deref()),
            Role::Leader { epoch } => break Some(epoch),
        }
    };
    if let Some(epoch) = epoch {
        let opening = opening_lock(&postgres_url).await?;
        let leased = store.clone();
        let state = assemble(
            &config,
            store,
            Arc::new(SystemClock),
            Box::new(ImageCaptcha),
            Arc::clone(&knowledge),
            metrics,
            Desk::Leader {
                fence: Arc::new(move || leased.check_desk_epoch(epoch)),
                history,
            },
        )
        .await
        .context("opening the desk as its leader")?;
        release(opening).await;
        state
            .conversations
            .add_stored_message_sink(message_log.clone());
        republish_recent(&state, &message_log).await;
        start_desk_work(&state);
        front.lead(router(state));
        // The follower's services answered until the line above; nothing uses them any more.
        drop(follower);
        tracing::info!(epoch, "leading the desk");
    }
    stopped(server.await)
}

/// The outcome of the server task, logged.
fn stopped(served: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    served??;
    tracing::info!("stopped");
    Ok(())
}

/// How far back a new leader republishes stored messages: the stream's duplicate window, so what the
/// previous leader had published is dropped by JetStream, and what it committed but had not yet
/// published (it died in between) reaches every node's history.
const REPUBLISH_WINDOW: jiff::SignedDuration = jiff::SignedDuration::from_mins(2);

async fn republish_recent(state: &crate::http::AppState, log: &Arc<MessageLog>) {
    let conversations = Arc::clone(&state.conversations);
    let since = conversations.now() - REPUBLISH_WINDOW;
    match tokio::task::spawn_blocking(move || conversations.messages_since(since)).await {
        Ok(Ok(messages)) => {
            let count = log.republish(messages).await;
            tracing::info!(count, "republished the last two minutes of messages");
        }
        Ok(Err(error)) => tracing::warn!(%error, "reading recent messages to republish failed"),
        Err(error) => tracing::warn!(%error, "republishing recent messages failed"),
    }
}

async fn opening_lock(postgres_url: &str) -> anyhow::Result<OpeningLock> {
    let url = postgres_url.to_string();
    tokio::task::spawn_blocking(move || OpeningLock::acquire(&url))
        .await
        .context("waiting for the opening lock")?
}

/// Releases the opening lock off the async workers (rust-postgres' synchronous client blocks).
async fn release(lock: OpeningLock) {
    let _ = tokio::task::spawn_blocking(move || drop(lock)).await;
}
