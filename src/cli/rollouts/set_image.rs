//! `redblack set image NAME CONTAINER=IMAGE...` (Argo Rollouts' verb): a new
//! revision with other images, written as a server-side apply of just those
//! images. The CRD keys the template's container lists by `name`, so the
//! apply merges into the named containers and the field manager
//! `redblack-cli` owns only their `image` — every other field keeps its owner.
//!
//! Forced, like `kubectl set image`: the verb exists to override what the
//! manifest says (a GitOps tool that applies its manifest afterwards takes the
//! field back with its own forced apply, or conflicts without one, which is
//! server-side apply's way of saying two writers disagree).

use std::collections::BTreeMap;

use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::ops::CLI_FIELD_MANAGER;
use super::{VerbError, rollout_err};
use crate::api::Rollout;

/// The container name that means "every container" (Argo Rollouts' `*=IMAGE`).
pub const ALL_CONTAINERS: &str = "*";

/// Parses `CONTAINER=IMAGE` pairs: each names one container once, neither
/// side empty; `*=IMAGE` (every container) stands alone, since mixing it with
/// named pairs would leave which image wins to argument order. Pure, for the
/// table test.
pub fn parse_images(pairs: &[String]) -> Result<BTreeMap<String, String>, String> {
    if pairs.is_empty() {
        return Err("give at least one CONTAINER=IMAGE".to_owned());
    }
    let mut images = BTreeMap::new();
    for pair in pairs {
        let Some((container, image)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not CONTAINER=IMAGE"));
        };
        if container.is_empty() || image.is_empty() {
            return Err(format!("{pair:?} is not CONTAINER=IMAGE (an empty side)"));
        }
        if images
            .insert(container.to_owned(), image.to_owned())
            .is_some()
        {
            return Err(format!("container {container:?} is named twice"));
        }
    }
    if images.contains_key(ALL_CONTAINERS) && images.len() > 1 {
        return Err(format!(
            "{ALL_CONTAINERS}=IMAGE sets every container; give it alone"
        ));
    }
    Ok(images)
}

/// Which list of the template holds each container of `images`; an error
/// naming the template's containers when one is not there (an apply would
/// add it as a new, image-only container). `*` is every container of both
/// lists (as Argo's `set image ROLLOUT '*=IMAGE'`).
pub fn locate(
    rollout: &Rollout,
    images: &BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, Vec<Value>>, String> {
    let spec = rollout.spec.template.spec.clone().unwrap_or_default();
    let lists: [(&'static str, Vec<String>); 2] = [
        (
            "containers",
            spec.containers.iter().map(|c| c.name.clone()).collect(),
        ),
        (
            "initContainers",
            spec.init_containers
                .unwrap_or_default()
                .iter()
                .map(|c| c.name.clone())
                .collect(),
        ),
    ];
    let mut out: BTreeMap<&'static str, Vec<Value>> = BTreeMap::new();
    if let Some(image) = images.get(ALL_CONTAINERS) {
        for (list, names) in &lists {
            for container in names {
                out.entry(list)
                    .or_default()
                    .push(json!({"name": container, "image": image}));
            }
        }
        return Ok(out);
    }
    for (container, image) in images {
        let Some((list, _)) = lists.iter().find(|(_, names)| names.contains(container)) else {
            let known: Vec<&str> = lists
                .iter()
                .flat_map(|(_, names)| names.iter().map(String::as_str))
                .collect();
            return Err(format!(
                "Rollout {} has no container {container:?} (its containers: {})",
                rollout.metadata.name.as_deref().unwrap_or_default(),
                known.join(", ")
            ));
        };
        out.entry(list)
            .or_default()
            .push(json!({"name": container, "image": image}));
    }
    Ok(out)
}

/// The apply configuration: only the images, under their containers' names.
pub fn apply_body(name: &str, lists: BTreeMap<&'static str, Vec<Value>>) -> Value {
    let spec: serde_json::Map<String, Value> = lists
        .into_iter()
        .map(|(list, items)| (list.to_owned(), Value::Array(items)))
        .collect();
    json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {"template": {"spec": spec}}
    })
}

/// `redblack set image NAME CONTAINER=IMAGE...`.
pub async fn set_image(
    client: &Client,
    ns: &str,
    name: &str,
    pairs: &[String],
) -> Result<String, VerbError> {
    let images = parse_images(pairs).map_err(VerbError::Refused)?;
    let api: Api<Rollout> = Api::namespaced(client.clone(), ns);
    let rollout = api
        .get(name)
        .await
        .map_err(rollout_err(ns, name, "reading"))?;
    if let Some(reference) = &rollout.spec.workload_ref {
        return Err(VerbError::Refused(format!(
            "rollout {ns}/{name} takes its template from Deployment {0} (workloadRef): set the image there (kubectl set image deployment/{0} ...)",
            reference.name
        )));
    }
    let lists = locate(&rollout, &images).map_err(VerbError::Refused)?;
    let params = PatchParams::apply(CLI_FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(apply_body(name, lists)))
        .await
        .map_err(rollout_err(ns, name, "setting images of"))?;
    let said: Vec<String> = images.iter().map(|(c, i)| format!("{c}={i}")).collect();
    Ok(format!(
        "rollout {ns}/{name}: image set ({}); the new revision rolls out as its spec says\n",
        said.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parse_images_table() {
        let ok = |p: &[&str], want: &[(&str, &str)]| {
            let got = parse_images(&pairs(p)).unwrap();
            let want: BTreeMap<String, String> = want
                .iter()
                .map(|(c, i)| ((*c).to_owned(), (*i).to_owned()))
                .collect();
            assert_eq!(got, want, "{p:?}");
        };
        ok(&["app=demo:2"], &[("app", "demo:2")]);
        ok(
            &["app=reg.example:5000/demo:2", "side=s@sha256:ab"],
            &[("app", "reg.example:5000/demo:2"), ("side", "s@sha256:ab")],
        );
        ok(&["*=demo:3"], &[("*", "demo:3")]);
        for bad in [
            &[][..],
            &["app"],
            &["=demo:2"],
            &["app="],
            &["a=x", "a=y"],
            &["*=x", "app=y"],
        ] {
            assert!(parse_images(&pairs(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn locate_puts_each_image_in_its_list_and_refuses_unknown_names() {
        let rollout: Rollout = serde_json::from_value(json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"spec": {
                    "containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}],
                    "initContainers": [{"name": "init", "image": "i:1"}]
                }},
                "strategy": {"redBlack": {"activeService": "web"}}
            }
        }))
        .unwrap();
        let images = parse_images(&pairs(&["app=a:2", "init=i:2"])).unwrap();
        let body = apply_body("web", locate(&rollout, &images).unwrap());
        assert_eq!(
            body["spec"]["template"]["spec"],
            json!({
                "containers": [{"name": "app", "image": "a:2"}],
                "initContainers": [{"name": "init", "image": "i:2"}]
            })
        );
        let all = parse_images(&pairs(&["*=z:9"])).unwrap();
        assert_eq!(
            apply_body("web", locate(&rollout, &all).unwrap())["spec"]["template"]["spec"],
            json!({
                "containers": [{"name": "app", "image": "z:9"}, {"name": "side", "image": "z:9"}],
                "initContainers": [{"name": "init", "image": "z:9"}]
            })
        );
        let err = locate(&rollout, &parse_images(&pairs(&["nope=x"])).unwrap()).unwrap_err();
        assert!(
            err.contains("\"nope\"") && err.contains("app, side, init"),
            "{err}"
        );
    }
}
