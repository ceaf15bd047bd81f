//! Picks up edits made to `kb/` on disk while serving: file-system events are gathered for a short
//! quiet period, then only the touched articles are re-read (a whole-folder sync when folders moved,
//! a re-analysis when the dictionary or synonyms changed; the category names need no indexing, only
//! announcing to the service's change listeners).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::knowledge::{run_blocking, KnowledgeService, SyncReport};
use crate::articles::{CATEGORIES_FILE, DICT_FILE, SYNONYMS_FILE};
use crate::error::{Error, Result};

/// How long the watcher waits for more events before syncing; editors save in bursts.
const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// What a burst of events asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct PendingChanges {
    articles: BTreeSet<String>,
    /// Paths that are gone and were not articles: folders, if articles were known under them.
    vanished: BTreeSet<String>,
    analysis: bool,
    /// `_categories.txt` changed.
    categories: bool,
    everything: bool,
}

impl PendingChanges {
    fn add(&mut self, kb_dir: &Path, path: &Path) {
        let Some(relative) = crate::articles::relative_path(kb_dir, path) else {
            // Not valid UTF-8: a full sync reports the file, as `kefu index` does.
            if path.starts_with(kb_dir) {
                self.everything = true;
            }
            return;
        };
        let hidden = relative
            .split('/')
            .any(|name| name.starts_with('.') || name.starts_with('_'));
        if relative == DICT_FILE || relative == SYNONYMS_FILE {
            self.analysis = true;
        } else if relative == CATEGORIES_FILE {
            self.categories = true;
        } else if crate::articles::is_article(&relative) {
            self.articles.insert(relative);
        } else if !hidden && (path.is_dir() || path.extension().is_none()) {
            // A folder was created, moved or removed: its articles are not named one by one.
            self.everything = true;
        } else if !hidden && !path.exists() {
            // Gone, with a dot in its name: a file (`notes.txt`) or a folder (`promo.2026`), which
            // only the articles known under it can tell.
            self.vanished.insert(relative);
        }
    }
}

/// The paths an event says were changed. Reads are not changes: inotify reports every open of a file
/// or folder, and a sync opens every article and folder, so counting opens made each sync trigger
/// the next (a server idling on 10,000 articles spent 38% of a core re-reading them).
fn changed_paths(event: notify::Event) -> Vec<PathBuf> {
    let read_only = matches!(event.kind, EventKind::Access(access) if access != AccessKind::Close(AccessMode::Write));
    if read_only {
        Vec::new()
    } else {
        event.paths
    }
}

/// Starts watching `service`'s knowledge base. Keep the returned watcher alive as long as watching
/// should continue.
///
/// Returns [`Error::Internal`] when the platform watcher cannot be started.
pub fn watch_knowledge_base(service: Arc<KnowledgeService>) -> Result<RecommendedWatcher> {
    let (sender, mut receiver) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) => {
                for path in changed_paths(event) {
                    let _ = sender.send(path);
                }
            }
            Err(error) => tracing::warn!(%error, "knowledge base watcher error"),
        })
        .map_err(|error| Error::Internal(format!("cannot watch the knowledge base: {error}")))?;
    let kb_dir = std::fs::canonicalize(service.kb_dir())
        .map_err(|error| Error::io(service.kb_dir(), error))?;
    watcher
        .watch(&kb_dir, RecursiveMode::Recursive)
        .map_err(|error| Error::Internal(format!("cannot watch {}: {error}", kb_dir.display())))?;

    tokio::spawn(async move {
        while let Some(first_path) = receiver.recv().await {
            let mut pending = PendingChanges::default();
            pending.add(&kb_dir, &first_path);
            tokio::time::sleep(QUIET_PERIOD).await;
            while let Ok(path) = receiver.try_recv() {
                pending.add(&kb_dir, &path);
            }
            if pending == PendingChanges::default() {
                continue;
            }
            let service = Arc::clone(&service);
            match run_blocking(move || apply_changes(&service, pending)).await {
                Ok(report) if report.changed() || !report.errors.is_empty() => tracing::info!(
                    added = report.added,
                    updated = report.updated,
                    removed = report.removed,
                    errors = report.errors.len(),
                    "knowledge base changed on disk"
                ),
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "syncing knowledge base edits failed"),
            }
        }
    });
    Ok(watcher)
}

fn apply_changes(service: &KnowledgeService, pending: PendingChanges) -> Result<SyncReport> {
    if pending.categories {
        service.announce_file_change(CATEGORIES_FILE);
    }
    if pending.analysis {
        // A new dictionary re-reads every article anyway; new synonyms need no article reread.
        let report = service.reload_analysis()?;
        if report.changed() || pending.everything {
            return Ok(report);
        }
    }
    if pending.everything {
        return service.sync_all();
    }
    let mut paths: Vec<String> = pending.articles.into_iter().collect();
    for folder in &pending.vanished {
        paths.extend(service.known_paths_under(folder));
    }
    service.sync_paths(&paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_and_reading_are_not_changes() {
        use notify::event::{CreateKind, ModifyKind};
        let path = PathBuf::from("/kb/returns/a.md");
        let event = |kind| notify::Event::new(kind).add_path(path.clone());
        assert!(
            changed_paths(event(EventKind::Access(AccessKind::Open(AccessMode::Any)))).is_empty()
        );
        assert!(changed_paths(event(EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))))
        .is_empty());
        assert_eq!(
            changed_paths(event(EventKind::Modify(ModifyKind::Any))),
            std::slice::from_ref(&path)
        );
        assert_eq!(
            changed_paths(event(EventKind::Create(CreateKind::File))),
            std::slice::from_ref(&path)
        );
        let written = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(changed_paths(event(written)), std::slice::from_ref(&path));
    }

    #[test]
    fn events_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let kb = dir.path();
        std::fs::create_dir(kb.join("folder")).unwrap();
        let mut pending = PendingChanges::default();
        pending.add(kb, &kb.join("returns/a.md"));
        pending.add(kb, &kb.join(".kefu-write-x1"));
        pending.add(kb, &kb.join("notes.txt"));
        assert_eq!(
            pending.articles.iter().collect::<Vec<_>>(),
            ["returns/a.md"]
        );
        assert!(!pending.analysis && !pending.everything);
        pending.add(kb, &kb.join("_synonyms.txt"));
        assert!(pending.analysis);
        pending.add(kb, &kb.join("_categories.txt"));
        assert!(pending.categories && !pending.everything);
        pending.add(kb, &kb.join("folder"));
        assert!(pending.everything);
    }
}
