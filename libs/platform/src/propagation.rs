//! W3C trace context across gRPC calls: extracted from incoming request headers into the
//! request's span, injected from the current span into outgoing request metadata, and kept
//! with work carried out later (a queued task) so that work joins the trace that asked for it.

use std::collections::HashMap;

use opentelemetry::propagation::Extractor;
use tonic::metadata::MetadataMap;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header naming a span's trace and the span itself.
const TRACEPARENT: &str = "traceparent";

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span of one incoming gRPC request, child of the caller's trace when the request carries
/// `traceparent`. Used as the server's `trace_fn`.
pub fn server_span(request: &http::Request<()>) -> Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.request",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
    );
    // Where the caller reached this server (HTTP/2's `:authority`): what tells apart the
    // servers of one process, such as `ecrm up`'s, whose spans share one service name.
    if let Some(authority) = request.uri().authority() {
        span.record("server.address", authority.host());
        if let Some(port) = authority.port_u16() {
            span.record("server.port", port);
        }
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    // Fails only when no OpenTelemetry layer is installed, and then there is no trace to join.
    let _ = span.set_parent(parent);
    span
}

/// Writes the current span's trace context into outgoing metadata. Calls made with
/// [`ecrm_auth::bearer_request`] carry it already.
pub fn inject(metadata: &mut MetadataMap) {
    ecrm_auth::inject_trace_context(metadata);
}

/// The current span's W3C `traceparent`, to keep with work carried out later; `None` outside
/// a trace.
pub fn current_traceparent() -> Option<String> {
    let context = Span::current().context();
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the span `traceparent` names (as [`current_traceparent`] kept it),
/// so work resumed later, by another task or process, joins the trace that asked for it. An
/// unreadable value leaves `span` where it was.
pub fn set_parent(span: &Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let parent =
        opentelemetry::global::get_text_map_propagator(|propagator| propagator.extract(&carrier));
    // Fails only when no OpenTelemetry layer is installed, and then there is no trace to join.
    let _ = span.set_parent(parent);
}

/// A tonic client interceptor that propagates the current trace:
/// `FooClient::with_interceptor(channel, inject_trace_context)`.
pub fn inject_trace_context(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    inject(request.metadata_mut());
    Ok(request)
}
