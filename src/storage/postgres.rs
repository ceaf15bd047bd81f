//! The PostgreSQL backend: each kind of record is a table `(key bytea primary key, value bytea)`,
//! so keys sort exactly as in the embedded database and values stay the same JSON bytes; the schema
//! is created by versioned migrations applied at start.
//!
//! The services call the store synchronously (the desk runs its transitions under a lock), so the
//! connections live on their own worker threads: a call sends a job to the next free worker and
//! waits for its answer. That never blocks inside an async runtime's own machinery (the synchronous
//! client would refuse to run there) and bounds the connections to `postgres_connections`.

use std::cell::RefCell;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::{mpsc, Arc};
use std::thread;

use parking_lot::Mutex;
use postgres::{Client, NoTls};

use crate::error::{Error, Result};
use crate::storage::table::Record;

/// Every table, in the order the migrations create them.
pub(crate) const TABLES: &[&str] = &[
    "accounts",
    "usernames",
    "groups",
    "sessions",
    "audit",
    "presence_log",
    "avatars",
    "visitor_tokens",
    "conversations",
    "queue",
    "messages",
    "message_keys",
    "group_routing",
    "files",
    "file_bytes",
    "visitor_uploads",
    "quick_replies",
    "reply_images",
    "reply_usage",
    "assist_feedback",
    "deflection_outcomes",
    "visitors",
    "page_views",
    "blocks",
    "visitor_conversations",
    "webhooks",
    "webhook_deliveries",
    "webhook_queue",
    "stats",
    "meta",
    "channels",
    "channel_visitors",
    "channel_conversations",
    "channel_outbox",
    "channel_cursors",
    "channel_inbox",
];

/// Tables added after the first migration, with the version of the migration that creates them;
/// the first migration creates every other table of [`TABLES`].
const LATER_TABLES: &[(i32, &[&str])] = &[(
    2,
    &[
        "channels",
        "channel_visitors",
        "channel_conversations",
        "channel_outbox",
        "channel_cursors",
        "channel_inbox",
    ],
)];

/// Key of the advisory lock held while migrating, so two nodes starting at once migrate once.
const MIGRATION_LOCK: i64 = 0x6b65_6675_0001;

/// One job for a connection: runs with the worker's client, or with the error that kept it from
/// connecting. The flag says whether the job may ask to be run again on a fresh connection, which it
/// does (answering nothing yet) when it finds its connection lost before anything was done.
type Job = Box<dyn FnMut(std::result::Result<&mut Client, Error>, bool) -> Attempt + Send>;

/// How a job's run ended.
enum Attempt {
    /// Answered (with a result or an error).
    Done,
    /// The connection was found lost; run the job again on a new one.
    ConnectionLost,
}

/// Start of the message of an error that means the connection is gone (closed, or the server ended
/// it), so that a fresh connection may succeed where it failed.
const CONNECTION_LOST: &str = "PostgreSQL: the connection was lost";

fn is_connection_lost<T>(result: &std::result::Result<T, Error>) -> bool {
    matches!(result, Err(Error::Storage(message)) if message.starts_with(CONNECTION_LOST))
}

/// What a worker holding an open transaction is told: run a job in it, or end it.
enum ScopeMessage {
    Job(Box<dyn FnOnce(&mut Client) + Send>),
    End {
        commit: bool,
        done: mpsc::SyncSender<Result<()>>,
    },
}

/// When a transaction's commit returns.
#[derive(Debug, Clone, Copy)]
enum Durability {
    /// After the WAL is flushed (the server's default): what is acknowledged to users.
    WaitForFlush,
    /// Before the WAL is flushed (within `wal_writer_delay`): counters only.
    Relaxed,
}

/// The transaction the current thread is inside, if any: which pool, and its worker's inbox.
struct Scope {
    pool: *const PgPool,
    messages: mpsc::Sender<ScopeMessage>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Connections on worker threads.
#[derive(Debug)]
pub struct PgPool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    url: String,
}

