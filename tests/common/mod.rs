//! A tiny simulated world for planner tests: apply actions the way the shell
//! would, make pods ready, advance the clock.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use redblack::api::{CanaryPhase, POD_TEMPLATE_HASH_LABEL, Rollout, pod_template_hash};
use redblack::rollout::plan::{AnalysisObservation, AnalysisPhase, RouteObservation};
use redblack::rollout::{Action, Observed, Plan, plan};

pub fn rollout(image: &str, replicas: i32) -> Rollout {
    let mut r: Rollout = serde_json::from_value(serde_json::json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]}
            },
            "strategy": {"redBlack": {"activeService": "web"}}
        }
    }))
    .unwrap();
    r.status = None;
    r
}

pub fn service(name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), "web".to_owned())])),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}

#[derive(Clone, Debug)]
pub struct Sim {
    pub rollout: Rollout,
    pub observed: Observed,
    pub now: DateTime<Utc>,
    /// Every CanaryAnalysis spec the planner created, in order.
    pub analysis_specs: Vec<(String, serde_json::Value)>,
}

impl Sim {
    pub fn new(image: &str, replicas: i32) -> Sim {
        Sim {
            rollout: rollout(image, replicas),
            observed: Observed {
                replica_sets: Vec::new(),
                active_service: Some(service("web")),
                ..Observed::default()
            },
            now: t0(),
            analysis_specs: Vec::new(),
        }
    }

    /// Sets the verdict of an analysis the planner created (as the analysis
    /// controller would). Returns false when no such analysis exists.
    pub fn judge(
        &mut self,
        name: &str,
        phase: AnalysisPhase,
        score: Option<f64>,
        message: &str,
    ) -> bool {
        match self.observed.analyses.iter_mut().find(|a| a.name == name) {
            Some(a) => {
                a.phase = phase;
                a.score = score;
                a.message = (!message.is_empty()).then(|| message.to_owned());
                true
            }
            None => false,
        }
    }

    /// Adds an HTTPRoute whose only backend is the active Service (weight 1).
    pub fn with_route(&mut self) {
        self.observed.route = Some(RouteObservation {
            backends: vec![redblack::rollout::plan::RouteBackend {
                service: "web".to_owned(),
                port: Some(80),
                weight: 1,
            }],
        });
    }

    /// A world where `image` is deployed, live and stable.
    pub fn steady(image: &str, replicas: i32) -> Sim {
        let mut sim = Sim::new(image, replicas);
        sim.settle();
        sim
    }

    pub fn plan(&self) -> Plan {
        plan(&self.rollout, &self.observed, self.now)
    }

    pub fn hash(&self) -> String {
        pod_template_hash(&self.rollout.spec.template)
    }

    pub fn set_image(&mut self, image: &str) {
        let spec = self.rollout.spec.template.spec.as_mut().unwrap();
        spec.containers[0].image = Some(image.to_owned());
        self.bump_generation();
    }

    pub fn bump_generation(&mut self) {
        let g = self.rollout.metadata.generation.unwrap_or(0);
        self.rollout.metadata.generation = Some(g + 1);
    }

