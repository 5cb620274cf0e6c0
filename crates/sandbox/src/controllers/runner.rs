//! The loop every controller runs: events from the store mark keys dirty, dirty
//! keys are reconciled level-style against the store's current state, and timers
//! bring keys back for time-based transitions. Nothing busy-polls: the task sleeps
//! until an event, a due timer or the slow safety resync.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

use super::ControllerError;
use crate::store::{EventReceiver, StoredEvent};

/// Keys reconciled before yielding, so one controller's big batch (a resync of
/// thousands of objects) does not starve the others on a small machine.
const BATCH_BEFORE_YIELD: usize = 64;
const BACKOFF_BASE: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const PERSISTENT_FAILURES: u32 = 5;

/// One controller: which keys an event concerns and how to reconcile one key.
pub(crate) trait Reconciler: Send + 'static {
    type Key: Ord + Hash + Clone + Debug + Send;
    const NAME: &'static str;
    /// Whether the periodic safety resync (every key, every `resync`) runs.
    /// Controllers whose every input is a store object (so every change is an
    /// event, and a lagged stream already triggers a full pass) set it false:
    /// at 10,000 objects the resync was most of the sandbox's idle CPU.
    const RESYNC: bool = true;

    /// Keys that may need work after this event.
    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<Self::Key>);
    /// Every key this controller is responsible for (start, lag, safety resync).
    fn all_keys(&mut self) -> Vec<Self::Key>;
    /// Brings one key to its desired state; `Some(t)` asks to be called again at `t`.
    fn reconcile(&mut self, key: &Self::Key) -> Result<Option<Instant>, ControllerError>;
}

/// Deadlines per key; a key has at most one pending deadline (the earliest), since
/// a reconcile recomputes the next one anyway.
pub(crate) struct Timers<K: Ord + Clone> {
    by_time: BTreeSet<(Instant, K)>,
    by_key: BTreeMap<K, Instant>,
}

