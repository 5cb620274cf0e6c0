//! Tests of the pure decision loop: [`plan`](super::plan::plan) and
//! [`Progress`](super::progress::Progress) driven together with canned
//! interval outcomes, as `reconcile` drives them with real ones.

use chrono::{DateTime, Utc};
use redblack_judge::{Classification, JudgeResult};

use super::bounds::{Limits, MAX_METRICS_BYTES, bound_metrics, collapse_events};
use super::plan::{AnalysisPlan, plan};
use super::progress::{IntervalOutcome, Progress, Step};
use super::spec::ResolvedSpec;
use super::testutil::{analysis, at};
use super::time::to_time;
use crate::analysis::traffic_check::NO_TRAFFIC_MESSAGE;
use crate::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase, CanaryAnalysisStatus};
use crate::runtime::events::PlannedEvent;
use proptest::prelude::{prop_assert, prop_assert_eq};
use redblack_judge::{JudgeConfig, MetricConfig, MetricSamples, judge};
use serde_json::json;

fn result(score_pass: usize, fail: usize, marginal: f64) -> JudgeResult {
    // `score_pass` passing metrics and `fail` failing ones (canary 10x).
    let mut metrics = Vec::new();
    let mut samples = Vec::new();
    for i in 0..score_pass + fail {
        let name = format!("m{i}");
        metrics.push(MetricConfig::new(&name));
        let base: Vec<f64> = (0..60).map(|v| 100.0 + f64::from(v % 7)).collect();
        let canary: Vec<f64> = if i < score_pass {
            base.clone()
        } else {
            base.iter().map(|v| v * 10.0).collect()
        };
        samples.push(MetricSamples::continuous(&name, &canary, &base));
    }
    let mut config = JudgeConfig::new(metrics);
    config.score_thresholds.marginal = marginal;
    judge(&config, &samples).unwrap()
}

fn nodata_result() -> JudgeResult {
    judge(&JudgeConfig::new(vec![MetricConfig::new("m")]), &[]).unwrap()
}

fn run(ca: &CanaryAnalysis, now: i64) -> AnalysisPlan {
    plan(ca, at(now), None, Limits::default())
}

fn settle(p: AnalysisPlan) -> (CanaryAnalysisStatus, Option<DateTime<Utc>>) {
    match p {
        AnalysisPlan::Settle { progress, wake } => (progress.status, wake),
        AnalysisPlan::Judge { intervals, .. } => panic!("expected Settle, got Judge {intervals:?}"),
        AnalysisPlan::Look { at, .. } => panic!("expected Settle, got Look at {at}"),
    }
}

fn judge_plan(p: AnalysisPlan) -> (Box<ResolvedSpec>, Progress, Vec<u32>) {
    match p {
        AnalysisPlan::Judge {
            spec,
            progress,
            intervals,
        } => (spec, progress, intervals),
        AnalysisPlan::Settle { progress, .. } => {
            panic!("expected Judge, got Settle {:?}", progress.status)
        }
        AnalysisPlan::Look { at, .. } => panic!("expected Judge, got Look at {at}"),
    }
}

fn with_status(mut ca: CanaryAnalysis, status: CanaryAnalysisStatus) -> CanaryAnalysis {
    ca.status = Some(status);
    ca
}

/// Runs the controller's decision loop with canned outcomes.
fn drive(
    ca: &CanaryAnalysis,
    now: i64,
    outcome: impl Fn(u32) -> IntervalOutcome,
) -> (CanaryAnalysisStatus, Vec<PlannedEvent>) {
    match run(ca, now) {
        AnalysisPlan::Settle { progress, .. } | AnalysisPlan::Look { progress, .. } => {
            (progress.status, progress.events)
        }
        AnalysisPlan::Judge {
            spec,
            mut progress,
            intervals,
        } => {
            for k in intervals {
                if let Step::Finished(_) = progress.record(&spec.schedule, k, outcome(k)) {
                    break;
                }
            }
            (progress.status, progress.events)
        }
    }
}

