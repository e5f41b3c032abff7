//! Password hashing for people (argon2id, PHC strings).

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Hashes a person's password for storage.
///
/// # Errors
/// Fails only if the system random source fails.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("random source failed: {e}"))?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a stored hash; a malformed hash never verifies.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

/// Checks passwords on the blocking thread pool, a few at a time: argon2 takes tens of
/// milliseconds of CPU, and a burst of guesses run on the async workers would stall every
/// relay and the console. Share one between the front ends.
#[derive(Debug, Clone)]
pub struct PasswordChecker {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long an attempt may wait for a permit before it is refused as busy.
    wait: std::time::Duration,
}

/// Too many password checks are running or waiting: the attempt is refused unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many password checks at once; try again")]
pub struct CheckerBusy;

impl PasswordChecker {
    /// At most `parallel` checks at once; an attempt waits at most `wait` for its turn.
    pub fn new(parallel: usize, wait: std::time::Duration) -> Self {
        PasswordChecker {
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(parallel.max(1))),
            wait,
        }
    }

    /// Whether `password` matches `stored` (a missing hash never does, but costs the same).
    ///
    /// # Errors
    /// [`CheckerBusy`] when no turn came within the wait.
    pub async fn check(&self, password: &str, stored: Option<&str>) -> Result<bool, CheckerBusy> {
        let permit = tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| CheckerBusy)?
            .map_err(|_| CheckerBusy)?;
        // A hash that costs the same as a real one, so an unknown name takes as long.
        let stored = stored.map_or_else(|| dummy_hash().to_owned(), str::to_owned);
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(&password, &stored)
        })
        .await
        .unwrap_or(false);
        Ok(ok)
    }
}

/// The hash unknown names are checked against (of a random password nobody knows).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let mut pw = [0u8; 16];
        let _ = getrandom::fill(&mut pw);
        hash_password(&format!("{pw:?}")).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    /// Issue 10: checks run off the async workers, a bounded number at a time, and a burst
    /// beyond what can be served in time is refused instead of queued without end.
    #[tokio::test(flavor = "current_thread")]
    async fn checks_are_bounded_and_off_the_runtime() {
        let h = hash_password("pw").unwrap();
        let checker = PasswordChecker::new(1, std::time::Duration::from_millis(1));
        assert_eq!(checker.check("pw", Some(&h)).await, Ok(true));
        assert_eq!(checker.check("pw", None).await, Ok(false));
        // While one check holds the only permit, the next times out as busy.
        let (a, b) = tokio::join!(checker.check("pw", Some(&h)), checker.check("pw", Some(&h)));
        assert!(a == Err(CheckerBusy) || b == Err(CheckerBusy), "{a:?} {b:?}");
        assert!(a == Ok(true) || b == Ok(true), "{a:?} {b:?}");
    }
}
