//! What an account changes itself: password, personal settings, avatar, presence, two-step
//! verification; and the idle timer that sets agents away.

use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Secret, TOTP};

use super::{
    check_password_rules, password, validate_display_name, AccountService, Caller,
    MAX_GREETING_CHARS,
};
use crate::domain::{
    Account, AccountId, AccountView, AuditKind, Avatar, Presence, PresenceChange, PresenceStatus,
    SendKey,
};
use crate::error::{Error, Result};
use crate::services::secrets::random_bytes;

/// Issuer shown in authenticator apps.
const TOTP_ISSUER: &str = "kefu";
/// Seconds per TOTP step (RFC 6238 default, what every authenticator app uses).
const TOTP_STEP_SECONDS: u64 = 30;
/// Recovery codes handed out at enrolment.
const RECOVERY_CODES: usize = 10;

/// Changes to personal settings; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// Display name shown to visitors.
    pub display_name: Option<String>,
    /// Greeting sent when a conversation starts.
    pub greeting: Option<String>,
    /// Sound on new messages.
    pub sound: Option<bool>,
    /// Desktop notifications.
    pub desktop_notifications: Option<bool>,
    /// Which key sends.
    pub send_key: Option<SendKey>,
}

/// What the enrolment screen shows: the secret as text and as a QR code.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TwoFactorSetup {
    /// Base32 secret, for typing into the app by hand.
    pub secret: String,
    /// `otpauth://` URL encoded in the QR code.
    pub otpauth_url: String,
    /// The QR code as an SVG document, rendered here so the page needs no script library.
    pub qr_svg: String,
}

/// A stored avatar.
#[derive(Debug, Clone)]
pub struct AvatarImage {
    /// MIME type.
    pub content_type: String,
    /// The image bytes.
    pub bytes: Vec<u8>,
}

impl AccountService {
    /// Changes the caller's password after checking the current one; every other session of the
    /// account ends.
    pub fn change_password(
        &self,
        caller: &Caller,
        old_password: &str,
        new_password: &str,
        ip: Option<IpAddr>,
    ) -> Result<AccountView> {
        let account = self.account(caller.account.id)?;
        if !password::verify_password(old_password, &account.password_hash) {
            return Err(Error::WrongPassword);
        }
        check_password_rules(&account.username, new_password)?;
        if old_password == new_password {
            return Err(Error::WeakPassword(vec![
                "must differ from the current password".to_string(),
            ]));
        }
        let hash = password::hash_password(new_password)?;
        let account = self.modify_account(account.id, |account| {
            account.password_hash = hash.clone();
            account.must_change_password = false;
            Ok(())
        })?;
        let revoked = self.revoke_sessions_of(account.id, Some(&caller.session_id))?;
        self.audit(
            AuditKind::PasswordChanged,
            &account.username,
            &caller.actor(ip),
            &format!("{revoked} other sessions ended"),
        )?;
        self.unit_of_work.make_durable()?;
        Ok(account.view())
    }

    /// Updates the caller's personal settings.
    pub fn update_settings(&self, id: AccountId, patch: SettingsPatch) -> Result<Account> {
        let greeting = match &patch.greeting {
            Some(greeting) if greeting.chars().count() > MAX_GREETING_CHARS => {
                return Err(Error::InvalidInput(format!(
                    "a greeting is at most {MAX_GREETING_CHARS} characters"
                )))
            }
            Some(greeting) => Some(greeting.trim().to_string()),
            None => None,
        };
        let display_name = patch
            .display_name
            .as_deref()
            .map(validate_display_name)
            .transpose()?;
        let account = self.modify_account(id, |account| {
            if let Some(name) = display_name {
                account.display_name = name;
            }
            if let Some(greeting) = greeting {
                account.settings.greeting = greeting;
            }
            if let Some(sound) = patch.sound {
                account.settings.sound = sound;
            }
            if let Some(desktop) = patch.desktop_notifications {
                account.settings.desktop_notifications = desktop;
            }
            if let Some(send_key) = patch.send_key {
                account.settings.send_key = send_key;
            }
            Ok(())
        })?;
        self.unit_of_work.make_durable()?;
        Ok(account)
    }

    // ----- avatar -----

    /// Stores an avatar after checking that it is a PNG, JPEG, GIF or WebP image of sane size.
    pub fn set_avatar(&self, id: AccountId, bytes: &[u8]) -> Result<AccountView> {
        let content_type =
            crate::services::images::check_image(bytes, self.config.max_avatar_bytes)?;
        self.accounts.put_avatar(id, bytes)?;
        let now = self.now();
        let account = self.modify_account(id, |account| {
            account.avatar = Some(Avatar {
                content_type: content_type.to_string(),
                updated: now,
            });
            Ok(())
        })?;
        self.unit_of_work.make_durable()?;
        Ok(account.view())
    }

