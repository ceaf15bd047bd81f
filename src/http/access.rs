//! Who is calling and what they may do. Every permission decision goes through [`authorize`]; the
//! extractors here only establish who the caller is (session cookie, CSRF header, client address).
//!
//! - [`SignedIn`]: a valid session; state-changing methods must carry the session's `X-CSRF-Token`.
//!   Still allowed while the password must be changed or 2FA enrolment is pending, so that those
//!   screens work.
//! - [`Authenticated`]: [`SignedIn`] and nothing pending; what every other route takes.
//! - [`MaybeSignedIn`]: public routes that show more to some callers (drafts to editors).
//! - [`Visitor`]: a visitor token (`Authorization: Bearer v1.<token>`), scoped to one visitor.
//! - [`ApiChannel`]: an API channel's token (`Authorization: Bearer ch1.<token>`): the app's server.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum_extra::extract::CookieJar;

use crate::domain::{Account, AccountId, Conversation, GroupId, ReplyScope, Role};
use crate::error::Error;
use crate::http::AppState;
use crate::services::accounts::{Caller, VisitorGrant};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "kefu_session";
/// Header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Prefix of visitor tokens in the `Authorization: Bearer` header.
pub const VISITOR_TOKEN_PREFIX: &str = "v1.";

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Create, replace and delete knowledge-base articles (editors).
    EditArticles,
    /// See draft articles and the report of broken files (editors).
    ReadDrafts,
    /// Create and change accounts and skill groups (admins).
    ManageAccounts,
    /// Read the audit log (admins).
    ReadAudit,
    /// Watch and steer a skill group's conversations (its supervisors).
    SuperviseGroup(GroupId),
    /// Work at the agent desk: conversations, quick replies, suggestions (agents, supervisors).
    UseAgentDesk,
    /// Write to the visitor, transfer, invite, end: the serving agent, a supervisor of the
    /// conversation's group, an admin.
    ServeConversation {
        /// The serving agent.
        agent: Option<AccountId>,
        /// The conversation's group.
        group: Option<GroupId>,
    },
    /// See team figures: adoption of suggestions, deflection, statistics (supervisors).
    ViewTeamStatistics,
    /// Block and unblock visitors and addresses (supervisors).
    ManageBlocks,
    /// Create, change or delete quick replies of this scope: supervisors for the team, a group's
    /// supervisors for the group, the owner for personal replies.
    ManageReplies(ReplyScope),
    /// See and use quick replies of this scope: the desk for team replies, members for a group's, the
    /// owner for personal ones.
    ReadReplies(ReplyScope),
    /// Read the whole conversation and write internal notes: as above, plus invited colleagues.
    AssistConversation {
        /// The serving agent.
        agent: Option<AccountId>,
        /// Whether the caller was invited.
        invited: bool,
        /// The conversation's group.
        group: Option<GroupId>,
    },
}

impl Permission {
    /// Reading `conversation` and writing internal notes in it, as `caller`.
    pub fn assist(conversation: &Conversation, caller: AccountId) -> Permission {
        Permission::AssistConversation {
            agent: conversation.agent,
            invited: conversation.invited.contains(&caller),
            group: conversation.group,
        }
    }

    /// Acting in `conversation` towards the visitor.
    pub fn serve(conversation: &Conversation) -> Permission {
        Permission::ServeConversation {
            agent: conversation.agent,
            group: conversation.group,
        }
    }
}

/// Decides whether `account` may use `permission`: admins everything, editors the knowledge base,
/// supervisors the groups they belong to, agents the desk.
///
/// Returns [`Error::Forbidden`] when it may not.
pub fn authorize(account: &Account, permission: Permission) -> Result<(), Error> {
    if account.has_role(Role::Admin) {
        return Ok(());
    }
    let allowed = match permission {
        Permission::EditArticles | Permission::ReadDrafts => account.has_role(Role::Editor),
        Permission::ManageAccounts | Permission::ReadAudit => false,
        Permission::SuperviseGroup(group) => {
            account.has_role(Role::Supervisor) && account.groups.contains(&group)
        }
        Permission::UseAgentDesk => {
            account.has_role(Role::Agent) || account.has_role(Role::Supervisor)
        }
        Permission::ViewTeamStatistics | Permission::ManageBlocks => {
            account.has_role(Role::Supervisor)
        }
        Permission::ManageReplies(scope) => match scope {
            ReplyScope::Team => account.has_role(Role::Supervisor),
            ReplyScope::Group { group } => supervises(account, Some(group)),
            ReplyScope::Personal { owner } => owner == account.id,
        },
        Permission::ReadReplies(scope) => match scope {
            ReplyScope::Team => account.has_role(Role::Agent) || account.has_role(Role::Supervisor),
            ReplyScope::Group { group } => account.groups.contains(&group),
            ReplyScope::Personal { owner } => owner == account.id,
        },
        Permission::ServeConversation { agent, group } => {
            agent == Some(account.id) || supervises(account, group)
        }
        Permission::AssistConversation {
            agent,
            invited,
            group,
        } => agent == Some(account.id) || invited || supervises(account, group),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "`{}` may not {}",
            account.username,
            describe(permission)
        )))
    }
}

