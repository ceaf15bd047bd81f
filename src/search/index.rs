//! The article index on disk: opening (and rebuilding when it is missing, stale or corrupt), one
//! long-lived writer, batched commits, and searching with snippets.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, TopDocs};
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{
    DocAddress, Executor, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument,
    Term,
};
use tokio::sync::oneshot;

use super::confidence::{self, DocumentFrequency, HitText, JudgedText, MessageProfile};
use super::query::AnalyzedQuery;
use super::schema::{build_schema, Fields, SCHEMA_VERSION};
use super::snippet::Highlighter;
use super::synonyms::Synonyms;
use super::tokenizer::{
    Analyzer, JiebaTokenizer, NgramTokenizer, JIEBA_TOKENIZER, NGRAM_TOKENIZER,
};
use crate::domain::{Article, ArticleStatus, Section};
use crate::error::{Error, Result};

/// File beside tantivy's own that records what the index was built with.
const KEFU_META_FILE: &str = "kefu-meta.json";
/// Copy of the user dictionary the index was built with.
pub const INDEX_DICT_COPY: &str = "kefu-dict.txt";
/// Copy of the synonyms the index was built with.
pub const INDEX_SYNONYMS_COPY: &str = "kefu-synonyms.txt";
/// Characters of body text shown in a snippet.
const SNIPPET_CHARS: usize = 160;
/// Memory for prepared hit texts ([`JudgedText`]) at most, estimated: tens of thousands of typical
/// articles, or the 60-sentence beginnings of a few thousand long ones.
const JUDGED_CACHE_BYTES: usize = 64 << 20;

/// What the index was built with; any difference means the tokens on disk no longer match the analyzer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFingerprint {
    /// [`SCHEMA_VERSION`] at build time.
    pub schema_version: u32,
    /// Hash of the user dictionary and synonym words that shaped tokenization.
    pub analyzer_hash: String,
}

/// Why an index was created from scratch instead of opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenOutcome {
    /// The existing index was opened.
    Opened,
    /// A new, empty index was created; the reason is for the log.
    Created(String),
}

/// How a writer should be sized.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Indexing threads.
    pub threads: usize,
    /// Memory budget across all threads, in bytes.
    pub memory_bytes: usize,
}

impl WriterOptions {
    /// For a long-running server: one thread, small budget.
    pub fn serving() -> WriterOptions {
        WriterOptions {
            threads: 1,
            memory_bytes: 64 << 20,
        }
    }

    /// For a full build: every core.
    pub fn bulk() -> WriterOptions {
        let threads = std::thread::available_parallelism()
            .map_or(2, |cores| cores.get())
            .min(8);
        WriterOptions {
            threads,
            memory_bytes: threads * (96 << 20),
        }
    }
}

/// A search request against the index.
#[derive(Debug, Clone)]
pub struct SearchRequest<'a> {
    /// Visitor or agent text, searched as plain text.
    pub text: &'a str,
    /// Maximum hits.
    pub limit: usize,
    /// Only this category, if set.
    pub category: Option<&'a str>,
    /// Whether drafts may appear (editors only).
    pub include_drafts: bool,
    /// Whether to compute highlighted snippets.
    pub with_snippets: bool,
}

/// One ranked article.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// Article id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Category.
    pub category: String,
    /// Published or draft.
    pub status: ArticleStatus,
    /// Relevance score (higher is better; comparable within one search only).
    pub score: f32,
    /// How sure it is to answer the query, from 0 to 1, comparable across queries and knowledge
    /// bases (see `search::confidence`). Suggestions below the configured minimum are not made.
    pub confidence: f32,
    /// HTML-safe body excerpt with matched words in `<mark>`; empty when snippets were not asked for.
    pub snippet: String,
}

/// What the index remembers of an article's source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedEntry {
    /// Article id.
    pub id: String,
    /// Content hash of the file when it was indexed.
    pub content_hash: String,
}

/// Summary of an indexed article, for listings.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IndexedArticle {
    /// Article id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Category.
    pub category: String,
    /// Published or draft.
    pub status: ArticleStatus,
    /// Tags.
    pub tags: Vec<String>,
    /// Update date as written.
    pub updated: Option<String>,
    /// Path under `kb/`.
    pub path: String,
    /// Content hash of the source file.
    pub content_hash: String,
}