    pub fn annotate(&mut self, key: &str, value: &str) {
        self.rollout
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.to_owned(), value.to_owned());
    }

    pub fn advance(&mut self, secs: i64) {
        self.now += Duration::seconds(secs);
    }

    pub fn active_hash(&self) -> Option<String> {
        selected(self.observed.active_service.as_ref())
    }

    pub fn preview_hash(&self) -> Option<String> {
        selected(self.observed.preview_service.as_ref())
    }

    pub fn rs(&self, hash: &str) -> Option<&ReplicaSet> {
        self.observed
            .replica_sets
            .iter()
            .find(|rs| rs_hash(rs) == hash)
    }

    pub fn size(&self, hash: &str) -> Option<i32> {
        self.rs(hash).and_then(|rs| rs.spec.replicas)
    }

    /// Applies the plan's actions and stores its status, as the shell does.
    pub fn apply(&mut self, plan: &Plan) {
        for action in &plan.actions {
            self.apply_action(action);
        }
        // Through JSON, as the API server stores it: what a restarted operator
        // reads back must be what was planned.
        let stored = serde_json::to_value(&plan.status).unwrap();
        let back: redblack::api::RolloutStatus = serde_json::from_value(stored).unwrap();
        assert_eq!(
            back, plan.status,
            "status does not survive a JSON round trip"
        );
        self.rollout.status = Some(back);
    }

    pub fn apply_action(&mut self, action: &Action) {
        let rss = &mut self.observed.replica_sets;
        match action {
            Action::EnsureReplicaSet { name, .. } => {
                let rs = action.replica_set(&self.rollout).unwrap();
                match rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_ref() == Some(name))
                {
                    Some(existing) => {
                        existing.spec = rs.spec;
                        existing.metadata.labels = rs.metadata.labels;
                        existing.metadata.annotations = rs.metadata.annotations;
                    }
                    None => rss.push(rs),
                }
            }
            Action::ScaleReplicaSet { name, replicas } => {
                if let Some(rs) = rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_ref() == Some(name))
                {
                    rs.spec.replicas = Some(*replicas);
                    // Scale-down is immediate in this world; scale-up needs make_ready.
                    let status = rs.status.get_or_insert_with(ReplicaSetStatus::default);
                    status.replicas = status.replicas.min(*replicas);
                    status.ready_replicas = status.ready_replicas.map(|r| r.min(*replicas));
                    status.available_replicas = status.available_replicas.map(|r| r.min(*replicas));
                }
            }
            Action::AnnotateReplicaSet { name, set, remove } => {
                if let Some(rs) = rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_ref() == Some(name))
                {
                    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
                    for key in remove {
                        ann.remove(key);
                    }
                    ann.extend(set.clone());
                }
            }
            Action::DeleteReplicaSet { name } => {
                rss.retain(|r| r.metadata.name.as_ref() != Some(name));
            }
            Action::SetPodMetadata {
                name,
                labels,
                annotations,
                ..
            } => {
                if let Some(rs) = rss
                    .iter_mut()
                    .find(|r| r.metadata.name.as_ref() == Some(name))
                    && let Some(template) = rs.spec.template.as_mut()
                {
                    use redblack::api::pod_metadata::apply;
                    let meta = template.metadata.get_or_insert_with(Default::default);
                    apply(meta.labels.get_or_insert_with(BTreeMap::new), labels);
                    apply(
                        meta.annotations.get_or_insert_with(BTreeMap::new),
                        annotations,
                    );
                }
            }
            Action::ScaleDeployment { replicas, .. } => {
                if let Some(workload) = self.observed.workload.as_mut() {
                    workload.replicas = *replicas;
                }
            }
            Action::DeletePod { name } => {
                self.observed
                    .pods
                    .retain(|p| p.metadata.name.as_ref() != Some(name));
            }
            Action::EnsureRoleService {
                name,
                selector,
                ports,
                ..
            } => {
                let svc = Service {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(ServiceSpec {
                        selector: Some(selector.clone()),
                        ports: Some(ports.clone()),
                        ..ServiceSpec::default()
                    }),
                    status: None,
                };
                let services = &mut self.observed.role_services;
                services.retain(|s| s.metadata.name.as_ref() != Some(name));
                services.push(svc);
            }
            Action::SetRouteWeights { backends, .. } => {
                if let Some(route) = self.observed.route.as_mut() {
                    route.backends = backends.clone();
                }
            }
            Action::EnsureCanaryAnalysis { name, spec, labels } => {
                if !self.observed.analyses.iter().any(|a| a.name == *name) {
                    self.observed.analyses.push(AnalysisObservation {
                        name: name.clone(),
                        phase: AnalysisPhase::Running,
                        score: None,
                        message: None,
                        revision: labels.get(POD_TEMPLATE_HASH_LABEL).cloned(),
                        created: Some(self.now),
                        owned: true,
                        deleting: false,
                    });
                    self.analysis_specs.push((name.clone(), spec.clone()));
                }
            }
            Action::DeleteCanaryAnalysis { name } => {
                self.observed.analyses.retain(|a| a.name != *name);
            }
            // A gate's Job: observed running (tests set its outcome).
            Action::EnsureJob { name, .. } => {
                if !self.observed.jobs.iter().any(|j| j.name == *name) {
                    self.observed
                        .jobs
                        .push(redblack::rollout::plan::JobObservation {
                            name: name.clone(),
                            phase: redblack::rollout::plan::JobPhase::Running,
                            message: None,
                        });
                }
            }
            Action::SwitchService {
                service, selector, ..
            } => {
                for svc in [
                    self.observed.active_service.as_mut(),
                    self.observed.preview_service.as_mut(),
                ]
                .into_iter()
                .flatten()
                {
                    if svc.metadata.name.as_ref() == Some(service) {
                        svc.spec.get_or_insert_with(Default::default).selector =
                            Some(selector.clone());
                    }
                }
            }
        }
    }

    /// Every pod of every ReplicaSet becomes ready and available.
    pub fn make_ready(&mut self) {
        for rs in &mut self.observed.replica_sets {
            let want = rs.spec.replicas.unwrap_or(0);
            rs.status = Some(ReplicaSetStatus {
                replicas: want,
                ready_replicas: Some(want),
                available_replicas: Some(want),
                ..ReplicaSetStatus::default()
            });
        }
    }

    /// Plans and applies once.
    pub fn step(&mut self) -> Plan {
        let plan = self.plan();
        self.apply(&plan);
        plan
    }

    /// Plan, apply, make ready, follow timers until nothing changes.
    /// Returns the number of rounds; panics if it does not converge.
    pub fn settle(&mut self) -> usize {
        for round in 0..40 {
            // Pods become ready between reconciles (the ReplicaSet controller
            // would emit a watch event for it).
            self.make_ready();
            let plan = self.plan();
            if plan.is_noop(self.rollout.status.as_ref()) {
                match plan.requeue_after {
                    Some(wait) => self.now += Duration::from_std(wait).unwrap(),
                    None => return round,
                }
                continue;
            }
            self.apply(&plan);
        }
        panic!("did not converge: {:#?}", self.rollout.status);
    }
}

