//! The input of one plan, in one value: the Rollout, the status it had, the
//! observed world and the clock. Every step reads it; none changes it.

use chrono::{DateTime, Utc};

use super::world::World;
use crate::api::{CanaryStrategy, Rollout, RolloutSpec, RolloutStatus};

#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub rollout: &'a Rollout,
    /// The stored status (default when none was written yet).
    pub old: &'a RolloutStatus,
    pub world: &'a World,
    /// Truncated to seconds, as stored timestamps are.
    pub now: DateTime<Utc>,
}

impl<'a> Ctx<'a> {
    pub fn spec(&self) -> &'a RolloutSpec {
        &self.rollout.spec
    }

    /// The pod-template hash of `spec.template`: the current revision.
    pub fn target(&self) -> &'a str {
        self.world.target_hash.as_str()
    }

    /// `spec.strategy.redBlack.canary`, when a canary gates promotions.
    pub fn canary(&self) -> Option<&'a CanaryStrategy> {
        self.rollout.spec.strategy.red_black.canary.as_ref()
    }

    /// True when a canary's share is given by replica counts (no route).
    pub fn by_replicas(&self) -> bool {
        self.rollout.spec.http_route_name().is_none()
    }
}