impl<K: Ord + Clone> Default for Timers<K> {
    fn default() -> Self {
        Self {
            by_time: BTreeSet::new(),
            by_key: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone> Timers<K> {
    pub(crate) fn schedule(&mut self, at: Instant, key: K) {
        if let Some(existing) = self.by_key.get(&key) {
            if *existing <= at {
                return;
            }
            self.by_time.remove(&(*existing, key.clone()));
        }
        self.by_key.insert(key.clone(), at);
        self.by_time.insert((at, key));
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_time.first().map(|(at, _)| *at)
    }

    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((at, _)) = self.by_time.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.by_time.pop_first() {
                self.by_key.remove(&key);
                due.push(key);
            }
        }
        due
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

/// Runs `r` until the store's event channel closes (the task is normally aborted).
pub(crate) async fn run<R: Reconciler>(mut r: R, mut rx: EventReceiver, resync: Duration) {
    let resync = resync.max(Duration::from_millis(10));
    let mut dirty: BTreeSet<R::Key> = r.all_keys().into_iter().collect();
    let mut timers: Timers<R::Key> = Timers::default();
    let mut failures: HashMap<R::Key, u32> = HashMap::new();
    // Far enough to never come: a watch-driven controller resyncs only on lag.
    let idle = Duration::from_secs(86_400 * 365);
    let mut next_resync = Instant::now() + if R::RESYNC { resync } else { idle };
    let mut buf = Vec::new();
    tracing::debug!(controller = R::NAME, "started");
    loop {
        let batch = std::mem::take(&mut dirty);
        for (i, key) in batch.iter().enumerate() {
            match r.reconcile(key) {
                Ok(next) => {
                    failures.remove(key);
                    if let Some(at) = next {
                        timers.schedule(at, key.clone());
                    }
                }
                Err(err) => {
                    let n = failures.entry(key.clone()).or_insert(0);
                    *n = n.saturating_add(1);
                    let delay = BACKOFF_BASE
                        .saturating_mul(1u32 << (*n).min(10))
                        .min(BACKOFF_MAX);
                    // Conflicts are routine (several controllers write the same
                    // objects); the retry or the next event settles them. Only a
                    // key that keeps failing is worth a warning.
                    if *n >= PERSISTENT_FAILURES {
                        tracing::warn!(controller = R::NAME, ?key, %err, failures = *n, "reconcile keeps failing");
                    } else {
                        tracing::debug!(controller = R::NAME, ?key, %err, ?delay, "reconcile failed, retrying");
                    }
                    timers.schedule(Instant::now() + delay, key.clone());
                }
            }
            if i % BATCH_BEFORE_YIELD == BATCH_BEFORE_YIELD - 1 {
                tokio::task::yield_now().await;
            }
        }

        let wake_at = timers
            .next_deadline()
            .map_or(next_resync, |t| t.min(next_resync));
        tokio::select! {
            received = rx.recv() => {
                let mut lagged = false;
                let mut closed = false;
                match received {
                    Ok(event) => r.keys_for(&event, &mut buf),
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(controller = R::NAME, missed = n, "event stream lagged, resyncing");
                        lagged = true;
                    }
                    Err(RecvError::Closed) => closed = true,
                }
                // Take everything already queued so one batch covers a burst.
                while !closed {
                    match rx.try_recv() {
                        Ok(event) => r.keys_for(&event, &mut buf),
                        Err(TryRecvError::Lagged(n)) => {
                            tracing::warn!(controller = R::NAME, missed = n, "event stream lagged, resyncing");
                            lagged = true;
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Closed) => closed = true,
                    }
                }
                dirty.extend(buf.drain(..));
                if lagged {
                    dirty.extend(r.all_keys());
                }
                if closed {
                    tracing::debug!(controller = R::NAME, "store closed, stopping");
                    return;
                }
            }
            _ = tokio::time::sleep_until(wake_at) => {
                let now = Instant::now();
                dirty.extend(timers.pop_due(now));
                if now >= next_resync {
                    dirty.extend(r.all_keys());
                    next_resync = now + if R::RESYNC { resync } else { idle };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_keep_the_earliest_deadline_per_key() {
        let mut t: Timers<&str> = Timers::default();
        let now = Instant::now();
        t.schedule(now + Duration::from_secs(5), "a");
        t.schedule(now + Duration::from_secs(1), "a");
        t.schedule(now + Duration::from_secs(9), "a");
        t.schedule(now + Duration::from_secs(2), "b");
        assert_eq!(t.len(), 2);
        assert_eq!(t.next_deadline(), Some(now + Duration::from_secs(1)));
        assert_eq!(t.pop_due(now + Duration::from_secs(1)), vec!["a"]);
        assert_eq!(t.pop_due(now + Duration::from_secs(1)), Vec::<&str>::new());
        assert_eq!(t.pop_due(now + Duration::from_secs(3)), vec!["b"]);
        assert_eq!(t.next_deadline(), None);
    }

    use crate::registry::GroupResource;
    use crate::store::EventType;
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use tokio::sync::broadcast;

    /// Records what it is asked to do; reconciling "tick" asks to come back once.
    struct Recorder {
        log: Arc<Mutex<Vec<String>>>,
        ticked: bool,
    }

    impl Reconciler for Recorder {
        type Key = String;
        const NAME: &'static str = "recorder";

        fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<String>) {
            out.push(
                event.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            );
        }

        fn all_keys(&mut self) -> Vec<String> {
            self.log.lock().unwrap().push("all_keys".into());
            vec!["everything".into()]
        }

        fn reconcile(&mut self, key: &String) -> Result<Option<Instant>, ControllerError> {
            self.log.lock().unwrap().push(key.clone());
            if key == "tick" && !self.ticked {
                self.ticked = true;
                return Ok(Some(Instant::now() + Duration::from_millis(20)));
            }
            Ok(None)
        }
    }

    fn event(name: &str) -> Arc<StoredEvent> {
        Arc::new(StoredEvent {
            rv: 1,
            gr: GroupResource::new("", "pods"),
            event_type: EventType::Added,
            object: Arc::new(json!({"metadata": {"name": name}})),
        })
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    #[tokio::test]
    async fn lag_triggers_a_full_resync_and_timers_fire() {
        let (tx, rx) = broadcast::channel(2);
        let log = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(run(
            Recorder {
                log: log.clone(),
                ticked: false,
            },
            rx,
            Duration::from_secs(3600),
        ));
        settle().await;
        assert_eq!(*log.lock().unwrap(), ["all_keys", "everything"]);
        log.lock().unwrap().clear();

        tx.send(event("tick")).unwrap();
        settle().await;
        assert_eq!(
            *log.lock().unwrap(),
            ["tick", "tick"],
            "event, then its timer"
        );
        log.lock().unwrap().clear();

        // More events than the channel holds, sent before the loop can look.
        for i in 0..5 {
            tx.send(event(&format!("e{i}"))).unwrap();
        }
        settle().await;
        let seen = log.lock().unwrap().clone();
        assert!(seen.contains(&"all_keys".to_string()), "{seen:?}");
        assert!(seen.contains(&"everything".to_string()), "{seen:?}");
        assert!(seen.contains(&"e4".to_string()), "{seen:?}");
        task.abort();
    }
}
