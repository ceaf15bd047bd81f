//! Workbench statistics (工作台数据): per agent, per skill group and for the whole team, kept as hourly
//! tallies that the desk's facts update as they happen. A report adds up the hours of its range, so no
//! request reads conversations or messages, and the tallies live in the database, so they survive a
//! restart.
//!
//! Open work (wrap-ups not written yet, offline messages not answered yet) is not a count of events
//! but a level; it is kept as running counts beside the tallies. Unwritten wrap-ups are counted per
//! agent and conversation group, so that the team's and each group's figure are the sums of their
//! agents'.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::domain::{AccountId, Conversation, GroupId};
use crate::error::{Error, Result};
use crate::services::conversations::{AssignedVia, DeskFact, DeskObserver};
use crate::storage::{decode, update_json, Table};

/// Longest range of one report, in days.
pub const MAX_RANGE_DAYS: i64 = 366;
const SECONDS_PER_HOUR: i64 = 3600;
/// Key prefix of the running counts of open work (hour keys are 8 bytes; this one is longer).
const PENDING_PREFIX: &[u8] = b"pending:";

/// Whose figures.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(tag = "scope", content = "id", rename_all = "snake_case")]
pub enum Scope {
    /// Everyone.
    Team,
    /// One agent.
    Agent(AccountId),
    /// One skill group.
    Group(GroupId),
    /// One channel, by the label its conversations carry (`web`, `api`, `wechat_official`…).
    Channel(String),
}

impl Scope {
    fn key(&self) -> Vec<u8> {
        match self {
            Scope::Team => vec![b't'],
            Scope::Agent(id) => [&[b'a'][..], &id.0.to_be_bytes()].concat(),
            Scope::Group(id) => [&[b'g'][..], &id.0.to_be_bytes()].concat(),
            Scope::Channel(label) => [&[b'c'][..], label.as_bytes()].concat(),
        }
    }

    fn from_key(bytes: &[u8]) -> Option<Scope> {
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
}

/// What happened in one hour for one scope: counts and sums, from which the figures are derived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Tally {
    /// Conversations that came in: created (team, group), routed or handed over (agent), transferred
    /// into the group.
    pub received: u64,
    /// Conversations taken: accepted by hand, a transfer accepted, or an automatic offer answered.
    pub accepted: u64,
    /// Transfers accepted into the scope.
    pub transferred_in: u64,
    /// Transfers handed out of the scope.
    pub transferred_out: u64,
    /// Conversations ended while served.
    pub ended: u64,
    /// Visitors who left while queued.
    pub abandoned: u64,
    /// Messages left for later (留言).
    pub offline_messages: u64,
    /// Sum and count of first responses (assignment to the agent's first answer), seconds.
    pub first_response_secs: f64,
    /// See `first_response_secs`.
    pub first_responses: u64,
    /// Sum and count of response times (visitor's oldest unanswered message to the answer).
    pub response_secs: f64,
    /// See `response_secs`.
    pub responses: u64,
    /// Sum and count of handle times (assignment to end).
    pub handle_secs: f64,
    /// See `handle_secs`.
    pub handled: u64,
    /// Every queue wait (first message to first assignment), seconds, for the average and the p90.
    pub queue_waits: Vec<f64>,
    /// Sum of the visitors' stars and number of ratings.
    pub rating_stars: u64,
    /// See `rating_stars`.
    pub ratings: u64,
    /// Suggestion pushes to the serving agent, and suggestions sent or edited.
    pub suggestions_shown: u64,
    /// See `suggestions_shown`.
    pub suggestions_adopted: u64,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.received += other.received;
        self.accepted += other.accepted;
        self.transferred_in += other.transferred_in;
        self.transferred_out += other.transferred_out;
        self.ended += other.ended;
        self.abandoned += other.abandoned;
        self.offline_messages += other.offline_messages;
        self.first_response_secs += other.first_response_secs;
        self.first_responses += other.first_responses;
        self.response_secs += other.response_secs;
        self.responses += other.responses;
        self.handle_secs += other.handle_secs;
        self.handled += other.handled;
        self.queue_waits.extend_from_slice(&other.queue_waits);
        self.rating_stars += other.rating_stars;
        self.ratings += other.ratings;
        self.suggestions_shown += other.suggestions_shown;
        self.suggestions_adopted += other.suggestions_adopted;
    }
}

