//! Sign-in (failure counters, captcha, TOTP), sessions with CSRF tokens, and visitor tokens.
//!
//! Order of checks at sign-in, and why:
//! 1. per-address rate limit (cheap, before any hashing);
//! 2. the locks of the client address and of (username, address) (`guard.rs`): a locked pair answers
//!    `account_locked` whatever the password, so the right password cannot be confirmed from there;
//!    the username itself is never locked, so nobody can lock its owner out;
//! 3. the captcha once the username failed often enough from anywhere: missing or wrong counts as a
//!    failure;
//! 4. the password (unknown names are verified against a decoy hash: same time, same answer);
//! 5. disabled accounts, then the TOTP or recovery code.
//!
//! Failures are counted per lower-cased username, existing or not, so answers never reveal whether a
//! name exists. Sign-ins to one username run one at a time, so parallel guesses meet the counters as
//! guesses sent one after another would.

use std::net::IpAddr;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::guard::{AddressKey, Refusal};
use super::{password, AccountService, Actor};
use crate::domain::{Account, AccountId, AccountView, AuditKind, PresenceStatus, SessionRecord};
use crate::error::{Error, Result};
use crate::services::captcha::Challenge;
use crate::services::secrets::random_token;

pub use crate::domain::VisitorGrant;

/// Bytes of randomness in a session token.
const SESSION_TOKEN_BYTES: usize = 32;
/// `last_seen` is written at most this often per session, not on every request.
const TOUCH_INTERVAL: SignedDuration = SignedDuration::from_secs(60);

/// A sign-in request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username, any case.
    pub username: String,
    /// Password.
    pub password: String,
    /// Id of the captcha challenge answered, when one is required.
    #[serde(default)]
    pub captcha_id: Option<String>,
    /// The captcha answer.
    #[serde(default)]
    pub captcha: Option<String>,
    /// TOTP code or a recovery code, when two-step verification is on.
    #[serde(default)]
    pub totp: Option<String>,
}

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The session token, for the cookie only.
    pub token: String,
    /// Must accompany every state-changing request as `X-CSRF-Token`.
    pub csrf_token: String,
    /// The account.
    pub account: AccountView,
}

/// A session as its owner sees it in "my sessions".
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Public id, for revoking.
    pub id: String,
    /// When it began.
    pub created: Timestamp,
    /// Last request.
    pub last_seen: Timestamp,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Browser at sign-in.
    pub user_agent: Option<String>,
    /// The session making this request.
    pub current: bool,
}

/// Who is calling, once the session checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account, fresh from storage.
    pub account: Account,
    /// Public id of the session.
    pub session_id: String,
    /// The session's CSRF token.
    pub csrf_token: String,
}

impl Caller {
    /// The caller as an audit actor.
    pub fn actor(&self, ip: Option<IpAddr>) -> Actor {
        Actor {
            username: Some(self.account.username.clone()),
            ip,
        }
    }
}

