//! The rule language of segments: what a user writes in `DefineSegment` to say who is in a
//! segment, its parser and its evaluator.
//!
//! A rule is a boolean expression over the fields the service knows about a customer, such as
//!
//! ```text
//! country == "FR" and orders_90d >= 2 and rfm.segment in ["Champions", "Loyal"]
//! ```
//!
//! A customer is in the segment when the rule is true of their facts. The language is kept
//! small on purpose: conditions compare one field with literal values, and combine with `and`,
//! `or`, `not` and parentheses. There is no arithmetic, no comparison of two fields, no
//! functions and no `null`.
//!
//! # Grammar
//!
//! In EBNF, over tokens that whitespace (spaces, tabs, newlines, any Unicode white space) may
//! separate; it need not where tokens cannot run together (`spend>=-3` is
//! `spend >= -3`):
//!
//! ```text
//! rule       = or_expr ;
//! or_expr    = and_expr , { "or" , and_expr } ;
//! and_expr   = not_expr , { "and" , not_expr } ;
//! not_expr   = "not" , not_expr
//!            | primary ;
//! primary    = "(" , or_expr , ")"
//!            | condition ;
//! condition  = field , [ compare_op , literal      (* comparison              *)
//!                      | "in" , list               (* membership              *)
//!                      | "not" , "in" , list ] ;   (* non-membership          *)
//!                                                  (* field alone: a boolean  *)
//! compare_op = "==" | "!=" | "<" | "<=" | ">" | ">=" ;
//! list       = "[" , literal , { "," , literal } , "]" ;   (* 1 to 100 literals *)
//! literal    = string | number | "true" | "false" ;
//!
//! field      = name , { "." , name } ;
//! name       = ( "a".."z" | "_" ) , { "a".."z" | "0".."9" | "_" } ;
//! number     = [ "-" ] , digit , { digit } , [ "." , digit , { digit } ] ;
//! digit      = "0".."9" ;
//! string     = '"' , { character - ( '"' | '\' ) | '\"' | '\\' } , '"' ;
//! ```
//!
//! - Precedence: `not` binds tighter than `and`, which binds tighter than `or`:
//!   `a or not b and c` is `a or ((not b) and c)`. Use parentheses for anything else.
//! - Keywords are `and`, `or`, `not`, `in`, `true` and `false`, in lower case only. A field
//!   whose whole name is a keyword cannot be written; after a dot, a keyword is an ordinary
//!   name (`custom.in`).
//! - Field names are lower case: `[a-z_][a-z0-9_]*` parts joined by single dots, such as
//!   `orders_90d`, `rfm.segment`, `custom.tier`.
//! - Numbers are decimal, with an optional leading `-` and an optional fraction: `2`, `-3`,
//!   `0.25`, `007`. There is no `+`, no exponent (`1e5`), no `.5` and no `5.`; a number may
//!   not run into letters, `_` or a second `.` (`90d` is an error, not `90` and `d`).
//! - Strings are in double quotes. Inside, `\"` is a quote and `\\` a backslash; no other
//!   escape exists (`\n` is an error), and any other character, a newline included, stands for
//!   itself.
//! - A comparison is always `field OP literal`, the field on the left: `2 <= orders_90d` is an
//!   error.
//! - A list has no trailing comma.
//!
//! # Types
//!
//! The schema the rule is parsed with gives every field one of three types, and the parser
//! rejects a rule that reads a field the schema does not know, or uses one against its type:
//!
//! | type    | literals        | conditions                                             |
//! |---------|-----------------|--------------------------------------------------------|
//! | number  | `2`, `-0.5`     | `==` `!=` `<` `<=` `>` `>=` `in` `not in`              |
//! | text    | `"FR"`          | `==` `!=` `in` `not in`                                |
//! | boolean | `true`, `false` | `==` `!=` `in` `not in`, and `field` or `not field` alone |
//!
//! The literal of a comparison, and every literal of a list, must be of the field's type.
//!
//! # Meaning
//!
//! - `field OP literal` compares the customer's value of `field` with the literal. Numbers
//!   compare as `f64`, and equality is exact: `spend == 2` and `spend == 2.0` are the same
//!   condition, and `0.1` is the `f64` nearest to 0.1. Text compares exactly, character by
//!   character: case, accents and spaces count (`"FR"` is not `"fr"`).
//! - `field in [a, b]` holds when the value equals one of the literals; `field not in [a, b]`
//!   when the value is known and equals none of them.
//! - A boolean field alone, `is_subscriber`, holds when the value is `true`. `not` directly
//!   before a boolean field alone, `not is_subscriber`, makes one condition that holds when
//!   the value is `false`.
//! - `not` before anything else (a comparison, a list test, another `not` or a parenthesised
//!   expression) negates it: `not spend > 1` is `not (spend > 1)`.
//!
//! ## Missing facts
//!
//! A customer may have no value for a field (no RFM score yet, a custom attribute never set).
//! **Every condition on a missing value is false**: `country != "FR"`,
//! `country not in ["FR"]` and `not is_subscriber` included. A customer with no country is
//! neither in `country == "FR"` nor in `country != "FR"`. A `not` applied to a condition is
//! plain negation, of a missing value's `false` too: `not country == "FR"` and
//! `not (country == "FR")` do hold for a customer with no country. So to include customers
//! without a value, write `not field == value`; to exclude them, `field != value`.
//!
//! A fact of another type than its field's (which the service should never supply) is
//! treated as missing. A number fact that is NaN equals nothing and orders with nothing: `!=`
//! and `not in` hold of it, every other comparison fails.
//!
//! ## Explanations
//!
//! [`Rule::evaluate`] evaluates every condition, even those `and` and `or` would not need
//! (`false and x` is false whatever `x`), and lists each in source order with the text it was
//! written as, the fact it read and its own result, so a user can see why a customer is or is
//! not in a segment. A `not` in front of a condition is not part of it (but for `not field`,
//! which is one condition): `not spend > 1` lists `spend > 1` with its own result. A field
//! tested twice is listed twice. [`Rule::fields`] lists the fields a rule reads, so that only
//! changes to those can change a customer's membership.
//!
//! # Limits
//!
//! - A rule is at most [`MAX_SOURCE_CHARS`] (4096) characters long.
//! - It nests at most [`MAX_DEPTH`] (32) levels deep, where every `(` and every `not` opens a
//!   level until its operand ends: `not (a or not b)` reaches 3 levels, while `(a) and (b)`
//!   only 1. Long chains of `and` and `or` are not nesting.
//! - A list holds 1 to [`MAX_LIST_VALUES`] (100) literals.
//!
//! Exceeding a limit is an error like any other.
//!
//! # Errors
//!
//! [`Rule::parse`] reports the first problem, reading from left to right, as a [`RuleError`]
//! with a message and a position, displayed as
//! ``at column 17: expected a value after `>=`, found the end of the rule``
//! (`at line 2, column 5: …` past the first line). The position
//! counts characters, not bytes, from 1; an error about the end of the rule (a missing value,
//! an unclosed `(`) is one past its last character, and a rule that is too long has its error
//! at character 4097. The problems are:
//!
//! - an unexpected character (`&`, `=` alone, an upper-case letter), at that character;
//! - an unterminated string, at its opening quote; an unknown escape, at its backslash;
//! - a malformed number (`1.`, `90d`, `- 3`) or one too large for `f64`, at its first
//!   character;
//! - an unexpected token or the unexpected end of the rule ("expected a value after `>=`,
//!   found `)`"), at the token or one past the end;
//! - trailing input ("expected `and`, `or` or the end of the rule, found …") and an unmatched
//!   `)`, at that token;
//! - an empty list, at its `[`; too many values, at the 101st;
//! - an unknown field, at the field;
//! - an ordering comparison of text or a boolean, at the operator; a literal of the wrong
//!   type, at the literal; a text or number field used alone as a condition, at the field;
//! - too long a rule, at character 4097; too deep a nesting, at the `(` or `not` that is one
//!   level too many.
//!
//! Parsing never panics, whatever the input.

