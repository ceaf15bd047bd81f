//! The command line: `kefu serve`, `kefu index`, `kefu search`.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, FlagOverrides};
use crate::domain::Role;
use crate::search::{SearchIndex, SearchRequest};
use crate::services::accounts::{AccountPatch, Actor, NewAccount};
use crate::services::captcha::ImageCaptcha;
use crate::services::{rebuild_index, Analysis};
use crate::services::{AccountService, SystemClock};
use crate::storage::Store;

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
    /// Run questions through the suggestion pipeline (as if a visitor wrote them) and print the
    /// suggested articles: one question, or a batch file in the `search --batch` format.
    Suggest(SuggestArgs),
    /// Manage accounts without the web UI (stop `kefu serve` first: the database has one owner).
    User(UserArgs),
    /// Create or upgrade the database schema (PostgreSQL; `serve` does it too) and say which store
    /// is configured.
    Migrate(StoreArgs),
    /// Write the whole installation (every record and uploaded file) to one file, to move it to
    /// another store: `kefu export --out kefu.export`.
    Export(ExportArgs),
    /// Read an export into the configured store, which must be empty:
    /// `KEFU_STORAGE__BACKEND=postgres kefu import kefu.export`.
    Import(ImportArgs),
}

/// Flags of the commands that only open the store.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Data folder of the embedded store [default: data].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

/// `kefu export` flags.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The store to read.
    #[command(flatten)]
    pub store: StoreArgs,
    /// File to write (`-`: standard output).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// `kefu import` flags.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The store to fill.
    #[command(flatten)]
    pub store: StoreArgs,
    /// An export written by `kefu export`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `kefu suggest` flags.
#[derive(Debug, Args)]
pub struct SuggestArgs {
    /// The visitor's message.
    #[arg(required_unless_present = "batch", conflicts_with = "batch")]
    pub message: Option<String>,
    /// Index folder [default: index].
    #[arg(long, value_name = "DIR")]
    pub index: Option<PathBuf>,
    /// Maximum articles per message.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Read `qid<TAB>message` lines from FILE and print `qid<TAB>id1,id2,...` per line.
    #[arg(long, value_name = "FILE")]
    pub batch: Option<PathBuf>,
    /// Suggest only when a hit reaches this confidence (0 to 1) [default: search.min_confidence].
    #[arg(long, value_name = "CONFIDENCE")]
    pub min_confidence: Option<f32>,
    /// Before answering, learn from judged questions (`qid<TAB>question<TAB>relevant ids`): each
    /// relevant article that is suggested counts as adopted, as when an agent sends it. For measuring
    /// the feedback boost on held-out questions.
    #[arg(long, value_name = "FILE")]
    pub feedback: Option<PathBuf>,
}

/// `kefu user` flags.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// Data folder [default: data].
    #[arg(long, global = true, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: UserAction,
}