impl AccountService {
    /// Signs in; see the module docs for the order of checks.
    pub fn login(
        &self,
        request: &LoginRequest,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<LoginOutcome> {
        let actor = Actor { username: None, ip };
        if let Some(ip) = ip {
            if self.login_limiter.check_key(&ip).is_err() {
                return Err(Error::RateLimited);
            }
        }
        // Before any lookup: no account has a longer name, and nothing of an over-long input may
        // reach the failure counters or the audit log (each failure stores the name it was for).
        check_login_lengths(request)?;
        let username = request.username.trim().to_lowercase();
        let name_lock = Arc::clone(self.signing_in.lock().entry(username.clone()).or_default());
        let outcome = {
            let _one_at_a_time = name_lock.lock();
            self.login_admitted(&username, request, &actor, ip, user_agent)
        };
        let mut signing_in = self.signing_in.lock();
        // The map's own reference and ours: nobody else is waiting, so the entry can go.
        if Arc::strong_count(&name_lock) == 2 {
            signing_in.remove(&username);
        }
        outcome
    }

    /// Steps 2 to 5, between the guard's admission and its end.
    fn login_admitted(
        &self,
        username: &str,
        request: &LoginRequest,
        actor: &Actor,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<LoginOutcome> {
        let address = AddressKey::of(ip);
        match self.sign_in_guard.admit(username, address, self.now()) {
            Ok(()) => {}
            Err(Refusal::Locked(until)) => {
                self.audit(AuditKind::LoginFailed, username, actor, "locked")?;
                return Err(Error::AccountLocked { until });
            }
            Err(Refusal::Busy) => return Err(Error::RateLimited),
        }
        let outcome = self.login_as(username, request, actor, address, ip, user_agent);
        self.sign_in_guard.finish(address);
        outcome
    }

    fn login_as(
        &self,
        username: &str,
        request: &LoginRequest,
        actor: &Actor,
        address: AddressKey,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<LoginOutcome> {
        let now = self.now();
        if self.sign_in_guard.captcha_required(username, now) {
            let solved = match (&request.captcha_id, &request.captcha) {
                (Some(id), Some(answer)) => self.captchas.verify(id, answer, now),
                _ => false,
            };
            if !solved {
                let missing = request.captcha.is_none() || request.captcha_id.is_none();
                let refusal = if missing {
                    Error::CaptchaRequired
                } else {
                    Error::CaptchaInvalid
                };
                return Err(self.record_failure(username, actor, address, refusal)?);
            }
        }
        let account = self.account_by_username(username)?;
        let password_matches = match &account {
            Some(account) => password::verify_password(&request.password, &account.password_hash),
            None => {
                password::verify_password(&request.password, &self.decoy_hash);
                false
            }
        };
        let Some(account) = account.filter(|_| password_matches) else {
            return Err(self.record_failure(
                username,
                actor,
                address,
                Error::InvalidCredentials,
            )?);
        };
        if account.disabled {
            self.audit(AuditKind::LoginFailed, username, actor, "disabled")?;
            return Err(Error::AccountDisabled);
        }
        if account.two_factor.enabled() {
            let Some(code) = request
                .totp
                .as_deref()
                .filter(|code| !code.trim().is_empty())
            else {
                // The password was right: asking for the code is not a failure.
                return Err(Error::TotpRequired);
            };
            if !self.consume_second_factor(account.id, code)? {
                return Err(self.record_failure(username, actor, address, Error::TotpInvalid)?);
            }
        }
        self.sign_in_guard.succeed(username, address);
        let outcome = self.start_session(&account, ip, user_agent)?;
        self.note_login(account.id)?;
        if account.presence.status == PresenceStatus::Offline {
            self.change_presence(account.id, PresenceStatus::Online, false)?;
        }
        self.audit(AuditKind::LoginSucceeded, username, actor, "")?;
        self.unit_of_work.make_durable()?;
        Ok(outcome)
    }

    /// A fresh captcha challenge for the sign-in form.
    pub fn captcha_challenge(&self) -> Challenge {
        self.captchas.issue(self.now())
    }

    /// Whether the next sign-in as `username` must carry a captcha (the form asks before submitting).
    pub fn captcha_required(&self, username: &str) -> Result<bool> {
        Ok(self
            .sign_in_guard
            .captcha_required(&username.trim().to_lowercase(), self.now()))
    }

    /// Counts a failure and returns the error to answer with: `refusal`, or `account_locked` when this
    /// failure locked the (username, address) pair or the address.
    fn record_failure(
        &self,
        username: &str,
        actor: &Actor,
        address: AddressKey,
        refusal: Error,
    ) -> Result<Error> {
        let now = self.now();
        let (locked, pair_failures) = self.sign_in_guard.fail(username, address, now);
        let reason = refusal.code().as_str();
        self.audit(AuditKind::LoginFailed, username, actor, reason)?;
        let Some(until) = locked else {
            return Ok(refusal);
        };
        let from = actor
            .ip
            .map_or_else(|| "an unknown address".to_string(), |ip| ip.to_string());
        self.audit(
            AuditKind::AccountLocked,
            username,
            actor,
            &format!("{pair_failures} failures from {from}, until {until}"),
        )?;
        self.unit_of_work.make_durable()?;
        Ok(Error::AccountLocked { until })
    }

    /// Forgets the failed sign-ins of `username` (after an admin reset its password).
    pub(super) fn clear_login_failures(&self, username: &str) {
        self.sign_in_guard
            .forget_username(&username.trim().to_lowercase());
    }

    fn start_session(
        &self,
        account: &Account,
        ip: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<LoginOutcome> {
        let token = random_token(SESSION_TOKEN_BYTES);
        let now = self.now();
        let record = SessionRecord {
            id: public_session_id(&token),
            account: account.id,
            csrf_token: random_token(SESSION_TOKEN_BYTES),
            created: now,
            last_seen: now,
            ip: ip.map(|ip| ip.to_string()),
            user_agent: user_agent.map(|agent| agent.chars().take(200).collect()),
        };
        self.sessions.put_session(&token, &record)?;
        self.record_activity(account.id, now);
        Ok(LoginOutcome {
            token,
            csrf_token: record.csrf_token,
            account: account.view(),
        })
    }

    /// The caller behind a session token. Refreshes the idle timer and counts as activity for
    /// auto-away.
    ///
    /// Errors: [`Error::SessionExpired`] for an unknown, revoked or idle-expired token;
    /// [`Error::AccountDisabled`] when the account was disabled meanwhile.
    pub fn authenticate(&self, token: &str) -> Result<Caller> {
        let Some(mut record) = self.sessions.session(token)? else {
            return Err(Error::SessionExpired);
        };
        let now = self.now();
        let idle_limit = SignedDuration::from_mins(self.config.session_idle_minutes as i64);
        if now.duration_since(record.last_seen) > idle_limit {
            self.sessions.remove_session(token)?;
            return Err(Error::SessionExpired);
        }
        let account = self.account(record.account)?;
        if account.disabled {
            self.revoke_sessions_of(account.id, None)?;
            return Err(Error::AccountDisabled);
        }
        if now.duration_since(record.last_seen) > TOUCH_INTERVAL {
            record.last_seen = now;
            self.sessions.put_session(token, &record)?;
        }
        self.record_activity(account.id, now);
        let account = self.restore_from_auto_away(account)?;
        Ok(Caller {
            account,
            session_id: record.id,
            csrf_token: record.csrf_token,
        })
    }

    /// Ends the session behind `token`; the last session ending sets the presence to offline.
    pub fn logout(&self, caller: &Caller, ip: Option<IpAddr>) -> Result<()> {
        self.revoke_session(caller.account.id, &caller.session_id)?;
        if self.sessions_of(caller.account.id)?.is_empty() {
            self.change_presence(caller.account.id, PresenceStatus::Offline, false)?;
        }
        self.audit(
            AuditKind::Logout,
            &caller.account.username,
            &caller.actor(ip),
            "",
        )?;
        self.unit_of_work.make_durable()
    }

    /// The sessions of an account, newest first.
    pub fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>> {
        let mut sessions: Vec<SessionInfo> = self
            .sessions_of(caller.account.id)?
            .into_iter()
            .map(|record| SessionInfo {
                current: record.id == caller.session_id,
                id: record.id,
                created: record.created,
                last_seen: record.last_seen,
                ip: record.ip,
                user_agent: record.user_agent,
            })
            .collect();
        sessions.sort_by_key(|session| std::cmp::Reverse(session.created));
        Ok(sessions)
    }

    /// Ends one session of `account` by its public id.
    pub fn revoke_session(&self, account: AccountId, session_id: &str) -> Result<()> {
        let ended = self.sessions.remove_sessions_where(&|record| {
            record.account == account && record.id == session_id
        })?;
        if ended == 0 {
            return Err(Error::NotFound(format!("no session `{session_id}`")));
        }
        // A session ended from another device (a lost phone, say) must not come back after a crash:
        // durable before the answer.
        self.unit_of_work.make_durable()
    }

    /// Ends every session of `account` except `keep` (a public id); returns how many ended.
    pub(super) fn revoke_sessions_of(
        &self,
        account: AccountId,
        keep: Option<&str>,
    ) -> Result<usize> {
        self.sessions.remove_sessions_where(&|record| {
            record.account == account && keep != Some(record.id.as_str())
        })
    }

    fn sessions_of(&self, account: AccountId) -> Result<Vec<SessionRecord>> {
        let mut sessions = self.sessions.sessions()?;
        sessions.retain(|record| record.account == account);
        Ok(sessions)
    }

    /// Removes sessions idle past the limit, and the sign-in rate limits of addresses not seen lately;
    /// returns how many sessions. Run periodically.
    pub fn purge_expired_sessions(&self) -> Result<usize> {
        self.login_limiter.retain_recent();
        let now = self.now();
        self.sign_in_guard.purge(now);
        let idle_limit = SignedDuration::from_mins(self.config.session_idle_minutes as i64);
        self.sessions
            .remove_sessions_where(&|record| now.duration_since(record.last_seen) > idle_limit)
    }

    // ----- visitors -----

    /// A token for a new visitor of the chat page; it grants nothing but that visitor's own
    /// conversation.
    pub fn issue_visitor_token(&self) -> Result<(String, VisitorGrant)> {
        let token = random_token(SESSION_TOKEN_BYTES);
        let grant = VisitorGrant {
            visitor_id: format!("v_{}", random_token(9)),
            conversation: None,
            created: self.now(),
        };
        self.visitor_tokens.put_grant(&token, &grant)?;
        self.unit_of_work.make_durable()?;
        Ok((token, grant))
    }

    /// What a visitor token grants, if it is known and has not expired.
    pub fn visitor_grant(&self, token: &str) -> Result<Option<VisitorGrant>> {
        let grant = self.visitor_tokens.grant(token)?;
        Ok(grant.filter(|grant| !self.visitor_token_expired(grant)))
    }

    /// Scopes a visitor token to the conversation it opened. Called inside the desk turn that stores
    /// the conversation, whose unit of work commits (and makes durable) this write with it.
    pub fn bind_visitor_conversation(
        &self,
        token: &str,
        conversation: &str,
    ) -> Result<VisitorGrant> {
        let mut grant = self
            .visitor_tokens
            .grant(token)?
            .ok_or(Error::Unauthenticated)?;
        grant.conversation = Some(conversation.to_string());
        self.visitor_tokens.put_grant(token, &grant)?;
        Ok(grant)
    }
}

/// The public id of a session: the first 8 bytes of its token's BLAKE3 hash (the hash it is stored
/// under), in hex.
fn public_session_id(token: &str) -> String {
    blake3::hash(token.as_bytes())
        .as_bytes()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Refuses a sign-in whose fields are longer than any real one could be.
fn check_login_lengths(request: &LoginRequest) -> Result<()> {
    use crate::domain::limits::*;
    check_length("username", &request.username, MAX_LOGIN_USERNAME_CHARS)?;
    check_length("username", request.username.trim(), MAX_USERNAME_CHARS)?;
    check_length("password", &request.password, MAX_PASSWORD_CHARS)?;
    check_optional_length(
        "captcha_id",
        request.captcha_id.as_deref(),
        MAX_LOGIN_CODE_CHARS,
    )?;
    check_optional_length("captcha", request.captcha.as_deref(), MAX_LOGIN_CODE_CHARS)?;
    check_optional_length("totp", request.totp.as_deref(), MAX_LOGIN_CODE_CHARS)
}