/// The quick-reply scopes `account` may see: the team's, their groups', their own.
pub fn readable_reply_scopes(account: &Account) -> Vec<ReplyScope> {
    let mut scopes = vec![ReplyScope::Team];
    scopes.extend(
        account
            .groups
            .iter()
            .map(|group| ReplyScope::Group { group: *group }),
    );
    scopes.push(ReplyScope::Personal { owner: account.id });
    scopes
        .into_iter()
        .filter(|scope| authorize(account, Permission::ReadReplies(*scope)).is_ok())
        .collect()
}

fn supervises(account: &Account, group: Option<GroupId>) -> bool {
    account.has_role(Role::Supervisor) && group.is_some_and(|group| account.groups.contains(&group))
}

fn describe(permission: Permission) -> &'static str {
    match permission {
        Permission::EditArticles => "edit articles",
        Permission::ReadDrafts => "read drafts",
        Permission::ManageAccounts => "manage accounts",
        Permission::ReadAudit => "read the audit log",
        Permission::SuperviseGroup(_) => "supervise this group",
        Permission::UseAgentDesk => "use the agent desk",
        Permission::ViewTeamStatistics => "see team statistics",
        Permission::ManageBlocks => "manage the block list",
        Permission::ManageReplies(_) => "manage these quick replies",
        Permission::ReadReplies(_) => "see these quick replies",
        Permission::ServeConversation { .. } => "act in this conversation",
        Permission::AssistConversation { .. } => "see this conversation",
    }
}

/// The `User-Agent` header, if it is text.
pub fn user_agent(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// The client address: the TCP peer (`ConnectInfo`, absent in in-process tests), unless the peer is
/// one of `server.trusted_proxies`; then the rightmost `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left were written by the client and prove nothing).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, &state.trusted_proxies)))
    }
}

fn client_ip(parts: &Parts, trusted: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = peer_ip(parts)?;
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|entry| entry.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

fn peer_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip())
}

/// A valid session, CSRF-checked; see the module docs.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Caller);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = session_token(parts).ok_or(Error::Unauthenticated)?;
        let caller = state.accounts.authenticate(&token)?;
        if !is_safe_method(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default();
            // Comparing hashes keeps the comparison's time independent of where the strings differ.
            if blake3::hash(sent.as_bytes()) != blake3::hash(caller.csrf_token.as_bytes()) {
                return Err(Error::CsrfFailed);
            }
        }
        Ok(SignedIn(caller))
    }
}

/// A valid session with nothing pending; see the module docs.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let SignedIn(caller) = SignedIn::from_request_parts(parts, state).await?;
        nothing_pending(&caller)?;
        Ok(Authenticated(caller))
    }
}

/// Refuses a caller who must still change their password or enrol in two-step verification.
fn nothing_pending(caller: &Caller) -> crate::error::Result<()> {
    if caller.account.must_change_password {
        return Err(Error::PasswordChangeRequired);
    }
    if caller.account.two_factor.required && !caller.account.two_factor.enabled() {
        return Err(Error::TwoFactorSetupRequired);
    }
    Ok(())
}

/// The caller behind a session token as [`Authenticated`] would find it now. For WebSockets, which
/// are authenticated once at the handshake but may live for hours: each command checks again, so a
/// revoked session, a disabled account or a changed role stops working at once.
pub fn current_caller(state: &AppState, token: &str) -> crate::error::Result<Caller> {
    let caller = state.accounts.authenticate(token)?;
    nothing_pending(&caller)?;
    Ok(caller)
}

/// The caller if a valid session came with the request, else nobody; never rejects for a missing
/// or stale cookie.
#[derive(Debug, Clone)]
pub struct MaybeSignedIn(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeSignedIn {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Authenticated::from_request_parts(parts, state).await {
            Ok(Authenticated(caller)) => Ok(MaybeSignedIn(Some(caller))),
            Err(Error::Internal(message)) => Err(Error::Internal(message)),
            Err(Error::Storage(message)) => Err(Error::Storage(message)),
            Err(_) => Ok(MaybeSignedIn(None)),
        }
    }
}

impl MaybeSignedIn {
    /// Whether the caller may use `permission`; nobody may use any.
    pub fn may(&self, permission: Permission) -> bool {
        self.0
            .as_ref()
            .is_some_and(|caller| authorize(&caller.account, permission).is_ok())
    }

