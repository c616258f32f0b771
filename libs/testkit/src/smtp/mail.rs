//! A message the SMTP sink accepted, and reading its headers and body as a recipient would.

use mailparse::{DispositionType, MailHeaderMap, ParsedMail};
use serde::Deserialize;

/// One accepted message: its envelope and the message exactly as it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ReceivedMail {
    #[serde(default)]
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// Headers and body as received (CRLF line ends, dot-stuffing undone).
    #[serde(default)]
    pub data: String,
}

impl ReceivedMail {
    /// The first header called `name` (any case), unfolded and with encoded words decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        let (headers, _) = mailparse::parse_headers(self.data.as_bytes()).ok()?;
        headers.get_first_value(name)
    }

    /// Every header called `name` (any case), unfolded and decoded, in order.
    pub fn headers(&self, name: &str) -> Vec<String> {
        mailparse::parse_headers(self.data.as_bytes())
            .map(|(headers, _)| headers.get_all_values(name))
            .unwrap_or_default()
    }

    /// The plain-text body, transfer encoding and charset decoded: the first `text/plain` part
    /// that is not an attachment, or the body itself when the message is not multipart.
    /// Empty when there is none.
    pub fn text(&self) -> String {
        self.body_of("text/plain").unwrap_or_default()
    }

    /// The first `text/html` part that is not an attachment, decoded.
    pub fn html(&self) -> Option<String> {
        self.body_of("text/html")
    }

    fn body_of(&self, mimetype: &str) -> Option<String> {
        let mail = match mailparse::parse_mail(self.data.as_bytes()) {
            Ok(mail) => mail,
            Err(error) => panic!("smtp sink: the received message does not parse: {error}"),
        };
        let part = find_part(&mail, mimetype)?;
        match part.get_body() {
            Ok(body) => Some(body),
            Err(error) => panic!("smtp sink: a {mimetype} part does not decode: {error}"),
        }
    }
}

/// Depth first, the first leaf of this type that is shown inline.
fn find_part<'a>(mail: &'a ParsedMail<'a>, mimetype: &str) -> Option<&'a ParsedMail<'a>> {
    if mail.subparts.is_empty() {
        let inline = mail.get_content_disposition().disposition != DispositionType::Attachment;
        return (inline && mail.ctype.mimetype.eq_ignore_ascii_case(mimetype)).then_some(mail);
    }
    mail.subparts
        .iter()
        .find_map(|part| find_part(part, mimetype))
}
