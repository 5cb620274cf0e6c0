//! What the Deployment controller reads, as plain values: a Deployment and its
//! ReplicaSets parsed out of JSON, `maxSurge`/`maxUnavailable` resolved the way
//! `k8s.io/kubernetes/pkg/controller/deployment/util` resolves them, and the
//! pod-template hash that names a ReplicaSet.

use serde_json::{Map, Value};

use crate::store::meta_str;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";

/// Annotations a Deployment does not pass on to its ReplicaSets (the real
/// controller's `skipCopyAnnotation`).
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

pub fn copied_annotation(key: &str) -> bool {
    !NOT_COPIED.contains(&key)
}

/// An `IntOrString` of a rolling update: an absolute count or a percentage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i64),
    Percent(i64),
}

impl IntOrPercent {
    /// `None` for what the API server refuses (a negative number, "5", "x%").
    pub fn parse(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => n.as_i64().filter(|n| *n >= 0).map(Self::Int),
            Value::String(s) => s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse().ok())
                .map(Self::Percent),
            _ => None,
        }
    }

    /// `intstr.GetScaledValueFromIntOrPercent`: a percentage of `total`,
    /// rounded up or down.
    pub fn scaled(self, total: i64, round_up: bool) -> i64 {
        match self {
            Self::Int(n) => n,
            Self::Percent(p) if round_up => (p * total + 99).div_euclid(100),
            Self::Percent(p) => (p * total).div_euclid(100),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Recreate,
    RollingUpdate {
        max_surge: IntOrPercent,
        max_unavailable: IntOrPercent,
    },
}

/// The Kubernetes default for both bounds.
const DEFAULT_BOUND: IntOrPercent = IntOrPercent::Percent(25);

/// A Deployment as the controller sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeployView {
    pub name: String,
    pub generation: i64,
    pub replicas: i64,
    pub strategy: Strategy,
    pub min_ready_seconds: i64,
    /// `None`: keep every old ReplicaSet.
    pub revision_history_limit: Option<i64>,
    /// `None`: progress is not tracked.
    pub progress_deadline_seconds: Option<i64>,
    pub paused: bool,
    pub deleting: bool,
    pub template: Value,
    pub selector: Value,
    pub annotations: Map<String, Value>,
    pub status: Map<String, Value>,
}

/// One ReplicaSet the Deployment controls.
#[derive(Clone, Debug, PartialEq)]
pub struct RsView {
    pub name: String,
    /// RFC 3339 creation time (one format: sorts as a string).
    pub created: String,
    pub revision: i64,
    pub replicas: i64,
    pub status_replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub generation: i64,
    pub observed_generation: i64,
    pub template: Value,
    pub min_ready_seconds: i64,
    pub annotations: Map<String, Value>,
    pub deleting: bool,
    /// Its pods not yet Succeeded or Failed, terminating ones included (what
    /// `Recreate` waits on).
    pub pods_not_finished: i64,
}

impl RsView {
    pub fn annotation_int(&self, key: &str) -> Option<i64> {
        self.annotations.get(key)?.as_str()?.parse().ok()
    }
}

