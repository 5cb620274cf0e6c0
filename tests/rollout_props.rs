//! Property tests of planner invariants over random histories: random template
//! changes, readiness, clocks, manual operations, scaling, invalid specs and a
//! missing Service, applied to a small simulated world.

mod common;

use common::{Sim, condition, service};
use kube::ResourceExt;
use proptest::prelude::*;
use redblack::api::{
    ABORT_ANNOTATION, ConditionStatus, PROMOTE_ANNOTATION, Phase, PromotionPolicy,
    RETRY_ANNOTATION, REVISION_ANNOTATION, SCALE_DOWN_AT_ANNOTATION, validate,
};
use redblack::rollout::{Action, Plan};

#[derive(Clone, Debug)]
enum Op {
    SetImage(u8),
    MakeReady,
    PartlyReady(usize, i32),
    Advance(i64),
    Step,
    /// Apply the actions but lose the status write.
    StepLosingStatus,
    Promote,
    Abort,
    Retry,
    Pause(bool),
    Scale(i32),
    Invalidate,
    Fix,
    DropService,
    RestoreService,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(Op::SetImage),
        6 => Just(Op::MakeReady),
        2 => (0usize..4, 0i32..4).prop_map(|(i, n)| Op::PartlyReady(i, n)),
        4 => prop_oneof![0i64..30, 0i64..700, 0i64..4000].prop_map(Op::Advance),
        8 => Just(Op::Step),
        1 => Just(Op::StepLosingStatus),
        2 => Just(Op::Promote),
        1 => Just(Op::Abort),
        1 => Just(Op::Retry),
        1 => any::<bool>().prop_map(Op::Pause),
        1 => (0i32..5).prop_map(Op::Scale),
        1 => Just(Op::Invalidate),
        3 => Just(Op::Fix),
        1 => Just(Op::DropService),
        1 => Just(Op::RestoreService),
    ]
}

/// Invariants of one plan, judged against the world it was made from.
/// Phase `Paused` ⇒ a `Paused` condition (True) naming its gate, so that
/// `kubectl wait --for=condition=Paused` returns whenever a person is
/// waited for; a `Paused` condition in another phase only for `spec.paused`
/// (set whatever the phase, as Argo does). (An invalid spec keeps its old
/// conditions.)
fn check_paused(plan: &Plan) -> Result<(), TestCaseError> {
    let phase = plan.status.phase;
    if phase == Some(Phase::InvalidSpec) {
        return Ok(());
    }
    let paused = condition(plan, "Paused");
    let paused_true = paused.is_some_and(|c| c.status == ConditionStatus::True);
    let spec_paused = paused.is_some_and(|c| c.reason == "SpecPaused");
    prop_assert!(
        (phase == Some(Phase::Paused)) == paused_true || spec_paused,
        "phase {:?} with Paused condition {:?}",
        phase,
        paused
    );
    if let Some(c) = paused {
        prop_assert!(
            [
                "SpecPaused",
                "AwaitingPromotion",
                "PromotionWindowClosed",
                "CanaryMarginal",
                "CanaryInconclusive"
            ]
            .contains(&c.reason.as_str()),
            "Paused reason {}",
            c.reason
        );
    }
    Ok(())
}

