//! The imperative shell's read half: builds the planner's [`Observed`] from the
//! controller's reflector caches (never from the API), and maps watch events of
//! related objects to the Rollouts they concern. The one exception is the
//! HTTPRoute when the Gateway API was not served at startup (no route cache):
//! the controller then reads it per reconcile.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::Value;

use crate::api::analysis_template::CanaryAnalysisTemplate;
use crate::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase};
use crate::api::{POD_TEMPLATE_HASH_LABEL, ROLLOUT_LABEL, Rollout};
use crate::rollout::Observed;
use crate::rollout::apply::{self, Written};
use crate::rollout::index::{Indexes, RefIndex, packed_rollout_refs};
use crate::rollout::plan::{
    AnalysisObservation, AnalysisPhase, RouteObservation, WorkloadObservation, role_service_name,
};
use crate::runtime::packed::{Packed, UnpackError};

pub use crate::runtime::packed::LAST_APPLIED_ANNOTATION;

/// The controller's caches. Cloning is cheap (shared stores).
#[derive(Clone)]
pub struct Caches {
    /// Packed (kept as JSON, see [`Packed`]): Rollouts, ReplicaSets and
    /// Services are one or more per Rollout; a reconcile unpacks its own.
    pub rollouts: Store<Packed<Rollout>>,
    pub replica_sets: Store<Packed<ReplicaSet>>,
    pub services: Store<Packed<Service>>,
    /// CanaryAnalyses labelled with `rollouts.redblack.io/rollout`.
    pub analyses: Store<CanaryAnalysis>,
    /// CanaryAnalysisTemplates (read when an analysis is created from one).
    pub templates: Store<CanaryAnalysisTemplate>,
    /// Deployments (a `workloadRef`'s template and replicas).
    pub deployments: Store<Deployment>,
    /// HTTPRoutes (gateway.networking.k8s.io/v1), stripped to what the planner
    /// and the weights write read ([`strip_route`]). None when the API did not
    /// serve HTTPRoutes at startup: routes are then read per reconcile, and a
    /// restart of the operator starts the watch.
    pub routes: Option<Store<DynamicObject>>,
    pub synced: Synced,
    /// Owner / label / name indexes over these stores ([`Indexes`]).
    pub index: Indexes,
}

/// Which caches have completed their first list. Not `Store::wait_until_ready`:
/// kube's readiness latch keeps ONE waker, and the `Controller` already waits on
/// the Rollout store, so a second waiter would steal (or lose) the wake-up.
#[derive(Clone, Debug)]
pub struct Synced {
    tx: Arc<tokio::sync::watch::Sender<u8>>,
    expected: u8,
}

impl Synced {
    /// Tracks `caches` caches (bits 0..caches).
    pub fn new(caches: u8) -> Synced {
        Synced {
            tx: Arc::new(tokio::sync::watch::channel(0).0),
            expected: if caches >= 8 {
                u8::MAX
            } else {
                (1u8 << caches) - 1
            },
        }
    }
    /// Cache number `bit` completed a list.
    pub fn mark(&self, bit: u8) {
        self.tx.send_modify(|m| *m |= 1 << bit);
    }
    pub fn is_synced(&self) -> bool {
        *self.tx.borrow() & self.expected == self.expected
    }
    /// Resolves once every cache has listed (false if the tracker is gone).
    pub async fn wait(&self) -> bool {
        let expected = self.expected;
        let mut rx = self.tx.subscribe();
        rx.wait_for(|m| *m & expected == expected).await.is_ok()
    }
}

impl Caches {
    /// With the indexes rebuilt from the stores' contents (tests and tools).
    pub fn reindexed(mut self) -> Caches {
        self.index = Indexes::of(&self.rollouts, &self.replica_sets, &self.analyses);
        self
    }

    /// Resolves once every cache has done its first list.
    pub async fn wait_until_ready(&self) -> bool {
        self.synced.wait().await
    }
}

