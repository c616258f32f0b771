//! The links of one-click unsubscribes: a token naming the subject, the channel and the
//! purpose, signed so that no one unsubscribes another subject by editing a link.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecrm_crypto::BlindIndexKey;
use uuid::Uuid;

use super::config::parse_public_url;
use crate::error::OutboundError;
use crate::templates::domain::Channel;

/// First byte of every payload, so the format can change without guessing.
const FORMAT_V1: u8 = 1;
/// Bytes of the MAC kept in the token: enough against forgery, short enough for a link.
const MAC_LEN: usize = 16;
/// A purpose key is at most 80 characters (consent's rule).
const MAX_PURPOSE_LEN: usize = 80;
/// Longest token worth decoding: the largest payload and its MAC, in base64.
const MAX_TOKEN_LEN: usize = (1 + 16 + 1 + MAX_PURPOSE_LEN + MAC_LEN).div_ceil(3) * 4;

fn channel_byte(channel: Channel) -> u8 {
    match channel {
        Channel::Email => 1,
        Channel::Sms => 2,
        Channel::Webhook => 3,
    }
}

fn channel_of(byte: u8) -> Option<Channel> {
    match byte {
        1 => Some(Channel::Email),
        2 => Some(Channel::Sms),
        3 => Some(Channel::Webhook),
        _ => None,
    }
}

/// A purpose key as consent defines them: 1 to 80 of a-z, 0-9, '_', '-', '.', ':', starting
/// with a letter.
fn is_purpose_key(key: &str) -> bool {
    key.len() <= MAX_PURPOSE_LEN
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.' | b':')
        })
}

/// Makes and checks unsubscribe links under a key derived from the outbound master key.
pub struct UnsubscribeLinks {
    key: BlindIndexKey,
    public_url: String,
}

impl std::fmt::Debug for UnsubscribeLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsubscribeLinks")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl UnsubscribeLinks {
    /// Links signed with `key`, under `public_url` (http or https, checked).
    pub fn new(key: BlindIndexKey, public_url: &str) -> Result<Self, OutboundError> {
        let public_url = parse_public_url(public_url)
            .map_err(|reason| OutboundError::invalid("--public-url", reason))?;
        Ok(Self { key, public_url })
    }

    /// The link that unsubscribes `subject_id` from `purpose` on `channel`:
    /// `{public_url}/u/{token}`.
    pub fn url(&self, subject_id: Uuid, channel: Channel, purpose: &str) -> String {
        format!(
            "{}/u/{}",
            self.public_url,
            self.token(subject_id, channel, purpose)
        )
    }

    /// The token alone: base64url (no padding) of the payload and the first 16 bytes of its
    /// HMAC-SHA256.
    pub fn token(&self, subject_id: Uuid, channel: Channel, purpose: &str) -> String {
        let mut bytes = payload(subject_id, channel, purpose);
        let mac = self.key.sign(&bytes);
        bytes.extend_from_slice(&mac[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// What a token this service made names: the subject, the channel and the purpose; `None`
    /// for anything else (tampered, made under another key, or not a token at all).
    pub fn verify(&self, token: &str) -> Option<(Uuid, Channel, String)> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let split = bytes.len().checked_sub(MAC_LEN)?;
        let (payload, mac) = bytes.split_at(split);
        if !self.key.verify_prefix(payload, mac) {
            return None;
        }
        let (&format, rest) = payload.split_first()?;
        if format != FORMAT_V1 || rest.len() < 17 {
            return None;
        }
        let (subject, rest) = rest.split_at(16);
        let (&channel, purpose) = rest.split_first()?;
        let purpose = std::str::from_utf8(purpose).ok()?;
        if !is_purpose_key(purpose) {
            return None;
        }
        Some((
            Uuid::from_slice(subject).ok()?,
            channel_of(channel)?,
            purpose.to_owned(),
        ))
    }
}

/// `FORMAT_V1 || subject id (16 bytes) || channel (1 byte) || purpose key`.
fn payload(subject_id: Uuid, channel: Channel, purpose: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + 16 + 1 + purpose.len() + MAC_LEN);
    bytes.push(FORMAT_V1);
    bytes.extend_from_slice(subject_id.as_bytes());
    bytes.push(channel_byte(channel));
    bytes.extend_from_slice(purpose.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use ecrm_crypto::MasterKey;
    use proptest::prelude::*;

    use super::*;

    fn links() -> UnsubscribeLinks {
        let master = MasterKey::generate().unwrap().0;
        UnsubscribeLinks::new(
            master.blind_index_key("unsubscribe").unwrap(),
            "https://mail.example.com/",
        )
        .unwrap()
    }

    #[test]
    fn a_link_names_its_subject_channel_and_purpose_back() {
        let links = links();
        let subject = Uuid::now_v7();
        for channel in [Channel::Email, Channel::Sms, Channel::Webhook] {
            let url = links.url(subject, channel, "newsletter");
            let token = url.strip_prefix("https://mail.example.com/u/").unwrap();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(
                links.verify(token),
                Some((subject, channel, "newsletter".to_owned()))
            );
        }
        let long = format!("a{}", "b".repeat(79));
        let token = links.token(subject, Channel::Email, &long);
        assert_eq!(links.verify(&token), Some((subject, Channel::Email, long)));
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let links = links();
        let token = links.token(Uuid::now_v7(), Channel::Email, "offers:partner-1");
        let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        for i in 0..bytes.len() {
            for bit in [0x01, 0x80] {
                let mut tampered = bytes.clone();
                tampered[i] ^= bit;
                assert_eq!(
                    links.verify(&URL_SAFE_NO_PAD.encode(&tampered)),
                    None,
                    "{i}"
                );
            }
        }
        assert_eq!(
            links.verify(&URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 1])),
            None
        );
    }

    #[test]
    fn a_token_of_another_key_is_refused() {
        let token = links().token(Uuid::now_v7(), Channel::Email, "newsletter");
        assert_eq!(links().verify(&token), None);
    }

    #[test]
    fn a_signed_payload_that_is_not_a_link_is_refused() {
        let links = links();
        for payload in [
            vec![FORMAT_V1],
            vec![2; 30],
            payload(Uuid::now_v7(), Channel::Email, "Not-A-Key"),
            payload(Uuid::now_v7(), Channel::Email, ""),
        ] {
            let mut bytes = payload.clone();
            bytes.extend_from_slice(&links.key.sign(&payload)[..MAC_LEN]);
            assert_eq!(links.verify(&URL_SAFE_NO_PAD.encode(bytes)), None);
        }
    }

    #[test]
    fn only_http_public_urls_are_accepted() {
        let key = MasterKey::generate()
            .unwrap()
            .0
            .blind_index_key("u")
            .unwrap();
        assert!(UnsubscribeLinks::new(key.clone(), "ftp://example.com").is_err());
        assert!(UnsubscribeLinks::new(key, "http://127.0.0.1:8055").is_ok());
    }

    proptest! {
        #[test]
        fn garbage_is_refused_without_panicking(token in "\\PC{0,200}") {
            prop_assert_eq!(links().verify(&token), None);
        }

        #[test]
        fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..150)) {
            prop_assert_eq!(links().verify(&URL_SAFE_NO_PAD.encode(bytes)), None);
        }
    }
}
