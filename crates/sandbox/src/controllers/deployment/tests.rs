//! The Deployment controller's decisions: table tests of single syncs, and
//! property tests that run whole rollouts against a simulated ReplicaSet
//! controller and kubelet.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::model::{
    DESIRED_REPLICAS, DeployView, MAX_REPLICAS, REVISION, RsView, parse_deployment,
};
use super::plan::{Plan, plan};
use super::status::{self, Status};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": image}]}})
}

fn deploy(replicas: i64, strategy: Value, image: &str) -> DeployView {
    parse_deployment(&json!({
        "metadata": {"name": "web", "generation": 1},
        "spec": {"replicas": replicas, "strategy": strategy,
                 "selector": {"matchLabels": {"app": "web"}}, "template": template(image)}
    }))
    .unwrap()
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

/// A ReplicaSet of `image` with `replicas`, all of them ready and available.
fn rs(name: &str, image: &str, revision: i64, replicas: i64, created_s: i64) -> RsView {
    let mut t = template(image);
    t["metadata"]["labels"]["pod-template-hash"] = json!(name);
    let mut annotations = serde_json::Map::new();
    annotations.insert(REVISION.into(), json!(revision.to_string()));
    RsView {
        name: name.into(),
        created: (t0() + Duration::seconds(created_s)).to_rfc3339(),
        revision,
        replicas,
        status_replicas: replicas,
        ready: replicas,
        available: replicas,
        generation: 1,
        observed_generation: 1,
        template: t,
        min_ready_seconds: 0,
        annotations,
        deleting: false,
        pods_not_finished: replicas,
    }
}

fn sizes(p: &Plan) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = p
        .updates
        .iter()
        .map(|u| (u.name.clone(), u.replicas))
        .collect();
    if let Some(c) = &p.create {
        v.push(("NEW".into(), c.replicas));
    }
    v
}

fn condition<'a>(p: &'a Plan, type_: &str) -> Option<&'a Value> {
    p.status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[test]
fn a_new_deployment_creates_its_first_replica_set() {
    let d = deploy(3, rolling(json!(1), json!(0)), "web:1");
    let p = plan(&d, &[], t0());
    let c = p.create.as_ref().expect("a ReplicaSet to create");
    assert_eq!(c.name, format!("web-{}", c.hash));
    assert_eq!(c.replicas, 3, "nothing old: the whole count at once");
    assert_eq!(
        c.selector["matchLabels"]["pod-template-hash"],
        json!(c.hash)
    );
    assert_eq!(
        c.template["metadata"]["labels"]["pod-template-hash"],
        json!(c.hash)
    );
    assert_eq!(c.labels["app"], "web");
    assert_eq!(c.annotations[REVISION], "1");
    assert_eq!(c.annotations[DESIRED_REPLICAS], "3");
    assert_eq!(c.annotations[MAX_REPLICAS], "4");
    assert_eq!(p.revision.as_deref(), Some("1"));
    assert_eq!(
        condition(&p, "Progressing").unwrap()["reason"],
        "NewReplicaSetCreated"
    );
    assert_eq!(condition(&p, "Available").unwrap()["status"], "False");
    assert_eq!(p.status["unavailableReplicas"], 3);
    assert_eq!(p.status["observedGeneration"], 1);
}

