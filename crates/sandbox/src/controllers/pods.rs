//! Pod lifecycle simulator: plays the scheduler and the kubelet for every pod.
//!
//! A new pod is bound to node `sandbox` and goes `Pending` (condition
//! `PodScheduled`), then `Running` with a fake unique `podIP` (10.244.x.y),
//! `hostIP`, `startTime` and `containerStatuses`; its `Ready` and
//! `ContainersReady` conditions turn True after `ControllersConfig::pod_ready_after`.
//!
//! Annotations on a pod (or its template) change that, per pod:
//!
//! | annotation                           | value                  | effect |
//! |--------------------------------------|------------------------|--------|
//! | `sandbox.redblack.io/ready-after`    | duration (`500ms`, `3s`) | Ready this long after starting, instead of the default |
//! | `sandbox.redblack.io/never-ready`    | `"true"`               | Running, but Ready=False forever (a failing readiness probe) |
//! | `sandbox.redblack.io/crash`          | `"true"`               | CrashLoopBackOff: the container dies every `ready-after`, `restartCount` grows, never Ready |
//! | `sandbox.redblack.io/fail-after`     | duration (`10s`)       | turns not Ready for good this long after starting (a pod that breaks) |
//!
//! They are read once, when the pod starts (as a kubelet reads a pod's probes):
//! editing them on a running pod changes nothing. Durations use humantime syntax. A value that does not parse is ignored (the
//! default applies) and reported as a `Warning` Event with reason
//! `InvalidAnnotation` on the pod; it never stops the pod.
//!
//! A deleted pod terminates as with a kubelet: the API server marks it
//! (`deletionTimestamp`, `deletionGracePeriodSeconds`; see `graceful`), it turns
//! not Ready at once, its containers are stopped gracefully
//! (`PodRuntime::terminate`: a process gets SIGTERM, and SIGKILL when the grace
//! period ends; the simulation has nothing to drain), the final container states
//! are written, and the pod is deleted again with a grace period of 0, which
//! removes it (or leaves it to its finalizers). Which runtime plays a pod is chosen by
//! `choose_runtime`: pods whose image is `redblack/demo-app:<tag>` or the
//! operator's `redblack/redblack[:tag]` run as real processes
//! (`process_runtime`; the annotations above do not apply to them), with
//! `podIP` 127.0.0.1 and the runtime's annotations (port, ports, pid) kept on
//! the pod.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::pod_runtime::{
    Behaviour, ContainerReport, ContainerSpec, ContainerState, PodRuntime, RuntimeReport, Simulated,
};
use super::process_launch::ProcessContext;
use super::process_runtime::{self, ProcessConfig};
use super::runner::Reconciler;
use super::{Builtins, ControllerError, ObjKey, is_deleting, obj_key, parse_time};
use crate::store::{DeleteOptions, Store, StoreError, StoredEvent, UpdateTarget, meta_str};

pub const READY_AFTER: &str = "sandbox.redblack.io/ready-after";
pub const NEVER_READY: &str = "sandbox.redblack.io/never-ready";
pub const CRASH: &str = "sandbox.redblack.io/crash";
pub const FAIL_AFTER: &str = "sandbox.redblack.io/fail-after";

/// The one node every pod is scheduled to.
pub const NODE_NAME: &str = "sandbox";
pub(crate) const HOST_IP: &str = "10.240.0.1";

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Reads the behaviour annotations; problems come back as messages for a Warning.
pub fn behaviour_from_annotations(
    pod: &Value,
    default_ready_after: Duration,
) -> (Behaviour, Vec<String>) {
    let annotations = pod
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    let get = |k: &str| annotations.and_then(|a| a.get(k));
    let mut warnings = Vec::new();
    let mut duration = |key: &str| -> Option<Duration> {
        let raw = get(key)?;
        match raw.as_str().map(humantime::parse_duration) {
            Some(Ok(d)) => Some(d),
            _ => {
                warnings.push(format!(
                    "annotation {key}={raw} is not a duration (like 500ms or 3s); ignored"
                ));
                None
            }
        }
    };
    let ready_after = duration(READY_AFTER).unwrap_or(default_ready_after);
    let fail_after = duration(FAIL_AFTER);
    let mut flag = |key: &str| -> bool {
        match get(key) {
            None => false,
            Some(v) => match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                Some("true") => true,
                Some("false") => false,
                _ => {
                    warnings.push(format!(
                        "annotation {key}={v} is not \"true\" or \"false\"; ignored"
                    ));
                    false
                }
            },
        }
    };
    let never_ready = flag(NEVER_READY);
    let crash = flag(CRASH);
    (
        Behaviour {
            ready_after,
            never_ready,
            crash,
            fail_after,
        },
        warnings,
    )
}

