//! KPIs for a period: the parameters checked, the aggregates read in one transaction, and the
//! rates derived from them. The definitions are in the proto's comments.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use ecrm_platform::Db;

use super::store::{self, Period};
use crate::error::SegmentationError;
use crate::rfm::domain::SEGMENTS;
use crate::rfm::store as rfm_store;

pub const DEFAULT_TOP: u32 = 10;
pub const MAX_TOP: u32 = 100;
pub const MAX_PERIOD_DAYS: i64 = 3660;
/// A product is rarely bought when its units ordered are at most this percentage of its views.
pub const RARELY_BOUGHT_PERCENT: i64 = 5;
/// The bucket of customers the RFM computation did not score.
pub const UNSCORED: &str = "unscored";

/// What to compute, checked.
#[derive(Debug, Clone, Copy)]
pub struct KpiParams {
    pub period: Period,
    pub top: u32,
}

/// The first day that starts at or after `at` (UTC).
fn first_day_from(at: DateTime<Utc>) -> Option<NaiveDate> {
    let day = at.date_naive();
    if at.time() == NaiveTime::MIN {
        Some(day)
    } else {
        day.succ_opt()
    }
}

impl KpiParams {
    /// Checks the period and fills the default `top` in; errors name the request's field.
    pub fn new(
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
        top: u32,
    ) -> Result<Self, SegmentationError> {
        let start = start.ok_or_else(|| SegmentationError::invalid("start", "required"))?;
        let end = end.ok_or_else(|| SegmentationError::invalid("end", "required"))?;
        if end <= start {
            return Err(SegmentationError::invalid("end", "after start"));
        }
        if end - start > Duration::days(MAX_PERIOD_DAYS) {
            return Err(SegmentationError::invalid(
                "end",
                format!("at most {MAX_PERIOD_DAYS} days after start"),
            ));
        }
        let top = match top {
            0 => DEFAULT_TOP,
            t if t <= MAX_TOP => t,
            _ => return Err(SegmentationError::invalid("top", format!("1 to {MAX_TOP}"))),
        };
        let out_of_range = || SegmentationError::invalid("start", "too early or too late a time");
        let previous_start = start
            .checked_sub_signed(end - start)
            .ok_or_else(out_of_range)?;
        Ok(Self {
            period: Period {
                start,
                end,
                previous_start,
                first_day: first_day_from(start).ok_or_else(out_of_range)?,
                end_day: first_day_from(end).ok_or_else(out_of_range)?,
            },
            top,
        })
    }
}