fn check(sim: &Sim, plan: &Plan) -> Result<(), TestCaseError> {
    prop_assert_eq!(plan, &sim.plan(), "planning twice differs");
    check_paused(plan)?;
    let want = sim.rollout.spec.replicas;
    if !validate(&sim.rollout).is_empty() {
        prop_assert!(
            plan.actions.is_empty(),
            "invalid spec produced {:?}",
            plan.actions
        );
    }
    let active = sim.active_hash();
    let current = sim.hash();
    let mut ensures = 0;
    for action in &plan.actions {
        match action {
            Action::SwitchService { service, hash, .. } if service == "web" => {
                let rs = sim.rs(hash);
                prop_assert!(rs.is_some(), "switch to a missing fleet {}", hash);
                let status = rs.and_then(|r| r.status.clone()).unwrap_or_default();
                prop_assert!(
                    status.ready_replicas.unwrap_or(0) >= want
                        && status.available_replicas.unwrap_or(0) >= want,
                    "switched to {} with {:?} ready of {}",
                    hash,
                    status.ready_replicas,
                    want
                );
            }
            Action::EnsureReplicaSet { hash, revision, .. } => {
                ensures += 1;
                prop_assert_eq!(hash, &current, "fleet for a template that is not current");
                prop_assert!(sim.rs(hash).is_none(), "second fleet for one template");
                // Revision numbers only grow: a new fleet is numbered above
                // every fleet and never below the recorded history.
                let fleets = sim
                    .observed
                    .replica_sets
                    .iter()
                    .filter_map(|rs| {
                        rs.annotations()
                            .get(REVISION_ANNOTATION)?
                            .parse::<i64>()
                            .ok()
                    })
                    .max()
                    .unwrap_or(0);
                let recorded = sim
                    .rollout
                    .status
                    .as_ref()
                    .and_then(|s| s.history.iter().map(|r| r.revision).max())
                    .unwrap_or(0);
                prop_assert!(
                    *revision > fleets && *revision >= recorded,
                    "revision {} for a new fleet; fleets up to {}, history up to {}",
                    revision,
                    fleets,
                    recorded
                );
            }
            Action::ScaleReplicaSet { name, replicas } => {
                if let Some(a) = &active {
                    prop_assert!(
                        !(*name == format!("web-{a}") && *replicas < want),
                        "scaled the live fleet {} down to {}",
                        name,
                        replicas
                    );
                }
            }
            Action::DeleteReplicaSet { name } => {
                prop_assert!(
                    *name != format!("web-{current}"),
                    "deleted the current fleet"
                );
                if let Some(a) = &active {
                    prop_assert!(*name != format!("web-{a}"), "deleted the live fleet");
                }
            }
            _ => {}
        }
    }
    prop_assert!(ensures <= 1);
    // Crash safety: the fleet leaving traffic gets its warm deadline in an
    // action BEFORE the switch, so no restart can lose the warm window.
    let switch_at = plan
        .actions
        .iter()
        .position(|a| matches!(a, Action::SwitchService { service, .. } if service == "web"));
    if let (Some(at), Some(a)) = (switch_at, &active)
        && sim.rs(a).is_some()
        && *a != current
    {
        let leaving = format!("web-{a}");
        prop_assert!(
            plan.actions[..at]
                .iter()
                .any(|x| matches!(x, Action::AnnotateReplicaSet { name, set, .. }
                if *name == leaving && set.contains_key(SCALE_DOWN_AT_ANNOTATION))),
            "switched away from {} without a deadline first",
            leaving
        );
    }
    Ok(())
}

fn run(sim: &mut Sim, op: &Op, nonce: &mut u32) -> Result<(), TestCaseError> {
    *nonce += 1;
    match op {
        Op::SetImage(i) => sim.set_image(&format!("web:{i}")),
        Op::MakeReady => sim.make_ready(),
        Op::PartlyReady(i, n) => {
            if let Some(rs) = sim.observed.replica_sets.get_mut(*i) {
                let status = rs.status.get_or_insert_with(Default::default);
                let size = rs.spec.replicas.unwrap_or(0);
                status.replicas = size;
                status.ready_replicas = Some((*n).min(size));
                status.available_replicas = Some((*n).min(size));
            }
        }
        Op::Advance(s) => sim.advance(*s),
        Op::Step => {
            let plan = sim.plan();
            check(sim, &plan)?;
            sim.apply(&plan);
        }
        Op::StepLosingStatus => {
            let plan = sim.plan();
            check(sim, &plan)?;
            for action in &plan.actions {
                sim.apply_action(action);
            }
        }
        Op::Promote => {
            let h = sim.hash();
            sim.annotate(PROMOTE_ANNOTATION, &format!("{h}@{nonce}"));
        }
        Op::Abort => {
            let h = sim.hash();
            sim.annotate(ABORT_ANNOTATION, &format!("{h}@{nonce}"));
        }
        Op::Retry => {
            let h = sim.hash();
            sim.annotate(RETRY_ANNOTATION, &format!("{h}@{nonce}"));
        }
        Op::Pause(p) => sim.rollout.spec.paused = *p,
        Op::Scale(n) => sim.rollout.spec.replicas = *n,
        Op::Invalidate => sim.rollout.spec.strategy.red_black.scale_down_delay = "soon".to_owned(),
        Op::Fix => sim.rollout.spec.strategy.red_black.scale_down_delay = "30m".to_owned(),
        Op::DropService => sim.observed.active_service = None,
        Op::RestoreService => {
            if sim.observed.active_service.is_none() {
                sim.observed.active_service = Some(service("web"));
            }
        }
    }
    Ok(())
}

