//! Shell: the notifier, two kube-runtime controllers beside the Rollout
//! controller (never inside its reconcile: a slow or dead endpoint delays
//! only notifications).
//!
//! - Over Rollouts with `spec.notifications`: read the ledger ConfigMap
//!   (one GET: the authority, never a cache), advance it to the Rollout's
//!   status and write it (SSA) BEFORE any delivery; then deliver what is due,
//!   writing the ledger after each 2xx; requeue at the next retry.
//! - Over Notifiers: check the configuration (Secrets included) and keep the
//!   `Ready` condition ([`super::ready`]); re-checked every
//!   [`NotifySettings::recheck`] (Secrets are not watched).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::channel::{self, Channel, ConfigError};
use super::ledger::{Backoff, LEDGER_KEY, Ledger, Pending};
use super::payload::RolloutRef;
use super::ready::{self, Observation};
use super::report::{VerdictReport, report};
use super::trigger::Happening;
use super::{deliver, secrets, subscriptions};
use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::conditions::{self, READY};
use crate::api::notifier::{Notifier, Trigger};
use crate::api::{Rollout, k8s_names};
use crate::runtime::events::{EventPublisher, PlannedEvent};
use crate::runtime::field_manager::NOTIFIER_FIELD_MANAGER;
use crate::runtime::run::{self, scoped_api};
use crate::runtime::watch_backoff::watch_backoff;
use crate::web::metrics::{NotificationLabels, OperatorMetrics};

/// The `controller` label of the notifier's reconciles.
pub const NOTIFIER_CONTROLLER_NAME: &str = "notifier";
pub const REPORTING_CONTROLLER: &str = "redblack.io/notifier";
/// Label on every ledger ConfigMap.
pub const LEDGER_LABEL: &str = "redblack.io/notification-ledger";
/// Deliveries tried per reconcile; more due ones requeue at once.
const DELIVERIES_PER_RECONCILE: usize = 10;

#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// Run the notifier at all.
    pub enabled: bool,
    /// The retry schedule of a failed delivery.
    pub backoff: Backoff,
    /// Per request.
    pub timeout: Duration,
    /// Rollouts (and Notifiers) handled at once.
    pub concurrency: u16,
    /// How often a Notifier's configuration is checked again.
    pub recheck: Duration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            enabled: true,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(10),
            concurrency: 4,
            recheck: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("reading or writing the notification ledger {name}")]
    Ledger {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("writing the status of Notifier {name}")]
    NotifierStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

struct Ctx {
    client: Client,
    settings: NotifySettings,
    metrics: OperatorMetrics,
    events: EventPublisher,
    http: reqwest::Client,
    /// Every Notifier (for the namespace-wide default subscriptions).
    notifiers: Store<Notifier>,
    /// The last ledger failure announced per Rollout (`namespace/name`), so
    /// that a failure retried every few seconds is one Event, not one per
    /// retry; removed at the next success (bounded by the Rollouts failing).
    ledger_failures: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// The name of a Rollout's ledger ConfigMap.
pub fn ledger_name(rollout: &str) -> String {
    k8s_names::fit(
        rollout,
        "-notifications",
        253,
        false,
        k8s_names::is_dns1123_subdomain,
    )
}

/// Runs both controllers until `shutdown`.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: NotifySettings,
    metrics: OperatorMetrics,
    shutdown: impl std::future::Future<Output = ()> + Clone + Send + Sync + 'static,
) -> Result<(), NotifyError> {
    let http = deliver::client(settings.timeout).map_err(NotifyError::Http)?;
    let reporter = Reporter {
        controller: REPORTING_CONTROLLER.into(),
        instance: crate::runtime::events::reporting_instance(),
    };
    let ns = namespace.as_deref();
    // The Notifier cache of the default subscriptions; each change of a
    // Notifier re-examines every Rollout (cheap: a Rollout nothing
    // subscribes is left at once), so that a new default subscription
    // starts its Rollouts' ledgers at once.
    let (notifiers, writer) = reflector::store();
    let (tx, rx) = futures::channel::mpsc::channel::<()>(1);
    let notifier_watch = reflector(
        writer,
        watcher(
            scoped_api::<Notifier>(&client, ns),
            watcher::Config::default(),
        )
        .backoff(watch_backoff()),
    )
    .applied_objects()
    // Spec changes only: the Notifier's own status writes (Ready) must not
    // re-examine every Rollout.
    .predicate_filter(kube::runtime::predicates::generation, Default::default());
    let feed = tokio::spawn(async move {
        let mut tx = tx;
        let mut stream = std::pin::pin!(notifier_watch);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::debug!(error = %e, "Notifier watch");
                continue;
            }
            // Full: a re-examination is already due.
            let _ = tx.try_send(());
        }
    });
    let ctx = Arc::new(Ctx {
        notifiers: notifiers.clone(),
        events: EventPublisher::new(client.clone(), reporter, "Notify"),
        client: client.clone(),
        settings: settings.clone(),
        metrics,
        http,
        ledger_failures: Default::default(),
    });
    let rollouts = Controller::new(
        scoped_api::<Rollout>(&client, ns),
        watcher::Config::default(),
    )
    .reconcile_all_on(rx);
    let notifiers = Controller::new(
        scoped_api::<Notifier>(&client, ns),
        watcher::Config::default(),
    );
    let concurrency = settings.concurrency.max(1);
    tokio::join!(
        run::run(
            rollouts,
            NOTIFIER_CONTROLLER_NAME,
            concurrency,
            shutdown.clone(),
            reconcile_rollout,
            error_policy,
            ctx.clone(),
        ),
        run::run(
            notifiers,
            "notifier-status",
            concurrency,
            shutdown,
            reconcile_notifier,
            |_, e: &NotifyError, _| {
                tracing::warn!(error = %e, "notifier status");
                Action::requeue(Duration::from_secs(5))
            },
            ctx,
        ),
    );
    feed.abort();
    Ok(())
}

