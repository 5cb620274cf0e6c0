//! The shell of the gates: reading the Jobs of Job gates, creating one, and
//! making the HTTP attempts the planner says are due. Thin: what a Job's
//! status or an HTTP answer means is decided in `plan::gates`.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use super::apply::ApplyError;
use super::plan::{HttpCheck, HttpProbe, JobObservation, JobPhase, http_judge, method_name};
use crate::api::{GatePhase, ROLLOUT_LABEL, Rollout};
use crate::runtime::field_manager::ROLLOUT_FIELD_MANAGER;

/// True while a Job gate's record is running: only then can a Job's status
/// change what the planner decides. A gate that has not started yet has no
/// Job to read (the plan that starts it applies its Job), and a decided one
/// is never read again — so a quiet Rollout with Job gates costs no request.
pub fn jobs_to_read(rollout: &Rollout) -> bool {
    rollout.status.as_ref().is_some_and(|s| {
        s.gates
            .iter()
            .any(|g| g.phase == GatePhase::Running && g.job_name.is_some())
    })
}

/// The Jobs of the Rollout's running Job gates (none read otherwise).
pub async fn read_jobs(
    client: &Client,
    rollout: &Rollout,
) -> Result<Vec<JobObservation>, ApplyError> {
    let Some(ns) = rollout.namespace().filter(|_| jobs_to_read(rollout)) else {
        return Ok(Vec::new());
    };
    let label = super::plan::rollout_label_value(rollout);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
    let list = jobs
        .list(&ListParams::default().labels(&format!("{ROLLOUT_LABEL}={label}")))
        .await
        .map_err(|source| ApplyError::Api {
            what: "listing the gates' Jobs".to_owned(),
            source,
        })?;
    Ok(list.items.iter().map(observe_job).collect())
}

/// A Job's outcome from its conditions (Complete / Failed, status True).
pub fn observe_job(job: &Job) -> JobObservation {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let holds = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    let (phase, message) = if let Some(failed) = holds("Failed") {
        let reason = failed.reason.clone().unwrap_or_default();
        let message = failed.message.clone().unwrap_or_default();
        (JobPhase::Failed, Some(format!("{reason}: {message}")))
    } else if holds("Complete").is_some() {
        (JobPhase::Complete, None)
    } else {
        (JobPhase::Running, None)
    };
    JobObservation {
        name: job.name_any(),
        phase,
        message,
    }
}

/// Creates (server-side applies) a gate's Job.
pub async fn apply_job(client: &Client, ns: &str, name: &str, job: &Job) -> Result<(), ApplyError> {
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let mut body = serde_json::to_value(job).map_err(|_| ApplyError::Build {
        what: format!("Job {name}"),
    })?;
    body["apiVersion"] = "batch/v1".into();
    body["kind"] = "Job".into();
    let params = PatchParams::apply(ROLLOUT_FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(&body))
        .await
        .map_err(|source| ApplyError::Api {
            what: format!("applying Job {name}"),
            source,
        })?;
    Ok(())
}

/// Makes the due attempts, one after the other, each bounded by its timeout.
pub async fn run_http(probes: &[HttpProbe]) -> Vec<HttpCheck> {
    let mut checks = Vec::with_capacity(probes.len());
    for probe in probes {
        let (passed, message) = attempt(probe).await;
        tracing::debug!(gate = %probe.gate, passed, %message, "HTTP gate attempt");
        checks.push(HttpCheck {
            gate: probe.gate.clone(),
            revision: probe.revision.clone(),
            passed,
            message,
        });
    }
    checks
}

async fn attempt(probe: &HttpProbe) -> (bool, String) {
    let what = format!("{} {}", method_name(probe.method), probe.url);
    let client = match reqwest::Client::builder()
        .timeout(probe.timeout)
        .connect_timeout(probe.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => return (false, format!("{what}: cannot build the HTTP client: {e}")),
    };
    let method = match probe.method {
        crate::api::HttpMethod::Get => reqwest::Method::GET,
        crate::api::HttpMethod::Head => reqwest::Method::HEAD,
        crate::api::HttpMethod::Post => reqwest::Method::POST,
    };
    let response = match client.request(method, &probe.url).send().await {
        Ok(r) => r,
        Err(e) => return (false, format!("{what}: {}", describe(&e))),
    };
    let status = response.status().as_u16();
    // Bounded: a gate reads a health answer, not a download.
    let body = match response.text().await {
        Ok(text) => text.chars().take(64 * 1024).collect::<String>(),
        Err(e) => return (false, format!("{what}: reading the body: {}", describe(&e))),
    };
    http_judge(probe, status, &body)
}

/// reqwest's error with its causes (`connection refused` is in a source).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else if error.is_builder() {
        "not a usable URL".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::jobs_to_read;
    use crate::api::Rollout;
    use serde_json::json;

    fn with_gates(gates: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "a", "image": "a:1"}]}},
                     "strategy": {"redBlack": {"activeService": "web"}}},
            "status": {"gates": gates}
        }))
        .unwrap()
    }

    fn gate(phase: &str, job: Option<&str>) -> serde_json::Value {
        json!({"name": "smoke", "revision": "h", "at": "BeforeSwitch", "phase": phase,
               "attempt": 1, "startedAt": "2026-12-03T00:00:00Z", "jobName": job})
    }

    #[test]
    fn jobs_are_read_only_while_a_job_gate_runs() {
        assert!(!jobs_to_read(&with_gates(json!([]))), "no gate started");
        assert!(jobs_to_read(&with_gates(json!([gate(
            "Running",
            Some("web-h-smoke-1")
        )]))));
        assert!(
            !jobs_to_read(&with_gates(json!([gate("Running", None)]))),
            "an HTTP gate"
        );
        assert!(!jobs_to_read(&with_gates(json!([gate(
            "Passed",
            Some("web-h-smoke-1")
        )]))));
        assert!(!jobs_to_read(&with_gates(json!([gate(
            "Failed",
            Some("web-h-smoke-1")
        )]))));
    }
}
