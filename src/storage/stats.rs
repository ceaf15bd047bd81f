//! Statistics behind [`StatsRepository`]: hourly tallies per scope and running counts of open work.
//! [`StoredStats`] keeps them in the `stats` table.
//!
//! Keys, unchanged since these were first stored (a scope is `t`, `a` + agent id, `g` + group id, or
//! `c` + channel label; ids big-endian):
//! - hour (UTC hours since the epoch, 8 bytes big-endian), scope → `Tally`: hour-major, so one ordered
//!   scan reads every scope of a range of hours;
//! - `pending:`, scope → `Pending`; `pending:`, agent scope, group scope → the agent's unwritten
//!   wrap-ups in that group.

use std::ops::Bound;

use crate::domain::stats::{Pending, Scope, Tally};
use crate::domain::{AccountId, GroupId};
use crate::error::Result;
use crate::storage::{self, Store};

/// Key prefix of the running counts of open work (hour keys are 8 bytes; this one is longer).
const PENDING_PREFIX: &[u8] = b"pending:";
/// Bytes of an agent's or a group's scope key.
const ID_SCOPE_KEY_LEN: usize = 9;

/// Where a running count of open work is kept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PendingSlot {
    /// The count of a scope; an agent's holds their unwritten wrap-ups of conversations without a
    /// group.
    Scope(Scope),
    /// An agent's unwritten wrap-ups of conversations of a group.
    AgentInGroup(AccountId, GroupId),
}

/// Where the statistics live.
pub trait StatsRepository: Send + Sync + std::fmt::Debug {
    /// Changes the tally of `scope` in `hour` (UTC hours since the epoch) atomically: nodes sharing
    /// one database never lose each other's counts. `change` may run more than once.
    fn change_tally(&self, hour: i64, scope: &Scope, change: &dyn Fn(&mut Tally)) -> Result<()>;
    /// The tallies of the hours from `first_hour` to before `end_hour`, hour-major, of the scopes
    /// `wanted` accepts (the others are skipped without being decoded).
    fn tallies(
        &self,
        first_hour: i64,
        end_hour: i64,
        wanted: &dyn Fn(&Scope) -> bool,
    ) -> Result<Vec<(i64, Scope, Tally)>>;
    /// Changes a running count atomically, as [`StatsRepository::change_tally`].
    fn change_pending(&self, slot: &PendingSlot, change: &dyn Fn(&mut Pending)) -> Result<()>;
    /// One running count (zero when never counted).
    fn pending(&self, slot: &PendingSlot) -> Result<Pending>;
    /// Every running count.
    fn pending_counts(&self) -> Result<Vec<(PendingSlot, Pending)>>;
}

/// [`StatsRepository`] in the store's `stats` table.
#[derive(Debug, Clone)]
pub struct StoredStats {
    store: Store,
}

impl StoredStats {
    /// Statistics in `store`.
    pub fn new(store: &Store) -> StoredStats {
        StoredStats {
            store: store.clone(),
        }
    }
}

fn scope_key(scope: &Scope) -> Vec<u8> {
    match scope {
        Scope::Team => vec![b't'],
        Scope::Agent(id) => [&[b'a'][..], &id.0.to_be_bytes()].concat(),
        Scope::Group(id) => [&[b'g'][..], &id.0.to_be_bytes()].concat(),
        Scope::Channel(label) => [&[b'c'][..], label.as_bytes()].concat(),
    }
}

fn scope_from_key(bytes: &[u8]) -> Option<Scope> {
    let id = |rest: &[u8]| rest.try_into().ok().map(u64::from_be_bytes);
    match bytes.split_first()? {
        (b't', []) => Some(Scope::Team),
        (b'a', rest) => id(rest).map(|id| Scope::Agent(AccountId(id))),
        (b'g', rest) => id(rest).map(|id| Scope::Group(GroupId(id))),
        (b'c', rest) if !rest.is_empty() => std::str::from_utf8(rest)
            .ok()
            .map(|label| Scope::Channel(label.to_string())),
        _ => None,
    }
}

fn pending_key(slot: &PendingSlot) -> Vec<u8> {
    match slot {
        PendingSlot::Scope(scope) => [PENDING_PREFIX, &scope_key(scope)].concat(),
        PendingSlot::AgentInGroup(agent, group) => [
            PENDING_PREFIX,
            &scope_key(&Scope::Agent(*agent)),
            &scope_key(&Scope::Group(*group)),
        ]
        .concat(),
    }
}

/// The slot of a pending key without its prefix.
fn pending_slot_from_key(key: &[u8]) -> Option<PendingSlot> {
    if let Some(scope) = scope_from_key(key) {
        return Some(PendingSlot::Scope(scope));
    }
    if key.len() != 2 * ID_SCOPE_KEY_LEN {
        return None;
    }
    let (agent, group) = key.split_at(ID_SCOPE_KEY_LEN);
    match (scope_from_key(agent)?, scope_from_key(group)?) {
        (Scope::Agent(agent), Scope::Group(group)) => Some(PendingSlot::AgentInGroup(agent, group)),
        _ => None,
    }
}

