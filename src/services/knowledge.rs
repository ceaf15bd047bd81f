//! The knowledge base as a service: keeps the index in step with `kb/` (incremental sync by content
//! hash), edits articles on disk atomically, searches, and remembers which files are broken and why.
//!
//! Every change of a knowledge-base file seen or made here (an article saved or deleted through the
//! API, the dictionary, synonyms or category names saved in the console, a file edited on disk and
//! picked up by a sync) is told to the [`KbChangeListener`]s, so another layer can copy it elsewhere
//! (the cluster's replication) without this service knowing how.

use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::articles::{
    is_article, is_knowledge_file, list_article_files, load_knowledge_base, parse_article,
    remove_file_durably, render_html, resolve_duplicate_ids, write_file_atomically,
    write_shared_file_atomically, DICT_FILE, SYNONYMS_FILE,
};
use crate::config::SearchConfig;
use crate::domain::{Article, ArticleId, ArticleStatus, Section};
use crate::error::{ArticleError, Error, Result};
use crate::search::{
    Analyzer, IndexFingerprint, IndexedArticle, OpenOutcome, SearchHit, SearchIndex, SearchRequest,
    Synonyms, WriterOptions, INDEX_DICT_COPY, INDEX_SYNONYMS_COPY, SCHEMA_VERSION,
};
use crate::services::rendered::RenderedHtml;
use crate::services::Metrics;

/// Largest article file accepted through the API.
pub const MAX_ARTICLE_BYTES: usize = 1 << 20;

/// The analysis the knowledge base asks for: jieba with its user dictionary, and its synonyms.
pub struct Analysis {
    /// The segmenter.
    pub analyzer: Arc<Analyzer>,
    /// The synonym groups.
    pub synonyms: Arc<Synonyms>,
    /// What the index must have been built with to be reused.
    pub fingerprint: IndexFingerprint,
    /// Bad lines of `_dict.txt`.
    pub errors: Vec<ArticleError>,
    dictionary: String,
    synonyms_text: String,
}

impl Analysis {
    /// Reads `_dict.txt` and `_synonyms.txt` from `kb_dir` (both optional) and builds the analyzer.
    pub fn from_knowledge_base(kb_dir: &Path) -> Analysis {
        let dictionary = std::fs::read_to_string(kb_dir.join(DICT_FILE)).unwrap_or_default();
        let synonyms = std::fs::read_to_string(kb_dir.join(SYNONYMS_FILE)).unwrap_or_default();
        Analysis::new(dictionary, synonyms)
    }

    /// Builds the analysis an index was made with, from the copies kept in the index folder, so that
    /// `kefu search` needs only `--index`.
    pub fn from_index(index_dir: &Path) -> Analysis {
        let dictionary =
            std::fs::read_to_string(index_dir.join(INDEX_DICT_COPY)).unwrap_or_default();
        let synonyms =
            std::fs::read_to_string(index_dir.join(INDEX_SYNONYMS_COPY)).unwrap_or_default();
        Analysis::new(dictionary, synonyms)
    }

    /// Builds the analyzer from dictionary and synonym file contents.
    pub fn new(dictionary: String, synonyms_text: String) -> Analysis {
        let synonyms = Synonyms::parse(&synonyms_text);
        let (analyzer, line_errors) = Analyzer::with_user_words(&dictionary, synonyms.words());
        let mut hasher = blake3::Hasher::new();
        hasher.update(dictionary.as_bytes());
        for word in synonyms.words() {
            hasher.update(b"\0");
            hasher.update(word.as_bytes());
        }
        let analyzer_hash = hasher.finalize().to_hex()[..16].to_string();
        let errors = line_errors
            .into_iter()
            .map(|error| ArticleError {
                file: DICT_FILE.to_string(),
                line: error.line,
                reason: error.reason,
            })
            .collect();
        Analysis {
            analyzer: Arc::new(analyzer),
            synonyms: Arc::new(synonyms),
            fingerprint: IndexFingerprint {
                schema_version: SCHEMA_VERSION,
                analyzer_hash,
            },
            errors,
            dictionary,
            synonyms_text,
        }
    }

    /// Keeps copies of the dictionary and synonyms beside the index they shaped.
    fn save_beside_index(&self, index_dir: &Path) -> Result<()> {
        write_file_atomically(&index_dir.join(INDEX_DICT_COPY), self.dictionary.as_bytes())?;
        write_file_atomically(
            &index_dir.join(INDEX_SYNONYMS_COPY),
            self.synonyms_text.as_bytes(),
        )
    }
}

