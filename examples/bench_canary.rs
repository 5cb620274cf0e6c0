//! Benchmark (not a test): canary-gated red/black rollouts. API requests per
//! rollout whose canary is judged Passed and per rollout whose canary is judged
//! Failed, and the operator's time from a Failed verdict to traffic back on the
//! stable fleet.
//!
//!     cargo run --release --example bench_canary [-- --rollouts N] [--no-route]
//!
//! Starts an in-process sandbox (a SIMULATOR; pods ready after 200 ms) and the
//! operator (`run_controller` with the CanaryAnalysis controller OFF). Two
//! groups of N Rollouts (default 20), `replicas: 1`, `scaleDownDelay: 1s`,
//! `strategy.redBlack.canary` (replicas 1, baseline, inline analysis), one
//! Service each; group `selector` has no traffic routing (the canary's share
//! comes from widening the active Service's selector to `matchLabels`), group
//! `httproute` splits traffic with an HTTPRoute per Rollout (`--no-route`
//! skips it). The benchmark plays the CanaryAnalysis controller, as
//! tests/rollout_controller.rs does: it writes the verdict into the
//! CanaryAnalysis status with a merge patch. Per group, one Rollout at a time:
//!
//! - flow Passed: new template → canary + baseline up → traffic → analysis
//!   created → verdict Passed → full fleet → switch → Healthy (and the old fleet
//!   scaled to zero after `scaleDownDelay`);
//! - flow Failed: new template → canary + baseline up → traffic → analysis
//!   created → verdict Failed → traffic back on stable, canary + baseline
//!   deleted, Degraded. Timed from the return of the verdict write to the
//!   store event that puts traffic back (Service selector names the stable
//!   hash again / route weights back to the active Service), observed by a
//!   task subscribed to the sandbox store (a watch, no polling). The operator
//!   is idle when each verdict is written, so the reconciles it starts and the
//!   writes it commits (in store order) between verdict and revert are its own
//!   reaction to that verdict.
//!
//! Requests are the sandbox's counters minus the benchmark's own (one template
//! patch and one verdict status patch per rollout, known exactly); every other
//! read of the benchmark goes to the store in-process and is not counted.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use redblack::api::canary_analysis::CanaryAnalysis;
use redblack::api::{POD_TEMPLATE_HASH_LABEL, ROLLOUT_LABEL, Rollout, pod_template_hash};
use redblack::cli::controller::ControllerConfig;
use redblack::rollout::controller::{REPORTING_CONTROLLER, ROLLOUT_CONTROLLER_NAME};
use redblack::web::metrics::{ControllerLabels, OperatorMetrics};
use redblack_sandbox::registry::GroupResource;
use redblack_sandbox::store::{EventType, Store, StoredEvent};
use redblack_sandbox::{RequestCounts, SandboxConfig};
use serde_json::{Value, json};
use support::{BoxError, Counts, Operator, by_verb, diff, is_read, on_resource, percentile};
use tokio::sync::mpsc;

const NS: &str = "default";
const POD_READY_AFTER: Duration = Duration::from_millis(200);
/// Per wait; generous (the machine is shared), never an assertion on timing.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long the operator must have sent nothing and started no reconcile
/// before a verdict is written.
const QUIET: Duration = Duration::from_millis(200);

// ---------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Traffic {
    /// No routing: the active Service's selector is widened to `matchLabels`.
    Selector,
    /// `trafficRouting.httpRoute`: backend weights.
    Route,
}

impl Traffic {
    fn label(self) -> &'static str {
        match self {
            Traffic::Selector => "selector",
            Traffic::Route => "httproute",
        }
    }

    fn name(self, i: usize) -> String {
        match self {
            Traffic::Selector => format!("sel-{i:03}"),
            Traffic::Route => format!("rt-{i:03}"),
        }
    }
}

fn route_name(name: &str) -> String {
    format!("{name}-route")
}

fn service(name: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    })
}

fn http_route(name: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": route_name(name)},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"backendRefs": [{"name": name, "port": 80}]}]}
    })
}