/// `Sim::settle`, with the invariants checked on every plan on the way.
fn settle_checked(sim: &mut Sim) -> Result<(), TestCaseError> {
    for _ in 0..40 {
        sim.make_ready();
        let plan = sim.plan();
        check(sim, &plan)?;
        if plan.is_noop(sim.rollout.status.as_ref()) {
            match plan.requeue_after {
                Some(wait) => sim.now += chrono::Duration::from_std(wait).unwrap(),
                None => return Ok(()),
            }
        } else {
            sim.apply(&plan);
        }
    }
    Err(TestCaseError::fail(format!(
        "did not converge: {:#?}",
        sim.rollout.status
    )))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_and_the_world_converges(
        replicas in 1i32..4,
        manual in any::<bool>(),
        preview in any::<bool>(),
        warm in 0i32..3,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut sim = Sim::new("web:0", replicas);
        if manual {
            sim.rollout.spec.strategy.red_black.promotion = PromotionPolicy::Manual;
        }
        if preview {
            sim.rollout.spec.strategy.red_black.preview_service = Some("web-preview".to_owned());
            sim.observed.preview_service = Some(service("web-preview"));
        }
        sim.rollout.spec.strategy.red_black.warm_revisions = warm;
        let mut nonce = 0;
        for op in &ops {
            run(&mut sim, op, &mut nonce)?;
        }

        // Undo the disturbances a user would fix, then let the world settle.
        for op in [Op::Fix, Op::Pause(false), Op::RestoreService] {
            run(&mut sim, &op, &mut nonce)?;
        }
        for _ in 0..4 {
            settle_checked(&mut sim)?;
            let status = sim.rollout.status.clone().unwrap_or_default();
            if status.abort.is_some() {
                run(&mut sim, &Op::Retry, &mut nonce)?;
            } else if status.phase == Some(Phase::Paused) {
                run(&mut sim, &Op::Promote, &mut nonce)?;
            } else {
                break;
            }
        }
        let plan = sim.plan();
        check(&sim, &plan)?;
        prop_assert!(plan.is_noop(sim.rollout.status.as_ref()), "not converged: {:#?}", plan);
        prop_assert_eq!(sim.active_hash(), Some(sim.hash()));
        if preview {
            prop_assert_eq!(sim.preview_hash(), Some(sim.hash()));
        }
        prop_assert_eq!(plan.status.phase, Some(Phase::Healthy));
        // Only the live fleet (and at most warmRevisions warm ones) keep pods.
        let up = sim.observed.replica_sets.iter().filter(|r| r.spec.replicas.unwrap_or(0) > 0).count();
        prop_assert!(up <= 1 || replicas == 0, "{} fleets still up", up);
    }
}

// ---------------------------------------------------------------------------
// The canary flow: random configurations (HTTPRoute or replica counts,
// baseline, marginal policy, post-promotion analysis), scripted analysis
// verdicts, readiness, clocks and manual verbs.

