//! The imperative shell's write half: executes a [`Plan`]'s actions against the
//! Kubernetes API, then writes the planned status. Every write is idempotent, so
//! a crash between two writes is repaired by the next plan.
//!
//! Write styles, all under ONE field manager, [`ROLLOUT_FIELD_MANAGER`]:
//!
//! | Action | Request | Why |
//! |---|---|---|
//! | `EnsureReplicaSet` | server-side apply of the whole ReplicaSet, `force` | we own every field of our children; the owner reference makes GC follow the Rollout |
//! | `ScaleReplicaSet` | JSON merge patch of `spec.replicas` | an apply of a partial object by the same manager would *drop* the fields it omits (template, selector) |
//! | `AnnotateReplicaSet` | JSON merge patch of `metadata.annotations` (removed keys → `null`) | as the planner specifies; touches no other annotation |
//! | `DeleteReplicaSet` | DELETE, background propagation; 404 is success | |
//! | `DeletePod` | DELETE (graceful); 404 is success | a restart: the ReplicaSet recreates the pod |
//! | `SwitchService` | server-side apply of ONLY `spec.selector`, `force` | see below |
//! | `EnsureRoleService` | server-side apply of the `<rollout>-canary/-baseline` Service, `force`, owned by the Rollout | ours entirely |
//! | `SetRouteWeights` | a merge patch of `spec.rules` (the rules of the route the plan was made from, every rule's `backendRefs` replaced), guarded by that route's resourceVersion | the user's object: one write, 409 if it changed since it was observed (the next plan sees the change) |
//! | `EnsureCanaryAnalysis` | POST; 409 AlreadyExists is success; another 4xx (but 429) is [`ApplyError::AnalysisRefused`]: the controller re-plans with it (the canary is held, a condition and one Event say why) | a judgement is a record: never updated |
//! | `DeleteCanaryAnalysis` | DELETE, background propagation; 404 is success; a failure is [`ApplyError::Prune`]: a refusal is re-planned with (the `AnalysisPruneRefused` condition and one Event), a transient failure backs off | a finished judgement beyond the history limits, in a plan that writes nothing else |
//! | `EnsureJob` | server-side apply of a gate's Job, `force`, owned by the Rollout (`gates_io.rs`) | ours entirely; its name is per revision and attempt, so it is never rewritten |
//! | status | JSON merge patch of the `status` subresource: the diff from the stored status | see [`write_status`] |
//!
//! Any other write the API refuses for good (a 4xx but 404/409/429, e.g. an
//! admission webhook's denial, a quota, RBAC) is [`ApplyError::refusal`]: the
//! controller records it in the Rollout's conditions with one Warning Event
//! ([`crate::rollout::plan::plan_refused_write`]) and retries with backoff.
//!
//! ## Why `SwitchService` is a forced apply of just the selector
//!
//! The Service is the user's object: we change exactly one field of it and
//! nothing else. `spec.selector` is an *atomic* map (`x-kubernetes-map-type:
//! atomic` upstream), so an apply of it replaces the whole selector in one
//! write — exactly "the Service now selects revision X", with no read-modify-
//! write race. A JSON merge patch would *merge* keys instead, leaving a stale
//! key behind unless we first read the Service and null it out (two steps, racy).
//! `force` is required because the user's manager (kubectl, Argo CD, Flux)
//! owns `spec.selector` from creating the Service; taking ownership of that one
//! field is the documented contract (docs/operations.md). A later
//! `kubectl apply --server-side` of the Service by the user then reports a
//! conflict naming manager `redblack` instead of silently fighting us, and our
//! applied set never contains any other field of the Service, so we never
//! remove or reset anything the user wrote.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{ROLE_LABEL, ROLLOUT_LABEL, Rollout, RolloutStatus};
use crate::rollout::plan::{RouteBackend, RouteObservation, WriteRefusal};
use crate::rollout::{Action, Plan};
use crate::runtime::field_manager::ROLLOUT_FIELD_MANAGER;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the Rollout has no {0}")]
    MissingMetadata(&'static str),
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot build {what}")]
    Build { what: String },
    /// The API refused to create a CanaryAnalysis (a 4xx other than
    /// AlreadyExists and TooManyRequests): retrying the same body cannot
    /// succeed, so the shell re-plans with the refusal instead.
    #[error("creating CanaryAnalysis {name}: refused: {message}")]
    AnalysisRefused {
        name: String,
        message: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a finished CanaryAnalysis beyond the history limits failed.
    /// Housekeeping: a refusal is not a `WriteRefused` (the rollout is not
    /// held); the controller re-plans with it (`Observed::prune_refused`).
    #[error("deleting CanaryAnalysis {name}: {source}")]
    Prune {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ApplyError {
    /// A short, bounded label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ApplyError::MissingMetadata(_) => "missing_metadata",
            ApplyError::Api { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => "conflict",
                kube::Error::Api(status) if status.code == 404 => "not_found",
                kube::Error::Api(status) if status.code == 422 => "invalid",
                kube::Error::Api(_) => "api",
                _ => "transport",
            },
            ApplyError::Build { .. } => "build",
            ApplyError::AnalysisRefused { .. } => "refused",
            ApplyError::Prune { .. } => "prune",
        }
    }
}

impl ApplyError {
    /// The write the API refused in a way a retry of the same request cannot
    /// overcome (see [`refused`]), as the planner records it; None for
    /// transient failures (5xx, 409, 429, transport) and for a 404 (the
    /// object went away since it was observed: the next plan sees that).
    pub fn refusal(&self) -> Option<WriteRefusal> {
        let (what, status) = match self {
            ApplyError::Api {
                what,
                source: kube::Error::Api(status),
            } => (what.clone(), status),
            ApplyError::AnalysisRefused {
                name,
                source: kube::Error::Api(status),
                ..
            } => (format!("creating CanaryAnalysis {name}"), status),
            _ => return None,
        };
        (refused(status.code) && status.code != 404).then(|| WriteRefusal {
            what,
            code: status.code,
            reason: status.reason.clone(),
            message: status.message.clone(),
        })
    }
}

/// What a successful write changed, so the shell can wait until its caches
/// have seen it before the next plan (no stale re-plans, no duplicate writes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    ReplicaSet {
        name: String,
        resource_version: Option<String>,
    },
    ReplicaSetDeleted {
        name: String,
    },
    /// The `workloadRef` Deployment was scaled (scaleDown: onsuccess).
    DeploymentScaled {
        name: String,
        replicas: i32,
    },
    /// A pod of the live fleet was deleted (a restart; not cached).
    PodDeleted,
    Service {
        name: String,
        resource_version: Option<String>,
    },
    Status {
        resource_version: Option<String>,
    },
    CanaryAnalysis {
        name: String,
    },
    CanaryAnalysisDeleted {
        name: String,
    },
    /// A gate's Job (read, not cached).
    Job,
    /// The HTTPRoute's weights (cached only while the route watch runs).
    Route {
        name: String,
        resource_version: Option<String>,
    },
}

