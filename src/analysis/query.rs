//! Query templates: PromQL with `${variable}`s for the scope being measured.
//!
//! The one property this module exists for: **a substituted value can never
//! change the structure of the query.** It is enforced in two steps:
//!
//! * [`QueryTemplate::parse`] runs a small tokenizer over the template that
//!   knows whether it is inside a string literal (`"…"`, `'…'`, `` `…` ``), a
//!   range/subquery bracket (`[…]`), a `#` comment or plain PromQL, and checks
//!   that quotes and `()[]{}` are balanced. A `${name}` is accepted only inside
//!   a `"…"`/`'…'` string, or as `${interval}` inside `[…]`; anywhere else
//!   (label names, metric names, operators, backtick strings, which cannot
//!   escape anything) it is rejected with the variable's line and column.
//! * [`QueryTemplate::render`] escapes every value for the string it sits in
//!   (see [`escape`]), so a value cannot close its string, and inserts only
//!   a duration it formatted itself into `[…]`.
//!
//! `$$` renders a literal `$` (so a template can contain a literal `${`).

pub mod escape;
#[cfg(test)]
mod tests;
mod tokenizer;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use escape::{escape_regex, escape_string_literal, pod_regex_for_replica_set};
use tokenizer::{Segment, Slot, Tokenizer};

/// Variables every template may use; extras come from [`Scope::extra`].
pub const BUILTIN_VARIABLES: [&str; 6] = [
    "namespace",
    "revision",
    "role",
    "replicaSet",
    "podRegex",
    "interval",
];

/// What is being measured: one side (canary, baseline, stable…) of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// Kubernetes namespace of the pods.
    pub namespace: String,
    /// Pod-template hash of the revision.
    pub revision: String,
    /// `canary`, `baseline`, `stable`, …
    pub role: String,
    /// Name of the ReplicaSet whose pods are measured.
    pub replica_set: String,
    /// RE2 regex matching exactly the pod names of `replica_set`.
    pub pod_regex: String,
    /// User-defined variables; may not reuse a built-in name.
    pub extra: BTreeMap<String, String>,
}

impl Scope {
    /// A scope for the pods of one ReplicaSet; `pod_regex` is derived from its name.
    pub fn for_replica_set(
        namespace: impl Into<String>,
        replica_set: impl Into<String>,
        revision: impl Into<String>,
        role: impl Into<String>,
    ) -> Self {
        let replica_set = replica_set.into();
        Scope {
            namespace: namespace.into(),
            revision: revision.into(),
            role: role.into(),
            pod_regex: pod_regex_for_replica_set(&replica_set),
            replica_set,
            extra: BTreeMap::new(),
        }
    }

    /// Add a user-defined variable.
    pub fn with_extra(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }
}

/// Where in the template text something is (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset in the template.
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a template was rejected. Every message names the variable and/or position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("query template is empty")]
    Empty,
    #[error(
        "unknown variable ${{{name}}} at {position}; known variables: namespace, revision, role, replicaSet, podRegex, interval{extras}"
    )]
    UnknownVariable {
        name: String,
        position: Position,
        /// `, ` + the scope's extra names, or empty.
        extras: String,
    },
    #[error("variable at {position} is not terminated: `${{` without a closing `}}`")]
    UnterminatedVariable { position: Position },
    #[error(
        "invalid variable name {name:?} at {position}: use letters, digits and `_`, not starting with a digit"
    )]
    InvalidVariableName { name: String, position: Position },
    #[error(
        "variable ${{{name}}} at {position} is outside a quoted label value: put it inside double quotes (e.g. label=\"${{{name}}}\"); only ${{interval}} may stand unquoted, as a range duration [${{interval}}]"
    )]
    MisplacedVariable { name: String, position: Position },
    #[error(
        "variable ${{{name}}} at {position} is inside a backtick string, which cannot escape a value: use double quotes"
    )]
    VariableInRawString { name: String, position: Position },
    #[error(
        "variable ${{{name}}} at {position} is used as a range duration; only ${{interval}} may be used inside [...]"
    )]
    NotADuration { name: String, position: Position },
    #[error("string starting at {position} is not terminated on its line")]
    UnterminatedString { position: Position },
    #[error("`{found}` at {position} has no matching opening bracket")]
    UnmatchedClose { found: char, position: Position },
    #[error("`{open}` at {position} is never closed")]
    Unclosed { open: char, position: Position },
    #[error("`{found}` at {position} does not close the `{open}` at {open_position}")]
    Mismatched {
        found: char,
        position: Position,
        open: char,
        open_position: Position,
    },
    #[error("scope extra {name:?} reuses the name of a built-in variable")]
    ReservedExtra { name: String },
    #[error(
        "variable ${{{name}}} at {position} is empty; an empty label matcher would match series that lack the label"
    )]
    EmptyValue { name: String, position: Position },
    #[error("interval must be at least 1ms, got {0:?}")]
    InvalidInterval(Duration),
}

