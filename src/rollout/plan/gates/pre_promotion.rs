//! The pre-promotion analysis (Argo Rollouts' `prePromotionAnalysis`): a
//! CanaryAnalysis of the new revision's full fleet (behind the preview
//! Service) against the live fleet over the same window, before the switch.
//! Failed aborts the revision (traffic never moves); Passed or Marginal lets
//! the promotion go on (manual or automatic); Inconclusive or Error holds it.

use std::collections::BTreeMap;

use chrono::Duration;

use super::super::action::Action;
use super::super::analysis_spec::{self, ScopeSpec};
use super::super::builder::{Builder, Events};
use super::super::ctx::Ctx;
use super::super::names::{analysis_labels, pre_promotion_analysis_name, replica_set_name};
use super::super::observed::AnalysisPhase;
use super::super::operations::Ops;
use super::super::records::Records;
use super::verdict::{GateHold, Verdict};
use crate::api::{AbortReason, AbortStatus, PostPromotionPhase, PrePromotionStatus};

/// Analyses are watched; this is only a backstop.
const RECHECK_SECONDS: i64 = 30;

/// Decides the pre-promotion analysis of the current revision (Open without one).
pub fn decide(ctx: &Ctx, ops: &mut Ops, records: &mut Records, events: &mut Events) -> Verdict {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let Some(source) = &ctx.spec().strategy.red_black.pre_promotion_analysis else {
        return Verdict::Open;
    };
    let target = ctx.target();
    let mut pre = match &records.pre_promotion {
        Some(p) if p.revision == target && !ops.retried => p.clone(),
        _ => PrePromotionStatus {
            revision: target.to_owned(),
            analysis_name: pre_promotion_analysis_name(rollout, target, ctx.now),
            started_at: ctx.now,
            phase: PostPromotionPhase::Running,
            score: None,
            message: None,
        },
    };
    let hold = |pre: &PrePromotionStatus| {
        Verdict::Hold(GateHold {
            what: format!("pre-promotion analysis {}", pre.analysis_name),
            message: pre.message.clone(),
            wake_at: ctx.now + Duration::seconds(RECHECK_SECONDS),
        })
    };
    if let Err(problem) =
        analysis_spec::resolve_pre_promotion(rollout, &world.analysis_templates, source)
    {
        pre.message = Some(format!("{problem}; {}", problem.fix()));
        let verdict = hold(&pre);
        records.pre_promotion = Some(pre);
        return verdict;
    }
    let observed = world.analysis(&pre.analysis_name);
    if pre.phase == PostPromotionPhase::Running
        && let Some(analysis) = observed
    {
        pre.score = analysis.score.or(pre.score);
        pre.message = analysis.message.clone();
        match analysis.phase {
            AnalysisPhase::Pending | AnalysisPhase::Running => pre.message = None,
            AnalysisPhase::Passed | AnalysisPhase::Marginal => {
                pre.phase = PostPromotionPhase::Passed;
                events.normal(
                    "PrePromotionAnalysisPassed",
                    format!(
                        "pre-promotion analysis {} is {:?}; the promotion goes on",
                        pre.analysis_name, analysis.phase
                    ),
                );
            }
            AnalysisPhase::Inconclusive | AnalysisPhase::Error => {
                pre.phase = PostPromotionPhase::Inconclusive;
                events.warning(
                    "PrePromotionAnalysisInconclusive",
                    format!(
                        "pre-promotion analysis {} is {:?}: {}; no switch (retry or abort)",
                        pre.analysis_name,
                        analysis.phase,
                        pre.message.clone().unwrap_or_default()
                    ),
                );
            }
            AnalysisPhase::Failed => {
                pre.phase = PostPromotionPhase::Failed;
                events.warning(
                    "PrePromotionAnalysisFailed",
                    format!(
                        "pre-promotion analysis {} failed with score {}; traffic stays on the stable revision; see `redblack report {}`",
                        pre.analysis_name,
                        pre.score.map_or("none".to_owned(), |s| format!("{s:.1}")),
                        pre.analysis_name
                    ),
                );
            }
        }
    }
    records.last_score = pre.score.or(records.last_score);
    let verdict = match pre.phase {
        PostPromotionPhase::Passed => Verdict::Open,
        PostPromotionPhase::Failed => {
            let abort = AbortStatus {
                revision: target.to_owned(),
                reason: AbortReason::PrePromotionAnalysisFailed,
                at: ctx.old.abort.as_ref().map_or(ctx.now, |a| a.at),
            };
            ops.abort = Some(abort.clone());
            ops.approved = None;
            Verdict::Failed(abort)
        }
        PostPromotionPhase::Running | PostPromotionPhase::Inconclusive => hold(&pre),
    };
    records.pre_promotion = Some(pre);
    verdict
}

/// Creates the running pre-promotion analysis when it is not observed.
pub fn act(ctx: &Ctx, records: &Records, held: bool, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let (true, Some(pre), Some(source), Some(active)) = (
        held,
        &records.pre_promotion,
        &rollout.spec.strategy.red_black.pre_promotion_analysis,
        world.active_hash.as_deref(),
    ) else {
        return;
    };
    if pre.phase != PostPromotionPhase::Running
        || pre.revision != ctx.target()
        || world.analysis(&pre.analysis_name).is_some()
    {
        return;
    }
    let Ok(source) =
        analysis_spec::resolve_pre_promotion(rollout, &world.analysis_templates, source)
    else {
        return;
    };
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let scope = |hash: &str, role: &str| ScopeSpec {
        namespace: namespace.clone(),
        replica_set: replica_set_name(rollout, hash),
        revision: hash.to_owned(),
        role: role.to_owned(),
        variables: BTreeMap::new(),
    };
    let spec = analysis_spec::build(
        Some(source.body),
        scope(&pre.revision, "preview"),
        scope(active, "stable"),
        pre.started_at,
        None,
    );
    out.actions.push(Action::EnsureCanaryAnalysis {
        name: pre.analysis_name.clone(),
        labels: analysis_labels(rollout, &pre.revision, source.template),
        spec,
    });
    out.normal(
        "AnalysisCreated",
        format!(
            "created pre-promotion CanaryAnalysis {} for {} (control: the live fleet {active})",
            pre.analysis_name, pre.revision
        ),
    );
}