#[test]
fn rolling_steps_follow_surge_and_unavailability() {
    // (replicas, maxSurge, maxUnavailable, old size, new RS (size, available) or none)
    //   → sizes written (old "a", new "b" or NEW)
    type Case = (
        i64,
        Value,
        Value,
        i64,
        Option<(i64, i64)>,
        Vec<(&'static str, i64)>,
    );
    let cases: Vec<Case> = vec![
        // Surge one, then one old goes since one may be unavailable.
        (4, json!(1), json!(1), 4, None, vec![("a", 3), ("NEW", 1)]),
        // No unavailability: surge only, no old pod goes until a new one is available.
        (4, json!(1), json!(0), 4, None, vec![("NEW", 1)]),
        (4, json!(1), json!(0), 4, Some((1, 0)), vec![]),
        (4, json!(1), json!(0), 4, Some((1, 1)), vec![("a", 3)]),
        // 25%/25% of 4: surge 1, unavailable 1.
        (
            4,
            json!("25%"),
            json!("25%"),
            4,
            None,
            vec![("a", 3), ("NEW", 1)],
        ),
        // No surge: old goes down first, the new one follows in the next sync.
        (3, json!(0), json!(1), 3, None, vec![("a", 2), ("NEW", 0)]),
        (3, json!(0), json!(1), 2, Some((0, 0)), vec![("b", 1)]),
        // Percentages: surge rounds up (30% of 3 → 1), unavailable down (30% of 3 → 0).
        (3, json!("30%"), json!("30%"), 3, None, vec![("NEW", 1)]),
        // The last old pods go when the new ones are all available.
        (2, json!(1), json!(0), 1, Some((2, 2)), vec![("a", 0)]),
    ];
    for (replicas, surge, unavailable, old, new, want) in cases {
        let d = deploy(
            replicas,
            rolling(surge.clone(), unavailable.clone()),
            "web:2",
        );
        let mut rss = vec![rs("a", "web:1", 1, old, 0)];
        if let Some((size, available)) = new {
            let mut b = rs("b", "web:2", 2, size, 10);
            b.available = available;
            b.ready = available;
            rss.push(b);
        }
        let p = plan(&d, &rss, t0() + Duration::seconds(20));
        let want: Vec<(String, i64)> = want.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(
            sizes(&p),
            want,
            "{replicas} {surge} {unavailable} old={old} new={new:?}"
        );
    }
}

#[test]
fn unhealthy_old_pods_go_first() {
    // Old RS of 4 with 2 not available, no unavailability allowed beyond them.
    let d = deploy(4, rolling(json!(1), json!(0)), "web:2");
    let mut a = rs("a", "web:1", 1, 4, 0);
    a.available = 2;
    let b = rs("b", "web:2", 2, 1, 10);
    let p = plan(&d, &[a, b], t0() + Duration::seconds(20));
    // allPods 5 - minAvailable 4 - newUnavailable 0 = 1 may go: an unhealthy one.
    assert_eq!(sizes(&p), vec![("a".to_string(), 3)]);
}

#[test]
fn recreate_empties_the_old_set_before_creating_the_new() {
    let d = deploy(3, json!({"type": "Recreate"}), "web:2");
    let a = rs("a", "web:1", 1, 3, 0);
    let p = plan(&d, std::slice::from_ref(&a), t0());
    assert_eq!(sizes(&p), vec![("a".to_string(), 0)], "scale down first");

    let mut a0 = a.clone();
    a0.replicas = 0;
    a0.status_replicas = 0;
    a0.ready = 0;
    a0.available = 0;
    a0.pods_not_finished = 1; // one still terminating
    let p = plan(&d, std::slice::from_ref(&a0), t0());
    assert!(p.create.is_none() && p.updates.is_empty(), "{p:?}");

    a0.pods_not_finished = 0;
    let p = plan(&d, &[a0], t0());
    assert_eq!(sizes(&p), vec![("NEW".to_string(), 3)]);
    assert_eq!(p.create.unwrap().annotations[REVISION], "2");
}

#[test]
fn a_paused_deployment_scales_but_does_not_roll() {
    let mut d = deploy(5, rolling(json!(1), json!(0)), "web:2");
    d.paused = true;
    let p = plan(&d, &[rs("a", "web:1", 1, 3, 0)], t0());
    assert!(p.create.is_none());
    assert_eq!(
        sizes(&p),
        vec![("a".to_string(), 5)],
        "scaled to the new count"
    );
    let c = condition(&p, "Progressing").unwrap();
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&json!("Unknown"), &json!("DeploymentPaused"))
    );
}

#[test]
fn a_scale_during_a_rollout_is_proportional() {
    let d = deploy(6, rolling(json!(1), json!(1)), "web:2");
    let mut a = rs("a", "web:1", 1, 3, 0);
    let mut b = rs("b", "web:2", 2, 1, 10);
    for r in [&mut a, &mut b] {
        r.annotations.insert(DESIRED_REPLICAS.into(), json!("3"));
        r.annotations.insert(MAX_REPLICAS.into(), json!("4"));
    }
    let p = plan(&d, &[a, b], t0() + Duration::seconds(20));
    // allowed 7, current 4: 3 to add, shared 3:1 of the old max (4) → 5 and 2.
    assert_eq!(sizes(&p), vec![("a".to_string(), 5), ("b".to_string(), 2)]);
    assert!(
        p.updates
            .iter()
            .all(|u| u.annotations[DESIRED_REPLICAS] == "6")
    );
}

#[test]
fn old_sets_beyond_the_history_limit_are_deleted_once_complete() {
    let mut d = deploy(2, rolling(json!(1), json!(0)), "web:4");
    d.revision_history_limit = Some(1);
    d.status = Status {
        observed_generation: 1,
        replicas: 2,
        updated: 2,
        ready: 2,
        available: 2,
        ..Status::default()
    }
    .to_json();
    let rss = vec![
        rs("a", "web:1", 1, 0, 0),
        rs("b", "web:2", 2, 0, 10),
        rs("c", "web:3", 3, 0, 20),
        rs("d", "web:4", 4, 2, 30),
    ];
    let p = plan(&d, &rss, t0() + Duration::seconds(40));
    assert_eq!(p.deletes, vec!["a".to_string(), "b".to_string()]);
    assert_eq!(
        condition(&p, "Progressing").unwrap()["reason"],
        "NewReplicaSetAvailable"
    );
    assert_eq!(condition(&p, "Available").unwrap()["status"], "True");
}