fn error_policy(rollout: Arc<Rollout>, error: &NotifyError, _: Arc<Ctx>) -> Action {
    tracing::warn!(rollout = %rollout.name_any(), error = %error, "notifications: retrying");
    Action::requeue(Duration::from_secs(2))
}

async fn reconcile_rollout(rollout: Arc<Rollout>, ctx: Arc<Ctx>) -> Result<Action, NotifyError> {
    let outcome = advance_and_deliver(&rollout, &ctx).await;
    let key = format!(
        "{}/{}",
        rollout.namespace().unwrap_or_default(),
        rollout.name_any()
    );
    let announce = {
        let mut failures = ctx
            .ledger_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &outcome {
            Err(e @ NotifyError::Ledger { source, .. }) => {
                let message = format!("{e}: {}", api_text(source));
                (failures.insert(key, message.clone()).as_ref() != Some(&message))
                    .then_some(message)
            }
            _ => {
                failures.remove(&key);
                None
            }
        }
    };
    // The only place a refused ledger read or write (RBAC, a quota) shows.
    if let Some(message) = announce {
        let event = PlannedEvent::warning(
            "NotificationLedgerFailed",
            format!("notifications wait: {message}"),
        );
        ctx.events.publish(&rollout.object_ref(&()), &[event]).await;
    }
    outcome
}