/// True when `rs` is controlled by `rollout` (controller owner reference by uid).
pub fn is_owned_by<K: kube::Resource>(rs: &K, rollout: &Rollout) -> bool {
    let Some(uid) = rollout.metadata.uid.as_deref() else {
        return false;
    };
    rs.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// What the planner needs of a CanaryAnalysis of `rollout`.
pub fn analysis_observation(analysis: &CanaryAnalysis, rollout: &Rollout) -> AnalysisObservation {
    let status = analysis.status.as_ref();
    let phase = match status.and_then(|s| s.phase) {
        None | Some(CanaryAnalysisPhase::Pending) => AnalysisPhase::Pending,
        Some(CanaryAnalysisPhase::Running) => AnalysisPhase::Running,
        Some(CanaryAnalysisPhase::Passed) => AnalysisPhase::Passed,
        Some(CanaryAnalysisPhase::Marginal) => AnalysisPhase::Marginal,
        Some(CanaryAnalysisPhase::Failed) => AnalysisPhase::Failed,
        Some(CanaryAnalysisPhase::Inconclusive) => AnalysisPhase::Inconclusive,
        Some(CanaryAnalysisPhase::Error) => AnalysisPhase::Error,
    };
    AnalysisObservation {
        name: analysis.name_any(),
        phase,
        score: status.and_then(|s| s.score),
        message: status.and_then(|s| s.message.clone()),
        revision: analysis.labels().get(POD_TEMPLATE_HASH_LABEL).cloned(),
        created: analysis
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(crate::analysis::controller::time::from_time),
        owned: is_owned_by(analysis, rollout),
        deleting: analysis.metadata.deletion_timestamp.is_some(),
    }
}

/// `trafficRouting.httpRoute` of `rollout` from the route cache: Some(None)
/// when it is not in the cache (it does not exist), None when there is no route
/// cache (the caller reads the route from the API instead).
pub fn cached_route(caches: &Caches, rollout: &Rollout) -> Option<Option<DynamicObject>> {
    let store = caches.routes.as_ref()?;
    let Some(name) = rollout.spec.http_route_name() else {
        return Some(None);
    };
    let ns = rollout.namespace().unwrap_or_default();
    let key = ObjectRef::new_with(name, apply::http_route_resource()).within(&ns);
    Some(store.get(&key).map(|r| (*r).clone()))
}

/// The planner's view of `rollout`'s world, from the caches, without the
/// route (see [`observe_with_route`]).
pub fn observe(rollout: &Rollout, caches: &Caches) -> Result<Observed, UnpackError> {
    observe_with_route(rollout, caches, None)
}

/// As [`observe`], with `route`: the `trafficRouting.httpRoute` observation
/// (from [`cached_route`], or read by the caller when there is no route cache).
pub fn observe_with_route(
    rollout: &Rollout,
    caches: &Caches,
    route: Option<RouteObservation>,
) -> Result<Observed, UnpackError> {
    let ns = rollout.namespace();
    let ns_str = ns.as_deref().unwrap_or_default();
    // Through the owner index: O(this Rollout's ReplicaSets), sorted by name.
    let uid = rollout.metadata.uid.as_deref().unwrap_or_default();
    let replica_sets: Vec<ReplicaSet> = caches
        .index
        .replica_sets
        .get(ns_str, uid)
        .into_iter()
        .filter_map(|name| {
            caches
                .replica_sets
                .get(&ObjectRef::new(&name).within(ns_str))
        })
        .filter(|rs| is_owned_by(&**rs, rollout))
        .map(|rs| rs.unpack())
        .collect::<Result<_, _>>()?;
    let service = |name: &str| {
        let key = match &ns {
            Some(ns) => ObjectRef::new(name).within(ns),
            None => ObjectRef::new(name),
        };
        caches.services.get(&key).map(|s| s.unpack()).transpose()
    };
    let rb = &rollout.spec.strategy.red_black;
    let name = crate::rollout::plan::rollout_label_value(rollout);
    // Through the label index, sorted by name.
    let analyses: Vec<AnalysisObservation> = caches
        .index
        .analyses
        .get(ns_str, &name)
        .into_iter()
        .filter_map(|a| caches.analyses.get(&ObjectRef::new(&a).within(ns_str)))
        .filter(|a| a.labels().get(ROLLOUT_LABEL) == Some(&name))
        .map(|a| analysis_observation(&a, rollout))
        .collect();
    let role_services = ["canary", "baseline"]
        .iter()
        .filter_map(|role| service(&role_service_name(rollout, role)).transpose())
        .collect::<Result<_, _>>()?;
    let analysis_templates = template_names(rollout)
        .into_iter()
        .filter_map(|name| {
            let key = ObjectRef::new(name).within(ns.as_deref().unwrap_or_default());
            let template = caches.templates.get(&key)?;
            Some((name.to_owned(), template.body()))
        })
        .collect();
    let preview_service = match rb.preview_service.as_deref() {
        Some(name) => service(name)?,
        None => None,
    };
    Ok(Observed {
        replica_sets,
        active_service: service(&rb.active_service)?,
        preview_service,
        analyses,
        route,
        role_services,
        analysis_templates,
        refused: None,
        prune_refused: None,
        events_refused: None,
        pods: Vec::new(),
        jobs: Vec::new(),
        http_checks: Vec::new(),
        workload: workload(rollout, caches),
    })
}

/// `spec.workloadRef`'s Deployment from the cache (None without a
/// workloadRef, or when it does not exist in the Rollout's namespace).
pub fn workload(rollout: &Rollout, caches: &Caches) -> Option<WorkloadObservation> {
    let reference = rollout.spec.workload_ref.as_ref()?;
    let ns = rollout.namespace().unwrap_or_default();
    let deployment = caches
        .deployments
        .get(&ObjectRef::new(&reference.name).within(&ns))?;
    let spec = deployment.spec.clone();
    Some(WorkloadObservation {
        template: spec.template,
        selector: spec.selector,
        replicas: spec.replicas.unwrap_or(1),
    })
}

/// The Rollouts (in the Deployment's namespace) whose `workloadRef` names
/// `deployment`: the only ones a Deployment event concerns.
pub fn rollouts_referencing(
    referrers: &Referrers,
    deployment: &Deployment,
) -> Vec<ObjectRef<Packed<Rollout>>> {
    rollouts_referring(referrers, "deploy", deployment, |r, name| {
        r.spec.workload_ref.as_ref().is_some_and(|w| w.name == name)
    })
}

/// The CanaryAnalysisTemplates the Rollout's analyses name (`templateName`).
pub fn template_names(rollout: &Rollout) -> Vec<&str> {
    let rb = &rollout.spec.strategy.red_black;
    let mut names: Vec<&str> = rb
        .canary
        .as_ref()
        .map(|c| &c.analysis)
        .into_iter()
        .chain(rb.post_promotion_analysis.as_ref())
        .chain(rb.pre_promotion_analysis.as_ref())
        .filter_map(|source| source.template_name.as_deref())
        .collect();
    names.dedup();
    names
}

/// The Rollout cache with its index of what each Rollout names: what the
/// watch mappers read. Cloning is cheap (shared).
#[derive(Clone)]
pub struct Referrers {
    pub rollouts: Store<Packed<Rollout>>,
    pub index: RefIndex<Packed<Rollout>>,
}

impl Referrers {
    /// The cache's current Rollouts, indexed (for tests and tools; the
    /// controller keeps its index from the watch).
    pub fn of(rollouts: Store<Packed<Rollout>>) -> Referrers {
        let state = rollouts.state();
        let index = RefIndex::of(packed_rollout_refs, state.iter().map(|r| &**r));
        Referrers { rollouts, index }
    }
}

/// The Rollouts in `obj`'s namespace filed under `kind/obj's name` for which
/// `names(rollout, obj's name)` holds: the mapper of every watch on an object
/// that Rollouts name. O(Rollouts naming it), through the index.
fn rollouts_referring<K: kube::Resource>(
    referrers: &Referrers,
    kind: &str,
    obj: &K,
    names: impl Fn(&Rollout, &str) -> bool,
) -> Vec<ObjectRef<Packed<Rollout>>> {
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    referrers
        .index
        .get(&ns, &format!("{kind}/{name}"))
        .into_iter()
        .filter_map(|r| referrers.rollouts.get(&ObjectRef::new(&r).within(&ns)))
        .filter(|packed| match packed.unpack() {
            Ok(r) => names(&r, &name),
            // Cannot happen for bytes the cache packed; if it did, waking
            // the Rollout is the safe side (its reconcile reports the error).
            Err(e) => {
                tracing::warn!(error = %e, "mapping a watch event");
                true
            }
        })
        .map(|r| ObjectRef::from_obj(&*r))
        .collect()
}

/// The Rollouts (in the template's namespace) whose analyses name `template`:
/// the only ones a template event concerns. A Rollout whose analysis already
/// exists is re-planned too, which changes nothing (analyses are never updated).
pub fn rollouts_using_template(
    referrers: &Referrers,
    template: &CanaryAnalysisTemplate,
) -> Vec<ObjectRef<Packed<Rollout>>> {
    rollouts_referring(referrers, "tpl", template, |r, name| {
        template_names(r).contains(&name)
    })
}

/// The Rollouts (in the Service's namespace) that name `svc` as their active
/// or preview Service: the only ones a Service event concerns.
pub fn rollouts_naming(
    referrers: &Referrers,
    svc: &Packed<Service>,
) -> Vec<ObjectRef<Packed<Rollout>>> {
    rollouts_referring(referrers, "svc", svc, |r, name| {
        let rb = &r.spec.strategy.red_black;
        rb.active_service == name || rb.preview_service.as_deref() == Some(name)
    })
}

/// The Rollouts (in the route's namespace) whose
/// `trafficRouting.httpRoute.name` is `route`: the only ones a route event
/// concerns (e.g. a user or GitOps changing the weights during a canary).
pub fn rollouts_routed_by(
    referrers: &Referrers,
    route: &DynamicObject,
) -> Vec<ObjectRef<Packed<Rollout>>> {
    rollouts_referring(referrers, "route", route, |r, name| {
        r.spec.http_route_name() == Some(name)
    })
}

/// Drops what the operator never reads before an object enters a cache.
pub fn strip_managed_fields<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// As [`strip_managed_fields`], plus the Service's last-applied copy.
pub fn strip_service(svc: &mut Service) {
    strip_managed_fields(svc);
    if let Some(annotations) = svc.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
}

/// Keeps of a Deployment only what a `workloadRef` reads (its identity and
/// spec): every Deployment of the watched namespaces is cached, most of them
/// referenced by no Rollout, so labels, annotations (a client-side apply's
/// last-applied copy), managedFields and status are dropped.
pub fn strip_deployment(deployment: &mut Deployment) {
    deployment.metadata = identity(std::mem::take(&mut deployment.metadata));
    deployment.status = None;
}

/// Of `meta`, only name, namespace, uid and resourceVersion (a write's
/// precondition): what a stripped cache entry keeps.
fn identity(meta: ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resource_version: meta.resource_version,
        ..ObjectMeta::default()
    }
}

