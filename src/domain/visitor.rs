//! What the desk knows about a visitor (访客信息): where they come from, what they browse, who the host
//! site says they are, and the staff's tags and note. Also the block list (黑名单) and proactive
//! invitations. Plain data; rules live in `services::visitors`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::AccountId;

/// Approximate place of an address, from the offline database; every part may be unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Location {
    /// Country, e.g. 中国.
    pub country: Option<String>,
    /// Province, e.g. 广东省.
    pub province: Option<String>,
    /// City, e.g. 深圳市.
    pub city: Option<String>,
    /// Network operator, e.g. 电信.
    pub isp: Option<String>,
}

/// Browser, system and device, from the user agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientInfo {
    /// Browser name, e.g. Chrome.
    pub browser: Option<String>,
    /// Browser version.
    pub browser_version: Option<String>,
    /// Operating system, e.g. Windows 10, iPhone.
    pub os: Option<String>,
    /// `pc`, `smartphone`, `mobilephone`, `appliance`, `crawler`, `misc` (HTTP libraries) or `unknown`.
    pub device: String,
}

/// Who the host site says the visitor is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SiteIdentity {
    /// The site that vouched (its id in `visitors.sites`).
    pub site: String,
    /// The site's own user id.
    pub user_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Member level, e.g. 金卡会员.
    pub member_level: Option<String>,
    /// Signed with the site's secret; unverified identities are only what the page claimed.
    pub verified: bool,
    /// When it was given.
    pub at: Timestamp,
}

impl SiteIdentity {
    /// Key that joins the visitors of one verified person across devices.
    pub fn person_key(&self) -> Option<String> {
        self.verified
            .then(|| format!("{}:{}", self.site, self.user_id))
    }
}

/// A visitor as the staff see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorProfile {
    /// Visitor id (`v_…`).
    pub id: String,
    /// `web`, `app`, `wechat` (official account), `api`, or what the widget named.
    pub channel: String,
    /// Client address (X-Forwarded-For only from trusted proxies).
    #[schema(value_type = Option<String>)]
    pub ip: Option<IpAddr>,
    /// Approximate location of `ip`.
    pub location: Location,
    /// The raw user agent.
    pub user_agent: Option<String>,
    /// Parsed user agent.
    pub client: ClientInfo,
    /// What the host site said about them.
    pub identity: Option<SiteIdentity>,
    /// The staff's tags.
    pub tags: BTreeSet<String>,
    /// The staff's note.
    pub note: String,
    /// First arrival.
    pub first_seen: Timestamp,
    /// Latest request.
    pub last_seen: Timestamp,
}

/// A page the visitor opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PageView {
    /// Address.
    pub url: String,
    /// Title.
    pub title: String,
    /// When it was opened.
    pub at: Timestamp,
}

/// An entry of the block list: a visitor, an address range, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Block {
    /// Id.
    pub id: u64,
    /// The blocked visitor.
    pub visitor_id: Option<String>,
    /// The blocked addresses.
    #[schema(value_type = Option<String>)]
    pub ip_range: Option<ipnet::IpNet>,
    /// Why (staff only).
    pub reason: String,
    /// Who blocked.
    pub by: AccountId,
    /// When.
    pub created: Timestamp,
    /// Until when; `None` for good.
    pub expires: Option<Timestamp>,
}

impl Block {
    /// Whether it still applies at `now`.
    pub fn active(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|expires| expires > now)
    }

    /// Whether it applies to this visitor or address.
    pub fn covers(&self, visitor_id: Option<&str>, ip: Option<IpAddr>) -> bool {
        let visitor = self.visitor_id.is_some()
            && visitor_id.is_some()
            && self.visitor_id.as_deref() == visitor_id;
        let address = match (self.ip_range, ip) {
            (Some(range), Some(ip)) => range.contains(&ip),
            _ => false,
        };
        visitor || address
    }
}

/// An agent's proactive invitation to chat (主动邀请), shown by the widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invitation {
    /// Id.
    pub id: String,
    /// The inviting agent.
    pub agent: AccountId,
    /// Their display name.
    pub agent_name: String,
    /// The greeting shown.
    pub message: String,
    /// When.
    pub at: Timestamp,
}

/// What a visitor token grants: one visitor, and the conversation it opened once there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VisitorGrant {
    /// The visitor.
    pub visitor_id: String,
    /// The conversation the token is scoped to.
    pub conversation: Option<String>,
    /// Issue time.
    pub created: Timestamp,
}
