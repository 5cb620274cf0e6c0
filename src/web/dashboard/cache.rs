//! Shell: the dashboard's one set of watches (reflectors) — Rollouts, their
//! ReplicaSets, CanaryAnalyses, Services and Events — shared by every browser.
//! A change bumps a counter the SSE hub fans out; a watch error raises the
//! "API unreachable" banner until a watch delivers again. Each Rollout's
//! traffic split is sampled on change (the Rollout page's last hour).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::model::{Snapshot, Split, split};
use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{POD_TEMPLATE_HASH_LABEL, Rollout};
use crate::runtime::watch_backoff::watch_backoff;

/// Traffic samples kept per Rollout (one hour at one change a minute would
/// be 60; the bound only protects memory against a flapping Rollout).
const TRAFFIC_SAMPLES: usize = 240;

type Key = (String, String);
/// A Rollout's traffic samples, oldest first.
type Samples = VecDeque<(DateTime<Utc>, Split)>;

/// How often a failing watch's resource is probed (one request per failing
/// watch per dashboard process, whatever the number of browsers).
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Cache {
    rollouts: Store<Rollout>,
    replica_sets: Store<ReplicaSet>,
    analyses: Store<CanaryAnalysis>,
    services: Store<Service>,
    events: Store<K8sEvent>,
    hub: Arc<Hub>,
}

/// The change counter and the API's health.
pub struct Hub {
    changes: watch::Sender<u64>,
    /// The failing watches (by resource) and their last error: a watch's
    /// success clears only its own entry, so one healthy watch does not hide
    /// another that fails.
    api_errors: Mutex<BTreeMap<&'static str, String>>,
    traffic: Mutex<HashMap<Key, Samples>>,
}

impl Hub {
    fn bump(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    fn ok(&self, watch: &'static str) {
        let cleared = self
            .api_errors
            .lock()
            .map(|mut e| e.remove(watch).is_some());
        if cleared.unwrap_or(false) {
            tracing::info!(watch, "the Kubernetes API answers the watch again");
        }
    }

    fn failing(&self, watch: &'static str) -> bool {
        self.api_errors
            .lock()
            .map(|e| e.contains_key(watch))
            .unwrap_or(false)
    }

    fn fail(&self, watch: &'static str, error: String) {
        if let Ok(mut e) = self.api_errors.lock()
            && e.insert(watch, error.clone()).is_none()
        {
            tracing::warn!(watch, %error, "a watch failed");
        }
        self.bump();
    }

    fn sample(&self, rollout: &Rollout, now: DateTime<Utc>) {
        let key = (rollout.namespace().unwrap_or_default(), rollout.name_any());
        let s = split(rollout);
        if let Ok(mut map) = self.traffic.lock() {
            let q = map.entry(key).or_default();
            if q.back().is_none_or(|(_, last)| *last != s) {
                q.push_back((now, s));
            }
            let hour_ago = now - chrono::Duration::hours(1);
            // Keep one sample older than the hour: the split at its start.
            while q.len() > TRAFFIC_SAMPLES || (q.len() > 1 && q[1].0 < hour_ago) {
                q.pop_front();
            }
        }
    }
}

fn spawn_watch<K>(
    name: &'static str,
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    hub: Arc<Hub>,
    on_object: impl Fn(&K) + Send + 'static,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    // While this watch is failing, a cheap list (limit 1) every few seconds
    // says when the API answers again: a resumed watch says nothing until
    // something changes, and the banner must not outlive the outage.
    let (probe_api, probe_hub) = (api.clone(), hub.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_EVERY).await;
            if probe_hub.failing(name)
                && probe_api
                    .list_metadata(&kube::api::ListParams::default().limit(1))
                    .await
                    .is_ok()
            {
                probe_hub.ok(name);
                probe_hub.bump();
            }
        }
    });
    tokio::spawn(async move {
        let stream = watcher(api, config)
            .backoff(watch_backoff())
            .modify(|o: &mut K| o.meta_mut().managed_fields = None)
            .reflect(writer);
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    hub.ok(name);
                    if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = &event {
                        on_object(o);
                    }
                    hub.bump();
                }
                Err(e) => hub.fail(name, e.to_string()),
            }
        }
    });
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

impl Cache {
    /// Starts the watches (in `namespace`, or all namespaces).
    pub fn start(client: &Client, namespace: Option<&str>) -> Arc<Cache> {
        let (changes, _) = watch::channel(0);
        let hub = Arc::new(Hub {
            changes,
            api_errors: Mutex::new(BTreeMap::new()),
            traffic: Mutex::new(HashMap::new()),
        });
        let (rollouts, w) = reflector::store();
        let h = hub.clone();
        spawn_watch(
            "rollouts",
            api::<Rollout>(client, namespace),
            watcher::Config::default(),
            w,
            hub.clone(),
            move |r| h.sample(r, Utc::now()),
        );
        let (replica_sets, w) = reflector::store();
        spawn_watch(
            "replicasets",
            api::<ReplicaSet>(client, namespace),
            watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL),
            w,
            hub.clone(),
            |_| {},
        );
        let (analyses, w) = reflector::store();
        spawn_watch(
            "canaryanalyses",
            api::<CanaryAnalysis>(client, namespace),
            watcher::Config::default(),
            w,
            hub.clone(),
            |_| {},
        );
        let (services, w) = reflector::store();
        spawn_watch(
            "services",
            api::<Service>(client, namespace),
            watcher::Config::default(),
            w,
            hub.clone(),
            |_| {},
        );
        let (events, w) = reflector::store();
        spawn_watch(
            "events",
            api::<K8sEvent>(client, namespace),
            watcher::Config::default(),
            w,
            hub.clone(),
            |_| {},
        );
        Arc::new(Cache {
            rollouts,
            replica_sets,
            analyses,
            services,
            events,
            hub,
        })
    }

    /// Waits until every watch has listed once (or `timeout` passed: the
    /// pages then show what there is, under the API banner).
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        let all = async {
            let _ = futures::join!(
                self.rollouts.wait_until_ready(),
                self.replica_sets.wait_until_ready(),
                self.analyses.wait_until_ready(),
                self.services.wait_until_ready(),
                self.events.wait_until_ready()
            );
        };
        tokio::time::timeout(timeout, all).await.is_ok()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            rollouts: self.rollouts.state(),
            replica_sets: self.replica_sets.state(),
            analyses: self.analyses.state(),
            services: self.services.state(),
            events: self.events.state(),
        }
    }

    /// Only the Rollouts (the fleet page needs no Services or Events).
    pub fn fleet_snapshot(&self) -> Snapshot {
        Snapshot {
            rollouts: self.rollouts.state(),
            replica_sets: self.replica_sets.state(),
            analyses: self.analyses.state(),
            ..Snapshot::default()
        }
    }

    pub fn api_error(&self) -> Option<String> {
        let errors = self.hub.api_errors.lock().ok()?;
        (!errors.is_empty()).then(|| {
            errors
                .iter()
                .map(|(watch, e)| format!("{watch}: {e}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub fn traffic(&self, namespace: &str, name: &str) -> Vec<(DateTime<Utc>, Split)> {
        self.hub
            .traffic
            .lock()
            .ok()
            .and_then(|m| {
                m.get(&(namespace.to_owned(), name.to_owned()))
                    .map(|q| q.iter().copied().collect())
            })
            .unwrap_or_default()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.hub.changes.subscribe()
    }
}