use redblack::api::{CanaryPhase, ROLE_LABEL};
use redblack::rollout::plan::AnalysisPhase;

#[derive(Clone, Debug)]
enum CanaryOp {
    SetImage(u8),
    MakeReady,
    PartlyReady(usize, i32),
    Advance(i64),
    Step,
    StepLosingStatus,
    Verdict(u8, u8),
    Promote,
    Abort,
    Retry,
    Pause(bool),
    Scale(i32),
}

fn canary_op() -> impl Strategy<Value = CanaryOp> {
    prop_oneof![
        1 => (0u8..3).prop_map(CanaryOp::SetImage),
        6 => Just(CanaryOp::MakeReady),
        2 => (0usize..6, 0i32..3).prop_map(|(i, n)| CanaryOp::PartlyReady(i, n)),
        3 => prop_oneof![0i64..30, 0i64..700, 0i64..4000].prop_map(CanaryOp::Advance),
        12 => Just(CanaryOp::Step),
        1 => Just(CanaryOp::StepLosingStatus),
        7 => (0u8..5, 0u8..100).prop_map(|(p, s)| CanaryOp::Verdict(p, s)),
        1 => Just(CanaryOp::Promote),
        1 => Just(CanaryOp::Abort),
        1 => Just(CanaryOp::Retry),
        1 => any::<bool>().prop_map(CanaryOp::Pause),
        1 => (1i32..4).prop_map(CanaryOp::Scale),
    ]
}

const VERDICTS: [AnalysisPhase; 5] = [
    AnalysisPhase::Passed,
    AnalysisPhase::Marginal,
    AnalysisPhase::Failed,
    AnalysisPhase::Inconclusive,
    AnalysisPhase::Error,
];

fn role_of(rs: &k8s_openapi::api::apps::v1::ReplicaSet) -> Option<String> {
    rs.metadata.labels.as_ref()?.get(ROLE_LABEL).cloned()
}

/// The canary and (when on) the baseline of the current canary exist with all
/// pods ready and available.
fn canary_fleets_ready(sim: &Sim) -> bool {
    let Some(cfg) = sim.rollout.spec.strategy.red_black.canary.as_ref() else {
        return false;
    };
    let ready = |role: &str| {
        sim.observed.replica_sets.iter().any(|rs| {
            let status = rs.status.clone().unwrap_or_default();
            role_of(rs).as_deref() == Some(role)
                && (role != "canary"
                    || rs.metadata.name.as_deref()
                        == Some(format!("web-{}-canary", sim.hash()).as_str()))
                && status.ready_replicas.unwrap_or(0) >= cfg.replicas
                && status.available_replicas.unwrap_or(0) >= cfg.replicas
        })
    };
    ready("canary") && (!cfg.baseline || ready("baseline"))
}

/// Traffic currently reaches canary pods (route weight or widened selector).
fn canary_traffic_on(sim: &Sim) -> bool {
    sim.route_weight("web-canary") > 0
        || sim.route_weight("web-baseline") > 0
        || sim.active_selector() == sim.rollout.spec.selector.match_labels
}

fn canary_of(status: Option<&redblack::api::RolloutStatus>) -> Option<redblack::api::CanaryStatus> {
    status.and_then(|s| s.canary.clone())
}

/// The analysis the plan's canary record names is observed (it exists).
fn judged(sim: &Sim, plan: &Plan) -> bool {
    plan.status
        .canary
        .as_ref()
        .and_then(|c| c.analysis_name.as_ref())
        .is_some_and(|name| sim.observed.analyses.iter().any(|a| a.name == *name))
}

