//! A cached object kept as its JSON ([`Packed`]), for the reflector caches
//! that hold one or more objects per Rollout.
//!
//! A k8s-openapi object in memory costs several times its JSON: every
//! optional field is inline (an empty `Container` is 2.3 KB, a `ReplicaSet`
//! 2.4 KB before any heap), and every map is a B-tree node of about half a
//! kilobyte however few labels it holds. At 10,000 Rollouts the deserialized
//! caches held ≈ 9 KB per Rollout (twice: the notifier caches them too),
//! ≈ 9 KB per ReplicaSet and ≈ 2.3 KB per Service — 347 MB of operator RSS.
//! A `Packed<K>` keeps the object's JSON (managedFields and kubectl's
//! last-applied copy dropped), deflated (≈ 2× smaller: a ReplicaSet's 1.3 KB
//! of JSON is ≈ 0.6 KB; compressing and inflating one costs microseconds),
//! and, deserialized, only the metadata kube's
//! runtime reads from a cached object: identity, resourceVersion, generation,
//! owner references (the `owns` mapping) and deletion. A reconcile unpacks
//! the few objects it reads (tens of microseconds each), so the cost per
//! reconcile stays independent of the fleet while the cache shrinks ≈ 4×.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use miniz_oxide::deflate::core::{
    CompressorOxide, TDEFLFlush, TDEFLStatus, compress, create_comp_flags_from_zip_params,
};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

/// The annotation client-side `kubectl apply` keeps: a full copy of the
/// manifest, which the operator never reads.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A cached `K` as its JSON plus the metadata the runtime reads.
pub struct Packed<K> {
    meta: ObjectMeta,
    /// The object's JSON, deflated.
    json: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

/// A packed object that does not unpack: cannot happen for bytes [`Packed::pack`]
/// wrote from a `K`, unless `K`'s serde forms disagree (a bug, reported as such).
#[derive(Debug, thiserror::Error)]
#[error("cached {kind} {name} does not unpack: {reason}")]
pub struct UnpackError {
    kind: String,
    name: String,
    reason: String,
}

/// Deflate level 1: the fastest; higher levels gain a few percent on
/// objects of a kilobyte or two.
const LEVEL: u8 = 1;
/// No cached object inflates beyond this (the API server refuses objects
/// over 1.5 MB of etcd value; JSON is larger than protobuf, hence the margin).
const INFLATED_LIMIT: usize = 16 << 20;

impl<K> Packed<K>
where
    K: Resource + Serialize + DeserializeOwned,
{
    /// Packs `obj`, dropping its managedFields and last-applied copy.
    pub fn pack(mut obj: K) -> Result<Packed<K>, serde_json::Error> {
        let meta = obj.meta_mut();
        meta.managed_fields = None;
        if let Some(annotations) = meta.annotations.as_mut() {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
        let json = serde_json::to_vec(&obj)?;
        let json = deflate(&json)
            .ok_or_else(|| <serde_json::Error as serde::ser::Error>::custom("deflate failed"))?
            .into_boxed_slice();
        let meta = runtime_meta(obj.meta());
        Ok(Packed {
            meta,
            json,
            kind: PhantomData,
        })
    }

    /// The whole object (as packed).
    pub fn unpack(&self) -> Result<K, UnpackError>
    where
        K::DynamicType: Default,
    {
        self.view()
    }

    /// Only the parts of the object `V` reads (serde skips the rest without
    /// allocating it): what a reader of every cached object at once, such as
    /// a metrics scrape, deserializes instead of the whole `K`.
    pub fn view<V: DeserializeOwned>(&self) -> Result<V, UnpackError>
    where
        K::DynamicType: Default,
    {
        let error = |reason: String| UnpackError {
            kind: K::kind(&Default::default()).into_owned(),
            name: self.meta.name.clone().unwrap_or_default(),
            reason,
        };
        let json = miniz_oxide::inflate::decompress_to_vec_with_limit(&self.json, INFLATED_LIMIT)
            .map_err(|e| error(format!("inflating: {e}")))?;
        serde_json::from_slice(&json).map_err(|e| error(e.to_string()))
    }

    /// Bytes held for the object (deflated JSON; for benchmarks and tests).
    pub fn packed_len(&self) -> usize {
        self.json.len()
    }
}

thread_local! {
    /// One compressor per thread, reset between objects. A new one (what
    /// `miniz_oxide::deflate::compress_to_vec` makes per call) is a few
    /// hundred kilobytes that glibc maps, faults in, zeroes and unmaps again
    /// each time: perf showed that as most of a pack.
    static COMPRESSOR: RefCell<Option<Box<CompressorOxide>>> = const { RefCell::new(None) };
}

/// `input` deflated (raw, level [`LEVEL`]); None if the compressor stops
/// without finishing (it does not for an in-memory buffer with room to grow).
fn deflate(input: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        let compressor = slot.get_or_insert_with(|| {
            let flags = create_comp_flags_from_zip_params(LEVEL.into(), 0, 0);
            Box::new(CompressorOxide::new(flags))
        });
        compressor.reset();
        let mut out = vec![0; (input.len() / 2).max(64)];
        let (mut read, mut written) = (0, 0);
        loop {
            let (status, r, w) = compress(
                compressor,
                &input[read..],
                &mut out[written..],
                TDEFLFlush::Finish,
            );
            read += r;
            written += w;
            match status {
                TDEFLStatus::Done => {
                    out.truncate(written);
                    return Some(out);
                }
                // Out of room: grow and go on (no progress with room left
                // would loop, so it is a failure).
                TDEFLStatus::Okay if r > 0 || w > 0 || out.len() - written < 64 => {
                    if out.len() - written < 64 {
                        out.resize(out.len() * 2, 0);
                    }
                }
                _ => return None,
            }
        }
    })
}

