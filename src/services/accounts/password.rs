//! Password hashing (argon2id) and the rules a new password must follow.

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::Argon2;
use zxcvbn::feedback::Warning;

use crate::error::{Error, Result};

pub use crate::domain::limits::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};

/// Threads that run argon2. Each hash needs 19 MiB of working memory; allocated per call, glibc kept
/// it in the arena of whichever thread ran the hash (measured: RSS 83 MiB idle, 219 MiB after a few
/// dozen sign-ins). Two fixed threads, each reusing one buffer, bound it to 2 × 19 MiB.
const HASHING_THREADS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

thread_local! {
    /// The argon2 working memory of this hashing thread, reused by every hash it computes.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `work` on one of the hashing threads and waits for its result.
fn on_hashing_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    static JOBS: std::sync::OnceLock<parking_lot::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(parking_lot::Mutex::new(receiver));
        for index in 0..HASHING_THREADS {
            let receiver = std::sync::Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("kefu-argon2-{index}"))
                .spawn(move || loop {
                    let job = receiver.lock().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                })
                .expect("starting a hashing thread");
        }
        parking_lot::Mutex::new(sender)
    });
    let (reply, answer) = std::sync::mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let _ = reply.send(work());
    });
    jobs.lock().send(job).expect("hashing threads never stop");
    answer.recv().expect("a hashing job always answers")
}

/// argon2 into `out` with this thread's reusable working memory.
fn argon2_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        let needed = argon2.params().block_count();
        if blocks.len() != needed {
            blocks.resize(needed, argon2::Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..])
    })
}

/// An argon2id PHC string for `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    on_hashing_thread(move || hash_here(&password))
}

fn hash_here(password: &str) -> Result<String> {
    use rand::RngCore;
    let failed =
        |error: &dyn std::fmt::Display| Error::Internal(format!("hashing a password: {error}"));
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|error| failed(&error))?;
    let argon2 = Argon2::default();
    let mut out = [0u8; 32];
    argon2_into(&argon2, password.as_bytes(), &salt_bytes, &mut out)
        .map_err(|error| failed(&error))?;
    let hash = PasswordHash {
        algorithm: argon2::Algorithm::Argon2id.ident(),
        version: Some(argon2::Version::V0x13.into()),
        params: argon2::password_hash::ParamsString::try_from(argon2.params())
            .map_err(|error| failed(&error))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|error| failed(&error))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `hash`; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let (password, hash) = (password.to_string(), hash.to_string());
    on_hashing_thread(move || verify_here(&password, &hash))
}

fn verify_here(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        argon2::Algorithm::try_from(parsed.algorithm),
        argon2::Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .and_then(|version| argon2::Version::try_from(version).ok())
        .unwrap_or_default();
    let mut salt_buffer = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_buffer) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if argon2_into(&argon2, password.as_bytes(), salt_bytes, &mut out).is_err() {
        return false;
    }
    // `Output` compares in constant time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
}

/// Checks a new password: 8 to 256 characters, no control characters, 3 of the 4 classes (upper,
/// lower, digit, symbol), not the username, and not a common password (zxcvbn's frequency lists, which also catch l33t variants
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
    // NUL and other controls cannot be typed, and other systems (C strings, terminals, password
    // managers) cut or mangle them: such a password would not survive being used elsewhere.
    if password.chars().any(char::is_control) {
        broken.push("no control characters".to_string());
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
        assert!(reasons("a", "Aa1!\0\0\0\0\0\0\0\0")
            .iter()
            .any(|r| r == "no control characters"));
        assert!(reasons("a", "Kefu\u{7}Desk-2026")
            .iter()
            .any(|r| r == "no control characters"));
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
