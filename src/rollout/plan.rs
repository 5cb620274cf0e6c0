//! PURE planner: (Rollout, observed children, now) -> actions + new status.
//!
//! No I/O and no memory between calls: progress lives in the Rollout's status
//! and in annotations on the ReplicaSets it owns, so a restarted operator
//! continues where it stopped. The flow and its states are described in
//! docs/rollout.md; `state::State` is the explicit state machine.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::Resource;

use crate::api::{AbortReason, Rollout, RolloutStatus, validate};

mod analysis_spec;
mod canary;
mod fleets;
mod history;
mod operations;
mod post_promotion;
mod records;
pub mod state;
mod status;
mod traffic;
pub mod windows;
mod world;

pub use analysis_spec::AnalysisProblem;
pub use canary::{analysis_name, baseline_name, canary_name, role_service_name};
pub use fleets::{replica_set_name, service_selector};
pub use state::{CanaryStep, State, SwitchKind};

/// The children the controller observed (only those it owns / names).
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// ReplicaSets owned by this Rollout (labelled with the pod-template hash).
    pub replica_sets: Vec<ReplicaSet>,
    /// `spec.strategy.redBlack.activeService`, None when it does not exist.
    pub active_service: Option<Service>,
    /// `spec.strategy.redBlack.previewService`, None when unset or missing.
    pub preview_service: Option<Service>,
    /// CanaryAnalyses labelled `rollouts.redblack.io/rollout: <name>` (the
    /// planner picks the one it needs by name).
    pub analyses: Vec<AnalysisObservation>,
    /// `trafficRouting.httpRoute`, None when unset or missing.
    pub route: Option<RouteObservation>,
    /// The Services named `<rollout>-canary` / `<rollout>-baseline` that exist.
    pub role_services: Vec<Service>,
    /// The CanaryAnalysisTemplates (in the Rollout's namespace) that its
    /// analyses name in `templateName` and that exist: name -> spec (the body,
    /// as `inline` would hold it).
    pub analysis_templates: BTreeMap<String, serde_json::Value>,
}

/// What the planner needs of a CanaryAnalysis.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisObservation {
    pub name: String,
    pub phase: AnalysisPhase,
    pub score: Option<f64>,
    pub message: Option<String>,
}

/// `status.phase` of a CanaryAnalysis (no status yet = Pending).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalysisPhase {
    Pending,
    Running,
    Passed,
    Marginal,
    Failed,
    Inconclusive,
    Error,
}

/// The backends of the HTTPRoute (the first rule's `backendRefs`; the shell
/// writes the same list into every rule).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteObservation {
    pub backends: Vec<RouteBackend>,
}

/// One `backendRef`: a Service, its port, and its weight (Gateway API default 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteBackend {
    pub service: String,
    pub port: Option<i32>,
    pub weight: i32,
}

/// A declarative, idempotent change. Executed in order; the shell stops at the
/// first failure and re-plans (every action is safe to repeat).
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create (or apply) the ReplicaSet of a revision. Owner reference and
    /// namespace come from the Rollout (see `Action::replica_set`).
    EnsureReplicaSet {
        name: String,
        hash: String,
        revision: i64,
        replicas: i32,
        min_ready_seconds: i32,
        selector: LabelSelector,
        /// The pod template with the pod-template-hash label added.
        template: Box<PodTemplateSpec>,
        labels: BTreeMap<String, String>,
        annotations: BTreeMap<String, String>,
    },
    ScaleReplicaSet {
        name: String,
        replicas: i32,
    },
    /// Set and remove annotations (a merge patch: removed keys become null).
    AnnotateReplicaSet {
        name: String,
        set: BTreeMap<String, String>,
        remove: Vec<String>,
    },
    DeleteReplicaSet {
        name: String,
    },
    /// Replace the Service's selector with `selector` in ONE write. `hash` is
    /// the revision it selects; without `trafficRouting`, a canary's share is
    /// given by a selector of `matchLabels` only (stable + canary + baseline
    /// pods), and then `hash` names the stable revision.
    SwitchService {
        service: String,
        hash: String,
        selector: BTreeMap<String, String>,
    },
    /// Create or update (apply) a Service of one role (`<rollout>-canary`,
    /// `<rollout>-baseline`), owned by the Rollout, for HTTPRoute backends.
    /// `ports` are copied from the active Service.
    EnsureRoleService {
        name: String,
        role: String,
        selector: BTreeMap<String, String>,
        ports: Vec<ServicePort>,
    },
    /// Replace `backendRefs` of every rule of the HTTPRoute `route` with
    /// `backends` (weights sum to 100) in ONE write.
    SetRouteWeights {
        route: String,
        backends: Vec<RouteBackend>,
    },
    /// Create a CanaryAnalysis (owned by the Rollout, labelled with `labels`)
    /// if none of that name exists. Never updated, never deleted by the
    /// planner: a judgement is a record (`redblack report <name>`).
    EnsureCanaryAnalysis {
        name: String,
        labels: BTreeMap<String, String>,
        spec: serde_json::Value,
    },
}

