//! `${name}` in a gate's URL, Job args, command and env values, filled by
//! the operator: where the new revision's fleet answers, and what it is.

use std::collections::BTreeMap;

use crate::api::Rollout;

use super::super::names::{CANARY, replica_set_name, role_service_name};

/// The variables of a gate judging revision `hash` of `rollout`.
pub fn variables(rollout: &Rollout, hash: &str) -> BTreeMap<&'static str, String> {
    let rb = &rollout.spec.strategy.red_black;
    let mut vars = BTreeMap::from([
        ("rollout", rollout.metadata.name.clone().unwrap_or_default()),
        (
            "namespace",
            rollout.metadata.namespace.clone().unwrap_or_default(),
        ),
        ("revision", hash.to_owned()),
        ("replicaSet", replica_set_name(rollout, hash)),
        ("activeService", rb.active_service.clone()),
        ("canaryService", role_service_name(rollout, CANARY)),
    ]);
    // Without a preview Service `${previewService}` stays as written: the
    // gate then fails on its URL, not against the live fleet by mistake.
    if let Some(preview) = &rb.preview_service {
        vars.insert("previewService", preview.clone());
    }
    vars
}

/// `text` with every `${name}` of `vars` replaced; unknown names are kept
/// as written (a shell variable in a script must survive).
pub fn render(text: &str, vars: &BTreeMap<&'static str, String>) -> String {
    let mut out = text.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::rollout::plan::gates::render::*;

    #[test]
    fn known_names_are_filled_and_unknown_ones_kept() {
        let vars = BTreeMap::from([("previewService", "web-preview".to_owned())]);
        assert_eq!(
            render("http://${previewService}:80/${path} $HOME", &vars),
            "http://web-preview:80/${path} $HOME"
        );
    }
}