/// Executes one action. Every action is safe to repeat. `route` is the
/// HTTPRoute the plan was made from (from the watch cache, or read by this
/// reconcile when the route watch does not run).
pub async fn execute(
    client: &Client,
    rollout: &Rollout,
    action: &Action,
    route: Option<&DynamicObject>,
) -> Result<Written, ApplyError> {
    let ns = rollout
        .namespace()
        .ok_or(ApplyError::MissingMetadata("namespace"))?;
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), &ns);
    let api_err = |what: String| move |source| ApplyError::Api { what, source };
    match action {
        Action::EnsureReplicaSet { name, .. } => {
            let rs = action
                .replica_set(rollout)
                .ok_or_else(|| ApplyError::Build {
                    what: format!("ReplicaSet {name}"),
                })?;
            let params = PatchParams::apply(ROLLOUT_FIELD_MANAGER).force();
            let applied = replica_sets
                .patch(name, &params, &Patch::Apply(&rs))
                .await
                .map_err(api_err(format!("applying ReplicaSet {name}")))?;
            Ok(Written::ReplicaSet {
                name: name.clone(),
                resource_version: applied.resource_version(),
            })
        }
        Action::ScaleReplicaSet { name, replicas } => {
            let patch = json!({"spec": {"replicas": replicas}});
            let patched = replica_sets
                .patch(name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("scaling ReplicaSet {name} to {replicas}")))?;
            Ok(Written::ReplicaSet {
                name: name.clone(),
                resource_version: patched.resource_version(),
            })
        }
        Action::AnnotateReplicaSet { name, set, remove } => {
            let patch = annotation_patch(set, remove);
            let patched = replica_sets
                .patch(name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("annotating ReplicaSet {name}")))?;
            Ok(Written::ReplicaSet {
                name: name.clone(),
                resource_version: patched.resource_version(),
            })
        }
        Action::SetPodMetadata {
            name,
            selector,
            labels,
            annotations,
        } => {
            let meta = json!({"metadata": {"labels": labels, "annotations": annotations}});
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let select: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let listed = pods
                .list(&kube::api::ListParams::default().labels(&select.join(",")))
                .await
                .map_err(api_err(format!("listing the pods of ReplicaSet {name}")))?;
            for pod in listed {
                let Some(pod_name) = pod.metadata.name else {
                    continue;
                };
                match pods
                    .patch(&pod_name, &merge_params(), &Patch::Merge(&meta))
                    .await
                {
                    Ok(_) => {}
                    // Gone meanwhile: its replacement comes from the template.
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(source) => {
                        return Err(ApplyError::Api {
                            what: format!("setting the metadata of pod {pod_name}"),
                            source,
                        });
                    }
                }
            }
            let patch = json!({"spec": {"template": meta}});
            let patched = replica_sets
                .patch(name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!(
                    "setting the pod template metadata of ReplicaSet {name}"
                )))?;
            Ok(Written::ReplicaSet {
                name: name.clone(),
                resource_version: patched.resource_version(),
            })
        }
        Action::ScaleDeployment { name, replicas } => {
            let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let patch = json!({"spec": {"replicas": replicas}});
            let patched = deployments
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("scaling Deployment {name} (workloadRef)")))?;
            Ok(Written::DeploymentScaled {
                name: name.clone(),
                replicas: patched.spec.replicas.unwrap_or(*replicas),
            })
        }
        Action::DeletePod { name } => {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match pods.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(Written::PodDeleted),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(Written::PodDeleted),
                Err(source) => Err(ApplyError::Api {
                    what: format!("deleting pod {name}"),
                    source,
                }),
            }
        }
        Action::DeleteReplicaSet { name } => {
            match replica_sets.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(ApplyError::Api {
                        what: format!("deleting ReplicaSet {name}"),
                        source,
                    });
                }
            }
            Ok(Written::ReplicaSetDeleted { name: name.clone() })
        }
        Action::SwitchService {
            service, selector, ..
        } => {
            let services: Api<Service> = Api::namespaced(client.clone(), &ns);
            let params = PatchParams::apply(ROLLOUT_FIELD_MANAGER).force();
            let patched = services
                .patch(
                    service,
                    &params,
                    &Patch::Apply(selector_apply(service, selector)),
                )
                .await
                .map_err(api_err(format!("switching Service {service}")))?;
            Ok(Written::Service {
                name: service.clone(),
                resource_version: patched.resource_version(),
            })
        }
        Action::EnsureRoleService {
            name,
            role,
            selector,
            ports,
        } => {
            let services: Api<Service> = Api::namespaced(client.clone(), &ns);
            let body = role_service(rollout, name, role, selector, ports);
            let params = PatchParams::apply(ROLLOUT_FIELD_MANAGER).force();
            let applied = services
                .patch(name, &params, &Patch::Apply(&body))
                .await
                .map_err(api_err(format!("applying role Service {name}")))?;
            Ok(Written::Service {
                name: name.clone(),
                resource_version: applied.resource_version(),
            })
        }
        Action::SetRouteWeights {
            route: name,
            backends,
        } => {
            let api = http_routes(client, &ns);
            // The route the plan was made from; read only if the plan names
            // another one (never today: the planner only sets the weights of
            // the route it observed).
            let fetched;
            let current = match route.filter(|r| r.metadata.name.as_deref() == Some(name)) {
                Some(r) => r,
                None => {
                    fetched = api
                        .get(name)
                        .await
                        .map_err(api_err(format!("reading HTTPRoute {name}")))?;
                    &fetched
                }
            };
            // The user's object: only backendRefs change, every rule gets the
            // same list, guarded by the observed resourceVersion (409 → the
            // route changed since: the next plan sees the change).
            let patch = route_weights_patch(current, backends);
            let patched = api
                .patch(name, &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(api_err(format!("setting the weights of HTTPRoute {name}")))?;
            Ok(Written::Route {
                name: name.clone(),
                resource_version: patched.resource_version(),
            })
        }
        Action::EnsureCanaryAnalysis { name, labels, spec } => {
            let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), &ns);
            let body = canary_analysis(rollout, name, labels, spec);
            let analysis: CanaryAnalysis =
                serde_json::from_value(body).map_err(|_| ApplyError::Build {
                    what: format!("CanaryAnalysis {name}"),
                })?;
            match api.create(&PostParams::default(), &analysis).await {
                Ok(_) => {}
                // Create-if-absent: a judgement is never rewritten.
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(kube::Error::Api(status)) if refused(status.code) => {
                    return Err(ApplyError::AnalysisRefused {
                        name: name.clone(),
                        message: status.message.clone(),
                        source: kube::Error::Api(status),
                    });
                }
                Err(source) => {
                    return Err(ApplyError::Api {
                        what: format!("creating CanaryAnalysis {name}"),
                        source,
                    });
                }
            }
            Ok(Written::CanaryAnalysis { name: name.clone() })
        }
        Action::DeleteCanaryAnalysis { name } => {
            let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), &ns);
            match api.delete(name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(ApplyError::Prune {
                        name: name.clone(),
                        source,
                    });
                }
            }
            Ok(Written::CanaryAnalysisDeleted { name: name.clone() })
        }
        Action::EnsureJob { name, job } => {
            super::gates_io::apply_job(client, &ns, name, job).await?;
            Ok(Written::Job)
        }
    }
}

