//! Accounts, skill groups, sign-in, sessions, personal settings, presence and the audit log.
//!
//! [`AccountService`] is synchronous: its calls are short database operations through its repositories
//! (`storage::accounts`), except password hashing (argon2, tens of milliseconds), so the HTTP layer runs
//! them on the blocking pool.
//!
//! - `mod.rs`: the service, first-start bootstrap, admin operations on accounts and groups, audit.
//! - `auth.rs`: sign-in with captcha and TOTP; sessions and CSRF; visitor tokens.
//! - `guard.rs`: failed sign-in counters per username, per (username, address) and per address.
//! - `profile.rs`: what an account changes itself: password, settings, avatar, presence, 2FA enrolment.
//! - `password.rs`: hashing and password rules.

mod auth;
mod guard;
mod issuance;
mod password;
mod profile;

use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiff::Timestamp;
use serde::Deserialize;

use crate::config::AccountsConfig;
use crate::domain::{
    Account, AccountId, AccountView, AuditEntry, AuditKind, GroupId, GroupRouting, Presence,
    PresenceChange, PresenceStatus, Role, Settings, SkillGroup, TwoFactor,
};
use crate::error::{Error, Result};
use crate::services::captcha::{CaptchaSource, Captchas};
use crate::services::clock::Clock;
use crate::services::secrets::random_token;
use crate::storage::{
    AccountRepository, AuditRepository, SessionRepository, Store, StoredAccounts, StoredVisitors,
    UnitOfWork, VisitorTokenRepository,
};

pub use auth::{Caller, LoginOutcome, LoginRequest, SessionInfo, VisitorGrant};
pub use password::{check_password_rules, MIN_PASSWORD_CHARS};
pub use profile::{totp_code, AvatarImage, SettingsPatch, TwoFactorSetup};

/// Username of the account created at first start.
pub const BOOTSTRAP_ADMIN: &str = "admin";
use crate::domain::limits::{MAX_DISPLAY_NAME_CHARS, MAX_GREETING_CHARS, MAX_GROUP_NAME_CHARS};
/// Audit entries read at a time while filtering the log.
const AUDIT_PAGE: usize = 256;

/// Accounts and everything about them.
pub struct AccountService {
    /// Only handed on (`store()`), for wiring the other services' repositories.
    store: Store,
    accounts: Arc<dyn AccountRepository>,
    sessions: Arc<dyn SessionRepository>,
    audit_trail: Arc<dyn AuditRepository>,
    visitor_tokens: Arc<dyn VisitorTokenRepository>,
    unit_of_work: UnitOfWork,
    clock: Arc<dyn Clock>,
    config: AccountsConfig,
    captchas: Captchas,
    login_limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Failed sign-ins per username, per (username, address) and per address; memory only.
    sign_in_guard: guard::SignInGuard,
    /// Last request of each signed-in account, for auto-away; memory only, like presence timers.
    activity: Mutex<HashMap<AccountId, Timestamp>>,
    /// When this service opened: an agent's idle time counts from here at the earliest, since their
    /// activity before (on this process before a restart, or on a cluster's previous leader) is unknown.
    opened_at: Timestamp,
    /// Serialises read-modify-write of account records; sign-ins and settings are rare enough.
    write_lock: Mutex<()>,
    /// One lock per username being signed in to, held from the lockout check to the recorded outcome:
    /// otherwise parallel attempts all pass the check before the first failure is counted.
    signing_in: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Verified against when the username is unknown, so that both cases take the same time.
    decoy_hash: String,
    /// Presence changes, for routing (an agent going offline gives back their conversations).
    presence_events: tokio::sync::broadcast::Sender<PresenceChange>,
    /// Visitor tokens and captchas issued per address.
    issuance: issuance::IssueLimits,
}

impl std::fmt::Debug for AccountService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AccountService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What [`AccountService::open`] did at first start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// Accounts existed already.
    Existing,
    /// `admin` was created with the configured password.
    CreatedWithConfiguredPassword,
    /// `admin` was created with this random password, to be shown once.
    CreatedWithRandomPassword(String),
}

