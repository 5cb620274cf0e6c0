//! What this plan records about analyses, beside the manual operations: the
//! canary and post-promotion status it writes. Decided while deriving the
//! state (`decide.rs`), read by the actions and written by `status::build`.

use crate::api::{
    CanaryStatus, GateAt, GatePhase, GateStatus, PostPromotionPhase, PostPromotionStatus,
    PrePromotionStatus, RolloutStatus,
};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    pub canary: Option<CanaryStatus>,
    pub post_promotion: Option<PostPromotionStatus>,
    pub last_score: Option<f64>,
    /// The gates of the current revision (`gates::verdict`).
    pub gates: Vec<GateStatus>,
    pub pre_promotion: Option<PrePromotionStatus>,
}

impl Records {
    pub fn from_status(old: &RolloutStatus) -> Records {
        Records {
            canary: old.canary.clone(),
            post_promotion: old.post_promotion.clone(),
            last_score: old.last_score,
            gates: old.gates.clone(),
            pre_promotion: old.pre_promotion.clone(),
        }
    }

    /// The previous fleet while the post-promotion analysis or an
    /// `AfterSwitch` gate of `target` runs: it stays warm until the verdict.
    pub fn protected(&self, target: &str) -> Option<String> {
        self.post_promotion
            .as_ref()
            .filter(|p| p.phase == PostPromotionPhase::Running && p.revision == target)
            .map(|p| p.previous_revision.clone())
            .or_else(|| {
                self.gates
                    .iter()
                    .filter(|g| g.at == GateAt::AfterSwitch && g.revision == target)
                    .filter(|g| g.phase == GatePhase::Running)
                    .find_map(|g| g.previous_revision.clone())
            })
    }
}
