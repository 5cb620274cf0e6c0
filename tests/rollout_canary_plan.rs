//! Table-driven planner tests of the canary flow (canary + baseline, traffic
//! share, analysis verdicts, manual verbs, promotion windows, post-promotion
//! analysis) and of promotion windows across DST and midnight.

mod common;

use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;

use common::{Sim, analysis_body, condition, switches_to};
use redblack::api::analysis_template::ANALYSIS_TEMPLATE_LABEL;
use redblack::api::{
    ABORT_ANNOTATION, CanaryPhase, ConditionStatus, Outcome, POD_TEMPLATE_HASH_LABEL,
    PROMOTE_ANNOTATION, Phase, PostPromotionPhase, PromotionWindow, RETRY_ANNOTATION, ROLE_LABEL,
    ROLLOUT_LABEL, SCALE_DOWN_AT_ANNOTATION,
};
use redblack::rollout::plan::windows::{self, WindowCheck};
use redblack::rollout::plan::{AnalysisPhase, CanaryStep, Refusal, RouteBackend};
use redblack::rollout::{Action, EventType, Plan, State};

struct Case {
    name: &'static str,
    given: fn() -> Sim,
    then: fn(&Sim, &Plan),
}

fn v1() -> String {
    Sim::new("web:1", 4).hash()
}
fn v2() -> String {
    Sim::new("web:2", 4).hash()
}
fn canary_rs() -> String {
    format!("web-{}-canary", v2())
}
fn baseline_rs() -> String {
    format!("web-{}-baseline", v1())
}
fn analysis(attempt: i32) -> String {
    format!("web-{}-{attempt}", v2())
}

fn traffic_writes(plan: &Plan) -> Vec<&Action> {
    plan.actions
        .iter()
        .filter(|a| a.touches_traffic())
        .collect()
}

