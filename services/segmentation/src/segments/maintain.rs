//! Keeping `memberships` true to the rules: a customer is evaluated again for the segments
//! whose fields a change at profiles touched (in the transaction that applies it), when time
//! alone can next flip an answer (a scheduled check), and once over every customer for a new
//! segment or after a new RFM computation (a sweep). Every change of membership is a join or
//! a leave event, which `WatchMembership` streams.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use super::facts;
use super::members::{self, Reason};
use super::store;
use crate::error::SegmentationError;
use crate::rules::Rule;

/// Which of a customer's facts a change may have moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touched {
    /// Any of them: a new customer, a merge, a restriction.
    All,
    /// Only these.
    Fields(&'static [&'static str]),
    /// The profile attributes (`country`, `locale`, `custom.<key>`: open-ended, so not a list).
    Attributes,
}

impl Touched {
    /// Both changes' fields together.
    pub fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Fields(a), Self::Fields(b)) if a == b => self,
            (Self::Attributes, Self::Attributes) => self,
            (Self::Fields([]), other) | (other, Self::Fields([])) => other,
            _ => Self::All,
        }
    }

    fn reaches(self, rule_fields: &[String]) -> bool {
        match self {
            Self::All => true,
            Self::Fields(fields) => rule_fields.iter().any(|f| fields.contains(&f.as_str())),
            Self::Attributes => rule_fields.iter().any(|f| facts::is_attribute_field(f)),
        }
    }
}

/// A defined segment, its rule parsed.
#[derive(Debug, Clone)]
pub struct SegmentRule {
    pub name: String,
    pub rule: Arc<Rule>,
}

/// A customer's evaluation for one segment.
type Pair = (String, Uuid);

#[derive(Debug)]
pub struct Maintainer {
    /// Digits of the reporting currency's minor units, to give amounts in major units.
    minor_units: u32,
    /// Rules parsed once: a segment's rule never changes.
    parsed: Mutex<HashMap<String, Arc<Rule>>>,
    /// Notified after membership events commit, for `WatchMembership`.
    pub changed: Arc<Notify>,
    /// Notified when there is sweeping to do.
    pub sweep: Arc<Notify>,
}

impl Maintainer {
    pub fn new(minor_units: u32) -> Self {
        Self {
            minor_units,
            parsed: Mutex::new(HashMap::new()),
            changed: Arc::new(Notify::new()),
            sweep: Arc::new(Notify::new()),
        }
    }

    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// Every defined segment with its parsed rule.
    pub fn segments(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Vec<(SegmentRule, Vec<String>)>, SegmentationError> {
        let rows = store::list(conn)?;
        let mut parsed = self
            .parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        rows.into_iter()
            .map(|row| {
                let rule = match parsed.get(&row.name) {
                    Some(rule) => rule.clone(),
                    None => {
                        let rule = Arc::new(
                            Rule::parse(&row.rule, &facts::field_type)
                                .map_err(|_| SegmentationError::Corrupt)?,
                        );
                        parsed.insert(row.name.clone(), rule.clone());
                        rule
                    }
                };
                let fields = row.fields.into_iter().flatten().collect();
                Ok((
                    SegmentRule {
                        name: row.name,
                        rule,
                    },
                    fields,
                ))
            })
            .collect()
    }

    /// Evaluates each touched customer again for the segments reading a fact the change
    /// touched, in the caller's transaction, which holds the customers' rows.
    pub fn evaluate_touched(
        &self,
        conn: &mut PgConnection,
        touched: &HashMap<Uuid, Touched>,
        now: DateTime<Utc>,
    ) -> Result<(), SegmentationError> {
        if touched.is_empty() {
            return Ok(());
        }
        let segments = self.segments(conn)?;
        let mut pairs = Vec::new();
        for (subject, touched) in touched {
            for (segment, fields) in &segments {
                if touched.reaches(fields) {
                    pairs.push((segment.clone(), *subject));
                }
            }
        }
        self.evaluate(conn, &pairs, now)
    }

    /// Evaluates each (segment, customer) pair as of `now`: joins and leaves where the
    /// answer changed, and the next evaluation scheduled where time alone can change it.
    /// The caller holds the customers' rows.
    pub fn evaluate(
        &self,
        conn: &mut PgConnection,
        pairs: &[(SegmentRule, Uuid)],
        now: DateTime<Utc>,
    ) -> Result<(), SegmentationError> {
        if pairs.is_empty() {
            return Ok(());
        }
        let subjects: Vec<Uuid> = pairs
            .iter()
            .map(|p| p.1)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let names: Vec<String> = pairs
            .iter()
            .map(|p| p.0.name.clone())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let timelines = facts::load(conn, &subjects, now)?;
        let current = members::members_among(conn, &names, &subjects)?;
        let (mut joins, mut leaves, mut scheduled, mut unscheduled) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::<Pair>::new());
        for (segment, subject) in pairs {
            let timeline = timelines.get(subject);
            let (member, next) = timeline.map_or((false, None), |t| {
                t.membership(&segment.rule, now, self.minor_units)
            });
            let pair = (segment.name.clone(), *subject);
            let was = current.contains(&pair);
            if member && !was {
                joins.push(pair.clone());
            } else if !member && was {
                let reason = match timeline {
                    Some(t) if t.restricted() => Reason::Restricted,
                    Some(t) if t.objected() => Reason::Objected,
                    _ => Reason::Evaluated,
                };
                leaves.push((pair.0.clone(), pair.1, reason));
            }
            match next {
                Some(at) => scheduled.push((pair.0, pair.1, at)),
                None => unscheduled.push(pair),
            }
        }
        members::join(conn, &joins, Reason::Evaluated)?;
        members::leave(conn, &leaves)?;
        members::reschedule(conn, &scheduled, &unscheduled)?;
        Ok(())
    }

