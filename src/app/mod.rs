//! Wires the service together and serves it: data folders, index sync, file watcher, HTTP.
//! `cluster.rs` serves it as one node of several.

mod cluster;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::domain::PresenceStatus;
use crate::http::{router, AppState};
use crate::search::WriterOptions;
use crate::services::accounts::Bootstrap;
use crate::services::captcha::{CaptchaSource, ImageCaptcha};
use crate::services::stats::StatsService;
use crate::services::suggestions::SuggestionPump;
use crate::services::visitors::VisitorService;
use crate::services::webhooks::WebhookService;
use crate::services::{
    watch_knowledge_base, AccountService, AssistService, Clock, ConversationService,
    KnowledgeService, Metrics, QuickReplyService, SystemClock,
};
use crate::storage::{
    Store, StoredConversations, StoredSettings, StoredStats, StoredVisitors, StoredWebhooks,
    UnitOfWork,
};

/// How often the conversation timers run.
const DESK_TICK: Duration = Duration::from_secs(1);
/// How often idle agents are set away and stale sessions purged.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(30);
/// Conversations that may wait for suggestions at once; past that a message gets none (counted).
const SUGGESTION_QUEUE: usize = 1024;

/// Threads computing suggestions: one per core, at most four, so that suggestions use the spare
/// cores and never more threads than there is work for.
fn suggestion_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(1, 4)
}

/// Opens everything `config` names and returns the HTTP state; blocking work runs off the async workers.
pub async fn build_state(config: &Config) -> anyhow::Result<AppState> {
    build_state_with(config, Arc::new(SystemClock), Box::new(ImageCaptcha)).await
}

/// [`build_state`] with the clock and captcha pictures chosen by the caller (tests inject both).
pub async fn build_state_with(
    config: &Config,
    clock: Arc<dyn Clock>,
    captcha: Box<dyn CaptchaSource>,
) -> anyhow::Result<AppState> {
    let (knowledge, metrics) = open_knowledge(config).await?;
    let store = open_store(config).await?;
    assemble(
        config,
        store,
        clock,
        captcha,
        knowledge,
        metrics,
        Desk::Sole,
    )
    .await
}

/// What the desk of this process is.
#[derive(Clone)]
pub(crate) enum Desk {
    /// The only node: the desk is this process's, and it opens its own message index.
    Sole,
    /// A cluster's leader: the desk is this process's while every turn passes `fence`.
    Leader {
        /// The lease check every desk turn runs.
        fence: crate::services::conversations::DeskFence,
        /// The node's message index, which outlives this desk (the message log feeds it too).
        history: Arc<crate::search::MessageIndex>,
    },
    /// A cluster's follower: the services only read (knowledge base, history); the desk is the
    /// leader's, so nothing here routes, receives channel messages or computes suggestions.
    Follower {
        /// The node's message index.
        history: Arc<crate::search::MessageIndex>,
    },
}

/// Opens the knowledge base and its index (a node's own, whatever its part in a cluster).
pub(crate) async fn open_knowledge(
    config: &Config,
) -> anyhow::Result<(Arc<KnowledgeService>, Arc<Metrics>)> {
    std::fs::create_dir_all(&config.paths.data)
        .with_context(|| format!("creating data folder {}", config.paths.data.display()))?;
    let kb_dir = config.paths.kb.clone();
    let index_dir = config.paths.index.clone();
    let search_config = config.search.clone();
    let (knowledge, report) = tokio::task::spawn_blocking(move || {
        KnowledgeService::open(&kb_dir, &index_dir, search_config, WriterOptions::serving())
    })
    .await?
    .with_context(|| format!("opening the index in {}", config.paths.index.display()))?;
    for error in &report.errors {
        tracing::warn!(file = %error.file, line = error.line, reason = %error.reason, "article not indexed");
    }
    tracing::info!(
        added = report.added,
        updated = report.updated,
        removed = report.removed,
        unchanged = report.unchanged,
        broken = report.errors.len(),
        "index in step with the knowledge base"
    );
    knowledge
        .index()
        .start_commit_batching(Duration::from_millis(config.search.commit_delay_ms));
    let metrics = Arc::new(Metrics::new());
    let knowledge = Arc::new(knowledge.with_metrics(Arc::clone(&metrics)));
    Ok((knowledge, metrics))
}

