//! The Rollout controller: kube-runtime's `Controller` over Rollouts, reading
//! children from reflector caches and writing through [`super::apply`].
//!
//! - Watches Rollouts, the ReplicaSets carrying the pod-template-hash label
//!   (and only those), and Services; a Service event wakes only the Rollouts
//!   naming it; CanaryAnalysisTemplates likewise wake the Rollouts naming
//!   them. managedFields (and a Service's last-applied copy) are stripped
//!   before objects are cached.
//! - Deployments are watched for `workloadRef`: an event wakes the Rollouts
//!   referencing the Deployment.
//! - HTTPRoutes (gateway.networking.k8s.io/v1) are watched too when the API
//!   serves them at startup ([`http_routes_served`]); a route event wakes the
//!   Rollouts whose `trafficRouting.httpRoute` names it. When it was not
//!   served (Gateway API absent, or installed after the operator started),
//!   a routed Rollout's reconcile reads its route from the API instead, one
//!   GET per reconcile, and a restart of the operator starts the watch.
//! - No plan before every cache (Rollouts, ReplicaSets, Services,
//!   CanaryAnalyses, templates, routes when watched) has completed its first
//!   list: kube's `Controller` only waits for the Rollout store.
//! - A reconcile is `observe → plan → apply`, from the caches, with no memory
//!   of progress (it lives in the Rollout's status and on its children). A
//!   plan that is a no-op makes no request at all; a plan that acts is first
//!   checked against the active Service read from the API (one GET; planned
//!   again if the cache was behind), and a routed Rollout without a route
//!   watch reads its route.
//! - After writing, a reconcile waits (briefly, in memory) until the caches
//!   reflect its writes, so the next plan never acts on a stale world.
//! - Requeue: the plan's timer (deadline, scale-down), else a slow resync as a
//!   safety net against missed watch events. Failures back off exponentially
//!   per Rollout (`runtime::backoff`, 1 s doubling to 5 min).
//! - The run loop, Events, metrics and backoff are the shared `runtime`'s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::api::DynamicObject;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ReflectHandle, Store};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::api::analysis_template::CanaryAnalysisTemplate;
use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{POD_TEMPLATE_HASH_LABEL, ROLLOUT_LABEL, Rollout};
use crate::rollout::apply::{self, ApplyError};
use crate::rollout::index::{Indexes, RefIndex};
use crate::rollout::metrics;
use crate::rollout::observe::{self, Before, Caches, Referrers, Synced};
use crate::rollout::plan;
use crate::runtime::backoff::ErrorBackoff;
use crate::runtime::events::{EventPublisher, PlannedEvent};
use crate::runtime::metrics::{ErrorKind, ReconcileGuard, count_writes};
use crate::runtime::packed::{Packed, UnpackError};
use crate::runtime::run::{self, scoped_api as api};
use crate::runtime::watch_backoff::watch_backoff;
use crate::runtime::watch_refusals::WatchRefusals;
use crate::web::metrics::OperatorMetrics;

/// The `controller` label of this controller's metrics.
pub const ROLLOUT_CONTROLLER_NAME: &str = "rollout";
/// `reportingController` of the Events it records.
pub const REPORTING_CONTROLLER: &str = "redblack.io/rollout-controller";
/// The first retry after a failed reconcile; it doubles per failure…
pub const ERROR_BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// …up to this.
pub const ERROR_BACKOFF_CAP: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch one namespace; None = all namespaces.
    pub namespace: Option<String>,
    /// Rollouts reconciled at once.
    pub concurrency: u16,
    /// Re-plan an idle Rollout this often (a safety net; a no-op plan makes no
    /// API request).
    pub resync: Duration,
    /// How long a reconcile waits for its caches to reflect its own writes.
    pub cache_wait: Duration,
    /// `reportingInstance` of Events (e.g. the pod name).
    pub instance: Option<String>,
    /// Watch HTTPRoutes (set when the API serves them, [`http_routes_served`]);
    /// false reads a routed Rollout's route from the API on every reconcile.
    pub watch_http_routes: bool,
    /// The operator's own object (its Pod), on which a refused Rollout watch
    /// is recorded as a Warning Event (there is no Rollout to record it on).
    pub operator: Option<ObjectReference>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            concurrency: 8,
            resync: Duration::from_secs(30 * 60),
            cache_wait: Duration::from_secs(5),
            instance: None,
            watch_http_routes: false,
            operator: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutReconcileError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A write failed after others of the same plan succeeded: progress was
    /// made, so the retry is not paced as if the Rollout were stuck.
    #[error("{error} (after {written} successful write(s) of the plan)")]
    AfterProgress {
        #[source]
        error: ApplyError,
        written: usize,
    },
    /// A cached object that does not unpack (a bug): no plan is made from
    /// a partial view of the Rollout's world.
    #[error(transparent)]
    Cache(#[from] UnpackError),
}