fn container_specs(pod: &Value) -> Vec<ContainerSpec> {
    pod.get("spec")
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| ContainerSpec {
                    name: c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    image: c
                        .get("image")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Picks the runtime for a pod: a real process for a demo-app or operator
/// image, otherwise the simulation.
pub fn choose_runtime(
    pod: &Value,
    behaviour: Behaviour,
    started: DateTime<Utc>,
    process: &ProcessConfig,
    ctx: &ProcessContext,
) -> Box<dyn PodRuntime> {
    let containers = container_specs(pod);
    match process_runtime::for_pod(pod, containers.clone(), process, ctx) {
        Some(runtime) => Box::new(runtime),
        None => Box::new(Simulated::new(behaviour, containers, started)),
    }
}

/// Hands out unique fake pod IPs from 10.244.0.0/16, reusing released ones last.
#[derive(Default)]
struct IpPool {
    next: u32,
    used: HashSet<Ipv4Addr>,
}

impl IpPool {
    const SIZE: u32 = 256 * 254;

    fn nth(n: u32) -> Ipv4Addr {
        Ipv4Addr::new(10, 244, (n / 254) as u8, (n % 254 + 1) as u8)
    }

    fn claim(&mut self, ip: Ipv4Addr) -> bool {
        self.used.insert(ip)
    }

    fn allocate(&mut self) -> Option<Ipv4Addr> {
        for _ in 0..Self::SIZE {
            let ip = Self::nth(self.next);
            self.next = (self.next + 1) % Self::SIZE;
            if self.used.insert(ip) {
                return Some(ip);
            }
        }
        None
    }

    fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip);
    }
}

struct PodState {
    uid: String,
    ip: Ipv4Addr,
    runtime: Box<dyn PodRuntime>,
    /// Terminated: the final status is written and the last delete sent.
    finished: bool,
}

/// How often a terminating pod is looked at until its containers have stopped
/// (a process exits on its own time; no store event says so).
const TERMINATION_POLL: Duration = Duration::from_millis(100);

/// The grace period the API server gave a deleted pod.
fn deletion_grace(pod: &Value) -> Duration {
    let secs = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

pub(crate) struct PodController {
    store: Arc<Store>,
    types: Builtins,
    ready_after: Duration,
    process: ProcessConfig,
    ctx: ProcessContext,
    pods: HashMap<ObjKey, PodState>,
    ips: IpPool,
}

fn condition(
    existing: Option<&Vec<Value>>,
    kind: &str,
    ok: bool,
    reason: Option<(&str, String)>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    // The transition time moves only when the status does: that is what makes
    // minReadySeconds and "ready for how long" meaningful.
    let since = existing
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        })
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let mut c =
        json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
    if let (Some((r, m)), Some(map)) = (reason, c.as_object_mut()) {
        map.insert("reason".into(), json!(r));
        map.insert("message".into(), json!(m));
    }
    c
}

fn state_json(state: &ContainerState) -> Value {
    match state {
        ContainerState::Running { started_at } => {
            json!({"running": {"startedAt": rfc3339(*started_at)}})
        }
        ContainerState::Waiting { reason, message } => {
            json!({"waiting": {"reason": reason, "message": message}})
        }
        ContainerState::Terminated {
            exit_code,
            reason,
            started_at,
            finished_at,
        } => json!({"terminated": {
            "exitCode": exit_code, "reason": reason,
            "startedAt": rfc3339(*started_at), "finishedAt": rfc3339(*finished_at)}}),
    }
}

