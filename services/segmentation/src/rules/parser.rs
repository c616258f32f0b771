//! A recursive-descent parser for the rule language, checking fields and types against a
//! schema as it goes. The grammar is in the module documentation.

use super::ast::{Condition, Expr, Rule, Test};
use super::error::{Location, RuleError, line_and_column};
use super::lexer::{Lexer, Token, TokenKind, quote};
use super::value::{FieldType, Schema, Value};
use super::{MAX_DEPTH, MAX_LIST_VALUES, MAX_SOURCE_CHARS};

impl Rule {
    /// Parses `source` and checks it against `schema`: every field must exist, and every
    /// comparison must fit the field's type.
    ///
    /// # Errors
    ///
    /// The first problem in source order, with its position: a syntax error, an unknown field,
    /// a type mismatch, or a limit exceeded (see the module documentation).
    pub fn parse(source: &str, schema: &dyn Schema) -> Result<Self, RuleError> {
        if source.chars().nth(MAX_SOURCE_CHARS).is_some() {
            return Err(RuleError::new(
                source,
                MAX_SOURCE_CHARS + 1,
                format!(
                    "the rule is {} characters long; the limit is {MAX_SOURCE_CHARS}",
                    source.chars().count()
                ),
            ));
        }
        let mut lexer = Lexer::new(source);
        let next = lexer.next_token()?;
        let mut parser = Parser {
            source,
            lexer,
            next,
            schema,
            depth: 0,
        };
        let expr = parser.or()?;
        match parser.next.kind {
            TokenKind::End => Ok(Self {
                source: source.to_owned(),
                expr,
            }),
            TokenKind::RParen => Err(parser.error_at_next("unmatched `)`")),
            _ => Err(parser.unexpected("`and`, `or` or the end of the rule")),
        }
    }
}

struct Parser<'a> {
    source: &'a str,
    lexer: Lexer<'a>,
    /// The token after the ones consumed.
    next: Token,
    schema: &'a dyn Schema,
    /// How many `(` and `not` enclose the current position.
    depth: usize,
}

