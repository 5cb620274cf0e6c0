//! Property tests of planner invariants over random histories: random template
//! changes, readiness, clocks, manual operations, scaling, invalid specs and a
//! missing Service, applied to a small simulated world.

mod common;

use common::{Sim, service};
use proptest::prelude::*;
use redblack::api::{
    ABORT_ANNOTATION, PROMOTE_ANNOTATION, Phase, PromotionPolicy, RETRY_ANNOTATION,
    SCALE_DOWN_AT_ANNOTATION, validate,
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
fn check(sim: &Sim, plan: &Plan) -> Result<(), TestCaseError> {
    prop_assert_eq!(plan, &sim.plan(), "planning twice differs");
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
            Action::EnsureReplicaSet { hash, .. } => {
                ensures += 1;
                prop_assert_eq!(hash, &current, "fleet for a template that is not current");
                prop_assert!(sim.rs(hash).is_none(), "second fleet for one template");
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
