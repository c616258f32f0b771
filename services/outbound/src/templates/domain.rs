//! Saving templates (checked first) and rendering them.

use std::collections::BTreeSet;

use chrono::Utc;
use ecrm_platform::Db;

use super::render::{self, Markup, PROVIDED};
use super::store::{self, TemplateRow};
use crate::error::OutboundError;

const MAX_KEY_CHARS: usize = 64;
const MAX_SUBJECT_CHARS: usize = 998;
const MAX_BODY_CHARS: usize = 100_000;
const MAX_VARIABLES: usize = 50;

/// The channels, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Sms,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Webhook => "webhook",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Email, Self::Sms, Self::Webhook]
            .into_iter()
            .find(|c| c.as_str() == value)
    }

    /// How the body is written: HTML for email, text otherwise.
    pub fn body_markup(self) -> Markup {
        match self {
            Self::Email => Markup::Html,
            Self::Sms | Self::Webhook => Markup::Text,
        }
    }
}

/// A template as asked to be saved.
#[derive(Debug, Clone)]
pub struct NewTemplate {
    pub key: String,
    pub channel: Channel,
    pub locale: String,
    pub subject: String,
    pub body: String,
    pub variables: Vec<String>,
}

/// A key: 1 to 64 of a-z, 0-9, '_', '-' and '.'.
pub fn check_key(field: &str, key: &str) -> Result<(), OutboundError> {
    if key.is_empty()
        || key.chars().count() > MAX_KEY_CHARS
        || !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.'))
    {
        return Err(OutboundError::invalid(
            field,
            format!("1 to {MAX_KEY_CHARS} characters among a-z, 0-9, '_', '-' and '.'"),
        ));
    }
    Ok(())
}

/// A locale: two letters, then up to 33 letters, digits and '-' (`en`, `fr-FR`).
pub fn check_locale(field: &str, locale: &str) -> Result<(), OutboundError> {
    let mut chars = locale.chars();
    let starts = chars
        .by_ref()
        .take(2)
        .filter(char::is_ascii_alphabetic)
        .count()
        == 2;
    let rest: Vec<char> = chars.collect();
    if !starts || rest.len() > 33 || !rest.iter().all(|c| c.is_ascii_alphanumeric() || *c == '-') {
        return Err(OutboundError::invalid(
            field,
            "a language tag such as \"en\" or \"fr-FR\"",
        ));
    }
    Ok(())
}

/// A variable name: a-z, 0-9 and '_', not starting with a digit.
fn is_variable_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl NewTemplate {
    /// Every field checked, the text parsed and its variables matched with the declared ones.
    fn check(&self) -> Result<(), OutboundError> {
        check_key("template.key", &self.key)?;
        check_locale("template.locale", &self.locale)?;
        match self.channel {
            Channel::Email => {
                let chars = self.subject.chars().count();
                if chars == 0 || chars > MAX_SUBJECT_CHARS || self.subject.contains(['\r', '\n']) {
                    return Err(OutboundError::invalid(
                        "template.subject",
                        format!("one line of 1 to {MAX_SUBJECT_CHARS} characters"),
                    ));
                }
            }
            Channel::Sms | Channel::Webhook => {
                if !self.subject.is_empty() {
                    return Err(OutboundError::invalid(
                        "template.subject",
                        "only email has a subject: leave it empty",
                    ));
                }
            }
        }
        let chars = self.body.chars().count();
        if chars == 0 || chars > MAX_BODY_CHARS {
            return Err(OutboundError::invalid(
                "template.body",
                format!("1 to {MAX_BODY_CHARS} characters"),
            ));
        }
        if self.variables.len() > MAX_VARIABLES {
            return Err(OutboundError::invalid(
                "template.variables",
                format!("at most {MAX_VARIABLES}"),
            ));
        }
        let mut declared = BTreeSet::new();
        for (i, name) in self.variables.iter().enumerate() {
            let field = format!("template.variables[{i}]");
            if !is_variable_name(name) {
                return Err(OutboundError::invalid(
                    field,
                    "a-z, 0-9 and '_', not starting with a digit",
                ));
            }
            if PROVIDED.contains(&name.as_str()) {
                return Err(OutboundError::invalid(
                    field,
                    format!("{name:?} is provided by outbound: do not declare it"),
                ));
            }
            if !declared.insert(name.clone()) {
                return Err(OutboundError::invalid(field, "declared twice"));
            }
        }
        render::check(&self.subject, Markup::Text, &declared)
            .map_err(|reason| OutboundError::invalid("template.subject", reason))?;
        render::check(&self.body, self.channel.body_markup(), &declared)
            .map_err(|reason| OutboundError::invalid("template.body", reason))
    }
}

/// A template rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub body: String,
    pub version: i32,
}

#[derive(Debug, Clone)]
pub struct Templates {
    db: Db,
}

impl Templates {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Saves the template: version 1 when new, the next version when its content changed,
    /// nothing when it did not. Returns it as stored, and whether it changed.
    pub async fn upsert(
        &self,
        by: String,
        template: NewTemplate,
    ) -> Result<(TemplateRow, bool), OutboundError> {
        template.check()?;
        let mut variables = template.variables;
        variables.sort();
        let row = TemplateRow {
            key: template.key,
            channel: template.channel.as_str().to_owned(),
            locale: template.locale,
            subject: template.subject,
            body: template.body,
            variables: variables.into_iter().map(Some).collect(),
            version: 1,
            updated_by: by,
            updated_at: Utc::now(),
        };
        self.db
            .run(move |conn| {
                if store::insert(conn, &row)? {
                    return Ok((row, true));
                }
                let existing = store::find_for_update(conn, &row.key, &row.channel, &row.locale)?
                    .ok_or(OutboundError::Corrupt)?;
                if existing.subject == row.subject
                    && existing.body == row.body
                    && existing.variables == row.variables
                {
                    return Ok((existing, false));
                }
                let row = TemplateRow {
                    version: existing.version + 1,
                    ..row
                };
                store::update(conn, &row)?;
                Ok((row, true))
            })
            .await
    }

    pub async fn list(&self) -> Result<Vec<TemplateRow>, OutboundError> {
        self.db
            .run(|conn| Ok::<_, OutboundError>(store::list(conn)?))
            .await
    }

    /// Renders the saved template with `variables` (a JSON object).
    pub async fn render(
        &self,
        key: String,
        channel: Channel,
        locale: String,
        variables: &serde_json::Value,
    ) -> Result<Rendered, OutboundError> {
        let row = self
            .db
            .run(move |conn| {
                store::find(conn, &key, channel.as_str(), &locale)?
                    .ok_or(OutboundError::NotFound("template"))
            })
            .await?;
        let subject = render::render(&row.subject, Markup::Text, variables)
            .map_err(|reason| OutboundError::invalid("variables_json", reason))?;
        let body = render::render(&row.body, channel.body_markup(), variables)
            .map_err(|reason| OutboundError::invalid("variables_json", reason))?;
        Ok(Rendered {
            subject,
            body,
            version: row.version,
        })
    }
}
