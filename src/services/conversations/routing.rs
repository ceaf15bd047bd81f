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

/// Whether `now` falls within the working hours; no hours means always open.
pub fn within_working_hours(hours: Option<&WorkingHours>, now: Timestamp) -> bool {
    let Some(hours) = hours else {
        return true;
    };
    let Ok(zone) = TimeZone::get(&hours.time_zone) else {
        return true;
    };
    let (Ok(start), Ok(end)) = (hours.start.parse::<Time>(), hours.end.parse::<Time>()) else {
        return true;
    };
    let local = now.to_zoned(zone);
    let weekday = local.weekday().to_monday_one_offset() as u8;
    let time = local.time();
    hours.days.contains(&weekday) && time >= start && time < end
}

/// Refuses unknown time zones, malformed times, an empty or impossible day list.
pub fn validate_working_hours(hours: Option<&WorkingHours>) -> Result<()> {
    let Some(hours) = hours else {
        return Ok(());
    };
    TimeZone::get(&hours.time_zone)
        .map_err(|_| Error::InvalidInput(format!("unknown time zone `{}`", hours.time_zone)))?;
    let start: Time = hours
        .start
        .parse()
        .map_err(|_| Error::InvalidInput(format!("`{}` is not a HH:MM time", hours.start)))?;
    let end: Time = hours
        .end
        .parse()
        .map_err(|_| Error::InvalidInput(format!("`{}` is not a HH:MM time", hours.end)))?;
    if start >= end {
        return Err(Error::InvalidInput(
            "working hours must end after they start".into(),
        ));
    }
    if hours.days.is_empty() || hours.days.iter().any(|day| !(1..=7).contains(day)) {
        return Err(Error::InvalidInput(
            "working days are 1 (Monday) to 7 (Sunday)".into(),
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
    }
}