struct IndexCore {
    index: Index,
    reader: IndexReader,
    /// `None` for a read-only index (`kefu search` beside a running server).
    writer: Option<Mutex<IndexWriter>>,
    fields: Fields,
    analyzer: RwLock<Arc<Analyzer>>,
    synonyms: RwLock<Arc<Synonyms>>,
    /// Hit texts prepared for judging their confidence, by the article's content hash (one entry
    /// per article revision; see [`JudgedTexts`]).
    judged: Mutex<JudgedTexts>,
    parallel: ParallelSearch,
}

/// Prepared hit texts by content hash, within [`JUDGED_CACHE_BYTES`]: when full it starts over,
/// which costs the next searches one preparation per hit, as with no cache at all. Entries of edited
/// or deleted articles are never looked up again and leave with the next start-over.
#[derive(Default)]
struct JudgedTexts {
    texts: HashMap<String, Arc<JudgedText>>,
    bytes: usize,
}

/// Scores the segments of one search on several cores when the index is large and no other search is
/// running.
///
/// A large index has a few segments and scoring is CPU-bound: at 100,000 articles (4 segments) a search
/// on an idle 2-core machine fell from 2.9 to 2.1 ms. At 10,000 articles it gained nothing (0.52 ms
/// either way), and under 32 concurrent HTTP clients the thread hand-offs cost 11% of the throughput, so
/// small indexes and concurrent searches run on their caller's thread.
struct ParallelSearch {
    /// Started by the first search that splits (most indexes never do): `None` on a single core or
    /// when the threads could not be started.
    executor: OnceLock<Option<Executor>>,
    in_flight: AtomicUsize,
}

/// Below this many articles a search is not split across cores (see [`ParallelSearch`]).
const PARALLEL_MIN_ARTICLES: u64 = 50_000;