/// A refusal that a retry of the same request cannot overcome: a 4xx but
/// Conflict/AlreadyExists (409) and TooManyRequests (429).
pub fn refused(code: u16) -> bool {
    (400..500).contains(&code) && code != 409 && code != 429
}

/// The Gateway API group of HTTPRoute.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";
/// The version of HTTPRoute the operator reads and writes.
pub const GATEWAY_VERSION: &str = "v1";
/// HTTPRoute's plural (its discovery name).
pub const HTTP_ROUTE_PLURAL: &str = "httproutes";

/// The Gateway API HTTPRoute (`gateway.networking.k8s.io/v1`) as a dynamic type.
pub fn http_route_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(GATEWAY_GROUP, GATEWAY_VERSION, "HTTPRoute");
    ApiResource::from_gvk_with_plural(&gvk, HTTP_ROUTE_PLURAL)
}

/// HTTPRoutes of namespace `ns`.
pub fn http_routes(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &http_route_resource())
}

/// Reads `trafficRouting.httpRoute` from the API: the fallback when the route
/// watch does not run (the Gateway API was not served when the operator
/// started). None when it does not exist.
pub async fn read_route(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Option<DynamicObject>, ApplyError> {
    http_routes(client, ns)
        .get_opt(name)
        .await
        .map_err(|source| ApplyError::Api {
            what: format!("reading HTTPRoute {name}"),
            source,
        })
}

/// The pods of the Rollout's fleets (its `selector.matchLabels`), read per
/// reconcile only while a `spec.restartAt` is not done: a pod watch for every
/// Rollout would cache every pod for a rare operation. `workload`: the
/// `workloadRef` Deployment's selector, used when the Rollout sets none.
pub async fn read_pods(
    client: &Client,
    rollout: &Rollout,
    workload: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<Vec<Pod>, ApplyError> {
    let pending = rollout.spec.restart_at.is_some()
        && rollout.status.as_ref().and_then(|s| s.restarted_at) != rollout.spec.restart_at;
    let Some(ns) = rollout.namespace().filter(|_| pending) else {
        return Ok(Vec::new());
    };
    let own = &rollout.spec.selector.match_labels;
    let selector = own
        .as_ref()
        .or(workload.and_then(|w| w.match_labels.as_ref()))
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let list = pods
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map_err(|source| ApplyError::Api {
            what: "listing the fleets' pods (restart)".to_owned(),
            source,
        })?;
    Ok(list.items)
}

/// The first rule's backendRefs, as the planner sees them (weight default 1).
pub fn route_observation(route: &DynamicObject) -> RouteObservation {
    let refs = route
        .data
        .pointer("/spec/rules/0/backendRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    RouteObservation {
        backends: refs
            .iter()
            .filter_map(|r| {
                Some(RouteBackend {
                    service: r.get("name")?.as_str()?.to_owned(),
                    port: r
                        .get("port")
                        .and_then(Value::as_i64)
                        .and_then(|p| i32::try_from(p).ok()),
                    weight: r
                        .get("weight")
                        .and_then(Value::as_i64)
                        .and_then(|w| i32::try_from(w).ok())
                        .unwrap_or(1),
                })
            })
            .collect(),
    }
}

/// A merge patch replacing every rule's backendRefs with `backends`, guarded
/// by the route's resourceVersion.
pub fn route_weights_patch(route: &DynamicObject, backends: &[RouteBackend]) -> Value {
    let refs: Vec<Value> = backends
        .iter()
        .map(|b| {
            let mut r = json!({"name": b.service, "weight": b.weight});
            if let Some(port) = b.port {
                r["port"] = json!(port);
            }
            r
        })
        .collect();
    let rules: Vec<Value> = route
        .data
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_else(|| vec![json!({})])
        .into_iter()
        .map(|mut rule| {
            rule["backendRefs"] = Value::Array(refs.clone());
            rule
        })
        .collect();
    json!({
        "metadata": {"resourceVersion": route.resource_version()},
        "spec": {"rules": rules},
    })
}

/// The apply configuration of a role Service, owned by the Rollout.
pub fn role_service(
    rollout: &Rollout,
    name: &str,
    role: &str,
    selector: &BTreeMap<String, String>,
    ports: &[ServicePort],
) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "labels": {ROLLOUT_LABEL: crate::rollout::plan::rollout_label_value(rollout), ROLE_LABEL: role},
            "ownerReferences": rollout.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    })
}