/// Opens every service over the store around `knowledge`, for `desk`.
pub(crate) async fn assemble(
    config: &Config,
    store: Store,
    clock: Arc<dyn Clock>,
    captcha: Box<dyn CaptchaSource>,
    knowledge: Arc<KnowledgeService>,
    metrics: Arc<Metrics>,
    desk: Desk,
) -> anyhow::Result<AppState> {
    let clock_for_replies = Arc::clone(&clock);
    let accounts = Arc::new(open_accounts(config, store, Arc::clone(&clock), captcha).await?);
    let conversation_store = Arc::new(StoredConversations::new(accounts.store().clone()));
    let conversations = match &desk {
        Desk::Leader { history, .. } | Desk::Follower { history } => {
            ConversationService::open_with_history(
                conversation_store,
                Arc::clone(&accounts),
                clock,
                config.conversations.clone(),
                &config.paths.data,
                Arc::clone(history),
            )
        }
        Desk::Sole => ConversationService::open(
            conversation_store,
            Arc::clone(&accounts),
            clock,
            config.conversations.clone(),
            &config.paths.data,
            knowledge.index().analyzer(),
        ),
    }
    .context("opening conversations")?
    .with_metrics(Arc::clone(&metrics));
    if let Desk::Leader { fence, .. } = &desk {
        conversations.set_fence(Arc::clone(fence));
    }
    let conversations = Arc::new(conversations);
    let stats = StatsService::new(
        Arc::new(StoredStats::new(accounts.store())),
        UnitOfWork::new(accounts.store()),
        &config.conversations.time_zone,
    )?;
    conversations.add_observer(stats.clone());
    let visitors = Arc::new(VisitorService::new(
        Arc::clone(&accounts),
        Arc::new(StoredVisitors::new(accounts.store())),
        Arc::new(StoredSettings::new(accounts.store())),
        UnitOfWork::new(accounts.store()),
        Arc::clone(&clock_for_replies),
        config.visitors.clone(),
    ));
    conversations.add_observer(visitors.clone());
    let webhooks = Arc::new(WebhookService::new(
        Arc::new(StoredWebhooks::new(accounts.store())),
        UnitOfWork::new(accounts.store()),
        Arc::clone(&clock_for_replies),
    ));
    conversations.add_observer(webhooks.clone());
    let channels = crate::channels::ChannelService::open(
        Arc::clone(&accounts),
        Arc::clone(&conversations),
        Arc::clone(&visitors),
        Arc::clone(&webhooks),
        Arc::clone(&clock_for_replies),
        config.channels.clone(),
    )
    .context("opening channels")?;
    let leads_desk = !matches!(desk, Desk::Follower { .. });
    if leads_desk {
        channels.resume().context("resuming channels")?;
        follow_presence(&accounts, &conversations);
    }
    let seed_author = accounts
        .account_by_username(crate::services::accounts::BOOTSTRAP_ADMIN)?
        .map_or(crate::domain::AccountId(1), |admin| admin.id);
    let quick_replies = QuickReplyService::open(
        accounts.store().clone(),
        knowledge.index().analyzer(),
        Arc::clone(&clock_for_replies),
        seed_author,
    )
    .context("opening quick replies")?;
    let quick_replies = Arc::new(quick_replies);
    let assist = Arc::new(
        AssistService::new(
            Arc::clone(&knowledge),
            Arc::clone(&quick_replies),
            Arc::clone(&conversations),
            accounts.store().clone(),
        )
        .with_metrics(Arc::clone(&metrics))
        .with_min_confidence(config.search.min_confidence),
    );
    let push_suggestions = config.conversations.push_suggestions && leads_desk;
    let suggestions = Arc::new(if push_suggestions {
        SuggestionPump::start(
            &conversations,
            &accounts,
            &assist,
            crate::http::access::readable_reply_scopes,
            suggestion_workers(),
            SUGGESTION_QUEUE,
        )
    } else {
        SuggestionPump::disabled()
    });
    if push_suggestions {
        conversations.subscribe_to_visitor_messages(suggestions.clone());
    }
    Ok(AppState {
        knowledge,
        accounts,
        conversations,
        quick_replies,
        assist,
        suggestions,
        metrics,
        stats,
        visitors,
        webhooks,
        channels,
        trusted_proxies: Arc::new(config.server.trusted_proxies.clone()),
    })
}

/// Opens the store `config` names (migrating PostgreSQL).
pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let data_dir = config.paths.data.clone();
    let storage_config = config.storage.clone();
    tokio::task::spawn_blocking(move || Store::open_configured(&storage_config, &data_dir))
        .await?
        .with_context(|| match config.storage.backend {
            crate::config::StorageBackend::Sled => {
                format!("opening the database in {}", config.paths.data.display())
            }
            crate::config::StorageBackend::Postgres => "opening PostgreSQL".to_string(),
        })
}

async fn open_accounts(
    config: &Config,
    store: Store,
    clock: Arc<dyn Clock>,
    captcha: Box<dyn CaptchaSource>,
) -> anyhow::Result<AccountService> {
    let accounts_config = config.accounts.clone();
    let (accounts, bootstrap) = tokio::task::spawn_blocking(move || {
        AccountService::open(store, accounts_config, clock, captcha)
    })
    .await?
    .context("opening accounts")?;
    announce_bootstrap(&bootstrap);
    Ok(accounts)
}