fn check_canary(sim: &Sim, plan: &Plan) -> Result<(), TestCaseError> {
    prop_assert_eq!(plan, &sim.plan(), "planning twice differs");
    check_paused(plan)?;
    // Canary traffic on => its analysis observed: a plan that turns traffic
    // on (it was off) does so only for a canary whose analysis exists.
    let turns_on = plan.actions.iter().any(|a| match a {
        Action::SetRouteWeights { backends, .. } => {
            backends.iter().any(|b| b.service != "web" && b.weight > 0)
        }
        Action::SwitchService { selector, .. } => {
            Some(selector) == sim.rollout.spec.selector.match_labels.as_ref()
        }
        _ => false,
    });
    prop_assert!(
        !turns_on || canary_traffic_on(sim) || judged(sim, plan),
        "canary traffic turned on before its analysis exists: {:?}",
        plan.actions
    );
    let old = sim.rollout.status.as_ref();
    let active = sim.active_hash();
    let match_labels = sim.rollout.spec.selector.match_labels.clone();
    let mut ensures = 0;
    for action in &plan.actions {
        match action {
            Action::SetRouteWeights { backends, .. } => {
                let shared = backends.iter().any(|b| b.service != "web" && b.weight > 0);
                prop_assert!(
                    !shared || canary_fleets_ready(sim),
                    "traffic to an unready canary fleet: {:?}",
                    backends
                );
                let total: i32 = backends.iter().map(|b| b.weight).sum();
                prop_assert_eq!(total, 100);
            }
            Action::SwitchService {
                service,
                selector,
                hash,
            } if service == "web" => {
                if Some(selector) == match_labels.as_ref() {
                    prop_assert!(canary_fleets_ready(sim), "widened to unready canary fleets");
                    let others = sim.observed.replica_sets.iter().filter(|rs| {
                        role_of(rs).is_none()
                            && Some(common::rs_hash(rs)) != active
                            && (rs.spec.replicas.unwrap_or(0) > 0
                                || rs.status.as_ref().is_some_and(|s| s.replicas > 0))
                    });
                    prop_assert_eq!(others.count(), 0, "widened while another fleet has pods");
                } else if Some(hash) != active.as_ref() {
                    // A switch to another revision: never on a bad verdict.
                    let rs = sim.rs(hash);
                    prop_assert!(rs.is_some(), "switch to a missing fleet {}", hash);
                    let promoted_before = old.is_some_and(|s| {
                        s.history.iter().any(|r| {
                            r.hash == *hash
                                && matches!(
                                    r.outcome,
                                    redblack::api::Outcome::Promoted
                                        | redblack::api::Outcome::RolledBack
                                )
                        })
                    });
                    let canary = plan
                        .status
                        .canary
                        .as_ref()
                        .filter(|c| c.revision.as_ref() == Some(hash));
                    let reverting = matches!(plan.state, redblack::rollout::State::Revert { .. });
                    prop_assert!(
                        promoted_before
                            || reverting
                            || active.is_none()
                            || canary.is_some_and(|c| matches!(
                                c.phase,
                                Some(CanaryPhase::Passed | CanaryPhase::Promoted)
                            )),
                        "switched to {} without a passing or promoted canary: {:?}",
                        hash,
                        canary
                    );
                }
            }
            Action::EnsureReplicaSet { hash, name, .. } => {
                ensures += 1;
                prop_assert!(sim.role_set(name).is_none(), "second fleet {}", name);
                if !name.ends_with("-canary") && !name.ends_with("-baseline") {
                    prop_assert_eq!(hash, &sim.hash());
                }
            }
            Action::DeleteReplicaSet { name } => {
                prop_assert!(
                    name.ends_with("-canary")
                        || name.ends_with("-baseline")
                        || Some(name.clone()) != active.as_ref().map(|a| format!("web-{a}")),
                    "deleted the live fleet"
                );
            }
            _ => {}
        }
    }
    prop_assert!(ensures <= 2);
    // A bad verdict never turns into a promotion.
    if let (Some(before), Some(after)) = (canary_of(old), plan.status.canary.as_ref())
        && before.revision == after.revision
        && before.attempt == after.attempt
        && matches!(
            before.phase,
            Some(CanaryPhase::Failed | CanaryPhase::Inconclusive | CanaryPhase::Error)
        )
    {
        prop_assert!(
            !matches!(
                after.phase,
                Some(CanaryPhase::Passed | CanaryPhase::Promoted)
            ),
            "{:?} became {:?}",
            before.phase,
            after.phase
        );
    }
    // A revert is ONE traffic write, first in the plan.
    let failed_now = plan
        .status
        .canary
        .as_ref()
        .is_some_and(|c| c.phase == Some(CanaryPhase::Failed))
        && canary_of(old).is_none_or(|c| {
            c.phase != Some(CanaryPhase::Failed)
                || c.revision != plan.status.canary.as_ref().and_then(|n| n.revision.clone())
        });
    let writes: Vec<_> = plan
        .actions
        .iter()
        .filter(|a| a.touches_traffic())
        .collect();
    if failed_now && canary_traffic_on(sim) {
        prop_assert_eq!(
            writes.len(),
            1,
            "revert is not one write: {:?}",
            plan.actions
        );
        prop_assert!(
            plan.actions[0].touches_traffic(),
            "revert is not first: {:?}",
            plan.actions
        );
    }
    if matches!(plan.state, redblack::rollout::State::Revert { .. }) {
        prop_assert_eq!(writes.len(), 1, "post-promotion revert is not one write");
    }
    // The share in status is 0 unless the fleets are ready.
    if plan
        .status
        .canary
        .as_ref()
        .is_some_and(|c| c.traffic_percent > 0)
    {
        prop_assert!(
            canary_fleets_ready(sim),
            "status claims traffic to unready fleets"
        );
    }
    Ok(())
}

