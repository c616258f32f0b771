//! A `PersonalData` server for a service that holds nothing about anyone: for tests and
//! benchmarks of what surrounds a service (authentication, serving, callers), where the
//! service's own data does not matter.

use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalData;
use ecrm_proto::ecrm::privacy::v1::{
    DataCategory, DescribeRequest, DescribeResponse, EraseRequest, EraseResponse, ErasureReceipt,
    ExportRequest, ExportResponse, RectifyRequest, RectifyResponse, RestrictRequest,
    RestrictResponse,
};
use tonic::{Request, Response, Status};

/// Describes no category (or those it is given), exports nothing, erases nothing (with a
/// receipt saying so), acknowledges restrictions and holds none of the fields a rectification
/// names.
#[derive(Debug, Clone)]
pub struct NoPersonalData {
    service: &'static str,
    categories: Vec<DataCategory>,
}

impl NoPersonalData {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            categories: Vec::new(),
        }
    }

    /// Describes `categories`, as a real service's `Describe` would answer: for benchmarks
    /// that compare the same answer served by other means.
    pub fn describing(self, categories: Vec<DataCategory>) -> Self {
        Self { categories, ..self }
    }
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

#[tonic::async_trait]
impl PersonalData for NoPersonalData {
    async fn describe(
        &self,
        _: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        Ok(Response::new(DescribeResponse {
            service: self.service.to_owned(),
            categories: self.categories.clone(),
        }))
    }

    type ExportStream = tokio_stream::Empty<Result<ExportResponse, Status>>;

    async fn export(
        &self,
        _: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        Ok(Response::new(tokio_stream::empty()))
    }

    async fn erase(
        &self,
        request: Request<EraseRequest>,
    ) -> Result<Response<EraseResponse>, Status> {
        let request = request.into_inner();
        Ok(Response::new(EraseResponse {
            receipt: Some(ErasureReceipt {
                service: self.service.to_owned(),
                subject_id: request.subject_id,
                request_id: request.request_id,
                erased: vec![],
                retained: vec![],
                completed_at: Some(now()),
                replayed: false,
                notified_recipients: vec![],
            }),
        }))
    }

    async fn restrict(
        &self,
        request: Request<RestrictRequest>,
    ) -> Result<Response<RestrictResponse>, Status> {
        Ok(Response::new(RestrictResponse {
            restricted: request.into_inner().restricted,
            effective_at: Some(now()),
            notified_recipients: vec![],
        }))
    }

    async fn rectify(
        &self,
        request: Request<RectifyRequest>,
    ) -> Result<Response<RectifyResponse>, Status> {
        Ok(Response::new(ecrm_platform::privacy::nothing_to_rectify(
            self.service,
            request.get_ref(),
        )))
    }
}