impl StatsRepository for StoredStats {
    fn change_tally(&self, hour: i64, scope: &Scope, change: &dyn Fn(&mut Tally)) -> Result<()> {
        let key = [&hour.to_be_bytes()[..], &scope_key(scope)].concat();
        storage::update_json(&self.store.stats, key, |tally: &mut Tally| change(tally))?;
        Ok(())
    }

    fn tallies(
        &self,
        first_hour: i64,
        end_hour: i64,
        wanted: &dyn Fn(&Scope) -> bool,
    ) -> Result<Vec<(i64, Scope, Tally)>> {
        let records = self.store.stats.range(
            Bound::Included(first_hour.to_be_bytes().to_vec()),
            Bound::Excluded(end_hour.to_be_bytes().to_vec()),
        )?;
        records
            .into_iter()
            .filter_map(|(key, value)| {
                let hour = i64::from_be_bytes(key.get(..8)?.try_into().ok()?);
                let scope = scope_from_key(&key[8..]).filter(|scope| wanted(scope))?;
                Some(storage::decode::<Tally>(&value).map(|tally| (hour, scope, tally)))
            })
            .collect()
    }

    fn change_pending(&self, slot: &PendingSlot, change: &dyn Fn(&mut Pending)) -> Result<()> {
        storage::update_json(
            &self.store.stats,
            pending_key(slot),
            |pending: &mut Pending| change(pending),
        )?;
        Ok(())
    }

    fn pending(&self, slot: &PendingSlot) -> Result<Pending> {
        Ok(storage::get_json(&self.store.stats, pending_key(slot))?.unwrap_or_default())
    }

    fn pending_counts(&self) -> Result<Vec<(PendingSlot, Pending)>> {
        let mut counts = Vec::new();
        for (key, value) in self.store.stats.scan_prefix(PENDING_PREFIX)? {
            let Some(slot) = pending_slot_from_key(&key[PENDING_PREFIX.len()..]) else {
                continue;
            };
            counts.push((slot, storage::decode(&value)?));
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats() -> (tempfile::TempDir, StoredStats) {
        let folder = tempfile::tempdir().unwrap();
        let store = Store::open(folder.path()).unwrap();
        (folder, StoredStats::new(&store))
    }

    #[test]
    fn tallies_changed_from_several_threads_lose_no_count() {
        let (_folder, stats) = stats();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        stats
                            .change_tally(10, &Scope::Team, &|tally| tally.received += 1)
                            .unwrap();
                    }
                });
            }
        });
        let tallies = stats.tallies(10, 11, &|_| true).unwrap();
        assert_eq!(tallies.len(), 1);
        assert_eq!(tallies[0].2.received, 400);
    }

    #[test]
    fn a_range_of_hours_reads_the_wanted_scopes_hour_major() {
        let (_folder, stats) = stats();
        let add = |tally: &mut Tally| tally.accepted += 1;
        for hour in [9, 10, 11, 12] {
            stats.change_tally(hour, &Scope::Team, &add).unwrap();
            stats
                .change_tally(hour, &Scope::Channel("web".into()), &add)
                .unwrap();
        }
        let read = stats
            .tallies(10, 12, &|scope| matches!(scope, Scope::Channel(_)))
            .unwrap();
        let hours: Vec<(i64, Scope)> = read
            .into_iter()
            .map(|(hour, scope, _)| (hour, scope))
            .collect();
        assert_eq!(
            hours,
            [
                (10, Scope::Channel("web".into())),
                (11, Scope::Channel("web".into()))
            ]
        );
    }

    #[test]
    fn pending_counts_keep_an_agents_groups_apart() {
        let (_folder, stats) = stats();
        let (amy, invoices) = (AccountId(1), GroupId(8));
        let add = |pending: &mut Pending| pending.wrap_ups += 1;
        stats
            .change_pending(&PendingSlot::Scope(Scope::Agent(amy)), &add)
            .unwrap();
        stats
            .change_pending(&PendingSlot::AgentInGroup(amy, invoices), &add)
            .unwrap();
        stats
            .change_pending(&PendingSlot::AgentInGroup(amy, invoices), &add)
            .unwrap();
        assert_eq!(
            stats
                .pending(&PendingSlot::AgentInGroup(amy, invoices))
                .unwrap()
                .wrap_ups,
            2
        );
        let mut counts = stats.pending_counts().unwrap();
        counts.sort_by_key(|(_, pending)| pending.wrap_ups);
        assert_eq!(
            counts,
            [
                (
                    PendingSlot::Scope(Scope::Agent(amy)),
                    Pending {
                        wrap_ups: 1,
                        offline_messages: 0
                    }
                ),
                (
                    PendingSlot::AgentInGroup(amy, invoices),
                    Pending {
                        wrap_ups: 2,
                        offline_messages: 0
                    }
                ),
            ]
        );
    }
}
