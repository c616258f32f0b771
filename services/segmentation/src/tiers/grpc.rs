//! `ecrm.segmentation.v1.Tiers`: decode, call the domain, encode.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use ecrm_platform::time::{from_timestamp, to_timestamp};
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::tiers_server::Tiers as TiersApi;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::domain::{Definition, Measure, Program, TierLevel, Tiers};
use super::policy::{Downgrade, Standing};
use crate::error::SegmentationError;
use crate::segments::domain::check_name;

fn subject(value: &str) -> Result<Uuid, SegmentationError> {
    Uuid::parse_str(value).map_err(|_| SegmentationError::invalid("subject_id", "not a UUID"))
}

fn index(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// A given `as_of`: from 1970 to 9999, so that windows and retentions stay in range.
fn checked_as_of(at: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, SegmentationError> {
    let earliest = DateTime::<Utc>::UNIX_EPOCH;
    let latest = NaiveDate::from_ymd_opt(10_000, 1, 1)
        .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    at.filter(|at| (earliest..latest).contains(at))
        .ok_or_else(|| SegmentationError::invalid("as_of", "a valid time from 1970 to 9999"))
}

fn definition(program: pb::TierProgram) -> Result<Definition, SegmentationError> {
    let measure = match pb::TierMeasure::try_from(program.measure) {
        Ok(pb::TierMeasure::Orders) => Measure::Orders,
        Ok(pb::TierMeasure::Spend) => Measure::Spend,
        _ => {
            return Err(SegmentationError::invalid(
                "program.measure",
                "TIER_MEASURE_ORDERS or TIER_MEASURE_SPEND",
            ));
        }
    };
    let downgrade = match pb::TierDowngrade::try_from(program.downgrade) {
        Ok(pb::TierDowngrade::OneLevel) => Downgrade::OneLevel,
        Ok(pb::TierDowngrade::ToQualified) => Downgrade::ToQualified,
        _ => {
            return Err(SegmentationError::invalid(
                "program.downgrade",
                "TIER_DOWNGRADE_ONE_LEVEL or TIER_DOWNGRADE_TO_QUALIFIED",
            ));
        }
    };
    Ok(Definition {
        name: program.name,
        description: program.description.trim().to_owned(),
        measure,
        window_days: program.window_days,
        tiers: program
            .tiers
            .into_iter()
            .map(|t| TierLevel {
                name: t.name,
                threshold: t.threshold,
            })
            .collect(),
        retain_days: program.retain_days,
        downgrade,
    })
}

fn program_to_proto(program: Program, reporting_currency: &str) -> pb::TierProgram {
    let d = program.definition;
    pb::TierProgram {
        name: d.name,
        description: d.description,
        measure: match d.measure {
            Measure::Orders => pb::TierMeasure::Orders,
            Measure::Spend => pb::TierMeasure::Spend,
        }
        .into(),
        window_days: d.window_days,
        tiers: d
            .tiers
            .into_iter()
            .map(|t| pb::Tier {
                name: t.name,
                threshold: t.threshold,
            })
            .collect(),
        retain_days: d.retain_days,
        downgrade: match d.downgrade {
            Downgrade::OneLevel => pb::TierDowngrade::OneLevel,
            Downgrade::ToQualified => pb::TierDowngrade::ToQualified,
        }
        .into(),
        currency: match d.measure {
            Measure::Orders => String::new(),
            Measure::Spend => reporting_currency.to_owned(),
        },
        created_at: Some(to_timestamp(program.created_at)),
    }
}

fn standing_to_proto(tiers: &[TierLevel], s: Standing) -> pb::TierStanding {
    let name = |i: usize| tiers.get(i).map(|t| t.name.clone()).unwrap_or_default();
    let next = tiers.get(s.tier + 1);
    pb::TierStanding {
        tier: name(s.tier),
        tier_index: index(s.tier),
        measure: s.measure,
        qualified_tier_index: index(s.qualified),
        since: s.since.map(to_timestamp),
        kept_until: s.kept_until.map(to_timestamp),
        next_tier: next.map(|t| t.name.clone()).unwrap_or_default(),
        next_tier_needed: next
            .map(|t| t.threshold.saturating_sub(s.measure))
            .unwrap_or_default(),
        next_change_at: s.next_change.map(|(at, _)| to_timestamp(at)),
        next_change_tier: s.next_change.map(|(_, i)| name(i)).unwrap_or_default(),
    }
}

#[derive(Debug, Clone)]
pub struct TiersService {
    pub tiers: Arc<Tiers>,
}

#[tonic::async_trait]
impl TiersApi for TiersService {
    async fn define_tier_program(
        &self,
        request: Request<pb::DefineTierProgramRequest>,
    ) -> Result<Response<pb::DefineTierProgramResponse>, Status> {
        let by = ecrm_auth::Principal::of(&request)?.subject.clone();
        let Some(program) = request.into_inner().program else {
            return Err(SegmentationError::invalid("program", "is required").into());
        };
        let (program, created) = self.tiers.define(by, definition(program)?).await?;
        Ok(Response::new(pb::DefineTierProgramResponse {
            program: Some(program_to_proto(program, self.tiers.reporting_currency())),
            created,
        }))
    }

    async fn list_tier_programs(
        &self,
        _request: Request<pb::ListTierProgramsRequest>,
    ) -> Result<Response<pb::ListTierProgramsResponse>, Status> {
        let programs = self.tiers.list().await?;
        Ok(Response::new(pb::ListTierProgramsResponse {
            programs: programs
                .into_iter()
                .map(|p| program_to_proto(p, self.tiers.reporting_currency()))
                .collect(),
        }))
    }

    async fn get_tier(
        &self,
        request: Request<pb::GetTierRequest>,
    ) -> Result<Response<pb::GetTierResponse>, Status> {
        let body = request.into_inner();
        check_name("program", &body.program)?;
        let subject = subject(&body.subject_id)?;
        let as_of = match &body.as_of {
            None => Utc::now(),
            Some(at) => checked_as_of(from_timestamp(at))?,
        };
        let answer = self.tiers.tier(body.program, subject, as_of).await?;
        let tiers = &answer.program.definition.tiers;
        Ok(Response::new(pb::GetTierResponse {
            program: answer.program.definition.name.clone(),
            subject_id: subject.to_string(),
            as_of: Some(to_timestamp(as_of)),
            restricted: answer.restricted,
            objected: answer.objected,
            standing: answer.standing.map(|s| standing_to_proto(tiers, s)),
        }))
    }
}