fn image(tag: &str) -> String {
    format!("registry.example/app:{tag}")
}

/// As tests/rollout_controller.rs `canary_through_an_http_route_is_judged_then_promoted`.
fn rollout(name: &str, traffic: Traffic) -> Value {
    let mut red_black = json!({
        "activeService": name,
        "scaleDownDelay": "1s",
        "canary": {
            "replicas": 1,
            "analysis": {"inline": {
                "interval": "1m",
                "lifetime": "10m",
                "experiment": {"variables": {"app": name}},
                "metrics": [{"name": "errors",
                             "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]
            }}
        }
    });
    if traffic == Traffic::Route {
        red_black["trafficRouting"] = json!({"httpRoute": {"name": route_name(name)}});
    }
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image("v1")}]}
            },
            "strategy": {"redBlack": red_black}
        }
    })
}

// ---------------------------------------------------------------------------
// What traffic looks like, on a Service or HTTPRoute object (from the store or
// from a store event)
// ---------------------------------------------------------------------------

fn selected_hash(svc: &Value) -> Option<&str> {
    svc.pointer("/spec/selector")?
        .get(POD_TEMPLATE_HASH_LABEL)?
        .as_str()
}

/// The selector is exactly `matchLabels`: stable, canary and baseline pods.
fn selector_widened(svc: &Value) -> bool {
    svc.pointer("/spec/selector")
        .is_some_and(|s| s.get(POD_TEMPLATE_HASH_LABEL).is_none())
}