impl ErrorKind for RolloutReconcileError {
    fn kind(&self) -> &'static str {
        match self {
            RolloutReconcileError::Apply(e)
            | RolloutReconcileError::AfterProgress { error: e, .. } => e.kind(),
            RolloutReconcileError::Cache(_) => "cache",
        }
    }
}

/// Shared by every reconcile.
pub struct RolloutContext {
    pub client: Client,
    pub caches: Caches,
    pub metrics: OperatorMetrics,
    pub settings: Settings,
    events: EventPublisher,
    /// Watches the API refuses (403): reported on the Rollouts while the
    /// caches cannot sync.
    refusals: WatchRefusals,
    /// Paces retries per Rollout (progress never lives here).
    backoff: ErrorBackoff,
}

/// A built, not yet running, controller and its caches.
pub struct RolloutController {
    controller: Controller<Packed<Rollout>>,
    caches: Caches,
    client: Client,
    settings: Settings,
    refusals: WatchRefusals,
    /// The Rollout cache's subscription, until the notifier takes it
    /// ([`RolloutController::share_rollouts`]); dropped by `run` otherwise.
    shared: Option<SharedRollouts>,
}

/// The Rollout cache and a stream of its changes, for another controller in
/// the same process (the notifier), so that every Rollout is cached once.
pub struct SharedRollouts {
    pub store: Store<Packed<Rollout>>,
    pub changes: ReflectHandle<Packed<Rollout>>,
}

/// Rollout changes buffered for a sharing controller before the watch waits
/// for it (it moves them into its own queue at once).
const SHARED_BUFFER: usize = 1024;

impl RolloutController {
    pub fn new(client: Client, settings: Settings) -> RolloutController {
        let ns = settings.namespace.as_deref();
        // Bits 0–5 below; 6 is the route cache, awaited only when it runs.
        let synced = Synced::new(if settings.watch_http_routes { 7 } else { 6 });
        let refusals = WatchRefusals::default();
        let operator_alert = settings.operator.clone().map(|reference| {
            let publisher = EventPublisher::new(client.clone(), reporter(&settings), "Watch");
            (publisher, reference)
        });

        // Kept from the same events as the caches (see `index`).
        let index = Indexes::default();
        // Rollouts, ReplicaSets and Services are cached packed (their JSON,
        // see `Packed`): one or more of each per Rollout.
        let (rollouts, rollout_writer) = reflector::store_shared::<Packed<Rollout>>(SHARED_BUFFER);
        let shared = rollout_writer.subscribe().map(|changes| SharedRollouts {
            store: rollouts.clone(),
            changes,
        });
        let rollout_events = watcher(
            api::<Packed<Rollout>>(&client, ns),
            watcher::Config::default(),
        )
        .backoff(watch_backoff())
        .inspect(track(&refusals, "rollouts.redblack.io", operator_alert))
        .inspect_ok(index_before(&index.rollouts))
        .reflect_shared(rollout_writer)
        .inspect_ok(index_after(&index.rollouts))
        .inspect_ok(mark_synced(&synced, 0))
        .applied_objects();

        // Only labelled children: never the cluster's other ReplicaSets.
        let (replica_sets, rs_writer) = reflector::store::<Packed<ReplicaSet>>();
        let rs_events = watcher(
            api::<Packed<ReplicaSet>>(&client, ns),
            watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL),
        )
        .backoff(watch_backoff())
        .inspect(track(&refusals, "replicasets.apps", None))
        .inspect_ok(index_before(&index.replica_sets))
        .reflect(rs_writer)
        .inspect_ok(index_after(&index.replica_sets))
        .inspect_ok(mark_synced(&synced, 1))
        .touched_objects();

