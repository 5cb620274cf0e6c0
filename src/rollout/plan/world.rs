//! What the planner sees, indexed: the owned ReplicaSets by pod-template hash
//! and the revisions the Services select — and every question the planner
//! asks about it (is a fleet available, which canary fleets are wanted, can
//! traffic flow to the canary), so each is answered in one place.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};

use super::names::{BASELINE, CANARY, baseline_name, canary_name};
use super::observed::{AnalysisObservation, Observed, Refusal, RouteObservation};
use crate::api::{
    CanaryStatus, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, ROLE_LABEL, Rollout, RolloutStatus,
    SCALE_DOWN_AT_ANNOTATION, pod_template_hash,
};

/// One owned ReplicaSet, reduced to what decisions need.
#[derive(Clone, Debug)]
pub struct Fleet {
    pub name: String,
    pub hash: String,
    pub revision: i64,
    /// `spec.replicas` (desired size).
    pub size: i32,
    /// Pods that exist (`status.replicas`).
    pub pods: i32,
    pub ready: i32,
    pub available: i32,
    /// False while the ReplicaSet controller has not seen the latest spec.
    pub synced: bool,
    pub scale_down_at: Option<DateTime<Utc>>,
    pub images: Vec<String>,
    /// `canary` / `baseline` for the canary's fleets; None for revision fleets.
    pub role: Option<String>,
    /// The pod template (the baseline copies the stable fleet's).
    pub template: Option<PodTemplateSpec>,
}

impl Fleet {
    fn from_replica_set(rs: &ReplicaSet) -> Option<Fleet> {
        let meta = &rs.metadata;
        let hash = meta.labels.as_ref()?.get(POD_TEMPLATE_HASH_LABEL)?.clone();
        let annotations = meta.annotations.clone().unwrap_or_default();
        let status = rs.status.as_ref();
        let synced = match (status.and_then(|s| s.observed_generation), meta.generation) {
            (Some(seen), Some(current)) => seen >= current,
            // Without generations (some test worlds), trust the counters.
            _ => true,
        };
        Some(Fleet {
            name: meta.name.clone()?,
            hash,
            revision: annotations
                .get(REVISION_ANNOTATION)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            size: rs.spec.replicas.unwrap_or(1),
            pods: status.map(|s| s.replicas).unwrap_or(0),
            ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            synced,
            scale_down_at: annotations
                .get(SCALE_DOWN_AT_ANNOTATION)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            images: rs.spec.template.as_ref().map(images_of).unwrap_or_default(),
            role: meta
                .labels
                .as_ref()
                .and_then(|l| l.get(ROLE_LABEL))
                .cloned(),
            template: rs.spec.template.clone(),
        })
    }

    /// All `want` pods ready and available (which honours minReadySeconds, as
    /// the ReplicaSet controller computes availability with it).
    pub fn is_available(&self, want: i32) -> bool {
        self.synced && self.size >= want && self.ready >= want && self.available >= want
    }
}