fn backends(route: &Value) -> Vec<Value> {
    route
        .pointer("/spec/rules/0/backendRefs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn route_to_canary(route: &Value, name: &str) -> bool {
    let canary = format!("{name}-canary");
    backends(route)
        .iter()
        .any(|b| b["name"] == canary.as_str() && b["weight"].as_i64().unwrap_or(0) > 0)
}

/// Every backend with weight is the active Service.
fn route_on_active(route: &Value, name: &str) -> bool {
    let refs = backends(route);
    refs.iter().any(|b| b["name"] == name)
        && refs
            .iter()
            .all(|b| b["name"] == name || b["weight"].as_i64() == Some(0))
}

// ---------------------------------------------------------------------------
// Observing: a task subscribed to the store timestamps every relevant event
// ---------------------------------------------------------------------------

/// A store event as the benchmark received it.
struct Seen {
    at: Instant,
    /// Reconciles the operator had started when the event was received.
    reconciles: u64,
    ev: Arc<StoredEvent>,
    /// What the operator wrote, if this event is one of its writes.
    operator_write: Option<String>,
}

fn reconciles(metrics: &OperatorMetrics) -> u64 {
    metrics
        .reconciles
        .get_or_create(&ControllerLabels {
            controller: ROLLOUT_CONTROLLER_NAME.to_owned(),
        })
        .get()
}

fn relevant(ev: &StoredEvent) -> bool {
    matches!(
        (ev.gr.group.as_str(), ev.gr.resource.as_str()),
        ("", "services")
            | ("apps", "replicasets")
            | ("redblack.io", "rollouts")
            | ("redblack.io", "canaryanalyses")
            | ("gateway.networking.k8s.io", "httproutes")
            | ("events.k8s.io", "events")
    )
}

struct Observed {
    at: Instant,
    reconciles: u64,
    ev: Arc<StoredEvent>,
}

/// Forwards relevant store events, stamped on arrival, until aborted.
fn spawn_observer(
    store: &Store,
    metrics: OperatorMetrics,
    lagged: Arc<AtomicU64>,
) -> (
    mpsc::UnboundedReceiver<Observed>,
    tokio::task::JoinHandle<()>,
) {
    let mut rx = store.subscribe();
    let (tx, out) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ev) if relevant(&ev) => {
                    let seen = Observed {
                        at: Instant::now(),
                        reconciles: reconciles(&metrics),
                        ev,
                    };
                    if tx.send(seen).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    lagged.fetch_add(n, Ordering::Relaxed);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    (out, task)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

// ---------------------------------------------------------------------------
// The benchmark's view: the store, read in-process
// ---------------------------------------------------------------------------

struct Bench {
    client: Client,
    store: Arc<Store>,
    counts: RequestCounts,
    metrics: OperatorMetrics,
    events: mpsc::UnboundedReceiver<Observed>,
    /// spec, labels and annotations per ReplicaSet, to tell the operator's
    /// writes from the sandbox's status writes.
    rs_shape: HashMap<String, Value>,
    /// (Rollout, reason) of every Event the operator recorded, oldest first.
    event_reasons: Vec<(String, String)>,
}

fn gr(group: &str, resource: &str) -> GroupResource {
    GroupResource::new(group, resource)
}

impl Bench {
    fn get(&self, group: &str, resource: &str, name: &str) -> Option<Arc<Value>> {
        self.store.get(&gr(group, resource), NS, name)
    }

    fn list(&self, group: &str, resource: &str) -> Vec<Arc<Value>> {
        self.store.list(&gr(group, resource), Some(NS)).0
    }

    fn service(&self, name: &str) -> Option<Arc<Value>> {
        self.get("", "services", name)
    }

    fn route(&self, name: &str) -> Option<Arc<Value>> {
        self.get("gateway.networking.k8s.io", "httproutes", &route_name(name))
    }

    /// Phase of the Rollout's status if it describes the current generation,
    /// and its current revision.
    fn rollout_phase(&self, name: &str) -> Option<(String, String)> {
        let r = self.get("redblack.io", "rollouts", name)?;
        let st = r.get("status")?;
        if st.get("observedGeneration") != r.pointer("/metadata/generation") {
            return None;
        }
        Some((
            str_at(st, "/phase")?.to_owned(),
            str_at(st, "/currentRevision")
                .unwrap_or_default()
                .to_owned(),
        ))
    }

    fn healthy_on(&self, name: &str, hash: &str) -> bool {
        self.rollout_phase(name)
            .is_some_and(|(phase, current)| phase == "Healthy" && current == hash)
    }

    fn traffic_on_canary(&self, traffic: Traffic, name: &str) -> bool {
        match traffic {
            Traffic::Selector => self.service(name).is_some_and(|s| selector_widened(&s)),
            Traffic::Route => self.route(name).is_some_and(|r| route_to_canary(&r, name)),
        }
    }

    /// The CanaryAnalysis the operator created for revision `hash`.
    fn analysis_for(&self, name: &str, hash: &str) -> Option<String> {
        self.list("redblack.io", "canaryanalyses")
            .iter()
            .find(|a| {
                let labels = &a["metadata"]["labels"];
                labels[ROLLOUT_LABEL] == name && labels[POD_TEMPLATE_HASH_LABEL] == hash
            })
            .and_then(|a| str_at(a, "/metadata/name").map(str::to_owned))
    }

    /// Canary or baseline ReplicaSets of the Rollout still in the store.
    fn role_fleets(&self, name: &str) -> usize {
        let prefix = format!("{name}-");
        self.list("apps", "replicasets")
            .iter()
            .filter_map(|rs| str_at(rs, "/metadata/name"))
            .filter(|n| {
                n.starts_with(&prefix) && (n.ends_with("-canary") || n.ends_with("-baseline"))
            })
            .count()
    }

    /// The fleet `<name>-<hash>` wants no pods and has none.
    fn fleet_down(&self, name: &str, hash: &str) -> bool {
        self.get("apps", "replicasets", &format!("{name}-{hash}"))
            .is_none_or(|rs| {
                rs.pointer("/spec/replicas").and_then(Value::as_i64) == Some(0)
                    && rs
                        .pointer("/status/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                        == 0
            })
    }

    /// The operator's write this event records, if it is one. Everything the
    /// benchmark writes itself (template patches, verdicts) is excluded by the
    /// caller's window.
    fn classify(&mut self, ev: &StoredEvent) -> Option<String> {
        let obj = &ev.object;
        let name = str_at(obj, "/metadata/name").unwrap_or_default().to_owned();
        let verb = ev.event_type.as_str();
        match (ev.gr.group.as_str(), ev.gr.resource.as_str()) {
            ("apps", "replicasets") => {
                // The sandbox's ReplicaSet controller writes status only; the
                // operator applies, scales, annotates and deletes.
                let shape = json!([
                    obj.get("spec"),
                    obj.pointer("/metadata/labels"),
                    obj.pointer("/metadata/annotations")
                ]);
                let before = if ev.event_type == EventType::Deleted {
                    self.rs_shape.remove(&name)
                } else {
                    self.rs_shape.insert(name.clone(), shape.clone())
                };
                (ev.event_type == EventType::Deleted || before.as_ref() != Some(&shape))
                    .then(|| format!("replicasets {name} {verb}"))
            }
            ("events.k8s.io", "events") => {
                if str_at(obj, "/reportingController") != Some(REPORTING_CONTROLLER)
                    || ev.event_type != EventType::Added
                {
                    return None;
                }
                let reason = str_at(obj, "/reason").unwrap_or_default().to_owned();
                let regarding = str_at(obj, "/regarding/name").unwrap_or_default();
                self.event_reasons
                    .push((regarding.to_owned(), reason.clone()));
                Some(format!("Event {reason}"))
            }
            ("redblack.io", "canaryanalyses") => {
                (ev.event_type == EventType::Added).then(|| format!("canaryanalyses {name} {verb}"))
            }
            (_, resource) => Some(format!("{resource} {name} {verb}")),
        }
    }

    /// The next relevant store event, or None after 100 ms.
    async fn next(&mut self, deadline: Instant, what: &str) -> Result<Option<Seen>, BoxError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("timed out waiting until {what}").into());
        }
        match tokio::time::timeout(left.min(Duration::from_millis(100)), self.events.recv()).await {
            Ok(Some(o)) => {
                let operator_write = self.classify(&o.ev);
                Ok(Some(Seen {
                    at: o.at,
                    reconciles: o.reconciles,
                    ev: o.ev,
                    operator_write,
                }))
            }
            Ok(None) => Err("the store observer stopped".into()),
            Err(_) => Ok(None),
        }
    }

    /// Waits until `check` (reading the store) yields a value; re-checked after
    /// every event.
    async fn until<T>(
        &mut self,
        what: &str,
        mut check: impl FnMut(&Bench) -> Option<T>,
    ) -> Result<T, BoxError> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(v) = check(self) {
                return Ok(v);
            }
            self.next(deadline, what).await?;
        }
    }

    /// Waits until the operator has sent no request and started no reconcile
    /// for [`QUIET`].
    async fn quiet(&mut self) -> Result<(), BoxError> {
        let deadline = Instant::now() + TIMEOUT;
        let state = |b: &Bench| (b.counts.total(), reconciles(&b.metrics));
        let mut last = state(self);
        let mut since = Instant::now();
        loop {
            // Keep consuming events (the ReplicaSet shapes stay current).
            while let Ok(o) = self.events.try_recv() {
                self.classify(&o.ev);
            }
            let now = state(self);
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= QUIET {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the operator did not go quiet".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// New image on the template (an HTTP request, subtracted); the new hash.
    async fn set_image(&self, name: &str, tag: &str) -> Result<String, BoxError> {
        let rollouts: Api<Rollout> = Api::namespaced(self.client.clone(), NS);
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": image(tag)}
        ]}}}});
        let updated = rollouts
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(pod_template_hash(&updated.spec.template))
    }

    /// Plays the CanaryAnalysis controller: the verdict, as a merge patch of
    /// the status (an HTTP request, subtracted). Returns when the write returns.
    async fn verdict(&self, analysis: &str, phase: &str, score: f64) -> Result<Instant, BoxError> {
        let analyses: Api<CanaryAnalysis> = Api::namespaced(self.client.clone(), NS);
        analyses
            .patch_status(
                analysis,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"phase": phase, "score": score}})),
            )
            .await?;
        Ok(Instant::now())
    }

    /// Waits until analysis `<name>`/`hash` exists and traffic flows to the canary.
    async fn judging(
        &mut self,
        traffic: Traffic,
        name: &str,
        hash: &str,
    ) -> Result<String, BoxError> {
        self.until(&format!("{name}: canary analysed with traffic"), |b| {
            b.analysis_for(name, hash)
                .filter(|_| b.traffic_on_canary(traffic, name))
        })
        .await
    }
}

