//! Which node leads the desk. The leader holds a PostgreSQL session-level advisory lock on a
//! connection of its own; PostgreSQL releases it the moment that connection ends (the process died,
//! the machine or the network went away), and another node takes it within [`POLL`]. Taking over
//! bumps the epoch of the one `kefu_desk_lease` row in a transaction and records the leader's address,
//! which is how the followers learn where to forward desk traffic.
//!
//! A lock proves leadership only while its connection lives, so the leader checks the connection
//! every [`POLL`] and exits when it is lost (a supervisor restarts it as a follower); in the moments
//! before it notices, every desk turn checks the epoch inside its own transaction
//! ([`crate::storage::Store::check_desk_epoch`]), so an old leader cannot write beside a new one.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::Node;

/// Names of the advisory locks, hashed with the schema kefu's tables live in (advisory locks are
/// per database), so that installations in separate schemas of one database elect separately.
/// The first makes a node the desk leader; the second is held while a node opens its services, so
/// that first-start work (the bootstrap account, seeded quick replies) runs on one node at a time.
const LEADER_LOCK: &str = "kefu-desk-leader";
const OPENING_LOCK: &str = "kefu-opening";
/// The advisory lock key of `name` in the current schema.
const LOCK_KEY: &str = "hashtextextended($1 || ':' || current_schema(), 0)";
/// How often followers try the lock and the leader checks its connection.
const POLL: Duration = Duration::from_millis(500);
/// Exit status of a leader that lost its lock: the desk it holds in memory may already be another's.
pub const LOST_LEADERSHIP_EXIT: i32 = 75;

/// This node's part in the desk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not known yet (connecting to PostgreSQL).
    Unknown,
    /// This node leads the desk from this epoch on.
    Leader {
        /// The lease epoch every desk turn checks.
        epoch: i64,
    },
    /// Another node leads (or none yet, while one takes over).
    Follower {
        /// Where to forward desk traffic; `None` while no node holds the lock.
        leader_url: Option<String>,
        /// The leader's node id, for logs and `/readyz`.
        leader_node: Option<String>,
    },
}

/// Starts the election on a thread of its own (rust-postgres' synchronous client) and returns the
/// node's role as it changes.
pub fn start(postgres_url: &str, node: &Node) -> anyhow::Result<watch::Receiver<Role>> {
    let config: postgres::Config = postgres_url
        .parse()
        .context("parsing storage.postgres_url")?;
    let (roles, role) = watch::channel(Role::Unknown);
    let node_id = node.id.clone();
    let url = node.advertise_url.clone();
    std::thread::Builder::new()
        .name("kefu-election".into())
        .spawn(move || run(&config, &node_id, &url, &roles))
        .context("starting the election thread")?;
    Ok(role)
}

/// Holds the opening lock until dropped, on a connection of its own.
pub struct OpeningLock {
    client: Option<postgres::Client>,
}

impl OpeningLock {
    /// Waits for the opening lock (blocking: call off the async workers).
    pub fn acquire(postgres_url: &str) -> anyhow::Result<OpeningLock> {
        let mut client = connect(
            &postgres_url
                .parse()
                .context("parsing storage.postgres_url")?,
        )?;
        client.execute(
            &format!("SELECT pg_advisory_lock({LOCK_KEY})"),
            &[&OPENING_LOCK],
        )?;
        Ok(OpeningLock {
            client: Some(client),
        })
    }
}

impl Drop for OpeningLock {
    fn drop(&mut self) {
        if let Some(mut client) = self.client.take() {
            // rust-postgres' synchronous client must not run on an async worker, where an early
            // return may drop this; closing the session releases the lock in any case.
            std::thread::spawn(move || {
                let _ = client.execute(
                    &format!("SELECT pg_advisory_unlock({LOCK_KEY})"),
                    &[&OPENING_LOCK],
                );
            });
        }
    }
}