/// Open work of a scope right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pending {
    /// Ended conversations without a wrap-up.
    pub wrap_ups: u64,
    /// Offline messages nobody has accepted.
    pub offline_messages: u64,
}

/// The workbench figures of a scope over a range.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figures {
    /// Conversations received.
    pub received: u64,
    /// Conversations accepted.
    pub accepted: u64,
    /// Transfers in.
    pub transferred_in: u64,
    /// Transfers out.
    pub transferred_out: u64,
    /// Conversations ended.
    pub ended: u64,
    /// Visitors who left the queue.
    pub abandoned: u64,
    /// Messages left for later.
    pub offline_messages: u64,
    /// Average first response, seconds (`null` without any).
    pub avg_first_response_secs: Option<f64>,
    /// Average response, seconds.
    pub avg_response_secs: Option<f64>,
    /// Average handle time, seconds.
    pub avg_handle_secs: Option<f64>,
    /// Average queue wait, seconds.
    pub avg_queue_wait_secs: Option<f64>,
    /// 90th percentile of the queue wait (nearest rank), seconds.
    pub p90_queue_wait_secs: Option<f64>,
    /// Average stars, 1-5.
    pub satisfaction_avg: Option<f64>,
    /// Ratings per ended conversation.
    pub satisfaction_response_rate: Option<f64>,
    /// Suggestions sent or edited per suggestion push.
    pub suggestion_adoption_rate: Option<f64>,
    /// Wrap-ups still to write (now, not over the range).
    pub pending_wrap_ups: u64,
    /// Offline messages still unanswered (now, not over the range).
    pub pending_offline_messages: u64,
}

impl Figures {
    /// The figures of a scope with nothing counted and no open work.
    pub fn empty() -> Figures {
        Figures::from_tally(&Tally::default(), Pending::default())
    }

    fn from_tally(tally: &Tally, pending: Pending) -> Figures {
        let ratio = |part: f64, whole: u64| (whole > 0).then(|| part / whole as f64);
        let mut waits = tally.queue_waits.clone();
        waits.sort_by(f64::total_cmp);
        // Nearest rank: the smallest wait that at least 90% of the waits do not exceed.
        let p90 = (!waits.is_empty()).then(|| {
            let rank = (waits.len() * 9).div_ceil(10);
            waits[rank.max(1) - 1]
        });
        Figures {
            received: tally.received,
            accepted: tally.accepted,
            transferred_in: tally.transferred_in,
            transferred_out: tally.transferred_out,
            ended: tally.ended,
            abandoned: tally.abandoned,
            offline_messages: tally.offline_messages,
            avg_first_response_secs: ratio(tally.first_response_secs, tally.first_responses),
            avg_response_secs: ratio(tally.response_secs, tally.responses),
            avg_handle_secs: ratio(tally.handle_secs, tally.handled),
            avg_queue_wait_secs: ratio(waits.iter().sum(), waits.len() as u64),
            p90_queue_wait_secs: p90,
            satisfaction_avg: ratio(tally.rating_stars as f64, tally.ratings),
            satisfaction_response_rate: ratio(tally.ratings as f64, tally.ended),
            suggestion_adoption_rate: ratio(
                tally.suggestions_adopted as f64,
                tally.suggestions_shown,
            ),
            pending_wrap_ups: pending.wrap_ups,
            pending_offline_messages: pending.offline_messages,
        }
    }
}

/// A report's range: whole days in the team's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    /// First day.
    pub from: Date,
    /// Last day (inclusive).
    pub to: Date,
    /// Start of `from`.
    pub start: Timestamp,
    /// End of `to` (exclusive).
    pub end: Timestamp,
}