#[test]
fn pending_then_running_then_due() {
    // Fixed mode: wakes at interval boundaries only (sequential mode looks
    // at every step between them).
    let ca = analysis(json!({"mode": "fixed", "startTime": "2023-11-14T22:23:20Z"})); // at(600)
    let (status, wake) = settle(run(&ca, 0));
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Pending));
    assert_eq!(wake, Some(at(600)));
    let ca = with_status(ca, status);
    let (status, wake) = settle(run(&ca, 610));
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Running));
    assert_eq!(wake, Some(at(660)));
    assert_eq!(status.started_at, Some(to_time(at(610))));
    assert_eq!(status.interval_progress.as_deref(), Some("0/10"));
    let ca = with_status(ca, status);
    let (_, _, due) = judge_plan(run(&ca, 725));
    assert_eq!(due, vec![1, 2]);
}

#[test]
fn nothing_due_writes_the_same_status() {
    let ca = analysis(json!({"mode": "fixed"}));
    let (status, _) = settle(run(&ca, 10));
    let ca = with_status(ca, status.clone());
    for now in [11, 30, 59] {
        let (again, wake) = settle(run(&ca, now));
        assert_eq!(again, status, "status changed at {now}");
        assert_eq!(wake, Some(at(60)));
    }
}

#[test]
fn determinism_same_input_same_status() {
    let ca = analysis(json!({}));
    let a = drive(&ca, 1_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
    let b = drive(&ca, 1_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
    assert_eq!(a, b);
    assert_eq!(a.0.phase, Some(CanaryAnalysisPhase::Passed));
    // A terminal status is left alone, whatever the clock says.
    let done = with_status(ca, a.0.clone());
    let (again, wake) = settle(run(&done, 5_000));
    assert_eq!(again, a.0);
    assert_eq!(wake, None);
}

#[test]
fn retrospective_judges_everything_at_once() {
    let ca = analysis(json!({"warmup": "2m"}));
    let (spec, _, due) = judge_plan(run(&ca, 100_000));
    assert_eq!(due, (1..=8).collect::<Vec<_>>());
    assert_eq!(spec.schedule.judged_window(8), (at(120), at(600)));
    let (status, events) = drive(&ca, 100_000, |_| {
        IntervalOutcome::Judged(result(4, 0, 75.0))
    });
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Passed));
    assert_eq!(status.completed_intervals, 8);
    assert_eq!(status.interval_progress.as_deref(), Some("8/8"));
    assert_eq!(status.completed_at, Some(to_time(at(100_000))));
    assert_eq!(events.last().map(|n| n.reason.as_str()), Some("Passed"));
}

/// (scores per interval as (pass, fail) metric counts) -> phase, intervals judged
#[test]
fn early_end_and_verdict_rules() {
    type Row = (
        &'static str,
        fn(u32) -> IntervalOutcome,
        CanaryAnalysisPhase,
        u32,
    );
    let rows: [Row; 7] = [
        (
            "all pass",
            |_| IntervalOutcome::Judged(result(4, 0, 75.0)),
            CanaryAnalysisPhase::Passed,
            10,
        ),
        // 2/3 = 66.7 <= 75: fails in the first interval.
        (
            "fail ends early",
            |_| IntervalOutcome::Judged(result(2, 1, 75.0)),
            CanaryAnalysisPhase::Failed,
            1,
        ),
        (
            "fail at 4",
            |k| {
                IntervalOutcome::Judged(if k < 4 {
                    result(4, 0, 75.0)
                } else {
                    result(1, 3, 75.0)
                })
            },
            CanaryAnalysisPhase::Failed,
            4,
        ),
        // 4/5 = 80: Marginal band, above the marginal threshold: runs to the end.
        (
            "marginal",
            |_| IntervalOutcome::Judged(result(4, 1, 75.0)),
            CanaryAnalysisPhase::Marginal,
            10,
        ),
        // Exactly at the marginal threshold: Kayenta's <= ends the run.
        (
            "at threshold",
            |_| IntervalOutcome::Judged(result(4, 1, 80.0)),
            CanaryAnalysisPhase::Failed,
            1,
        ),
        (
            "no traffic",
            |_| IntervalOutcome::NoTraffic,
            CanaryAnalysisPhase::Inconclusive,
            10,
        ),
        (
            "nodata",
            |_| IntervalOutcome::Judged(nodata_result()),
            CanaryAnalysisPhase::Inconclusive,
            10,
        ),
    ];
    for (name, outcome, phase, judged) in rows {
        let (status, _) = drive(&analysis(json!({})), 10_000, outcome);
        assert_eq!(status.phase, Some(phase), "{name}: {:?}", status.message);
        assert_eq!(status.completed_intervals, judged, "{name}");
    }
}

