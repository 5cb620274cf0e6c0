//! The chaos harness (issue 11): the operator is killed — its task aborted
//! and its client's unsent writes never sent, as SIGKILL would leave them —
//! at many points of plain and canary-gated rollouts, and a fresh operator
//! started each time. After every point the harness checks, from every
//! version of every object in resourceVersion order and from the final state:
//!
//! - the active Service only ever selects fleets whose pods are ready (a
//!   switch: the whole new fleet ready; canary traffic: canary and baseline
//!   ready, no other revision fleet with pods, its CanaryAnalysis existing),
//!   and no fleet it selects is scaled to zero or deleted;
//! - the final state equals that of the same flow without kills (phase,
//!   revisions, history outcomes, selector, fleet sizes, analyses);
//! - no ReplicaSet, Service or CanaryAnalysis the run without kills did not
//!   create (no leaks); each analysis created once (one per attempt), never
//!   deleted;
//! - no Event for one transition recorded twice;
//! - no Degraded phase but after a Failed verdict, in the flows that fail;
//! - revision numbers (ReplicaSet annotation, Rollout history) never go down.
//!
//! Kill points: "as it attempts write k+1" for k = 0, 5, 10, … of each flow
//! (every k with `CHAOS_POINTS=all`, and again with the replacement killed at
//! its first write), plus seeded random schedules of 1-3 kills by time or by
//! write count (`CHAOS_SEED` replays one). `make chaos` runs ≥ 500 points.

mod support;

#[path = "chaos/checks.rs"]
mod checks;
#[path = "chaos/flows.rs"]
mod flows;
#[path = "chaos/gate.rs"]
mod gate;
#[path = "chaos/journal.rs"]
mod journal;
#[path = "chaos/plan.rs"]
mod plan;
#[path = "chaos/point.rs"]
mod point;

use std::time::Duration;

use support::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_any_point_the_operator_keeps_every_invariant() {
    let settings = plan::Settings::from_env();
    let env = Env::start(Duration::from_millis(20)).await;
    let harness = point::Harness {
        client: env.client.clone(),
        url: env.sandbox.url(),
        journal: journal::Journal::start(&env.client).await,
    };
    let report = plan::run(&harness, &settings).await;
    eprintln!("{}", report.table());
    eprintln!("{}", report.summary_line());
    assert!(
        report.violations().is_empty(),
        "{} violations (replay with CHAOS_SEED={}):\n{}",
        report.violations().len(),
        settings.seed,
        report.violations().join("\n")
    );
    assert!(
        report.kills() > 0,
        "no point killed the operator: the harness tested nothing"
    );
}
