//! GitOps health (docs/gitops.md): the Argo CD Lua health checks shipped in
//! `charts/redblack/argocd/`, run by a real Lua 5.1 interpreter, and
//! kstatus' rules (Flux), both applied to Rollouts and CanaryAnalyses
//! recorded from real runs in the sandbox (`tests/data/gitops/`, written by
//! the ignored generator in `gitops/generate.rs`).
//!
//! Each recorded scenario has one documented expectation below; a fixture
//! without one, or an expectation without a fixture, fails — as does a
//! phase of the API no fixture shows.

mod support;

#[path = "gitops/fixtures.rs"]
mod fixtures;
#[path = "gitops/generate.rs"]
mod generate;
#[path = "gitops/kstatus.rs"]
mod kstatus;
#[path = "gitops/lua.rs"]
mod lua;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fixtures::Kind;
use kstatus::{Reading, Status};
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase};
use redblack::api::{CanaryPhase, Phase, Rollout};
use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script(kind: Kind) -> PathBuf {
    root().join("charts/redblack/argocd").join(match kind {
        Kind::Rollout => "rollout-health.lua",
        Kind::CanaryAnalysis => "canaryanalysis-health.lua",
    })
}

/// Scenario → (Argo CD health, kstatus with the Ready rule, kstatus without
/// it): the tables of docs/gitops.md.
fn expected(kind: Kind) -> BTreeMap<&'static str, (&'static str, Status, Status)> {
    use Status::{Current, Failed, InProgress};
    let rows: &[(&str, &str, Status, Status)] = match kind {
        Kind::Rollout => &[
            (
                "first-deploy-progressing",
                "Progressing",
                InProgress,
                InProgress,
            ),
            ("healthy", "Healthy", Current, Current),
            ("update-progressing", "Progressing", InProgress, InProgress),
            ("progress-deadline-exceeded", "Degraded", Failed, Failed),
            ("awaiting-promotion", "Suspended", InProgress, Current),
            ("aborted", "Degraded", Failed, Failed),
            ("paused-live", "Suspended", Current, Current),
            ("paused-new-revision", "Suspended", InProgress, Current),
            ("outside-promotion-window", "Suspended", InProgress, Current),
            ("invalid-spec", "Degraded", Failed, Failed),
            ("service-missing", "Degraded", Failed, Failed),
            ("canary-progressing", "Progressing", InProgress, InProgress),
            ("canary-analysing", "Progressing", InProgress, InProgress),
            ("canary-promoted-by-person", "Healthy", Current, Current),
            ("canary-passed", "Healthy", Current, Current),
            ("canary-failed", "Degraded", Failed, Failed),
            ("canary-marginal", "Suspended", InProgress, Current),
            ("canary-inconclusive", "Suspended", InProgress, Current),
            ("canary-error", "Degraded", Failed, Failed),
            (
                "canary-template-missing",
                "Progressing",
                InProgress,
                InProgress,
            ),
            ("canary-analysis-refused", "Degraded", Failed, Failed),
            ("post-promotion-analysing", "Healthy", Current, Current),
            ("post-promotion-failed-reverted", "Degraded", Failed, Failed),
            ("stale-generation", "Progressing", InProgress, InProgress),
        ],
        Kind::CanaryAnalysis => &[
            ("pending", "Progressing", InProgress, InProgress),
            ("running", "Progressing", InProgress, InProgress),
            ("passed", "Healthy", Current, Current),
            ("marginal", "Suspended", Current, Current),
            ("failed", "Degraded", Current, Current),
            ("inconclusive", "Suspended", Current, Current),
            ("error", "Degraded", Failed, Failed),
            ("stale-generation", "Progressing", InProgress, InProgress),
        ],
    };
    rows.iter()
        .map(|(name, argo, with, without)| (*name, (*argo, *with, *without)))
        .collect()
}

/// The recorded fixtures, checked to be exactly the documented scenarios.
fn recorded(kind: Kind) -> Vec<(String, Value)> {
    let all = fixtures::load(kind);
    let have: BTreeSet<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let want: BTreeSet<&str> = expected(kind).keys().copied().collect();
    assert_eq!(
        have, want,
        "{kind:?}: fixtures and documented scenarios differ (regenerate, or document the new one)"
    );
    all
}

#[test]
fn the_interpreter_is_lua_5_1() {
    assert_eq!(lua::version(), "Lua 5.1");
}

