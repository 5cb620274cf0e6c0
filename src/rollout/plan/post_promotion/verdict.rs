//! The post-promotion decisions: the record a promotion starts, and the
//! verdict of its running analysis (Failed switches back to the warm
//! previous fleet, or abandons the revision when that fleet is gone).

use super::super::analysis_spec;
use super::super::builder::Events;
use super::super::ctx::Ctx;
use super::super::names::post_promotion_analysis_name;
use super::super::observed::AnalysisPhase;
use super::super::operations::Ops;
use super::super::records::Records;
use crate::api::{AbortReason, AbortStatus, PostPromotionPhase, PostPromotionStatus};

/// The record a promotion starts (None without `postPromotionAnalysis`).
pub fn start(ctx: &Ctx) -> Option<PostPromotionStatus> {
    record(ctx, ctx.world.active_hash.clone()?)
}

/// The record a promotion would have started, when the Service already
/// selects the current revision but the status still names another stable
/// one and has no record for it: the switch was written, the status that
/// recorded it was not (an operator killed between the two writes). The
/// previous revision is the stable one the status still names; the clock
/// starts now. None without `postPromotionAnalysis`, on a first deploy, or
/// when the status is not behind. (The caller excludes rollbacks.)
pub fn start_after_lost_switch(ctx: &Ctx, records: &Records) -> Option<PostPromotionStatus> {
    let target = ctx.world.target_hash.as_str();
    let previous = ctx.old.stable_revision.clone()?;
    let recorded = records
        .post_promotion
        .as_ref()
        .is_some_and(|p| p.revision == target);
    if previous == target || recorded {
        return None;
    }
    record(ctx, previous)
}

/// A running record of the current revision after `previous`, its clock
/// starting now (None without `postPromotionAnalysis`).
fn record(ctx: &Ctx, previous: String) -> Option<PostPromotionStatus> {
    let (rollout, world, now) = (ctx.rollout, ctx.world, ctx.now);
    rollout
        .spec
        .strategy
        .red_black
        .post_promotion_analysis
        .as_ref()?;
    Some(PostPromotionStatus {
        revision: world.target_hash.clone(),
        previous_revision: previous,
        analysis_name: post_promotion_analysis_name(rollout, &world.target_hash, now),
        switched_at: now,
        phase: PostPromotionPhase::Running,
        score: None,
        message: None,
    })
}

/// Judges the running post-promotion analysis of the current revision.
/// None: nothing to decide. Some(Some(to)): failed, switch back to `to` now.
/// Some(None): failed, and the abort is recorded in `ops` (already switched
/// back, or the previous fleet is not available to switch back to).
pub(crate) fn judge(
    ctx: &Ctx,
    ops: &mut Ops,
    records: &mut Records,
    out: &mut Events,
) -> Option<Option<String>> {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let post = records.post_promotion.as_mut()?;
    if post.revision != world.target_hash || post.phase != PostPromotionPhase::Running {
        return None;
    }
    let Some(analysis) = world.analysis(&post.analysis_name) else {
        // Not created yet: say why when it cannot be.
        post.message = rollout
            .spec
            .strategy
            .red_black
            .post_promotion_analysis
            .as_ref()
            .and_then(|source| {
                analysis_spec::resolve_post_promotion(rollout, &world.analysis_templates, source)
                    .err()
            })
            .map(|problem| format!("{problem}; {}", problem.fix()));
        return None;
    };
    post.score = analysis.score.or(post.score);
    post.message = analysis.message.clone();
    let name = post.analysis_name.clone();
    match analysis.phase {
        AnalysisPhase::Pending | AnalysisPhase::Running => {
            post.message = None;
            None
        }
        AnalysisPhase::Passed | AnalysisPhase::Marginal => {
            post.phase = PostPromotionPhase::Passed;
            records.last_score = post.score.or(records.last_score);
            out.normal(
                "PostPromotionAnalysisPassed",
                format!(
                    "post-promotion analysis {name} is {:?}; the previous fleet may scale down",
                    analysis.phase
                ),
            );
            None
        }
        AnalysisPhase::Inconclusive | AnalysisPhase::Error => {
            post.phase = PostPromotionPhase::Inconclusive;
            out.warning(
                "PostPromotionAnalysisInconclusive",
                format!(
                    "post-promotion analysis {name} is {:?}: {}; traffic stays on {}",
                    analysis.phase,
                    post.message.clone().unwrap_or_default(),
                    post.revision
                ),
            );
            None
        }
        AnalysisPhase::Failed => {
            post.phase = PostPromotionPhase::Failed;
            records.last_score = post.score.or(records.last_score);
            Some(failed(ctx, ops, post, out))
        }
    }
}

/// A Failed verdict: the revision is abandoned (recorded in `ops`). Some(to):
/// switch back to the warm previous fleet `to` now; None: already switched
/// back, or that fleet is not available to switch back to.
fn failed(
    ctx: &Ctx,
    ops: &mut Ops,
    post: &PostPromotionStatus,
    out: &mut Events,
) -> Option<String> {
    let world = ctx.world;
    let name = &post.analysis_name;
    let previous = post.previous_revision.clone();
    let live = world.active_hash.as_deref() == Some(post.revision.as_str());
    let warm = world.revision_available(&previous, ctx.spec().replicas);
    ops.abort = Some(AbortStatus {
        revision: post.revision.clone(),
        reason: AbortReason::PostPromotionAnalysisFailed,
        // Kept from the first plan that saw the verdict (re-plans are equal).
        at: ctx.old.abort.as_ref().map_or(ctx.now, |a| a.at),
    });
    ops.approved = None;
    let score = post.score.map_or("none".to_owned(), |s| format!("{s:.1}"));
    if live && warm {
        out.warning(
            "PostPromotionAnalysisFailed",
            format!("post-promotion analysis {name} failed with score {score}; switching traffic back to {previous}; see `redblack report {name}`"),
        );
        Some(previous)
    } else {
        if live {
            out.warning(
                "PostPromotionAnalysisFailed",
                format!("post-promotion analysis {name} failed with score {score}, but the previous fleet {previous} is not available: traffic stays; undo to bring it back; see `redblack report {name}`"),
            );
        }
        None
    }
}
