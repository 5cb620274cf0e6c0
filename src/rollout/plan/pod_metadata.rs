//! Step of `act`: `activeMetadata` / `previewMetadata` on the revision
//! fleets (src/api/pod_metadata.rs says what they are). Runs after the
//! switch and preview steps, so the live fleet is the one the active Service
//! selects after this plan's writes: a switch moves the metadata in the same
//! reconcile. The live fleet gets the active metadata, the current
//! revision's fleet (while it is not live) the preview metadata, every other
//! fleet with pods loses both. The first deploy's fleet is treated as live.

use std::collections::BTreeMap;

use super::action::Action;
use super::builder::Builder;
use super::ctx::Ctx;
use super::names::service_selector;
use crate::api::pod_metadata::{PodMetadata, diff};

/// The active Service's revision once this plan's actions are written.
fn live_after<'a>(ctx: &'a Ctx, out: &'a Builder) -> Option<&'a str> {
    let active_service = &ctx.spec().strategy.red_black.active_service;
    out.actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::SwitchService { service, hash, .. } if service == active_service => {
                Some(hash.as_str())
            }
            _ => None,
        })
        .or(ctx.world.active_hash.as_deref())
}

/// The metadata the fleet of `hash` should carry when `live` is live (None:
/// nothing is live yet, a first deploy).
pub fn wanted<'a>(ctx: &'a Ctx, hash: &str, live: Option<&str>) -> Option<&'a PodMetadata> {
    let rb = &ctx.spec().strategy.red_black;
    let live = live.unwrap_or(ctx.world.target_hash.as_str());
    if hash == live {
        rb.active_metadata.as_ref()
    } else if hash == ctx.world.target_hash {
        rb.preview_metadata.as_ref()
    } else {
        None
    }
}

pub fn act(ctx: &Ctx, out: &mut Builder) {
    let rb = &ctx.spec().strategy.red_black;
    let roles: Vec<&PodMetadata> = [&rb.active_metadata, &rb.preview_metadata]
        .into_iter()
        .flatten()
        .collect();
    if roles.is_empty() {
        return;
    }
    let managed_labels: Vec<&String> = roles.iter().flat_map(|m| m.labels.keys()).collect();
    let managed_annotations: Vec<&String> =
        roles.iter().flat_map(|m| m.annotations.keys()).collect();
    let live = live_after(ctx, out).map(str::to_owned);
    let empty = PodMetadata::default();
    let mut actions = Vec::new();
    for fleet in ctx.world.fleets.values() {
        if fleet.role.is_some() || (fleet.size == 0 && fleet.pods == 0) {
            continue;
        }
        let want = wanted(ctx, &fleet.hash, live.as_deref()).unwrap_or(&empty);
        let meta = fleet.template.as_ref().and_then(|t| t.metadata.as_ref());
        let current_labels = meta.and_then(|m| m.labels.clone()).unwrap_or_default();
        let current_annotations: BTreeMap<String, String> =
            meta.and_then(|m| m.annotations.clone()).unwrap_or_default();
        let labels = diff(
            &current_labels,
            &want.labels,
            managed_labels.iter().copied(),
        );
        let annotations = diff(
            &current_annotations,
            &want.annotations,
            managed_annotations.iter().copied(),
        );
        if labels.is_empty() && annotations.is_empty() {
            continue;
        }
        actions.push(Action::SetPodMetadata {
            name: fleet.name.clone(),
            selector: service_selector(ctx.rollout, &fleet.hash),
            labels,
            annotations,
        });
    }
    for action in actions {
        if let Action::SetPodMetadata { name, .. } = &action {
            out.normal(
                "PodMetadataUpdated",
                format!("set activeMetadata/previewMetadata on ReplicaSet {name} and its pods"),
            );
        }
        out.actions.push(action);
    }
}
