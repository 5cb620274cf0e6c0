//! PURE: the canary report page of one CanaryAnalysis, Netflix style: the
//! header (score, band, thresholds, window, canary and baseline scopes), the
//! interval timeline with each score, the groups, then every metric — failures
//! first, filterable by classification — with its canary vs baseline chart
//! (or why there is none), the numbers behind the decision, the rule that
//! decided and a link to its query in Prometheus.

use std::fmt::Write as _;

use kube::ResourceExt;

use super::chart::{Series, line_chart};
use super::html::{esc, score};
use super::series::{Charts, MetricSeries};
use crate::api::canary_analysis::{AnalysisScope, CanaryAnalysis};
use crate::cli::report::scope_text;
use redblack_judge::{Classification, MetricResult};

fn class_name(c: Classification) -> &'static str {
    match c {
        Classification::Pass => "Pass",
        Classification::High => "High",
        Classification::Low => "Low",
        Classification::Nodata => "Nodata",
        Classification::NodataFailMetric => "NodataFailMetric",
        Classification::Error => "Error",
    }
}

/// Failures first: critical failures, then High/Low/Error/NodataFail, then
/// Nodata, then Pass; by name within each.
fn rank(m: &MetricResult) -> (u8, String) {
    let r = match m.classification {
        _ if m.critical_failure => 0,
        Classification::High | Classification::Low => 1,
        Classification::Error | Classification::NodataFailMetric => 2,
        Classification::Nodata => 3,
        Classification::Pass => 4,
    };
    (r, m.name.clone())
}

