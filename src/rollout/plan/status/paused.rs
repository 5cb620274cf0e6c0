//! The `Paused` condition of a Rollout that waits for a person: every phase
//! `Paused` carries one, with a reason saying which gate holds it —
//! `SpecPaused` (set in `phase::common`), `AwaitingPromotion`,
//! `PromotionWindowClosed`, `CanaryMarginal`, `CanaryInconclusive` — so that
//! `kubectl wait --for=condition=Paused` returns at any of them (Argo Rollouts
//! sets the same condition).

use crate::api::conditions::{self, Desired};
use crate::api::{ConditionStatus, Phase};

/// Reasons of the `Paused` condition besides `SpecPaused` (common()): which
/// person-gate the Rollout waits at, so `kubectl wait --for=condition=Paused`
/// returns at any of them.
pub(crate) const AWAITING_PROMOTION: &str = "AwaitingPromotion";
pub(crate) const PROMOTION_WINDOW_CLOSED: &str = "PromotionWindowClosed";

/// Phase `Paused` with its `Paused` condition (True, `reason`): every phase
/// `Paused` carries one, whichever gate holds it.
pub(crate) fn waits_for_a_person(
    reason: &str,
    msg: impl Into<String>,
    d: &mut Vec<Desired>,
) -> Phase {
    if !d.iter().any(|c| c.type_ == conditions::PAUSED) {
        d.push(Desired::new(
            conditions::PAUSED,
            ConditionStatus::True,
            reason,
            msg,
        ));
    }
    Phase::Paused
}
