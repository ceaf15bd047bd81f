//! Staff accounts behind three traits: [`AccountRepository`] (accounts with their unique usernames,
//! skill groups and their routing settings, avatars, the presence log), [`SessionRepository`]
//! (signed-in sessions) and [`AuditRepository`] (the security log). [`StoredAccounts`] keeps them all
//! in the store's tables.
//!
//! Keys, unchanged since these were first stored (ids and sequences big-endian, so keys sort by them):
//! - `accounts`: account id → `Account`; `usernames`: lower-cased username → account id (8 bytes);
//! - `groups`: group id → `SkillGroup`; `group_routing`: group id → `GroupRouting`;
//! - `avatars`: account id → the image's bytes;
//! - `presence_log`: sequence → `PresenceChange`; `audit`: sequence → `AuditEntry`;
//! - `sessions`: BLAKE3 hash of the session token → `SessionRecord`, so a copy of the database holds
//!   no usable session.

use std::ops::Bound;

use crate::domain::{
    Account, AccountId, AuditEntry, GroupId, GroupRouting, PresenceChange, SessionRecord,
    SkillGroup,
};
use crate::error::{Error, Result};
use crate::storage::{self, id_key, Store};

/// Where accounts, skill groups, avatars and the presence log live.
pub trait AccountRepository: Send + Sync + std::fmt::Debug {
    /// A fresh account or group id.
    fn new_id(&self) -> Result<u64>;
    /// Whether any account exists (one key read).
    fn has_accounts(&self) -> Result<bool>;
    /// Every account, in id order.
    fn accounts(&self) -> Result<Vec<Account>>;
    /// One account.
    fn account(&self, id: AccountId) -> Result<Option<Account>>;
    /// The id of the account holding `username` (compared lower-cased).
    ///
    /// Fails with [`Error::Storage`] when the index entry is not an id.
    fn account_id_by_username(&self, username: &str) -> Result<Option<AccountId>>;
    /// Takes `username` (lower-cased) for `account` unless an account holds it already: atomic, so two
    /// creations of one name never both succeed. Returns whether it was free.
    fn claim_username(&self, username: &str, account: AccountId) -> Result<bool>;
    /// Writes an account (insert or replace).
    fn put_account(&self, account: &Account) -> Result<()>;
    /// Every skill group, in id order.
    fn groups(&self) -> Result<Vec<SkillGroup>>;
    /// One skill group.
    fn group(&self, id: GroupId) -> Result<Option<SkillGroup>>;
    /// Writes a skill group (insert or replace).
    fn put_group(&self, group: &SkillGroup) -> Result<()>;
    /// A group's routing settings, when ever set.
    fn group_routing(&self, group: GroupId) -> Result<Option<GroupRouting>>;
    /// Writes a group's routing settings.
    fn put_group_routing(&self, group: GroupId, routing: &GroupRouting) -> Result<()>;
    /// Stores an account's avatar image.
    fn put_avatar(&self, account: AccountId, bytes: &[u8]) -> Result<()>;
    /// An account's avatar image.
    fn avatar(&self, account: AccountId) -> Result<Option<Vec<u8>>>;
    /// Appends a presence change to the log.
    fn append_presence_change(&self, change: &PresenceChange) -> Result<()>;
    /// The presence log, oldest first.
    fn presence_changes(&self) -> Result<Vec<PresenceChange>>;
}

/// Where signed-in sessions live, by the hash of their token.
pub trait SessionRepository: Send + Sync + std::fmt::Debug {
    /// Writes the session of `token` (insert or replace).
    fn put_session(&self, token: &str, session: &SessionRecord) -> Result<()>;
    /// The session of `token`.
    fn session(&self, token: &str) -> Result<Option<SessionRecord>>;
    /// Ends the session of `token`.
    fn remove_session(&self, token: &str) -> Result<()>;
    /// Every session.
    fn sessions(&self) -> Result<Vec<SessionRecord>>;
    /// Ends every session `ends` picks; returns how many.
    fn remove_sessions_where(&self, ends: &dyn Fn(&SessionRecord) -> bool) -> Result<usize>;
}

