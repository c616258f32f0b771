//! A `PersonalData` server for a service that holds nothing about anyone: for tests and
//! benchmarks of what surrounds a service (authentication, serving, callers), where the
//! service's own data does not matter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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
    /// How long each erasure takes to answer.
    erase_delay: Duration,
    /// How many erasures were asked for, shared by every clone.
    erases: Arc<AtomicUsize>,
}

impl NoPersonalData {
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            categories: Vec::new(),
            erase_delay: Duration::ZERO,
            erases: Arc::default(),
        }
    }

    /// Answers each erasure only after `delay`: a service slow to erase.
    pub fn erasing_after(self, delay: Duration) -> Self {
        Self {
            erase_delay: delay,
            ..self
        }
    }

    /// How many erasures it was asked for (by this value or any clone).
    pub fn erase_calls(&self) -> usize {
        self.erases.load(Ordering::SeqCst)
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
        self.erases.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.erase_delay).await;
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
