//! Tracing: a subscriber built separately from being installed, so tests
//! and tools can choose. Built with the `otel` feature, spans are also
//! exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use tracing::Subscriber;
use tracing_subscriber::{fmt, layer::SubscriberExt, EnvFilter, Registry};

use crate::config::LogFormat;

/// Logs to stderr; `RUST_LOG` overrides the default filter (`info`).
pub fn get_subscriber(format: LogFormat) -> Box<dyn Subscriber + Send + Sync> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let registry = Registry::default().with(filter);
    #[cfg(feature = "otel")]
    let registry = registry.with(otel::layer());
    match format {
        LogFormat::Json => Box::new(
            registry.with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            ),
        ),
        LogFormat::Text => Box::new(registry.with(fmt::layer().with_writer(std::io::stderr))),
    }
}

pub fn init_subscriber(subscriber: Box<dyn Subscriber + Send + Sync>) {
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Sends the spans still buffered for export (a no-op without `otel`).
pub fn flush() {
    #[cfg(feature = "otel")]
    otel::flush();
}

#[cfg(feature = "otel")]
mod otel {
    //! OpenTelemetry trace export: every span (each call's `grpc` span with
    //! its request id, and what is logged inside it) goes to the collector
    //! named by the standard `OTEL_EXPORTER_OTLP_*` variables, in batches.

    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
    use tracing::Subscriber;
    use tracing_subscriber::{registry::LookupSpan, Layer};

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The export layer, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Must be
    /// called inside the tokio runtime (the exporter's channel lives there).
    pub fn layer<S>() -> Option<impl Layer<S>>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")?;
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()
        {
            Ok(exporter) => exporter,
            Err(e) => {
                eprintln!("clvd: OpenTelemetry export disabled: {e}");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(Resource::builder().with_service_name("clvd").build())
            .build();
        let tracer = provider.tracer("clvd");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    pub fn flush() {
        if let Some(provider) = PROVIDER.get() {
            let _ = provider.shutdown();
        }
    }
}
