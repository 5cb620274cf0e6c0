//! What this plan records about analyses, beside the manual operations: the
//! canary and post-promotion status it writes. Decided while deriving the
//! state (`decide.rs`), read by the actions and written by `status::build`.

use crate::api::{CanaryStatus, PostPromotionPhase, PostPromotionStatus, RolloutStatus};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Records {
    pub canary: Option<CanaryStatus>,
    pub post_promotion: Option<PostPromotionStatus>,
    pub last_score: Option<f64>,
}

impl Records {
    pub fn from_status(old: &RolloutStatus) -> Records {
        Records {
            canary: old.canary.clone(),
            post_promotion: old.post_promotion.clone(),
            last_score: old.last_score,
        }
    }

    /// The previous fleet while the post-promotion analysis of `target` runs:
    /// it stays warm until the verdict.
    pub fn protected(&self, target: &str) -> Option<String> {
        self.post_promotion
            .as_ref()
            .filter(|p| p.phase == PostPromotionPhase::Running && p.revision == target)
            .map(|p| p.previous_revision.clone())
    }
}
