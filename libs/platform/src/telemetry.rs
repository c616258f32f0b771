//! Logs and traces: human-readable or JSON logs, OpenTelemetry spans exported over OTLP when
//! an endpoint is configured, and the W3C trace-context propagator.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{LogFormat, TelemetryConfig};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    #[error("cannot build the otlp exporter")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Keeps the tracer provider alive; [`Telemetry::shutdown`] flushes spans still buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Installs the global subscriber and propagator for a process. `service_name` names the
    /// process in traces unless `OTEL_SERVICE_NAME` says otherwise.
    pub fn init(config: &TelemetryConfig, service_name: &str) -> Result<Self, TelemetryError> {
        let mut builder =
            SdkTracerProvider::builder().with_resource(resource(config, service_name));
        if let Some(endpoint) = &config.otlp_endpoint {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.as_str())
                .build()?;
            builder = builder.with_batch_exporter(exporter);
        }
        Self::install(config, builder.build())
    }

    /// Like [`Telemetry::init`], exporting every span synchronously to `exporter`: for tests
    /// that assert on spans (an in-memory exporter).
    pub fn init_with_exporter<E: SpanExporter + 'static>(
        config: &TelemetryConfig,
        service_name: &str,
        exporter: E,
    ) -> Result<Self, TelemetryError> {
        let provider = SdkTracerProvider::builder()
            .with_resource(resource(config, service_name))
            .with_simple_exporter(exporter)
            .build();
        Self::install(config, provider)
    }

    fn install(
        config: &TelemetryConfig,
        provider: SdkTracerProvider,
    ) -> Result<Self, TelemetryError> {
        let log_filter = EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse(&config.log_filter)?;
        let logs: Box<dyn Layer<Registry> + Send + Sync> = match config.log_format {
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(log_filter)
                .boxed(),
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .with_filter(log_filter)
                .boxed(),
        };
        // Spans are filtered apart from logs: quiet logs must not break trace propagation.
        let traces = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ecrm"))
            .with_filter(LevelFilter::INFO);
        tracing_subscriber::registry()
            .with(logs)
            .with(traces)
            .try_init()
            .map_err(|_| TelemetryError::AlreadyInstalled)?;
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider.clone());
        Ok(Self { provider })
    }

    /// Exports every span finished so far.
    pub fn flush(&self) {
        if let Err(error) = self.provider.force_flush() {
            tracing::warn!(%error, "cannot flush traces");
        }
    }

    /// Flushes and stops exporting; call once, last thing before the process exits.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "cannot flush traces at shutdown");
        }
    }
}

fn resource(config: &TelemetryConfig, service_name: &str) -> Resource {
    let name = config
        .service_name
        .clone()
        .unwrap_or_else(|| service_name.to_owned());
    Resource::builder().with_service_name(name).build()
}
