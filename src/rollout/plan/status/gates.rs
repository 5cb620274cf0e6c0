//! The conditions of a revision held at a gate (or at its pre-promotion
//! analysis), and of one a gate failed: the reason and message name the gate.

use super::super::builder::Builder;
use super::super::records::Records;
use super::super::state::GateHold;
use crate::api::conditions::{self, Desired};
use crate::api::{ConditionStatus, GatePhase, Phase, PostPromotionPhase};

/// Condition reason while a gate runs (Progressing, Ready False, Reconciling).
pub const GATE_RUNNING: &str = "GateRunning";
/// Condition reason once a gate failed (Ready False, Stalled True).
pub const GATE_FAILED: &str = "GateFailed";
pub const PRE_PROMOTION_FAILED: &str = "PrePromotionAnalysisFailed";

/// Phase Progressing: `hold` runs, nothing moves until it passes. `live`:
/// an `AfterSwitch` gate judges the live revision, the previous fleet warm.
pub(super) fn held(
    hold: &GateHold,
    live: bool,
    what: &str,
    d: &mut Vec<Desired>,
    out: &mut Builder,
) -> Phase {
    out.wakeups.push(hold.wake_at);
    let latest = hold
        .message
        .as_ref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    let msg = if live {
        format!(
            "{what} is live and waits for {}{latest}; the previous fleet is kept warm until it passes, and gets the traffic back if it fails",
            hold.what
        )
    } else {
        format!(
            "{what} waits for {}{latest}; no traffic moves until it passes",
            hold.what
        )
    };
    d.push(Desired::new(
        conditions::PROGRESSING,
        ConditionStatus::True,
        GATE_RUNNING,
        msg.clone(),
    ));
    d.push(Desired::new(
        conditions::READY,
        ConditionStatus::False,
        GATE_RUNNING,
        msg.clone(),
    ));
    d.push(Desired::new(
        conditions::RECONCILING,
        ConditionStatus::True,
        GATE_RUNNING,
        msg,
    ));
    Phase::Progressing
}

/// The reason and message of an abort a gate or the pre-promotion analysis
/// of `revision` caused (None: the canary's analysis did).
pub(super) fn failed(
    records: &Records,
    revision: &str,
    what: &str,
) -> Option<(&'static str, String)> {
    if let Some(g) = records
        .gates
        .iter()
        .find(|g| g.revision == revision && g.phase == GatePhase::Failed)
    {
        let logs = g
            .logs
            .as_ref()
            .map(|l| format!("; logs: `{l}`"))
            .unwrap_or_default();
        let traffic = match &g.previous_revision {
            Some(previous) => {
                format!("after the switch; traffic goes back to {previous} while its fleet is warm")
            }
            None => "traffic stays on the stable revision".to_owned(),
        };
        return Some((
            GATE_FAILED,
            format!(
                "gate {} failed for {what}: {}{logs}; {traffic}; retry or apply a new template",
                g.name,
                g.message.clone().unwrap_or_default()
            ),
        ));
    }
    let pre = records
        .pre_promotion
        .as_ref()
        .filter(|p| p.revision == revision && p.phase == PostPromotionPhase::Failed)?;
    let score = pre.score.map_or("none".to_owned(), |s| format!("{s:.1}"));
    Some((
        PRE_PROMOTION_FAILED,
        format!(
            "{what} failed its pre-promotion analysis {} (score {score}); traffic stays on the stable revision; see `redblack report {}`; retry or apply a new template",
            pre.analysis_name, pre.analysis_name
        ),
    ))
}