fn deleted(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteReplicaSet { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn ensured(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::EnsureReplicaSet { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn analyses(plan: &Plan) -> Vec<(String, serde_json::Value)> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::EnsureCanaryAnalysis { name, spec, .. } => Some((name.clone(), spec.clone())),
            _ => None,
        })
        .collect()
}

fn canary_phase(plan: &Plan) -> Option<CanaryPhase> {
    plan.status.canary.as_ref().and_then(|c| c.phase)
}

fn phase(plan: &Plan) -> Phase {
    plan.status.phase.unwrap()
}

/// v2 applied; canary + baseline created (not ready).
/// The `Paused` condition is True with `reason` (the gate a person must pass).
fn assert_paused(plan: &Plan, reason: &str) {
    let paused = condition(plan, "Paused").expect("a Paused condition");
    assert_eq!(
        (paused.status, paused.reason.as_str()),
        (ConditionStatus::True, reason)
    );
}

fn created(route: bool, baseline: bool, marginal: &str) -> Sim {
    let mut sim = Sim::with_canary(route, baseline, marginal);
    sim.set_image("web:2");
    sim.step();
    sim
}

/// Canary and baseline ready, analysis 1 created, then traffic on (it needs
/// the analysis observed), analysis 1 running.
fn judging(route: bool, marginal: &str) -> Sim {
    let mut sim = created(route, true, marginal);
    sim.make_ready();
    sim.step();
    assert!(sim.observed.analyses.iter().any(|a| a.name == analysis(1)));
    let on = sim.step();
    assert_eq!(
        traffic_writes(&on).len(),
        1,
        "traffic once the analysis exists"
    );
    sim.advance(60);
    sim
}

fn judged(route: bool, marginal: &str, verdict: AnalysisPhase, score: f64, msg: &str) -> Sim {
    let mut sim = judging(route, marginal);
    assert!(sim.judge(&analysis(1), verdict, Some(score), msg));
    sim
}

fn failed_mode_h() -> Sim {
    let mut sim = judged(true, "Pause", AnalysisPhase::Failed, 41.0, "errors High");
    sim.step();
    sim
}

/// What the sandbox answers for `metrics: []` (the CRD's minItems).
const REFUSED: &str = "CanaryAnalysis.redblack.io \"web-x-1\" is invalid: spec.metrics: Invalid value: 0: spec.metrics in body should have at least 1 items";

/// Canary ready, the create of analysis 1 refused by the API: the plan the
/// shell makes with the refusal, applied.
fn refused(route: bool) -> Sim {
    let mut sim = created(route, true, "Pause");
    sim.make_ready();
    sim.observed.refused = Some(Refusal {
        analysis: analysis(1),
        message: REFUSED.to_owned(),
    });
    let held = sim.plan();
    sim.apply(&held);
    sim.observed.refused = None;
    sim.advance(30);
    sim
}

const CASES: &[Case] = &[
    Case {
        name: "analysis create refused: held without traffic, AnalysisCreateFailed naming the analysis and quoting the API, one Warning",
        given: || {
            let mut sim = created(false, true, "Pause");
            sim.make_ready();
            sim.observed.refused = Some(Refusal {
                analysis: analysis(1),
                message: REFUSED.to_owned(),
            });
            sim
        },
        then: |_, plan| {
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert!(analyses(plan).is_empty(), "no second create");
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!(c.traffic_percent, 0);
            assert_eq!(c.analysis_start, None);
            let r = c.analysis_refused.as_ref().unwrap();
            assert_eq!(
                (r.analysis_name.as_str(), r.message.as_str()),
                (analysis(1).as_str(), REFUSED)
            );
            assert_eq!(phase(plan), Phase::Degraded);
            for type_ in ["Progressing", "Ready", "Stalled"] {
                let cond = condition(plan, type_).unwrap();
                assert_eq!(cond.reason, "AnalysisCreateFailed", "{type_}");
                assert!(
                    cond.message
                        .contains(&format!("CanaryAnalysis {}", analysis(1))),
                    "{}",
                    cond.message
                );
                assert!(cond.message.contains(REFUSED), "{}", cond.message);
            }
            let warnings: Vec<_> = plan
                .events
                .iter()
                .filter(|e| e.type_ == EventType::Warning && e.reason == "AnalysisCreateFailed")
                .collect();
            assert_eq!(warnings.len(), 1, "{:?}", plan.events);
            assert!(warnings[0].message.contains(REFUSED));
        },
    },
    Case {
        name: "after a refused create: re-plans hold, write nothing and send no Event (HTTPRoute too)",
        given: || refused(true),
        then: |sim, plan| {
            assert!(
                plan.is_noop(sim.rollout.status.as_ref()),
                "{:?}",
                plan.actions
            );
            assert!(plan.events.is_empty(), "{:?}", plan.events);
            assert_eq!(sim.route_weight("web-canary"), 0);
            assert!(sim.observed.analyses.is_empty());
        },
    },
    Case {
        name: "after a refused create: a changed analysis body (new generation) is created again, still no traffic",
        given: || {
            let mut sim = refused(false);
            let canary = sim.rollout.spec.strategy.red_black.canary.as_mut().unwrap();
            let mut body = analysis_body();
            body["interval"] = serde_json::json!("2m");
            canary.analysis.inline = Some(body);
            sim.bump_generation();
            sim
        },
        then: |sim, plan| {
            assert_eq!(
                analyses(plan).into_iter().map(|a| a.0).collect::<Vec<_>>(),
                vec![analysis(1)]
            );
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!(c.analysis_refused, None);
            assert_eq!(c.analysis_start, Some(sim.now));
            assert_eq!(
                condition(plan, "Progressing").unwrap().reason,
                "CanaryWaitingForAnalysis"
            );
        },
    },
    Case {
        name: "after a refused create: retry starts attempt 2 with a new create, no traffic yet",
        given: || {
            let mut sim = refused(false);
            sim.annotate(RETRY_ANNOTATION, &format!("{}@1", v2()));
            sim
        },
        then: |_, plan| {
            assert_eq!(
                analyses(plan).into_iter().map(|a| a.0).collect::<Vec<_>>(),
                vec![analysis(2)]
            );
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert_eq!(plan.status.canary.as_ref().unwrap().analysis_refused, None);
        },
    },
    Case {
        name: "start: canary + baseline fleets, role labels, distinct hashes, no traffic, no full fleet",
        given: || {
            let mut sim = Sim::with_canary(false, true, "Pause");
            sim.set_image("web:2");
            sim
        },
        then: |sim, plan| {
            assert_eq!(ensured(plan), vec![canary_rs(), baseline_rs()]);
            for action in &plan.actions {
                if let Action::EnsureReplicaSet {
                    name,
                    hash,
                    replicas,
                    template,
                    labels,
                    selector,
                    ..
                } = action
                {
                    let role = if *name == canary_rs() {
                        "canary"
                    } else {
                        "baseline"
                    };
                    assert_eq!(*replicas, 1);
                    assert_eq!(labels.get(ROLE_LABEL).map(String::as_str), Some(role));
                    let pod_labels = template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
                    assert_eq!(pod_labels.get(ROLE_LABEL).map(String::as_str), Some(role));
                    assert_eq!(pod_labels.get(POD_TEMPLATE_HASH_LABEL), Some(hash));
                    assert_eq!(
                        selector
                            .match_labels
                            .as_ref()
                            .unwrap()
                            .get(POD_TEMPLATE_HASH_LABEL),
                        Some(hash)
                    );
                    // Never the revision's own hash: revision Services cannot select them.
                    assert_ne!(*hash, v1());
                    assert_ne!(*hash, v2());
                    let image = &template.spec.as_ref().unwrap().containers[0].image;
                    let want = if role == "canary" { "web:2" } else { "web:1" };
                    assert_eq!(image.as_deref(), Some(want));
                }
            }
            assert!(traffic_writes(plan).is_empty());
            assert_eq!(sim.active_hash(), Some(v1()));
            assert_eq!(phase(plan), Phase::Progressing);
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Progressing));
            assert_eq!(
                condition(plan, "Progressing").unwrap().reason,
                "CanaryProgressing"
            );
            assert_eq!(plan.status.canary.as_ref().unwrap().traffic_percent, 0);
        },
    },
    Case {
        name: "HTTPRoute start: role Services with the fleets (selecting role + role hash), no weights yet",
        given: || {
            let mut sim = Sim::with_canary(true, true, "Pause");
            sim.set_image("web:2");
            sim
        },
        then: |_, plan| {
            let services: Vec<_> = plan
                .actions
                .iter()
                .filter_map(|a| match a {
                    Action::EnsureRoleService {
                        name,
                        role,
                        selector,
                        ports,
                    } => Some((name.clone(), role.clone(), selector.clone(), ports.len())),
                    _ => None,
                })
                .collect();
            assert_eq!(services.len(), 2, "{:?}", plan.actions);
            assert_eq!(
                (services[0].0.as_str(), services[0].1.as_str()),
                ("web-canary", "canary")
            );
            assert_eq!(
                (services[1].0.as_str(), services[1].1.as_str()),
                ("web-baseline", "baseline")
            );
            for (_, role, selector, ports) in &services {
                assert_eq!(selector.get(ROLE_LABEL), Some(role));
                assert_eq!(selector.get("app").map(String::as_str), Some("web"));
                assert_eq!(*ports, 1);
            }
            assert!(traffic_writes(plan).is_empty());
        },
    },
    Case {
        name: "canary removed from the spec while judged (replica counts): selector narrowed, fleets removed",
        given: || {
            let mut sim = judging(false, "Pause");
            sim.rollout.spec.strategy.red_black.canary = None;
            sim
        },
        then: |_, plan| {
            assert_eq!(traffic_writes(plan).len(), 1);
            assert_eq!(switches_to(plan, "web"), Some(v1()));
            assert!(plan.actions[0].touches_traffic());
            assert_eq!(deleted(plan).len(), 2);
            assert_eq!(
                ensured(plan),
                vec![format!("web-{}", v2())],
                "plain red/black from here"
            );
        },
    },
    Case {
        name: "a route outside any canary is left alone (no weights to our role Services)",
        given: || {
            let mut sim = Sim::with_canary(true, true, "Pause");
            sim.observed
                .route
                .as_mut()
                .unwrap()
                .backends
                .push(RouteBackend {
                    service: "legacy".to_owned(),
                    port: Some(8080),
                    weight: 3,
                });
            sim
        },
        then: |sim, plan| {
            assert!(
                plan.is_noop(sim.rollout.status.as_ref()),
                "{:?}",
                plan.actions
            );
        },
    },
    Case {
        name: "first deploy with a canary configured: no canary (nothing to compare with)",
        given: || {
            let mut sim = Sim::new("web:1", 3);
            sim.rollout.spec.strategy.red_black.canary =
                Some(common::canary_config(1, true, "Pause"));
            sim
        },
        then: |sim, plan| {
            assert_eq!(ensured(plan), vec![format!("web-{}", sim.hash())]);
            assert_eq!(plan.status.canary, None);
        },
    },
    Case {
        name: "Passed under promotion: Manual: the full fleet still waits for a promote",
        given: || {
            let mut sim = judged(true, "Pause", AnalysisPhase::Passed, 99.0, "");
            sim.rollout.spec.strategy.red_black.promotion = redblack::api::PromotionPolicy::Manual;
            sim.step();
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(
                condition(plan, "Ready").unwrap().reason,
                "AwaitingPromotion"
            );
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Passed));
        },
    },
    Case {
        name: "canary not fully ready: no traffic, no analysis (share to an unready fleet is 0)",
        given: || {
            let mut sim = created(true, true, "Pause");
            sim.make_ready();
            let rs = sim
                .observed
                .replica_sets
                .iter_mut()
                .find(|r| r.metadata.name.as_deref() == Some(canary_rs().as_str()))
                .unwrap();
            rs.status.as_mut().unwrap().ready_replicas = Some(0);
            sim
        },
        then: |_, plan| {
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert!(analyses(plan).is_empty());
            assert_eq!(plan.status.canary.as_ref().unwrap().traffic_percent, 0);
        },
    },
    Case {
        name: "replica counts: both ready -> analysis created, NO traffic until it is observed",
        given: || {
            let mut sim = created(false, true, "Pause");
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            // Before: traffic was turned on in the same plan as the create, so
            // a refused create left the canary with traffic and no judge.
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            let created = analyses(plan);
            assert_eq!(created.len(), 1);
            let (name, spec) = &created[0];
            assert_eq!(*name, analysis(1));
            assert_eq!(spec["experiment"]["replicaSet"], canary_rs());
            assert_eq!(spec["experiment"]["revision"], v2());
            assert_eq!(spec["experiment"]["role"], "canary");
            assert_eq!(spec["experiment"]["namespace"], "default");
            // The user's own scope variables are kept.
            assert_eq!(spec["experiment"]["variables"]["app"], "web");
            assert_eq!(spec["control"]["replicaSet"], baseline_rs());
            assert_eq!(spec["control"]["revision"], v1());
            assert_eq!(spec["control"]["role"], "baseline");
            assert_eq!(spec["startTime"], "2026-01-01T12:00:00Z");
            assert_eq!(spec["lifetime"], "10m");
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!(c.analysis_start, Some(sim.now));
            assert_eq!(c.analysis_name.as_deref(), Some(analysis(1).as_str()));
            assert_eq!(c.traffic_percent, 0);
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Analysing));
            assert_eq!(
                condition(plan, "Progressing").unwrap().reason,
                "CanaryWaitingForAnalysis"
            );
            assert!(ensured(plan).is_empty(), "no full fleet before the verdict");
        },
    },
    Case {
        name: "replica counts: analysis observed -> selector widened to matchLabels in ONE write",
        given: || {
            let mut sim = created(false, true, "Pause");
            sim.make_ready();
            sim.step();
            assert!(sim.observed.analyses.iter().any(|a| a.name == analysis(1)));
            sim.advance(5);
            sim
        },
        then: |sim, plan| {
            let writes = traffic_writes(plan);
            assert_eq!(writes.len(), 1);
            let Action::SwitchService {
                service, selector, ..
            } = writes[0]
            else {
                unreachable!()
            };
            assert_eq!(service, "web");
            assert_eq!(
                selector,
                sim.rollout.spec.selector.match_labels.as_ref().unwrap()
            );
            assert!(analyses(plan).is_empty(), "created by the plan before");
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!(
                c.analysis_start,
                Some(sim.now - chrono::Duration::seconds(5)),
                "the window starts with the create"
            );
            assert_eq!(c.analysis_name.as_deref(), Some(analysis(1).as_str()));
            // 1 ready canary pod of 4 stable + 1 canary + 1 baseline.
            assert_eq!(c.traffic_percent, 16);
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Analysing));
            assert_eq!(
                condition(plan, "Progressing").unwrap().reason,
                "CanaryAnalysing"
            );
            assert!(ensured(plan).is_empty(), "no full fleet before the verdict");
        },
    },
    Case {
        name: "HTTPRoute: role Services, the analysis, then weights stable 80 / canary 10 / baseline 10",
        given: || {
            let mut sim = created(true, true, "Pause");
            sim.make_ready();
            // This plan creates the analysis; the weights follow once it exists.
            let create = sim.step();
            assert_eq!(analyses(&create).len(), 1);
            assert!(traffic_writes(&create).is_empty(), "{:?}", create.actions);
            // As the API server stores them: defaulted protocol and targetPort
            // must not look like a difference.
            for svc in &mut sim.observed.role_services {
                for port in svc.spec.as_mut().unwrap().ports.as_mut().unwrap() {
                    port.protocol = Some("TCP".to_owned());
                    port.target_port =
                        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80));
                }
            }
            sim
        },
        then: |sim, plan| {
            // The role Services were made with the fleets (the plan before).
            let services: Vec<_> = sim
                .observed
                .role_services
                .iter()
                .map(|s| {
                    let spec = s.spec.as_ref().unwrap();
                    (
                        s.metadata.name.clone().unwrap(),
                        spec.selector.clone().unwrap(),
                        spec.ports.clone().unwrap().len(),
                    )
                })
                .collect();
            assert_eq!(services.len(), 2);
            assert_eq!(services[0].0, "web-canary");
            assert_eq!(
                services[0].1.get(ROLE_LABEL).map(String::as_str),
                Some("canary")
            );
            let canary_hash = common::rs_hash(sim.role_set(&canary_rs()).unwrap());
            assert_eq!(
                services[0].1.get(POD_TEMPLATE_HASH_LABEL),
                Some(&canary_hash)
            );
            assert_eq!(services[0].2, 1, "ports copied from the active Service");
            assert_eq!(services[1].0, "web-baseline");
            assert!(
                !plan
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::EnsureRoleService { .. }))
            );
            let writes = traffic_writes(plan);
            assert_eq!(writes.len(), 1);
            let Action::SetRouteWeights { route, backends } = writes[0] else {
                unreachable!()
            };
            assert_eq!(route, "web-route");
            let b = |s: &str, w| RouteBackend {
                service: s.to_owned(),
                port: Some(80),
                weight: w,
            };
            assert_eq!(
                backends,
                &vec![b("web", 80), b("web-canary", 10), b("web-baseline", 10)]
            );
            assert!(
                !plan
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::SwitchService { .. }))
            );
            assert_eq!(plan.status.canary.as_ref().unwrap().traffic_percent, 10);
            assert!(analyses(plan).is_empty(), "created by the plan before");
        },
    },
    Case {
        name: "HTTPRoute missing: canary waits for traffic, no analysis, says why",
        given: || {
            let mut sim = created(true, true, "Pause");
            sim.observed.route = None;
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            assert!(traffic_writes(plan).is_empty());
            assert!(analyses(plan).is_empty());
            let progressing = condition(plan, "Progressing").unwrap();
            assert_eq!(progressing.reason, "CanaryWaitingForTraffic");
            assert!(
                progressing
                    .message
                    .contains("HTTPRoute default/web-route (spec.strategy.redBlack.trafficRouting.httpRoute.name) was not found"),
                "{}",
                progressing.message
            );
            assert_eq!(plan.status.canary.as_ref().unwrap().analysis_start, None);
        },
    },
    Case {
        name: "analysis running: nothing to do",
        given: || judging(true, "Pause"),
        then: |sim, plan| {
            assert!(plan.is_noop(sim.rollout.status.as_ref()), "{plan:#?}");
            assert_eq!(phase(plan), Phase::Progressing);
        },
    },
    Case {
        name: "canary unready while judged (HTTPRoute): weights back to 0 for canary and baseline",
        given: || {
            let mut sim = judging(true, "Pause");
            let rs = sim
                .observed
                .replica_sets
                .iter_mut()
                .find(|r| r.metadata.name.as_deref() == Some(canary_rs().as_str()))
                .unwrap();
            rs.status.as_mut().unwrap().ready_replicas = Some(0);
            sim
        },
        then: |_, plan| {
            let writes = traffic_writes(plan);
            assert_eq!(writes.len(), 1);
            assert!(
                matches!(writes[0], Action::SetRouteWeights { backends, .. } if backends.len() == 1 && backends[0].weight == 100)
            );
            assert_eq!(plan.status.canary.as_ref().unwrap().traffic_percent, 0);
        },
    },
    Case {
        name: "Passed (replica counts): traffic back to stable first, canary+baseline deleted, full fleet created",
        given: || judged(false, "Pause", AnalysisPhase::Passed, 98.0, ""),
        then: |sim, plan| {
            let writes = traffic_writes(plan);
            assert_eq!(writes.len(), 1);
            assert!(
                matches!(plan.actions[0], Action::SwitchService { ref hash, .. } if *hash == v1())
            );
            assert_eq!(switches_to(plan, "web"), Some(v1()));
            let mut gone = deleted(plan);
            gone.sort();
            let mut want = vec![canary_rs(), baseline_rs()];
            want.sort();
            assert_eq!(gone, want);
            assert_eq!(ensured(plan), vec![format!("web-{}", v2())]);
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Passed));
            assert_eq!(plan.status.canary.as_ref().unwrap().score, Some(98.0));
            assert_eq!(plan.status.last_score, Some(98.0));
            assert_eq!(phase(plan), Phase::Progressing);
            assert!(plan.events.iter().any(|e| e.reason == "CanaryPassed"));
            // The world was widened (no hash in the selector) until this plan.
            assert_eq!(sim.active_hash(), None);
        },
    },
    Case {
        name: "Passed, full fleet ready: ONE switch to the new revision, history keeps the score",
        given: || {
            let mut sim = judged(true, "Pause", AnalysisPhase::Passed, 98.0, "");
            sim.step();
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            assert_eq!(traffic_writes(plan).len(), 1);
            assert_eq!(switches_to(plan, "web"), Some(v2()));
            assert_eq!(phase(plan), Phase::Healthy);
            let last = plan.status.history.last().unwrap();
            assert_eq!((last.outcome, last.score), (Outcome::Promoted, Some(98.0)));
        },
    },
    Case {
        name: "Failed (HTTPRoute): exactly one traffic write, first; canary+baseline gone; Degraded; report pointer",
        given: || judged(true, "Pause", AnalysisPhase::Failed, 41.0, "errors High"),
        then: |_, plan| {
            let writes = traffic_writes(plan);
            assert_eq!(writes.len(), 1);
            assert!(
                matches!(&plan.actions[0], Action::SetRouteWeights { backends, .. } if backends.len() == 1 && backends[0].service == "web" && backends[0].weight == 100)
            );
            assert_eq!(deleted(plan).len(), 2);
            assert!(ensured(plan).is_empty(), "the full fleet is never created");
            assert_eq!(phase(plan), Phase::Degraded);
            let ready = condition(plan, "Ready").unwrap();
            assert_eq!(ready.reason, "CanaryFailed");
            assert!(
                ready.message.contains("41.0")
                    && ready
                        .message
                        .contains(&format!("redblack report {}", analysis(1))),
                "{}",
                ready.message
            );
            assert!(
                plan.events
                    .iter()
                    .any(|e| e.type_ == EventType::Warning && e.reason == "CanaryFailed")
            );
            let last = plan.status.history.last().unwrap();
            assert_eq!((last.outcome, last.score), (Outcome::Failed, Some(41.0)));
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Failed));
            assert_eq!(plan.status.canary.as_ref().unwrap().traffic_percent, 0);
        },
    },
    Case {
        name: "Failed (replica counts): ONE selector write back to stable, first",
        given: || judged(false, "Pause", AnalysisPhase::Failed, 10.0, ""),
        then: |_, plan| {
            assert_eq!(traffic_writes(plan).len(), 1);
            assert_eq!(switches_to(plan, "web"), Some(v1()));
            assert!(plan.actions[0].touches_traffic());
            assert_eq!(phase(plan), Phase::Degraded);
        },
    },
    Case {
        name: "after Failed: stays Degraded, the analysis is never deleted, re-planning is a no-op",
        given: failed_mode_h,
        then: |sim, plan| {
            assert!(plan.is_noop(sim.rollout.status.as_ref()), "{plan:#?}");
            assert!(sim.role_sets().is_empty());
            assert_eq!(sim.active_hash(), Some(v1()));
            assert_eq!(sim.route_weight("web-canary"), 0);
            assert!(sim.observed.analyses.iter().any(|a| a.name == analysis(1)));
        },
    },
    Case {
        name: "Marginal + Pause: held (Paused), traffic kept, reason names the score and the verbs",
        given: || judged(true, "Pause", AnalysisPhase::Marginal, 80.0, ""),
        then: |_, plan| {
            assert!(traffic_writes(plan).is_empty());
            assert!(deleted(plan).is_empty());
            assert_eq!(phase(plan), Phase::Paused);
            let ready = condition(plan, "Ready").unwrap();
            assert_eq!(ready.reason, "CanaryMarginal");
            assert!(ready.message.contains("80.0") && ready.message.contains("promote"));
            assert_eq!(plan.status.canary.as_ref().unwrap().traffic_percent, 10);
            assert_paused(plan, "CanaryMarginal");
        },
    },
    Case {
        name: "Marginal + Pause, then promote: accepted, traffic off, full fleet comes up",
        given: || {
            let mut sim = judged(true, "Pause", AnalysisPhase::Marginal, 80.0, "");
            sim.step();
            sim.annotate(PROMOTE_ANNOTATION, &format!("{}@1", v2()));
            sim
        },
        then: |_, plan| {
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Promoted));
            assert_eq!(ensured(plan), vec![format!("web-{}", v2())]);
            assert_eq!(traffic_writes(plan).len(), 1);
            assert!(plan.events.iter().any(|e| e.reason == "PromoteAccepted"));
        },
    },
    Case {
        name: "Marginal + Fail: as Failed",
        given: || judged(true, "Fail", AnalysisPhase::Marginal, 80.0, ""),
        then: |_, plan| {
            assert_eq!(traffic_writes(plan).len(), 1);
            assert_eq!(phase(plan), Phase::Degraded);
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Failed));
        },
    },
    Case {
        name: "Marginal + Extend: a second analysis (-2) from now, recorded, traffic kept",
        given: || judged(true, "Extend", AnalysisPhase::Marginal, 80.0, ""),
        then: |sim, plan| {
            let created = analyses(plan);
            assert_eq!(created.len(), 1);
            assert_eq!(created[0].0, analysis(2));
            assert_eq!(
                created[0].1["startTime"],
                sim.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!((c.attempt, c.extended), (2, true));
            assert!(traffic_writes(plan).is_empty());
            assert_eq!(phase(plan), Phase::Progressing);
        },
    },
    Case {
        name: "Marginal + Extend, marginal again: held for a human",
        given: || {
            let mut sim = judged(true, "Extend", AnalysisPhase::Marginal, 80.0, "");
            sim.step();
            sim.judge(&analysis(2), AnalysisPhase::Marginal, Some(82.0), "");
            sim
        },
        then: |_, plan| {
            assert!(analyses(plan).is_empty());
            assert_eq!(phase(plan), Phase::Paused);
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Marginal));
        },
    },
    Case {
        name: "Inconclusive: Paused with the analysis' plain reason, traffic off, never promoted",
        given: || {
            judged(
                true,
                "Pause",
                AnalysisPhase::Inconclusive,
                0.0,
                "canary received no traffic",
            )
        },
        then: |_, plan| {
            assert_eq!(phase(plan), Phase::Paused);
            let ready = condition(plan, "Ready").unwrap();
            assert_eq!(ready.reason, "CanaryInconclusive");
            assert!(ready.message.contains("canary received no traffic"));
            assert_paused(plan, "CanaryInconclusive");
            assert_eq!(traffic_writes(plan).len(), 1);
            assert!(ensured(plan).is_empty());
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Inconclusive));
        },
    },
    Case {
        name: "Inconclusive, then promote: ignored (retry or abort)",
        given: || {
            let mut sim = judged(true, "Pause", AnalysisPhase::Inconclusive, 0.0, "no data");
            sim.step();
            sim.annotate(PROMOTE_ANNOTATION, &v2());
            sim
        },
        then: |_, plan| {
            assert!(ensured(plan).is_empty());
            assert!(traffic_writes(plan).is_empty());
            assert_eq!(plan.status.approved_revision, None);
            assert!(plan.events.iter().any(|e| e.reason == "PromoteIgnored"));
        },
    },
    Case {
        name: "Error: Degraded + Stalled with the message, never promoted",
        given: || {
            judged(
                true,
                "Pause",
                AnalysisPhase::Error,
                0.0,
                "Prometheus unreachable",
            )
        },
        then: |_, plan| {
            assert_eq!(phase(plan), Phase::Degraded);
            let stalled = condition(plan, "Stalled").unwrap();
            assert_eq!(
                (stalled.status, stalled.reason.as_str()),
                (ConditionStatus::True, "AnalysisError")
            );
            assert!(stalled.message.contains("Prometheus unreachable"));
            assert!(ensured(plan).is_empty());
        },
    },
    Case {
        name: "retry after Inconclusive: a new attempt (-2), new analysis, traffic once it is observed",
        given: || {
            let mut sim = judged(true, "Pause", AnalysisPhase::Inconclusive, 0.0, "no data");
            sim.step();
            sim.annotate(RETRY_ANNOTATION, &format!("{}@1", v2()));
            sim
        },
        then: |_, plan| {
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!(c.attempt, 2);
            assert_eq!(
                analyses(plan).into_iter().map(|a| a.0).collect::<Vec<_>>(),
                vec![analysis(2)]
            );
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert_eq!(c.traffic_percent, 0);
        },
    },
    Case {
        name: "retry after Failed: canary and baseline come back (attempt 2)",
        given: || {
            let mut sim = failed_mode_h();
            sim.annotate(RETRY_ANNOTATION, &format!("{}@1", v2()));
            sim
        },
        then: |_, plan| {
            assert_eq!(ensured(plan), vec![canary_rs(), baseline_rs()]);
            assert_eq!(plan.status.canary.as_ref().unwrap().attempt, 2);
            assert_eq!(plan.status.abort, None);
            assert_eq!(phase(plan), Phase::Progressing);
        },
    },
    Case {
        name: "promote while judging: skips the rest of the analysis",
        given: || {
            let mut sim = judging(false, "Pause");
            sim.annotate(PROMOTE_ANNOTATION, &v2());
            sim
        },
        then: |_, plan| {
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Promoted));
            assert_eq!(
                switches_to(plan, "web"),
                Some(v1()),
                "narrowed back to stable"
            );
            assert_eq!(ensured(plan), vec![format!("web-{}", v2())]);
        },
    },
    Case {
        name: "abort while judging: traffic to stable (one write, first), canary+baseline removed, Aborted",
        given: || {
            let mut sim = judging(false, "Pause");
            sim.annotate(ABORT_ANNOTATION, &v2());
            sim
        },
        then: |_, plan| {
            assert_eq!(traffic_writes(plan).len(), 1);
            assert!(plan.actions[0].touches_traffic());
            assert_eq!(deleted(plan).len(), 2);
            assert_eq!(phase(plan), Phase::Aborted);
        },
    },
    Case {
        name: "undo while judging (template back to stable): Steady, traffic narrowed, canary removed",
        given: || {
            let mut sim = judging(false, "Pause");
            sim.set_image("web:1");
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), Some(v1()));
            assert_eq!(traffic_writes(plan).len(), 1);
            assert_eq!(deleted(plan).len(), 2);
            assert_eq!(plan.state, State::Steady);
            assert_eq!(phase(plan), Phase::Healthy);
        },
    },
    Case {
        name: "canary fleets miss the progress deadline with progressDeadlineAbort: Degraded, removed, stable keeps traffic",
        given: || {
            let mut sim = created(true, true, "Pause");
            sim.rollout.spec.progress_deadline_abort = true;
            sim.advance(600);
            sim
        },
        then: |_, plan| {
            assert_eq!(phase(plan), Phase::Degraded);
            assert_eq!(deleted(plan).len(), 2);
            assert_eq!(
                condition(plan, "Ready").unwrap().reason,
                "ProgressDeadlineExceeded"
            );
        },
    },
    Case {
        name: "canary fleets miss the progress deadline (default): Degraded while late, kept, judged once ready",
        given: || {
            let mut sim = created(true, true, "Pause");
            sim.advance(600);
            sim
        },
        then: |_, plan| {
            assert_eq!(phase(plan), Phase::Degraded);
            assert!(deleted(plan).is_empty());
            assert!(plan.status.abort.is_none());
            assert!(matches!(
                plan.state,
                State::Canary(CanaryStep::Progressing { late: true, .. })
            ));
            assert_eq!(
                condition(plan, "Ready").unwrap().reason,
                "ProgressDeadlineExceeded"
            );
            let warnings = plan
                .events
                .iter()
                .filter(|e| e.reason == "ProgressDeadlineExceeded")
                .count();
            assert_eq!(warnings, 1);
        },
    },
    Case {
        name: "late canary fleets become ready: the canary goes on to its analysis",
        given: || {
            let mut sim = created(true, true, "Pause");
            sim.advance(600);
            sim.step();
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            assert!(matches!(plan.state, State::Canary(CanaryStep::Analysing)));
            assert_ne!(phase(plan), Phase::Degraded);
        },
    },
    Case {
        name: "replica counts with a warm old fleet: it is scaled down before the selector is widened",
        given: || {
            let mut sim = Sim::with_canary(false, true, "Pause");
            sim.rollout.spec.strategy.red_black.canary = None;
            sim.set_image("web:0");
            sim.step();
            sim.make_ready();
            sim.step();
            assert_eq!(sim.size(&v1()), Some(4), "v1 warm");
            sim.rollout.spec.strategy.red_black.canary =
                Some(common::canary_config(1, true, "Pause"));
            sim.set_image("web:2");
            let plan = sim.step();
            assert!(plan.actions.iter().any(|a| matches!(a, Action::ScaleReplicaSet { name, replicas: 0 } if *name == format!("web-{}", v1()))));
            sim.make_ready();
            // Its pods are still terminating.
            let rs = sim
                .observed
                .replica_sets
                .iter_mut()
                .find(|r| common::rs_hash(r) == v1())
                .unwrap();
            rs.status.as_mut().unwrap().replicas = 4;
            sim
        },
        then: |_, plan| {
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert!(analyses(plan).is_empty());
            assert_eq!(
                condition(plan, "Progressing").unwrap().reason,
                "CanaryWaitingForTraffic"
            );
        },
    },
    Case {
        name: "without baseline: the control is the stable ReplicaSet",
        given: || {
            let mut sim = created(false, false, "Pause");
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            let created = analyses(plan);
            assert_eq!(created.len(), 1);
            assert_eq!(
                created[0].1["control"]["replicaSet"],
                format!("web-{}", v1())
            );
            assert_eq!(created[0].1["control"]["role"], "stable");
        },
    },
    Case {
        name: "templateName: the analysis is the template's spec plus the scopes (as inline), labelled with the template",
        given: || templated(Some(analysis_body())),
        then: |sim, plan| {
            let created = analyses(plan);
            assert_eq!(created.len(), 1, "{:?}", plan.actions);
            let (name, spec) = &created[0];
            assert_eq!(*name, analysis(1));
            // Exactly what the same body inline gives.
            let inline = {
                let mut sim = created_with(|_| {});
                sim.make_ready();
                sim.plan()
            };
            assert_eq!(*spec, analyses(&inline)[0].1);
            // The template's spec, plus the scopes and the start.
            let body = analysis_body();
            for (key, value) in body.as_object().unwrap() {
                if key != "experiment" {
                    assert_eq!(spec[key], *value, "{key}");
                }
            }
            let mut keys: Vec<_> = spec.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            assert_eq!(
                keys,
                [
                    "control",
                    "experiment",
                    "interval",
                    "lifetime",
                    "metrics",
                    "startTime"
                ]
            );
            assert_eq!(spec["experiment"]["variables"]["app"], "web");
            assert_eq!(spec["experiment"]["replicaSet"], canary_rs());
            assert_eq!(spec["control"]["replicaSet"], baseline_rs());
            assert_eq!(spec["startTime"], "2026-01-01T12:00:00Z");
            let labels = &analysis_labels(plan)[0];
            assert_eq!(
                labels.get(ANALYSIS_TEMPLATE_LABEL).map(String::as_str),
                Some("shared")
            );
            assert!(!analysis_labels(&inline)[0].contains_key(ANALYSIS_TEMPLATE_LABEL));
            assert!(
                traffic_writes(plan).is_empty(),
                "traffic only once the analysis is observed"
            );
            assert!(plan.events.iter().any(|e| e.reason == "AnalysisCreated"
                && e.message.contains("from CanaryAnalysisTemplate shared")));
            let _ = sim;
        },
    },
    Case {
        name: "inline: unchanged, the inline body plus the scopes, no template label",
        given: || {
            let mut sim = created_with(|_| {});
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            let created = analyses(plan);
            assert_eq!(created.len(), 1);
            let spec = &created[0].1;
            // The pods' hash label of a role fleet.
            let hash = |name: &str| common::rs_hash(sim.role_set(name).unwrap());
            let mut want = analysis_body();
            want["experiment"] = serde_json::json!({
                "namespace": "default", "replicaSet": canary_rs(), "revision": v2(),
                "role": "canary",
                "variables": {"app": "web", "podTemplateHash": hash(&canary_rs())}
            });
            want["control"] = serde_json::json!({
                "namespace": "default", "replicaSet": baseline_rs(), "revision": v1(),
                "role": "baseline",
                "variables": {"podTemplateHash": hash(&baseline_rs())}
            });
            want["startTime"] = serde_json::json!("2026-01-01T12:00:00Z");
            assert_eq!(*spec, want);
            assert_eq!(
                analysis_labels(plan)[0].keys().cloned().collect::<Vec<_>>(),
                [POD_TEMPLATE_HASH_LABEL, ROLLOUT_LABEL]
            );
        },
    },
    Case {
        name: "templateName missing: canary held (AnalysisTemplateNotFound naming it), no traffic, no analysis",
        given: || templated(None),
        then: |sim, plan| {
            assert!(analyses(plan).is_empty(), "{:?}", plan.actions);
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert!(ensured(plan).is_empty(), "no full fleet");
            assert!(deleted(plan).is_empty(), "canary fleets kept");
            assert_eq!(sim.active_hash(), Some(v1()));
            assert_eq!(phase(plan), Phase::Progressing);
            let progressing = condition(plan, "Progressing").unwrap();
            assert_eq!(progressing.reason, "AnalysisTemplateNotFound");
            assert_eq!(progressing.status, ConditionStatus::True);
            assert!(
                progressing.message.contains(
                    r#"CanaryAnalysisTemplate "shared" not found in namespace "default""#
                ),
                "{}",
                progressing.message
            );
            assert_eq!(
                condition(plan, "Ready").unwrap().reason,
                "AnalysisTemplateNotFound"
            );
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!((c.traffic_percent, c.analysis_start), (0, None));
            assert_eq!(c.phase, Some(CanaryPhase::Analysing));
            assert!(
                plan.events.iter().any(
                    |e| e.type_ == EventType::Warning && e.reason == "AnalysisTemplateNotFound"
                )
            );
        },
    },
    Case {
        name: "templateName missing, re-planned: a no-op (no write, no second Event)",
        given: || {
            let mut sim = templated(None);
            sim.step();
            sim.advance(60);
            sim
        },
        then: |sim, plan| {
            assert!(
                plan.is_noop(sim.rollout.status.as_ref()),
                "{:?}",
                plan.actions
            );
            assert!(plan.events.is_empty(), "{:?}", plan.events);
        },
    },
    Case {
        name: "templateName missing, then created: the analysis from it; traffic once it is observed",
        given: || {
            let mut sim = templated(None);
            sim.step();
            sim.advance(60);
            sim.put_template("shared", analysis_body());
            sim
        },
        then: |sim, plan| {
            let created = analyses(plan);
            assert_eq!(created.len(), 1, "{:?}", plan.actions);
            assert_eq!(created[0].1["metrics"], analysis_body()["metrics"]);
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert_eq!(
                condition(plan, "Progressing").unwrap().reason,
                "CanaryWaitingForAnalysis"
            );
            let c = plan.status.canary.as_ref().unwrap();
            assert_eq!(c.analysis_start, Some(sim.now));
        },
    },
    Case {
        name: "template with an unusable body: held (InvalidAnalysis naming the template), Degraded + Stalled, no traffic",
        given: || templated(Some(serde_json::json!({"lifetime": "10m", "metrics": []}))),
        then: |_, plan| {
            assert!(analyses(plan).is_empty());
            assert!(traffic_writes(plan).is_empty());
            assert_eq!(phase(plan), Phase::Degraded);
            let progressing = condition(plan, "Progressing").unwrap();
            assert_eq!(progressing.reason, "InvalidAnalysis");
            assert_eq!(progressing.status, ConditionStatus::False);
            assert!(
                progressing.message.contains(
                    r#"CanaryAnalysisTemplate "shared" is not a usable CanaryAnalysis spec: missing field `interval`"#
                ),
                "{}",
                progressing.message
            );
            assert_eq!(
                condition(plan, "Stalled").unwrap().status,
                ConditionStatus::True
            );
        },
    },
    Case {
        name: "inline with the same unusable body: the same reason, naming the inline field",
        given: || {
            let mut sim = created_with(|c| {
                c.analysis.inline = Some(serde_json::json!({"lifetime": "10m", "metrics": []}));
            });
            sim.make_ready();
            sim
        },
        then: |_, plan| {
            assert!(analyses(plan).is_empty());
            assert!(traffic_writes(plan).is_empty());
            assert_eq!(phase(plan), Phase::Degraded);
            let progressing = condition(plan, "Progressing").unwrap();
            assert_eq!(progressing.reason, "InvalidAnalysis");
            assert!(
                progressing.message.contains(
                    "spec.strategy.redBlack.canary.analysis.inline is not a usable CanaryAnalysis spec: missing field `interval`"
                ),
                "{}",
                progressing.message
            );
        },
    },
    Case {
        name: "template changed after its analysis was created: the analysis is left alone",
        given: || {
            let mut sim = templated(Some(analysis_body()));
            sim.step();
            sim.step(); // traffic on, now that the analysis exists
            sim.advance(60);
            let mut changed = analysis_body();
            changed["interval"] = serde_json::json!("5m");
            sim.put_template("shared", changed);
            sim
        },
        then: |sim, plan| {
            assert!(
                plan.is_noop(sim.rollout.status.as_ref()),
                "{:?}",
                plan.actions
            );
            assert_eq!(sim.analysis_specs.len(), 1);
            assert_eq!(sim.analysis_specs[0].1["interval"], "1m");
        },
    },
    Case {
        name: "template deleted after its analysis was created: its verdict still counts",
        given: || {
            let mut sim = templated(Some(analysis_body()));
            sim.step();
            sim.advance(60);
            sim.delete_template("shared");
            assert!(sim.judge(&analysis(1), AnalysisPhase::Passed, Some(99.0), ""));
            sim
        },
        then: |_, plan| {
            assert_eq!(canary_phase(plan), Some(CanaryPhase::Passed));
            assert!(analyses(plan).is_empty());
        },
    },
    Case {
        name: "post-promotion from a template: control time-shifted by the template's lifetime, labelled",
        given: || {
            let mut sim = post_templated(true);
            let switch = sim.step();
            assert_eq!(switches_to(&switch, "web"), Some(v2()));
            sim
        },
        then: |sim, plan| {
            let created = analyses(plan);
            assert_eq!(created.len(), 1, "{:?}", plan.actions);
            let spec = &created[0].1;
            assert_eq!(spec["experiment"]["replicaSet"], format!("web-{}", v2()));
            assert_eq!(spec["control"]["replicaSet"], format!("web-{}", v1()));
            assert_eq!(spec["control"]["timeShift"], "20m");
            assert_eq!(spec["interval"], "2m");
            assert_eq!(
                spec["startTime"],
                sim.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            assert_eq!(
                analysis_labels(plan)[0]
                    .get(ANALYSIS_TEMPLATE_LABEL)
                    .map(String::as_str),
                Some("post")
            );
        },
    },
    Case {
        name: "post-promotion template missing: the available new fleet is not switched to, says why",
        given: || post_templated(false),
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), None, "{:?}", plan.actions);
            assert!(traffic_writes(plan).is_empty());
            assert_eq!(sim.active_hash(), Some(v1()));
            assert_eq!(phase(plan), Phase::Progressing);
            let progressing = condition(plan, "Progressing").unwrap();
            assert_eq!(progressing.reason, "AnalysisTemplateNotFound");
            assert!(
                progressing
                    .message
                    .contains(r#"CanaryAnalysisTemplate "post" not found in namespace "default""#),
                "{}",
                progressing.message
            );
            assert!(plan.status.post_promotion.is_none());
        },
    },
    Case {
        name: "promotion window closed: the ready fleet waits, the reason says when it opens, timer set",
        given: || {
            let mut sim = judged(true, "Pause", AnalysisPhase::Passed, 99.0, "");
            // t0 is Thursday 2026-01-01 12:00 UTC; allow only 14:00-16:00 UTC.
            sim.rollout.spec.strategy.red_black.promotion_windows =
                vec![window(&[], "14:00", "16:00", "UTC")];
            sim.step();
            sim.make_ready();
            sim
        },
        then: |sim, plan| {
            assert_eq!(switches_to(plan, "web"), None);
            assert_eq!(phase(plan), Phase::Paused);
            let ready = condition(plan, "Ready").unwrap();
            assert_eq!(ready.reason, "OutsidePromotionWindow");
            assert!(
                ready.message.contains("2026-01-01T14:00:00+00:00"),
                "{}",
                ready.message
            );
            let opens = Utc.with_ymd_and_hms(2026, 1, 1, 14, 0, 0).unwrap();
            assert_eq!(plan.requeue_after, (opens - sim.now).to_std().ok());
            assert_paused(plan, "PromotionWindowClosed");
        },
    },
    Case {
        name: "promotion window open: switch",
        given: || {
            let mut sim = judged(true, "Pause", AnalysisPhase::Passed, 99.0, "");
            sim.rollout.spec.strategy.red_black.promotion_windows =
                vec![window(&[], "14:00", "16:00", "UTC")];
            sim.step();
            sim.make_ready();
            sim.advance(2 * 3600);
            sim
        },
        then: |_, plan| {
            assert_eq!(switches_to(plan, "web"), Some(v2()));
        },
    },
    Case {
        name: "post-promotion: analysis of the new fleet against the old one time-shifted, old fleet kept warm",
        given: || {
            let mut sim = post_promoted();
            sim.advance(3600); // beyond scaleDownDelay (30m)
            sim
        },
        then: |sim, plan| {
            let _ = sim;
            assert!(
                !plan
                    .actions
                    .iter()
                    .any(|a| matches!(a, Action::ScaleReplicaSet { replicas: 0, .. })),
                "{:?}",
                plan.actions
            );
            assert_eq!(
                plan.status.post_promotion.as_ref().unwrap().phase,
                PostPromotionPhase::Running
            );
        },
    },
    Case {
        name: "post-promotion Failed: ONE switch back to the warm old fleet, RolledBack, Warning, Degraded",
        given: || {
            let mut sim = post_promoted();
            let name = sim
                .rollout
                .status
                .as_ref()
                .unwrap()
                .post_promotion
                .as_ref()
                .unwrap()
                .analysis_name
                .clone();
            sim.judge(&name, AnalysisPhase::Failed, Some(30.0), "latency High");
            sim
        },
        then: |_, plan| {
            assert_eq!(traffic_writes(plan).len(), 1);
            assert_eq!(switches_to(plan, "web"), Some(v1()));
            let new_fleet = format!("web-{}", v2());
            let annotate = plan.actions.iter().position(|a| matches!(a, Action::AnnotateReplicaSet { name, set, .. } if *name == new_fleet && set.contains_key(SCALE_DOWN_AT_ANNOTATION))).unwrap();
            assert!(
                annotate
                    < plan
                        .actions
                        .iter()
                        .position(Action::touches_traffic)
                        .unwrap()
            );
            assert_eq!(phase(plan), Phase::Degraded);
            assert!(plan.events.iter().any(
                |e| e.type_ == EventType::Warning && e.reason == "PostPromotionAnalysisFailed"
            ));
            let outcomes: Vec<_> = plan
                .status
                .history
                .iter()
                .rev()
                .take(2)
                .map(|r| (r.hash.clone(), r.outcome))
                .collect();
            assert_eq!(
                outcomes,
                vec![(v1(), Outcome::RolledBack), (v2(), Outcome::Failed)]
            );
            assert_eq!(plan.status.last_score, Some(30.0));
        },
    },
    Case {
        name: "post-promotion Failed, after the revert: stable on the old revision, no flapping",
        given: || {
            let mut sim = post_promoted();
            let name = sim
                .rollout
                .status
                .as_ref()
                .unwrap()
                .post_promotion
                .as_ref()
                .unwrap()
                .analysis_name
                .clone();
            sim.judge(&name, AnalysisPhase::Failed, Some(30.0), "latency High");
            sim.step();
            sim
        },
        then: |sim, plan| {
            assert!(traffic_writes(plan).is_empty(), "{:?}", plan.actions);
            assert_eq!(sim.active_hash(), Some(v1()));
            assert_eq!(phase(plan), Phase::Degraded);
            assert_eq!(
                condition(plan, "Ready").unwrap().reason,
                "PostPromotionAnalysisFailed"
            );
        },
    },
];

