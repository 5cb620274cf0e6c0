//! Just enough of the Kubernetes protobuf encoding to read what kubectl's
//! imperative commands send (`kubectl create namespace|configmap|secret`) and
//! the `DeleteOptions` helm sends when it deletes its release Secrets:
//! client-go writes built-in kinds as protobuf and does not fall back to JSON
//! on 415. Everything else must come as JSON or YAML.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::errors::{ApiError, ApiResult};

/// The envelope's magic prefix: `k8s\0`.
const MAGIC: &[u8] = b"k8s\x00";

enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Skip,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            out |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }

    /// The next (field number, value), None at the end; Err on malformed input.
    fn next(&mut self) -> Result<Option<(u64, Wire<'a>)>, ()> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint().ok_or(())?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint().ok_or(())?),
            1 => {
                self.pos += 8;
                Wire::Skip
            }
            2 => {
                let len = usize::try_from(self.varint().ok_or(())?).map_err(|_| ())?;
                let end = self.pos.checked_add(len).ok_or(())?;
                let bytes = self.buf.get(self.pos..end).ok_or(())?;
                self.pos = end;
                Wire::Bytes(bytes)
            }
            5 => {
                self.pos += 4;
                Wire::Skip
            }
            _ => return Err(()),
        };
        if self.pos > self.buf.len() {
            return Err(());
        }
        Ok(Some((tag >> 3, wire)))
    }
}

type Decoded<T> = Result<T, ()>;

fn string(b: &[u8]) -> Decoded<String> {
    String::from_utf8(b.to_vec()).map_err(|_| ())
}