fn run_canary(sim: &mut Sim, op: &CanaryOp, nonce: &mut u32) -> Result<(), TestCaseError> {
    *nonce += 1;
    match op {
        CanaryOp::SetImage(i) => sim.set_image(&format!("web:{}", i + 1)),
        CanaryOp::MakeReady => sim.make_ready(),
        CanaryOp::PartlyReady(i, n) => run(sim, &Op::PartlyReady(*i, *n), nonce)?,
        CanaryOp::Advance(s) => sim.advance(*s),
        CanaryOp::Step => {
            let plan = sim.plan();
            check_canary(sim, &plan)?;
            sim.apply(&plan);
        }
        CanaryOp::StepLosingStatus => {
            let plan = sim.plan();
            check_canary(sim, &plan)?;
            for action in &plan.actions {
                sim.apply_action(action);
            }
        }
        CanaryOp::Verdict(p, score) => {
            let verdict = VERDICTS[usize::from(*p) % VERDICTS.len()];
            if let Some(a) = sim
                .observed
                .analyses
                .iter_mut()
                .rev()
                .find(|a| a.phase == AnalysisPhase::Running)
            {
                a.phase = verdict;
                a.score = Some(f64::from(*score));
                a.message = Some("scripted".to_owned());
            }
        }
        CanaryOp::Promote => run(sim, &Op::Promote, nonce)?,
        CanaryOp::Abort => run(sim, &Op::Abort, nonce)?,
        CanaryOp::Retry => run(sim, &Op::Retry, nonce)?,
        CanaryOp::Pause(p) => sim.rollout.spec.paused = *p,
        CanaryOp::Scale(n) => sim.rollout.spec.replicas = *n,
    }
    Ok(())
}

/// Settles with every new analysis judged `verdict`, checking each plan.
fn settle_canary(sim: &mut Sim, verdict: AnalysisPhase) -> Result<(), TestCaseError> {
    for _ in 0..60 {
        sim.make_ready();
        sim.judge_running(verdict, 90.0);
        let plan = sim.plan();
        check_canary(sim, &plan)?;
        if plan.is_noop(sim.rollout.status.as_ref()) {
            match plan.requeue_after {
                Some(wait) => sim.now += chrono::Duration::from_std(wait).unwrap(),
                None => return Ok(()),
            }
        } else {
            sim.apply(&plan);
        }
    }
    Err(TestCaseError::fail(format!(
        "did not converge: {:#?}",
        sim.rollout.status
    )))
}