/// v2 applied with the canary's analysis configured by `configure` (inline
/// `analysis_body()` unless changed); canary + baseline created (not ready).
fn created_with(configure: fn(&mut redblack::api::CanaryStrategy)) -> Sim {
    let mut sim = Sim::with_canary(false, true, "Pause");
    if let Some(c) = sim.rollout.spec.strategy.red_black.canary.as_mut() {
        configure(c);
    }
    sim.set_image("web:2");
    sim.step();
    sim
}

/// As `created` (replica counts), the analysis named by template "shared"
/// (with `spec` when it exists); canary + baseline ready.
fn templated(spec: Option<serde_json::Value>) -> Sim {
    let mut sim = created_with(|c| {
        c.analysis.inline = None;
        c.analysis.template_name = Some("shared".to_owned());
    });
    if let Some(spec) = spec {
        sim.put_template("shared", spec);
    }
    sim.make_ready();
    sim
}

/// The labels of every CanaryAnalysis the plan creates.
fn analysis_labels(plan: &Plan) -> Vec<BTreeMap<String, String>> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::EnsureCanaryAnalysis { labels, .. } => Some(labels.clone()),
            _ => None,
        })
        .collect()
}

/// A canary of v2 passed and its full fleet is available; the post-promotion
/// analysis names template "post" (which exists when `exists`). The next plan
/// switches, or holds for the template.
fn post_templated(exists: bool) -> Sim {
    let mut sim = Sim::with_canary(true, true, "Pause");
    sim.rollout.spec.strategy.red_black.post_promotion_analysis =
        Some(serde_json::from_value(serde_json::json!({"templateName": "post"})).unwrap());
    if exists {
        sim.put_template(
            "post",
            serde_json::json!({"interval": "2m", "lifetime": "20m", "metrics": [{"name": "errors", "query": "q"}]}),
        );
    }
    sim.set_image("web:2");
    sim.step();
    sim.make_ready();
    sim.step();
    sim.judge(&analysis(1), AnalysisPhase::Passed, Some(99.0), "");
    sim.step();
    sim.make_ready();
    sim
}

