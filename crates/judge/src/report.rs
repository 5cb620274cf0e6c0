//! Plain-text canary report, Netflix style: the score and band first, then
//! the hot metrics (failures first) with the numbers behind each decision.
//! Pure, so `redblack judge` and `redblack report` share it.

use super::result::{Band, Classification, JudgeResult, MetricResult, SequentialStats};

fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => {
            if x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) {
                format!("{x:.3e}")
            } else {
                format!("{x:.4}")
            }
        }
        Some(_) => "inf".into(),
        None => "-".into(),
    }
}

/// The result stores an infinite ratio (baseline 0, canary > 0) as null;
/// the report says what it is.
fn ratio(m: &MetricResult) -> String {
    match (m.ratio, m.baseline_mean, m.canary_mean) {
        (None, Some(b), Some(c)) if b == 0.0 && c > 0.0 => "inf".into(),
        (r, _, _) => num(r),
    }
}

/// Sort key: critical failures, then failures, then no-data, then passes;
/// inside a class, the strongest evidence (smallest p-value) first.
fn heat(m: &MetricResult) -> (u8, f64) {
    let class = match m.classification {
        _ if m.critical_failure => 0,
        Classification::High | Classification::Low | Classification::Error => 1,
        Classification::NodataFailMetric => 2,
        Classification::Nodata => 3,
        Classification::Pass => 4,
    };
    (class, p_value(m).unwrap_or(1.0))
}

fn p_value(m: &MetricResult) -> Option<f64> {
    m.location
        .as_ref()
        .map(|l| l.p_value)
        .or(m.rate.as_ref().map(|r| r.p_value))
}

fn bounds(m: &MetricResult) -> String {
    let e = m.effect_size_bounds;
    match (e.allowed_decrease, e.allowed_increase) {
        (None, None) => "-".into(),
        (lo, hi) => format!("{}..{}", num(lo), num(hi)),
    }
}

fn label(m: &MetricResult) -> String {
    let l = match m.classification {
        Classification::Pass => "Pass",
        Classification::High => "High",
        Classification::Low => "Low",
        Classification::Nodata => "Nodata",
        Classification::NodataFailMetric => "NodataFail",
        Classification::Error => "Error",
    };
    if m.critical_failure {
        format!("{l} (CRITICAL)")
    } else {
        l.to_string()
    }
}

