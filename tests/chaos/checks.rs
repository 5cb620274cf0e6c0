//! What must hold at every kill point: read from every version of the
//! namespace's objects, in resourceVersion order (the journal), and from the
//! final state. Each check returns the violations it saw, worded for a person.

use std::collections::{BTreeMap, BTreeSet};

use redblack::api::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, ROLE_LABEL};
use serde_json::{Value, json};

use super::flows::{Flow, REPLICAS, ROLLOUT};
use super::journal::{Entry, Kind};

/// Names ever seen per kind, for the leak comparison with the no-kill run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub replica_sets: BTreeSet<String>,
    pub services: BTreeSet<String>,
    pub analyses: BTreeSet<String>,
}

/// An analysis name without the switch time a post-promotion analysis
/// carries (`<rollout>-<hash>-post-<unix seconds>`), so runs compare.
pub fn analysis_key(name: &str) -> String {
    match name.rsplit_once("-post-") {
        Some((head, t)) if t.chars().all(|c| c.is_ascii_digit()) => format!("{head}-post-<time>"),
        _ => name.to_owned(),
    }
}

fn labels_at<'a>(v: &'a Value, pointer: &str) -> BTreeMap<&'a str, &'a str> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, rs: &Value) -> bool {
    let labels = labels_at(rs, "/spec/template/metadata/labels");
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.get(k.as_str()) == Some(&v.as_str()))
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn has_pods(rs: &Value) -> bool {
    int(rs, "/spec/replicas") > 0 || int(rs, "/status/replicas") > 0
}

fn revision(rs: &Value) -> Option<i64> {
    rs.pointer("/metadata/annotations")?
        .get(REVISION_ANNOTATION)?
        .as_str()?
        .parse()
        .ok()
}

/// The history checks, over every recorded version of one point's namespace.
pub fn history(flow: Flow, entries: &[Entry]) -> (Vec<String>, Seen) {
    let mut v = Vec::new();
    let mut seen = Seen::default();
    let mut fleets: BTreeMap<String, Value> = BTreeMap::new();
    let mut analyses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut selector: Option<BTreeMap<String, String>> = None;
    let mut revisions: BTreeMap<String, i64> = BTreeMap::new();
    let mut rollout_revisions: BTreeMap<String, i64> = BTreeMap::new();
    let mut failed_verdict = false;

    for e in entries {
        match e.kind {
            Kind::ReplicaSet => {
                seen.replica_sets.insert(e.name.clone());
                let before = fleets.get(&e.name);
                let was_serving = before.is_some_and(has_pods);
                let gone = e.deleted || int(&e.object, "/spec/replicas") == 0;
                if let (Some(sel), true, true) = (&selector, was_serving, gone)
                    && before.is_some_and(|b| selects(sel, b))
                {
                    v.push(format!(
                        "rv {}: ReplicaSet {} {} while the active Service selects it ({sel:?})",
                        e.rv,
                        e.name,
                        if e.deleted { "deleted" } else { "scaled to 0" }
                    ));
                }
                if e.deleted {
                    fleets.remove(&e.name);
                    continue;
                }
                if let Some(n) = revision(&e.object) {
                    let max = revisions.entry(e.name.clone()).or_insert(n);
                    if n < *max {
                        v.push(format!(
                            "rv {}: the revision of ReplicaSet {} went from {max} down to {n}",
                            e.rv, e.name
                        ));
                    }
                    *max = (*max).max(n);
                }
                fleets.insert(e.name.clone(), e.object.clone());
            }
            Kind::Service => {
                seen.services.insert(e.name.clone());
                if e.name != ROLLOUT || e.deleted {
                    continue;
                }
                let new: BTreeMap<String, String> = labels_at(&e.object, "/spec/selector")
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                // The first version is the user's Service; every change after
                // it is a switch the operator made.
                if selector.as_ref().is_some_and(|old| *old != new) {
                    v.extend(switch(e.rv, &new, &fleets, &analyses));
                }
                selector = Some(new);
            }
            Kind::Analysis => {
                seen.analyses.insert(analysis_key(&e.name));
                if e.deleted {
                    v.push(format!(
                        "rv {}: CanaryAnalysis {} was deleted",
                        e.rv, e.name
                    ));
                    continue;
                }
                let uids = analyses.entry(e.name.clone()).or_default();
                uids.insert(e.uid.clone());
                if uids.len() > 1 {
                    v.push(format!(
                        "rv {}: CanaryAnalysis {} was created again (uids {uids:?})",
                        e.rv, e.name
                    ));
                }
                if e.object.pointer("/status/phase") == Some(&json!("Failed")) {
                    failed_verdict = true;
                }
            }
            Kind::Rollout => {
                if e.name != ROLLOUT || e.deleted {
                    continue;
                }
                let phase = e.object.pointer("/status/phase").and_then(Value::as_str);
                if phase == Some("Degraded")
                    && !(flow.degrades_on_failed_verdict() && failed_verdict)
                {
                    let why = e
                        .object
                        .pointer("/status/conditions")
                        .cloned()
                        .unwrap_or(Value::Null);
                    v.push(format!(
                        "rv {}: Degraded without a Failed verdict: {why}",
                        e.rv
                    ));
                }
                let history = e
                    .object
                    .pointer("/status/history")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let mut now: BTreeMap<String, i64> = BTreeMap::new();
                for h in &history {
                    let hash = h["hash"].as_str().unwrap_or_default().to_owned();
                    let n = h["revision"].as_i64().unwrap_or(0);
                    let m = now.entry(hash).or_insert(n);
                    *m = (*m).max(n);
                }
                for (hash, n) in now {
                    let max = rollout_revisions.entry(hash.clone()).or_insert(n);
                    if n < *max {
                        v.push(format!(
                            "rv {}: the Rollout's revision of {hash} went from {max} down to {n}",
                            e.rv
                        ));
                    }
                    *max = (*max).max(n);
                }
            }
            Kind::Event => {}
        }
    }
    (v, seen)
}