fn hex_digest(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn container_status(uid: &str, c: &ContainerReport) -> Value {
    let image = &c.spec.image;
    json!({
        "name": c.spec.name,
        "image": image,
        "imageID": format!("{image}@sha256:{}", hex_digest(image)),
        "containerID": format!("sandbox://{}", &hex_digest(&format!("{uid}/{}", c.spec.name))[..32]),
        "ready": c.ready,
        "started": c.started,
        "restartCount": c.restart_count,
        "state": state_json(&c.state),
        "lastState": c.last_state.as_ref().map_or_else(|| json!({}), state_json),
    })
}

/// The Running/terminating status for a runtime report.
fn running_status(
    pod: &Value,
    ip: Ipv4Addr,
    started: DateTime<Utc>,
    report: &RuntimeReport,
) -> Map<String, Value> {
    let now = rfc3339(Utc::now());
    let uid = meta_str(pod, "uid").unwrap_or("");
    let existing = pod
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array);
    let unready: Vec<&str> = report
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.spec.name.as_str())
        .collect();
    let ready = unready.is_empty();
    let why = (!ready).then(|| {
        (
            "ContainersNotReady",
            format!("containers with unready status: [{}]", unready.join(" ")),
        )
    });
    let conditions = vec![
        condition(existing, "Initialized", true, None, &now),
        condition(existing, "Ready", ready, why.clone(), &now),
        condition(existing, "ContainersReady", ready, why, &now),
        condition(existing, "PodScheduled", true, None, &now),
    ];
    // As the kubelet reports it: Pending until some container has started once
    // (a bad image or env never gets that far), Running from then on.
    let never_started = !report.containers.is_empty()
        && report.containers.iter().all(|c| {
            matches!(c.state, ContainerState::Waiting { .. })
                && c.restart_count == 0
                && c.last_state.is_none()
        });
    // Every container terminated (a run-to-completion pod's process exited
    // for good): Succeeded when all exited 0, else Failed.
    let exits: Vec<i64> = report
        .containers
        .iter()
        .filter_map(|c| match c.state {
            ContainerState::Terminated { exit_code, .. } => Some(i64::from(exit_code)),
            _ => None,
        })
        .collect();
    let completed = !report.containers.is_empty()
        && exits.len() == report.containers.len()
        && pod.pointer("/spec/restartPolicy").and_then(Value::as_str) != Some("Always")
        && pod.pointer("/spec/restartPolicy").is_some();
    let phase = if completed {
        if exits.iter().all(|c| *c == 0) {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if never_started {
        "Pending"
    } else {
        "Running"
    };
    let mut status = Map::new();
    status.insert("phase".into(), json!(phase));
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("hostIP".into(), json!(HOST_IP));
    status.insert("hostIPs".into(), json!([{"ip": HOST_IP}]));
    status.insert("podIP".into(), json!(ip.to_string()));
    status.insert("podIPs".into(), json!([{"ip": ip.to_string()}]));
    status.insert("startTime".into(), json!(rfc3339(started)));
    status.insert(
        "containerStatuses".into(),
        Value::Array(
            report
                .containers
                .iter()
                .map(|c| container_status(uid, c))
                .collect(),
        ),
    );
    status
}

impl PodController {
    pub(crate) fn new(
        types: Builtins,
        ready_after: Duration,
        process: ProcessConfig,
        ctx: ProcessContext,
    ) -> Self {
        Self {
            store: ctx.store.clone(),
            types,
            ready_after,
            process,
            ctx,
            pods: HashMap::new(),
            ips: IpPool::default(),
        }
    }

    fn forget(&mut self, key: &ObjKey) {
        if let Some(mut state) = self.pods.remove(key) {
            state.runtime.stop();
            self.ips.release(state.ip);
        }
    }

    fn write_status(&self, pod: &Value, status: Map<String, Value>) -> Result<(), ControllerError> {
        if pod.get("status").and_then(Value::as_object) == Some(&status) {
            return Ok(());
        }
        let mut next = pod.clone();
        if let Some(map) = next.as_object_mut() {
            map.insert("status".into(), Value::Object(status));
        }
        self.store
            .update(&self.types.pods, next, UpdateTarget::Status)?;
        Ok(())
    }

    /// Brings the runtime-owned annotations (a process's port and pid) up to
    /// date; returns the pod as stored afterwards.
    fn annotate(
        &self,
        pod: &Arc<Value>,
        wanted: &[(&'static str, Option<String>)],
    ) -> Result<Arc<Value>, ControllerError> {
        let current = pod
            .get("metadata")
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_object);
        let differs = wanted
            .iter()
            .any(|(k, v)| current.and_then(|a| a.get(*k)).and_then(Value::as_str) != v.as_deref());
        if !differs {
            return Ok(pod.clone());
        }
        let mut next = (**pod).clone();
        let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) else {
            return Ok(pod.clone());
        };
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if !annotations.is_object() {
            *annotations = json!({});
        }
        if let Some(map) = annotations.as_object_mut() {
            for (k, v) in wanted {
                match v {
                    Some(v) => map.insert((*k).to_string(), json!(v)),
                    None => map.remove(*k),
                };
            }
        }
        Ok(self
            .store
            .update(&self.types.pods, next, UpdateTarget::Main)?)
    }

    /// The scheduler's part: bind to the node, then report Pending.
    fn bind(&self, pod: &Value) -> Result<(), ControllerError> {
        let mut next = pod.clone();
        if let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut) {
            spec.insert("nodeName".into(), json!(NODE_NAME));
        } else if let Some(map) = next.as_object_mut() {
            map.insert("spec".into(), json!({"nodeName": NODE_NAME}));
        }
        let bound = self
            .store
            .update(&self.types.pods, next, UpdateTarget::Main)?;
        let now = rfc3339(Utc::now());
        let mut status = bound
            .get("status")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        status.insert("phase".into(), json!("Pending"));
        let existing = status.get("conditions").and_then(Value::as_array).cloned();
        status.insert(
            "conditions".into(),
            json!([condition(
                existing.as_ref(),
                "PodScheduled",
                true,
                None,
                &now
            )]),
        );
        self.write_status(&bound, status)
    }

    fn warn(&self, pod: &Value, message: &str) {
        let (ns, name) = obj_key(pod);
        tracing::warn!(namespace = %ns, pod = %name, %message, "bad sandbox annotation");
        let now = rfc3339(Utc::now());
        let event = json!({
            "metadata": {"generateName": format!("{name}."), "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": ns,
                               "uid": meta_str(pod, "uid").unwrap_or("")},
            "reason": "InvalidAnnotation",
            "message": message,
            "type": "Warning",
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": "sandbox-kubelet", "host": NODE_NAME},
            "reportingComponent": "sandbox-kubelet",
            "reportingInstance": NODE_NAME,
        });
        // A lost warning must not hold the pod back.
        if let Err(err) = self.store.create(&self.types.events, event) {
            tracing::warn!(namespace = %ns, pod = %name, %err, "could not record warning event");
        }
    }

    /// Starts the runtime for a bound pod (or resumes one that was already running).
    fn start(&mut self, key: &ObjKey, pod: &Value, uid: &str) -> Result<(), ControllerError> {
        let status = pod.get("status");
        let resumed = status
            .and_then(|s| s.get("startTime"))
            .and_then(Value::as_str)
            .and_then(parse_time);
        let (behaviour, warnings) = behaviour_from_annotations(pod, self.ready_after);
        let runtime = choose_runtime(
            pod,
            behaviour,
            resumed.unwrap_or_else(Utc::now),
            &self.process,
            &self.ctx,
        );
        let previous_ip = status
            .and_then(|s| s.get("podIP"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Ipv4Addr>().ok());
        let ip = match (runtime.pod_ip(), previous_ip) {
            (Some(ip), _) => ip,
            (None, Some(ip)) if self.ips.claim(ip) => ip,
            (None, _) => self
                .ips
                .allocate()
                .ok_or_else(|| ControllerError::Exhausted("pod IPs in 10.244.0.0/16".into()))?,
        };
        if resumed.is_none() && runtime.pod_ip().is_none() {
            for w in &warnings {
                self.warn(pod, w);
            }
        }
        self.pods.insert(
            key.clone(),
            PodState {
                uid: uid.to_string(),
                ip,
                runtime,
                finished: false,
            },
        );
        Ok(())
    }

    /// A deleted pod: not Ready at once, containers stopped gracefully, then the
    /// final status and the kubelet's last delete (grace 0).
    fn terminate(&mut self, key: &ObjKey, pod: &Value) -> Result<Option<Instant>, ControllerError> {
        let Some(state) = self.pods.get_mut(key) else {
            // Nothing runs for it here (it never started): nothing to wait for.
            return self.delete_now(pod).map(|()| None);
        };
        if state.finished {
            return self.delete_now(pod).map(|()| None);
        }
        let now = Instant::now();
        state.runtime.terminate(now + deletion_grace(pod));
        let mut report = state.runtime.observe(now);
        let started = state.runtime.started_at();
        if !state.runtime.stopped() {
            let status = running_status(pod, state.ip, started, &report);
            self.write_status(pod, status)?;
            return Ok(Some(now + TERMINATION_POLL));
        }
        let finished_at = Utc::now();
        for c in &mut report.containers {
            c.ready = false;
            c.started = false;
            // A process reports its own exit; everything else just completed.
            if !matches!(c.state, ContainerState::Terminated { .. }) {
                c.state = ContainerState::Terminated {
                    exit_code: 0,
                    reason: "Completed".into(),
                    started_at: started,
                    finished_at,
                };
            }
        }
        let status = running_status(pod, state.ip, started, &report);
        self.write_status(pod, status)?;
        // Only once written: a failed write is retried with the same states.
        if let Some(state) = self.pods.get_mut(key) {
            state.finished = true;
        }
        self.delete_now(pod).map(|()| None)
    }

    /// The kubelet's last delete of a pod whose containers have stopped: with
    /// a grace period of 0 it removes the pod (unless finalizers hold it).
    fn delete_now(&self, pod: &Value) -> Result<(), ControllerError> {
        let grace_running = pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|g| g > 0);
        if !grace_running {
            return Ok(());
        }
        let (ns, name) = obj_key(pod);
        let opts = DeleteOptions {
            precondition_uid: meta_str(pod, "uid").map(String::from),
            ..DeleteOptions::now()
        };
        match self.store.delete(&self.types.pods, &ns, &name, &opts) {
            Ok(_) | Err(StoreError::NotFound { .. }) | Err(StoreError::PreconditionFailed(_)) => {
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Reconciler for PodController {
    type Key = ObjKey;
    const NAME: &'static str = "pods";

    fn keys_for(&mut self, event: &StoredEvent, out: &mut Vec<ObjKey>) {
        if event.gr == self.types.pods.group_resource() {
            out.push(obj_key(&event.object));
        }
    }

    fn all_keys(&mut self) -> Vec<ObjKey> {
        let (all, _) = self.store.list(&self.types.pods.group_resource(), None);
        let mut keys: Vec<ObjKey> = all.iter().map(|p| obj_key(p)).collect();
        keys.extend(self.pods.keys().cloned());
        keys
    }

    fn reconcile(&mut self, key: &ObjKey) -> Result<Option<Instant>, ControllerError> {
        let Some(pod) = self
            .store
            .get(&self.types.pods.group_resource(), &key.0, &key.1)
        else {
            self.forget(key);
            return Ok(None);
        };
        let uid = meta_str(&pod, "uid").unwrap_or("").to_string();
        if self.pods.get(key).is_some_and(|s| s.uid != uid) {
            self.forget(key); // same name, new pod
        }
        let bound = pod
            .get("spec")
            .and_then(|s| s.get("nodeName"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if is_deleting(&pod) {
            return self.terminate(key, &pod);
        }
        if !bound {
            self.bind(&pod)?;
            return Ok(None);
        }
        if !self.pods.contains_key(key) {
            self.start(key, &pod, &uid)?;
        }
        let Some(state) = self.pods.get_mut(key) else {
            return Ok(None);
        };
        let report = state.runtime.observe(Instant::now());
        let status = running_status(&pod, state.ip, state.runtime.started_at(), &report);
        let next = report.next_change;
        let wanted = state.runtime.annotations();
        let pod = self.annotate(&pod, &wanted)?;
        self.write_status(&pod, status)?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_parse_and_bad_values_warn() {
        let pod = json!({"metadata": {"annotations": {
            READY_AFTER: "500ms", FAIL_AFTER: "soon", NEVER_READY: "TRUE", CRASH: "maybe"}}});
        let (b, warnings) = behaviour_from_annotations(&pod, Duration::from_secs(2));
        assert_eq!(b.ready_after, Duration::from_millis(500));
        assert_eq!(b.fail_after, None);
        assert!(b.never_ready);
        assert!(!b.crash);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        let (b, warnings) = behaviour_from_annotations(&json!({}), Duration::from_secs(2));
        assert_eq!(b.ready_after, Duration::from_secs(2));
        assert!(warnings.is_empty());
        let (_, warnings) = behaviour_from_annotations(
            &json!({"metadata": {"annotations": {READY_AFTER: 5}}}),
            Duration::ZERO,
        );
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn ip_pool_never_hands_out_a_used_ip() {
        let mut pool = IpPool::default();
        let a = pool.allocate().unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 0, 1));
        assert!(!pool.claim(a));
        let b = pool.allocate().unwrap();
        assert_ne!(a, b);
        pool.release(a);
        assert!(pool.claim(a));
    }
}
