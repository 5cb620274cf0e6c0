//! An Argo `AnalysisTemplate` (Prometheus provider) → a redblack
//! `CanaryAnalysisTemplate`. The two judge differently: Argo checks each
//! measurement of one fleet against a threshold (`successCondition`),
//! redblack compares the new fleet's series with the old fleet's. So a
//! metric keeps its query and name, the condition becomes the `direction`
//! that fails (`result >= x` → a decrease fails), and the thresholds and
//! limits are reported as not carried over.

use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{TemplateArgs, carried_metadata, seconds};
use crate::api::validate::parse_duration;

/// Variables that make a query read one fleet (docs/canary-analysis.md).
const FLEET_VARIABLES: &[&str] = &["${podRegex}", "${replicaSet}", "${revision}"];

/// Argo's interval when a metric has none (one measurement): redblack needs one.
const DEFAULT_INTERVAL: &str = "1m";

/// The template and the notes for what was not carried over.
pub(super) fn convert(doc: &Value, args: &TemplateArgs) -> (Value, Vec<String>) {
    let mut notes = Vec::new();
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if doc.get("kind").and_then(Value::as_str) == Some("ClusterAnalysisTemplate") {
        notes.push(
            "(kind): a ClusterAnalysisTemplate becomes a namespaced CanaryAnalysisTemplate; apply it in each namespace whose Rollouts name it"
                .to_owned(),
        );
    }
    let empty = Map::new();
    let spec = doc.get("spec").and_then(Value::as_object).unwrap_or(&empty);
    for key in spec.keys() {
        if !matches!(key.as_str(), "args" | "metrics") {
            notes.push(format!(
                "spec.{key}: not supported: redblack has no equivalent"
            ));
        }
    }
    let values = arg_values(spec, args.get(name), &mut notes);
    let mut body = Map::new();
    let mut metrics = Vec::new();
    let mut interval: Option<String> = None;
    let mut lifetime = Duration::ZERO;
    let mut warmup = Duration::ZERO;
    let mut url: Option<String> = None;
    for (i, metric) in spec
        .get("metrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let path = format!("spec.metrics[{i}]");
        let Some(prometheus) = metric.pointer("/provider/prometheus") else {
            notes.push(format!(
                "{path}: left out: only the Prometheus provider is converted"
            ));
            continue;
        };
        let metric_name = metric
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("metric");
        let Some(query) = prometheus.get("query").and_then(Value::as_str) else {
            notes.push(format!("{path}: left out: no provider.prometheus.query"));
            continue;
        };
        let query = substitute(
            query.trim(),
            &values,
            &format!("{path}.provider.prometheus.query"),
            &mut notes,
        );
        if !FLEET_VARIABLES.iter().any(|v| query.contains(v)) {
            notes.push(format!(
                "{path}.provider.prometheus.query: reads no fleet of its own (no {}): redblack renders it once per fleet and compares the two, so scope it, e.g. pod=~\"${{podRegex}}\"",
                FLEET_VARIABLES.join(", ")
            ));
        }
        let mut out = Map::new();
        out.insert("name".to_owned(), json!(metric_name));
        out.insert(
            "direction".to_owned(),
            json!(direction(metric, &path, &mut notes)),
        );
        out.insert("query".to_owned(), json!(query));
        metrics.push(Value::Object(out));

        if let Some(address) = prometheus.get("address").and_then(Value::as_str) {
            match &url {
                None => url = Some(address.to_owned()),
                Some(first) if first != address => notes.push(format!(
                    "{path}.provider.prometheus.address: {address} differs from the first metric's {first}; a redblack analysis queries one Prometheus"
                )),
                Some(_) => {}
            }
        }
        for key in prometheus.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !matches!(key.as_str(), "address" | "query") {
                notes.push(format!(
                    "{path}.provider.prometheus.{key}: not carried over (set the analysis' prometheus endpoint fields by hand: tls, basicAuth, bearerTokenSecretRef, headers)"
                ));
            }
        }
        let this_interval = metric.get("interval").and_then(Value::as_str);
        let every = this_interval.and_then(|s| parse_duration(s).ok());
        if this_interval.is_some() && every.is_none() {
            notes.push(format!(
                "{path}.interval: {:?} is not a redblack duration; {DEFAULT_INTERVAL} used",
                this_interval.unwrap_or_default()
            ));
        }
        let every_text = every.map(|_| this_interval.unwrap_or(DEFAULT_INTERVAL));
        match (&interval, every_text) {
            (None, Some(text)) => interval = Some(text.to_owned()),
            (Some(first), Some(text)) if first != text => notes.push(format!(
                "{path}.interval: {text} differs from the first metric's {first}; a redblack analysis has one interval ({first} used)"
            )),
            _ => {}
        }
        let every = every.unwrap_or(Duration::from_secs(60));
        let count = metric.get("count").and_then(count_of);
        if count.is_none() {
            notes.push(format!(
                "{path}.count: unset (Argo measures until the rollout ends, or once without an interval); the analysis lasts one interval — set lifetime"
            ));
        }
        lifetime = lifetime.max(every * count.unwrap_or(1));
        if let Some(delay) = metric.get("initialDelay").and_then(Value::as_str) {
            match parse_duration(delay) {
                Ok(d) => warmup = warmup.max(d),
                Err(_) => notes.push(format!(
                    "{path}.initialDelay: {delay:?} is not a redblack duration; left out"
                )),
            }
        }
        for key in metric.as_object().into_iter().flatten().map(|(k, _)| k) {
            match key.as_str() {
                "name" | "provider" | "interval" | "count" | "initialDelay"
                | "successCondition" | "failureCondition" => {}
                "failureLimit" | "inconclusiveLimit" | "consecutiveErrorLimit" => notes.push(format!(
                    "{path}.{key}: not supported: redblack scores the whole window (scoreThresholds), not a count of failed measurements"
                )),
                _ => notes.push(format!("{path}.{key}: unknown to this converter")),
            }
        }
    }
    if let Some(url) = url {
        body.insert("prometheus".to_owned(), json!({"url": url}));
    }
    body.insert(
        "interval".to_owned(),
        json!(interval.unwrap_or_else(|| DEFAULT_INTERVAL.to_owned())),
    );
    let lifetime = lifetime.max(Duration::from_secs(60));
    body.insert(
        "lifetime".to_owned(),
        json!(seconds(lifetime.as_secs() as i64)),
    );
    if !warmup.is_zero() {
        body.insert("warmup".to_owned(), json!(seconds(warmup.as_secs() as i64)));
    }
    if metrics.is_empty() {
        notes.push(
            "spec.metrics: none could be converted; the template is not usable until a metric is added"
                .to_owned(),
        );
    }
    body.insert("metrics".to_owned(), Value::Array(metrics));
    let template = json!({
        "apiVersion": "redblack.io/v1alpha1",
        "kind": "CanaryAnalysisTemplate",
        "metadata": carried_metadata(doc),
        "spec": Value::Object(body),
    });
    (template, notes)
}