        let (services, svc_writer) = reflector::store::<Packed<Service>>();
        let svc_events = watcher(
            api::<Packed<Service>>(&client, ns),
            watcher::Config::default(),
        )
        .backoff(watch_backoff())
        .inspect(track(&refusals, "services", None))
        .reflect(svc_writer)
        .inspect_ok(mark_synced(&synced, 2))
        .touched_objects();

        // CanaryAnalyses the planner created (labelled, owned by a Rollout).
        let (analyses, analysis_writer) = reflector::store::<CanaryAnalysis>();
        let analysis_events = watcher(
            api::<CanaryAnalysis>(&client, ns),
            watcher::Config::default().labels(ROLLOUT_LABEL),
        )
        .backoff(watch_backoff())
        .inspect(track(&refusals, "canaryanalyses.redblack.io", None))
        .modify(observe::strip_managed_fields)
        .inspect_ok(index_before(&index.analyses))
        .reflect(analysis_writer)
        .inspect_ok(index_after(&index.analyses))
        .inspect_ok(mark_synced(&synced, 3))
        .touched_objects();

        // CanaryAnalysisTemplates: read when an analysis is created from one; an
        // event wakes the Rollouts naming it (e.g. one held for its template).
        let (templates, template_writer) = reflector::store::<CanaryAnalysisTemplate>();
        let template_events = watcher(
            api::<CanaryAnalysisTemplate>(&client, ns),
            watcher::Config::default(),
        )
        .backoff(watch_backoff())
        .inspect(track(
            &refusals,
            "canaryanalysistemplates.redblack.io",
            None,
        ))
        .modify(observe::strip_managed_fields)
        .reflect(template_writer)
        .inspect_ok(mark_synced(&synced, 4))
        .touched_objects();

        let referrers = Referrers {
            rollouts: rollouts.clone(),
            index: index.rollouts.clone(),
        };
        let naming = referrers.clone();
        let using = referrers.clone();
        // Deployments: a workloadRef's template; an event wakes the Rollouts
        // referencing it (a new template is a new revision; a created one
        // ends a WorkloadMissing).
        let (deployments, deployment_writer) = reflector::store::<Deployment>();
        let deployment_events = watcher(api::<Deployment>(&client, ns), watcher::Config::default())
            .backoff(watch_backoff())
            .inspect(track(&refusals, "deployments.apps", None))
            .modify(observe::strip_deployment)
            .reflect(deployment_writer)
            .inspect_ok(mark_synced(&synced, 5))
            .touched_objects();
        let referencing = referrers.clone();
        let controller = Controller::for_stream(rollout_events, rollouts.clone())
            .owns_stream(rs_events)
            .owns_stream(analysis_events)
            .watches_stream(svc_events, move |svc: Packed<Service>| {
                observe::rollouts_naming(&naming, &svc)
            })
            .watches_stream(template_events, move |template: CanaryAnalysisTemplate| {
                observe::rollouts_using_template(&using, &template)
            })
            .watches_stream(deployment_events, move |deployment: Deployment| {
                observe::rollouts_referencing(&referencing, &deployment)
            });

        // HTTPRoutes, stripped to their rules: an event wakes the Rollouts
        // routing through it (our own weight writes included, which re-plan
        // to a no-op).
        let (controller, routes) = if settings.watch_http_routes {
            let resource = apply::http_route_resource();
            let writer = reflector::store::Writer::<DynamicObject>::new(resource.clone());
            let routes = writer.as_reader();
            let api = match ns {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let route_events = watcher(api, watcher::Config::default())
                .backoff(watch_backoff())
                .inspect(track(
                    &refusals,
                    "httproutes.gateway.networking.k8s.io",
                    None,
                ))
                .modify(observe::strip_route)
                .reflect(writer)
                .inspect_ok(mark_synced(&synced, 6))
                .touched_objects();
            let routed = referrers.clone();
            let controller = controller.watches_stream_with(
                route_events,
                move |route: DynamicObject| observe::rollouts_routed_by(&routed, &route),
                resource,
            );
            (controller, Some(routes))
        } else {
            (controller, None)
        };
        RolloutController {
            controller,
            caches: Caches {
                rollouts,
                replica_sets,
                services,
                analyses,
                templates,
                deployments,
                routes,
                synced,
                index,
            },
            client,
            settings,
            refusals,
            shared,
        }
    }

