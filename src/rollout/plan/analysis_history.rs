//! Prunes finished CanaryAnalyses beyond `spec.analysis`'s history limits
//! (Argo Rollouts' `successfulRunHistoryLimit` / `unsuccessfulRunHistoryLimit`,
//! 5 each by default), newest kept. Without it a Rollout that ships many times
//! a day keeps every judgement in the API and in every watch cache forever.
//!
//! Never pruned, whatever the limits:
//! - an analysis that is not finished (Pending, Running);
//! - one the status names (canary, pre- or post-promotion, old or new status):
//!   the planner re-creates a missing analysis it names, so pruning one would
//!   loop, and its verdict may not be recorded yet;
//! - one of the current or the stable revision, or of a revision the records
//!   of this plan name: what `redblack report` is most often asked about, and
//!   it keeps every judgement still in play whatever the status write did;
//! - one the Rollout does not control (a user's analysis carrying the label).
//!
//! A delete the API refuses is reported as every refused write is, with a
//! condition and an Event ([`condition`]), without holding the rollout back.

use std::collections::BTreeSet;

use super::action::Action;
use super::builder::Builder;
use super::ctx::Ctx;
use super::observed::{AnalysisObservation, AnalysisPhase};
use super::state::Decision;
use crate::api::analysis_history::AnalysisHistory;
use crate::api::conditions::{self, Desired};
use crate::api::{ConditionStatus, RolloutStatus};

/// How many names an Event lists before "and N more".
const NAMED_IN_EVENT: usize = 3;

/// The analyses beyond the limits, by outcome class: (Passed?, limit, names).
fn due<'a>(ctx: &Ctx<'a>, decision: &'a Decision) -> Vec<(bool, usize, Vec<&'a str>)> {
    let limits = ctx.spec().analysis.unwrap_or_default();
    let (names, revisions) = kept(ctx, decision);
    let mut candidates: Vec<&AnalysisObservation> = ctx
        .world
        .analyses
        .iter()
        .filter(|a| a.owned && !a.deleting && a.phase.finished())
        .filter(|a| !names.contains(a.name.as_str()))
        .filter(|a| a.revision.as_deref().is_none_or(|r| !revisions.contains(r)))
        .collect();
    // Newest first; the name breaks ties so the plan is deterministic.
    candidates.sort_by(|a, b| b.created.cmp(&a.created).then(b.name.cmp(&a.name)));
    [true, false]
        .into_iter()
        .map(|successful| {
            let limit = limit(&limits, successful);
            let pruned: Vec<&str> = candidates
                .iter()
                .filter(|a| (a.phase == AnalysisPhase::Passed) == successful)
                .skip(limit)
                .map(|a| a.name.as_str())
                .collect();
            (successful, limit, pruned)
        })
        .filter(|(_, _, pruned)| !pruned.is_empty())
        .collect()
}

/// The deletes, with one Normal Event per outcome class.
pub fn act(ctx: &Ctx, decision: &Decision, out: &mut Builder) {
    for (successful, limit, pruned) in due(ctx, decision) {
        for name in &pruned {
            out.actions.push(Action::DeleteCanaryAnalysis {
                name: (*name).to_owned(),
            });
        }
        let (kind, field) = if successful {
            ("Passed", "successfulRunHistoryLimit")
        } else {
            ("unsuccessful", "unsuccessfulRunHistoryLimit")
        };
        out.normal(
            "AnalysisPruned",
            format!(
                "deleted {} {kind} CanaryAnalys{} ({}) beyond analysis.{field} {limit}",
                pruned.len(),
                if pruned.len() == 1 { "is" } else { "es" },
                listed(&pruned)
            ),
        );
    }
}

/// `AnalysisPruneRefused` (abnormal-true) in `status`: set when the API
/// refused a delete in this reconcile (`refused`: what the shell saw), with
/// a Warning Event when new; kept while analyses are still due, so it
/// neither flaps nor turns the Rollout Degraded (the rollout itself goes
/// on); removed once none is due.
pub fn condition(
    ctx: &Ctx,
    decision: &Decision,
    refused: Option<&str>,
    status: &mut RolloutStatus,
    out: &mut Builder,
) {
    let before = conditions::find(&ctx.old.conditions, conditions::ANALYSIS_PRUNE_REFUSED);
    status
        .conditions
        .retain(|c| c.type_ != conditions::ANALYSIS_PRUNE_REFUSED);
    if due(ctx, decision).is_empty() {
        return;
    }
    let message = match (refused, before) {
        (Some(api), _) => format!(
            "{api}; finished CanaryAnalyses beyond spec.analysis are kept until the operator \
             may delete them (RBAC: delete on canaryanalyses, docs/operations.md)"
        ),
        (None, Some(c)) => c.message.clone(),
        (None, None) => return,
    };
    if before.is_none_or(|c| c.message != message) {
        out.warning("AnalysisPruneFailed", message.clone());
    }
    let desired = Desired::new(
        conditions::ANALYSIS_PRUNE_REFUSED,
        ConditionStatus::True,
        "DeleteRefused",
        message,
    );
    status.conditions.extend(conditions::merge(
        &ctx.old.conditions,
        vec![desired],
        ctx.rollout.metadata.generation,
        ctx.now,
    ));
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

fn limit(limits: &AnalysisHistory, successful: bool) -> usize {
    let limit = if successful {
        limits.successful_run_history_limit
    } else {
        limits.unsuccessful_run_history_limit
    };
    usize::try_from(limit).unwrap_or(0)
}

/// The names and the revisions whose analyses are never pruned.
fn kept<'a>(ctx: &Ctx<'a>, decision: &'a Decision) -> (BTreeSet<&'a str>, BTreeSet<&'a str>) {
    let (old, new) = (ctx.old, &decision.records);
    let mut names = BTreeSet::new();
    let mut revisions = BTreeSet::from([ctx.target()]);
    revisions.extend(ctx.world.active_hash.as_deref());
    revisions.extend(old.stable_revision.as_deref());
    revisions.extend(old.current_revision.as_deref());
    for canary in [old.canary.as_ref(), new.canary.as_ref()]
        .into_iter()
        .flatten()
    {
        names.extend(canary.analysis_name.as_deref());
        revisions.extend(canary.revision.as_deref());
        revisions.extend(canary.stable_revision.as_deref());
    }
    // Post- and pre-promotion analyses: (name, revision judged).
    let posts = [old.post_promotion.as_ref(), new.post_promotion.as_ref()];
    let pres = [old.pre_promotion.as_ref(), new.pre_promotion.as_ref()];
    let named = (posts.into_iter().flatten())
        .map(|p| (p.analysis_name.as_str(), p.revision.as_str()))
        .chain(
            (pres.into_iter().flatten()).map(|p| (p.analysis_name.as_str(), p.revision.as_str())),
        );
    for (name, revision) in named {
        names.insert(name);
        revisions.insert(revision);
    }
    (names, revisions)
}

/// `a, b, c and 4 more`.
fn listed(names: &[&str]) -> String {
    let shown = names[..names.len().min(NAMED_IN_EVENT)].join(", ");
    match names.len().saturating_sub(NAMED_IN_EVENT) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}
