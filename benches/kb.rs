//! Benchmark harness for kefu (no libtest harness): `cargo bench --bench kb -- <scenario> [args]`.
//!
//! Scenarios:
//!   build N                     full `rebuild_index` of N generated articles
//!   search N [QUERIES]          latency of `SearchIndex::search` (limit 10, snippets on and off)
//!   tokenize [MB]               `Analyzer::word_tokens` / `ngram_tokens` throughput on one thread
//!   edits N [SECS] [FAST] [CONC] paced 10/s edits for SECS, then FAST edits with CONC in flight
//!   coldstart N [RUNS]          time from process start to first answer of `kefu search` / `kefu serve`
//!   profile N [QUERIES]         where search time goes: the same query shapes run on tantivy directly
//!   generate N DIR              write N articles to DIR/kb and 100 URL-encoded queries to DIR/queries.txt
//!
//! Articles are made deterministically (fixed seed) from sentences of the starter knowledge base in
//! `kb/`. Set `KEFU_BENCH_DIR` to keep generated knowledge bases and indexes between runs (e.g. so that
//! `search 100000` reuses the index made by `build 100000`); otherwise everything lives in a temporary
//! folder that is removed at exit.
//!
//! This is a measurement tool: it prints numbers and never asserts on them.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kefu::articles::load_knowledge_base;
use kefu::config::SearchConfig;
use kefu::search::tokenizer::ngram_tokens;
use kefu::search::{SearchIndex, SearchRequest, WriterOptions};
use kefu::services::{rebuild_index, Analysis, KnowledgeService};

/// Seed of every random choice; change it and every generated article changes.
const SEED: u64 = 0x6b65_6675_2026;
/// Bumped whenever generated articles change, so that a reused `KEFU_BENCH_DIR` is rebuilt.
const GENERATOR_VERSION: u32 = 2;
/// Markdown size aimed at per article.
const ARTICLE_BYTES: usize = 2048;

/// Queries visitors really type, mixed into the generated ones.
const FIXED_QUERIES: &[&str] = &[
    "怎么申请退款",
    "发票抬头写错了怎么办",
    "快递几天能到",
    "退款多久到账",
    "优惠券过期了",
    "忘记密码怎么办",
    "可以货到付款吗",
    "怎么修改收货地址",
    "七天无理由退货",
    "会员积分怎么用",
    "订单取消了钱什么时候退",
    "包裹丢了",
    "开增值税专用发票",
    "支付失败",
    "运费险怎么赔",
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--bench"))
        .collect();
    let scenario = args.first().map(String::as_str).unwrap_or("help");
    let number = |index: usize, default: usize| -> usize {
        args.get(index)
            .map(|raw| raw.replace('_', "").parse().expect("a whole number"))
            .unwrap_or(default)
    };
    match scenario {
        "build" => bench_build(number(1, 10_000)),
        "search" => bench_search(number(1, 10_000), number(2, 3_000)),
        "tokenize" => bench_tokenize(number(1, 20)),
        "edits" => bench_edits(
            number(1, 10_000),
            number(2, 60),
            number(3, 10_000),
            number(4, 16),
        ),
        "coldstart" => bench_coldstart(number(1, 10_000), number(2, 5)),
        "profile" => bench_profile(number(1, 10_000), number(2, 500)),
        "density" => bench_density(&args[1..]),
        "generate" => {
            let dir = PathBuf::from(args.get(2).expect("generate N DIR"));
            bench_generate(number(1, 10_000), &dir)
        }
        _ => {
            eprintln!(
                "usage: cargo bench --bench kb -- <build N | search N [QUERIES] | tokenize [MB] | \
                 edits N [SECS] [FAST] [CONC] | coldstart N [RUNS] | profile N [QUERIES] | \
                 density N [QUERIES] | density INDEX_DIR QUERY_FILE | generate N DIR>"
            );
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// The sentence corpus and the article generator
// ---------------------------------------------------------------------------------------------------

/// Sentences of the starter knowledge base, by category (top folder).
struct Corpus {
    categories: Vec<String>,
    /// Body sentences, with their closing punctuation.
    sentences: Vec<Vec<String>>,
    /// Question-like sentences (headings, questions, sentences asking something), no punctuation.
    questions: Vec<Vec<String>>,
    /// Tags and keywords used in the category.
    tags: Vec<Vec<String>>,
    dictionary: String,
    synonyms: String,
}

fn starter_kb() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kb")
}

fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}')
}

fn looks_like_question(text: &str) -> bool {
    [
        "怎么",
        "如何",
        "吗",
        "什么",
        "为什么",
        "哪",
        "多久",
        "能不能",
        "可以",
        "是否",
        "几",
        "多少",
    ]
    .iter()
    .any(|marker| text.contains(marker))
}

/// Strips list markers, heading marks and emphasis from one markdown line.
fn clean_markdown_line(line: &str) -> (bool, String) {
    let trimmed = line.trim();
    let heading = trimmed.starts_with('#');
    let mut text = trimmed.trim_start_matches('#').trim_start();
    text = text.trim_start_matches(['-', '*', '>', '|']).trim_start();
    let digits = text.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && text[digits..].starts_with(". ") {
        text = &text[digits + 2..];
    }
    (heading, text.replace("**", "").replace('|', " "))
}

