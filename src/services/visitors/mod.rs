//! Visitor context (访客信息): profiles with channel, address, location and browser; the page trail;
//! identities signed by the host site; staff tags and notes; the block list (黑名单); who is on the
//! site now (访客列表) and proactive invitations.
//!
//! - `geo.rs`: the offline IP-location database.
//! - `identity.rs`: verification of signed identities.
//!
//! Profiles, page views and blocks are stored; who is online and pending invitations live in memory,
//! as they mean nothing after a restart (visitors' heartbeats bring them back within seconds).

mod geo;
mod identity;
pub mod sites;

use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::VisitorsConfig;
use crate::domain::limits::{
    check_length, MAX_BLOCK_REASON_CHARS, MAX_INVITATION_CHARS, MAX_PAGE_TITLE_CHARS,
    MAX_URL_CHARS, MAX_USER_AGENT_CHARS, MAX_VISITOR_NOTE_CHARS as MAX_NOTE_CHARS,
    MAX_VISITOR_TAGS as MAX_TAGS, MAX_VISITOR_TAG_CHARS as MAX_TAG_CHARS, MIN_BLOCK_PREFIX_V4,
    MIN_BLOCK_PREFIX_V6,
};
use crate::domain::{
    AccountId, AuditKind, Block, ClientInfo, Conversation, Invitation, PageView, VisitorGrant,
    VisitorProfile,
};
use crate::error::{Error, Result};
use crate::services::accounts::{AccountService, Actor};
use crate::services::clock::Clock;
use crate::services::conversations::{DeskFact, DeskObserver};
use crate::services::secrets::random_token;
use crate::storage::{ConversationOwner, SettingsRepository, UnitOfWork, VisitorRepository};

pub use geo::GeoDb;
pub use identity::{sign_identity, IdentityClaim};

/// Channels the widget may name; anything else is `web`'s business to fix, not ours to store.
pub const CHANNELS: [&str; 6] = ["web", "app", "wechat", "api", "wechat_official", "wecom_kf"];

/// What a page tells when a visitor arrives or starts a conversation.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// `web` (default), `app`, `wechat` or `api`.
    #[serde(default)]
    pub channel: Option<String>,
    /// The host site's signed (or merely claimed) identity.
    #[serde(default)]
    pub identity: Option<IdentityClaim>,
    /// The page the visitor is on.
    #[serde(default)]
    pub page: Option<PageInput>,
}

/// A page view as the widget reports it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PageInput {
    /// Address.
    pub url: String,
    /// Title.
    #[serde(default)]
    pub title: String,
}

/// An [`Arrival`] whose fields passed their checks: nothing stored yet.
#[derive(Debug, Clone)]
pub struct CheckedArrival {
    identity: Option<crate::domain::SiteIdentity>,
    channel: Option<String>,
    page: Option<PageView>,
}

/// Where the request came from (filled in by the HTTP layer).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Client address.
    pub ip: Option<IpAddr>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
}

/// A page of the trail with the time spent on it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PageVisit {
    /// The view.
    #[serde(flatten)]
    pub view: PageView,
    /// Seconds until the next page (or, for the current page of an online visitor, until now);
    /// `null` for the last page of a visitor who left.
    pub secs_on_page: Option<i64>,
}

/// A visitor on the site now.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OnlineVisitor {
    /// The profile.
    pub visitor: VisitorProfile,
    /// The page open now.
    pub current_page: Option<PageView>,
    /// Seconds since this visit began.
    pub secs_on_site: i64,
    /// An invitation waiting for an answer.
    pub invited: bool,
}

/// A new block-list entry.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockInput {
    /// Block this visitor.
    #[serde(default)]
    pub visitor_id: Option<String>,
    /// Block these addresses (`203.0.113.7/32`, `203.0.113.0/24`, a single address also works).
    #[serde(default)]
    pub ip_range: Option<String>,
    /// Why; required.
    pub reason: String,
    /// Until when; absent for good.
    #[serde(default)]
    pub expires: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct OnSite {
    arrived: Timestamp,
    last_beat: Timestamp,
    page: Option<PageView>,
}

#[derive(Debug, Default)]
struct Live {
    on_site: HashMap<String, OnSite>,
    invitations: HashMap<String, Invitation>,
}

