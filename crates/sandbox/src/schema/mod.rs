//! Structural OpenAPI v3 schemas as CRDs declare them: pruning of unknown fields,
//! defaulting, and validation with field paths, as a real API server does.
//!
//! Pure: a schema and an object in, the object defaulted/pruned and errors out.

mod cel;
mod defaults;
mod errors;
mod format;
mod path;
mod prune;
mod structural;
mod validate;

use serde_json::Value;

/// One validation failure, shaped like a `metav1.StatusCause`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`,
    /// `FieldValueTypeInvalid`, `FieldValueTooLong`, ...
    pub reason: String,
    /// The field path as the API server prints it, e.g. `spec.replicas`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// `field: Required value`.
    pub fn required(field: &str) -> FieldError {
        FieldError {
            reason: "FieldValueRequired".into(),
            field: field.into(),
            message: "Required value".into(),
        }
    }

    /// `field: Invalid value: "value": why`.
    pub fn invalid(field: &str, value: &str, why: &str) -> FieldError {
        FieldError {
            reason: "FieldValueInvalid".into(),
            field: field.into(),
            message: format!("Invalid value: \"{value}\": {why}"),
        }
    }
}

/// What validation of one object found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchemaOutcome {
    /// Paths of unknown fields that were pruned (`fieldValidation=Strict` rejects them).
    pub pruned: Vec<String>,
    pub errors: Vec<FieldError>,
}

/// Prunes unknown fields, applies defaults and validates `obj` against `schema`
/// (the CRD version's `openAPIV3Schema`). `metadata`, `apiVersion` and `kind` are
/// not judged by the schema. `old` is the stored object on updates (for CEL
/// transition rules that use `oldSelf`), None on create.
///
/// The order is the apiextensions server's: prune, then default, then validate.
pub fn validate_and_default(schema: &Value, obj: &mut Value, old: Option<&Value>) -> SchemaOutcome {
    let mut outcome = SchemaOutcome::default();
    prune::prune(schema, obj, "", &mut outcome.pruned);
    outcome.pruned.sort();
    defaults::apply_defaults(schema, obj);
    validate::validate(schema, obj, "", &mut outcome.errors);
    // CEL rules assume well-typed values; like a compiler after a type error, they
    // are skipped when the object already failed schema validation.
    if outcome.errors.is_empty() {
        cel::check_rules(schema, obj, old, "", &mut outcome.errors);
    }
    outcome
}

/// Checks that a CRD's schema is structural and usable; errors name the field in
/// the schema relative to `openAPIV3Schema` (e.g. `properties[spec].type`); the
/// server prefixes `spec.versions[i].schema.openAPIV3Schema`.
pub fn check_structural(schema: &Value) -> Vec<FieldError> {
    structural::check_structural(schema)
}

/// The object root and `x-kubernetes-embedded-resource` objects carry
/// apiVersion/kind/metadata that the schema does not judge.
fn is_resource(schema: &Value, path: &str) -> bool {
    path.is_empty()
        || schema
            .get("x-kubernetes-embedded-resource")
            .and_then(Value::as_bool)
            == Some(true)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}