fn string_list(value: Option<&serde_norway::Value>) -> Vec<String> {
    match value {
        Some(serde_norway::Value::Sequence(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect(),
        Some(serde_norway::Value::String(item)) => vec![item.clone()],
        _ => Vec::new(),
    }
}

impl Corpus {
    fn load() -> Corpus {
        let kb = starter_kb();
        // Per category: body sentences, question-like sentences, tags.
        type Gathered = (Vec<String>, Vec<String>, Vec<String>);
        let mut by_category: BTreeMap<String, Gathered> = BTreeMap::new();
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&kb)
            .into_iter()
            .filter_map(Result::ok)
            .map(|entry| entry.into_path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
            .collect();
        files.sort();
        for path in files {
            let relative = path.strip_prefix(&kb).expect("inside kb");
            let Some(category) = relative
                .components()
                .next()
                .filter(|_| relative.components().count() > 1)
                .map(|component| component.as_os_str().to_string_lossy().into_owned())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).expect("starter article is utf-8");
            let (front, body) = match text
                .strip_prefix("---\n")
                .and_then(|rest| rest.split_once("\n---\n"))
            {
                Some((front, body)) => (front, body),
                None => ("", text.as_str()),
            };
            let entry = by_category.entry(category).or_default();
            if let Ok(yaml) = serde_norway::from_str::<serde_norway::Value>(front) {
                entry.1.extend(string_list(yaml.get("questions")));
                entry.1.extend(string_list(yaml.get("title")));
                entry.2.extend(string_list(yaml.get("tags")));
                entry.2.extend(string_list(yaml.get("keywords")));
            }
            for line in body.lines() {
                let (heading, text) = clean_markdown_line(line);
                for piece in text.split_inclusive(['。', '！', '？']) {
                    let piece = piece.trim().trim_end_matches(['；', '，', '：', ';', ',']);
                    let chars = piece.chars().count();
                    if chars < 6 || !piece.chars().any(is_cjk) {
                        continue;
                    }
                    let bare = piece.trim_end_matches(['。', '！', '？']).to_string();
                    if heading {
                        if looks_like_question(&bare) {
                            entry.1.push(bare);
                        }
                        continue;
                    }
                    if piece.ends_with('？') && chars <= 30 {
                        entry.1.push(bare.clone());
                    }
                    let mut sentence = piece.to_string();
                    if !sentence.ends_with(['。', '！', '？']) {
                        sentence.push('。');
                    }
                    entry.0.push(sentence);
                }
            }
        }
        let mut corpus = Corpus {
            categories: Vec::new(),
            sentences: Vec::new(),
            questions: Vec::new(),
            tags: Vec::new(),
            dictionary: std::fs::read_to_string(kb.join("_dict.txt")).unwrap_or_default(),
            synonyms: std::fs::read_to_string(kb.join("_synonyms.txt")).unwrap_or_default(),
        };
        for (category, (sentences, mut questions, mut tags)) in by_category {
            if sentences.is_empty() {
                continue;
            }
            questions.sort();
            questions.dedup();
            tags.sort();
            tags.dedup();
            if questions.is_empty() {
                questions.push(format!("{category}常见问题"));
            }
            corpus.categories.push(category);
            corpus.sentences.push(sentences);
            corpus.questions.push(questions);
            corpus.tags.push(tags);
        }
        assert!(!corpus.categories.is_empty(), "no articles found in kb/");
        corpus
    }

    fn sentence_count(&self) -> usize {
        self.sentences.iter().map(Vec::len).sum()
    }

    fn question_count(&self) -> usize {
        self.questions.iter().map(Vec::len).sum()
    }
}

/// One generated article.
struct Generated {
    id: String,
    category: usize,
    title: String,
    questions: Vec<String>,
    markdown: String,
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings encode")
}

/// Makes an article with `id` in `category`; `extra` (e.g. a unique token) is worked into the body.
fn make_article(
    corpus: &Corpus,
    rng: &mut fastrand::Rng,
    id: &str,
    category: usize,
    extra: Option<&str>,
) -> Generated {
    let own_questions = &corpus.questions[category];
    let title = pick(rng, own_questions).clone();
    let mut questions = Vec::new();
    for _ in 0..rng.usize(2..=3) {
        let question = pick(rng, own_questions).clone();
        if question != title && !questions.contains(&question) {
            questions.push(question);
        }
    }
    if questions.is_empty() {
        let other = rng.usize(..corpus.categories.len());
        questions.push(pick(rng, &corpus.questions[other]).clone());
    }
    let mut tags: Vec<String> = Vec::new();
    let own_tags = &corpus.tags[category];
    if !own_tags.is_empty() {
        for _ in 0..rng.usize(2..=3) {
            let tag = pick(rng, own_tags).clone();
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    let category_name = &corpus.categories[category];
    let mut markdown = String::with_capacity(ARTICLE_BYTES + 512);
    markdown.push_str("---\n");
    markdown.push_str(&format!("id: {}\n", yaml_string(id)));
    markdown.push_str(&format!("title: {}\n", yaml_string(&title)));
    markdown.push_str(&format!("category: {}\n", yaml_string(category_name)));
    let list = |items: &[String]| {
        items
            .iter()
            .map(|item| yaml_string(item))
            .collect::<Vec<_>>()
            .join(", ")
    };
    markdown.push_str(&format!("tags: [{}]\n", list(&tags)));
    markdown.push_str("questions:\n");
    for question in &questions {
        markdown.push_str(&format!("  - {}\n", yaml_string(question)));
    }
    markdown.push_str("status: published\n");
    markdown.push_str(&format!(
        "updated: {}\n",
        yaml_string(&format!(
            "2026-{:02}-{:02}",
            rng.u32(1..=12),
            rng.u32(1..=28)
        ))
    ));
    markdown.push_str("---\n\n");
    markdown.push_str(&format!("# {title}\n\n"));
    let target = ARTICLE_BYTES - 480 + rng.usize(..512);
    let mut paragraphs = 0;
    let mut extra = extra;
    while markdown.len() < target {
        if paragraphs > 0 && paragraphs % 3 == 0 {
            markdown.push_str(&format!("## {}\n\n", pick(rng, own_questions)));
        }
        for _ in 0..rng.usize(2..=5) {
            let source = if rng.u8(..100) < 80 {
                category
            } else {
                rng.usize(..corpus.categories.len())
            };
            markdown.push_str(pick::<String>(rng, &corpus.sentences[source]));
        }
        if let Some(token) = extra.take() {
            markdown.push_str(&format!("本条更新的参考编号是 {token}。"));
        }
        markdown.push_str("\n\n");
        paragraphs += 1;
    }
    Generated {
        id: id.to_string(),
        category,
        title,
        questions,
        markdown,
    }
}

/// Title and similar questions of a generated article, enough to derive queries from.
struct ArticleMeta {
    id: String,
    category: usize,
    title: String,
    questions: Vec<String>,
}

/// Generates `n` articles; writes them into `kb_dir` when given. Returns their metadata and total bytes.
fn generate(corpus: &Corpus, n: usize, kb_dir: Option<&Path>) -> (Vec<ArticleMeta>, u64) {
    let mut rng = fastrand::Rng::with_seed(SEED);
    let mut metas = Vec::with_capacity(n);
    let mut bytes = 0u64;
    if let Some(kb_dir) = kb_dir {
        std::fs::create_dir_all(kb_dir).expect("create kb dir");
        std::fs::write(kb_dir.join("_dict.txt"), &corpus.dictionary).expect("write dict");
        std::fs::write(kb_dir.join("_synonyms.txt"), &corpus.synonyms).expect("write synonyms");
        for category in &corpus.categories {
            std::fs::create_dir_all(kb_dir.join(category)).expect("create category dir");
        }
    }
    for i in 0..n {
        let category = rng.usize(..corpus.categories.len());
        let id = format!("{}/gen-{i:06}", corpus.categories[category]);
        let article = make_article(corpus, &mut rng, &id, category, None);
        bytes += article.markdown.len() as u64;
        if let Some(kb_dir) = kb_dir {
            std::fs::write(kb_dir.join(format!("{id}.md")), &article.markdown)
                .expect("write article");
        }
        metas.push(ArticleMeta {
            id: article.id,
            category: article.category,
            title: article.title,
            questions: article.questions,
        });
    }
    (metas, bytes)
}

// ---------------------------------------------------------------------------------------------------
// Prepared knowledge bases (optionally kept in KEFU_BENCH_DIR)
// ---------------------------------------------------------------------------------------------------

struct Workspace {
    root: PathBuf,
    _temporary: Option<tempfile::TempDir>,
}

impl Workspace {
    /// `KEFU_BENCH_DIR/<name>` when set (kept), else a fresh temporary folder (removed on drop).
    fn new(name: &str) -> Workspace {
        match std::env::var_os("KEFU_BENCH_DIR") {
            Some(base) => {
                let root = PathBuf::from(base).join(name);
                std::fs::create_dir_all(&root).expect("create KEFU_BENCH_DIR");
                Workspace {
                    root,
                    _temporary: None,
                }
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("kefu-bench-")
                    .tempdir()
                    .expect("temporary folder");
                Workspace {
                    root: temporary.path().to_path_buf(),
                    _temporary: Some(temporary),
                }
            }
        }
    }

    fn kb(&self) -> PathBuf {
        self.root.join("kb")
    }

    fn index(&self) -> PathBuf {
        self.root.join("index")
    }

    fn marker(&self) -> PathBuf {
        self.root.join("bench-built.txt")
    }

    fn marker_text(n: usize) -> String {
        format!("n={n} seed={SEED} generator={GENERATOR_VERSION}\n")
    }

    fn is_built(&self, n: usize) -> bool {
        std::fs::read_to_string(self.marker()).is_ok_and(|text| text == Self::marker_text(n))
    }
}

fn remove_if_present(path: &Path) {
    if path.exists() {
        std::fs::remove_dir_all(path)
            .unwrap_or_else(|error| panic!("removing {}: {error}", path.display()));
    }
}

/// Results of a timed build.
struct BuildTimes {
    generate: Duration,
    build: Duration,
    bytes: u64,
    added: usize,
    errors: usize,
}

/// Generates `n` articles in a clean `kb/` and builds `index/` from scratch, timing both.
fn build_fresh(corpus: &Corpus, workspace: &Workspace, n: usize) -> (Vec<ArticleMeta>, BuildTimes) {
    let _ = std::fs::remove_file(workspace.marker());
    remove_if_present(&workspace.kb());
    remove_if_present(&workspace.index());
    let started = Instant::now();
    let (metas, bytes) = generate(corpus, n, Some(&workspace.kb()));
    let generate_time = started.elapsed();
    let started = Instant::now();
    let report = rebuild_index(&workspace.kb(), &workspace.index(), |_, _| {}).expect("build");
    let build = started.elapsed();
    std::fs::write(workspace.marker(), Workspace::marker_text(n)).expect("write marker");
    let times = BuildTimes {
        generate: generate_time,
        build,
        bytes,
        added: report.added,
        errors: report.errors.len(),
    };
    (metas, times)
}

/// A built knowledge base of `n` articles: reused from `KEFU_BENCH_DIR` when already there.
fn prepared(corpus: &Corpus, n: usize) -> (Workspace, Vec<ArticleMeta>) {
    let workspace = Workspace::new(&format!("n{n}"));
    if workspace.is_built(n) {
        eprintln!("reusing {} ({n} articles)", workspace.root.display());
        let (metas, _) = generate(corpus, n, None);
        return (workspace, metas);
    }
    eprintln!(
        "generating and indexing {n} articles in {}",
        workspace.root.display()
    );
    let (metas, times) = build_fresh(corpus, &workspace, n);
    eprintln!(
        "  generated in {:.1}s, indexed in {:.1}s",
        times.generate.as_secs_f64(),
        times.build.as_secs_f64()
    );
    (workspace, metas)
}

fn dir_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .filter(|metadata| metadata.is_file())
        .map(|metadata| metadata.len())
        .sum()
}

// ---------------------------------------------------------------------------------------------------
// Statistics and printing
// ---------------------------------------------------------------------------------------------------

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Summary {
    count: usize,
    mean: Duration,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn summarize(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let total: Duration = sorted.iter().sum();
    Summary {
        count: sorted.len(),
        mean: if sorted.is_empty() {
            Duration::ZERO
        } else {
            total / sorted.len() as u32
        },
        p50: percentile(&sorted, 50.0),
        p90: percentile(&sorted, 90.0),
        p99: percentile(&sorted, 99.0),
        max: sorted.last().copied().unwrap_or_default(),
    }
}

fn us(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn print_header(title: &str) {
    println!();
    println!("=== {title} ===");
    println!("machine: {} cores; rustc profile: bench (release)", cores());
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| cores.get())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".to_string())
}

/// Replaces the panic message printer with one that reports only the first panic.
fn quiet_panics() {
    static FIRST: std::sync::Once = std::sync::Once::new();
    std::panic::set_hook(Box::new(|info| {
        FIRST.call_once(|| eprintln!("(first panic, later ones are counted silently: {info})"));
    }));
}

fn verdict(met: bool) -> &'static str {
    if met {
        "MET"
    } else {
        "NOT MET"
    }
}

// ---------------------------------------------------------------------------------------------------
// Scenario: build
// ---------------------------------------------------------------------------------------------------

fn bench_build(n: usize) {
    let corpus = Corpus::load();
    let workspace = Workspace::new(&format!("n{n}"));
    let load_before = load_average();
    let (_, times) = build_fresh(&corpus, &workspace, n);
    // Parsing alone (files are in the page cache now, as they were for the build).
    let started = Instant::now();
    let scan = load_knowledge_base(&workspace.kb()).expect("scan");
    let parse_time = started.elapsed();
    drop(scan);
    let index_bytes = dir_size(&workspace.index());
    let segments = {
        let analysis = Analysis::from_index(&workspace.index());
        SearchIndex::open_read_only(&workspace.index(), analysis.analyzer, analysis.synonyms)
            .map(|index| index.segment_count())
            .unwrap_or(0)
    };
    let seconds = times.build.as_secs_f64();
    let megabytes = times.bytes as f64 / 1e6;
    print_header(&format!("build {n}"));
    println!(
        "load average before/after:  {load_before} / {}",
        load_average()
    );
    println!(
        "corpus:                     {} sentences, {} questions from kb/",
        corpus.sentence_count(),
        corpus.question_count()
    );
    println!(
        "articles indexed:           {} ({} broken)",
        times.added, times.errors
    );
    println!(
        "markdown:                   {megabytes:.1} MB ({:.0} B/article), generated in {:.1} s",
        times.bytes as f64 / n as f64,
        times.generate.as_secs_f64()
    );
    println!("rebuild_index:              {seconds:.2} s");
    println!(
        "  of which parsing (approx): {:.2} s (load_knowledge_base timed separately, warm cache)",
        parse_time.as_secs_f64()
    );
    println!(
        "throughput:                 {:.0} articles/s, {:.2} MB/s of markdown",
        n as f64 / seconds,
        megabytes / seconds
    );
    println!(
        "index on disk:              {:.1} MB ({:.2}x the markdown), {segments} segment(s)",
        index_bytes as f64 / 1e6,
        index_bytes as f64 / times.bytes as f64
    );
    println!(
        "index dir:                  {}",
        workspace.index().display()
    );
}

// ---------------------------------------------------------------------------------------------------
// Scenario: search
// ---------------------------------------------------------------------------------------------------

/// Visitor-like queries: generated titles/questions with words dropped or swapped, plus fixed ones.
fn make_queries(
    analysis: &Analysis,
    metas: &[ArticleMeta],
    count: usize,
    seed: u64,
) -> Vec<String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let fillers_before = ["请问", "我想问下", "你好", "咨询一下"];
    let fillers_after = ["呢", "啊", "吗"];
    let mut queries = Vec::with_capacity(count);
    while queries.len() < count {
        if rng.u8(..100) < 10 {
            queries.push(pick(&mut rng, FIXED_QUERIES).to_string());
            continue;
        }
        let meta = pick(&mut rng, metas);
        let source = if rng.bool() || meta.questions.is_empty() {
            &meta.title
        } else {
            pick(&mut rng, &meta.questions)
        };
        let mut words = analysis.analyzer.query_words(source);
        if words.len() >= 3 && rng.u8(..100) < 50 {
            words.remove(rng.usize(..words.len()));
        }
        if words.len() >= 3 && rng.u8(..100) < 25 {
            words.remove(rng.usize(..words.len()));
        }
        if words.len() >= 2 && rng.u8(..100) < 30 {
            let at = rng.usize(..words.len() - 1);
            words.swap(at, at + 1);
        }
        if rng.u8(..100) < 15 {
            words.insert(0, pick(&mut rng, &fillers_before).to_string());
        }
        if rng.u8(..100) < 10 {
            words.push(pick(&mut rng, &fillers_after).to_string());
        }
        while words.len() > 1 && words.concat().chars().count() > 20 {
            words.pop();
        }
        let mut query = words.concat();
        if query.chars().count() > 20 {
            query = query.chars().take(20).collect();
        }
        if query.chars().count() >= 3 {
            queries.push(query);
        }
    }
    queries
}

fn bench_search(n: usize, query_count: usize) {
    let corpus = Corpus::load();
    let (workspace, metas) = prepared(&corpus, n);
    let started = Instant::now();
    let analysis = Analysis::from_index(&workspace.index());
    let analysis_time = started.elapsed();
    let started = Instant::now();
    let index = SearchIndex::open_read_only(
        &workspace.index(),
        Arc::clone(&analysis.analyzer),
        Arc::clone(&analysis.synonyms),
    )
    .expect("open index");
    let open_time = started.elapsed();
    let queries = make_queries(&analysis, &metas, query_count, SEED ^ 0x5eed);
    // A panic inside `search` (seen in tantivy's snippet code) is counted and reported, not fatal.
    let panicked: std::cell::RefCell<Vec<(String, bool)>> = Default::default();
    let run = |text: &str,
               with_snippets: bool|
     -> Option<(Duration, Vec<kefu::search::SearchHit>)> {
        let request = SearchRequest {
            text,
            limit: 10,
            category: None,
            include_drafts: false,
            with_snippets,
        };
        let started = Instant::now();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| index.search(&request))) {
            Ok(hits) => Some((started.elapsed(), hits.expect("search"))),
            Err(_) => {
                panicked
                    .borrow_mut()
                    .push((text.to_string(), with_snippets));
                None
            }
        }
    };
    quiet_panics();
    let first_query = run(&queries[0], true)
        .map(|(time, _)| time)
        .unwrap_or_default();
    for query in queries.iter().take(300) {
        run(query, true);
    }
    panicked.borrow_mut().clear();
    let load_before = load_average();
    let mut with = Vec::with_capacity(queries.len());
    let mut without = Vec::with_capacity(queries.len());
    let mut slowest: Vec<(Duration, Duration, usize)> = Vec::new();
    let mut zero_hits = 0usize;
    let mut total_hits = 0usize;
    let started = Instant::now();
    for (i, query) in queries.iter().enumerate() {
        // Alternate the order so that neither variant always runs on a warmer cache.
        let (snippets, plain) = if i % 2 == 0 {
            let snippets = run(query, true);
            (snippets, run(query, false))
        } else {
            let plain = run(query, false);
            (run(query, true), plain)
        };
        if let Some((time, _)) = &snippets {
            with.push(*time);
        }
        if let Some((time, hits)) = &plain {
            without.push(*time);
            total_hits += hits.len();
            if hits.is_empty() {
                zero_hits += 1;
            }
        }
        slowest.push((
            snippets.as_ref().map(|(time, _)| *time).unwrap_or_default(),
            plain.as_ref().map(|(time, _)| *time).unwrap_or_default(),
            i,
        ));
    }
    let wall = started.elapsed();
    slowest.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let a = summarize(&with);
    let b = summarize(&without);
    print_header(&format!("search {n}"));
    println!(
        "load average before/after:  {load_before} / {}",
        load_average()
    );
    println!(
        "index:                      {} ({} articles, {} segments)",
        workspace.index().display(),
        index.article_count(),
        index.segment_count()
    );
    println!("open: Analysis::from_index {:.0} ms, SearchIndex::open_read_only {:.0} ms; first query {:.0} us", ms(analysis_time), ms(open_time), us(first_query));
    println!("queries:                    {} distinct-ish visitor queries, 3-20 chars, {:.1} hits on average, {} with no hit", queries.len(), total_hits as f64 / queries.len() as f64, zero_hits);
    println!(
        "samples: e.g. {}",
        queries
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!(
        "{:<22} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "limit 10", "count", "mean us", "p50 us", "p90 us", "p99 us", "max us"
    );
    for (label, summary) in [("with_snippets=true", &a), ("with_snippets=false", &b)] {
        println!(
            "{:<22} {:>7} {:>9.0} {:>9.0} {:>9.0} {:>9.0} {:>9.0}",
            label,
            summary.count,
            us(summary.mean),
            us(summary.p50),
            us(summary.p90),
            us(summary.p99),
            us(summary.max)
        );
    }
    println!(
        "throughput (one thread, both variants): {:.0} searches/s",
        (2 * queries.len()) as f64 / wall.as_secs_f64()
    );
    println!("slowest (with snippets / without):");
    for (snippet_time, plain_time, i) in slowest.iter().take(5) {
        println!(
            "  {:>7.0} us / {:>7.0} us  {}",
            us(*snippet_time),
            us(*plain_time),
            queries[*i]
        );
    }
    let panicked = panicked.into_inner();
    let snippet_panics = panicked.iter().filter(|(_, with)| *with).count();
    println!(
        "PANICS inside SearchIndex::search: {} of {} with snippets, {} of {} without",
        snippet_panics,
        queries.len(),
        panicked.len() - snippet_panics,
        queries.len()
    );
    for (query, with) in panicked.iter().take(8) {
        println!("  panicked (with_snippets={with}): {query}");
    }
    println!(
        "target p50 <= 1000 us (snippets on): {} ({:.0} us)",
        verdict(a.p50 <= Duration::from_millis(1)),
        us(a.p50)
    );
    println!(
        "target p99 <= 5000 us (snippets on): {} ({:.0} us)",
        verdict(a.p99 <= Duration::from_millis(5)),
        us(a.p99)
    );
}

