//! The SMTP sink's certificate for STARTTLS: self-signed, so a client trusts it as its own root.

use crate::error::Error;

pub(super) struct CertAndKey {
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
}

/// A fresh self-signed certificate for `localhost` and 127.0.0.1, and its private key.
pub(super) fn self_signed() -> Result<CertAndKey, Error> {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).map_err(Error::Certificate)?;
    Ok(CertAndKey {
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    })
}
