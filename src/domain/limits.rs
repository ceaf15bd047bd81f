//! Every length limit on text the API accepts, in one place, so docs/API.md ("Limits") and the code
//! cannot drift apart. Lengths are in characters (Unicode scalar values) unless the name says bytes.
//!
//! An input over its limit is refused with `invalid_input` (400) and nothing is stored: limits are
//! checked before anything is written. Nothing here is truncated silently, so what is stored is what
//! was sent.

use crate::error::{Error, Result};

/// A visitor's nickname (`identity.name` of a conversation, `name` of a signed identity).
pub const MAX_VISITOR_NAME_CHARS: usize = 64;
/// A visitor's phone number.
pub const MAX_VISITOR_PHONE_CHARS: usize = 32;
/// A visitor's email address (RFC 5321's longest path).
pub const MAX_VISITOR_EMAIL_CHARS: usize = 254;
/// The host site's own user id (`identity.external_id`, `user_id` of a signed identity).
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;
/// A signed identity's member level.
pub const MAX_MEMBER_LEVEL_CHARS: usize = 32;
/// A site id of a signed identity.
pub const MAX_SITE_ID_CHARS: usize = 64;
/// A signed identity's signature (hex of HMAC-SHA256 is 64).
pub const MAX_SIGNATURE_CHARS: usize = 128;
/// A channel name (`web`, `app`, ...).
pub const MAX_CHANNEL_CHARS: usize = 16;
/// A page address (`page` of a conversation, `url` of a page view).
pub const MAX_URL_CHARS: usize = 2000;
/// A page title.
pub const MAX_PAGE_TITLE_CHARS: usize = 200;
/// A visitor's `User-Agent` as kept on the profile (longer ones are cut: a header, not an input).
pub const MAX_USER_AGENT_CHARS: usize = 500;
/// A staff tag on a visitor, and how many.
pub const MAX_VISITOR_TAG_CHARS: usize = 20;
/// Tags per visitor.
pub const MAX_VISITOR_TAGS: usize = 20;
/// The staff's note on a visitor.
pub const MAX_VISITOR_NOTE_CHARS: usize = 2000;
/// An account's employee number (工号).
pub const MAX_EMPLOYEE_NO_CHARS: usize = 32;
/// A skill group's description.
pub const MAX_GROUP_DESCRIPTION_CHARS: usize = 200;
/// A group's notice to visitors outside working hours.
pub const MAX_OFF_HOURS_MESSAGE_CHARS: usize = 500;
/// A proactive invitation's greeting.
pub const MAX_INVITATION_CHARS: usize = 200;
/// A block's reason.
pub const MAX_BLOCK_REASON_CHARS: usize = 500;
/// Shortest accepted password.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password (argon2 has no limit; this one keeps hashing cheap and a sign-in with
/// a longer one is refused before any lookup).
pub const MAX_PASSWORD_CHARS: usize = 256;
/// An account's username (`a-z 0-9 . _ -`).
pub const MAX_USERNAME_CHARS: usize = 32;
/// A username as sent at sign-in, surrounding spaces included; after trimming it must also fit
/// [`MAX_USERNAME_CHARS`]. Longer ones are refused before any lookup, so nothing of them reaches the
/// failure counters or the audit log.
pub const MAX_LOGIN_USERNAME_CHARS: usize = 64;
/// A captcha answer or id, a TOTP or recovery code at sign-in.
pub const MAX_LOGIN_CODE_CHARS: usize = 64;
/// A client key (idempotency key) of a message.
pub const MAX_CLIENT_KEY_CHARS: usize = 64;
/// An upload's file name as kept (longer names lose the end of their stem, never the extension).
pub const MAX_FILE_NAME_CHARS: usize = 120;
/// A text to suggest replies for (`POST /api/v1/assist/suggest`).
pub const MAX_SUGGEST_CHARS: usize = 2000;
/// A quick-reply search (`q` of `/api/v1/quick-replies/search`, and the query a suggestion builds:
/// a longer message is searched by its keywords).
pub const MAX_REPLY_QUERY_CHARS: usize = 200;

/// An account's display name (shown to visitors) and a skill group's name.
pub const MAX_DISPLAY_NAME_CHARS: usize = 32;
/// A skill group's name.
pub const MAX_GROUP_NAME_CHARS: usize = 32;
/// An agent's greeting, sent when a conversation starts.
pub const MAX_GREETING_CHARS: usize = 500;
/// A quick reply's title.
pub const MAX_REPLY_TITLE_CHARS: usize = 50;
/// A quick reply's category path (`parent/child`).
pub const MAX_REPLY_CATEGORY_CHARS: usize = 50;
/// Tags per quick reply.
pub const MAX_REPLY_TAGS: usize = 10;
/// A quick reply's tag.
pub const MAX_REPLY_TAG_CHARS: usize = 20;
/// A quick reply's shortcut, its leading `/` included.
pub const MAX_SHORTCUT_CHARS: usize = 21;
/// A visitor's question to self-service (`/visitor/suggest`, a deflection outcome).
pub const MAX_VISITOR_QUESTION_CHARS: usize = 500;
/// `q` of the account list (`GET /api/v1/admin/accounts`).
pub const MAX_ACCOUNT_QUERY_CHARS: usize = 64;
/// A rating's comment.
pub const MAX_RATING_COMMENT_CHARS: usize = 500;
/// A channel's name.
pub const MAX_CHANNEL_NAME_CHARS: usize = 64;
/// A channel's app id, secret or 微信客服 account id (printable ASCII without spaces).
pub const MAX_CHANNEL_CREDENTIAL_CHARS: usize = 128;
/// A webhook's receiver URL, in bytes.
pub const MAX_WEBHOOK_URL_BYTES: usize = 2000;
/// Shortest and longest webhook signing key, in bytes.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 16;
/// Longest webhook signing key, in bytes.
pub const MAX_WEBHOOK_SECRET_BYTES: usize = 200;

/// Widest IPv4 range a block may cover: a /16 is 65,536 addresses, a large provider's city pool;
/// anything wider (a /8, `0.0.0.0/0`) would shut out whole countries with one entry.
pub const MIN_BLOCK_PREFIX_V4: u8 = 16;
/// Widest IPv6 range a block may cover: a /48 is one site's allocation (RFC 6177); `::/0` or a
/// provider's /32 are refused.
pub const MIN_BLOCK_PREFIX_V6: u8 = 48;

/// Refuses `value` longer than `max` characters with `invalid_input` naming `field`.
pub fn check_length(field: &str, value: &str, max: usize) -> Result<()> {
    // Counting stops one past the limit: a 4 MB value costs no more than a short one.
    if value.chars().nth(max).is_some() {
        return Err(Error::InvalidInput(format!(
            "`{field}` is longer than {max} characters"
        )));
    }
    Ok(())
}

/// As [`check_length`] for an optional value.
pub fn check_optional_length(field: &str, value: Option<&str>, max: usize) -> Result<()> {
    value.map_or(Ok(()), |value| check_length(field, value, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(check_length("name", &"王".repeat(64), 64).is_ok());
        let error = check_length("name", &"王".repeat(65), 64).unwrap_err();
        assert_eq!(error.to_string(), "`name` is longer than 64 characters");
        assert!(check_optional_length("phone", None, 1).is_ok());
        assert!(check_optional_length("phone", Some("12"), 1).is_err());
    }
}
