//! Evaluating a rule on a customer's facts, with the outcome of every condition.

use std::collections::BTreeSet;

use super::ast::{CompareOp, Condition, Expr, Rule, Test};
use super::value::{Facts, Value};

/// Whether a rule matched, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// Whether the customer is in the segment.
    pub matched: bool,
    /// Every condition of the rule, in source order, each evaluated: none is skipped, even
    /// where `and` or `or` would not need it. A field tested twice appears twice.
    pub conditions: Vec<ConditionOutcome>,
}

/// One condition of a rule, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionOutcome {
    /// The condition as written in the rule, such as `orders_90d >= 2` or `not vip`. A `not`
    /// before any other condition is not part of it, and is not applied to `result`.
    pub condition: String,
    /// The field it tests.
    pub field: String,
    /// The fact the condition was evaluated on, as the facts gave it (`None` when missing).
    pub value: Option<Value>,
    /// Whether the condition held, on its own.
    pub result: bool,
}

impl Rule {
    /// Evaluates the rule on `facts`. Every condition is evaluated, and listed in the
    /// explanation with the fact it read.
    pub fn evaluate(&self, facts: &dyn Facts) -> Explanation {
        let mut conditions = Vec::new();
        let matched = evaluate(&self.expr, facts, &mut conditions);
        Explanation {
            matched,
            conditions,
        }
    }

    /// The distinct fields the rule reads, sorted.
    pub fn fields(&self) -> Vec<String> {
        let mut fields = BTreeSet::new();
        collect_fields(&self.expr, &mut fields);
        fields.into_iter().map(str::to_owned).collect()
    }

    /// The numbers the rule compares `field` with, in source order: the values at which a
    /// condition on that field can change its result.
    pub fn numbers(&self, field: &str) -> Vec<f64> {
        let mut numbers = Vec::new();
        collect_numbers(&self.expr, field, &mut numbers);
        numbers
    }
}

fn collect_numbers(expr: &Expr, field: &str, numbers: &mut Vec<f64>) {
    match expr {
        Expr::Or(terms) | Expr::And(terms) => {
            for term in terms {
                collect_numbers(term, field, numbers);
            }
        }
        Expr::Not(expr) => collect_numbers(expr, field, numbers),
        Expr::Condition(condition) if condition.field == field => {
            let literals = match &condition.test {
                Test::Compare(_, literal) => std::slice::from_ref(literal),
                Test::In(literals) | Test::NotIn(literals) => literals.as_slice(),
                Test::IsTrue | Test::IsFalse => &[],
            };
            numbers.extend(literals.iter().filter_map(|literal| match literal {
                Value::Number(n) => Some(*n),
                Value::Text(_) | Value::Bool(_) => None,
            }));
        }
        Expr::Condition(_) => {}
    }
}

/// Evaluates `expr` on `facts`, every condition of it, each pushed onto `outcomes`.
fn evaluate(expr: &Expr, facts: &dyn Facts, outcomes: &mut Vec<ConditionOutcome>) -> bool {
    match expr {
        Expr::Or(terms) => {
            let mut matched = false;
            for term in terms {
                matched |= evaluate(term, facts, outcomes);
            }
            matched
        }
        Expr::And(terms) => {
            let mut matched = true;
            for term in terms {
                matched &= evaluate(term, facts, outcomes);
            }
            matched
        }
        Expr::Not(expr) => !evaluate(expr, facts, outcomes),
        Expr::Condition(Condition { text, field, test }) => {
            let value = facts.get(field);
            let result = holds(test, value.as_ref());
            outcomes.push(ConditionOutcome {
                condition: text.clone(),
                field: field.clone(),
                value,
                result,
            });
            result
        }
    }
}

/// Whether `test` holds of the fact `value`: never when the fact is missing or of another
/// type than the literals.
fn holds(test: &Test, value: Option<&Value>) -> bool {
    let Some(value) = value else {
        return false;
    };
    match test {
        Test::IsTrue => *value == Value::Bool(true),
        Test::IsFalse => *value == Value::Bool(false),
        Test::Compare(op, literal) => compare(value, *op, literal),
        Test::In(literals) => {
            same_type(value, literals) && literals.iter().any(|literal| value == literal)
        }
        Test::NotIn(literals) => {
            same_type(value, literals) && literals.iter().all(|literal| value != literal)
        }
    }
}

/// Whether `value` is of the type of `literals` (which are all of one type, and at least one).
fn same_type(value: &Value, literals: &[Value]) -> bool {
    literals
        .first()
        .is_some_and(|literal| literal.field_type() == value.field_type())
}

