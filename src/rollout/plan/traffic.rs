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
//!   selector would select them too), which `fleets::retire` ensures by scaling
//!   earlier warm fleets down during a canary.
//!
//! Traffic flows only while both canary fleets are fully available and the
//! analysis of the current attempt is observed: a share to an unready fleet,
//! or to a canary nobody judges, is always 0.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServicePort;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::action::Action;
use super::builder::Builder;
use super::ctx::Ctx;
use super::names::{
    BASELINE, CANARY, analysis_name, base_selector, baseline_name, canary_name, role_selector,
    role_service_name, role_template, service_selector,
};
use super::observed::RouteBackend;
use super::state::{CanaryStep, Decision, State};
use crate::api::{CanaryPhase, CanaryStatus, DEFAULT_TRAFFIC_PERCENT};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// Leave traffic as it is (paused, Service missing, or a switch that
    /// rewrites the selector anyway).
    Leave,
    /// Everything on the stable revision.
    Off,
    /// The canary's share on.
    On,
}

/// The configured share of the canary (and of the baseline) with a route.
fn configured_percent(ctx: &Ctx) -> i32 {
    ctx.canary()
        .and_then(|c| c.traffic_percent)
        .unwrap_or(DEFAULT_TRAFFIC_PERCENT)
}

/// What the decided state wants of the canary's traffic.
fn want(ctx: &Ctx, decision: &Decision) -> Want {
    let (world, records) = (ctx.world, &decision.records);
    // Traffic only to a canary whose analysis exists (observed in the cache):
    // the plan that creates the analysis leaves traffic off, the next one
    // (woken by the analysis' watch event) turns it on. A canary that already
    // has traffic keeps it while the next attempt's analysis is created
    // (an extension or a retry after Marginal) if the previous one exists.
    let flowing = |c: &CanaryStatus| {
        c.analysis_start.is_some()
            && world.canary_can_flow(ctx.rollout, c)
            && (analysis_observed(ctx, c, c.attempt)
                || (traffic_on_now(ctx) && analysis_observed(ctx, c, c.attempt - 1)))
    };
    match &decision.state {
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

/// The analysis of `attempt` of canary `c` is observed.
fn analysis_observed(ctx: &Ctx, c: &CanaryStatus, attempt: i32) -> bool {
    let revision = c.revision.as_deref().unwrap_or_default();
    attempt >= 1
        && ctx
            .world
            .analysis(&analysis_name(ctx.rollout, revision, attempt))
            .is_some()
}

/// The canary has a share of traffic now (before this plan).
fn traffic_on_now(ctx: &Ctx) -> bool {
    let (rollout, world) = (ctx.rollout, ctx.world);
    if !ctx.by_replicas() {
        let roles = [
            role_service_name(rollout, CANARY),
            role_service_name(rollout, BASELINE),
        ];
        return world.route.as_ref().is_some_and(|r| {
            r.backends
                .iter()
                .any(|b| b.weight > 0 && roles.contains(&b.service))
        });
    }
    world.wide
}

/// Emits the traffic writes the decision wants. `plan()` runs this before the
/// fleets' actions, so traffic leaves the canary before its fleets are deleted.
pub fn act(ctx: &Ctx, decision: &Decision, out: &mut Builder) {
    let want = want(ctx, decision);
    match ctx.rollout.spec.http_route_name() {
        Some(route) => by_route(ctx, decision, route, want, out),
        None => by_selector(ctx, &decision.state, want, out),
    }
}

/// Replica counts: widen or narrow the active Service's selector.
fn by_selector(ctx: &Ctx, state: &State, want: Want, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
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
                selector: base_selector(rollout),
            });
            out.normal(
                "CanaryTrafficOn",
                format!("Service {service} selects stable, canary and baseline pods (share by ready replicas)"),
            );
        }
        Want::Off if world.wide && !switching => {
            out.actions.push(Action::SwitchService {
                service: service.clone(),
                selector: service_selector(rollout, &stable),
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

fn desired_backends(ctx: &Ctx, want: Want) -> Vec<RouteBackend> {
    let rollout = ctx.rollout;
    let port = ctx.world.active_port();
    let active = rollout.spec.strategy.red_black.active_service.clone();
    let backend = |service: String, weight: i32| RouteBackend {
        service,
        port,
        weight,
    };
    if want != Want::On {
        return vec![backend(active, 100)];
    }
    let p = configured_percent(ctx);
    let baseline = ctx.canary().is_some_and(|c| c.baseline);
    let mut backends = vec![
        backend(active, 100 - p - if baseline { p } else { 0 }),
        backend(role_service_name(rollout, CANARY), p),
    ];
    if baseline {
        backends.push(backend(role_service_name(rollout, BASELINE), p));
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

/// HTTPRoute: the role Services while judging, and the route's weights.
fn by_route(ctx: &Ctx, decision: &Decision, route: &str, want: Want, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
    if let (State::Canary(_), Some(c)) = (&decision.state, &decision.records.canary) {
        ensure_role_services(ctx, c, out);
    }
    let (Some(observed), true) = (&world.route, want != Want::Leave) else {
        return;
    };
    let desired = desired_backends(ctx, want);
    let roles = [
        role_service_name(rollout, CANARY),
        role_service_name(rollout, BASELINE),
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
        configured_percent(ctx)
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

fn ensure_role_services(ctx: &Ctx, c: &CanaryStatus, out: &mut Builder) {
    let (rollout, world) = (ctx.rollout, ctx.world);
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
    for fleet in world.canary_fleets(rollout, c) {
        let Some(base) = fleet.template else { continue };
        let role = fleet.role;
        let (_, hash) = role_template(&base, role);
        let selector = role_selector(rollout, role, &hash);
        let name = role_service_name(rollout, role);
        let current = world.role_service(&name).and_then(|s| s.spec.as_ref());
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
pub fn share_after(ctx: &Ctx, decision: &Decision) -> i32 {
    let (rollout, world) = (ctx.rollout, ctx.world);
    match want(ctx, decision) {
        Want::Off => 0,
        Want::On if !ctx.by_replicas() => configured_percent(ctx),
        Want::On => ratio(ctx, decision),
        Want::Leave => match &world.route {
            Some(route) if !ctx.by_replicas() => {
                let canary = role_service_name(rollout, CANARY);
                split(&route.backends)
                    .get(&canary)
                    .and_then(|p| i32::try_from(*p).ok())
                    .unwrap_or(0)
            }
            _ if world.wide => ratio(ctx, decision),
            _ => 0,
        },
    }
}

/// Ready canary pods over ready pods behind the widened selector.
fn ratio(ctx: &Ctx, decision: &Decision) -> i32 {
    let (rollout, world) = (ctx.rollout, ctx.world);
    let Some(c) = &decision.records.canary else {
        return 0;
    };
    let ready = |name: &str| world.role_set(name).map_or(0, |f| f.ready);
    let revision = c.revision.clone().unwrap_or_default();
    let canary = ready(&canary_name(rollout, &revision));
    let baseline = c
        .stable_revision
        .as_ref()
        .map_or(0, |s| ready(&baseline_name(rollout, s)));
    let stable = world.active().map_or(0, |f| f.ready);
    let total = canary + baseline + stable;
    if total == 0 { 0 } else { canary * 100 / total }
}