impl Action {
    /// The full ReplicaSet an `EnsureReplicaSet` describes, owned by `rollout`
    /// (controller owner reference, so garbage collection follows the Rollout).
    pub fn replica_set(&self, rollout: &Rollout) -> Option<ReplicaSet> {
        let Action::EnsureReplicaSet {
            name,
            replicas,
            min_ready_seconds,
            selector,
            template,
            labels,
            annotations,
            ..
        } = self
        else {
            return None;
        };
        let owner: Option<OwnerReference> = rollout.controller_owner_ref(&());
        Some(ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: rollout.metadata.namespace.clone(),
                labels: Some(labels.clone()),
                annotations: Some(annotations.clone()),
                owner_references: owner.map(|o| vec![o]),
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas: Some(*replicas),
                min_ready_seconds: Some(*min_ready_seconds),
                selector: selector.clone(),
                template: Some((**template).clone()),
            },
            status: None,
        })
    }

    /// True for actions that change where traffic goes (a Service's selector
    /// or the route's weights). Role Services do not count: they only carry
    /// traffic through the route's weights.
    pub fn touches_traffic(&self) -> bool {
        matches!(
            self,
            Action::SwitchService { .. } | Action::SetRouteWeights { .. }
        )
    }
}

pub use crate::runtime::events::{EventType, PlannedEvent};

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// The complete status to write (after the actions succeeded).
    pub status: RolloutStatus,
    pub events: Vec<PlannedEvent>,
    /// Re-plan after this long even if nothing is observed to change (a timer:
    /// scale-down delay or progress deadline). Honour it even for a no-op plan.
    pub requeue_after: Option<Duration>,
    /// The state the planner decided on (for logs, metrics and tests).
    pub state: State,
}

impl Plan {
    /// Nothing to do: no actions and the status equals what is stored, so the
    /// shell writes nothing (a status write must not retrigger work forever).
    pub fn is_noop(&self, stored: Option<&RolloutStatus>) -> bool {
        self.actions.is_empty() && stored.is_some_and(|s| *s == self.status)
    }
}

/// Collects actions, events and timers while planning.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    actions: Vec<Action>,
    events: Vec<PlannedEvent>,
    wakeups: Vec<DateTime<Utc>>,
}

impl Builder {
    fn normal(&mut self, reason: &str, message: impl Into<String>) {
        self.event(EventType::Normal, reason, message.into());
    }
    fn warning(&mut self, reason: &str, message: impl Into<String>) {
        self.event(EventType::Warning, reason, message.into());
    }
    fn event(&mut self, type_: EventType, reason: &str, message: String) {
        self.events.push(PlannedEvent {
            type_,
            reason: reason.to_owned(),
            message,
        });
    }
    fn scale(&mut self, name: &str, from: i32, to: i32) {
        self.actions.push(Action::ScaleReplicaSet {
            name: name.to_owned(),
            replicas: to,
        });
        self.normal(
            "ScaledReplicaSet",
            format!("scaled ReplicaSet {name} from {from} to {to}"),
        );
    }
}

/// Decides what to do. Pure: the same inputs give the same plan.
pub fn plan(rollout: &Rollout, observed: &Observed, now: DateTime<Utc>) -> Plan {
    // Stored timestamps have second precision (as metav1.Time); truncating here
    // keeps status byte-identical across re-plans within the same second.
    let now = now.trunc_subsecs(0);
    let old = rollout.status.clone().unwrap_or_default();
    let world = world::World::new(rollout, observed, &old);
    let mut out = Builder::default();

    let errors = validate(rollout);
    if !errors.is_empty() {
        let status = status::invalid(rollout, &old, &world, &errors, now, &mut out);
        return finish(out, status, State::InvalidSpec, now);
    }

    let mut ops = operations::consume(rollout, &old, &world, now, &mut out);
    let mut records = records::Records::from_status(&old);
    let state = state::derive(rollout, &old, &world, &mut ops, &mut records, now, &mut out);
    if let State::Aborted(abort) = &state
        && abort.reason == AbortReason::ProgressDeadlineExceeded
        && old.abort.as_ref() != Some(abort)
    {
        out.warning(
            "ProgressDeadlineExceeded",
            format!(
                "revision {} was not available within {}s; traffic stays where it was",
                world.target_hash, rollout.spec.progress_deadline_seconds
            ),
        );
    }
    fleets::plan(rollout, &world, &state, &records, now, &mut out);
    let status = status::build(rollout, &old, &world, &state, &ops, &records, now, &mut out);
    finish(out, status, state, now)
}

fn finish(out: Builder, status: RolloutStatus, state: State, now: DateTime<Utc>) -> Plan {
    let requeue_after = out
        .wakeups
        .iter()
        .filter(|t| **t > now)
        .min()
        .and_then(|t| (*t - now).to_std().ok());
    Plan {
        actions: out.actions,
        status,
        events: out.events,
        requeue_after,
        state,
    }
}