#[test]
fn rolling_back_reuses_the_old_set_with_the_next_revision() {
    let d = deploy(2, rolling(json!(1), json!(0)), "web:1");
    let p = plan(
        &d,
        &[rs("a", "web:1", 1, 0, 0), rs("b", "web:2", 2, 2, 10)],
        t0() + Duration::seconds(20),
    );
    assert!(p.create.is_none());
    assert_eq!(p.revision.as_deref(), Some("3"));
    let a = p
        .updates
        .iter()
        .find(|u| u.name == "a")
        .expect("a is updated");
    assert_eq!(
        (a.replicas, a.annotations[REVISION].as_str()),
        (1, Some("3"))
    );
}

#[test]
fn no_progress_for_the_deadline_times_out_and_asks_to_be_called_then() {
    let mut d = deploy(2, rolling(json!(1), json!(0)), "web:2");
    d.progress_deadline_seconds = Some(60);
    let mut b = rs("b", "web:2", 2, 1, 0);
    b.available = 0;
    b.ready = 0;
    let first = plan(&d, &[rs("a", "web:1", 1, 2, 0), b.clone()], t0());
    let at = first.requeue_at.expect("a deadline to check");
    assert!(at > t0() && at <= t0() + Duration::seconds(62), "{at}");
    d.status = first.status.clone();
    let later = plan(
        &d,
        &[rs("a", "web:1", 1, 2, 0), b],
        t0() + Duration::seconds(61),
    );
    let c = condition(&later, "Progressing").unwrap();
    assert_eq!(
        (&c["status"], &c["reason"]),
        (&json!("False"), &json!("ProgressDeadlineExceeded"))
    );
    assert_eq!(later.requeue_at, None);
}

// ---- whole rollouts against a simulated ReplicaSet controller and kubelet ----

/// A ReplicaSet with its pods (ready or not).
#[derive(Clone, Debug)]
struct SimRs {
    view: RsView,
    pods: Vec<bool>,
}

struct Sim {
    d: DeployView,
    rss: Vec<SimRs>,
    now: DateTime<Utc>,
}

impl Sim {
    fn new(d: DeployView) -> Self {
        Self {
            d,
            rss: Vec::new(),
            now: t0(),
        }
    }

    /// One controller sync, then the ReplicaSet controller brings pods to size
    /// (deleting not-ready pods first, as the sandbox's does).
    fn sync(&mut self) -> Plan {
        self.now += Duration::seconds(1);
        let views: Vec<RsView> = self.rss.iter().map(|r| r.view.clone()).collect();
        let p = plan(&self.d, &views, self.now);
        if let Some(c) = &p.create {
            let mut v = rs(
                &c.name,
                "",
                c.annotations[REVISION].as_str().unwrap().parse().unwrap(),
                c.replicas,
                0,
            );
            v.created = self.now.to_rfc3339();
            v.template = c.template.clone();
            v.annotations = c.annotations.clone();
            self.rss.push(SimRs {
                view: v,
                pods: Vec::new(),
            });
        }
        for u in &p.updates {
            let r = self.rss.iter_mut().find(|r| r.view.name == u.name).unwrap();
            r.view.replicas = u.replicas;
            r.view.annotations = u.annotations.clone();
            r.view.revision = u.annotations[REVISION].as_str().unwrap().parse().unwrap();
        }
        self.rss.retain(|r| !p.deletes.contains(&r.view.name));
        if let Some(rev) = &p.revision {
            self.d.annotations.insert(REVISION.into(), json!(rev));
        }
        self.d.status = p.status.clone();
        for r in &mut self.rss {
            let want = usize::try_from(r.view.replicas).unwrap();
            r.pods.sort(); // not ready (false) first: deleted first
            while r.pods.len() > want {
                r.pods.remove(0);
            }
            r.pods.resize(want.max(r.pods.len()), false);
        }
        self.observe();
        p
    }

    /// Pods named by `ready` (indexes into all pods) turn ready.
    fn kubelet(&mut self, ready: &[bool]) {
        let mut k = 0;
        for r in &mut self.rss {
            for p in &mut r.pods {
                if !*p && ready.get(k).copied().unwrap_or(true) {
                    *p = true;
                }
                k += 1;
            }
        }
        self.observe();
    }

    fn observe(&mut self) {
        for r in &mut self.rss {
            let n = i64::try_from(r.pods.len()).unwrap();
            let ready = i64::try_from(r.pods.iter().filter(|p| **p).count()).unwrap();
            r.view.status_replicas = n;
            r.view.ready = ready;
            r.view.available = ready;
            r.view.pods_not_finished = n;
        }
    }

