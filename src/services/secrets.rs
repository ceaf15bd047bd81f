//! Random secrets: session and CSRF tokens, captcha ids, TOTP secrets. All from `rand`'s thread RNG,
//! a CSPRNG seeded by the operating system.

use base64::Engine;
use rand::RngCore;

/// `count` random bytes.
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// `bytes` random bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}
