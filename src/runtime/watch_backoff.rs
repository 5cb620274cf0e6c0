//! How the controllers' watches wait after an error.
//!
//! kube-runtime backs off in two places: each watch stream (what
//! `.backoff(..)` wraps) and, inside `Controller`, the one stream that merges
//! every watch's triggers. The merged stream's default backoff (client-go's
//! 800 ms doubling to 30 s) resets only when a trigger passes, so in a quiet
//! namespace the errors of *any* watch (a 5xx on a re-watch, a 410) push it
//! to 30 s, and while it sleeps no watch is polled at all: the Rollout cache
//! and every trigger froze for minutes under the API-faults test (a v3 patch
//! went unseen for 234 s, docs/reliability.md). So each watch backs off on
//! its own ([`watch_backoff`]) and the merged stream never waits
//! ([`TriggerBackoff`]): one failing watch cannot silence the others.

use std::time::Duration;

use kube::runtime::utils::Backoff;
use kube::runtime::watcher::ExponentialBackoff;

/// The first wait of a watch after an error (jitter adds up to as much again).
pub const WATCH_BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest: a watch that keeps failing is retried this often. Below
/// kube's 30 s because a watch in a quiet namespace yields nothing that
/// resets its backoff between transient errors, and this bound is how stale
/// a cache can get after them.
pub const WATCH_BACKOFF_CAP: Duration = Duration::from_secs(5);

/// The backoff of one watch stream: [`WATCH_BACKOFF_FIRST`] doubling to
/// [`WATCH_BACKOFF_CAP`], with jitter so that the watches of many operators
/// do not retry in step; reset by any event the watch yields.
pub fn watch_backoff() -> ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(WATCH_BACKOFF_FIRST)
        .with_max_delay(WATCH_BACKOFF_CAP)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// The merged trigger stream's backoff: none. Every stream merged into it
/// already backs off on its own (the caller's contract, see
/// [`super::run::run`]); an error only passes through to be logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct TriggerBackoff;

impl Iterator for TriggerBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl Backoff for TriggerBackoff {
    fn reset(&mut self) {}
}

#[cfg(test)]
mod tests {
    use std::pin::pin;

    use futures::{StreamExt, stream};
    use kube::runtime::utils::StreamBackoff;
    use kube::runtime::watcher::DefaultBackoff;
    use tokio::time::Instant;

    use super::*;

    #[test]
    fn a_failing_watch_waits_between_half_a_second_and_ten_seconds() {
        let waits: Vec<Duration> = watch_backoff().take(12).collect();
        // Jitter adds up to one more delay: [d, 2d) with d doubling from 500 ms to 5 s.
        for (i, w) in waits.iter().enumerate() {
            let d = WATCH_BACKOFF_FIRST
                .saturating_mul(1 << i.min(10))
                .min(WATCH_BACKOFF_CAP);
            assert!(
                *w >= d && *w <= d * 2,
                "wait {i}: {w:?} not in [{d:?}, {:?}]",
                d * 2
            );
        }
        let mut b = watch_backoff();
        let _ = b.by_ref().take(8).count();
        b.reset();
        assert!(b.next().is_some_and(|w| w < WATCH_BACKOFF_FIRST * 2));
    }

    /// When the quiet watch's trigger comes.
    const QUIET_FOR: Duration = Duration::from_secs(300);

    /// The merged stream of two watches: one fails every second (already
    /// backing off on its own), the other yields a trigger after
    /// [`QUIET_FOR`]. Returns (when the trigger came out, how many errors
    /// came out before it).
    async fn merged_trigger_at(backoff: impl Backoff + 'static) -> (Duration, usize) {
        let start = Instant::now();
        let failing = stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Err::<u32, &str>("503"), ()))
        })
        .boxed();
        let quiet = stream::once(async {
            tokio::time::sleep(QUIET_FOR).await;
            Ok::<u32, &str>(7)
        })
        .chain(stream::pending())
        .boxed();
        let mut merged = pin!(StreamBackoff::new(
            stream::select_all([failing, quiet]),
            backoff
        ));
        let mut errors = 0;
        while let Some(item) = merged.next().await {
            match item {
                Ok(7) => return (start.elapsed(), errors),
                Ok(other) => panic!("unexpected item {other}"),
                Err(_) => errors += 1,
            }
        }
        panic!("the merged stream ended")
    }

    #[tokio::test(start_paused = true)]
    async fn one_failing_watch_does_not_delay_another_watchs_trigger() {
        let (at, errors) = merged_trigger_at(TriggerBackoff).await;
        assert!(
            at < QUIET_FOR + Duration::from_secs(1),
            "trigger delivered at {at:?}"
        );
        assert!(
            errors >= 299,
            "errors still pass through to be logged: {errors}"
        );
    }

    /// The defect the above prevents, pinned on kube's default so that a
    /// kube upgrade changing it shows here: no trigger resets it, so after a
    /// few errors it sleeps at least 30 s at a time (jitter only adds), and
    /// while it sleeps no watch is polled — the failing one included, which
    /// is why so few of its errors came out: after the sleeps of at least
    /// 0.8, 1.6, … 25.6 s (50.4 s), at most one per 31 s (a sleep and the
    /// failing watch's second), so about 15 by 300 s.
    #[tokio::test(start_paused = true)]
    async fn kubes_default_trigger_backoff_pauses_every_watch() {
        let (at, errors) = merged_trigger_at(DefaultBackoff::default()).await;
        eprintln!("kube's default: trigger at {at:?} after {errors} errors");
        assert!(at >= QUIET_FOR, "trigger delivered at {at:?}");
        assert!(errors <= 16, "{errors} errors");
    }
}