/// `kefu user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account; it must change its password at first sign-in.
    Add {
        /// Sign-in name (a-z, 0-9, `.`, `_`, `-`).
        username: String,
        /// Role, repeatable: admin, supervisor, agent, editor [default: agent].
        #[arg(long = "role", value_name = "ROLE", value_parser = parse_role)]
        roles: Vec<Role>,
        /// Name shown to visitors [default: the username].
        #[arg(long)]
        display_name: Option<String>,
        /// Read the initial password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new password (prompted, or from standard input); it must be changed at next sign-in.
    Passwd {
        /// The account.
        username: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an account: it cannot sign in and its sessions end.
    Disable {
        /// The account.
        username: String,
    },
    /// Enable a disabled account again.
    Enable {
        /// The account.
        username: String,
    },
    /// List accounts.
    List,
}

fn parse_role(name: &str) -> Result<Role, String> {
    Role::parse(name)
        .ok_or_else(|| format!("unknown role `{name}`; one of admin, supervisor, agent, editor"))
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
            Command::Suggest(args) => FlagOverrides {
                index: args.index.clone(),
                ..FlagOverrides::default()
            },
            Command::User(args) => FlagOverrides {
                data: args.data.clone(),
                ..FlagOverrides::default()
            },
            Command::Migrate(store)
            | Command::Export(ExportArgs { store, .. })
            | Command::Import(ImportArgs { store, .. }) => FlagOverrides {
                data: store.data.clone(),
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
        answer_batch(batch, "query", &mut out, |text| {
            let hits = index.search(&request(args, text, false))?;
            Ok(hits.into_iter().map(|hit| hit.id).collect())
        })?;
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

/// Answers a `qid<TAB>text` file with one `qid<TAB>id1,id2,...` line per question, in input order; a
/// line without a tab is reported by number on stderr and skipped.
fn answer_batch(
    batch: &Path,
    text_name: &str,
    out: &mut impl Write,
    mut rank: impl FnMut(&str) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(batch)
        .map_err(|error| anyhow::anyhow!("{}: {error}", batch.display()))?;
    // Per-line latency, reported on standard error so that the ids on standard output stay as they are.
    let mut took = Vec::new();
    for (line_number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((query_id, text)) = line.split_once('\t') else {
            eprintln!(
                "{}:{}: expected `qid<TAB>{text_name}`",
                batch.display(),
                line_number + 1
            );
            continue;
        };
        let started = std::time::Instant::now();
        let ranked = rank(text)?;
        took.push(started.elapsed());
        writeln!(out, "{query_id}\t{}", ranked.join(","))?;
    }
    if !took.is_empty() {
        took.sort_unstable();
        let at = |share: f64| {
            let index = ((took.len() as f64 * share).ceil() as usize).clamp(1, took.len()) - 1;
            took[index].as_secs_f64() * 1000.0
        };
        eprintln!(
            "{} {text_name}s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            took.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    Ok(())
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

/// `kefu migrate`: opens the configured store, which creates or upgrades its schema.
pub fn run_migrate(config: &Config) -> anyhow::Result<i32> {
    let store = Store::open_configured(&config.storage, &config.paths.data)?;
    println!("{} store ready", store.backend_name());
    store.close();
    Ok(0)
}

/// `kefu export`: returns the process exit code.
pub fn run_export(config: &Config, args: &ExportArgs) -> anyhow::Result<i32> {
    let store = Store::open_configured(&config.storage, &config.paths.data)?;
    let blobs = store.blobs(&config.paths.data);
    let counts = if args.out == Path::new("-") {
        let stdout = std::io::stdout();
        crate::storage::transfer::export(
            &store,
            &blobs,
            &mut std::io::BufWriter::new(stdout.lock()),
        )?
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?;
        let mut out = std::io::BufWriter::new(file);
        let counts = crate::storage::transfer::export(&store, &blobs, &mut out)?;
        out.into_inner()
            .map_err(|error| anyhow::anyhow!("writing {}: {error}", args.out.display()))?
            .sync_all()?;
        counts
    };
    store.close();
    eprintln!(
        "exported {} records and {} files from the {} store",
        counts.records,
        counts.files,
        store.backend_name()
    );
    Ok(0)
}

/// `kefu import`: returns the process exit code.
pub fn run_import(config: &Config, args: &ImportArgs) -> anyhow::Result<i32> {
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("opening {}", args.file.display()))?;
    let mut store = Store::open_configured(&config.storage, &config.paths.data)?;
    let blobs = store.blobs(&config.paths.data);
    let counts =
        crate::storage::transfer::import(&mut store, &blobs, std::io::BufReader::new(file))
            .with_context(|| format!("importing {}", args.file.display()))?;
    store.close();
    eprintln!(
        "imported {} records and {} files into the {} store",
        counts.records,
        counts.files,
        store.backend_name()
    );
    Ok(0)
}

/// `kefu user`: returns the process exit code.
pub fn run_user(config: &Config, action: &UserAction) -> anyhow::Result<i32> {
    let store = Store::open_configured(&config.storage, &config.paths.data)?;
    let (accounts, bootstrap) = AccountService::open(
        store,
        config.accounts.clone(),
        std::sync::Arc::new(SystemClock),
        Box::new(ImageCaptcha),
    )?;
    crate::app::announce_bootstrap(&bootstrap);
    let operator = Actor {
        username: Some(format!("cli:{}", whoami())),
        ip: None,
    };
    match action {
        UserAction::Add {
            username,
            roles,
            display_name,
            password_stdin,
        } => {
            let password = if *password_stdin {
                Some(read_stdin_line()?)
            } else {
                None
            };
            let new_account = NewAccount {
                username: username.clone(),
                display_name: display_name.clone(),
                password,
                roles: (!roles.is_empty()).then(|| roles.iter().copied().collect()),
                groups: Default::default(),
                max_concurrent: None,
                employee_no: None,
            };
            let (account, generated) = accounts.create_account(new_account, &operator)?;
            println!("created `{}` (id {})", account.username, account.id.0);
            if let Some(password) = generated {
                println!("initial password: {password}  (must be changed at first sign-in)");
            }
        }
        UserAction::Passwd {
            username,
            password_stdin,
        } => {
            let account = find(&accounts, username)?;
            let password = if *password_stdin {
                read_stdin_line()?
            } else {
                let first = rpassword::prompt_password("new password: ")?;
                let again = rpassword::prompt_password("again: ")?;
                anyhow::ensure!(first == again, "the passwords differ");
                first
            };
            accounts.reset_password(account.id, Some(password), &operator)?;
            println!(
                "password of `{}` set; it must be changed at next sign-in",
                account.username
            );
        }
        UserAction::Disable { username } | UserAction::Enable { username } => {
            let account = find(&accounts, username)?;
            let disabled = matches!(action, UserAction::Disable { .. });
            let patch = AccountPatch {
                disabled: Some(disabled),
                ..AccountPatch::default()
            };
            accounts.update_account(account.id, patch, &operator)?;
            let verb = if disabled { "disabled" } else { "enabled" };
            println!("`{}` {verb}", account.username);
        }
        UserAction::List => {
            for account in accounts.list_accounts()? {
                let roles: Vec<&str> = account.roles.iter().map(|role| role.as_str()).collect();
                println!(
                    "{:>4}  {:<20} {:<12} {}{}",
                    account.id.0,
                    account.username,
                    account.display_name,
                    roles.join(","),
                    if account.disabled { "  (disabled)" } else { "" }
                );
            }
        }
    }
    Ok(0)
}

fn find(accounts: &AccountService, username: &str) -> anyhow::Result<crate::domain::Account> {
    accounts
        .account_by_username(username)?
        .ok_or_else(|| anyhow::anyhow!("no account `{username}`"))
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "operator".to_string())
}

/// `kefu suggest`: returns the process exit code.
pub fn run_suggest(config: &Config, args: &SuggestArgs) -> anyhow::Result<i32> {
    use crate::services::assist::{adoption_boost, learned_weight, AdoptedFor};
    use crate::services::assist::{article_suggestions, ranked_articles, suggestion_query};
    let min_confidence = args.min_confidence.unwrap_or(config.search.min_confidence);
    if !(0.0..=1.0).contains(&min_confidence) {
        anyhow::bail!("--min-confidence must be between 0 and 1");
    }
    let index = open_for_search(&config.paths.index)?;
    let analyzer = index.analyzer();
    // Learned adoptions all happen "now": the half-life plays no part in a batch.
    let now = jiff::Timestamp::now();
    let mut adopted: std::collections::HashMap<String, Vec<AdoptedFor>> =
        std::collections::HashMap::new();
    /// The ranking boost of what was adopted so far (as agents' adoptions boost it in the service).
    fn boost(
        adopted: &std::collections::HashMap<String, Vec<AdoptedFor>>,
        now: jiff::Timestamp,
    ) -> impl FnMut(&crate::services::assist::Suggestion, &[String]) -> crate::error::Result<f64> + '_
    {
        move |suggestion, words| {
            let weight = adopted
                .get(&suggestion.id)
                .map_or(0.0, |adoptions| learned_weight(adoptions, words, now));
            Ok(adoption_boost(weight))
        }
    }
    if let Some(feedback) = &args.feedback {
        let text = std::fs::read_to_string(feedback)
            .map_err(|error| anyhow::anyhow!("{}: {error}", feedback.display()))?;
        for line in text.lines() {
            let mut fields = line.split('\t');
            let (Some(_), Some(question), Some(relevant)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let relevant: Vec<&str> = relevant.split(',').map(str::trim).collect();
            let query = suggestion_query(&analyzer, &[question]);
            let words = analyzer.query_words(&query);
            let ranked =
                ranked_articles(&index, &query, args.limit, args.limit, boost(&adopted, now))?;
            for suggestion in ranked {
                if relevant.contains(&suggestion.id.as_str()) {
                    adopted.entry(suggestion.id).or_default().push(AdoptedFor {
                        words: words.clone(),
                        at: now,
                    });
                }
            }
        }
    }
    let suggest = |text: &str| -> anyhow::Result<Vec<crate::services::assist::Suggestion>> {
        Ok(article_suggestions(
            &index,
            text,
            &suggestion_query(&analyzer, &[text]),
            args.limit,
            args.limit,
            min_confidence,
            boost(&adopted, now),
        )?)
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if let Some(batch) = &args.batch {
        answer_batch(batch, "message", &mut out, |text| {
            Ok(suggest(text)?.into_iter().map(|hit| hit.id).collect())
        })?;
    } else {
        let suggestions = suggest(args.message.as_deref().unwrap_or_default())?;
        if suggestions.is_empty() {
            writeln!(out, "no suggestion")?;
        }
        for (rank, suggestion) in suggestions.iter().enumerate() {
            writeln!(
                out,
                "{:>2}. {}  [{}]  score {:.2}  confidence {:.2}\n    {}",
                rank + 1,
                suggestion.title,
                suggestion.id,
                suggestion.score,
                suggestion.confidence,
                suggestion.reply
            )?;
        }
    }
    out.flush()?;
    Ok(0)
}
