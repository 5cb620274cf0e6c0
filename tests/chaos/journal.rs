//! Every version of every object of the kinds the checks read, deletions
//! included, from watches over all namespaces. The sandbox's resourceVersions
//! are global and monotonic, so versions of different kinds can be put in one
//! order: "the ReplicaSet as it was when the Service was written".

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use redblack::api::Rollout;
use redblack::api::canary_analysis::CanaryAnalysis;
use serde_json::Value;
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Rollout,
    ReplicaSet,
    Service,
    Analysis,
    Event,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub rv: u64,
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub deleted: bool,
    pub object: Value,
}

#[derive(Default)]
struct Shared {
    entries: Vec<Entry>,
    listed: usize,
}

pub struct Journal {
    shared: Arc<Mutex<Shared>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Journal {
    /// Starts one watch per kind and waits until each has listed.
    pub async fn start(client: &Client) -> Journal {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let tasks = vec![
            watch::<Rollout>(Api::all(client.clone()), Kind::Rollout, shared.clone()),
            watch::<ReplicaSet>(Api::all(client.clone()), Kind::ReplicaSet, shared.clone()),
            watch::<Service>(Api::all(client.clone()), Kind::Service, shared.clone()),
            watch::<CanaryAnalysis>(Api::all(client.clone()), Kind::Analysis, shared.clone()),
            watch::<Event>(Api::all(client.clone()), Kind::Event, shared.clone()),
        ];
        let journal = Journal { shared, tasks };
        let n = journal.tasks.len();
        crate::support::eventually("every journal watch has listed", || async {
            (journal.shared.lock().unwrap().listed >= n).then_some(())
        })
        .await;
        journal
    }

    /// The versions recorded for `namespace`, in resourceVersion order, one
    /// entry per (kind, name, resourceVersion) (a re-list repeats some).
    pub fn of(&self, namespace: &str) -> Vec<Entry> {
        let mut out: Vec<Entry> = self
            .shared
            .lock()
            .unwrap()
            .entries
            .iter()
            .filter(|e| e.namespace == namespace)
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.rv, a.kind, &a.name).cmp(&(b.rv, b.kind, &b.name)));
        out.dedup_by(|a, b| {
            (a.rv, a.kind, &a.name, a.deleted) == (b.rv, b.kind, &b.name, b.deleted)
        });
        out
    }

    /// Whether a version of (kind, namespace, name) at `rv` or later was recorded.
    pub fn has_seen(&self, kind: Kind, namespace: &str, name: &str, rv: u64) -> bool {
        self.shared
            .lock()
            .unwrap()
            .entries
            .iter()
            .any(|e| e.kind == kind && e.namespace == namespace && e.name == name && e.rv >= rv)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn watch<K>(api: Api<K>, kind: Kind, shared: Arc<Mutex<Shared>>) -> JoinHandle<()>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + serde::Serialize
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    tokio::spawn(async move {
        // Backoff: a watch against a stopped sandbox must not spin without
        // yielding (an aborted task would never stop).
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = stream.next().await {
            let (object, deleted) = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                Ok(watcher::Event::Delete(o)) => (o, true),
                Ok(watcher::Event::InitDone) => {
                    shared.lock().unwrap().listed += 1;
                    continue;
                }
                _ => continue,
            };
            let entry = Entry {
                rv: object
                    .resource_version()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
                kind,
                namespace: object.namespace().unwrap_or_default(),
                name: object.name_any(),
                uid: object.uid().unwrap_or_default(),
                deleted,
                object: serde_json::to_value(&object).unwrap_or(Value::Null),
            };
            shared.lock().unwrap().entries.push(entry);
        }
    })
}
