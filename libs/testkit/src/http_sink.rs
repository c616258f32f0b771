//! A real HTTP server for tests that records every request and answers what the test queued.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// An HTTP/1.1 server on 127.0.0.1 for one test, answering every method and path; stopped when
/// dropped.
#[derive(Debug)]
pub struct HttpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
}

/// One request as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string, without its `?`.
    pub query: Option<String>,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ReceivedRequest {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON; panics when it is not.
    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(error) => panic!("http sink: the request body is not json: {error}"),
        }
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<Recorded>,
    /// How many requests were recorded, for waiters.
    count: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct Recorded {
    requests: Vec<ReceivedRequest>,
    planned: VecDeque<Planned>,
}

/// A queued response and how many more requests get it.
#[derive(Debug)]
struct Planned {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: String,
    remaining: u32,
}

impl HttpSink {
    /// Starts the server on an ephemeral port.
    pub async fn start() -> Result<Self, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(Recorded::default()),
            count: watch::Sender::new(0),
        });
        let router = Router::new()
            .fallback(record)
            .layer(DefaultBodyLimit::disable())
            .with_state(Arc::clone(&shared));
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "http sink stopped");
            }
        });
        Ok(Self {
            addr,
            shared,
            shutdown,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Waits until at least `count` requests arrived, or `timeout`; returns those there are
    /// then.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        let mut seen = self.shared.count.subscribe();
        // Either outcome leads to the same answer: what has arrived by now.
        let _reached = tokio::time::timeout(timeout, seen.wait_for(|&n| n >= count)).await;
        self.requests()
    }

    /// The next `times` requests (after those already queued) get this response instead of
    /// the default, 200 with `{"id": "<uuid v4>"}`. Panics on an invalid status or header.
    pub fn respond_next(&self, status: u16, headers: &[(&str, &str)], body: &str, times: u32) {
        let status = match StatusCode::from_u16(status) {
            Ok(status) => status,
            Err(error) => panic!("http sink: status {status}: {error}"),
        };
        let headers = headers
            .iter()
            .map(|&(name, value)| {
                match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                    (Ok(name), Ok(value)) => (name, value),
                    _ => panic!("http sink: invalid header {name}: {value}"),
                }
            })
            .collect();
        if times > 0 {
            self.shared.lock().planned.push_back(Planned {
                status,
                headers,
                body: body.to_owned(),
                remaining: times,
            });
        }
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Recorded> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = ReceivedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: body.to_vec(),
    };
    let (response, count) = {
        let mut recorded = shared.lock();
        recorded.requests.push(request);
        let response = next_response(&mut recorded.planned);
        (response, recorded.requests.len())
    };
    shared.count.send_replace(count);
    response
}

fn next_response(planned: &mut VecDeque<Planned>) -> Response {
    let Some(next) = planned.front_mut() else {
        let body = serde_json::json!({ "id": uuid::Uuid::new_v4() }).to_string();
        let mut response = Response::new(Body::from(body));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return response;
    };
    let mut response = Response::new(Body::from(next.body.clone()));
    *response.status_mut() = next.status;
    for (name, value) in &next.headers {
        response.headers_mut().append(name.clone(), value.clone());
    }
    next.remaining -= 1;
    if next.remaining == 0 {
        planned.pop_front();
    }
    response
}