    /// The avatar of an account, if it has one.
    pub fn avatar(&self, id: AccountId) -> Result<Option<AvatarImage>> {
        // The route is public: an unknown account answers like one without an avatar, so the
        // answers do not tell which ids exist.
        let account = match self.account(id) {
            Ok(account) => account,
            Err(Error::AccountNotFound(_)) => return Ok(None),
            Err(error) => return Err(error),
        };
        let Some(meta) = account.avatar else {
            return Ok(None);
        };
        Ok(self.accounts.avatar(id)?.map(|bytes| AvatarImage {
            content_type: meta.content_type,
            bytes,
        }))
    }

    // ----- presence -----

    /// Sets the caller's presence by hand.
    pub fn set_presence(&self, id: AccountId, status: PresenceStatus) -> Result<Presence> {
        self.record_activity(id, self.now());
        let presence = self.change_presence(id, status, false)?;
        self.unit_of_work.make_durable()?;
        Ok(presence)
    }

    pub(super) fn change_presence(
        &self,
        id: AccountId,
        status: PresenceStatus,
        automatic: bool,
    ) -> Result<Presence> {
        let now = self.now();
        let mut changed = false;
        let account = self.modify_account(id, |account| {
            if account.presence.status != status || account.presence.automatic != automatic {
                changed = account.presence.status != status;
                account.presence = Presence {
                    status,
                    since: if changed { now } else { account.presence.since },
                    automatic,
                };
            }
            Ok(())
        })?;
        if changed {
            self.log_presence(&PresenceChange {
                account: id,
                status,
                at: now,
                automatic,
            })?;
        }
        Ok(account.presence)
    }

    pub(super) fn record_activity(&self, id: AccountId, now: Timestamp) {
        self.activity.lock().insert(id, now);
    }

    /// Activity after an automatic away brings the agent back online.
    pub(super) fn restore_from_auto_away(&self, account: Account) -> Result<Account> {
        if account.presence.status == PresenceStatus::Away && account.presence.automatic {
            self.change_presence(account.id, PresenceStatus::Online, false)?;
            return self.account(account.id);
        }
        Ok(account)
    }

    /// Sets online agents idle past `auto_away_minutes` to away; returns who changed. Run periodically.
    pub fn apply_auto_away(&self) -> Result<Vec<AccountId>> {
        if self.config.auto_away_minutes == 0 {
            return Ok(Vec::new());
        }
        let now = self.now();
        let idle_limit = SignedDuration::from_mins(self.config.auto_away_minutes as i64);
        let online: Vec<Account> = self
            .accounts
            .accounts()?
            .into_iter()
            .filter(|account| account.presence.status == PresenceStatus::Online)
            .collect();
        let mut changed = Vec::new();
        for account in online {
            let last_active = self
                .activity
                .lock()
                .get(&account.id)
                .copied()
                .unwrap_or(self.opened_at)
                .max(account.presence.since);
            if now.duration_since(last_active) > idle_limit {
                self.change_presence(account.id, PresenceStatus::Away, true)?;
                changed.push(account.id);
            }
        }
        if !changed.is_empty() {
            self.unit_of_work.make_durable()?;
        }
        Ok(changed)
    }

    // ----- two-step verification -----

    /// Starts enrolment: a new secret, shown as text and QR code, pending until confirmed.
    pub fn begin_two_factor(&self, id: AccountId) -> Result<TwoFactorSetup> {
        let account = self.account(id)?;
        if account.two_factor.enabled() {
            return Err(Error::InvalidInput(
                "two-step verification is already on; turn it off first".into(),
            ));
        }
        let secret = Secret::Raw(random_bytes(20)).to_encoded().to_string();
        let totp = totp_for(&secret, &account.username)?;
        let otpauth_url = totp.get_url();
        let qr_svg = qrcode::QrCode::new(otpauth_url.as_bytes())
            .map_err(|error| Error::Internal(format!("rendering the QR code: {error}")))?
            .render::<qrcode::render::svg::Color>()
            .min_dimensions(200, 200)
            .build();
        self.modify_account(id, |account| {
            account.two_factor.pending_secret = Some(secret.clone());
            Ok(())
        })?;
        self.unit_of_work.make_durable()?;
        Ok(TwoFactorSetup {
            secret,
            otpauth_url,
            qr_svg,
        })
    }

    /// Confirms enrolment with a code from the app; returns the recovery codes, shown this once.
    pub fn confirm_two_factor(
        &self,
        caller: &Caller,
        code: &str,
        ip: Option<IpAddr>,
    ) -> Result<Vec<String>> {
        let account = self.account(caller.account.id)?;
        let Some(secret) = account.two_factor.pending_secret.clone() else {
            return Err(Error::InvalidInput(
                "start two-step verification setup first".into(),
            ));
        };
        let totp = totp_for(&secret, &account.username)?;
        let Some(step) = matching_step(&totp, code, self.now()) else {
            return Err(Error::TotpInvalid);
        };
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes = codes.iter().map(|code| recovery_hash(code)).collect();
        self.modify_account(account.id, |account| {
            account.two_factor.secret = Some(secret.clone());
            account.two_factor.pending_secret = None;
            account.two_factor.recovery_code_hashes = hashes;
            account.two_factor.last_step = Some(step);
            Ok(())
        })?;
        self.audit(
            AuditKind::TwoFactorChanged,
            &account.username,
            &caller.actor(ip),
            "enabled",
        )?;
        self.unit_of_work.make_durable()?;
        Ok(codes)
    }

