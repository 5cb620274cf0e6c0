//! `strategy.redBlack.antiAffinity` in the planner: the new fleet's
//! ReplicaSet carries a pod anti-affinity term against the live revision's
//! pods (required, or preferred with its weight), the revision's hash stays
//! the spec's, a first deploy has nothing to avoid, and `undo` takes the term
//! out so it lands on the old fleet again.

mod common;

use common::{Sim, rs_hash, switches_to};
use redblack::api::POD_TEMPLATE_HASH_LABEL;
use redblack::api::anti_affinity::{
    AntiAffinity, PreferredAntiAffinity, RequiredAntiAffinity, TOPOLOGY_KEY,
};
use redblack::rollout::Action;
use redblack::rollout::undo::{same_revision, template_for_undo};
use serde_json::{Value, json};

fn required() -> AntiAffinity {
    AntiAffinity {
        required_during_scheduling_ignored_during_execution: Some(RequiredAntiAffinity {}),
        preferred_during_scheduling_ignored_during_execution: None,
    }
}

fn preferred(weight: i32) -> AntiAffinity {
    AntiAffinity {
        required_during_scheduling_ignored_during_execution: None,
        preferred_during_scheduling_ignored_during_execution: Some(PreferredAntiAffinity {
            weight,
        }),
    }
}

/// The affinity of the pod template of every ReplicaSet the plan creates, by hash.
fn created(sim: &Sim) -> Vec<(String, Value)> {
    sim.plan()
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::EnsureReplicaSet { hash, template, .. } => Some((
                hash.clone(),
                serde_json::to_value(template.spec.as_ref().and_then(|s| s.affinity.clone()))
                    .unwrap(),
            )),
            _ => None,
        })
        .collect()
}

fn live_selector(hash: &str) -> Value {
    json!({"matchLabels": {"app": "web", POD_TEMPLATE_HASH_LABEL: hash}})
}

#[test]
fn anti_affinity_rows() {
    // (rule, expected affinity of the new fleet given the live hash)
    type Want = fn(&str) -> Value;
    let rows: [(&str, Option<AntiAffinity>, Want); 3] = [
        ("none: the template as written", None, |_| Value::Null),
        ("required", Some(required()), |live| {
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": live_selector(live), "topologyKey": TOPOLOGY_KEY}]}})
        }),
        ("preferred, weight 30", Some(preferred(30)), |live| {
            json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 30, "podAffinityTerm": {"labelSelector": live_selector(live), "topologyKey": TOPOLOGY_KEY}}]}})
        }),
    ];
    for (name, rule, want) in rows {
        let mut sim = Sim::steady("web:1", 3);
        let live = sim.active_hash().unwrap();
        sim.rollout.spec.strategy.red_black.anti_affinity = rule;
        sim.set_image("web:2");
        let got = created(&sim);
        assert_eq!(got.len(), 1, "{name}: one new fleet");
        assert_eq!(got[0].0, sim.hash(), "{name}: the spec's hash");
        assert_eq!(got[0].1, want(&live), "{name}");
    }
}

#[test]
fn a_first_deploy_has_nothing_to_avoid() {
    let mut sim = Sim::new("web:1", 3);
    sim.rollout.spec.strategy.red_black.anti_affinity = Some(required());
    let got = created(&sim);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, Value::Null);
}

#[test]
fn undo_strips_the_term_and_lands_on_the_old_fleet() {
    let mut sim = Sim::steady("web:1", 3);
    sim.rollout.spec.strategy.red_black.anti_affinity = Some(preferred(50));
    sim.set_image("web:2");
    sim.step();
    sim.make_ready();
    sim.step();
    let v2 = sim.hash();
    assert_eq!(sim.active_hash(), Some(v2.clone()));
    let rs2 = sim.rs(&v2).unwrap();
    assert!(
        rs2.spec
            .template
            .as_ref()
            .unwrap()
            .spec
            .as_ref()
            .unwrap()
            .affinity
            .is_some(),
        "v2's ReplicaSet carries the term"
    );
    // Undo to v1, then undo to v2 again: the template hashes back to v2's fleet.
    let v1_template = template_for_undo(&sim.observed.replica_sets, &v2, None).unwrap();
    sim.rollout.spec.template = v1_template;
    let v1 = sim.hash();
    assert_eq!(switches_to(&sim.plan(), "web"), Some(v1.clone()));
    sim.step();
    let back = template_for_undo(&sim.observed.replica_sets, &v1, None).unwrap();
    let rs2 = sim
        .observed
        .replica_sets
        .iter()
        .find(|rs| rs_hash(rs) == v2)
        .unwrap();
    assert!(same_revision(&back, rs2), "no new revision from the term");
    assert!(back.spec.unwrap().affinity.is_none());
}
