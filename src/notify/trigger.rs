//! PURE: what happened to a Rollout between two of its statuses. The notifier
//! keeps the last status it acted on (in the Rollout's ledger, [`super::ledger`])
//! and calls [`fired`] with it and the status it now observes; what comes out
//! is each notification-worthy change once. Every trigger reads a state that
//! stays in the status until the next revision (the abort, the canary's
//! analysis and phase, the history, the Ready condition), so two writes the
//! notifier saw as one still fire both.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::conditions::READY;
use crate::api::notifier::{Severity, Trigger};
use crate::api::{
    AbortReason, CanaryPhase, GatePhase, GateStatus, Outcome, PostPromotionPhase, RolloutStatus,
};

/// One occurrence of a trigger: what a notification says (the payload's
/// `event`, docs/notifications.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Happening {
    pub trigger: Trigger,
    pub severity: Severity,
    /// Names this occurrence among the Rollout's (the delivery key is the
    /// Rollout's uid and this).
    pub id: String,
    /// One sentence for humans.
    pub summary: String,
    /// The revision (pod-template hash) it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The revision the active Service selects after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_revision: Option<String>,
    /// `Passed`, `Marginal`, `Failed`, `Inconclusive` or `Error` (verdicts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The CanaryAnalysis it is about (its report: `redblack report <name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<String>,
    /// The operator's message (a condition's, an analysis').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub at: DateTime<Utc>,
}