/// A new account as an admin describes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Sign-in name: 2-32 of `a-z 0-9 . _ -`, case-insensitive.
    pub username: String,
    /// Shown to visitors; defaults to the username.
    pub display_name: Option<String>,
    /// Initial password; a random one is generated (and returned once) when absent.
    pub password: Option<String>,
    /// Roles; defaults to `agent`.
    #[serde(default)]
    pub roles: Option<BTreeSet<Role>>,
    /// Skill groups.
    #[serde(default)]
    pub groups: BTreeSet<GroupId>,
    /// Concurrent conversations; defaults to the configured default.
    pub max_concurrent: Option<u32>,
    /// Employee number (工号): up to 32 of letters, digits, `-` and `_`, unique; none when absent.
    #[serde(default)]
    pub employee_no: Option<String>,
}

/// Changes an admin makes to an account; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New roles.
    pub roles: Option<BTreeSet<Role>>,
    /// New skill groups.
    pub groups: Option<BTreeSet<GroupId>>,
    /// New concurrency limit.
    pub max_concurrent: Option<u32>,
    /// Disable (true) or enable again (false).
    pub disabled: Option<bool>,
    /// Require two-step verification.
    pub two_factor_required: Option<bool>,
    /// New employee number (工号); `""` removes it.
    pub employee_no: Option<String>,
}

/// A skill group as an admin describes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupInput {
    /// Unique name.
    pub name: String,
    /// What the group handles.
    #[serde(default)]
    pub description: String,
}

/// Filters of the audit log.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct AuditQuery {
    /// Only this account.
    pub account: Option<String>,
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only entries at or after this time.
    pub from: Option<Timestamp>,
    /// Only entries before this time.
    pub to: Option<Timestamp>,
    /// Only entries before this sequence number (paging backwards).
    pub before: Option<u64>,
    /// At most this many entries, newest first (default 100, at most 1000).
    pub limit: Option<usize>,
}

/// Who did something, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// Username of the caller, when signed in.
    pub username: Option<String>,
    /// Client address.
    pub ip: Option<IpAddr>,
}

impl AccountService {
    /// Opens the service over `store`; at first start creates `admin` (see [`Bootstrap`]).
    pub fn open(
        store: Store,
        config: AccountsConfig,
        clock: Arc<dyn Clock>,
        captcha: Box<dyn CaptchaSource>,
    ) -> Result<(AccountService, Bootstrap)> {
        let per_minute =
            NonZeroU32::new(config.login_attempts_per_minute.max(1)).expect("max(1) is never zero");
        let opened_at = clock.now();
        let stored_accounts = Arc::new(StoredAccounts::new(&store));
        let service = AccountService {
            accounts: stored_accounts.clone(),
            sessions: stored_accounts.clone(),
            audit_trail: stored_accounts,
            visitor_tokens: Arc::new(StoredVisitors::new(&store)),
            unit_of_work: UnitOfWork::new(&store),
            store,
            clock,
            captchas: Captchas::new(captcha),
            login_limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            sign_in_guard: guard::SignInGuard::new(guard::Limits {
                captcha_after: config.captcha_after_failures,
                pair_limit: config.lockout_failures.max(1),
                address_limit: config.address_lockout_failures.max(1),
                window: jiff::SignedDuration::from_mins(config.lockout_minutes as i64),
            }),
            activity: Mutex::new(HashMap::new()),
            opened_at,
            signing_in: Mutex::new(HashMap::new()),
            write_lock: Mutex::new(()),
            decoy_hash: password::hash_password(&random_token(12))?,
            presence_events: tokio::sync::broadcast::channel(1024).0,
            issuance: issuance::IssueLimits::new(&config),
            config,
        };
        let bootstrap = service.bootstrap_admin()?;
        Ok((service, bootstrap))
    }

    fn bootstrap_admin(&self) -> Result<Bootstrap> {
        if self.accounts.has_accounts()? {
            return Ok(Bootstrap::Existing);
        }
        let (password, outcome) = match &self.config.admin_password {
            Some(password) => (password.clone(), Bootstrap::CreatedWithConfiguredPassword),
            None => {
                let password = random_password();
                (
                    password.clone(),
                    Bootstrap::CreatedWithRandomPassword(password),
                )
            }
        };
        let new_admin = NewAccount {
            username: BOOTSTRAP_ADMIN.to_string(),
            display_name: Some("管理员".to_string()),
            password: Some(password),
            roles: Some(Role::ALL.into_iter().collect()),
            groups: BTreeSet::new(),
            max_concurrent: None,
            employee_no: None,
        };
        // The configured password is the operator's choice; the rules apply when it is changed.
        self.insert_account(new_admin, false)?;
        self.audit(
            AuditKind::AccountCreated,
            BOOTSTRAP_ADMIN,
            &Actor::default(),
            "first start",
        )?;
        self.unit_of_work.make_durable()?;
        Ok(outcome)
    }