impl Live {
    /// Notes that the visitor is on the site at `now` (a heartbeat or a page view); coming back after
    /// more than `timeout` away starts a new visit.
    fn seen(&mut self, visitor_id: &str, now: Timestamp, timeout: SignedDuration) -> &mut OnSite {
        let on_site = self
            .on_site
            .entry(visitor_id.to_string())
            .or_insert(OnSite {
                arrived: now,
                last_beat: now,
                page: None,
            });
        if now.duration_since(on_site.last_beat) > timeout {
            on_site.arrived = now;
        }
        on_site.last_beat = now;
        on_site
    }

    fn forget_departed(&mut self, now: Timestamp, timeout: SignedDuration) -> usize {
        let before = self.on_site.len();
        self.on_site
            .retain(|_, on_site| now.duration_since(on_site.last_beat) <= timeout);
        let on_site = &self.on_site;
        self.invitations.retain(|id, _| on_site.contains_key(id));
        before - self.on_site.len()
    }
}

/// The visitor context service.
pub struct VisitorService {
    visitors: Arc<dyn VisitorRepository>,
    unit_of_work: UnitOfWork,
    accounts: Arc<AccountService>,
    clock: Arc<dyn Clock>,
    config: VisitorsConfig,
    /// Sites of signed identities (stored; `config.sites` seeds them).
    sites: sites::Sites,
    /// Read at the first lookup: 11 MB that a process (or a test) without visitors never needs.
    geo: std::sync::OnceLock<Option<GeoDb>>,
    live: Mutex<Live>,
    page_view_limit: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for VisitorService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("VisitorService")
            .field("config", &self.config)
            .field("geo_loaded", &self.geo.get().is_some())
            .finish_non_exhaustive()
    }
}