#[test]
fn no_traffic_message_and_recovery() {
    let (status, _) = drive(&analysis(json!({})), 10_000, |_| IntervalOutcome::NoTraffic);
    assert!(
        status
            .message
            .as_deref()
            .unwrap()
            .contains("canary received no traffic")
    );
    assert_eq!(
        status.intervals[0].inconclusive_reason.as_deref(),
        Some(NO_TRAFFIC_MESSAGE)
    );
    assert_eq!(status.intervals[0].score, None);
    // Traffic arrives later: the final judgement decides.
    let (status, _) = drive(&analysis(json!({})), 10_000, |k| {
        if k < 3 {
            IntervalOutcome::NoTraffic
        } else {
            IntervalOutcome::Judged(result(3, 0, 75.0))
        }
    });
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Passed));
    assert_eq!(status.aggregate.as_ref().unwrap().inconclusive, 2);
}

#[test]
fn intervals_are_bounded_with_an_aggregate() {
    let ca = analysis(json!({"lifetime": "1h", "interval": "1m"}));
    let (status, _) = drive(&ca, 10_000, |k| {
        IntervalOutcome::Judged(if k % 2 == 0 {
            result(4, 1, 75.0)
        } else {
            result(4, 0, 75.0)
        })
    });
    assert_eq!(status.completed_intervals, 60);
    assert_eq!(status.intervals.len(), 20);
    assert_eq!(status.intervals.first().unwrap().index, 41);
    assert_eq!(status.intervals.last().unwrap().index, 60);
    let agg = status.aggregate.unwrap();
    assert_eq!(
        (agg.judged, agg.pass, agg.marginal, agg.scored),
        (60, 30, 30, 60)
    );
    assert_eq!(agg.min_score, Some(80.0));
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Marginal));
}

#[test]
fn restart_continues_from_status() {
    let ca = analysis(json!({}));
    // Operator judged 3 intervals, then died; at 400s intervals 4..6 are due.
    let (status, _) = drive(&ca, 200, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
    assert_eq!(status.completed_intervals, 3);
    let ca = with_status(ca, status);
    let (_, _, due) = judge_plan(run(&ca, 400));
    assert_eq!(due, vec![4, 5, 6]);
}

#[test]
fn spec_change_starts_over() {
    let ca = analysis(json!({}));
    let (status, _) = drive(&ca, 10_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
    let mut ca = with_status(ca, status);
    ca.metadata.generation = Some(2);
    let (_, progress, due) = judge_plan(run(&ca, 10_000));
    assert_eq!(due.len(), 10);
    assert_eq!(progress.status.completed_intervals, 0);
    assert_eq!(progress.status.observed_generation, Some(2));
    assert!(progress.events.iter().any(|n| n.reason == "SpecChanged"));
}

#[test]
fn invalid_spec_is_an_error_naming_the_field() {
    let ca = analysis(json!({"interval": "soon"}));
    let (status, wake) = settle(run(&ca, 100));
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Error));
    assert!(
        status.message.as_deref().unwrap().contains("spec.interval"),
        "{:?}",
        status.message
    );
    assert_eq!(wake, None);
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .unwrap();
    assert_eq!(stalled.status, "True");
}

#[test]
fn unreachable_source_retries_with_backoff_then_errors() {
    let limits = Limits {
        max_source_attempts: 3,
        ..Limits::default()
    };
    let mut ca = analysis(json!({}));
    let mut now = 100;
    for attempt in 1..=3u32 {
        let AnalysisPlan::Judge { mut progress, .. } = plan(&ca, at(now), None, limits) else {
            panic!("attempt {attempt}: expected a judgement");
        };
        let wake = progress.source_unreachable("http://p:9090", "connection refused");
        let status = progress.status;
        if attempt < 3 {
            let wait = 10 * 2i64.pow(attempt - 1);
            assert_eq!(wake, Some(at(now + wait)));
            assert_eq!(status.phase, Some(CanaryAnalysisPhase::Running));
            assert!(
                status
                    .message
                    .as_deref()
                    .unwrap()
                    .contains(&format!("attempt {attempt} of 3"))
            );
            ca = with_status(ca, status);
            // Woken early (e.g. by our own status write): wait, write nothing new.
            let (same, w) = settle(plan(&ca, at(now + 1), None, limits));
            assert_eq!(Some(&same), ca.status.as_ref());
            assert_eq!(w, Some(at(now + wait)));
            now += wait;
        } else {
            assert_eq!(wake, None);
            assert_eq!(status.phase, Some(CanaryAnalysisPhase::Error));
            assert!(
                status
                    .message
                    .as_deref()
                    .unwrap()
                    .starts_with("prometheus at http://p:9090 unreachable: connection refused"),
                "{:?}",
                status.message
            );
        }
    }
}

