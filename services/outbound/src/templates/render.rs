//! Checking and rendering template text with minijinja: strict about undefined variables,
//! HTML-escaping where the text is HTML, and with a fuel limit so no template can loop forever.

use std::collections::BTreeSet;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// Variables outbound provides at send time, which templates may read without declaring.
pub const PROVIDED: [&str; 1] = ["unsubscribe_url"];

/// Instructions one rendering may run: far beyond any real message, short of a runaway loop.
const FUEL: u64 = 1_000_000;

/// Whether the text is HTML, and so every value written into it is escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Markup {
    Html,
    Text,
}

fn environment(markup: Markup) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(move |_| match markup {
        Markup::Html => AutoEscape::Html,
        Markup::Text => AutoEscape::None,
    });
    env
}

/// The error as a user reads it: the line when known, then what is wrong.
fn describe(error: &minijinja::Error) -> String {
    let what = error
        .detail()
        .map_or_else(|| error.kind().to_string(), str::to_owned);
    match error.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

/// Checks that `source` parses and reads no variable but `declared` and the provided ones.
pub fn check(source: &str, markup: Markup, declared: &BTreeSet<String>) -> Result<(), String> {
    let env = environment(markup);
    let template = env
        .template_from_str(source)
        .map_err(|error| describe(&error))?;
    let unknown: BTreeSet<String> = template
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !declared.contains(name) && !PROVIDED.contains(&name.as_str()))
        .filter(|name| env.globals().all(|(global, _)| global != name))
        .collect();
    match unknown.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "reads {first:?}, which is not a declared variable (declare it in template.variables)"
        )),
    }
}

/// Renders `source` with `variables` (a JSON object).
pub fn render(
    source: &str,
    markup: Markup,
    variables: &serde_json::Value,
) -> Result<String, String> {
    let env = environment(markup);
    let template = env
        .template_from_str(source)
        .map_err(|error| describe(&error))?;
    template
        .render(minijinja::Value::from_serialize(variables))
        .map_err(|error| describe(&error))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn declared(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn only_declared_and_provided_variables_may_be_read() {
        let names = declared(&["given_name", "items"]);
        assert!(check("Hi {{ given_name }}", Markup::Html, &names).is_ok());
        assert!(
            check(
                "{% for item in items %}{{ item.name }}{% endfor %}{{ unsubscribe_url }}",
                Markup::Html,
                &names
            )
            .is_ok()
        );
        let unknown = check(
            "Hi {{ given_name }} {{ family_name }}",
            Markup::Html,
            &names,
        );
        assert!(unknown.unwrap_err().contains("\"family_name\""));
        // Built-in functions are not variables.
        assert!(
            check(
                "{% for i in range(3) %}{{ i }}{% endfor %}",
                Markup::Text,
                &names
            )
            .is_ok()
        );
    }

    #[test]
    fn syntax_errors_give_their_line() {
        let error = check(
            "Hello\n{{ given_name ",
            Markup::Text,
            &declared(&["given_name"]),
        );
        assert!(error.unwrap_err().starts_with("line 2:"));
    }

    #[test]
    fn html_is_escaped_in_html_only_and_missing_variables_are_errors() {
        let variables = json!({"name": "<b>Ada</b>"});
        assert_eq!(
            render("Hi {{ name }}", Markup::Html, &variables).unwrap(),
            "Hi &lt;b&gt;Ada&lt;&#x2f;b&gt;"
        );
        assert_eq!(
            render("Hi {{ name }}", Markup::Text, &variables).unwrap(),
            "Hi <b>Ada</b>"
        );
        assert!(render("Hi {{ other }}", Markup::Text, &variables).is_err());
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let looping = "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}x{% endfor %}{% endfor %}{% endfor %}";
        assert!(render(looping, Markup::Text, &json!({})).is_err());
    }

    /// Pieces of template syntax, so arbitrary sources reach the parser's deeper paths.
    fn template_soup() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let piece = prop_oneof![
            Just("{{ ".to_owned()),
            Just(" }}".to_owned()),
            Just("{% ".to_owned()),
            Just(" %}".to_owned()),
            Just("for x in items".to_owned()),
            Just("endfor".to_owned()),
            Just("if ".to_owned()),
            Just("endif".to_owned()),
            Just("given_name".to_owned()),
            Just("|upper".to_owned()),
            Just("range(".to_owned()),
            Just(")".to_owned()),
            Just("{# ".to_owned()),
            Just(" #}".to_owned()),
            "[a-z0-9 .,()\\[\\]\"'|~+*-]{0,6}",
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_sources_are_checked_and_rendered_without_panicking(
            source in proptest::prelude::any::<String>(),
        ) {
            let names = declared(&["given_name", "items"]);
            let _ = check(&source, Markup::Html, &names);
            let _ = render(&source, Markup::Text, &json!({"given_name": "Ada", "items": [1, 2]}));
        }

        #[test]
        fn template_syntax_soups_are_checked_and_rendered_without_panicking(
            source in template_soup(),
        ) {
            let names = declared(&["given_name", "items"]);
            let _ = check(&source, Markup::Html, &names);
            let _ = render(&source, Markup::Html, &json!({"given_name": "Ada", "items": [1, 2]}));
        }

        #[test]
        fn any_value_written_into_html_is_escaped(value in proptest::prelude::any::<String>()) {
            let rendered = render("<p>{{ value }}</p>", Markup::Html, &json!({ "value": value })).unwrap();
            let inner = &rendered["<p>".len()..rendered.len() - "</p>".len()];
            proptest::prop_assert!(!inner.contains(['<', '>', '"', '\'']), "{inner:?}");
        }
    }
}
