//! Turns the source of a rule into tokens, one at a time and on demand, so that errors come
//! out in source order.

use super::ast::CompareOp;
use super::error::RuleError;

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub(super) kind: TokenKind,
    /// Byte offsets of the token in the source: `source[start..end]` is its text.
    pub(super) start: usize,
    pub(super) end: usize,
    /// 1-based character position of its first character; for [`TokenKind::End`], one past
    /// the last character.
    pub(super) position: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// A field name; its text is the token's text.
    Field,
    /// A string literal, unescaped.
    Text(String),
    Number(f64),
    True,
    False,
    And,
    Or,
    Not,
    In,
    Op(CompareOp),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    /// The end of the source.
    End,
}

/// How long a token's text may grow in a message before it is cut.
const QUOTE_CHARS: usize = 24;

impl Token {
    /// The token for messages: its text in backquotes, or "the end of the rule".
    pub(super) fn describe(&self, source: &str) -> String {
        if self.kind == TokenKind::End {
            return "the end of the rule".to_owned();
        }
        quote(source.get(self.start..self.end).unwrap_or_default())
    }
}

/// `text` in backquotes, cut to [`QUOTE_CHARS`] characters.
pub(super) fn quote(text: &str) -> String {
    if text.chars().nth(QUOTE_CHARS).is_some() {
        let cut: String = text.chars().take(QUOTE_CHARS - 1).collect();
        format!("`{cut}…`")
    } else {
        format!("`{text}`")
    }
}