fn int_at(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

fn object_at(v: &Value, ptr: &str) -> Map<String, Value> {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn parse_bound(v: Option<&Value>) -> Result<IntOrPercent, String> {
    match v {
        None | Some(Value::Null) => Ok(DEFAULT_BOUND),
        Some(v) => IntOrPercent::parse(v).ok_or_else(|| format!("invalid int or percent {v}")),
    }
}

/// The Deployment's spec, with the API server's defaults for what is unset.
pub fn parse_deployment(d: &Value) -> Result<DeployView, String> {
    let spec = d.get("spec").ok_or("no spec")?;
    let replicas = match spec.get("replicas") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_i64()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("spec.replicas {v} is not a non-negative integer"))?,
    };
    let strategy = match spec.pointer("/strategy/type").and_then(Value::as_str) {
        Some("Recreate") => Strategy::Recreate,
        None | Some("RollingUpdate") => Strategy::RollingUpdate {
            max_surge: parse_bound(spec.pointer("/strategy/rollingUpdate/maxSurge"))?,
            max_unavailable: parse_bound(spec.pointer("/strategy/rollingUpdate/maxUnavailable"))?,
        },
        Some(other) => return Err(format!("unknown strategy {other}")),
    };
    let template = spec
        .get("template")
        .filter(|t| t.is_object())
        .cloned()
        .ok_or("spec.template is missing")?;
    let selector = spec
        .get("selector")
        .filter(|s| s.is_object())
        .cloned()
        .ok_or("spec.selector is missing")?;
    Ok(DeployView {
        name: meta_str(d, "name").unwrap_or("").to_string(),
        generation: int_at(d, "/metadata/generation").unwrap_or(1),
        replicas,
        strategy,
        min_ready_seconds: int_at(spec, "/minReadySeconds").unwrap_or(0).max(0),
        revision_history_limit: match spec.get("revisionHistoryLimit") {
            None => Some(10),
            Some(v) => v.as_i64(),
        },
        progress_deadline_seconds: match spec.get("progressDeadlineSeconds") {
            None => Some(600),
            // MaxInt32 is how the API says "no deadline".
            Some(v) => v.as_i64().filter(|n| *n != i64::from(i32::MAX)),
        },
        paused: spec.get("paused").and_then(Value::as_bool) == Some(true),
        deleting: super::super::is_deleting(d),
        template,
        selector,
        annotations: object_at(d, "/metadata/annotations"),
        status: object_at(d, "/status"),
    })
}

pub fn parse_replica_set(rs: &Value, pods_not_finished: i64) -> RsView {
    let annotations = object_at(rs, "/metadata/annotations");
    RsView {
        name: meta_str(rs, "name").unwrap_or("").to_string(),
        created: meta_str(rs, "creationTimestamp").unwrap_or("").to_string(),
        revision: annotations
            .get(REVISION)
            .and_then(Value::as_str)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        replicas: int_at(rs, "/spec/replicas").unwrap_or(1),
        status_replicas: int_at(rs, "/status/replicas").unwrap_or(0),
        ready: int_at(rs, "/status/readyReplicas").unwrap_or(0),
        available: int_at(rs, "/status/availableReplicas").unwrap_or(0),
        generation: int_at(rs, "/metadata/generation").unwrap_or(1),
        observed_generation: int_at(rs, "/status/observedGeneration").unwrap_or(0),
        template: rs.pointer("/spec/template").cloned().unwrap_or(Value::Null),
        min_ready_seconds: int_at(rs, "/spec/minReadySeconds").unwrap_or(0),
        annotations,
        deleting: super::super::is_deleting(rs),
        pods_not_finished,
    }
}

impl DeployView {
    fn bounds(&self) -> Option<(IntOrPercent, IntOrPercent)> {
        match self.strategy {
            Strategy::Recreate => None,
            Strategy::RollingUpdate {
                max_surge,
                max_unavailable,
            } => Some((max_surge, max_unavailable)),
        }
    }

    /// `ResolveFenceposts`: surge rounds up, unavailable rounds down, and when
    /// both come out 0 one pod may be unavailable (else nothing could move).
    pub fn fenceposts(&self) -> (i64, i64) {
        let Some((surge, unavailable)) = self.bounds() else {
            return (0, 0);
        };
        let surge = surge.scaled(self.replicas, true);
        let unavailable = unavailable.scaled(self.replicas, false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }

    pub fn max_surge(&self) -> i64 {
        self.fenceposts().0
    }

    /// `MaxUnavailable`: 0 for Recreate and for 0 replicas, never above replicas.
    pub fn max_unavailable(&self) -> i64 {
        if self.bounds().is_none() || self.replicas == 0 {
            return 0;
        }
        self.fenceposts().1.min(self.replicas)
    }
}

/// The template without the `pod-template-hash` label, and without what a
/// typed Go object cannot tell from absent: nulls, empty maps and lists (a
/// real server decodes templates into structs, so `creationTimestamp: null`
/// or `resources: {}` — which `kubectl rollout undo` sends — change nothing).
pub fn template_without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
    }
    prune_empty(&mut t);
    t
}

