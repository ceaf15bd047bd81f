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
use serde::Serialize;

use crate::domain::{AccountId, Conversation, GroupId};
use crate::error::{Error, Result};
use crate::services::conversations::{AssignedVia, DeskFact, DeskObserver};
use crate::storage::{PendingSlot, StatsRepository, UnitOfWork};

pub use crate::domain::stats::{Pending, Scope, Tally};

/// Longest range of one report, in days.
pub const MAX_RANGE_DAYS: i64 = 366;
const SECONDS_PER_HOUR: i64 = 3600;

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
    stats: Arc<dyn StatsRepository>,
    unit_of_work: UnitOfWork,
    time_zone: TimeZone,
    time_zone_name: String,
    /// Read-modify-write of a tally must not interleave with another.
    writing: Mutex<()>,
}

impl StatsService {
    /// Statistics in `stats`, with days in `time_zone`; a batch of facts is counted as one unit of
    /// work.
    pub fn new(
        stats: Arc<dyn StatsRepository>,
        unit_of_work: UnitOfWork,
        time_zone_name: &str,
    ) -> Result<Arc<StatsService>> {
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
            stats,
            unit_of_work,
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
        for (_, scope, tally) in self.hours(range, |_| true)? {
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
        for (hour, _, tally) in self.hours(range, |of| *of == scope)? {
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
        for (slot, counted) in self.stats.pending_counts()? {
            let (agent, group) = match slot {
                PendingSlot::Scope(Scope::Agent(agent)) => (agent, None),
                PendingSlot::Scope(scope) => {
                    all.entry(scope).or_default().offline_messages += counted.offline_messages;
                    continue;
                }
                PendingSlot::AgentInGroup(agent, group) => (agent, Some(group)),
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
        wanted: impl Fn(&Scope) -> bool,
    ) -> Result<Vec<(i64, Scope, Tally)>> {
        self.stats
            .tallies(hour_of(range.start), hour_of(range.end), &wanted)
    }

    fn change(&self, at: Timestamp, scopes: &[Scope], apply: impl Fn(&mut Tally)) -> Result<()> {
        let hour = hour_of(at);
        for scope in scopes {
            self.stats.change_tally(hour, scope, &apply)?;
        }
        Ok(())
    }

    fn change_pending(&self, scopes: &[Scope], apply: impl Fn(&mut Pending)) -> Result<()> {
        for scope in scopes {
            self.change_pending_at(&PendingSlot::Scope(scope.clone()), &apply)?;
        }
        Ok(())
    }

    fn change_pending_at(&self, slot: &PendingSlot, apply: impl Fn(&mut Pending)) -> Result<()> {
        self.stats.change_pending(slot, &apply)
    }

    /// One wrap-up of `agent` in `group` written: taken off its slot, or, when that slot holds none
    /// (ended before wrap-ups were counted per group), off the agent's count without a group.
    fn wrap_up_written(&self, agent: AccountId, group: Option<GroupId>) -> Result<()> {
        let slot = wrap_up_slot(agent, group);
        let in_slot = self.stats.pending(&slot)?.wrap_ups;
        let slot = if in_slot > 0 {
            slot
        } else {
            wrap_up_slot(agent, None)
        };
        self.change_pending_at(&slot, |p| p.wrap_ups = p.wrap_ups.saturating_sub(1))
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
                self.change_pending_at(&wrap_up_slot(agent, conversation.group), |p| {
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
        // One unit for the batch: on PostgreSQL one commit (not waiting for the WAL flush, as counters
        // may) instead of a compare-and-swap round trip committed per scope of every fact.
        self.unit_of_work.run_relaxed(|| {
            for fact in facts {
                self.count(at, fact)?;
            }
            Ok(())
        })
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

/// Where the unwritten wrap-ups of `agent` in `group` are counted: the agent's own count when the
/// conversation had no group.
fn wrap_up_slot(agent: AccountId, group: Option<GroupId>) -> PendingSlot {
    match group {
        Some(group) => PendingSlot::AgentInGroup(agent, group),
        None => PendingSlot::Scope(Scope::Agent(agent)),
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

    fn open(time_zone: &str) -> Result<Arc<StatsService>> {
        let store = crate::storage::Store::temporary().unwrap();
        StatsService::new(
            Arc::new(crate::storage::StoredStats::new(&store)),
            UnitOfWork::new(&store),
            time_zone,
        )
    }

    #[test]
    fn tallies_changed_from_several_threads_lose_no_count() {
        let stats = open("Asia/Shanghai").unwrap();
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
        let hour = hour_of(at);
        let tallies = stats.stats.tallies(hour, hour + 1, &|_| true).unwrap();
        assert_eq!(tallies[0].2.received, 400);
    }

    #[test]
    fn zones_off_the_whole_hour_are_refused() {
        assert!(open("Asia/Shanghai").is_ok());
        assert!(open("Europe/Berlin").is_ok());
        let refused = open("Asia/Kolkata").unwrap_err();
        assert!(refused.to_string().contains("whole number"), "{refused}");
        assert!(open("Asia/Kathmandu").is_err());
        assert!(open("Nowhere/Land").is_err());
    }

    #[test]
    fn team_and_group_wrap_ups_are_the_sums_of_the_agents_including_counts_without_a_group() {
        let stats = open("Asia/Shanghai").unwrap();
        let (amy, ben) = (AccountId(1), AccountId(2));
        let (after_sales, invoices) = (GroupId(7), GroupId(8));
        let add_one = |p: &mut Pending| p.wrap_ups += 1;
        // Amy: one counted before wrap-ups had a group, one in each group; Ben: one in 售后.
        stats
            .change_pending_at(&wrap_up_slot(amy, None), add_one)
            .unwrap();
        for (agent, group) in [(amy, after_sales), (amy, invoices), (ben, after_sales)] {
            stats
                .change_pending_at(&wrap_up_slot(agent, Some(group)), add_one)
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