impl PgPool {
    /// Connects `connections` workers to `url` and migrates the schema to this version.
    ///
    /// Fails with [`Error::Storage`] when the server does not answer or refuses the URL.
    pub fn connect(url: &str, connections: usize) -> Result<Arc<PgPool>> {
        let mut config = postgres::Config::from_str(url).map_err(|error| {
            Error::Storage(format!(
                "storage.postgres_url is not a PostgreSQL URL: {error}"
            ))
        })?;
        // Named in pg_stat_activity, unless the URL names it.
        if config.get_application_name().is_none() {
            config.application_name("kefu");
        }
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        // At least two: a desk turn holds one connection for its transaction while other calls go on.
        for number in 0..connections.max(2) {
            let receiver = Arc::clone(&receiver);
            let config = config.clone();
            thread::Builder::new()
                .name(format!("kefu-pg-{number}"))
                .spawn(move || serve_jobs(&config, &receiver))
                .map_err(|error| {
                    Error::Storage(format!("starting a PostgreSQL worker: {error}"))
                })?;
        }
        let pool = Arc::new(PgPool {
            jobs: Mutex::new(Some(sender)),
            url: describe(&config),
        });
        pool.run(|client| {
            client.simple_query("SELECT 1")?;
            Ok(())
        })
        .map_err(|error| {
            Error::Storage(format!("cannot reach PostgreSQL at {}: {error}", pool.url))
        })?;
        pool.run(migrate)?;
        Ok(pool)
    }

