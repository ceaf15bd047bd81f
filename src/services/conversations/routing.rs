//! Who may take a conversation and who gets it: eligibility, load, the returning visitor's last agent
//! (历史坐席优先), queue positions, working hours.

use std::collections::HashMap;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::Desk;
use crate::domain::{
    Account, AccountId, Conversation, ConversationState, GroupId, Role, WorkingHours,
};
use crate::error::{Error, Result};
use crate::services::accounts::AccountService;

/// Whether `account` may serve a conversation of `group` (any group when `None`).
pub fn may_take(account: &Account, group: Option<GroupId>) -> bool {
    !account.disabled
        && account.has_role(Role::Agent)
        && group.is_none_or(|group| account.groups.contains(&group))
}

/// Conversations an agent serves now.
pub fn active_count(desk: &Desk, agent: AccountId) -> usize {
    desk.open
        .values()
        .filter(|conversation| {
            conversation.state == ConversationState::Active && conversation.agent == Some(agent)
        })
        .count()
}

/// How many active conversations each agent serves now.
pub fn loads(desk: &Desk) -> HashMap<AccountId, usize> {
    let mut loads = HashMap::new();
    for conversation in desk.open.values() {
        if let (ConversationState::Active, Some(agent)) = (conversation.state, conversation.agent) {
            *loads.entry(agent).or_insert(0) += 1;
        }
    }
    loads
}

/// The online agents with their loads, read once per routing pass instead of once per queued
/// conversation and candidate (which made every start slower as the queue grew).
#[derive(Debug)]
pub struct Staff {
    agents: Vec<Account>,
    loads: HashMap<AccountId, usize>,
}

impl Staff {
    /// Online agents and how many active conversations each serves now.
    pub fn online(desk: &Desk, accounts: &AccountService) -> Result<Staff> {
        Ok(Staff {
            agents: accounts.online_agents()?,
            loads: loads(desk),
        })
    }

    fn has_room(&self, account: &Account) -> bool {
        self.load(account.id) < account.max_concurrent as usize
    }

    fn load(&self, agent: AccountId) -> usize {
        self.loads.get(&agent).copied().unwrap_or(0)
    }

    /// Whether any online agent could take one more conversation.
    pub fn any_room(&self) -> bool {
        self.agents
            .iter()
            .any(|account| may_take(account, None) && self.has_room(account))
    }

    /// Agents who may take a conversation of `group` and have room for it, but `except`.
    pub fn candidates(&self, group: Option<GroupId>, except: &[AccountId]) -> Vec<AccountId> {
        self.agents
            .iter()
            .filter(|account| {
                may_take(account, group) && self.has_room(account) && !except.contains(&account.id)
            })
            .map(|account| account.id)
            .collect()
    }

    /// Counts a conversation just given to `agent`.
    pub fn assigned(&mut self, agent: AccountId) {
        *self.loads.entry(agent).or_insert(0) += 1;
    }
}

/// The visitor's last agent, if among `candidates` (who all have room).
pub fn returning_agent(
    desk: &Desk,
    conversation: &Conversation,
    candidates: &[AccountId],
) -> Option<AccountId> {
    let previous = desk
        .last_agent
        .get(&conversation.visitor_id)
        .copied()
        .or_else(|| {
            conversation
                .identity
                .external_id
                .as_ref()
                .and_then(|external| desk.last_agent.get(&format!("ext:{external}")).copied())
        });
    previous.filter(|agent| candidates.contains(agent))
}

/// The returning visitor's last agent, else the candidate with the fewest active conversations;
/// ties go to the one idle longest (assigned least recently). `candidates` all have room.
pub fn pick(
    desk: &Desk,
    conversation: &Conversation,
    candidates: &[AccountId],
    staff: &Staff,
) -> Option<AccountId> {
    if let Some(previous) = returning_agent(desk, conversation, candidates) {
        return Some(previous);
    }
    least_loaded(desk, candidates, staff)
}