/// `value` without `null`s: the API server drops them from what it stores,
/// some judge types write them (`canaryMean: null`).
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[test]
fn fixtures_still_deserialize_into_the_current_types() {
    for (name, object) in recorded(Kind::Rollout) {
        let typed: Rollout = serde_json::from_value(object.clone())
            .unwrap_or_else(|e| panic!("rollout/{name}: {e}"));
        // Every status field is still known, with its old meaning of type.
        let back = serde_json::to_value(&typed.status).expect("status serialises");
        assert_eq!(
            without_nulls(&back),
            object["status"],
            "rollout/{name}: status round trip"
        );
    }
    for (name, object) in recorded(Kind::CanaryAnalysis) {
        let typed: CanaryAnalysis = serde_json::from_value(object.clone())
            .unwrap_or_else(|e| panic!("canaryanalysis/{name}: {e}"));
        let back = serde_json::to_value(&typed.status).expect("status serialises");
        assert_eq!(
            without_nulls(&back),
            object["status"],
            "canaryanalysis/{name}: status round trip"
        );
    }
}

/// Every value of the phase enums, by an exhaustive match: a new variant
/// does not compile until it is listed here (and then needs a fixture).
fn all_phases() -> Vec<Phase> {
    let all = [
        Phase::Progressing,
        Phase::Paused,
        Phase::Healthy,
        Phase::Degraded,
        Phase::Aborted,
        Phase::InvalidSpec,
    ];
    for p in all {
        match p {
            Phase::Progressing
            | Phase::Paused
            | Phase::Healthy
            | Phase::Degraded
            | Phase::Aborted
            | Phase::InvalidSpec => {}
        }
    }
    all.to_vec()
}

fn all_canary_phases() -> Vec<CanaryPhase> {
    use CanaryPhase::*;
    let all = [
        Progressing,
        Analysing,
        Passed,
        Promoted,
        Marginal,
        Failed,
        Inconclusive,
        Error,
    ];
    for p in all {
        match p {
            Progressing | Analysing | Passed | Promoted | Marginal | Failed | Inconclusive
            | Error => {}
        }
    }
    all.to_vec()
}

fn all_analysis_phases() -> Vec<CanaryAnalysisPhase> {
    use CanaryAnalysisPhase::*;
    let all = [
        Pending,
        Running,
        Passed,
        Marginal,
        Failed,
        Inconclusive,
        Error,
    ];
    for p in all {
        match p {
            Pending | Running | Passed | Marginal | Failed | Inconclusive | Error => {}
        }
    }
    all.to_vec()
}

#[test]
fn the_fixtures_show_every_phase() {
    let rollouts: Vec<Rollout> = recorded(Kind::Rollout)
        .into_iter()
        .map(|(_, v)| serde_json::from_value(v).expect("a Rollout"))
        .collect();
    let status = |r: &Rollout| r.status.clone().unwrap_or_default();
    for phase in all_phases() {
        assert!(
            rollouts.iter().any(|r| status(r).phase == Some(phase)),
            "no fixture in Rollout phase {phase:?}"
        );
    }
    for phase in all_canary_phases() {
        assert!(
            rollouts
                .iter()
                .any(|r| status(r).canary.and_then(|c| c.phase) == Some(phase)),
            "no fixture with canary phase {phase:?}"
        );
    }
    let analyses: Vec<CanaryAnalysis> = recorded(Kind::CanaryAnalysis)
        .into_iter()
        .map(|(_, v)| serde_json::from_value(v).expect("a CanaryAnalysis"))
        .collect();
    for phase in all_analysis_phases() {
        assert!(
            analyses
                .iter()
                .any(|a| a.status.as_ref().and_then(|s| s.phase) == Some(phase)),
            "no CanaryAnalysis fixture in phase {phase:?}"
        );
    }
}

fn argocd_health_as_documented(kind: Kind) {
    let objects = recorded(kind);
    let expected = expected(kind);
    let mut wrong = Vec::new();
    for (name, health) in lua::health(&script(kind), &objects) {
        let (want, _, _) = expected[name.as_str()];
        if health.status != want || health.message.is_empty() {
            wrong.push(format!("{name}: {health:?}, documented {want}"));
        }
    }
    assert!(wrong.is_empty(), "{kind:?}:\n{}", wrong.join("\n"));
}

#[test]
fn argocd_rollout_health_of_every_recorded_rollout() {
    argocd_health_as_documented(Kind::Rollout);
}

#[test]
fn argocd_canaryanalysis_health_of_every_recorded_analysis() {
    argocd_health_as_documented(Kind::CanaryAnalysis);
}

#[test]
fn argocd_health_of_a_stale_status_names_the_generation() {
    for kind in [Kind::Rollout, Kind::CanaryAnalysis] {
        let stale: Vec<(String, Value)> = recorded(kind)
            .into_iter()
            .filter(|(n, _)| n == "stale-generation")
            .collect();
        let generation = &stale[0].1["metadata"]["generation"];
        let observed = &stale[0].1["status"]["observedGeneration"];
        assert_ne!(generation, observed, "{kind:?}: the fixture is stale");
        let (_, health) = &lua::health(&script(kind), &stale)[0];
        assert_eq!(
            health.message,
            format!("waiting for the controller to observe generation {generation}")
        );
    }
}