pub fn rs_hash(rs: &ReplicaSet) -> String {
    rs.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .cloned()
        .unwrap_or_default()
}

fn selected(svc: Option<&Service>) -> Option<String> {
    svc?.spec
        .as_ref()?
        .selector
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .cloned()
}

pub fn switches_to(plan: &Plan, service: &str) -> Option<String> {
    plan.actions.iter().find_map(|a| match a {
        Action::SwitchService {
            service: s, hash, ..
        } if s == service => Some(hash.clone()),
        _ => None,
    })
}

pub fn condition<'a>(plan: &'a Plan, type_: &str) -> Option<&'a redblack::api::Condition> {
    plan.status.conditions.iter().find(|c| c.type_ == type_)
}

/// The analysis body of canary tests (as `inline`, or a template's spec).
pub fn analysis_body() -> serde_json::Value {
    serde_json::json!({
        "interval": "1m",
        "lifetime": "10m",
        "experiment": {"variables": {"app": "web"}},
        "metrics": [{"name": "errors", "query": "sum(rate(errors{pod=~\"${podRegex}\"}[${interval}]))"}]
    })
}

/// The canary config used by canary tests: `replicas` canary pods, an inline
/// analysis, marginal policy `marginal`.
pub fn canary_config(
    replicas: i32,
    baseline: bool,
    marginal: &str,
) -> redblack::api::CanaryStrategy {
    serde_json::from_value(serde_json::json!({
        "replicas": replicas,
        "baseline": baseline,
        "marginal": marginal,
        "analysis": {"inline": analysis_body()}
    }))
    .unwrap()
}

impl Sim {
    /// The canary's analysis names the CanaryAnalysisTemplate `name` instead
    /// of an inline body (the template itself is not created: see
    /// [`Sim::put_template`]).
    pub fn use_template(&mut self, name: &str) {
        if let Some(canary) = self.rollout.spec.strategy.red_black.canary.as_mut() {
            canary.analysis.inline = None;
            canary.analysis.template_name = Some(name.to_owned());
        }
    }