/// The candidate with the fewest active conversations; ties go to the one idle longest (assigned
/// least recently). `candidates` all have room.
pub fn least_loaded(desk: &Desk, candidates: &[AccountId], staff: &Staff) -> Option<AccountId> {
    candidates
        .iter()
        .map(|&agent| {
            let idle_since = desk
                .last_assigned
                .get(&agent)
                .copied()
                .unwrap_or(Timestamp::MIN);
            (staff.load(agent), idle_since, agent)
        })
        .min()
        .map(|(_, _, agent)| agent)
}

/// Positions of every queued conversation, 1-based within its group's queue, in one pass: equal
/// to [`position`] for each.
pub fn positions(desk: &Desk) -> HashMap<String, (Option<GroupId>, usize)> {
    let mut by_group: HashMap<Option<GroupId>, Vec<(Timestamp, usize, &str)>> = HashMap::new();
    for (index, entry) in desk.queue.iter().enumerate() {
        by_group.entry(entry.group).or_default().push((
            entry.since,
            index,
            entry.conversation.as_str(),
        ));
    }
    let mut positions = HashMap::new();
    for (group, mut entries) in by_group {
        entries.sort();
        for (position, (_, _, conversation)) in entries.into_iter().enumerate() {
            positions.insert(conversation.to_string(), (group, position + 1));
        }
    }
    positions
}

/// 1-based position among the entries of the same group: by waiting time, then (for entries that
/// began at the same instant) by their order in the queue, so that no two share a place.
pub fn position(desk: &Desk, conversation_id: &str) -> usize {
    let Some((mine, entry)) = desk
        .queue
        .iter()
        .enumerate()
        .find(|(_, entry)| entry.conversation == conversation_id)
    else {
        return 0;
    };
    desk.queue
        .iter()
        .enumerate()
        .filter(|(index, other)| {
            other.group == entry.group && (other.since, *index) <= (entry.since, mine)
        })
        .count()
}

/// Whether `now` falls within the working hours; no hours means always open. A holiday is closed
/// all day; a day of `day_hours` has its own hours.
pub fn within_working_hours(hours: Option<&WorkingHours>, now: Timestamp) -> bool {
    let Some(hours) = hours else {
        return true;
    };
    let Ok(zone) = TimeZone::get(&hours.time_zone) else {
        return true;
    };
    let local = now.to_zoned(zone);
    let date = local.date().to_string();
    if hours.holidays.contains(&date) {
        return false;
    }
    let weekday = local.weekday().to_monday_one_offset() as u8;
    if !hours.days.contains(&weekday) {
        return false;
    }
    let (start, end) = match hours.day_hours.iter().find(|day| day.day == weekday) {
        Some(day) => (&day.start, &day.end),
        None => (&hours.start, &hours.end),
    };
    let (Ok(start), Ok(end)) = (start.parse::<Time>(), end.parse::<Time>()) else {
        return true;
    };
    let time = local.time();
    time >= start && time < end
}

/// Most holidays a group may list.
pub const MAX_HOLIDAYS: usize = 366;

/// Refuses unknown time zones, malformed times, an empty or impossible day list, day hours of a day
/// that is not worked or given twice, and holidays that are not dates.
pub fn validate_working_hours(hours: Option<&WorkingHours>) -> Result<()> {
    let Some(hours) = hours else {
        return Ok(());
    };
    TimeZone::get(&hours.time_zone)
        .map_err(|_| Error::InvalidInput(format!("unknown time zone `{}`", hours.time_zone)))?;
    validate_span(&hours.start, &hours.end)?;
    if hours.days.is_empty() || hours.days.iter().any(|day| !(1..=7).contains(day)) {
        return Err(Error::InvalidInput(
            "working days are 1 (Monday) to 7 (Sunday)".into(),
        ));
    }
    let mut seen = Vec::new();
    for day in &hours.day_hours {
        if !hours.days.contains(&day.day) {
            return Err(Error::InvalidInput(format!(
                "day_hours names day {}, which is not a working day",
                day.day
            )));
        }
        if seen.contains(&day.day) {
            return Err(Error::InvalidInput(format!(
                "day_hours names day {} twice",
                day.day
            )));
        }
        seen.push(day.day);
        validate_span(&day.start, &day.end)?;
    }
    if hours.holidays.len() > MAX_HOLIDAYS {
        return Err(Error::InvalidInput(format!(
            "at most {MAX_HOLIDAYS} holidays"
        )));
    }
    for holiday in &hours.holidays {
        // Strict `YYYY-MM-DD`: jiff would also read other forms.
        let well_formed = holiday.len() == 10 && holiday.parse::<jiff::civil::Date>().is_ok();
        if !well_formed {
            return Err(Error::InvalidInput(format!(
                "holiday `{holiday}` is not a YYYY-MM-DD date"
            )));
        }
    }
    Ok(())
}

