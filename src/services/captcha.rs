//! Image captchas (验证码) required after repeated failed sign-ins.
//!
//! A challenge is kept in memory for a few minutes and can be answered once; answers ignore case.

use parking_lot::Mutex;
use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

/// How long a challenge may be answered.
const CHALLENGE_LIFETIME: SignedDuration = SignedDuration::from_mins(5);
/// Challenges kept at most; older ones are dropped first, so a flood cannot exhaust memory.
const MAX_OPEN_CHALLENGES: usize = 10_000;

/// Makes the picture and its answer.
pub trait CaptchaSource: Send + Sync + std::fmt::Debug {
    /// Returns (answer, PNG bytes).
    fn generate(&self) -> (String, Vec<u8>);
}

/// Distorted letters drawn by the `captcha` crate.
#[derive(Debug, Default, Clone, Copy)]
pub struct ImageCaptcha;

impl CaptchaSource for ImageCaptcha {
    fn generate(&self) -> (String, Vec<u8>) {
        use captcha::filters::{Dots, Noise, Wave};
        let mut image = captcha::Captcha::new();
        image
            .add_chars(5)
            .apply_filter(Noise::new(0.3))
            .apply_filter(Wave::new(2.0, 16.0).horizontal())
            .view(200, 70)
            .apply_filter(Dots::new(8));
        let answer = image.chars_as_string();
        let png = image.as_png().unwrap_or_default();
        (answer, png)
    }
}

/// A challenge handed to a client.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Names the challenge in the sign-in request.
    pub id: String,
    /// The picture.
    pub png: Vec<u8>,
}

/// Open challenges.
#[derive(Debug)]
pub struct Captchas {
    source: Box<dyn CaptchaSource>,
    open: Mutex<HashMap<String, (String, Timestamp)>>,
}

impl Captchas {
    /// Challenges drawn by `source`.
    pub fn new(source: Box<dyn CaptchaSource>) -> Captchas {
        Captchas {
            source,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A new challenge.
    pub fn issue(&self, now: Timestamp) -> Challenge {
        let (answer, png) = self.source.generate();
        let id = crate::services::secrets::random_token(16);
        let mut open = self.open.lock();
        open.retain(|_, (_, expires)| *expires > now);
        if open.len() >= MAX_OPEN_CHALLENGES {
            if let Some(oldest) = open
                .iter()
                .min_by_key(|(_, (_, expires))| *expires)
                .map(|(id, _)| id.clone())
            {
                open.remove(&oldest);
            }
        }
        open.insert(id.clone(), (answer, now + CHALLENGE_LIFETIME));
        Challenge { id, png }
    }

    /// Whether `answer` solves challenge `id`; the challenge is used up either way.
    pub fn verify(&self, id: &str, answer: &str, now: Timestamp) -> bool {
        let mut open = self.open.lock();
        match open.remove(id) {
            Some((expected, expires)) => {
                expires > now && expected.eq_ignore_ascii_case(answer.trim())
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Fixed;
    impl CaptchaSource for Fixed {
        fn generate(&self) -> (String, Vec<u8>) {
            ("AbCdE".to_string(), vec![1])
        }
    }

    #[test]
    fn a_challenge_is_answered_once_ignoring_case_and_expires() {
        let captchas = Captchas::new(Box::new(Fixed));
        let now = Timestamp::UNIX_EPOCH;
        let challenge = captchas.issue(now);
        assert!(!captchas.verify("other", "abcde", now));
        assert!(captchas.verify(&challenge.id, " abcde ", now));
        assert!(!captchas.verify(&challenge.id, "abcde", now), "used up");
        let late = captchas.issue(now);
        assert!(!captchas.verify(&late.id, "abcde", now + SignedDuration::from_mins(6)));
        let wrong = captchas.issue(now);
        assert!(!captchas.verify(&wrong.id, "xxxxx", now));
        assert!(
            !captchas.verify(&wrong.id, "abcde", now),
            "a wrong answer uses it up"
        );
    }

    #[test]
    fn the_real_image_is_a_png() {
        let (answer, png) = ImageCaptcha.generate();
        assert_eq!(answer.chars().count(), 5);
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    }
}