/// `value OP literal`; false when they are of different types.
fn compare(value: &Value, op: CompareOp, literal: &Value) -> bool {
    if value.field_type() != literal.field_type() {
        return false;
    }
    match (op, value, literal) {
        (CompareOp::Eq, _, _) => value == literal,
        (CompareOp::Ne, _, _) => value != literal,
        (CompareOp::Lt, Value::Number(a), Value::Number(b)) => a < b,
        (CompareOp::Le, Value::Number(a), Value::Number(b)) => a <= b,
        (CompareOp::Gt, Value::Number(a), Value::Number(b)) => a > b,
        (CompareOp::Ge, Value::Number(a), Value::Number(b)) => a >= b,
        // The parser allows ordering on numbers only.
        _ => false,
    }
}

fn collect_fields<'a>(expr: &'a Expr, fields: &mut BTreeSet<&'a str>) {
    match expr {
        Expr::Or(terms) | Expr::And(terms) => {
            for term in terms {
                collect_fields(term, fields);
            }
        }
        Expr::Not(expr) => collect_fields(expr, fields),
        Expr::Condition(condition) => {
            fields.insert(&condition.field);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::tests::schema;
    use super::*;

    fn rule(source: &str) -> Rule {
        Rule::parse(source, &schema).unwrap()
    }

    fn facts(pairs: &[(&str, Value)]) -> HashMap<String, Value> {
        pairs
            .iter()
            .map(|(field, value)| ((*field).to_owned(), value.clone()))
            .collect()
    }

    fn matches(source: &str, facts: &HashMap<String, Value>) -> bool {
        rule(source).evaluate(facts).matched
    }

    fn n(number: f64) -> Value {
        Value::Number(number)
    }

    fn t(text: &str) -> Value {
        Value::Text(text.to_owned())
    }

    fn outcome(
        condition: &str,
        field: &str,
        value: Option<Value>,
        result: bool,
    ) -> ConditionOutcome {
        ConditionOutcome {
            condition: condition.to_owned(),
            field: field.to_owned(),
            value,
            result,
        }
    }

    #[test]
    fn every_operator_compares_numbers() {
        let facts = facts(&[("spend", n(2.0))]);
        for (source, expected) in [
            ("spend == 2", true),
            ("spend == 2.0", true),
            ("spend == 2.000001", false),
            ("spend != 2", false),
            ("spend != 3", true),
            ("spend < 2", false),
            ("spend < 2.5", true),
            ("spend <= 2", true),
            ("spend <= 1.5", false),
            ("spend > 2", false),
            ("spend > -2", true),
            ("spend >= 2", true),
            ("spend >= 3", false),
            ("spend in [1, 2]", true),
            ("spend in [1, 3]", false),
            ("spend not in [1, 3]", true),
            ("spend not in [2]", false),
        ] {
            assert_eq!(matches(source, &facts), expected, "{source}");
        }
    }

    #[test]
    fn text_compares_exactly() {
        let facts = facts(&[("country", t("FR"))]);
        for (source, expected) in [
            (r#"country == "FR""#, true),
            (r#"country == "fr""#, false),
            (r#"country == "FR ""#, false),
            (r#"country != "FR""#, false),
            (r#"country != "DE""#, true),
            (r#"country in ["DE", "FR"]"#, true),
            (r#"country not in ["DE", "FR"]"#, false),
            (r#"country not in ["DE"]"#, true),
        ] {
            assert_eq!(matches(source, &facts), expected, "{source}");
        }
        let facts = self::facts(&[("custom.tier", t(r#"say "hi" \"#))]);
        assert!(matches(r#"custom.tier == "say \"hi\" \\""#, &facts));
    }

    #[test]
    fn booleans_stand_alone_or_compare() {
        let facts = facts(&[
            ("vip", Value::Bool(true)),
            ("is_subscriber", Value::Bool(false)),
        ]);
        for (source, expected) in [
            ("vip", true),
            ("not vip", false),
            ("is_subscriber", false),
            ("not is_subscriber", true),
            ("not not vip", true),
            ("vip == true", true),
            ("vip != true", false),
            ("is_subscriber == false", true),
            ("vip in [false]", false),
            ("vip not in [false]", true),
        ] {
            assert_eq!(matches(source, &facts), expected, "{source}");
        }
    }

    #[test]
    fn precedence_and_parentheses_decide_the_result() {
        let facts = facts(&[
            ("vip", Value::Bool(true)),
            ("is_subscriber", Value::Bool(false)),
        ]);
        // vip or (is_subscriber and is_subscriber)
        assert!(matches("vip or is_subscriber and is_subscriber", &facts));
        assert!(!matches("(vip or is_subscriber) and is_subscriber", &facts));
        // (not is_subscriber) and vip
        assert!(matches("not is_subscriber and vip", &facts));
        assert!(!matches("not (is_subscriber or vip)", &facts));
        assert!(matches("not (is_subscriber and vip)", &facts));
    }

    #[test]
    fn conditions_on_missing_facts_are_false_even_not_equal() {
        let none = facts(&[]);
        for source in [
            "spend == 1",
            "spend != 1",
            "spend < 1",
            "spend >= 1",
            "spend in [1]",
            "spend not in [1]",
            "vip",
            "not vip",
            "vip != true",
        ] {
            let explanation = rule(source).evaluate(&none);
            assert!(!explanation.matched, "{source}");
            assert_eq!(explanation.conditions.len(), 1);
            assert_eq!(explanation.conditions[0].value, None);
            assert!(!explanation.conditions[0].result);
        }
        // `not` before a condition negates its result, false included.
        assert!(matches("not spend == 1", &none));
        assert!(matches("not (vip)", &none));
    }

    #[test]
    fn facts_of_the_wrong_type_are_like_missing_ones() {
        let wrong = facts(&[
            ("spend", t("12")),
            ("vip", n(1.0)),
            ("country", Value::Bool(true)),
        ]);
        for source in [
            "spend == 12",
            "spend != 12",
            "spend > 1",
            "spend not in [1]",
            "vip",
            "not vip",
            "country != \"FR\"",
        ] {
            assert!(!matches(source, &wrong), "{source}");
        }
    }

    #[test]
    fn not_a_number_is_equal_to_nothing() {
        let facts = facts(&[("spend", n(f64::NAN))]);
        assert!(!matches("spend == 1", &facts));
        assert!(matches("spend != 1", &facts));
        assert!(!matches("spend < 1", &facts));
        assert!(!matches("spend >= 1", &facts));
        assert!(matches("spend not in [1]", &facts));
    }

    #[test]
    fn explanations_list_every_condition_in_source_order_with_its_fact() {
        let rule = rule(
            r#"country == "FR" and orders_90d >= 2 and rfm.segment in ["Champions", "Loyal"]
               or not (vip) or not is_subscriber"#,
        );
        let facts = facts(&[
            ("country", t("DE")),
            ("orders_90d", n(3.0)),
            ("vip", Value::Bool(true)),
        ]);
        assert_eq!(
            rule.evaluate(&facts),
            Explanation {
                matched: false,
                conditions: vec![
                    // Short-circuiting would stop here; the explanation goes on.
                    outcome(r#"country == "FR""#, "country", Some(t("DE")), false),
                    outcome("orders_90d >= 2", "orders_90d", Some(n(3.0)), true),
                    outcome(
                        r#"rfm.segment in ["Champions", "Loyal"]"#,
                        "rfm.segment",
                        None,
                        false
                    ),
                    outcome("vip", "vip", Some(Value::Bool(true)), true),
                    outcome("not is_subscriber", "is_subscriber", None, false),
                ],
            }
        );
        let facts = self::facts(&[
            ("country", t("FR")),
            ("orders_90d", n(2.0)),
            ("rfm.segment", t("Loyal")),
        ]);
        let explanation = rule.evaluate(&facts);
        assert!(explanation.matched);
        assert_eq!(explanation.conditions.len(), 5);
        assert!(explanation.conditions[..3].iter().all(|c| c.result));
    }

    #[test]
    fn facts_can_be_a_closure() {
        let rule = rule("orders_90d > 1 and vip");
        let facts = |field: &str| match field {
            "orders_90d" => Some(n(2.0)),
            "vip" => Some(Value::Bool(true)),
            _ => None,
        };
        assert!(rule.evaluate(&facts).matched);
    }

    #[test]
    fn fields_are_distinct_and_sorted() {
        let rule = rule(
            r#"vip and (spend > 1 or country == "FR") and not vip and rfm.segment in ["Lost"]
               and spend < 9 and not (custom.tier != "x")"#,
        );
        assert_eq!(
            rule.fields(),
            ["country", "custom.tier", "rfm.segment", "spend", "vip"]
        );
        assert_eq!(self::rule("vip").fields(), ["vip"]);
    }

    #[test]
    fn numbers_are_those_compared_with_the_field() {
        let rule =
            rule(r#"spend > 1 and not (spend in [2.5, 3]) or orders_90d >= 2 or country == "FR""#);
        assert_eq!(rule.numbers("spend"), [1.0, 2.5, 3.0]);
        assert_eq!(rule.numbers("orders_90d"), [2.0]);
        assert!(rule.numbers("country").is_empty());
        assert!(rule.numbers("vip").is_empty());
    }
}