    pub fn caches(&self) -> Caches {
        self.caches.clone()
    }

    /// The Rollout cache and its changes for the notifier (once). A
    /// subscription nobody polls would hold the Rollout watch once its
    /// buffer fills, so one not taken is dropped when the controller runs.
    pub fn share_rollouts(&mut self) -> Option<SharedRollouts> {
        self.shared.take()
    }

    /// Runs until `shutdown` resolves (in-flight reconciles finish first).
    pub async fn run(
        mut self,
        metrics: OperatorMetrics,
        shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    ) {
        drop(self.shared.take());
        let reporter = reporter(&self.settings);
        let concurrency = self.settings.concurrency;
        // Per-Rollout state is read from these caches at each scrape.
        metrics
            .rollouts
            .set_state_collector(Box::new(metrics::state::StateCollector::new(
                self.caches.rollouts.clone(),
                self.caches.analyses.clone(),
            )));
        let ctx = Arc::new(RolloutContext {
            events: EventPublisher::new(self.client.clone(), reporter, "Reconcile"),
            client: self.client,
            caches: self.caches,
            refusals: self.refusals,
            metrics,
            settings: self.settings,
            backoff: ErrorBackoff::new(ERROR_BACKOFF_FIRST, ERROR_BACKOFF_CAP),
        });
        run::run(
            self.controller,
            ROLLOUT_CONTROLLER_NAME,
            concurrency,
            shutdown,
            reconcile,
            error_policy,
            ctx,
        )
        .await;
    }
}

/// True when `resources` (the discovery of gateway.networking.k8s.io/v1)
/// serves HTTPRoutes with the verbs a watch needs.
pub fn serves_http_routes(resources: &APIResourceList) -> bool {
    resources.resources.iter().any(|r| {
        r.name == apply::HTTP_ROUTE_PLURAL
            && ["list", "watch"]
                .iter()
                .all(|verb| r.verbs.iter().any(|v| v == verb))
    })
}

/// Asks the API (discovery) whether it serves HTTPRoutes, to decide at
/// startup whether to watch them. Any failure answers false: routes are then
/// read per reconcile, which is correct, only costlier.
pub async fn http_routes_served(client: &Client) -> bool {
    let group_version = format!("{}/{}", apply::GATEWAY_GROUP, apply::GATEWAY_VERSION);
    match client.list_api_group_resources(&group_version).await {
        Ok(resources) => {
            let served = serves_http_routes(&resources);
            if !served {
                info!(%group_version, "HTTPRoutes are not served; routes are read per reconcile (restart the operator after installing the Gateway API)");
            }
            served
        }
        Err(kube::Error::Api(status)) if status.code == 404 => {
            info!(%group_version, "the Gateway API is not served; routes are read per reconcile (restart the operator after installing it)");
            false
        }
        Err(e) => {
            warn!(%group_version, error = %e, "cannot discover HTTPRoutes; routes are read per reconcile");
            false
        }
    }
}

fn reporter(settings: &Settings) -> Reporter {
    Reporter {
        controller: REPORTING_CONTROLLER.to_owned(),
        instance: settings.instance.clone(),
    }
}

/// Records the refusals of the watch of `what` (and clears them once it
/// lists again); a new refusal is also announced on `alert`'s object.
fn track<K>(
    refusals: &WatchRefusals,
    what: &'static str,
    alert: Option<(EventPublisher, ObjectReference)>,
) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
    let refusals = refusals.clone();
    move |item| match item {
        Ok(watcher::Event::InitDone) => refusals.succeeded(what),
        Ok(_) => {}
        Err(error) => {
            let Some(message) = refusals.failed(what, error) else {
                return;
            };
            warn!(%what, %message, "the API refuses a watch; the caches cannot sync");
            if let Some((publisher, reference)) = alert.clone() {
                let event = PlannedEvent::warning(
                    "WatchRefused",
                    format!("the API refused listing and watching {what}: {message}"),
                );
                tokio::spawn(async move { publisher.publish(&reference, &[event]).await });
            }
        }
    }
}

