//! A call carries the W3C trace context of the span it is made in. Its own test binary: it
//! installs a global propagator.

use std::sync::{Arc, Mutex};

use ecrm_client::{Client, Credentials, Endpoints, Service};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

#[tokio::test(flavor = "current_thread")]
async fn a_call_carries_the_trace_of_the_span_it_is_made_in() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("client-tests")));
    let _installed = tracing::subscriber::set_default(subscriber);

    // A server that remembers the traceparent of every call.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = {
        let seen = seen.clone();
        move |request: tonic::Request<()>| {
            if let Some(value) = request.metadata().get("traceparent") {
                seen.lock()
                    .unwrap()
                    .push(value.to_str().unwrap().to_owned());
            }
            Ok(request)
        }
    };
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(tonic::service::InterceptorLayer::new(recorder))
            .add_service(health)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    // Health needs no token, so identity is never dialled.
    let client = Client::connect(
        Endpoints::identity("http://127.0.0.1:9").with(Service::Profiles, format!("http://{addr}")),
        Credentials::service_account("unused", "unused"),
    )
    .unwrap();
    let span = tracing::info_span!("checkout");
    let trace_id = span.context().span().span_context().trace_id();
    HealthClient::new(client.authorized(Service::Profiles).unwrap())
        .check(HealthCheckRequest::default())
        .instrument(span)
        .await
        .unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains(&trace_id.to_string()),
        "{} does not carry trace {trace_id}",
        seen[0]
    );
}
