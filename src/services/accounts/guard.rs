//! Failed sign-in counters that protect accounts without handing anyone a way to lock their owner out.
//!
//! Three counters, all in memory, each forgotten `window` after its last failure and each in a map of
//! bounded size:
//! - per username, from any address: past `captcha_after` failures the username needs a captcha, so
//!   guessing from many addresses costs a solved captcha per guess;
//! - per (username, address): past `pair_limit` failures that address may not try that username until
//!   the window has passed;
//! - per address: past `address_limit` failures (any usernames) that address may not sign in at all
//!   until the window has passed.
//!
//! Nothing locks a username as such: the owner, from an address that did not fail, with the right
//! password and a solved captcha, always gets in. IPv6 addresses are counted per /64, the block one
//! client usually holds. Usernames are kept as BLAKE3 hashes, so a long name costs 32 bytes.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};

use jiff::{SignedDuration, Timestamp};

/// Most usernames, (username, address) pairs and addresses tracked at once. When a map is full, expired
/// entries go first, then the entry whose last failure is oldest (so filling the map needs that many
/// fresh failures, which the per-address limit and rate limit make slow).
const MAX_TRACKED: usize = 100_000;

/// How a client address is counted: an IPv6 address by its /64; `None` when the address is unknown
/// (in-process callers), which is counted as one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct AddressKey(Option<IpAddr>);

impl AddressKey {
    pub(super) fn of(ip: Option<IpAddr>) -> AddressKey {
        AddressKey(ip.map(|ip| match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let prefix = u128::from(v6) & (u128::MAX << 64);
                    IpAddr::V6(Ipv6Addr::from(prefix))
                }
            },
        }))
    }
}

type UsernameKey = [u8; 32];

fn username_key(username: &str) -> UsernameKey {
    *blake3::hash(username.as_bytes()).as_bytes()
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Timestamp,
    /// Sign-ins under way from this address (per-address counter only): counted against the limit, so
    /// parallel guesses at different usernames cannot all pass the check before one failure is counted.
    in_flight: u32,
}

/// A map of failure counters that never grows past [`MAX_TRACKED`].
#[derive(Debug)]
struct Counters<K> {
    entries: HashMap<K, Failures>,
}

impl<K: Eq + Hash + Clone> Counters<K> {
    fn new() -> Counters<K> {
        Counters {
            entries: HashMap::new(),
        }
    }

    /// Failures within the window (0 once the window after the last failure has passed).
    fn count(&self, key: &K, now: Timestamp, window: SignedDuration) -> u32 {
        self.entries
            .get(key)
            .filter(|failures| !expired(failures, now, window))
            .map_or(0, |failures| failures.count)
    }

    fn entry(&mut self, key: K, now: Timestamp, window: SignedDuration) -> &mut Failures {
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_TRACKED {
            self.make_room(now, window);
        }
        let failures = self.entries.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            in_flight: 0,
        });
        if expired(failures, now, window) {
            failures.count = 0;
        }
        failures
    }

    fn make_room(&mut self, now: Timestamp, window: SignedDuration) {
        self.retain_recent(now, window);
        if self.entries.len() < MAX_TRACKED {
            return;
        }
        let oldest = self
            .entries
            .iter()
            .filter(|(_, failures)| failures.in_flight == 0)
            .min_by_key(|(_, failures)| failures.last)
            .map(|(key, _)| key.clone());
        if let Some(oldest) = oldest {
            self.entries.remove(&oldest);
        }
    }

    fn retain_recent(&mut self, now: Timestamp, window: SignedDuration) {
        self.entries
            .retain(|_, failures| !removable(failures, now, window));
    }
}

/// Whether the window after the last failure has passed: the failures no longer count.
fn expired(failures: &Failures, now: Timestamp, window: SignedDuration) -> bool {
    now.duration_since(failures.last) >= window
}

/// Whether an entry can go: expired, and no sign-in under way holds on to it.
fn removable(failures: &Failures, now: Timestamp, window: SignedDuration) -> bool {
    failures.in_flight == 0 && expired(failures, now, window)
}