    /// Creates (or replaces) the CanaryAnalysisTemplate `name` in the
    /// Rollout's namespace, as the controller's cache would show it.
    pub fn put_template(&mut self, name: &str, spec: serde_json::Value) {
        self.observed
            .analysis_templates
            .insert(name.to_owned(), spec);
    }

    pub fn delete_template(&mut self, name: &str) {
        self.observed.analysis_templates.remove(name);
    }
}

impl Sim {
    /// v1 live (4 pods); canary configured; with `route`, through an HTTPRoute.
    pub fn with_canary(route: bool, baseline: bool, marginal: &str) -> Sim {
        let mut sim = Sim::steady("web:1", 4);
        let rb = &mut sim.rollout.spec.strategy.red_black;
        rb.canary = Some(canary_config(1, baseline, marginal));
        if route {
            rb.traffic_routing = Some(
                serde_json::from_value(serde_json::json!({"httpRoute": {"name": "web-route"}}))
                    .unwrap(),
            );
            sim.with_route();
        }
        if let Some(spec) = sim
            .observed
            .active_service
            .as_mut()
            .and_then(|s| s.spec.as_mut())
        {
            spec.ports = Some(vec![k8s_openapi::api::core::v1::ServicePort {
                port: 80,
                ..Default::default()
            }]);
        }
        sim
    }

    pub fn role_set(&self, name: &str) -> Option<&ReplicaSet> {
        self.observed
            .replica_sets
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
    }

    /// Role-labelled (canary/baseline) ReplicaSets that exist.
    pub fn role_sets(&self) -> Vec<String> {
        self.observed
            .replica_sets
            .iter()
            .filter(|rs| {
                rs.metadata
                    .labels
                    .as_ref()
                    .is_some_and(|l| l.contains_key(redblack::api::ROLE_LABEL))
            })
            .filter_map(|rs| rs.metadata.name.clone())
            .collect()
    }

    /// The canary's share as the world would route it: route weights, or
    /// ready canary pods over ready pods behind a widened selector.
    pub fn active_selector(&self) -> Option<BTreeMap<String, String>> {
        self.observed
            .active_service
            .as_ref()?
            .spec
            .as_ref()?
            .selector
            .clone()
    }

    pub fn route_weight(&self, service: &str) -> i32 {
        self.observed.route.as_ref().map_or(0, |r| {
            r.backends
                .iter()
                .filter(|b| b.service == service)
                .map(|b| b.weight)
                .sum()
        })
    }
}

impl Sim {
    /// Like `settle`, with every running analysis given `verdict` as soon as
    /// it exists (a scripted analysis controller).
    pub fn settle_judging(&mut self, verdict: AnalysisPhase, score: f64) -> usize {
        for round in 0..60 {
            self.make_ready();
            self.judge_running_with_traffic(verdict, score);
            let plan = self.plan();
            if plan.is_noop(self.rollout.status.as_ref()) {
                match plan.requeue_after {
                    Some(wait) => self.now += Duration::from_std(wait).unwrap(),
                    None => return round,
                }
                continue;
            }
            self.apply(&plan);
        }
        panic!("did not converge: {:#?}", self.rollout.status);
    }

    /// `judge_running`, but an analysis judges the traffic the canary got:
    /// only once it has some (the planner gives it traffic after the analysis
    /// exists). A post-promotion analysis judges the live fleet at once.
    pub fn judge_running_with_traffic(&mut self, verdict: AnalysisPhase, score: f64) {
        let untried = self
            .rollout
            .status
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .is_some_and(|c| {
                matches!(
                    c.phase,
                    Some(CanaryPhase::Analysing | CanaryPhase::Progressing)
                ) && c.traffic_percent == 0
            });
        if !untried {
            self.judge_running(verdict, score);
        }
    }

    pub fn judge_running(&mut self, verdict: AnalysisPhase, score: f64) {
        for a in &mut self.observed.analyses {
            if matches!(a.phase, AnalysisPhase::Running | AnalysisPhase::Pending) {
                a.phase = verdict;
                a.score = Some(score);
            }
        }
    }
}