impl Parser<'_> {
    /// Consumes the next token and returns it.
    fn advance(&mut self) -> Result<Token, RuleError> {
        let next = self.lexer.next_token()?;
        Ok(std::mem::replace(&mut self.next, next))
    }

    fn error_at_next(&self, message: impl Into<String>) -> RuleError {
        RuleError::new(self.source, self.next.position, message)
    }

    /// "expected {expected}, found {the next token}", at the next token.
    fn unexpected(&self, expected: &str) -> RuleError {
        self.error_at_next(format!(
            "expected {expected}, found {}",
            self.next.describe(self.source)
        ))
    }

    fn text(&self, token: &Token) -> &str {
        self.source.get(token.start..token.end).unwrap_or_default()
    }

    /// Consumes the next token, a `(` or a `not`, one level deeper.
    fn enter(&mut self) -> Result<Token, RuleError> {
        if self.depth == MAX_DEPTH {
            return Err(self.error_at_next(format!(
                "too deeply nested: at most {MAX_DEPTH} levels of `(` and `not`"
            )));
        }
        self.depth += 1;
        self.advance()
    }

    /// `or_expr = and_expr { "or" and_expr }`
    fn or(&mut self) -> Result<Expr, RuleError> {
        let first = self.and()?;
        if self.next.kind != TokenKind::Or {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.next.kind == TokenKind::Or {
            self.advance()?;
            terms.push(self.and()?);
        }
        Ok(Expr::Or(terms))
    }

    /// `and_expr = not_expr { "and" not_expr }`
    fn and(&mut self) -> Result<Expr, RuleError> {
        let first = self.not()?;
        if self.next.kind != TokenKind::And {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.next.kind == TokenKind::And {
            self.advance()?;
            terms.push(self.not()?);
        }
        Ok(Expr::And(terms))
    }

    /// `not_expr = "not" not_expr | primary`, where `"not" field` on its own is a condition.
    fn not(&mut self) -> Result<Expr, RuleError> {
        if self.next.kind != TokenKind::Not {
            return self.primary();
        }
        let not = self.enter()?;
        let expr = if self.next.kind == TokenKind::Field {
            self.condition(Some(&not))?
        } else {
            Expr::Not(Box::new(self.not()?))
        };
        self.depth -= 1;
        Ok(expr)
    }

    /// `primary = "(" or_expr ")" | condition`
    fn primary(&mut self) -> Result<Expr, RuleError> {
        match self.next.kind {
            TokenKind::LParen => {
                let open = self.enter()?;
                let expr = self.or()?;
                if self.next.kind != TokenKind::RParen {
                    let (line, column) = line_and_column(self.source, open.position);
                    return Err(self
                        .unexpected(&format!("`)` to close the `(` {}", Location(line, column))));
                }
                self.advance()?;
                self.depth -= 1;
                Ok(expr)
            }
            TokenKind::Field => self.condition(None),
            TokenKind::Text(_) | TokenKind::Number(_) | TokenKind::True | TokenKind::False => {
                Err(self.error_at_next(format!(
                    "expected a condition, found the value {} (a comparison starts with its \
                     field: `field == value`)",
                    self.next.describe(self.source)
                )))
            }
            _ => Err(self.unexpected("a condition")),
        }
    }

    /// `condition = field [ compare_op literal | "in" list | "not" "in" list ]`, the next
    /// token being the field; `not` is the `not` just before it, if any.
    fn condition(&mut self, not: Option<&Token>) -> Result<Expr, RuleError> {
        let name = self.text(&self.next).to_owned();
        let Some(field_type) = self.schema.field_type(&name) else {
            return Err(self.error_at_next(format!("unknown field `{name}`")));
        };
        let field = self.advance()?;
        let (test, end) = match self.next.kind {
            TokenKind::Op(op) => {
                if op.is_ordering() && field_type != FieldType::Number {
                    return Err(self.error_at_next(format!(
                        "`{op}` compares numbers, but `{name}` is {}",
                        field_type.noun()
                    )));
                }
                self.advance()?;
                let (value, token) = self.value(&name, field_type, &format!("`{op}`"))?;
                (Test::Compare(op, value), token.end)
            }
            TokenKind::In => {
                self.advance()?;
                let (values, end) = self.list(&name, field_type, "in")?;
                (Test::In(values), end)
            }
            TokenKind::Not => {
                self.advance()?;
                if self.next.kind != TokenKind::In {
                    return Err(self.unexpected("`in` after `not`"));
                }
                self.advance()?;
                let (values, end) = self.list(&name, field_type, "not in")?;
                (Test::NotIn(values), end)
            }
            TokenKind::And | TokenKind::Or | TokenKind::RParen | TokenKind::End => {
                if field_type != FieldType::Bool {
                    return Err(RuleError::new(
                        self.source,
                        field.position,
                        format!(
                            "`{name}` is {}: compare it with a value, like `{name} == …` (only \
                             a boolean field is a condition on its own)",
                            field_type.noun()
                        ),
                    ));
                }
                let (test, start) = match not {
                    Some(not) => (Test::IsFalse, not.start),
                    None => (Test::IsTrue, field.start),
                };
                return Ok(Expr::Condition(Condition {
                    text: self
                        .source
                        .get(start..field.end)
                        .unwrap_or_default()
                        .to_owned(),
                    field: name,
                    test,
                }));
            }
            _ if field_type == FieldType::Bool => {
                return Err(
                    self.unexpected(&format!("an operator, `and`, `or` or `)` after `{name}`"))
                );
            }
            _ => return Err(self.unexpected(&format!("an operator after `{name}`"))),
        };
        let condition = Expr::Condition(Condition {
            text: self
                .source
                .get(field.start..end)
                .unwrap_or_default()
                .to_owned(),
            field: name,
            test,
        });
        Ok(match not {
            Some(_) => Expr::Not(Box::new(condition)),
            None => condition,
        })
    }

    /// `list = "[" literal { "," literal } "]"`, of at most [`MAX_LIST_VALUES`] values of the
    /// type of `field`, after `keyword`; returns the values and the byte offset after the `]`.
    fn list(
        &mut self,
        field: &str,
        field_type: FieldType,
        keyword: &str,
    ) -> Result<(Vec<Value>, usize), RuleError> {
        if self.next.kind != TokenKind::LBracket {
            return Err(self.unexpected(&format!("a list like `[\"a\", \"b\"]` after `{keyword}`")));
        }
        let open = self.advance()?;
        if self.next.kind == TokenKind::RBracket {
            return Err(RuleError::new(
                self.source,
                open.position,
                format!("empty list: `{keyword}` needs 1 to {MAX_LIST_VALUES} values"),
            ));
        }
        let mut values = Vec::new();
        let mut after = "`[`";
        loop {
            if values.len() == MAX_LIST_VALUES {
                return Err(self.error_at_next(format!(
                    "too many values: a list holds at most {MAX_LIST_VALUES}"
                )));
            }
            values.push(self.value(field, field_type, after)?.0);
            match self.next.kind {
                TokenKind::Comma => {
                    self.advance()?;
                    after = "`,`";
                }
                TokenKind::RBracket => return Ok((values, self.advance()?.end)),
                _ => return Err(self.unexpected("`,` or `]` in the list")),
            }
        }
    }

    /// `literal = string | number | "true" | "false"`, of the type of `field`, after
    /// `after`; returns it and its token.
    fn value(
        &mut self,
        field: &str,
        field_type: FieldType,
        after: &str,
    ) -> Result<(Value, Token), RuleError> {
        let value = match &self.next.kind {
            TokenKind::Number(number) => Value::Number(*number),
            TokenKind::Text(text) => Value::Text(text.clone()),
            TokenKind::True => Value::Bool(true),
            TokenKind::False => Value::Bool(false),
            TokenKind::Field => {
                return Err(self.error_at_next(format!(
                    "expected a value after {after}, found the field {} (a condition compares a \
                     field with a value, not with another field)",
                    self.next.describe(self.source)
                )));
            }
            _ => return Err(self.unexpected(&format!("a value after {after}"))),
        };
        if value.field_type() != field_type {
            return Err(self.error_at_next(format!(
                "`{field}` is {}, but {} is {}",
                field_type.noun(),
                quote(self.text(&self.next)),
                value.field_type().noun()
            )));
        }
        Ok((value, self.advance()?))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ast::CompareOp;
    use super::super::tests::schema;
    use super::*;

    fn parse(source: &str) -> Expr {
        match Rule::parse(source, &schema) {
            Ok(rule) => rule.expr,
            Err(error) => panic!("{source}: {error}"),
        }
    }

    fn error(source: &str) -> (usize, String) {
        let error = Rule::parse(source, &schema).unwrap_err();
        (error.position, error.message)
    }

    fn leaf(text: &str, field: &str, test: Test) -> Expr {
        Expr::Condition(Condition {
            text: text.to_owned(),
            field: field.to_owned(),
            test,
        })
    }

    fn is(field: &str) -> Expr {
        leaf(field, field, Test::IsTrue)
    }

    fn text(s: &str) -> Value {
        Value::Text(s.to_owned())
    }

    #[test]
    fn the_example_parses() {
        assert_eq!(
            parse(
                r#"country == "FR" and orders_90d >= 2 and rfm.segment in ["Champions", "Loyal"]"#
            ),
            Expr::And(vec![
                leaf(
                    r#"country == "FR""#,
                    "country",
                    Test::Compare(CompareOp::Eq, text("FR"))
                ),
                leaf(
                    "orders_90d >= 2",
                    "orders_90d",
                    Test::Compare(CompareOp::Ge, Value::Number(2.0))
                ),
                leaf(
                    r#"rfm.segment in ["Champions", "Loyal"]"#,
                    "rfm.segment",
                    Test::In(vec![text("Champions"), text("Loyal")])
                ),
            ])
        );
    }

    #[test]
    fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
        assert_eq!(
            parse("vip or not is_subscriber and orders_90d > 1"),
            Expr::Or(vec![
                is("vip"),
                Expr::And(vec![
                    leaf("not is_subscriber", "is_subscriber", Test::IsFalse),
                    leaf(
                        "orders_90d > 1",
                        "orders_90d",
                        Test::Compare(CompareOp::Gt, Value::Number(1.0))
                    ),
                ]),
            ])
        );
        assert_eq!(
            parse("vip and is_subscriber or vip"),
            Expr::Or(vec![
                Expr::And(vec![is("vip"), is("is_subscriber")]),
                is("vip")
            ])
        );
    }

    #[test]
    fn parentheses_group() {
        assert_eq!(
            parse("(vip or is_subscriber) and vip"),
            Expr::And(vec![
                Expr::Or(vec![is("vip"), is("is_subscriber")]),
                is("vip")
            ])
        );
        assert_eq!(
            parse("not (vip or is_subscriber)"),
            Expr::Not(Box::new(Expr::Or(vec![is("vip"), is("is_subscriber")])))
        );
        assert_eq!(parse("((vip))"), is("vip"));
    }

    #[test]
    fn chains_of_the_same_operator_are_flat() {
        assert_eq!(
            parse("vip or vip or vip"),
            Expr::Or(vec![is("vip"), is("vip"), is("vip")])
        );
        assert_eq!(
            parse("vip and vip and vip"),
            Expr::And(vec![is("vip"), is("vip"), is("vip")])
        );
    }

    #[test]
    fn not_before_a_comparison_negates_it() {
        assert_eq!(
            parse("not orders_90d > 1"),
            Expr::Not(Box::new(leaf(
                "orders_90d > 1",
                "orders_90d",
                Test::Compare(CompareOp::Gt, Value::Number(1.0))
            )))
        );
        assert_eq!(
            parse("not not vip"),
            Expr::Not(Box::new(leaf("not vip", "vip", Test::IsFalse)))
        );
        assert_eq!(
            parse("not vip == false"),
            Expr::Not(Box::new(leaf(
                "vip == false",
                "vip",
                Test::Compare(CompareOp::Eq, Value::Bool(false))
            )))
        );
    }

    #[test]
    fn every_operator_parses() {
        for (source, op) in [
            ("spend == 1", CompareOp::Eq),
            ("spend != 1", CompareOp::Ne),
            ("spend < 1", CompareOp::Lt),
            ("spend <= 1", CompareOp::Le),
            ("spend > 1", CompareOp::Gt),
            ("spend >= 1", CompareOp::Ge),
        ] {
            assert_eq!(
                parse(source),
                leaf(source, "spend", Test::Compare(op, Value::Number(1.0)))
            );
        }
        assert_eq!(
            parse("country!=\"FR\""),
            leaf(
                "country!=\"FR\"",
                "country",
                Test::Compare(CompareOp::Ne, text("FR"))
            )
        );
        assert_eq!(
            parse("vip != true"),
            leaf(
                "vip != true",
                "vip",
                Test::Compare(CompareOp::Ne, Value::Bool(true))
            )
        );
    }

    #[test]
    fn membership_parses() {
        assert_eq!(
            parse("spend in [1, 2.5, -3]"),
            leaf(
                "spend in [1, 2.5, -3]",
                "spend",
                Test::In(vec![
                    Value::Number(1.0),
                    Value::Number(2.5),
                    Value::Number(-3.0)
                ])
            )
        );
        assert_eq!(
            parse("custom.tier not  in [\"gold\"] or vip"),
            Expr::Or(vec![
                leaf(
                    "custom.tier not  in [\"gold\"]",
                    "custom.tier",
                    Test::NotIn(vec![text("gold")])
                ),
                is("vip")
            ])
        );
        assert_eq!(
            parse("vip in [true,false]"),
            leaf(
                "vip in [true,false]",
                "vip",
                Test::In(vec![Value::Bool(true), Value::Bool(false)])
            )
        );
        let hundred = (0..100)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let Expr::Condition(condition) = parse(&format!("spend in [{hundred}]")) else {
            panic!("not a condition");
        };
        assert!(matches!(condition.test, Test::In(values) if values.len() == 100));
    }

    #[test]
    fn strings_with_escapes_parse() {
        assert_eq!(
            parse(r#"custom.tier == "a \"b\" \\""#),
            leaf(
                r#"custom.tier == "a \"b\" \\""#,
                "custom.tier",
                Test::Compare(CompareOp::Eq, text(r#"a "b" \"#))
            )
        );
    }

    #[test]
    fn keywords_after_a_dot_are_field_names() {
        assert_eq!(
            parse("custom.and == 1"),
            leaf(
                "custom.and == 1",
                "custom.and",
                Test::Compare(CompareOp::Eq, Value::Number(1.0))
            )
        );
    }

    #[test]
    fn whitespace_is_free_and_newlines_are_whitespace() {
        assert_eq!(
            parse("\n\t vip\n  and\r\n is_subscriber  "),
            Expr::And(vec![is("vip"), is("is_subscriber")])
        );
    }

    #[test]
    fn unknown_fields_are_errors_at_the_field() {
        assert_eq!(
            error("vip and tier == 1"),
            (9, "unknown field `tier`".to_owned())
        );
        assert_eq!(error("not nope"), (5, "unknown field `nope`".to_owned()));
    }

    #[test]
    fn type_mismatches_are_errors_at_the_literal_or_operator() {
        assert_eq!(
            error("country > 3"),
            (9, "`>` compares numbers, but `country` is text".to_owned())
        );
        assert_eq!(
            error("vip <= true"),
            (
                5,
                "`<=` compares numbers, but `vip` is a boolean".to_owned()
            )
        );
        assert_eq!(
            error(r#"orders_90d == "x""#),
            (
                15,
                "`orders_90d` is a number, but `\"x\"` is text".to_owned()
            )
        );
        assert_eq!(
            error("country != true"),
            (12, "`country` is text, but `true` is a boolean".to_owned())
        );
        assert_eq!(
            error("vip == 1"),
            (8, "`vip` is a boolean, but `1` is a number".to_owned())
        );
        assert_eq!(
            error(r#"rfm.segment in ["Champions", 3]"#),
            (30, "`rfm.segment` is text, but `3` is a number".to_owned())
        );
        assert_eq!(
            error("spend not in [1, \"2\"]"),
            (18, "`spend` is a number, but `\"2\"` is text".to_owned())
        );
    }

    #[test]
    fn only_boolean_fields_stand_alone() {
        let message = "`country` is text: compare it with a value, like `country == …` (only a \
                       boolean field is a condition on its own)";
        assert_eq!(error("country"), (1, message.to_owned()));
        assert_eq!(error("vip and not country"), (13, message.to_owned()));
        assert_eq!(error("(country)"), (2, message.to_owned()));
        assert_eq!(
            error("spend or vip"),
            (
                1,
                "`spend` is a number: compare it with a value, like `spend == …` (only a boolean \
                 field is a condition on its own)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn syntax_errors_name_their_column() {
        let cases: [(&str, usize, &str); 21] = [
            ("", 1, "expected a condition, found the end of the rule"),
            ("   ", 4, "expected a condition, found the end of the rule"),
            (
                "spend >= ",
                10,
                "expected a value after `>=`, found the end of the rule",
            ),
            ("spend >= )", 10, "expected a value after `>=`, found `)`"),
            (
                "spend == orders_90d",
                10,
                "expected a value after `==`, found the field `orders_90d` (a condition compares \
                 a field with a value, not with another field)",
            ),
            (
                "\"FR\" == country",
                1,
                "expected a condition, found the value `\"FR\"` (a comparison starts with its \
                 field: `field == value`)",
            ),
            (
                "vip and",
                8,
                "expected a condition, found the end of the rule",
            ),
            ("vip and or vip", 9, "expected a condition, found `or`"),
            (
                "vip vip",
                5,
                "expected an operator, `and`, `or` or `)` after `vip`, found `vip`",
            ),
            (
                "country \"FR\"",
                9,
                "expected an operator after `country`, found `\"FR\"`",
            ),
            (
                "vip == true spend > 1",
                13,
                "expected `and`, `or` or the end of the rule, found `spend`",
            ),
            ("vip)", 4, "unmatched `)`"),
            (
                "(vip",
                5,
                "expected `)` to close the `(` at column 1, found the end of the rule",
            ),
            (
                "vip and (vip or vip",
                20,
                "expected `)` to close the `(` at column 9, found the end of the rule",
            ),
            ("()", 2, "expected a condition, found `)`"),
            ("spend in []", 10, "empty list: `in` needs 1 to 100 values"),
            (
                "spend not in []",
                14,
                "empty list: `not in` needs 1 to 100 values",
            ),
            (
                "spend in 1",
                10,
                "expected a list like `[\"a\", \"b\"]` after `in`, found `1`",
            ),
            ("spend not [1]", 11, "expected `in` after `not`, found `[`"),
            ("spend in [1,]", 13, "expected a value after `,`, found `]`"),
            (
                "spend in [1 2]",
                13,
                "expected `,` or `]` in the list, found `2`",
            ),
        ];
        for (source, position, message) in cases {
            assert_eq!(error(source), (position, message.to_owned()), "{source}");
        }
        assert_eq!(
            error("spend in ["),
            (
                11,
                "expected a value after `[`, found the end of the rule".to_owned()
            )
        );
    }

    #[test]
    fn lexical_errors_surface_in_source_order() {
        // The unknown field comes before the bad character.
        assert_eq!(error("nope == @"), (1, "unknown field `nope`".to_owned()));
        // The type error at the operator comes before the bad character.
        assert_eq!(
            error("country > @"),
            (9, "`>` compares numbers, but `country` is text".to_owned())
        );
        assert_eq!(
            error("vip and @"),
            (9, "unexpected character `@`".to_owned())
        );
        assert_eq!(
            error("spend == 1.5.0"),
            (
                10,
                "malformed number `1.5.0` (numbers are written like `12`, `-3` or `0.5`)"
                    .to_owned()
            )
        );
        assert_eq!(
            error("country == \"FR"),
            (12, "unterminated string (no closing `\"`)".to_owned())
        );
    }

    #[test]
    fn errors_on_later_lines_give_line_and_column() {
        let error = Rule::parse("vip\nand (\n  nope)", &schema).unwrap_err();
        assert_eq!((error.position, error.line, error.column), (13, 3, 3));
        assert_eq!(
            error.to_string(),
            "at line 3, column 3: unknown field `nope`"
        );
        let error = Rule::parse("vip and\n(vip", &schema).unwrap_err();
        assert_eq!(
            error.to_string(),
            "at line 2, column 5: expected `)` to close the `(` at line 2, column 1, found the \
             end of the rule"
        );
    }

    #[test]
    fn lists_hold_at_most_a_hundred_values() {
        let values = (0..101)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let source = format!("spend in [{values}]");
        // The 101st value, `100`, starts after "spend in [" and 100 values with their commas.
        let position = "spend in [".len() + values.find(",100").unwrap() + 2;
        assert_eq!(
            error(&source),
            (
                position,
                "too many values: a list holds at most 100".to_owned()
            )
        );
    }

    #[test]
    fn sources_hold_at_most_4096_characters() {
        let fits = format!("vip{}", " ".repeat(4093));
        assert_eq!(fits.chars().count(), 4096);
        assert_eq!(parse(&fits), is("vip"));
        let too_long = format!("vip{}", " ".repeat(4094));
        assert_eq!(
            error(&too_long),
            (
                4097,
                "the rule is 4097 characters long; the limit is 4096".to_owned()
            )
        );
        // Characters, not bytes: 4096 two-byte characters in a string fit.
        let wide = format!("country == \"{}\"", "é".repeat(4096 - 13));
        assert_eq!(wide.chars().count(), 4096);
        assert!(Rule::parse(&wide, &schema).is_ok());
    }

    #[test]
    fn nesting_is_at_most_32_deep() {
        let nested = |depth: usize| format!("{}vip{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(parse(&nested(32)), is("vip"));
        assert_eq!(
            error(&nested(33)),
            (
                33,
                "too deeply nested: at most 32 levels of `(` and `not`".to_owned()
            )
        );
        let nots = |depth: usize| format!("{}vip", "not ".repeat(depth));
        assert!(Rule::parse(&nots(32), &schema).is_ok());
        assert_eq!(
            error(&nots(33)),
            (
                129,
                "too deeply nested: at most 32 levels of `(` and `not`".to_owned()
            )
        );
        // Levels are counted along one path, not in total.
        let siblings = vec![nested(32); 20].join(" and ");
        assert!(Rule::parse(&siblings, &schema).is_ok());
        // Mixed: 16 `not (` pairs are 32 levels.
        let mixed = |pairs: usize| format!("{}vip{}", "not (".repeat(pairs), ")".repeat(pairs));
        assert!(Rule::parse(&mixed(16), &schema).is_ok());
        assert_eq!(error(&format!("not {}", mixed(16))).0, 5 + 5 * 15 + 4);
    }

    #[test]
    fn rules_keep_their_source() {
        let rule = Rule::parse(" vip ", &schema).unwrap();
        assert_eq!(rule.source(), " vip ");
    }
}
