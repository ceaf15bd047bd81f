//! The message security of WeChat 公众号 and 企业微信 (WXBizMsgCrypt): the SHA-1 signature over the sorted
//! token, timestamp, nonce (and ciphertext), and AES-256-CBC with the EncodingAESKey.
//!
//! - The key is `Base64_Decode(EncodingAESKey + "=")`, 32 bytes; the IV is its first 16 bytes.
//! - The plaintext is 16 random bytes, the message's length (4 bytes, big-endian), the message and
//!   the receiver's id (the 公众号's AppID or the 企业微信 CorpID), padded with PKCS#7 to a multiple
//!   of **32** bytes (not AES's 16), then encrypted without further padding and Base64-encoded.
//!
//! Used by both channels and by the tests' stand-in servers, which push with real signatures.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::error::{Error, Result};

type Aes256CbcEncryptor = cbc::Encryptor<aes::Aes256>;
type Aes256CbcDecryptor = cbc::Decryptor<aes::Aes256>;

/// Length of an EncodingAESKey, as WeChat's consoles generate it.
pub const ENCODING_AES_KEY_CHARS: usize = 43;
/// The block the plaintext is padded to (PKCS#7 with k = 32).
const PADDING_BLOCK: usize = 32;
/// The random prefix of every plaintext.
const RANDOM_PREFIX: usize = 16;

/// Standard Base64 that, like WeChat's own libraries, accepts the key's last character whatever its
/// unused low bits are (43 characters carry 258 bits for a 256-bit key).
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// The signature WeChat puts in `signature` (plain mode: token, timestamp, nonce) or `msg_signature`
/// (with the ciphertext as a fourth part): the lower-case hex SHA-1 of the parts sorted as byte strings
/// and joined without separator.
pub fn signature(parts: &[&str]) -> String {
    let mut sorted = parts.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha1::new();
    for part in sorted {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Whether `given` is the signature of `parts` (case-insensitive hex, compared in constant time).
pub fn signature_matches(given: &str, parts: &[&str]) -> bool {
    let expected = signature(parts);
    let given = given.trim().to_ascii_lowercase();
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
}

/// The WXBizMsgCrypt of one account: its token, AES key and receiver id.
#[derive(Clone)]
pub struct MessageCrypt {
    token: String,
    key: [u8; 32],
    receiver_id: String,
}

impl std::fmt::Debug for MessageCrypt {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MessageCrypt")
            .field("receiver_id", &self.receiver_id)
            .finish_non_exhaustive()
    }
}

impl MessageCrypt {
    /// The crypt of an account whose console shows `token` and `encoding_aes_key`; `receiver_id` is
    /// the 公众号's AppID or the 企业微信 CorpID.
    ///
    /// Returns [`Error::InvalidInput`] for a key that is not 43 characters of Base64.
    pub fn new(token: &str, encoding_aes_key: &str, receiver_id: &str) -> Result<MessageCrypt> {
        Ok(MessageCrypt {
            token: token.to_string(),
            key: decode_encoding_aes_key(encoding_aes_key)?,
            receiver_id: receiver_id.to_string(),
        })
    }

    /// The `msg_signature` of `encrypted` at `timestamp` and `nonce`.
    pub fn msg_signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        signature(&[&self.token, timestamp, nonce, encrypted])
    }

    /// Checks a `msg_signature`.
    ///
    /// Returns [`Error::Forbidden`] when it does not match.
    pub fn verify(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<()> {
        if signature_matches(msg_signature, &[&self.token, timestamp, nonce, encrypted]) {
            Ok(())
        } else {
            Err(Error::Forbidden("the msg_signature does not match".into()))
        }
    }

    /// Encrypts `message` with the 16 bytes `random` in front (fresh random bytes in use; fixed ones
    /// reproduce the documentation's vectors); Base64.
    pub fn encrypt_with(&self, message: &str, random: [u8; RANDOM_PREFIX]) -> String {
        let mut plain = Vec::with_capacity(message.len() + self.receiver_id.len() + 52);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.receiver_id.as_bytes());
        let padding = PADDING_BLOCK - plain.len() % PADDING_BLOCK;
        plain.resize(plain.len() + padding, padding as u8);
        let length = plain.len();
        let (key, iv) = self.key_and_iv();
        let encrypted = Aes256CbcEncryptor::new(&key.into(), &iv.into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, length)
            .expect("the plaintext is padded to whole blocks");
        STANDARD.encode(encrypted)
    }

    /// Encrypts `message` with 16 fresh random bytes in front; Base64.
    pub fn encrypt(&self, message: &str) -> String {
        let random: [u8; RANDOM_PREFIX] = rand::random();
        self.encrypt_with(message, random)
    }

    /// Decrypts a Base64 ciphertext into the message, checking that it was meant for this receiver.
    ///
    /// Returns [`Error::Forbidden`] when it does not decrypt to a message for this receiver.
    pub fn decrypt(&self, encrypted: &str) -> Result<String> {
        let refused = |why: &str| Error::Forbidden(format!("the message does not decrypt: {why}"));
        let mut buffer = STANDARD
            .decode(encrypted.trim())
            .map_err(|_| refused("not base64"))?;
        if buffer.is_empty() || buffer.len() % 16 != 0 {
            return Err(refused("not whole AES blocks"));
        }
        let (key, iv) = self.key_and_iv();
        let plain = Aes256CbcDecryptor::new(&key.into(), &iv.into())
            .decrypt_padded_mut::<NoPadding>(&mut buffer)
            .map_err(|_| refused("not whole AES blocks"))?;
        let padding = usize::from(*plain.last().ok_or_else(|| refused("empty"))?);
        if !(1..=PADDING_BLOCK).contains(&padding) || padding > plain.len() {
            return Err(refused("bad padding (wrong key?)"));
        }
        let content = &plain[..plain.len() - padding];
        let length_bytes: [u8; 4] = content
            .get(RANDOM_PREFIX..RANDOM_PREFIX + 4)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| refused("too short"))?;
        let length = u32::from_be_bytes(length_bytes) as usize;
        let start = RANDOM_PREFIX + 4;
        let message = content
            .get(start..start + length)
            .ok_or_else(|| refused("the length is past the end (wrong key?)"))?;
        let receiver = &content[start + length..];
        if receiver != self.receiver_id.as_bytes() {
            return Err(refused("it is meant for another AppID or CorpID"));
        }
        String::from_utf8(message.to_vec()).map_err(|_| refused("not UTF-8"))
    }

    fn key_and_iv(&self) -> ([u8; 32], [u8; 16]) {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        (self.key, iv)
    }
}

