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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::source::Sample;
    use crate::analysis::static_source::StaticSource;

    const TEMPLATE: &str = r#"sum(increase(req_total{pod=~"${podRegex}"}[${interval}]))"#;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[tokio::test]
    async fn classifies_totals() {
        let check = TrafficCheck::parse(TEMPLATE).unwrap();
        let scope = |rs: &str| Scope::for_replica_set("ns", rs, "h", "canary");
        let query = |rs: &str| {
            QueryTemplate::parse(TEMPLATE)
                .unwrap()
                .render(&scope(rs), std::time::Duration::from_secs(300))
                .unwrap()
        };
        let point = |value| {
            vec![Sample {
                timestamp: at(1000),
                value,
            }]
        };
        let source = StaticSource::new()
            .with_series(query("busy"), point(42.0))
            .with_series(query("zero"), point(0.0))
            .with_series(query("nan"), point(f64::NAN))
            .with_series(query("none"), vec![]);
        let run = |rs: &'static str| {
            let (check, source) = (&check, &source);
            async move { check.check(source, &scope(rs), at(700), at(1000)).await }
        };
        assert_eq!(
            run("busy").await.unwrap(),
            Traffic::Received { total: 42.0 }
        );
        for rs in ["zero", "nan", "none"] {
            assert_eq!(run(rs).await.unwrap(), Traffic::NoTraffic, "{rs}");
        }
        assert!(matches!(
            check
                .check(&source, &scope("busy"), at(1000), at(1000))
                .await,
            Err(TrafficCheckError::EmptyInterval { .. })
        ));
    }
}