/// Files a watch event's additions in `index` before the reflector applies it.
fn index_before<K: kube::Resource>(index: &RefIndex<K>) -> impl FnMut(&watcher::Event<K>) + use<K> {
    let index = index.clone();
    move |event| index.before(event)
}

/// Drops a watch event's removals from `index` after the reflector applied it.
fn index_after<K: kube::Resource>(index: &RefIndex<K>) -> impl FnMut(&watcher::Event<K>) + use<K> {
    let index = index.clone();
    move |event| index.after(event)
}

/// Marks cache `bit` synced when its watcher completes a list.
fn mark_synced<K>(synced: &Synced, bit: u8) -> impl FnMut(&watcher::Event<K>) + use<K> {
    let synced = synced.clone();
    move |event| {
        if matches!(event, watcher::Event::InitDone) {
            synced.mark(bit);
        }
    }
}

/// How long a reconcile waits for unsynced caches before it requeues itself.
const CACHE_SYNC_POLL: Duration = Duration::from_secs(1);
/// How often a Rollout whose controller may not watch a kind is looked at
/// again (the watch itself retries with its own backoff).
const REFUSED_WATCH_RETRY: Duration = Duration::from_secs(10);

/// True once every cache of the controller has completed its first list,
/// waiting at most `wait`.
async fn caches_synced(synced: &Synced, wait: Duration) -> bool {
    synced.is_synced() || tokio::time::timeout(wait, synced.wait()).await == Ok(true)
}

async fn reconcile(
    packed: Arc<Packed<Rollout>>,
    ctx: Arc<RolloutContext>,
) -> Result<Requeue, RolloutReconcileError> {
    let span = info_span!(
        "reconcile",
        rollout = %packed.name_any(),
        namespace = %packed.namespace().unwrap_or_default(),
        generation = packed.meta().generation.unwrap_or(0),
    );
    async move {
        let rollout = packed.unpack()?;
        // kube's Controller holds reconciles until the Rollout store has
        // listed, but not the children's: planning on an empty ReplicaSet or
        // Service cache would see a live fleet missing (a Healthy Rollout
        // written Degraded, its fleet "created" again as revision 1). No plan
        // is made until every cache has listed; the wait is bounded so a
        // shutdown is never held by a cache that cannot list.
        if !caches_synced(&ctx.caches.synced, CACHE_SYNC_POLL).await {
            // A watch the API refuses never syncs: say so on the Rollout.
            if let Some((what, message)) = ctx.refusals.first() {
                let refusal = plan::WriteRefusal {
                    what: format!("listing and watching {what}"),
                    code: 403,
                    reason: "Forbidden".into(),
                    message,
                };
                let observed = observe::observe(&rollout, &ctx.caches)?;
                report_refused(&ctx, &rollout, &observed, &refusal, Utc::now()).await;
                return Ok(Requeue::requeue(REFUSED_WATCH_RETRY));
            }
            debug!("caches not synced yet; the plan waits");
            return Ok(Requeue::requeue(CACHE_SYNC_POLL));
        }
        let guard = ReconcileGuard::start(Some(&ctx.metrics), ROLLOUT_CONTROLLER_NAME);
        ctx.metrics
            .rollouts
            .touch_rollout_namespace(&rollout.namespace().unwrap_or_default());
        let result = reconcile_inner(&rollout, &ctx).await;
        guard.outcome(&result);
        if result.is_ok() {
            ctx.backoff.succeeded(&backoff_key(&rollout));
        }
        result
    }
    .instrument(span)
    .await
}