/// Renders a report with aligned columns.
pub fn render_report(result: &JudgeResult) -> String {
    let band = match result.band {
        Band::Pass => "PASS",
        Band::Marginal => "MARGINAL",
        Band::Fail => "FAIL",
        Band::Inconclusive => "INCONCLUSIVE",
    };
    // The tolerance changes which shifts fail, so the header says which one
    // was used; sequential mode has none (its e-processes decide).
    let tolerance = result
        .tolerance
        .map_or(String::new(), |t| format!(", tolerance {t}"));
    let mode = match result.mode {
        crate::config::JudgeMode::Fixed => "fixed",
        crate::config::JudgeMode::Sequential => "sequential",
    };
    let mut out = format!(
        "Canary Score: {}% {band}\n{}\n(confidence {}, mode {mode}{tolerance}, marginal {}, pass {})\n\n",
        // Two decimals at most, as the judge rounds it (Kayenta).
        (result.score * 100.0).round() / 100.0,
        result.reason,
        result.confidence,
        result.marginal_threshold,
        result.pass_threshold
    );

    let header = [
        "METRIC",
        "GROUP",
        "RESULT",
        "DECIDED BY",
        "RATIO",
        "ALLOWED",
        "CANARY",
        "BASELINE",
        "P-VALUE",
        "CI/RATIO-CI",
        "HL",
        "TAIL-P",
        "N(C/B)",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let mut metrics: Vec<&MetricResult> = result.metrics.iter().collect();
    metrics.sort_by(|a, b| {
        heat(a)
            .partial_cmp(&heat(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for m in &metrics {
        let ci = if let Some(l) = &m.location {
            format!("[{}, {}]", num(l.ci_lower), num(l.ci_upper))
        } else if let Some(r) = &m.rate {
            format!("[{}, {}]", num(r.ratio_ci_lower), num(r.ratio_ci_upper))
        } else {
            "-".into()
        };
        let decided = serde_json::to_value(m.decided_by)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        rows.push(vec![
            m.name.clone(),
            m.group.clone(),
            label(m),
            decided,
            ratio(m),
            bounds(m),
            num(m.canary_mean),
            num(m.baseline_mean),
            num(p_value(m)),
            ci,
            num(m.location.as_ref().map(|l| l.hodges_lehmann)),
            num(m.tail.as_ref().map(|t| t.p_value)),
            format!("{}/{}", m.canary_count, m.baseline_count),
        ]);
    }
    out.push_str(&table(&rows));

    out.push_str("\nGroups:\n");
    let mut grows = vec![
        [
            "GROUP",
            "SCORE",
            "WEIGHT",
            "PASS",
            "HIGH",
            "LOW",
            "NODATA",
            "NODATA-FAIL",
            "ERROR",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>(),
    ];
    for g in &result.groups {
        grows.push(vec![
            g.name.clone(),
            g.score.map_or("-".into(), |s| format!("{s:.1}")),
            format!("{:.1}%", g.effective_weight),
            g.pass.to_string(),
            g.high.to_string(),
            g.low.to_string(),
            g.nodata.to_string(),
            g.nodata_fail.to_string(),
            g.error.to_string(),
        ]);
    }
    out.push_str(&table(&grows));

    out.push_str("\nReasons:\n");
    for m in &metrics {
        out.push_str(&format!("  {}: {}\n", m.name, m.reason));
    }
    let sequential: Vec<(&MetricResult, &SequentialStats)> = metrics
        .iter()
        .filter_map(|m| Some((*m, m.sequential.as_ref()?)))
        .collect();
    if !sequential.is_empty() {
        out.push_str(
            "\nSequential test (anytime-valid; the path: the e-value over the steps, ▁ at 1 or below, █ at 1/α):\n",
        );
        let mut rows = vec![vec![
            "METRIC".to_string(),
            "E-VALUE".into(),
            "MAX".into(),
            "1/α".into(),
            "CROSSED AT STEP".into(),
            "PATH".into(),
        ]];
        for (m, s) in sequential {
            rows.push(vec![
                m.name.clone(),
                crate::sequential::fmt_e(s.e_value),
                crate::sequential::fmt_e(s.max_e_value),
                crate::sequential::fmt_e(s.threshold),
                s.crossed_at_step.map_or_else(
                    || format!("- ({} steps)", s.steps),
                    |k| format!("{k} of {}", s.steps),
                ),
                sparkline(&s.path, s.threshold),
            ]);
        }
        out.push_str(&table(&rows));
        let finals: Vec<String> = metrics
            .iter()
            .filter_map(|m| {
                let f = m.sequential.as_ref()?.final_look.as_ref()?;
                let rule = serde_json::to_value(f.decided_by)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                Some(format!(
                    "{} {:?} ({rule}, level {:.2e})",
                    m.name, f.classification, f.level
                ))
            })
            .collect();
        if !finals.is_empty() {
            out.push_str(&format!(
                "Final look (the fixed-horizon tests of the whole window, once, on the rest of α): {}\n",
                finals.join("; ")
            ));
        }
    }
    let early: Vec<(&MetricResult, &crate::result::EarlyPassStats)> = metrics
        .iter()
        .filter_map(|m| Some((*m, m.sequential.as_ref()?.early_pass.as_ref()?)))
        .collect();
    if !early.is_empty() {
        out.push_str(
            "\nEarly pass (anytime-valid evidence that the canary is not worse by the margin):\n",
        );
        let mut rows = vec![vec![
            "METRIC".to_string(),
            "MARGIN".into(),
            "E-VALUE".into(),
            "MAX".into(),
            "1/α".into(),
            "CROSSED AT STEP".into(),
            "PATH".into(),
        ]];
        for (m, e) in early {
            rows.push(vec![
                m.name.clone(),
                format!("{}", e.margin),
                crate::sequential::fmt_e(e.e_value),
                crate::sequential::fmt_e(e.max_e_value),
                crate::sequential::fmt_e(e.threshold),
                e.crossed_at_step
                    .map_or_else(|| "-".to_owned(), |k| k.to_string()),
                sparkline(&e.path, e.threshold),
            ]);
        }
        out.push_str(&table(&rows));
        if let Some(v) = crate::sequential::early_pass::early_pass_verdict(result) {
            let verdict = if v.eligible {
                "eligible"
            } else {
                "not eligible"
            };
            out.push_str(&format!("Early pass: {verdict}: {}\n", v.reason));
        }
    }
    out
}

/// The e-value path at a glance: log scale from 1 (or below) to the
/// threshold (or above), one character per stored point.
fn sparkline(path: &[f64], threshold: f64) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let top = threshold.max(1.0 + f64::EPSILON).ln();
    path.iter()
        .map(|e| {
            let level = (e.max(1.0).ln() / top).clamp(0.0, 1.0);
            // level in [0, 1] → 0..=7; the cast cannot overflow.
            BARS[(level * 7.0).round() as usize]
        })
        .collect()
}

fn table(rows: &[Vec<String>]) -> String {
    aligned_table(rows, "")
}

/// Left-aligned columns, two spaces apart, each line starting with `indent`.
pub fn aligned_table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        out.push_str(indent);
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