/// The happenings from `before` (the last status acted on) to `after`, at `now`.
pub fn fired(before: &RolloutStatus, after: &RolloutStatus, now: DateTime<Utc>) -> Vec<Happening> {
    let mut out = Vec::new();
    let new = |trigger, severity, id: String, summary: String, revision: Option<&str>| Happening {
        trigger,
        severity,
        id,
        summary,
        revision: revision
            .map(str::to_owned)
            .or(after.current_revision.clone()),
        stable_revision: after.stable_revision.clone(),
        verdict: None,
        score: None,
        analysis: None,
        message: None,
        at: now,
    };
    let current = after.current_revision.as_deref().unwrap_or("");

    if let Some(hash) = after.current_revision.as_deref()
        && before.current_revision.as_deref() != Some(hash)
    {
        let since = after
            .revision_started_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        out.push(new(
            Trigger::RolloutStarted,
            Severity::Info,
            format!("rollout-started/{hash}/{since}"),
            format!("revision {hash} started rolling out"),
            None,
        ));
    }

    if let Some(canary) = &after.canary
        && let Some(name) = canary.analysis_name.as_deref()
    {
        let old = before
            .canary
            .as_ref()
            .filter(|c| c.analysis_name.as_deref() == Some(name));
        let revision = canary.revision.as_deref();
        if old.is_none() {
            let mut h = new(
                Trigger::CanaryStarted,
                Severity::Info,
                format!("canary-started/{name}"),
                format!("canary analysis {name} of revision {current} started"),
                revision,
            );
            h.analysis = Some(name.to_owned());
            out.push(h);
        }
        if let Some((verdict, severity)) = canary.phase.and_then(verdict)
            && old.and_then(|c| c.phase) != canary.phase
        {
            let score = canary
                .score
                .map_or("no score".to_owned(), |s| format!("score {s:.1}"));
            let mut h = new(
                Trigger::CanaryVerdict,
                severity,
                format!("canary-verdict/{name}/{verdict}"),
                format!("canary of revision {current}: {verdict} ({score})"),
                revision,
            );
            h.analysis = Some(name.to_owned());
            h.verdict = Some(verdict.to_owned());
            h.score = canary.score;
            h.message = canary.message.clone();
            out.push(h);
        }
    }

    // A revert after the switch (post-promotion analysis, `AfterSwitch` gate)
    // is announced as such, not as an undo.
    let reverted_after_post_promotion = after.abort.as_ref().is_some_and(|a| {
        matches!(
            a.reason,
            AbortReason::PostPromotionAnalysisFailed | AbortReason::GateFailed
        ) && before.abort.as_ref() != Some(a)
    });
    for record in after.history.iter().filter(|r| !before.history.contains(r)) {
        let (hash, time) = (&record.hash, record.time.to_rfc3339());
        match record.outcome {
            Outcome::Promoted => {
                let mut h = new(
                    Trigger::Promoted,
                    Severity::Info,
                    format!("promoted/{hash}/{time}"),
                    format!("traffic switched to revision {hash}"),
                    Some(hash),
                );
                h.score = record.score;
                out.push(h);
            }
            Outcome::RolledBack if !reverted_after_post_promotion => out.push(new(
                Trigger::Undo,
                Severity::Warning,
                format!("undo/{hash}/{time}"),
                format!("traffic switched back to revision {hash}"),
                Some(hash),
            )),
            _ => {}
        }
    }

    if let Some(abort) = &after.abort
        && before.abort.as_ref() != Some(abort)
    {
        let (rev, at) = (&abort.revision, abort.at.to_rfc3339());
        let (trigger, severity, what) = match abort.reason {
            AbortReason::User => (Trigger::Aborted, Severity::Warning, "was aborted"),
            AbortReason::ProgressDeadlineExceeded => (
                Trigger::ProgressDeadlineExceeded,
                Severity::Critical,
                "missed its progress deadline; traffic stays on the stable revision",
            ),
            AbortReason::AnalysisFailed => (
                Trigger::Reverted,
                Severity::Critical,
                "failed its canary analysis; traffic is back on the stable revision",
            ),
            AbortReason::PostPromotionAnalysisFailed => (
                Trigger::Reverted,
                Severity::Critical,
                "failed its post-promotion analysis; traffic is switched back",
            ),
            AbortReason::PrePromotionAnalysisFailed => (
                Trigger::Reverted,
                Severity::Critical,
                "failed its pre-promotion analysis; traffic stays on the stable revision",
            ),
            AbortReason::GateFailed => (Trigger::Reverted, Severity::Critical, "failed a gate"),
        };
        let gate = failed_gate(after, rev);
        let what = match (abort.reason, gate) {
            (AbortReason::GateFailed, Some(g)) => match &g.previous_revision {
                Some(previous) => format!(
                    "failed gate {} after the switch; traffic is switched back to {previous}",
                    g.name
                ),
                None => format!(
                    "failed gate {}; traffic stays on the stable revision",
                    g.name
                ),
            },
            _ => what.to_owned(),
        };
        let mut h = new(
            trigger,
            severity,
            format!("{}/{rev}/{at}", kebab(trigger)),
            format!("revision {rev} {what}"),
            Some(rev),
        );
        h.message = Some(match gate {
            Some(g) => format!(
                "{:?}: gate {}: {}",
                abort.reason,
                g.name,
                g.message.clone().unwrap_or_default()
            ),
            None => format!("{:?}", abort.reason),
        });
        out.push(h);
    }

    if let Some(post) = &after.post_promotion
        && post.phase == PostPromotionPhase::Failed
        && before.post_promotion.as_ref().is_none_or(|p| {
            p.analysis_name != post.analysis_name || p.phase != PostPromotionPhase::Failed
        })
    {
        let name = &post.analysis_name;
        let mut h = new(
            Trigger::PostPromotionFailed,
            Severity::Critical,
            format!("post-promotion-failed/{name}"),
            format!(
                "post-promotion analysis {name} of revision {} failed",
                post.revision
            ),
            Some(&post.revision),
        );
        h.analysis = Some(name.clone());
        h.verdict = Some("Failed".to_owned());
        h.score = post.score;
        h.message = post.message.clone();
        out.push(h);
    }

    // A revision late for its progress deadline without `progressDeadlineAbort`
    // (the default) is not aborted: it goes on once its pods are ready. Its
    // Ready condition says so; once per revision.
    let late = |s: &RolloutStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == READY && c.reason == "ProgressDeadlineExceeded")
            .map(|c| c.message.clone())
    };
    let aborted_late = after
        .abort
        .as_ref()
        .is_some_and(|a| a.reason == AbortReason::ProgressDeadlineExceeded);
    if let Some(message) = late(after)
        && late(before).is_none()
        && !aborted_late
    {
        let since = after
            .revision_started_at
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let mut h = new(
            Trigger::ProgressDeadlineExceeded,
            Severity::Warning,
            format!("progress-deadline-exceeded/{current}/{since}"),
            format!(
                "revision {current} missed its progress deadline; it goes on once its pods are ready"
            ),
            None,
        );
        h.message = Some(message);
        out.push(h);
    }

    let ready = |s: &RolloutStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == READY)
            .map(|c| (c.reason.clone(), c.message.clone()))
    };
    if let Some((reason, message)) = ready(after)
        && ready(before).map(|(r, _)| r) != Some(reason.clone())
    {
        let waiting = match reason.as_str() {
            "OutsidePromotionWindow" => {
                Some((Trigger::PromotionWaiting, "waits for a promotion window"))
            }
            "AwaitingPromotion" | "CanaryMarginal" => {
                Some((Trigger::PausedForPromote, "waits for `redblack promote`"))
            }
            _ => None,
        };
        if let Some((trigger, what)) = waiting {
            let mut h = new(
                trigger,
                Severity::Info,
                format!("{}/{current}/{}", kebab(trigger), short_hash(&message)),
                format!("revision {current} {what}"),
                None,
            );
            h.message = Some(message);
            out.push(h);
        }
    }
    out
}

/// The verdict a canary phase records and its severity (`None`: no verdict).
/// The failed gate of revision `rev` (`status.gates`).
fn failed_gate<'a>(status: &'a RolloutStatus, rev: &str) -> Option<&'a GateStatus> {
    status
        .gates
        .iter()
        .find(|g| g.revision == rev && g.phase == GatePhase::Failed)
}

fn verdict(phase: CanaryPhase) -> Option<(&'static str, Severity)> {
    match phase {
        CanaryPhase::Passed => Some(("Passed", Severity::Info)),
        CanaryPhase::Marginal => Some(("Marginal", Severity::Warning)),
        CanaryPhase::Inconclusive => Some(("Inconclusive", Severity::Warning)),
        CanaryPhase::Error => Some(("Error", Severity::Warning)),
        CanaryPhase::Failed => Some(("Failed", Severity::Critical)),
        CanaryPhase::Progressing | CanaryPhase::Analysing | CanaryPhase::Promoted => None,
    }
}

/// `RolloutStarted` → `rollout-started` (ids and Slack titles).
pub fn kebab(trigger: Trigger) -> String {
    let name = format!("{trigger:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn short_hash(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))[..12].to_owned()
}

#[cfg(test)]
mod tests;
