//! Cursor pages over id-ordered tables: the token is the last id of the page, opaque to callers.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ecrm_proto::ecrm::common::v1::{PageRequest, PageResponse};
use uuid::Uuid;

/// A page request that cannot be served: the field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct PageError {
    pub field: &'static str,
    pub reason: String,
}

impl PageError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// A validated page request.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub after: Option<Uuid>,
    pub size: u32,
}

impl Page {
    pub fn from_request(request: Option<&PageRequest>) -> Result<Self, PageError> {
        let Some(request) = request else {
            return Ok(Self {
                after: None,
                size: DEFAULT_PAGE_SIZE,
            });
        };
        let size = match request.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size if size > MAX_PAGE_SIZE => {
                return Err(PageError::new(
                    "page.page_size",
                    format!("at most {MAX_PAGE_SIZE}"),
                ));
            }
            size => size,
        };
        let after =
            if request.page_token.is_empty() {
                None
            } else {
                let bytes = URL_SAFE_NO_PAD.decode(&request.page_token).map_err(|_| {
                    PageError::new("page.page_token", "not a token from this service")
                })?;
                Some(Uuid::from_slice(&bytes).map_err(|_| {
                    PageError::new("page.page_token", "not a token from this service")
                })?)
            };
        Ok(Self { after, size })
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn limit(self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Cuts `rows` (fetched with [`Page::limit`]) to the page and makes the response cursor.
    pub fn finish<T>(self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> (Vec<T>, PageResponse) {
        let more = rows.len() > self.size as usize;
        rows.truncate(self.size as usize);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => URL_SAFE_NO_PAD.encode(id(last).as_bytes()),
            _ => String::new(),
        };
        (rows, PageResponse { next_page_token })
    }
}

impl From<PageError> for tonic::Status {
    fn from(error: PageError) -> Self {
        crate::status::invalid_argument(error.field, error.reason)
    }
}
