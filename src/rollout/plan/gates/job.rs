//! Job gates: the Job (batch/v1) a running record needs and that is not
//! observed yet, rendered from the gate's template and owned by the Rollout
//! (garbage collection follows it).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use super::super::action::Action;
use super::super::builder::Builder;
use super::super::ctx::Ctx;
use super::super::names::rollout_label_value;
use super::render::{render, variables};
use crate::api::{GateAt, GatePhase, JobGate, ROLLOUT_LABEL};

/// Label on a gate's Job: the gate's name.
pub const GATE_LABEL: &str = "rollouts.redblack.io/gate";

/// Creates the Jobs of the running Job gates that are not observed, while
/// the revision is held at a gate (`held`).
pub fn act(ctx: &Ctx, records: &[crate::api::GateStatus], held: bool, out: &mut Builder) {
    if !held {
        return;
    }
    let gates = &ctx.spec().strategy.red_black.gates;
    for record in records {
        let (Some(name), GatePhase::Running) = (&record.job_name, record.phase) else {
            continue;
        };
        if record.revision != ctx.target() || ctx.world.jobs.iter().any(|j| &j.name == name) {
            continue;
        }
        // An `AfterSwitch` gate judges the live fleet: never before the switch.
        if record.at == GateAt::AfterSwitch
            && ctx.world.active_hash.as_deref() != Some(ctx.target())
        {
            continue;
        }
        let Some(spec) = gates
            .iter()
            .find(|g| g.name == record.name)
            .and_then(|g| g.job.as_ref())
        else {
            continue;
        };
        out.actions.push(Action::EnsureJob {
            name: name.clone(),
            job: Box::new(job(ctx, &record.name, name, spec)),
        });
        out.normal(
            "GateJobCreated",
            format!(
                "created Job {name} for gate {} of {}",
                record.name, record.revision
            ),
        );
    }
}

/// The Job of gate `gate`, named `name`.
pub fn job(ctx: &Ctx, gate: &str, name: &str, spec: &JobGate) -> Job {
    let rollout = ctx.rollout;
    let vars = variables(rollout, ctx.target());
    let mut template: PodTemplateSpec = spec.template.clone();
    if let Some(pod) = template.spec.as_mut() {
        pod.restart_policy.get_or_insert_with(|| "Never".to_owned());
        for c in pod
            .containers
            .iter_mut()
            .chain(pod.init_containers.iter_mut().flatten())
        {
            for list in [c.args.as_mut(), c.command.as_mut()].into_iter().flatten() {
                for arg in list.iter_mut() {
                    *arg = render(arg, &vars);
                }
            }
            for env in c.env.iter_mut().flatten() {
                if let Some(value) = env.value.as_mut() {
                    *value = render(value, &vars);
                }
            }
        }
    }
    let labels = BTreeMap::from([
        (ROLLOUT_LABEL.to_owned(), rollout_label_value(rollout)),
        (GATE_LABEL.to_owned(), gate.to_owned()),
    ]);
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: rollout.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: rollout.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            template,
            active_deadline_seconds: Some(spec.active_deadline_seconds),
            backoff_limit: Some(spec.backoff_limit),
            ..JobSpec::default()
        }),
        status: None,
    }
}