/// What a sync changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Articles indexed for the first time.
    pub added: usize,
    /// Articles whose file changed.
    pub updated: usize,
    /// Articles whose file disappeared or broke.
    pub removed: usize,
    /// Articles left as they were.
    pub unchanged: usize,
    /// Files that could not be indexed.
    pub errors: Vec<ArticleError>,
}

impl SyncReport {
    /// Whether the index was touched.
    pub fn changed(&self) -> bool {
        self.added + self.updated + self.removed > 0
    }
}

/// A search as asked by a caller.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The text.
    pub text: String,
    /// Maximum hits (`None`: configured default).
    pub limit: Option<usize>,
    /// Restrict to a category.
    pub category: Option<String>,
    /// Let drafts appear (editors).
    pub include_drafts: bool,
}

/// Search results with timing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchResults {
    /// Ranked hits.
    pub hits: Vec<SearchHit>,
    /// Milliseconds spent searching.
    pub took_ms: f64,
}

/// One article for the editor: source and rendered form.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ArticleView {
    /// Id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Category.
    pub category: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Keywords.
    pub keywords: Vec<String>,
    /// Similar questions.
    pub questions: Vec<String>,
    /// Published or draft.
    pub status: ArticleStatus,
    /// Update date as written.
    pub updated: Option<String>,
    /// Path under `kb/`.
    pub path: String,
    /// The whole file, front matter included.
    pub markdown: String,
    /// Sanitised HTML of the body.
    pub html: String,
    /// Passages by heading.
    pub sections: Vec<Section>,
    /// BLAKE3 of the file as read or written: send it back as `base_hash` to save only over this version.
    pub content_hash: String,
}

impl ArticleView {
    fn new(article: Article, markdown: String, html: &str) -> ArticleView {
        ArticleView {
            id: article.id.to_string(),
            title: article.title,
            category: article.category,
            tags: article.tags,
            keywords: article.keywords,
            questions: article.questions,
            status: article.status,
            updated: article.updated,
            path: article.path,
            markdown,
            html: html.to_string(),
            sections: article.sections,
            content_hash: article.content_hash,
        }
    }
}

/// Which file holds which article, and which files are broken.
#[derive(Debug, Default)]
struct Catalog {
    path_of_id: HashMap<String, String>,
    id_of_path: HashMap<String, String>,
    hash_of_id: HashMap<String, String>,
    errors: BTreeMap<String, ArticleError>,
}

impl Catalog {
    fn insert(&mut self, article: &Article) {
        self.insert_entry(article.id.as_str(), &article.path, &article.content_hash);
    }

    fn insert_entry(&mut self, id: &str, path: &str, content_hash: &str) {
        self.path_of_id.insert(id.to_string(), path.to_string());
        self.id_of_path.insert(path.to_string(), id.to_string());
        self.hash_of_id
            .insert(id.to_string(), content_hash.to_string());
        self.errors.remove(path);
    }

    fn remove_path(&mut self, path: &str) -> Option<String> {
        let id = self.id_of_path.remove(path)?;
        self.path_of_id.remove(&id);
        self.hash_of_id.remove(&id);
        Some(id)
    }
}

/// Told of every knowledge-base file this node changed or saw change on disk, after the fact.
///
/// `relative_path` is `/`-separated under `kb/` and passes [`is_knowledge_file`]; `content` is the
/// file as it now is, `None` when it was removed. Called with the service's catalog lock held, so
/// changes of one file arrive in the order they happened: keep it short and never block (queue the
/// work). The same content may be told more than once (a save, then the file watcher's re-read), and
/// files received through [`KnowledgeService::apply_replicated`] are not told.
pub trait KbChangeListener: Send + Sync + std::fmt::Debug {
    /// `relative_path` now holds `content` (`None`: removed).
    fn changed(&self, relative_path: &str, content: Option<&[u8]>);
}

/// The knowledge-base service.
pub struct KnowledgeService {
    kb_dir: PathBuf,
    index_dir: PathBuf,
    index: SearchIndex,
    config: SearchConfig,
    /// Serialises every change to files, index and catalog so concurrent edits and syncs agree.
    catalog: Mutex<Catalog>,
    analyzer_hash: Mutex<String>,
    metrics: Arc<Metrics>,
    /// Article HTML by content hash: reading an article renders it only once per version.
    rendered: RenderedHtml,
    listeners: RwLock<Vec<Arc<dyn KbChangeListener>>>,
}