async fn advance_and_deliver(
    rollout: &Arc<Rollout>,
    ctx: &Arc<Ctx>,
) -> Result<Action, NotifyError> {
    let (rollout, ctx) = (rollout.clone(), ctx.clone());
    let subscriptions = subscriptions::effective(
        &rollout.spec.notifications,
        &rollout.namespace().unwrap_or_default(),
        rollout.labels(),
        ctx.notifiers.state().iter().map(|n| n.as_ref()),
    );
    if subscriptions.is_empty() || rollout.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = rollout.namespace().unwrap_or_default();
    let name = ledger_name(&rollout.name_any());
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
    let ledger_err = |source| NotifyError::Ledger {
        name: name.clone(),
        source,
    };
    let stored = configmaps.get_opt(&name).await.map_err(ledger_err)?;
    let status = rollout.status.clone().unwrap_or_default();
    let now = Utc::now();
    let mut ledger = match stored.as_ref().and_then(read_ledger) {
        Some(l) => l,
        // First sight (or an unreadable ledger): start at the status as it is.
        None => {
            let ledger = Ledger::starting_at(rollout.status.as_ref());
            write_ledger(&configmaps, &rollout, &name, &ledger)
                .await
                .map_err(ledger_err)?;
            ledger
        }
    };
    let reference = rollout.object_ref(&());
    if ledger.behind(&status) {
        let reports = verdict_reports(&ctx.client, &namespace, &status).await;
        let uid = rollout.uid().unwrap_or_default();
        let advanced = ledger.advance(
            &status,
            &uid,
            &subscriptions,
            |h: &Happening| {
                let analysis = h.analysis.as_deref()?;
                h.verdict.as_ref()?;
                reports
                    .iter()
                    .find(|(n, _)| n == analysis)
                    .map(|(_, r)| r.clone())
            },
            now,
        );
        // The new observed state and the new pending notifications: one write.
        write_ledger(&configmaps, &rollout, &name, &ledger)
            .await
            .map_err(ledger_err)?;
        for p in &advanced.dropped {
            count(&ctx.metrics, "unknown", p.happening.trigger, "dropped");
        }
        if !advanced.dropped.is_empty() {
            let msg = format!(
                "{} notification(s) dropped: more than {} were pending (is a Notifier's endpoint down?)",
                advanced.dropped.len(),
                super::ledger::PENDING_LIMIT
            );
            ctx.events
                .publish(
                    &reference,
                    &[PlannedEvent::warning("NotificationsDropped", msg)],
                )
                .await;
        }
    }

    let rollout_ref = RolloutRef {
        namespace: namespace.clone(),
        name: rollout.name_any(),
        uid: rollout.uid().unwrap_or_default(),
    };
    let due = ledger.due(now);
    let mut failed_any = false;
    for key in due.iter().take(DELIVERIES_PER_RECONCILE) {
        let Some(pending) = ledger.get(key).cloned() else {
            continue;
        };
        let (channel_name, outcome) = attempt(&ctx, &namespace, &pending, &rollout_ref).await;
        match outcome {
            Ok(()) => {
                // Counted at the 2xx (before the ledger says so).
                count(
                    &ctx.metrics,
                    channel_name,
                    pending.happening.trigger,
                    "delivered",
                );
                tracing::info!(key = %key, "notification delivered");
                ledger.delivered(key);
                // Marked delivered right after the 2xx, before anything else.
                write_ledger(&configmaps, &rollout, &name, &ledger)
                    .await
                    .map_err(ledger_err)?;
            }
            Err(error) => {
                failed_any = true;
                let attempts = ledger.failed(key, &error, ctx.settings.backoff, Utc::now());
                count(
                    &ctx.metrics,
                    channel_name,
                    pending.happening.trigger,
                    "failed",
                );
                tracing::warn!(key = %key, attempts, error = %error, "notification not delivered; will retry");
                if attempts == 1 {
                    let msg = format!(
                        "{:?} notification to Notifier {} not delivered (retrying): {error}",
                        pending.happening.trigger, pending.notifier
                    );
                    ctx.events
                        .publish(
                            &reference,
                            &[PlannedEvent::warning("NotificationFailed", msg)],
                        )
                        .await;
                }
            }
        }
    }
    if failed_any {
        write_ledger(&configmaps, &rollout, &name, &ledger)
            .await
            .map_err(ledger_err)?;
    }
    if due.len() > DELIVERIES_PER_RECONCILE {
        return Ok(Action::requeue(Duration::ZERO));
    }
    Ok(match ledger.next_attempt() {
        Some(at) => Action::requeue(
            (at - Utc::now()).to_std().unwrap_or(Duration::ZERO) + Duration::from_millis(10),
        ),
        None => Action::await_change(),
    })
}

/// One delivery attempt of `pending`: the channel's name and the outcome.
/// Also moves the Notifier's Ready condition.
async fn attempt(
    ctx: &Ctx,
    namespace: &str,
    pending: &Pending,
    rollout: &RolloutRef,
) -> (&'static str, Result<(), String>) {
    let notifiers: Api<Notifier> = Api::namespaced(ctx.client.clone(), namespace);
    let notifier = match notifiers.get_opt(&pending.notifier).await {
        Ok(Some(n)) => n,
        Ok(None) => {
            return (
                "unknown",
                Err(format!("Notifier {} not found", pending.notifier)),
            );
        }
        Err(e) => {
            return (
                "unknown",
                Err(format!(
                    "cannot read Notifier {}: {}",
                    pending.notifier,
                    api_text(&e)
                )),
            );
        }
    };
    let channel_name = notifier.spec.channel_name();
    let channel = match resolve(ctx, &notifier).await {
        Ok(c) => c,
        Err(e) => {
            if !e.transient {
                set_ready(ctx, &notifier, &Observation::Checked(Err(e.to_string()))).await;
            }
            return (
                channel_name,
                Err(format!("Notifier {}: {e}", pending.notifier)),
            );
        }
    };
    let outcome = deliver::deliver(
        &ctx.http,
        &channel,
        pending,
        rollout,
        notifier.spec.template.as_ref(),
        ctx.settings.timeout,
    )
    .await;
    let seen = match &outcome {
        Ok(()) => Observation::Delivered,
        Err(e) => Observation::DeliveryFailed(format!("delivery of {} failed: {e}", pending.key)),
    };
    set_ready(ctx, &notifier, &seen).await;
    (channel_name, outcome)
}

