//! W3C trace context crosses a gRPC call: the server's request span joins the caller's trace.
//! Its own test binary, because it installs the process-wide tracing subscriber.

use ecrm_platform::config::TelemetryConfig;
use ecrm_platform::propagation::inject_trace_context;
use ecrm_platform::{ServiceRoutes, Telemetry};
use opentelemetry::trace::{SpanKind, TraceContextExt};
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

#[tokio::test]
async fn the_server_span_joins_the_callers_trace() {
    let exporter = InMemorySpanExporter::default();
    let telemetry =
        Telemetry::init_with_exporter(&TelemetryConfig::default(), "ecrm-test", exporter.clone())
            .unwrap();
    let server = ecrm_testkit::start_server(ServiceRoutes::unauthenticated())
        .await
        .unwrap();

    let caller = tracing::info_span!("caller");
    let caller_trace = caller.context().span().span_context().trace_id();
    let caller_span = caller.context().span().span_context().span_id();
    async {
        let mut client = HealthClient::with_interceptor(server.channel(), inject_trace_context);
        client
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap();
    }
    .instrument(caller)
    .await;
    server.stop().await.unwrap();
    telemetry.flush();

    let spans = exporter.get_finished_spans().unwrap();
    let handled = spans
        .iter()
        .find(|span| span.name == "grpc.health.v1.Health/Check")
        .unwrap_or_else(|| {
            panic!(
                "no server span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(handled.span_kind, SpanKind::Server);
    assert_eq!(handled.span_context.trace_id(), caller_trace);
    assert_eq!(handled.parent_span_id, caller_span);
    assert!(handled.parent_span_is_remote);
    telemetry.shutdown();
}
