//! The notifier's reconcile of one Rollout: read its ledger (one GET),
//! advance it to the Rollout's status and write it before any delivery,
//! deliver what is due, writing the ledger after each 2xx. A refused ledger
//! read or write is one Warning Event per distinct refusal.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, Resource, ResourceExt};

use super::status::{resolve, set_ready};
use super::{
    Ctx, DELIVERIES_PER_RECONCILE, LEDGER_LABEL, NotifyError, api_text, count, ledger_name,
};
use crate::api::Rollout;
use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::notifier::Notifier;
use crate::notify::deliver;
use crate::notify::ledger::{LEDGER_KEY, Ledger, Pending};
use crate::notify::payload::RolloutRef;
use crate::notify::ready::Observation;
use crate::notify::report::{VerdictReport, report};
use crate::notify::subscriptions;
use crate::notify::trigger::Happening;
use crate::runtime::events::PlannedEvent;
use crate::runtime::field_manager::NOTIFIER_FIELD_MANAGER;
use crate::runtime::packed::Packed;

pub(super) async fn reconcile_rollout(
    packed: Arc<Packed<Rollout>>,
    ctx: Arc<Ctx>,
) -> Result<Action, NotifyError> {
    let rollout = Arc::new(packed.unpack()?);
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
                crate::notify::ledger::PENDING_LIMIT
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
        dashboard: None,
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
        notifier.spec.dashboard_url.as_deref(),
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
