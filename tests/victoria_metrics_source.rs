//! `PrometheusSource` against a REAL VictoriaMetrics (Debian package
//! `victoria-metrics`): the answers the controller relies on, as
//! tests/prometheus_source.rs checks them against Prometheus, and the
//! differences (docs/canary-analysis.md, "VictoriaMetrics"):
//!
//! * rates and counts from rendered templates, one point per step;
//! * empty results are `Ok` and empty (range and instant), not an error;
//! * several series for one scope is `MultipleSeries`;
//! * a parse error is `InvalidQuery` (VictoriaMetrics answers HTTP 422 with
//!   `errorType: "422"` where Prometheus answers 400 `bad_data`);
//! * NaN samples are dropped by VictoriaMetrics at ingestion (Prometheus
//!   keeps them): the judge sees a gap, which its NaN strategy handles the same;
//! * the traffic check tells traffic from none.
//!
//! Data goes in through `/api/v1/import/prometheus` (text format with
//! millisecond timestamps) and `/internal/force_flush` makes it searchable.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use redblack::analysis::endpoint::EndpointConfig;
use redblack::analysis::prometheus::PrometheusSource;
use redblack::analysis::query::{QueryTemplate, Scope};
use redblack::analysis::source::{MetricSource, SourceError};
use redblack::analysis::traffic_check::{Traffic, TrafficCheck};
use redblack_sandbox::testing::victoria_metrics::{VictoriaMetricsOptions, VictoriaMetricsProcess};

const NS: &str = "shop";
const CANARY_RS: &str = "api-7d9f8c6b5";
const BASELINE_RS: &str = "api-baseline-5f4d3c2b1";
const REQ_PER_SEC: f64 = 10.0;
const STEP_SECS: i64 = 15;

const ERROR_RATE: &str = r#"sum(rate(http_requests_total{namespace="${namespace}", pod=~"${podRegex}", code=~"5.."}[${interval}])) / sum(rate(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;
const TRAFFIC: &str = r#"sum(increase(http_requests_total{namespace="${namespace}", pod=~"${podRegex}"}[${interval}]))"#;

/// Prometheus text lines for `pods` of one fleet: 200 and 500 counters
/// every STEP_SECS over `minutes`.
fn fleet(pods: &[&str], error_share: f64, start: DateTime<Utc>, minutes: i64) -> String {
    let mut out = String::new();
    for pod in pods {
        for k in 0..=(minutes * 60 / STEP_SECS) {
            let t = start + TimeDelta::seconds(k * STEP_SECS);
            let total = REQ_PER_SEC * (k * STEP_SECS) as f64;
            let errors = total * error_share;
            let ms = t.timestamp_millis();
            for (code, v) in [("200", total - errors), ("500", errors)] {
                out.push_str(&format!(
                    "http_requests_total{{namespace=\"{NS}\",pod=\"{pod}\",code=\"{code}\"}} {v} {ms}\n"
                ));
            }
        }
    }
    out
}

async fn import(vm: &VictoriaMetricsProcess, text: String) {
    let http = redblack::analysis::http_client::build(
        &EndpointConfig::plain(vm.url()),
        Duration::from_secs(30),
    )
    .unwrap();
    let import = http
        .post(format!("{}/api/v1/import/prometheus", vm.url()))
        .body(text)
        .send()
        .await
        .unwrap();
    assert!(import.status().is_success(), "{:?}", import.text().await);
    let flush = http
        .get(format!("{}/internal/force_flush", vm.url()))
        .send()
        .await
        .unwrap();
    assert!(flush.status().is_success());
}