fn window(days: &[&str], start: &str, end: &str, tz: &str) -> PromotionWindow {
    serde_json::from_value(
        serde_json::json!({"days": days, "start": start, "end": end, "timeZone": tz}),
    )
    .unwrap()
}

/// v2's canary passed and its full fleet is ready; an inline post-promotion
/// analysis is configured. The next plan switches.
fn post_ready_to_switch() -> Sim {
    let mut sim = Sim::with_canary(true, true, "Pause");
    sim.rollout.spec.strategy.red_black.post_promotion_analysis = Some(
        serde_json::from_value(
            serde_json::json!({"inline": {"interval": "1m", "lifetime": "20m", "metrics": []}}),
        )
        .unwrap(),
    );
    sim.set_image("web:2");
    sim.step();
    sim.make_ready();
    sim.step();
    sim.judge(&analysis(1), AnalysisPhase::Passed, Some(99.0), "");
    sim.step();
    sim.make_ready();
    sim
}

/// v2 promoted through a passing canary, post-promotion analysis configured
/// and created.
fn post_promoted() -> Sim {
    let mut sim = post_ready_to_switch();
    let switch = sim.step();
    assert_eq!(switches_to(&switch, "web"), Some(v2()));
    let plan = sim.step();
    let created = analyses(&plan);
    assert_eq!(created.len(), 1, "{:?}", plan.actions);
    let spec = &created[0].1;
    assert_eq!(spec["experiment"]["replicaSet"], format!("web-{}", v2()));
    assert_eq!(spec["control"]["replicaSet"], format!("web-{}", v1()));
    assert_eq!(spec["control"]["timeShift"], "20m");
    assert_eq!(
        spec["startTime"],
        sim.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    sim
}

#[test]
fn canary_table() {
    let mut failures = Vec::new();
    for case in CASES {
        let sim = (case.given)();
        let plan = sim.plan();
        assert_eq!(plan, sim.plan(), "{}: planning twice differs", case.name);
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.then)(&sim, &plan)));
        if let Err(err) = result {
            let msg = err
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| err.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {msg}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing rows:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

#[test]
fn promotion_windows_table() {
    let weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri"];
    let rows: Vec<(&str, Vec<PromotionWindow>, DateTime<Utc>, WindowCheck)> = vec![
        (
            "no windows: always open",
            vec![],
            at(2026, 1, 3, 3, 0),
            WindowCheck::Open,
        ),
        (
            "office hours Berlin (CET, UTC+1), Saturday: opens Monday 08:00 UTC",
            vec![window(&weekdays, "09:00", "17:00", "Europe/Berlin")],
            at(2026, 1, 3, 12, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 1, 5, 8, 0))),
        ),
        (
            "office hours Berlin, Wednesday 11:00 local: open",
            vec![window(&weekdays, "09:00", "17:00", "Europe/Berlin")],
            at(2026, 1, 7, 10, 0),
            WindowCheck::Open,
        ),
        (
            "end is exclusive",
            vec![window(&weekdays, "09:00", "17:00", "Europe/Berlin")],
            at(2026, 1, 7, 16, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 1, 8, 8, 0))),
        ),
        (
            "summer time (CEST, UTC+2): 09:00 local is 07:00 UTC",
            vec![window(&[], "09:00", "17:00", "Europe/Berlin")],
            at(2026, 7, 1, 6, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 7, 1, 7, 0))),
        ),
        (
            "across the spring change: Saturday CET, next opening Sunday in CEST",
            vec![window(&[], "09:00", "17:00", "Europe/Berlin")],
            at(2026, 3, 28, 17, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 3, 29, 7, 0))),
        ),
        (
            "start inside the spring DST gap (02:30 does not exist): opens when the gap ends, 03:00 CEST",
            vec![window(&["Sun"], "02:30", "05:00", "Europe/Berlin")],
            at(2026, 3, 29, 0, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 3, 29, 1, 0))),
        ),
        (
            "start in the repeated autumn hour: the earlier instant (CEST)",
            vec![window(&["Sun"], "02:30", "04:00", "Europe/Berlin")],
            at(2026, 10, 25, 0, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 10, 25, 0, 30))),
        ),
        (
            "crossing midnight: Friday 22:00-02:00 is still open at Saturday 01:00",
            vec![window(&["Fri"], "22:00", "02:00", "UTC")],
            at(2026, 1, 3, 1, 0),
            WindowCheck::Open,
        ),
        (
            "crossing midnight: Saturday 03:00 waits for next Friday 22:00",
            vec![window(&["Fri"], "22:00", "02:00", "UTC")],
            at(2026, 1, 3, 3, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 1, 9, 22, 0))),
        ),
        (
            "crossing midnight in New York: opens 23:00 EST = 04:00 UTC next day",
            vec![window(&[], "23:00", "01:00", "America/New_York")],
            at(2026, 1, 2, 12, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 1, 3, 4, 0))),
        ),
        (
            "start == end: the whole day",
            vec![window(&["Mon"], "00:00", "00:00", "UTC")],
            at(2026, 1, 5, 23, 59),
            WindowCheck::Open,
        ),
        (
            "two windows: the earliest opening wins",
            vec![
                window(&[], "20:00", "21:00", "UTC"),
                window(&[], "14:00", "15:00", "UTC"),
            ],
            at(2026, 1, 1, 12, 0),
            WindowCheck::ClosedUntil(Some(at(2026, 1, 1, 14, 0))),
        ),
        (
            "an invalid zone never opens",
            vec![window(&[], "14:00", "15:00", "Mars/Olympus")],
            at(2026, 1, 1, 12, 0),
            WindowCheck::ClosedUntil(None),
        ),
    ];
    for (name, windows, now, want) in rows {
        assert_eq!(windows::check(&windows, now), want, "{name}");
    }
}

