//! Per-Rollout state as metrics, read from the Rollout controller's caches at
//! each scrape (as kube-state-metrics does) rather than recorded by
//! reconciles: a series exists exactly while its Rollout (or analysis) is in
//! the cache, so a phase or revision change replaces the old label set and a
//! deleted Rollout drops its series with no bookkeeping — and nothing is
//! kept in memory but the caches the controller already has.
//!
//! [`series`] is PURE (objects in, label sets and values out); the
//! [`StateCollector`] only snapshots the stores and encodes. A scrape reads
//! each cached Rollout as a [`RolloutView`] (its name and the few status
//! fields the series show), one at a time: unpacking every Rollout whole at
//! once made each scrape the operator's memory peak (2.5× its settled RSS at
//! 10,000 Rollouts, docs/benchmarks.md).

use kube::runtime::reflector::{ObjectRef, Store};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Deserialize;

use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{Phase, Rollout};
use crate::runtime::packed::Packed;

/// `redblack_rollout_info`: one series per Rollout, value 1.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct InfoLabels {
    pub namespace: String,
    pub rollout: String,
    /// `status.phase`; `Unknown` before the first status.
    pub phase: String,
    /// `status.stableRevision` (the pod-template hash live), or empty.
    pub stable_revision: String,
    /// `status.currentRevision` (the template's hash), or empty.
    pub current_revision: String,
}

/// `redblack_analysis_score`: the latest score of an analysis the Rollout's
/// status names (at most one canary and one post-promotion analysis).
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct ScoreLabels {
    pub namespace: String,
    pub rollout: String,
    pub analysis: String,
    /// `canary` or `post_promotion`.
    pub stage: String,
}

/// What one scrape reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    pub info: Vec<InfoLabels>,
    pub scores: Vec<(ScoreLabels, f64)>,
}

/// What the series read of a Rollout: a view of its JSON (the same field
/// names), deserialized without the spec or the rest of the status.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RolloutView {
    pub metadata: ViewMeta,
    #[serde(default)]
    pub status: Option<ViewStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ViewMeta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewStatus {
    #[serde(default)]
    pub phase: Option<Phase>,
    #[serde(default)]
    pub stable_revision: Option<String>,
    #[serde(default)]
    pub current_revision: Option<String>,
    #[serde(default)]
    pub canary: Option<ViewAnalysis>,
    #[serde(default)]
    pub post_promotion: Option<ViewAnalysis>,
}

/// `status.canary` / `status.postPromotion`: the analysis it names.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewAnalysis {
    #[serde(default)]
    pub analysis_name: Option<String>,
}