async fn reconcile_inner(
    rollout: &Rollout,
    ctx: &RolloutContext,
) -> Result<Requeue, RolloutReconcileError> {
    if rollout.metadata.deletion_timestamp.is_some() {
        // Garbage collection removes the children through their owner references.
        return Ok(Requeue::await_change());
    }
    // The route from the cache; without a route watch, from the API.
    let route = match (
        rollout.spec.http_route_name(),
        observe::cached_route(&ctx.caches, rollout),
    ) {
        (None, _) => None,
        (Some(_), Some(cached)) => cached,
        (Some(name), None) => {
            let ns = rollout.namespace().unwrap_or_default();
            apply::read_route(&ctx.client, &ns, name).await?
        }
    };
    let mut observed = observe::observe_with_route(
        rollout,
        &ctx.caches,
        route.as_ref().map(apply::route_observation),
    )?;
    observed.events_refused = ctx.events.refusal(&rollout.object_ref(&()));
    let now = Utc::now();
    // A restart's pod list refused for good (RBAC) is reported as a refused
    // write is: a condition and a Warning Event quoting the API.
    observed.pods = match apply::read_pods(
        &ctx.client,
        rollout,
        observed.workload.as_ref().map(|w| &w.selector),
    )
    .await
    {
        Ok(pods) => pods,
        Err(error) => {
            if let Some(refusal) = error.refusal() {
                report_refused(ctx, rollout, &observed, &refusal, now).await;
            }
            return Err(error.into());
        }
    };
    // Gates: the Jobs are read (not watched) while a Job gate runs; the HTTP
    // attempts the planner says are due are made now.
    observed.jobs = match crate::rollout::gates_io::read_jobs(&ctx.client, rollout).await {
        Ok(jobs) => jobs,
        Err(error) => {
            if let Some(refusal) = error.refusal() {
                report_refused(ctx, rollout, &observed, &refusal, now).await;
            }
            return Err(error.into());
        }
    };
    observed.http_checks = crate::rollout::gates_io::run_http(&plan::http_due(rollout, now)).await;
    let mut plan = plan(rollout, &observed, now);
    let requeue = Requeue::requeue(plan.requeue_after.unwrap_or(ctx.settings.resync));
    if plan.is_noop(rollout.status.as_ref()) {
        debug!(state = ?plan.state, "nothing to do");
        return Ok(requeue);
    }
    // A plan that acts is made from the active Service as the API has it now:
    // the selector says which fleet is live, and a cache behind it (watches
    // cut, relists failing) once made a plan treat the live fleet as an old
    // one and scale it to zero. One GET per acting reconcile; idle Rollouts
    // make none.
    let fresh = read_active_service(ctx, rollout).await?;
    if resource_version(fresh.as_ref()) != resource_version(observed.active_service.as_ref()) {
        debug!("the cached active Service was behind the API; planning again");
        observed.active_service = fresh;
        plan = plan::plan(rollout, &observed, now);
        if plan.is_noop(rollout.status.as_ref()) {
            return Ok(requeue);
        }
    }
    info!(state = ?plan.state, actions = plan.actions.len(), "applying plan");
    let before = Before::capture(&observed).with_route(route.as_ref());
    let applied = match apply::apply_plan(&ctx.client, rollout, &plan, route.as_ref()).await {
        // The API refused the analysis: the planner decides what that means
        // (the canary held without traffic, a condition, one Event) from the
        // same world plus the refusal. Its plan creates no analysis, so this
        // happens at most once per reconcile; the writes the first plan made
        // before the refusal are idempotent and re-planned as needed.
        Err(apply::Partial {
            error: ApplyError::AnalysisRefused { name, message, .. },
            written: before_refusal,
        }) => {
            warn!(analysis = %name, %message, "the API refused to create the CanaryAnalysis; the canary is held");
            let observed = plan::Observed {
                refused: Some(plan::Refusal {
                    analysis: name,
                    message,
                }),
                ..observed.clone()
            };
            plan = plan::plan(rollout, &observed, now);
            match apply::apply_plan(&ctx.client, rollout, &plan, route.as_ref()).await {
                Ok(written) => Ok(written),
                Err(mut partial) => {
                    partial.written.extend(before_refusal);
                    Err(partial)
                }
            }
        }
        // The API refused deleting an old analysis: the planner records it
        // in a condition (one Event) from the same world plus the refusal,
        // and prunes nothing in that plan; a transient failure backs off.
        Err(apply::Partial {
            error: ApplyError::Prune { name, source },
            written: before_refusal,
        }) if prune_refusal(&source).is_some() => {
            let message = prune_refusal(&source).unwrap_or_default();
            warn!(analysis = %name, %message, "the API refused deleting a finished CanaryAnalysis");
            let observed = plan::Observed {
                prune_refused: Some(format!(
                    "the API refused deleting CanaryAnalysis {name} {message}"
                )),
                ..observed.clone()
            };
            plan = plan::plan(rollout, &observed, now);
            match apply::apply_plan(&ctx.client, rollout, &plan, route.as_ref()).await {
                Ok(mut written) => {
                    written.extend(before_refusal);
                    Ok(written)
                }
                Err(mut partial) => {
                    partial.written.extend(before_refusal);
                    Err(partial)
                }
            }
        }
        other => other,
    };
    let written = match applied {
        Ok(written) => written,
        Err(apply::Partial { written, error }) => {
            count_writes(
                Some(&ctx.metrics),
                ROLLOUT_CONTROLLER_NAME,
                written.len() as u64,
            );
            // The retry must plan from a world that has the writes that did
            // succeed (a switch made before a failed scale, say): a plan from
            // caches behind them could act on a Service selector it already
            // changed.
            if !written.is_empty() {
                let before = Before::capture(&observed).with_route(route.as_ref());
                observe::wait_for_caches(
                    &ctx.caches,
                    rollout,
                    &written,
                    &before,
                    ctx.settings.cache_wait,
                )
                .await;
            }
            let refusal = error.refusal();
            if let Some(refusal) = &refusal {
                report_refused(ctx, rollout, &observed, refusal, now).await;
            }
            // A refusal repeats on every retry, however many idempotent
            // writes precede it: only a transient failure counts progress.
            return Err(if written.is_empty() || refusal.is_some() {
                RolloutReconcileError::Apply(error)
            } else {
                RolloutReconcileError::AfterProgress {
                    error,
                    written: written.len(),
                }
            });
        }
    };
    count_writes(
        Some(&ctx.metrics),
        ROLLOUT_CONTROLLER_NAME,
        written.len() as u64,
    );
    // Counted by the reconcile that wrote the transition, like its Events.
    metrics::record_written(
        &ctx.metrics,
        &ctx.caches.analyses,
        rollout,
        &plan.status,
        now,
    );
    // One Event per transition: only a plan whose writes all succeeded
    // (its status, which records the transition, included) is announced; a
    // failed plan is re-made and re-announced by the retry, and the next
    // plan, made once the caches reflect these writes (below), finds the
    // transition done and says nothing.
    ctx.events
        .publish(&rollout.object_ref(&()), &plan.events)
        .await;
    if !observe::wait_for_caches(
        &ctx.caches,
        rollout,
        &written,
        &before,
        ctx.settings.cache_wait,
    )
    .await
    {
        debug!("caches did not reflect the writes in time; the next plan re-checks");
    }
    Ok(requeue)
}

