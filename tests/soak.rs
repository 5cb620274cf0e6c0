//! A bounded soak (the full one is `examples/bench_soak.rs`): red/black and
//! canary cycles over a small fleet in one process, asserting that open file
//! descriptors and live tokio tasks do not grow with the cycles (a leak would
//! grow them per cycle) and that every canary is judged by the real
//! CanaryAnalysis controller and promoted. Bounds are generous and nothing
//! here is a timing.

mod fake_prometheus;
#[path = "../examples/support/soak.rs"]
mod soak;
mod support;

use std::sync::Arc;
use std::time::Duration;

use fake_prometheus::{FakePrometheus, Query, Reply};
use kube::Api;
use kube::api::ListParams;
use redblack::api::canary_analysis::{CanaryAnalysis, CanaryAnalysisPhase};
use redblack::cli::controller::ControllerConfig;
use soak::Fleet;
use support::*;

const FLEET: usize = 12;
const WAVES: usize = 8;
/// Rollouts 0, 6: two canary-gated, so 2 × 8 canary cycles.
const CANARY_EVERY: usize = 6;

#[test]
fn the_trend_is_the_least_squares_slope() {
    let flat = [(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)];
    assert_eq!(soak::trend(&flat), (0.0, 5.0));
    let rising = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0), (3.0, 7.0)];
    assert_eq!(soak::trend(&rising), (2.0, 1.0));
    let noisy = [(0.0, 0.0), (1.0, 2.0), (2.0, 0.0), (3.0, 2.0)];
    let (slope, _) = soak::trend(&noisy);
    assert!((slope - 0.4).abs() < 1e-9, "{slope}");
    assert_eq!(soak::trend(&[(3.0, 4.0)]), (0.0, 4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_cycles_leak_no_file_descriptors_or_tasks() {
    let env = Env::start(Duration::from_millis(100)).await;
    let prometheus = FakePrometheus::start(Arc::new(|q: &Query| {
        Reply::one(q, |_, _| Some(soak::steady_metrics(&q.query).to_owned()))
    }))
    .await;
    let running = Running::start_with(
        env.client.clone(),
        ControllerConfig {
            prometheus_url: Some(prometheus.url.clone()),
            ..ControllerConfig::default()
        },
    );
    let fleet = Fleet {
        n: FLEET,
        canary_every: CANARY_EVERY,
    };
    assert_eq!(fleet.canaries(), 2);
    soak::create_fleet(&env.client, fleet).await.unwrap();
    soak::wait_fleet(&env.client, FLEET, 0, TIMEOUT)
        .await
        .unwrap();
    // Warm-up: two waves (the first cycles create what later ones reuse).
    for tag in 1..=2 {
        soak::wave(&env.client, FLEET, tag).await.unwrap();
        soak::wait_fleet(&env.client, FLEET, tag, TIMEOUT)
            .await
            .unwrap();
    }
    let start = soak::sample(2 * FLEET);
    for tag in 3..=WAVES {
        soak::wave(&env.client, FLEET, tag).await.unwrap();
        soak::wait_fleet(&env.client, FLEET, tag, TIMEOUT)
            .await
            .unwrap();
    }
    let end = soak::sample(WAVES * FLEET);
    let cycles = end.cycles - start.cycles;
    // A per-cycle leak would add ≥ `cycles` (72) of either; the slack is for
    // connections and timers that come and go.
    assert!(
        end.fds <= start.fds + 16,
        "fds {} → {} over {cycles} cycles",
        start.fds,
        end.fds
    );
    assert!(
        end.tasks <= start.tasks + 24,
        "tasks {} → {} over {cycles} cycles",
        start.tasks,
        end.tasks
    );
    // Old fleets are deleted past the history limit (2) — nothing piles up
    // in the API either: current + 2 kept + the one being retired (the fleet
    // is Healthy before the oldest is gone) per Rollout at most; a leak would
    // keep all 9 revisions.
    let replica_sets = env
        .replica_sets()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert!(
        replica_sets <= FLEET * 4,
        "{replica_sets} ReplicaSets for {FLEET} Rollouts"
    );
    assert_eq!(soak::fleet_names(&env.client).await.unwrap().len(), FLEET);
    // Every canary cycle (`wait_fleet` waited for each to be promoted with
    // its score) was judged by the real controller from the fake
    // Prometheus, and the analyses do not pile up: each canary Rollout keeps
    // its 5 newest Passed ones (`spec.analysis` defaults) plus the two in
    // play (the live revision's and the warm previous one's), not all 8.
    let analyses: Api<CanaryAnalysis> = Api::namespaced(env.client.clone(), soak::NS);
    let kept = fleet.canaries() * (5 + 2);
    let analyses = eventually(
        &format!("at most {kept} CanaryAnalyses are kept"),
        || async {
            let items = analyses.list(&ListParams::default()).await.ok()?.items;
            (items.len() <= kept).then_some(items)
        },
    )
    .await;
    assert!(
        kept < fleet.canaries() * WAVES,
        "the bound would not see a leak"
    );
    let phases: Vec<_> = analyses
        .iter()
        .map(|a| a.status.as_ref().and_then(|s| s.phase))
        .collect();
    assert!(
        phases
            .iter()
            .all(|p| *p == Some(CanaryAnalysisPhase::Passed)),
        "{phases:?}"
    );
    assert!(
        prometheus.queries() > 0,
        "the canaries were judged from the metric source"
    );
    println!(
        "{} CanaryAnalyses for {} canary cycles; {} Prometheus queries",
        analyses.len(),
        fleet.canaries() * WAVES,
        prometheus.queries()
    );
    running.stop().await.unwrap();
}
