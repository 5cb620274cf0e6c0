//! The imperative shell of one reconcile: plan, judge what is due (the I/O in
//! [`super::judging`]), write the status (server-side apply, only when it
//! changed) and publish the Events that go with it.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::AnalysisContext;
use super::bounds::collapse_events;
use super::canonical::canonical;
use super::judging::{judge_intervals, look};
use super::plan::{AnalysisPlan, plan};
use super::progress::Progress;
use super::verdict_metric;
use crate::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisStatus, GROUP, VERSION};
use crate::runtime::field_manager::ANALYSIS_FIELD_MANAGER;
use crate::runtime::metrics::{ErrorKind, ReconcileGuard, count_writes};

/// Why a reconcile failed (it is retried after `error_requeue`).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisReconcileError {
    #[error("CanaryAnalysis {0} has no namespace")]
    NoNamespace(String),
    #[error("cannot write the status of {name}: {source}")]
    WriteStatus {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ErrorKind for AnalysisReconcileError {
    fn kind(&self) -> &'static str {
        match self {
            AnalysisReconcileError::NoNamespace(_) => "no_namespace",
            AnalysisReconcileError::WriteStatus { .. } => "write_status",
        }
    }
}

/// Slack added to boundary wake-ups, so the boundary has surely passed.
const WAKE_SLACK: Duration = Duration::from_millis(200);

/// Reconciles one CanaryAnalysis.
pub async fn reconcile(
    ca: Arc<CanaryAnalysis>,
    ctx: Arc<AnalysisContext>,
) -> Result<Action, AnalysisReconcileError> {
    let span = tracing::info_span!(
        "reconcile",
        controller = super::ANALYSIS_CONTROLLER_NAME,
        namespace = ca.namespace().as_deref().unwrap_or(""),
        name = %ca.name_any(),
        generation = ca.metadata.generation,
    );
    let guard = ReconcileGuard::start(ctx.metrics.as_ref(), super::ANALYSIS_CONTROLLER_NAME);
    let result = reconcile_inner(&ca, &ctx).instrument(span).await;
    guard.outcome(&result);
    match &result {
        Ok(_) => {
            ctx.backoff.succeeded(&backoff_key(&ca));
        }
        Err(error) => announce_refusal(&ca, &ctx, error).await,
    }
    result
}

/// A status write the API refuses for good (RBAC, a webhook: a 4xx other
/// than 404/409/429) cannot be recorded in the status it failed to write:
/// one Warning Event on the analysis says what was refused and quotes the
/// API; the retries (which back off) stay silent while the words are the same.
async fn announce_refusal(
    ca: &CanaryAnalysis,
    ctx: &AnalysisContext,
    error: &AnalysisReconcileError,
) {
    let AnalysisReconcileError::WriteStatus {
        name,
        source: kube::Error::Api(status),
    } = error
    else {
        return;
    };
    if !(400..500).contains(&status.code) || matches!(status.code, 404 | 409 | 429) {
        return;
    }
    let key = backoff_key(ca);
    {
        let mut announced = ctx.refusals.lock().unwrap_or_else(|e| e.into_inner());
        if announced.get(&key) == Some(&status.message) {
            return;
        }
        announced.insert(key, status.message.clone());
    }
    let event = crate::runtime::events::PlannedEvent::warning(
        "WriteRefused",
        format!(
            "the API refused writing the status of CanaryAnalysis {name} ({} {}): {}; \
             redblack retries with backoff until the cause (RBAC, an admission webhook) is removed",
            status.code, status.reason, status.message
        ),
    );
    ctx.events.publish(&ca.object_ref(&()), &[event]).await;
}

