//! `StaticSource`: an in-memory `MetricSource` with canned answers per query
//! string, for tests of the CanaryAnalysis controller.
//!
//! Semantics follow Prometheus where it matters to a caller:
//! * a range query returns the canned points with `start <= t <= end`
//!   (the step is ignored: points are returned as canned);
//! * an instant query returns the latest canned point in `(time - 5m, time]`
//!   (Prometheus's default lookback), or nothing;
//! * a canned error is returned as is, every time.
//!
//! A query with no canned answer is an `InvalidQuery` error rather than an
//! empty result, so a typo in a test's query shows up instead of looking
//! like "no data". Every query asked is recorded, for assertions.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use super::source::{MetricSource, Sample, Samples, SourceError};

/// Prometheus's default `--query.lookback-delta`.
const LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

#[derive(Debug, Default)]
pub struct StaticSource {
    answers: HashMap<String, Result<Vec<Sample>, SourceError>>,
    asked: Mutex<Vec<String>>,
}

impl StaticSource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `query` with these points (any order; kept sorted by time).
    pub fn with_series(mut self, query: impl Into<String>, mut points: Vec<Sample>) -> Self {
        points.sort_by_key(|p| p.timestamp);
        self.answers.insert(query.into(), Ok(points));
        self
    }

    /// Answer `query` with an error.
    pub fn with_error(mut self, query: impl Into<String>, error: SourceError) -> Self {
        self.answers.insert(query.into(), Err(error));
        self
    }

    /// The queries asked so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn lookup(&self, query: &str) -> Result<&[Sample], SourceError> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(query.to_owned());
        }
        match self.answers.get(query) {
            Some(Ok(points)) => Ok(points),
            Some(Err(error)) => Err(error.clone()),
            None => Err(SourceError::InvalidQuery {
                message: format!("StaticSource has no canned answer for query {query:?}"),
            }),
        }
    }
}

impl MetricSource for StaticSource {
    fn query_range<'a>(
        &'a self,
        query: &'a str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        _step: Duration,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        let result = self.lookup(query).map(|points| {
            Samples::new(
                points
                    .iter()
                    .filter(|p| p.timestamp >= start && p.timestamp <= end)
                    .copied()
                    .collect(),
            )
        });
        Box::pin(std::future::ready(result))
    }

    fn query_instant<'a>(
        &'a self,
        query: &'a str,
        time: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Samples, SourceError>> {
        let result = self.lookup(query).map(|points| {
            let latest = points
                .iter()
                .rev()
                .find(|p| p.timestamp <= time && p.timestamp > time - LOOKBACK);
            Samples::new(latest.copied().into_iter().collect())
        });
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn point(secs: i64, value: f64) -> Sample {
        Sample {
            timestamp: at(secs),
            value,
        }
    }

    #[tokio::test]
    async fn canned_answers_follow_the_window() {
        let source = StaticSource::new()
            .with_series("q", vec![point(300, 3.0), point(100, 1.0), point(200, 2.0)])
            .with_error(
                "bad",
                SourceError::InvalidQuery {
                    message: "nope".into(),
                },
            );
        let step = Duration::from_secs(10);
        let range = source
            .query_range("q", at(150), at(300), step)
            .await
            .unwrap();
        assert_eq!(range.values(), vec![2.0, 3.0]);
        assert!(
            source
                .query_range("q", at(400), at(500), step)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            source.query_instant("q", at(250)).await.unwrap().values(),
            vec![2.0]
        );
        assert!(
            source
                .query_instant("q", at(1000))
                .await
                .unwrap()
                .is_empty(),
            "beyond lookback"
        );
        assert!(matches!(
            source.query_instant("bad", at(250)).await,
            Err(SourceError::InvalidQuery { .. })
        ));
        assert!(matches!(
            source.query_instant("typo", at(250)).await,
            Err(SourceError::InvalidQuery { message }) if message.contains("typo")
        ));
        assert_eq!(source.asked(), vec!["q", "q", "q", "q", "bad", "typo"]);
    }
}