/// Keeps of an HTTPRoute only what the operator reads: metadata name,
/// namespace, uid and resourceVersion (the weights write's precondition) and
/// `spec.rules` — whole, because the weights write is a merge patch of
/// `spec.rules` (a list, replaced as a whole) that must carry every rule's
/// matches, filters and other fields unchanged. parentRefs, hostnames, labels,
/// annotations, managedFields and status are dropped.
pub fn strip_route(route: &mut DynamicObject) {
    route.metadata = identity(std::mem::take(&mut route.metadata));
    let rules = route
        .data
        .pointer_mut("/spec/rules")
        .map(Value::take)
        .unwrap_or(Value::Null);
    route.data = if rules.is_null() {
        serde_json::json!({"spec": {}})
    } else {
        serde_json::json!({"spec": {"rules": rules}})
    };
}

/// True once the caches reflect every write (the written resourceVersion, or a
/// later one; a deleted ReplicaSet is gone). `before` holds the
/// resourceVersions the caches had before the writes.
pub fn caches_reflect(
    caches: &Caches,
    rollout: &Rollout,
    written: &[Written],
    before: &Before,
) -> bool {
    let ns = rollout.namespace().unwrap_or_default();
    let seen = |cached: Option<String>, wanted: &Option<String>, prior: &Option<String>| match (
        cached, wanted,
    ) {
        (None, _) => false,
        (Some(c), Some(w)) => c == *w || Some(&c) != prior.as_ref(),
        (Some(_), None) => true,
    };
    written.iter().all(|w| match w {
        Written::ReplicaSet {
            name,
            resource_version,
        } => seen(
            cached_version(&caches.replica_sets, &ObjectRef::new(name).within(&ns)),
            resource_version,
            &before.replica_set(name),
        ),
        Written::DeploymentScaled { name, replicas } => caches
            .deployments
            .get(&ObjectRef::new(name).within(&ns))
            .is_none_or(|d| d.spec.replicas == Some(*replicas)),
        // Pods are read from the API per reconcile, never cached.
        Written::PodDeleted | Written::Job => true,
        Written::ReplicaSetDeleted { name } => caches
            .replica_sets
            .get(&ObjectRef::new(name).within(&ns))
            .is_none(),
        Written::Service {
            name,
            resource_version,
        } => seen(
            cached_version(&caches.services, &ObjectRef::new(name).within(&ns)),
            resource_version,
            &before.service(name),
        ),
        Written::CanaryAnalysis { name } => caches
            .analyses
            .get(&ObjectRef::new(name).within(&ns))
            .is_some(),
        // Gone, or going (the planner skips analyses being deleted).
        Written::CanaryAnalysisDeleted { name } => caches
            .analyses
            .get(&ObjectRef::new(name).within(&ns))
            .is_none_or(|a| a.metadata.deletion_timestamp.is_some()),
        Written::Route {
            name,
            resource_version,
        } => match &caches.routes {
            // Not cached: the next reconcile reads the route from the API.
            None => true,
            Some(routes) => {
                let key = ObjectRef::new_with(name, apply::http_route_resource()).within(&ns);
                seen(
                    cached_version(routes, &key),
                    resource_version,
                    &before.route(name),
                )
            }
        },
        Written::Status { resource_version } => seen(
            cached_version(
                &caches.rollouts,
                &ObjectRef::new(&rollout.name_any()).within(&ns),
            ),
            resource_version,
            &rollout.resource_version(),
        ),
    })
}