    /// The clock the service reads.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The configuration in force.
    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    // ----- accounts (admin) -----

    /// Every account, by id.
    pub fn list_accounts(&self) -> Result<Vec<AccountView>> {
        Ok(self
            .accounts
            .accounts()?
            .iter()
            .map(Account::view)
            .collect())
    }

    /// Enabled accounts whose presence is online.
    pub fn online_agents(&self) -> Result<Vec<Account>> {
        self.accounts_present(|status| status == PresenceStatus::Online)
    }

    /// Enabled accounts at work: online, busy or away (not offline).
    pub fn present_agents(&self) -> Result<Vec<Account>> {
        self.accounts_present(|status| status != PresenceStatus::Offline)
    }

    fn accounts_present(&self, wanted: impl Fn(PresenceStatus) -> bool) -> Result<Vec<Account>> {
        Ok(self
            .accounts
            .accounts()?
            .into_iter()
            .filter(|account| !account.disabled && wanted(account.presence.status))
            .collect())
    }

    /// One account.
    pub fn account(&self, id: AccountId) -> Result<Account> {
        self.accounts
            .account(id)?
            .ok_or(Error::AccountNotFound(id.0))
    }

    /// The account signed in as `username`, ignoring case.
    pub fn account_by_username(&self, username: &str) -> Result<Option<Account>> {
        let Some(id) = self.accounts.account_id_by_username(username)? else {
            return Ok(None);
        };
        self.accounts.account(id)
    }

    /// Creates an account; returns it and the initial password when one was generated. The account must
    /// change its password at first sign-in.
    pub fn create_account(
        &self,
        new_account: NewAccount,
        actor: &Actor,
    ) -> Result<(AccountView, Option<String>)> {
        let generated = new_account.password.is_none().then(random_password);
        let mut new_account = new_account;
        if let Some(password) = &generated {
            new_account.password = Some(password.clone());
        }
        let username = new_account.username.clone();
        let account = self.insert_account(new_account, true)?;
        let roles = roles_text(&account.roles);
        self.audit(AuditKind::AccountCreated, &username, actor, &roles)?;
        self.unit_of_work.make_durable()?;
        Ok((account.view(), generated))
    }

    fn insert_account(&self, new_account: NewAccount, check_rules: bool) -> Result<Account> {
        let username = validate_username(&new_account.username)?;
        let password = new_account.password.unwrap_or_default();
        if check_rules {
            check_password_rules(&username, &password)?;
        }
        let display_name = match new_account.display_name {
            Some(name) => validate_display_name(&name)?,
            None => username.clone(),
        };
        let roles = new_account
            .roles
            .unwrap_or_else(|| BTreeSet::from([Role::Agent]));
        if roles.is_empty() {
            return Err(Error::InvalidInput(
                "an account needs at least one role".into(),
            ));
        }
        self.check_groups_exist(&new_account.groups)?;
        let employee_no = validate_employee_no(new_account.employee_no.as_deref().unwrap_or(""))?;
        let now = self.now();
        let account = Account {
            id: AccountId(self.accounts.new_id()?),
            username: username.clone(),
            display_name,
            roles,
            groups: new_account.groups,
            max_concurrent: validate_max_concurrent(
                new_account
                    .max_concurrent
                    .unwrap_or(self.config.default_max_concurrent),
            )?,
            disabled: false,
            password_hash: password::hash_password(&password)?,
            must_change_password: true,
            two_factor: TwoFactor::default(),
            settings: Settings::default(),
            avatar: None,
            presence: Presence {
                status: PresenceStatus::Offline,
                since: now,
                automatic: false,
            },
            created: now,
            employee_no,
            last_login: None,
        };
        let _guard = self.write_lock.lock();
        self.ensure_employee_no_free(&account.employee_no, None)?;
        if !self.accounts.claim_username(&username, account.id)? {
            return Err(Error::UsernameTaken(username));
        }
        self.accounts.put_account(&account)?;
        Ok(account)
    }

