//! Where and why a rule was rejected.

use std::fmt;

/// Why a rule was rejected, and where.
///
/// `position` is the 1-based index, in characters (not bytes), of the character the error is
/// about; an error about the end of the rule (such as a missing value) is one past the last
/// character. `line` and `column` are the same place as a 1-based line (lines are separated by
/// `\n`) and a 1-based column in characters within that line; for a rule on one line, `line`
/// is 1 and `column` equals `position`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub position: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl RuleError {
    /// An error at `position` (1-based, in characters) of `source`.
    pub(super) fn new(source: &str, position: usize, message: impl Into<String>) -> Self {
        let (line, column) = line_and_column(source, position);
        Self {
            position,
            line,
            column,
            message: message.into(),
        }
    }
}

/// "at column 17: …" for an error on the first line, "at line 2, column 5: …" otherwise.
impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", Location(self.line, self.column), self.message)
    }
}

impl std::error::Error for RuleError {}

/// The line and column of the character at `position` (1-based) of `source`.
pub(super) fn line_and_column(source: &str, position: usize) -> (usize, usize) {
    let before = source.chars().take(position.saturating_sub(1));
    let (mut line, mut column) = (1, 1);
    for c in before {
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// A place, worded as in error messages: "at column 3" or "at line 2, column 3".
pub(super) struct Location(pub(super) usize, pub(super) usize);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self(1, column) => write!(f, "at column {column}"),
            Self(line, column) => write!(f, "at line {line}, column {column}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_on_the_first_line_name_the_column() {
        let error = RuleError::new("country == ", 12, "expected a value after `==`");
        assert_eq!((error.position, error.line, error.column), (12, 1, 12));
        assert_eq!(
            error.to_string(),
            "at column 12: expected a value after `==`"
        );
    }

    #[test]
    fn errors_on_later_lines_name_the_line_and_column() {
        let source = "a == 1\nand  b\n";
        // `b` is the 13th character: line 2, column 6.
        let error = RuleError::new(source, 13, "unknown field `b`");
        assert_eq!((error.line, error.column), (2, 6));
        assert_eq!(error.to_string(), "at line 2, column 6: unknown field `b`");
        // One past the end, after the final newline.
        assert_eq!(line_and_column(source, 15), (3, 1));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(line_and_column("é == \"ü\" x", 10), (1, 10));
    }
}