/// `(403 Forbidden): <the API's message>` when `source` is a refusal a retry
/// cannot overcome (`apply::refused`); None for a transient failure.
fn prune_refusal(source: &kube::Error) -> Option<String> {
    match source {
        kube::Error::Api(status) if apply::refused(status.code) => Some(format!(
            "({} {}): {}",
            status.code, status.reason, status.message
        )),
        _ => None,
    }
}

/// The active Service from the API (None when it does not exist), stripped as
/// the cache strips it.
async fn read_active_service(
    ctx: &RolloutContext,
    rollout: &Rollout,
) -> Result<Option<Service>, ApplyError> {
    let ns = rollout.namespace().unwrap_or_default();
    let name = &rollout.spec.strategy.red_black.active_service;
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let mut service = services
        .get_opt(name)
        .await
        .map_err(|source| ApplyError::Api {
            what: format!("reading Service {name}"),
            source,
        })?;
    if let Some(svc) = service.as_mut() {
        observe::strip_service(svc);
    }
    Ok(service)
}

fn resource_version(service: Option<&Service>) -> Option<String> {
    service.and_then(|s| s.metadata.resource_version.clone())
}

/// A write the API refused for good: the Rollout's conditions say which
/// write and quote the API, with one Warning Event per refusal (not per
/// retry); the caller returns the error, so retries back off. Best effort: if
/// the status cannot be written either, the log and the backoff remain.
async fn report_refused(
    ctx: &RolloutContext,
    rollout: &Rollout,
    observed: &plan::Observed,
    refusal: &plan::WriteRefusal,
    now: chrono::DateTime<Utc>,
) {
    warn!(what = %refusal.what, code = refusal.code, message = %refusal.message, "the API refused a write");
    let (status, events) = plan::plan_refused_write(rollout, refusal, now);
    if rollout.status.as_ref() == Some(&status) {
        return;
    }
    let before = Before::capture(observed);
    match apply::write_status(&ctx.client, rollout, &status).await {
        Ok(written) => {
            count_writes(Some(&ctx.metrics), ROLLOUT_CONTROLLER_NAME, 1);
            ctx.events.publish(&rollout.object_ref(&()), &events).await;
            // The retry must plan from this status, or it would announce the
            // same refusal again.
            observe::wait_for_caches(
                &ctx.caches,
                rollout,
                &[written],
                &before,
                ctx.settings.cache_wait,
            )
            .await;
        }
        Err(e) => {
            // The status write is refused too (e.g. RBAC without
            // rollouts/status): the Event is then the only trace; it
            // repeats with the retries, which back off.
            warn!(error = %e, "cannot record the refused write in the status");
            ctx.events.publish(&rollout.object_ref(&()), &events).await;
        }
    }
}

