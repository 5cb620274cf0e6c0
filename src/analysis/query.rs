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

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use escape::{escape_regex, escape_string_literal, pod_regex_for_replica_set};

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

/// Where a variable stands, which decides how its value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Inside a `quote`-delimited string; `regex` when the string is the
    /// right-hand side of a `=~`/`!~` matcher.
    Quoted { quote: char, regex: bool },
    /// Inside `[…]`: a range or subquery duration.
    Range,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var {
        name: String,
        position: Position,
        slot: Slot,
    },
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

/// Single pass over the template text. Keeps the literal text verbatim and
/// cuts out `${…}` references with the slot they stand in.
struct Tokenizer<'t> {
    text: &'t str,
    chars: Vec<(usize, char)>,
    i: usize,
    segments: Vec<Segment>,
    literal: String,
    /// Open `(`, `[`, `{` with their positions.
    stack: Vec<(char, Position)>,
    /// Last two non-blank characters of plain PromQL, to recognise `=~`/`!~`.
    recent: [char; 2],
}

impl<'t> Tokenizer<'t> {
    fn new(text: &'t str) -> Self {
        Tokenizer {
            text,
            chars: text.char_indices().collect(),
            i: 0,
            segments: Vec::new(),
            literal: String::new(),
            stack: Vec::new(),
            recent: [' ', ' '],
        }
    }

    fn position(&self, offset: usize) -> Position {
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        Position {
            offset,
            line,
            column,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).map(|&(_, c)| c)
    }

    fn run(mut self) -> Result<Vec<Segment>, TemplateError> {
        while let Some(&(offset, c)) = self.chars.get(self.i) {
            match c {
                '#' => self.comment(),
                '"' | '\'' => self.quoted(offset, c)?,
                '`' => self.raw_string(offset)?,
                '(' | '[' | '{' => {
                    self.stack.push((c, self.position(offset)));
                    self.plain(c);
                }
                ')' | ']' | '}' => {
                    self.close(offset, c)?;
                    self.plain(c);
                }
                '$' => {
                    let range = matches!(self.stack.last(), Some(('[', _)));
                    let slot = range.then_some(Slot::Range);
                    self.dollar(offset, slot)?;
                }
                _ => self.plain(c),
            }
        }
        if let Some(&(open, position)) = self.stack.last() {
            return Err(TemplateError::Unclosed { open, position });
        }
        self.flush();
        Ok(self.segments)
    }

    /// A character of plain PromQL: copied as is.
    fn plain(&mut self, c: char) {
        self.literal.push(c);
        if !c.is_whitespace() {
            self.recent = [self.recent[1], c];
        }
        self.i += 1;
    }

    fn flush(&mut self) {
        if !self.literal.is_empty() {
            self.segments
                .push(Segment::Text(std::mem::take(&mut self.literal)));
        }
    }

    fn close(&mut self, offset: usize, found: char) -> Result<(), TemplateError> {
        let expected_open = match found {
            ')' => '(',
            ']' => '[',
            _ => '{',
        };
        match self.stack.pop() {
            None => Err(TemplateError::UnmatchedClose {
                found,
                position: self.position(offset),
            }),
            Some((open, open_position)) if open != expected_open => {
                Err(TemplateError::Mismatched {
                    found,
                    position: self.position(offset),
                    open,
                    open_position,
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// `#` to the end of the line is a PromQL comment: copied verbatim, and
    /// a quote inside it must not be taken for the start of a string.
    fn comment(&mut self) {
        while let Some(c) = self.peek(0) {
            if c == '\n' {
                break;
            }
            self.literal.push(c);
            self.i += 1;
        }
    }

    /// A `"…"` or `'…'` string; variables inside it are substituted.
    fn quoted(&mut self, start: usize, quote: char) -> Result<(), TemplateError> {
        let regex = matches!(self.recent, ['=', '~'] | ['!', '~']);
        let slot = Slot::Quoted { quote, regex };
        self.literal.push(quote);
        self.i += 1;
        loop {
            let Some(&(offset, c)) = self.chars.get(self.i) else {
                return Err(TemplateError::UnterminatedString {
                    position: self.position(start),
                });
            };
            match c {
                '\n' => {
                    return Err(TemplateError::UnterminatedString {
                        position: self.position(start),
                    });
                }
                '\\' => {
                    // Keep the template's own escape sequence intact; the
                    // escaped character can neither end the string nor start
                    // a variable.
                    let Some(next) = self.peek(1) else {
                        return Err(TemplateError::UnterminatedString {
                            position: self.position(start),
                        });
                    };
                    self.literal.push('\\');
                    self.literal.push(next);
                    self.i += 2;
                }
                '$' => self.dollar(offset, Some(slot))?,
                c if c == quote => {
                    self.literal.push(c);
                    self.i += 1;
                    // A string ends any `=~` context.
                    self.recent = [self.recent[1], quote];
                    return Ok(());
                }
                c => {
                    self.literal.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// A `` `…` `` raw string: no escapes exist in it, so no variable may be.
    fn raw_string(&mut self, start: usize) -> Result<(), TemplateError> {
        self.literal.push('`');
        self.i += 1;
        loop {
            let Some(&(offset, c)) = self.chars.get(self.i) else {
                return Err(TemplateError::UnterminatedString {
                    position: self.position(start),
                });
            };
            if c == '$' && self.peek(1) == Some('{') {
                let (name, _) = self.variable_name(offset)?;
                return Err(TemplateError::VariableInRawString {
                    name,
                    position: self.position(offset),
                });
            }
            self.literal.push(c);
            self.i += 1;
            if c == '`' {
                self.recent = [self.recent[1], '`'];
                return Ok(());
            }
        }
    }

    /// At a `$`: `$$` is a literal `$`, `${name}` a variable (allowed only in
    /// `slot`), anything else a plain `$`.
    fn dollar(&mut self, offset: usize, slot: Option<Slot>) -> Result<(), TemplateError> {
        match self.peek(1) {
            Some('$') => {
                self.literal.push('$');
                self.i += 2;
            }
            Some('{') => {
                let (name, len) = self.variable_name(offset)?;
                let position = self.position(offset);
                match slot {
                    None => return Err(TemplateError::MisplacedVariable { name, position }),
                    Some(Slot::Range) if name != "interval" => {
                        return Err(TemplateError::NotADuration { name, position });
                    }
                    Some(slot) => {
                        self.flush();
                        self.segments.push(Segment::Var {
                            name,
                            position,
                            slot,
                        });
                    }
                }
                self.i += len;
            }
            _ => {
                self.literal.push('$');
                self.i += 1;
            }
        }
        Ok(())
    }

    /// Read `${name}` starting at the `$` (index `self.i`); returns the name
    /// and the length of the reference in characters. Does not advance.
    fn variable_name(&self, offset: usize) -> Result<(String, usize), TemplateError> {
        let mut name = String::new();
        let mut j = self.i + 2;
        loop {
            match self.chars.get(j) {
                Some(&(_, '}')) => break,
                Some(&(_, c)) if c != '\n' && c != '"' && c != '\'' && c != '`' => name.push(c),
                _ => {
                    return Err(TemplateError::UnterminatedVariable {
                        position: self.position(offset),
                    });
                }
            }
            j += 1;
        }
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(TemplateError::InvalidVariableName {
                name,
                position: self.position(offset),
            });
        }
        Ok((name, j + 1 - self.i))
    }
}
