//! A small service used by the platform tests: a schema with two migrations, and a
//! `PersonalData` server whose export streams slowly enough to observe draining.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support module"
)]

use std::time::Duration;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use ecrm_platform::ServiceDef;
use ecrm_proto::ecrm::privacy::v1::personal_data_server::PersonalData;
use ecrm_proto::ecrm::privacy::v1::{
    DataCategory, DescribeRequest, DescribeResponse, EraseRequest, EraseResponse, ExportRequest,
    ExportResponse, RectifyRequest, RectifyResponse, RestrictRequest, RestrictResponse,
};
use tonic::{Request, Response, Status};

pub static MIGRATIONS: EmbeddedMigrations = embed_migrations!("tests/fixtures/migrations");

pub static FIXTURE: ServiceDef = ServiceDef {
    name: "fixture",
    schema: "fixture",
    default_port: 0,
    migrations: &MIGRATIONS,
};

/// Versions of the fixture migrations, in order.
pub const VERSIONS: [&str; 2] = ["20240101000000", "20240102000000"];

/// Serves `records` export records, one every `delay`.
#[derive(Debug, Clone)]
pub struct SlowExport {
    pub records: usize,
    pub delay: Duration,
}

#[tonic::async_trait]
impl PersonalData for SlowExport {
    async fn describe(
        &self,
        _request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        Ok(Response::new(DescribeResponse {
            service: "fixture".to_owned(),
            categories: vec![DataCategory {
                key: "fixture.customer".to_owned(),
                description: "test customers".to_owned(),
                ..DataCategory::default()
            }],
        }))
    }

    type ExportStream = tokio_stream::wrappers::ReceiverStream<Result<ExportResponse, Status>>;

    async fn export(
        &self,
        request: Request<ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let subject = request.into_inner().subject_id;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let SlowExport { records, delay } = self.clone();
        tokio::spawn(async move {
            for index in 0..records {
                tokio::time::sleep(delay).await;
                let record = ExportResponse {
                    category: "fixture.customer".to_owned(),
                    record_id: format!("{subject}/{index}"),
                    document_json: "{}".to_owned(),
                };
                if tx.send(Ok(record)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn erase(
        &self,
        _request: Request<EraseRequest>,
    ) -> Result<Response<EraseResponse>, Status> {
        Err(Status::unimplemented("the fixture keeps no data to erase"))
    }

    async fn restrict(
        &self,
        _request: Request<RestrictRequest>,
    ) -> Result<Response<RestrictResponse>, Status> {
        Err(Status::unimplemented(
            "the fixture keeps no data to restrict",
        ))
    }

    async fn rectify(
        &self,
        _request: Request<RectifyRequest>,
    ) -> Result<Response<RectifyResponse>, Status> {
        Err(Status::unimplemented(
            "the fixture keeps no data to rectify",
        ))
    }
}
