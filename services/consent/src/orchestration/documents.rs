//! What a compliance officer hands over once a request is carried out: the export bundle (a
//! zip of one JSON document per service, with a signed manifest) and the erasure certificate,
//! both signed with an Ed25519 key derived from the master key.

use std::io::Write as _;
use std::sync::Arc;

use chrono::Utc;
use ecrm_crypto::MasterKey;
use ecrm_platform::Db;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;
use uuid::Uuid;

use super::store;
use super::worker::task_context;
use crate::dsr::domain::{RequestKind, Status};
use crate::dsr::store as request_store;
use crate::error::ConsentError;

pub struct Documents {
    db: Db,
    master: Arc<MasterKey>,
    key: Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents").finish_non_exhaustive()
    }
}

/// A signed document: its bytes, the signature and the public key, both hex.
#[derive(Debug, Clone)]
pub struct Signed {
    pub document: String,
    pub signature: String,
    pub public_key: String,
}

impl Documents {
    pub fn new(db: Db, master: Arc<MasterKey>, key: Arc<Ed25519KeyPair>) -> Self {
        Self { db, master, key }
    }

    fn public_key(&self) -> String {
        hex::encode(self.key.public_key().as_ref())
    }

    fn sign(&self, document: &str) -> String {
        hex::encode(self.key.sign(document.as_bytes()).as_ref())
    }

    /// The results of the request's `action` tasks, opened, by service, once the request of
    /// one of `kinds` is completed.
    async fn results(
        &self,
        id: Uuid,
        kinds: &'static [RequestKind],
        action: &'static str,
    ) -> Result<(request_store::RequestRow, Vec<(String, serde_json::Value)>), ConsentError> {
        let (row, sealed) = self
            .db
            .run(move |conn| {
                let row =
                    request_store::find(conn, id)?.ok_or(ConsentError::NotFound("request"))?;
                Ok::<_, ConsentError>((row, store::list_results(conn, id, action)?))
            })
            .await?;
        let kind = RequestKind::parse(&row.kind).ok_or(ConsentError::Corrupt)?;
        if !kinds.contains(&kind) {
            return Err(ConsentError::FailedPrecondition(format!(
                "the request is for {}",
                kind.as_str()
            )));
        }
        if row.status != Status::Completed.as_str() {
            return Err(ConsentError::FailedPrecondition(format!(
                "the request is {}, not completed",
                row.status
            )));
        }
        let opened = sealed
            .into_iter()
            .map(|(service, sealed)| {
                let sealed = sealed.ok_or_else(|| {
                    ConsentError::FailedPrecondition(
                        "this result was erased with the subject's data".to_owned(),
                    )
                })?;
                let plain = self
                    .master
                    .open(&task_context(id, &service, action), &sealed)
                    .map_err(|_| ConsentError::Corrupt)?;
                let value = serde_json::from_slice(&plain).map_err(|_| ConsentError::Corrupt)?;
                Ok((service, value))
            })
            .collect::<Result<_, ConsentError>>()?;
        Ok((row, opened))
    }

    /// The zip of a completed access or portability request.
    pub async fn export_bundle(&self, id: Uuid) -> Result<Vec<u8>, ConsentError> {
        const KINDS: &[RequestKind] = &[RequestKind::Access, RequestKind::Portability];
        let (row, parts) = self.results(id, KINDS, "export").await?;
        let mut files = Vec::with_capacity(parts.len() + 2);
        let mut manifest_parts = Vec::with_capacity(parts.len());
        for (service, records) in parts {
            let bytes = serde_json::to_vec_pretty(&json!({
                "service": service,
                "subject_id": row.subject_id,
                "records": records,
            }))
            .map_err(|_| ConsentError::Corrupt)?;
            let file = format!("{service}.json");
            manifest_parts.push(json!({
                "file": file,
                "service": service,
                "sha256": hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes)),
            }));
            files.push((file, bytes));
        }
        let manifest = serde_json::to_string_pretty(&json!({
            "request_id": row.id,
            "subject_id": row.subject_id,
            "type": row.kind,
            "received_at": row.received_at,
            "generated_at": Utc::now(),
            "parts": manifest_parts,
            "public_key": self.public_key(),
        }))
        .map_err(|_| ConsentError::Corrupt)?;
        let signature = self.sign(&manifest);
        files.push(("manifest.json".to_owned(), manifest.into_bytes()));
        files.push(("manifest.sig".to_owned(), signature.into_bytes()));
        zip(files)
    }

    /// The certificate of a completed erasure.
    pub async fn erasure_certificate(&self, id: Uuid) -> Result<Signed, ConsentError> {
        const KINDS: &[RequestKind] = &[RequestKind::Erasure];
        let (row, receipts) = self.results(id, KINDS, "erase").await?;
        let (_, checks) = self.results(id, KINDS, "verify_erased").await?;
        let document = serde_json::to_string_pretty(&json!({
            "request_id": row.id,
            "subject_id": row.subject_id,
            "received_at": row.received_at,
            "completed_at": row.updated_at,
            "receipts": receipts.into_iter().map(|(service, receipt)| json!({ "service": service, "receipt": receipt })).collect::<Vec<_>>(),
            "follow_up_exports": checks.into_iter().map(|(service, check)| json!({ "service": service, "result": check })).collect::<Vec<_>>(),
            "public_key": self.public_key(),
        }))
        .map_err(|_| ConsentError::Corrupt)?;
        Ok(Signed {
            signature: self.sign(&document),
            public_key: self.public_key(),
            document,
        })
    }
}

fn zip(files: Vec<(String, Vec<u8>)>) -> Result<Vec<u8>, ConsentError> {
    let failed = |_| ConsentError::Corrupt;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in files {
        writer.start_file(name, options).map_err(failed)?;
        writer
            .write_all(&bytes)
            .map_err(|_| ConsentError::Corrupt)?;
    }
    Ok(writer.finish().map_err(failed)?.into_inner())
}