#[test]
fn a_passing_canary_converges_to_the_new_revision_healthy() {
    let mut sim = Sim::with_canary(true, true, "Pause");
    sim.set_image("web:2");
    sim.settle_judging(AnalysisPhase::Passed, 97.0);
    let status = sim.rollout.status.clone().unwrap();
    assert_eq!(sim.active_hash(), Some(v2()));
    assert_eq!(status.phase, Some(Phase::Healthy));
    assert!(sim.role_sets().is_empty());
    assert_eq!(sim.route_weight("web"), 100);
}

#[test]
fn a_failing_canary_converges_to_stable_degraded_without_canary_fleets() {
    for route in [true, false] {
        let mut sim = Sim::with_canary(route, true, "Pause");
        sim.set_image("web:2");
        sim.settle_judging(AnalysisPhase::Failed, 12.0);
        let status = sim.rollout.status.clone().unwrap();
        assert_eq!(sim.active_hash(), Some(v1()), "route {route}");
        assert_eq!(status.phase, Some(Phase::Degraded));
        assert!(sim.role_sets().is_empty());
        assert!(
            sim.size(&v2()).is_none(),
            "the full fleet was never created"
        );
        assert_eq!(
            sim.active_selector().unwrap().get(POD_TEMPLATE_HASH_LABEL),
            Some(&v1())
        );
    }
}