    fn pods(&self) -> i64 {
        self.rss.iter().map(|r| r.pods.len() as i64).sum()
    }

    fn available(&self) -> i64 {
        self.rss.iter().map(|r| r.view.available).sum()
    }

    fn done(&self) -> bool {
        let s = Status::from_json(&self.d.status);
        status::complete(&self.d, &s)
            && s.condition("Progressing")
                .is_some_and(|c| c.reason == "NewReplicaSetAvailable")
            && self.pods() == self.d.replicas
    }

    /// Runs until done, every pod turning ready at once.
    fn settle(&mut self) {
        for _ in 0..200 {
            self.sync();
            self.kubelet(&[]);
            if self.done() {
                return;
            }
        }
        let rss: Vec<_> = self
            .rss
            .iter()
            .map(|r| {
                (
                    &r.view.name,
                    r.view.replicas,
                    &r.view.annotations,
                    r.pods.len(),
                )
            })
            .collect();
        panic!("did not settle: {:?} {rss:?}", self.d.status);
    }

    fn change_image(&mut self, image: &str) {
        self.d.template = template(image);
        self.d.generation += 1;
    }
}

fn bound() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..4).prop_map(|n| json!(n)),
        (0i64..=100).prop_map(|p| json!(format!("{p}%")))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A rolling update never runs more than replicas + maxSurge pods, never
    /// has fewer than replicas - maxUnavailable available, and ends with every
    /// pod of the new template available.
    #[test]
    fn rolling_updates_keep_their_bounds_and_converge(
        replicas in 0i64..8,
        surge in bound(),
        unavailable in bound(),
        readiness in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 0..20), 0..60),
    ) {
        let d = deploy(replicas, rolling(surge, unavailable), "web:1");
        let (max_surge, max_unavailable) = (d.max_surge(), d.max_unavailable());
        let mut sim = Sim::new(d);
        sim.settle();
        sim.change_image("web:2");
        for ready in &readiness {
            sim.sync();
            prop_assert!(sim.pods() <= replicas + max_surge, "{} pods > {replicas}+{max_surge}", sim.pods());
            prop_assert!(sim.available() >= replicas - max_unavailable,
                "{} available < {replicas}-{max_unavailable}", sim.available());
            sim.kubelet(ready);
        }
        sim.settle();
        prop_assert_eq!(sim.rss.iter().filter(|r| r.view.replicas > 0).count(), usize::from(replicas > 0));
        let s = Status::from_json(&sim.d.status);
        prop_assert_eq!((s.updated, s.available, s.replicas), (replicas, replicas, replicas));
        prop_assert_eq!(sim.d.annotations[REVISION].as_str(), Some("2"));
    }

    /// Recreate never runs old and new pods together, and converges.
    #[test]
    fn recreate_never_overlaps_and_converges(
        replicas in 1i64..6,
        readiness in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 0..10), 0..30),
    ) {
        let mut sim = Sim::new(deploy(replicas, json!({"type": "Recreate"}), "web:1"));
        sim.settle();
        sim.change_image("web:2");
        for ready in &readiness {
            sim.sync();
            let with_pods = sim.rss.iter().filter(|r| !r.pods.is_empty()).count();
            prop_assert!(with_pods <= 1, "old and new pods together");
            sim.kubelet(ready);
        }
        sim.settle();
        prop_assert_eq!(Status::from_json(&sim.d.status).updated, replicas);
    }

    /// Scaling in the middle of a rollout ends at the new count, within the
    /// new bound, and keeps at most `revisionHistoryLimit` old sets.
    #[test]
    fn scaling_mid_rollout_converges(
        from in 1i64..8,
        to in 0i64..8,
        steps in 0usize..6,
        limit in 0i64..3,
    ) {
        let mut d = deploy(from, rolling(json!(1), json!(1)), "web:1");
        d.revision_history_limit = Some(limit);
        let mut sim = Sim::new(d);
        sim.settle();
        for image in ["web:2", "web:3", "web:4"] {
            sim.change_image(image);
            for _ in 0..steps {
                sim.sync();
                sim.kubelet(&[false]);
            }
        }
        sim.d.replicas = to;
        sim.d.generation += 1;
        sim.sync();
        prop_assert!(sim.pods() <= from.max(to) + 1);
        sim.settle();
        sim.sync();
        let old = sim.rss.iter().filter(|r| r.view.name != sim.rss.last().unwrap().view.name).count();
        prop_assert!(old as i64 <= limit, "{old} old sets kept, limit {limit}");
        prop_assert_eq!(Status::from_json(&sim.d.status).available, to);
    }
}
