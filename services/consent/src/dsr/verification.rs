//! Verifying a requester by a code sent to the address on file (Art. 12(6)): drawn from the
//! system's CSPRNG, kept only as an HMAC, sent by the outbound service, checked in constant
//! time, good for a limited time and a limited number of wrong attempts.

use chrono::{DateTime, SecondsFormat, Utc};
use ecrm_crypto::{BlindIndexKey, MasterKey};
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

use super::domain::{Request, Requests, Status, audit, expect_status, load, mark_verified};
use super::store::{self, CodeChangeset, SendingChangeset};
use crate::caller::Caller;
use crate::error::ConsentError;
use crate::outbound_messages::{OutboundMessages, Transactional};
use crate::purposes::domain::{Channel, LawfulBasis, Purpose};

/// The purpose verification emails are sent for, defined by the service itself.
pub const PURPOSE_KEY: &str = "dsr_verification";
const PURPOSE_DESCRIPTION: &str =
    "verifying that a data subject request comes from the data subject (GDPR Art. 12(6))";
/// Wrong codes allowed against one code.
pub const MAX_FAILED_ATTEMPTS: i32 = 5;
/// Codes one request may be sent: with the attempts, at most 25 guesses of a million.
pub const MAX_CODES: i32 = 5;
const CODE_DIGITS: usize = 6;
const SALT_BYTES: usize = 16;
/// Purpose of the key the codes' MACs are computed with, derived from the master key.
const CODE_KEY_PURPOSE: &str = "consent.verification_codes";
/// What the verification records as the reason, as an operator would.
const CONFIRMED_REASON: &str = "code sent by email to the address on file";
pub const NO_OUTBOUND: &str = "no outbound service is configured (--outbound-url) to send a \
     verification code: verify the requester otherwise (VerifyRequester)";

/// The purpose `dsr_verification`: a legal obligation (Art. 12(6)), by email.
pub fn purpose() -> Result<Purpose, ConsentError> {
    Purpose::new(
        PURPOSE_KEY,
        PURPOSE_DESCRIPTION,
        LawfulBasis::LegalObligation,
        vec![Channel::Email],
        &["email".to_owned()],
        30,
        false,
    )
}

/// A code as sent to the requester: never logged, never stored.
struct Code(String);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(******)")
    }
}

impl Code {
    /// Six uniformly drawn digits.
    fn generate(rng: &SystemRandom) -> Result<Self, ConsentError> {
        // The largest multiple of a million below 2^32: values above it are drawn again, so
        // every code is equally likely.
        const LIMIT: u32 = 4_294_000_000;
        loop {
            let mut bytes = [0_u8; 4];
            rng.fill(&mut bytes).map_err(|_| ConsentError::Crypto)?;
            let value = u32::from_le_bytes(bytes);
            if value < LIMIT {
                return Ok(Self(format!(
                    "{:0width$}",
                    value % 1_000_000,
                    width = CODE_DIGITS
                )));
            }
        }
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

/// Whether `code` looks like a code: exactly six ASCII digits.
pub fn check_code(code: &str) -> Result<(), ConsentError> {
    if code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ConsentError::invalid("code", "the 6 digits sent by email"))
    }
}

/// How codes are made and sent.
#[derive(Clone)]
pub struct Verification {
    key: BlindIndexKey,
    rng: SystemRandom,
    template: String,
    ttl: chrono::Duration,
    outbound: Option<OutboundMessages>,
}

impl std::fmt::Debug for Verification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verification")
            .field("template", &self.template)
            .field("ttl", &self.ttl)
            .field("outbound", &self.outbound.is_some())
            .finish_non_exhaustive()
    }
}

impl Verification {
    /// Codes made with a key derived from `master`, sent with outbound's template `template`,
    /// good for `ttl`; none sent until [`Verification::with_outbound`].
    pub fn new(
        master: &MasterKey,
        template: String,
        ttl: std::time::Duration,
    ) -> Result<Self, ConsentError> {
        Ok(Self {
            key: master.blind_index_key(CODE_KEY_PURPOSE).map_err(|_| {
                ConsentError::invalid("master_key", "cannot derive the verification code key")
            })?,
            rng: SystemRandom::new(),
            template,
            ttl: chrono::Duration::from_std(ttl)
                .map_err(|_| ConsentError::invalid("verification_code_ttl", "too long"))?,
            outbound: None,
        })
    }