/// Where the audit log lives.
pub trait AuditRepository: Send + Sync + std::fmt::Debug {
    /// A fresh sequence number for an entry: later entries get greater ones.
    fn next_seq(&self) -> Result<u64>;
    /// Appends an entry under its `seq`.
    fn append(&self, entry: &AuditEntry) -> Result<()>;
    /// At most `limit` entries with a `seq` below `before` (all when `None`), newest first.
    fn entries_before(&self, before: Option<u64>, limit: usize) -> Result<Vec<AuditEntry>>;
}

/// [`AccountRepository`], [`SessionRepository`] and [`AuditRepository`] in the store's tables.
#[derive(Debug, Clone)]
pub struct StoredAccounts {
    store: Store,
}

impl StoredAccounts {
    /// Accounts in `store`.
    pub fn new(store: &Store) -> StoredAccounts {
        StoredAccounts {
            store: store.clone(),
        }
    }
}

/// Storage key of a token: its BLAKE3 hash.
fn token_key(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

impl AccountRepository for StoredAccounts {
    fn new_id(&self) -> Result<u64> {
        self.store.next_id()
    }

    fn has_accounts(&self) -> Result<bool> {
        Ok(!self.store.accounts.is_empty()?)
    }

    fn accounts(&self) -> Result<Vec<Account>> {
        storage::scan_json(&self.store.accounts)
    }

    fn account(&self, id: AccountId) -> Result<Option<Account>> {
        storage::get_json(&self.store.accounts, id_key(id.0))
    }

    fn account_id_by_username(&self, username: &str) -> Result<Option<AccountId>> {
        let Some(id) = self.store.usernames.get(username.to_lowercase())? else {
            return Ok(None);
        };
        let id = id
            .as_slice()
            .try_into()
            .map_err(|_| Error::Storage(format!("username index of `{username}` is corrupt")))?;
        Ok(Some(AccountId(u64::from_be_bytes(id))))
    }

    fn claim_username(&self, username: &str, account: AccountId) -> Result<bool> {
        self.store.usernames.compare_and_swap(
            username.to_lowercase().as_bytes(),
            None,
            Some(&id_key(account.0)[..]),
        )
    }

    fn put_account(&self, account: &Account) -> Result<()> {
        storage::put_json(&self.store.accounts, id_key(account.id.0), account)
    }

    fn groups(&self) -> Result<Vec<SkillGroup>> {
        storage::scan_json(&self.store.groups)
    }

    fn group(&self, id: GroupId) -> Result<Option<SkillGroup>> {
        storage::get_json(&self.store.groups, id_key(id.0))
    }

    fn put_group(&self, group: &SkillGroup) -> Result<()> {
        storage::put_json(&self.store.groups, id_key(group.id.0), group)
    }

    fn group_routing(&self, group: GroupId) -> Result<Option<GroupRouting>> {
        storage::get_json(&self.store.group_routing, id_key(group.0))
    }

    fn put_group_routing(&self, group: GroupId, routing: &GroupRouting) -> Result<()> {
        storage::put_json(&self.store.group_routing, id_key(group.0), routing)
    }

    fn put_avatar(&self, account: AccountId, bytes: &[u8]) -> Result<()> {
        self.store.avatars.insert(id_key(account.0), bytes)
    }

    fn avatar(&self, account: AccountId) -> Result<Option<Vec<u8>>> {
        self.store.avatars.get(id_key(account.0))
    }

    fn append_presence_change(&self, change: &PresenceChange) -> Result<()> {
        let seq = self.store.next_id()?;
        storage::put_json(&self.store.presence_log, id_key(seq), change)
    }

    fn presence_changes(&self) -> Result<Vec<PresenceChange>> {
        storage::scan_json(&self.store.presence_log)
    }
}

impl SessionRepository for StoredAccounts {
    fn put_session(&self, token: &str, session: &SessionRecord) -> Result<()> {
        storage::put_json(&self.store.sessions, token_key(token), session)
    }

    fn session(&self, token: &str) -> Result<Option<SessionRecord>> {
        storage::get_json(&self.store.sessions, token_key(token))
    }

    fn remove_session(&self, token: &str) -> Result<()> {
        self.store.sessions.remove(token_key(token))?;
        Ok(())
    }

    fn sessions(&self) -> Result<Vec<SessionRecord>> {
        storage::scan_json(&self.store.sessions)
    }

    fn remove_sessions_where(&self, ends: &dyn Fn(&SessionRecord) -> bool) -> Result<usize> {
        let mut removed = 0;
        for (key, value) in self.store.sessions.iter()? {
            let session: SessionRecord = storage::decode(&value)?;
            if ends(&session) {
                self.store.sessions.remove(key)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

impl AuditRepository for StoredAccounts {
    fn next_seq(&self) -> Result<u64> {
        self.store.next_id()
    }

    fn append(&self, entry: &AuditEntry) -> Result<()> {
        storage::put_json(&self.store.audit, id_key(entry.seq), entry)
    }

    fn entries_before(&self, before: Option<u64>, limit: usize) -> Result<Vec<AuditEntry>> {
        let upper = match before {
            Some(before) => Bound::Excluded(id_key(before).to_vec()),
            None => Bound::Unbounded,
        };
        self.store
            .audit
            .range_limited(Bound::Unbounded, upper, Some(limit), true)?
            .into_iter()
            .map(|(_, value)| storage::decode(&value))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AuditKind;
    use jiff::Timestamp;

    fn session(id: &str, account: u64) -> SessionRecord {
        SessionRecord {
            id: id.into(),
            account: AccountId(account),
            csrf_token: "csrf".into(),
            created: Timestamp::UNIX_EPOCH,
            last_seen: Timestamp::UNIX_EPOCH,
            ip: None,
            user_agent: None,
        }
    }

    #[test]
    fn a_username_is_claimed_once_whatever_its_case() {
        let store = Store::temporary().unwrap();
        let accounts = StoredAccounts::new(&store);
        assert!(accounts.claim_username("XiaoMei", AccountId(1)).unwrap());
        assert!(!accounts.claim_username("xiaomei", AccountId(2)).unwrap());
        assert_eq!(
            accounts.account_id_by_username("XIAOMEI").unwrap(),
            Some(AccountId(1))
        );
        assert_eq!(accounts.account_id_by_username("ben").unwrap(), None);
    }

    #[test]
    fn sessions_are_found_by_their_token_only_and_ended_by_rule() {
        let store = Store::temporary().unwrap();
        let sessions = StoredAccounts::new(&store);
        sessions.put_session("token-a", &session("a", 1)).unwrap();
        sessions.put_session("token-b", &session("b", 1)).unwrap();
        sessions.put_session("token-c", &session("c", 2)).unwrap();
        assert_eq!(sessions.session("token-a").unwrap().unwrap().id, "a");
        // The hash is the key: the public id finds nothing.
        assert!(sessions.session("a").unwrap().is_none());
        let ended = sessions
            .remove_sessions_where(&|record| record.account == AccountId(1) && record.id != "b")
            .unwrap();
        assert_eq!(ended, 1);
        let mut left: Vec<String> = sessions
            .sessions()
            .unwrap()
            .into_iter()
            .map(|record| record.id)
            .collect();
        left.sort();
        assert_eq!(left, ["b", "c"]);
        sessions.remove_session("token-c").unwrap();
        assert!(sessions.session("token-c").unwrap().is_none());
    }

    #[test]
    fn audit_pages_go_newest_first_below_a_sequence() {
        let store = Store::temporary().unwrap();
        let audit = StoredAccounts::new(&store);
        let mut seqs = Vec::new();
        for _ in 0..5 {
            let seq = audit.next_seq().unwrap();
            seqs.push(seq);
            audit
                .append(&AuditEntry {
                    seq,
                    at: Timestamp::UNIX_EPOCH,
                    kind: AuditKind::Logout,
                    account: "admin".into(),
                    actor: None,
                    ip: None,
                    detail: String::new(),
                })
                .unwrap();
        }
        let page: Vec<u64> = audit
            .entries_before(None, 2)
            .unwrap()
            .iter()
            .map(|entry| entry.seq)
            .collect();
        assert_eq!(page, [seqs[4], seqs[3]]);
        let next: Vec<u64> = audit
            .entries_before(Some(seqs[3]), 10)
            .unwrap()
            .iter()
            .map(|entry| entry.seq)
            .collect();
        assert_eq!(next, [seqs[2], seqs[1], seqs[0]]);
    }
}
