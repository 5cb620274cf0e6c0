//! Events expire, as kube-apiserver's `--event-ttl` (default 1 hour) makes
//! them: each Event is stored with an etcd lease of that TTL, renewed by every
//! write, and watchers see it DELETED when the lease runs out. Without this
//! the sandbox kept every Event ever recorded — the one object kind that grows
//! with every rollout cycle for ever (the soak found ~7 per cycle).
//!
//! Watch-driven: an ADDED or MODIFIED Event (core `v1` or `events.k8s.io/v1`)
//! is remembered with the time of that write, and a timer deletes it `ttl`
//! later unless it was written again meanwhile (the delete is conditional on
//! the resourceVersion, so a late write wins, as a renewed lease does).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::runner::Reconciler;
use super::{ControllerError, obj_key};
use crate::registry::ResourceType;
use crate::store::{DeleteOptions, Store, StoreError, StoredEvent, meta_str};

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_EVENT_TTL: Duration = Duration::from_secs(3600);

/// What to do with an Event last written at `written`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Expire,
    /// Look again then.
    WaitUntil(Instant),
}

/// An Event expires `ttl` after its last write (the lease's renewal).
pub(crate) fn verdict(written: Instant, now: Instant, ttl: Duration) -> Verdict {
    let due = written + ttl;
    if now >= due {
        Verdict::Expire
    } else {
        Verdict::WaitUntil(due)
    }
}

/// (index into the Event kinds, namespace, name)
type Key = (usize, String, String);

pub(crate) struct EventTtl {
    store: Arc<Store>,
    /// `v1` Event and `events.k8s.io/v1` Event (two stores in the sandbox).
    kinds: Vec<ResourceType>,
    ttl: Duration,
    /// The resourceVersion of each live Event's last write and when it was seen.
    written: HashMap<Key, (String, Instant)>,
}

impl EventTtl {
    pub(crate) fn new(store: Arc<Store>, kinds: Vec<ResourceType>, ttl: Duration) -> Self {
        Self {
            store,
            kinds,
            ttl,
            written: HashMap::new(),
        }
    }
}

impl Reconciler for EventTtl {
    type Key = Key;
    const NAME: &'static str = "event-ttl";
    // Every input is a store object: its events suffice.
    const RESYNC: bool = false;

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<Key>) {
        if let Some(i) = self
            .kinds
            .iter()
            .position(|k| k.group_resource() == event.gr)
        {
            let (ns, name) = obj_key(&event.object);
            out.push((i, ns, name));
        }
    }

    fn all_keys(&mut self) -> Vec<Key> {
        let mut keys: Vec<Key> = self.written.keys().cloned().collect();
        for (i, kind) in self.kinds.iter().enumerate() {
            let (all, _) = self.store.list(&kind.group_resource(), None);
            keys.extend(all.iter().map(|e| {
                let (ns, name) = obj_key(e);
                (i, ns, name)
            }));
        }
        keys
    }

    fn reconcile(&mut self, key: &Key) -> Result<Option<Instant>, ControllerError> {
        let (i, ns, name) = key;
        let Some(kind) = self.kinds.get(*i) else {
            return Ok(None);
        };
        let Some(event) = self.store.get(&kind.group_resource(), ns, name) else {
            self.written.remove(key);
            return Ok(None);
        };
        let rv = meta_str(&event, "resourceVersion")
            .unwrap_or("")
            .to_string();
        let now = Instant::now();
        let written = match self.written.get(key) {
            Some((seen, at)) if *seen == rv => *at,
            _ => {
                self.written.insert(key.clone(), (rv.clone(), now));
                now
            }
        };
        match verdict(written, now, self.ttl) {
            Verdict::WaitUntil(at) => Ok(Some(at)),
            Verdict::Expire => {
                let opts = DeleteOptions {
                    precondition_rv: Some(rv),
                    ..DeleteOptions::now()
                };
                match self.store.delete(kind, ns, name, &opts) {
                    // Written again meanwhile: its MODIFIED event renews it.
                    Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::Conflict { .. }) => {
                        self.written.remove(key);
                        Ok(None)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_expires_ttl_after_its_last_write() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(3600);
        let s = Duration::from_secs(1);
        let cases = [
            ("just written", t0, Verdict::WaitUntil(t0 + ttl)),
            (
                "a second before",
                t0 + ttl - s,
                Verdict::WaitUntil(t0 + ttl),
            ),
            ("at the TTL", t0 + ttl, Verdict::Expire),
            ("long after", t0 + ttl * 3, Verdict::Expire),
        ];
        for (name, now, want) in cases {
            assert_eq!(verdict(t0, now, ttl), want, "{name}");
        }
    }
}