fn connect(config: &postgres::Config) -> anyhow::Result<postgres::Client> {
    let mut config = config.clone();
    if config.get_application_name().is_none() {
        config.application_name("kefu-election");
    }
    Ok(config.connect(postgres::NoTls)?)
}

fn run(config: &postgres::Config, node_id: &str, url: &str, roles: &watch::Sender<Role>) {
    let mut client: Option<postgres::Client> = None;
    let mut leading = false;
    loop {
        if roles.is_closed() {
            return;
        }
        let connection = match client.as_mut() {
            Some(connection) => connection,
            None => match connect(config) {
                Ok(connection) => client.insert(connection),
                Err(error) => {
                    tracing::warn!(%error, "election: cannot reach PostgreSQL; retrying");
                    std::thread::sleep(POLL);
                    continue;
                }
            },
        };
        if leading {
            if let Err(error) = connection.simple_query("SELECT 1") {
                // The lock went with the connection: another node may lead already. The desk in
                // this process's memory can no longer be trusted, and new sockets would reach it.
                tracing::error!(%error, "lost the desk leader's lock; exiting so that a supervisor restarts this node as a follower");
                std::process::exit(LOST_LEADERSHIP_EXIT);
            }
        } else {
            match try_lead(connection, node_id, url) {
                Ok(Some(epoch)) => {
                    leading = true;
                    tracing::info!(node = node_id, epoch, "this node leads the desk");
                    roles.send_replace(Role::Leader { epoch });
                }
                Ok(None) => match current_leader(connection) {
                    Ok(follower) => {
                        roles.send_if_modified(|role| {
                            if *role == follower {
                                false
                            } else {
                                if let Role::Follower {
                                    leader_node: Some(leader),
                                    ..
                                } = &follower
                                {
                                    tracing::info!(leader = %leader, "following the desk leader");
                                }
                                *role = follower;
                                true
                            }
                        });
                    }
                    Err(error) => {
                        tracing::warn!(%error, "election: reading the leader failed");
                        client = None;
                    }
                },
                Err(error) => {
                    tracing::warn!(%error, "election: trying the lock failed; reconnecting");
                    client = None;
                }
            }
        }
        std::thread::sleep(POLL);
    }
}

/// Takes the lock if free and, holding it, bumps the epoch: the new epoch, or `None` when another
/// node holds the lock.
fn try_lead(
    client: &mut postgres::Client,
    node_id: &str,
    url: &str,
) -> Result<Option<i64>, postgres::Error> {
    let locked: bool = client
        .query_one(
            &format!("SELECT pg_try_advisory_lock({LOCK_KEY})"),
            &[&LEADER_LOCK],
        )?
        .get(0);
    if !locked {
        return Ok(None);
    }
    // The UPDATE waits for turns of a previous leader still in flight (they read the row FOR
    // SHARE); every later turn of theirs sees the new epoch and fails.
    let epoch: i64 = client
        .query_one(
            "UPDATE kefu_desk_lease SET epoch = epoch + 1, node = $1, url = $2, since = now() \
             WHERE id = 1 RETURNING epoch",
            &[&node_id, &url],
        )?
        .get(0);
    Ok(Some(epoch))
}

/// The leader as the lease row names it; `None` while nobody holds the lock (the row still names the
/// last leader, which may be dead).
fn current_leader(client: &mut postgres::Client) -> Result<Role, postgres::Error> {
    let held: bool = client
        .query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND ((classid::bigint << 32) | objid::bigint) = {LOCK_KEY})"
            ),
            &[&LEADER_LOCK],
        )?
        .get(0);
    if !held {
        return Ok(Role::Follower {
            leader_url: None,
            leader_node: None,
        });
    }
    let row = client.query_one("SELECT node, url FROM kefu_desk_lease WHERE id = 1", &[])?;
    let node: String = row.get(0);
    let url: String = row.get(1);
    Ok(Role::Follower {
        leader_url: (!url.is_empty()).then_some(url),
        leader_node: (!node.is_empty()).then_some(node),
    })
}
