//! `meta.k8s.io/v1` Table and PartialObjectMetadata output, as `kubectl get` and
//! metadata-only clients ask for them.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::accept::IncludeObject;
use super::jsonpath;
use crate::registry::{PrinterColumn, ResourceType};

pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn col(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> PrinterColumn {
    PrinterColumn {
        name: name.into(),
        type_: type_.into(),
        json_path: format.into(),
        description: description.into(),
        priority,
    }
}

/// The columns after NAME. For built-ins `json_path` holds the column's format
/// and cells come from `builtin_cells`; for CRDs it is the column's JSONPath.
fn columns(rt: &ResourceType) -> Vec<PrinterColumn> {
    if rt.schema.is_some() || !rt.printer_columns.is_empty() {
        if rt.printer_columns.is_empty() {
            return vec![col("Age", "date", ".metadata.creationTimestamp", "", 0)];
        }
        return rt.printer_columns.clone();
    }
    let age = col(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    );
    let mut cols = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => vec![
            col(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted.",
                0,
            ),
            age.clone(),
            col("IP", "string", "", "IP address allocated to the pod.", 1),
            col(
                "Node",
                "string",
                "",
                "Name of the node this pod is scheduled onto.",
                1,
            ),
        ],
        ("apps", "ReplicaSet") => vec![
            col("Desired", "integer", "", "Number of desired pods.", 0),
            col("Current", "integer", "", "Number of actual replicas.", 0),
            col("Ready", "integer", "", "Number of ready replicas.", 0),
            age.clone(),
        ],
        ("apps", "Deployment") => vec![
            col(
                "Ready",
                "string",
                "",
                "Number of the pod with ready state.",
                0,
            ),
            col(
                "Up-to-date",
                "integer",
                "",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            col(
                "Available",
                "integer",
                "",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
            age.clone(),
        ],
        ("", "Service") => vec![
            col("Type", "string", "", "The type of the service.", 0),
            col(
                "Cluster-IP",
                "string",
                "",
                "The cluster IP of the service.",
                0,
            ),
            col(
                "External-IP",
                "string",
                "",
                "The external IPs of the service.",
                0,
            ),
            col("Port(s)", "string", "", "The ports of the service.", 0),
            age.clone(),
            col(
                "Selector",
                "string",
                "",
                "The label selector of the service.",
                1,
            ),
        ],
        ("", "Namespace") => vec![
            col("Status", "string", "", "The status of the namespace.", 0),
            age.clone(),
        ],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![col("Created At", "date", "", "", 0)]
        }
        ("" | "events.k8s.io", "Event") => vec![
            col(
                "Last Seen",
                "string",
                "",
                "Time since the most recent occurrence.",
                0,
            ),
            col(
                "Type",
                "string",
                "",
                "Type of this event (Normal, Warning).",
                0,
            ),
            col("Reason", "string", "", "Why the event happened.", 0),
            col("Object", "string", "", "The object this event is about.", 0),
            col(
                "Message",
                "string",
                "",
                "A human-readable description of the event.",
                0,
            ),
        ],
        _ => vec![age.clone()],
    };
    cols.shrink_to_fit();
    cols
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Age as kubectl prints it (`45s`, `3m12s`, `5h`, `2d`).
pub fn human_age(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    let secs = (Utc::now() - t.with_timezone(&Utc)).num_seconds().max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86_400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        if secs % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", secs % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn service_ports(obj: &Value) -> String {
    let Some(ports) = obj.pointer("/spec/ports").and_then(Value::as_array) else {
        return "<none>".into();
    };
    let parts: Vec<String> = ports
        .iter()
        .map(|p| {
            let port = p.get("port").map(|v| v.to_string()).unwrap_or_default();
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort") {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn selector_string(obj: &Value, pointer: &str) -> String {
    match obj.pointer(pointer).and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// The STATUS column as the API server's pod printer computes it
/// (`printPod` in kubernetes/pkg/printers/internalversion): the phase, or the
/// pod's reason, overridden by the last container's waiting or terminated
/// reason (`CrashLoopBackOff`, `Error`, `ExitCode:N`), "Running" again if a
/// container still runs after one `Completed`, and `Terminating` once
/// deleted. Init containers are not modelled (the sandbox runs none).
fn pod_status(obj: &Value) -> String {
    let mut reason = str_at(obj, "/status/reason")
        .or_else(|| str_at(obj, "/status/phase"))
        .unwrap_or("Pending")
        .to_owned();
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut has_running = false;
    for c in statuses.iter().rev() {
        let waiting = str_at(c, "/state/waiting/reason").filter(|r| !r.is_empty());
        let terminated = c.pointer("/state/terminated");
        if let Some(r) = waiting {
            reason = r.to_owned();
        } else if let Some(t) = terminated {
            reason = match str_at(t, "/reason").filter(|r| !r.is_empty()) {
                Some(r) => r.to_owned(),
                None => match t.get("signal").and_then(Value::as_i64).filter(|s| *s != 0) {
                    Some(signal) => format!("Signal:{signal}"),
                    None => format!(
                        "ExitCode:{}",
                        t.get("exitCode").and_then(Value::as_i64).unwrap_or(0)
                    ),
                },
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some()
        {
            has_running = true;
        }
    }
    if reason == "Completed" && has_running {
        let ready = obj
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    str_at(c, "/type") == Some("Ready") && str_at(c, "/status") == Some("True")
                })
            });
        reason = if ready { "Running" } else { "NotReady" }.to_owned();
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        reason = if str_at(obj, "/status/reason") == Some("NodeLost") {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_owned();
    }
    reason
}

fn builtin_cells(rt: &ResourceType, obj: &Value) -> Vec<Value> {
    let age = json!(human_age(str_at(obj, "/metadata/creationTimestamp")));
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Pod") => {
            let total = obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let statuses = obj
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array);
            let ready = statuses.map_or(0, |s| {
                s.iter()
                    .filter(|c| c.get("ready").and_then(Value::as_bool) == Some(true))
                    .count()
            });
            let restarts: i64 = statuses.map_or(0, |s| {
                s.iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .sum()
            });
            let status = pod_status(obj);
            vec![
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(str_at(obj, "/status/podIP").unwrap_or("<none>")),
                json!(str_at(obj, "/spec/nodeName").unwrap_or("<none>")),
            ]
        }
        ("apps", "ReplicaSet") => vec![
            json!(int_at(obj, "/spec/replicas")),
            json!(int_at(obj, "/status/replicas")),
            json!(int_at(obj, "/status/readyReplicas")),
            age,
        ],
        ("apps", "Deployment") => vec![
            json!(format!(
                "{}/{}",
                int_at(obj, "/status/readyReplicas"),
                int_at(obj, "/spec/replicas")
            )),
            json!(int_at(obj, "/status/updatedReplicas")),
            json!(int_at(obj, "/status/availableReplicas")),
            age,
        ],
        ("", "Service") => vec![
            json!(str_at(obj, "/spec/type").unwrap_or("ClusterIP")),
            json!(str_at(obj, "/spec/clusterIP").unwrap_or("<none>")),
            json!("<none>"),
            json!(service_ports(obj)),
            age,
            json!(selector_string(obj, "/spec/selector")),
        ],
        ("", "Namespace") => vec![json!(str_at(obj, "/status/phase").unwrap_or("Active")), age],
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            vec![json!(
                str_at(obj, "/metadata/creationTimestamp").unwrap_or("")
            )]
        }
        ("" | "events.k8s.io", "Event") => {
            // core/v1 and events.k8s.io/v1 name the same fields differently.
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/series/lastObservedTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find_map(|p| str_at(obj, p));
            let regarding = obj.get("involvedObject").or_else(|| obj.get("regarding"));
            let object = regarding
                .map(|r| {
                    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
                    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                    format!("{}/{name}", kind.to_lowercase())
                })
                .unwrap_or_default();
            let message = str_at(obj, "/message")
                .or_else(|| str_at(obj, "/note"))
                .unwrap_or("");
            vec![
                json!(human_age(last)),
                json!(str_at(obj, "/type").unwrap_or("Normal")),
                json!(str_at(obj, "/reason").unwrap_or("")),
                json!(object),
                json!(message),
            ]
        }
        _ => vec![age],
    }
}

