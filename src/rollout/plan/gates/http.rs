//! HTTP gates: which attempts are due now (the shell makes them, bounded by
//! their timeout, and hands the answers back as `Observed::http_checks`), and
//! whether an answer is as configured. Pure: from the Rollout's spec and
//! stored status and the clock; a reconcile never waits for a retry.

use chrono::{DateTime, Utc};

use super::render::{render, variables};
use crate::api::{GateAt, GatePhase, GateStatus, HttpGate, HttpMethod, Rollout, pod_template_hash};

/// One attempt to make now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProbe {
    pub gate: String,
    pub revision: String,
    /// Rendered (`${...}` filled).
    pub url: String,
    pub method: HttpMethod,
    pub expect_status: Vec<u16>,
    pub body_contains: Option<String>,
    pub timeout: std::time::Duration,
}

/// When the next attempt of a running `record` is due.
pub fn next_attempt(record: &GateStatus, http: &HttpGate) -> DateTime<Utc> {
    match record.last_attempt {
        None => record.started_at,
        Some(last) => last + retry_interval(http),
    }
}

fn retry_interval(http: &HttpGate) -> chrono::Duration {
    redblack_duration::parse(&http.retry_interval)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .unwrap_or_else(|| chrono::Duration::seconds(5))
}

/// The HTTP attempts due at `now`: gates of the current revision whose
/// record (written by an earlier plan, when the revision reached the gate's
/// point) is running and whose retry interval has passed. Nothing for an
/// aborted revision.
pub fn due(rollout: &Rollout, now: DateTime<Utc>) -> Vec<HttpProbe> {
    let Some(status) = &rollout.status else {
        return Vec::new();
    };
    let target = pod_template_hash(&rollout.spec.template);
    if status.abort.as_ref().is_some_and(|a| a.revision == target) || rollout.spec.paused {
        return Vec::new();
    }
    let vars = variables(rollout, &target);
    let gates = &rollout.spec.strategy.red_black.gates;
    status
        .gates
        .iter()
        .filter(|r| r.revision == target && r.phase == GatePhase::Running)
        // An `AfterSwitch` gate judges the live fleet: never before the switch.
        .filter(|r| r.at != GateAt::AfterSwitch || status.stable_revision.as_ref() == Some(&target))
        .filter_map(|r| {
            let http = gates.iter().find(|g| g.name == r.name)?.http.as_ref()?;
            (next_attempt(r, http) <= now).then(|| HttpProbe {
                gate: r.name.clone(),
                revision: target.clone(),
                url: render(&http.url, &vars),
                method: http.method,
                expect_status: http.expect_status.clone(),
                body_contains: http.body_contains.clone(),
                timeout: std::time::Duration::from_secs(http.timeout_seconds.max(1) as u64),
            })
        })
        .collect()
}

/// Whether an answer passes, and how to say what was seen.
pub fn judge(probe: &HttpProbe, status: u16, body: &str) -> (bool, String) {
    if !probe.expect_status.contains(&status) {
        return (
            false,
            format!(
                "{} {} answered {status}, expected one of {:?}",
                method_name(probe.method),
                probe.url,
                probe.expect_status
            ),
        );
    }
    if let Some(text) = &probe.body_contains
        && !body.contains(text.as_str())
    {
        return (
            false,
            format!(
                "{} answered {status} without {text:?} in its body",
                probe.url
            ),
        );
    }
    (true, format!("{} answered {status}", probe.url))
}

pub fn method_name(method: HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Head => "HEAD",
        HttpMethod::Post => "POST",
    }
}
