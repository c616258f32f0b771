//! W3C trace context written into the metadata of calls to other services, so the callee's
//! spans join the caller's trace.

use opentelemetry::propagation::Injector;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Writes the current span's trace context (`traceparent`, `tracestate`) into `metadata`
/// with the process's propagator. Outside a trace, or with no propagator installed, it writes
/// nothing.
pub fn inject_trace_context(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::bearer_request;

    #[test]
    fn calls_to_other_services_carry_the_current_trace_and_nothing_outside_one() {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("caller");
            let context = span.context();
            let trace = context.span().span_context().trace_id();
            let _entered = span.enter();
            let request = bearer_request("a-token", ()).unwrap();
            let traceparent = request.metadata().get("traceparent").unwrap();
            assert!(
                traceparent.to_str().unwrap().contains(&trace.to_string()),
                "{traceparent:?}"
            );
            assert!(request.metadata().get("authorization").is_some());
        });
        let request = bearer_request("a-token", ()).unwrap();
        assert!(request.metadata().get("traceparent").is_none());
    }
}