/// The limits, from `[accounts]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Failures of a username (from anywhere) after which it needs a captcha.
    pub captcha_after: u32,
    /// Failures of one username from one address that lock that pair.
    pub pair_limit: u32,
    /// Failures from one address (any usernames) that lock the address.
    pub address_limit: u32,
    /// How long failures are remembered after the last one, and so how long a lock lasts.
    pub window: SignedDuration,
}

/// Why a sign-in may not even be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// This address failed too often for this username, or for any usernames: locked until then.
    Locked(Timestamp),
    /// As many sign-ins from this address are under way as it has failures left.
    Busy,
}

#[derive(Debug)]
struct Tables {
    usernames: Counters<UsernameKey>,
    pairs: Counters<(UsernameKey, AddressKey)>,
    addresses: Counters<AddressKey>,
}

/// The counters; see the module docs.
#[derive(Debug)]
pub(super) struct SignInGuard {
    limits: Limits,
    tables: Mutex<Tables>,
}

impl SignInGuard {
    pub(super) fn new(limits: Limits) -> SignInGuard {
        SignInGuard {
            limits,
            tables: Mutex::new(Tables {
                usernames: Counters::new(),
                pairs: Counters::new(),
                addresses: Counters::new(),
            }),
        }
    }

    fn tables(&self) -> parking_lot::MutexGuard<'_, Tables> {
        // parking_lot locks do not poison: the counters stay usable whatever a panic left half done.
        self.tables.lock()
    }

    /// Checks the locks of `address` and of (`username`, `address`) and, when neither holds, counts a
    /// sign-in under way from `address` until [`SignInGuard::finish`].
    pub(super) fn admit(
        &self,
        username: &str,
        address: AddressKey,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let Limits {
            pair_limit,
            address_limit,
            window,
            ..
        } = self.limits;
        let mut tables = self.tables();
        let pair = (username_key(username), address);
        if tables.pairs.count(&pair, now, window) >= pair_limit {
            let last = tables.pairs.entries[&pair].last;
            return Err(Refusal::Locked(last + window));
        }
        let from_address = tables.addresses.entry(address, now, window);
        if from_address.count >= address_limit {
            return Err(Refusal::Locked(from_address.last + window));
        }
        if from_address.count + from_address.in_flight >= address_limit {
            return Err(Refusal::Busy);
        }
        from_address.in_flight += 1;
        Ok(())
    }

    /// Ends a sign-in admitted by [`SignInGuard::admit`], whatever its outcome.
    pub(super) fn finish(&self, address: AddressKey) {
        let mut tables = self.tables();
        if let Some(from_address) = tables.addresses.entries.get_mut(&address) {
            from_address.in_flight = from_address.in_flight.saturating_sub(1);
        }
    }

    /// Whether `username` needs a captcha: it failed `captcha_after` times lately, from anywhere.
    pub(super) fn captcha_required(&self, username: &str, now: Timestamp) -> bool {
        let tables = self.tables();
        tables
            .usernames
            .count(&username_key(username), now, self.limits.window)
            >= self.limits.captcha_after
    }

    /// Counts a failure of `username` from `address`; the end of the lock when this failure locked the
    /// pair or the address, and the failures of the pair.
    pub(super) fn fail(
        &self,
        username: &str,
        address: AddressKey,
        now: Timestamp,
    ) -> (Option<Timestamp>, u32) {
        let Limits {
            pair_limit,
            address_limit,
            window,
            ..
        } = self.limits;
        let key = username_key(username);
        let mut tables = self.tables();
        let count = |failures: &mut Failures| {
            failures.count += 1;
            failures.last = now;
            failures.count
        };
        count(tables.usernames.entry(key, now, window));
        let pair_failures = count(tables.pairs.entry((key, address), now, window));
        let address_failures = count(tables.addresses.entry(address, now, window));
        let locked = pair_failures >= pair_limit || address_failures >= address_limit;
        (locked.then_some(now + window), pair_failures)
    }

    /// A successful sign-in: the username and the pair start over. The address keeps its failures, or
    /// an attacker with one account of their own could sign in to it between guesses.
    pub(super) fn succeed(&self, username: &str, address: AddressKey) {
        let key = username_key(username);
        let mut tables = self.tables();
        tables.usernames.entries.remove(&key);
        tables.pairs.entries.remove(&(key, address));
    }

    /// Forgets every failure of `username` (an admin reset its password).
    pub(super) fn forget_username(&self, username: &str) {
        let key = username_key(username);
        let mut tables = self.tables();
        tables.usernames.entries.remove(&key);
        tables.pairs.entries.retain(|(name, _), _| *name != key);
    }

    /// Drops counters whose window has passed.
    pub(super) fn purge(&self, now: Timestamp) {
        let window = self.limits.window;
        let mut tables = self.tables();
        tables.usernames.retain_recent(now, window);
        tables.pairs.retain_recent(now, window);
        tables.addresses.retain_recent(now, window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> SignInGuard {
        SignInGuard::new(Limits {
            captcha_after: 3,
            pair_limit: 5,
            address_limit: 20,
            window: SignedDuration::from_mins(15),
        })
    }

    fn at(minutes: i64) -> Timestamp {
        "2026-11-25T08:00:00Z".parse::<Timestamp>().unwrap() + SignedDuration::from_mins(minutes)
    }

    fn address(text: &str) -> AddressKey {
        AddressKey::of(Some(text.parse().unwrap()))
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(address("2001:db8:1:2::1"), address("2001:db8:1:2:ffff::9"));
        assert_ne!(address("2001:db8:1:2::1"), address("2001:db8:1:3::1"));
        assert_eq!(address("::ffff:192.0.2.7"), address("192.0.2.7"));
    }

    #[test]
    fn a_pair_locks_without_locking_the_username_elsewhere() {
        let guard = guard();
        let attacker = address("192.0.2.66");
        let owner = address("192.0.2.1");
        for failure in 1..=5 {
            guard.admit("admin", attacker, at(0)).unwrap();
            let (locked, count) = guard.fail("admin", attacker, at(0));
            guard.finish(attacker);
            assert_eq!(count, failure);
            assert_eq!(locked.is_some(), failure == 5);
        }
        assert_eq!(
            guard.admit("admin", attacker, at(1)),
            Err(Refusal::Locked(at(15)))
        );
        assert!(guard.captcha_required("admin", at(1)));
        assert_eq!(guard.admit("admin", owner, at(1)), Ok(()));
        // The window passes: the pair may try again and the captcha is no longer needed.
        assert_eq!(guard.admit("admin", attacker, at(15)), Ok(()));
        assert!(!guard.captcha_required("admin", at(15)));
    }

    #[test]
    fn sign_ins_under_way_count_against_the_address_limit() {
        let guard = guard();
        let attacker = address("192.0.2.66");
        for n in 0..20 {
            guard.admit(&format!("user{n}"), attacker, at(0)).unwrap();
        }
        assert_eq!(guard.admit("user20", attacker, at(0)), Err(Refusal::Busy));
        for n in 0..20 {
            guard.fail(&format!("user{n}"), attacker, at(0));
            guard.finish(attacker);
        }
        assert_eq!(
            guard.admit("user20", attacker, at(0)),
            Err(Refusal::Locked(at(15)))
        );
    }

    #[test]
    fn full_maps_drop_the_oldest_entry_and_stay_bounded() {
        let guard = guard();
        let attacker = address("192.0.2.66");
        {
            let mut tables = guard.tables();
            for n in 0..MAX_TRACKED {
                let failures = tables.usernames.entry(
                    username_key(&format!("user{n}")),
                    at(0),
                    guard.limits.window,
                );
                failures.count = 1;
            }
        }
        guard.fail("newcomer", attacker, at(1));
        let tables = guard.tables();
        assert_eq!(tables.usernames.entries.len(), MAX_TRACKED);
        assert!(tables
            .usernames
            .entries
            .contains_key(&username_key("newcomer")));
    }
}
