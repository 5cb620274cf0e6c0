//! The planner's analysis history (`spec.analysis`, Argo Rollouts'
//! `successfulRunHistoryLimit` / `unsuccessfulRunHistoryLimit`): finished
//! CanaryAnalyses beyond the limits are deleted, newest kept, only in a plan
//! that writes nothing else, and never one still in play (src/rollout/plan/
//! analysis_history.rs lists which).

mod common;

use std::collections::BTreeSet;

use chrono::Duration;
use proptest::prelude::*;

use common::Sim;
use redblack::api::analysis_history::AnalysisHistory;
use redblack::api::{CanaryStatus, Phase};
use redblack::rollout::plan::{AnalysisObservation, AnalysisPhase};
use redblack::rollout::{Action, EventType, Plan};

/// The CanaryAnalyses a plan deletes, in its order.
fn deleted(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteCanaryAnalysis { name } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// A finished analysis of `revision`, created `minutes` before the sim's now.
fn finished(
    sim: &Sim,
    name: &str,
    revision: &str,
    phase: AnalysisPhase,
    minutes: i64,
) -> AnalysisObservation {
    AnalysisObservation {
        name: name.to_owned(),
        phase,
        score: Some(90.0),
        message: None,
        revision: Some(revision.to_owned()),
        created: Some(sim.now - Duration::minutes(minutes)),
        owned: true,
        deleting: false,
    }
}

/// `n` Passed analyses `p0`, `p1`, … of old revisions `old-0`, …, `p<i>`
/// created `i` minutes ago.
fn passed(sim: &Sim, n: i64) -> Vec<AnalysisObservation> {
    passed_aged(sim, n, |i| i)
}

/// As [`passed`], `p<i>` created `age(i)` minutes ago.
fn passed_aged(sim: &Sim, n: i64, age: impl Fn(i64) -> i64) -> Vec<AnalysisObservation> {
    (0..n)
        .map(|i| {
            let (name, revision) = (format!("p{i}"), format!("old-{i}"));
            finished(sim, &name, &revision, AnalysisPhase::Passed, age(i))
        })
        .collect()
}

/// v1 live and settled, with `analyses` observed (old revisions `old-<i>`).
fn steady_with(analyses: impl Fn(&Sim) -> Vec<AnalysisObservation>) -> Sim {
    let mut sim = Sim::steady("web:1", 3);
    sim.observed.analyses = analyses(&sim);
    sim
}

fn names(sim: &Sim) -> BTreeSet<String> {
    sim.observed
        .analyses
        .iter()
        .map(|a| a.name.clone())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

struct Case {
    name: &'static str,
    given: fn() -> Sim,
    /// The analyses the plan deletes (any order).
    deletes: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "five Passed or fewer: nothing is deleted",
        given: || steady_with(|sim| passed(sim, 5)),
        deletes: &[],
    },
    Case {
        name: "seven Passed: the two oldest go",
        given: || steady_with(|sim| passed(sim, 7)),
        deletes: &["p5", "p6"],
    },
    Case {
        name: "the newest are kept by creation time, not by name",
        given: || steady_with(|sim| passed_aged(sim, 6, |i| 10 - i)),
        deletes: &["p0"],
    },
    Case {
        name: "successful and unsuccessful are counted apart: failures survive a run of passes",
        given: || {
            steady_with(|sim| {
                let mut a = passed(sim, 8);
                let bad = [
                    AnalysisPhase::Failed,
                    AnalysisPhase::Marginal,
                    AnalysisPhase::Inconclusive,
                    AnalysisPhase::Error,
                    AnalysisPhase::Failed,
                    AnalysisPhase::Failed,
                ];
                a.extend(bad.iter().enumerate().map(|(i, phase)| {
                    finished(
                        sim,
                        &format!("f{i}"),
                        &format!("old-f{i}"),
                        *phase,
                        100 + i as i64,
                    )
                }));
                a
            })
        },
        deletes: &["p5", "p6", "p7", "f5"],
    },
    Case {
        name: "never deleted: running, pending, not owned, being deleted, or of the stable revision",
        given: || {
            steady_with(|sim| {
                let stable = sim.hash();
                let mut a: Vec<_> = passed(sim, 5);
                let mut running = finished(sim, "running", "old-r", AnalysisPhase::Running, 50);
                running.score = None;
                let mut pending = finished(sim, "pending", "old-q", AnalysisPhase::Pending, 51);
                pending.score = None;
                let mut users = finished(sim, "users", "old-u", AnalysisPhase::Passed, 52);
                users.owned = false;
                let mut going = finished(sim, "going", "old-g", AnalysisPhase::Passed, 53);
                going.deleting = true;
                let live = finished(sim, "live", &stable, AnalysisPhase::Passed, 54);
                let oldest = finished(sim, "oldest", "old-o", AnalysisPhase::Passed, 55);
                a.extend([running, pending, users, going, live, oldest]);
                a
            })
        },
        deletes: &["oldest"],
    },
    Case {
        name: "an analysis the status names is kept, even of an old revision",
        given: || {
            let mut sim = steady_with(|sim| passed(sim, 7));
            let status = sim.rollout.status.as_mut().unwrap();
            status.canary = Some(CanaryStatus {
                analysis_name: Some("p6".into()),
                ..CanaryStatus::default()
            });
            sim
        },
        deletes: &["p5"],
    },
    Case {
        name: "an analysis without a revision label is counted like any other",
        given: || {
            steady_with(|sim| {
                let mut a: Vec<_> = passed(sim, 5);
                let mut unlabelled = finished(sim, "unlabelled", "x", AnalysisPhase::Passed, 99);
                unlabelled.revision = None;
                a.push(unlabelled);
                a
            })
        },
        deletes: &["unlabelled"],
    },
    Case {
        name: "limits of 0 keep only what is in play",
        given: || {
            let mut sim = steady_with(|sim| {
                let stable = sim.hash();
                vec![
                    finished(sim, "live", &stable, AnalysisPhase::Passed, 1),
                    finished(sim, "old", "old-1", AnalysisPhase::Passed, 2),
                    finished(sim, "bad", "old-2", AnalysisPhase::Failed, 3),
                ]
            });
            sim.rollout.spec.analysis = Some(AnalysisHistory {
                successful_run_history_limit: 0,
                unsuccessful_run_history_limit: 0,
            });
            sim
        },
        deletes: &["old", "bad"],
    },
    Case {
        name: "larger limits keep more",
        given: || {
            let mut sim = steady_with(|sim| passed(sim, 7));
            sim.rollout.spec.analysis = Some(AnalysisHistory {
                successful_run_history_limit: 6,
                unsuccessful_run_history_limit: 5,
            });
            sim
        },
        deletes: &["p6"],
    },
];

#[test]
fn analyses_beyond_the_limits_are_deleted_newest_kept() {
    for case in CASES {
        let mut sim = (case.given)();
        let plan = sim.plan();
        let got: BTreeSet<String> = deleted(&plan).into_iter().collect();
        assert_eq!(got, set(case.deletes), "{}", case.name);
        if case.deletes.is_empty() {
            assert!(plan.is_noop(sim.rollout.status.as_ref()), "{}", case.name);
            continue;
        }
        // A plan that prunes does nothing else, and says what it deleted.
        assert_eq!(plan.actions.len(), case.deletes.len(), "{}", case.name);
        assert_eq!(
            plan.status,
            *sim.rollout.status.as_ref().unwrap(),
            "{}",
            case.name
        );
        let pruned: Vec<_> = plan
            .events
            .iter()
            .filter(|e| e.reason == "AnalysisPruned")
            .collect();
        assert!(!pruned.is_empty(), "{}", case.name);
        assert!(
            pruned.iter().all(|e| e.type_ == EventType::Normal),
            "{}",
            case.name
        );
        for name in case.deletes.iter().take(3) {
            assert!(
                pruned.iter().any(|e| e.message.contains(name)),
                "{}: {name} named in {pruned:?}",
                case.name
            );
        }
        // Once the deletes are observed, the next plan has nothing to do.
        sim.apply(&plan);
        let again = sim.plan();
        assert!(
            again.is_noop(sim.rollout.status.as_ref()),
            "{}: {again:?}",
            case.name
        );
    }
}

#[test]
fn the_event_counts_what_it_does_not_name() {
    let sim = steady_with(|sim| passed(sim, 10));
    let plan = sim.plan();
    let messages: Vec<_> = plan.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "deleted 5 Passed CanaryAnalyses (p5, p6, p7 and 2 more) beyond analysis.successfulRunHistoryLimit 5"
        ]
    );
}

