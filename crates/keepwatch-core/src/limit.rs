//! Login attempts: one limiter for the SSH gateway and the web console, so that a flood of
//! guesses locks out a name or an address whichever door it comes through, and so that the
//! refusals it causes are audited in bounded number.
//!
//! An attempt is counted before the password is checked (parallel guesses cannot all slip
//! through while the hashes run), and forgiven when it succeeds. A success never clears the
//! address's count: one valid account must not reset the counter its owner uses to guess
//! another's password. Old entries are evicted as time passes and when the table is full,
//! so the limiter holds a bounded number of entries whatever arrives.
//!
//! Sans-IO apart from its lock: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metrics::{METRICS, Refused};

/// The limits, from `keepwatch.toml`'s `[limits]`.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failed password attempts one name may have within `window`.
    pub per_name: u32,
    /// Failed attempts one address may have within `window`.
    pub per_address: u32,
    /// How long failures count (and a lockout lasts, from the oldest counted failure).
    pub window: Duration,
    /// Most names and addresses tracked at once; past it the oldest are forgotten.
    pub max_entries: usize,
    /// Refused logins audited one by one: up to `audit_burst` per address at once, refilled
    /// at that many per `audit_every`; ten times that over all addresses. The others are
    /// counted and reported in the address's next audited refusal.
    pub audit_burst: u32,
    pub audit_every: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_name: 5,
            per_address: 20,
            window: Duration::from_secs(15 * 60),
            max_entries: 100_000,
            audit_burst: 10,
            audit_every: Duration::from_secs(60),
        }
    }
}

/// Names longer than this are cut before they are counted: no real name is this long, and a
/// 2 MB "name" must not be kept.
pub const MAX_COUNTED_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Name(String),
    Address(IpAddr),
}

#[derive(Debug, Default)]
struct Entry {
    /// Times of counted attempts within the window, oldest first.
    times: Vec<Instant>,
    last: Option<Instant>,
}

/// A token bucket: `tokens` as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, now: Instant) -> Self {
        Bucket { tokens: capacity, at: now }
    }

    /// Refills for the time passed, then takes a token if there is one.
    fn take(&mut self, capacity: f64, per_sec: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_sec).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Refusals {
    /// Per address: its bucket, and refusals since its last audited one that were not.
    by_address: HashMap<IpAddr, (Bucket, u64)>,
    all: Option<Bucket>,
}

/// The limiter; share one between the front ends.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    entries: Mutex<HashMap<Key, Entry>>,
    refusals: Mutex<Refusals>,
}

/// An attempt that may go ahead; hand it back with [`LoginLimiter::succeeded`] when the
/// password was right.
#[derive(Debug)]
#[must_use]
pub struct Attempt {
    name: Key,
    address: Key,
}

/// Too many failures: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub retry_after: Duration,
}

/// Whether a refused login should be audited now, and how many refusals from its address
/// went unaudited before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalAudit {
    /// Audit this one; `suppressed` earlier refusals from the address were counted only.
    Write { suppressed: u64 },
    /// Count it only.
    Skip,
}