/// One hour of a series.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HourFigures {
    /// Start of the hour.
    pub hour: Timestamp,
    /// Its figures (open work is left at 0: it is not a figure of the past).
    pub figures: Figures,
}

/// Keeps the tallies; a [`DeskObserver`] of the desk.
#[derive(Debug)]
pub struct StatsService {
    tree: Table,
    time_zone: TimeZone,
    time_zone_name: String,
    /// Read-modify-write of a tally must not interleave with another.
    writing: Mutex<()>,
}

impl StatsService {
    /// Statistics over `tree` (the store's `stats`), with days in `time_zone`.
    pub fn new(tree: Table, time_zone_name: &str) -> Result<Arc<StatsService>> {
        let time_zone = TimeZone::get(time_zone_name).map_err(|_| {
            Error::Internal(format!(
                "conversations.time_zone: unknown time zone `{time_zone_name}`"
            ))
        })?;
        // Tallies are kept per UTC hour, so a local day must start on a UTC hour: refuse zones such as
        // Asia/Kolkata (+05:30) rather than count their last half hour in the next day.
        let now = jiff::Timestamp::now();
        let half_year = jiff::SignedDuration::from_hours(24 * 183);
        for instant in [now, now.saturating_add(half_year).unwrap_or(now)] {
            if time_zone.to_offset(instant).seconds() % 3600 != 0 {
                return Err(Error::Internal(format!(
                    "conversations.time_zone `{time_zone_name}`: its UTC offset is not a whole number \
                     of hours, and statistics are tallied by the hour"
                )));
            }
        }
        Ok(Arc::new(StatsService {
            tree,
            time_zone,
            time_zone_name: time_zone_name.to_string(),
            writing: Mutex::new(()),
        }))
    }

    /// The team's time zone, as configured.
    pub fn time_zone_name(&self) -> &str {
        &self.time_zone_name
    }

    /// The range of whole days from `from` to `to` (inclusive) in the team's time zone.
    pub fn range(&self, from: Date, to: Date) -> Result<Range> {
        if from > to {
            return Err(Error::InvalidInput(format!(
                "the range starts ({from}) after it ends ({to})"
            )));
        }
        let days = from
            .until(to)
            .map_err(|error| Error::InvalidInput(format!("bad range: {error}")))?
            .get_days() as i64;
        if days >= MAX_RANGE_DAYS {
            return Err(Error::InvalidInput(format!(
                "a range is at most {MAX_RANGE_DAYS} days"
            )));
        }
        let start = self.day_start(from)?;
        let next = to
            .checked_add(1.day())
            .map_err(|error| Error::InvalidInput(format!("bad date: {error}")))?;
        let end = self.day_start(next)?;
        Ok(Range {
            from,
            to,
            start,
            end,
        })
    }

    /// The team's calendar date at `at`.
    pub fn date_of(&self, at: Timestamp) -> Date {
        at.to_zoned(self.time_zone.clone()).date()
    }

    fn day_start(&self, date: Date) -> Result<Timestamp> {
        date.to_zoned(self.time_zone.clone())
            .map(|zoned| zoned.timestamp())
            .map_err(|error| Error::InvalidInput(format!("bad date {date}: {error}")))
    }

    /// Figures of every scope with activity in `range` (and every scope with open work).
    pub fn summary(&self, range: &Range) -> Result<BTreeMap<Scope, Figures>> {
        let mut tallies: BTreeMap<Scope, Tally> = BTreeMap::new();
        for entry in self.hours(range, |_| true) {
            let (_, scope, tally) = entry?;
            tallies.entry(scope).or_default().add(&tally);
        }
        let pending = self.pending_all()?;
        for scope in pending.keys() {
            tallies.entry(scope.clone()).or_default();
        }
        Ok(tallies
            .into_iter()
            .map(|(scope, tally)| {
                let open = pending.get(&scope).copied().unwrap_or_default();
                (scope, Figures::from_tally(&tally, open))
            })
            .collect())
    }