/// `part / whole`, unset when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    #[expect(
        clippy::cast_precision_loss,
        reason = "counts of customers and answers, far below 2^52"
    )]
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Net Promoter Score, -100 to 100: % promoters less % detractors; unset without answers.
pub fn net_promoter_score(promoters: u64, detractors: u64, answers: u64) -> Option<f64> {
    Some(100.0 * (ratio(promoters, answers)? - ratio(detractors, answers)?))
}

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[derive(Debug, Clone, Default)]
pub struct CustomerKpis {
    pub active: u64,
    pub new_customers: u64,
    pub previous_active: u64,
    pub retained: u64,
    pub churned: u64,
    pub attrition_rate: Option<f64>,
    pub retention_rate: Option<f64>,
    pub repeat_customers: u64,
    pub repeat_purchase_rate: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct ConversionKpis {
    pub visitors: u64,
    pub purchasers: u64,
    pub conversion_rate: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct SatisfactionKpis {
    pub csat_answers: u64,
    pub satisfied: u64,
    pub csat: Option<f64>,
    pub nps_answers: u64,
    pub promoters: u64,
    pub detractors: u64,
    pub nps: Option<f64>,
}

/// A segment's customers and revenue.
#[derive(Debug, Clone)]
pub struct SegmentRevenue {
    pub segment: String,
    pub customers: u64,
    pub revenue_minor: i64,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub period: Period,
    pub currency: String,
    pub customers: CustomerKpis,
    pub orders: store::OrderTotals,
    pub conversion: ConversionKpis,
    pub rfm_job: Option<uuid::Uuid>,
    pub revenue: Vec<SegmentRevenue>,
    pub satisfaction: SatisfactionKpis,
    pub top_bought: Vec<store::ProductBoughtRow>,
    pub viewed_not_bought: Vec<store::ProductViewedRow>,
}

impl Report {
    pub fn revenue_total(&self) -> i64 {
        self.revenue
            .iter()
            .fold(0_i64, |total, s| total.saturating_add(s.revenue_minor))
    }
}

fn customers(counts: &store::CustomerCounts) -> CustomerKpis {
    let active = count(counts.active);
    let previous_active = count(counts.previous_active);
    let retained = count(counts.retained);
    let churned = previous_active.saturating_sub(retained);
    let repeat_customers = count(counts.repeat_customers);
    CustomerKpis {
        active,
        new_customers: count(counts.new_customers),
        previous_active,
        retained,
        churned,
        attrition_rate: ratio(churned, previous_active),
        retention_rate: ratio(retained, previous_active),
        repeat_customers,
        repeat_purchase_rate: ratio(repeat_customers, active),
    }
}

fn satisfaction(counts: &store::SurveyCounts) -> SatisfactionKpis {
    let (csat_answers, satisfied) = (count(counts.csat_answers), count(counts.satisfied));
    let (nps_answers, promoters, detractors) = (
        count(counts.nps_answers),
        count(counts.promoters),
        count(counts.detractors),
    );
    SatisfactionKpis {
        csat_answers,
        satisfied,
        csat: ratio(satisfied, csat_answers).map(|r| 100.0 * r),
        nps_answers,
        promoters,
        detractors,
        nps: net_promoter_score(promoters, detractors, nps_answers),
    }
}

/// The segments in the order RfmSummary lists them, then the unscored.
fn revenue(rows: Vec<store::SegmentRevenueRow>) -> Vec<SegmentRevenue> {
    let rank = |segment: Option<&str>| {
        segment
            .and_then(|s| SEGMENTS.iter().position(|named| *named == s))
            .unwrap_or(SEGMENTS.len())
    };
    let mut rows = rows;
    rows.sort_by_key(|row| rank(row.segment.as_deref()));
    rows.into_iter()
        .map(|row| SegmentRevenue {
            segment: row.segment.unwrap_or_else(|| UNSCORED.to_owned()),
            customers: count(row.customers),
            revenue_minor: row.revenue_minor,
        })
        .collect()
}

#[derive(Debug, Clone)]
pub struct Kpis {
    db: Db,
    currency: String,
}

impl Kpis {
    /// KPIs over `db`'s projection, amounts in `currency`, the reporting currency.
    pub fn new(db: Db, currency: &str) -> Self {
        Self {
            db,
            currency: currency.to_owned(),
        }
    }

    /// Every figure for the period, read from one snapshot so they agree with each other.
    pub async fn compute(&self, params: KpiParams) -> Result<Report, SegmentationError> {
        let currency = self.currency.clone();
        self.db
            .run(move |conn| {
                store::set_snapshot(conn)?;
                let period = params.period;
                let top = i64::from(params.top);
                let job = rfm_store::find_current(conn)?.map(|job| job.id);
                let counts = store::customer_counts(conn, &period)?;
                Ok(Report {
                    period,
                    currency,
                    customers: customers(&counts),
                    orders: store::order_totals(conn, &period)?,
                    conversion: ConversionKpis {
                        visitors: count(counts.visitors),
                        purchasers: count(counts.purchasers),
                        conversion_rate: ratio(count(counts.purchasers), count(counts.visitors)),
                    },
                    rfm_job: job,
                    revenue: revenue(store::revenue_by_segment(conn, &period, job)?),
                    satisfaction: satisfaction(&store::survey_counts(conn, &period)?),
                    top_bought: store::top_bought(conn, &period, top)?,
                    viewed_not_bought: store::viewed_not_bought(
                        conn,
                        &period,
                        RARELY_BOUGHT_PERCENT,
                        top,
                    )?,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn at(day: u32, hour: u32) -> Option<DateTime<Utc>> {
        Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).single()
    }

    fn field(error: SegmentationError) -> String {
        match error {
            SegmentationError::InvalidArgument { field, .. } => field,
            other => panic!("not an invalid argument: {other}"),
        }
    }

    #[test]
    fn periods_are_checked_naming_the_field() {
        assert_eq!(
            field(KpiParams::new(None, at(2, 0), 0).unwrap_err()),
            "start"
        );
        assert_eq!(field(KpiParams::new(at(1, 0), None, 0).unwrap_err()), "end");
        assert_eq!(
            field(KpiParams::new(at(2, 0), at(2, 0), 0).unwrap_err()),
            "end"
        );
        assert_eq!(
            field(KpiParams::new(at(3, 0), at(2, 0), 0).unwrap_err()),
            "end"
        );
        assert_eq!(
            field(KpiParams::new(at(1, 0), at(2, 0), 101).unwrap_err()),
            "top"
        );
        let long = Utc.with_ymd_and_hms(2037, 1, 1, 0, 0, 0).single();
        assert_eq!(field(KpiParams::new(at(1, 0), long, 0).unwrap_err()), "end");
        let early = DateTime::<Utc>::MIN_UTC;
        let later = early.checked_add_signed(Duration::days(1));
        assert_eq!(
            field(KpiParams::new(Some(early), later, 0).unwrap_err()),
            "start"
        );
    }

    #[test]
    fn the_previous_period_has_the_same_length_and_days_count_when_they_start_inside() {
        let params = KpiParams::new(at(11, 0), at(21, 0), 0).unwrap();
        assert_eq!(params.top, DEFAULT_TOP);
        assert_eq!(Some(params.period.previous_start), at(1, 0));
        assert_eq!(
            params.period.first_day,
            NaiveDate::from_ymd_opt(2026, 10, 11).unwrap()
        );
        assert_eq!(
            params.period.end_day,
            NaiveDate::from_ymd_opt(2026, 10, 21).unwrap()
        );
        // From 10:00 on the 11th to 10:00 on the 21st: the days starting inside are 12 to 21.
        let params = KpiParams::new(at(11, 10), at(21, 10), 3).unwrap();
        assert_eq!(params.top, 3);
        assert_eq!(
            params.period.first_day,
            NaiveDate::from_ymd_opt(2026, 10, 12).unwrap()
        );
        assert_eq!(
            params.period.end_day,
            NaiveDate::from_ymd_opt(2026, 10, 22).unwrap()
        );
    }

    #[test]
    fn rates_are_unset_without_a_denominator() {
        assert_eq!(ratio(1, 4), Some(0.25));
        assert_eq!(ratio(0, 0), None);
        assert_eq!(net_promoter_score(2, 1, 4), Some(25.0));
        assert_eq!(net_promoter_score(0, 3, 3), Some(-100.0));
        assert_eq!(net_promoter_score(0, 0, 0), None);
    }
}