    /// The same, sending codes through `outbound`.
    #[must_use]
    pub fn with_outbound(&self, outbound: OutboundMessages) -> Self {
        Self {
            outbound: Some(outbound),
            ..self.clone()
        }
    }

    pub fn sends_codes(&self) -> bool {
        self.outbound.is_some()
    }

    /// The MAC of `code` for `request`: bound to the request, salted per code, and keyed by
    /// the master key, so a copy of the database alone does not give the code away.
    fn mac_input(salt: &[u8], request: Uuid, code: &str) -> Vec<u8> {
        [salt, request.as_bytes().as_slice(), code.as_bytes()].concat()
    }

    fn mac(&self, salt: &[u8], request: Uuid, code: &str) -> Vec<u8> {
        self.key
            .sign(&Self::mac_input(salt, request, code))
            .to_vec()
    }

    /// Whether `code` is the one `mac` was made of, compared in constant time.
    fn matches(&self, salt: &[u8], request: Uuid, code: &str, mac: &[u8]) -> bool {
        mac.len() == 32
            && self
                .key
                .verify_prefix(&Self::mac_input(salt, request, code), mac)
    }
}

/// The code issued, and what the message needs.
struct Issued {
    number: i32,
    subject_id: Uuid,
    kind: String,
}

enum Checked {
    Verified(Box<Request>),
    Wrong { left: i32 },
}

impl Requests {
    /// Issues a new code for request `id` (the one before stops working) and has outbound send
    /// it; what came of the sending is recorded on the request, which is returned either way.
    /// `caller` asked for it again, when it is not the request's first.
    pub(super) async fn send_code(
        &self,
        caller: Option<Caller>,
        id: Uuid,
    ) -> Result<Request, ConsentError> {
        let verification = self.verification.clone();
        let Some(outbound) = verification.outbound.clone() else {
            return Err(ConsentError::FailedPrecondition(NO_OUTBOUND.to_owned()));
        };
        let code = Code::generate(&verification.rng)?;
        let mut salt = [0_u8; SALT_BYTES];
        verification
            .rng
            .fill(&mut salt)
            .map_err(|_| ConsentError::Crypto)?;
        let mac = verification.mac(&salt, id, code.expose());
        let expires_at = Utc::now() + verification.ttl;
        let issued = self
            .db
            .run(move |conn| {
                let row = store::lock(conn, id)?.ok_or(ConsentError::NotFound("request"))?;
                expect_status(&row, &[Status::AwaitingVerification])?;
                if row.verification_codes_sent >= MAX_CODES {
                    return Err(ConsentError::FailedPrecondition(format!(
                        "{MAX_CODES} codes were sent for this request already: verify the \
                         requester otherwise (VerifyRequester)"
                    )));
                }
                let number = row.verification_codes_sent;
                store::update_code(
                    conn,
                    id,
                    &CodeChangeset {
                        verification_code_salt: Some(salt.to_vec()),
                        verification_code_mac: Some(mac),
                        verification_code_expires_at: Some(expires_at),
                        verification_failed_attempts: 0,
                        verification_codes_sent: number + 1,
                        verification_sent_at: None,
                        verification_error: None,
                        verification_message_id: None,
                    },
                )?;
                if let Some(caller) = caller {
                    audit(
                        conn,
                        &caller,
                        id,
                        Some(Status::AwaitingVerification),
                        Status::AwaitingVerification,
                        format!("verification code {} of {MAX_CODES} issued", number + 1),
                    )?;
                }
                Ok(Issued {
                    number,
                    subject_id: row.subject_id,
                    kind: row.kind,
                })
            })
            .await?;
        let sending = match outbound
            .send_email(message(&verification, id, &issued, &code, expires_at))
            .await
        {
            Ok(message_id) => SendingChangeset {
                verification_sent_at: Some(Utc::now()),
                verification_message_id: Some(message_id),
                verification_error: None,
            },
            Err(error) => {
                tracing::warn!(request.id = %id, error = %error, "cannot send a verification code");
                SendingChangeset {
                    verification_sent_at: None,
                    verification_message_id: None,
                    verification_error: Some(error),
                }
            }
        };
        self.db
            .run(move |conn| {
                store::update_sending(conn, id, issued.number, &sending)?;
                load(conn, id)
            })
            .await
    }