/// What a user does to get a new revision out with passing analyses: settle,
/// retry what was aborted or held without evidence, promote what is paused.
fn converge_passing(sim: &mut Sim, nonce: &mut u32) -> Result<(), TestCaseError> {
    for _ in 0..8 {
        settle_canary(sim, AnalysisPhase::Passed)?;
        let status = sim.rollout.status.clone().unwrap_or_default();
        let held = matches!(
            status.canary.as_ref().and_then(|c| c.phase),
            Some(CanaryPhase::Inconclusive | CanaryPhase::Error)
        ) && sim.active_hash() != Some(sim.hash());
        if status.abort.is_some() || held {
            run_canary(sim, &CanaryOp::Retry, nonce)?;
        } else if status.phase == Some(Phase::Paused) {
            run_canary(sim, &CanaryOp::Promote, nonce)?;
        } else {
            break;
        }
    }
    Ok(())
}

fn canary_world(route: bool, baseline: bool, marginal: u8, post: bool, replicas: i32) -> Sim {
    let marginal = ["Pause", "Fail", "Extend"][usize::from(marginal) % 3];
    let mut sim = Sim::with_canary(route, baseline, marginal);
    sim.rollout.spec.replicas = replicas;
    sim.settle();
    if post {
        sim.rollout.spec.strategy.red_black.post_promotion_analysis = Some(
            serde_json::from_value(
                serde_json::json!({"inline": {"interval": "1m", "lifetime": "20m", "metrics": []}}),
            )
            .unwrap(),
        );
    }
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn canary_invariants_hold_and_a_passing_world_converges(
        route in any::<bool>(),
        baseline in any::<bool>(),
        marginal in 0u8..3,
        post in any::<bool>(),
        windowed in any::<bool>(),
        replicas in 1i32..4,
        ops in proptest::collection::vec(canary_op(), 1..60),
    ) {
        let mut sim = canary_world(route, baseline, marginal, post, replicas);
        if windowed {
            sim.rollout.spec.strategy.red_black.promotion_windows = vec![serde_json::from_value(
                serde_json::json!({"days": ["Mon", "Fri"], "start": "22:00", "end": "01:00", "timeZone": "Europe/Berlin"}),
            )
            .unwrap()];
        }
        let mut nonce = 0;
        for op in &ops {
            run_canary(&mut sim, op, &mut nonce)?;
        }
        run_canary(&mut sim, &CanaryOp::Pause(false), &mut nonce)?;
        converge_passing(&mut sim, &mut nonce)?;
        let plan = sim.plan();
        check_canary(&sim, &plan)?;
        prop_assert!(plan.is_noop(sim.rollout.status.as_ref()), "not converged: {:#?}", plan);
        prop_assert_eq!(sim.active_hash(), Some(sim.hash()));
        prop_assert_eq!(plan.status.phase, Some(Phase::Healthy));
        prop_assert!(sim.role_sets().is_empty(), "canary fleets left: {:?}", sim.role_sets());
        prop_assert!(!canary_traffic_on(&sim));
    }

    #[test]
    fn a_failing_canary_leaves_stable_live_degraded_and_clean(
        route in any::<bool>(),
        baseline in any::<bool>(),
        replicas in 1i32..4,
        ops in proptest::collection::vec(prop_oneof![
            Just(CanaryOp::MakeReady), Just(CanaryOp::Step), (0i64..200).prop_map(CanaryOp::Advance),
            (0usize..6, 0i32..3).prop_map(|(i, n)| CanaryOp::PartlyReady(i, n)),
        ], 0..12),
    ) {
        let mut sim = canary_world(route, baseline, 0, false, replicas);
        let stable = sim.hash();
        sim.set_image("web:9");
        let mut nonce = 0;
        for op in &ops {
            run_canary(&mut sim, op, &mut nonce)?;
        }
        settle_canary(&mut sim, AnalysisPhase::Failed)?;
        let status = sim.rollout.status.clone().unwrap_or_default();
        prop_assert_eq!(sim.active_hash(), Some(stable));
        prop_assert_eq!(status.phase, Some(Phase::Degraded));
        prop_assert!(sim.role_sets().is_empty());
        prop_assert!(!canary_traffic_on(&sim));
        prop_assert!(sim.rs(&sim.hash()).is_none(), "full fleet of a failed canary");
    }
}

