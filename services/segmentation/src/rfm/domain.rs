//! RFM computations as jobs: measure each customer over the look-back window, score the
//! measures by rank, name the segment. The rules are in the proto's comments and here.

use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use ecrm_platform::Db;
use ecrm_platform::money::{is_currency, minor_units};
use tokio::sync::Notify;
use uuid::Uuid;

use super::store::{self, JobRow, ScoreRow};
use crate::config::Rates;
use crate::error::SegmentationError;
use crate::segments::facts::RFM_FIELDS;
use crate::segments::members;

pub const DEFAULT_WINDOW_DAYS: u32 = 365;
pub const MAX_WINDOW_DAYS: u32 = 3660;
pub const DEFAULT_BINS: u32 = 5;
pub const MIN_BINS: u32 = 2;
pub const MAX_BINS: u32 = 10;
/// Score (measures, scores and segments in one statement), then finish.
const STEPS: i32 = 2;

/// Named segments on the 1-5 recency and frequency scores: (name, R from, R to, F from, F to).
/// Every one of the 25 cells is in exactly one rule.
const RULES: [(&str, u32, u32, u32, u32); 12] = [
    ("Champions", 5, 5, 4, 5),
    ("Loyal", 3, 4, 4, 5),
    ("Potential Loyalist", 4, 5, 2, 3),
    ("New", 5, 5, 1, 1),
    ("Promising", 4, 4, 1, 1),
    ("Need Attention", 3, 3, 3, 3),
    ("About to Sleep", 3, 3, 1, 2),
    ("At Risk", 1, 2, 3, 4),
    ("Can't Lose Them", 1, 2, 5, 5),
    ("Hibernating", 2, 2, 1, 2),
    ("Hibernating", 1, 1, 2, 2),
    ("Lost", 1, 1, 1, 1),
];

/// Every named segment, in the order summaries list them.
pub const SEGMENTS: [&str; 11] = [
    "Champions",
    "Loyal",
    "Potential Loyalist",
    "New",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
];

/// A score on `bins` levels, as a score on 5 (what the SQL's `r5` and `f5` are).
#[cfg(test)]
fn on_five(score: u32, bins: u32) -> u32 {
    (score * 5).div_ceil(bins)
}

/// The segment of recency and frequency scores on `bins` levels: the reference the SQL of
/// [`segment_case_sql`] is tested against.
#[cfg(test)]
pub fn segment(r: u32, f: u32, bins: u32) -> Option<&'static str> {
    let (r, f) = (on_five(r, bins), on_five(f, bins));
    RULES
        .iter()
        .find(|(_, r_from, r_to, f_from, f_to)| {
            (*r_from..=*r_to).contains(&r) && (*f_from..=*f_to).contains(&f)
        })
        .map(|rule| rule.0)
}

/// The rules as an SQL CASE over columns `r5` and `f5`.
pub fn segment_case_sql() -> String {
    let arms: String = RULES
        .iter()
        .map(|(name, r_from, r_to, f_from, f_to)| {
            format!(
                " WHEN r5 BETWEEN {r_from} AND {r_to} AND f5 BETWEEN {f_from} AND {f_to} THEN '{}'",
                name.replace('\'', "''")
            )
        })
        .collect();
    format!("CASE{arms} END")
}

/// What to compute, checked.
#[derive(Debug, Clone)]
pub struct RfmParams {
    pub as_of: NaiveDate,
    pub window_days: u32,
    pub bins: u32,
    pub currency: String,
}

