//! Parse errors: what was wrong, and where (1-based column + a caret line).
//!
//! This module owns [`ParseError`] only; it never parses or evaluates.

use std::fmt;

/// A filter expression that could not be parsed.
///
/// `Display` prints the message, the expression and a caret line under the
/// offending token:
///
/// ```text
/// expected a port number, found `http` (column 6)
///   port http and proto tcp
///        ^^^^
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    message: String,
    column: usize,
    width: usize,
    input: String,
}

impl ParseError {
    /// Build an error for `input`, pointing at the byte range `start..end`.
    pub(crate) fn at(input: &str, start: usize, end: usize, message: impl Into<String>) -> Self {
        let start = start.min(input.len());
        let end = end.clamp(start, input.len());
        let column = input[..start].chars().count() + 1;
        let width = input[start..end].chars().count().max(1);
        ParseError {
            message: message.into(),
            column,
            width,
            input: input.to_string(),
        }
    }

    /// What was wrong, without position (e.g. ``unknown field `prot` ``).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 1-based column (in characters) of the first offending character.
    /// One past the end of the input when the expression ended too early.
    pub fn column(&self) -> usize {
        self.column
    }

    /// Number of characters the caret line underlines (at least 1).
    pub fn width(&self) -> usize {
        self.width
    }

    /// The expression as given.
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The caret line: spaces up to [`column`](Self::column), then `^` for
    /// [`width`](Self::width) characters.
    pub fn caret_line(&self) -> String {
        let mut s = " ".repeat(self.column - 1);
        s.push_str(&"^".repeat(self.width));
        s
    }

    /// The same error, as if the expression had `prefix_chars` more characters in
    /// front and was `input` (used when a larger expression is built from parts,
    /// e.g. the monitor's filter builder).
    pub fn shifted(&self, prefix_chars: usize, input: &str) -> ParseError {
        ParseError {
            message: self.message.clone(),
            column: self.column + prefix_chars,
            width: self.width,
            input: input.to_string(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (column {})\n  {}\n  {}",
            self.message,
            self.column,
            self.input,
            self.caret_line()
        )
    }
}

impl std::error::Error for ParseError {}
