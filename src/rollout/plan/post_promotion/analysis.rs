//! The post-promotion action: create the CanaryAnalysis that judges the new
//! revision against the previous fleet's metrics from before the switch.

use std::collections::BTreeMap;

use super::super::action::Action;
use super::super::analysis_spec::{self, ScopeSpec};
use super::super::builder::Builder;
use super::super::ctx::Ctx;
use super::super::names::{analysis_labels, replica_set_name};
use super::super::state::{Decision, State};
use crate::api::PostPromotionPhase;

/// Creates the analysis while it is due and not yet observed.
pub fn act(ctx: &Ctx, decision: &Decision, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let (State::Steady, Some(post), Some(source)) = (
        &decision.state,
        &decision.records.post_promotion,
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
        replica_set: replica_set_name(rollout, hash),
        revision: hash.to_owned(),
        role: role.to_owned(),
        variables: BTreeMap::new(),
    };
    // Checked before the switch; a template deleted since then is reported
    // by `verdict::judge` (the previous fleet stays warm meanwhile).
    let Ok(source) =
        analysis_spec::resolve_post_promotion(rollout, &world.analysis_templates, source)
    else {
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