/// One write of the active Service's selector, judged against the fleets and
/// analyses as they were just before it.
fn switch(
    rv: u64,
    selector: &BTreeMap<String, String>,
    fleets: &BTreeMap<String, Value>,
    analyses: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut v = Vec::new();
    let selected: Vec<(&String, &Value)> = fleets
        .iter()
        .filter(|(_, rs)| selects(selector, rs) && has_pods(rs))
        .collect();
    if selected.is_empty() {
        v.push(format!(
            "rv {rv}: the Service selects no fleet with pods ({selector:?})"
        ));
    }
    let ready = |rs: &Value| int(rs, "/status/readyReplicas");
    if selector.contains_key(POD_TEMPLATE_HASH_LABEL) {
        for (name, rs) in &selected {
            if ready(rs) < i64::from(REPLICAS) {
                v.push(format!(
                    "rv {rv}: switched to {name} with {} of {REPLICAS} pods ready",
                    ready(rs)
                ));
            }
        }
        return v;
    }
    // A selector without a hash sends traffic to the canary and baseline.
    let role = |rs: &Value| {
        rs.pointer("/spec/template/metadata/labels")
            .and_then(|l| l.get(ROLE_LABEL))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    for (name, rs) in &selected {
        let want = int(rs, "/spec/replicas").max(1);
        if ready(rs) < want {
            v.push(format!(
                "rv {rv}: canary traffic with {name} at {} of {want} pods ready",
                ready(rs)
            ));
        }
    }
    let roles: BTreeSet<Option<String>> = selected.iter().map(|(_, rs)| role(rs)).collect();
    if !roles.contains(&Some("canary".to_owned())) {
        v.push(format!(
            "rv {rv}: a selector without a hash but no canary fleet: {:?}",
            selected.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ));
    }
    if selected.iter().filter(|(_, rs)| role(rs).is_none()).count() > 1 {
        v.push(format!(
            "rv {rv}: canary traffic while more than one revision fleet has pods: {:?}",
            selected.iter().map(|(n, _)| n).collect::<Vec<_>>()
        ));
    }
    if !analyses.keys().any(|n| !n.contains("-post-")) {
        v.push(format!(
            "rv {rv}: canary traffic before its CanaryAnalysis existed"
        ));
    }
    v
}

/// The final state, comparable between runs of a flow (no times, no uids).
pub fn snapshot(
    rollout: &Value,
    selector: &BTreeMap<String, String>,
    replica_sets: &[Value],
    services: &[String],
    analyses: &[Value],
) -> Value {
    let s = &rollout["status"];
    let history: Vec<Value> = s["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|r| json!([r["hash"], r["revision"], r["outcome"]]))
                .collect()
        })
        .unwrap_or_default();
    let fleets: BTreeMap<String, Value> = replica_sets
        .iter()
        .map(|rs| {
            (
                rs.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                json!([rs.pointer("/spec/replicas"), revision(rs)]),
            )
        })
        .collect();
    let analyses: BTreeMap<String, Value> = analyses
        .iter()
        .map(|a| {
            (
                analysis_key(
                    a.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                ),
                a.pointer("/status/phase").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    json!({
        "phase": s["phase"],
        "stable": s["stableRevision"],
        "current": s["currentRevision"],
        "canary": [s.pointer("/canary/phase"), s.pointer("/canary/attempt")],
        "abort": s.pointer("/abort/reason"),
        "history": history,
        "selector": selector,
        "replicaSets": fleets,
        "services": services,
        "analyses": analyses,
    })
}

/// Events counted by (reason, note): one transition, one Event. A point may
/// repeat a note only as often as the run without kills did (a flow can go
/// through the same transition twice, e.g. two switches).
pub fn duplicate_events(
    events: &BTreeMap<(String, String), usize>,
    baseline: &BTreeMap<(String, String), usize>,
) -> Vec<String> {
    events
        .iter()
        .filter(|(key, n)| **n > baseline.get(*key).copied().unwrap_or(1).max(1))
        .map(|((reason, note), n)| format!("Event {reason} recorded {n} times: {note:?}"))
        .collect()
}
