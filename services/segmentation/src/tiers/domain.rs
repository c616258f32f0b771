//! Tier programs: their rules, defining them, and a customer's standing in one, replayed from
//! the projection's orders. The semantics are in `tiers.proto`'s comments and in `policy`.

use chrono::{DateTime, Utc};
use ecrm_platform::Db;
use serde_json::json;
use uuid::Uuid;

use super::policy::{self, Contribution, Downgrade, Policy};
use super::store::{self, TierProgramRow};
use crate::error::SegmentationError;
use crate::projection::store::{self as projection, CustomerRow, OrderRow};
use crate::segments::domain::check_name;

pub const MAX_DAYS: u32 = 3660;
pub const MIN_TIERS: usize = 2;
pub const MAX_TIERS: usize = 10;
const MAX_DESCRIPTION_CHARS: usize = 1000;
const MAX_TIER_NAME_CHARS: usize = 64;

/// What a program measures over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Orders; returns do not count against them.
    Orders,
    /// Orders less refunds, in minor units of the reporting currency; unvalued ones add nothing.
    Spend,
}

impl Measure {
    fn as_str(self) -> &'static str {
        match self {
            Measure::Orders => "orders",
            Measure::Spend => "spend",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "orders" => Some(Measure::Orders),
            "spend" => Some(Measure::Spend),
            _ => None,
        }
    }
}

fn downgrade_str(downgrade: Downgrade) -> &'static str {
    match downgrade {
        Downgrade::OneLevel => "one_level",
        Downgrade::ToQualified => "to_qualified",
    }
}