impl ParallelSearch {
    fn new() -> ParallelSearch {
        ParallelSearch {
            executor: OnceLock::new(),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn executor(&self) -> Option<&Executor> {
        self.executor
            .get_or_init(|| {
                let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
                if cores < 2 {
                    return None;
                }
                Executor::multi_thread(cores, "kefu-search-")
                    .inspect_err(|error| {
                        tracing::warn!(%error, "search threads not started; searching on one core")
                    })
                    .ok()
            })
            .as_ref()
    }

    fn search<C: Collector>(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        collector: &C,
    ) -> tantivy::Result<C::Fruit> {
        struct InFlight<'a>(&'a AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let alone = self.in_flight.fetch_add(1, Ordering::AcqRel) == 0;
        let _in_flight = InFlight(&self.in_flight);
        let split = alone
            && searcher.segment_readers().len() > 1
            && searcher.num_docs() >= PARALLEL_MIN_ARTICLES;
        let executor = if split { self.executor() } else { None };
        match executor {
            Some(executor) => searcher.search_with_executor(
                query,
                collector,
                executor,
                EnableScoring::enabled_from_searcher(searcher),
            ),
            None => searcher.search(query, collector),
        }
    }
}

type CommitWaiter = oneshot::Sender<Result<(), String>>;

/// The article index. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SearchIndex {
    core: Arc<IndexCore>,
    directory: PathBuf,
    commit_requests: Mutex<Option<mpsc::Sender<CommitWaiter>>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

fn register_tokenizers(index: &Index, analyzer: &Arc<Analyzer>) {
    index
        .tokenizers()
        .register(JIEBA_TOKENIZER, JiebaTokenizer::new(Arc::clone(analyzer)));
    index.tokenizers().register(NGRAM_TOKENIZER, NgramTokenizer);
}

impl SearchIndex {
    /// Opens the index in `directory`, or creates an empty one when it is missing, was built with another
    /// schema version or analyzer, or cannot be opened. The caller fills an empty index.
    ///
    /// Returns [`Error::Internal`] when `directory` holds files that are not an index (so nothing of the
    /// user's is ever deleted), and tantivy or io errors when the folder cannot be written.
    pub fn open_or_create(
        directory: &Path,
        analyzer: Arc<Analyzer>,
        synonyms: Arc<Synonyms>,
        fingerprint: &IndexFingerprint,
        writer_options: WriterOptions,
    ) -> Result<(SearchIndex, OpenOutcome)> {
        std::fs::create_dir_all(directory).map_err(|error| Error::io(directory, error))?;
        let recorded = read_fingerprint(directory);
        let (schema, fields) = build_schema();
        let reopened = match &recorded {
            None => Err("no index found".to_string()),
            Some(found) if found != fingerprint => Err(format!(
                "index was built with schema {} / analyzer {}, need schema {} / analyzer {}",
                found.schema_version,
                found.analyzer_hash,
                fingerprint.schema_version,
                fingerprint.analyzer_hash
            )),
            Some(_) => match Index::open_in_dir(directory) {
                Ok(index) if index.schema() == schema => Ok(index),
                Ok(_) => Err("index schema differs".to_string()),
                Err(error) => Err(format!("index is unreadable: {error}")),
            },
        };
        let (index, outcome) = match reopened {
            Ok(index) => (index, OpenOutcome::Opened),
            Err(reason) => {
                clear_index_directory(directory)?;
                let index = Index::create_in_dir(directory, schema)?;
                (index, OpenOutcome::Created(reason))
            }
        };
        register_tokenizers(&index, &analyzer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let writer =
            index.writer_with_num_threads(writer_options.threads, writer_options.memory_bytes)?;
        write_fingerprint(directory, fingerprint)?;
        let core = IndexCore {
            index,
            reader,
            writer: Some(Mutex::new(writer)),
            fields,
            analyzer: RwLock::new(analyzer),
            synonyms: RwLock::new(synonyms),
            judged: Mutex::default(),
            parallel: ParallelSearch::new(),
        };
        let search_index = SearchIndex {
            core: Arc::new(core),
            directory: directory.to_path_buf(),
            commit_requests: Mutex::new(None),
        };
        Ok((search_index, outcome))
    }

    /// Opens an existing index for searching only; it may be written by another process meanwhile.
    ///
    /// Returns [`Error::NotFound`] when `directory` holds no kefu index.
    pub fn open_read_only(
        directory: &Path,
        analyzer: Arc<Analyzer>,
        synonyms: Arc<Synonyms>,
    ) -> Result<SearchIndex> {
        let (schema, fields) = build_schema();
        let found =
            read_fingerprint(directory).filter(|found| found.schema_version == SCHEMA_VERSION);
        let index = match (found, Index::open_in_dir(directory)) {
            (Some(_), Ok(index)) if index.schema() == schema => index,
            _ => {
                return Err(Error::NotFound(format!(
                    "no current kefu index in {}; build one with `kefu index`",
                    directory.display()
                )))
            }
        };
        register_tokenizers(&index, &analyzer);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let core = IndexCore {
            index,
            reader,
            writer: None,
            fields,
            analyzer: RwLock::new(analyzer),
            synonyms: RwLock::new(synonyms),
            judged: Mutex::default(),
            parallel: ParallelSearch::new(),
        };
        Ok(SearchIndex {
            core: Arc::new(core),
            directory: directory.to_path_buf(),
            commit_requests: Mutex::new(None),
        })
    }

    /// Starts the background committer used by [`SearchIndex::commit`]: edits arriving within `delay` of
    /// each other share one commit, after which the reader is reloaded.
    pub fn start_commit_batching(&self, delay: Duration) {
        let (sender, receiver) = mpsc::channel::<CommitWaiter>();
        let core = Arc::clone(&self.core);
        std::thread::Builder::new()
            .name("kefu-index-commit".to_string())
            .spawn(move || {
                while let Ok(first) = receiver.recv() {
                    std::thread::sleep(delay);
                    let mut waiters = vec![first];
                    waiters.extend(receiver.try_iter());
                    let outcome = core.commit_and_reload().map_err(|error| error.to_string());
                    if let Err(reason) = &outcome {
                        tracing::error!(%reason, "index commit failed");
                    }
                    for waiter in waiters {
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })
            .expect("spawning a thread at startup only fails when the process is out of resources");
        *self.commit_requests.lock() = Some(sender);
    }

    /// Commits pending edits and makes them visible, sharing the commit with concurrent callers when
    /// batching was started; otherwise commits at once.
    pub async fn commit(&self) -> Result<()> {
        let sender = self.commit_requests.lock().clone();
        let Some(sender) = sender else {
            return self.commit_now();
        };
        let (waiter, done) = oneshot::channel();
        sender
            .send(waiter)
            .map_err(|_| Error::Internal("index committer has stopped".to_string()))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::Internal(format!("index commit failed: {reason}"))),
            Err(_) => Err(Error::Internal("index committer has stopped".to_string())),
        }
    }

    /// Commits pending edits and reloads the reader now (blocking).
    pub fn commit_now(&self) -> Result<()> {
        self.core.commit_and_reload()
    }

    /// Waits for background merges to finish; used after bulk builds so the index is compact.
    pub fn wait_merging(self) -> Result<()> {
        *self.commit_requests.lock() = None;
        let core = Arc::try_unwrap(self.core)
            .map_err(|_| Error::Internal("index still shared while closing".to_string()))?;
        if let Some(writer) = core.writer {
            writer.into_inner().wait_merging_threads()?;
        }
        Ok(())
    }

    /// Adds or replaces an article (visible after the next commit).
    pub fn upsert(&self, article: &Article) -> Result<()> {
        let document = self.core.document_for(article)?;
        let writer = self.core.lock_writer()?;
        writer.delete_term(Term::from_field_text(
            self.core.fields.id,
            article.id.as_str(),
        ));
        writer.add_document(document)?;
        Ok(())
    }

    /// Removes an article by id (visible after the next commit).
    pub fn delete(&self, id: &str) -> Result<()> {
        let writer = self.core.lock_writer()?;
        writer.delete_term(Term::from_field_text(self.core.fields.id, id));
        Ok(())
    }

    /// Removes every article (visible after the next commit).
    pub fn delete_all(&self) -> Result<()> {
        let writer = self.core.lock_writer()?;
        writer.delete_all_documents()?;
        Ok(())
    }

    /// Replaces the analyzer and synonyms. Tokens already indexed keep the old analysis until their
    /// articles are reindexed, so callers reindex everything after changing the dictionary.
    pub fn set_analysis(
        &self,
        analyzer: Arc<Analyzer>,
        synonyms: Arc<Synonyms>,
        fingerprint: &IndexFingerprint,
    ) -> Result<()> {
        register_tokenizers(&self.core.index, &analyzer);
        // Prepared texts hold words the old analyzer cut.
        *self.core.judged.lock() = JudgedTexts::default();
        *self.core.analyzer.write() = analyzer;
        *self.core.synonyms.write() = synonyms;
        write_fingerprint(&self.directory, fingerprint)
    }

    /// Replaces only the synonyms (they act at query time, so nothing is reindexed).
    pub fn set_synonyms(&self, synonyms: Arc<Synonyms>) {
        *self.core.synonyms.write() = synonyms;
    }

    /// The analyzer in use.
    pub fn analyzer(&self) -> Arc<Analyzer> {
        Arc::clone(&self.core.analyzer.read())
    }

    /// Path → (id, content hash) of every indexed article, for incremental sync.
    pub fn indexed_entries(&self) -> Result<HashMap<String, IndexedEntry>> {
        let fields = self.core.fields;
        let mut entries = HashMap::new();
        self.for_each_document(|document| {
            let id = first_str(document, fields.id);
            let hash = first_str(document, fields.hash);
            let path = first_str(document, fields.path);
            if let (Some(id), Some(hash), Some(path)) = (id, hash, path) {
                let entry = IndexedEntry {
                    id: id.to_string(),
                    content_hash: hash.to_string(),
                };
                entries.insert(path.to_string(), entry);
            }
        })?;
        Ok(entries)
    }

    /// Every indexed article, sorted by id.
    pub fn list(&self) -> Result<Vec<IndexedArticle>> {
        let mut articles = Vec::new();
        self.for_each_document(|document| articles.push(self.core.summary_of(document)))?;
        articles.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(articles)
    }

    /// The indexed summary and sections of one article.
    pub fn get(&self, id: &str) -> Result<Option<(IndexedArticle, Vec<Section>)>> {
        let searcher = self.core.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.core.fields.id, id),
            IndexRecordOption::Basic,
        );
        let top = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, address)) = top.first() else {
            return Ok(None);
        };
        let document: TantivyDocument = searcher.doc(*address)?;
        let sections = sections_of(&document, &self.core.fields);
        Ok(Some((self.core.summary_of(&document), sections)))
    }

    /// Number of searchable articles.
    pub fn article_count(&self) -> u64 {
        self.core.reader.searcher().num_docs()
    }

    /// Number of segments in the last committed state.
    pub fn segment_count(&self) -> usize {
        self.core.reader.searcher().segment_readers().len()
    }

    /// Ranks articles for `request.text`.
    ///
    /// Text with nothing searchable in it (punctuation only) returns no hits; tantivy errors are internal.
    pub fn search(&self, request: &SearchRequest<'_>) -> Result<Vec<SearchHit>> {
        let hits = self.search_documents(request, false)?;
        Ok(hits.into_iter().map(|(hit, _)| hit).collect())
    }

    /// [`SearchIndex::search`], each hit with its article's sections (as [`SearchIndex::get`] gives
    /// them), read from the document the search loads anyway: suggestions choose a passage of each
    /// hit, and looking each up again by id cost a search and a document read per hit.
    pub fn search_with_sections(
        &self,
        request: &SearchRequest<'_>,
    ) -> Result<Vec<(SearchHit, Vec<Section>)>> {
        self.search_documents(request, true)
    }

    fn search_documents(
        &self,
        request: &SearchRequest<'_>,
        with_sections: bool,
    ) -> Result<Vec<(SearchHit, Vec<Section>)>> {
        let fields = &self.core.fields;
        let analyzed = {
            let analyzer = self.core.analyzer.read();
            let synonyms = self.core.synonyms.read();
            AnalyzedQuery::new(&analyzer, &synonyms, request.text)
        };
        if analyzed.is_empty() || request.limit == 0 {
            return Ok(Vec::new());
        }
        let text_query = analyzed.to_query(fields);
        let searcher = self.core.reader.searcher();
        // The text query always sits inside a Must clause, even with no filter to apply: tantivy then
        // scores the union block by block, which with the ~90 clauses of a CJK query over dense postings
        // was 4x faster (p50 0.65 ms vs 2.6 ms at 10,000 articles) than the block-max WAND it picks for
        // a bare top-level union.
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, text_query.box_clone())];
        if let Some(category) = request.category {
            let term = Term::from_field_text(fields.category, category);
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        if !request.include_drafts {
            let term = Term::from_field_text(fields.status, ArticleStatus::Draft.as_str());
            clauses.push((
                Occur::MustNot,
                Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
            ));
        }
        let query = BooleanQuery::new(clauses);
        let ranked = self.core.parallel.search(
            &searcher,
            &query,
            &TopDocs::with_limit(request.limit).order_by_score(),
        )?;
        let highlighter = if request.with_snippets {
            Some(Highlighter::for_query(
                &searcher,
                &*text_query,
                fields.body,
            )?)
        } else {
            None
        };
        let analyzer = self.analyzer();
        let profile = MessageProfile::new(&analyzer, request.text);
        let frequencies = IndexFrequencies {
            searcher: &searcher,
            fields,
            known: Default::default(),
        };
        let mut hits = Vec::with_capacity(ranked.len());
        for (score, address) in ranked {
            let document: TantivyDocument = searcher.doc(address)?;
            let confidence = if profile.is_empty() {
                0.0
            } else {
                let judged = self.core.judged_text(&document);
                confidence::judge(&analyzer, &profile, &judged, Some(&frequencies))
            };
            let snippet = match &highlighter {
                Some(highlighter) => {
                    let body = first_str(&document, fields.body).unwrap_or_default();
                    let mut tokens = highlighter.literal_matches(body);
                    if tokens.is_empty() {
                        tokens = analyzer.word_tokens(body);
                    }
                    highlighter
                        .excerpt_html(body, &tokens, SNIPPET_CHARS)
                        .unwrap_or_else(|| leading_text_html(body))
                }
                None => String::new(),
            };
            let sections = if with_sections {
                sections_of(&document, fields)
            } else {
                Vec::new()
            };
            let hit = SearchHit {
                id: first_str(&document, fields.id)
                    .unwrap_or_default()
                    .to_string(),
                title: first_str(&document, fields.title)
                    .unwrap_or_default()
                    .to_string(),
                category: first_str(&document, fields.category)
                    .unwrap_or_default()
                    .to_string(),
                status: status_of(&document, fields),
                score,
                confidence,
                snippet,
            };
            hits.push((hit, sections));
        }
        // Equal scores come back in index order, which differs between two builds of the same
        // knowledge base (parallel indexing); order them by id so results are reproducible.
        hits.sort_by(|(left, _), (right, _)| {
            right
                .score
                .total_cmp(&left.score)
                .then_with(|| left.id.cmp(&right.id))
        });
        Ok(hits)
    }

    fn for_each_document(&self, mut visit: impl FnMut(&TantivyDocument)) -> Result<()> {
        let searcher = self.core.reader.searcher();
        for (segment_ordinal, segment_reader) in searcher.segment_readers().iter().enumerate() {
            for doc_id in segment_reader.doc_ids_alive() {
                let document: TantivyDocument =
                    searcher.doc(DocAddress::new(segment_ordinal as u32, doc_id))?;
                visit(&document);
            }
        }
        Ok(())
    }
}