    /// Hour by hour figures of `scope` over `range`, every hour present (empty hours as zeros).
    pub fn hourly(&self, scope: Scope, range: &Range) -> Result<Vec<HourFigures>> {
        let mut by_hour: HashMap<i64, Tally> = HashMap::new();
        for entry in self.hours(range, move |of| *of == scope) {
            let (hour, _, tally) = entry?;
            by_hour.entry(hour).or_default().add(&tally);
        }
        let first = hour_of(range.start);
        let last = hour_of(range.end);
        (first..last)
            .map(|hour| {
                let tally = by_hour.remove(&hour).unwrap_or_default();
                Ok(HourFigures {
                    hour: Timestamp::from_second(hour * SECONDS_PER_HOUR)
                        .map_err(|error| Error::Internal(error.to_string()))?,
                    figures: Figures::from_tally(&tally, Pending::default()),
                })
            })
            .collect()
    }

    /// Open work of `scope` now.
    pub fn pending(&self, scope: Scope) -> Result<Pending> {
        Ok(self.pending_all()?.remove(&scope).unwrap_or_default())
    }

    /// Open work of every scope with any: offline messages as counted for the team and each group,
    /// unwritten wrap-ups added up from the agents' counts into the agent, the team and the group.
    fn pending_all(&self) -> Result<HashMap<Scope, Pending>> {
        let mut all: HashMap<Scope, Pending> = HashMap::new();
        for (key, value) in self.tree.scan_prefix(PENDING_PREFIX)? {
            let counted: Pending = decode(&value)?;
            let key = &key[PENDING_PREFIX.len()..];
            let (agent, group) = match (Scope::from_key(key), wrap_up_slot_from_key(key)) {
                (Some(Scope::Agent(agent)), _) => (agent, None),
                (Some(scope), _) => {
                    all.entry(scope).or_default().offline_messages += counted.offline_messages;
                    continue;
                }
                (None, Some((agent, group))) => (agent, Some(group)),
                (None, None) => continue,
            };
            let scopes = std::iter::once(Scope::Agent(agent))
                .chain(std::iter::once(Scope::Team))
                .chain(group.map(Scope::Group));
            for scope in scopes {
                all.entry(scope).or_default().wrap_ups += counted.wrap_ups;
            }
        }
        Ok(all)
    }

    /// Tallies of the hours of `range` for the scopes `wanted` accepts, hour-major, so one ordered scan
    /// reads a whole report; other scopes' tallies are skipped without being decoded.
    fn hours(
        &self,
        range: &Range,
        wanted: impl Fn(&Scope) -> bool + 'static,
    ) -> impl Iterator<Item = Result<(i64, Scope, Tally)>> {
        let from = hour_of(range.start).to_be_bytes().to_vec();
        let to = hour_of(range.end).to_be_bytes().to_vec();
        let records = match self.tree.range(
            std::ops::Bound::Included(from),
            std::ops::Bound::Excluded(to),
        ) {
            Ok(records) => records.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(error) => vec![Err(error)],
        };
        records.into_iter().filter_map(move |entry| match entry {
            Err(error) => Some(Err(error)),
            Ok((key, value)) => {
                let hour = i64::from_be_bytes(key.get(..8)?.try_into().ok()?);
                let scope = Scope::from_key(&key[8..]).filter(|scope| wanted(scope))?;
                Some(decode::<Tally>(&value).map(|tally| (hour, scope, tally)))
            }
        })
    }

    fn change(&self, at: Timestamp, scopes: &[Scope], apply: impl Fn(&mut Tally)) -> Result<()> {
        let hour = hour_of(at).to_be_bytes();
        for scope in scopes {
            let key = [&hour[..], &scope.key()].concat();
            // Atomic, so nodes sharing one database never lose each other's counts.
            update_json(&self.tree, key, |tally: &mut Tally| apply(tally))?;
        }
        Ok(())
    }

