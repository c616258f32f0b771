//! Defining segments, and evaluating one for one customer with the reasons.

use chrono::Utc;
use ecrm_platform::Db;
use ecrm_platform::money::minor_units;
use uuid::Uuid;

use super::facts::{self, CustomerFacts};
use super::store::{self, SegmentRow};
use crate::error::SegmentationError;
use crate::rules::{Explanation, Rule};

const MAX_NAME_CHARS: usize = 64;
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A segment's name: 1 to 64 of a-z, 0-9, '_' and '-'.
pub fn check_name(field: &str, name: &str) -> Result<(), SegmentationError> {
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
    {
        return Err(SegmentationError::invalid(
            field,
            format!("1 to {MAX_NAME_CHARS} characters among a-z, 0-9, '_' and '-'"),
        ));
    }
    Ok(())
}

/// A rule, parsed and checked against the fields segments can read.
fn parse(rule: &str) -> Result<Rule, crate::rules::RuleError> {
    Rule::parse(rule, &facts::field_type)
}

/// What a segment says of one customer.
#[derive(Debug, Clone)]
pub struct Membership {
    pub member: bool,
    pub restricted: bool,
    /// `None` when the customer is restricted: their facts are not read.
    pub explanation: Option<Explanation>,
}

#[derive(Debug, Clone)]
pub struct Segments {
    db: Db,
    /// Digits of the reporting currency's minor units, to give amounts in major units.
    minor_units: u32,
}

impl Segments {
    pub fn new(db: Db, reporting_currency: &str) -> Self {
        Self {
            db,
            minor_units: minor_units(reporting_currency),
        }
    }

    /// Defines a segment; the same definition again changes nothing and returns `false`.
    pub async fn define(
        &self,
        by: String,
        name: String,
        description: String,
        rule: String,
    ) -> Result<(SegmentRow, bool), SegmentationError> {
        check_name("segment.name", &name)?;
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(SegmentationError::invalid(
                "segment.description",
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        let parsed = parse(&rule)
            .map_err(|error| SegmentationError::invalid("segment.rule", error.to_string()))?;
        let row = SegmentRow {
            name,
            description,
            rule: parsed.source().to_owned(),
            fields: parsed.fields().into_iter().map(Some).collect(),
            created_by: by,
            created_at: Utc::now(),
        };
        self.db
            .run(move |conn| {
                if store::insert(conn, &row)? {
                    return Ok((row, true));
                }
                let existing = store::find(conn, &row.name)?.ok_or(SegmentationError::Corrupt)?;
                if existing.rule == row.rule && existing.description == row.description {
                    Ok((existing, false))
                } else {
                    Err(SegmentationError::AlreadyExists(format!(
                        "a segment named {:?} exists with another rule; choose another name",
                        row.name
                    )))
                }
            })
            .await
    }

    pub async fn list(&self) -> Result<Vec<SegmentRow>, SegmentationError> {
        self.db
            .run(|conn| Ok::<_, SegmentationError>(store::list(conn)?))
            .await
    }

    /// Whether `subject` is in the segment now, and why. A customer the projection does not
    /// know has no facts: every condition on them is false.
    pub async fn membership(
        &self,
        segment: String,
        subject: Uuid,
    ) -> Result<Membership, SegmentationError> {
        let minor_units = self.minor_units;
        let (row, facts) = self
            .db
            .run(move |conn| {
                let row =
                    store::find(conn, &segment)?.ok_or(SegmentationError::NotFound("segment"))?;
                let facts = facts::load(conn, subject, Utc::now(), minor_units)?;
                Ok::<_, SegmentationError>((row, facts))
            })
            .await?;
        let rule = parse(&row.rule).map_err(|_| SegmentationError::Corrupt)?;
        let CustomerFacts { restricted, facts } = facts.unwrap_or(CustomerFacts {
            restricted: false,
            facts: Default::default(),
        });
        if restricted {
            return Ok(Membership {
                member: false,
                restricted: true,
                explanation: None,
            });
        }
        let explanation = rule.evaluate(&facts);
        Ok(Membership {
            member: explanation.matched,
            restricted: false,
            explanation: Some(explanation),
        })
    }
}