/// Tells the operator what first start did; a generated password goes to the console only.
pub fn announce_bootstrap(bootstrap: &Bootstrap) {
    match bootstrap {
        Bootstrap::Existing => {}
        Bootstrap::CreatedWithConfiguredPassword => tracing::info!(
            "first start: created account `admin` with the password from KEFU_ADMIN_PASSWORD; it must be changed at first sign-in"
        ),
        Bootstrap::CreatedWithRandomPassword(password) => {
            // Printed once, to the console only: it is in no log file and never shown again.
            println!(
                "first start: created account `admin` with password {password}\n\
                 sign in and change it; it is not shown again"
            );
        }
    }
}

/// Gives conversations back when agents go offline and routes waiting ones when agents come online.
fn follow_presence(accounts: &AccountService, conversations: &Arc<ConversationService>) {
    // Weak: the task must not keep the service (and the database) alive after the state is dropped.
    let conversations = Arc::downgrade(conversations);
    let mut presence = accounts.subscribe_presence();
    tokio::spawn(async move {
        loop {
            let received = presence.recv().await;
            let Some(conversations) = conversations.upgrade() else {
                break;
            };
            match received {
                Ok(change) => {
                    let online = change.status == PresenceStatus::Online;
                    let offline = change.status == PresenceStatus::Offline;
                    if let Err(error) = conversations
                        .on_presence(change.account, online, offline)
                        .await
                    {
                        tracing::warn!(%error, "rerouting after a presence change failed");
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "presence changes missed; rerouting everything");
                    let _ = conversations.tick().await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// Runs the conversation timers every second.
fn start_desk_timers(state: &AppState) {
    let conversations = Arc::clone(&state.conversations);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(DESK_TICK);
        loop {
            ticker.tick().await;
            if let Err(error) = conversations.tick().await {
                tracing::warn!(%error, "conversation timers failed");
            }
        }
    });
}

/// Sets idle agents away, purges expired sessions and visitor tokens, forgets visitors who left and
/// idle rate limits, until the process ends.
fn start_housekeeping(state: &AppState) {
    let accounts = Arc::clone(&state.accounts);
    let visitors = Arc::clone(&state.visitors);
    let conversations = Arc::clone(&state.conversations);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        loop {
            ticker.tick().await;
            let accounts = Arc::clone(&accounts);
            let visitors = Arc::clone(&visitors);
            conversations.forget_idle_upload_rates();
            let outcome = tokio::task::spawn_blocking(move || {
                let away = accounts.apply_auto_away()?;
                let purged =
                    accounts.purge_expired_sessions()? + accounts.purge_expired_visitor_tokens()?;
                let departed = visitors.forget_departed();
                Ok::<_, crate::Error>((away.len(), purged, departed))
            })
            .await;
            match outcome {
                Ok(Ok((0, 0, _))) => {}
                Ok(Ok((away, purged, departed))) => {
                    tracing::info!(away, purged, departed, "housekeeping")
                }
                Ok(Err(error)) => tracing::warn!(%error, "housekeeping failed"),
                Err(error) => tracing::warn!(%error, "housekeeping task failed"),
            }
        }
    });
}

/// `kefu serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        kb = %absolute(&config.paths.kb),
        index = %absolute(&config.paths.index),
        data = %absolute(&config.paths.data),
        "starting kefu"
    );
    // Listen first: while the index loads (a first build of a large knowledge base takes a while),
    // `/healthz` answers and everything else, `/readyz` included, answers `503 starting`.
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    if config.cluster.enabled() {
        return cluster::serve(config, listener).await;
    }
    let ready: Arc<std::sync::OnceLock<axum::Router>> = Arc::default();
    let front = crate::http::starting_router(Arc::clone(&ready))
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = tokio::spawn(async move {
        axum::serve(crate::http::without_nagle(listener), front)
            .with_graceful_shutdown(shutdown_signal())
            .await
    });
    let state = build_state(&config).await?;
    let _watcher = if config.search.watch {
        Some(watch_knowledge_base(Arc::clone(&state.knowledge))?)
    } else {
        None
    };
    start_desk_work(&state);
    let _ = ready.set(router(state));
    tracing::info!("ready");
    server.await??;
    tracing::info!("stopped");
    Ok(())
}

/// Starts what the node that holds the desk runs in the background: timers, housekeeping, webhook and
/// channel deliveries; and loads the location database.
fn start_desk_work(state: &AppState) {
    start_housekeeping(state);
    start_desk_timers(state);
    crate::services::webhooks::start_delivery(&state.webhooks);
    crate::channels::outbound::start_delivery(&state.channels);
    let visitors = Arc::clone(&state.visitors);
    tokio::task::spawn_blocking(move || visitors.load_location_database().is_some());
}

fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