    /// Takes the subject out of every segment (merged into another, or erased).
    pub fn forget(
        &self,
        conn: &mut PgConnection,
        subject: Uuid,
        reason: Reason,
    ) -> Result<(), SegmentationError> {
        Ok(members::forget(conn, subject, reason)?)
    }

    /// Runs up to `limit` evaluations due by `now`; returns how many ran.
    pub fn run_due(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<usize, SegmentationError> {
        let due = members::take_due_checks(conn, now, limit)?;
        if due.is_empty() {
            return Ok(0);
        }
        let segments: HashMap<String, SegmentRule> = self
            .segments(conn)?
            .into_iter()
            .map(|(segment, _)| (segment.name.clone(), segment))
            .collect();
        let pairs: Vec<(SegmentRule, Uuid)> = due
            .iter()
            .filter_map(|(name, subject)| segments.get(name).map(|s| (s.clone(), *subject)))
            .collect();
        self.evaluate(conn, &pairs, now)?;
        Ok(due.len())
    }

    /// Evaluates the next `limit` customers of one unfinished sweep; returns whether any
    /// sweep had work. A customer another transaction is changing gets a check due now.
    pub fn sweep_step(
        &self,
        conn: &mut PgConnection,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<bool, SegmentationError> {
        let Some(sweep) = members::take_sweep(conn)? else {
            return Ok(false);
        };
        let Some(segment) = self
            .segments(conn)?
            .into_iter()
            .map(|(segment, _)| segment)
            .find(|s| s.name == sweep.segment)
        else {
            return Ok(false);
        };
        let (locked, busy) = members::lock_customers_after(conn, sweep.after, limit)?;
        let last = locked.iter().chain(&busy).max().copied();
        let pairs: Vec<(SegmentRule, Uuid)> =
            locked.into_iter().map(|s| (segment.clone(), s)).collect();
        self.evaluate(conn, &pairs, now)?;
        let later: Vec<(String, Uuid, DateTime<Utc>)> = busy
            .into_iter()
            .map(|s| (segment.name.clone(), s, now))
            .collect();
        members::reschedule(conn, &later, &[])?;
        members::advance_sweep(conn, &segment.name, last)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touched_fields_combine() {
        let orders = Touched::Fields(&facts::ORDER_FIELDS);
        let visits = Touched::Fields(&facts::VISIT_FIELDS);
        assert_eq!(orders.and(orders), orders);
        assert_eq!(orders.and(visits), Touched::All);
        assert_eq!(Touched::Fields(&[]).and(visits), visits);
        assert_eq!(orders.and(Touched::All), Touched::All);
        assert!(orders.reaches(&["orders_90d".to_owned()]));
        assert!(!visits.reaches(&["orders_90d".to_owned()]));
        assert!(Touched::All.reaches(&["rfm.segment".to_owned()]));
        let attributes = Touched::Attributes;
        assert_eq!(attributes.and(attributes), attributes);
        assert_eq!(Touched::Fields(&[]).and(attributes), attributes);
        assert_eq!(attributes.and(orders), Touched::All);
        assert!(attributes.reaches(&["orders".to_owned(), "custom.tier".to_owned()]));
        assert!(attributes.reaches(&["country".to_owned()]));
        assert!(!attributes.reaches(&["orders".to_owned(), "rfm.segment".to_owned()]));
    }
}