async fn resolve(ctx: &Ctx, notifier: &Notifier) -> Result<Channel, ConfigError> {
    let namespace = notifier.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    // Read every referenced key first; `resolve` is pure.
    let mut values = Vec::new();
    let refs = channel::secret_refs(&notifier.spec);
    for r in refs {
        let v = secrets::read(&api, &r).await;
        values.push((r, v));
    }
    channel::resolve(&notifier.spec, |r| {
        values
            .iter()
            .find(|(k, _)| k == r)
            .map(|(_, v)| v.clone())
            .unwrap_or(channel::SecretValue::NoSecret)
    })
}

async fn reconcile_notifier(notifier: Arc<Notifier>, ctx: Arc<Ctx>) -> Result<Action, NotifyError> {
    let checked = match resolve(&ctx, &notifier).await {
        Ok(_) => Ok(()),
        Err(e) if e.transient => return Ok(Action::requeue(Duration::from_secs(5))),
        Err(e) => Err(e.to_string()),
    };
    set_ready(&ctx, &notifier, &Observation::Checked(checked)).await;
    Ok(Action::requeue(ctx.settings.recheck))
}

/// Writes the Ready condition `seen` calls for, if it changes. Best effort:
/// a failed status write is logged (the next check writes it again).
async fn set_ready(ctx: &Ctx, notifier: &Notifier, seen: &Observation) {
    let old = notifier
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let Some(desired) = ready::next(old.iter().find(|c| c.type_ == READY), seen) else {
        return;
    };
    let generation = notifier.metadata.generation;
    let merged = conditions::merge(&old, vec![desired], generation, Utc::now());
    let patch = json!({"status": {"conditions": merged, "observedGeneration": generation}});
    let api: Api<Notifier> = Api::namespaced(
        ctx.client.clone(),
        &notifier.namespace().unwrap_or_default(),
    );
    let name = notifier.name_any();
    if let Err(source) = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!(error = %NotifyError::NotifierStatus { name, source }, "Ready not recorded");
    }
}

/// The canary reports of the verdicts the status records (canary and
/// post-promotion analyses), read from the API; a missing one is skipped.
async fn verdict_reports(
    client: &Client,
    namespace: &str,
    status: &crate::api::RolloutStatus,
) -> Vec<(String, VerdictReport)> {
    let api: Api<CanaryAnalysis> = Api::namespaced(client.clone(), namespace);
    let names = [
        status
            .canary
            .as_ref()
            .filter(|c| c.score.is_some() || c.phase.is_some())
            .and_then(|c| c.analysis_name.clone()),
        status
            .post_promotion
            .as_ref()
            .map(|p| p.analysis_name.clone()),
    ];
    let mut out = Vec::new();
    for name in names.into_iter().flatten() {
        if let Ok(Some(analysis)) = api.get_opt(&name).await
            && let Some(status) = &analysis.status
        {
            out.push((name, report(status)));
        }
    }
    out
}

fn read_ledger(cm: &ConfigMap) -> Option<Ledger> {
    let text = cm.data.as_ref()?.get(LEDGER_KEY)?;
    match serde_json::from_str(text) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(configmap = %cm.name_any(), error = %e, "unreadable notification ledger; starting afresh");
            None
        }
    }
}

async fn write_ledger(
    api: &Api<ConfigMap>,
    rollout: &Rollout,
    name: &str,
    ledger: &Ledger,
) -> Result<(), kube::Error> {
    let owner = OwnerReference {
        api_version: Rollout::api_version(&()).into_owned(),
        kind: Rollout::kind(&()).into_owned(),
        name: rollout.name_any(),
        uid: rollout.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([(LEDGER_LABEL.to_owned(), "true".to_owned())].into()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(
            [(
                LEDGER_KEY.to_owned(),
                serde_json::to_string(ledger).unwrap_or_default(),
            )]
            .into(),
        ),
        ..ConfigMap::default()
    };
    let params = PatchParams::apply(NOTIFIER_FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(&cm))
        .await
        .map(|_| ())
}

/// The API's own message for a refusal (`<message> (403 Forbidden)`), the
/// error otherwise.
pub(super) fn api_text(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    }
}

fn count(metrics: &OperatorMetrics, channel: &str, trigger: Trigger, result: &str) {
    metrics
        .notifications
        .get_or_create(&NotificationLabels {
            channel: channel.to_owned(),
            trigger: format!("{trigger:?}"),
            result: result.to_owned(),
        })
        .inc();
}

/// An ObjectReference to a Notifier (for tests and Events).
pub fn notifier_reference(n: &Notifier) -> ObjectReference {
    n.object_ref(&())
}
