//! The three types of the rule language, the values of those types, and the two things a rule
//! is given from outside: the schema it is checked against and the facts it is evaluated on.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The type of a field, fixed by the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldType {
    /// Compared as `f64`: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`.
    Number,
    /// Compared exactly, case and all: `==`, `!=`, `in`, `not in`.
    Text,
    /// `==`, `!=`, `in`, `not in`, and on its own as a condition.
    Bool,
}

impl FieldType {
    /// The type with its article, for messages: "a number", "text", "a boolean".
    pub fn noun(self) -> &'static str {
        match self {
            Self::Number => "a number",
            Self::Text => "text",
            Self::Bool => "a boolean",
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Number => "number",
            Self::Text => "text",
            Self::Bool => "boolean",
        })
    }
}

/// A value: a literal of a rule, or a fact about a customer.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Text(String),
    Bool(bool),
}

impl Value {
    /// The type of the value.
    pub fn field_type(&self) -> FieldType {
        match self {
            Self::Number(_) => FieldType::Number,
            Self::Text(_) => FieldType::Text,
            Self::Bool(_) => FieldType::Bool,
        }
    }
}

/// A value as a literal of the language: `"FR"` (quotes and backslashes escaped), `2.5`,
/// `true`. Numbers print in plain decimal notation, the way the language reads them (an
/// infinite or NaN fact prints as `inf` or `NaN`, which the language cannot read).
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "{number}"),
            Self::Bool(boolean) => write!(f, "{boolean}"),
            Self::Text(text) => {
                f.write_str("\"")?;
                for c in text.chars() {
                    if matches!(c, '"' | '\\') {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
        }
    }
}

/// The fields a rule may read, and their types: the parser rejects any other field.
///
/// Implemented for closures `Fn(&str) -> Option<FieldType>` and for maps from field name to
/// type.
pub trait Schema {
    /// The type of `field` (a full dotted name such as `rfm.segment`), or `None` when there
    /// is no such field.
    fn field_type(&self, field: &str) -> Option<FieldType>;
}

impl<F> Schema for F
where
    F: Fn(&str) -> Option<FieldType>,
{
    fn field_type(&self, field: &str) -> Option<FieldType> {
        self(field)
    }
}

impl Schema for HashMap<String, FieldType> {
    fn field_type(&self, field: &str) -> Option<FieldType> {
        self.get(field).copied()
    }
}

impl Schema for BTreeMap<String, FieldType> {
    fn field_type(&self, field: &str) -> Option<FieldType> {
        self.get(field).copied()
    }
}

/// What is known about one customer: the value of each field, or `None` when it is not
/// known. Every condition on a missing fact is false (see the module documentation).
///
/// Implemented for closures `Fn(&str) -> Option<Value>` and for maps from field name to
/// value.
pub trait Facts {
    /// The value of `field` (a full dotted name such as `rfm.segment`), if known.
    fn get(&self, field: &str) -> Option<Value>;
}

impl<F> Facts for F
where
    F: Fn(&str) -> Option<Value>,
{
    fn get(&self, field: &str) -> Option<Value> {
        self(field)
    }
}

impl Facts for HashMap<String, Value> {
    fn get(&self, field: &str) -> Option<Value> {
        HashMap::get(self, field).cloned()
    }
}

impl Facts for BTreeMap<String, Value> {
    fn get(&self, field: &str) -> Option<Value> {
        BTreeMap::get(self, field).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_literals() {
        assert_eq!(
            Value::Text(r#"a "b" \c"#.to_owned()).to_string(),
            r#""a \"b\" \\c""#
        );
        assert_eq!(Value::Number(2.0).to_string(), "2");
        assert_eq!(Value::Number(-2.5).to_string(), "-2.5");
        assert_eq!(Value::Number(1e21).to_string(), "1000000000000000000000");
        assert_eq!(Value::Bool(false).to_string(), "false");
    }

    #[test]
    fn values_know_their_type() {
        assert_eq!(Value::Number(1.0).field_type(), FieldType::Number);
        assert_eq!(Value::Text(String::new()).field_type(), FieldType::Text);
        assert_eq!(Value::Bool(true).field_type(), FieldType::Bool);
        assert_eq!(FieldType::Bool.to_string(), "boolean");
        assert_eq!(FieldType::Text.noun(), "text");
    }

    #[test]
    fn schemas_and_facts_come_from_closures_and_maps() {
        let closure = |field: &str| (field == "a").then_some(FieldType::Number);
        assert_eq!(Schema::field_type(&closure, "a"), Some(FieldType::Number));
        assert_eq!(Schema::field_type(&closure, "b"), None);
        let map: HashMap<String, FieldType> = [("a".to_owned(), FieldType::Text)].into();
        assert_eq!(map.field_type("a"), Some(FieldType::Text));
        let map: BTreeMap<String, FieldType> = [("a".to_owned(), FieldType::Bool)].into();
        assert_eq!(map.field_type("a"), Some(FieldType::Bool));
        assert_eq!(map.field_type("b"), None);

        let closure = |field: &str| (field == "a").then_some(Value::Bool(true));
        assert_eq!(Facts::get(&closure, "a"), Some(Value::Bool(true)));
        let map: HashMap<String, Value> = [("a".to_owned(), Value::Number(1.0))].into();
        assert_eq!(Facts::get(&map, "a"), Some(Value::Number(1.0)));
        assert_eq!(Facts::get(&map, "b"), None);
        let map: BTreeMap<String, Value> = [("a".to_owned(), Value::Number(1.0))].into();
        assert_eq!(Facts::get(&map, "a"), Some(Value::Number(1.0)));
    }
}