    /// Applies an admin's changes to an account.
    pub fn update_account(
        &self,
        id: AccountId,
        patch: AccountPatch,
        actor: &Actor,
    ) -> Result<AccountView> {
        if let Some(groups) = &patch.groups {
            self.check_groups_exist(groups)?;
        }
        let mut events = Vec::new();
        let employee_no = patch
            .employee_no
            .as_deref()
            .map(validate_employee_no)
            .transpose()?;
        let group_names = self.group_names()?;
        let updated = self.modify_account(id, |account| {
            let mut changes = Vec::new();
            if let Some(name) = &patch.display_name {
                let name = validate_display_name(name)?;
                if name != account.display_name {
                    changes.push(format!("display_name: {} → {name}", account.display_name));
                    account.display_name = name;
                }
            }
            if let Some(number) = &employee_no {
                if *number != account.employee_no {
                    self.ensure_employee_no_free(number, Some(account.id))?;
                    changes.push(format!(
                        "employee_no: {} → {number}",
                        or_none(&account.employee_no)
                    ));
                    account.employee_no = number.clone();
                }
            }
            if let Some(roles) = &patch.roles {
                if roles.is_empty() {
                    return Err(Error::InvalidInput(
                        "an account needs at least one role".into(),
                    ));
                }
                if *roles != account.roles {
                    events.push((AuditKind::RolesChanged, roles_text(roles)));
                    account.roles = roles.clone();
                }
            }
            if let Some(groups) = &patch.groups {
                if *groups != account.groups {
                    changes.push(format!(
                        "groups: {} → {}",
                        names_of(&account.groups, &group_names),
                        names_of(groups, &group_names)
                    ));
                    account.groups = groups.clone();
                }
            }
            if let Some(limit) = patch.max_concurrent {
                let limit = validate_max_concurrent(limit)?;
                if limit != account.max_concurrent {
                    changes.push(format!(
                        "max_concurrent: {} → {limit}",
                        account.max_concurrent
                    ));
                    account.max_concurrent = limit;
                }
            }
            if let Some(disabled) = patch.disabled {
                if disabled != account.disabled {
                    let kind = if disabled {
                        AuditKind::AccountDisabled
                    } else {
                        AuditKind::AccountEnabled
                    };
                    events.push((kind, String::new()));
                    account.disabled = disabled;
                }
            }
            if let Some(required) = patch.two_factor_required {
                if required != account.two_factor.required {
                    let detail = if required { "required" } else { "not required" };
                    events.push((AuditKind::TwoFactorChanged, detail.to_string()));
                    account.two_factor.required = required;
                }
            }
            let still_admin = account.has_role(Role::Admin) && !account.disabled;
            if !still_admin {
                self.ensure_another_admin(account.id)?;
            }
            if !changes.is_empty() {
                events.push((AuditKind::AccountChanged, changes.join("; ")));
            }
            Ok(())
        })?;
        if updated.disabled {
            self.revoke_sessions_of(id, None)?;
            // Offline, so that the desk gives their conversations back to the queue (the presence
            // change is what it follows); signed out, they could never answer them.
            self.change_presence(id, PresenceStatus::Offline, true)?;
        }
        for (kind, detail) in events {
            self.audit(kind, &updated.username, actor, &detail)?;
        }
        self.unit_of_work.make_durable()?;
        Ok(updated.view())
    }

    /// Sets a new password chosen by an admin (or a random one, returned once); the account must change
    /// it at next sign-in and loses its sessions.
    pub fn reset_password(
        &self,
        id: AccountId,
        new_password: Option<String>,
        actor: &Actor,
    ) -> Result<Option<String>> {
        let account = self.account(id)?;
        let generated = new_password.is_none().then(random_password);
        let password = new_password
            .or_else(|| generated.clone())
            .unwrap_or_default();
        check_password_rules(&account.username, &password)?;
        let hash = password::hash_password(&password)?;
        let account = self.modify_account(id, |account| {
            account.password_hash = hash.clone();
            account.must_change_password = true;
            Ok(())
        })?;
        self.revoke_sessions_of(id, None)?;
        self.clear_login_failures(&account.username);
        self.audit(AuditKind::PasswordReset, &account.username, actor, "")?;
        self.unit_of_work.make_durable()?;
        Ok(generated)
    }

