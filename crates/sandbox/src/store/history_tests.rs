//! The store applies the watch history's bounds (`watch_history::to_trim`)
//! with the time from an injected clock: moved by hand here, never slept.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::registry::Registry;
use crate::store::{Store, StoreError};
use crate::watch_history::HistoryLimits;

struct Fixture {
    store: Store,
    now: Arc<Mutex<Instant>>,
    registry: Registry,
}

impl Fixture {
    fn new(limits: HistoryLimits) -> Self {
        let now = Arc::new(Mutex::new(Instant::now()));
        let clock = {
            let now = now.clone();
            Arc::new(move || *now.lock().unwrap())
        };
        let store = Store::with_history_and_clock(limits, clock);
        let registry = Registry::new();
        let ns = registry.by_kind("v1", "Namespace").unwrap();
        store
            .create(&ns, json!({"metadata": {"name": "demo"}}))
            .unwrap();
        Fixture {
            store,
            now,
            registry,
        }
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }

    /// Creates a ConfigMap with `data` bytes of payload; its resourceVersion.
    fn write(&self, name: &str, data: usize) -> u64 {
        let cm = self.registry.by_kind("v1", "ConfigMap").unwrap();
        let obj = self
            .store
            .create(
                &cm,
                json!({"metadata": {"name": name, "namespace": "demo"},
                       "data": {"k": "x".repeat(data)}}),
            )
            .unwrap();
        obj["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn resume(&self, rv: u64) -> Result<Vec<u64>, StoreError> {
        let (backlog, _rx) = self.store.watch_from(rv)?;
        Ok(backlog.iter().map(|e| e.rv).collect())
    }
}

fn age_only(max_age: Duration) -> HistoryLimits {
    HistoryLimits {
        max_events: 1_000_000,
        max_age: Some(max_age),
        max_bytes: None,
    }
}

#[test]
fn events_older_than_the_age_bound_are_compacted_on_the_next_write() {
    let f = Fixture::new(age_only(Duration::from_secs(300)));
    let old = f.write("old", 0);
    f.advance(Duration::from_secs(200));
    let young = f.write("young", 0);
    // Both within 5 minutes: a resume from before `old` replays both.
    assert_eq!(f.resume(old - 1).unwrap(), [old, young]);
    f.advance(Duration::from_secs(150));
    let newest = f.write("newest", 0);
    // `old` is 350 s old now: compacted, so a resume from before it is Gone…
    assert!(matches!(
        f.resume(old - 1),
        Err(StoreError::Gone { oldest, .. }) if oldest == old
    ));
    // …and one from `old` itself (the client saw it) continues without a gap.
    assert_eq!(f.resume(old).unwrap(), [young, newest]);
    assert_eq!(f.store.history_size().0, 2);
}

#[test]
fn the_age_bound_applies_without_writes_when_a_watch_resumes() {
    let f = Fixture::new(age_only(Duration::from_secs(300)));
    let first = f.write("a", 0);
    let last = f.write("b", 0);
    f.advance(Duration::from_secs(301));
    assert!(matches!(f.resume(first - 1), Err(StoreError::Gone { .. })));
    assert!(f.store.check_resumable(first).is_err());
    // Everything compacted at the current revision: a watch from now works.
    assert_eq!(f.resume(last).unwrap(), Vec::<u64>::new());
    assert_eq!(f.store.history_size(), (0, 0));
}

#[test]
fn the_byte_bound_keeps_the_newest_events_that_fit() {
    // The estimated size of one such event, measured on an unbounded store.
    let probe = Fixture::new(HistoryLimits::count_only(100));
    let before = probe.store.history_size().1;
    probe.write("c0", 3_000);
    let one = probe.store.history_size().1 - before;
    assert!(one > 3_000, "{one}");
    let max = 3 * one + one / 2;
    let f = Fixture::new(HistoryLimits {
        max_events: 1_000_000,
        max_age: None,
        max_bytes: Some(max),
    });
    let rvs: Vec<u64> = (0..10).map(|i| f.write(&format!("c{i}"), 3_000)).collect();
    let (events, bytes) = f.store.history_size();
    // Three and a half events' worth of bytes: the newest three stay.
    assert_eq!(events, 3, "{bytes} of {max} bytes");
    assert!(bytes <= max, "{bytes} > {max}");
    assert_eq!(f.resume(rvs[6]).unwrap(), rvs[7..]);
    assert!(f.resume(rvs[5]).is_err());
}

#[test]
fn the_count_bound_alone_is_the_old_behaviour() {
    let f = Fixture::new(HistoryLimits::count_only(4));
    f.advance(Duration::from_secs(3600));
    let rvs: Vec<u64> = (0..6).map(|i| f.write(&format!("c{i}"), 100_000)).collect();
    f.advance(Duration::from_secs(3600));
    // No age or byte bound: only the count trims, however old or big.
    assert_eq!(f.resume(rvs[1]).unwrap(), rvs[2..]);
    assert!(f.resume(rvs[0]).is_err());
}