    fn change_pending(&self, scopes: &[Scope], apply: impl Fn(&mut Pending)) -> Result<()> {
        for scope in scopes {
            self.change_pending_at(&pending_key(scope), &apply)?;
        }
        Ok(())
    }

    fn change_pending_at(&self, key: &[u8], apply: impl Fn(&mut Pending)) -> Result<()> {
        update_json(&self.tree, key, |pending: &mut Pending| apply(pending))?;
        Ok(())
    }

    /// One wrap-up of `agent` in `group` written: taken off its slot, or, when that slot holds none
    /// (ended before wrap-ups were counted per group), off the agent's count without a group.
    fn wrap_up_written(&self, agent: AccountId, group: Option<GroupId>) -> Result<()> {
        let slot = wrap_up_slot_key(agent, group);
        let in_slot = match self.tree.get(&slot)? {
            Some(bytes) => decode::<Pending>(&bytes)?.wrap_ups,
            None => 0,
        };
        let key = if in_slot > 0 {
            slot
        } else {
            wrap_up_slot_key(agent, None)
        };
        self.change_pending_at(&key, |p| p.wrap_ups = p.wrap_ups.saturating_sub(1))
    }

    fn count(&self, at: Timestamp, fact: &DeskFact) -> Result<()> {
        match fact {
            DeskFact::Created { conversation } => self.change(
                at,
                &in_channel(shared(conversation.group), conversation),
                |t| t.received += 1,
            ),
            DeskFact::OfflineMessage { conversation } => {
                let scopes = in_channel(shared(conversation.group), conversation);
                self.change(at, &scopes, |t| t.offline_messages += 1)?;
                self.change_pending(&scopes, |p| p.offline_messages += 1)
            }
            DeskFact::Assigned {
                conversation,
                agent,
                via,
                queue_wait_secs,
                answers_offline_message,
            } => {
                self.change(at, &[Scope::Agent(*agent)], |t| t.received += 1)?;
                let everyone = in_channel(with_agent(*agent, conversation.group), conversation);
                if *via != AssignedVia::Routing {
                    self.change(at, &everyone, |t| t.accepted += 1)?;
                }
                if let Some(wait) = queue_wait_secs {
                    self.change(at, &everyone, |t| t.queue_waits.push(*wait))?;
                }
                if *answers_offline_message {
                    self.change_pending(
                        &in_channel(shared(conversation.group), conversation),
                        |p| p.offline_messages = p.offline_messages.saturating_sub(1),
                    )?;
                }
                Ok(())
            }
            DeskFact::Taken {
                conversation,
                agent,
                first_response_secs,
                was_offered,
            } => {
                let everyone = in_channel(with_agent(*agent, conversation.group), conversation);
                self.change(at, &everyone, |t| {
                    if *was_offered {
                        t.accepted += 1;
                    }
                    t.first_response_secs += first_response_secs;
                    t.first_responses += 1;
                })
            }
            DeskFact::Replied {
                conversation,
                agent,
                response_secs,
            } => self.change(
                at,
                &in_channel(with_agent(*agent, conversation.group), conversation),
                |t| {
                    t.response_secs += response_secs;
                    t.responses += 1;
                },
            ),
            DeskFact::Transferred {
                conversation,
                from,
                to,
                from_group,
            } => {
                self.change(at, &[Scope::Agent(*from), Scope::Team], |t| {
                    t.transferred_out += 1
                })?;
                self.change(at, &[Scope::Agent(*to), Scope::Team], |t| {
                    t.transferred_in += 1
                })?;
                if *from_group != conversation.group {
                    if let Some(group) = from_group {
                        self.change(at, &[Scope::Group(*group)], |t| t.transferred_out += 1)?;
                    }
                    if let Some(group) = conversation.group {
                        self.change(at, &[Scope::Group(group)], |t| {
                            t.transferred_in += 1;
                            t.received += 1;
                        })?;
                    }
                }
                Ok(())
            }
            DeskFact::Ended { conversation } => {
                let Some(agent) = conversation.agent else {
                    return Ok(());
                };
                let everyone = in_channel(with_agent(agent, conversation.group), conversation);
                let handled = conversation
                    .assigned_at
                    .zip(conversation.ended_at)
                    .map(|(assigned, ended)| seconds(ended.duration_since(assigned)));
                self.change(at, &everyone, |t| {
                    t.ended += 1;
                    if let Some(secs) = handled {
                        t.handle_secs += secs;
                        t.handled += 1;
                    }
                })?;
                self.change_pending_at(&wrap_up_slot_key(agent, conversation.group), |p| {
                    p.wrap_ups += 1
                })
            }
            DeskFact::Abandoned { conversation } => self.change(
                at,
                &in_channel(shared(conversation.group), conversation),
                |t| t.abandoned += 1,
            ),
            DeskFact::Rated { conversation } => {
                let (Some(agent), Some(rating)) = (conversation.agent, &conversation.rating) else {
                    return Ok(());
                };
                let stars = u64::from(rating.stars);
                self.change(
                    at,
                    &in_channel(with_agent(agent, conversation.group), conversation),
                    |t| {
                        t.rating_stars += stars;
                        t.ratings += 1;
                    },
                )
            }
            DeskFact::WrappedUp {
                conversation,
                first,
            } => {
                // Only the first wrap-up closes open work; a later one rewrites it.
                match (first, conversation.agent) {
                    (true, Some(agent)) => self.wrap_up_written(agent, conversation.group),
                    _ => Ok(()),
                }
            }
            DeskFact::SuggestionsShown { agent, group } => {
                self.change(at, &with_agent(*agent, *group), |t| {
                    t.suggestions_shown += 1
                })
            }
            DeskFact::SuggestionAdopted { agent, group } => {
                self.change(at, &with_agent(*agent, *group), |t| {
                    t.suggestions_adopted += 1
                })
            }
        }
    }
}