/// The key of a Rollout's failure count: its uid (a re-created Rollout
/// starts afresh), else its name.
fn backoff_key<K: Resource>(rollout: &K) -> String {
    rollout.uid().unwrap_or_else(|| rollout.name_any())
}

/// Retries with [`ErrorBackoff`]; the error was counted by the reconcile's
/// guard. A failure after some of the plan's writes succeeded starts the
/// backoff afresh: the backoff is for a Rollout that makes no progress, and
/// under a flaky API server (a fifth of requests failing) a plan of four
/// writes fails more often than not while still moving forward — doubling
/// on every such failure held rollouts for minutes.
fn error_policy(
    rollout: Arc<Packed<Rollout>>,
    error: &RolloutReconcileError,
    ctx: Arc<RolloutContext>,
) -> Requeue {
    let key = backoff_key(rollout.as_ref());
    if matches!(error, RolloutReconcileError::AfterProgress { .. }) {
        ctx.backoff.succeeded(&key);
    }
    let (failures, delay) = ctx.backoff.failed(key);
    warn!(
        rollout = %rollout.name_any(),
        namespace = %rollout.namespace().unwrap_or_default(),
        error = %error,
        failures,
        retry_in = ?delay,
        "reconcile failed"
    );
    Requeue::requeue(delay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_1s_and_caps_at_5_minutes() {
        use crate::runtime::backoff::delay;
        let d = |n| delay(ERROR_BACKOFF_FIRST, ERROR_BACKOFF_CAP, n);
        assert_eq!(d(1), Duration::from_secs(1));
        assert_eq!(d(2), Duration::from_secs(2));
        assert_eq!(d(5), Duration::from_secs(16));
        assert_eq!(d(50), Duration::from_secs(300));
    }

    #[test]
    fn http_routes_are_watched_only_when_listed_and_watchable() {
        let list = |resources: serde_json::Value| -> APIResourceList {
            serde_json::from_value(serde_json::json!({
                "kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": "gateway.networking.k8s.io/v1",
                "resources": resources
            }))
            .unwrap()
        };
        let resource = |name: &str, verbs: &[&str]| {
            serde_json::json!({"name": name, "singularName": "", "namespaced": true,
                               "kind": "HTTPRoute", "verbs": verbs})
        };
        let all = [
            "create", "delete", "get", "list", "patch", "update", "watch",
        ];
        assert!(serves_http_routes(&list(serde_json::json!([
            resource("gateways", &all),
            resource("httproutes", &all),
            resource("httproutes/status", &["get", "patch", "update"]),
        ]))));
        assert!(!serves_http_routes(&list(serde_json::json!([]))));
        assert!(!serves_http_routes(&list(serde_json::json!([resource(
            "gateways", &all
        )]))));
        assert!(!serves_http_routes(&list(serde_json::json!([resource(
            "httproutes",
            &["get", "list"]
        )]))));
    }
}