    /// Turns two-step verification off after checking the password; refused while an admin requires it.
    pub fn disable_two_factor(
        &self,
        caller: &Caller,
        password_text: &str,
        ip: Option<IpAddr>,
    ) -> Result<()> {
        let account = self.account(caller.account.id)?;
        if !password::verify_password(password_text, &account.password_hash) {
            return Err(Error::WrongPassword);
        }
        if account.two_factor.required {
            return Err(Error::InvalidInput(
                "an admin requires two-step verification for this account".into(),
            ));
        }
        self.modify_account(account.id, |account| {
            account.two_factor = crate::domain::TwoFactor {
                required: account.two_factor.required,
                ..Default::default()
            };
            Ok(())
        })?;
        self.audit(
            AuditKind::TwoFactorChanged,
            &account.username,
            &caller.actor(ip),
            "disabled",
        )?;
        self.unit_of_work.make_durable()
    }

    /// Accepts a current TOTP code (not replayed) or an unused recovery code, which is then used up.
    pub(super) fn consume_second_factor(&self, id: AccountId, code: &str) -> Result<bool> {
        let now = self.now();
        let mut accepted = false;
        self.modify_account(id, |account| {
            let Some(secret) = account.two_factor.secret.clone() else {
                return Ok(());
            };
            let totp = totp_for(&secret, &account.username)?;
            if let Some(step) = matching_step(&totp, code, now) {
                if account.two_factor.last_step.is_none_or(|last| step > last) {
                    account.two_factor.last_step = Some(step);
                    accepted = true;
                }
                return Ok(());
            }
            let hash = recovery_hash(code);
            let hashes = &mut account.two_factor.recovery_code_hashes;
            if let Some(position) = hashes.iter().position(|stored| *stored == hash) {
                hashes.remove(position);
                accepted = true;
            }
            Ok(())
        })?;
        Ok(accepted)
    }
}

fn totp_for(secret: &str, username: &str) -> Result<TOTP> {
    let bytes = Secret::Encoded(secret.to_string())
        .to_bytes()
        .map_err(|error| Error::Internal(format!("stored TOTP secret is corrupt: {error:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        TOTP_STEP_SECONDS,
        bytes,
        Some(TOTP_ISSUER.to_string()),
        username.to_string(),
    )
    .map_err(|error| Error::Internal(format!("building a TOTP: {error}")))
}

/// The time step whose code equals `code`, allowing one step of clock drift either way.
fn matching_step(totp: &TOTP, code: &str, now: Timestamp) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let seconds = u64::try_from(now.as_second()).ok()?;
    let current = seconds / TOTP_STEP_SECONDS;
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .find(|step| totp.generate(step * TOTP_STEP_SECONDS) == code)
}

/// The current TOTP code for a base32 secret; for tests and the CLI.
pub fn totp_code(secret: &str, username: &str, now: Timestamp) -> Result<String> {
    let seconds = u64::try_from(now.as_second()).unwrap_or(0);
    Ok(totp_for(secret, username)?.generate(seconds))
}

/// `xxxxx-xxxxx` from an alphabet without look-alikes.
fn recovery_code() -> String {
    use rand::seq::IndexedRandom;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut code = String::new();
    for index in 0..10 {
        if index == 5 {
            code.push('-');
        }
        code.push(*ALPHABET.choose(&mut rng).expect("non-empty alphabet") as char);
    }
    code
}

/// Recovery codes are random and long, so a fast hash suffices; typing ignores case and dashes.
fn recovery_hash(code: &str) -> String {
    let normalized: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    blake3::hash(normalized.as_bytes()).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_with_one_step_of_drift() {
        let secret = Secret::Raw(random_bytes(20)).to_encoded().to_string();
        let totp = totp_for(&secret, "xiaomei").unwrap();
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let code = totp_code(&secret, "xiaomei", now).unwrap();
        let step = 1_800_000_000 / TOTP_STEP_SECONDS;
        assert_eq!(matching_step(&totp, &code, now), Some(step));
        let later = now + SignedDuration::from_secs(30);
        assert_eq!(matching_step(&totp, &code, later), Some(step));
        let much_later = now + SignedDuration::from_secs(120);
        assert_eq!(matching_step(&totp, &code, much_later), None);
        assert_eq!(matching_step(&totp, "12345", now), None);
    }

    #[test]
    fn recovery_codes_ignore_case_and_dashes() {
        let code = recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(
            recovery_hash(&code),
            recovery_hash(&code.to_uppercase().replace('-', ""))
        );
    }
}