impl DeskObserver for StatsService {
    fn observe(&self, at: Timestamp, facts: &[DeskFact]) -> Result<()> {
        let _writing = self.writing.lock();
        for fact in facts {
            self.count(at, fact)?;
        }
        Ok(())
    }
}

/// The team and the conversation's group.
fn shared(group: Option<GroupId>) -> Vec<Scope> {
    std::iter::once(Scope::Team)
        .chain(group.map(Scope::Group))
        .collect()
}

/// `scopes` and the conversation's channel.
fn in_channel(mut scopes: Vec<Scope>, conversation: &Conversation) -> Vec<Scope> {
    scopes.push(Scope::Channel(conversation.channel.clone()));
    scopes
}

/// The agent, the team and the conversation's group.
fn with_agent(agent: AccountId, group: Option<GroupId>) -> Vec<Scope> {
    let mut scopes = shared(group);
    scopes.push(Scope::Agent(agent));
    scopes
}

fn pending_key(scope: &Scope) -> Vec<u8> {
    [PENDING_PREFIX, &scope.key()].concat()
}

/// Where the unwritten wrap-ups of `agent` in `group` are counted: the agent's own key when the
/// conversation had no group, else that key followed by the group's.
fn wrap_up_slot_key(agent: AccountId, group: Option<GroupId>) -> Vec<u8> {
    let mut key = pending_key(&Scope::Agent(agent));
    if let Some(group) = group {
        key.extend_from_slice(&Scope::Group(group).key());
    }
    key
}

/// The agent and group of a wrap-up slot with a group (the key without the prefix).
fn wrap_up_slot_from_key(key: &[u8]) -> Option<(AccountId, GroupId)> {
    const SCOPE_KEY_LEN: usize = 9;
    if key.len() != 2 * SCOPE_KEY_LEN {
        return None;
    }
    let (agent, group) = key.split_at(SCOPE_KEY_LEN);
    match (Scope::from_key(agent)?, Scope::from_key(group)?) {
        (Scope::Agent(agent), Scope::Group(group)) => Some((agent, group)),
        _ => None,
    }
}