impl RfmParams {
    /// Fills defaults in and checks the ranges; errors name the request's field.
    pub fn new(
        as_of: Option<NaiveDate>,
        window_days: u32,
        bins: u32,
        currency: &str,
        rates: &Rates,
    ) -> Result<Self, SegmentationError> {
        let window_days = match window_days {
            0 => DEFAULT_WINDOW_DAYS,
            days if days <= MAX_WINDOW_DAYS => days,
            _ => {
                return Err(SegmentationError::invalid(
                    "window_days",
                    format!("1 to {MAX_WINDOW_DAYS}"),
                ));
            }
        };
        let bins = match bins {
            0 => DEFAULT_BINS,
            b if (MIN_BINS..=MAX_BINS).contains(&b) => b,
            _ => {
                return Err(SegmentationError::invalid(
                    "bins",
                    format!("{MIN_BINS} to {MAX_BINS}"),
                ));
            }
        };
        let currency = if currency.is_empty() {
            rates.reporting.clone()
        } else if !is_currency(currency) {
            return Err(SegmentationError::invalid(
                "currency",
                "an ISO 4217 code such as EUR",
            ));
        } else if rates.rate(currency).is_none() {
            return Err(SegmentationError::invalid(
                "currency",
                format!("no exchange rate is configured for {currency}"),
            ));
        } else {
            currency.to_owned()
        };
        Ok(Self {
            as_of: as_of.unwrap_or_else(|| Utc::now().date_naive()),
            window_days,
            bins,
            currency,
        })
    }
}

/// A customer's score, with the currency of its job.
#[derive(Debug, Clone)]
pub struct Score {
    pub row: ScoreRow,
    pub currency: String,
}

#[derive(Debug, Clone)]
pub struct Rfm {
    db: Db,
    rates: Rates,
    /// Notified when segments reading RFM fields need evaluating again.
    sweep: Arc<Notify>,
}

impl Rfm {
    pub fn new(db: Db, rates: Rates, sweep: Arc<Notify>) -> Self {
        Self { db, rates, sweep }
    }

    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// Records the job and runs it in the background; returns it as started.
    pub async fn start(&self, params: RfmParams) -> Result<JobRow, SegmentationError> {
        let job = JobRow {
            id: Uuid::now_v7(),
            state: "running".to_owned(),
            as_of: params.as_of,
            window_days: i32::try_from(params.window_days).unwrap_or(i32::MAX),
            bins: i32::try_from(params.bins).unwrap_or(i32::MAX),
            currency: params.currency.clone(),
            steps_done: 0,
            steps_total: STEPS,
            customers: None,
            started_at: Utc::now(),
            finished_at: None,
            error: None,
        };
        let row = job.clone();
        self.db
            .run(move |conn| Ok::<_, SegmentationError>(store::insert_job(conn, &row)?))
            .await?;
        let rfm = self.clone();
        let id = job.id;
        tokio::spawn(async move {
            if let Err(error) = rfm.run(id, params).await {
                tracing::warn!(job.id = %id, error = %error, "RFM computation failed");
                let message = error.to_string();
                let recorded = rfm
                    .db
                    .run(move |conn| {
                        Ok::<_, SegmentationError>(store::update_failed(conn, id, &message)?)
                    })
                    .await;
                if let Err(error) = recorded {
                    tracing::warn!(job.id = %id, error = %error, "cannot record an RFM failure");
                }
            }
        });
        Ok(job)
    }

    /// The steps, each in its own transaction, recording progress after each.
    async fn run(&self, id: Uuid, params: RfmParams) -> Result<(), SegmentationError> {
        let to = params
            .as_of
            .checked_add_days(Days::new(1))
            .ok_or_else(|| SegmentationError::invalid("as_of", "too late a date"))?;
        let from = to
            .checked_sub_days(Days::new(u64::from(params.window_days)))
            .ok_or_else(|| SegmentationError::invalid("as_of", "too early a date"))?;
        let factor = self.factor(&params.currency)?;
        let as_of = params.as_of;
        let bins = i32::try_from(params.bins).unwrap_or(i32::MAX);
        let case = segment_case_sql();
        self.db
            .run(move |conn| {
                store::lock_job(conn, id)?;
                store::use_sort_memory(conn)?;
                let customers =
                    store::insert_scores(conn, id, as_of, from, to, factor, bins, &case)?;
                store::update_scored(conn, id, i64::try_from(customers).unwrap_or(0))?;
                Ok::<_, SegmentationError>(())
            })
            .await?;
        self.db
            .run(move |conn| {
                store::lock_job(conn, id)?;
                finish(conn, id)
            })
            .await?;
        self.sweep.notify_one();
        // Housekeeping once the new scores are current: a failure here loses nothing.
        let pruned = self
            .db
            .run(move |conn| Ok::<_, SegmentationError>(store::delete_older_jobs(conn, id)?))
            .await;
        if let Err(error) = pruned {
            tracing::warn!(job.id = %id, error = %error, "cannot forget earlier RFM jobs");
        }
        Ok(())
    }