#[test]
fn conditions_keep_transition_times() {
    let ca = analysis(json!({}));
    let (status, _) = settle(run(&ca, 10));
    let ready = |s: &CanaryAnalysisStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .cloned()
            .unwrap()
    };
    assert_eq!(ready(&status).status, "False");
    assert_eq!(ready(&status).last_transition_time, to_time(at(10)));
    let ca = with_status(ca, status);
    let (status, _) = drive(&ca, 70, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
    assert_eq!(status.completed_intervals, 1);
    assert_eq!(
        ready(&status).last_transition_time,
        to_time(at(10)),
        "unchanged status keeps its time"
    );
    let ca = with_status(ca, status);
    let (status, _) = drive(&ca, 10_000, |_| IntervalOutcome::Judged(result(3, 0, 75.0)));
    assert_eq!(ready(&status).status, "True");
    assert_eq!(ready(&status).reason, "Passed");
    assert_eq!(ready(&status).last_transition_time, to_time(at(10_000)));
}

#[test]
fn interval_events_are_collapsed() {
    let ca = analysis(json!({"lifetime": "1h", "interval": "1m"}));
    let (_, events) = drive(&ca, 100_000, |_| {
        IntervalOutcome::Judged(result(3, 0, 75.0))
    });
    assert_eq!(
        events
            .iter()
            .filter(|n| n.reason == "IntervalJudged")
            .count(),
        60
    );
    let collapsed = collapse_events(events);
    let judged: Vec<&str> = collapsed
        .iter()
        .filter(|n| n.reason == "IntervalJudged")
        .map(|n| n.message.as_str())
        .collect();
    assert_eq!(judged.len(), 4, "{judged:?}");
    assert!(judged[0].starts_with("interval 1/60"));
    assert!(judged[2].contains("57 more intervals"));
    assert!(judged[3].starts_with("interval 60/60"));
    assert_eq!(
        collapsed.first().map(|n| n.reason.as_str()),
        Some("Started")
    );
    assert_eq!(collapsed.last().map(|n| n.reason.as_str()), Some("Passed"));
}

