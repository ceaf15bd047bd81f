//! Password hashing (argon2id) and the rules a new password must follow.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use zxcvbn::feedback::Warning;

use crate::error::{Error, Result};

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in characters (argon2 has no limit, the request body does).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// An argon2id PHC string for `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    use rand::RngCore;
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|error| Error::Internal(format!("encoding a salt: {error}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| Error::Internal(format!("hashing a password: {error}")))
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks a new password: at least 8 characters, 3 of the 4 classes (upper, lower, digit, symbol), not
/// the username, and not a common password (zxcvbn's frequency lists, which also catch l33t variants
/// such as `P@ssw0rd1`).
///
/// Returns [`Error::WeakPassword`] listing every broken rule.
pub fn check_password_rules(username: &str, password: &str) -> Result<()> {
    let mut broken = Vec::new();
    let length = password.chars().count();
    if length < MIN_PASSWORD_CHARS {
        broken.push(format!("at least {MIN_PASSWORD_CHARS} characters"));
    }
    if length > MAX_PASSWORD_CHARS {
        broken.push(format!("at most {MAX_PASSWORD_CHARS} characters"));
    }
    let classes = [
        password.chars().any(|c| c.is_uppercase()),
        password.chars().any(|c| c.is_lowercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password.chars().any(|c| !c.is_alphanumeric()),
    ];
    if classes.iter().filter(|&&present| present).count() < 3 {
        broken.push("3 of: upper case, lower case, digit, symbol".to_string());
    }
    let lowered = password.to_lowercase();
    let username = username.to_lowercase();
    if !username.is_empty() && (lowered == username || lowered.contains(&username)) {
        broken.push("must not contain the username".to_string());
    }
    if length <= MAX_PASSWORD_CHARS && is_common(password, &username) {
        broken.push("too common".to_string());
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(Error::WeakPassword(broken))
    }
}

fn is_common(password: &str, username: &str) -> bool {
    let estimate = zxcvbn::zxcvbn(password, &[username]);
    matches!(
        estimate.feedback().and_then(|feedback| feedback.warning()),
        Some(
            Warning::ThisIsATop10Password
                | Warning::ThisIsATop100Password
                | Warning::ThisIsACommonPassword
                | Warning::ThisIsSimilarToACommonlyUsedPassword
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(username: &str, password: &str) -> Vec<String> {
        match check_password_rules(username, password) {
            Ok(()) => Vec::new(),
            Err(Error::WeakPassword(reasons)) => reasons,
            Err(other) => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn good_passwords_pass() {
        assert!(reasons("xiaomei", "Kefu-Desk-2026").is_empty());
        assert!(reasons("xiaomei", "橙子Lemon#42").is_empty());
    }

    #[test]
    fn each_rule_is_reported() {
        assert!(reasons("a", "Ab1!")
            .iter()
            .any(|r| r.contains("8 characters")));
        assert!(reasons("a", "alllowercase")
            .iter()
            .any(|r| r.contains("3 of")));
        assert!(reasons("xiaomei", "Xiaomei2026!")
            .iter()
            .any(|r| r.contains("username")));
        assert!(reasons("a", "Password1!").iter().any(|r| r == "too common"));
        assert!(reasons("a", "P@ssw0rd123")
            .iter()
            .any(|r| r == "too common"));
    }

    #[test]
    fn hashes_verify_and_are_argon2id() {
        let hash = hash_password("Kefu-Desk-2026").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("Kefu-Desk-2026", &hash));
        assert!(!verify_password("kefu-desk-2026", &hash));
        assert!(!verify_password("anything", "not a hash"));
    }
}