    /// Ends every session of an account (an admin's "sign out everywhere").
    pub fn revoke_all_sessions(&self, id: AccountId, actor: &Actor) -> Result<usize> {
        let account = self.account(id)?;
        let revoked = self.revoke_sessions_of(id, None)?;
        self.audit(
            AuditKind::SessionsRevoked,
            &account.username,
            actor,
            &format!("{revoked} sessions"),
        )?;
        self.unit_of_work.make_durable()?;
        Ok(revoked)
    }

    /// Reads, changes and writes one account under the write lock.
    fn modify_account(
        &self,
        id: AccountId,
        change: impl FnOnce(&mut Account) -> Result<()>,
    ) -> Result<Account> {
        let _guard = self.write_lock.lock();
        let mut account = self.account(id)?;
        let before = account.clone();
        change(&mut account)?;
        if account != before {
            self.put_account(&account)?;
        }
        Ok(account)
    }

    fn put_account(&self, account: &Account) -> Result<()> {
        self.accounts.put_account(account)
    }

    /// Refuses a change that would leave no enabled admin but `changing`.
    fn ensure_another_admin(&self, changing: AccountId) -> Result<()> {
        let accounts = self.accounts.accounts()?;
        let another = accounts.iter().any(|account| {
            account.id != changing && account.has_role(Role::Admin) && !account.disabled
        });
        if another {
            Ok(())
        } else {
            Err(Error::InvalidInput(
                "the last enabled admin cannot lose the admin role or be disabled".into(),
            ))
        }
    }

    /// Refuses an employee number another account holds (ignoring case); empty is always free.
    fn ensure_employee_no_free(&self, number: &str, except: Option<AccountId>) -> Result<()> {
        if number.is_empty() {
            return Ok(());
        }
        let taken = self.accounts.accounts()?.iter().any(|account| {
            Some(account.id) != except && account.employee_no.eq_ignore_ascii_case(number)
        });
        if taken {
            Err(Error::InvalidInput(format!(
                "employee number `{number}` is already used by another account"
            )))
        } else {
            Ok(())
        }
    }

    /// Group names by id, for audit details.
    fn group_names(&self) -> Result<HashMap<GroupId, String>> {
        Ok(self
            .list_groups()?
            .into_iter()
            .map(|group| (group.id, group.name))
            .collect())
    }

    /// Notes the time of a successful sign-in on the account.
    pub(crate) fn note_login(&self, id: AccountId) -> Result<()> {
        let now = self.now();
        self.modify_account(id, |account| {
            account.last_login = Some(now);
            Ok(())
        })?;
        Ok(())
    }

    // ----- skill groups -----

    /// Every skill group, by id.
    pub fn list_groups(&self) -> Result<Vec<SkillGroup>> {
        self.accounts.groups()
    }

    /// One skill group.
    pub fn group(&self, id: GroupId) -> Result<SkillGroup> {
        self.accounts.group(id)?.ok_or(Error::GroupNotFound(id.0))
    }

    /// Creates a skill group.
    pub fn create_group(&self, input: GroupInput) -> Result<SkillGroup> {
        let (name, description) = validate_group(&input)?;
        let _guard = self.write_lock.lock();
        self.ensure_group_name_free(&name, None)?;
        let group = SkillGroup {
            id: GroupId(self.accounts.new_id()?),
            name,
            description,
            created: self.now(),
        };
        self.accounts.put_group(&group)?;
        self.unit_of_work.make_durable()?;
        Ok(group)
    }

    /// Renames or redescribes a skill group.
    pub fn update_group(&self, id: GroupId, input: GroupInput) -> Result<SkillGroup> {
        let (name, description) = validate_group(&input)?;
        let _guard = self.write_lock.lock();
        let mut group = self.group(id)?;
        self.ensure_group_name_free(&name, Some(id))?;
        group.name = name;
        group.description = description;
        self.accounts.put_group(&group)?;
        self.unit_of_work.make_durable()?;
        Ok(group)
    }