// ---------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------

/// One flow over a group: the operator's requests and reconciles per rollout.
struct FlowResult {
    requests: Counts,
    reconciles: u64,
    rollouts: usize,
    wall: Duration,
    /// Reasons of the Events recorded on the group's first Rollout.
    first_events: Vec<String>,
}

impl Bench {
    /// Starts a flow: the operator idle, the counters and Events from here.
    async fn begin(&mut self) -> Result<(Counts, u64, Instant), BoxError> {
        self.quiet().await?;
        self.event_reasons.clear();
        Ok((
            self.counts.snapshot(),
            reconciles(&self.metrics),
            Instant::now(),
        ))
    }

    /// Ends a flow over `n` Rollouts started by [`Bench::begin`].
    async fn end(
        &mut self,
        traffic: Traffic,
        n: usize,
        (before, r0, started): (Counts, u64, Instant),
    ) -> Result<FlowResult, BoxError> {
        let wall = started.elapsed();
        self.quiet().await?;
        let first = traffic.name(0);
        Ok(FlowResult {
            requests: operator_requests(&self.counts.snapshot(), &before, n),
            reconciles: reconciles(&self.metrics) - r0,
            rollouts: n,
            wall,
            first_events: self
                .event_reasons
                .iter()
                .filter(|(name, _)| *name == first)
                .map(|(_, reason)| reason.clone())
                .collect(),
        })
    }
}