pub fn images_of(template: &PodTemplateSpec) -> Vec<String> {
    template
        .spec
        .as_ref()
        .map(|s| {
            s.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// The observed world from the planner's point of view.
#[derive(Debug)]
pub struct World {
    pub target_hash: String,
    pub fleets: BTreeMap<String, Fleet>,
    /// The hash the active Service selects; None when the Service is missing
    /// or selects no revision yet.
    pub active_hash: Option<String>,
    pub service_missing: bool,
    pub preview_hash: Option<String>,
    pub preview_exists: bool,
    /// [`super::observed::Observed::events_refused`].
    pub events_refused: Option<String>,
    /// Canary and baseline ReplicaSets (role-labelled), by name.
    pub role_sets: BTreeMap<String, Fleet>,
    /// The active Service selects `matchLabels` only: a canary's share by
    /// replica counts is on, and `active_hash` is the stable revision recorded
    /// in `status.canary` (the selector itself names no revision).
    pub wide: bool,
    pub analyses: Vec<AnalysisObservation>,
    pub route: Option<RouteObservation>,
    pub role_services: Vec<Service>,
    pub active_service: Option<Service>,
    /// Observed CanaryAnalysisTemplates by name (their spec).
    pub analysis_templates: BTreeMap<String, serde_json::Value>,
    /// The highest revision number `status.history` records per hash.
    pub recorded: BTreeMap<String, i64>,
    /// A CanaryAnalysis create the API refused in this reconcile.
    pub refused: Option<Refusal>,
    /// [`super::observed::Observed::pods`].
    pub pods: Vec<k8s_openapi::api::core::v1::Pod>,
    /// [`super::observed::Observed::jobs`].
    pub jobs: Vec<super::observed::JobObservation>,
    /// [`super::observed::Observed::http_checks`].
    pub http_checks: Vec<super::observed::HttpCheck>,
}

/// Only the planner widens the selector to exactly `matchLabels` (replica-count
/// canary), and only after recording the stable revision in `status.canary`;
/// a user's own `matchLabels` selector before any canary is not "wide".
fn is_wide(rollout: &Rollout, observed: &Observed, old: &RolloutStatus) -> bool {
    let rb = &rollout.spec.strategy.red_black;
    // Not conditional on `canary` still being configured: a canary removed
    // from the spec mid-judgement must still have its traffic taken back.
    let by_replicas = rb
        .traffic_routing
        .as_ref()
        .and_then(|t| t.http_route.as_ref())
        .is_none();
    // Any phase: a verdict (Failed, Passed) may be recorded while the
    // selector is still wide — a plan made from a Service cache that had not
    // yet seen the widening records the verdict without narrowing, and a
    // phase filter here then left the selector wide for good (seen under API
    // faults). A `matchLabels`-only selector once a canary has recorded its
    // stable revision is the planner's own widening.
    let recorded = old
        .canary
        .as_ref()
        .is_some_and(|c| c.stable_revision.is_some());
    let selector = observed
        .active_service
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.selector.clone());
    by_replicas && recorded && selector.is_some() && selector == rollout.spec.selector.match_labels
}

fn selected_hash(service: &Service) -> Option<String> {
    service
        .spec
        .as_ref()?
        .selector
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .cloned()
}

impl World {
    pub fn new(rollout: &Rollout, observed: &Observed, old: &RolloutStatus) -> World {
        let (role_sets, fleets): (Vec<Fleet>, Vec<Fleet>) = observed
            .replica_sets
            .iter()
            .filter_map(Fleet::from_replica_set)
            .partition(|f| f.role.is_some());
        let mut active_hash = observed.active_service.as_ref().and_then(selected_hash);
        let wide = active_hash.is_none() && is_wide(rollout, observed, old);
        if wide {
            active_hash = old.canary.as_ref().and_then(|c| c.stable_revision.clone());
        }
        World {
            target_hash: pod_template_hash(&rollout.spec.template),
            fleets: fleets.into_iter().map(|f| (f.hash.clone(), f)).collect(),
            active_hash,
            service_missing: observed.active_service.is_none(),
            preview_hash: observed.preview_service.as_ref().and_then(selected_hash),
            preview_exists: observed.preview_service.is_some(),
            events_refused: observed.events_refused.clone(),
            role_sets: role_sets.into_iter().map(|f| (f.name.clone(), f)).collect(),
            wide,
            analyses: observed.analyses.clone(),
            route: observed.route.clone(),
            role_services: observed.role_services.clone(),
            active_service: observed.active_service.clone(),
            analysis_templates: observed.analysis_templates.clone(),
            recorded: old.history.iter().fold(BTreeMap::new(), |mut m, r| {
                let n = m.entry(r.hash.clone()).or_insert(r.revision);
                *n = (*n).max(r.revision);
                m
            }),
            refused: observed.refused.clone(),
            pods: observed.pods.clone(),
            jobs: observed.jobs.clone(),
            http_checks: observed.http_checks.clone(),
        }
    }

    pub fn analysis(&self, name: &str) -> Option<&AnalysisObservation> {
        self.analyses.iter().find(|a| a.name == name)
    }

    pub fn role_set(&self, name: &str) -> Option<&Fleet> {
        self.role_sets.get(name)
    }

    pub fn target(&self) -> Option<&Fleet> {
        self.fleets.get(&self.target_hash)
    }

    /// The fleet the active Service selects, if we own it.
    pub fn active(&self) -> Option<&Fleet> {
        self.active_hash.as_ref().and_then(|h| self.fleets.get(h))
    }

    /// The revision's fleet exists with `want` pods available.
    pub fn revision_available(&self, hash: &str, want: i32) -> bool {
        self.fleets.get(hash).is_some_and(|f| f.is_available(want))
    }
}

impl World {
    /// The revision number the current template has once this plan is
    /// applied ([`revision_number`] of what is observed and recorded).
    pub fn target_revision(&self) -> i64 {
        let target = &self.target_hash;
        let others = self.fleets.values().filter(|f| f.hash != *target);
        revision_number(&RevisionFacts {
            own_fleet: self.target().map(|t| t.revision),
            own_recorded: self.recorded.get(target).copied(),
            other_fleets: others.map(|f| f.revision).max().unwrap_or(0),
            recorded: self.recorded.values().copied().max().unwrap_or(0),
        })
    }
}

/// What a revision number is derived from: the current template's own number
/// (on its fleet, in `status.history`) and the numbers already given out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RevisionFacts {
    /// The revision annotation of the current template's fleet, if observed.
    pub own_fleet: Option<i64>,
    /// The highest number `status.history` records for the current template.
    pub own_recorded: Option<i64>,
    /// The highest revision annotation of the other observed fleets (0: none).
    pub other_fleets: i64,
    /// The highest number anywhere in `status.history` (0: none).
    pub recorded: i64,
}

/// Revision numbers only ever grow. The current template keeps the number it
/// already has — on its fleet, or in the history when that is the newest
/// number recorded (its fleet not observed) — while that is above every other
/// fleet's; otherwise (a new template, an old fleet reused by an undo, as a
/// Deployment renumbers, or a template coming back after newer ones) it gets
/// one more than every number given out, observed or recorded. So the result
/// is never below its own fleet's number, always above every other fleet's,
/// and without a fleet of its own never below anything recorded.
pub fn revision_number(facts: &RevisionFacts) -> i64 {
    let recorded_newest = facts.own_recorded.filter(|n| *n >= facts.recorded);
    let own = facts.own_fleet.max(recorded_newest);
    match own {
        Some(n) if n > facts.other_fleets => n,
        // Saturating: the numbers come from annotations anyone can edit, and
        // i64::MAX + 1 must not panic (it stays at the largest number instead).
        _ => facts
            .other_fleets
            .max(facts.recorded)
            .max(own.unwrap_or(0))
            .saturating_add(1),
    }
}

/// A fleet a canary needs: its ReplicaSet name, its role and the template it
/// is made from (None when the baseline's stable fleet has no template).
#[derive(Clone, Debug)]
pub struct RoleFleet {
    pub name: String,
    pub role: &'static str,
    pub template: Option<PodTemplateSpec>,
}

/// The canary questions: they read the observed fleets, the route and the
/// recorded canary.
impl World {
    /// The fleets a canary needs. The baseline's template is the stable
    /// fleet's, as observed.
    pub fn canary_fleets(&self, rollout: &Rollout, canary: &CanaryStatus) -> Vec<RoleFleet> {
        let Some(cfg) = rollout.spec.strategy.red_black.canary.as_ref() else {
            return Vec::new();
        };
        let revision = canary.revision.clone().unwrap_or_default();
        let mut out = vec![RoleFleet {
            name: canary_name(rollout, &revision),
            role: CANARY,
            template: Some(rollout.spec.template.clone()),
        }];
        if cfg.baseline
            && let Some(stable) = &canary.stable_revision
        {
            out.push(RoleFleet {
                name: baseline_name(rollout, stable),
                role: BASELINE,
                template: self.fleets.get(stable).and_then(|f| f.template.clone()),
            });
        }
        out
    }

    /// Canary (and baseline, when on) exist with all their pods available.
    pub fn canary_fleets_ready(&self, rollout: &Rollout, canary: &CanaryStatus) -> bool {
        let Some(cfg) = rollout.spec.strategy.red_black.canary.as_ref() else {
            return false;
        };
        let wanted = self.canary_fleets(rollout, canary);
        wanted.len() == 1 + usize::from(cfg.baseline)
            && wanted.iter().all(|f| {
                self.role_set(&f.name)
                    .is_some_and(|f| f.is_available(cfg.replicas))
            })
    }

    /// Traffic can be given to the canary now: both fleets fully available and
    /// the mechanism ready (route observed; or no other fleet with pods, as
    /// the widened selector would select them too).
    pub fn canary_can_flow(&self, rollout: &Rollout, canary: &CanaryStatus) -> bool {
        if !self.canary_fleets_ready(rollout, canary) {
            return false;
        }
        if rollout.spec.http_route_name().is_some() {
            return self.route.is_some();
        }
        let stable = canary.stable_revision.as_deref();
        self.fleets
            .values()
            .filter(|f| Some(f.hash.as_str()) != stable)
            .all(|f| f.size == 0 && f.pods == 0)
    }

    /// The first port of the active Service (what the route's backends use).
    pub fn active_port(&self) -> Option<i32> {
        self.active_service
            .as_ref()?
            .spec
            .as_ref()?
            .ports
            .as_ref()?
            .first()
            .map(|p| p.port)
    }

    /// The observed role Service of that name.
    pub fn role_service(&self, name: &str) -> Option<&Service> {
        self.role_services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }
}