/// The resourceVersion of `key` in `store`, if cached.
fn cached_version<K>(store: &Store<K>, key: &ObjectRef<K>) -> Option<String>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store.get(key).and_then(|o| o.resource_version())
}

/// resourceVersions in the caches before a plan's writes.
#[derive(Clone, Debug, Default)]
pub struct Before {
    replica_sets: Vec<(String, Option<String>)>,
    services: Vec<(String, Option<String>)>,
    route: Option<(String, Option<String>)>,
}

impl Before {
    pub fn capture(observed: &Observed) -> Before {
        let rv = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            (
                m.name.clone().unwrap_or_default(),
                m.resource_version.clone(),
            )
        };
        Before {
            replica_sets: observed
                .replica_sets
                .iter()
                .map(|rs| rv(&rs.metadata))
                .collect(),
            services: observed
                .active_service
                .iter()
                .chain(observed.preview_service.iter())
                .map(|s| rv(&s.metadata))
                .collect(),
            route: None,
        }
    }
    /// Adds the resourceVersion of the route the plan was made from.
    pub fn with_route(mut self, route: Option<&DynamicObject>) -> Before {
        self.route = route.map(|r| {
            (
                r.metadata.name.clone().unwrap_or_default(),
                r.metadata.resource_version.clone(),
            )
        });
        self
    }
    fn route(&self, name: &str) -> Option<String> {
        lookup(self.route.as_slice(), name)
    }
    fn replica_set(&self, name: &str) -> Option<String> {
        lookup(&self.replica_sets, name)
    }
    fn service(&self, name: &str) -> Option<String> {
        lookup(&self.services, name)
    }
}