mod ast;
mod error;
mod eval;
mod lexer;
mod parser;
mod value;

pub use self::{
    ast::Rule,
    error::RuleError,
    eval::Explanation,
    value::{FieldType, Value},
};

/// The most characters (not bytes) a rule's source may hold.
pub const MAX_SOURCE_CHARS: usize = 4096;
/// The most levels of `(` and `not` a rule may nest.
pub const MAX_DEPTH: usize = 32;
/// The most literals an `in` or `not in` list may hold.
pub const MAX_LIST_VALUES: usize = 100;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The schema of the tests.
    pub(super) fn schema(field: &str) -> Option<FieldType> {
        match field {
            "country" | "rfm.segment" | "custom.tier" => Some(FieldType::Text),
            "orders_90d" | "spend" | "custom.and" => Some(FieldType::Number),
            "is_subscriber" | "vip" => Some(FieldType::Bool),
            _ => None,
        }
    }

    #[test]
    fn a_segment_rule_from_end_to_end() {
        let schema: BTreeMap<String, FieldType> = [
            ("country", FieldType::Text),
            ("orders_90d", FieldType::Number),
            ("rfm.segment", FieldType::Text),
        ]
        .into_iter()
        .map(|(field, field_type)| (field.to_owned(), field_type))
        .collect();
        let rule = Rule::parse(
            r#"country == "FR" and orders_90d >= 2 and rfm.segment in ["Champions", "Loyal"]"#,
            &schema,
        )
        .unwrap();
        assert_eq!(rule.fields(), ["country", "orders_90d", "rfm.segment"]);
        let facts: BTreeMap<String, Value> = [
            ("country".to_owned(), Value::Text("FR".to_owned())),
            ("orders_90d".to_owned(), Value::Number(2.0)),
            ("rfm.segment".to_owned(), Value::Text("Loyal".to_owned())),
        ]
        .into();
        let explanation = rule.evaluate(&facts);
        assert!(explanation.matched);
        let conditions: Vec<_> = explanation
            .conditions
            .iter()
            .map(|c| (c.condition.as_str(), c.result))
            .collect();
        assert_eq!(
            conditions,
            [
                (r#"country == "FR""#, true),
                ("orders_90d >= 2", true),
                (r#"rfm.segment in ["Champions", "Loyal"]"#, true),
            ]
        );

        let error = Rule::parse("country == \"FR\" and orders_90d >= ", &schema).unwrap_err();
        assert_eq!(
            error.to_string(),
            "at column 35: expected a value after `>=`, found the end of the rule"
        );
    }

    /// Fragments that rules are made of, right and wrong, so that random rules get deep.
    fn fragment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            " ",
            "\n",
            "(",
            ")",
            "[",
            "]",
            ",",
            "and",
            "or",
            "not",
            "in",
            "true",
            "false",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "=",
            "!",
            "\"",
            "\\",
            "-",
            ".",
            "0",
            "12",
            "2.5",
            "\"FR\"",
            "\"a\\\"b\"",
            "vip",
            "spend",
            "country",
            "rfm.segment",
            "custom.and",
            "nope",
            "é",
            "A",
        ])
    }

    fn facts() -> impl Strategy<Value = BTreeMap<String, Value>> {
        let value = prop_oneof![
            any::<f64>().prop_map(Value::Number),
            "[a-zA-Z]{0,3}".prop_map(Value::Text),
            any::<bool>().prop_map(Value::Bool),
        ];
        prop::collection::btree_map(
            prop::sample::select(vec![
                "vip".to_owned(),
                "spend".to_owned(),
                "country".to_owned(),
                "rfm.segment".to_owned(),
            ]),
            value,
            0..4,
        )
    }

    /// Parses `source`; checks that an error is inside it or one past it, and that a rule
    /// explains itself consistently.
    fn check(source: &str, facts: &BTreeMap<String, Value>) -> Result<(), TestCaseError> {
        match Rule::parse(source, &schema) {
            Ok(rule) => {
                prop_assert_eq!(rule.source(), source);
                let explanation = rule.evaluate(facts);
                let fields = rule.fields();
                for outcome in &explanation.conditions {
                    prop_assert!(source.contains(&outcome.condition));
                    prop_assert!(fields.contains(&outcome.field));
                    prop_assert_eq!(&outcome.value, &facts.get(&outcome.field).cloned());
                }
            }
            Err(error) => {
                prop_assert!(error.position >= 1);
                prop_assert!(error.position <= source.chars().count() + 1);
                prop_assert!(!error.message.is_empty());
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(source in any::<String>(), facts in facts()) {
            check(&source, &facts)?;
        }

        #[test]
        fn arbitrary_token_soups_never_panic(
            fragments in prop::collection::vec((fragment(), any::<bool>()), 0..60),
            facts in facts(),
        ) {
            let source: String = fragments
                .into_iter()
                .map(|(fragment, space)| {
                    if space { format!("{fragment} ") } else { fragment.to_owned() }
                })
                .collect();
            check(&source, &facts)?;
        }

        #[test]
        fn deep_or_long_inputs_never_panic(
            open in 0_usize..3000,
            fragment in prop::sample::select(vec!["(", "not ", "not (", "[", "\"", "-"]),
        ) {
            let source = format!("{}vip", fragment.repeat(open));
            check(&source, &BTreeMap::new())?;
        }
    }
}