// ---------------------------------------------------------------------------------------------------
// Scenario: tokenize
// ---------------------------------------------------------------------------------------------------

fn bench_tokenize(megabytes: usize) {
    let corpus = Corpus::load();
    let target_bytes = megabytes * 1_000_000;
    let mut rng = fastrand::Rng::with_seed(SEED ^ 0x7e47);
    let mut lines: Vec<String> = Vec::new();
    let mut bytes = 0usize;
    let mut i = 0usize;
    while bytes < target_bytes {
        let category = rng.usize(..corpus.categories.len());
        let article = make_article(&corpus, &mut rng, &format!("t/{i}"), category, None);
        i += 1;
        let body = article
            .markdown
            .split("\n---\n")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        for line in body.lines().map(str::trim).filter(|line| !line.is_empty()) {
            bytes += line.len() + 1;
            lines.push(line.to_string());
        }
    }
    let text_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-text.txt");
    std::fs::create_dir_all(text_path.parent().expect("has parent")).expect("target dir");
    let mut file =
        std::io::BufWriter::new(std::fs::File::create(&text_path).expect("create text file"));
    for line in &lines {
        writeln!(file, "{line}").expect("write text");
    }
    file.flush().expect("flush text");
    drop(file);
    let dict_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-dict.txt");
    std::fs::write(&dict_path, &corpus.dictionary).expect("write dict copy");

    let analysis = Analysis::new(corpus.dictionary.clone(), corpus.synonyms.clone());
    let analyzer = Arc::clone(&analysis.analyzer);
    // Raw jieba-rs with the same user words, to see what normalisation and offsets cost.
    let mut raw = jieba_rs::Jieba::new();
    for line in corpus.dictionary.lines() {
        let mut parts = line.split_whitespace();
        if let Some(word) = parts.next().filter(|word| !word.starts_with('#')) {
            let frequency = parts.next().and_then(|f| f.parse().ok());
            raw.add_word(word, frequency, parts.next());
        }
    }
    let load_before = load_average();
    let mb = bytes as f64 / 1e6;
    let measure = |label: &str, round: usize, work: &dyn Fn(&str) -> usize| -> f64 {
        let started = Instant::now();
        let mut tokens = 0usize;
        for line in &lines {
            tokens += work(line);
        }
        let seconds = started.elapsed().as_secs_f64();
        let rate = mb / seconds;
        println!("  {label:<44} round {round}: {seconds:>6.2} s  {rate:>6.2} MB/s  {tokens} out");
        rate
    };
    print_header("tokenize");
    println!(
        "text:        {} ({mb:.1} MB, {} lines, avg {:.0} B/line)",
        text_path.display(),
        lines.len(),
        bytes as f64 / lines.len() as f64
    );
    println!("user dict:   {}", dict_path.display());
    println!("load average before: {load_before}");
    let mut best: BTreeMap<&str, f64> = BTreeMap::new();
    let mut record = |label: &'static str, rate: f64| {
        let entry = best.entry(label).or_insert(0.0);
        *entry = entry.max(rate);
    };
    for round in 1..=2 {
        record(
            "word_tokens",
            measure(
                "Analyzer::word_tokens (search mode, normalised)",
                round,
                &|line| analyzer.word_tokens(line).len(),
            ),
        );
        record(
            "ngram_tokens",
            measure(
                "ngram_tokens (unigram+bigram, normalised)",
                round,
                &|line| ngram_tokens(line).len(),
            ),
        );
        record(
            "normalize",
            measure("text::normalize only", round, &|line| {
                kefu::search::text::normalize(line).text.len()
            }),
        );
        record(
            "raw",
            measure(
                "raw jieba-rs cut_for_search(hmm) no normalise",
                round,
                &|line| raw.cut_for_search(line, true).len(),
            ),
        );
    }
    println!("load average after: {}", load_average());
    println!("best of 2 rounds (MB/s): word_tokens {:.2}, ngram_tokens {:.2}, normalize {:.2}, raw jieba-rs {:.2}", best["word_tokens"], best["ngram_tokens"], best["normalize"], best["raw"]);
    println!(
        "target word_tokens >= 20 MB/s: {} ({:.2} MB/s)",
        verdict(best["word_tokens"] >= 20.0),
        best["word_tokens"]
    );
    println!(
        "python comparison: python3 benches/jieba_py.py {} {}",
        text_path.display(),
        dict_path.display()
    );
}