/// The 32-byte AES key of an EncodingAESKey.
///
/// Returns [`Error::InvalidInput`] for anything but 43 characters of Base64.
pub fn decode_encoding_aes_key(encoding_aes_key: &str) -> Result<[u8; 32]> {
    let invalid = || {
        Error::InvalidInput(format!(
            "an EncodingAESKey is {ENCODING_AES_KEY_CHARS} letters and digits, as WeChat's console shows it"
        ))
    };
    let trimmed = encoding_aes_key.trim();
    if trimmed.len() != ENCODING_AES_KEY_CHARS {
        return Err(invalid());
    }
    let bytes = LENIENT_BASE64
        .decode(format!("{trimmed}="))
        .map_err(|_| invalid())?;
    bytes.try_into().map_err(|_| invalid())
}

/// A new EncodingAESKey (43 characters), for an admin who lets kefu choose it.
pub fn generate_encoding_aes_key() -> String {
    let key: [u8; 32] = rand::random();
    let mut encoded = STANDARD.encode(key);
    encoded.truncate(ENCODING_AES_KEY_CHARS);
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 企业微信's sample (WXBizMsgCrypt `Sample.cs`/`Sample.java` of the official download).
    const WECOM_TOKEN: &str = "QDG6eK";
    const WECOM_CORP_ID: &str = "wx5823bf96d3bd56c7";
    const WECOM_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

    #[test]
    fn the_wecom_sample_url_verification_checks_and_decrypts_the_echostr() {
        let crypt = MessageCrypt::new(WECOM_TOKEN, WECOM_KEY, WECOM_CORP_ID).unwrap();
        let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        crypt
            .verify(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                echostr,
            )
            .unwrap();
        assert_eq!(crypt.decrypt(echostr).unwrap(), "1616140317555161061");
        assert!(crypt
            .verify(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd4",
                "1409659589",
                "263014780",
                echostr
            )
            .is_err());
    }

    #[test]
    fn the_wecom_sample_message_checks_and_decrypts() {
        let crypt = MessageCrypt::new(WECOM_TOKEN, WECOM_KEY, WECOM_CORP_ID).unwrap();
        let encrypted = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
        assert_eq!(
            crypt.msg_signature("1409659813", "1372623149", encrypted),
            "477715d11cdb4164915debcba66cb864d751f3e6"
        );
        crypt
            .verify(
                "477715D11CDB4164915DEBCBA66CB864D751F3E6",
                "1409659813",
                "1372623149",
                encrypted,
            )
            .unwrap();
        let message = crypt.decrypt(encrypted).unwrap();
        assert!(
            message.starts_with("<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>"),
            "{message}"
        );
        assert!(message.contains("<Content><![CDATA[hello]]></Content>"));
        assert!(message.contains("<MsgId>4561255354251345929</MsgId>"));

        // The same ciphertext is refused by an account with another CorpID.
        let other = MessageCrypt::new(WECOM_TOKEN, WECOM_KEY, "ww0000000000000000").unwrap();
        assert!(other.decrypt(encrypted).is_err());
    }

    #[test]
    fn the_official_account_sample_encrypts_to_the_documented_ciphertext() {
        // 公众号's WXBizMsgCryptTest: a fixed random prefix makes the ciphertext reproducible.
        let crypt = MessageCrypt::new(
            "pamtest",
            "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
            "wxb11529c136998cb6",
        )
        .unwrap();
        let encrypted = crypt.encrypt_with("我是中文abcd123", *b"aaaabbbbccccdddd");
        assert_eq!(
            encrypted,
            "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
        );
        assert_eq!(crypt.decrypt(&encrypted).unwrap(), "我是中文abcd123");
    }

    #[test]
    fn random_prefixes_round_trip_for_every_padding_length() {
        let key = generate_encoding_aes_key();
        assert_eq!(key.len(), ENCODING_AES_KEY_CHARS);
        let crypt = MessageCrypt::new("token", &key, "wx1234567890abcdef").unwrap();
        // 16 + 4 + n + 18 bytes: every remainder modulo 32, including a full block of padding.
        for length in 0..70 {
            let message = "界".repeat(length / 3) + &"a".repeat(length % 3);
            let first = crypt.encrypt(&message);
            assert_ne!(first, crypt.encrypt(&message), "the prefix is random");
            assert_eq!(crypt.decrypt(&first).unwrap(), message);
        }
    }

    #[test]
    fn plain_mode_signatures_sort_their_parts() {
        // Checked against Python's hashlib: sha1("1409659589" + "263014780" + "QDG6eK").
        assert_eq!(
            signature(&["QDG6eK", "1409659589", "263014780"]),
            signature(&["263014780", "QDG6eK", "1409659589"])
        );
        assert_eq!(
            signature(&["QDG6eK", "1409659589", "263014780"]),
            "93d1cec91cee4a4a8baada4c807ed13137622215"
        );
    }

    #[test]
    fn keys_of_the_wrong_length_or_alphabet_are_refused() {
        assert!(decode_encoding_aes_key("short").is_err());
        assert!(decode_encoding_aes_key(&"!".repeat(43)).is_err());
        assert!(decode_encoding_aes_key(WECOM_KEY).is_ok());
        let crypt = MessageCrypt::new("t", WECOM_KEY, "id").unwrap();
        assert!(crypt.decrypt("not base64!").is_err());
        assert!(crypt.decrypt("AAAA").is_err());
    }
}