impl IndexCore {
    fn lock_writer(&self) -> Result<parking_lot::MutexGuard<'_, IndexWriter>> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| Error::Internal("index was opened read-only".to_string()))?;
        Ok(writer.lock())
    }

    fn commit_and_reload(&self) -> Result<()> {
        if self.writer.is_some() {
            self.lock_writer()?.commit()?;
        }
        self.reader.reload()?;
        Ok(())
    }

    /// The stored article prepared for judging, from the cache when this revision was prepared before.
    fn judged_text(&self, document: &TantivyDocument) -> Arc<JudgedText> {
        let fields = &self.fields;
        let hash = first_str(document, fields.hash).unwrap_or_default();
        if let Some(judged) = self.judged.lock().texts.get(hash) {
            return Arc::clone(judged);
        }
        let questions: Vec<String> = document
            .get_all(fields.questions)
            .filter_map(|value| value.as_str().map(str::to_string))
            .collect();
        let judged = Arc::new(JudgedText::new(HitText {
            title: first_str(document, fields.title).unwrap_or_default(),
            questions: &questions,
            body: first_str(document, fields.body).unwrap_or_default(),
        }));
        if hash.is_empty() {
            return judged;
        }
        // The words of its sentences are added as messages need them: count them at about twice
        // the text.
        let bytes = judged.size_estimate() + 2 * judged.text_len();
        let mut cache = self.judged.lock();
        if cache.bytes + bytes > JUDGED_CACHE_BYTES {
            cache.texts.clear();
            cache.bytes = 0;
        }
        if cache
            .texts
            .insert(hash.to_string(), Arc::clone(&judged))
            .is_none()
        {
            cache.bytes += bytes;
        }
        judged
    }

    fn document_for(&self, article: &Article) -> Result<TantivyDocument> {
        let fields = &self.fields;
        let mut document = TantivyDocument::default();
        document.add_text(fields.id, article.id.as_str());
        document.add_text(fields.hash, &article.content_hash);
        document.add_text(fields.path, &article.path);
        document.add_text(fields.status, article.status.as_str());
        document.add_text(fields.category, &article.category);
        document.add_text(fields.category_text, &article.category);
        document.add_text(fields.title, &article.title);
        document.add_text(fields.title_ngram, &article.title);
        for question in &article.questions {
            document.add_text(fields.questions, question);
            document.add_text(fields.questions_ngram, question);
        }
        for keyword in &article.keywords {
            document.add_text(fields.keywords, keyword);
        }
        for tag in &article.tags {
            document.add_text(fields.tags, tag);
        }
        for heading in &article.headings {
            document.add_text(fields.headings, heading);
        }
        document.add_text(fields.body, &article.body);
        document.add_text(fields.body_ngram, &article.body);
        if let Some(updated) = &article.updated {
            document.add_text(fields.updated, updated);
        }
        let sections = serde_json::to_string(&article.sections)
            .map_err(|error| Error::Internal(format!("encoding sections: {error}")))?;
        document.add_text(fields.sections, &sections);
        Ok(document)
    }

    fn summary_of(&self, document: &TantivyDocument) -> IndexedArticle {
        let fields = &self.fields;
        let text = |field| first_str(document, field).unwrap_or_default().to_string();
        IndexedArticle {
            id: text(fields.id),
            title: text(fields.title),
            category: text(fields.category),
            status: status_of(document, fields),
            tags: document
                .get_all(fields.tags)
                .filter_map(|value| value.as_str().map(str::to_string))
                .collect(),
            updated: first_str(document, fields.updated).map(str::to_string),
            path: text(fields.path),
            content_hash: text(fields.hash),
        }
    }
}

