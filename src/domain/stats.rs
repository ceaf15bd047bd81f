//! Workbench statistics as stored: hourly tallies per scope and running counts of open work. The
//! figures derived from them, and the rules that update them, live in `services::stats`.

use serde::{Deserialize, Serialize};

use super::{AccountId, GroupId};

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
    /// Adds `other`'s counts and sums to these.
    pub fn add(&mut self, other: &Tally) {
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