impl VisitorService {
    /// The service over `visitors`, beside `accounts` (which issues visitor tokens); reads the
    /// location database named in `config`.
    pub fn new(
        accounts: Arc<AccountService>,
        visitors: Arc<dyn VisitorRepository>,
        settings: Arc<dyn SettingsRepository>,
        unit_of_work: UnitOfWork,
        clock: Arc<dyn Clock>,
        config: VisitorsConfig,
    ) -> VisitorService {
        let per_minute =
            NonZeroU32::new(config.page_views_per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        VisitorService {
            visitors,
            unit_of_work,
            sites: sites::Sites::new(settings, config.sites.clone(), Arc::clone(&clock)),
            accounts,
            clock,
            geo: std::sync::OnceLock::new(),
            live: Mutex::default(),
            page_view_limit: RateLimiter::keyed(Quota::per_minute(per_minute)),
            config,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The sites whose signed identities are verified.
    pub fn sites(&self) -> &sites::Sites {
        &self.sites
    }

    fn live(&self) -> parking_lot::MutexGuard<'_, Live> {
        self.live.lock()
    }

    /// Reads the location database now rather than on the first visitor's request (`kefu serve` does
    /// this in the background at start).
    pub fn load_location_database(&self) -> Option<&GeoDb> {
        self.geo
            .get_or_init(|| GeoDb::open(&self.config.ip_database))
            .as_ref()
    }

    /// The approximate location of `ip` (unknown without the database).
    pub fn locate(&self, ip: IpAddr) -> crate::domain::Location {
        self.load_location_database()
            .map(|geo| geo.lookup(ip))
            .unwrap_or_default()
    }

    /// Creates or refreshes the profile of `visitor_id` with what this request tells. A signed
    /// identity that does not verify is refused (`identity_invalid`), a field over its limit
    /// (`invalid_input`), and nothing is stored.
    pub fn arrive(
        &self,
        visitor_id: &str,
        arrival: Arrival,
        origin: &Origin,
    ) -> Result<VisitorProfile> {
        let checked = self.check_arrival(arrival)?;
        self.settle(visitor_id, checked, origin)
    }

    /// Checks what a page tells on arrival without storing anything, so a caller can refuse it before
    /// issuing a token; [`VisitorService::settle`] then stores it.
    pub fn check_arrival(&self, arrival: Arrival) -> Result<CheckedArrival> {
        let now = self.now();
        let identity = arrival
            .identity
            .map(|claim| {
                identity::verify(
                    claim,
                    &|site| self.sites.secret_of(site),
                    self.config.identity_max_age_secs,
                    now,
                )
            })
            .transpose()?;
        let channel = match arrival.channel.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(channel) if CHANNELS.contains(&channel) => Some(channel.to_string()),
            Some(other) => {
                check_length("channel", other, crate::domain::limits::MAX_CHANNEL_CHARS)?;
                return Err(Error::InvalidInput(format!(
                    "unknown channel `{other}`; use one of {}",
                    CHANNELS.join(", ")
                )));
            }
        };
        let page = arrival.page.map(|page| clean_page(page, now)).transpose()?;
        Ok(CheckedArrival {
            identity,
            channel,
            page,
        })
    }

    /// A new visitor: issues their token and stores their profile from an arrival already checked,
    /// as one unit of work (on PostgreSQL one commit instead of two, and no token left behind when
    /// the profile cannot be stored). The caller has checked the block list and the issuance rate.
    pub fn admit(
        &self,
        arrival: CheckedArrival,
        origin: &Origin,
    ) -> Result<(String, VisitorGrant, VisitorProfile)> {
        self.unit_of_work.run(|| {
            let (token, grant) = self.accounts.issue_visitor_token()?;
            let profile = self.settle(&grant.visitor_id, arrival, origin)?;
            Ok((token, grant, profile))
        })
    }

    /// Creates or refreshes the profile of `visitor_id` with an arrival already checked.
    pub fn settle(
        &self,
        visitor_id: &str,
        arrival: CheckedArrival,
        origin: &Origin,
    ) -> Result<VisitorProfile> {
        let now = self.now();
        let CheckedArrival {
            identity,
            channel,
            page,
        } = arrival;
        let mut profile = match self.profile(visitor_id) {
            Ok(profile) => profile,
            Err(Error::VisitorNotFound(_)) => VisitorProfile {
                id: visitor_id.to_string(),
                channel: "web".into(),
                ip: None,
                location: Default::default(),
                user_agent: None,
                client: ClientInfo::default(),
                identity: None,
                tags: BTreeSet::new(),
                note: String::new(),
                first_seen: now,
                last_seen: now,
            },
            Err(error) => return Err(error),
        };
        if let Some(channel) = channel {
            profile.channel = channel;
        }
        if let Some(ip) = origin.ip {
            if profile.ip != Some(ip) {
                profile.location = self.locate(ip);
                profile.ip = Some(ip);
            }
        }
        if let Some(agent) = &origin.user_agent {
            if profile.user_agent.as_deref() != Some(agent.as_str()) {
                profile.client = parse_user_agent(agent);
                profile.user_agent = Some(agent.chars().take(MAX_USER_AGENT_CHARS).collect());
            }
        }
        // A verified identity is not replaced by a mere claim.
        match (&profile.identity, identity) {
            (Some(known), Some(claimed)) if known.verified && !claimed.verified => {}
            (_, Some(identity)) => profile.identity = Some(identity),
            (_, None) => {}
        }
        profile.last_seen = now;
        self.visitors.put_profile(&profile)?;
        if let Some(page) = page {
            self.append_page_view(visitor_id, page)?;
        }
        Ok(profile)
    }

    /// Refuses an unknown visitor without reading their profile: heartbeats and page views only need
    /// to know the visitor exists.
    fn ensure_known(&self, visitor_id: &str) -> Result<()> {
        if self.visitors.is_known(visitor_id)? {
            Ok(())
        } else {
            Err(Error::VisitorNotFound(visitor_id.to_string()))
        }
    }

    /// The stored profile; `last_seen` includes heartbeats and page views, which are not written
    /// to the database each time.
    pub fn profile(&self, visitor_id: &str) -> Result<VisitorProfile> {
        let mut profile = self
            .visitors
            .profile(visitor_id)?
            .ok_or_else(|| Error::VisitorNotFound(visitor_id.to_string()))?;
        if let Some(on_site) = self.live().on_site.get(visitor_id) {
            profile.last_seen = profile.last_seen.max(on_site.last_beat);
        }
        Ok(profile)
    }

    /// Records a page view (the widget calls this on every page); at most
    /// `visitors.page_views_per_minute` per visitor, and the trail keeps the newest
    /// `visitors.max_page_views`.
    pub fn page_view(
        &self,
        visitor_id: &str,
        ip: Option<IpAddr>,
        page: PageInput,
    ) -> Result<PageView> {
        let view = clean_page(page, self.now())?;
        self.check_blocked(Some(visitor_id), ip)?;
        if self
            .page_view_limit
            .check_key(&visitor_id.to_string())
            .is_err()
        {
            return Err(Error::RateLimited);
        }
        self.ensure_known(visitor_id)?;
        self.append_page_view(visitor_id, view.clone())?;
        Ok(view)
    }

    fn append_page_view(&self, visitor_id: &str, view: PageView) -> Result<()> {
        self.visitors
            .append_page_view(visitor_id, &view, self.config.max_page_views)?;
        let now = self.now();
        self.live()
            .seen(visitor_id, now, self.online_timeout())
            .page = Some(view);
        Ok(())
    }

    /// The page trail, oldest first, with the time spent on each page.
    pub fn page_trail(&self, visitor_id: &str) -> Result<Vec<PageVisit>> {
        let views = self.visitors.page_views(visitor_id)?;
        let online = self.is_online(visitor_id);
        let now = self.now();
        let mut visits = Vec::with_capacity(views.len());
        for (index, view) in views.iter().enumerate() {
            let until = match views.get(index + 1) {
                Some(next) => Some(next.at),
                None if online => Some(now),
                None => None,
            };
            visits.push(PageVisit {
                secs_on_page: until.map(|until| until.duration_since(view.at).as_secs().max(0)),
                view: view.clone(),
            });
        }
        Ok(visits)
    }

    /// The widget's heartbeat: the visitor is on the site. Answers a pending invitation until the
    /// visitor answers it.
    pub fn heartbeat(&self, visitor_id: &str, ip: Option<IpAddr>) -> Result<Option<Invitation>> {
        self.ensure_known(visitor_id)?;
        // A blocked visitor's page learns it at once, and they leave the online list.
        self.check_blocked(Some(visitor_id), ip)?;
        let now = self.now();
        let mut live = self.live();
        live.seen(visitor_id, now, self.online_timeout());
        Ok(live.invitations.get(visitor_id).cloned())
    }

    fn online_timeout(&self) -> SignedDuration {
        SignedDuration::from_secs(self.config.online_timeout_secs as i64)
    }

    /// Whether a heartbeat or page view came within `visitors.online_timeout_secs`.
    pub fn is_online(&self, visitor_id: &str) -> bool {
        let now = self.now();
        self.live()
            .on_site
            .get(visitor_id)
            .is_some_and(|on_site| now.duration_since(on_site.last_beat) <= self.online_timeout())
    }

    /// Forgets visitors gone from the site (and invitations they never saw) and the page-view rate
    /// limits nobody used lately, so memory follows the visitors online, not every visitor since the
    /// start; returns how many visitors were forgotten. Run periodically.
    pub fn forget_departed(&self) -> usize {
        self.page_view_limit.retain_recent();
        let now = self.now();
        self.live().forget_departed(now, self.online_timeout())
    }

    /// Visitors on the site now, longest there first.
    pub fn online(&self) -> Result<Vec<OnlineVisitor>> {
        let now = self.now();
        let timeout = self.online_timeout();
        let present: Vec<(String, OnSite, bool)> = {
            let mut live = self.live();
            live.forget_departed(now, timeout);
            live.on_site
                .iter()
                .map(|(id, on_site)| {
                    (
                        id.clone(),
                        on_site.clone(),
                        live.invitations.contains_key(id),
                    )
                })
                .collect()
        };
        let blocks = self.active_blocks()?;
        let mut visitors = Vec::with_capacity(present.len());
        for (id, on_site, invited) in present {
            let Ok(visitor) = self.profile(&id) else {
                continue;
            };
            if blocked(&blocks, Some(&id), visitor.ip) {
                continue;
            }
            visitors.push(OnlineVisitor {
                visitor,
                current_page: on_site.page,
                secs_on_site: now.duration_since(on_site.arrived).as_secs().max(0),
                invited,
            });
        }
        visitors.sort_by_key(|online| std::cmp::Reverse(online.secs_on_site));
        Ok(visitors)
    }

    /// An agent invites a visitor on the site to chat; the widget shows it at the next heartbeat.
    pub fn invite(&self, visitor_id: &str, agent: AccountId, message: &str) -> Result<Invitation> {
        let profile = self.profile(visitor_id)?;
        self.check_blocked(Some(visitor_id), profile.ip)?;
        if !self.is_online(visitor_id) {
            return Err(Error::InvalidInput(
                "this visitor is no longer on the site".into(),
            ));
        }
        let message = message.trim();
        check_length("message", message, MAX_INVITATION_CHARS)?;
        let account = self.accounts.account(agent)?;
        let invitation = Invitation {
            id: format!("i_{}", random_token(9)),
            agent,
            agent_name: account.display_name.clone(),
            message: if message.is_empty() {
                format!("您好，我是客服{}，有什么可以帮您？", account.display_name)
            } else {
                message.to_string()
            },
            at: self.now(),
        };
        self.live()
            .invitations
            .insert(visitor_id.to_string(), invitation.clone());
        Ok(invitation)
    }

    /// The visitor answers the invitation; an accepted one is returned so the desk can route the
    /// coming conversation to the inviting agent.
    pub fn answer_invitation(&self, visitor_id: &str, accept: bool) -> Result<Option<Invitation>> {
        let invitation = self.live().invitations.remove(visitor_id);
        match invitation {
            None => Err(Error::InvalidInput("no invitation is waiting".into())),
            Some(invitation) => Ok(accept.then_some(invitation)),
        }
    }

    /// Replaces the staff's tags and/or note.
    pub fn annotate(
        &self,
        visitor_id: &str,
        tags: Option<Vec<String>>,
        note: Option<String>,
    ) -> Result<VisitorProfile> {
        let mut profile = self.profile(visitor_id)?;
        if let Some(tags) = tags {
            let tags: BTreeSet<String> = tags
                .into_iter()
                .map(|tag| tag.trim().to_string())
                .filter(|tag| !tag.is_empty())
                .collect();
            if tags.len() > MAX_TAGS || tags.iter().any(|tag| tag.chars().count() > MAX_TAG_CHARS) {
                return Err(Error::InvalidInput(format!(
                    "at most {MAX_TAGS} tags of at most {MAX_TAG_CHARS} characters"
                )));
            }
            profile.tags = tags;
        }
        if let Some(note) = note {
            if note.chars().count() > MAX_NOTE_CHARS {
                return Err(Error::InvalidInput(format!(
                    "a note is at most {MAX_NOTE_CHARS} characters"
                )));
            }
            profile.note = note.trim().to_string();
        }
        self.visitors.put_profile(&profile)?;
        self.unit_of_work.make_durable()?;
        Ok(profile)
    }

    /// Ids of the conversations of this visitor and, when their identity is verified, of every other
    /// visitor (device) with the same identity, in no particular order.
    pub fn conversation_ids(&self, visitor_id: &str) -> Result<Vec<String>> {
        let mut ids = BTreeSet::new();
        let person = self.person_key(visitor_id);
        let owners = std::iter::once(ConversationOwner::Visitor(visitor_id))
            .chain(person.as_deref().map(ConversationOwner::Person));
        for owner in owners {
            ids.extend(self.visitors.conversations_of(owner)?);
        }
        Ok(ids.into_iter().collect())
    }

    /// The person a visitor's conversations are also filed under, when the host site verified who
    /// they are.
    fn person_key(&self, visitor_id: &str) -> Option<String> {
        self.profile(visitor_id)
            .ok()
            .and_then(|profile| profile.identity)
            .and_then(|identity| identity.person_key())
    }

    // ----- block list -----

    /// Refuses a blocked visitor or address with `visitor_blocked`.
    pub fn check_blocked(&self, visitor_id: Option<&str>, ip: Option<IpAddr>) -> Result<()> {
        if blocked(&self.active_blocks()?, visitor_id, ip) {
            return Err(Error::VisitorBlocked);
        }
        Ok(())
    }

    /// The blocks in force now.
    fn active_blocks(&self) -> Result<Vec<Block>> {
        let now = self.now();
        let mut blocks = self.visitors.blocks()?;
        blocks.retain(|block| block.active(now));
        Ok(blocks)
    }

    /// Every block, newest first, expired ones included (they no longer apply).
    pub fn blocks(&self) -> Result<Vec<Block>> {
        let mut blocks = self.visitors.blocks()?;
        blocks.reverse();
        Ok(blocks)
    }

    /// Adds a block; audited.
    pub fn block(&self, input: BlockInput, by: AccountId, actor: &Actor) -> Result<Block> {
        let reason = input.reason.trim().to_string();
        if reason.is_empty() || reason.chars().count() > MAX_BLOCK_REASON_CHARS {
            return Err(Error::InvalidInput(format!(
                "a block needs a reason of at most {MAX_BLOCK_REASON_CHARS} characters"
            )));
        }
        let ip_range = input
            .ip_range
            .as_deref()
            .map(str::trim)
            .filter(|range| !range.is_empty())
            .map(parse_range)
            .transpose()?;
        let visitor_id = input
            .visitor_id
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty());
        if visitor_id.is_none() && ip_range.is_none() {
            return Err(Error::InvalidInput(
                "block a `visitor_id`, an `ip_range`, or both".into(),
            ));
        }
        if let Some(id) = &visitor_id {
            self.ensure_known(id)?;
        }
        let now = self.now();
        if input.expires.is_some_and(|expires| expires <= now) {
            return Err(Error::InvalidInput("`expires` is in the past".into()));
        }
        let block = Block {
            id: self.visitors.new_block_id()?,
            visitor_id,
            ip_range,
            reason,
            by,
            created: now,
            expires: input.expires,
        };
        self.visitors.put_block(&block)?;
        self.accounts.audit(
            AuditKind::VisitorBlocked,
            actor.username.as_deref().unwrap_or_default(),
            actor,
            &describe_block(&block),
        )?;
        // Durable before it is acknowledged, with its audit entry.
        self.unit_of_work.make_durable()?;
        Ok(block)
    }