fn lookup(list: &[(String, Option<String>)], name: &str) -> Option<String> {
    list.iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, rv)| rv.clone())
}

/// Waits (polling the in-memory caches, no API requests) until they reflect
/// `written`, at most `timeout`. Returns whether they caught up.
pub async fn wait_for_caches(
    caches: &Caches,
    rollout: &Rollout,
    written: &[Written],
    before: &Before,
    timeout: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if caches_reflect(caches, rollout, written, before) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    fn rollout(name: &str, active: &str, preview: Option<&str>) -> Rollout {
        let mut r: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}},
                "strategy": {"redBlack": {"activeService": active}}
            }
        }))
        .unwrap();
        r.spec.strategy.red_black.preview_service = preview.map(str::to_owned);
        r
    }

    fn rs(name: &str, owner_uid: &str, controller: bool) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "redblack.io/v1alpha1".into(),
                    kind: "Rollout".into(),
                    name: "x".into(),
                    uid: owner_uid.into(),
                    controller: Some(controller),
                    block_owner_deletion: None,
                }]),
                ..ObjectMeta::default()
            },
            ..ReplicaSet::default()
        }
    }

    fn svc(name: &str) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                annotations: Some([(LAST_APPLIED_ANNOTATION.to_owned(), "{}".to_owned())].into()),
                managed_fields: Some(vec![Default::default()]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    fn pack<K>(obj: K) -> Packed<K>
    where
        K: kube::Resource + serde::Serialize + serde::de::DeserializeOwned,
    {
        Packed::pack(obj).unwrap()
    }

    /// A packed cache, as the controller keeps Rollouts, ReplicaSets and Services.
    fn packed<K>(objs: Vec<K>) -> Store<Packed<K>>
    where
        K: kube::Resource<DynamicType = ()> + serde::Serialize + serde::de::DeserializeOwned,
    {
        store(objs.into_iter().map(pack).collect())
    }

    fn store<K>(objs: Vec<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone + 'static,
    {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for o in objs {
            writer.apply_watcher_event(&Event::InitApply(o));
        }
        writer.apply_watcher_event(&Event::InitDone);
        reader
    }

    #[test]
    fn observes_only_owned_replica_sets_and_named_services() {
        let web = rollout("web", "web", Some("web-preview"));
        let caches = Caches {
            rollouts: packed(vec![web.clone()]),
            replica_sets: packed(vec![
                rs("web-b", "uid-web", true),
                rs("web-a", "uid-web", true),
                rs("other", "uid-other", true),
                rs("not-controller", "uid-web", false),
            ]),
            services: packed(vec![svc("web"), svc("unrelated")]),
            analyses: store(vec![]),
            templates: store(vec![]),
            deployments: store(vec![]),
            routes: None,
            synced: Synced::new(5),
            index: Indexes::default(),
        }
        .reindexed();
        let observed = observe(&web, &caches).unwrap();
        let names: Vec<_> = observed.replica_sets.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["web-a", "web-b"]);
        assert_eq!(
            observed.active_service.map(|s| s.name_any()).as_deref(),
            Some("web")
        );
        assert!(observed.preview_service.is_none());
    }

    #[test]
    fn service_events_map_to_the_rollouts_naming_them() {
        let rollouts = Referrers::of(packed(vec![
            rollout("a", "shared", None),
            rollout("b", "b", Some("shared")),
            rollout("c", "c", None),
        ]));
        let mut names: Vec<_> = rollouts_naming(&rollouts, &pack(svc("shared")))
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert!(rollouts_naming(&rollouts, &pack(svc("nobody"))).is_empty());
    }

    fn template(name: &str, namespace: &str) -> CanaryAnalysisTemplate {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysisTemplate",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"interval": "1m", "lifetime": format!("{name}-lifetime")}
        }))
        .unwrap()
    }

    fn using(mut r: Rollout, canary: Option<&str>, post: Option<&str>) -> Rollout {
        let source = |name: &str| {
            serde_json::from_value::<crate::api::AnalysisSource>(
                serde_json::json!({"templateName": name}),
            )
            .unwrap()
        };
        let rb = &mut r.spec.strategy.red_black;
        rb.canary = canary.map(|name| crate::api::CanaryStrategy {
            replicas: 1,
            baseline: true,
            traffic_percent: None,
            analysis: source(name),
            marginal: Default::default(),
        });
        rb.post_promotion_analysis = post.map(source);
        r
    }

    #[test]
    fn observes_only_the_named_templates_of_the_namespace() {
        let web = using(rollout("web", "web", None), Some("latency"), Some("post"));
        let mut elsewhere = template("post", "other");
        elsewhere.spec.body.clear();
        let caches = Caches {
            rollouts: packed(vec![web.clone()]),
            replica_sets: packed(vec![]),
            services: packed(vec![]),
            analyses: store(vec![]),
            templates: store(vec![
                template("latency", "default"),
                template("unrelated", "default"),
                elsewhere,
            ]),
            deployments: store(vec![]),
            routes: None,
            synced: Synced::new(5),
            index: Indexes::default(),
        }
        .reindexed();
        let observed = observe(&web, &caches).unwrap();
        let names: Vec<_> = observed.analysis_templates.keys().collect();
        assert_eq!(names, ["latency"], "post exists only in another namespace");
        assert_eq!(
            observed.analysis_templates["latency"]["lifetime"],
            "latency-lifetime"
        );
    }

    #[test]
    fn template_events_map_to_the_rollouts_naming_them() {
        let rollouts = Referrers::of(packed(vec![
            using(rollout("a", "a", None), Some("shared"), None),
            using(rollout("b", "b", None), None, Some("shared")),
            using(rollout("c", "c", None), Some("other"), Some("other")),
            rollout("d", "d", None),
        ]));
        let mut names: Vec<_> = rollouts_using_template(&rollouts, &template("shared", "default"))
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert!(rollouts_using_template(&rollouts, &template("shared", "elsewhere")).is_empty());
        assert_eq!(
            template_names(&using(rollout("e", "e", None), Some("x"), Some("x"))),
            ["x"]
        );
    }

    fn route(name: &str, namespace: &str, rv: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {
                "name": name, "namespace": namespace, "uid": "u1", "resourceVersion": rv,
                "labels": {"team": "a"},
                "annotations": {LAST_APPLIED_ANNOTATION: "{}"},
                "managedFields": [{"manager": "kubectl"}]
            },
            "spec": {
                "parentRefs": [{"name": "gw"}],
                "hostnames": ["web.example"],
                "rules": [
                    {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                     "filters": [{"type": "RequestHeaderModifier"}],
                     "backendRefs": [{"name": "web", "port": 80, "weight": 90},
                                     {"name": "web-canary", "port": 80, "weight": 10}]},
                    {"backendRefs": [{"name": "web", "port": 80}]}
                ]
            },
            "status": {"parents": []}
        }))
        .unwrap()
    }

    fn routed(r: Rollout, route: &str) -> Rollout {
        let mut r = r;
        r.spec.strategy.red_black.traffic_routing = Some(
            serde_json::from_value(serde_json::json!({"httpRoute": {"name": route}})).unwrap(),
        );
        r
    }

    fn route_store(objs: Vec<DynamicObject>) -> Store<DynamicObject> {
        let mut writer = reflector::store::Writer::new(apply::http_route_resource());
        let reader = writer.as_reader();
        writer.apply_watcher_event(&Event::Init);
        for o in objs {
            writer.apply_watcher_event(&Event::InitApply(o));
        }
        writer.apply_watcher_event(&Event::InitDone);
        reader
    }

    #[test]
    fn stripping_a_route_keeps_identity_and_whole_rules_only() {
        let original = route("web-route", "default", "7");
        let mut r = original.clone();
        strip_route(&mut r);
        assert_eq!(r.metadata.name.as_deref(), Some("web-route"));
        assert_eq!(r.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(r.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(r.metadata.resource_version.as_deref(), Some("7"));
        assert!(r.metadata.managed_fields.is_none());
        assert!(r.metadata.annotations.is_none());
        assert!(r.metadata.labels.is_none());
        assert_eq!(
            r.data,
            serde_json::json!({"spec": {"rules": original.data["spec"]["rules"].clone()}})
        );
        // What the planner reads and what the weights write sends are unchanged.
        assert_eq!(
            apply::route_observation(&r),
            apply::route_observation(&original)
        );
        let backends = apply::route_observation(&original).backends;
        assert_eq!(
            apply::route_weights_patch(&r, &backends),
            apply::route_weights_patch(&original, &backends)
        );
        // A route without rules stays a route without rules.
        let mut bare: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "bare"}, "spec": {"parentRefs": [{"name": "gw"}]}
        }))
        .unwrap();
        strip_route(&mut bare);
        assert_eq!(bare.data, serde_json::json!({"spec": {}}));
    }

    #[test]
    fn route_events_map_to_the_rollouts_routed_by_them() {
        let rollouts = Referrers::of(packed(vec![
            routed(rollout("a", "a", None), "shared"),
            routed(rollout("b", "b", None), "shared"),
            routed(rollout("c", "c", None), "other"),
            rollout("d", "d", None),
        ]));
        let mut names: Vec<_> = rollouts_routed_by(&rollouts, &route("shared", "default", "1"))
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
        assert!(rollouts_routed_by(&rollouts, &route("shared", "elsewhere", "1")).is_empty());
        assert!(rollouts_routed_by(&rollouts, &route("d", "default", "1")).is_empty());
    }

    #[test]
    fn the_route_comes_from_the_cache_when_it_runs() {
        let web = routed(rollout("web", "web", None), "web-route");
        let mut caches = Caches {
            rollouts: packed(vec![web.clone()]),
            replica_sets: packed(vec![]),
            services: packed(vec![]),
            analyses: store(vec![]),
            templates: store(vec![]),
            deployments: store(vec![]),
            routes: None,
            synced: Synced::new(5),
            index: Indexes::default(),
        }
        .reindexed();
        assert!(cached_route(&caches, &web).is_none(), "no cache: read it");
        caches.routes = Some(route_store(vec![
            route("web-route", "default", "3"),
            route("web-route", "other", "4"),
        ]));
        let found = cached_route(&caches, &web).flatten();
        assert_eq!(
            found.and_then(|r| r.metadata.resource_version).as_deref(),
            Some("3")
        );
        let missing = routed(rollout("x", "x", None), "absent");
        assert_eq!(cached_route(&caches, &missing), Some(None));
        assert_eq!(
            cached_route(&caches, &rollout("plain", "plain", None)),
            Some(None)
        );
    }

    #[test]
    fn a_route_write_is_reflected_once_the_route_cache_has_it() {
        let web = routed(rollout("web", "web", None), "web-route");
        let old = route("web-route", "default", "3");
        let mut caches = Caches {
            rollouts: packed(vec![web.clone()]),
            replica_sets: packed(vec![]),
            services: packed(vec![]),
            analyses: store(vec![]),
            templates: store(vec![]),
            deployments: store(vec![]),
            routes: Some(route_store(vec![old.clone()])),
            synced: Synced::new(6),
            index: Indexes::default(),
        }
        .reindexed();
        let written = [Written::Route {
            name: "web-route".into(),
            resource_version: Some("5".into()),
        }];
        let before = Before::default().with_route(Some(&old));
        assert!(!caches_reflect(&caches, &web, &written, &before));
        caches.routes = Some(route_store(vec![route("web-route", "default", "5")]));
        assert!(caches_reflect(&caches, &web, &written, &before));
        // A later version (someone wrote after us) counts too.
        caches.routes = Some(route_store(vec![route("web-route", "default", "6")]));
        assert!(caches_reflect(&caches, &web, &written, &before));
        // Without a route cache there is nothing to wait for.
        caches.routes = None;
        assert!(caches_reflect(&caches, &web, &written, &before));
    }

    fn deployment(name: &str, namespace: &str, image: &str) -> Deployment {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image}]}}}
        }))
        .unwrap()
    }

    fn referencing(r: Rollout, deployment: &str) -> Rollout {
        let mut r = r;
        r.spec.template = Default::default();
        r.spec.workload_ref = Some(
            serde_json::from_value(serde_json::json!(
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment}
            ))
            .unwrap(),
        );
        r
    }

    #[test]
    fn stripping_a_deployment_keeps_identity_and_spec_only() {
        let mut d = deployment("web", "default", "web:1");
        d.metadata.annotations = Some([(LAST_APPLIED_ANNOTATION.to_owned(), "{}".into())].into());
        d.metadata.labels = Some([("team".to_owned(), "a".to_owned())].into());
        d.metadata.resource_version = Some("7".into());
        d.status = Some(Default::default());
        let spec = d.spec.clone();
        strip_deployment(&mut d);
        assert_eq!(d.metadata.name.as_deref(), Some("web"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(d.metadata.resource_version.as_deref(), Some("7"));
        assert!(d.metadata.annotations.is_none() && d.metadata.labels.is_none());
        assert!(d.status.is_none());
        assert_eq!(d.spec, spec);
    }

    #[test]
    fn the_workload_ref_deployment_is_observed_and_its_events_map_to_its_rollouts() {
        let web = referencing(rollout("web", "web", None), "shared");
        let caches = Caches {
            rollouts: packed(vec![
                web.clone(),
                referencing(rollout("b", "b", None), "shared"),
                referencing(rollout("c", "c", None), "other"),
                rollout("d", "d", None),
            ]),
            replica_sets: packed(vec![]),
            services: packed(vec![]),
            analyses: store(vec![]),
            templates: store(vec![]),
            deployments: store(vec![
                deployment("shared", "default", "web:2"),
                deployment("shared", "elsewhere", "web:9"),
            ]),
            routes: None,
            synced: Synced::new(6),
            index: Indexes::default(),
        }
        .reindexed();
        let seen = observe(&web, &caches).unwrap().workload.expect("observed");
        assert_eq!(seen.replicas, 2);
        let image = seen.template.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("web:2"), "its own namespace's");
        let c = caches
            .rollouts
            .find(|r| r.name_any() == "c")
            .unwrap()
            .unpack()
            .unwrap();
        assert!(observe(&c, &caches).unwrap().workload.is_none(), "missing");
        let d = caches
            .rollouts
            .find(|r| r.name_any() == "d")
            .unwrap()
            .unpack()
            .unwrap();
        assert!(
            observe(&d, &caches).unwrap().workload.is_none(),
            "no workloadRef"
        );

        let referrers = Referrers::of(caches.rollouts.clone());
        let mut names: Vec<_> =
            rollouts_referencing(&referrers, &deployment("shared", "default", "x"))
                .into_iter()
                .map(|r| r.name)
                .collect();
        names.sort();
        assert_eq!(names, ["b", "web"]);
        assert!(
            rollouts_referencing(&referrers, &deployment("shared", "elsewhere", "x")).is_empty()
        );
    }

    #[tokio::test]
    async fn synced_waits_for_every_cache() {
        let synced = Synced::new(3);
        synced.mark(0);
        synced.mark(2);
        assert!(!synced.is_synced());
        let waiter = tokio::spawn({
            let s = synced.clone();
            async move { s.wait().await }
        });
        synced.mark(1);
        assert!(waiter.await.unwrap());
        assert!(synced.is_synced());
    }

    #[test]
    fn stripping_drops_managed_fields_and_last_applied() {
        let mut s = svc("web");
        strip_service(&mut s);
        assert!(s.metadata.managed_fields.is_none());
        assert!(
            !s.metadata
                .annotations
                .unwrap_or_default()
                .contains_key(LAST_APPLIED_ANNOTATION)
        );
    }
}