#[test]
fn metrics_are_bounded_keeping_failures() {
    // 2000 metrics, every 10th one failing.
    let base: Vec<f64> = (0..60).map(|v| 100.0 + f64::from(v % 7)).collect();
    let slow: Vec<f64> = base.iter().map(|v| v * 10.0).collect();
    let mut metrics = Vec::new();
    let mut samples = Vec::new();
    for i in 0..2000 {
        let name = format!("m{i}");
        metrics.push(MetricConfig::new(&name));
        let canary = if i % 10 == 0 { &slow } else { &base };
        samples.push(MetricSamples::continuous(&name, canary, &base));
    }
    let r = judge(&JudgeConfig::new(metrics), &samples).unwrap();
    let (kept, omitted) = bound_metrics(r.metrics.clone(), MAX_METRICS_BYTES);
    let bytes = serde_json::to_vec(&kept).unwrap().len();
    assert!(bytes <= MAX_METRICS_BYTES + 2, "{bytes}");
    assert!(omitted > 0);
    assert_eq!(kept.len() + omitted as usize, 2000);
    let failing = kept
        .iter()
        .filter(|m| m.classification == Classification::High)
        .count();
    assert_eq!(failing, 200, "every failure is kept");
    // Config order among the kept ones.
    let names: Vec<usize> = kept.iter().map(|m| m.name[1..].parse().unwrap()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    // Small sets are untouched.
    let (small, none) = bound_metrics(r.metrics[..10].to_vec(), MAX_METRICS_BYTES);
    assert_eq!((small.len(), none), (10, 0));
}

/// Timestamps that record when a reconcile happened differ between runs.
fn strip_times(mut s: CanaryAnalysisStatus) -> CanaryAnalysisStatus {
    s.started_at = None;
    s.completed_at = None;
    for c in &mut s.conditions {
        c.last_transition_time = to_time(at(0));
    }
    s
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// However the reconciles fall in time (operator restarts, late or
    /// early wake-ups), the run ends in the status a single retrospective
    /// pass produces; and the status stays within its bounds throughout.
    #[test]
    fn split_runs_match_a_retrospective_run(
        lifetime in 1u32..=40,
        interval in 1u32..=5,
        kinds in proptest::collection::vec(0u8..4, 40),
        mut wakes in proptest::collection::vec(0i64..3_000, 0..10),
    ) {
        let results = [result(4, 0, 75.0), result(4, 1, 75.0), result(1, 1, 75.0)];
        let outcome = |k: u32| match kinds[(k as usize - 1) % kinds.len()] {
            3 => IntervalOutcome::NoTraffic,
            kind => IntervalOutcome::Judged(results[kind as usize].clone()),
        };
        let ca = analysis(json!({"lifetime": format!("{lifetime}m"), "interval": format!("{interval}m")}));
        let (once, _) = drive(&ca, 100_000, outcome);
        prop_assert!(once.phase.is_some_and(CanaryAnalysisPhase::is_terminal));

        wakes.sort();
        wakes.push(100_000);
        let mut split = ca.clone();
        for t in wakes {
            let (status, _) = drive(&split, t, outcome);
            let total = status.total_intervals;
            prop_assert!(status.completed_intervals <= total);
            prop_assert!(status.intervals.len() <= 20);
            prop_assert_eq!(status.aggregate.as_ref().map_or(0, |a| a.judged), status.completed_intervals);
            let indexes: Vec<u32> = status.intervals.iter().map(|i| i.index).collect();
            let first = status.completed_intervals.saturating_sub(indexes.len() as u32) + 1;
            prop_assert_eq!(indexes, (first..=status.completed_intervals).collect::<Vec<_>>());
            split.status = Some(status);
        }
        let split = split.status.unwrap();
        prop_assert_eq!(strip_times(split), strip_times(once));
    }
}

/// `mode: sequential`: between boundaries the plan looks at the last whole
/// step; before the first step it settles and wakes one step after judging
/// starts; a look that crossed ends the run Failed with the step named.
#[test]
fn sequential_mode_looks_at_every_step_and_fails_at_once() {
    let ca = analysis(json!({"mode": "sequential", "step": "5s"}));
    let (status, wake) = settle(run(&ca, 3));
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Running));
    assert_eq!(wake, Some(at(5)), "first look one step in");
    let ca = with_status(ca, status);
    let (spec, mut progress) = match run(&ca, 12) {
        AnalysisPlan::Look {
            spec,
            progress,
            at: look,
        } => {
            assert_eq!(look, at(10), "the last whole step");
            assert_eq!(
                super::plan::next_look(&spec, look, Some(at(60))),
                Some(at(15))
            );
            assert_eq!(
                super::plan::next_look(&spec, at(58), Some(at(60))),
                Some(at(60)),
                "a boundary before the next step comes first"
            );
            (spec, progress)
        }
        other => panic!("expected a Look, got {other:?}"),
    };
    // Fixed mode with the same spec never looks between boundaries.
    let fixed = with_status(
        analysis(json!({"mode": "fixed", "step": "5s"})),
        progress.status.clone(),
    );
    assert!(matches!(run(&fixed, 12), AnalysisPlan::Settle { .. }));

    let crossed = result(1, 1, 75.0);
    progress.look_failed(&spec.schedule, at(10), &crossed);
    let status = progress.status;
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Failed));
    assert_eq!(status.completed_intervals, 0, "no interval was completed");
    let judgement = status.judgement.expect("the judgement that crossed");
    assert_eq!(judgement.interval, None);
    assert_eq!(judgement.at, Some(to_time(at(10))));
    let message = status.message.unwrap_or_default();
    assert!(
        message.contains("10s after judging started, during interval 1/10"),
        "{message}"
    );
}