    /// Lifts a block; audited.
    pub fn unblock(&self, id: u64, actor: &Actor) -> Result<Block> {
        let block = self.visitors.block(id)?.ok_or(Error::BlockNotFound(id))?;
        self.visitors.remove_block(id)?;
        self.accounts.audit(
            AuditKind::VisitorUnblocked,
            actor.username.as_deref().unwrap_or_default(),
            actor,
            &describe_block(&block),
        )?;
        // Durable before it is acknowledged, with its audit entry.
        self.unit_of_work.make_durable()?;
        Ok(block)
    }
}

/// Files every new conversation under its visitor and, for a verified identity, its person.
impl DeskObserver for VisitorService {
    fn observe(&self, _at: Timestamp, facts: &[DeskFact]) -> Result<()> {
        let created: Vec<&Conversation> = facts
            .iter()
            .filter_map(|fact| match fact {
                DeskFact::Created { conversation } => Some(conversation),
                _ => None,
            })
            .collect();
        if created.is_empty() {
            return Ok(());
        }
        // One unit for the whole batch: on PostgreSQL, one commit however many conversations started
        // since the last batch, instead of one per entry.
        self.unit_of_work.run(|| {
            for conversation in &created {
                let visitor_id = conversation.visitor_id.as_str();
                self.visitors
                    .file_conversation(ConversationOwner::Visitor(visitor_id), &conversation.id)?;
                if let Some(person) = self.person_key(visitor_id) {
                    self.visitors
                        .file_conversation(ConversationOwner::Person(&person), &conversation.id)?;
                }
            }
            Ok(())
        })
    }
}