    /// Settles the jobs whose process stopped while running them: one whose scores were all
    /// stored is finished, any other failed (a new computation starts afresh).
    pub async fn settle_abandoned(&self) -> Result<usize, SegmentationError> {
        let settled = self
            .db
            .run(|conn| {
                let abandoned = store::list_abandoned(conn)?;
                for (id, steps_done) in &abandoned {
                    if *steps_done >= 1 {
                        finish(conn, *id)?;
                    } else {
                        store::update_failed(
                            conn,
                            *id,
                            "interrupted: the service stopped during the computation; start another",
                        )?;
                    }
                }
                Ok::<_, SegmentationError>(abandoned.len())
            })
            .await?;
        if settled > 0 {
            self.sweep.notify_one();
        }
        Ok(settled)
    }

    /// What one minor unit of the reporting currency is worth in minor units of `currency`.
    fn factor(&self, currency: &str) -> Result<f64, SegmentationError> {
        let rate = self.rates.rate(currency).ok_or_else(|| {
            SegmentationError::invalid(
                "currency",
                format!("no exchange rate is configured for {currency}"),
            )
        })?;
        let digits = i32::try_from(minor_units(currency)).unwrap_or(2)
            - i32::try_from(minor_units(&self.rates.reporting)).unwrap_or(2);
        Ok(10_f64.powi(digits) / rate)
    }

    pub async fn job(&self, id: Uuid) -> Result<JobRow, SegmentationError> {
        self.db
            .run(move |conn| {
                store::find_job(conn, id)?.ok_or(SegmentationError::NotFound("RFM job"))
            })
            .await
    }

    /// The customer's score in the latest finished computation.
    pub async fn score(&self, subject: Uuid) -> Result<Score, SegmentationError> {
        self.db
            .run(move |conn| {
                let job = store::find_current(conn)?
                    .ok_or(SegmentationError::NotFound("RFM computation"))?;
                let row = store::find_score(conn, job.id, subject)?
                    .ok_or(SegmentationError::NotFound("RFM score"))?;
                Ok(Score {
                    row,
                    currency: job.currency,
                })
            })
            .await
    }