/// What kube's runtime reads of a cached object: `ObjectRef` (name,
/// namespace, uid, resourceVersion), the `owns` mapping (controller owner
/// references), generation and deletion. Labels and annotations stay in the
/// JSON only.
fn runtime_meta(meta: &ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        generation: meta.generation,
        owner_references: meta.owner_references.clone(),
        deletion_timestamp: meta.deletion_timestamp.clone(),
        ..ObjectMeta::default()
    }
}

// Not derived: a derive would require `K: Clone`.
impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Packed {
            meta: self.meta.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Packed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packed")
            .field("name", &self.meta.name)
            .field("namespace", &self.meta.namespace)
            .field("resource_version", &self.meta.resource_version)
            .field("bytes", &self.json.len())
            .finish()
    }
}

/// Deserializes a `K` (from a list or watch event) and packs it.
impl<'de, K> Deserialize<'de> for Packed<K>
where
    K: Resource + Serialize + DeserializeOwned,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let obj = K::deserialize(deserializer)?;
        Packed::pack(obj).map_err(D::Error::custom)
    }
}

/// The same API resource as `K` (the watch lists and watches `K`'s URL).
impl<K> Resource for Packed<K>
where
    K: Resource<DynamicType = ()>,
{
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        K::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    /// Changes the runtime's copy only, never the packed JSON.
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::ResourceExt;
    use serde_json::json;

    fn replica_set() -> serde_json::Value {
        json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": "web-abc", "namespace": "shop", "uid": "u1",
                "resourceVersion": "42", "generation": 3,
                "labels": {"app": "web", "rollouts-pod-template-hash": "abc"},
                "annotations": {"redblack.io/revision": "2", LAST_APPLIED_ANNOTATION: "{}"},
                "managedFields": [{"manager": "redblack", "operation": "Apply"}],
                "ownerReferences": [{"apiVersion": "redblack.io/v1alpha1", "kind": "Rollout",
                                     "name": "web", "uid": "r1", "controller": true}]
            },
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "a", "image": "web:2"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1}
        })
    }

    #[test]
    fn unpacks_to_the_object_without_managed_fields_or_last_applied() {
        let packed: Packed<ReplicaSet> = serde_json::from_value(replica_set()).unwrap();
        let mut want: ReplicaSet = serde_json::from_value(replica_set()).unwrap();
        want.metadata.managed_fields = None;
        want.annotations_mut().remove(LAST_APPLIED_ANNOTATION);
        assert_eq!(packed.unpack().unwrap(), want);
    }

    #[test]
    fn the_runtime_sees_identity_version_and_owners_only() {
        let packed: Packed<ReplicaSet> = serde_json::from_value(replica_set()).unwrap();
        assert_eq!(packed.name_any(), "web-abc");
        assert_eq!(packed.namespace().as_deref(), Some("shop"));
        assert_eq!(packed.resource_version().as_deref(), Some("42"));
        assert_eq!(packed.meta().generation, Some(3));
        assert_eq!(packed.owner_references()[0].uid, "r1");
        assert!(packed.meta().labels.is_none());
        assert!(packed.meta().annotations.is_none());
        assert_eq!(
            Packed::<ReplicaSet>::url_path(&(), Some("shop")),
            ReplicaSet::url_path(&(), Some("shop"))
        );
    }

    #[test]
    fn a_watch_event_of_packed_objects_deserializes() {
        let event = json!({"type": "MODIFIED", "object": replica_set()});
        let event: kube::api::WatchEvent<Packed<ReplicaSet>> =
            serde_json::from_value(event).unwrap();
        let kube::api::WatchEvent::Modified(packed) = event else {
            panic!("not a modification");
        };
        assert_eq!(packed.unpack().unwrap().spec.replicas, Some(2));
    }

    #[test]
    fn the_json_is_held_deflated() {
        let packed: Packed<ReplicaSet> = serde_json::from_value(replica_set()).unwrap();
        let json = serde_json::to_vec(&packed.unpack().unwrap()).unwrap();
        assert!(
            packed.packed_len() * 3 < json.len() * 2,
            "{} bytes held for {} of JSON",
            packed.packed_len(),
            json.len()
        );
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let mut packed: Packed<ReplicaSet> = serde_json::from_value(replica_set()).unwrap();
        packed.json = vec![0xff; 8].into_boxed_slice();
        let e = packed.unpack().unwrap_err().to_string();
        assert!(
            e.starts_with("cached ReplicaSet web-abc does not unpack: inflating"),
            "{e}"
        );
    }

    #[test]
    fn what_does_not_deserialize_as_k_is_an_error() {
        let bad = json!({"metadata": {"name": "x"}, "spec": {"replicas": "two"}});
        assert!(serde_json::from_value::<Packed<ReplicaSet>>(bad).is_err());
    }

    proptest::proptest! {
        /// The reused compressor gives what a fresh one gives (its reset is
        /// complete), and what it gives inflates back, for objects of any
        /// size and compressibility (growing the output buffer included).
        #[test]
        fn a_reused_compressor_deflates_as_a_fresh_one(
            inputs in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20_000),
                1..4,
            ),
            repeat in 0usize..200,
        ) {
            for input in &inputs {
                // Compressible too: a run of one byte after the random ones.
                let mut input = input.clone();
                input.extend(std::iter::repeat_n(b'a', repeat * 10));
                let packed = deflate(&input).unwrap();
                proptest::prop_assert_eq!(&packed, &miniz_oxide::deflate::compress_to_vec(&input, LEVEL));
                let back = miniz_oxide::inflate::decompress_to_vec_with_limit(&packed, INFLATED_LIMIT).unwrap();
                proptest::prop_assert_eq!(back, input);
            }
        }
    }
}
