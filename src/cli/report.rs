//! `redblack report NAME`: prints a CanaryAnalysis as a canary report, Netflix
//! style — the analysis header (phase, window, intervals with their scores),
//! then "Canary Score: 87% MARGINAL" and every metric, hot ones first, with
//! the numbers behind each decision (the judge's `render_report`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kube::api::Api;
use kube::{Client, ResourceExt};

use super::CliResult;
use crate::api::canary_analysis::{AnalysisScope, CanaryAnalysis, IntervalResult};
use redblack_judge::{Band, JudgeResult, render_report};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The human-readable report.
    Text,
    /// The whole object as JSON.
    Json,
    /// The whole object as YAML.
    Yaml,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Name of the CanaryAnalysis.
    pub name: String,
    /// Namespace; default: the kubeconfig context's.
    #[arg(long, short)]
    pub namespace: Option<String>,
    /// Path to a kubeconfig; default: $KUBECONFIG, ~/.kube/config, or in-cluster.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    #[arg(long, short, value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Connect(#[from] crate::runtime::client::ClientError),
    #[error("cannot read CanaryAnalysis {namespace}/{name}: {source}")]
    Get {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot encode the CanaryAnalysis: {0}")]
    Encode(String),
}

/// A client from `kubeconfig` (or the usual inference).
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ReportError> {
    Ok(crate::runtime::client::connect(kubeconfig, None).await?.0)
}

/// Fetches and renders one analysis.
pub async fn report(
    client: Client,
    namespace: Option<&str>,
    name: &str,
    format: ReportFormat,
) -> Result<String, ReportError> {
    let namespace = namespace.unwrap_or(client.default_namespace()).to_owned();
    let api: Api<CanaryAnalysis> = Api::namespaced(client, &namespace);
    let ca = api.get(name).await.map_err(|source| ReportError::Get {
        namespace,
        name: name.to_owned(),
        source,
    })?;
    match format {
        ReportFormat::Text => Ok(render_analysis(&ca)),
        ReportFormat::Json => serde_json::to_string_pretty(&ca)
            .map(|s| s + "\n")
            .map_err(|e| ReportError::Encode(e.to_string())),
        ReportFormat::Yaml => {
            serde_yaml::to_string(&ca).map_err(|e| ReportError::Encode(e.to_string()))
        }
    }
}

pub async fn run(args: ReportArgs) -> CliResult {
    let client = client(args.kubeconfig.as_deref()).await?;
    print!(
        "{}",
        report(client, args.namespace.as_deref(), &args.name, args.output).await?
    );
    Ok(())
}

fn band_name(band: Band) -> &'static str {
    match band {
        Band::Pass => "Pass",
        Band::Marginal => "Marginal",
        Band::Fail => "Fail",
        Band::Inconclusive => "Inconclusive",
    }
}