    /// Customers and monetary total of every named segment in the latest computation.
    pub async fn summary(
        &self,
    ) -> Result<(JobRow, Vec<(&'static str, u64, i64)>), SegmentationError> {
        self.db
            .run(move |conn| {
                let job = store::find_current(conn)?
                    .ok_or(SegmentationError::NotFound("RFM computation"))?;
                let totals = store::list_segment_totals(conn, job.id)?;
                let segments = SEGMENTS
                    .iter()
                    .map(|name| {
                        let (count, money) = totals
                            .iter()
                            .find(|(segment, _, _)| segment.as_deref() == Some(*name))
                            .map_or((0, 0), |(_, count, money)| {
                                (u64::try_from(*count).unwrap_or(0), money.unwrap_or(0))
                            });
                        (*name, count, money)
                    })
                    .collect();
                Ok((job, segments))
            })
            .await
    }
}

/// Makes the job's scores the current ones.
fn finish(conn: &mut diesel::PgConnection, id: Uuid) -> Result<(), SegmentationError> {
    store::update_done(conn, id)?;
    // The scores segments read have changed under every customer at once.
    members::restart_sweeps(conn, &RFM_FIELDS)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cell_of_the_grid_has_exactly_one_segment() {
        for r in 1..=5 {
            for f in 1..=5 {
                let matching = RULES
                    .iter()
                    .filter(|(_, r_from, r_to, f_from, f_to)| {
                        (*r_from..=*r_to).contains(&r) && (*f_from..=*f_to).contains(&f)
                    })
                    .count();
                assert_eq!(matching, 1, "R {r} F {f}");
            }
        }
        for (name, ..) in RULES {
            assert!(SEGMENTS.contains(&name), "{name}");
        }
    }

    #[test]
    fn segments_follow_the_documented_grid() {
        assert_eq!(segment(5, 5, 5), Some("Champions"));
        assert_eq!(segment(5, 1, 5), Some("New"));
        assert_eq!(segment(1, 1, 5), Some("Lost"));
        assert_eq!(segment(1, 2, 5), Some("Hibernating"));
        assert_eq!(segment(2, 5, 5), Some("Can't Lose Them"));
        assert_eq!(segment(3, 3, 5), Some("Need Attention"));
        // On 10 levels: 10 is 5, 1 and 2 are 1, 9 is 5.
        assert_eq!(segment(10, 9, 10), Some("Champions"));
        assert_eq!(segment(2, 1, 10), Some("Lost"));
        // On 3 levels: 3 is 5, 2 is 4, 1 is 2.
        assert_eq!(segment(3, 1, 3), Some("Potential Loyalist"));
        assert_eq!(segment(1, 1, 3), Some("Hibernating"));
    }

    #[tokio::test]
    async fn jobs_a_stopped_process_left_running_are_settled_and_live_ones_left_alone() {
        use diesel::connection::SimpleConnection as _;
        use diesel::{Connection as _, RunQueryDsl as _};

        let database = ecrm_testkit::TestDatabase::new(&[&crate::SERVICE]).await;
        let mut admin = diesel::PgConnection::establish(database.admin_url().expose()).unwrap();
        let (scoring, scored, working, starting) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        for (id, steps, started) in [
            (scoring, 0, "now() - INTERVAL '5 minutes'"),
            (scored, 1, "now() - INTERVAL '5 minutes'"),
            (working, 0, "now() - INTERVAL '5 minutes'"),
            (starting, 0, "now()"),
        ] {
            diesel::sql_query(format!(
                "INSERT INTO segmentation.rfm_jobs (id, state, as_of, window_days, bins, \
                   currency, steps_done, steps_total, started_at) \
                 VALUES ('{id}', 'running', '2026-10-31', 365, 5, 'EUR', {steps}, 2, {started})"
            ))
            .execute(&mut admin)
            .unwrap();
        }
        // Another process is computing `working`: it holds the job's lock.
        let mut worker = diesel::PgConnection::establish(database.admin_url().expose()).unwrap();
        worker
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('{working}', 0))"
            ))
            .unwrap();

        let db = database.db(&crate::SERVICE).await.unwrap();
        let rfm = Rfm::new(
            db,
            crate::SegmentationConfig::new().rates().unwrap(),
            Arc::new(Notify::new()),
        );
        assert_eq!(rfm.settle_abandoned().await.unwrap(), 2);
        let state = |id| {
            let rfm = rfm.clone();
            async move { rfm.job(id).await.unwrap() }
        };
        let failed = state(scoring).await;
        assert_eq!(failed.state, "failed");
        assert!(failed.error.unwrap().starts_with("interrupted"));
        let finished = state(scored).await;
        assert_eq!(finished.state, "done");
        assert_eq!(finished.steps_done, finished.steps_total);
        assert_eq!(state(working).await.state, "running");
        assert_eq!(state(starting).await.state, "running");
        worker.batch_execute("ROLLBACK").unwrap();
    }
}
