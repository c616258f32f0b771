//! `ecrm.segmentation.v1.Kpis`: decode, call the domain, encode.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ecrm_platform::time::{from_timestamp, to_timestamp};
use ecrm_proto::ecrm::segmentation::v1 as pb;
use ecrm_proto::ecrm::segmentation::v1::kpis_server::Kpis as KpisApi;
use tonic::{Request, Response, Status};

use super::domain::{KpiParams, Kpis, Report};
use crate::error::SegmentationError;

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn report_to_proto(report: Report) -> pb::GetKpisResponse {
    let total_minor = report.revenue_total();
    let c = report.customers;
    let o = report.orders;
    let s = report.satisfaction;
    pb::GetKpisResponse {
        start: Some(to_timestamp(report.period.start)),
        end: Some(to_timestamp(report.period.end)),
        previous_start: Some(to_timestamp(report.period.previous_start)),
        currency: report.currency,
        customers: Some(pb::CustomerKpis {
            active: c.active,
            new_customers: c.new_customers,
            previous_active: c.previous_active,
            retained: c.retained,
            churned: c.churned,
            attrition_rate: c.attrition_rate,
            retention_rate: c.retention_rate,
            repeat_customers: c.repeat_customers,
            repeat_purchase_rate: c.repeat_purchase_rate,
        }),
        orders: Some(pb::OrderKpis {
            orders: count(o.orders),
            valued_orders: count(o.valued_orders),
            order_value_minor: o.order_value_minor,
            average_order_value_minor: o.average_order_value_minor,
            returns: count(o.returns),
            refunds_minor: o.refunds_minor,
        }),
        conversion: Some(pb::ConversionKpis {
            visitors: report.conversion.visitors,
            purchasers: report.conversion.purchasers,
            conversion_rate: report.conversion.conversion_rate,
        }),
        revenue: Some(pb::RevenueBySegment {
            rfm_job_id: report.rfm_job.map(|id| id.to_string()).unwrap_or_default(),
            segments: report
                .revenue
                .into_iter()
                .map(|segment| pb::SegmentRevenue {
                    segment: segment.segment,
                    customers: segment.customers,
                    revenue_minor: segment.revenue_minor,
                })
                .collect(),
            total_minor,
        }),
        satisfaction: Some(pb::SatisfactionKpis {
            csat_answers: s.csat_answers,
            satisfied: s.satisfied,
            csat: s.csat,
            nps_answers: s.nps_answers,
            promoters: s.promoters,
            detractors: s.detractors,
            nps: s.nps,
        }),
        top_bought: report
            .top_bought
            .into_iter()
            .map(|p| pb::ProductBought {
                product_id: p.product_id,
                category: p.category,
                units: count(p.units),
                buyers: count(p.buyers),
                units_returned: count(p.units_returned),
            })
            .collect(),
        viewed_not_bought: report
            .viewed_not_bought
            .into_iter()
            .map(|p| pb::ProductViewed {
                product_id: p.product_id,
                views: count(p.views),
                viewers: count(p.viewers),
                units: count(p.units),
            })
            .collect(),
    }
}

#[derive(Debug, Clone)]
pub struct KpisService {
    pub kpis: Arc<Kpis>,
}

#[tonic::async_trait]
impl KpisApi for KpisService {
    async fn get_kpis(
        &self,
        request: Request<pb::GetKpisRequest>,
    ) -> Result<Response<pb::GetKpisResponse>, Status> {
        let body = request.get_ref();
        let time = |field: &str, value| -> Result<Option<DateTime<Utc>>, SegmentationError> {
            match value {
                None => Ok(None),
                Some(at) => from_timestamp(at)
                    .map(Some)
                    .ok_or_else(|| SegmentationError::invalid(field, "not a valid timestamp")),
            }
        };
        let params = KpiParams::new(
            time("start", body.start.as_ref())?,
            time("end", body.end.as_ref())?,
            body.top,
        )?;
        let report = self.kpis.compute(params).await?;
        Ok(Response::new(report_to_proto(report)))
    }
}
