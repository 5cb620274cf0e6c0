//! The template tokenizer: one pass that tracks whether it is in plain
//! PromQL, a quoted or backtick string, a `[…]` range or a `#` comment,
//! checks that quotes and brackets balance, and cuts `${…}` references out of
//! the text together with the slot (string or range) they stand in.

use super::{Position, TemplateError};

/// Where a variable stands, which decides how its value is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Inside a `quote`-delimited string; `regex` when the string is the
    /// right-hand side of a `=~`/`!~` matcher.
    Quoted { quote: char, regex: bool },
    /// Inside `[…]`: a range or subquery duration.
    Range,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    Text(String),
    Var {
        name: String,
        position: Position,
        slot: Slot,
    },
}

/// Single pass over the template text. Keeps the literal text verbatim and
/// cuts out `${…}` references with the slot they stand in.
pub(super) struct Tokenizer<'t> {
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
    pub(super) fn new(text: &'t str) -> Self {
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

    pub(super) fn run(mut self) -> Result<Vec<Segment>, TemplateError> {
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