/// Requeue after an error (the shared [`ErrorBackoff`](crate::runtime::backoff::ErrorBackoff));
/// the status is untouched so the next attempt redoes the same work.
pub fn error_policy(
    ca: Arc<CanaryAnalysis>,
    error: &AnalysisReconcileError,
    ctx: Arc<AnalysisContext>,
) -> Action {
    let (failures, delay) = ctx.backoff.failed(backoff_key(&ca));
    tracing::warn!(name = %ca.name_any(), %error, failures, retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

/// The key of an analysis's failure count: its uid, else its name.
fn backoff_key(ca: &CanaryAnalysis) -> String {
    ca.uid().unwrap_or_else(|| ca.name_any())
}

async fn reconcile_inner(
    ca: &CanaryAnalysis,
    ctx: &AnalysisContext,
) -> Result<Action, AnalysisReconcileError> {
    let name = ca.name_any();
    let namespace = ca
        .namespace()
        .ok_or_else(|| AnalysisReconcileError::NoNamespace(name.clone()))?;
    let now = (ctx.clock)();
    let planned = plan(
        ca,
        now,
        ctx.config.default_prometheus_url.as_deref(),
        ctx.config.limits,
    );
    let (progress, wake) = match planned {
        AnalysisPlan::Settle { progress, wake } => (progress, wake),
        AnalysisPlan::Judge {
            spec,
            mut progress,
            intervals,
        } => {
            tracing::info!(?intervals, "judging");
            let wake = judge_intervals(ctx, &namespace, &spec, &mut progress, &intervals).await;
            (progress, wake)
        }
        AnalysisPlan::Look {
            spec,
            mut progress,
            at,
        } => {
            tracing::debug!(%at, "sequential look");
            let wake = look(ctx, &namespace, &spec, &mut progress, at).await;
            (progress, wake)
        }
    };

    let mut progress = progress;
    ensure_decodable(&mut progress);
    if canonical(ca.status.as_ref()) != canonical(Some(&progress.status)) {
        write_status(ctx, &namespace, &name, &progress.status).await?;
        verdict_metric::record(
            ctx.metrics.as_ref(),
            &namespace,
            ca.status.as_ref(),
            &progress.status,
        );
        tracing::info!(
            phase = ?progress.status.phase,
            intervals = ?progress.status.interval_progress,
            score = ?progress.status.score,
            message = progress.status.message.as_deref().unwrap_or(""),
            "status written"
        );
        let events = collapse_events(progress.events.clone());
        ctx.events.publish(&ca.object_ref(&()), &events).await;
    } else {
        tracing::debug!("nothing changed; no write");
    }

    Ok(match wake {
        Some(at) => {
            let wait = (at - (ctx.clock)()).to_std().unwrap_or(Duration::ZERO) + WAKE_SLACK;
            tracing::debug!(wake = %at, ?wait, "requeue at the next boundary");
            Action::requeue(wait)
        }
        None => Action::await_change(),
    })
}

/// A status that would not decode after the round trip through the API (a
/// non-finite number where a number is required) would make the object
/// unreadable for every watcher: refuse it, keep the verdict-free parts and
/// say why. The judge promises finite numbers; this is the guard if it fails.
fn ensure_decodable(progress: &mut Progress) {
    let encoded = serde_json::to_value(&progress.status).map_err(|e| e.to_string());
    let decoded = encoded
        .and_then(|v| serde_json::from_value::<CanaryAnalysisStatus>(v).map_err(|e| e.to_string()));
    if let Err(error) = decoded {
        tracing::error!(%error, "the status does not survive JSON encoding");
        progress.status.metrics.clear();
        progress.status.groups.clear();
        progress.status.judgement = None;
        progress.status.score = None;
        progress
            .status
            .intervals
            .retain(|i| i.score.is_none_or(f64::is_finite));
        progress.status.aggregate = None;
        progress.fail_with_error(
            "JudgeFailed",
            format!("internal error: the judgement could not be encoded ({error})"),
        );
    }
}

async fn write_status(
    ctx: &AnalysisContext,
    namespace: &str,
    name: &str,
    status: &CanaryAnalysisStatus,
) -> Result<(), AnalysisReconcileError> {
    let api: Api<CanaryAnalysis> = Api::namespaced(ctx.client.clone(), namespace);
    let patch = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "CanaryAnalysis",
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(ANALYSIS_FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| AnalysisReconcileError::WriteStatus {
        name: name.to_owned(),
        source,
    })?;
    count_writes(ctx.metrics.as_ref(), super::ANALYSIS_CONTROLLER_NAME, 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn a_status_with_a_non_finite_number_becomes_an_error() {
        use redblack_judge::{JudgeConfig, MetricConfig, MetricSamples, judge};
        let r = judge(
            &JudgeConfig::new(vec![MetricConfig::new("m")]),
            &[MetricSamples::continuous(
                "m",
                &[1.0, 2.0, 3.0],
                &[1.0, 2.0, 4.0],
            )],
        )
        .unwrap();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut ok = Progress::new(CanaryAnalysisStatus::default(), now, Default::default());
        ok.status.metrics = r.metrics.clone();
        let before = ok.status.clone();
        ensure_decodable(&mut ok);
        assert_eq!(ok.status, before, "a finite status is left alone");

        let mut bad = ok.clone();
        bad.status.metrics[0].canary_count = 3;
        bad.status.groups = r.groups.clone();
        bad.status.groups[0].weight = f64::NAN;
        ensure_decodable(&mut bad);
        assert_eq!(
            bad.status.phase,
            Some(crate::api::canary_analysis::CanaryAnalysisPhase::Error)
        );
        assert!(bad.status.groups.is_empty() && bad.status.metrics.is_empty());
        assert!(
            bad.status
                .message
                .as_deref()
                .unwrap()
                .contains("could not be encoded")
        );
    }
}
