//! PURE: what the pages show, derived from the watched objects — a snapshot of
//! the caches — and the clock. Shared by the fleet and Rollout pages.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::ResourceExt;

use crate::api::canary_analysis::CanaryAnalysis;
use crate::api::{
    CanaryPhase, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, Rollout, SCALE_DOWN_AT_ANNOTATION,
};
use crate::rollout::plan::windows::{WindowCheck, check};

/// The caches at one instant (cheap: `Arc`s).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub rollouts: Vec<Arc<Rollout>>,
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    pub analyses: Vec<Arc<CanaryAnalysis>>,
    pub services: Vec<Arc<Service>>,
    pub events: Vec<Arc<K8sEvent>>,
}

/// One fleet (ReplicaSet) of a Rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub name: String,
    pub hash: String,
    pub revision: i64,
    pub role: Option<String>,
    pub images: Vec<String>,
    pub ready: i32,
    pub desired: i32,
    /// When a warm (no longer live) fleet is scaled down.
    pub scale_down_at: Option<DateTime<Utc>>,
}

/// Traffic in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub stable: i32,
    pub canary: i32,
    pub baseline: i32,
}

/// One row of the fleet table.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRow {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub paused: bool,
    pub live: Option<Fleet>,
    /// The current revision while it is not the live one.
    pub in_progress: Option<Fleet>,
    pub in_progress_hash: Option<String>,
    pub split: Split,
    pub score: Option<f64>,
    pub band: Option<String>,
    /// namespace/name of the canary's CanaryAnalysis.
    pub analysis: Option<String>,
    pub warm: Vec<Fleet>,
    pub window: WindowCheck,
    pub age_secs: i64,
}

fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.annotations()
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn fleet_of(rs: &ReplicaSet) -> Fleet {
    let images = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    Fleet {
        name: rs.name_any(),
        hash: rs
            .labels()
            .get(POD_TEMPLATE_HASH_LABEL)
            .cloned()
            .unwrap_or_default(),
        revision: revision_of(rs),
        role: rs.labels().get(crate::api::ROLE_LABEL).cloned(),
        images,
        ready: rs
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
        desired: rs.spec.replicas.unwrap_or(0),
        scale_down_at: rs
            .annotations()
            .get(SCALE_DOWN_AT_ANNOTATION)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    }
}

/// ReplicaSets by the uid of the Rollout that owns them.
pub fn by_owner(replica_sets: &[Arc<ReplicaSet>]) -> HashMap<String, Vec<Arc<ReplicaSet>>> {
    let mut map: HashMap<String, Vec<Arc<ReplicaSet>>> = HashMap::new();
    for rs in replica_sets {
        for owner in rs.owner_references() {
            if owner.kind == "Rollout" {
                map.entry(owner.uid.clone()).or_default().push(rs.clone());
            }
        }
    }
    map
}

/// The traffic split the status says.
pub fn split(rollout: &Rollout) -> Split {
    let status = rollout.status.clone().unwrap_or_default();
    let canary = status.canary.as_ref().map_or(0, |c| {
        let active = matches!(
            c.phase,
            Some(CanaryPhase::Progressing | CanaryPhase::Analysing)
        );
        if active {
            c.traffic_percent.clamp(0, 100)
        } else {
            0
        }
    });
    let with_baseline = rollout
        .spec
        .strategy
        .red_black
        .canary
        .as_ref()
        .is_some_and(|c| c.baseline);
    let baseline = if with_baseline {
        canary.min(100 - canary)
    } else {
        0
    };
    Split {
        stable: 100 - canary - baseline,
        canary,
        baseline,
    }
}

/// The fleets of a Rollout, newest revision first.
pub fn fleets(owned: &[Arc<ReplicaSet>]) -> Vec<Fleet> {
    let mut fleets: Vec<Fleet> = owned.iter().map(|rs| fleet_of(rs)).collect();
    fleets.sort_by(|a, b| b.revision.cmp(&a.revision).then(a.name.cmp(&b.name)));
    fleets
}

pub fn analysis_of<'a>(
    snapshot: &'a Snapshot,
    namespace: &str,
    name: &str,
) -> Option<&'a Arc<CanaryAnalysis>> {
    snapshot
        .analyses
        .iter()
        .find(|a| a.name_any() == name && a.namespace().as_deref() == Some(namespace))
}

/// One row per Rollout, sorted by namespace and name.
pub fn fleet_rows(snapshot: &Snapshot, now: DateTime<Utc>) -> Vec<FleetRow> {
    let owned = by_owner(&snapshot.replica_sets);
    let mut rows: Vec<FleetRow> = snapshot
        .rollouts
        .iter()
        .map(|r| {
            let ns = r.namespace().unwrap_or_default();
            let uid = r.uid().unwrap_or_default();
            let fleets = fleets(owned.get(&uid).map_or(&[][..], Vec::as_slice));
            let status = r.status.clone().unwrap_or_default();
            let stable = status.stable_revision.clone();
            let current = status.current_revision.clone();
            let primary = |hash: &str| {
                fleets
                    .iter()
                    .find(|f| {
                        f.hash == hash
                            && f.role
                                .as_deref()
                                .is_none_or(|r| r != "baseline" && r != "canary")
                    })
                    .or_else(|| fleets.iter().find(|f| f.hash == hash))
                    .cloned()
            };
            let live = stable.as_deref().and_then(primary);
            let in_progress_hash = current.filter(|c| Some(c) != stable.as_ref());
            // A canary fleet carries a hash of its own (role label canary).
            let in_progress = in_progress_hash.as_deref().and_then(primary).or_else(|| {
                in_progress_hash.as_ref()?;
                fleets
                    .iter()
                    .find(|f| f.role.as_deref() == Some("canary"))
                    .cloned()
            });
            let warm = fleets
                .iter()
                .filter(|f| f.scale_down_at.is_some() && f.desired > 0)
                .cloned()
                .collect();
            let canary = status.canary.as_ref();
            let analysis_name = canary.and_then(|c| c.analysis_name.clone());
            let analysis = analysis_name
                .as_deref()
                .and_then(|n| analysis_of(snapshot, &ns, n));
            let score = canary
                .and_then(|c| c.score)
                .or_else(|| {
                    analysis
                        .and_then(|a| a.status.as_ref())
                        .and_then(|s| s.score)
                })
                .or(status.last_score);
            let band = analysis
                .and_then(|a| a.status.as_ref())
                .and_then(|s| s.band)
                .map(|b| format!("{b:?}"));
            let created = r
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0));
            FleetRow {
                name: r.name_any(),
                phase: status
                    .phase
                    .map_or_else(|| "-".to_owned(), |p| format!("{p:?}")),
                paused: r.spec.paused,
                live,
                in_progress,
                in_progress_hash,
                split: split(r),
                score,
                band,
                analysis: analysis_name.map(|n| format!("{ns}/{n}")),
                warm,
                window: check(&r.spec.strategy.red_black.promotion_windows, now),
                age_secs: created.map_or(0, |c| (now - c).num_seconds().max(0)),
                namespace: ns,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}
