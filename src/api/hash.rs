//! The pod-template hash that names a revision. It must never change between
//! operator versions (a changed hash would look like a new template and roll
//! every fleet), hence a canonical encoding and a golden test.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Kubernetes' "safe" alphabet (no vowels, no 0/1/3: no words, no look-alikes).
const ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";
const HASH_LEN: usize = 10;

/// `sha256(canonical JSON of the template)`, first 8 bytes as a big-endian
/// integer, written as 10 base-27 digits of the safe alphabet (least
/// significant first). Unset optional fields are omitted by serialization, so
/// a newer k8s-openapi with new optional pod fields hashes old templates the same.
pub fn pod_template_hash(template: &PodTemplateSpec) -> String {
    // Serializing k8s-openapi types cannot fail (no maps with non-string keys);
    // Null keeps this total anyway.
    let value = serde_json::to_value(template).unwrap_or(Value::Null);
    value_hash(&value)
}

/// A short hash of any JSON value (canonical: key order does not matter), in
/// the same alphabet: tells whether an analysis body changed.
pub fn value_hash(value: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let mut n = u64::from_be_bytes(first);
    let mut out = String::with_capacity(HASH_LEN);
    for _ in 0..HASH_LEN {
        out.push(char::from(ALPHABET[(n % 27) as usize]));
        n /= 27;
    }
    out
}

/// JSON with object keys sorted at every level and no whitespace; the crate
/// enables serde_json's `preserve_order`, so key order must be imposed here.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*key).clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(*key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "demo", "tier": "web"}},
            "spec": {"containers": [{"name": "demo", "image": image, "ports": [{"containerPort": 8080}]}]}
        }))
        .unwrap()
    }

    #[test]
    fn golden_hash_never_changes() {
        // If this fails, every existing fleet would be seen as a new revision.
        assert_eq!(pod_template_hash(&template("demo:1.0.0")), GOLDEN);
    }

    const GOLDEN: &str = "dkm58l6kjq";

    #[test]
    fn key_order_does_not_matter() {
        let a: PodTemplateSpec = serde_json::from_str(
            r#"{"metadata":{"labels":{"tier":"web","app":"demo"}},"spec":{"containers":[{"image":"demo:1.0.0","name":"demo","ports":[{"containerPort":8080}]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            pod_template_hash(&a),
            pod_template_hash(&template("demo:1.0.0"))
        );
    }

    #[test]
    fn different_templates_differ_and_use_safe_alphabet() {
        let a = pod_template_hash(&template("demo:1.0.0"));
        let b = pod_template_hash(&template("demo:1.0.1"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 10);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
    }
}
