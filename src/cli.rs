//! The command line: `kefu serve`, `kefu index`, `kefu search`.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, FlagOverrides};
use crate::search::{SearchIndex, SearchRequest};
use crate::services::{rebuild_index, Analysis};

/// kefu: customer-service desk with a Chinese knowledge base.
#[derive(Debug, Parser)]
#[command(name = "kefu", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: ./kefu.toml when present; also KEFU_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: sync the index with the knowledge base, watch it for edits, serve HTTP.
    Serve(ServeArgs),
    /// Rebuild the search index from the knowledge base, reporting broken articles.
    Index(IndexArgs),
    /// Search the index and print ranked articles (one query, or a batch file for evaluation).
    Search(SearchArgs),
}

/// `kefu serve` flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Knowledge-base folder [default: kb].
    #[arg(long, value_name = "DIR")]
    pub kb: Option<PathBuf>,
    /// Index folder [default: index].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Data folder [default: data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// `kefu index` flags.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Knowledge-base folder [default: kb].
    #[arg(long, value_name = "DIR")]
    pub kb: Option<PathBuf>,
    /// Index folder [default: index].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Exit with status 1 when any article could not be indexed.
    #[arg(long)]
    pub strict: bool,
}

/// `kefu search` flags.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The question to search for.
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    pub query: Option<String>,
    /// Index folder [default: index].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Maximum hits per query.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Include draft articles.
    #[arg(long)]
    pub drafts: bool,
    /// Only this category.
    #[arg(long)]
    pub category: Option<String>,
    /// Read `qid<TAB>query` lines from FILE and print `qid<TAB>id1,id2,...` per line.
    #[arg(long, value_name = "FILE")]
    pub batch: Option<PathBuf>,
}

impl Cli {
    /// Loads the configuration with this command's flags on top.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let flags = match &self.command {
            Command::Serve(args) => FlagOverrides {
                listen: args.listen,
                kb: args.kb.clone(),
                index: args.index.clone(),
                data: args.data.clone(),
            },
            Command::Index(args) => FlagOverrides {
                kb: args.kb.clone(),
                index: args.index.clone(),
                ..FlagOverrides::default()
            },
            Command::Search(args) => FlagOverrides {
                index: args.index.clone(),
                ..FlagOverrides::default()
            },
        };
        Ok(Config::load(self.config.as_deref(), &flags)?)
    }
}

/// `kefu index`: returns the process exit code.
pub fn run_index(config: &Config, strict: bool) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} articles {elapsed}")
            .expect("the progress template is valid"),
    );
    let report = rebuild_index(&config.paths.kb, &config.paths.index, |done, total| {
        progress.set_length(total);
        progress.set_position(done);
    })?;
    progress.finish_and_clear();
    for error in &report.errors {
        eprintln!("error: {}/{}", config.paths.kb.display(), error);
    }
    println!(
        "indexed {} articles from {} into {} in {:.2}s ({} broken)",
        report.added,
        config.paths.kb.display(),
        config.paths.index.display(),
        started.elapsed().as_secs_f64(),
        report.errors.len()
    );
    Ok(if strict && !report.errors.is_empty() {
        1
    } else {
        0
    })
}

fn open_for_search(index_dir: &Path) -> anyhow::Result<SearchIndex> {
    let analysis = Analysis::from_index(index_dir);
    Ok(SearchIndex::open_read_only(
        index_dir,
        analysis.analyzer,
        analysis.synonyms,
    )?)
}

/// `kefu search`: returns the process exit code.
pub fn run_search(config: &Config, args: &SearchArgs) -> anyhow::Result<i32> {
    let index = open_for_search(&config.paths.index)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Some(batch) = &args.batch {
        let file = std::fs::File::open(batch)
            .map_err(|error| anyhow::anyhow!("{}: {error}", batch.display()))?;
        for (line_number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let Some((query_id, text)) = line.split_once('\t') else {
                eprintln!(
                    "{}:{}: expected `qid<TAB>query`",
                    batch.display(),
                    line_number + 1
                );
                continue;
            };
            let hits = index.search(&request(args, text, false))?;
            let ids: Vec<&str> = hits.iter().map(|hit| hit.id.as_str()).collect();
            writeln!(out, "{query_id}\t{}", ids.join(","))?;
        }
        out.flush()?;
        return Ok(0);
    }
    let text = args.query.as_deref().unwrap_or_default();
    let started = std::time::Instant::now();
    let hits = index.search(&request(args, text, args.json))?;
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({"hits": hits, "took_ms": took_ms}),
        )?;
        writeln!(out)?;
    } else if hits.is_empty() {
        writeln!(out, "no articles match")?;
    } else {
        for (rank, hit) in hits.iter().enumerate() {
            writeln!(
                out,
                "{:>2}. {}  [{}]  {:.2}",
                rank + 1,
                hit.title,
                hit.id,
                hit.score
            )?;
        }
    }
    out.flush()?;
    Ok(0)
}

fn request<'a>(args: &'a SearchArgs, text: &'a str, with_snippets: bool) -> SearchRequest<'a> {
    SearchRequest {
        text,
        limit: args.limit,
        category: args.category.as_deref(),
        include_drafts: args.drafts,
        with_snippets,
    }
}
