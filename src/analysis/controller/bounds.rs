//! The bounds that keep a CanaryAnalysis object and its Events small: the
//! status machine's retry policy and interval count ([`Limits`]), the byte
//! budget of `status.metrics`, and how many `IntervalJudged` Events one
//! reconcile may publish. PURE.

use std::time::Duration;

use redblack_judge::{Classification, MetricResult};

use crate::runtime::events::PlannedEvent;

/// Bounds and retry policy of the status machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Intervals kept in `status.intervals` (the aggregate counts all).
    pub keep_intervals: usize,
    /// Attempts at reaching the metric source before phase Error.
    pub max_source_attempts: u32,
    /// Wait after the first failed attempt; doubles per attempt.
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            keep_intervals: 20,
            max_source_attempts: 5,
            retry_backoff: Duration::from_secs(10),
            max_retry_backoff: Duration::from_secs(160),
        }
    }
}

impl Limits {
    /// Wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.retry_backoff
            .saturating_mul(factor)
            .min(self.max_retry_backoff)
    }
}

/// At most this many `IntervalJudged` events per reconcile: a retrospective
/// analysis judges all its intervals at once, and its events should not
/// flood the namespace.
pub const MAX_INTERVAL_EVENTS: usize = 3;

/// Keeps the first `MAX_INTERVAL_EVENTS - 1` and the last `IntervalJudged`
/// Events, replacing the rest by one summary; other Events are kept.
pub fn collapse_events(events: Vec<PlannedEvent>) -> Vec<PlannedEvent> {
    let judged = events
        .iter()
        .filter(|e| e.reason == "IntervalJudged")
        .count();
    if judged <= MAX_INTERVAL_EVENTS {
        return events;
    }
    let mut seen = 0;
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        if event.reason != "IntervalJudged" {
            out.push(event);
            continue;
        }
        seen += 1;
        if seen < MAX_INTERVAL_EVENTS || seen == judged {
            out.push(event);
        } else if seen == MAX_INTERVAL_EVENTS {
            out.push(PlannedEvent::normal(
                "IntervalJudged",
                format!(
                    "{} more intervals judged (see status.intervals)",
                    judged - MAX_INTERVAL_EVENTS
                ),
            ));
        }
    }
    out
}

/// Budget of `status.metrics` in JSON bytes. An object must stay well under
/// etcd's 1.5 MiB request limit, and Netflix compared > 1500 metrics per
/// canary (~600 bytes each here).
pub const MAX_METRICS_BYTES: usize = 400 * 1024;

/// Keeps the metrics that matter within `budget` bytes: failures (High, Low,
/// Error, NodataFailMetric) first, then Nodata, then Pass; config order is
/// kept among those kept. Returns the metrics kept and how many were left out.
pub fn bound_metrics(metrics: Vec<MetricResult>, budget: usize) -> (Vec<MetricResult>, u32) {
    let sizes: Vec<usize> = metrics
        .iter()
        .map(|m| serde_json::to_vec(m).map_or(budget, |v| v.len() + 1))
        .collect();
    if sizes.iter().sum::<usize>() <= budget {
        return (metrics, 0);
    }
    let rank = |m: &MetricResult| match m.classification {
        Classification::Pass => 2,
        Classification::Nodata => 1,
        _ => 0,
    };
    let mut order: Vec<usize> = (0..metrics.len()).collect();
    order.sort_by_key(|i| rank(&metrics[*i]));
    let mut keep = vec![false; metrics.len()];
    let mut used = 0;
    for i in order {
        if used + sizes[i] <= budget {
            used += sizes[i];
            keep[i] = true;
        }
    }
    let omitted = keep.iter().filter(|k| !**k).count();
    let kept = metrics
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect();
    (kept, u32::try_from(omitted).unwrap_or(u32::MAX))
}