fn hour_of(at: Timestamp) -> i64 {
    at.as_second().div_euclid(SECONDS_PER_HOUR)
}

fn seconds(duration: SignedDuration) -> f64 {
    duration.as_secs_f64().max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> Table {
        Table::temporary().unwrap()
    }

    #[test]
    fn tallies_changed_from_several_threads_lose_no_count() {
        let stats = StatsService::new(tree(), "Asia/Shanghai").unwrap();
        let at: Timestamp = "2026-12-02T04:00:00Z".parse().unwrap();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        stats
                            .change(at, &[Scope::Team], |tally| tally.received += 1)
                            .unwrap();
                    }
                });
            }
        });
        let key = [&hour_of(at).to_be_bytes()[..], &Scope::Team.key()].concat();
        let tally: Tally = decode(&stats.tree.get(key).unwrap().unwrap()).unwrap();
        assert_eq!(tally.received, 400);
    }

    #[test]
    fn zones_off_the_whole_hour_are_refused() {
        assert!(StatsService::new(tree(), "Asia/Shanghai").is_ok());
        assert!(StatsService::new(tree(), "Europe/Berlin").is_ok());
        let refused = StatsService::new(tree(), "Asia/Kolkata").unwrap_err();
        assert!(refused.to_string().contains("whole number"), "{refused}");
        assert!(StatsService::new(tree(), "Asia/Kathmandu").is_err());
        assert!(StatsService::new(tree(), "Nowhere/Land").is_err());
    }

    #[test]
    fn team_and_group_wrap_ups_are_the_sums_of_the_agents_including_counts_without_a_group() {
        let stats = StatsService::new(tree(), "Asia/Shanghai").unwrap();
        let (amy, ben) = (AccountId(1), AccountId(2));
        let (after_sales, invoices) = (GroupId(7), GroupId(8));
        let add_one = |p: &mut Pending| p.wrap_ups += 1;
        // Amy: one counted before wrap-ups had a group, one in each group; Ben: one in 售后.
        stats
            .change_pending_at(&wrap_up_slot_key(amy, None), add_one)
            .unwrap();
        for (agent, group) in [(amy, after_sales), (amy, invoices), (ben, after_sales)] {
            stats
                .change_pending_at(&wrap_up_slot_key(agent, Some(group)), add_one)
                .unwrap();
        }
        stats
            .change_pending(&[Scope::Team, Scope::Group(invoices)], |p| {
                p.offline_messages += 1
            })
            .unwrap();
        let wrap_ups = |scope| stats.pending(scope).unwrap().wrap_ups;
        assert_eq!(wrap_ups(Scope::Agent(amy)), 3);
        assert_eq!(wrap_ups(Scope::Agent(ben)), 1);
        assert_eq!(wrap_ups(Scope::Team), 4);
        assert_eq!(wrap_ups(Scope::Group(after_sales)), 2);
        assert_eq!(wrap_ups(Scope::Group(invoices)), 1);
        assert_eq!(stats.pending(Scope::Team).unwrap().offline_messages, 1);
        assert_eq!(
            stats.pending(Scope::Agent(amy)).unwrap().offline_messages,
            0
        );

        // Amy writes two wrap-ups in 发票: the second finds none left there and takes the one
        // counted without a group.
        stats.wrap_up_written(amy, Some(invoices)).unwrap();
        stats.wrap_up_written(amy, Some(invoices)).unwrap();
        assert_eq!(wrap_ups(Scope::Agent(amy)), 1);
        assert_eq!(wrap_ups(Scope::Group(invoices)), 0);
        assert_eq!(wrap_ups(Scope::Group(after_sales)), 2);
        assert_eq!(wrap_ups(Scope::Team), 2);
    }
}