impl std::fmt::Debug for KnowledgeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeService")
            .field("kb_dir", &self.kb_dir)
            .finish_non_exhaustive()
    }
}

impl KnowledgeService {
    /// Opens (or creates) the index for `kb_dir` and brings it in step with the files: only added,
    /// changed and removed articles are touched, unless the index had to be created anew.
    /// Blocking; call before serving or from `spawn_blocking`.
    pub fn open(
        kb_dir: &Path,
        index_dir: &Path,
        config: SearchConfig,
        writer_options: WriterOptions,
    ) -> Result<(KnowledgeService, SyncReport)> {
        std::fs::create_dir_all(kb_dir).map_err(|error| Error::io(kb_dir, error))?;
        let analysis = Analysis::from_knowledge_base(kb_dir);
        let (index, outcome) = SearchIndex::open_or_create(
            index_dir,
            Arc::clone(&analysis.analyzer),
            Arc::clone(&analysis.synonyms),
            &analysis.fingerprint,
            writer_options,
        )?;
        if let OpenOutcome::Created(reason) = &outcome {
            tracing::info!(index = %index_dir.display(), %reason, "building index from scratch");
        }
        analysis.save_beside_index(index_dir)?;
        let service = KnowledgeService {
            kb_dir: kb_dir.to_path_buf(),
            index_dir: index_dir.to_path_buf(),
            index,
            config,
            catalog: Mutex::new(Catalog::default()),
            analyzer_hash: Mutex::new(analysis.fingerprint.analyzer_hash.clone()),
            rendered: RenderedHtml::default(),
            metrics: Arc::default(),
            listeners: RwLock::default(),
        };
        let mut report = service.sync_all()?;
        report.errors.extend(analysis.errors.iter().cloned());
        service.record_errors(&analysis.errors);
        Ok((service, report))
    }