#[test]
fn a_plan_that_writes_anything_else_prunes_nothing() {
    let mut sim = steady_with(|sim| passed(sim, 8));
    sim.set_image("web:2");
    let plan = sim.plan();
    assert!(!plan.actions.is_empty());
    assert!(deleted(&plan).is_empty(), "{:?}", plan.actions);
    // Pruned once the new revision is live and nothing else is to be done.
    sim.settle();
    assert_eq!(sim.observed.analyses.len(), 5, "{:?}", names(&sim));
    assert_eq!(
        sim.rollout.status.as_ref().unwrap().phase,
        Some(Phase::Healthy)
    );
}

/// End to end through the planner: a canary Rollout shipped twelve times
/// keeps the analysis of its live revision, of the revision before it (the
/// baseline `status.canary` names, still warm) and the five newest Passed
/// ones; with failures in between, the newest unsuccessful ones survive too.
#[test]
fn a_canary_rollout_shipped_many_times_keeps_a_bounded_history() {
    let hash = |i: i32| {
        let mut s = Sim::with_canary(false, true, "Pause");
        s.set_image(&format!("web:{i}"));
        s.hash()
    };
    let mut sim = Sim::with_canary(false, true, "Pause");
    for i in 2..=13 {
        sim.advance(3600);
        sim.set_image(&format!("web:{i}"));
        sim.settle_judging(AnalysisPhase::Passed, 97.0);
        assert_eq!(sim.active_hash(), Some(sim.hash()), "web:{i} is live");
    }
    let live = sim.hash();
    let revisions: BTreeSet<_> = sim
        .observed
        .analyses
        .iter()
        .filter_map(|a| a.revision.clone())
        .collect();
    assert_eq!(sim.observed.analyses.len(), 7, "{:?}", names(&sim));
    assert_eq!(revisions, (7..=13).map(hash).collect::<BTreeSet<_>>());

    // Seven failed canaries: each is reverted; five of them are kept, and so
    // are the Passed ones (the stable revision's among them).
    for i in 14..=20 {
        sim.advance(3600);
        sim.set_image(&format!("web:{i}"));
        sim.settle_judging(AnalysisPhase::Failed, 10.0);
        assert_eq!(sim.active_hash(), Some(live.clone()), "web:{i} reverted");
    }
    let failed = sim
        .observed
        .analyses
        .iter()
        .filter(|a| a.phase == AnalysisPhase::Failed)
        .count();
    let passed = sim
        .observed
        .analyses
        .iter()
        .filter(|a| a.phase == AnalysisPhase::Passed)
        .count();
    // 5 kept + web:20's, which the status names (the current revision).
    assert_eq!(failed, 6, "{:?}", names(&sim));
    assert_eq!(passed, 6, "{:?}", names(&sim));
}

