//! How much watch history the store keeps: the compaction decision.
//!
//! A real API server forgets old events twice over: etcd compacts every 5
//! minutes, and the watch cache keeps a bounded window. A client resuming a
//! watch from a forgotten resourceVersion gets 410 Gone and relists. The
//! sandbox keeps one history for every kind and bounds it three ways — by
//! count, by age (etcd's compaction) and by an estimate of the bytes its
//! objects hold — so a long soak's memory reaches a plateau instead of
//! growing until the count bound, whatever the size of the objects.
//!
//! The decision is pure (`to_trim`); `store.rs` applies it on every write and
//! before serving a resume.

use std::time::{Duration, Instant};

use serde_json::Value;

/// Default number of events kept for watches that resume from an old resourceVersion.
pub const DEFAULT_HISTORY: usize = 20_000;
/// etcd's default compaction interval in Kubernetes (kube-apiserver
/// `--etcd-compaction-interval`): older resourceVersions are gone.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(5 * 60);
/// Estimated bytes of the objects the history refers to (`approx_bytes`).
pub const DEFAULT_MAX_BYTES: usize = 128 * 1024 * 1024;

/// The three bounds; an event is dropped (oldest first) while any is exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// At most this many events (at least one is always kept by this bound).
    pub max_events: usize,
    /// Events older than this are compacted; `None`: no age bound.
    pub max_age: Option<Duration>,
    /// The estimated bytes of the events' objects stay under this; `None`: no byte bound.
    pub max_bytes: Option<usize>,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            max_events: DEFAULT_HISTORY,
            max_age: Some(DEFAULT_MAX_AGE),
            max_bytes: Some(DEFAULT_MAX_BYTES),
        }
    }
}

impl HistoryLimits {
    /// Bounded by count only (the store's behaviour before the age and byte bounds).
    pub fn count_only(max_events: usize) -> Self {
        Self {
            max_events,
            max_age: None,
            max_bytes: None,
        }
    }
}

/// How many of the oldest events to drop. `events` runs oldest first, each as
/// (when it was recorded, its estimated bytes); `total_bytes` is their sum.
/// Drops while the count exceeds `max_events` (never below one event), or the
/// bytes exceed `max_bytes`, or the oldest is older than `max_age` (these two
/// may drop everything: a resume from the newest resourceVersion still works,
/// anything older is Gone, as after an etcd compaction at the current revision).
pub fn to_trim(
    events: impl ExactSizeIterator<Item = (Instant, usize)>,
    total_bytes: usize,
    now: Instant,
    limits: &HistoryLimits,
) -> usize {
    let max_events = limits.max_events.max(1);
    let mut len = events.len();
    let mut bytes = total_bytes;
    let mut drop = 0;
    for (at, size) in events {
        let too_many = len > max_events;
        let too_big = limits.max_bytes.is_some_and(|max| bytes > max);
        let too_old = limits
            .max_age
            .is_some_and(|max| now.saturating_duration_since(at) > max);
        if !(too_many || too_big || too_old) {
            break;
        }
        drop += 1;
        len -= 1;
        bytes = bytes.saturating_sub(size);
    }
    drop
}

/// A cheap estimate of the heap a JSON value holds (serde_json's `Value` is
/// 32 bytes; strings and keys their length; a map entry ~ key + value + 16 of
/// bookkeeping). Not exact — a bound for `max_bytes`, walked once per write.
pub fn approx_bytes(v: &Value) -> usize {
    const VALUE: usize = std::mem::size_of::<Value>();
    VALUE
        + match v {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(s) => s.len(),
            Value::Array(items) => items.iter().map(approx_bytes).sum(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| std::mem::size_of::<String>() + k.len() + 16 + approx_bytes(v))
                .sum(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: Duration = Duration::from_secs(1);

    /// `ages` in seconds before `now`, oldest first, each with `size` bytes.
    fn trim(ages_sizes: &[(u64, usize)], limits: HistoryLimits) -> usize {
        let now = Instant::now() + Duration::from_secs(3600);
        let events: Vec<(Instant, usize)> = ages_sizes
            .iter()
            .map(|(age, size)| (now - S * (*age as u32), *size))
            .collect();
        let total = events.iter().map(|e| e.1).sum();
        to_trim(events.into_iter(), total, now, &limits)
    }

    fn limits(events: usize, age_s: Option<u64>, bytes: Option<usize>) -> HistoryLimits {
        HistoryLimits {
            max_events: events,
            max_age: age_s.map(Duration::from_secs),
            max_bytes: bytes,
        }
    }

    /// A name; events (age in s, size) oldest first; the limits; how many are dropped.
    type Case = (&'static str, Vec<(u64, usize)>, HistoryLimits, usize);

    #[test]
    fn trims_the_oldest_while_any_bound_is_exceeded() {
        let ten = |size| {
            (0..10)
                .rev()
                .map(|age| (age * 60, size))
                .collect::<Vec<_>>()
        };
        // (events: age in s oldest first, size) , limits, dropped
        let cases: Vec<Case> = vec![
            ("empty", vec![], limits(5, Some(1), Some(1)), 0),
            (
                "within every bound",
                ten(10),
                limits(10, Some(600), Some(100)),
                0,
            ),
            ("count only", ten(10), limits(7, None, None), 3),
            ("count keeps one", ten(10), limits(0, None, None), 9),
            (
                "age: older than 5 min",
                ten(10),
                limits(100, Some(300), None),
                4,
            ),
            (
                "age: exactly the bound stays",
                vec![(300, 1)],
                limits(100, Some(300), None),
                0,
            ),
            (
                "age may drop all",
                vec![(60, 1), (30, 1)],
                limits(100, Some(10), None),
                2,
            ),
            (
                "bytes: down to the bound",
                ten(10),
                limits(100, None, Some(35)),
                7,
            ),
            (
                "bytes: exactly the bound stays",
                ten(10),
                limits(100, None, Some(100)),
                0,
            ),
            (
                "bytes may drop all",
                vec![(0, 50)],
                limits(100, None, Some(10)),
                1,
            ),
            (
                "the tightest bound wins",
                ten(10),
                limits(8, Some(420), Some(80)),
                // count → 2, bytes → 2, age (older than 7 min: 9, 8 min) → 2
                2,
            ),
            (
                "bytes tighter than age",
                ten(10),
                limits(100, Some(420), Some(50)),
                5,
            ),
            (
                "uneven sizes: a big old event frees much",
                vec![(60, 1000), (30, 10), (0, 10)],
                limits(100, None, Some(25)),
                1,
            ),
        ];
        for (name, events, limits, want) in cases {
            assert_eq!(trim(&events, limits), want, "{name}");
        }
    }

    #[test]
    fn a_young_event_stops_the_age_trim_even_if_a_later_one_is_older() {
        // Events are in recording order, so times are monotonic in practice;
        // the trim never skips over a kept event to drop a later one.
        assert_eq!(trim(&[(10, 1), (900, 1)], limits(100, Some(300), None)), 0);
    }

    #[test]
    fn the_byte_estimate_grows_with_content() {
        let small = approx_bytes(&json!({"a": 1}));
        let bigger = approx_bytes(&json!({"a": 1, "name": "x".repeat(100)}));
        assert!(bigger >= small + 100, "{small} {bigger}");
        assert_eq!(approx_bytes(&json!(null)), std::mem::size_of::<Value>());
        let list = approx_bytes(&json!(["abc", "de"]));
        assert_eq!(list, 3 * std::mem::size_of::<Value>() + 5);
    }
}
