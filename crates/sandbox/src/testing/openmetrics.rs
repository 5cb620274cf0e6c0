//! Writing series as OpenMetrics text and backfilling them into a TSDB with
//! `promtool tsdb create-blocks-from openmetrics`, so tests can query a real
//! Prometheus over data with exactly known values.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};

use super::prometheus::HarnessError;

/// OpenMetrics metric types we write (the only two our tests need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Sample name must end in `_total`; the family is the name without it.
    Counter,
    Gauge,
}

/// One series: a sample name, its labels, and timestamped values.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenMetricsSeries {
    pub name: String,
    pub kind: MetricKind,
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(DateTime<Utc>, f64)>,
}

impl OpenMetricsSeries {
    pub fn new(name: &str, kind: MetricKind, labels: &[(&str, &str)]) -> Self {
        OpenMetricsSeries {
            name: name.to_owned(),
            kind,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            samples: Vec::new(),
        }
    }

    pub fn counter(name: &str, labels: &[(&str, &str)]) -> Self {
        Self::new(name, MetricKind::Counter, labels)
    }

    pub fn gauge(name: &str, labels: &[(&str, &str)]) -> Self {
        Self::new(name, MetricKind::Gauge, labels)
    }

    pub fn push(&mut self, timestamp: DateTime<Utc>, value: f64) {
        self.samples.push((timestamp, value));
    }

    /// The metric family name (what `# TYPE` declares).
    fn family(&self) -> Result<&str, HarnessError> {
        match self.kind {
            MetricKind::Gauge => Ok(&self.name),
            MetricKind::Counter => self.name.strip_suffix("_total").ok_or_else(|| {
                HarnessError::InvalidSeries(format!(
                    "counter {:?} must be named <family>_total",
                    self.name
                ))
            }),
        }
    }
}

fn valid_name(name: &str, colons: bool) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
}

/// OpenMetrics escapes exactly `\`, `"` and newline in label values.
fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', r#"\""#)
        .replace('\n', r"\n")
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

/// Render `series` as an OpenMetrics exposition: families contiguous, one
/// `# TYPE` each, samples of each series in time order, timestamps in
/// seconds (millisecond precision), ending in `# EOF`.
pub fn render_openmetrics(series: &[OpenMetricsSeries]) -> Result<String, HarnessError> {
    let mut families: BTreeMap<&str, (MetricKind, Vec<&OpenMetricsSeries>)> = BTreeMap::new();
    for s in series {
        if !valid_name(&s.name, true) {
            return Err(HarnessError::InvalidSeries(format!(
                "bad metric name {:?}",
                s.name
            )));
        }
        if let Some(bad) = s.labels.keys().find(|k| !valid_name(k, false)) {
            return Err(HarnessError::InvalidSeries(format!(
                "bad label name {bad:?}"
            )));
        }
        let entry = families.entry(s.family()?).or_insert((s.kind, Vec::new()));
        if entry.0 != s.kind {
            return Err(HarnessError::InvalidSeries(format!(
                "family of {:?} is declared both counter and gauge",
                s.name
            )));
        }
        entry.1.push(s);
    }
    let mut out = String::new();
    for (family, (kind, members)) in families {
        let kind = match kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        };
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for s in members {
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                .collect::<Vec<_>>()
                .join(",");
            let mut samples = s.samples.clone();
            samples.sort_by_key(|(t, _)| *t);
            for (t, v) in samples {
                let millis = t.timestamp_millis();
                let _ = writeln!(
                    out,
                    "{}{{{labels}}} {} {}.{:03}",
                    s.name,
                    format_value(v),
                    millis.div_euclid(1000),
                    millis.rem_euclid(1000)
                );
            }
        }
    }
    out.push_str("# EOF\n");
    Ok(out)
}

/// `promtool`, overridable with `REDBLACK_PROMTOOL`.
pub fn promtool_binary() -> PathBuf {
    std::env::var_os("REDBLACK_PROMTOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/promtool"))
}

/// Write `series` into TSDB blocks under `dir` (a Prometheus data
/// directory). Nothing to write is not an error.
pub fn backfill(series: &[OpenMetricsSeries], dir: &Path) -> Result<(), HarnessError> {
    if series.iter().all(|s| s.samples.is_empty()) {
        return Ok(());
    }
    let text = render_openmetrics(series)?;
    backfill_openmetrics_text(&text, dir)?;
    tracing::debug!(dir = %dir.display(), series = series.len(), "backfilled series");
    Ok(())
}

/// Run `promtool tsdb create-blocks-from openmetrics` on `text` (a complete
/// OpenMetrics exposition ending in `# EOF`), writing blocks under `dir`.
pub fn backfill_openmetrics_text(text: &str, dir: &Path) -> Result<(), HarnessError> {
    let scratch = tempfile::tempdir().map_err(HarnessError::io("create a scratch directory"))?;
    let input = scratch.path().join("series.om");
    std::fs::write(&input, text).map_err(HarnessError::io("write the OpenMetrics file"))?;
    std::fs::create_dir_all(dir).map_err(HarnessError::io("create the data directory"))?;
    let output = Command::new(promtool_binary())
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir)
        .output()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                HarnessError::MissingBinary {
                    binary: promtool_binary().display().to_string(),
                    variable: "REDBLACK_PROMTOOL",
                }
            } else {
                HarnessError::Io {
                    context: "run promtool",
                    source,
                }
            }
        })?;
    if !output.status.success() {
        return Err(HarnessError::Promtool {
            status: output.status.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_contiguously_with_escapes() {
        let t = |s| DateTime::from_timestamp_millis(s).unwrap();
        let mut a = OpenMetricsSeries::counter("req_total", &[("pod", "p\"1\\\n")]);
        a.push(t(2_000), 2.0);
        a.push(t(1_500), 1.0);
        let mut g = OpenMetricsSeries::gauge("lat", &[]);
        g.push(t(1_000), f64::NAN);
        g.push(t(2_000), f64::INFINITY);
        let text = render_openmetrics(&[a, g]).unwrap();
        assert_eq!(
            text,
            "# TYPE lat gauge\nlat{} NaN 1.000\nlat{} +Inf 2.000\n\
             # TYPE req counter\nreq_total{pod=\"p\\\"1\\\\\\n\"} 1 1.500\nreq_total{pod=\"p\\\"1\\\\\\n\"} 2 2.000\n# EOF\n"
        );
    }

    #[test]
    fn rejects_bad_names() {
        assert!(render_openmetrics(&[OpenMetricsSeries::counter("req", &[])]).is_err());
        assert!(render_openmetrics(&[OpenMetricsSeries::gauge("1x", &[])]).is_err());
        assert!(render_openmetrics(&[OpenMetricsSeries::gauge("x", &[("a-b", "1")])]).is_err());
    }
}
