//! The sign-in rate limit: at most `login_max_failures` attempts per
//! username and `login_max_failures_per_address` per client address within
//! `login_failure_window_s`; further attempts are refused (429 with
//! `Retry-After`) before the password is checked.
//!
//! Every attempt is counted when it starts ([`LoginThrottle::begin`]), so
//! that parallel requests cannot slip past the limit while their passwords
//! are being hashed; a success then takes its attempt back and clears the
//! username's count ([`LoginThrottle::succeeded`]). What remains are the
//! failures. The counts live in this process only: with several instances
//! behind a load balancer the limit applies per instance.
//!
//! The clock is a parameter (`now`), so tests move time by hand.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::settings::Settings;

/// Usernames and addresses tracked at most. Past it, stale entries are
/// dropped; if that is not enough (a spray of thousands of names), new keys
/// go uncounted, with a warning, rather than locking every nurse out: the
/// argon2 cost of each attempt still bounds the rate.
const MAX_TRACKED_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Username(String),
    Address(String),
}

/// Counts sign-in attempts per username and per client address.
#[derive(Debug)]
pub struct LoginThrottle {
    max_per_username: usize,
    max_per_address: usize,
    window: Duration,
    attempts: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// Creates a throttle with these limits.
    pub fn new(max_per_username: u32, max_per_address: u32, window: Duration) -> LoginThrottle {
        LoginThrottle {
            max_per_username: max_per_username.max(1) as usize,
            max_per_address: max_per_address.max(1) as usize,
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Creates the throttle the settings describe.
    pub fn from_settings(settings: &Settings) -> LoginThrottle {
        LoginThrottle::new(
            settings.login_max_failures,
            settings.login_max_failures_per_address,
            settings.login_failure_window(),
        )
    }

    /// Counts an attempt for `username` and `address`, unless either has
    /// reached its limit.
    ///
    /// # Errors
    /// Returns how long until the oldest counted attempt leaves the window
    /// (at least one second), when a limit is reached; nothing is counted then.
    pub fn begin(
        &self,
        username: &str,
        address: Option<&str>,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut attempts = self
            .attempts
            .lock()
            .expect("throttle lock is never poisoned");
        let keys = self.keys(username, address);
        let mut wait = Duration::ZERO;
        for (key, limit) in &keys {
            if let Some(times) = attempts.get_mut(key) {
                forget_before(times, now, self.window);
                if times.len() >= *limit {
                    let oldest = times.front().copied().unwrap_or(now);
                    let until = (oldest + self.window).saturating_duration_since(now);
                    wait = wait.max(until);
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait.max(Duration::from_secs(1)));
        }
        if attempts.len() >= MAX_TRACKED_KEYS {
            attempts.retain(|_, times| {
                forget_before(times, now, self.window);
                !times.is_empty()
            });
        }
        for (key, _) in keys {
            if attempts.len() >= MAX_TRACKED_KEYS && !attempts.contains_key(&key) {
                tracing::warn!("sign-in rate limit is tracking too many names and addresses");
                continue;
            }
            attempts.entry(key).or_default().push_back(now);
        }
        Ok(())
    }

    /// Takes back the attempt a successful sign-in counted: clears the
    /// username's count and removes the address's latest attempt.
    pub fn succeeded(&self, username: &str, address: Option<&str>) {
        let mut attempts = self
            .attempts
            .lock()
            .expect("throttle lock is never poisoned");
        attempts.remove(&Key::Username(username.to_owned()));
        if let Some(address) = address {
            let key = Key::Address(address.to_owned());
            if let Some(times) = attempts.get_mut(&key) {
                times.pop_back();
                if times.is_empty() {
                    attempts.remove(&key);
                }
            }
        }
    }

    fn keys(&self, username: &str, address: Option<&str>) -> Vec<(Key, usize)> {
        let mut keys = vec![(Key::Username(username.to_owned()), self.max_per_username)];
        if let Some(address) = address {
            keys.push((Key::Address(address.to_owned()), self.max_per_address));
        }
        keys
    }
}

fn forget_before(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|first| now.saturating_duration_since(*first) >= window)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(900);

    #[test]
    fn the_sixth_failure_within_the_window_is_refused_until_the_first_ages_out() {
        let throttle = LoginThrottle::new(5, 100, WINDOW);
        let start = Instant::now();
        for minute in 0..5 {
            let at = start + Duration::from_secs(60 * minute);
            assert!(throttle.begin("anouk", Some("10.0.0.1"), at).is_ok());
        }
        // Refused at minute 6, with the wait until the first attempt ages out.
        let refused = throttle
            .begin("anouk", Some("10.0.0.2"), start + Duration::from_secs(360))
            .unwrap_err();
        assert_eq!(refused, Duration::from_secs(900 - 360));
        // Another username from the same address is not affected.
        assert!(throttle
            .begin("bram", Some("10.0.0.1"), start + Duration::from_secs(360))
            .is_ok());
        // Once the first attempt is 15 minutes old, one more is allowed.
        assert!(throttle.begin("anouk", None, start + WINDOW).is_ok());
        assert!(throttle
            .begin("anouk", None, start + WINDOW + Duration::from_secs(1))
            .is_err());
    }

    #[test]
    fn an_address_is_limited_across_usernames() {
        let throttle = LoginThrottle::new(5, 3, WINDOW);
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            assert!(throttle.begin(name, Some("192.0.2.7"), now).is_ok());
        }
        assert!(throttle.begin("d", Some("192.0.2.7"), now).is_err());
        assert!(throttle.begin("d", Some("192.0.2.8"), now).is_ok());
    }

    #[test]
    fn a_success_clears_the_username_and_takes_back_its_own_attempt() {
        let throttle = LoginThrottle::new(2, 3, WINDOW);
        let now = Instant::now();
        throttle.begin("anouk", Some("192.0.2.7"), now).unwrap();
        throttle.begin("anouk", Some("192.0.2.7"), now).unwrap();
        assert!(throttle.begin("anouk", Some("192.0.2.7"), now).is_err());
        // Arrange: a colleague at the same desk signs in successfully.
        throttle.begin("bram", Some("192.0.2.7"), now).unwrap();
        throttle.succeeded("bram", Some("192.0.2.7"));
        // Assert: the address still holds anouk's two failures, not bram's success…
        assert!(throttle.begin("carla", Some("192.0.2.7"), now).is_ok());
        assert!(throttle.begin("dirk", Some("192.0.2.7"), now).is_err());
        // …and anouk's own success would clear her count.
        throttle.succeeded("anouk", None);
        assert!(throttle.begin("anouk", None, now).is_ok());
    }

    #[test]
    fn the_wait_is_at_least_a_second() {
        let throttle = LoginThrottle::new(1, 10, Duration::from_millis(1500));
        let now = Instant::now();
        throttle.begin("x", None, now).unwrap();
        let wait = throttle
            .begin("x", None, now + Duration::from_millis(1400))
            .unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
    }
}
