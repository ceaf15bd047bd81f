//! [`UnitOfWork`]: how a service makes several writes commit together, and durable, without knowing
//! which database holds them.
//!
//! On PostgreSQL a unit is one transaction: every repository call the thread makes inside
//! [`UnitOfWork::run`] joins it, and it commits (one WAL flush) or rolls back as a whole. On sled the
//! writes go to its log in the order made (a crash leaves a prefix of them, so services order writes
//! such that any prefix is safe), and [`UnitOfWork::make_durable`] flushes the log.

use crate::error::Result;
use crate::storage::Store;

/// Runs a service's writes as one unit, and makes them durable.
#[derive(Debug, Clone)]
pub struct UnitOfWork {
    store: Store,
}

impl UnitOfWork {
    /// Units of work on `store`.
    pub fn new(store: &Store) -> UnitOfWork {
        UnitOfWork {
            store: store.clone(),
        }
    }

    /// Runs `work` as one unit: committed together when it succeeds, rolled back when it fails
    /// (PostgreSQL); nested units join the outer one. See [`Store::in_transaction`].
    pub fn run<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.store.in_transaction(work)
    }

    /// As [`UnitOfWork::run`], for counters only: the commit does not wait for PostgreSQL's WAL flush.
    /// See [`Store::in_relaxed_transaction`].
    pub fn run_relaxed<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<T> {
        self.store.in_relaxed_transaction(work)
    }

    /// Makes every write so far durable, before acknowledging a change the user must not lose. A
    /// no-op on PostgreSQL, where a unit is durable once committed.
    pub fn make_durable(&self) -> Result<()> {
        self.store.flush()
    }
}