    /// Like [`authorize`], answering `unauthenticated` when nobody is signed in.
    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        match &self.0 {
            Some(caller) => authorize(&caller.account, permission),
            None => Err(Error::Unauthenticated),
        }
    }
}

/// Proof, as an extractor, that the caller may edit articles.
#[derive(Debug, Clone)]
pub struct CanEditArticles(pub Caller);

impl FromRequestParts<AppState> for CanEditArticles {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        authorize(&caller.account, Permission::EditArticles)?;
        Ok(CanEditArticles(caller))
    }
}

/// Proof, as an extractor, that the caller is an admin (manages accounts and groups).
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Authenticated(caller) = Authenticated::from_request_parts(parts, state).await?;
        authorize(&caller.account, Permission::ManageAccounts)?;
        Ok(Admin(caller))
    }
}

/// A visitor, identified by the token issued to their chat page.
#[derive(Debug, Clone)]
pub struct Visitor {
    /// The raw token, to rebind it to a conversation.
    pub token: String,
    /// What it grants.
    pub grant: VisitorGrant,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = visitor_token(&parts.headers).ok_or(Error::Unauthenticated)?;
        let grant = state
            .accounts
            .visitor_grant(&token)?
            .ok_or(Error::Unauthenticated)?;
        Ok(Visitor { token, grant })
    }
}

impl Visitor {
    /// Refuses any conversation but the one the token is scoped to.
    pub fn authorize_conversation(&self, conversation: &str) -> Result<(), Error> {
        if self.grant.conversation.as_deref() == Some(conversation) {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "a visitor may only access their own conversation".into(),
            ))
        }
    }
}

/// The app's server of an API channel, by the channel token (`Authorization: Bearer ch1.<token>`);
/// a disabled channel's token is refused like an unknown one.
#[derive(Debug, Clone)]
pub struct ApiChannel(pub crate::domain::Channel);

impl FromRequestParts<AppState> for ApiChannel {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(|value| {
                value
                    .trim()
                    .strip_prefix(crate::channels::CHANNEL_TOKEN_PREFIX)
            })
            .ok_or(Error::Unauthenticated)?;
        state
            .channels
            .api_channel_by_token(token)
            .map(ApiChannel)
            .ok_or(Error::Unauthenticated)
    }
}

/// The visitor token of `Authorization: Bearer v1.<token>`, without its prefix.
pub fn visitor_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|value| value.trim().strip_prefix(VISITOR_TOKEN_PREFIX))
        .map(str::to_string)
}

fn session_token(parts: &Parts) -> Option<String> {
    session_token_in(&parts.headers)
}

/// The session token of the `Cookie` header, if any.
pub fn session_token_in(headers: &axum::http::HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|cookie| cookie.value().to_string())
        .filter(|token| !token.is_empty())
}

fn is_safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::{Presence, PresenceStatus, Settings, TwoFactor};

    fn account(roles: &[Role], groups: &[u64]) -> Account {
        Account {
            id: AccountId(1),
            username: "someone".into(),
            display_name: "someone".into(),
            roles: roles.iter().copied().collect(),
            groups: groups
                .iter()
                .map(|id| GroupId(*id))
                .collect::<BTreeSet<_>>(),
            max_concurrent: 5,
            disabled: false,
            password_hash: String::new(),
            must_change_password: false,
            two_factor: TwoFactor::default(),
            settings: Settings::default(),
            avatar: None,
            presence: Presence {
                status: PresenceStatus::Offline,
                since: jiff::Timestamp::UNIX_EPOCH,
                automatic: false,
            },
            created: jiff::Timestamp::UNIX_EPOCH,
            employee_no: String::new(),
            last_login: None,
        }
    }

    #[test]
    fn each_role_gets_exactly_its_permissions() {
        let admin = account(&[Role::Admin], &[]);
        let editor = account(&[Role::Editor], &[]);
        let agent = account(&[Role::Agent], &[1]);
        let supervisor = account(&[Role::Supervisor], &[1]);
        let all = [
            Permission::EditArticles,
            Permission::ReadDrafts,
            Permission::ManageAccounts,
            Permission::ReadAudit,
            Permission::SuperviseGroup(GroupId(1)),
            Permission::SuperviseGroup(GroupId(2)),
            Permission::UseAgentDesk,
        ];
        let allowed = |account: &Account| -> Vec<Permission> {
            all.iter()
                .copied()
                .filter(|permission| authorize(account, *permission).is_ok())
                .collect()
        };
        assert_eq!(allowed(&admin), all.to_vec());
        assert_eq!(
            allowed(&editor),
            vec![Permission::EditArticles, Permission::ReadDrafts]
        );
        assert_eq!(allowed(&agent), vec![Permission::UseAgentDesk]);
        assert_eq!(
            allowed(&supervisor),
            vec![
                Permission::SuperviseGroup(GroupId(1)),
                Permission::UseAgentDesk
            ]
        );
    }
}