/// A `map<string, V>` entry: key = 1, value = 2.
fn map_entry(b: &[u8]) -> Decoded<(String, Vec<u8>)> {
    let mut r = Reader::new(b);
    let (mut key, mut value) = (String::new(), Vec::new());
    while let Some((field, wire)) = r.next()? {
        match (field, wire) {
            (1, Wire::Bytes(k)) => key = string(k)?,
            (2, Wire::Bytes(v)) => value = v.to_vec(),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_string_entry(map: &mut Map<String, Value>, b: &[u8]) -> Decoded<()> {
    let (k, v) = map_entry(b)?;
    map.insert(k, json!(string(&v)?));
    Ok(())
}

fn insert_bytes_entry(map: &mut Map<String, Value>, b: &[u8]) -> Decoded<()> {
    let (k, v) = map_entry(b)?;
    map.insert(
        k,
        json!(base64::engine::general_purpose::STANDARD.encode(v)),
    );
    Ok(())
}

/// ObjectMeta: the fields a client sets on create.
fn object_meta(b: &[u8]) -> Decoded<Value> {
    let mut r = Reader::new(b);
    let mut meta = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    let mut finalizers = Vec::new();
    while let Some((field, wire)) = r.next()? {
        match (field, wire) {
            (1, Wire::Bytes(v)) => drop(meta.insert("name".into(), json!(string(v)?))),
            (2, Wire::Bytes(v)) => drop(meta.insert("generateName".into(), json!(string(v)?))),
            (3, Wire::Bytes(v)) => drop(meta.insert("namespace".into(), json!(string(v)?))),
            (6, Wire::Bytes(v)) => drop(meta.insert("resourceVersion".into(), json!(string(v)?))),
            (11, Wire::Bytes(v)) => insert_string_entry(&mut labels, v)?,
            (12, Wire::Bytes(v)) => insert_string_entry(&mut annotations, v)?,
            (14, Wire::Bytes(v)) => finalizers.push(json!(string(v)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

/// `meta/v1.DeleteOptions`: gracePeriodSeconds = 1, preconditions = 2
/// (uid = 1, resourceVersion = 2), orphanDependents = 3,
/// propagationPolicy = 4, dryRun = 5.
fn delete_options(raw: &[u8]) -> Decoded<Value> {
    let mut r = Reader::new(raw);
    let mut obj = Map::new();
    let mut dry_run = Vec::new();
    while let Some((field, wire)) = r.next()? {
        match (field, wire) {
            // An int64 varint is the two's complement of a negative number.
            (1, Wire::Varint(v)) => drop(obj.insert("gracePeriodSeconds".into(), json!(v as i64))),
            (2, Wire::Bytes(v)) => {
                let mut p = Reader::new(v);
                let mut pre = Map::new();
                while let Some((f, w)) = p.next()? {
                    match (f, w) {
                        (1, Wire::Bytes(u)) => drop(pre.insert("uid".into(), json!(string(u)?))),
                        (2, Wire::Bytes(u)) => {
                            drop(pre.insert("resourceVersion".into(), json!(string(u)?)))
                        }
                        _ => {}
                    }
                }
                obj.insert("preconditions".into(), Value::Object(pre));
            }
            (3, Wire::Varint(v)) => drop(obj.insert("orphanDependents".into(), json!(v != 0))),
            (4, Wire::Bytes(v)) => drop(obj.insert("propagationPolicy".into(), json!(string(v)?))),
            (5, Wire::Bytes(v)) => dry_run.push(json!(string(v)?)),
            _ => {}
        }
    }
    if !dry_run.is_empty() {
        obj.insert("dryRun".into(), Value::Array(dry_run));
    }
    Ok(Value::Object(obj))
}

fn decode_kind(kind: &str, raw: &[u8]) -> Decoded<Option<Value>> {
    if kind == "DeleteOptions" {
        return delete_options(raw).map(Some);
    }
    let mut r = Reader::new(raw);
    let mut obj = Map::new();
    let (mut data, mut binary, mut string_data) = (Map::new(), Map::new(), Map::new());
    while let Some((field, wire)) = r.next()? {
        match (kind, field, wire) {
            (_, 1, Wire::Bytes(v)) => drop(obj.insert("metadata".into(), object_meta(v)?)),
            ("Namespace", _, _) => {}
            ("ConfigMap", 2, Wire::Bytes(v)) => insert_string_entry(&mut data, v)?,
            ("ConfigMap", 3, Wire::Bytes(v)) => insert_bytes_entry(&mut binary, v)?,
            ("ConfigMap" | "Secret", 4, Wire::Varint(v)) => {
                drop(obj.insert("immutable".into(), json!(v != 0)))
            }
            ("Secret", 2, Wire::Bytes(v)) => insert_bytes_entry(&mut data, v)?,
            ("Secret", 3, Wire::Bytes(v)) => drop(obj.insert("type".into(), json!(string(v)?))),
            ("Secret", 5, Wire::Bytes(v)) => insert_string_entry(&mut string_data, v)?,
            ("ConfigMap" | "Secret", _, _) => {}
            _ => return Ok(None),
        }
    }
    if !matches!(kind, "Namespace" | "ConfigMap" | "Secret") {
        return Ok(None);
    }
    for (field, map) in [
        ("data", data),
        ("binaryData", binary),
        ("stringData", string_data),
    ] {
        if !map.is_empty() {
            obj.insert(field.into(), Value::Object(map));
        }
    }
    Ok(Some(Value::Object(obj)))
}

/// Decodes a `k8s\0` protobuf envelope holding a Namespace, ConfigMap,
/// Secret or DeleteOptions.
pub fn decode(body: &[u8]) -> ApiResult<Value> {
    let malformed = || ApiError::bad_request("the protobuf request body is malformed");
    let payload = body.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let mut r = Reader::new(payload);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while let Some((field, wire)) = r.next().map_err(|_| malformed())? {
        match (field, wire) {
            (1, Wire::Bytes(type_meta)) => {
                let mut t = Reader::new(type_meta);
                while let Some((f, w)) = t.next().map_err(|_| malformed())? {
                    match (f, w) {
                        (1, Wire::Bytes(v)) => api_version = string(v).map_err(|_| malformed())?,
                        (2, Wire::Bytes(v)) => kind = string(v).map_err(|_| malformed())?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(v)) => raw = v,
            _ => {}
        }
    }
    let Some(mut obj) = decode_kind(&kind, raw).map_err(|_| malformed())? else {
        return Err(ApiError::unsupported_media_type(format!(
            "the sandbox reads protobuf only for Namespace, ConfigMap, Secret and DeleteOptions (got {kind}); send JSON or YAML"
        )));
    };
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, bytes.len() as u8];
        out.extend_from_slice(bytes);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v)].concat()
    }

    #[test]
    fn decodes_a_configmap_envelope() {
        let meta = [field(1, b"cfg"), field(11, &entry("app", b"web"))].concat();
        let cm = [
            field(1, &meta),
            field(2, &entry("k", b"v")),
            field(3, &entry("b", b"\x00\x01")),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"ConfigMap")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &cm)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(obj["kind"], "ConfigMap");
        assert_eq!(obj["metadata"]["name"], "cfg");
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert_eq!(obj["data"]["k"], "v");
        assert_eq!(obj["binaryData"]["b"], "AAE=");
    }

    #[test]
    fn decodes_delete_options_as_helm_sends_them() {
        // gracePeriodSeconds 0 (varint field 1), preconditions.uid, propagationPolicy.
        let opts = [
            vec![1 << 3, 0],
            field(2, &field(1, b"u-1")),
            field(4, b"Background"),
        ]
        .concat();
        let type_meta = [field(1, b"meta.k8s.io/v1"), field(2, b"DeleteOptions")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &opts)].concat();
        let obj = decode(&body).unwrap();
        assert_eq!(obj["gracePeriodSeconds"], 0);
        assert_eq!(obj["preconditions"]["uid"], "u-1");
        assert_eq!(obj["propagationPolicy"], "Background");
    }

    #[test]
    fn rejects_garbage_and_unknown_kinds() {
        assert_eq!(decode(b"nope").unwrap_err().code, 400);
        assert_eq!(decode(b"k8s\x00\x0a\xff").unwrap_err().code, 400);
        let type_meta = [field(1, b"v1"), field(2, b"Pod")].concat();
        let body = [MAGIC.to_vec(), field(1, &type_meta), field(2, &[])].concat();
        assert_eq!(decode(&body).unwrap_err().code, 415);
    }
}
