//! The canary's share of traffic. Two ways, chosen by `trafficRouting`:
//!
//! * HTTPRoute: the route's backends are the active Service (stable),
//!   `<rollout>-canary` and `<rollout>-baseline`, weighted `100 − 2p`, `p`, `p`
//!   (`p` = `trafficPercent`, `100 − p`, `p` without a baseline). Off = the
//!   active Service alone at 100. The final switch is then still ONE write:
//!   the active Service's selector, which the route's stable backend follows.
//! * Replica counts: the active Service's selector is widened to `matchLabels`
//!   (selecting stable, canary and baseline pods, whose share follows their
//!   ready pods) and narrowed back to `matchLabels` + stable hash to end it —
//!   each ONE write. Widening waits until no other fleet has pods (the wide
//!   selector would select them too), which the fleets plan ensures by scaling
//!   earlier warm fleets down during a canary.
//!
//! Traffic flows only while both canary fleets are fully available: a share
//! to an unready fleet is always 0.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::canary::{self, BASELINE, CANARY};
use super::records::Records;
use super::state::{CanaryStep, State};
use super::world::World;
use super::{Action, Builder, RouteBackend, fleets};
use crate::api::{
    CanaryPhase, CanaryStatus, DEFAULT_TRAFFIC_PERCENT, POD_TEMPLATE_HASH_LABEL, ROLE_LABEL,
    Rollout,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Want {
    /// Leave traffic as it is (paused, Service missing, or a switch that
    /// rewrites the selector anyway).
    Leave,
    /// Everything on the stable revision.
    Off,
    /// The canary's share on.
    On,
}

/// The configured share of the canary (and of the baseline) with a route.
pub fn configured_percent(rollout: &Rollout) -> i32 {
    canary::config(rollout)
        .and_then(|c| c.traffic_percent)
        .unwrap_or(DEFAULT_TRAFFIC_PERCENT)
}

/// Traffic can be given to the canary now: both fleets fully available and
/// the mechanism ready (route observed; or no other fleet with pods).
pub fn can_flow(rollout: &Rollout, world: &World, c: &CanaryStatus) -> bool {
    if !canary::fleets_ready(rollout, world, c) {
        return false;
    }
    if rollout.spec.http_route_name().is_some() {
        return world.route.is_some();
    }
    let stable = c.stable_revision.as_deref();
    world
        .fleets
        .values()
        .filter(|f| Some(f.hash.as_str()) != stable)
        .all(|f| f.size == 0 && f.pods == 0)
}

pub fn want(rollout: &Rollout, world: &World, state: &State, records: &Records) -> Want {
    let flowing = |c: &CanaryStatus| c.analysis_start.is_some() && can_flow(rollout, world, c);
    match state {
        State::InvalidSpec => Want::Leave,
        // Paused (or the Service gone): a judged canary keeps its share while
        // its fleets stay ready; otherwise it loses it.
        State::Paused | State::ServiceMissing => match &records.canary {
            Some(c)
                if c.revision.as_deref() == Some(world.target_hash.as_str())
                    && matches!(
                        c.phase,
                        Some(CanaryPhase::Analysing | CanaryPhase::Marginal)
                    ) =>
            {
                if flowing(c) {
                    Want::On
                } else {
                    Want::Off
                }
            }
            _ => Want::Off,
        },
        State::Canary(CanaryStep::Analysing | CanaryStep::Held(CanaryPhase::Marginal)) => {
            match &records.canary {
                Some(c) if flowing(c) => Want::On,
                _ => Want::Off,
            }
        }
        _ => Want::Off,
    }
}

/// True when the replica-count scheme is used (no route configured).
pub fn by_replicas(rollout: &Rollout) -> bool {
    rollout.spec.http_route_name().is_none()
}

/// Emits the traffic writes for `want`. Runs before the fleets' actions, so
/// traffic leaves the canary before its fleets are deleted.
pub fn plan(rollout: &Rollout, world: &World, state: &State, records: &Records, out: &mut Builder) {
    let want = want(rollout, world, state, records);
    match rollout.spec.http_route_name() {
        Some(route) => plan_route(rollout, world, state, records, route, want, out),
        None => plan_selector(rollout, world, state, want, out),
    }
}

fn plan_selector(rollout: &Rollout, world: &World, state: &State, want: Want, out: &mut Builder) {
    let Some(stable) = world.active_hash.clone() else {
        return;
    };
    let service = rollout.spec.strategy.red_black.active_service.clone();
    let switching = matches!(state, State::Switch { .. } | State::Revert { .. });
    match want {
        Want::On if !world.wide => {
            out.actions.push(Action::SwitchService {
                service: service.clone(),
                hash: stable,
                selector: rollout
                    .spec
                    .selector
                    .match_labels
                    .clone()
                    .unwrap_or_default(),
            });
            out.normal(
                "CanaryTrafficOn",
                format!("Service {service} selects stable, canary and baseline pods (share by ready replicas)"),
            );
        }
        Want::Off if world.wide && !switching => {
            out.actions.push(Action::SwitchService {
                service: service.clone(),
                selector: fleets::service_selector(rollout, &stable),
                hash: stable.clone(),
            });
            out.normal(
                "CanaryTrafficOff",
                format!("Service {service} selects only the stable revision {stable} again"),
            );
        }
        _ => {}
    }
}

fn active_port(world: &World) -> Option<i32> {
    world
        .active_service
        .as_ref()?
        .spec
        .as_ref()?
        .ports
        .as_ref()?
        .first()
        .map(|p| p.port)
}

fn desired_backends(rollout: &Rollout, world: &World, want: Want) -> Vec<RouteBackend> {
    let port = active_port(world);
    let active = rollout.spec.strategy.red_black.active_service.clone();
    let backend = |service: String, weight: i32| RouteBackend {
        service,
        port,
        weight,
    };
    if want != Want::On {
        return vec![backend(active, 100)];
    }
    let p = configured_percent(rollout);
    let baseline = canary::config(rollout).is_some_and(|c| c.baseline);
    let mut backends = vec![
        backend(active, 100 - p - if baseline { p } else { 0 }),
        backend(canary::role_service_name(rollout, CANARY), p),
    ];
    if baseline {
        backends.push(backend(canary::role_service_name(rollout, BASELINE), p));
    }
    backends
}

/// Percent per service (non-zero only): two backend lists that split the
/// same way are equal, whatever their absolute weights or order.
fn split(backends: &[RouteBackend]) -> BTreeMap<String, i64> {
    let total: i64 = backends.iter().map(|b| i64::from(b.weight.max(0))).sum();
    backends
        .iter()
        .filter(|b| b.weight > 0 && total > 0)
        .map(|b| (b.service.clone(), i64::from(b.weight) * 100 / total))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn plan_route(
    rollout: &Rollout,
    world: &World,
    state: &State,
    records: &Records,
    route: &str,
    want: Want,
    out: &mut Builder,
) {
    if let (State::Canary(_), Some(c)) = (state, &records.canary) {
        ensure_role_services(rollout, world, c, out);
    }
    let (Some(observed), true) = (&world.route, want != Want::Leave) else {
        return;
    };
    let desired = desired_backends(rollout, world, want);
    let roles = [
        canary::role_service_name(rollout, CANARY),
        canary::role_service_name(rollout, BASELINE),
    ];
    let to_roles = observed
        .backends
        .iter()
        .any(|b| b.weight > 0 && roles.contains(&b.service));
    // Off only takes weight away from our role Services: outside a canary the
    // user's own backends are left alone.
    let needed = match want {
        Want::On => split(&observed.backends) != split(&desired),
        _ => to_roles,
    };
    if !needed {
        return;
    }
    let share = if want == Want::On {
        configured_percent(rollout)
    } else {
        0
    };
    out.actions.push(Action::SetRouteWeights {
        route: route.to_owned(),
        backends: desired,
    });
    out.normal(
        if want == Want::On {
            "CanaryTrafficOn"
        } else {
            "CanaryTrafficOff"
        },
        format!("HTTPRoute {route}: canary {share}%, the rest on the stable revision"),
    );
}

fn ensure_role_services(rollout: &Rollout, world: &World, c: &CanaryStatus, out: &mut Builder) {
    // Role Services are ClusterIP: a NodePort active Service's nodePorts must
    // not be copied (they are unique cluster-wide).
    let ports: Vec<ServicePort> = world
        .active_service
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| ServicePort {
            node_port: None,
            ..p
        })
        .collect();
    for (_, role, base) in canary::wanted(rollout, world, c) {
        let Some(base) = base else { continue };
        let (_, hash) = canary::role_template(&base, role);
        let mut selector = rollout
            .spec
            .selector
            .match_labels
            .clone()
            .unwrap_or_default();
        selector.insert(ROLE_LABEL.to_owned(), role.to_owned());
        selector.insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash);
        let name = canary::role_service_name(rollout, role);
        let current = world
            .role_services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(|s| s.spec.as_ref());
        let same = current.is_some_and(|s| {
            s.selector.as_ref() == Some(&selector)
                && port_keys(&s.ports.clone().unwrap_or_default()) == port_keys(&ports)
        });
        if !same {
            out.actions.push(Action::EnsureRoleService {
                name,
                role: role.to_owned(),
                selector,
                ports: ports.clone(),
            });
        }
    }
}

