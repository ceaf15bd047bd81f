//! Wires the service together and serves it: data folders, index sync, file watcher, HTTP.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::Config;
use crate::http::{router, AppState};
use crate::search::WriterOptions;
use crate::services::{watch_knowledge_base, KnowledgeService};

/// Opens everything `config` names and returns the HTTP state; blocking work runs off the async workers.
pub async fn build_state(config: &Config) -> anyhow::Result<AppState> {
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
    Ok(AppState {
        knowledge: Arc::new(knowledge),
    })
}

/// `kefu serve`: runs until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    tracing::info!(
        kb = %absolute(&config.paths.kb),
        index = %absolute(&config.paths.index),
        data = %absolute(&config.paths.data),
        "starting kefu"
    );
    let state = build_state(&config).await?;
    let _watcher = if config.search.watch {
        Some(watch_knowledge_base(Arc::clone(&state.knowledge))?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("listening on {}", config.server.listen))?;
    tracing::info!(address = %listener.local_addr()?, "serving");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

async fn shutdown_signal() {
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