fn phase() -> impl Strategy<Value = AnalysisPhase> {
    prop_oneof![
        Just(AnalysisPhase::Pending),
        Just(AnalysisPhase::Running),
        Just(AnalysisPhase::Passed),
        Just(AnalysisPhase::Marginal),
        Just(AnalysisPhase::Failed),
        Just(AnalysisPhase::Inconclusive),
        Just(AnalysisPhase::Error),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever is observed: nothing in play is deleted, each outcome keeps
    /// exactly min(limit, candidates) of its newest, and one prune settles.
    #[test]
    fn pruning_keeps_what_is_in_play_and_the_newest(
        rows in proptest::collection::vec(
            (phase(), 0usize..4, 0i64..30, any::<bool>(), any::<bool>()),
            0..24,
        ),
        successful in 0i32..4,
        unsuccessful in 0i32..4,
    ) {
        let mut sim = Sim::steady("web:1", 3);
        let stable = sim.hash();
        let revisions = [stable.clone(), "old-a".into(), "old-b".into(), "old-c".into()];
        sim.observed.analyses = rows
            .iter()
            .enumerate()
            .map(|(i, (phase, rev, minutes, owned, deleting))| AnalysisObservation {
                owned: *owned,
                deleting: *deleting && *owned,
                ..finished(&sim, &format!("a{i:02}"), &revisions[*rev], *phase, *minutes)
            })
            .collect();
        sim.rollout.spec.analysis = Some(AnalysisHistory {
            successful_run_history_limit: successful,
            unsuccessful_run_history_limit: unsuccessful,
        });
        let plan = sim.plan();
        let gone: BTreeSet<String> = deleted(&plan).into_iter().collect();
        let candidate = |a: &AnalysisObservation| {
            a.owned && !a.deleting && a.phase.finished() && a.revision.as_deref() != Some(&stable)
        };
        for a in &sim.observed.analyses {
            if gone.contains(&a.name) {
                prop_assert!(candidate(a), "{a:?} is in play");
            }
        }
        for (pass, limit) in [(true, successful), (false, unsuccessful)] {
            let mut class: Vec<_> = sim
                .observed
                .analyses
                .iter()
                .filter(|a| candidate(a) && (a.phase == AnalysisPhase::Passed) == pass)
                .collect();
            class.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
            for (i, a) in class.iter().enumerate() {
                prop_assert_eq!(gone.contains(&a.name), i >= limit as usize, "{:?}", a);
            }
        }
        if !gone.is_empty() {
            prop_assert_eq!(plan.actions.len(), gone.len());
        }
        sim.apply(&plan);
        prop_assert!(sim.plan().is_noop(sim.rollout.status.as_ref()));
    }
}

/// A delete the API refuses is reported as every refused write is — a
/// condition and one Warning Event — without turning the Rollout Degraded,
/// and without flapping: the condition stays while analyses are due, each
/// later plan tries again, and it goes once they are deleted.
#[test]
fn a_refused_delete_is_a_condition_and_one_event_until_the_analyses_go() {
    let refused_condition = |sim: &Sim| {
        let status = sim.rollout.status.as_ref().unwrap();
        redblack::api::conditions::find(&status.conditions, "AnalysisPruneRefused").cloned()
    };
    let mut sim = steady_with(|sim| passed(sim, 7));
    assert_eq!(deleted(&sim.plan()), ["p5", "p6"]);

    // The shell re-plans with what the API said.
    let api = "the API refused deleting CanaryAnalysis p5 (403 Forbidden): forbidden";
    sim.observed.prune_refused = Some(api.to_owned());
    let plan = sim.plan();
    assert!(deleted(&plan).is_empty(), "not tried again in that plan");
    let warnings: Vec<_> = plan
        .events
        .iter()
        .filter(|e| e.type_ == EventType::Warning)
        .map(|e| (e.reason.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].0, "AnalysisPruneFailed");
    assert!(warnings[0].1.starts_with(api), "{}", warnings[0].1);
    sim.apply(&plan);
    let condition = refused_condition(&sim).expect("the condition");
    assert_eq!(condition.status, redblack::api::ConditionStatus::True);
    assert!(condition.message.starts_with(api), "{}", condition.message);
    let status = sim.rollout.status.as_ref().unwrap();
    assert_eq!(
        status.phase,
        Some(Phase::Healthy),
        "the rollout is not held"
    );

    // The next plan keeps the condition (no write, no Event) and tries again.
    sim.observed.prune_refused = None;
    let retry = sim.plan();
    assert_eq!(deleted(&retry), ["p5", "p6"]);
    assert_eq!(retry.status, *sim.rollout.status.as_ref().unwrap());
    assert!(
        retry.events.iter().all(|e| e.type_ == EventType::Normal),
        "{:?}",
        retry.events
    );

    // Allowed now: deleted, then the condition goes.
    sim.apply(&retry);
    sim.step();
    assert_eq!(refused_condition(&sim), None);
    assert_eq!(sim.observed.analyses.len(), 5);
    assert!(sim.plan().is_noop(sim.rollout.status.as_ref()));
}
