//! What every `ecrm.privacy.v1.PersonalData` server shares: the exported record, the export
//! stream, and the answer of a service that holds nothing a subject could correct.

use std::pin::Pin;

use ecrm_proto::ecrm::privacy::v1 as pb;
use futures::Stream;
use tonic::Status;

/// One record of a subject's personal data, as a service exports it.
#[derive(Debug, Clone)]
pub struct ExportRecord {
    /// The `DataCategory.key` it belongs to.
    pub category: &'static str,
    /// Stable within its category.
    pub record_id: String,
    pub document: serde_json::Value,
}

pub type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::ExportResponse, Status>> + Send>>;

/// The records as `Export` streams them, one message each, documents as JSON text.
pub fn export_stream(records: Vec<ExportRecord>) -> ExportStream {
    Box::pin(futures::stream::iter(records.into_iter().map(|record| {
        Ok(pb::ExportResponse {
            category: record.category.to_owned(),
            record_id: record.record_id,
            document_json: record.document.to_string(),
        })
    })))
}

/// `Rectify`'s answer from `service` when it holds none of the fields: all are not held.
pub fn nothing_to_rectify(service: &str, request: &pb::RectifyRequest) -> pb::RectifyResponse {
    pb::RectifyResponse {
        service: service.to_owned(),
        applied: Vec::new(),
        not_held: request
            .corrections
            .iter()
            .map(|c| c.field.clone())
            .collect(),
        notified_recipients: Vec::new(),
    }
}