fn blocked(blocks: &[Block], visitor_id: Option<&str>, ip: Option<IpAddr>) -> bool {
    blocks.iter().any(|block| block.covers(visitor_id, ip))
}

fn describe_block(block: &Block) -> String {
    let mut parts = Vec::new();
    if let Some(visitor) = &block.visitor_id {
        parts.push(format!("visitor {visitor}"));
    }
    if let Some(range) = &block.ip_range {
        parts.push(format!("addresses {range}"));
    }
    let until = block
        .expires
        .map_or_else(|| "for good".to_string(), |at| format!("until {at}"));
    format!("{} {until}: {}", parts.join(" and "), block.reason)
}

/// Parses a block's range and refuses one wider than [`MIN_BLOCK_PREFIX_V4`] /
/// [`MIN_BLOCK_PREFIX_V6`] (IPv4-mapped IPv6 ranges count as the IPv4 range they map).
fn parse_range(text: &str) -> Result<ipnet::IpNet> {
    let range = text
        .parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map(|range| range.trunc())
        .map_err(|_| Error::InvalidInput(format!("`{text}` is not an address or a CIDR range")))?;
    let (prefix, widest, family) = match range {
        ipnet::IpNet::V4(v4) => (v4.prefix_len(), MIN_BLOCK_PREFIX_V4, "IPv4"),
        ipnet::IpNet::V6(v6)
            if v6.prefix_len() >= 96 && v6.network().to_ipv4_mapped().is_some() =>
        {
            (v6.prefix_len() - 96, MIN_BLOCK_PREFIX_V4, "IPv4")
        }
        ipnet::IpNet::V6(v6) => (v6.prefix_len(), MIN_BLOCK_PREFIX_V6, "IPv6"),
    };
    if prefix < widest {
        return Err(Error::InvalidInput(format!(
            "`{range}` is too wide a block: {family} ranges may be at most /{widest}"
        )));
    }
    Ok(range)
}

