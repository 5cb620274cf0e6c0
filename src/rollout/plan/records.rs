//! What this plan records about analyses, beside the manual operations: the
//! canary and post-promotion status it writes. Decided while deriving the
//! state, written by `status::build`.

use crate::api::{CanaryStatus, PostPromotionStatus, RolloutStatus};

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
}
