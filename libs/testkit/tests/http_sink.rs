//! The HTTP sink, called over plain HTTP/1.1 as a webhook or SMS client would.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails by panicking, helpers included"
)]

use std::time::Duration;

use ecrm_testkit::HttpSink;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_request_is_recorded_whole_and_answered_with_a_json_id_by_default() {
    let sink = HttpSink::start().await.unwrap();
    assert_eq!(sink.url(), format!("http://{}", sink.addr()));
    assert!(sink.url().starts_with("http://127.0.0.1:"));

    let body = r#"{"to":"+33600000000","text":"Bonjour"}"#;
    let first = call(
        &sink,
        "POST",
        "/v1/sms?account=shop",
        &[("Content-Type", "application/json"), ("X-Signature", "abc")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("application/json"));
    let id = serde_json::from_slice::<serde_json::Value>(&first.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);

    let second = call(&sink, "GET", "/status", &[], b"").await;
    let second_id =
        serde_json::from_slice::<serde_json::Value>(&second.body).unwrap()["id"].clone();
    assert_ne!(
        second_id.as_str(),
        Some(id.as_str()),
        "each default answer has its own id"
    );

    let requests = sink.requests();
    assert_eq!(requests.len(), 2);
    let sms = &requests[0];
    assert_eq!(sms.method, "POST");
    assert_eq!(sms.path, "/v1/sms");
    assert_eq!(sms.query.as_deref(), Some("account=shop"));
    assert_eq!(sms.header("x-signature"), Some("abc"));
    assert_eq!(sms.header("CONTENT-TYPE"), Some("application/json"));
    assert_eq!(sms.body, body.as_bytes());
    assert_eq!(sms.json()["text"], "Bonjour");
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].query, None);
    assert!(requests[1].body.is_empty());
}

#[tokio::test]
async fn queued_responses_answer_the_next_requests_in_order_then_the_default_again() {
    let sink = HttpSink::start().await.unwrap();
    sink.respond_next(503, &[("Retry-After", "2")], "busy", 2);
    sink.respond_next(
        400,
        &[("content-type", "application/json")],
        r#"{"error":"invalid number"}"#,
        1,
    );

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = call(&sink, "POST", "/hook", &[], b"{}").await;
        statuses.push(response.status);
        match response.status {
            503 => {
                assert_eq!(response.header("retry-after"), Some("2"));
                assert_eq!(response.body, b"busy");
            }
            400 => assert_eq!(response.body, br#"{"error":"invalid number"}"#),
            _ => assert!(String::from_utf8(response.body).unwrap().contains("\"id\"")),
        }
    }
    assert_eq!(statuses, [503, 503, 400, 200]);
    assert_eq!(
        sink.requests().len(),
        4,
        "answered requests are recorded too"
    );
}

#[tokio::test]
async fn a_body_larger_than_axums_default_limit_is_recorded_whole() {
    let sink = HttpSink::start().await.unwrap();
    let body = vec![b'x'; 3 * 1024 * 1024];
    let response = call(&sink, "PUT", "/upload", &[], &body).await;
    assert_eq!(response.status, 200);
    assert_eq!(sink.requests()[0].body.len(), body.len());
}

#[tokio::test]
async fn wait_for_returns_once_enough_requests_arrived_or_at_its_timeout() {
    let sink = HttpSink::start().await.unwrap();
    let started = tokio::time::Instant::now();
    assert!(
        sink.wait_for(1, Duration::from_millis(200))
            .await
            .is_empty()
    );
    assert!(started.elapsed() >= Duration::from_millis(200));

    let url_addr = sink.addr();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for path in ["/a", "/b"] {
            raw_call(url_addr, "POST", path, &[], b"").await;
        }
    });
    let requests = sink.wait_for(2, WAIT).await;
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/a", "/b"]);
    later.await.unwrap();
}

#[tokio::test]
async fn dropping_the_sink_stops_its_server() {
    let sink = HttpSink::start().await.unwrap();
    let addr = sink.addr();
    call(&sink, "GET", "/", &[], b"").await;
    drop(sink);
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still listening on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

async fn call(
    sink: &HttpSink,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    raw_call(sink.addr(), method, target, headers, body).await
}

/// One HTTP/1.1 request on its own connection, read to the server's close.
async fn raw_call(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();

    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    let body = raw[split + 4..].to_vec();
    let response = Response {
        status,
        headers,
        body,
    };
    if let Some(length) = response.header("content-length") {
        assert_eq!(response.body.len(), length.parse::<usize>().unwrap());
    }
    response
}