fn clean_page(page: PageInput, at: Timestamp) -> Result<PageView> {
    let url = page.url.trim();
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        return Err(Error::InvalidInput(format!(
            "a page `url` is 1 to {MAX_URL_CHARS} characters"
        )));
    }
    Ok(PageView {
        url: url.to_string(),
        // Titles come from the host site's pages, which the widget cannot shorten: cut, not refused.
        title: page
            .title
            .trim()
            .chars()
            .take(MAX_PAGE_TITLE_CHARS)
            .collect(),
        at,
    })
}

/// Browser, system and device from a user agent (woothee's rules, which know the Chinese browsers
/// too); WeChat's in-app browser is named, as it matters to a Chinese desk.
pub fn parse_user_agent(agent: &str) -> ClientInfo {
    let known = |value: &str| (!value.is_empty() && value != "UNKNOWN").then(|| value.to_string());
    let parsed = woothee::parser::Parser::new().parse(agent);
    let mut client = match parsed {
        Some(result) => ClientInfo {
            browser: known(result.name),
            browser_version: known(result.version),
            os: known(
                &format!("{} {}", system_name(result.os), result.os_version)
                    .replace(" UNKNOWN", ""),
            )
            .filter(|os| os != "UNKNOWN"),
            device: known(result.category).unwrap_or_else(|| "unknown".into()),
        },
        None => ClientInfo {
            device: "unknown".into(),
            ..ClientInfo::default()
        },
    };
    if let Some(version) = agent
        .split("MicroMessenger/")
        .nth(1)
        .map(|rest| rest.split([' ', '(']).next().unwrap_or_default())
    {
        client.browser = Some("微信".into());
        client.browser_version = Some(version.to_string()).filter(|v| !v.is_empty());
    }
    client
}

