//! Typed errors of the judge. Data problems inside one metric are not errors:
//! they become that metric's `Error` label so the rest of the canary is judged.

use thiserror::Error;

/// One configuration problem, with the JSON path of the offending field.
#[derive(Debug, Clone, PartialEq, Error)]
#[error("{path}: {message}")]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

/// Every problem found in a config (validation does not stop at the first).
#[derive(Debug, Clone, PartialEq, Error)]
#[error("invalid judge config: {}", .issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors {
    pub issues: Vec<ConfigIssue>,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum JudgeError {
    #[error(transparent)]
    InvalidConfig(#[from] ConfigErrors),
    #[error("samples given for metric {0:?}, which the config does not declare")]
    UnknownMetric(String),
    #[error("samples for metric {0:?} given twice")]
    DuplicateSamples(String),
    #[error("metric {name:?} is configured as {expected} but its samples are {found}")]
    KindMismatch {
        name: String,
        expected: &'static str,
        found: &'static str,
    },
}