/// v1 live; v2 promoted through a passing canary with a post-promotion
/// analysis configured; the analysis may or may not exist yet.
fn post_promoted_world(route: bool, replicas: i32) -> Sim {
    let mut sim = canary_world(route, true, 0, true, replicas);
    sim.set_image("web:2");
    for _ in 0..20 {
        sim.make_ready();
        for a in &mut sim.observed.analyses {
            if a.phase == AnalysisPhase::Running && !a.name.contains("-post-") {
                a.phase = AnalysisPhase::Passed;
                a.score = Some(99.0);
            }
        }
        sim.step();
        if sim.active_hash() == Some(sim.hash()) {
            break;
        }
    }
    assert_eq!(sim.active_hash(), Some(sim.hash()), "not promoted");
    sim
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn post_promotion_invariants_hold_and_the_world_converges(
        route in any::<bool>(),
        replicas in 1i32..4,
        ops in proptest::collection::vec(prop_oneof![
            6 => Just(CanaryOp::Step),
            2 => Just(CanaryOp::StepLosingStatus),
            4 => (0u8..5, 0u8..100).prop_map(|(p, s)| CanaryOp::Verdict(p, s)),
            3 => prop_oneof![0i64..120, 0i64..4000].prop_map(CanaryOp::Advance),
            3 => Just(CanaryOp::MakeReady),
            2 => (0usize..6, 0i32..3).prop_map(|(i, n)| CanaryOp::PartlyReady(i, n)),
            1 => Just(CanaryOp::Retry),
        ], 1..30),
    ) {
        let mut sim = post_promoted_world(route, replicas);
        let mut nonce = 0;
        for op in &ops {
            run_canary(&mut sim, op, &mut nonce)?;
        }
        converge_passing(&mut sim, &mut nonce)?;
        let plan = sim.plan();
        prop_assert!(plan.is_noop(sim.rollout.status.as_ref()), "not converged: {:#?}", plan);
        prop_assert_eq!(sim.active_hash(), Some(sim.hash()));
        prop_assert_eq!(plan.status.phase, Some(Phase::Healthy));
    }
}

/// The revision-number rule (`revision_number`): never below the current
/// template's own fleet, always above every other fleet, never below anything
/// recorded when the template has no fleet, and stable once applied.
fn revision_facts() -> impl Strategy<Value = redblack::rollout::plan::RevisionFacts> {
    (
        proptest::option::of(1i64..20),
        proptest::option::of(1i64..20),
        0i64..20,
        0i64..20,
    )
        .prop_map(|(own_fleet, own_recorded, other_fleets, recorded)| {
            redblack::rollout::plan::RevisionFacts {
                own_fleet,
                own_recorded,
                other_fleets,
                // The highest number recorded includes the template's own.
                recorded: recorded.max(own_recorded.unwrap_or(0)),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn revision_numbers_only_grow(facts in revision_facts()) {
        use redblack::rollout::plan::{RevisionFacts, revision_number};
        let n = revision_number(&facts);
        prop_assert!(n >= 1);
        prop_assert!(n > facts.other_fleets, "{n} not above the other fleets: {facts:?}");
        if let Some(own) = facts.own_fleet {
            prop_assert!(n >= own, "{n} below its own fleet: {facts:?}");
        } else {
            prop_assert!(n >= facts.recorded, "{n} below the history: {facts:?}");
        }
        // Applied (the fleet annotated with it), the number stays.
        let applied = RevisionFacts { own_fleet: Some(n), ..facts };
        prop_assert_eq!(revision_number(&applied), n);
    }
}
