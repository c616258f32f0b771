//! The signed documents a compliance officer hands over: the export bundle (a zip whose
//! `manifest.json` lists every part's SHA-256 and is signed in `manifest.sig`) and the erasure
//! certificate. Each is checked here before it is kept.

use std::io::{Read as _, Write as _};
use std::path::Path;

use ecrm_client::Authorized;
use ecrm_client::proto::consent::v1::data_subject_requests_client::DataSubjectRequestsClient;
use ecrm_client::proto::consent::v1::{GetErasureCertificateResponse, GetExportRequest};
use ring::signature::{ED25519, UnparsedPublicKey};

use crate::failure::{CliError, Doing, failed_call};
use crate::output::Output;

/// What was checked of a downloaded bundle.
pub struct CheckedExport {
    pub bytes: u64,
    pub parts: Vec<String>,
    pub public_key: String,
}

/// Streams the bundle of `request_id` into `out` (a progress bar on a terminal), then checks
/// it; a bundle that does not check out is removed and the command fails.
pub async fn download_export(
    requests: &mut DataSubjectRequestsClient<Authorized>,
    request_id: &str,
    out: &Path,
    expected_key: Option<&str>,
    output: Output,
) -> Result<CheckedExport, CliError> {
    let mut stream = requests
        .get_export(GetExportRequest {
            request_id: request_id.to_owned(),
        })
        .await
        .doing("download the export")?;
    let progress = if output.json() {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} downloading {bytes} ({bytes_per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut bundle = Vec::new();
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|status| failed_call("download the export", status))?
    {
        bundle.extend_from_slice(&chunk.chunk);
        progress.set_position(bundle.len() as u64);
    }
    progress.finish_and_clear();
    let (parts, public_key) = check_bundle(&bundle, expected_key)?;
    write_private(out, &bundle)?;
    Ok(CheckedExport {
        bytes: bundle.len() as u64,
        parts,
        public_key,
    })
}

/// Checks a bundle: the manifest's signature with its key (or the one expected), and every
/// part listed against its digest. Returns the parts and the key.
fn check_bundle(
    bundle: &[u8],
    expected_key: Option<&str>,
) -> Result<(Vec<String>, String), CliError> {
    let invalid = |why: &str| {
        CliError::Failed(format!(
            "the export bundle does not check out ({why}): it was not saved; do not hand it over"
        ))
    };
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bundle)).map_err(|_| invalid("not a zip"))?;
    let mut read = |name: &str| -> Result<Vec<u8>, CliError> {
        let mut file = archive
            .by_name(name)
            .map_err(|_| invalid(&format!("{name} is missing")))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|_| invalid(&format!("{name} cannot be read")))?;
        Ok(bytes)
    };
    let manifest = read("manifest.json")?;
    let signature = read("manifest.sig")?;
    let parsed: serde_json::Value =
        serde_json::from_slice(&manifest).map_err(|_| invalid("the manifest is not JSON"))?;
    let key = parsed["public_key"].as_str().unwrap_or_default().to_owned();
    verify(
        &manifest,
        &String::from_utf8_lossy(&signature),
        &key,
        expected_key,
    )
    .map_err(|why| invalid(&why))?;
    let mut parts = Vec::new();
    for part in parsed["parts"].as_array().into_iter().flatten() {
        let file = part["file"].as_str().unwrap_or_default();
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &read(file)?));
        if Some(digest.as_str()) != part["sha256"].as_str() {
            return Err(invalid(&format!("{file} does not match its digest")));
        }
        parts.push(file.to_owned());
    }
    Ok((parts, key))
}

/// Checks the certificate's signature and writes it, with signature and key, to `out`.
/// Returns the services whose receipts it holds.
pub fn save_certificate(
    certificate: &GetErasureCertificateResponse,
    out: &Path,
    expected_key: Option<&str>,
) -> Result<Vec<String>, CliError> {
    verify(
        certificate.certificate_json.as_bytes(),
        &certificate.signature,
        &certificate.public_key,
        expected_key,
    )
    .map_err(|why| {
        CliError::Failed(format!(
            "the erasure certificate does not check out ({why}): it was not saved"
        ))
    })?;
    let document: serde_json::Value =
        serde_json::from_str(&certificate.certificate_json).unwrap_or_default();
    let services = document["receipts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|receipt| receipt["service"].as_str().map(str::to_owned))
        .collect();
    let saved = serde_json::to_vec_pretty(&serde_json::json!({
        "certificate_json": certificate.certificate_json,
        "signature": certificate.signature,
        "public_key": certificate.public_key,
        "algorithm": "Ed25519 over the UTF-8 bytes of certificate_json",
    }))
    .map_err(|e| CliError::Failed(format!("cannot encode the certificate: {e}")))?;
    write_private(out, &saved)?;
    Ok(services)
}

/// Ed25519 over `document`, `signature` and `key` in hex; the key must be the expected one
/// when one is given.
fn verify(
    document: &[u8],
    signature: &str,
    key: &str,
    expected: Option<&str>,
) -> Result<(), String> {
    if let Some(expected) = expected
        && !expected.trim().eq_ignore_ascii_case(key)
    {
        return Err(format!(
            "signed with key {key}, not the expected {expected}"
        ));
    }
    let key = hex::decode(key).map_err(|_| "the public key is not hex".to_owned())?;
    let signature =
        hex::decode(signature.trim()).map_err(|_| "the signature is not hex".to_owned())?;
    UnparsedPublicKey::new(&ED25519, key)
        .verify(document, &signature)
        .map_err(|_| "the signature does not verify".to_owned())
}

/// Writes `bytes` to `path` readable by the user alone: the documents hold personal data.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| CliError::File {
        doing: "write",
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)
}