/// `spec.earlyPass`: a look whose judgement is eligible after minDuration
/// ends the run Passed, with a message, an Event and `status.earlyPass`
/// saying when and why; before minDuration the same judgement does not.
#[test]
fn an_eligible_look_after_min_duration_passes_early() {
    let ca = analysis(json!({"mode": "sequential", "step": "1s",
                             "earlyPass": {"minDuration": "90s", "margin": 1.2}}));
    let (status, _) = settle(run(&ca, 0));
    let ca = with_status(ca, status);
    let (spec, mut progress, intervals) = judge_plan(run(&ca, 150));
    assert_eq!(intervals, vec![1, 2]);
    for k in intervals {
        let step = progress.record(
            &spec.schedule,
            k,
            IntervalOutcome::Judged(result(1, 0, 75.0)),
        );
        assert_eq!(step, Step::Continue);
    }
    // 150 steps of a canary like its baseline, latency only.
    let base: Vec<f64> = (0..150).map(|i| 100.0 + f64::from((i * 53) % 21)).collect();
    let canary: Vec<f64> = (0..150).map(|i| 100.0 + f64::from((i * 37) % 21)).collect();
    let mut config = spec.judge.clone();
    config.metrics.truncate(1);
    let r = judge(
        &config,
        &[MetricSamples::continuous("latency", &canary, &base)],
    )
    .unwrap();
    let step = chrono::TimeDelta::seconds(1);
    let decide = |t: i64| {
        super::early_pass::passes_early(spec.early_pass_after, &spec.schedule, step, at(t), &r)
    };
    assert_eq!(decide(89), None, "before minDuration");
    let passed = decide(150).expect("eligible after minDuration");
    progress.passed_early(&spec.schedule, at(150), Some(&r), &passed);
    let status = progress.status;
    assert_eq!(status.phase, Some(CanaryAnalysisPhase::Passed));
    assert_eq!(status.completed_intervals, 2, "two 1m intervals were over");
    let early = status.early_pass.expect("status.earlyPass");
    assert_eq!(early.passed_at, Some(to_time(at(150))));
    assert_eq!(early.crossed_at_step, Some(passed.crossed_at_step));
    assert_eq!(early.margin, Some(1.2));
    let message = status.message.unwrap_or_default();
    assert!(
        message.starts_with(
            "passed early at 2023-11-14T22:15:50Z (150s after the start, during interval 3/10, 450s before the end): all 1 metric(s) shown no worse than the baseline by a factor of 1.2"
        ),
        "{message}"
    );
    assert!(
        progress
            .events
            .iter()
            .any(|e| e.reason == "Passed" && e.message.contains("passed early")),
        "{:?}",
        progress.events
    );
}

/// `insecureSkipVerify`: the warning condition appears once (with a Warning
/// Event), survives the phase's own conditions being recomputed, and goes
/// when the endpoint verifies again.
#[test]
fn the_insecure_endpoint_condition_comes_and_goes() {
    use super::progress::INSECURE_ENDPOINT;
    let insecure = |p: &Progress| {
        p.status
            .conditions
            .iter()
            .filter(|c| c.type_ == INSECURE_ENDPOINT)
            .count()
    };
    let mut p = Progress::new(CanaryAnalysisStatus::default(), at(0), Limits::default());
    p.set_insecure_endpoint(true);
    p.set_insecure_endpoint(true);
    assert_eq!(insecure(&p), 1);
    assert_eq!(
        p.events
            .iter()
            .filter(|e| e.reason == "InsecureEndpoint")
            .count(),
        1
    );
    p.fail_with_error("QueryFailed", "boom".into());
    assert_eq!(insecure(&p), 1, "kept by finalize");
    p.set_insecure_endpoint(false);
    assert_eq!(insecure(&p), 0);
}

/// The source cache keys on the whole endpoint configuration: another
/// credential for the same URL is another client; the same one is reused.
#[test]
fn sources_are_cached_per_whole_endpoint_config() {
    use crate::analysis::endpoint::{Auth, EndpointConfig, SecretValue};
    let factory = super::prometheus_sources(std::time::Duration::from_secs(1), 0, 2);
    let plain = EndpointConfig::plain("http://127.0.0.1:9");
    let mut token = plain.clone();
    token.auth = Auth::Bearer(SecretValue(b"t0ken".to_vec()));
    let address = |c: &EndpointConfig| std::sync::Arc::as_ptr(&factory(c).unwrap()) as *const ();
    assert_eq!(address(&plain), address(&plain));
    assert_eq!(address(&token), address(&token));
    assert_ne!(address(&plain), address(&token));
}