fn crd_cells(cols: &[PrinterColumn], obj: &Value) -> Vec<Value> {
    cols.iter()
        .map(|c| match jsonpath::get(obj, &c.json_path) {
            None | Some(Value::Null) => Value::Null,
            Some(v) if c.type_ == "date" => json!(human_age(v.as_str())),
            Some(v @ (Value::Array(_) | Value::Object(_))) => json!(v.to_string()),
            Some(v) => v.clone(),
        })
        .collect()
}

fn definition(c: &PrinterColumn, is_crd: bool) -> Value {
    let format = if is_crd { "" } else { c.json_path.as_str() };
    json!({
        "name": c.name,
        "type": if c.type_ == "date" && !is_crd { "string" } else { c.type_.as_str() },
        "format": format,
        "description": c.description,
        "priority": c.priority,
    })
}

/// One Table of `objects`, with list metadata `meta`.
pub fn table(
    rt: &ResourceType,
    objects: &[Arc<Value>],
    include: IncludeObject,
    meta: Value,
) -> Value {
    let is_crd = rt.schema.is_some() || !rt.printer_columns.is_empty();
    let cols = columns(rt);
    let mut defs = vec![json!({
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.",
        "priority": 0,
    })];
    defs.extend(cols.iter().map(|c| definition(c, is_crd)));
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let name = str_at(obj, "/metadata/name").unwrap_or("");
            let mut cells = vec![json!(name)];
            if is_crd {
                cells.extend(crd_cells(&cols, obj));
            } else {
                cells.extend(builtin_cells(rt, obj));
            }
            let mut row = json!({"cells": cells});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(obj),
                IncludeObject::Object => row["object"] = obj.as_ref().clone(),
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn pod_status_is_the_printers() {
        let pod = |phase: &str, states: Value, extra: Value| {
            let mut p = json!({"status": {"phase": phase, "containerStatuses": states}});
            if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
                p.extend(extra.clone());
            }
            p
        };
        let running = json!({"ready": true, "state": {"running": {}}});
        let cases = [
            (pod("Pending", json!([]), json!({})), "Pending"),
            (pod("Running", json!([running]), json!({})), "Running"),
            (
                pod(
                    "Running",
                    json!([{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
                    json!({}),
                ),
                "CrashLoopBackOff",
            ),
            (
                pod(
                    "Pending",
                    json!([{"state": {"waiting": {"reason": "ContainerCreating"}}}]),
                    json!({}),
                ),
                "ContainerCreating",
            ),
            (
                pod(
                    "Running",
                    json!([{"state": {"terminated": {"reason": "Error", "exitCode": 2}}}]),
                    json!({}),
                ),
                "Error",
            ),
            (
                pod(
                    "Running",
                    json!([{"state": {"terminated": {"exitCode": 3}}}]),
                    json!({}),
                ),
                "ExitCode:3",
            ),
            (
                pod(
                    "Running",
                    json!([{"state": {"terminated": {"signal": 9, "exitCode": 137}}}]),
                    json!({}),
                ),
                "Signal:9",
            ),
            // The last container's state wins, a running one keeps "Completed" from showing.
            (
                pod(
                    "Running",
                    json!([running, {"state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]),
                    json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                                      "containerStatuses": [running, {"state": {"terminated": {"reason": "Completed"}}}]}}),
                ),
                "NotReady",
            ),
            (
                pod(
                    "Running",
                    json!([running]),
                    json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
                ),
                "Terminating",
            ),
            (
                pod(
                    "Failed",
                    json!([]),
                    json!({"status": {"phase": "Failed", "reason": "Evicted"}}),
                ),
                "Evicted",
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(pod_status(&obj), want, "{obj}");
        }
    }

    use super::*;
    use crate::registry::builtin_types;

    #[test]
    fn replicaset_rows_have_counts() {
        let rt = builtin_types()
            .into_iter()
            .find(|t| t.kind == "ReplicaSet")
            .unwrap();
        let obj = Arc::new(
            json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"replicas": 3}, "status": {"replicas": 2, "readyReplicas": 1}}),
        );
        let t = table(&rt, &[obj], IncludeObject::Metadata, json!({}));
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Desired", "Current", "Ready", "Age"]);
        assert_eq!(
            t["rows"][0]["cells"].as_array().unwrap()[..4],
            [json!("web"), json!(3), json!(2), json!(1)]
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    }

    #[test]
    fn event_rows_name_the_object() {
        let rt = builtin_types()
            .into_iter()
            .find(|t| t.kind == "Event" && t.group.is_empty())
            .unwrap();
        let ev = Arc::new(
            json!({"metadata": {"name": "e"}, "type": "Warning", "reason": "Failed",
            "involvedObject": {"kind": "Pod", "name": "web-1"}, "message": "boom"}),
        );
        let t = table(&rt, &[ev], IncludeObject::None, json!({}));
        let cells = t["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(
            cells[2..],
            [
                json!("Warning"),
                json!("Failed"),
                json!("pod/web-1"),
                json!("boom")
            ]
        );
        assert!(t["rows"][0].get("object").is_none());
    }

    #[test]
    fn ages_like_kubectl() {
        let ago = |s: i64| (Utc::now() - chrono::Duration::seconds(s)).to_rfc3339();
        assert_eq!(human_age(Some(&ago(30))), "30s");
        assert_eq!(human_age(Some(&ago(5 * 60))), "5m");
        assert_eq!(human_age(Some(&ago(5 * 3600))), "5h");
        assert_eq!(human_age(Some(&ago(3 * 86_400))), "3d");
        assert_eq!(human_age(None), "<unknown>");
    }
}