/// A Rollout whose templates do not exist yet waits at each analysis and
/// proceeds as each appears; the analyses record their template.
#[test]
fn a_rollout_held_for_its_templates_proceeds_as_they_appear() {
    let mut sim = Sim::with_canary(false, true, "Pause");
    sim.rollout.spec.strategy.red_black.post_promotion_analysis =
        Some(serde_json::from_value(serde_json::json!({"templateName": "post"})).unwrap());
    sim.use_template("shared");
    sim.set_image("web:2");
    let progressing = |sim: &Sim| {
        let status = sim.rollout.status.as_ref().unwrap();
        redblack::api::conditions::find(&status.conditions, "Progressing")
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap()
    };

    sim.settle_judging(AnalysisPhase::Passed, 99.0);
    let (why, message) = progressing(&sim);
    assert_eq!(why, "AnalysisTemplateNotFound");
    assert!(message.contains(r#""shared" not found"#), "{message}");
    assert!(sim.analysis_specs.is_empty());
    assert_eq!(sim.active_hash(), Some(v1()));

    sim.put_template("shared", analysis_body());
    sim.settle_judging(AnalysisPhase::Passed, 99.0);
    let (why, message) = progressing(&sim);
    assert_eq!(why, "AnalysisTemplateNotFound", "{message}");
    assert!(message.contains(r#""post" not found"#), "{message}");
    assert_eq!(sim.analysis_specs.len(), 1, "the canary's analysis");
    assert_eq!(
        sim.active_hash(),
        Some(v1()),
        "not switched without its post-promotion analysis"
    );

    sim.put_template(
        "post",
        serde_json::json!({"interval": "1m", "lifetime": "20m", "metrics": [{"name": "e", "query": "q"}]}),
    );
    sim.settle_judging(AnalysisPhase::Passed, 99.0);
    assert_eq!(sim.active_hash(), Some(v2()));
    let status = sim.rollout.status.as_ref().unwrap();
    assert_eq!(status.phase, Some(Phase::Healthy));
    assert_eq!(
        status.post_promotion.as_ref().map(|p| p.phase),
        Some(PostPromotionPhase::Passed)
    );
    assert_eq!(sim.analysis_specs.len(), 2, "and the post-promotion one");
    assert_eq!(sim.analysis_specs[1].1["control"]["timeShift"], "20m");
}

/// The operator died between the promotion's Service switch and the status
/// write that records the post-promotion analysis (found by the chaos
/// harness): the next plan finds the Service on v2 and the status still on
/// v1 without a record, starts the record itself, and creates the analysis
/// — v2 is never live unjudged, and v1 stays warm for the verdict.
#[test]
fn a_lost_switch_status_still_starts_the_post_promotion_analysis() {
    let mut sim = post_ready_to_switch();
    let before = sim.rollout.status.clone();
    let switch = sim.plan();
    assert_eq!(switches_to(&switch, "web"), Some(v2()));
    for a in &switch.actions {
        sim.apply_action(a);
    }
    sim.rollout.status = before; // killed before the status write
    let plan = sim.plan();
    let post = plan
        .status
        .post_promotion
        .clone()
        .expect("a post-promotion record");
    assert_eq!(
        (post.revision.as_str(), post.previous_revision.as_str()),
        (v2().as_str(), v1().as_str())
    );
    assert_eq!(plan.status.stable_revision, Some(v2()));
    // The analysis is created by this plan or the next (as after a switch).
    sim.apply(&plan);
    let next = sim.step();
    let created: Vec<_> = analyses(&plan).into_iter().chain(analyses(&next)).collect();
    assert_eq!(
        created.len(),
        1,
        "{:?} then {:?}",
        plan.actions,
        next.actions
    );
    assert_eq!(
        created[0].1["experiment"]["replicaSet"],
        format!("web-{}", v2())
    );
    assert_eq!(
        created[0].1["control"]["replicaSet"],
        format!("web-{}", v1())
    );
    assert!(
        sim.size(&v1()).unwrap_or(0) > 0,
        "v1 stays warm for the verdict"
    );
}

/// A Failed verdict recorded while the Service is still wide (a plan made
/// from a Service cache that had not yet seen the widening narrows nothing,
/// yet records the verdict; seen under API faults): the next plan still sees
/// the wide selector as its own and narrows it to the stable revision. It was
/// left wide for good, and the Rollout never converged.
#[test]
fn a_verdict_recorded_while_the_selector_is_still_wide_is_narrowed() {
    let mut sim = judged(false, "Pause", AnalysisPhase::Failed, 41.0, "errors High");
    let wide = sim.observed.active_service.clone();
    let plan = sim.step();
    assert_eq!(canary_phase(&plan), Some(CanaryPhase::Failed));
    assert_eq!(switches_to(&plan, "web"), Some(v1()), "narrowed at once");
    // The stale-cache plan: its status written, its narrowing never made.
    sim.observed.active_service = wide;
    let plan = sim.plan();
    assert_eq!(
        switches_to(&plan, "web"),
        Some(v1()),
        "the wide selector is narrowed: {:?}",
        plan.actions
    );
}