fn parse_downgrade(value: &str) -> Option<Downgrade> {
    match value {
        "one_level" => Some(Downgrade::OneLevel),
        "to_qualified" => Some(Downgrade::ToQualified),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierLevel {
    pub name: String,
    pub threshold: i64,
}

/// A program as defined: what makes two definitions the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub description: String,
    pub measure: Measure,
    pub window_days: u32,
    pub tiers: Vec<TierLevel>,
    pub retain_days: u32,
    pub downgrade: Downgrade,
}

fn check_tier_name(field: &str, name: &str) -> Result<(), SegmentationError> {
    let chars = name.chars().count();
    if chars == 0
        || chars > MAX_TIER_NAME_CHARS
        || name.trim() != name
        || name.chars().any(char::is_control)
    {
        return Err(SegmentationError::invalid(
            field,
            format!(
                "1 to {MAX_TIER_NAME_CHARS} characters, no control characters, no leading or trailing space"
            ),
        ));
    }
    Ok(())
}

impl Definition {
    /// Checks every field; errors name the request's path to it, e.g. `program.tiers[2].name`.
    pub fn check(&self) -> Result<(), SegmentationError> {
        check_name("program.name", &self.name)?;
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(SegmentationError::invalid(
                "program.description",
                format!("at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if !(1..=MAX_DAYS).contains(&self.window_days) {
            return Err(SegmentationError::invalid(
                "program.window_days",
                format!("1 to {MAX_DAYS}"),
            ));
        }
        if self.retain_days > MAX_DAYS {
            return Err(SegmentationError::invalid(
                "program.retain_days",
                format!("0 to {MAX_DAYS}"),
            ));
        }
        if !(MIN_TIERS..=MAX_TIERS).contains(&self.tiers.len()) {
            return Err(SegmentationError::invalid(
                "program.tiers",
                format!("{MIN_TIERS} to {MAX_TIERS} tiers"),
            ));
        }
        for (i, tier) in self.tiers.iter().enumerate() {
            check_tier_name(&format!("program.tiers[{i}].name"), &tier.name)?;
            if self.tiers[..i]
                .iter()
                .any(|other| other.name.to_lowercase() == tier.name.to_lowercase())
            {
                return Err(SegmentationError::invalid(
                    format!("program.tiers[{i}].name"),
                    "another tier has this name",
                ));
            }
            let field = format!("program.tiers[{i}].threshold");
            match i.checked_sub(1).map(|before| self.tiers[before].threshold) {
                None if tier.threshold != 0 => {
                    return Err(SegmentationError::invalid(
                        field,
                        "the first (base) tier's threshold must be 0",
                    ));
                }
                Some(before) if tier.threshold <= before => {
                    return Err(SegmentationError::invalid(
                        field,
                        format!("must be above the tier before's ({before})"),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn policy(&self) -> Policy {
        Policy {
            thresholds: self.tiers.iter().map(|t| t.threshold).collect(),
            window_days: self.window_days,
            retain_days: self.retain_days,
            downgrade: self.downgrade,
        }
    }
}

/// A program as stored.
#[derive(Debug, Clone)]
pub struct Program {
    pub definition: Definition,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Program {
    fn to_row(&self) -> TierProgramRow {
        let d = &self.definition;
        TierProgramRow {
            name: d.name.clone(),
            description: d.description.clone(),
            measure: d.measure.as_str().to_owned(),
            window_days: i32::try_from(d.window_days).unwrap_or(i32::MAX),
            tiers: json!(
                d.tiers
                    .iter()
                    .map(|t| json!({"name": t.name, "threshold": t.threshold}))
                    .collect::<Vec<_>>()
            ),
            retain_days: i32::try_from(d.retain_days).unwrap_or(i32::MAX),
            downgrade: downgrade_str(d.downgrade).to_owned(),
            created_by: self.created_by.clone(),
            created_at: self.created_at,
        }
    }
}

impl TryFrom<TierProgramRow> for Program {
    type Error = SegmentationError;

    fn try_from(row: TierProgramRow) -> Result<Self, SegmentationError> {
        let tiers = row
            .tiers
            .as_array()
            .ok_or(SegmentationError::Corrupt)?
            .iter()
            .map(|tier| {
                Some(TierLevel {
                    name: tier.get("name")?.as_str()?.to_owned(),
                    threshold: tier.get("threshold")?.as_i64()?,
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or(SegmentationError::Corrupt)?;
        let definition = Definition {
            name: row.name,
            description: row.description,
            measure: Measure::parse(&row.measure).ok_or(SegmentationError::Corrupt)?,
            window_days: u32::try_from(row.window_days).map_err(|_| SegmentationError::Corrupt)?,
            tiers,
            retain_days: u32::try_from(row.retain_days).map_err(|_| SegmentationError::Corrupt)?,
            downgrade: parse_downgrade(&row.downgrade).ok_or(SegmentationError::Corrupt)?,
        };
        // The replay relies on the thresholds' order.
        definition.check().map_err(|_| SegmentationError::Corrupt)?;
        Ok(Self {
            definition,
            created_by: row.created_by,
            created_at: row.created_at,
        })
    }
}

/// What each order or return adds to `measure` while in the window.
pub fn contributions(measure: Measure, orders: &[OrderRow]) -> Vec<Contribution> {
    orders
        .iter()
        .filter_map(|o| {
            let amount = match (measure, o.kind.as_str()) {
                (Measure::Orders, "order") => 1,
                (Measure::Spend, "order") => o.reporting_minor?,
                (Measure::Spend, "return") => o.reporting_minor?.saturating_neg(),
                _ => return None,
            };
            Some(Contribution {
                at: o.occurred_at,
                amount,
            })
        })
        .collect()
}

/// Where `customer`, with `orders`, stands in `program` at `as_of`. A customer who never left
/// the base tier holds it since they became known (profile or first order, the earlier), if
/// that is not after `as_of`.
pub fn standing_of(
    program: &Definition,
    customer: &CustomerRow,
    orders: &[OrderRow],
    as_of: DateTime<Utc>,
) -> policy::Standing {
    let mut standing = policy::standing(
        &program.policy(),
        &contributions(program.measure, orders),
        as_of,
    );
    if standing.since.is_none() {
        let known = orders
            .iter()
            .map(|o| o.occurred_at)
            .fold(customer.created_at, DateTime::min);
        standing.since = Some(known).filter(|known| *known <= as_of);
    }
    standing
}

/// One customer's tier in one program; no standing when the customer is restricted.
#[derive(Debug, Clone)]
pub struct TierAnswer {
    pub program: Program,
    pub restricted: bool,
    pub objected: bool,
    pub standing: Option<policy::Standing>,
}

#[derive(Debug, Clone)]
pub struct Tiers {
    db: Db,
    /// The currency of spend measures.
    reporting_currency: String,
}

impl Tiers {
    pub fn new(db: Db, reporting_currency: &str) -> Self {
        Self {
            db,
            reporting_currency: reporting_currency.to_owned(),
        }
    }

    pub fn reporting_currency(&self) -> &str {
        &self.reporting_currency
    }

    /// Defines a program; the same definition again changes nothing and returns `false`.
    pub async fn define(
        &self,
        by: String,
        definition: Definition,
    ) -> Result<(Program, bool), SegmentationError> {
        definition.check()?;
        let program = Program {
            definition,
            created_by: by,
            created_at: Utc::now(),
        };
        self.db
            .run(move |conn| {
                if store::insert(conn, &program.to_row())? {
                    return Ok((program, true));
                }
                let existing = store::find(conn, &program.definition.name)?
                    .ok_or(SegmentationError::Corrupt)
                    .and_then(Program::try_from)?;
                if existing.definition == program.definition {
                    Ok((existing, false))
                } else {
                    Err(SegmentationError::AlreadyExists(format!(
                        "a tier program named {:?} exists with another definition; choose another name",
                        program.definition.name
                    )))
                }
            })
            .await
    }

    pub async fn list(&self) -> Result<Vec<Program>, SegmentationError> {
        self.db
            .run(|conn| {
                store::list(conn)?
                    .into_iter()
                    .map(Program::try_from)
                    .collect::<Result<Vec<_>, SegmentationError>>()
            })
            .await
    }

    /// `subject`'s tier in `program` at `as_of`. NOT_FOUND for an unknown program or customer.
    pub async fn tier(
        &self,
        program: String,
        subject: Uuid,
        as_of: DateTime<Utc>,
    ) -> Result<TierAnswer, SegmentationError> {
        self.db
            .run(move |conn| {
                let program = store::find(conn, &program)?
                    .ok_or(SegmentationError::NotFound("tier program"))
                    .and_then(Program::try_from)?;
                let customer = projection::find_customer(conn, subject)?
                    .ok_or(SegmentationError::NotFound("customer"))?;
                let objected = projection::find_objection(conn, subject)?.is_some();
                if customer.restricted || objected {
                    // Art. 18 and 21: the orders of a restricted or objecting customer are
                    // not read.
                    return Ok(TierAnswer {
                        program,
                        restricted: customer.restricted,
                        objected,
                        standing: None,
                    });
                }
                let orders = projection::list_orders(conn, subject)?;
                let standing = standing_of(&program.definition, &customer, &orders, as_of);
                Ok(TierAnswer {
                    program,
                    restricted: false,
                    objected: false,
                    standing: Some(standing),
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> Definition {
        Definition {
            name: "club".to_owned(),
            description: String::new(),
            measure: Measure::Orders,
            window_days: 365,
            tiers: vec![
                TierLevel {
                    name: "White".to_owned(),
                    threshold: 0,
                },
                TierLevel {
                    name: "Black".to_owned(),
                    threshold: 3,
                },
                TierLevel {
                    name: "Gold".to_owned(),
                    threshold: 10,
                },
            ],
            retain_days: 90,
            downgrade: Downgrade::OneLevel,
        }
    }

    fn field_of(definition: &Definition) -> Option<String> {
        match definition.check() {
            Ok(()) => None,
            Err(SegmentationError::InvalidArgument { field, .. }) => Some(field),
            Err(other) => panic!("not an invalid argument: {other}"),
        }
    }

    #[test]
    fn every_invalid_field_is_named() {
        assert_eq!(field_of(&definition()), None);
        type Breaks = fn(&mut Definition);
        let cases: [(&str, Breaks); 10] = [
            ("program.name", |d| d.name = "Club".to_owned()),
            ("program.description", |d| d.description = "x".repeat(1001)),
            ("program.window_days", |d| d.window_days = 0),
            ("program.window_days", |d| d.window_days = 3661),
            ("program.retain_days", |d| d.retain_days = 3661),
            ("program.tiers", |d| d.tiers.truncate(1)),
            ("program.tiers[0].threshold", |d| d.tiers[0].threshold = 1),
            ("program.tiers[2].threshold", |d| d.tiers[2].threshold = 3),
            ("program.tiers[1].name", |d| {
                d.tiers[1].name = " Black".to_owned()
            }),
            ("program.tiers[2].name", |d| {
                d.tiers[2].name = "white".to_owned()
            }),
        ];
        for (field, break_it) in cases {
            let mut broken = definition();
            break_it(&mut broken);
            assert_eq!(field_of(&broken).as_deref(), Some(field));
        }
    }

    #[test]
    fn a_stored_program_reads_back_as_defined() {
        let program = Program {
            definition: definition(),
            created_by: "tests".to_owned(),
            created_at: Utc::now(),
        };
        let back = Program::try_from(program.to_row()).unwrap();
        assert_eq!(back.definition, program.definition);
    }

    fn row(kind: &str, reporting_minor: Option<i64>) -> OrderRow {
        OrderRow {
            interaction_id: Uuid::now_v7(),
            subject_id: Uuid::nil(),
            kind: kind.to_owned(),
            order_id: "o-1".to_owned(),
            occurred_at: Utc::now(),
            amount_minor: 100,
            currency: "EUR".to_owned(),
            reporting_minor,
        }
    }

    #[test]
    fn returns_reduce_spend_but_not_orders() {
        let history = [
            row("order", Some(5_000)),
            row("return", Some(2_000)),
            row("order", None),
        ];
        let amounts = |m| -> Vec<i64> {
            contributions(m, &history)
                .iter()
                .map(|c| c.amount)
                .collect()
        };
        assert_eq!(amounts(Measure::Orders), [1, 1]);
        assert_eq!(amounts(Measure::Spend), [5_000, -2_000]);
    }
}