/// A CanaryAnalysis owned by the Rollout.
pub fn canary_analysis(
    rollout: &Rollout,
    name: &str,
    labels: &BTreeMap<String, String>,
    spec: &Value,
) -> Value {
    json!({
        "apiVersion": CanaryAnalysis::api_version(&()),
        "kind": CanaryAnalysis::kind(&()),
        "metadata": {
            "name": name,
            "namespace": rollout.namespace(),
            "labels": labels,
            "ownerReferences": rollout.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
        "spec": spec,
    })
}

/// Writes `status` on the status subresource: a JSON merge patch of exactly
/// what differs from `rollout.status` (the status this plan was made from;
/// cleared fields become `null`), under [`ROLLOUT_FIELD_MANAGER`].
///
/// Why not a server-side apply: removal by omission is what makes an apply of
/// a status correct (a cleared `abort` must disappear), and the sandbox's apply
/// today removes the leaves of an omitted object but leaves the emptied parent
/// (`abort: {}`), which the schema then rejects (422), wedging the Rollout. The
/// diff patch has the same meaning on every API server, sends only what
/// changed (a status with a full history is mostly unchanged), and is safe
/// because the operator is the only writer of the status and a reconcile waits
/// until its cache reflects its previous writes.
pub async fn write_status(
    client: &Client,
    rollout: &Rollout,
    status: &RolloutStatus,
) -> Result<Written, ApplyError> {
    let ns = rollout
        .namespace()
        .ok_or(ApplyError::MissingMetadata("namespace"))?;
    let name = rollout
        .meta()
        .name
        .clone()
        .ok_or(ApplyError::MissingMetadata("name"))?;
    let api: Api<Rollout> = Api::namespaced(client.clone(), &ns);
    let to_json = |s: &RolloutStatus| {
        serde_json::to_value(s).map_err(|_| ApplyError::Build {
            what: format!("the status of Rollout {name}"),
        })
    };
    let new = to_json(status)?;
    let old = match &rollout.status {
        Some(old) => to_json(old)?,
        None => Value::Null,
    };
    let Some(diff) = merge_diff(&old, &new) else {
        return Ok(Written::Status {
            resource_version: rollout.resource_version(),
        });
    };
    let body = json!({"status": diff});
    let patched = api
        .patch_status(&name, &merge_params(), &Patch::Merge(&body))
        .await
        .map_err(|source| ApplyError::Api {
            what: format!("writing the status of Rollout {name}"),
            source,
        })?;
    Ok(Written::Status {
        resource_version: patched.resource_version(),
    })
}

/// The JSON merge patch (RFC 7386) turning `old` into `new`; None when equal.
/// Objects are diffed key by key (removed keys → `null`); anything else,
/// arrays included, is replaced whole.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = serde_json::Map::new();
            for (key, nv) in n {
                match o.get(key) {
                    Some(ov) if ov == nv => {}
                    Some(ov @ Value::Object(_)) if nv.is_object() => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(key.clone(), d);
                        }
                    }
                    _ => {
                        out.insert(key.clone(), nv.clone());
                    }
                }
            }
            for key in o.keys() {
                if !n.contains_key(key) {
                    out.insert(key.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// A plan whose execution stopped at a failure, with the writes that
/// succeeded before it (the shell paces retries by whether any did).
#[derive(Debug)]
pub struct Partial {
    pub written: Vec<Written>,
    pub error: ApplyError,
}

/// Executes the plan's actions in order, stopping at the first failure (the
/// next plan repairs it), then writes the status if it differs from the stored
/// one. A plan that `is_noop` writes nothing at all.
pub async fn apply_plan(
    client: &Client,
    rollout: &Rollout,
    plan: &Plan,
    route: Option<&DynamicObject>,
) -> Result<Vec<Written>, Partial> {
    let stored = rollout.status.as_ref();
    if plan.is_noop(stored) {
        return Ok(Vec::new());
    }
    let mut written = Vec::with_capacity(plan.actions.len() + 1);
    for action in &plan.actions {
        match execute(client, rollout, action, route).await {
            Ok(w) => written.push(w),
            Err(error) => return Err(Partial { written, error }),
        }
    }
    if stored != Some(&plan.status) {
        match write_status(client, rollout, &plan.status).await {
            Ok(w) => written.push(w),
            Err(error) => return Err(Partial { written, error }),
        }
    }
    Ok(written)
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(ROLLOUT_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    }
}

/// `{"metadata":{"annotations":{set…, removed: null}}}`
pub fn annotation_patch(set: &BTreeMap<String, String>, remove: &[String]) -> Value {
    let mut annotations = serde_json::Map::new();
    for key in remove {
        annotations.insert(key.clone(), Value::Null);
    }
    for (key, value) in set {
        annotations.insert(key.clone(), Value::String(value.clone()));
    }
    json!({"metadata": {"annotations": annotations}})
}

/// The apply configuration of a selector switch: nothing but `spec.selector`.
pub fn selector_apply(service: &str, selector: &BTreeMap<String, String>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service},
        "spec": {"selector": selector},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_client_error_a_retry_cannot_fix_is_a_refusal() {
        for code in [400, 403, 404, 422] {
            assert!(refused(code), "{code}");
        }
        for code in [200, 409, 429, 500, 503] {
            assert!(!refused(code), "{code}");
        }
    }

    #[test]
    fn annotation_patch_nulls_removed_keys() {
        let set = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
        let patch = annotation_patch(&set, &["b".to_owned()]);
        assert_eq!(
            patch,
            json!({"metadata": {"annotations": {"a": "1", "b": null}}})
        );
    }

    #[test]
    fn selector_apply_names_only_the_selector() {
        let sel = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let body = selector_apply("web", &sel);
        assert_eq!(body["spec"], json!({"selector": {"app": "web"}}));
        assert_eq!(body["metadata"], json!({"name": "web"}));
        assert_eq!(body.as_object().map(|o| o.len()), Some(4));
    }

    #[test]
    fn merge_diff_sends_changes_and_nulls_cleared_fields() {
        let old = json!({"phase": "Aborted", "abort": {"revision": "a", "reason": "User"},
                         "conditions": [{"type": "Ready"}], "replicas": 2});
        let new = json!({"phase": "Progressing", "conditions": [{"type": "Ready"}, {"type": "X"}],
                         "replicas": 2});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"phase": "Progressing", "abort": null,
                        "conditions": [{"type": "Ready"}, {"type": "X"}]}))
        );
        assert_eq!(merge_diff(&new, &new), None);
        assert_eq!(merge_diff(&Value::Null, &new), Some(new.clone()));
        // Nested objects are diffed, not replaced.
        let a = json!({"operations": {"abort": "x"}});
        let b = json!({"operations": {"abort": "x", "retry": "y"}});
        assert_eq!(
            merge_diff(&a, &b),
            Some(json!({"operations": {"retry": "y"}}))
        );
    }
}