/// Removes nulls and empty objects and arrays, bottom up.
fn prune_empty(v: &mut Value) {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    match v {
        Value::Object(map) => {
            for child in map.values_mut() {
                prune_empty(child);
            }
            map.retain(|_, child| !empty(child));
        }
        Value::Array(items) => items.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

/// `EqualIgnoreHash`: whether a ReplicaSet runs the Deployment's template.
pub fn same_template(rs_template: &Value, deploy_template: &Value) -> bool {
    template_without_hash(rs_template) == template_without_hash(deploy_template)
}

/// `controller.ComputeHash`: FNV-1a (32 bit) of the template and the collision
/// count, printed in decimal and mapped onto Kubernetes' safe alphabet. The
/// real one hashes Go's `%#v` dump of the struct, which a JSON world cannot
/// reproduce; here the template is hashed as canonical JSON (keys sorted), so
/// names look like real ones and are stable, but differ from a cluster's.
pub fn pod_template_hash(template: &Value, collision_count: Option<i64>) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut canonical = String::new();
    write_canonical(&template_without_hash(template), &mut canonical);
    let mut bytes = canonical.into_bytes();
    if let Some(c) = collision_count {
        // Kubernetes adds the count as a little-endian uint32.
        bytes.extend_from_slice(&(c as u32).to_le_bytes());
    }
    // FNV-1a, 32 bit (a dozen lines; not worth a crate).
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// JSON with object keys sorted at every level (serde_json keeps insertion
/// order in this workspace), so equal templates hash equally.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rolling(replicas: i64, surge: Value, unavailable: Value) -> DeployView {
        parse_deployment(&json!({"metadata": {"name": "d"}, "spec": {
            "replicas": replicas, "selector": {}, "template": {},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}}))
        .unwrap()
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        // (replicas, maxSurge, maxUnavailable) → (surge, unavailable) as Kubernetes resolves them.
        let cases = [
            (10, json!("25%"), json!("25%"), (3, 2)),
            (2, json!("25%"), json!("25%"), (1, 0)),
            (1, json!("25%"), json!("25%"), (1, 0)),
            (3, json!(1), json!(0), (1, 0)),
            (3, json!(0), json!("10%"), (0, 1)), // floor(0.3) = 0, so one is allowed
            (4, json!("0%"), json!("50%"), (0, 2)),
            (5, json!("100%"), json!(2), (5, 2)),
        ];
        for (replicas, surge, unavailable, want) in cases {
            let d = rolling(replicas, surge.clone(), unavailable.clone());
            assert_eq!(d.fenceposts(), want, "{replicas} {surge} {unavailable}");
        }
        assert_eq!(rolling(2, json!(0), json!(5)).max_unavailable(), 2);
        assert_eq!(rolling(0, json!(1), json!(1)).max_unavailable(), 0);
    }

    #[test]
    fn defaults_are_the_api_servers() {
        let d = parse_deployment(
            &json!({"spec": {"selector": {}, "template": {}}, "metadata": {"name": "d"}}),
        )
        .unwrap();
        assert_eq!(d.replicas, 1);
        assert_eq!(
            d.strategy,
            Strategy::RollingUpdate {
                max_surge: IntOrPercent::Percent(25),
                max_unavailable: IntOrPercent::Percent(25)
            }
        );
        assert_eq!(d.revision_history_limit, Some(10));
        assert_eq!(d.progress_deadline_seconds, Some(600));
        let bad = json!({"spec": {"selector": {}, "template": {},
            "strategy": {"rollingUpdate": {"maxSurge": "5"}}}});
        assert!(parse_deployment(&bad).is_err());
    }

    #[test]
    fn the_hash_ignores_its_own_label_and_key_order_and_sees_collisions() {
        let a = json!({"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "i:1", "name": "c"}]},
                       "metadata": {"labels": {"app": "w", HASH_LABEL: "xyz"}}});
        let h = pod_template_hash(&a, None);
        assert_eq!(h, pod_template_hash(&b, None));
        assert!(same_template(&b, &a));
        assert_ne!(h, pod_template_hash(&a, Some(1)));
        let c = json!({"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "i:2"}]}});
        assert_ne!(h, pod_template_hash(&c, None));
        assert!(!same_template(&c, &a));
        assert!(
            h.chars()
                .all(|ch| "bcdfghjklmnpqrstvwxz2456789".contains(ch))
        );
        assert!((1..=10).contains(&h.len()));
    }
}
