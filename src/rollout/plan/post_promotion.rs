//! Post-promotion analysis: after the switch to a new revision, its fleet is
//! judged against the previous fleet's metrics from BEFORE the switch (the
//! control scope is time-shifted by the analysis' `lifetime`: experiment over
//! `[switch, switch + lifetime]`, control over `[switch − lifetime, switch]`).
//! The previous fleet stays warm until the verdict; Failed switches traffic
//! back to it in ONE write and abandons the new revision.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::analysis_spec::{self, AnalysisProblem, POST_PROMOTION_FIELD, Resolved, ScopeSpec};
use super::canary::analysis_labels;
use super::operations::Ops;
use super::records::Records;
use super::state::State;
use super::world::World;
use super::{Action, AnalysisPhase, Builder, fleets};
use crate::api::{
    AbortReason, AbortStatus, AnalysisSource, PostPromotionPhase, PostPromotionStatus, Rollout,
    RolloutStatus,
};

/// `<rollout>-<hash>-post-<unix seconds of the switch>`: unique per promotion,
/// so a revision promoted again gets a fresh judgement.
pub fn analysis_name(rollout: &Rollout, hash: &str, switched_at: DateTime<Utc>) -> String {
    let name = rollout.metadata.name.as_deref().unwrap_or("rollout");
    format!("{name}-{hash}-post-{}", switched_at.timestamp())
}

/// The record a promotion starts (None without `postPromotionAnalysis`).
pub fn start(rollout: &Rollout, world: &World, now: DateTime<Utc>) -> Option<PostPromotionStatus> {
    rollout
        .spec
        .strategy
        .red_black
        .post_promotion_analysis
        .as_ref()?;
    let previous = world.active_hash.clone()?;
    Some(PostPromotionStatus {
        revision: world.target_hash.clone(),
        previous_revision: previous,
        analysis_name: analysis_name(rollout, &world.target_hash, now),
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
#[allow(clippy::too_many_arguments)]
pub(crate) fn judge(
    rollout: &Rollout,
    old: &RolloutStatus,
    world: &World,
    ops: &mut Ops,
    records: &mut Records,
    now: DateTime<Utc>,
    out: &mut Builder,
) -> Option<Option<String>> {
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
            .and_then(|source| resolve(rollout, world, source).err())
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
            let previous = post.previous_revision.clone();
            let live = world.active_hash.as_deref() == Some(post.revision.as_str());
            let warm = world
                .fleets
                .get(&previous)
                .is_some_and(|f| f.is_available(rollout.spec.replicas));
            ops.abort = Some(AbortStatus {
                revision: post.revision.clone(),
                reason: AbortReason::PostPromotionAnalysisFailed,
                at: old.abort.as_ref().map_or(now, |a| a.at),
            });
            ops.approved = None;
            let score = post.score.map_or("none".to_owned(), |s| format!("{s:.1}"));
            if live && warm {
                out.warning(
                    "PostPromotionAnalysisFailed",
                    format!("post-promotion analysis {name} failed with score {score}; switching traffic back to {previous}; see `redblack report {name}`"),
                );
                Some(Some(previous))
            } else {
                if live {
                    out.warning(
                        "PostPromotionAnalysisFailed",
                        format!("post-promotion analysis {name} failed with score {score}, but the previous fleet {previous} is not available: traffic stays; undo to bring it back; see `redblack report {name}`"),
                    );
                }
                Some(None)
            }
        }
    }
}

/// Creates the analysis while it is due and not yet observed.
pub fn plan(rollout: &Rollout, world: &World, state: &State, records: &Records, out: &mut Builder) {
    let (State::Steady, Some(post), Some(source)) = (
        state,
        &records.post_promotion,
        rollout
            .spec
            .strategy
            .red_black
            .post_promotion_analysis
            .as_ref(),
    ) else {
        return;
    };
    if post.phase != PostPromotionPhase::Running
        || post.revision != world.target_hash
        || world.analysis(&post.analysis_name).is_some()
    {
        return;
    }
    let namespace = rollout.metadata.namespace.clone().unwrap_or_default();
    let scope = |hash: &str, role: &str| ScopeSpec {
        namespace: namespace.clone(),
        replica_set: fleets::replica_set_name(rollout, hash),
        revision: hash.to_owned(),
        role: role.to_owned(),
        variables: BTreeMap::new(),
    };
    // Checked before the switch; a template deleted since then is reported
    // by `judge` (the previous fleet stays warm meanwhile).
    let Ok(source) = resolve(rollout, world, source) else {
        return;
    };
    let spec = analysis_spec::build(
        Some(source.body),
        scope(&post.revision, "stable"),
        scope(&post.previous_revision, "previous"),
        post.switched_at,
        source.lifetime(),
    );
    out.actions.push(Action::EnsureCanaryAnalysis {
        name: post.analysis_name.clone(),
        labels: analysis_labels(rollout, &post.revision, source.template),
        spec,
    });
    let from = source
        .template
        .map(|t| format!(" from CanaryAnalysisTemplate {t}"))
        .unwrap_or_default();
    out.normal(
        "AnalysisCreated",
        format!(
            "created post-promotion CanaryAnalysis {}{from} for {} (control: {} before the switch)",
            post.analysis_name, post.revision, post.previous_revision
        ),
    );
}

/// The body of the post-promotion analysis (`lifetime` required: it shifts
/// the control).
fn resolve<'a>(
    rollout: &Rollout,
    world: &'a World,
    source: &'a AnalysisSource,
) -> Result<Resolved<'a>, AnalysisProblem> {
    analysis_spec::resolve(
        rollout,
        &world.analysis_templates,
        source,
        POST_PROMOTION_FIELD,
        true,
    )
}

/// The previous fleet of a running post-promotion analysis: kept warm.
pub fn protected(records: &Records, world: &World) -> Option<String> {
    records
        .post_promotion
        .as_ref()
        .filter(|p| p.phase == PostPromotionPhase::Running && p.revision == world.target_hash)
        .map(|p| p.previous_revision.clone())
}
