//! Constructors of [`FieldError`]s with the API server's reasons and messages
//! (`field.Error.ErrorBody()` of k8s.io/apimachinery).

use serde_json::Value;

use super::FieldError;
use super::path::render;

fn err(reason: &str, field: &str, message: String) -> FieldError {
    FieldError {
        reason: reason.into(),
        field: field.into(),
        message,
    }
}

pub fn required(field: &str) -> FieldError {
    err("FieldValueRequired", field, "Required value".into())
}

pub fn invalid(field: &str, value: &Value, detail: &str) -> FieldError {
    err(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {}: {detail}", render(value)),
    )
}

/// A type error; like the real server, the bad "value" shown is the actual type.
pub fn type_invalid(field: &str, actual: &str, want: &str) -> FieldError {
    err(
        "FieldValueTypeInvalid",
        field,
        format!(
            "Invalid value: \"{actual}\": {field} in body must be of type {want}: \"{actual}\""
        ),
    )
}

pub fn not_supported(field: &str, value: &Value, allowed: &[Value]) -> FieldError {
    let quoted: Vec<String> = allowed
        .iter()
        .map(|a| match a {
            Value::String(s) => format!("{s:?}"),
            other => format!("{:?}", other.to_string()),
        })
        .collect();
    err(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {}: supported values: {}",
            render(value),
            quoted.join(", ")
        ),
    )
}

pub fn too_long(field: &str, max: u64) -> FieldError {
    err(
        "FieldValueTooLong",
        field,
        format!("Too long: may not be longer than {max}"),
    )
}

pub fn too_many(field: &str, actual: usize, max: u64) -> FieldError {
    err(
        "FieldValueTooMany",
        field,
        format!("Too many: {actual}: must have at most {max} items"),
    )
}

pub fn duplicate(field: &str, value: &Value) -> FieldError {
    err(
        "FieldValueDuplicate",
        field,
        format!("Duplicate value: {}", render(value)),
    )
}

pub fn forbidden(field: &str, detail: &str) -> FieldError {
    err("FieldValueForbidden", field, format!("Forbidden: {detail}"))
}

pub fn unsupported_keyword(field: &str, value: &Value, allowed: &[&str]) -> FieldError {
    let allowed: Vec<Value> = allowed.iter().map(|a| Value::from(*a)).collect();
    not_supported(field, value, &allowed)
}