/// The system's name as people know it: woothee names Apple's mobile systems after the device
/// (`iPhone 17.0`), and the version is the system's, not the phone's.
fn system_name(woothee_os: &str) -> &str {
    match woothee_os {
        "iPhone" | "iPod" => "iOS",
        "iPad" => "iPadOS",
        "Mac OSX" => "macOS",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_name_browser_system_and_device() {
        let chrome = parse_user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36");
        assert_eq!(chrome.browser.as_deref(), Some("Chrome"));
        assert_eq!(chrome.device, "pc");
        assert!(chrome.os.unwrap().starts_with("Windows"));
        let wechat = parse_user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.44(0x18002c2f) NetType/WIFI Language/zh_CN");
        assert_eq!(wechat.browser.as_deref(), Some("微信"));
        assert_eq!(wechat.browser_version.as_deref(), Some("8.0.44"));
        assert_eq!(wechat.device, "smartphone");
        assert_eq!(
            wechat.os.as_deref(),
            Some("iOS 17.0"),
            "the system, not the phone"
        );
        let ipad = parse_user_agent("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1");
        assert!(
            ipad.os.as_deref().unwrap().starts_with("iPadOS"),
            "{ipad:?}"
        );
        assert_eq!(parse_user_agent("").device, "unknown");
    }

    #[test]
    fn ranges_accept_addresses_and_cidrs_and_refuse_the_rest() {
        assert_eq!(
            parse_range("203.0.113.7").unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert_eq!(
            parse_range("203.0.113.9/24").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert!(parse_range("203.0.113.0/33").is_err());
        assert_eq!(
            parse_range("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert!(parse_range("10.0.0.0/15").is_err());
        assert!(parse_range("0.0.0.0/0").is_err());
        assert!(parse_range("2001:db8:1::/48").is_ok());
        assert!(parse_range("2001:db8::/32").is_err());
        assert!(parse_range("::/0").is_err());
        assert!(parse_range("::ffff:10.0.0.0/112").is_ok());
        assert!(parse_range("::ffff:0.0.0.0/96").is_err());
        assert!(parse_range("everyone").is_err());
    }
}