/// Document frequencies of jieba words in the fields where they say what an article is about, each
/// looked up once per search (every hit asks for the same words).
struct IndexFrequencies<'a> {
    searcher: &'a tantivy::Searcher,
    fields: &'a Fields,
    known: std::cell::RefCell<HashMap<String, (u64, u64)>>,
}

impl DocumentFrequency for IndexFrequencies<'_> {
    fn document_frequency(&self, word: &str) -> (u64, u64) {
        if let Some(known) = self.known.borrow().get(word) {
            return *known;
        }
        let found = self.look_up(word);
        self.known.borrow_mut().insert(word.to_string(), found);
        found
    }
}

impl IndexFrequencies<'_> {
    fn look_up(&self, word: &str) -> (u64, u64) {
        // Two-character words are also counted where every character pair is indexed, which finds
        // them where jieba cut them apart (花呗 in 花呗怎么还 when no dictionary names it).
        let mut fields = vec![self.fields.title, self.fields.questions, self.fields.body];
        if word.chars().count() == 2 {
            fields.extend([
                self.fields.title_ngram,
                self.fields.questions_ngram,
                self.fields.body_ngram,
            ]);
        }
        let containing = fields
            .into_iter()
            .map(|field| {
                self.searcher
                    .doc_freq(&Term::from_field_text(field, word))
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        (containing, self.searcher.num_docs())
    }
}

fn first_str(document: &TantivyDocument, field: tantivy::schema::Field) -> Option<&str> {
    document.get_first(field).and_then(|value| value.as_str())
}

/// The stored sections of an article (none when they cannot be read).
fn sections_of(document: &TantivyDocument, fields: &Fields) -> Vec<Section> {
    first_str(document, fields.sections)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}

fn status_of(document: &TantivyDocument, fields: &Fields) -> ArticleStatus {
    first_str(document, fields.status)
        .and_then(ArticleStatus::from_name)
        .unwrap_or_default()
}

/// The start of the body, escaped, for hits whose body holds none of the query words.
fn leading_text_html(body: &str) -> String {
    let leading: String = body.chars().take(SNIPPET_CHARS).collect();
    ammonia::clean_text(&leading)
}

fn read_fingerprint(directory: &Path) -> Option<IndexFingerprint> {
    let bytes = std::fs::read(directory.join(KEFU_META_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_fingerprint(directory: &Path, fingerprint: &IndexFingerprint) -> Result<()> {
    let json = serde_json::to_vec_pretty(fingerprint)
        .map_err(|error| Error::Internal(error.to_string()))?;
    crate::articles::write_file_atomically(&directory.join(KEFU_META_FILE), &json)
}

/// Empties an index folder before a rebuild, refusing folders that hold anything but an index.
fn clear_index_directory(directory: &Path) -> Result<()> {
    let entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .map_err(|error| Error::io(directory, error))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    let looks_like_index = entries.iter().all(|path| {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        name == KEFU_META_FILE
            || name == INDEX_DICT_COPY
            || name == INDEX_SYNONYMS_COPY
            || name == "meta.json"
            || name == ".managed.json"
            || name == ".tantivy-meta.lock"
            || name == ".tantivy-writer.lock"
            || name == ".gitkeep"
            || name == "README.md"
            || is_segment_file(&name)
    });
    if !looks_like_index {
        return Err(Error::Internal(format!(
            "{} holds files that are not a kefu index; refusing to clear it (choose an empty folder for the index)",
            directory.display()
        )));
    }
    for path in entries {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == ".gitkeep" || name == "README.md" {
            continue;
        }
        let removal = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removal.map_err(|error| Error::io(&path, error))?;
    }
    Ok(())
}

/// tantivy segment files are `<32 hex digits>.<component>` (plus `.del` variants).
fn is_segment_file(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or_default();
    stem.len() == 32 && stem.bytes().all(|byte| byte.is_ascii_hexdigit())
}
