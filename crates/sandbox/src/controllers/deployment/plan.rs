//! The Deployment controller's decision, pure: the observed Deployment, its
//! ReplicaSets and the time → the ReplicaSet to create, the ones to scale or
//! delete, the Deployment's revision and status. One call is one `syncDeployment`
//! of `k8s.io/kubernetes/pkg/controller/deployment` (rolling.go, recreate.go,
//! sync.go), whose steps it follows: the same rounding, ordering and guards,
//! applied to an in-memory copy in the order the real controller writes.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::model::{
    DESIRED_REPLICAS, DeployView, HASH_LABEL, MAX_REPLICAS, REVISION, RsView, Strategy,
    copied_annotation, pod_template_hash, same_template,
};
use super::status::{self, Condition, PROGRESSING, Status};

/// A ReplicaSet to create for the Deployment's current template.
#[derive(Clone, Debug, PartialEq)]
pub struct NewReplicaSet {
    pub name: String,
    pub hash: String,
    pub replicas: i64,
    pub template: Value,
    pub selector: Value,
    pub labels: Map<String, Value>,
    pub annotations: Map<String, Value>,
    pub min_ready_seconds: i64,
}

/// A change to an existing ReplicaSet (replicas, annotations, minReadySeconds).
#[derive(Clone, Debug, PartialEq)]
pub struct RsUpdate {
    pub name: String,
    pub replicas: i64,
    pub annotations: Map<String, Value>,
    pub min_ready_seconds: i64,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// The Deployment's `deployment.kubernetes.io/revision`, when it changes.
    pub revision: Option<String>,
    pub create: Option<NewReplicaSet>,
    pub updates: Vec<RsUpdate>,
    pub deletes: Vec<String>,
    pub status: Map<String, Value>,
    /// When to look again without an event (the progress deadline).
    pub requeue_at: Option<DateTime<Utc>>,
}

struct World<'a> {
    d: &'a DeployView,
    now: DateTime<Utc>,
    rss: Vec<RsView>,
    /// Index in `rss` of a ReplicaSet created in this pass, and its creation.
    created: Option<(usize, NewReplicaSet)>,
    status: Status,
    revision: String,
    deletes: Vec<String>,
}

/// Decides one sync of `d`, whose ReplicaSets are `rss`.
pub fn plan(d: &DeployView, rss: &[RsView], now: DateTime<Utc>) -> Plan {
    let mut w = World {
        d,
        now,
        rss: rss.to_vec(),
        created: None,
        status: Status::from_json(&d.status),
        revision: d
            .annotations
            .get(REVISION)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        deletes: Vec::new(),
    };
    let (final_status, requeue_at) = w.sync_deployment();
    let mut plan = Plan {
        revision: (Some(w.revision.as_str())
            != d.annotations.get(REVISION).and_then(Value::as_str))
        .then(|| w.revision.clone()),
        status: final_status.to_json(),
        requeue_at,
        deletes: w.deletes.clone(),
        ..Plan::default()
    };
    let created_at = w.created.as_ref().map(|(i, _)| *i);
    for (i, rs) in w.rss.iter().enumerate() {
        if Some(i) == created_at {
            continue;
        }
        let Some(before) = rss.iter().find(|r| r.name == rs.name) else {
            continue;
        };
        if (
            before.replicas,
            &before.annotations,
            before.min_ready_seconds,
        ) != (rs.replicas, &rs.annotations, rs.min_ready_seconds)
        {
            plan.updates.push(RsUpdate {
                name: rs.name.clone(),
                replicas: rs.replicas,
                annotations: rs.annotations.clone(),
                min_ready_seconds: rs.min_ready_seconds,
            });
        }
    }
    if let Some((i, mut create)) = w.created.take() {
        create.replicas = w.rss[i].replicas;
        create.annotations = w.rss[i].annotations.clone();
        plan.create = Some(create);
    }
    plan
}

fn by_creation(a: &RsView, b: &RsView) -> std::cmp::Ordering {
    (&a.created, &a.name).cmp(&(&b.created, &b.name))
}

