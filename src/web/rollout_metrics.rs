//! The Rollout-level metrics (docs/metrics.md): counters and histograms of
//! transitions the controllers wrote, and a slot for the scrape-time
//! collector that reports the state of every Rollout from the controller's
//! caches. Only the metric values live here; what counts as a transition is
//! decided by the controllers' pure functions (`rollout::metrics`,
//! `analysis::controller::verdict_metric`).

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `{namespace, reason}`: aborts and reverts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub namespace: String,
    pub reason: String,
}

/// `{namespace, verdict}`: analysis verdicts and the verdict-to-traffic time.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub namespace: String,
    pub verdict: String,
}

/// `{namespace}`: the time to live.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub namespace: String,
}

/// Every value of the `reason` label of `rollout_aborts` (the API's
/// `AbortReason` names), created at zero per namespace so that `rate()` sees
/// the first abort (a series born at 1 never shows an increase).
pub const ABORT_REASONS: [&str; 6] = [
    "User",
    "ProgressDeadlineExceeded",
    "AnalysisFailed",
    "GateFailed",
    "PrePromotionAnalysisFailed",
    "PostPromotionAnalysisFailed",
];

/// The `reason` values of `rollout_reverts` created at zero per namespace.
pub const REVERT_REASONS: [&str; 3] = ["CanaryFailed", "PostPromotionFailed", "GateFailed"];

/// The verdicts (`CanaryAnalysisPhase` names of a terminal analysis).
pub const VERDICTS: [&str; 5] = ["Passed", "Marginal", "Failed", "Inconclusive", "Error"];

/// The verdicts of `verdict_to_traffic_seconds` created at zero per namespace
/// (the two that move traffic in the default policy; others appear when seen).
pub const TRAFFIC_VERDICTS: [&str; 2] = ["Passed", "Failed"];

/// The scrape-time collector of per-Rollout state; replaced (not added) when
/// a controller starts again with the same metrics, so series never double.
type StateSlot = Arc<RwLock<Option<Box<dyn Collector>>>>;

#[derive(Clone)]
pub struct RolloutMetrics {
    pub aborts: Family<ReasonLabels, Counter>,
    pub reverts: Family<ReasonLabels, Counter>,
    pub verdicts: Family<VerdictLabels, Counter>,
    pub time_to_live: Family<NamespaceLabels, Histogram, fn() -> Histogram>,
    pub verdict_to_traffic: Family<VerdictLabels, Histogram, fn() -> Histogram>,
    state: StateSlot,
}

/// 1 s … ~4.5 h: a revision brought up, judged for minutes to hours, switched.
fn time_to_live_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

/// 0.25 s … ~8.5 min: a revert is one write; a pass waits for the full
/// fleet. (Verdict times have second precision: the API's `Time`.)
fn verdict_to_traffic_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.25, 2.0, 12))
}

impl Default for RolloutMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RolloutMetrics {
    pub fn new() -> Self {
        RolloutMetrics {
            aborts: Family::default(),
            reverts: Family::default(),
            verdicts: Family::default(),
            time_to_live: Family::new_with_constructor(time_to_live_buckets),
            verdict_to_traffic: Family::new_with_constructor(verdict_to_traffic_buckets),
            state: Arc::new(RwLock::new(None)),
        }
    }

    /// Registers every family, and the state slot as a collector.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rollout_aborts",
            "Revisions abandoned, by reason (counted when the abort is written to the Rollout status)",
            self.aborts.clone(),
        );
        registry.register(
            "rollout_reverts",
            "Traffic taken back from a revision after an analysis verdict, by reason",
            self.reverts.clone(),
        );
        registry.register(
            "analysis_verdicts",
            "CanaryAnalysis verdicts written, by verdict",
            self.verdicts.clone(),
        );
        registry.register(
            "rollout_time_to_live_seconds",
            "From a revision becoming current (status.revisionStartedAt) to traffic switched to it",
            self.time_to_live.clone(),
        );
        registry.register(
            "rollout_verdict_to_traffic_seconds",
            "From an analysis verdict (status.completedAt) to the traffic change it causes",
            self.verdict_to_traffic.clone(),
        );
        registry.register_collector(Box::new(StateCollector(self.state.clone())));
    }

    /// Reports per-Rollout state at each scrape through `collector` (the
    /// Rollout controller's, over its caches), replacing any earlier one.
    pub fn set_state_collector(&self, collector: Box<dyn Collector>) {
        let mut slot = self.state.write().unwrap_or_else(|e| e.into_inner());
        *slot = Some(collector);
    }

    /// Creates the zero series of `namespace` (idempotent, cheap): a counter
    /// first seen at 1 shows no increase to `rate()`.
    pub fn touch_rollout_namespace(&self, namespace: &str) {
        for reason in ABORT_REASONS {
            let _ = self.aborts.get_or_create(&reason_labels(namespace, reason));
        }
        for reason in REVERT_REASONS {
            let _ = self
                .reverts
                .get_or_create(&reason_labels(namespace, reason));
        }
        let _ = self.time_to_live.get_or_create(&NamespaceLabels {
            namespace: namespace.to_owned(),
        });
        for verdict in TRAFFIC_VERDICTS {
            let _ = self
                .verdict_to_traffic
                .get_or_create(&verdict_labels(namespace, verdict));
        }
    }

    /// Creates the zero verdict series of `namespace`.
    pub fn touch_analysis_namespace(&self, namespace: &str) {
        for verdict in VERDICTS {
            let _ = self
                .verdicts
                .get_or_create(&verdict_labels(namespace, verdict));
        }
    }
}

pub fn reason_labels(namespace: &str, reason: &str) -> ReasonLabels {
    ReasonLabels {
        namespace: namespace.to_owned(),
        reason: reason.to_owned(),
    }
}

pub fn verdict_labels(namespace: &str, verdict: &str) -> VerdictLabels {
    VerdictLabels {
        namespace: namespace.to_owned(),
        verdict: verdict.to_owned(),
    }
}

/// Delegates to the collector in the slot (nothing before a controller runs).
#[derive(Debug)]
struct StateCollector(StateSlot);

impl Collector for StateCollector {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let slot = self.0.read().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(collector) => collector.encode(encoder),
            None => Ok(()),
        }
    }
}