pub(super) struct Lexer<'a> {
    source: &'a str,
    /// Byte offset of the next character.
    at: usize,
    /// 1-based character position of the next character.
    position: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(source: &'a str) -> Self {
        Self {
            source,
            at: 0,
            position: 1,
        }
    }

    fn rest(&self) -> &'a str {
        self.source.get(self.at..).unwrap_or_default()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        self.position += 1;
        Some(c)
    }

    fn bump_if(&mut self, wanted: impl Fn(char) -> bool) -> bool {
        match self.peek() {
            Some(c) if wanted(c) => {
                self.bump();
                true
            }
            _ => false,
        }
    }

    fn error(&self, position: usize, message: impl Into<String>) -> RuleError {
        RuleError::new(self.source, position, message)
    }

    /// The next token, or [`TokenKind::End`] (again and again) once the source is consumed.
    pub(super) fn next_token(&mut self) -> Result<Token, RuleError> {
        while self.bump_if(char::is_whitespace) {}
        let (start, position) = (self.at, self.position);
        let kind = match self.bump() {
            None => TokenKind::End,
            Some('(') => TokenKind::LParen,
            Some(')') => TokenKind::RParen,
            Some('[') => TokenKind::LBracket,
            Some(']') => TokenKind::RBracket,
            Some(',') => TokenKind::Comma,
            Some('=') if self.bump_if(|c| c == '=') => TokenKind::Op(CompareOp::Eq),
            Some('=') => {
                return Err(self.error(position, "unexpected `=` (equality is written `==`)"));
            }
            Some('!') if self.bump_if(|c| c == '=') => TokenKind::Op(CompareOp::Ne),
            Some('!') => {
                return Err(self.error(
                    position,
                    "unexpected `!` (write `!=` for \"not equal\", or `not` to negate)",
                ));
            }
            Some('<') if self.bump_if(|c| c == '=') => TokenKind::Op(CompareOp::Le),
            Some('<') => TokenKind::Op(CompareOp::Lt),
            Some('>') if self.bump_if(|c| c == '=') => TokenKind::Op(CompareOp::Ge),
            Some('>') => TokenKind::Op(CompareOp::Gt),
            Some('"') => self.string(position)?,
            Some(c @ ('-' | '0'..='9')) => self.number(c, start, position)?,
            Some('a'..='z' | '_') => self.word(start)?,
            Some(c) if c.is_ascii_uppercase() => {
                return Err(self.error(
                    position,
                    format!("unexpected character `{c}` (field names and keywords are lower case)"),
                ));
            }
            Some(c) => {
                return Err(self.error(
                    position,
                    format!("unexpected character `{}`", c.escape_debug()),
                ));
            }
        };
        Ok(Token {
            kind,
            start,
            end: self.at,
            position,
        })
    }

    /// The rest of a string literal whose opening quote, at `open`, is consumed.
    fn string(&mut self, open: usize) -> Result<TokenKind, RuleError> {
        let mut text = String::new();
        loop {
            let position = self.position;
            match self.bump() {
                None => {
                    return Err(self.error(open, "unterminated string (no closing `\"`)"));
                }
                Some('"') => return Ok(TokenKind::Text(text)),
                Some('\\') => match self.bump() {
                    Some(c @ ('"' | '\\')) => text.push(c),
                    None => {
                        return Err(self.error(open, "unterminated string (no closing `\"`)"));
                    }
                    Some(c) => {
                        return Err(self.error(
                            position,
                            format!(
                                "unknown escape `\\{}` (a string may only escape {} and {})",
                                c.escape_debug(),
                                r#"`\"`"#,
                                r"`\\`",
                            ),
                        ));
                    }
                },
                Some(c) => text.push(c),
            }
        }
    }

    /// The rest of a number whose first character, `first`, is consumed.
    fn number(
        &mut self,
        first: char,
        start: usize,
        position: usize,
    ) -> Result<TokenKind, RuleError> {
        if first == '-' && !self.peek().is_some_and(|c| c.is_ascii_digit()) {
            return Err(self.error(position, "expected a digit after `-`"));
        }
        while self.bump_if(|c| c.is_ascii_digit()) {}
        let mut well_formed = true;
        if self.bump_if(|c| c == '.') {
            well_formed = self.bump_if(|c| c.is_ascii_digit());
            while self.bump_if(|c| c.is_ascii_digit()) {}
        }
        // A number runs into letters, underscores or more dots: `1.`, `1.2.3`, `90d`, `1e5`.
        while self.bump_if(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            well_formed = false;
        }
        let text = self.source.get(start..self.at).unwrap_or_default();
        let number = match text.parse::<f64>() {
            Ok(number) if well_formed => number,
            _ => {
                return Err(self.error(
                    position,
                    format!(
                        "malformed number {} (numbers are written like `12`, `-3` or `0.5`)",
                        quote(text)
                    ),
                ));
            }
        };
        if !number.is_finite() {
            return Err(self.error(position, format!("number {} is too large", quote(text))));
        }
        Ok(TokenKind::Number(number))
    }

    /// The rest of a keyword or field name whose first character is consumed.
    fn word(&mut self, start: usize) -> Result<TokenKind, RuleError> {
        let name_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        while self.bump_if(name_char) {}
        let mut dotted = false;
        while self.bump_if(|c| c == '.') {
            dotted = true;
            if !self.bump_if(|c| c.is_ascii_lowercase() || c == '_') {
                return Err(self.error(
                    self.position,
                    "expected a lower-case name after `.` in a field name",
                ));
            }
            while self.bump_if(name_char) {}
        }
        if dotted {
            return Ok(TokenKind::Field);
        }
        Ok(match self.source.get(start..self.at).unwrap_or_default() {
            "and" => TokenKind::And,
            "or" => TokenKind::Or,
            "not" => TokenKind::Not,
            "in" => TokenKind::In,
            "true" => TokenKind::True,
            "false" => TokenKind::False,
            _ => TokenKind::Field,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token of `source` with its text and position, up to and including the end.
    fn lex(source: &str) -> Result<Vec<(TokenKind, &str, usize)>, RuleError> {
        let mut lexer = Lexer::new(source);
        let mut tokens = Vec::new();
        loop {
            let token = lexer.next_token()?;
            let done = token.kind == TokenKind::End;
            tokens.push((token.kind, &source[token.start..token.end], token.position));
            if done {
                return Ok(tokens);
            }
        }
    }

    fn error(source: &str) -> (usize, String) {
        let error = lex(source).unwrap_err();
        (error.position, error.message)
    }

    #[test]
    fn every_token_is_read_with_its_text_and_position() {
        use TokenKind::*;
        let tokens =
            lex(r#"(a.b_1 == "x")and or not in true false != < <= > >= [1, -2.5] _c"#).unwrap();
        assert_eq!(
            tokens,
            [
                (LParen, "(", 1),
                (Field, "a.b_1", 2),
                (Op(CompareOp::Eq), "==", 8),
                (Text("x".to_owned()), "\"x\"", 11),
                (RParen, ")", 14),
                (And, "and", 15),
                (Or, "or", 19),
                (Not, "not", 22),
                (In, "in", 26),
                (True, "true", 29),
                (False, "false", 34),
                (Op(CompareOp::Ne), "!=", 40),
                (Op(CompareOp::Lt), "<", 43),
                (Op(CompareOp::Le), "<=", 45),
                (Op(CompareOp::Gt), ">", 48),
                (Op(CompareOp::Ge), ">=", 50),
                (LBracket, "[", 53),
                (Number(1.0), "1", 54),
                (Comma, ",", 55),
                (Number(-2.5), "-2.5", 57),
                (RBracket, "]", 61),
                (Field, "_c", 63),
                (End, "", 65),
            ]
        );
    }

    #[test]
    fn keywords_inside_dotted_names_are_names() {
        let tokens = lex("custom.and android").unwrap();
        assert_eq!(tokens[0].0, TokenKind::Field);
        assert_eq!(tokens[0].1, "custom.and");
        assert_eq!(tokens[1].0, TokenKind::Field);
    }

    #[test]
    fn operators_need_no_spaces() {
        let kinds: Vec<_> = lex("x>=-3").unwrap().into_iter().map(|t| t.0).collect();
        assert_eq!(
            kinds,
            [
                TokenKind::Field,
                TokenKind::Op(CompareOp::Ge),
                TokenKind::Number(-3.0),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn strings_unescape_quotes_and_backslashes() {
        let tokens = lex(r#""say \"hi\" \\ é""#).unwrap();
        assert_eq!(tokens[0].0, TokenKind::Text(r#"say "hi" \ é"#.to_owned()));
        assert_eq!(lex(r#""""#).unwrap()[0].0, TokenKind::Text(String::new()));
    }

    #[test]
    fn numbers_are_integers_or_decimals() {
        let numbers: Vec<_> = lex("0 007 12.50 -0.25 -3")
            .unwrap()
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(
            numbers,
            [
                TokenKind::Number(0.0),
                TokenKind::Number(7.0),
                TokenKind::Number(12.5),
                TokenKind::Number(-0.25),
                TokenKind::Number(-3.0),
                TokenKind::End
            ]
        );
    }

    #[test]
    fn bad_numbers_are_errors_at_their_start() {
        let hint = "(numbers are written like `12`, `-3` or `0.5`)";
        assert_eq!(
            error("x == 1."),
            (6, format!("malformed number `1.` {hint}"))
        );
        assert_eq!(
            error("x == 1.2.3"),
            (6, format!("malformed number `1.2.3` {hint}"))
        );
        assert_eq!(
            error("x == 90d"),
            (6, format!("malformed number `90d` {hint}"))
        );
        assert_eq!(
            error("x == 1e5"),
            (6, format!("malformed number `1e5` {hint}"))
        );
        assert_eq!(
            error("x == - 3"),
            (6, "expected a digit after `-`".to_owned())
        );
        assert_eq!(
            error("x == --3"),
            (6, "expected a digit after `-`".to_owned())
        );
        let huge = format!("x == {}", "9".repeat(400));
        let (position, message) = error(&huge);
        assert_eq!(position, 6);
        assert!(message.starts_with("number `99999"), "{message}");
        assert!(message.ends_with("…` is too large"), "{message}");
    }

    #[test]
    fn bad_strings_are_errors() {
        assert_eq!(
            error(r#"x == "abc"#),
            (6, "unterminated string (no closing `\"`)".to_owned())
        );
        assert_eq!(
            error(r#"x == "abc\"#),
            (6, "unterminated string (no closing `\"`)".to_owned())
        );
        assert_eq!(
            error(r#"x == "a\nb""#),
            (
                8,
                r#"unknown escape `\n` (a string may only escape `\"` and `\\`)"#.to_owned()
            )
        );
    }

    #[test]
    fn unexpected_characters_are_errors() {
        assert_eq!(
            error("x = 1"),
            (3, "unexpected `=` (equality is written `==`)".to_owned())
        );
        assert_eq!(
            error("!x"),
            (
                1,
                "unexpected `!` (write `!=` for \"not equal\", or `not` to negate)".to_owned()
            )
        );
        assert_eq!(
            error("x == 1 && y"),
            (8, "unexpected character `&`".to_owned())
        );
        assert_eq!(
            error("x AND y"),
            (
                3,
                "unexpected character `A` (field names and keywords are lower case)".to_owned()
            )
        );
        assert_eq!(error("é"), (1, "unexpected character `é`".to_owned()));
        assert_eq!(
            error("a\u{0}"),
            (2, "unexpected character `\\0`".to_owned())
        );
        assert_eq!(error(".5"), (1, "unexpected character `.`".to_owned()));
    }

    #[test]
    fn field_names_cannot_end_with_a_dot() {
        let message = "expected a lower-case name after `.` in a field name".to_owned();
        assert_eq!(error("rfm."), (5, message.clone()));
        assert_eq!(error("rfm..x"), (5, message.clone()));
        assert_eq!(error("rfm.Segment"), (5, message.clone()));
        assert_eq!(error("rfm.9"), (5, message));
    }

    #[test]
    fn long_tokens_are_cut_in_messages() {
        assert_eq!(quote("short"), "`short`");
        assert_eq!(quote(&"a".repeat(24)), format!("`{}`", "a".repeat(24)));
        assert_eq!(quote(&"a".repeat(25)), format!("`{}…`", "a".repeat(23)));
    }
}
