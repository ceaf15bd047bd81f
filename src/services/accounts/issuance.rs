//! What anyone may ask for without signing in, bounded: visitor tokens and captchas are issued at
//! most so many times a minute per client address, and visitor tokens expire after
//! `accounts.visitor_token_days` and are purged. (Open captchas are bounded and expire in
//! `services::captcha`.)

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use jiff::SignedDuration;

use super::auth::VisitorGrant;
use super::AccountService;
use crate::config::AccountsConfig;
use crate::error::{Error, Result};

/// Issuance rates per client address.
pub(super) struct IssueLimits {
    visitor_tokens: DefaultKeyedRateLimiter<IpAddr>,
    captchas: DefaultKeyedRateLimiter<IpAddr>,
}

impl IssueLimits {
    pub(super) fn new(config: &AccountsConfig) -> IssueLimits {
        let quota = |per_minute: u32| {
            Quota::per_minute(NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN))
        };
        IssueLimits {
            visitor_tokens: RateLimiter::keyed(quota(config.visitor_tokens_per_minute)),
            captchas: RateLimiter::keyed(quota(config.captchas_per_minute)),
        }
    }
}

impl AccountService {
    /// Refuses (`rate_limited`) a new visitor token for `ip` past `visitor_tokens_per_minute`; a
    /// request without a known address is not limited here (it comes through a proxy kefu does not
    /// trust to name the client, which is configuration, not an attack).
    pub fn check_visitor_token_rate(&self, ip: Option<IpAddr>) -> Result<()> {
        match ip {
            Some(ip) if self.issuance.visitor_tokens.check_key(&ip).is_err() => {
                Err(Error::RateLimited)
            }
            _ => Ok(()),
        }
    }

    /// Refuses (`rate_limited`) a new captcha for `ip` past `captchas_per_minute`.
    pub fn check_captcha_rate(&self, ip: Option<IpAddr>) -> Result<()> {
        match ip {
            Some(ip) if self.issuance.captchas.check_key(&ip).is_err() => Err(Error::RateLimited),
            _ => Ok(()),
        }
    }

    /// Whether a visitor token issued as `grant` has expired.
    pub(super) fn visitor_token_expired(&self, grant: &VisitorGrant) -> bool {
        let lifetime = SignedDuration::from_hours(24 * self.config.visitor_token_days as i64);
        self.now().duration_since(grant.created) > lifetime
    }

    /// Removes expired visitor tokens and forgets the issuance rates of addresses not seen lately;
    /// returns how many tokens. Run periodically.
    pub fn purge_expired_visitor_tokens(&self) -> Result<usize> {
        self.issuance.visitor_tokens.retain_recent();
        self.issuance.captchas.retain_recent();
        self.visitor_tokens
            .remove_grants_where(&|grant| self.visitor_token_expired(grant))
    }
}
