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
        token: env.sandbox.admin_token(),
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

/// The checks can fail: each is shown a history with the fault it looks for.
mod the_checks_see {
    use super::checks::{duplicate_events, history};
    use super::flows::Flow;
    use super::journal::{Entry, Kind};
    use redblack::api::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, ROLE_LABEL};
    use serde_json::{Value, json};
    use std::collections::BTreeMap;

    fn entry(rv: u64, kind: Kind, name: &str, object: Value) -> Entry {
        Entry {
            rv,
            kind,
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            deleted: false,
            object,
        }
    }

    fn fleet(
        rv: u64,
        hash: &str,
        role: Option<&str>,
        replicas: i64,
        ready: i64,
        rev: &str,
    ) -> Entry {
        let mut labels = json!({"app": "web", POD_TEMPLATE_HASH_LABEL: hash});
        if let Some(r) = role {
            labels[ROLE_LABEL] = json!(r);
        }
        let name = match role {
            Some(r) => format!("web-{hash}-{r}"),
            None => format!("web-{hash}"),
        };
        entry(
            rv,
            Kind::ReplicaSet,
            &name,
            json!({"metadata": {"annotations": {REVISION_ANNOTATION: rev}},
                   "spec": {"replicas": replicas, "template": {"metadata": {"labels": labels}}},
                   "status": {"replicas": replicas, "readyReplicas": ready}}),
        )
    }

    fn service(rv: u64, selector: Value) -> Entry {
        entry(
            rv,
            Kind::Service,
            "web",
            json!({"spec": {"selector": selector}}),
        )
    }

    fn rollout(rv: u64, phase: &str) -> Entry {
        entry(
            rv,
            Kind::Rollout,
            "web",
            json!({"status": {"phase": phase}}),
        )
    }

    fn violations(flow: Flow, entries: &[Entry]) -> Vec<String> {
        history(flow, entries).0
    }

    #[test]
    fn nothing_in_a_clean_switch() {
        let h = [
            service(1, json!({"app": "web"})),
            fleet(2, "h1", None, 2, 2, "1"),
            service(3, json!({"app": "web", POD_TEMPLATE_HASH_LABEL: "h1"})),
            rollout(4, "Healthy"),
        ];
        assert_eq!(violations(Flow::Plain, &h), Vec::<String>::new());
    }

    #[test]
    fn a_switch_to_a_fleet_not_all_ready() {
        let h = [
            service(1, json!({"app": "web"})),
            fleet(2, "h1", None, 2, 1, "1"),
            service(3, json!({"app": "web", POD_TEMPLATE_HASH_LABEL: "h1"})),
        ];
        let v = violations(Flow::Plain, &h);
        assert!(v.iter().any(|v| v.contains("1 of 2 pods ready")), "{v:?}");
    }

    #[test]
    fn canary_traffic_before_its_analysis() {
        let h = [
            service(1, json!({"app": "web"})),
            fleet(2, "h1", None, 2, 2, "1"),
            service(3, json!({"app": "web", POD_TEMPLATE_HASH_LABEL: "h1"})),
            fleet(4, "c", Some("canary"), 1, 1, "2"),
            fleet(5, "b", Some("baseline"), 1, 1, "1"),
            service(6, json!({"app": "web"})),
        ];
        let v = violations(Flow::CanaryPass, &h);
        assert!(
            v.iter().any(|v| v.contains("before its CanaryAnalysis")),
            "{v:?}"
        );
    }

    #[test]
    fn a_selected_fleet_scaled_away() {
        let h = [
            service(1, json!({"app": "web"})),
            fleet(2, "h1", None, 2, 2, "1"),
            service(3, json!({"app": "web", POD_TEMPLATE_HASH_LABEL: "h1"})),
            fleet(4, "h1", None, 0, 2, "1"),
        ];
        let v = violations(Flow::Plain, &h);
        assert!(v.iter().any(|v| v.contains("scaled to 0 while")), "{v:?}");
    }

    #[test]
    fn a_revision_going_down_and_a_false_degraded() {
        let h = [
            fleet(1, "h1", None, 2, 2, "3"),
            fleet(2, "h1", None, 2, 2, "1"),
            rollout(3, "Degraded"),
        ];
        let v = violations(Flow::Undo, &h);
        assert!(
            v.iter().any(|v| v.contains("went from 3 down to 1")),
            "{v:?}"
        );
        assert!(v.iter().any(|v| v.contains("Degraded without")), "{v:?}");
        // After a Failed verdict, a failing flow may be Degraded.
        let failed = entry(
            1,
            Kind::Analysis,
            "web-h2-1",
            json!({"status": {"phase": "Failed"}}),
        );
        assert!(violations(Flow::CanaryFail, &[failed, rollout(2, "Degraded")]).is_empty());
    }

    #[test]
    fn an_event_twice() {
        let key = ("ReplicaSetCreated".to_owned(), "created web-h2".to_owned());
        let twice = BTreeMap::from([(key.clone(), 2)]);
        let once = BTreeMap::from([(key, 1)]);
        assert_eq!(duplicate_events(&twice, &once).len(), 1);
        assert!(duplicate_events(&once, &once).is_empty());
        assert!(
            duplicate_events(&twice, &twice).is_empty(),
            "as often as without kills"
        );
    }
}