fn cut(name: &str) -> String {
    let mut end = name.len().min(MAX_COUNTED_NAME);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> Self {
        let refusals = Refusals { by_address: HashMap::new(), all: None };
        LoginLimiter { limits, entries: Mutex::default(), refusals: Mutex::new(refusals) }
    }

    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    /// Counts an attempt by `name` from `address` before its password is checked; refuses
    /// it when either has failed too often.
    ///
    /// # Errors
    /// [`Locked`] with how long to wait.
    pub fn begin(&self, name: &str, address: IpAddr, now: Instant) -> Result<Attempt, Locked> {
        let name = Key::Name(cut(name));
        let address = Key::Address(address);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let window = self.limits.window;
        let mut wait = Duration::ZERO;
        for (key, max) in [(&name, self.limits.per_name), (&address, self.limits.per_address)] {
            if let Some(e) = map.get_mut(key) {
                e.times.retain(|t| now.duration_since(*t) < window);
                if e.times.len() >= max as usize {
                    wait = wait.max(window.saturating_sub(now.duration_since(e.times[0])));
                }
            }
        }
        if !wait.is_zero() {
            METRICS.refused(Refused::LoginLocked);
            return Err(Locked { retry_after: wait.max(Duration::from_secs(1)) });
        }
        if map.len() + 2 > self.limits.max_entries {
            evict(&mut map, now, window, self.limits.max_entries / 2);
        }
        for key in [&name, &address] {
            let e = map.entry(key.clone()).or_default();
            e.times.push(now);
            e.last = Some(now);
        }
        Ok(Attempt { name, address })
    }

    /// The attempt succeeded: it no longer counts, and the name's failures are forgotten.
    /// The address keeps its other failures.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&attempt.name);
        if let Some(e) = map.get_mut(&attempt.address) {
            e.times.pop();
        }
    }

    /// Whether to audit a refused login from `address` now (see
    /// [`LoginLimits::audit_burst`]), and how many from it went unaudited before.
    pub fn refusal(&self, address: IpAddr, now: Instant) -> RefusalAudit {
        let burst = f64::from(self.limits.audit_burst.max(1));
        let rate = burst / self.limits.audit_every.as_secs_f64().max(0.001);
        let mut r = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if r.by_address.len() >= self.limits.max_entries {
            // Addresses whose buckets are full again have nothing to remember.
            let every = self.limits.audit_every;
            r.by_address.retain(|_, (b, n)| *n > 0 || now.duration_since(b.at) < every);
            if r.by_address.len() >= self.limits.max_entries {
                return RefusalAudit::Skip;
            }
        }
        let all = r.all.get_or_insert(Bucket::full(burst * 10.0, now));
        let mut all_copy = *all;
        let entry = r.by_address.entry(address).or_insert((Bucket::full(burst, now), 0));
        let mine = entry.0.take(burst, rate, now);
        let write = mine && all_copy.take(burst * 10.0, rate * 10.0, now);
        if !write {
            entry.1 += 1;
            if mine {
                // The address had a token but the whole gateway had none: give it back.
                entry.0.tokens += 1.0;
            }
            r.all = Some(all_copy);
            return RefusalAudit::Skip;
        }
        let suppressed = std::mem::take(&mut entry.1);
        r.all = Some(all_copy);
        RefusalAudit::Write { suppressed }
    }

    /// Entries held now (names and addresses), for tests and metrics.
    pub fn tracked(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Drops entries with nothing in the window, then the least recently used, down to `keep`.
fn evict(map: &mut HashMap<Key, Entry>, now: Instant, window: Duration, keep: usize) {
    map.retain(|_, e| e.last.is_some_and(|t| now.duration_since(t) < window));
    if map.len() > keep {
        let mut by_age: Vec<(Instant, Key)> =
            map.iter().map(|(k, e)| (e.last.unwrap_or(now), k.clone())).collect();
        by_age.sort_by_key(|(t, _)| *t);
        for (_, k) in by_age.into_iter().take(map.len() - keep) {
            map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    /// Issue 10: attempts are counted before the check, so parallel guesses stop at the limit.
    #[test]
    fn parallel_guesses_stop_at_the_limit() {
        let l = LoginLimiter::new(LoginLimits::default());
        let now = Instant::now();
        let passed = (0..50).filter_map(|_| l.begin("alice", ip(1), now).ok()).count();
        assert_eq!(passed, 5, "only per_name attempts may be in flight");
        let locked = l.begin("alice", ip(9), now).unwrap_err();
        assert!(locked.retry_after > Duration::from_secs(14 * 60));
        assert!(l.begin("alice", ip(1), now + Duration::from_secs(15 * 60)).is_ok(), "expires");
    }

    /// A success forgives the name but not the address.
    #[test]
    fn a_success_does_not_clear_the_address() {
        let limits = LoginLimits { per_name: 100, per_address: 3, ..Default::default() };
        let l = LoginLimiter::new(limits);
        let now = Instant::now();
        for n in ["bob", "carol"] {
            let _failed = l.begin(n, ip(2), now).unwrap();
        }
        let mine = l.begin("mallory", ip(2), now).unwrap();
        l.succeeded(mine);
        assert!(l.begin("dave", ip(2), now).is_ok(), "the success was forgiven");
        assert!(l.begin("erin", ip(2), now).is_err(), "the failures were not");
    }

    /// A flood of distinct names and addresses holds a bounded table; long names are cut.
    #[test]
    fn the_table_stays_bounded() {
        let limits = LoginLimits { max_entries: 1000, ..Default::default() };
        let l = LoginLimiter::new(limits);
        let now = Instant::now();
        for i in 0..10_000u32 {
            let name = format!("{i}{}", "x".repeat(2 << 20 >> 10));
            let _ = l.begin(&name, IpAddr::from(i.to_be_bytes()), now);
            assert!(l.tracked() <= 1000);
        }
        let long = "y".repeat(2 << 20);
        let _ = l.begin(&long, ip(3), now);
        let key_len = l
            .entries
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| match k {
                Key::Name(n) => Some(n.len()),
                Key::Address(_) => None,
            })
            .max()
            .unwrap();
        assert!(key_len <= MAX_COUNTED_NAME);
    }

    /// Refusals from one address are audited up to the burst, then at the refill rate, with
    /// a count of those that were not; over all addresses ten times that.
    #[test]
    fn refusal_audits_are_rate_limited() {
        let l = LoginLimiter::new(LoginLimits::default());
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.refusal(ip(4), t0), RefusalAudit::Write { suppressed: 0 });
        }
        for s in 1..=100 {
            assert_eq!(l.refusal(ip(4), t0 + Duration::from_millis(s)), RefusalAudit::Skip);
        }
        assert_eq!(l.refusal(ip(5), t0), RefusalAudit::Write { suppressed: 0 }, "another address");
        assert_eq!(
            l.refusal(ip(4), t0 + Duration::from_secs(7)),
            RefusalAudit::Write { suppressed: 100 },
            "one token back after a tenth of the minute"
        );
        // A flood from many addresses: at most ten bursts get through at once.
        let written = (0..10_000u32)
            .filter(|i| {
                let a = IpAddr::from((0x0a00_0000 + i).to_be_bytes());
                l.refusal(a, t0 + Duration::from_secs(8)) != RefusalAudit::Skip
            })
            .count();
        assert!(written <= 100, "{written} audited at once");
    }
}