/// One Failed verdict, timed.
struct Revert {
    /// Verdict write returned → traffic back on stable (store event received),
    /// ms; negative when the revert was seen before the response arrived.
    from_return_ms: f64,
    /// Verdict committed to the store → traffic back (both store events).
    from_commit: Duration,
    /// Reconciles the operator started between the verdict write and the revert.
    reconciles: u64,
    /// Operator writes committed between the verdict and the revert.
    writes_before: Vec<String>,
}

const OURS_PER_ROLLOUT: [(&str, &str); 2] =
    [("patch", "rollouts"), ("patch", "canaryanalyses/status")];

fn operator_requests(after: &Counts, before: &Counts, rollouts: usize) -> Counts {
    let mut c = diff(after, before);
    let ours: Vec<(&str, &str, u64)> = OURS_PER_ROLLOUT
        .iter()
        .map(|(v, r)| (*v, *r, rollouts as u64))
        .collect();
    support::subtract(&mut c, &ours);
    c
}

/// Creates the group's Services (and HTTPRoutes) and Rollouts, waits until all
/// are Healthy; the stable hash of each.
async fn create_group(b: &mut Bench, traffic: Traffic, n: usize) -> Result<Vec<String>, BoxError> {
    let services: Api<Service> = Api::namespaced(b.client.clone(), NS);
    let rollouts: Api<Rollout> = Api::namespaced(b.client.clone(), NS);
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let routes: Api<DynamicObject> =
        Api::namespaced_with(b.client.clone(), NS, &ApiResource::from_gvk(&gvk));
    let mut hashes = Vec::with_capacity(n);
    for i in 0..n {
        let name = traffic.name(i);
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(service(&name))?,
            )
            .await?;
        if traffic == Traffic::Route {
            routes
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(http_route(&name))?,
                )
                .await?;
        }
        let created = rollouts
            .create(
                &PostParams::default(),
                &serde_json::from_value(rollout(&name, traffic))?,
            )
            .await?;
        hashes.push(pod_template_hash(&created.spec.template));
    }
    for (i, hash) in hashes.iter().enumerate() {
        let name = traffic.name(i);
        b.until(&format!("{name} Healthy on its first revision"), |b| {
            (b.healthy_on(&name, hash)
                && b.service(&name).as_deref().and_then(selected_hash) == Some(hash.as_str()))
            .then_some(())
        })
        .await?;
    }
    Ok(hashes)
}