    /// Runs `work` on a connection and waits for its answer; inside [`PgPool::in_transaction`] on this
    /// thread, on the transaction's connection, as part of it.
    ///
    /// A call whose connection turns out to be lost (the server restarted, or ended it) runs once
    /// more on a new connection; `work` must therefore be safe to start again, which every caller's
    /// is (reads, upserts, compare-and-swap, whole transactions).
    pub fn run<R: Send + 'static>(
        &self,
        mut work: impl FnMut(&mut Client) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (answer, answered) = mpsc::sync_channel(1);
        let in_scope = SCOPE.with(|scope| {
            scope
                .borrow()
                .as_ref()
                .filter(|scope| std::ptr::eq(scope.pool, self))
                .map(|scope| scope.messages.clone())
        });
        if let Some(messages) = in_scope {
            let answer = answer.clone();
            let job = ScopeMessage::Job(Box::new(move |client| {
                let _ = answer.send(work(client));
            }));
            if messages.send(job).is_err() {
                return Err(Error::Storage(
                    "the PostgreSQL transaction ended mid-call".into(),
                ));
            }
            return answered
                .recv()
                .map_err(|_| Error::Storage("a PostgreSQL worker stopped mid-call".into()))?;
        }
        let job: Job = Box::new(move |client, may_retry| {
            let result = client.and_then(&mut work);
            if may_retry && is_connection_lost(&result) {
                return Attempt::ConnectionLost;
            }
            let _ = answer.send(result);
            Attempt::Done
        });
        self.submit(job)?;
        answered
            .recv()
            .map_err(|_| Error::Storage("a PostgreSQL worker stopped mid-call".into()))?
    }

    /// Hands `job` to the next free worker.
    fn submit(&self, job: Job) -> Result<()> {
        let sent = match &*self.jobs.lock() {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(Error::Storage(
                "the PostgreSQL connections are closed".into(),
            ))
        }
    }

    /// Whether the current thread is inside a transaction of this pool.
    pub fn in_scope(&self) -> bool {
        SCOPE.with(|scope| {
            scope
                .borrow()
                .as_ref()
                .is_some_and(|scope| std::ptr::eq(scope.pool, self))
        })
    }

    /// Runs `work` with every call this thread makes to this pool inside one transaction on one
    /// connection, committed when `work` succeeds and rolled back when it fails: the writes of one
    /// change commit together, with one WAL flush instead of one per write. Nested calls join the
    /// outer transaction.
    pub fn in_transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.transaction_of(Durability::WaitForFlush, work)
    }

    /// As [`PgPool::in_transaction`], committed without waiting for the WAL flush
    /// (`synchronous_commit = off` for this transaction only): for counters whose last moments may be
    /// lost in a crash of the database server (never of kefu, which PostgreSQL survives), and never for
    /// anything acknowledged to a user. The commit stays atomic and ordered.
    pub fn in_relaxed_transaction<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.transaction_of(Durability::Relaxed, work)
    }

    fn transaction_of<T>(
        &self,
        durability: Durability,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if self.in_scope() {
            return work();
        }
        let (messages, inbox) = mpsc::channel::<ScopeMessage>();
        let (begun, begun_answer) = mpsc::sync_channel::<Result<()>>(1);
        // One job holds a worker's connection for the whole transaction, serving the scope's calls.
        let holder: Job = Box::new(move |client, may_retry| {
            let client = match client {
                Ok(client) => client,
                Err(error) => {
                    let _ = begun.send(Err(error));
                    return Attempt::Done;
                }
            };
            let begin = match durability {
                Durability::WaitForFlush => "BEGIN",
                Durability::Relaxed => "BEGIN; SET LOCAL synchronous_commit TO OFF",
            };
            let started = client.batch_execute(begin).map_err(Error::from);
            if may_retry && is_connection_lost(&started) {
                return Attempt::ConnectionLost;
            }
            if let Err(error) = started {
                let _ = begun.send(Err(error));
                return Attempt::Done;
            }
            let _ = begun.send(Ok(()));
            loop {
                match inbox.recv() {
                    Ok(ScopeMessage::Job(job)) => job(client),
                    Ok(ScopeMessage::End { commit, done }) => {
                        let end = if commit { "COMMIT" } else { "ROLLBACK" };
                        let _ = done.send(client.batch_execute(end).map_err(Error::from));
                        return Attempt::Done;
                    }
                    // The scope's thread went away without ending it.
                    Err(_) => {
                        let _ = client.batch_execute("ROLLBACK");
                        return Attempt::Done;
                    }
                }
            }
        });
        self.submit(holder)?;
        begun_answer
            .recv()
            .map_err(|_| Error::Storage("a PostgreSQL worker stopped mid-call".into()))??;
        SCOPE.with(|scope| {
            *scope.borrow_mut() = Some(Scope {
                pool: self,
                messages: messages.clone(),
            })
        });
        // Leaves the scope even if `work` panics, so the thread's later calls run on their own.
        struct Leave;
        impl Drop for Leave {
            fn drop(&mut self) {
                SCOPE.with(|scope| scope.borrow_mut().take());
            }
        }
        let leave = Leave;
        let outcome = work();
        drop(leave);
        let (done, finished) = mpsc::sync_channel(1);
        let end = ScopeMessage::End {
            commit: outcome.is_ok(),
            done,
        };
        let ended = if messages.send(end).is_ok() {
            finished
                .recv()
                .map_err(|_| Error::Storage("a PostgreSQL worker stopped mid-call".into()))
                .and_then(|result| result)
        } else {
            Err(Error::Storage(
                "the PostgreSQL transaction ended early".into(),
            ))
        };
        match outcome {
            Ok(value) => ended.map(|()| value),
            Err(error) => Err(error),
        }
    }

    /// Stops the workers once their jobs are done.
    pub fn close(&self) {
        self.jobs.lock().take();
    }
}