fn time(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> String {
    t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn opt_time(t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    t.map_or_else(|| "-".to_owned(), time)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

pub(crate) fn scope_text(scope: &AnalysisScope, default_ns: &str, default_role: &str) -> String {
    let mut parts = vec![format!(
        "namespace {}",
        scope.namespace.as_deref().unwrap_or(default_ns)
    )];
    if let Some(rs) = &scope.replica_set {
        parts.push(format!("replicaSet {rs}"));
    }
    if let Some(rev) = &scope.revision {
        parts.push(format!("revision {rev}"));
    }
    parts.push(format!(
        "role {}",
        scope.role.as_deref().unwrap_or(default_role)
    ));
    if let Some(shift) = &scope.time_shift {
        parts.push(format!("timeShift {shift}"));
    }
    for (k, v) in &scope.variables {
        parts.push(format!("{k}={v}"));
    }
    parts.join(", ")
}

fn interval_row(i: &IntervalResult) -> Vec<String> {
    vec![
        i.index.to_string(),
        time(&i.start),
        time(&i.end),
        i.score
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}")),
        band_name(i.band).to_owned(),
        i.inconclusive_reason.clone().unwrap_or_default(),
    ]
}

fn table(rows: &[Vec<String>]) -> String {
    redblack_judge::report::aligned_table(rows, "  ")
}

/// The report text of one analysis (pure).
pub fn render_analysis(ca: &CanaryAnalysis) -> String {
    let ns = ca.namespace().unwrap_or_default();
    let status = ca.status.clone().unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(out, "CanaryAnalysis {ns}/{}", ca.name_any());
    let phase = status.phase.map_or("-", |p| p.as_str());
    let _ = writeln!(out, "Phase:       {phase}");
    if let Some(message) = &status.message {
        let _ = writeln!(out, "Message:     {message}");
    }
    if let Some(w) = &status.window {
        let _ = writeln!(
            out,
            "Window:      {} .. {} (judged from {}, interval {}s, step {}s)",
            opt_time(w.start.as_ref()),
            opt_time(w.end.as_ref()),
            opt_time(w.judged_from.as_ref()),
            opt(w.interval_seconds),
            opt(w.step_seconds)
        );
    }
    let _ = writeln!(
        out,
        "Control:     {}",
        scope_text(&ca.spec.control, &ns, "baseline")
    );
    let _ = writeln!(
        out,
        "Experiment:  {}",
        scope_text(&ca.spec.experiment, &ns, "canary")
    );
    if let Some(p) = ca.spec.prometheus.as_ref() {
        let _ = writeln!(out, "Prometheus:  {}", p.url);
    }
    if let Some(t) = &status.started_at {
        let _ = writeln!(out, "Started:     {}", time(t));
    }
    if let Some(t) = &status.completed_at {
        let _ = writeln!(out, "Completed:   {}", time(t));
    }
    if let Some(e) = &status.early_pass {
        let _ = writeln!(
            out,
            "Early pass:  passed at {}; the last metric crossed at step {} ({}), margin {}",
            opt_time(e.passed_at.as_ref()),
            opt(e.crossed_at_step),
            opt_time(e.crossed_at.as_ref()),
            opt(e.margin)
        );
    }
    let _ = write!(
        out,
        "Intervals:   {}/{} judged",
        status.completed_intervals, status.total_intervals
    );
    if let Some(a) = &status.aggregate {
        let _ = write!(
            out,
            " (pass {}, marginal {}, fail {}, inconclusive {}",
            a.pass, a.marginal, a.fail, a.inconclusive
        );
        if let Some(min) = a.min_score {
            let mean = if a.scored > 0 {
                a.score_sum / f64::from(a.scored)
            } else {
                0.0
            };
            let _ = write!(out, "; min score {min:.1}, mean {mean:.1}");
        }
        out.push(')');
    }
    out.push('\n');
    if !status.intervals.is_empty() {
        let mut rows = vec![
            ["#", "START", "END", "SCORE", "BAND", "NOTE"]
                .map(String::from)
                .to_vec(),
        ];
        rows.extend(status.intervals.iter().map(interval_row));
        out.push_str(&table(&rows));
        if (status.intervals.len() as u32) < status.completed_intervals {
            let _ = writeln!(
                out,
                "  (the last {} of {} intervals)",
                status.intervals.len(),
                status.completed_intervals
            );
        }
    }
    out.push('\n');
    match status.judgement.as_ref().filter(|j| j.score.is_some()) {
        Some(j) => {
            let end = status
                .intervals
                .iter()
                .find(|i| Some(i.index) == j.interval)
                .map(|i| time(&i.end));
            let from = opt_time(status.window.as_ref().and_then(|w| w.judged_from.as_ref()));
            match &j.at {
                // A sequential look between boundaries ended the run.
                Some(at) => {
                    let _ = writeln!(
                        out,
                        "Latest judgement: a sequential look at {}, over {from} .. {} (during interval {})\n",
                        time(at),
                        time(at),
                        status.completed_intervals + 1
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "Latest judgement: interval {}, over {from} .. {}\n",
                        opt(j.interval),
                        end.unwrap_or_else(|| "-".to_owned())
                    );
                }
            }
            // Statuses written before `judgement.mode` existed: the spec's.
            let mode = j.mode.or(ca.spec.mode).unwrap_or_default();
            let result = JudgeResult {
                score: j.score.unwrap_or(0.0),
                band: j.band.unwrap_or(Band::Inconclusive),
                reason: j.reason.clone().unwrap_or_default(),
                forced_zero: None,
                confidence: j.confidence.unwrap_or(0.0),
                mode,
                // Not recorded per judgement: the spec's, as the judge applied it.
                tolerance: redblack_judge::effective_tolerance(mode, ca.spec.tolerance),
                marginal_threshold: j.marginal_threshold.unwrap_or(0.0),
                pass_threshold: j.pass_threshold.unwrap_or(0.0),
                metrics: status.metrics.clone(),
                groups: status.groups.clone(),
            };
            out.push_str(&render_report(&result));
            if let Some(n) = status.metrics_omitted {
                let _ = writeln!(
                    out,
                    "\n({n} more metrics, passing or without data, are left out of the status to keep it small)"
                );
            }
        }
        None => out.push_str("No interval has been judged yet.\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::controller::Limits;
    use crate::analysis::controller::plan::{AnalysisPlan, plan};
    use crate::analysis::controller::progress::{IntervalOutcome, Step};
    use redblack_judge::{JudgeConfig, MetricConfig, MetricSamples, judge};

    #[test]
    fn renders_header_intervals_and_hot_metrics() {
        let mut ca: CanaryAnalysis = serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysis",
            "metadata": {"name": "web", "namespace": "shop", "generation": 1},
            "spec": {"prometheus": {"url": "http://p:9090"}, "control": {"replicaSet": "web-1"},
                     "experiment": {"replicaSet": "web-2"}, "startTime": "2023-11-14T22:13:20Z",
                     "lifetime": "2m", "interval": "1m",
                     "metrics": [{"name": "latency", "query": "q"}, {"name": "cpu", "query": "q"}]}
        }))
        .unwrap();
        let config = JudgeConfig::new(vec![MetricConfig::new("latency"), MetricConfig::new("cpu")]);
        let base: Vec<f64> = (0..60).map(|v| 100.0 + f64::from(v % 7)).collect();
        let slow: Vec<f64> = base.iter().map(|v| v * 3.0).collect();
        let result = judge(
            &config,
            &[
                MetricSamples::continuous("latency", &slow, &base),
                MetricSamples::continuous("cpu", &base, &base),
            ],
        )
        .unwrap();
        let now = chrono::DateTime::from_timestamp(1_700_010_000, 0).unwrap();
        let AnalysisPlan::Judge {
            spec,
            mut progress,
            intervals,
        } = plan(&ca, now, None, Limits::default())
        else {
            panic!("expected a judgement");
        };
        for k in intervals {
            if let Step::Finished(_) =
                progress.record(&spec.schedule, k, IntervalOutcome::Judged(result.clone()))
            {
                break;
            }
        }
        ca.status = Some(progress.status);
        let text = render_analysis(&ca);
        assert!(text.contains("CanaryAnalysis shop/web"), "{text}");
        assert!(text.contains("Phase:       Failed"), "{text}");
        assert!(text.contains("Canary Score: 50% FAIL"), "{text}");
        assert!(text.contains("replicaSet web-2"), "{text}");
        // The hot metric comes first in the metric table.
        let latency = text.find("\nlatency").expect(&text);
        let cpu = text.find("\ncpu").expect(&text);
        assert!(latency < cpu, "{text}");
        assert!(text.contains("Intervals:   1/2 judged"), "{text}");
    }

    #[test]
    fn renders_an_unjudged_analysis() {
        let ca: CanaryAnalysis = serde_json::from_value(serde_json::json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "CanaryAnalysis",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"control": {}, "experiment": {}, "lifetime": "2m", "interval": "1m", "metrics": []}
        }))
        .unwrap();
        let text = render_analysis(&ca);
        assert!(text.contains("No interval has been judged yet."), "{text}");
        assert!(text.contains("Phase:       -"), "{text}");
    }
}
