//! Did the canary receive traffic during an interval?
//!
//! A canary with no traffic produces no values, and other tools then stall
//! or fail confusingly (flagger #1689). We ask a "traffic" query first (for
//! example `sum(increase(http_requests_total{namespace="${namespace}",
//! pod=~"${podRegex}"}[${interval}]))`), evaluated once at the end of the
//! interval with `${interval}` = the interval's length, and report
//! `NoTraffic` when the answer is empty, zero or NaN, so the controller can
//! mark the interval Inconclusive with [`NO_TRAFFIC_MESSAGE`].

use chrono::{DateTime, Utc};

use super::query::{QueryTemplate, Scope, TemplateError};
use super::source::{MetricSource, SourceError};

/// The message for an interval judged without canary traffic.
pub const NO_TRAFFIC_MESSAGE: &str = "canary received no traffic";

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traffic {
    /// The traffic query's value over the interval (e.g. requests), > 0.
    Received {
        total: f64,
    },
    NoTraffic,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrafficCheckError {
    #[error("traffic query template: {0}")]
    Template(#[from] TemplateError),
    #[error("traffic query: {0}")]
    Source(#[from] SourceError),
    #[error("traffic interval is empty: end {end} is not after start {start}")]
    EmptyInterval {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// A traffic query, validated once.
#[derive(Debug, Clone)]
pub struct TrafficCheck {
    template: QueryTemplate,
}

impl TrafficCheck {
    pub fn new(template: QueryTemplate) -> Self {
        TrafficCheck { template }
    }

    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        QueryTemplate::parse(template).map(Self::new)
    }

    /// Run the check for `scope` over `[start, end]`.
    pub async fn check(
        &self,
        source: &dyn MetricSource,
        scope: &Scope,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Traffic, TrafficCheckError> {
        let interval = (end - start)
            .to_std()
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(TrafficCheckError::EmptyInterval { start, end })?;
        let query = self.template.render(scope, interval)?;
        let samples = source.query_instant(&query, end).await?;
        // Several points cannot come from an instant query; take the sum
        // defensively. NaN (e.g. 0/0) is no evidence of traffic.
        let total: f64 = samples.values().iter().filter(|v| !v.is_nan()).sum();
        let traffic = if total > 0.0 {
            Traffic::Received { total }
        } else {
            Traffic::NoTraffic
        };
        tracing::debug!(role = %scope.role, replica_set = %scope.replica_set, ?traffic, "traffic check");
        Ok(traffic)
    }
}