/// A parsed, validated PromQL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTemplate {
    source: String,
    segments: Vec<Segment>,
}

impl QueryTemplate {
    /// Tokenize and validate `text`; see the module docs for the rules.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let segments = Tokenizer::new(text).run()?;
        Ok(QueryTemplate {
            source: text.to_owned(),
            segments,
        })
    }

    /// The template text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Names of the variables used, in order of first use.
    pub fn variables(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for segment in &self.segments {
            if let Segment::Var { name, .. } = segment
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// Substitute the scope's values and `interval` (used for `${interval}`).
    ///
    /// Literal names (`namespace`, `revision`, `role`, `replicaSet`, and
    /// `interval`) placed in a `=~`/`!~` matcher are also regex-escaped, so
    /// they still match only themselves; `podRegex` and extras are inserted
    /// as the regexes they are.
    pub fn render(&self, scope: &Scope, interval: Duration) -> Result<String, TemplateError> {
        if let Some(name) = scope
            .extra
            .keys()
            .find(|k| BUILTIN_VARIABLES.contains(&k.as_str()))
        {
            return Err(TemplateError::ReservedExtra { name: name.clone() });
        }
        let duration =
            escape::promql_duration(interval).ok_or(TemplateError::InvalidInterval(interval))?;
        let mut out = String::with_capacity(self.source.len() + 64);
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var {
                    name,
                    position,
                    slot,
                } => {
                    let (value, literal) = lookup(name, *position, scope, &duration)?;
                    if value.is_empty() {
                        return Err(TemplateError::EmptyValue {
                            name: name.clone(),
                            position: *position,
                        });
                    }
                    match slot {
                        // The tokenizer only lets `${interval}` into a range.
                        Slot::Range => out.push_str(&duration),
                        Slot::Quoted { quote, regex } => {
                            let value = if *regex && literal {
                                escape_regex(value)
                            } else {
                                value.to_owned()
                            };
                            out.push_str(&escape_string_literal(&value, *quote));
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The value of variable `name`, and whether it is a literal name (as
/// opposed to a regex).
fn lookup<'a>(
    name: &str,
    position: Position,
    scope: &'a Scope,
    duration: &'a str,
) -> Result<(&'a str, bool), TemplateError> {
    Ok(match name {
        "namespace" => (&scope.namespace, true),
        "revision" => (&scope.revision, true),
        "role" => (&scope.role, true),
        "replicaSet" => (&scope.replica_set, true),
        "interval" => (duration, true),
        "podRegex" => (&scope.pod_regex, false),
        other => match scope.extra.get(other) {
            Some(value) => (value, false),
            None => {
                let extras: String = scope.extra.keys().map(|k| format!(", {k}")).collect();
                return Err(TemplateError::UnknownVariable {
                    name: other.to_owned(),
                    position,
                    extras,
                });
            }
        },
    })
}