/// A worker: one connection, (re)opened when needed, serving jobs until the pool closes.
fn serve_jobs(config: &postgres::Config, jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut client: Option<Client> = None;
    loop {
        let mut job = match jobs.lock().recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        for attempt in 0..2 {
            if client.as_ref().is_some_and(Client::is_closed) {
                client = None;
            }
            if client.is_none() {
                match config.connect(NoTls) {
                    Ok(connected) => client = Some(connected),
                    Err(error) => {
                        job(Err(Error::from(error)), false);
                        break;
                    }
                }
            }
            let Some(connected) = client.as_mut() else {
                break;
            };
            // A panic inside a job must not take the connection's worker with it.
            let may_retry = attempt == 0;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job(Ok(connected), may_retry)
            }));
            match outcome {
                Ok(Attempt::Done) => break,
                Ok(Attempt::ConnectionLost) => {
                    tracing::warn!("PostgreSQL connection lost; reconnecting");
                    client = None;
                }
                Err(_) => {
                    client = None;
                    break;
                }
            }
        }
    }
}

/// The migrations, in order; each runs once, in its own transaction, under an advisory lock.
fn migrations() -> Vec<(i32, String)> {
    let added_later = |table: &&str| {
        LATER_TABLES
            .iter()
            .any(|(_, tables)| tables.contains(table))
    };
    let mut first = String::from("CREATE SEQUENCE kefu_ids START 1;\n");
    for table in TABLES.iter().filter(|table| !added_later(table)) {
        first.push_str(&format!(
            "CREATE TABLE {table} (key bytea PRIMARY KEY, value bytea NOT NULL);\n"
        ));
    }
    let mut migrations = vec![(1, first)];
    for (version, tables) in LATER_TABLES {
        let sql = tables
            .iter()
            .map(|table| {
                format!("CREATE TABLE {table} (key bytea PRIMARY KEY, value bytea NOT NULL);\n")
            })
            .collect();
        migrations.push((*version, sql));
    }
    // Which node leads the desk of a cluster, and since which epoch (see `cluster::election`); one
    // row, present from the start so that taking over is one UPDATE.
    migrations.push((
        3,
        "CREATE TABLE kefu_desk_lease (id integer PRIMARY KEY CHECK (id = 1), \
         epoch bigint NOT NULL, node text NOT NULL, url text NOT NULL, \
         since timestamptz NOT NULL DEFAULT now());\n\
         INSERT INTO kefu_desk_lease (id, epoch, node, url) VALUES (1, 0, '', '');\n"
            .to_string(),
    ));
    migrations
}

fn migrate(client: &mut Client) -> Result<()> {
    let mut transaction = client.transaction()?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    transaction.batch_execute(
        "CREATE TABLE IF NOT EXISTS kefu_schema (version integer PRIMARY KEY, \
         applied timestamptz NOT NULL DEFAULT now())",
    )?;
    let current: i32 = transaction
        .query_one("SELECT coalesce(max(version), 0) FROM kefu_schema", &[])?
        .get(0);
    let known = migrations();
    let newest = known.last().map_or(0, |(version, _)| *version);
    if current > newest {
        return Err(Error::Storage(format!(
            "the PostgreSQL schema is version {current}, newer than this kefu knows ({newest}); \
             run a newer kefu"
        )));
    }
    for (version, sql) in known {
        if version > current {
            transaction.batch_execute(&sql)?;
            transaction.execute("INSERT INTO kefu_schema (version) VALUES ($1)", &[&version])?;
        }
    }
    transaction.commit()?;
    Ok(())
}

/// Where `config` points, without its password, for messages.
fn describe(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host {} port {} database {}",
        hosts.join(","),
        if ports.is_empty() {
            "5432".to_string()
        } else {
            ports.join(",")
        },
        config.get_dbname().unwrap_or("(the user's)")
    )
}

/// One kind of record in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgTable {
    name: &'static str,
    pool: Arc<PgPool>,
}

impl PgTable {
    pub(crate) fn new(name: &'static str, pool: Arc<PgPool>) -> PgTable {
        PgTable { name, pool }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let sql = format!("SELECT value FROM {} WHERE key = $1", self.name);
        let key = key.to_vec();
        self.pool.run(move |client| {
            Ok(client
                .query_opt(sql.as_str(), &[&key])?
                .map(|row| row.get::<_, Vec<u8>>(0)))
        })
    }