/// Flow Passed for every Rollout of the group, one at a time; `stable` becomes
/// the promoted hashes.
async fn flow_passed(
    b: &mut Bench,
    traffic: Traffic,
    stable: &mut [String],
) -> Result<FlowResult, BoxError> {
    let begun = b.begin().await?;
    let mut previous = Vec::with_capacity(stable.len());
    for (i, stable_hash) in stable.iter_mut().enumerate() {
        let name = traffic.name(i);
        let hash = b.set_image(&name, "v2").await?;
        let analysis = b.judging(traffic, &name, &hash).await?;
        b.verdict(&analysis, "Passed", 100.0).await?;
        b.until(&format!("{name} switched and Healthy"), |b| {
            (b.healthy_on(&name, &hash)
                && b.service(&name).as_deref().and_then(selected_hash) == Some(hash.as_str()))
            .then_some(())
        })
        .await?;
        previous.push(std::mem::replace(stable_hash, hash));
    }
    // The old fleets go after scaleDownDelay; the canaries are gone.
    for (i, old) in previous.iter().enumerate() {
        let name = traffic.name(i);
        b.until(
            &format!("{name}: old fleet scaled down, canary gone"),
            |b| (b.fleet_down(&name, old) && b.role_fleets(&name) == 0).then_some(()),
        )
        .await?;
    }
    b.end(traffic, stable.len(), begun).await
}

