//! The one retry policy after a failed reconcile: per object, the delay
//! doubles from `first` with each consecutive failure, up to `cap`; a
//! success forgets the failures. Progress never lives here, only pacing: a
//! restarted operator merely retries sooner.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// The delay after `failures` consecutive failures (1-based): `first`,
/// 2·`first`, 4·`first` … never above `cap`.
pub fn delay(first: Duration, cap: Duration, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    first.saturating_mul(1u32 << exp).min(cap)
}

/// Consecutive failures per object (keyed by uid, else name).
#[derive(Debug)]
pub struct ErrorBackoff {
    first: Duration,
    cap: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl ErrorBackoff {
    pub fn new(first: Duration, cap: Duration) -> Self {
        ErrorBackoff {
            first,
            cap: cap.max(first),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a failure of `key`; returns (consecutive failures, delay before the retry).
    pub fn failed(&self, key: String) -> (u32, Duration) {
        let mut map = self.lock();
        let n = map.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        (*n, delay(self.first, self.cap, *n))
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, u32>> {
        // A panic elsewhere cannot leave a counter map inconsistent.
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(delay(s(1), s(300), 1), s(1));
        assert_eq!(delay(s(1), s(300), 2), s(2));
        assert_eq!(delay(s(1), s(300), 5), s(16));
        assert_eq!(delay(s(1), s(300), 50), s(300));
        assert_eq!(
            delay(s(10), s(10), 7),
            s(10),
            "first == cap is a constant delay"
        );
    }

    #[test]
    fn failures_are_counted_per_object_and_forgotten_on_success() {
        let b = ErrorBackoff::new(Duration::from_secs(1), Duration::from_secs(300));
        assert_eq!(b.failed("a".into()), (1, Duration::from_secs(1)));
        assert_eq!(b.failed("a".into()), (2, Duration::from_secs(2)));
        assert_eq!(b.failed("b".into()), (1, Duration::from_secs(1)));
        b.succeeded("a");
        assert_eq!(b.failed("a".into()), (1, Duration::from_secs(1)));
    }
}