impl World<'_> {
    fn sync_deployment(&mut self) -> (Status, Option<DateTime<Utc>>) {
        if self.d.deleting {
            let (new, old) = self.sync_revision(false);
            return (self.status_only(new, &old), None);
        }
        status::paused_conditions(self.d, &mut self.status, self.now);
        if self.d.paused || self.is_scaling_event() {
            return (self.sync(), None);
        }
        let status = match self.d.strategy {
            Strategy::Recreate => self.recreate(),
            Strategy::RollingUpdate { .. } => self.rolling(),
        };
        let at = status::deadline(self.d, &status);
        (status, at)
    }

    /// `FindNewReplicaSet`: the oldest ReplicaSet running the current template.
    fn find_new(&self) -> Option<usize> {
        let mut idx: Vec<usize> = (0..self.rss.len()).collect();
        idx.sort_by(|a, b| by_creation(&self.rss[*a], &self.rss[*b]));
        idx.into_iter()
            .find(|i| same_template(&self.rss[*i].template, &self.d.template))
    }

    /// `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when
    /// `create` and missing) with the next revision, and the old ones.
    fn sync_revision(&mut self, create: bool) -> (Option<usize>, Vec<usize>) {
        let new = self.find_new();
        let old: Vec<usize> = (0..self.rss.len()).filter(|i| Some(*i) != new).collect();
        let next_revision = old.iter().map(|i| self.rss[*i].revision).max().unwrap_or(0) + 1;
        if let Some(i) = new {
            let d = self.d;
            let rs = &mut self.rss[i];
            copy_annotations(d, &mut rs.annotations);
            if rs.revision < next_revision {
                rs.revision = next_revision;
                rs.annotations
                    .insert(REVISION.into(), json!(next_revision.to_string()));
            }
            rs.min_ready_seconds = d.min_ready_seconds;
            let revision = rs
                .annotations
                .get(REVISION)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = rs.name.clone();
            self.revision = revision;
            if d.progress_deadline_seconds.is_some() && self.status.condition(PROGRESSING).is_none()
            {
                self.status.set_condition(Condition::new(
                    PROGRESSING,
                    "True",
                    "FoundNewReplicaSet",
                    format!("Found new replica set \"{name}\""),
                    self.now,
                ));
            }
            return (Some(i), old);
        }
        if !create {
            return (None, old);
        }
        let i = self.create_new(next_revision, &old);
        (Some(i), old)
    }

    fn create_new(&mut self, revision: i64, old: &[usize]) -> usize {
        let d = self.d;
        let hash = pod_template_hash(&d.template, self.status.collision_count);
        let mut template = d.template.clone();
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        labels.insert(HASH_LABEL.into(), json!(hash));
        if let Some(t) = template.as_object_mut() {
            let meta = t.entry("metadata").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("labels".into(), Value::Object(labels.clone()));
            }
        }
        let mut selector = d.selector.clone();
        if let Some(s) = selector.as_object_mut() {
            let ml = s.entry("matchLabels").or_insert_with(|| json!({}));
            if let Some(ml) = ml.as_object_mut() {
                ml.insert(HASH_LABEL.into(), json!(hash));
            } else {
                *ml = json!({HASH_LABEL: hash});
            }
        }
        let name = format!("{}-{hash}", d.name);
        let mut annotations = Map::new();
        copy_annotations(d, &mut annotations);
        annotations.insert(REVISION.into(), json!(revision.to_string()));
        annotations.insert(DESIRED_REPLICAS.into(), json!(d.replicas.to_string()));
        annotations.insert(
            MAX_REPLICAS.into(),
            json!((d.replicas + d.max_surge()).to_string()),
        );
        let view = RsView {
            name: name.clone(),
            created: self.now.to_rfc3339_opts(SecondsFormat::Secs, true),
            revision,
            replicas: 0,
            status_replicas: 0,
            ready: 0,
            available: 0,
            generation: 1,
            observed_generation: 0,
            template: template.clone(),
            min_ready_seconds: d.min_ready_seconds,
            annotations: annotations.clone(),
            deleting: false,
            pods_not_finished: 0,
        };
        self.rss.push(view);
        let i = self.rss.len() - 1;
        let mut all: Vec<usize> = old.to_vec();
        all.push(i);
        self.rss[i].replicas = self.new_rs_replicas(&all, i);
        self.revision = revision.to_string();
        if d.progress_deadline_seconds.is_some() {
            self.status.set_condition(Condition::new(
                PROGRESSING,
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                self.now,
            ));
        }
        self.created = Some((
            i,
            NewReplicaSet {
                name,
                hash,
                replicas: 0,
                template,
                selector,
                labels,
                annotations,
                min_ready_seconds: d.min_ready_seconds,
            },
        ));
        i
    }

    /// `NewRSNewReplicas`: how far the new ReplicaSet may grow now.
    fn new_rs_replicas(&self, all: &[usize], new: usize) -> i64 {
        match self.d.strategy {
            Strategy::Recreate => self.d.replicas,
            Strategy::RollingUpdate { .. } => {
                let current: i64 = all.iter().map(|i| self.rss[*i].replicas).sum();
                let max_total = self.d.replicas + self.d.max_surge();
                let new_replicas = self.rss[new].replicas;
                if current >= max_total {
                    return new_replicas;
                }
                let up = (max_total - current).min(self.d.replicas - new_replicas);
                new_replicas + up
            }
        }
    }

    /// `scaleReplicaSetAndRecordEvent`: nothing when the size is already
    /// right; true when it changed.
    fn scale(&mut self, i: usize, replicas: i64) -> bool {
        if self.rss[i].replicas == replicas {
            return false;
        }
        self.set_size(i, replicas);
        true
    }

    /// `scaleReplicaSet`: the size and the desired/max annotations, which tell
    /// a later sync what the ReplicaSet was sized for.
    fn set_size(&mut self, i: usize, replicas: i64) {
        let desired = self.d.replicas.to_string();
        let max = (self.d.replicas + self.d.max_surge()).to_string();
        let rs = &mut self.rss[i];
        rs.replicas = replicas;
        rs.annotations
            .insert(DESIRED_REPLICAS.into(), json!(desired));
        rs.annotations.insert(MAX_REPLICAS.into(), json!(max));
    }

    fn active(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter()
            .copied()
            .filter(|i| self.rss[*i].replicas > 0)
            .collect()
    }

    fn all_of(new: Option<usize>, old: &[usize]) -> Vec<usize> {
        let mut all = old.to_vec();
        all.extend(new);
        all
    }

    fn views(&self, idx: &[usize]) -> Vec<&RsView> {
        idx.iter().map(|i| &self.rss[*i]).collect()
    }

    fn status_only(&self, new: Option<usize>, old: &[usize]) -> Status {
        let all = Self::all_of(new, old);
        status::calculate(
            self.d,
            &self.status,
            &self.views(&all),
            new.map(|i| &self.rss[i]),
            self.now,
        )
    }

    fn rollout_status(&self, new: Option<usize>, old: &[usize]) -> Status {
        let all = Self::all_of(new, old);
        status::rollout(
            self.d,
            &self.status,
            &self.views(&all),
            new.map(|i| &self.rss[i]),
            self.now,
        )
    }

    /// `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    fn is_scaling_event(&mut self) -> bool {
        let (new, old) = self.sync_revision(false);
        let all = Self::all_of(new, &old);
        self.active(&all).iter().any(|i| {
            self.rss[*i]
                .annotation_int(DESIRED_REPLICAS)
                .is_some_and(|n| n != self.d.replicas)
        })
    }

    /// `sync`: scaling (also while paused), no rollout.
    fn sync(&mut self) -> Status {
        let (new, old) = self.sync_revision(false);
        self.scale_all(new, &old);
        if self.d.paused {
            self.cleanup(&old);
        }
        self.status_only(new, &old)
    }

    /// `scale`: the Deployment's replica count spread over its ReplicaSets.
    fn scale_all(&mut self, new: Option<usize>, old: &[usize]) {
        let replicas = self.d.replicas;
        if let Some(i) = self.active_or_latest(new, old) {
            // The real controller leaves a set already of the right size
            // alone, annotations included; one sized for another count (a
            // scale back in mid-rollout) then looks like a scaling event on
            // every sync and the rollout never completes. Refreshing its
            // annotations ends that.
            self.set_size(i, replicas);
            return;
        }
        if let Some(n) = new
            && self.saturated(n)
        {
            for i in self.active(old) {
                self.scale(i, 0);
            }
            return;
        }
        if !matches!(self.d.strategy, Strategy::RollingUpdate { .. }) {
            return;
        }
        let mut all = self.active(&Self::all_of(new, old));
        let current: i64 = all.iter().map(|i| self.rss[*i].replicas).sum();
        let allowed = if replicas > 0 {
            replicas + self.d.max_surge()
        } else {
            0
        };
        let to_add = allowed - current;
        if to_add > 0 {
            // Biggest first; among equals the newest.
            all.sort_by(|a, b| {
                let (a, b) = (&self.rss[*a], &self.rss[*b]);
                b.replicas.cmp(&a.replicas).then_with(|| by_creation(b, a))
            });
        } else if to_add < 0 {
            // Biggest first; among equals the oldest.
            all.sort_by(|a, b| {
                let (a, b) = (&self.rss[*a], &self.rss[*b]);
                b.replicas.cmp(&a.replicas).then_with(|| by_creation(a, b))
            });
        }
        let mut added = 0;
        let mut sizes = Vec::with_capacity(all.len());
        for i in &all {
            let rs = &self.rss[*i];
            let proportion = if to_add != 0 {
                self.proportion(rs, to_add, added)
            } else {
                0
            };
            added += proportion;
            sizes.push(rs.replicas + proportion);
        }
        for (k, i) in all.iter().enumerate() {
            let mut size = sizes[k];
            if k == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            self.set_size(*i, size);
        }
    }

    /// `GetProportion`: this ReplicaSet's share of a change of `to_add` pods.
    fn proportion(&self, rs: &RsView, to_add: i64, added: i64) -> i64 {
        if rs.replicas == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = if self.d.replicas == 0 {
            -rs.replicas
        } else {
            let target = self.d.replicas + self.d.max_surge();
            let annotated = rs
                .annotation_int(MAX_REPLICAS)
                .unwrap_or(self.status.replicas);
            if annotated == 0 {
                0
            } else {
                // math.Round: halves away from zero.
                let scaled = (rs.replicas * target) as f64 / annotated as f64;
                scaled.round() as i64 - rs.replicas
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// `FindActiveOrLatest`: the only active ReplicaSet, or the newest when none is.
    fn active_or_latest(&self, new: Option<usize>, old: &[usize]) -> Option<usize> {
        if new.is_none() && old.is_empty() {
            return None;
        }
        let mut old_sorted = old.to_vec();
        old_sorted.sort_by(|a, b| by_creation(&self.rss[*b], &self.rss[*a]));
        let active = self.active(&Self::all_of(new, &old_sorted));
        match active.len() {
            0 => new.or_else(|| old_sorted.first().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// `IsSaturated`: the new ReplicaSet has every replica, all available.
    fn saturated(&self, n: usize) -> bool {
        let rs = &self.rss[n];
        rs.annotation_int(DESIRED_REPLICAS) == Some(self.d.replicas)
            && rs.replicas == self.d.replicas
            && rs.available == self.d.replicas
    }

    /// `rolloutRolling`.
    fn rolling(&mut self) -> Status {
        let (new, old) = self.sync_revision(true);
        let Some(n) = new else {
            return self.rollout_status(None, &old);
        };
        let mut all = old.clone();
        all.push(n);
        // Scale up, if we can.
        let new_replicas = self.rss[n].replicas;
        let scaled_up = if new_replicas == self.d.replicas {
            false
        } else if new_replicas > self.d.replicas {
            self.scale(n, self.d.replicas)
        } else {
            let count = self.new_rs_replicas(&all, n);
            self.scale(n, count)
        };
        if scaled_up {
            return self.rollout_status(new, &old);
        }
        // Scale down, if we can.
        if self.reconcile_old(&all, &old, n) {
            return self.rollout_status(new, &old);
        }
        let status = self.rollout_status(new, &old);
        if status::complete(self.d, &status) {
            self.cleanup(&old);
        }
        status
    }

    /// `reconcileOldReplicaSets`: scale old ReplicaSets down as far as
    /// `maxUnavailable` allows, unhealthy pods first.
    fn reconcile_old(&mut self, all: &[usize], old: &[usize], new: usize) -> bool {
        let old_pods: i64 = old.iter().map(|i| self.rss[*i].replicas).sum();
        if old_pods == 0 {
            return false;
        }
        let all_pods: i64 = all.iter().map(|i| self.rss[*i].replicas).sum();
        let min_available = self.d.replicas - self.d.max_unavailable();
        let new_unavailable = self.rss[new].replicas - self.rss[new].available;
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let mut active_old = self.active(old);
        active_old.sort_by(|a, b| by_creation(&self.rss[*a], &self.rss[*b]));
        // Clean up unhealthy replicas first.
        let mut cleaned = 0;
        for i in &active_old {
            if cleaned >= max_scaled_down {
                break;
            }
            let rs = &self.rss[*i];
            if rs.replicas == 0 || rs.replicas <= rs.available {
                continue;
            }
            let down = (max_scaled_down - cleaned).min(rs.replicas - rs.available);
            let target = rs.replicas - down;
            self.scale(*i, target);
            cleaned += down;
        }
        // Then scale down as far as availability allows.
        let available: i64 = all.iter().map(|i| self.rss[*i].available).sum();
        let mut scaled = 0;
        if available > min_available {
            let total = available - min_available;
            for i in &active_old {
                if scaled >= total {
                    break;
                }
                let replicas = self.rss[*i].replicas;
                if replicas == 0 {
                    continue;
                }
                let down = replicas.min(total - scaled);
                self.scale(*i, replicas - down);
                scaled += down;
            }
        }
        cleaned + scaled > 0
    }

    /// `rolloutRecreate`: old ReplicaSets to 0, wait until their pods are
    /// gone, then the new one at full size.
    fn recreate(&mut self) -> Status {
        let (mut new, old) = self.sync_revision(false);
        let mut scaled_down = false;
        for i in self.active(&old) {
            scaled_down |= self.scale(i, 0);
        }
        if scaled_down {
            return self.rollout_status(new, &old);
        }
        let old_running = old.iter().any(|i| {
            let rs = &self.rss[*i];
            rs.status_replicas > 0 || rs.pods_not_finished > 0
        });
        if old_running {
            return self.rollout_status(new, &old);
        }
        if new.is_none() {
            new = self.sync_revision(true).0;
        }
        if let Some(n) = new {
            self.scale(n, self.d.replicas);
        }
        let status = self.rollout_status(new, &old);
        if status::complete(self.d, &status) {
            self.cleanup(&old);
        }
        status
    }

    /// `cleanupDeployment`: old ReplicaSets beyond `revisionHistoryLimit`,
    /// oldest revision first, once they have no pods.
    fn cleanup(&mut self, old: &[usize]) {
        let Some(limit) = self.d.revision_history_limit else {
            return;
        };
        let mut alive: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| !self.rss[*i].deleting)
            .collect();
        let excess = alive.len() as i64 - limit;
        if excess <= 0 {
            return;
        }
        alive.sort_by(|a, b| {
            let (a, b) = (&self.rss[*a], &self.rss[*b]);
            a.revision.cmp(&b.revision).then_with(|| by_creation(a, b))
        });
        for i in alive.into_iter().take(excess as usize) {
            let rs = &self.rss[i];
            if rs.status_replicas != 0 || rs.replicas != 0 || rs.generation > rs.observed_generation
            {
                continue;
            }
            self.deletes.push(rs.name.clone());
        }
    }
}

/// `copyDeploymentAnnotationsToReplicaSet`.
fn copy_annotations(d: &DeployView, to: &mut Map<String, Value>) {
    for (k, v) in &d.annotations {
        if copied_annotation(k) && to.get(k) != Some(v) {
            to.insert(k.clone(), v.clone());
        }
    }
}