pub fn ordered(metrics: &[MetricResult]) -> Vec<&MetricResult> {
    let mut v: Vec<&MetricResult> = metrics.iter().collect();
    v.sort_by_key(|m| rank(m));
    v
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

/// The numbers behind one metric's decision, as text lines.
pub fn numbers(m: &MetricResult) -> String {
    let mut out = String::new();
    let e = &m.effect_size_bounds;
    let _ = writeln!(
        out,
        "ratio {} (canary mean {}, baseline mean {}); allowed increase {} decrease {}; critical increase {} decrease {}",
        num(m.ratio),
        num(m.canary_mean),
        num(m.baseline_mean),
        num(e.allowed_increase),
        num(e.allowed_decrease),
        num(e.critical_increase),
        num(e.critical_decrease)
    );
    let _ = writeln!(
        out,
        "counts: canary {} baseline {} (NaN removed {}/{}, outliers removed {}/{})",
        m.canary_count,
        m.baseline_count,
        m.canary_nan_removed,
        m.baseline_nan_removed,
        m.canary_outliers_removed,
        m.baseline_outliers_removed
    );
    if let Some(l) = &m.location {
        let _ = writeln!(
            out,
            "Mann-Whitney p-value {:.4} (U {:.1}, z {:.3}); Hodges-Lehmann shift {:.4}, interval [{}, {}]; Cliff's delta {:.3}",
            l.p_value,
            l.u,
            l.z,
            l.hodges_lehmann,
            num(l.ci_lower),
            num(l.ci_upper),
            l.cliffs_delta
        );
    }
    if let Some(t) = &m.tail {
        let _ = writeln!(
            out,
            "tail check ({} tail, q{}): threshold {:.4}, exceedances canary {} baseline {}, p-value {:.4} over {} tests",
            t.tail,
            t.quantile,
            t.threshold,
            t.canary_exceedances,
            t.baseline_exceedances,
            t.p_value,
            t.tests
        );
    }
    if let Some(r) = &m.rate {
        let _ = writeln!(
            out,
            "rates: canary {}/{} = {:.5}, baseline {}/{} = {:.5}; p-value {:.4}; ratio interval [{}, {}]",
            r.canary_numerator,
            r.canary_denominator,
            r.canary_rate,
            r.baseline_numerator,
            r.baseline_denominator,
            r.baseline_rate,
            r.p_value,
            num(r.ratio_ci_lower),
            num(r.ratio_ci_upper)
        );
    }
    if let Some(s) = &m.sequential {
        let _ = writeln!(
            out,
            "sequential: e-value {:.3} (max {:.3}, threshold {:.3}), p-value {:.4}, {} steps",
            s.e_value, s.max_e_value, s.threshold, s.p_value, s.steps
        );
    }
    out
}

/// A Prometheus graph link for `query` (its own UI: /graph?g0.expr=…).
pub fn prometheus_link(base: &str, query: &str) -> String {
    let expr: String = url::form_urlencoded::byte_serialize(query.as_bytes()).collect();
    format!(
        "{}/graph?g0.expr={expr}&g0.tab=0",
        base.trim_end_matches('/')
    )
}

fn chart_of(name: &str, charts: &Charts) -> String {
    let fetched = match charts {
        Charts::Unavailable(why) => {
            return format!("<p class=\"nochart\">No chart: {}</p>", esc(why));
        }
        Charts::Fetched {
            prometheus_url,
            seconds,
            metrics,
        } => match metrics.get(name) {
            None => {
                return "<p class=\"nochart\">No chart: the metric is not in the spec.</p>".into();
            }
            Some(Err(why)) => {
                return format!(
                    "<p class=\"nochart\">No chart: Prometheus could not be queried ({}). The stored numbers below are what the judge decided on.</p>",
                    esc(why)
                );
            }
            Some(Ok(s)) => (prometheus_url, *seconds, s),
        },
    };
    let (url, seconds, s): (&String, f64, &MetricSeries) = fetched;
    let chart = line_chart(
        &[
            Series {
                label: "canary".into(),
                class: "c".into(),
                points: s.canary.clone(),
            },
            Series {
                label: "baseline".into(),
                class: "b".into(),
                points: s.baseline.clone(),
            },
        ],
        720,
        160,
        Some((0.0, seconds)),
        None,
    );
    format!(
        "<div class=\"legend\"><span class=\"c\">━ canary ({} points)</span><span class=\"b\">━ baseline ({} points)</span>\
<a href=\"{}\" target=\"_blank\" rel=\"noopener\">canary query in Prometheus</a> · <a href=\"{}\" target=\"_blank\" rel=\"noopener\">baseline query</a></div>{chart}",
        s.canary.len(),
        s.baseline.len(),
        esc(&prometheus_link(url, &s.canary_query)),
        esc(&prometheus_link(url, &s.baseline_query)),
    )
}

fn scope(s: &AnalysisScope, ns: &str, role: &str) -> String {
    esc(&scope_text(s, ns, role))
}

pub fn render_report(ca: &CanaryAnalysis, charts: &Charts) -> String {
    let ns = ca.namespace().unwrap_or_default();
    let st = ca.status.clone().unwrap_or_default();
    let mut out = String::new();
    let band = st.band.map(|b| format!("{b:?}"));
    let phase = st.phase.map_or("-", |p| p.as_str());
    let _ = write!(
        out,
        "<h1>Canary report {} / {}</h1><p class=\"headline\">Canary score <b id=\"score\">{}</b> <span class=\"{b}\" id=\"band\">{b}</span> · phase <span class=\"{phase}\">{phase}</span></p>",
        esc(&ns),
        esc(&ca.name_any()),
        score(st.score),
        b = esc(band.as_deref().unwrap_or("-")),
    );
    if let Some(m) = &st.message {
        let _ = write!(out, "<p>{}</p>", esc(m));
    }
    let thresholds = st
        .judgement
        .as_ref()
        .and_then(|j| Some((j.marginal_threshold?, j.pass_threshold?)));
    let thresholds = thresholds.or_else(|| {
        ca.spec
            .score_thresholds
            .as_ref()
            .map(|t| (t.marginal, t.pass))
    });
    out.push_str("<table class=\"header\"><tbody>");
    let _ = write!(
        out,
        "<tr><th>Thresholds</th><td>{}</td></tr>",
        thresholds.map_or_else(
            || "marginal 75, pass 95 (defaults)".to_owned(),
            |(m, p)| format!("marginal {m}, pass {p}")
        )
    );
    if let Some(w) = &st.window {
        let t = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.map_or_else(
                || "-".to_owned(),
                |t| t.0.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            )
        };
        let _ = write!(
            out,
            "<tr><th>Window</th><td>{} .. {} (judged from {}, interval {}s, step {}s)</td></tr>",
            t(w.start.as_ref()),
            t(w.end.as_ref()),
            t(w.judged_from.as_ref()),
            w.interval_seconds.unwrap_or(0),
            w.step_seconds.unwrap_or(0)
        );
    }
    let _ = write!(
        out,
        "<tr><th>Canary (experiment)</th><td>{}</td></tr><tr><th>Baseline (control)</th><td>{}</td></tr>",
        scope(&ca.spec.experiment, &ns, "canary"),
        scope(&ca.spec.control, &ns, "baseline")
    );
    if let Some(p) = &ca.spec.prometheus {
        let _ = write!(out, "<tr><th>Prometheus</th><td>{}</td></tr>", esc(&p.url));
    }
    if let Some(j) = &st.judgement
        && let Some(reason) = &j.reason
    {
        let _ = write!(out, "<tr><th>Why</th><td>{}</td></tr>", esc(reason));
    }
    if let Some(f) = &st.source_failures {
        let _ = write!(
            out,
            "<tr><th>Source failures</th><td>{} attempts; last: {}</td></tr>",
            f.attempts,
            esc(f.last_error.as_deref().unwrap_or("-"))
        );
    }
    out.push_str("</tbody></table>");

    let _ = write!(
        out,
        "<h2>Intervals <span class=\"muted\">({}/{} judged)</span></h2>",
        st.completed_intervals, st.total_intervals
    );
    if !st.intervals.is_empty() {
        let points: Vec<(f64, f64)> = st
            .intervals
            .iter()
            .filter_map(|i| Some((f64::from(i.index), i.score?)))
            .collect();
        out.push_str(&line_chart(
            &[Series {
                label: "score".into(),
                class: "c".into(),
                points,
            }],
            360,
            90,
            None,
            Some((0.0, 100.0)),
        ));
        out.push_str("<table id=\"intervals\"><thead><tr><th>#</th><th>Start</th><th>End</th><th>Score</th><th>Band</th><th>Note</th></tr></thead><tbody>");
        for i in &st.intervals {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{b:?}\">{b:?}</td><td>{}</td></tr>",
                i.index,
                i.start.0.strftime("%H:%M:%S"),
                i.end.0.strftime("%H:%M:%S"),
                score(i.score),
                esc(i.inconclusive_reason.as_deref().unwrap_or("")),
                b = i.band
            );
        }
        out.push_str("</tbody></table>");
    }
    if !st.groups.is_empty() {
        out.push_str("<h2>Groups</h2><table id=\"groups\"><thead><tr><th>Group</th><th>Score</th><th>Weight</th><th>Pass</th><th>High</th><th>Low</th><th>Nodata</th><th>Error</th></tr></thead><tbody>");
        for g in &st.groups {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&g.name),
                score(g.score),
                g.effective_weight,
                g.pass,
                g.high,
                g.low,
                g.nodata + g.nodata_fail,
                g.error
            );
        }
        out.push_str("</tbody></table>");
    }
    let _ = write!(
        out,
        "<h2 id=\"metrics\">Metrics</h2><p>Show <select id=\"mfilter\"><option value=\"\">all</option>{}</select></p>",
        ["High", "Low", "Nodata", "NodataFailMetric", "Pass", "Error"]
            .map(|c| format!("<option value=\"{c}\">{c}</option>"))
            .concat()
    );
    if st.metrics.is_empty() {
        out.push_str("<p>No interval has been judged yet.</p>");
    }
    for m in ordered(&st.metrics) {
        let c = class_name(m.classification);
        let _ = write!(
            out,
            "<div class=\"metric\" data-name=\"{name}\" data-class=\"{c}\"><h3>{name} <span class=\"{c}\">{c}</span>{crit} <span class=\"muted\">group {group} · {kind:?} · checks {dir:?}</span></h3>\
<p>Decided by <b>{by:?}</b>: {reason}</p>{chart}<div class=\"nums\">{nums}</div></div>",
            name = esc(&m.name),
            crit = if m.critical {
                " <span class=\"tag\">critical</span>"
            } else {
                ""
            },
            group = esc(&m.group),
            kind = m.kind,
            dir = m.direction,
            by = m.decided_by,
            reason = esc(&m.reason),
            chart = chart_of(&m.name, charts),
            nums = esc(&numbers(m)),
        );
    }
    if let Some(n) = st.metrics_omitted {
        let _ = write!(
            out,
            "<p class=\"muted\">{n} more metrics, passing or without data, are left out of the status to keep it small.</p>"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::web::dashboard::series::MetricSeries;
    use redblack_judge::{JudgeConfig, MetricConfig, MetricSamples, judge};

    /// A failed analysis: latency 3x slower on the canary, cpu equal.
    fn failed() -> CanaryAnalysis {
        let mut ca: CanaryAnalysis = serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysis",
            "metadata": {"name": "web-2-1", "namespace": "shop"},
            "spec": {"prometheus": {"url": "http://p:9090"}, "control": {"replicaSet": "web-1"},
                     "experiment": {"replicaSet": "web-2"}, "lifetime": "2m", "interval": "1m",
                     "metrics": [{"name": "cpu", "query": "q"}, {"name": "latency", "query": "q"}]}
        }))
        .unwrap();
        let config = JudgeConfig::new(vec![MetricConfig::new("cpu"), MetricConfig::new("latency")]);
        let base: Vec<f64> = (0..60).map(|v| 100.0 + f64::from(v % 7)).collect();
        let slow: Vec<f64> = base.iter().map(|v| v * 3.0).collect();
        let result = judge(
            &config,
            &[
                MetricSamples::continuous("cpu", &base, &base),
                MetricSamples::continuous("latency", &slow, &base),
            ],
        )
        .unwrap();
        let status = crate::api::canary_analysis::CanaryAnalysisStatus {
            score: Some(result.score),
            band: Some(result.band),
            metrics: result.metrics,
            groups: result.groups,
            ..Default::default()
        };
        ca.status = Some(status);
        ca
    }

    #[test]
    fn failing_metric_first_with_both_series_charted() {
        let ca = failed();
        let series = MetricSeries {
            canary: vec![(0.0, 300.0), (10.0, 310.0)],
            baseline: vec![(0.0, 100.0), (10.0, 104.0)],
            canary_query: "rate(x{rs=\"web-2\"}[1m])".into(),
            baseline_query: "q2".into(),
        };
        let charts = Charts::Fetched {
            prometheus_url: "http://p:9090/".into(),
            seconds: 60.0,
            metrics: HashMap::from([
                ("latency".to_owned(), Ok(series.clone())),
                ("cpu".to_owned(), Ok(series)),
            ]),
        };
        let html = render_report(&ca, &charts);
        let latency = html.find("data-name=\"latency\"").expect(&html);
        let cpu = html.find("data-name=\"cpu\"").expect(&html);
        assert!(latency < cpu, "the failing metric comes first");
        assert!(html.contains("data-class=\"High\""), "{html}");
        assert!(html.contains("class=\"series c\" data-label=\"canary\" data-points=\"2\""));
        assert!(html.contains("class=\"series b\" data-label=\"baseline\" data-points=\"2\""));
        assert!(
            html.contains("http://p:9090/graph?g0.expr=rate%28x%7Brs%3D%22web-2%22%7D%5B1m%5D%29"),
            "{html}"
        );
        assert!(html.contains("Mann-Whitney p-value"));
        assert!(html.contains("<option value=\"High\">"));
        assert!(html.contains("Canary (experiment)</th><td>namespace shop, replicaSet web-2"));
    }

    #[test]
    fn prometheus_unreachable_keeps_the_numbers_and_says_why() {
        let ca = failed();
        let charts = Charts::Fetched {
            prometheus_url: "http://p:9090".into(),
            seconds: 60.0,
            metrics: HashMap::from([(
                "latency".to_owned(),
                Err("metric source http://p:9090 is unreachable: connection refused".to_owned()),
            )]),
        };
        let html = render_report(&ca, &charts);
        assert!(html.contains("No chart: Prometheus could not be queried (metric source http://p:9090 is unreachable"), "{html}");
        assert!(html.contains("ratio "));
        assert!(!html.contains("data-label=\"canary\""));
        let none = render_report(
            &ca,
            &Charts::Unavailable("the judged window has not started yet".into()),
        );
        assert!(none.contains("No chart: the judged window has not started yet"));
    }

    #[test]
    fn an_unjudged_analysis_says_so() {
        let mut ca = failed();
        ca.status = None;
        let html = render_report(&ca, &Charts::Unavailable("x".into()));
        assert!(html.contains("No interval has been judged yet."));
        assert!(html.contains("<b id=\"score\">-</b>"));
    }
}