    /// Makes exactly `members` the agents of a group.
    pub fn set_group_members(
        &self,
        id: GroupId,
        members: &BTreeSet<AccountId>,
    ) -> Result<Vec<AccountView>> {
        self.group(id)?;
        for member in members {
            self.account(*member)?;
        }
        let _guard = self.write_lock.lock();
        let mut result = Vec::new();
        for mut account in self.accounts.accounts()? {
            let should_belong = members.contains(&account.id);
            let changed = if should_belong {
                account.groups.insert(id)
            } else {
                account.groups.remove(&id)
            };
            if changed {
                self.put_account(&account)?;
            }
            if should_belong {
                result.push(account.view());
            }
        }
        self.unit_of_work.make_durable()?;
        Ok(result)
    }

    /// The agents of a group.
    pub fn group_members(&self, id: GroupId) -> Result<Vec<AccountView>> {
        self.group(id)?;
        Ok(self
            .accounts
            .accounts()?
            .into_iter()
            .filter(|account| account.groups.contains(&id))
            .map(|account| account.view())
            .collect())
    }

    fn ensure_group_name_free(&self, name: &str, except: Option<GroupId>) -> Result<()> {
        let taken = self
            .accounts
            .groups()?
            .iter()
            .any(|group| group.name == name && Some(group.id) != except);
        if taken {
            Err(Error::GroupNameTaken(name.to_string()))
        } else {
            Ok(())
        }
    }

    fn check_groups_exist(&self, groups: &BTreeSet<GroupId>) -> Result<()> {
        for group in groups {
            self.group(*group)?;
        }
        Ok(())
    }

    // ----- audit -----

    /// Appends a security event to the audit log.
    pub fn audit(&self, kind: AuditKind, account: &str, actor: &Actor, detail: &str) -> Result<()> {
        let seq = self.audit_trail.next_seq()?;
        let entry = AuditEntry {
            seq,
            at: self.now(),
            kind,
            account: account.to_string(),
            actor: actor
                .username
                .clone()
                .filter(|username| username != account),
            ip: actor.ip.map(|ip| ip.to_string()),
            detail: detail.to_string(),
        };
        tracing::info!(kind = ?kind, account, detail, "audit");
        self.audit_trail.append(&entry)
    }