/// Flow Failed for every Rollout of the group, one at a time, each revert timed.
async fn flow_failed(
    b: &mut Bench,
    traffic: Traffic,
    stable: &[String],
) -> Result<(FlowResult, Vec<Revert>), BoxError> {
    let begun = b.begin().await?;
    let mut reverts = Vec::with_capacity(stable.len());
    for (i, stable_hash) in stable.iter().enumerate() {
        let name = traffic.name(i);
        let hash = b.set_image(&name, "v3").await?;
        let analysis = b.judging(traffic, &name, &hash).await?;
        // Nothing in flight: what follows is the reaction to the verdict.
        b.quiet().await?;
        let reconciles_before = reconciles(&b.metrics);
        let returned = b.verdict(&analysis, "Failed", 0.0).await?;
        let deadline = Instant::now() + TIMEOUT;
        let what = format!("{name}: traffic back on stable");
        let mut verdict_at = None;
        let mut writes_before = Vec::new();
        let revert = loop {
            let Some(seen) = b.next(deadline, &what).await? else {
                continue;
            };
            let obj = &seen.ev.object;
            let obj_name = str_at(obj, "/metadata/name").unwrap_or_default();
            if verdict_at.is_none() {
                if seen.ev.gr.resource == "canaryanalyses"
                    && obj_name == analysis
                    && str_at(obj, "/status/phase") == Some("Failed")
                {
                    verdict_at = Some(seen.at);
                }
                continue;
            }
            let reverted = match (traffic, seen.ev.gr.resource.as_str()) {
                (Traffic::Selector, "services") => {
                    obj_name == name && selected_hash(obj) == Some(stable_hash.as_str())
                }
                (Traffic::Route, "httproutes") => {
                    obj_name == route_name(&name) && route_on_active(obj, &name)
                }
                _ => false,
            };
            if reverted {
                break seen;
            }
            writes_before.extend(seen.operator_write);
        };
        let verdict_at = verdict_at.ok_or("the verdict was never seen")?;
        reverts.push(Revert {
            from_return_ms: if revert.at >= returned {
                ms(revert.at - returned)
            } else {
                -ms(returned - revert.at)
            },
            from_commit: revert.at.saturating_duration_since(verdict_at),
            reconciles: revert.reconciles - reconciles_before,
            writes_before,
        });
        b.until(
            &format!("{name} Degraded, canary and baseline deleted"),
            |b| {
                (b.rollout_phase(&name).is_some_and(|(p, _)| p == "Degraded")
                    && b.role_fleets(&name) == 0
                    && match traffic {
                        Traffic::Selector => {
                            b.service(&name).as_deref().and_then(selected_hash)
                                == Some(stable_hash.as_str())
                        }
                        Traffic::Route => {
                            b.route(&name).is_some_and(|r| route_on_active(&r, &name))
                        }
                    })
                .then_some(())
            },
        )
        .await?;
    }
    Ok((b.end(traffic, stable.len(), begun).await?, reverts))
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn print_requests(columns: &[(String, FlowResult)]) {
    let keys: BTreeSet<(String, String)> = columns
        .iter()
        .flat_map(|(_, r)| r.requests.keys().cloned())
        .collect();
    let per = |r: &FlowResult, n: u64| format!("{:.2}", n as f64 / r.rollouts as f64);
    print!("  {:<34}", "per rollout");
    for (title, _) in columns {
        print!(" {title:>20}");
    }
    println!();
    let row = |label: &str, value: &dyn Fn(&FlowResult) -> String| {
        print!("  {label:<34}");
        for (_, r) in columns {
            print!(" {:>20}", value(r));
        }
        println!();
    };
    for (verb, resource) in &keys {
        row(&format!("{verb} {resource}"), &|r| {
            per(
                r,
                r.requests
                    .get(&(verb.clone(), resource.clone()))
                    .copied()
                    .unwrap_or(0),
            )
        });
    }
    row("get / list / watch", &|r| {
        let v = by_verb(&r.requests);
        let n = |verb: &str| v.get(verb).copied().unwrap_or(0);
        format!(
            "{} / {} / {}",
            per(r, n("get")),
            per(r, n("list")),
            per(r, n("watch"))
        )
    });
    row("TOTAL", &|r| per(r, support::total(&r.requests)));
    row("  of which Events", &|r| {
        per(r, on_resource(&r.requests, "events"))
    });
    row("  object writes", &|r| {
        let writes = support::writes(&r.requests) - on_resource(&r.requests, "events");
        per(r, writes)
    });
    row("  reads", &|r| {
        per(
            r,
            r.requests
                .iter()
                .filter(|((v, _), _)| is_read(v))
                .map(|(_, n)| n)
                .sum(),
        )
    });
    row("reconciles", &|r| per(r, r.reconciles));
    row("wall s (all rollouts, sequential)", &|r| {
        format!("{:.1}", r.wall.as_secs_f64())
    });
    for (title, r) in columns {
        println!(
            "  Events on the first Rollout, {title}: {}",
            r.first_events.join(", ")
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn spread(values: impl Iterator<Item = f64>) -> String {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    format!(
        "{:.1} / {:.1} / {:.1} / {:.1}",
        v.first().copied().unwrap_or(f64::NAN),
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        v.last().copied().unwrap_or(f64::NAN)
    )
}

/// "1 ×20" style histogram of small counts.
fn histogram(values: impl Iterator<Item = u64>) -> String {
    let mut h: BTreeMap<u64, usize> = BTreeMap::new();
    for v in values {
        *h.entry(v).or_insert(0) += 1;
    }
    h.iter()
        .map(|(v, n)| format!("{v} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_reverts(groups: &[(Traffic, Vec<Revert>)]) {
    print!("  {:<44}", "");
    for (t, r) in groups {
        print!(" {:>30}", format!("{} ({} rollouts)", t.label(), r.len()));
    }
    println!();
    let row = |label: &str, value: &dyn Fn(&[Revert]) -> String| {
        print!("  {label:<44}");
        for (_, r) in groups {
            print!(" {:>30}", value(r));
        }
        println!();
    };
    row("ms, verdict write returned → traffic back", &|r| {
        spread(r.iter().map(|x| x.from_return_ms))
    });
    row("ms, verdict in store → traffic back", &|r| {
        spread(r.iter().map(|x| ms(x.from_commit)))
    });
    row("reconciles started, verdict → revert", &|r| {
        histogram(r.iter().map(|x| x.reconciles))
    });
    row("operator writes before the revert", &|r| {
        histogram(r.iter().map(|x| x.writes_before.len() as u64))
    });
    row("revert seen before the verdict's response", &|r| {
        r.iter()
            .filter(|x| x.from_return_ms < 0.0)
            .count()
            .to_string()
    });
    for (t, reverts) in groups {
        for (i, x) in reverts.iter().enumerate() {
            if !x.writes_before.is_empty() {
                println!(
                    "    {} {}: written before the revert: {}",
                    t.label(),
                    t.name(i),
                    x.writes_before.join(", ")
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

struct Args {
    rollouts: usize,
    route: bool,
}

fn parse_args() -> Result<Args, BoxError> {
    let mut args = Args {
        rollouts: 20,
        route: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rollouts" => {
                args.rollouts = it.next().ok_or("--rollouts needs a value")?.parse()?;
            }
            "--no-route" => args.route = false,
            "-h" | "--help" => {
                println!("bench_canary [--rollouts N (20, per group)] [--no-route]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    if args.rollouts == 0 || args.rollouts > 999 {
        return Err("--rollouts must be 1..=999".into());
    }
    Ok(args)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let args = parse_args()?;
    let n = args.rollouts;
    let (sandbox, client) = support::start_sandbox(SandboxConfig {
        pod_ready_after: POD_READY_AFTER,
        ..SandboxConfig::default()
    })
    .await?;
    let config = ControllerConfig {
        canary_analysis: false,
        ..ControllerConfig::default()
    };
    let metrics = config.metrics.clone();
    let store = sandbox.store();
    let lagged = Arc::new(AtomicU64::new(0));
    let (events, observer) = spawn_observer(&store, metrics.clone(), lagged.clone());
    let operator = Operator::start(client.clone(), config);
    let mut bench = Bench {
        client,
        store,
        counts: sandbox.request_counts(),
        metrics,
        events,
        rs_shape: HashMap::new(),
        event_reasons: Vec::new(),
    };

    let groups: Vec<Traffic> = if args.route {
        vec![Traffic::Selector, Traffic::Route]
    } else {
        vec![Traffic::Selector]
    };
    let started = Instant::now();
    let mut columns = Vec::new();
    let mut reverts = Vec::new();
    for &traffic in &groups {
        let mut stable = create_group(&mut bench, traffic, n).await?;
        let passed = flow_passed(&mut bench, traffic, &mut stable).await?;
        let (failed, times) = flow_failed(&mut bench, traffic, &stable).await?;
        columns.push((format!("{} Passed", traffic.label()), passed));
        columns.push((format!("{} Failed", traffic.label()), failed));
        reverts.push((traffic, times));
    }
    let wall = started.elapsed();
    operator.stop().await?;
    observer.abort();

    println!(
        "bench_canary: {n} Rollouts per traffic mechanism, replicas 1, canary 1 + baseline 1, \
         scaleDownDelay 1s; in-process sandbox (a SIMULATOR, pods ready after {POD_READY_AFTER:?}); \
         operator in-process, CanaryAnalysis controller off (the benchmark writes the verdicts); \
         {:.0} s wall",
        wall.as_secs_f64()
    );
    println!();
    println!(
        "API requests per canary-gated rollout, operator only: sandbox counters minus the \
         benchmark's own ({} per rollout: 1 patch rollouts, 1 patch canaryanalyses/status); \
         the benchmark reads the store in-process (not counted).",
        OURS_PER_ROLLOUT.len()
    );
    println!(
        "Passed = verdict Passed → full fleet → switch → Healthy → old fleet scaled to 0; \
         Failed = verdict Failed → traffic back on stable, canary + baseline deleted, Degraded."
    );
    print_requests(&columns);
    println!();
    println!(
        "Failed verdict → traffic back on stable (Service selector names the stable hash again / \
         route all on the active Service), seen through a store subscription; \
         ms min / median / p90 / max:"
    );
    print_reverts(&reverts);
    let lost = lagged.load(Ordering::Relaxed);
    if lost > 0 {
        println!("WARNING: the store observer lagged and lost {lost} events: timings are suspect");
    }
    sandbox.shutdown().await;
    Ok(())
}
