//! With an OTLP endpoint configured, spans reach a collector over OTLP/gRPC, named after the
//! service. Its own test binary: it installs the process-wide subscriber.

use std::time::Duration;

use ecrm_platform::config::TelemetryConfig;
use ecrm_platform::{ServiceRoutes, Telemetry};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// A collector that hands over what it receives: (service.name, span name) pairs.
struct Collector(mpsc::UnboundedSender<(String, String)>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    let _ = self.0.send((service.clone(), span.name));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let (tx, mut received) = mpsc::unbounded_channel();
    let collector = ecrm_testkit::start_server(
        ServiceRoutes::unauthenticated().with(TraceServiceServer::new(Collector(tx))),
    )
    .await
    .unwrap();
    let config = TelemetryConfig {
        otlp_endpoint: Some(format!("http://{}", collector.addr()).parse().unwrap()),
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::init(&config, "ecrm-otlp-test").unwrap();

    tracing::info_span!("work.done").in_scope(|| tracing::info!("inside"));
    let telemetry = tokio::task::spawn_blocking(move || {
        telemetry.flush();
        telemetry
    })
    .await
    .unwrap();

    let (service, span) = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(service, "ecrm-otlp-test");
    assert_eq!(span, "work.done");
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();
}