    /// Audit entries, newest first.
    pub fn audit_log(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>> {
        self.audit_entries(query, query.limit.unwrap_or(100).clamp(1, 1000))
    }

    /// Audit entries for an export: as [`audit_log`](Self::audit_log), up to `limit` of them.
    pub fn audit_entries(&self, query: &AuditQuery, limit: usize) -> Result<Vec<AuditEntry>> {
        let mut before = query.before;
        let mut entries = Vec::new();
        // Newest first, a page at a time, until `limit` entries pass the filter.
        loop {
            let page = self.audit_trail.entries_before(before, AUDIT_PAGE)?;
            let full = page.len() == AUDIT_PAGE;
            if let Some(oldest) = page.last() {
                before = Some(oldest.seq);
            }
            for entry in page {
                if query.from.is_some_and(|from| entry.at < from) {
                    // Entries are in time order: everything older is before `from` too.
                    return Ok(entries);
                }
                if query.to.is_some_and(|to| entry.at >= to) {
                    continue;
                }
                let wanted = query.account.as_ref().is_none_or(|account| {
                    entry.account.eq_ignore_ascii_case(account)
                        || entry
                            .actor
                            .as_ref()
                            .is_some_and(|actor| actor.eq_ignore_ascii_case(account))
                }) && query.kind.is_none_or(|kind| kind == entry.kind);
                if wanted {
                    entries.push(entry);
                    if entries.len() == limit {
                        return Ok(entries);
                    }
                }
            }
            if !full {
                return Ok(entries);
            }
        }
    }

    fn log_presence(&self, change: &PresenceChange) -> Result<()> {
        self.accounts.append_presence_change(change)?;
        // Nobody listening (the CLI) is fine.
        let _ = self.presence_events.send(change.clone());
        Ok(())
    }

    /// Presence changes from now on.
    pub fn subscribe_presence(&self) -> tokio::sync::broadcast::Receiver<PresenceChange> {
        self.presence_events.subscribe()
    }

    /// The underlying database, for wiring the other services' repositories (`app`); nothing reads
    /// or writes records through it.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Makes every write so far durable (see [`UnitOfWork::make_durable`]).
    pub fn make_durable(&self) -> Result<()> {
        self.unit_of_work.make_durable()
    }

    /// A group's routing settings (defaults when never set).
    pub fn group_routing(&self, group: GroupId) -> Result<GroupRouting> {
        Ok(self.accounts.group_routing(group)?.unwrap_or_default())
    }

    /// Stores a group's routing settings (checked by the desk) durably.
    pub fn put_group_routing(&self, group: GroupId, routing: &GroupRouting) -> Result<()> {
        self.accounts.put_group_routing(group, routing)?;
        self.unit_of_work.make_durable()
    }

    /// Presence changes of one account (or all) since `since`, oldest first; for statistics.
    pub fn presence_history(
        &self,
        account: Option<AccountId>,
        since: Timestamp,
    ) -> Result<Vec<PresenceChange>> {
        Ok(self
            .accounts
            .presence_changes()?
            .into_iter()
            .filter(|change| change.at >= since && account.is_none_or(|id| change.account == id))
            .collect())
    }
}

/// A random password that follows the rules: 16 characters from every class.
fn random_password() -> String {
    use rand::seq::IndexedRandom;
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const DIGITS: &[u8] = b"23456789";
    const SYMBOLS: &[u8] = b"-_.!#%+=";
    let mut rng = rand::rng();
    let mut password = String::new();
    for class in [UPPER, LOWER, DIGITS, SYMBOLS].iter().cycle().take(16) {
        password.push(*class.choose(&mut rng).expect("non-empty class") as char);
    }
    password
}

/// `—` for an empty value, in audit details.
fn or_none(value: &str) -> &str {
    if value.is_empty() {
        "—"
    } else {
        value
    }
}

/// Group names (or ids of unknown groups) joined by `,`, `—` for none.
fn names_of(groups: &BTreeSet<GroupId>, names: &HashMap<GroupId, String>) -> String {
    if groups.is_empty() {
        return "—".into();
    }
    groups
        .iter()
        .map(|id| names.get(id).cloned().unwrap_or_else(|| id.0.to_string()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks an employee number (工号): up to 32 of ASCII letters, digits, `-` and `_`; `""` for none.
pub fn validate_employee_no(number: &str) -> Result<String> {
    let number = number.trim();
    let valid = number.len() <= crate::domain::limits::MAX_EMPLOYEE_NO_CHARS
        && number
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !valid {
        return Err(Error::InvalidInput(format!(
            "an employee number is at most {} of a-z, A-Z, 0-9, `-` and `_`",
            crate::domain::limits::MAX_EMPLOYEE_NO_CHARS
        )));
    }
    Ok(number.to_string())
}

fn roles_text(roles: &BTreeSet<Role>) -> String {
    roles
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// Lower-cases and checks a username: 2-32 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_username(username: &str) -> Result<String> {
    let username = username.trim().to_lowercase();
    let valid_chars = username
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    let starts_well = username
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let length_ok = (2..=crate::domain::limits::MAX_USERNAME_CHARS).contains(&username.len());
    if !length_ok || !valid_chars || !starts_well {
        return Err(Error::InvalidInput(
            "a username is 2-32 characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter or digit"
                .into(),
        ));
    }
    Ok(username)
}

fn validate_display_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(Error::InvalidInput(format!(
            "a display name is 1-{MAX_DISPLAY_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidInput(
            "a display name cannot hold control characters".into(),
        ));
    }
    Ok(name.to_string())
}

/// A group's name and description, trimmed and within their limits.
fn validate_group(input: &GroupInput) -> Result<(String, String)> {
    let name = validate_group_name(&input.name)?;
    let description = input.description.trim();
    crate::domain::limits::check_length(
        "description",
        description,
        crate::domain::limits::MAX_GROUP_DESCRIPTION_CHARS,
    )?;
    Ok((name, description.to_string()))
}

fn validate_group_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_GROUP_NAME_CHARS {
        return Err(Error::InvalidInput(format!(
            "a group name is 1-{MAX_GROUP_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_string())
}

fn validate_max_concurrent(limit: u32) -> Result<u32> {
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(Error::InvalidInput(
            "max_concurrent must be between 1 and 100".into(),
        ))
    }
}