    /// Whether `key` holds a value, without reading the value (file bytes can be megabytes).
    pub(crate) fn contains_key(&self, key: &[u8]) -> Result<bool> {
        let sql = format!("SELECT 1 FROM {} WHERE key = $1", self.name);
        let key = key.to_vec();
        self.pool
            .run(move |client| Ok(client.query_opt(sql.as_str(), &[&key])?.is_some()))
    }

    /// Bytes of every value together, summed by the server.
    pub(crate) fn value_bytes(&self) -> Result<u64> {
        let sql = format!(
            "SELECT coalesce(sum(length(value)), 0)::bigint FROM {}",
            self.name
        );
        self.pool.run(move |client| {
            let bytes: i64 = client.query_one(sql.as_str(), &[])?.get(0);
            Ok(u64::try_from(bytes).unwrap_or(0))
        })
    }

    pub(crate) fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let sql = upsert_sql(self.name);
        let (key, value) = (key.to_vec(), value.to_vec());
        self.pool.run(move |client| {
            client.execute(sql.as_str(), &[&key, &value])?;
            Ok(())
        })
    }

    pub(crate) fn remove(&self, key: &[u8]) -> Result<bool> {
        let sql = format!("DELETE FROM {} WHERE key = $1", self.name);
        let key = key.to_vec();
        self.pool
            .run(move |client| Ok(client.execute(sql.as_str(), &[&key])? > 0))
    }

    pub(crate) fn len(&self) -> Result<usize> {
        let sql = format!("SELECT count(*) FROM {}", self.name);
        self.pool.run(move |client| {
            let count: i64 = client.query_one(sql.as_str(), &[])?.get(0);
            Ok(usize::try_from(count).unwrap_or(0))
        })
    }

    pub(crate) fn clear(&self) -> Result<()> {
        let sql = format!("DELETE FROM {}", self.name);
        self.pool.run(move |client| {
            client.execute(sql.as_str(), &[])?;
            Ok(())
        })
    }

    pub(crate) fn range(
        &self,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        limit: Option<usize>,
        newest_first: bool,
    ) -> Result<Vec<Record>> {
        let mut conditions = Vec::new();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for (bound, inclusive, exclusive) in [(from, ">=", ">"), (to, "<=", "<")] {
            let operator = match &bound {
                Bound::Included(_) => inclusive,
                Bound::Excluded(_) => exclusive,
                Bound::Unbounded => continue,
            };
            if let Bound::Included(key) | Bound::Excluded(key) = bound {
                keys.push(key);
                conditions.push(format!("key {operator} ${}", keys.len()));
            }
        }
        let mut sql = format!("SELECT key, value FROM {}", self.name);
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(if newest_first {
            " ORDER BY key DESC"
        } else {
            " ORDER BY key"
        });
        if let Some(limit) = limit {
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        self.pool.run(move |client| {
            let parameters: Vec<&(dyn postgres::types::ToSql + Sync)> = keys
                .iter()
                .map(|key| key as &(dyn postgres::types::ToSql + Sync))
                .collect();
            Ok(client
                .query(sql.as_str(), &parameters)?
                .into_iter()
                .map(|row| (row.get::<_, Vec<u8>>(0), row.get::<_, Vec<u8>>(1)))
                .collect())
        })
    }

    pub(crate) fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool> {
        let name = self.name;
        let (key, old, new) = (
            key.to_vec(),
            old.map(<[u8]>::to_vec),
            new.map(<[u8]>::to_vec),
        );
        self.pool.run(move |client| {
            let changed = match (&old, &new) {
                (None, None) => client
                    .query_opt(
                        format!("SELECT 1 FROM {name} WHERE key = $1").as_str(),
                        &[&key],
                    )?
                    .is_none() as u64,
                (None, Some(new)) => client.execute(
                    format!(
                        "INSERT INTO {name} (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"
                    )
                    .as_str(),
                    &[&key, &new],
                )?,
                (Some(old), Some(new)) => client.execute(
                    format!("UPDATE {name} SET value = $3 WHERE key = $1 AND value = $2").as_str(),
                    &[&key, &old, &new],
                )?,
                (Some(old), None) => client.execute(
                    format!("DELETE FROM {name} WHERE key = $1 AND value = $2").as_str(),
                    &[&key, &old],
                )?,
            };
            Ok(changed == 1)
        })
    }
}