/// Refuses malformed times and a span that does not end after it starts.
fn validate_span(start: &str, end: &str) -> Result<()> {
    let start: Time = start
        .parse()
        .map_err(|_| Error::InvalidInput(format!("`{start}` is not a HH:MM time")))?;
    let end: Time = end
        .parse()
        .map_err(|_| Error::InvalidInput(format!("`{end}` is not a HH:MM time")))?;
    if start >= end {
        return Err(Error::InvalidInput(
            "working hours must end after they start".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours() -> WorkingHours {
        WorkingHours {
            time_zone: "Asia/Shanghai".into(),
            days: vec![1, 2, 3, 4, 5],
            start: "09:00".into(),
            end: "18:00".into(),
            day_hours: Vec::new(),
            holidays: Vec::new(),
        }
    }

    #[test]
    fn working_hours_follow_the_group_time_zone() {
        // 2026-11-25 is a Wednesday; 08:00 UTC is 16:00 in Shanghai.
        let wednesday_afternoon: Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
        assert!(within_working_hours(Some(&hours()), wednesday_afternoon));
        let wednesday_night: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        assert!(!within_working_hours(Some(&hours()), wednesday_night));
        let saturday: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        assert!(!within_working_hours(Some(&hours()), saturday));
        assert!(within_working_hours(None, saturday));
    }

    #[test]
    fn bad_working_hours_are_refused() {
        let mut bad = hours();
        bad.time_zone = "Mars/Olympus".into();
        assert!(validate_working_hours(Some(&bad)).is_err());
        let mut bad = hours();
        bad.end = "08:00".into();
        assert!(validate_working_hours(Some(&bad)).is_err());
        let mut bad = hours();
        bad.days = vec![0];
        assert!(validate_working_hours(Some(&bad)).is_err());
        assert!(validate_working_hours(Some(&hours())).is_ok());
        let mut bad = hours();
        bad.day_hours = vec![crate::domain::DayHours {
            day: 6,
            start: "10:00".into(),
            end: "16:00".into(),
        }];
        assert!(
            validate_working_hours(Some(&bad)).is_err(),
            "Saturday is not worked"
        );
        let mut bad = hours();
        bad.holidays = vec!["2026-10-1".into()];
        assert!(validate_working_hours(Some(&bad)).is_err());
    }

    #[test]
    fn day_hours_and_holidays_change_when_a_group_is_open() {
        let mut week = hours();
        week.days = vec![1, 2, 3, 4, 5, 6];
        week.day_hours = vec![crate::domain::DayHours {
            day: 6,
            start: "10:00".into(),
            end: "12:00".into(),
        }];
        week.holidays = vec!["2026-11-25".into()];
        assert!(validate_working_hours(Some(&week)).is_ok());
        // Saturday 2026-11-28 11:00 and 13:00 in Shanghai.
        let saturday_morning: Timestamp = "2026-11-28T03:00:00Z".parse().unwrap();
        let saturday_afternoon: Timestamp = "2026-11-28T05:00:00Z".parse().unwrap();
        assert!(within_working_hours(Some(&week), saturday_morning));
        assert!(!within_working_hours(Some(&week), saturday_afternoon));
        // Wednesday 2026-11-25 16:00 is a holiday; Thursday at the same time is not.
        let holiday: Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
        let thursday: Timestamp = "2026-11-26T08:00:00Z".parse().unwrap();
        assert!(!within_working_hours(Some(&week), holiday));
        assert!(within_working_hours(Some(&week), thursday));
    }
}
