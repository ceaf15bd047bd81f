//! Identities the host site vouches for, as Intercom and Chatwoot do: the site's server signs the user
//! with a secret it shares with kefu, the widget passes the signature along, and kefu recomputes it.
//!
//! The signed text is `user_id \n name \n member_level \n expires` (absent fields empty, `expires` in
//! Unix seconds), the signature its HMAC-SHA256 under the site's secret, in lower-case hex. An identity
//! without a signature is kept but marked unverified; one with a signature that does not match, for an
//! unknown site, or past its `expires` is refused.

use hmac::{KeyInit, Mac};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use sha2::Sha256;

use crate::domain::SiteIdentity;
use crate::error::{Error, Result};

type HmacSha256 = hmac::Hmac<Sha256>;

/// What the widget passes about the signed-in user of the host site.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityClaim {
    /// The site (`visitors.sites[].id`).
    pub site: String,
    /// The site's user id.
    pub user_id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Member level.
    #[serde(default)]
    pub member_level: Option<String>,
    /// Unix seconds after which the signature is void; required with a signature.
    #[serde(default)]
    pub expires: Option<i64>,
    /// Hex HMAC-SHA256; absent for an unverified claim.
    #[serde(default)]
    pub signature: Option<String>,
}

/// The signature a site's server computes (also used by tests and the README's example).
pub fn sign_identity(
    secret: &str,
    user_id: &str,
    name: Option<&str>,
    member_level: Option<&str>,
    expires: i64,
) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(signed_text(user_id, name, member_level, expires).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn signed_text(
    user_id: &str,
    name: Option<&str>,
    member_level: Option<&str>,
    expires: i64,
) -> String {
    format!(
        "{user_id}\n{}\n{}\n{expires}",
        name.unwrap_or_default(),
        member_level.unwrap_or_default()
    )
}

/// Checks `claim` at `now`: a verified identity, an unverified one (no signature), or
/// `identity_invalid`.
pub fn verify(
    claim: IdentityClaim,
    secret_of: &dyn Fn(&str) -> Result<Option<String>>,
    max_age_secs: u64,
    now: Timestamp,
) -> Result<SiteIdentity> {
    use crate::domain::limits::*;
    let user_id = claim.user_id.trim();
    if user_id.is_empty() {
        return Err(Error::InvalidInput("an identity needs a `user_id`".into()));
    }
    check_length("identity.user_id", &claim.user_id, MAX_EXTERNAL_ID_CHARS)?;
    check_length("identity.site", &claim.site, MAX_SITE_ID_CHARS)?;
    check_optional_length(
        "identity.name",
        claim.name.as_deref(),
        MAX_VISITOR_NAME_CHARS,
    )?;
    check_optional_length(
        "identity.member_level",
        claim.member_level.as_deref(),
        MAX_MEMBER_LEVEL_CHARS,
    )?;
    check_optional_length(
        "identity.signature",
        claim.signature.as_deref(),
        MAX_SIGNATURE_CHARS,
    )?;
    let present = |value: &Option<String>| {
        value
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
    };
    let name = present(&claim.name);
    let member_level = present(&claim.member_level);
    let verified = match &claim.signature {
        None => false,
        Some(signature) => {
            let secret = secret_of(&claim.site)?
                .ok_or_else(|| Error::IdentityInvalid(format!("unknown site `{}`", claim.site)))?;
            let expires = claim.expires.ok_or_else(|| {
                Error::IdentityInvalid("a signed identity needs `expires`".into())
            })?;
            let expires_at = Timestamp::from_second(expires)
                .map_err(|_| Error::IdentityInvalid("`expires` is not a time".into()))?;
            if expires_at <= now {
                return Err(Error::IdentityInvalid("the signature has expired".into()));
            }
            let longest = SignedDuration::from_secs(max_age_secs as i64);
            if expires_at.duration_since(now) > longest {
                return Err(Error::IdentityInvalid(format!(
                    "`expires` is more than {max_age_secs} seconds ahead"
                )));
            }
            let given = hex::decode(signature.trim())
                .map_err(|_| Error::IdentityInvalid("the signature is not hex".into()))?;
            // The claim's own fields as sent (before trimming) are what the site signed.
            let mut mac =
                HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
            mac.update(
                signed_text(
                    &claim.user_id,
                    claim.name.as_deref(),
                    claim.member_level.as_deref(),
                    expires,
                )
                .as_bytes(),
            );
            // Constant-time comparison.
            mac.verify_slice(&given)
                .map_err(|_| Error::IdentityInvalid("the signature does not match".into()))?;
            true
        }
    };
    Ok(SiteIdentity {
        site: claim.site.trim().to_string(),
        user_id: user_id.to_string(),
        name,
        member_level,
        verified,
        at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop(site: &str) -> Result<Option<String>> {
        Ok((site == "shop").then(|| "s3cret".to_string()))
    }

    fn check(claim: IdentityClaim, now: Timestamp) -> Result<SiteIdentity> {
        verify(claim, &shop, 86_400, now)
    }

    fn claim(signature: Option<String>, expires: i64) -> IdentityClaim {
        IdentityClaim {
            site: "shop".into(),
            user_id: "u10086".into(),
            name: Some("王女士".into()),
            member_level: Some("金卡".into()),
            expires: Some(expires),
            signature,
        }
    }

    #[test]
    fn good_forged_expired_and_unsigned_identities() {
        let now: Timestamp = "2026-11-25T08:00:00Z".parse().unwrap();
        let expires = now.as_second() + 600;
        let good = sign_identity("s3cret", "u10086", Some("王女士"), Some("金卡"), expires);
        let verified = check(claim(Some(good.clone()), expires), now).unwrap();
        assert!(verified.verified);
        assert_eq!(verified.name.as_deref(), Some("王女士"));

        // Another level with the old signature: forged.
        let mut forged = claim(Some(good.clone()), expires);
        forged.member_level = Some("钻石".into());
        let error = check(forged, now).unwrap_err();
        assert!(matches!(error, Error::IdentityInvalid(_)), "{error}");

        let expired = check(
            claim(Some(good), expires),
            now + SignedDuration::from_secs(601),
        );
        assert!(matches!(expired, Err(Error::IdentityInvalid(_))));

        let unsigned = check(claim(None, expires), now).unwrap();
        assert!(!unsigned.verified);

        let mut long_name = claim(None, expires);
        long_name.name = Some("名".repeat(65));
        let error = check(long_name, now).unwrap_err();
        assert!(matches!(error, Error::InvalidInput(_)), "{error}");

        let wrong_key = sign_identity("other", "u10086", Some("王女士"), Some("金卡"), expires);
        assert!(check(claim(Some(wrong_key), expires), now).is_err());
        let far = now.as_second() + 7 * 86_400;
        let too_long = sign_identity("s3cret", "u10086", Some("王女士"), Some("金卡"), far);
        assert!(check(claim(Some(too_long), far), now).is_err());
    }
}