/// What identifies a Service port, with the API server's defaults applied
/// (protocol TCP, targetPort = port), so a stored Service compares equal to
/// the one we asked for.
fn port_keys(ports: &[ServicePort]) -> Vec<(Option<String>, i32, String, String)> {
    ports
        .iter()
        .map(|p| {
            let target = match &p.target_port {
                Some(IntOrString::Int(i)) => i.to_string(),
                Some(IntOrString::String(s)) => s.clone(),
                None => p.port.to_string(),
            };
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".to_owned());
            (p.name.clone(), p.port, target, protocol)
        })
        .collect()
}

/// The canary's share once this plan is applied, for `status.canary.trafficPercent`.
pub fn share_after(rollout: &Rollout, world: &World, state: &State, records: &Records) -> i32 {
    match want(rollout, world, state, records) {
        Want::Off => 0,
        Want::On if !by_replicas(rollout) => configured_percent(rollout),
        Want::On => ratio(rollout, world, records),
        Want::Leave => match &world.route {
            Some(route) if !by_replicas(rollout) => {
                let canary = canary::role_service_name(rollout, CANARY);
                split(&route.backends)
                    .get(&canary)
                    .and_then(|p| i32::try_from(*p).ok())
                    .unwrap_or(0)
            }
            _ if world.wide => ratio(rollout, world, records),
            _ => 0,
        },
    }
}

/// Ready canary pods over ready pods behind the widened selector.
fn ratio(rollout: &Rollout, world: &World, records: &Records) -> i32 {
    let Some(c) = &records.canary else { return 0 };
    let ready = |name: &str| world.role_set(name).map_or(0, |f| f.ready);
    let revision = c.revision.clone().unwrap_or_default();
    let canary = ready(&canary::canary_name(rollout, &revision));
    let baseline = c
        .stable_revision
        .as_ref()
        .map_or(0, |s| ready(&canary::baseline_name(rollout, s)));
    let stable = world.active().map_or(0, |f| f.ready);
    let total = canary + baseline + stable;
    if total == 0 { 0 } else { canary * 100 / total }
}
