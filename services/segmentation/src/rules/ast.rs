//! The parsed, checked form of a rule.

use std::fmt;

use super::value::Value;

/// A parsed rule, checked against the schema it was parsed with: every field exists and every
/// comparison is between values of the field's type. Built by [`Rule::parse`], run by
/// [`Rule::evaluate`].
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub(super) source: String,
    pub(super) expr: Expr,
}

impl Rule {
    /// The text the rule was parsed from, unchanged.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// A boolean expression. `And` and `Or` hold two or more terms, in source order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Not(Box<Expr>),
    Condition(Condition),
}

/// A leaf of the expression: one test of one field.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Condition {
    /// The condition as written in the source, from its field (or the `not` of `not field`)
    /// to its value or closing `]`.
    pub(super) text: String,
    pub(super) field: String,
    pub(super) test: Test,
}

/// What a condition asks of its field's value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Test {
    /// `field`: the boolean is true.
    IsTrue,
    /// `not field`: the boolean is false.
    IsFalse,
    /// `field OP value`.
    Compare(CompareOp, Value),
    /// `field in [..]`.
    In(Vec<Value>),
    /// `field not in [..]`.
    NotIn(Vec<Value>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    /// Whether the operator orders its operands, and so applies to numbers only.
    pub(super) fn is_ordering(self) -> bool {
        !matches!(self, Self::Eq | Self::Ne)
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_equality_operators_apply_to_every_type() {
        let ordering: Vec<_> = [
            CompareOp::Eq,
            CompareOp::Ne,
            CompareOp::Lt,
            CompareOp::Le,
            CompareOp::Gt,
            CompareOp::Ge,
        ]
        .into_iter()
        .map(|op| (op.to_string(), op.is_ordering()))
        .collect();
        assert_eq!(
            ordering,
            [
                ("==".to_owned(), false),
                ("!=".to_owned(), false),
                ("<".to_owned(), true),
                ("<=".to_owned(), true),
                (">".to_owned(), true),
                (">=".to_owned(), true),
            ]
        );
    }
}