/// `INSERT … ON CONFLICT UPDATE` for `table`.
pub(crate) fn upsert_sql(table: &str) -> String {
    format!(
        "INSERT INTO {table} (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
    )
}

impl From<postgres::Error> for Error {
    fn from(error: postgres::Error) -> Error {
        use postgres::error::SqlState;
        let ended_by_server = error.code().is_some_and(|code| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
            ]
            .contains(code)
        });
        let broken_socket =
            std::error::Error::source(&error).is_some_and(|source| source.is::<std::io::Error>());
        if error.is_closed() || ended_by_server || broken_socket {
            return Error::Storage(format!("{CONNECTION_LOST}: {error}"));
        }
        match error.as_db_error() {
            Some(db) => Error::Storage(format!(
                "PostgreSQL: {}: {}",
                db.code().code(),
                db.message()
            )),
            None => Error::Storage(format!("PostgreSQL: {error}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test server (`KEFU_TEST_POSTGRES_URL`); `None` with a note when unset, a failure under CI.
    fn server_url() -> Option<String> {
        match std::env::var("KEFU_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var_os("CI").is_some() => {
                panic!("KEFU_TEST_POSTGRES_URL is unset under CI")
            }
            _ => {
                eprintln!(
                    "skipped: KEFU_TEST_POSTGRES_URL is unset (no PostgreSQL to test against)"
                );
                None
            }
        }
    }

    fn setting(pool: &PgPool) -> String {
        pool.run(|client| {
            Ok(client
                .query_one("SHOW synchronous_commit", &[])?
                .get::<_, String>(0))
        })
        .unwrap()
    }

    #[test]
    fn only_relaxed_units_commit_without_waiting_for_the_flush() {
        let Some(server) = server_url() else {
            return;
        };
        let schema = format!("kefu_unit_{}_{}", std::process::id(), rand::random::<u32>());
        let admin_url = server.clone();
        let create = format!("CREATE SCHEMA {schema}");
        thread::spawn(move || {
            let mut client = Client::connect(&admin_url, NoTls).unwrap();
            client.batch_execute(&create).unwrap();
        })
        .join()
        .unwrap();
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{schema}");
        let pool = PgPool::connect(&url, 2).unwrap();
        assert_eq!(setting(&pool), "on");
        assert_eq!(
            pool.in_relaxed_transaction(|| Ok(setting(&pool))).unwrap(),
            "off"
        );
        // SET LOCAL ends with its transaction: the connection is back to the default.
        for _ in 0..4 {
            assert_eq!(setting(&pool), "on");
        }
        assert_eq!(pool.in_transaction(|| Ok(setting(&pool))).unwrap(), "on");
        pool.close();
        let drop_schema = format!("DROP SCHEMA {schema} CASCADE");
        thread::spawn(move || {
            let mut client = Client::connect(&server, NoTls).unwrap();
            client.batch_execute(&drop_schema).unwrap();
        })
        .join()
        .unwrap();
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    #[test]
    fn the_migrations_create_every_table_once_in_increasing_versions() {
        let migrations = migrations();
        let versions: Vec<i32> = migrations.iter().map(|(version, _)| *version).collect();
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "{versions:?}"
        );
        let all_sql: String = migrations.into_iter().map(|(_, sql)| sql).collect();
        for table in TABLES {
            let statement = format!("CREATE TABLE {table} (");
            assert_eq!(all_sql.matches(&statement).count(), 1, "{table}");
        }
    }
}