fn count_of(v: &Value) -> Option<u32> {
    v.as_u64()
        .or_else(|| v.as_str()?.parse().ok())
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n > 0)
}

/// Argument values: the Rollouts' (plain `value`s) over the template's defaults.
fn arg_values(
    spec: &Map<String, Value>,
    from_rollouts: Option<&std::collections::BTreeMap<String, String>>,
    notes: &mut Vec<String>,
) -> std::collections::BTreeMap<String, String> {
    let mut values = std::collections::BTreeMap::new();
    for arg in spec
        .get("args")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = arg.get("name").and_then(Value::as_str) else {
            continue;
        };
        if let Some(v) = arg.get("value").and_then(Value::as_str) {
            values.insert(name.to_owned(), v.to_owned());
        } else if arg.get("valueFrom").is_some() {
            notes.push(format!(
                "spec.args[{name}].valueFrom: not supported (redblack templates take no arguments)"
            ));
        }
    }
    values.extend(
        from_rollouts
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    values
}

/// `{{args.NAME}}` → its value; an argument without one is left as written, noted.
fn substitute(
    query: &str,
    values: &std::collections::BTreeMap<String, String>,
    path: &str,
    notes: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    let mut rest = query;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + len].trim();
        let whole = &rest[start..start + len + 2];
        match inner.strip_prefix("args.").and_then(|n| values.get(n)) {
            Some(value) => out.push_str(value),
            None => {
                notes.push(format!(
                    "{path}: {whole} has no value (give the argument a value in the Rollout or the template, or use a redblack variable such as ${{namespace}})"
                ));
                out.push_str(whole);
            }
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    out
}

/// The direction that fails, from Argo's conditions: a success condition
/// `result >= x` means higher is good, so a decrease fails; a failure
/// condition `result > x` means an increase fails. Thresholds are noted.
fn direction(metric: &Value, path: &str, notes: &mut Vec<String>) -> &'static str {
    let read = |key: &str| metric.get(key).and_then(Value::as_str).map(str::to_owned);
    let (success, failure) = (read("successCondition"), read("failureCondition"));
    let from = |cond: &str, good: bool| -> Option<&'static str> {
        let higher = if cond.contains('>') {
            true
        } else if cond.contains('<') {
            false
        } else {
            return None;
        };
        // good && higher: higher is good → a decrease fails.
        Some(if good == higher {
            "decrease"
        } else {
            "increase"
        })
    };
    let picked = success
        .as_deref()
        .and_then(|c| from(c, true))
        .or_else(|| failure.as_deref().and_then(|c| from(c, false)));
    for (key, cond) in [
        ("successCondition", &success),
        ("failureCondition", &failure),
    ] {
        if let Some(cond) = cond {
            notes.push(format!(
                "{path}.{key}: `{cond}` is not carried over as a threshold: redblack compares the new fleet with the old one ({})",
                picked.map_or("direction either: the condition names no comparison".to_owned(), |d| format!("direction {d}: only a significant {d} fails"))
            ));
        }
    }
    picked.unwrap_or("either")
}