// ---------------------------------------------------------------------------------------------------
// Scenario: edits
// ---------------------------------------------------------------------------------------------------

/// A token no generated text contains: `kfzq` + 6 letters.
fn unique_token(serial: usize) -> String {
    let mut letters = [b'a'; 6];
    let mut rest = serial;
    for slot in letters.iter_mut().rev() {
        *slot = b'a' + (rest % 26) as u8;
        rest /= 26;
    }
    format!("kfzq{}", std::str::from_utf8(&letters).expect("ascii"))
}

struct EditOutcome {
    put: Duration,
    visible: Duration,
    found_at_once: bool,
    created: bool,
}

/// Puts `markdown` under `id` and searches for `token` until the article comes back.
async fn edit_and_confirm(
    service: Arc<KnowledgeService>,
    id: String,
    markdown: String,
    token: String,
) -> EditOutcome {
    let started = Instant::now();
    let (_, created) = service.put(&id, markdown, None).await.expect("put");
    let put = started.elapsed();
    let mut found_at_once = true;
    loop {
        let hits = service
            .index()
            .search(&SearchRequest {
                text: &token,
                limit: 10,
                category: None,
                include_drafts: false,
                with_snippets: false,
            })
            .expect("search");
        if hits.iter().any(|hit| hit.id == id) {
            break;
        }
        found_at_once = false;
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "edit of {id} never became searchable"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    EditOutcome {
        put,
        visible: started.elapsed(),
        found_at_once,
        created,
    }
}

fn bench_edits(n: usize, paced_seconds: usize, fast_edits: usize, concurrency: usize) {
    let corpus = Arc::new(Corpus::load());
    // Edits change the knowledge base, so this one is always fresh.
    let workspace = Workspace::new(&format!("edits-n{n}"));
    eprintln!(
        "generating and indexing {n} articles in {}",
        workspace.root.display()
    );
    let (metas, _) = build_fresh(&corpus, &workspace, n);
    let _ = std::fs::remove_file(workspace.marker());
    let started = Instant::now();
    let (service, report) = KnowledgeService::open(
        &workspace.kb(),
        &workspace.index(),
        SearchConfig::default(),
        WriterOptions::serving(),
    )
    .expect("open service");
    let open_time = started.elapsed();
    assert_eq!(
        report.unchanged, n,
        "open should find the built index in step"
    );
    let service = Arc::new(service);
    service
        .index()
        .start_commit_batching(Duration::from_millis(50));
    let segments_at_start = service.index().segment_count();
    let ids: Arc<Vec<(String, usize)>> = Arc::new(
        metas
            .iter()
            .map(|meta| (meta.id.clone(), meta.category))
            .collect(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let load_before = load_average();

    // Phase 1: open-loop edits at 10/s.
    let paced_count = paced_seconds * 10;
    let (paced, paced_wall) = runtime.block_on({
        let service = Arc::clone(&service);
        let corpus = Arc::clone(&corpus);
        let ids = Arc::clone(&ids);
        async move {
            let mut rng = fastrand::Rng::with_seed(SEED ^ 0xed17);
            let mut ticker = tokio::time::interval(Duration::from_millis(100));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = Vec::with_capacity(paced_count);
            let started = Instant::now();
            for serial in 0..paced_count {
                ticker.tick().await;
                let (id, category) = if rng.u8(..100) < 70 {
                    ids[rng.usize(..ids.len())].clone()
                } else {
                    let category = rng.usize(..corpus.categories.len());
                    (
                        format!("{}/new-paced-{serial:06}", corpus.categories[category]),
                        category,
                    )
                };
                let token = unique_token(serial);
                let article = make_article(&corpus, &mut rng, &id, category, Some(&token));
                tasks.push(tokio::spawn(edit_and_confirm(
                    Arc::clone(&service),
                    id,
                    article.markdown,
                    token,
                )));
            }
            let mut outcomes = Vec::with_capacity(tasks.len());
            for task in tasks {
                outcomes.push(task.await.expect("edit task"));
            }
            (outcomes, started.elapsed())
        }
    });
    let segments_after_paced = service.index().segment_count();

    // Phase 2: as fast as possible with `concurrency` edits in flight; each worker owns its articles.
    let (fast, fast_wall, max_segments) = runtime.block_on({
        let service = Arc::clone(&service);
        let corpus = Arc::clone(&corpus);
        let ids = Arc::clone(&ids);
        async move {
            let started = Instant::now();
            let mut workers = Vec::new();
            let per_worker = fast_edits.div_ceil(concurrency);
            for worker in 0..concurrency {
                let service = Arc::clone(&service);
                let corpus = Arc::clone(&corpus);
                let ids = Arc::clone(&ids);
                workers.push(tokio::spawn(async move {
                    let mut rng = fastrand::Rng::with_seed(SEED ^ 0xfa57 ^ worker as u64);
                    let own: Vec<&(String, usize)> =
                        ids.iter().skip(worker).step_by(concurrency).collect();
                    let mut outcomes = Vec::new();
                    let mut max_segments = 0;
                    for k in 0..per_worker {
                        let serial = 1_000_000 + worker * per_worker + k;
                        if serial - 1_000_000 >= fast_edits {
                            break;
                        }
                        let (id, category) = if rng.u8(..100) < 70 {
                            own[rng.usize(..own.len())].clone()
                        } else {
                            let category = rng.usize(..corpus.categories.len());
                            (
                                format!(
                                    "{}/new-fast-{worker:02}-{k:05}",
                                    corpus.categories[category]
                                ),
                                category,
                            )
                        };
                        let token = unique_token(serial);
                        let article = make_article(&corpus, &mut rng, &id, category, Some(&token));
                        outcomes.push(
                            edit_and_confirm(Arc::clone(&service), id, article.markdown, token)
                                .await,
                        );
                        if k % 25 == 0 {
                            max_segments = max_segments.max(service.index().segment_count());
                        }
                    }
                    (outcomes, max_segments)
                }));
            }
            let mut outcomes = Vec::new();
            let mut max_segments = 0;
            for worker in workers {
                let (mut done, segments) = worker.await.expect("worker");
                outcomes.append(&mut done);
                max_segments = max_segments.max(segments);
            }
            (outcomes, started.elapsed(), max_segments)
        }
    });
    let segments_after_fast = service.index().segment_count();
    let articles_after_fast = service.index().article_count();
    std::thread::sleep(Duration::from_secs(5));
    service.index().commit_now().expect("commit");
    let segments_after_idle = service.index().segment_count();

    let report_phase = |label: &str, outcomes: &[EditOutcome], wall: Duration| {
        let puts: Vec<Duration> = outcomes.iter().map(|o| o.put).collect();
        let visible: Vec<Duration> = outcomes.iter().map(|o| o.visible).collect();
        let created = outcomes.iter().filter(|o| o.created).count();
        let late = outcomes.iter().filter(|o| !o.found_at_once).count();
        let p = summarize(&puts);
        let v = summarize(&visible);
        println!("{label}: {} edits ({} new, {} existing) in {:.1} s = {:.1} edits/s; not searchable right after put returned: {late}", outcomes.len(), created, outcomes.len() - created, wall.as_secs_f64(), outcomes.len() as f64 / wall.as_secs_f64());
        println!(
            "  {:<26} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms"
        );
        for (name, s) in [("put latency", &p), ("put + confirming search", &v)] {
            println!(
                "  {:<26} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name,
                ms(s.mean),
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                ms(s.max)
            );
        }
        (p, v)
    };
    print_header(&format!("edits on {n} articles"));
    println!(
        "load average before/after:  {load_before} / {}",
        load_average()
    );
    println!("KnowledgeService::open (sync of {n} unchanged files): {:.0} ms; commit batching 50 ms; serving writer (1 thread, 64 MB); no file watcher", ms(open_time));
    let (_, paced_visible) = report_phase("paced (10/s, open loop)", &paced, paced_wall);
    let _ = report_phase(&format!("fast ({concurrency} in flight)"), &fast, fast_wall);
    println!("segments: at start {segments_at_start}, after paced {segments_after_paced}, max sampled during fast {max_segments}, right after fast {segments_after_fast}, after 5 s idle + commit {segments_after_idle}; {articles_after_fast} articles searchable");
    println!(
        "paced edit visible p50 {:.1} ms, p99 {:.1} ms (commit delay is 50 ms)",
        ms(paced_visible.p50),
        ms(paced_visible.p99)
    );
    println!("target segments <= 30 after 10k edits: {} ({segments_after_fast} right after, {segments_after_idle} after idle)", verdict(segments_after_fast <= 30));
}

// ---------------------------------------------------------------------------------------------------
// Scenario: coldstart
// ---------------------------------------------------------------------------------------------------

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    port
}

/// One HTTP/1.1 GET; returns the status code and body, or None when the server is not there yet.
fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((status, body))
}

fn bench_coldstart(n: usize, runs: usize) {
    let corpus = Corpus::load();
    let (workspace, _) = prepared(&corpus, n);
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_kefu"));
    let scratch = tempfile::tempdir().expect("scratch");
    let load_before = load_average();

    // `kefu search --index DIR 退款`: process start to exit with hits printed.
    let mut search_times = Vec::new();
    let mut inner_ms = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let output = Command::new(&binary)
            .args(["search", "--json", "--index"])
            .arg(workspace.index())
            .arg("退款")
            .current_dir(scratch.path())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .output()
            .expect("run kefu search");
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "kefu search failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let json: serde_json::Value = serde_json::from_str(&stdout).expect("json output");
        assert!(
            json["hits"].as_array().is_some_and(|hits| !hits.is_empty()),
            "no hits for 退款"
        );
        inner_ms.push(json["took_ms"].as_f64().unwrap_or_default());
        search_times.push(elapsed);
    }

    // `kefu serve`: process start to the first 200 from /api/v1/kb/search?q=退款.
    let path = format!("/api/v1/kb/search?q={}", percent_encode("退款"));
    let mut serve_times = Vec::new();
    let mut first_listen = Vec::new();
    for run in 0..runs {
        let port = free_port();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        let data = scratch.path().join(format!("data-{run}"));
        let log_path = scratch.path().join(format!("serve-{run}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let started = Instant::now();
        let mut child = Command::new(&binary)
            .arg("serve")
            .arg("--kb")
            .arg(workspace.kb())
            .arg("--index")
            .arg(workspace.index())
            .arg("--data")
            .arg(&data)
            .arg("--listen")
            .arg(address.to_string())
            .current_dir(scratch.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn kefu serve");
        let mut listening = None;
        let answered = loop {
            if let Some(status) = child.try_wait().expect("poll child") {
                panic!(
                    "kefu serve exited with {status}: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            if started.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                panic!("kefu serve did not answer within 120 s");
            }
            match http_get(address, &path) {
                Some((200, body)) => {
                    assert!(body.contains("\"hits\""), "unexpected body: {body}");
                    break started.elapsed();
                }
                Some(_) => {
                    listening.get_or_insert(started.elapsed());
                }
                None => {}
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        serve_times.push(answered);
        first_listen.push(listening);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("poll child").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
    }

    // Where serve's time goes: the same open in-process.
    let started = Instant::now();
    let scan = load_knowledge_base(&workspace.kb()).expect("scan");
    let scan_time = started.elapsed();
    drop(scan);
    let started = Instant::now();
    let analysis = Analysis::from_knowledge_base(&workspace.kb());
    let analysis_time = started.elapsed();
    let started = Instant::now();
    let stored =
        SearchIndex::open_read_only(&workspace.index(), analysis.analyzer, analysis.synonyms)
            .expect("open")
            .list()
            .expect("list");
    let hashes_time = started.elapsed();
    drop(stored);
    let started = Instant::now();
    let opened = KnowledgeService::open(
        &workspace.kb(),
        &workspace.index(),
        SearchConfig::default(),
        WriterOptions::serving(),
    )
    .expect("open service");
    let open_time = started.elapsed();
    drop(opened);

    let search_summary = summarize(&search_times);
    let serve_summary = summarize(&serve_times);
    print_header(&format!("coldstart with {n} articles"));
    println!("binary: {}", binary.display());
    println!(
        "load average before/after:  {load_before} / {}",
        load_average()
    );
    println!(
        "kefu search --index DIR 退款 (spawn to exit), ms: {}",
        search_times
            .iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  search itself inside the process (took_ms): {}",
        inner_ms
            .iter()
            .map(|t| format!("{t:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "kefu serve (spawn to first 200 on /api/v1/kb/search?q=退款), ms: {}",
        serve_times
            .iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if first_listen.iter().any(Option::is_some) {
        println!("  (non-200 answers were seen first at: {:?})", first_listen);
    }
    println!("in-process breakdown of serve's startup: Analysis::from_knowledge_base {:.0} ms, load_knowledge_base {:.0} ms, reading every stored document (list) {:.0} ms, whole KnowledgeService::open {:.0} ms", ms(analysis_time), ms(scan_time), ms(hashes_time), ms(open_time));
    println!(
        "target search <= 1000 ms (median of {runs}): {} ({:.0} ms, max {:.0} ms)",
        verdict(search_summary.p50 <= Duration::from_secs(1)),
        ms(search_summary.p50),
        ms(search_summary.max)
    );
    println!(
        "target serve  <= 1000 ms (median of {runs}): {} ({:.0} ms, max {:.0} ms)",
        verdict(serve_summary.p50 <= Duration::from_secs(1)),
        ms(serve_summary.p50),
        ms(serve_summary.max)
    );
}

// ---------------------------------------------------------------------------------------------------
// Scenario: profile (diagnostic: which part of the query costs what)
// ---------------------------------------------------------------------------------------------------

/// Runs variants of kefu's query on the same index through tantivy directly (read-only), to show which
/// clauses the time goes to. `SearchIndex::search` has used both of the first two shapes (filter inside the
/// query, or a bare union with drafts dropped after ranking); the other variants are subsets of the terms.
fn bench_profile(n: usize, query_count: usize) {
    use kefu::domain::ArticleStatus;
    use kefu::search::{build_schema, AnalyzedQuery};
    use tantivy::collector::{Count, TopDocs};
    use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
    use tantivy::schema::IndexRecordOption;
    use tantivy::Term;

    let corpus = Corpus::load();
    let (workspace, metas) = prepared(&corpus, n);
    let analysis = Analysis::from_index(&workspace.index());
    let queries = make_queries(&analysis, &metas, query_count, SEED ^ 0x9f0f);
    let index = tantivy::Index::open_in_dir(workspace.index()).expect("open tantivy index");
    let reader = index.reader().expect("reader");
    let searcher = reader.searcher();
    let (_, fields) = build_schema();
    let draft = Term::from_field_text(fields.status, ArticleStatus::Draft.as_str());
    let kefu_shape = |text_query: Box<dyn Query>| -> Box<dyn Query> {
        Box::new(BooleanQuery::new(vec![
            (Occur::Must, text_query),
            (
                Occur::MustNot,
                Box::new(TermQuery::new(draft.clone(), IndexRecordOption::Basic)),
            ),
        ]))
    };
    type Variant<'a> = (
        &'static str,
        Box<dyn Fn(&AnalyzedQuery) -> Box<dyn Query> + 'a>,
    );
    let variants: Vec<Variant> = vec![
        (
            "Must(text) + MustNot(draft) (union scored in full)",
            Box::new(|q: &AnalyzedQuery| kefu_shape(q.to_query(&fields))),
        ),
        (
            "bare union of the terms (block-max WAND path)",
            Box::new(|q: &AnalyzedQuery| q.to_query(&fields)),
        ),
        (
            "jieba words + synonyms only",
            Box::new(|q: &AnalyzedQuery| {
                let mut part = q.clone();
                part.ngrams.clear();
                kefu_shape(part.to_query(&fields))
            }),
        ),
        (
            "n-grams only (unigrams + bigrams)",
            Box::new(|q: &AnalyzedQuery| {
                let mut part = q.clone();
                part.words.clear();
                part.synonyms.clear();
                kefu_shape(part.to_query(&fields))
            }),
        ),
        (
            "words + bigrams (no unigrams)",
            Box::new(|q: &AnalyzedQuery| {
                let mut part = q.clone();
                part.ngrams
                    .retain(|gram| gram.chars().count() != 1 || !gram.chars().all(is_cjk));
                kefu_shape(part.to_query(&fields))
            }),
        ),
        (
            "words + n-grams, body_ngram field dropped",
            Box::new(|q: &AnalyzedQuery| {
                // Rebuild without body_ngram: same terms as kefu, minus the body n-gram clauses.
                let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
                let mut words_only = q.clone();
                words_only.ngrams.clear();
                clauses.push((Occur::Should, words_only.to_query(&fields)));
                for gram in &q.ngrams {
                    for field in [fields.title_ngram, fields.questions_ngram] {
                        clauses.push((
                            Occur::Should,
                            Box::new(TermQuery::new(
                                Term::from_field_text(field, gram),
                                IndexRecordOption::WithFreqs,
                            )),
                        ));
                    }
                }
                kefu_shape(Box::new(BooleanQuery::new(clauses)))
            }),
        ),
    ];
    let analyzed: Vec<AnalyzedQuery> = queries
        .iter()
        .map(|text| AnalyzedQuery::new(&analysis.analyzer, &analysis.synonyms, text))
        .collect();
    // Warm up the page cache for every variant.
    for q in analyzed.iter().take(100) {
        for (_, make) in &variants {
            let _ = searcher.search(&*make(q), &TopDocs::with_limit(10).order_by_score());
        }
    }
    let load_before = load_average();
    print_header(&format!("profile search on {n} articles"));
    println!("load average before: {load_before}");
    let clause_count: usize = analyzed
        .iter()
        .map(|q| 7 * (q.words.len() + q.synonyms.len()) + 3 * q.ngrams.len())
        .sum();
    println!(
        "{} queries: avg {:.1} words, {:.1} synonyms, {:.1} n-grams -> avg {:.0} term clauses per query",
        analyzed.len(),
        analyzed.iter().map(|q| q.words.len()).sum::<usize>() as f64 / analyzed.len() as f64,
        analyzed.iter().map(|q| q.synonyms.len()).sum::<usize>() as f64 / analyzed.len() as f64,
        analyzed.iter().map(|q| q.ngrams.len()).sum::<usize>() as f64 / analyzed.len() as f64,
        clause_count as f64 / analyzed.len() as f64
    );
    println!(
        "{:<52} {:>9} {:>9} {:>9} {:>12}",
        "variant (TopDocs 10, no snippets)", "p50 us", "p90 us", "p99 us", "avg matches"
    );
    for (label, make) in &variants {
        let mut times = Vec::with_capacity(analyzed.len());
        let mut matches = 0usize;
        for q in &analyzed {
            let query = make(q);
            let started = Instant::now();
            let _ = searcher
                .search(&*query, &TopDocs::with_limit(10).order_by_score())
                .expect("search");
            times.push(started.elapsed());
            matches += searcher.search(&*query, &Count).expect("count");
        }
        let s = summarize(&times);
        println!(
            "{:<52} {:>9.0} {:>9.0} {:>9.0} {:>12.0}",
            label,
            us(s.p50),
            us(s.p90),
            us(s.p99),
            matches as f64 / analyzed.len() as f64
        );
    }
    // Query analysis alone (jieba + n-grams + synonyms).
    let started = Instant::now();
    for text in &queries {
        let _ = AnalyzedQuery::new(&analysis.analyzer, &analysis.synonyms, text);
    }
    println!(
        "AnalyzedQuery::new alone: {:.0} us per query",
        us(started.elapsed()) / queries.len() as f64
    );
    println!("load average after: {}", load_average());
}

// ---------------------------------------------------------------------------------------------------
// Scenario: density (how much of an index a query touches)
// ---------------------------------------------------------------------------------------------------

/// How many postings a query's term clauses cover and how many articles it matches, relative to the
/// number of articles: what decides the cost of scoring the union. Either on the generated corpus
/// (`density N [QUERIES]`) or on any kefu index with one query per line (`density INDEX_DIR FILE`; a
/// tab-separated line is read as `id<TAB>query[<TAB>...]`), to compare the generated text with real text.
fn bench_density(args: &[String]) {
    use kefu::search::AnalyzedQuery;
    use tantivy::collector::Count;

    let (index_dir, analysis, queries) = match args.first().map(|arg| arg.replace('_', "")) {
        Some(arg) if arg.parse::<usize>().is_ok() => {
            let n: usize = arg.parse().expect("a whole number");
            let count = args
                .get(1)
                .map_or(1_000, |raw| raw.parse().expect("a whole number"));
            let corpus = Corpus::load();
            let (workspace, metas) = prepared(&corpus, n);
            let analysis = Analysis::from_index(&workspace.index());
            let queries = make_queries(&analysis, &metas, count, SEED ^ 0x9f0f);
            (workspace.index(), analysis, queries)
        }
        Some(_) => {
            let index_dir = PathBuf::from(&args[0]);
            let file = args.get(1).expect("density INDEX_DIR QUERY_FILE");
            let text = std::fs::read_to_string(file).expect("read the query file");
            let queries = text
                .lines()
                .filter_map(|line| {
                    let query = match line.split('\t').collect::<Vec<_>>()[..] {
                        [_, query, ..] => query,
                        _ => line,
                    };
                    (!query.trim().is_empty()).then(|| query.to_string())
                })
                .collect();
            let analysis = Analysis::from_index(&index_dir);
            (index_dir, analysis, queries)
        }
        None => {
            eprintln!("usage: density N [QUERIES] | density INDEX_DIR QUERY_FILE");
            std::process::exit(2);
        }
    };
    let index = tantivy::Index::open_in_dir(&index_dir).expect("open tantivy index");
    let searcher = index.reader().expect("reader").searcher();
    let (_, fields) = kefu::search::build_schema();
    let articles = searcher.num_docs() as f64;
    let mut postings = Vec::new();
    let mut matched = Vec::new();
    let mut clauses = Vec::new();
    for text in &queries {
        let analyzed = AnalyzedQuery::new(&analysis.analyzer, &analysis.synonyms, text);
        if analyzed.is_empty() {
            continue;
        }
        let query = analyzed.to_query(&fields);
        let mut sum = 0u64;
        let mut count = 0usize;
        query.query_terms(&mut |term, _| {
            sum += searcher.doc_freq(term).expect("doc freq");
            count += 1;
        });
        postings.push(sum as f64 / articles);
        matched.push(searcher.search(&*query, &Count).expect("count") as f64 / articles);
        clauses.push(count as f64);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    print_header(&format!("density of {}", index_dir.display()));
    println!("articles: {articles}; queries: {}", postings.len());
    println!(
        "term clauses per query, median:             {:.0}",
        median(&mut clauses)
    );
    println!(
        "postings per query / articles, median:      {:.1}",
        median(&mut postings)
    );
    println!(
        "articles matched / articles, median:        {:.2}",
        median(&mut matched)
    );
}

// ---------------------------------------------------------------------------------------------------
// Scenario: generate (for benches/http.sh)
// ---------------------------------------------------------------------------------------------------

fn bench_generate(n: usize, dir: &Path) {
    let corpus = Corpus::load();
    let kb = dir.join("kb");
    remove_if_present(&kb);
    let started = Instant::now();
    let (metas, bytes) = generate(&corpus, n, Some(&kb));
    let analysis = Analysis::new(corpus.dictionary.clone(), corpus.synonyms.clone());
    let queries = make_queries(&analysis, &metas, 100, SEED ^ 0x4777);
    let mut list = String::new();
    for query in &queries {
        list.push_str(&percent_encode(query));
        list.push('\n');
    }
    std::fs::write(dir.join("queries.txt"), list).expect("write queries");
    std::fs::write(dir.join("queries-plain.txt"), queries.join("\n") + "\n")
        .expect("write queries");
    println!(
        "generated {n} articles ({:.1} MB) in {} in {:.1} s; {} queries in {}",
        bytes as f64 / 1e6,
        kb.display(),
        started.elapsed().as_secs_f64(),
        queries.len(),
        dir.join("queries.txt").display()
    );
}