    /// Checks the requester's code (six digits, see [`check_code`]): the right one, in time, verifies the requester as an
    /// operator would; a wrong one counts against the code.
    pub async fn confirm(
        &self,
        caller: Caller,
        id: Uuid,
        code: String,
    ) -> Result<Request, ConsentError> {
        let verification = self.verification.clone();
        let checked = self
            .db
            .run(move |conn| {
                let mut row = store::lock(conn, id)?.ok_or(ConsentError::NotFound("request"))?;
                expect_status(&row, &[Status::AwaitingVerification])?;
                let stored =
                    store::find_code(conn, id)?.ok_or(ConsentError::NotFound("request"))?;
                let (Some(salt), Some(mac), Some(expires_at)) =
                    (stored.salt, stored.mac, row.verification_code_expires_at)
                else {
                    return Err(ConsentError::FailedPrecondition(
                        "no verification code was issued for this request: ask for one \
                         (ResendVerificationCode)"
                            .to_owned(),
                    ));
                };
                if row.verification_failed_attempts >= MAX_FAILED_ATTEMPTS {
                    return Err(ConsentError::FailedPrecondition(format!(
                        "{MAX_FAILED_ATTEMPTS} wrong codes were entered: ask for a new code \
                         (ResendVerificationCode)"
                    )));
                }
                if expired(expires_at) {
                    return Err(ConsentError::FailedPrecondition(
                        "the code has expired: ask for a new code (ResendVerificationCode)"
                            .to_owned(),
                    ));
                }
                if !verification.matches(&salt, id, &code, &mac) {
                    let attempts = row.verification_failed_attempts + 1;
                    store::update_failed_attempts(conn, id, attempts)?;
                    return Ok(Checked::Wrong {
                        left: MAX_FAILED_ATTEMPTS - attempts,
                    });
                }
                store::update_forget_code(conn, id)?;
                let (to, note) = mark_verified(&mut row, CONFIRMED_REASON);
                row.status = to.as_str().to_owned();
                store::update(conn, &row)?;
                audit(
                    conn,
                    &caller,
                    id,
                    Some(Status::AwaitingVerification),
                    to,
                    note,
                )?;
                Ok(Checked::Verified(Box::new(load(conn, id)?)))
            })
            .await?;
        match checked {
            Checked::Verified(request) => Ok(*request),
            Checked::Wrong { left } => Err(ConsentError::invalid(
                "code",
                format!("not the code sent; {left} attempts left"),
            )),
        }
    }

    /// Sends the requester a new code.
    pub async fn resend_code(&self, caller: Caller, id: Uuid) -> Result<Request, ConsentError> {
        self.send_code(Some(caller), id).await
    }
}

fn expired(expires_at: DateTime<Utc>) -> bool {
    expires_at <= Utc::now()
}

/// The email carrying code `issued.number`: the same request to outbound again sends it once.
fn message(
    verification: &Verification,
    id: Uuid,
    issued: &Issued,
    code: &Code,
    expires_at: DateTime<Utc>,
) -> Transactional {
    Transactional {
        subject_id: issued.subject_id.to_string(),
        template_key: verification.template.clone(),
        purpose_key: PURPOSE_KEY.to_owned(),
        variables_json: serde_json::json!({
            "code": code.expose(),
            "request_type": issued.kind,
            "expires_at": expires_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
        .to_string(),
        idempotency_key: format!("dsr-verification-{id}-{}", issued.number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let rng = SystemRandom::new();
        let codes: std::collections::HashSet<String> =
            (0..50).map(|_| Code::generate(&rng).unwrap().0).collect();
        assert!(codes.iter().all(|c| check_code(c).is_ok()), "{codes:?}");
        assert!(codes.len() > 40, "{codes:?}");
    }

    #[test]
    fn a_code_matches_only_its_request_and_salt() {
        let (master, _) = MasterKey::generate().unwrap();
        let verification =
            Verification::new(&master, "t".to_owned(), std::time::Duration::from_secs(60)).unwrap();
        let request = Uuid::now_v7();
        let mac = verification.mac(b"salt", request, "123456");
        assert!(verification.matches(b"salt", request, "123456", &mac));
        assert!(!verification.matches(b"salt", request, "123457", &mac));
        assert!(!verification.matches(b"SALT", request, "123456", &mac));
        assert!(!verification.matches(b"salt", Uuid::now_v7(), "123456", &mac));
        assert!(!verification.matches(b"salt", request, "123456", &mac[..16]));
    }

    #[test]
    fn the_code_is_not_in_debug_output() {
        let code = Code("123456".to_owned());
        assert!(!format!("{code:?}").contains("123456"));
    }
}