/// The series of `rollouts`, with scores looked up by `score(namespace, name)`.
pub fn series(
    rollouts: impl IntoIterator<Item = RolloutView>,
    score: impl Fn(&str, &str) -> Option<f64>,
) -> Series {
    let mut out = Series::default();
    for rollout in rollouts {
        let namespace = rollout.metadata.namespace.unwrap_or_default();
        let name = rollout.metadata.name.unwrap_or_default();
        let status = rollout.status.unwrap_or_default();
        out.info.push(InfoLabels {
            namespace: namespace.clone(),
            rollout: name.clone(),
            phase: status
                .phase
                .map_or_else(|| "Unknown".to_owned(), |p| format!("{p:?}")),
            stable_revision: status.stable_revision.unwrap_or_default(),
            current_revision: status.current_revision.unwrap_or_default(),
        });
        let named = [
            ("canary", status.canary.and_then(|c| c.analysis_name)),
            (
                "post_promotion",
                status.post_promotion.and_then(|p| p.analysis_name),
            ),
        ];
        for (stage, analysis) in named {
            if let Some(analysis) = analysis
                && let Some(value) = score(&namespace, &analysis)
            {
                out.scores.push((
                    ScoreLabels {
                        namespace: namespace.clone(),
                        rollout: name.clone(),
                        analysis,
                        stage: stage.to_owned(),
                    },
                    value,
                ));
            }
        }
    }
    out.info.sort();
    out.scores.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Encodes [`series`] of the caches at each scrape.
#[derive(Debug)]
pub struct StateCollector {
    rollouts: Store<Packed<Rollout>>,
    analyses: Store<CanaryAnalysis>,
}

impl StateCollector {
    pub fn new(rollouts: Store<Packed<Rollout>>, analyses: Store<CanaryAnalysis>) -> Self {
        StateCollector { rollouts, analyses }
    }
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Read per scrape (the cache keeps JSON, see `Packed`), one Rollout at
        // a time; one that does not unpack (a bug) is left out and logged by
        // its reconcile.
        let rollouts = self.rollouts.state();
        let views = rollouts.iter().filter_map(|p| p.view::<RolloutView>().ok());
        let series = series(views, |namespace, name| {
            self.analyses
                .get(&ObjectRef::new(name).within(namespace))
                .and_then(|a| a.status.as_ref().and_then(|s| s.score))
                .filter(|s| s.is_finite())
        });
        let info = Family::<InfoLabels, Gauge>::default();
        for labels in &series.info {
            info.get_or_create(labels).set(1);
        }
        let scores = Family::<ScoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (labels, value) in &series.scores {
            scores.get_or_create(labels).set(*value);
        }
        info.encode(encoder.encode_descriptor(
            "rollout_info",
            "One series per Rollout (value 1): its phase and revisions",
            None,
            info.metric_type(),
        )?)?;
        scores.encode(encoder.encode_descriptor(
            "analysis_score",
            "Latest score (0-100) of the analyses a Rollout's status names",
            None,
            scores.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A Rollout with `status`, read as a scrape reads it: packed (as the
    /// cache holds it), then viewed.
    fn rollout(name: &str, status: serde_json::Value) -> RolloutView {
        let mut r: Rollout = serde_json::from_value(json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "a", "image": "i"}]}},
                     "strategy": {"redBlack": {"activeService": name}}}
        }))
        .unwrap();
        r.status = serde_json::from_value(status).unwrap();
        Packed::pack(r).unwrap().view().unwrap()
    }

    #[test]
    fn one_info_series_per_rollout_and_scores_of_named_analyses_only() {
        let rollouts = [
            rollout(
                "web",
                json!({"phase": "Progressing", "stableRevision": "aaa", "currentRevision": "bbb",
                       "canary": {"analysisName": "web-bbb-1", "attempt": 1, "trafficPercent": 20}}),
            ),
            rollout("new", json!(null)),
        ];
        let s = series(rollouts, |ns, name| {
            (ns == "shop" && name == "web-bbb-1").then_some(87.5)
        });
        let phases: Vec<_> = s
            .info
            .iter()
            .map(|i| (i.rollout.as_str(), i.phase.as_str()))
            .collect();
        assert_eq!(phases, [("new", "Unknown"), ("web", "Progressing")]);
        assert_eq!(s.info[1].stable_revision, "aaa");
        assert_eq!(s.info[1].current_revision, "bbb");
        assert_eq!(s.scores.len(), 1);
        assert_eq!(s.scores[0].0.analysis, "web-bbb-1");
        assert_eq!(s.scores[0].0.stage, "canary");
        assert_eq!(s.scores[0].1, 87.5);
    }

    #[test]
    fn an_analysis_without_a_score_has_no_series() {
        let rollouts = [rollout(
            "web",
            json!({"phase": "Healthy",
                   "postPromotion": {"revision": "b", "previousRevision": "a", "analysisName": "web-b-post",
                                     "switchedAt": "2024-01-01T00:00:00Z", "phase": "Running"}}),
        )];
        assert!(series(rollouts.clone(), |_, _| None).scores.is_empty());
        let s = series(rollouts, |_, _| Some(100.0));
        assert_eq!(s.scores[0].0.stage, "post_promotion");
    }
}