/// Shapes no run produces, but a check must survive: no status yet, a
/// status without phase, a phase from a newer operator.
#[test]
fn argocd_health_of_objects_no_run_records() {
    let objects = |statuses: &[Value]| -> Vec<(String, Value)> {
        statuses
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut o = json!({"metadata": {"name": "x", "generation": 3}});
                if !s.is_null() {
                    o["status"] = s.clone();
                }
                (i.to_string(), o)
            })
            .collect()
    };
    let cases = objects(&[
        Value::Null,
        json!({"observedGeneration": 3}),
        json!({"observedGeneration": 3, "phase": "Exploded"}),
    ]);
    let got = |kind| -> Vec<String> {
        lua::health(&script(kind), &cases)
            .into_iter()
            .map(|(_, h)| h.status)
            .collect()
    };
    assert_eq!(
        got(Kind::Rollout),
        ["Progressing", "Unknown", "Unknown"],
        "Rollout"
    );
    assert_eq!(
        got(Kind::CanaryAnalysis),
        ["Progressing", "Progressing", "Unknown"],
        "CanaryAnalysis"
    );
}

#[test]
fn kstatus_of_every_recorded_object_is_as_documented() {
    let mut wrong = Vec::new();
    for kind in [Kind::Rollout, Kind::CanaryAnalysis] {
        let expected = expected(kind);
        for (name, object) in recorded(kind) {
            let (_, with, without) = expected[name.as_str()];
            let got = (
                kstatus::compute(&object, Reading::WithReady),
                kstatus::compute(&object, Reading::WithoutReady),
            );
            if got != (with, without) {
                wrong.push(format!(
                    "{kind:?}/{name}: {got:?}, documented {:?}",
                    (with, without)
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The conventions the two tables rest on, checked on every recorded
/// Rollout: Stalled exactly in the phases that need a person, never beside
/// Reconciling, Ready True only when the current revision is live.
#[test]
fn recorded_rollout_conditions_keep_the_kstatus_conventions() {
    for (name, object) in recorded(Kind::Rollout) {
        let r: Rollout = serde_json::from_value(object).expect("a Rollout");
        let s = r.status.clone().expect("a status");
        let is_true = |t: &str| {
            s.conditions
                .iter()
                .any(|c| c.type_ == t && c.status == redblack::api::ConditionStatus::True)
        };
        assert!(
            s.observed_generation.is_some(),
            "{name}: observedGeneration"
        );
        let needs_person = matches!(
            s.phase,
            Some(Phase::Degraded | Phase::Aborted | Phase::InvalidSpec)
        );
        assert_eq!(is_true("Stalled"), needs_person, "{name}: Stalled");
        assert!(
            !(is_true("Stalled") && is_true("Reconciling")),
            "{name}: Stalled and Reconciling"
        );
        if is_true("Ready") {
            assert!(
                matches!(s.phase, Some(Phase::Healthy | Phase::Paused)),
                "{name}: Ready in {:?}",
                s.phase
            );
            assert_eq!(
                s.stable_revision, s.current_revision,
                "{name}: Ready but not live"
            );
        }
    }
}

/// docs/gitops.md's `argocd-cm` snippet carries the shipped scripts, byte
/// for byte, so that copying it installs what the tests ran.
#[test]
fn the_argocd_cm_snippet_in_the_docs_is_the_shipped_scripts() {
    let doc = std::fs::read_to_string(root().join("docs/gitops.md")).expect("docs/gitops.md");
    let block = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .find(|b| b.contains("kind: ConfigMap") && b.contains("argocd-cm"))
        .expect("an argocd-cm ConfigMap block in docs/gitops.md");
    // The split took the block's last line break with the fence.
    let block = format!("{block}\n");
    let cm: serde_yaml::Value = serde_yaml::from_str(&block).expect("the block is YAML");
    for (key, kind) in [
        (
            "resource.customizations.health.redblack.io_Rollout",
            Kind::Rollout,
        ),
        (
            "resource.customizations.health.redblack.io_CanaryAnalysis",
            Kind::CanaryAnalysis,
        ),
    ] {
        let shipped = std::fs::read_to_string(script(kind)).expect("shipped script");
        assert_eq!(
            cm["data"][key].as_str(),
            Some(shipped.as_str()),
            "{key} in docs/gitops.md differs from {}",
            script(kind).display()
        );
    }
}