fn near(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[tokio::test]
async fn against_real_victoria_metrics() {
    let start = (Utc::now() - TimeDelta::hours(3))
        .duration_trunc(TimeDelta::hours(1))
        .unwrap();
    let vm = VictoriaMetricsProcess::start_with(VictoriaMetricsOptions::default())
        .expect("victoria-metrics starts");
    let mut text = fleet(
        &["api-7d9f8c6b5-x2k9q", "api-7d9f8c6b5-b7m4z"],
        0.05,
        start,
        60,
    );
    text.push_str(&fleet(&["api-baseline-5f4d3c2b1-q8w3e"], 0.01, start, 60));
    let ms = |s: i64| (start + TimeDelta::seconds(s)).timestamp_millis();
    text.push_str(&format!(
        "queue_depth{{pod=\"odd\"}} NaN {}\nqueue_depth{{pod=\"odd\"}} +Inf {}\nqueue_depth{{pod=\"odd\"}} 1 {}\n",
        ms(0),
        ms(60),
        ms(120)
    ));
    import(&vm, text).await;
    let source = PrometheusSource::new(vm.url(), Duration::from_secs(10), 1).unwrap();

    let canary = Scope::for_replica_set(NS, CANARY_RS, "7d9f8c6b5", "canary");
    let baseline = Scope::for_replica_set(NS, BASELINE_RS, "5f4d3c2b1", "baseline");
    let minute = Duration::from_secs(60);
    let (from, to) = (
        start + TimeDelta::minutes(10),
        start + TimeDelta::minutes(50),
    );
    let step = Duration::from_secs(60);

    let error_rate = QueryTemplate::parse(ERROR_RATE).unwrap();
    for (scope, expected) in [(&canary, 0.05), (&baseline, 0.01)] {
        let query = error_rate.render(scope, minute).unwrap();
        let samples = source.query_range(&query, from, to, step).await.unwrap();
        assert_eq!(samples.len(), 41, "{}: one point per step", scope.role);
        assert_eq!(samples.points[0].timestamp, from);
        for v in samples.values() {
            assert!(near(v, expected, 1e-9), "{} error rate {v}", scope.role);
        }
    }

    // Nothing matched: Ok and empty, range and instant.
    let nothing = r#"sum(rate(http_requests_total{namespace="nowhere"}[1m]))"#;
    assert!(
        source
            .query_range(nothing, from, to, step)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(source.query_instant(nothing, to).await.unwrap().is_empty());

    // Several series for one scope.
    let err = source
        .query_range(r#"http_requests_total{namespace="shop"}"#, from, to, step)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SourceError::MultipleSeries { count: 6, .. }),
        "{err}"
    );

    // A parse error: 422 "422" is an invalid query, as Prometheus' 400 bad_data.
    let err = source
        .query_range("sum(rate(http_requests_total[5m])", from, to, step)
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::InvalidQuery { .. }), "{err:?}");

    // NaN is dropped at ingestion; +Inf is kept.
    let odd = source
        .query_range(
            r#"queue_depth{pod="odd"}"#,
            start,
            start + TimeDelta::seconds(120),
            step,
        )
        .await
        .unwrap();
    let stamps: Vec<i64> = odd
        .points
        .iter()
        .map(|p| (p.timestamp - start).num_seconds())
        .collect();
    assert_eq!(stamps, [60, 120], "{odd:?}");
    assert_eq!(odd.values()[0], f64::INFINITY);

    // Traffic: the canary has it, an absent ReplicaSet none.
    let traffic = TrafficCheck::parse(TRAFFIC).unwrap();
    let window = (to - TimeDelta::minutes(10), to);
    match traffic
        .check(&source, &canary, window.0, window.1)
        .await
        .unwrap()
    {
        Traffic::Received { total } => {
            let expected = REQ_PER_SEC * 2.0 * 600.0;
            assert!(near(total, expected, expected * 0.01), "total {total}");
        }
        Traffic::NoTraffic => panic!("canary had traffic"),
    }
    let absent = Scope::for_replica_set(NS, "api-absent", "absent", "canary");
    assert_eq!(
        traffic
            .check(&source, &absent, window.0, window.1)
            .await
            .unwrap(),
        Traffic::NoTraffic
    );
}