    /// Searches are timed into `metrics` (by default into instruments nobody reads).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> KnowledgeService {
        self.metrics = metrics;
        self
    }

    /// Tells `listener` every local change of a knowledge-base file from now on.
    pub fn on_local_change(&self, listener: Arc<dyn KbChangeListener>) {
        self.listeners.write().push(listener);
    }

    fn tell_listeners(&self, relative: &str, content: Option<&[u8]>) {
        if !is_knowledge_file(relative) {
            return;
        }
        for listener in self.listeners.read().iter() {
            listener.changed(relative, content);
        }
    }

    /// Tells the listeners what `relative` holds on disk now (absent: removed). An unreadable file is
    /// not told: it is neither known content nor known to be gone.
    fn tell_listeners_from_disk(&self, relative: &str) {
        if self.listeners.read().is_empty() {
            return;
        }
        let path = self.kb_dir.join(relative);
        match std::fs::read(&path) {
            Ok(bytes) => self.tell_listeners(relative, Some(&bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                self.tell_listeners(relative, None)
            }
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot read a changed knowledge-base file")
            }
        }
    }

    /// The knowledge-base folder.
    pub fn kb_dir(&self) -> &Path {
        &self.kb_dir
    }

    /// The index (for benchmarks and metrics).
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    fn lock_catalog(&self) -> parking_lot::MutexGuard<'_, Catalog> {
        self.catalog.lock()
    }

    fn record_errors(&self, errors: &[ArticleError]) {
        let mut catalog = self.lock_catalog();
        for error in errors {
            catalog.errors.insert(error.file.clone(), error.clone());
        }
    }

    /// Compares every file with the index and applies the differences, then commits. Files whose content
    /// hash matches the index are not parsed again, which keeps start-up fast. Blocking.
    pub fn sync_all(&self) -> Result<SyncReport> {
        self.sync_all_from(false, true)
    }

    /// [`KnowledgeService::sync_all`]; with `reindex_everything`, every article is indexed again (a new
    /// dictionary) in the same commit that drops the old documents, so searches never see an empty
    /// index, and edits wait for the catalog lock instead of landing in between. With `tell`, the
    /// listeners hear every file as read and every file gone.
    fn sync_all_from(&self, reindex_everything: bool, tell: bool) -> Result<SyncReport> {
        let (paths, mut errors) = list_article_files(&self.kb_dir)?;
        let mut catalog = self.lock_catalog();
        let tell = tell && !self.listeners.read().is_empty();
        if tell {
            // Files known before this sync that are no longer listed were removed (unless they could
            // not be listed, which says nothing about them).
            let listed: HashSet<&str> = paths
                .iter()
                .chain(errors.iter().map(|error| &error.file))
                .map(String::as_str)
                .collect();
            let vanished = catalog
                .id_of_path
                .keys()
                .chain(catalog.errors.keys())
                .filter(|path| is_article(path) && !listed.contains(path.as_str()));
            for path in vanished {
                self.tell_listeners(path, None);
            }
        }
        let indexed = if reindex_everything {
            self.index.delete_all()?;
            HashMap::new()
        } else {
            self.index.indexed_entries()?
        };
        let mut report = SyncReport::default();
        let mut fresh = Catalog::default();
        let mut changed_articles = Vec::new();
        for relative in paths {
            let full_path = self.kb_dir.join(&relative);
            let bytes = match std::fs::read(&full_path) {
                Ok(bytes) => bytes,
                Err(io_error) => {
                    errors.push(ArticleError {
                        file: relative,
                        line: 1,
                        reason: format!("cannot read file: {io_error}"),
                    });
                    continue;
                }
            };
            if tell {
                self.tell_listeners(&relative, Some(&bytes));
            }
            let content_hash = blake3::hash(&bytes).to_hex().to_string();
            match indexed.get(&relative) {
                Some(entry) if entry.content_hash == content_hash => {
                    fresh.insert_entry(&entry.id, &relative, &content_hash);
                    report.unchanged += 1;
                }
                _ => match parse_article(&relative, &bytes) {
                    Ok(article) => changed_articles.push(article),
                    Err(error) => errors.push(error),
                },
            }
        }
        let (changed_articles, duplicate_errors) =
            resolve_duplicate_ids(changed_articles, &fresh.path_of_id);
        errors.extend(duplicate_errors);
        let indexed_ids: HashMap<&str, &str> = indexed
            .iter()
            .map(|(path, entry)| (entry.id.as_str(), path.as_str()))
            .collect();
        for article in &changed_articles {
            fresh.insert(article);
        }
        for (path, entry) in &indexed {
            let still_there = fresh.path_of_id.get(&entry.id) == Some(path);
            let id_moved_elsewhere = fresh.path_of_id.contains_key(&entry.id);
            if !still_there && !id_moved_elsewhere {
                self.index.delete(&entry.id)?;
                report.removed += 1;
            }
        }
        for article in &changed_articles {
            self.index.upsert(article)?;
            if indexed_ids.contains_key(article.id.as_str()) {
                report.updated += 1;
            } else {
                report.added += 1;
            }
        }
        errors.sort_by(|a, b| a.file.cmp(&b.file));
        for error in &errors {
            fresh.errors.insert(error.file.clone(), error.clone());
        }
        if let Some(dictionary_error) = catalog.errors.get(DICT_FILE) {
            fresh
                .errors
                .insert(DICT_FILE.to_string(), dictionary_error.clone());
        }
        *catalog = fresh;
        drop(catalog);
        if report.changed() || reindex_everything {
            self.index.commit_now()?;
        }
        report.errors = errors;
        Ok(report)
    }

    /// Paths of the indexed articles inside `folder` (relative to `kb/`).
    pub fn known_paths_under(&self, folder: &str) -> Vec<String> {
        let prefix = format!("{folder}/");
        self.lock_catalog()
            .id_of_path
            .keys()
            .filter(|path| path.starts_with(&prefix))
            .cloned()
            .collect()
    }

    /// Re-reads the named files (paths relative to `kb/`, existing or not) and applies what changed,
    /// then commits. Blocking.
    pub fn sync_paths(&self, relative_paths: &[String]) -> Result<SyncReport> {
        let mut catalog = self.lock_catalog();
        let report = self.sync_paths_locked(&mut catalog, relative_paths, true)?;
        drop(catalog);
        if report.changed() {
            self.index.commit_now()?;
        }
        Ok(report)
    }

    /// [`KnowledgeService::sync_paths`] under the catalog lock, without the commit; with `tell`, the
    /// listeners hear what each file now holds.
    fn sync_paths_locked(
        &self,
        catalog: &mut Catalog,
        relative_paths: &[String],
        tell: bool,
    ) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        // Removals first: a file renamed to a name that sorts before the old one would otherwise be
        // read while its id still belonged to the old path, and refused as a duplicate.
        let (gone, present): (Vec<&String>, Vec<&String>) = relative_paths
            .iter()
            .partition(|relative| !self.kb_dir.join(relative).is_file());
        let mut freed_an_id = false;
        for relative in gone {
            if tell {
                self.tell_listeners(relative, None);
            }
            catalog.errors.remove(relative);
            if let Some(id) = catalog.remove_path(relative) {
                self.index.delete(&id)?;
                report.removed += 1;
                freed_an_id = true;
            }
        }
        let mut to_read: Vec<String> = present.into_iter().cloned().collect();
        if freed_an_id {
            // Files refused earlier because another file held their id may own it now.
            for relative in catalog.errors.keys() {
                if !to_read.contains(relative) {
                    to_read.push(relative.clone());
                }
            }
        }
        for relative in &to_read {
            let read = std::fs::read(self.kb_dir.join(relative)).map_err(|io_error| ArticleError {
                file: relative.clone(),
                line: 1,
                reason: format!("cannot read file: {io_error}"),
            });
            if let (true, Ok(bytes)) = (tell, &read) {
                self.tell_listeners(relative, Some(bytes));
            }
            match read.and_then(|bytes| parse_article(relative, &bytes)) {
                Ok(article) => self.apply_article(catalog, &article, &mut report)?,
                Err(error) => {
                    if let Some(id) = catalog.remove_path(relative) {
                        self.index.delete(&id)?;
                        report.removed += 1;
                    }
                    catalog.errors.insert(relative.clone(), error.clone());
                    report.errors.push(error);
                }
            }
        }
        Ok(report)
    }

    /// Writes (or removes) knowledge-base files received from elsewhere (another node), then indexes
    /// them as a sync would, and applies a new dictionary or synonyms. Files whose content on disk is
    /// already the one given are left alone. The listeners are not told: the change came from them.
    /// Paths that are not knowledge-base files (see [`is_knowledge_file`]) are refused and skipped.
    /// Blocking.
    ///
    /// Returns [`Error::Io`] when a file cannot be written or removed (the files before it are
    /// applied and indexed).
    pub fn apply_replicated(&self, files: &[(String, Option<Vec<u8>>)]) -> Result<SyncReport> {
        let mut catalog = self.lock_catalog();
        let mut articles = Vec::new();
        let mut analysis_changed = false;
        let mut outcome = Ok(());
        for (relative, content) in files {
            if !is_knowledge_file(relative) {
                tracing::warn!(path = %relative, "refused a replicated file outside the knowledge base");
                continue;
            }
            let full_path = self.kb_dir.join(relative);
            let current = std::fs::read(&full_path).ok();
            if current.as_deref() == content.as_deref() {
                continue;
            }
            let written = match content {
                Some(bytes) => write_shared_file_atomically(&full_path, bytes),
                None if current.is_some() => remove_file_durably(&full_path),
                None => Ok(()),
            };
            if let Err(error) = written {
                outcome = Err(error);
                break;
            }
            if is_article(relative) {
                articles.push(relative.clone());
            } else if relative == DICT_FILE || relative == SYNONYMS_FILE {
                analysis_changed = true;
            }
        }
        let mut report = self.sync_paths_locked(&mut catalog, &articles, false)?;
        drop(catalog);
        if report.changed() {
            self.index.commit_now()?;
        }
        if analysis_changed {
            let analysis_report = self.reload_analysis_telling(false)?;
            report.added += analysis_report.added;
            report.updated += analysis_report.updated;
            report.removed += analysis_report.removed;
            report.errors.extend(analysis_report.errors);
        }
        outcome.map(|()| report)
    }

    /// Saves one of the knowledge base's own files (dictionary, synonyms, category names) atomically
    /// and tells the listeners. Does not apply it: call [`KnowledgeService::reload_analysis`] after a
    /// new dictionary or synonyms. Blocking.
    ///
    /// Returns [`Error::BadRequest`] for another name, [`Error::Io`] when writing fails.
    pub fn write_kb_file(&self, name: &str, contents: &[u8]) -> Result<()> {
        if is_article(name) || !is_knowledge_file(name) {
            return Err(Error::BadRequest(format!(
                "`{name}` is not a knowledge-base settings file"
            )));
        }
        // Under the catalog lock, as every other change, so listeners hear changes in order.
        let _catalog = self.lock_catalog();
        write_shared_file_atomically(&self.kb_dir.join(name), contents)?;
        self.tell_listeners(name, Some(contents));
        Ok(())
    }

    /// Tells the listeners that `relative` changed on disk (the file watcher, for files that need no
    /// indexing such as `_categories.txt`). Blocking.
    pub fn announce_file_change(&self, relative: &str) {
        let _catalog = self.lock_catalog();
        self.tell_listeners_from_disk(relative);
    }

    /// Indexes `article` if its content changed, handling a changed id or a clash with another file.
    fn apply_article(
        &self,
        catalog: &mut Catalog,
        article: &Article,
        report: &mut SyncReport,
    ) -> Result<()> {
        let id = article.id.as_str();
        if let Some(other_path) = catalog
            .path_of_id
            .get(id)
            .filter(|path| **path != article.path)
        {
            let error = ArticleError {
                file: article.path.clone(),
                line: 1,
                reason: format!("id `{id}` is already used by {other_path}"),
            };
            if let Some(previous_id) = catalog.remove_path(&article.path) {
                self.index.delete(&previous_id)?;
                report.removed += 1;
            }
            catalog.errors.insert(article.path.clone(), error.clone());
            report.errors.push(error);
            return Ok(());
        }
        if let Some(previous_id) = catalog
            .id_of_path
            .get(&article.path)
            .filter(|previous| *previous != id)
            .cloned()
        {
            catalog.remove_path(&article.path);
            self.index.delete(&previous_id)?;
            report.removed += 1;
        }
        match catalog.hash_of_id.get(id) {
            Some(hash) if *hash == article.content_hash => report.unchanged += 1,
            existing => {
                self.index.upsert(article)?;
                if existing.is_some() {
                    report.updated += 1;
                } else {
                    report.added += 1;
                }
            }
        }
        catalog.insert(article);
        Ok(())
    }

    /// Re-reads `_dict.txt` and `_synonyms.txt`. A changed dictionary re-tokenizes every article (full
    /// reindex); changed synonyms only affect queries. Blocking.
    pub fn reload_analysis(&self) -> Result<SyncReport> {
        self.reload_analysis_telling(true)
    }

    fn reload_analysis_telling(&self, tell: bool) -> Result<SyncReport> {
        if tell {
            let _catalog = self.lock_catalog();
            self.tell_listeners_from_disk(DICT_FILE);
            self.tell_listeners_from_disk(SYNONYMS_FILE);
        }
        let analysis = Analysis::from_knowledge_base(&self.kb_dir);
        analysis.save_beside_index(&self.index_dir)?;
        let mut current_hash = self.analyzer_hash.lock();
        {
            let mut catalog = self.lock_catalog();
            catalog.errors.remove(DICT_FILE);
            for error in &analysis.errors {
                catalog.errors.insert(error.file.clone(), error.clone());
            }
        }
        if *current_hash == analysis.fingerprint.analyzer_hash {
            self.index.set_synonyms(Arc::clone(&analysis.synonyms));
            return Ok(SyncReport::default());
        }
        self.index.set_analysis(
            Arc::clone(&analysis.analyzer),
            Arc::clone(&analysis.synonyms),
            &analysis.fingerprint,
        )?;
        *current_hash = analysis.fingerprint.analyzer_hash.clone();
        let mut report = self.sync_all_from(true, tell)?;
        report.errors.extend(analysis.errors);
        tracing::info!(articles = report.added, "dictionary changed, index rebuilt");
        Ok(report)
    }

    /// Files that could not be indexed, by path.
    pub fn errors(&self) -> Vec<ArticleError> {
        self.lock_catalog().errors.values().cloned().collect()
    }

    /// The longest query [`KnowledgeService::search`] takes, in characters.
    pub fn max_query_chars(&self) -> usize {
        self.config.max_query_chars
    }

    /// The most hits [`KnowledgeService::search`] returns at once.
    pub fn max_search_limit(&self) -> usize {
        self.config.max_limit
    }

    /// Searches articles.
    ///
    /// Returns [`Error::InvalidQuery`] for empty text or text longer than the configured maximum.
    pub fn search(&self, query: &SearchQuery) -> Result<SearchResults> {
        let started = Instant::now();
        if query.text.trim().is_empty() {
            return Err(Error::InvalidQuery {
                reason: "query is empty".to_string(),
            });
        }
        let length = query.text.chars().count();
        if length > self.config.max_query_chars {
            return Err(Error::InvalidQuery {
                reason: format!(
                    "query has {length} characters, at most {} are searched",
                    self.config.max_query_chars
                ),
            });
        }
        let limit = query.limit.unwrap_or(self.config.default_limit);
        if limit == 0 || limit > self.config.max_limit {
            return Err(Error::InvalidQuery {
                reason: format!("limit must be between 1 and {}", self.config.max_limit),
            });
        }
        let hits = self.index.search(&SearchRequest {
            text: &query.text,
            limit,
            category: query
                .category
                .as_deref()
                .filter(|category| !category.is_empty()),
            include_drafts: query.include_drafts,
            with_snippets: true,
        })?;
        self.metrics.search_done(started.elapsed());
        Ok(SearchResults {
            hits,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Category display names from `kb/_categories.txt`, read at each call (a few lines; an edit shows
    /// at once without a watcher); empty when the file is missing or unreadable.
    pub fn category_names(&self) -> std::collections::BTreeMap<String, String> {
        let text = std::fs::read_to_string(self.kb_dir.join(crate::articles::CATEGORIES_FILE))
            .unwrap_or_default();
        crate::articles::parse_category_names(&text)
    }

    /// Indexed articles, optionally of one category, sorted by id.
    pub fn list(&self, category: Option<&str>) -> Result<Vec<IndexedArticle>> {
        let mut articles = self.index.list()?;
        if let Some(category) = category.filter(|category| !category.is_empty()) {
            articles.retain(|article| article.category == category);
        }
        Ok(articles)
    }

    /// One article with its markdown source and sanitised HTML.
    ///
    /// Returns [`Error::InvalidArticleId`] or [`Error::ArticleNotFound`].
    pub fn get(&self, raw_id: &str) -> Result<ArticleView> {
        let id = ArticleId::parse(raw_id)?;
        let path = self
            .lock_catalog()
            .path_of_id
            .get(id.as_str())
            .cloned()
            .ok_or_else(|| Error::ArticleNotFound(id.to_string()))?;
        let full_path = self.kb_dir.join(&path);
        let bytes = std::fs::read(&full_path).map_err(|error| Error::io(&full_path, error))?;
        let article = parse_article(&path, &bytes)?;
        let markdown =
            String::from_utf8(bytes).map_err(|error| Error::Internal(error.to_string()))?;
        Ok(self.view(article, markdown))
    }

    /// The view of an article, its HTML from the cache or rendered (bounded; see
    /// [`crate::articles::render_html`]). Blocking: rendering a large article takes a while.
    fn view(&self, article: Article, markdown: String) -> ArticleView {
        let html = self
            .rendered
            .get_or_render(&article.content_hash, || render_html(&markdown));
        ArticleView::new(article, markdown, &html)
    }

    /// Creates or replaces an article from its whole file (front matter included): validates it, writes
    /// the file atomically under `kb/`, indexes it and returns once it is searchable. The boolean says
    /// whether the article is new.
    ///
    /// Returns [`Error::InvalidArticleId`] (a new article's id must also pass
    /// [`ArticleId::check_new`]), [`Error::InvalidArticle`] (with file and line) or
    /// [`Error::BadRequest`] when the front matter names another id or the file is too large.
    ///
    /// `base` guards against lost updates: `Some(hash)` saves only if the file still has that
    /// [`ArticleView::content_hash`] ([`Error::ArticleChanged`] otherwise, also when it was deleted),
    /// `Some("")` only creates ([`Error::ArticleExists`]), `None` saves unconditionally.
    pub async fn put(
        self: &Arc<Self>,
        raw_id: &str,
        markdown: String,
        base: Option<String>,
    ) -> Result<(ArticleView, bool)> {
        let id = ArticleId::parse(raw_id)?;
        if markdown.len() > MAX_ARTICLE_BYTES {
            return Err(Error::BadRequest(format!(
                "article is {} bytes, at most {MAX_ARTICLE_BYTES} are accepted",
                markdown.len()
            )));
        }
        let service = Arc::clone(self);
        let (view, created) = run_blocking(move || {
            let (article, markdown, created) =
                service.write_article(&id, markdown, base.as_deref())?;
            // Rendered after the catalog lock is released: other edits need not wait for it.
            Ok((service.view(article, markdown), created))
        })
        .await?;
        self.index.commit().await?;
        Ok((view, created))
    }

    fn write_article(
        &self,
        id: &ArticleId,
        markdown: String,
        base: Option<&str>,
    ) -> Result<(Article, String, bool)> {
        let mut catalog = self.lock_catalog();
        let existing_path = catalog.path_of_id.get(id.as_str()).cloned();
        let created = existing_path.is_none();
        match (base, &existing_path) {
            (None, _) => {}
            (Some(""), Some(_)) => return Err(Error::ArticleExists(id.to_string())),
            (Some(""), None) => {}
            (Some(_), None) => return Err(Error::ArticleChanged(id.to_string())),
            (Some(base), Some(path)) => {
                // The file on disk, not the catalog's copy: an edit there (git pull, another editor
                // on the server) may not be synced yet.
                let current = std::fs::read(self.kb_dir.join(path))
                    .map(|bytes| blake3::hash(&bytes).to_hex().to_string())
                    .unwrap_or_default();
                if current != base {
                    return Err(Error::ArticleChanged(id.to_string()));
                }
            }
        }
        if created {
            id.check_new()?;
        }
        let path = existing_path.unwrap_or_else(|| format!("{id}.md"));
        let article = parse_article(&path, markdown.as_bytes())?;
        if article.id != *id {
            return Err(Error::BadRequest(format!(
                "front matter id `{}` does not match `{id}` in the url",
                article.id
            )));
        }
        if let Some(other) = catalog
            .id_of_path
            .get(&path)
            .filter(|other| *other != id.as_str())
        {
            return Err(Error::BadRequest(format!(
                "{path} already holds article `{other}`"
            )));
        }
        write_shared_file_atomically(&self.kb_dir.join(&path), markdown.as_bytes())?;
        self.tell_listeners(&path, Some(markdown.as_bytes()));
        self.index.upsert(&article)?;
        catalog.insert(&article);
        Ok((article, markdown, created))
    }

    /// Deletes an article's file and removes it from the index; returns once it is gone from search.
    ///
    /// Returns [`Error::InvalidArticleId`] or [`Error::ArticleNotFound`].
    pub async fn delete(self: &Arc<Self>, raw_id: &str) -> Result<()> {
        let id = ArticleId::parse(raw_id)?;
        let service = Arc::clone(self);
        run_blocking(move || {
            let path = service
                .lock_catalog()
                .path_of_id
                .get(id.as_str())
                .cloned()
                .ok_or_else(|| Error::ArticleNotFound(id.to_string()))?;
            let full_path = service.kb_dir.join(&path);
            if full_path.exists() {
                crate::articles::remove_file_durably(&full_path)?;
            }
            // The same path as a removal the watcher sees: out of the index and the catalog, and a file
            // that was refused for claiming the same id takes it over, as at the next start.
            service.sync_paths(&[path])?;
            Ok(())
        })
        .await
    }
}

/// Rebuilds the index in `index_dir` from every article in `kb_dir` with all cores, calling
/// `on_progress(done, total)` as articles are added. Broken files are reported, the rest indexed.
pub fn rebuild_index(
    kb_dir: &Path,
    index_dir: &Path,
    mut on_progress: impl FnMut(u64, u64),
) -> Result<SyncReport> {
    let analysis = Analysis::from_knowledge_base(kb_dir);
    let scan = load_knowledge_base(kb_dir)?;
    let (index, _) = SearchIndex::open_or_create(
        index_dir,
        Arc::clone(&analysis.analyzer),
        Arc::clone(&analysis.synonyms),
        &analysis.fingerprint,
        WriterOptions::bulk(),
    )?;
    analysis.save_beside_index(index_dir)?;
    index.delete_all()?;
    let total = scan.articles.len() as u64;
    for (done, article) in scan.articles.iter().enumerate() {
        index.upsert(article)?;
        on_progress(done as u64 + 1, total);
    }
    index.commit_now()?;
    index.wait_merging()?;
    let mut errors = scan.errors;
    errors.extend(analysis.errors);
    Ok(SyncReport {
        added: scan.articles.len(),
        errors,
        ..SyncReport::default()
    })
}

/// Runs blocking work (file IO, tokenizing) off the async workers.
pub(crate) async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Internal(format!("background task failed: {error}")))?
}
