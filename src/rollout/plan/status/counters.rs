//! Counters and selectors of the status (what `kubectl get` and the scale
//! subresource read).

use super::super::ctx::Ctx;
use super::super::names::{base_selector, selector_string, service_selector};
use crate::api::RolloutStatus;

/// Counters and selectors describe the fleet the active Service selects, so an
/// HPA driving the scale subresource sees one fleet, not old + new.
pub(super) fn fill(ctx: &Ctx, active: Option<&str>, status: &mut RolloutStatus) {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let fleet = active.and_then(|h| world.fleets.get(h));
    status.replicas = fleet.map_or(0, |f| f.pods);
    status.ready_replicas = fleet.map_or(0, |f| f.ready);
    status.available_replicas = fleet.map_or(0, |f| f.available);
    status.updated_replicas = world.target().map_or(0, |f| f.pods);
    let labels = match active {
        Some(hash) => service_selector(rollout, hash),
        None => base_selector(rollout),
    };
    status.selector = Some(selector_string(&labels));
    status.active_selector = active.map(|h| selector_string(&service_selector(rollout, h)));
}
